import CoreMetrics
import KafkaIO
import Logging
import Metrics

/// Exactly-once output in standalone mode (`SLUICE_EXACTLY_ONCE`), the way Materialize's Kafka sink does it: each
/// batch's output records (dead-letter copies included) and a progress record holding its batch time go in one Kafka
/// transaction, and the batch's checkpoint is written only after the commit.
///
/// At start, ``recover(configuration:logger:)`` calls `init_transactions`, which fences an earlier incarnation with
/// the same transactional id (`<group>`) and aborts its open transaction, then reads the last committed progress
/// record (read_committed). A batch replayed from the write-ahead log at or below that batch time re-applies its
/// state but emits nothing: its output is committed already. A later one is emitted in a new transaction, exactly as
/// the first try would have been (replays are deterministic), so a read_committed reader sees every batch once.
///
/// - Important: Used from the batch thread only.
final class BatchTransactions {
    let producer: KafkaProducer
    /// `<group>-progress`: one partition, compacted, one key.
    let progressTopic: String
    private let metrics: StreamingMetrics
    private let logger: Logger
    private let crashTrigger: CrashTrigger?
    /// The batch time of the last committed transaction; nil before the first.
    private(set) var committedBatchTime: Int64?

    static let progressKey = Array("progress".utf8)

    init(producer: KafkaProducer, groupID: String, metrics: StreamingMetrics, logger: Logger, crashTrigger: CrashTrigger?) {
        self.producer = producer
        progressTopic = Self.progressTopic(groupID: groupID)
        self.metrics = metrics
        self.logger = logger
        self.crashTrigger = crashTrigger
    }

    static func progressTopic(groupID: String) -> String { "\(groupID)-progress" }

    /// A transactional producer's settings (standalone mode: the group as its transactional id; distributed mode:
    /// each stage's incarnation), with a delivery bound within the transaction timeout (librdkafka requires it; a
    /// broker outage longer than that aborts the transaction).
    static func producerConfig(_ configuration: StreamingConfiguration, transactionalID: String) -> KafkaProducerConfig {
        KafkaProducerConfig(
            common: configuration.kafka, transactionalID: transactionalID, deliveryTimeoutMilliseconds: transactionTimeoutMilliseconds)
    }

    /// librdkafka's default transaction timeout.
    static let transactionTimeoutMilliseconds = 60_000

    /// Fences earlier incarnations, aborting their open transaction, and reads the last committed progress.
    func recover(configuration: StreamingConfiguration, logger: Logger) throws {
        try InternalTopics.ensure(
            [KafkaNewTopic(name: progressTopic, partitions: 1, settings: ["cleanup.policy": "compact"])], producer: producer, logger: logger)
        try producer.initTransactions(timeout: .seconds(60))
        let reader = try KafkaConsumer(
            config: KafkaConsumerConfig(common: configuration.kafka, groupID: "\(configuration.groupID)-progress-reader"), logger: logger)
        defer { reader.close() }
        try reader.readFromBeginning(KafkaPartition(topic: progressTopic, partition: 0), timeout: .seconds(120)) { message in
            if let time = Int64(String(decoding: message.value, as: UTF8.self)) { committedBatchTime = time }
        }
        logger.info("exactly-once output: earlier transactions fenced", metadata: [
            "kafka.transactional_id": "\(configuration.groupID)",
            "stream.committed_batch_time": "\(committedBatchTime.map(String.init) ?? "none")",
        ])
    }

    /// Whether the batch of `batchTime` emits its output: not when a committed transaction already holds it.
    func emits(batchTime: Int64) -> Bool {
        committedBatchTime.map { batchTime > $0 } ?? true
    }

    func begin() throws {
        try producer.beginTransaction()
    }

    /// Adds the progress record and commits. A failure aborts the transaction (when librdkafka says it must be) and
    /// is thrown: the batch was not checkpointed, so a restart replays it from the log in a new transaction.
    func commit(batchTime: Int64) throws {
        let started = ContinuousClock.now
        do {
            try producer.send(KafkaProducerRecord(topic: progressTopic, partition: 0, key: Self.progressKey, value: Array(String(batchTime).utf8)))
            CrashPoint.reach(.beforeTransactionCommit, armed: crashTrigger)
            try producer.commitTransaction()
        } catch let error as KafkaError {
            metrics.transactionsAborted.increment()
            if error.requiresAbort {
                try? producer.abortTransaction()
            }
            throw StreamingError(.output, "the transaction of batch \(batchTime) did not commit\(error.isFatal ? " (fatal: fenced or broken producer)" : "")", underlying: error)
        }
        committedBatchTime = batchTime
        metrics.transactionsCommitted.increment()
        metrics.transactionCommitDuration.record(duration: .now - started)
        CrashPoint.reach(.afterTransactionCommit, armed: crashTrigger)
    }
}
