import Foundation
import KafkaIO
import Logging
import Storage
import StreamEngine
import Synchronization

/// What distributed mode adds to a ``StreamingConfiguration``: the shard count, the instance's name, and the word
/// count's topics and windows.
public struct DistributedSetup: Sendable {
    /// The fixed word-to-shard mapping (`SLUICE_SHARDS`); the partials and changelog topics have one partition each.
    public var shards: ShardMap
    /// This instance's stable name (`SLUICE_INSTANCE_ID`), in logs and ownership records.
    public var instanceID: String
    public var countsTopic: String
    public var windowsTopic: String
    public var window: WindowSpec
    /// `<group>-partials`: the exchange between the stages, and distributed mode's write-ahead log.
    public var partialsTopic: String
    /// `<group>-changelog`: the shard states, compacted.
    public var changelogTopic: String
    /// `<group>-shards`: the consumer group of stage 2 over the partials topic.
    public var shardGroupID: String
    /// `<group>-config`: the settings the group's state was built with (``PinnedSettings``).
    public var configTopic: String
    /// `<group>-plans`: a group without members whose committed offsets are stage 1's planned batch ends.
    public var plansGroupID: String

    public init(groupID: String, shards: Int32, instanceID: String, job: WordCountJob.Configuration) throws(StreamEngineError) {
        self.shards = ShardMap(count: shards)
        self.instanceID = instanceID
        countsTopic = job.countsTopic
        windowsTopic = job.windowsTopic
        window = try WindowSpec(length: job.windowLength, slide: job.slide, allowedLateness: job.allowedLateness)
        partialsTopic = "\(groupID)-partials"
        changelogTopic = "\(groupID)-changelog"
        shardGroupID = "\(groupID)-shards"
        plansGroupID = "\(groupID)-plans"
        configTopic = "\(groupID)-config"
    }
}

/// Runs the word count in distributed mode: stage 1 (``SourceStage``) and stage 2 (``ShardStage``), each on its own
/// thread with its own consumer and producer, so that either one's delivery waits never hold up the other.
///
/// Every instance of the group runs both stages; Kafka's consumer groups spread the input partitions over the
/// instances for stage 1, and the shards (partitions of the partials topic) for stage 2.
public final class DistributedContext: StreamingRuntime {
    private let sources: SourceStage
    private let shards: ShardStage
    private let control = ContextControl()
    private let probe: BrokerProbe
    private let logger: Logger
    /// One process per data directory (the shard checkpoints), as in standalone mode.
    private let lock: DirectoryLock

    public init(configuration: StreamingConfiguration, setup: DistributedSetup, logger: Logger, crashTrigger: CrashTrigger? = nil) throws {
        try configuration.validate()
        lock = try DirectoryLock(directory: configuration.checkpointDirectory)
        var logger = logger
        logger[metadataKey: "instance.id"] = "\(setup.instanceID)"
        self.logger = logger
        let metrics = StreamingMetrics()
        let control = control
        let makeOutput = { (producer: KafkaProducer) in
            KafkaOutput(
                producer: producer, deadLetterTopic: configuration.deadLetterTopic,
                maxRecordBytes: (configuration.kafka.properties["message.max.bytes"].flatMap { Int($0) } ?? 1_000_000) - 1024,
                metrics: metrics, logger: logger,
                reportWaiting: { reason in control.state.withLock { $0.failure = reason } },
                isStoppingNow: { control.stopRequest == false })
        }
        let consumerConfig = { (group: String, member: String?) in
            KafkaConsumerConfig(
                common: configuration.kafka, groupID: group, sessionTimeoutMilliseconds: configuration.sessionTimeoutMilliseconds,
                groupInstanceID: member)
        }
        // Static membership: the same instance id in both groups (they are different groups).
        let sourceConsumer = try KafkaConsumer(config: consumerConfig(configuration.groupID, configuration.groupInstanceID), logger: logger)
        var shardConfig = consumerConfig(setup.shardGroupID, configuration.groupInstanceID)
        // Room for 64 partials records (each up to about partialsRecordBytes).
        shardConfig.prefetchKilobytes = 64 * ExchangeRecord.partialsRecordBytes / 1024
        let shardConsumer = try KafkaConsumer(config: shardConfig, logger: logger)
        // With exactly-once output each stage has its own transactional producer (a transaction is one thread's).
        let producer = { (stage: String, consumer: KafkaConsumer) throws -> (KafkaProducer, StageTransactions?) in
            guard configuration.isExactlyOnce else {
                return (try KafkaProducer(config: KafkaProducerConfig(common: configuration.kafka, deliveryTimeoutMilliseconds: 0), logger: logger), nil)
            }
            let incarnation = try StageTransactions.Incarnation(
                groupID: configuration.groupID, setup: setup, stage: stage, directory: configuration.checkpointDirectory)
            let producer = try KafkaProducer(
                config: BatchTransactions.producerConfig(configuration, transactionalID: incarnation.transactionalID), logger: logger)
            return (producer, StageTransactions(
                producer: producer, consumer: consumer, incarnation: incarnation, metrics: metrics, logger: logger, crashTrigger: crashTrigger))
        }
        let (sourceProducer, sourceTransactions) = try producer("sources", sourceConsumer)
        let (shardProducer, shardTransactions) = try producer("shards", shardConsumer)
        try InternalTopics.ensure(InternalTopics.distributed(setup), producer: sourceProducer, logger: logger) { topic, count in
            "SLUICE_SHARDS is \(topic.partitions) but \(topic.name) has \(count) partitions: the shard count is fixed for the life of the group's state (set SLUICE_SHARDS=\(count), or use a new SLUICE_GROUP_ID)"
        }
        var settings = configuration.stateSettings
        settings["SLUICE_SHARDS"] = String(setup.shards.count)
        try PinnedSettings.pin(
            settings, topic: setup.configTopic, kafka: configuration.kafka, groupID: "\(setup.shardGroupID)-restore", logger: logger)
        // At least once, batch plans are committed in a group of their own (exactly once, nothing is planned).
        let plans = configuration.isExactlyOnce ? nil : try KafkaConsumer(config: consumerConfig(setup.plansGroupID, nil), logger: logger)
        sources = SourceStage(
            consumer: sourceConsumer, plans: plans, output: makeOutput(sourceProducer), setup: setup, configuration: configuration,
            logger: logger, metrics: metrics, crashTrigger: crashTrigger, transactions: sourceTransactions)
        shards = ShardStage(
            consumer: shardConsumer, restoreConsumer: try KafkaConsumer(config: consumerConfig("\(setup.shardGroupID)-restore", nil), logger: logger),
            output: makeOutput(shardProducer), setup: setup, configuration: configuration, logger: logger, metrics: metrics,
            crashTrigger: crashTrigger, transactions: shardTransactions)
        probe = BrokerProbe(producer: sourceProducer, bootstrapServers: configuration.kafka.bootstrapServers)
    }

