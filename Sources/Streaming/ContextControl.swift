import Dispatch
import Foundation
import Synchronization

/// What the public API and the two threads of a ``StreamingContext`` share: stop requests, progress, the result,
/// and the wake-up the batch thread sleeps on, so that a stop or the end of input wakes it at once.
final class ContextControl: Sendable {
    struct State {
        var isStarted = false
        /// nil: running; true: a graceful stop; false: an immediate stop.
        var stopRequest: Bool?
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
            if state.stopRequest == nil || !graceful { state.stopRequest = graceful }
        }
        wake()
    }

    var stopRequest: Bool? { state.withLock { $0.stopRequest } }

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
