import KafkaIO
import Storage
import StreamEngine

/// What a restart must do before it receives anything new: built from the newest checkpoint and the write-ahead log,
/// without touching Kafka or files, so every rule here is unit-tested.
///
/// - The log entries the checkpoint covers are skipped; the rest are grouped into the batches they were allocated to
///   (replayed with the same times, so they emit the same records) and the blocks after the last allocation
///   (trailing: they go to the next batch).
/// - A checkpoint names the log it covers by identity, so it is never applied to another log that reuses the same
///   positions. A checkpoint that covers a log which is no longer there is refused: the entries after it may hold
///   committed records.
struct RecoveryPlan: Equatable {
    /// A batch recovered from the log: its time, its blocks and assignments, and the position of its allocation.
    struct Batch: Equatable {
        var time: Int64
        var blocks: [Block]
        var assigned: [TopicPartition] = []
        var position: WALPosition
    }

    /// The log as recovered from disk.
    struct RecoveredLog {
        var logID: UInt64
        var records: [(position: WALPosition, record: WALRecord)]
    }

    /// The batches to replay, in order.
    var replay: [Batch] = []
    /// Blocks logged after the last allocation: the next batch's.
    var trailingBlocks: [Block] = []
    /// Assignments logged after the last allocation: the next batch's.
    var trailingAssignments: [TopicPartition] = []
    /// The position of the log's last entry: with trailing blocks processed, the state covers the log through it.
    var logEnd: WALPosition?
    /// The next offset per partition that the checkpoint and the log together hold.
    var knownOffsets: [KafkaPartition: Int64] = [:]
    /// What the state covers before anything is replayed, as seen against the log on disk.
    var coverage: LogCoverage = .none

    /// Plans recovery from `checkpoint` (nil: none) and `log` (nil: no log directory).
    ///
    /// - Throws: ``StreamingError`` `.logMismatch` if the checkpoint covers a log that is not the one on disk (or
    ///   there is none).
    init(checkpoint: DriverCheckpoint?, log: RecoveredLog?) throws {
        knownOffsets = checkpoint?.offsets ?? [:]
        let checkpointCoverage = checkpoint?.log ?? .none
        var skipThrough: WALPosition?
        switch checkpointCoverage {
        case .none:
            break
        case .covered(let logID, let position):
            guard let log, log.logID == logID else {
                throw StreamingError(.logMismatch, Self.mismatch(logID: logID, position: position, found: log?.logID))
            }
            skipThrough = position
            coverage = checkpointCoverage
        case .retired(let logID):
            if let log, log.logID == logID {
                // Every entry is in the state already.
                skipThrough = log.records.last?.position
                coverage = skipThrough.map { .covered(logID: logID, through: $0) } ?? .none
            }
        }
        guard let log else { return }
        logEnd = log.records.last?.position
        var blocks: [Block] = []
        var assigned: [TopicPartition] = []
        for (position, record) in log.records where skipThrough.map({ position > $0 }) ?? true {
            switch record {
            case .block(let block):
                blocks.append(block)
            case .partitionsAssigned(let partitions):
                assigned += partitions
            case .batchAllocated(let time):
                replay.append(Batch(time: time, blocks: blocks, assigned: assigned, position: position))
                blocks = []
                assigned = []
            }
        }
        trailingBlocks = blocks
        trailingAssignments = assigned
        knownOffsets.advance(past: replay.flatMap(\.blocks) + trailingBlocks)
    }

    private static func mismatch(logID: UInt64, position: WALPosition, found: UInt64?) -> String {
        let onDisk = found.map { "the log on disk is log \($0)" } ?? "there is no log on disk"
        return "the checkpoint covers write-ahead log \(logID) through \(position), but \(onDisk): entries after the "
            + "checkpoint (committed in Kafka) would be lost. Restore the log's directory, or remove the checkpoints "
            + "too to start over from the committed offsets"
    }
}
