import CoreMetrics
import KafkaIO
import Logging
import Metrics
import Storage

/// Exactly-once output of one distributed stage (`SLUICE_EXACTLY_ONCE`), as Kafka Streams' exactly-once-v2 commits
/// a task: what one tick of stage 1 (partials, markers) or one cycle of stage 2 (changelog, counts, windows) produces
/// goes in one transaction together with the offsets it consumed, sent with the consumer's group metadata fetched
/// fresh, so that the group coordinator fences a member the group has moved past.
///
/// Each stage of each instance has its own producer. Its transactional id, `<group>-<instance>-<stage>-<n>`, names
/// the incarnation `n`, counted in the data directory (``Incarnation``): a start first fences the previous
/// incarnation's id, aborting its open transaction, then takes the next. A producer id that had a transaction
/// aborted so never writes again, so a read_committed reader that starts after the abort never depends on the broker
/// remembering it (noida-db 0.2.3 hides every later record of such a producer from a reader that starts after the
/// abort marker). Kafka Streams' exactly-once-v2 also gives every process start its own id; fencing a zombie of the
/// same incarnation is then the group coordinator's: offsets sent with a stale group generation are refused.
///
/// - Important: Used from the stage's thread only.
final class StageTransactions {
    private let producer: KafkaProducer
    private let consumer: KafkaConsumer
    private let transactionalID: String
    private let metrics: StreamingMetrics
    private let logger: Logger
    private let crashTrigger: CrashTrigger?

    /// How a transaction ended.
    enum Outcome {
        case committed
        /// Aborted after an abortable error: nothing of it is visible to read_committed readers and its offsets are
        /// not committed; the stage rewinds to the committed offsets and reloads what it touched.
        case aborted
    }

    /// The previous incarnation's id, fenced in ``initialize()``; nil on a first start.
    private let previousID: String?

    init(
        producer: KafkaProducer, consumer: KafkaConsumer, incarnation: Incarnation, metrics: StreamingMetrics, logger: Logger,
        crashTrigger: CrashTrigger?
    ) {
        self.producer = producer
        transactionalID = incarnation.transactionalID
        previousID = incarnation.previousID
        self.consumer = consumer
        self.metrics = metrics
        self.logger = logger
        self.crashTrigger = crashTrigger
    }

    /// A stage's transactional ids: this start's and the previous one's, counted under `<data>/transactions/<stage>`.
    struct Incarnation {
        let transactionalID: String
        let previousID: String?

        /// Takes the next incarnation of `<group>-<instance>-<stage>` and records it (durably) before it is used.
        init(groupID: String, setup: DistributedSetup, stage: String, directory: String) throws {
            let store = try CheckpointStore(directory: "\(directory)/transactions/\(stage)")
            let base = "\(groupID)-\(setup.instanceID)-\(stage)"
            let previous = try store.loadLatest()?.sequence
            let next = previous.map { $0 + 1 } ?? 0
            transactionalID = "\(base)-\(next)"
            previousID = previous.map { "\(base)-\($0)" }
            try store.write(Array(transactionalID.utf8), sequence: next)
        }
    }

    /// Fences the previous incarnation of this stage's producer, aborting its open transaction, and registers this one.
    func initialize(configuration: StreamingConfiguration) throws {
        if let previousID {
            let previous = try KafkaProducer(config: BatchTransactions.producerConfig(configuration, transactionalID: previousID), logger: logger)
            try previous.initTransactions(timeout: .seconds(60))
        }
        try producer.initTransactions(timeout: .seconds(60))
        logger.info("exactly-once output: earlier transactions fenced", metadata: [
            "kafka.transactional_id": "\(transactionalID)", "kafka.fenced_transactional_id": "\(previousID ?? "none")",
        ])
    }

    /// Runs `produce` in one transaction with the consumer's `offsets` (and their commit `metadata`), and commits.
    ///
    /// - Throws: A fatal error (`_FENCED` among them): the stage must end; or an error of `produce` that is not
    ///   the producer's. An abortable failure is aborted and reported as ``Outcome/aborted``.
    func run(offsets: [KafkaPartition: Int64], metadata: [KafkaPartition: String] = [:], _ produce: () throws -> Void) throws -> Outcome {
        let started = ContinuousClock.now
        do {
            try producer.beginTransaction()
            try produce()
            if !offsets.isEmpty {
                try producer.sendOffsetsToTransaction(offsets, metadata: metadata, consumer: consumer, timeout: .seconds(60))
            }
            CrashPoint.reach(.beforeTransactionCommit, armed: crashTrigger)
            try producer.commitTransaction()
        } catch {
            guard let kafka = Self.kafkaError(in: error), !kafka.isFatal else { throw error }
            metrics.transactionsAborted.increment()
            do {
                try producer.abortTransaction()
            } catch {
                throw StreamingError(.output, "transaction \(transactionalID) could not be aborted after: \(kafka)", underlying: error)
            }
            logger.warning("transaction aborted: rewinding to the committed offsets", metadata: [
                "kafka.transactional_id": "\(transactionalID)", "kafka.error": "\(kafka)",
            ])
            return .aborted
        }
        metrics.transactionsCommitted.increment()
        metrics.transactionCommitDuration.record(duration: .now - started)
        CrashPoint.reach(.afterTransactionCommit, armed: crashTrigger)
        return .committed
    }

    /// The producer's error in `error`, itself or the one it wraps.
    private static func kafkaError(in error: any Error) -> KafkaError? {
        if let kafka = error as? KafkaError { return kafka }
        if let streaming = error as? StreamingError, let underlying = streaming.underlying { return kafkaError(in: underlying) }
        return nil
    }
}
