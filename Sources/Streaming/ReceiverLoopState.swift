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
    @exclusivity(unchecked) var nextOffsets: NextOffsets
    /// The offset each partition was assigned to start at, until its first record arrives: a first record below
    /// it means the consumer's position was reset (the topic was recreated or truncated).
    @exclusivity(unchecked) var startedAt: [KafkaPartition: Int64] = [:]
    /// Offsets durable (in the WAL, or in a checkpoint without one) whose commit has not succeeded yet.
    var uncommitted: [KafkaPartition: Int64] = [:]
    /// Stored blocks not known to be synced yet, in log order: each block's number and the offsets after it.
    var awaitingSync: [(number: Int, offsets: [KafkaPartition: Int64])] = []
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
        self.nextOffsets = NextOffsets(nextOffsets)
        self.flow = flow
    }
}


/// The next offset per partition, looked up for every record: records come in runs of one partition, so the index of
/// the last partition looked up is kept, and the records of a run after the first skip hashing their topic.
struct NextOffsets {
    typealias Index = [KafkaPartition: Int64].Index

    private(set) var offsets: [KafkaPartition: Int64]
    /// Cleared by every change by partition, which may add one and so move every index.
    private var lastLookup: (partition: KafkaPartition, index: Index)?

    init(_ offsets: [KafkaPartition: Int64]) {
        self.offsets = offsets
    }

    subscript(partition: KafkaPartition) -> Int64? {
        get { offsets[partition] }
        set {
            lastLookup = nil
            offsets[partition] = newValue
        }
    }

    /// Where `partition`'s next offset is, if it has one.
    mutating func index(of partition: KafkaPartition) -> Index? {
        if let lastLookup, lastLookup.partition == partition { return lastLookup.index }
        guard let index = offsets.index(forKey: partition) else { return nil }
        lastLookup = (partition, index)
        return index
    }

    /// The next offset at an ``index(of:)`` (setting it keeps every index valid).
    subscript(index: Index) -> Int64 {
        get { offsets.values[index] }
        set { offsets.values[index] = newValue }
    }
}
