import KafkaIO
import StreamEngine

/// What other threads may read of a ``ReliableReceiver``: progress and health.
struct ReceiverStatus: Sendable {
    var lastPoll: ContinuousClock.Instant?
    var assigned: [KafkaPartition] = []
    var failure: String?
    var reachedEnd = false
    /// Input is held: the backlog is over its bound.
    var isInputHeld = false
}

/// State owned by the receiving thread.
///
/// `@unchecked Sendable` because it is touched only by the thread running ``ReliableReceiver/run()`` (including the rebalance
/// handler, which librdkafka calls from inside `poll` on that thread) and, after that thread has finished, by
/// the single thread that closes the consumer.
final class ReceiverLoopState: @unchecked Sendable {
    var builder = BlockBuilder(reservingCapacity: 1 << 20)
    var blockStart = ContinuousClock.now
    /// Next offset per partition known to be durable or received (records below it are duplicates).
    var nextOffsets: [KafkaPartition: Int64]
    /// The offset each partition was assigned to start at, until its first record arrives: a first record below
    /// it means the consumer's position was reset (the topic was recreated or truncated).
    var startedAt: [KafkaPartition: Int64] = [:]
    /// Offsets durable (in the WAL, or in a checkpoint without one) whose commit has not succeeded yet.
    var uncommitted: [KafkaPartition: Int64] = [:]
    /// Offsets to reach before stopping, with `stopsAtEnd`.
    var endOffsets: [KafkaPartition: Int64]?
    var flow: InputFlowControl
    var lastHeldPoll = ContinuousClock.now
    /// Polls so far, to tell records of the poll that found a gap from records fetched after it.
    var polls = 0
    /// Partitions sought back over a forward gap: the offset sought, and the poll that found the gap.
    var gapRefetches: [KafkaPartition: (offset: Int64, poll: Int)] = [:]
    var assigned: [KafkaPartition] = []
    var failed = false
    /// Records received since the last metrics update (updated once per poll, not per record).
    var receivedSinceReport = 0
    var errorLog = RateLimitedLog(interval: .seconds(10))

    init(nextOffsets: [KafkaPartition: Int64], flow: InputFlowControl) {
        self.nextOffsets = nextOffsets
        self.flow = flow
    }
}

