import CoreMetrics
import KafkaIO
import Storage

/// Writes checkpoints, and does what a written checkpoint allows: delete the log segments it covers and, without
/// a write-ahead log, commit the offsets it covers.
///
/// Used by the batch thread only.
final class Checkpointer {
    /// When a batch writes a checkpoint.
    enum Rule {
        /// After every `checkpointEveryBatches` batches that had input or output, and no sooner than
        /// ``Checkpointer/costBound`` allows.
        case whenDue
        /// Now, if any batch had input or output since the last checkpoint.
        case ifChanged
        /// Now.
        case always
    }

    private let store: CheckpointStore
    private let settings: [String: String]
    private let everyBatches: Int
    private let tracker: ReceivedBlockTracker
    /// Commits offsets a checkpoint covers; nil when the write-ahead log commits them (after each block).
    private let commitCovered: (([KafkaPartition: Int64]) -> Void)?
    private let metrics: StreamingMetrics
    private let crashTrigger: CrashTrigger?
    private var sequence: UInt64
    private var batchesSinceCheckpoint = 0
    /// How long the last checkpoint took to encode and write, and when it was done.
    private var lastWrite: (duration: Duration, end: ContinuousClock.Instant)?
    /// The log position of the newest checkpoint on disk: the log is truncated before it once a newer one exists.
    private var previousPosition: WALPosition?
    /// The log entries the state covers.
    var coverage: LogCoverage

    init(
        store: CheckpointStore, sequence: UInt64, coverage: LogCoverage, settings: [String: String], everyBatches: Int,
        tracker: ReceivedBlockTracker, commitCovered: (([KafkaPartition: Int64]) -> Void)?, metrics: StreamingMetrics,
        crashTrigger: CrashTrigger?
    ) {
        self.store = store
        self.sequence = sequence
        self.coverage = coverage
        self.settings = settings
        self.everyBatches = everyBatches
        self.tracker = tracker
        self.commitCovered = commitCovered
        self.metrics = metrics
        self.crashTrigger = crashTrigger
        previousPosition = Self.position(in: coverage, of: tracker.logID)
    }

    /// A checkpoint's graph state, encoded as soon as its batch was computed: it is written once the batch's output
    /// is delivered (``write(_:batchTime:offsets:)``), and encoding it meanwhile overlaps the wait for delivery.
    struct Pending {
        let graphState: [UInt8]
        let encodingTime: Duration
    }

    /// Notes a computed batch and, if `rule` says a checkpoint is due after it, encodes `state` for it.
    func prepare(hadData: Bool, rule: Rule, state: () -> [UInt8]) -> Pending? {
        if hadData { batchesSinceCheckpoint += 1 }
        let isDue =
            switch rule {
            case .whenDue: batchesSinceCheckpoint >= everyBatches && Self.costAllows(lastWrite, now: .now)
            case .ifChanged: batchesSinceCheckpoint > 0
            case .always: true
            }
        guard isDue else { return nil }
        let started = ContinuousClock.now
        let graphState = state()
        return Pending(graphState: graphState, encodingTime: .now - started)
    }

    /// Writes a prepared checkpoint; its batch's output must be delivered.
    func write(_ pending: Pending, batchTime: Int64, offsets: [KafkaPartition: Int64]) throws {
        let started = ContinuousClock.now
        try write(DriverCheckpoint(batchTime: batchTime, log: coverage, offsets: offsets, settings: settings, graphState: pending.graphState))
        lastWrite = (pending.encodingTime + (.now - started), .now)
    }

    /// At most this share of the time goes to writing checkpoints: a state that takes long to write is checkpointed
    /// less often than every `checkpointEveryBatches` batches (the write-ahead log, or Kafka without one, holds what
    /// the state does not cover yet, so only the replay after a crash grows).
    static let costBound = 0.1

    /// Whether enough time has passed since the last write for the next one to keep within ``costBound``.
    static func costAllows(_ lastWrite: (duration: Duration, end: ContinuousClock.Instant)?, now: ContinuousClock.Instant) -> Bool {
        guard let lastWrite else { return true }
        return now - lastWrite.end >= lastWrite.duration * ((1 - costBound) / costBound)
    }

    private func write(_ checkpoint: DriverCheckpoint) throws {
        sequence += 1
        try store.write(checkpoint.encoded, sequence: sequence)
        batchesSinceCheckpoint = 0
        metrics.checkpointsWritten.increment()
        metrics.lastCheckpointTime.record(Double(WallClock.milliseconds()) / 1000)
        CrashPoint.reach(.afterCheckpoint, armed: crashTrigger)
        // Two checkpoints are kept; the log keeps everything after the older one, so falling back to it on a
        // damaged newest checkpoint finds every entry it needs.
        if let previousPosition {
            try tracker.truncateLog(coveredBy: previousPosition)
        }
        previousPosition = Self.position(in: checkpoint.log, of: tracker.logID) ?? previousPosition
        commitCovered?(checkpoint.offsets)
    }

    /// The position `coverage` reaches in the log `logID` (nil if it covers another log, or none).
    private static func position(in coverage: LogCoverage, of logID: UInt64?) -> WALPosition? {
        guard case .covered(let covered, let position) = coverage, covered == logID else { return nil }
        return position
    }
}
