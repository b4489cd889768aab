import Dispatch
import Foundation
import Synchronization

/// Reads blocks ahead of the next batch on a thread of its own while a batch runs.
///
/// The batch thread reads the next batch's blocks itself while it waits for that batch; while it runs one, blocks
/// keep arriving and wait for it. ``BatchDriver`` (with `stopsAtEnd`) has this worker read them once the receiver has
/// stored the input's last block: its core is then free, and the last batch's blocks are read there while the batch
/// before it updates state and makes its output (while input still flows, the receiver needs that core, and reading
/// earlier only holds more memory). The batch thread calls ``start(nextBatchAfter:)`` once its batch's input has been
/// read (the read-ahead state is then the next batch's alone) and ``stop(wake:)`` before it touches that state
/// again, so the two never read ahead at once; the output does not change.
final class ReadAheadWorker: Sendable {
    private enum Phase: Equatable {
        /// Reading blocks ahead of the batch after the one of this time.
        case reading(nextBatchAfter: Int64)
        case parked, stopping, finished
    }

    private let phase = Mutex(Phase.parked)
    private let started = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    /// Starts the thread; `readBlock` reads one block ahead of the batch after the given batch time and returns
    /// false when none is waiting, `waitForBlock` waits a little for one (the receiver's wake-up).
    init(readBlock: @escaping @Sendable (_ nextBatchAfter: Int64) -> Bool, waitForBlock: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            while true {
                started.wait()
                while case .reading(let time) = phase.withLock({ $0 }) {
                    if !readBlock(time) { waitForBlock() }
                }
                if phase.withLock({ $0 }) == .finished { return }
                stopped.signal()
            }
        }
        thread.name = "sluice-read-ahead"
        thread.start()
    }

    /// Has the worker read blocks ahead of the batch after `batchTime` until ``stop(wake:)``; a second start before
    /// the stop changes nothing. Batch thread only.
    func start(nextBatchAfter batchTime: Int64) {
        let wasParked = phase.withLock { phase in
            guard phase == .parked else { return false }
            phase = .reading(nextBatchAfter: batchTime)
            return true
        }
        if wasParked { started.signal() }
    }

    /// Returns once the worker has stopped reading (at once if it was not started). `wake` cuts its wait for a block
    /// short. Batch thread only.
    func stop(wake: () -> Void) {
        let wasReading = phase.withLock { phase in
            guard case .reading = phase else { return false }
            phase = .stopping
            return true
        }
        guard wasReading else { return }
        wake()
        stopped.wait()
        phase.withLock { $0 = .parked }
    }

    /// Ends the thread; the worker must be stopped.
    func finish() {
        phase.withLock { $0 = .finished }
        started.signal()
    }
}
