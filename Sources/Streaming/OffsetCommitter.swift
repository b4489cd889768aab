import KafkaIO
import Logging
import Synchronization

/// Where the receiver commits offsets: the consumer, or a test's observer of the commit order.
protocol OffsetCommitter: Sendable {
    /// Commits "next offset to read" per partition, synchronously.
    func commit(_ offsets: [KafkaPartition: Int64]) throws
}

extension KafkaConsumer: OffsetCommitter {}

/// Offsets that a checkpoint covers (without a WAL), handed from the batch thread to the polling thread, which
/// commits them: librdkafka 2.0.2 can lose the assignment when another thread commits during a rebalance (#4059).
final class CommitHandoff: Sendable {
    private struct State {
        var isPolling = false
        var pending: [KafkaPartition: Int64] = [:]
    }

    private let state = Mutex(State())

    /// Hands offsets to the polling thread; false when nothing polls (then the caller commits them itself).
    func hand(_ offsets: [KafkaPartition: Int64]) -> Bool {
        state.withLock { state in
            if state.isPolling { state.pending.merge(offsets, uniquingKeysWith: max) }
            return state.isPolling
        }
    }

    /// Called by the polling thread when it starts and stops polling.
    func setPolling(_ isPolling: Bool) {
        state.withLock { $0.isPolling = isPolling }
    }

    /// Called by the polling thread: the offsets handed to it so far.
    func take() -> [KafkaPartition: Int64] {
        state.withLock { state in
            defer { state.pending = [:] }
            return state.pending
        }
    }
}

/// A warning written at most once per interval, with how many were left out since the last one.
struct RateLimitedLog {
    let interval: Duration
    private var last: ContinuousClock.Instant?
    private var suppressed = 0

    init(interval: Duration) {
        self.interval = interval
    }

    mutating func warning(_ logger: Logger, _ message: Logger.Message, error: any Error) {
        if let last, ContinuousClock.now - last < interval {
            suppressed += 1
            return
        }
        logger.warning(message, metadata: ["kafka.error": "\(error)", "log.suppressed": "\(suppressed)"])
        last = .now
        suppressed = 0
    }
}
