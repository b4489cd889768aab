/// A snapshot of a running ``StreamingContext``, for health and readiness checks.
public struct StreamingStatus: Sendable {
    /// Recovery (checkpoint load and WAL replay) is done.
    public var isRecovered: Bool
    /// The partitions currently assigned to the receiver.
    public var assignedPartitions: Int
    /// How long ago the receiver last polled Kafka.
    public var sinceLastPoll: Duration?
    /// How long ago the last batch completed.
    public var sinceLastBatch: Duration?
    /// Why the context cannot make progress, if it cannot (for example the WAL cannot be written).
    public var failure: String?
    /// The context has stopped.
    public var isFinished: Bool

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