    public func start() throws {
        try control.state.withLock { control in
            guard !control.isStarted else { throw StreamingError(.invalidState, "the context was already started") }
            control.isStarted = true
            control.isRecovered = true
        }
        probe.start()
        let completion = StageCompletion(stages: 2)
        let stages: [(String, @Sendable () throws -> Void)] = [
            ("sluice-sources", { [sources] in try sources.run() }), ("sluice-shards", { [shards] in try shards.run() }),
        ]
        for (name, stage) in stages {
            let thread = Thread { [control, sources, shards, probe, logger] in
                let result = Result { try stage() }
                if case .failure(let error) = result {
                    logger.error("a stage stopped on an error", metadata: ["stage": "\(name)", "stream.error": "\(error)"])
                    // Reported by /healthz while the other stage finishes (a fenced producer names `_FENCED` here).
                    control.state.withLock { $0.failure = $0.failure ?? "\(name): \(error)" }
                    // One stage failing stops the other: the instance leaves both groups and exits.
                    sources.requestStop()
                    shards.requestStop()
                }
                guard let result = completion.finish(with: result) else { return }
                probe.stop()
                control.finish(with: result)
            }
            thread.name = name
            thread.start()
        }
    }

    public func awaitTermination() async throws {
        try await control.awaitResult()
    }

    /// Stops both stages: stage 1 sends what it took, stage 2 writes a last cycle, both leave their groups.
    public func stop(graceful: Bool) {
        control.requestStop(graceful: graceful)
        sources.requestStop()
        shards.requestStop()
    }

    public var status: StreamingStatus {
        let source = sources.status.withLock { $0 }
        let shard = shards.status.withLock { $0 }
        let state = shards.totals.withLock { $0 }
        return control.state.withLock { control in
            var status = StreamingStatus(
                // Ready once both stages have joined their groups: input taken earlier waits for stage 2.
                isRecovered: control.isRecovered && source.hasJoined && shard.hasJoined, assigned: source.owned + shard.owned, lag: [:], backlogBytes: 0, logBytes: nil,
                lastCheckpoint: nil, watermark: state.watermark, totals: StreamingTotals(),
                sinceLastPoll: [source.lastPoll, shard.lastPoll].compactMap { $0 }.min().map { .now - $0 },
                sinceLastBatch: [source.lastWork, shard.lastWork].compactMap { $0 }.max().map { .now - $0 },
                failure: control.failure ?? source.failure ?? shard.failure ?? shard.failedShards.first ?? probe.failure,
                isFinished: control.result != nil)
            status.ownedShards = shard.owned.map(\.partition)
            return status
        }
    }

    public var recentBatches: [BatchInfo] { [] }
}

/// Joins the stages' results: the first error, once every stage has finished.
private final class StageCompletion: Sendable {
    private let state: Mutex<(remaining: Int, error: (any Error)?)>

    init(stages: Int) {
        state = Mutex((stages, nil))
    }

    /// The joint result when this was the last stage to finish; nil before.
    func finish(with result: Result<Void, any Error>) -> Result<Void, any Error>? {
        state.withLock { state in
            if case .failure(let error) = result, state.error == nil { state.error = error }
            state.remaining -= 1
            guard state.remaining == 0 else { return nil }
            return state.error.map { .failure($0) } ?? .success(())
        }
    }
}
