import KafkaIO

/// A snapshot of a running ``StreamingContext``: health, readiness, and what the status page shows.
public struct StreamingStatus: Sendable {
    /// Recovery (checkpoint load and WAL replay) is done.
    public var isRecovered: Bool
    /// The partitions currently assigned to the receiver.
    public var assigned: [KafkaPartition]
    /// The number of partitions assigned.
    public var assignedPartitions: Int { assigned.count }
    /// Records behind the end of each assigned partition (refreshed every few seconds).
    public var lag: [KafkaPartition: Int64]
    /// Bytes received but not yet in a batch.
    public var backlogBytes: Int
    /// Bytes of received input in memory, which `SLUICE_MAX_BACKLOG_MB` bounds: the backlog and the blocks of the
    /// running batch that it has not read yet.
    public var heldInputBytes = 0
    /// Bytes of the write-ahead log on disk (nil when it is off).
    public var logBytes: Int?
    /// The newest checkpoint this run wrote.
    public var lastCheckpoint: CheckpointInfo?
    /// The event-time watermark (nil before the first record).
    public var watermark: Int64?
    /// Totals since start.
    public var totals: StreamingTotals
    /// How long ago the receiver last polled Kafka.
    public var sinceLastPoll: Duration?
    /// How long ago the last batch completed.
    public var sinceLastBatch: Duration?
    /// Why the context cannot make progress, if it cannot (for example the WAL cannot be written).
    public var failure: String?
    /// The context has stopped.
    public var isFinished: Bool
    /// Distributed mode: the shards this instance owns (nil in standalone mode).
    public var ownedShards: [Int32]? = nil

    /// Receiving and batching made progress recently, and nothing failed.
    public func isHealthy(staleAfter limit: Duration) -> Bool {
        guard failure == nil else { return false }
        guard isRecovered, !isFinished else { return !isFinished }
        return (sinceLastPoll.map { $0 < limit } ?? false) && (sinceLastBatch.map { $0 < limit } ?? true)
    }

    /// Recovered, with partitions assigned and no failure: ready to process input.
    public var isReady: Bool {
        isRecovered && assignedPartitions > 0 && failure == nil && !isFinished
    }
}
