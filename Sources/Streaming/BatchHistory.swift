import KafkaIO
import Synchronization

/// One completed batch, as Spark's `BatchInfo`: a row of the streaming page's table and a point of its charts.
public struct BatchInfo: Sendable, Hashable, Encodable {
    /// The batch time (ms since the epoch).
    public var batchTime: Int64
    /// Input records in the batch.
    public var records: Int
    /// Blocks in the batch.
    public var blocks: Int
    /// Records produced to the output topics.
    public var outputRecords: Int
    /// Malformed input records (dead-lettered).
    public var malformedRecords: Int
    /// Records too late for their windows.
    public var lateRecords: Int
    /// How long after its batch time the batch started (0 for a batch replayed from the log).
    public var schedulingDelayMilliseconds: Int64
    /// How long the batch took: processing, output delivery and checkpoint.
    public var processingMilliseconds: Double
    /// When the batch completed (ms since the epoch).
    public var completedAt: Int64
    /// The batch was replayed from the write-ahead log at start-up.
    public var isReplay: Bool
}

/// Totals since the context started.
public struct StreamingTotals: Sendable, Hashable, Encodable {
    public var batches = 0
    public var records = 0
    public var outputRecords = 0
    public var malformedRecords = 0
    public var lateRecords = 0
    public var futureRecords = 0
}

/// The newest checkpoint this context wrote.
public struct CheckpointInfo: Sendable, Hashable, Encodable {
    /// The batch time the checkpoint covers.
    public var batchTime: Int64
    /// When it was written (ms since the epoch).
    public var writtenAt: Int64
}

/// What the batch thread reports after each batch, for the status API: the recent batches, totals, the watermark,
/// the newest checkpoint and the consumer lag. Written by the batch thread, read by any.
final class BatchHistory: Sendable {
    /// How many recent batches are kept.
    static let capacity = 120

    struct State {
        var recent: [BatchInfo] = []
        var totals = StreamingTotals()
        var watermark: Int64?
        var lastCheckpoint: CheckpointInfo?
        var lag: [KafkaPartition: Int64] = [:]
    }

    let state = Mutex(State())

    /// Adds a completed batch (and the checkpoint it wrote, if it did); the oldest beyond ``capacity`` is dropped.
    func add(_ batch: BatchInfo, futureRecords: Int, watermark: Int64?, checkpointed: Bool) {
        state.withLock { state in
            if checkpointed { state.lastCheckpoint = CheckpointInfo(batchTime: batch.batchTime, writtenAt: batch.completedAt) }
            if state.recent.count == Self.capacity { state.recent.removeFirst() }
            state.recent.append(batch)
            state.totals.batches += 1
            state.totals.records += batch.records
            state.totals.outputRecords += batch.outputRecords
            state.totals.malformedRecords += batch.malformedRecords
            state.totals.lateRecords += batch.lateRecords
            state.totals.futureRecords += futureRecords
            state.watermark = watermark
        }
    }
}
