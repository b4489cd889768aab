import CoreMetrics
import KafkaIO
import Logging
import Metrics

/// Exactly-once output of one distributed stage (`SLUICE_EXACTLY_ONCE`), as Kafka Streams' exactly-once-v2 commits
/// a task: what one tick of stage 1 (partials, markers) or one cycle of stage 2 (changelog, counts, windows) produces
/// goes in one transaction together with the offsets it consumed, sent with the consumer's group metadata fetched
/// fresh, so that the group coordinator fences a member the group has moved past.
///
/// Each stage of each instance has its own producer with a stable transactional id, `<group>-<instance>-<stage>`:
/// a restarted instance fences its earlier incarnation (and aborts its open transaction) in ``initialize()``.
///
/// - Important: Used from the stage's thread only.
final class StageTransactions {
    let producer: KafkaProducer
    private let consumer: KafkaConsumer
    let transactionalID: String
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

    init(producer: KafkaProducer, consumer: KafkaConsumer, transactionalID: String, metrics: StreamingMetrics, logger: Logger, crashTrigger: CrashTrigger?) {
        self.producer = producer
        self.consumer = consumer
        self.transactionalID = transactionalID
        self.metrics = metrics
        self.logger = logger
        self.crashTrigger = crashTrigger
    }

    static func transactionalID(setup: DistributedSetup, groupID: String, stage: String) -> String {
        "\(groupID)-\(setup.instanceID)-\(stage)"
    }

    /// The producer settings of a stage: its transactional id, and a delivery bound within the transaction timeout.
    static func producerConfig(_ configuration: StreamingConfiguration, transactionalID: String) -> KafkaProducerConfig {
        KafkaProducerConfig(
            common: configuration.kafka, transactionalID: transactionalID,
            deliveryTimeoutMilliseconds: BatchTransactions.transactionTimeoutMilliseconds)
    }

    /// Fences earlier incarnations of this stage's producer, aborting their open transaction.
    func initialize() throws {
        try producer.initTransactions(timeout: .seconds(60))
        logger.info("exactly-once output: earlier transactions fenced", metadata: ["kafka.transactional_id": "\(transactionalID)"])
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
