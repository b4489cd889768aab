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
///
/// The properties read for every record are `@exclusivity(unchecked)`: no access to them ever overlaps another (one
/// thread, no access held across a call that touches the same property), and the run-time check of each access was
/// about 4% of the receiver's time.
final class ReceiverLoopState: @unchecked Sendable {
    @exclusivity(unchecked) var builder = BlockBuilder(reservingCapacity: 1 << 20)
    var blockStart = ContinuousClock.now
    /// Next offset per partition known to be durable or received (records below it are duplicates).
    @exclusivity(unchecked) var nextOffsets: [KafkaPartition: Int64]
    /// The offset each partition was assigned to start at, until its first record arrives: a first record below
    /// it means the consumer's position was reset (the topic was recreated or truncated).
    @exclusivity(unchecked) var startedAt: [KafkaPartition: Int64] = [:]
    /// Offsets durable (in the WAL, or in a checkpoint without one) whose commit has not succeeded yet.
    var uncommitted: [KafkaPartition: Int64] = [:]
    /// Offsets to reach before stopping, with `stopsAtEnd`.
    var endOffsets: [KafkaPartition: Int64]?
    @exclusivity(unchecked) var flow: InputFlowControl
    var lastHeldPoll = ContinuousClock.now
    /// Polls so far, to tell records of the poll that found a gap from records fetched after it.
    @exclusivity(unchecked) var polls = 0
    /// Partitions sought back over a forward gap: the offset sought, and the poll that found the gap.
    @exclusivity(unchecked) var gapRefetches: [KafkaPartition: (offset: Int64, poll: Int)] = [:]
    var assigned: [KafkaPartition] = []
    @exclusivity(unchecked) var failed = false
    /// A failure held back while the consumer stays in its group, taking no records; reported at `until`.
    var heldFailure: (message: String, error: any Error, until: ContinuousClock.Instant)?
    /// Records received since the last metrics update (updated once per poll, not per record).
    @exclusivity(unchecked) var receivedSinceReport = 0
    var errorLog = RateLimitedLog(interval: .seconds(10))

    init(nextOffsets: [KafkaPartition: Int64], flow: InputFlowControl) {
        self.nextOffsets = nextOffsets
        self.flow = flow
    }
}

