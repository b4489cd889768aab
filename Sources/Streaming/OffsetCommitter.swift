import KafkaIO
import Logging

/// Where the receiver commits offsets: the consumer, or a test's observer of the commit order.
protocol OffsetCommitter: Sendable {
    /// Commits "next offset to read" per partition, synchronously.
    func commit(_ offsets: [KafkaPartition: Int64]) throws
}

extension KafkaConsumer: OffsetCommitter {}

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
