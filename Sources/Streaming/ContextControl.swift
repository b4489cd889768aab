import Dispatch
import Foundation
import Synchronization

/// Whether a stop was asked for, and how: a graceful stop finishes the batch of what was received, an immediate
/// one keeps only completed batches. An immediate request overrides a graceful one, never the other way round.
enum StopRequest: Equatable, Sendable {
    case none
    case graceful
    case immediate
}

/// What the public API and the two threads of a ``StreamingContext`` share: stop requests, progress, the result,
/// and the wake-up the batch thread sleeps on, so that a stop or the end of input wakes it at once.
final class ContextControl: Sendable {
    struct State {
        var isStarted = false
        var stopRequest = StopRequest.none
        var isRecovered = false
        var lastBatch: ContinuousClock.Instant?
        /// Why output cannot be delivered right now, if it cannot.
        var failure: String?
        var result: Result<Void, any Error>?
        var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var cancelledWaiters: Set<UInt64> = []
        var nextWaiter: UInt64 = 0
    }

    let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)

    /// Requests a stop; an immediate stop overrides a graceful one, never the other way round.
    func requestStop(graceful: Bool) {
        state.withLock { state in
            if state.stopRequest == .none || !graceful { state.stopRequest = graceful ? .graceful : .immediate }
        }
        wake()
    }

    var stopRequest: StopRequest { state.withLock { $0.stopRequest } }

    /// Wakes the batch thread if it sleeps in ``sleep(milliseconds:)``.
    func wake() {
        wakeup.signal()
    }

    /// Sleeps up to `milliseconds`, or until ``wake()``.
    func sleep(milliseconds: Int64) {
        _ = wakeup.wait(timeout: .now() + .milliseconds(Int(clamping: milliseconds)))
    }

    /// Records the result and resumes every waiter.
    func finish(with result: Result<Void, any Error>) {
        let waiters = state.withLock { state in
            state.result = result
            defer { state.waiters = [:] }
            return state.waiters
        }
        for waiter in waiters.values {
            waiter.resume(with: result)
        }
    }

    /// Waits for ``finish(with:)``; a cancelled task stops waiting with `CancellationError` (the context goes on).
    func awaitResult() async throws {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = state.withLock { state in
                    if let result = state.result { return result }
                    if state.cancelledWaiters.remove(id) != nil { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                let waiter = state.waiters.removeValue(forKey: id)
                if waiter == nil, state.result == nil { state.cancelledWaiters.insert(id) }
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
