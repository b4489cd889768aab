import Foundation

/// Makes the blocks the receiver stores durable on a thread of its own, so that the receiver goes on taking records
/// while the last block's `fdatasync` runs (Spark's receiver, likewise, writes the log and stores the block in
/// parallel). Blocks are numbered in the order they were logged (``ReceivedBlockTracker/add(_:)``); the receiver
/// commits a block's offsets only once ``progress`` says the block is durable.
///
/// `@unchecked Sendable`: every property is guarded by `condition`.
final class LogSyncer: @unchecked Sendable {
    private let tracker: ReceivedBlockTracker
    private let condition = NSCondition()
    /// The highest block number asked to be durable.
    private var requested = 0
    /// The highest block number known to be durable.
    private var durable = 0
    /// The first failed sync: the log is unusable after it.
    private var failure: (any Error)?
    private var isStopped = false

    init(tracker: ReceivedBlockTracker) {
        self.tracker = tracker
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "sluice-wal-sync"
        thread.start()
    }

    /// Ends the thread once no sync is asked for; a block numbered after that is synced by ``waitUntilDurable(_:)``.
    func stop() {
        condition.withLock {
            isStopped = true
            condition.broadcast()
        }
    }

    /// Asks for every block up to `number` to be made durable, without waiting.
    func request(_ number: Int) {
        condition.withLock {
            requested = max(requested, number)
            condition.broadcast()
        }
    }

    /// The highest block number known to be durable, and the sync failure, if one happened.
    var progress: (durable: Int, failure: (any Error)?) {
        condition.withLock { (durable, failure) }
    }

    /// Waits until every block up to `number` is durable (syncing here once the thread has stopped) or a sync failed.
    func waitUntilDurable(_ number: Int) -> (durable: Int, failure: (any Error)?) {
        condition.withLock {
            requested = max(requested, number)
            condition.broadcast()
            while durable < number, failure == nil {
                if isStopped { syncUnlocked() } else { condition.wait() }
            }
            return (durable, failure)
        }
    }

    private func run() {
        condition.withLock {
            while failure == nil {
                if requested > durable {
                    syncUnlocked()
                } else if isStopped {
                    return
                } else {
                    condition.wait()
                }
            }
        }
    }

    /// Syncs the log with the lock released (appends go on meanwhile), then records the outcome; called holding it.
    private func syncUnlocked() {
        condition.unlock()
        let outcome = Result { try tracker.syncLog() }
        condition.lock()
        switch outcome {
        case .success(let synced): durable = max(durable, synced)
        case .failure(let error): failure = failure ?? error
        }
        condition.broadcast()
    }
}
