import Foundation
import Logging
import Storage
import StreamEngine

/// What a start finds in the checkpoint directory: the newest readable checkpoint (applied to the graph), the
/// write-ahead log, and the ``RecoveryPlan`` built from the two.
struct Restored {
    /// This process's hold on the checkpoint directory, kept for the context's life.
    let lock: DirectoryLock
    let store: CheckpointStore
    let checkpoint: DriverCheckpoint?
    let sequence: UInt64
    /// The log to append to (nil with the log off).
    let log: WriteAheadLog?
    /// A log left by a run with the log on, while this run has it off.
    let staleLog: BatchDriver.StaleLog?
    let plan: RecoveryPlan

    /// Loads the newest readable checkpoint into `graph` and opens the log.
    ///
    /// - Throws: ``StreamingError`` `.settingChanged`, `.logMismatch`, `.corruptLog`; a storage error (`.locked` if
    ///   another process uses the checkpoint directory).
    init(configuration: StreamingConfiguration, graph: StreamGraph, logger: Logger) throws {
        let root = configuration.checkpointDirectory
        lock = try DirectoryLock(directory: root)
        store = try CheckpointStore(directory: root + "/checkpoints")
        (checkpoint, sequence) = try Self.loadCheckpoint(from: store, into: graph, settings: configuration.stateSettings, logger: logger)
        let logDirectory = root + "/wal"
        guard configuration.isWriteAheadLogEnabled || FileManager.default.fileExists(atPath: logDirectory) else {
            log = nil
            staleLog = nil
            plan = try RecoveryPlan(checkpoint: checkpoint, log: nil)
            return
        }
        let (opened, recovery) = try WriteAheadLog.open(
            directory: logDirectory, options: .init(skipCorruptEntries: configuration.skipsCorruptWriteAheadLog))
        Self.report(recovery, logger: logger)
        let records = try recovery.entries.map { ($0.position, try WALRecord(decoding: $0.payload, at: $0.position)) }
        plan = try RecoveryPlan(checkpoint: checkpoint, log: .init(logID: opened.logID, records: records))
        if case .covered(_, let position) = plan.coverage, let oldest = opened.segmentNumbers.first, oldest > position.segment {
            throw StreamingError(
                .corruptLog, "the checkpoint continues at WAL \(position), but the log starts at segment \(oldest): entries it needs are gone")
        }
        if configuration.isWriteAheadLogEnabled {
            log = opened
            staleLog = nil
        } else {
            opened.close()
            log = nil
            staleLog = .init(directory: logDirectory, logID: opened.logID)
        }
    }

    private static func loadCheckpoint(
        from store: CheckpointStore, into graph: StreamGraph, settings: [String: String], logger: Logger
    ) throws -> (DriverCheckpoint?, UInt64) {
        guard let loaded = try store.loadLatest() else { return (nil, 0) }
        for path in loaded.skipped {
            logger.warning("skipped an unreadable checkpoint; using an older one", metadata: ["checkpoint.path": "\(path)"])
        }
        let checkpoint = try DriverCheckpoint(decoding: loaded.payload)
        if let refusal = PinnedSettings.refusal(current: settings, pinned: checkpoint.settings, pinnedWhere: "the checkpointed state") {
            throw StreamingError(
                .settingChanged,
                refusal.message + ": set it back, or start with an empty checkpoint directory to rebuild the state from the input")
        }
        try graph.restore(from: checkpoint.graphState)
        logger.info("restored state from checkpoint", metadata: [
            "checkpoint.sequence": "\(loaded.sequence)", "checkpoint.batch_time": "\(checkpoint.batchTime)",
        ])
        return (checkpoint, loaded.sequence)
    }

    private static func report(_ recovery: WALRecovery, logger: Logger) {
        if let tail = recovery.truncatedTail {
            logger.warning("truncated a torn write-ahead-log tail", metadata: [
                "wal.segment": "\(tail.path)", "wal.offset": "\(tail.offset)", "wal.dropped_bytes": "\(tail.droppedBytes)",
            ])
        }
        for skipped in recovery.skippedCorruption {
            logger.error("skipped a corrupt part of the write-ahead log; its records are lost", metadata: [
                "wal.segment": "\(skipped.path)", "wal.offset": "\(skipped.offset)", "wal.reason": "\(skipped.reason)",
            ])
        }
    }
}
