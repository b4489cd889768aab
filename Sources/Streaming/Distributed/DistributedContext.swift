import CoreMetrics
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
    /// `<group>-members`: each instance's owned shards and HTTP address (``ShardDirectory``), compacted.
    public var membersTopic: String
    /// Where this instance's state queries are answered (`SLUICE_ADVERTISED_URL`); nil: nowhere (HTTP is off).
    public var advertisedURL: String?
    /// `<group>-plans`: a group without members whose committed offsets are stage 1's planned batch ends.
    public var plansGroupID: String

    public init(
        groupID: String, shards: Int32, instanceID: String, advertisedURL: String? = nil, job: WordCountJob.Configuration
    ) throws(StreamEngineError) {
        self.advertisedURL = advertisedURL
        membersTopic = "\(groupID)-members"
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
///
/// A client that fails for good (a fatal consumer error, such as a static member fenced by the group, or a fenced
/// transactional producer) costs the stages, not the process: both stages stop, dropping their uncommitted work,
/// and a new pair with new clients (and, with exactly-once output, a new transactional incarnation) joins the groups
/// as fresh members, as Kafka Streams replaces a stream thread. Any other error stops the instance.
public final class DistributedContext: StreamingRuntime {
    /// One pair of stages with their clients.
    private struct Stages: Sendable {
        let sources: SourceStage
        let shards: ShardStage
        /// Why each stage's output is not delivered yet, if it is not (each stage reports its own: one stage's
        /// delivery must not clear the other's report).
        let sourcesWaiting: DeliveryWait
        let shardsWaiting: DeliveryWait
    }

    /// Why one stage's output is not delivered yet, if it is not (``KafkaOutput``'s report).
    private final class DeliveryWait: Sendable {
        private let reason = Mutex<String?>(nil)

        var current: String? { reason.withLock { $0 } }

        func report(_ reason: String?) {
            self.reason.withLock { $0 = reason }
        }
    }

    /// The stages running now, in a box of their own, which the shard directory reads too.
    private final class CurrentStages: Sendable {
        let stages: Mutex<Stages>

        init(_ stages: Stages) {
            self.stages = Mutex(stages)
        }

        func withLock<Result>(_ body: (inout Stages) -> Result) -> Result {
            stages.withLock { body(&$0) }
        }
    }

    private let current: CurrentStages
    private let directory: ShardDirectory
    private let makeStages: @Sendable () throws -> Stages
    private let control = ContextControl()
    private let probe: BrokerProbe
    private let logger: Logger
    private let metrics: StreamingMetrics
    /// One process per data directory (the shard checkpoints), as in standalone mode.
    private let lock: DirectoryLock

    public init(configuration: StreamingConfiguration, setup: DistributedSetup, logger: Logger, crashTrigger: CrashTrigger? = nil) throws {
        try configuration.validate()
        lock = try DirectoryLock(directory: configuration.checkpointDirectory)
        var logger = logger
        logger[metadataKey: "instance.id"] = "\(setup.instanceID)"
        self.logger = logger
        let metrics = StreamingMetrics()
        self.metrics = metrics
        let control = control
        // For metadata only (the internal topics, the broker probe): outlives every pair of stages.
        let metadataProducer = try KafkaProducer(config: KafkaProducerConfig(common: configuration.kafka), logger: logger)
        try InternalTopics.ensure(InternalTopics.distributed(setup), producer: metadataProducer, logger: logger) { topic, count in
            "SLUICE_SHARDS is \(topic.partitions) but \(topic.name) has \(count) partitions: the shard count is fixed for the life of the group's state (set SLUICE_SHARDS=\(count), or use a new SLUICE_GROUP_ID)"
        }
        var settings = configuration.stateSettings
        settings["SLUICE_SHARDS"] = String(setup.shards.count)
        try PinnedSettings.pin(
            settings, topic: setup.configTopic, kafka: configuration.kafka, groupID: "\(setup.shardGroupID)-restore", logger: logger)
        probe = BrokerProbe(producer: metadataProducer, bootstrapServers: configuration.kafka.bootstrapServers)
        makeStages = { [logger] in
            let sourcesWaiting = DeliveryWait()
            let shardsWaiting = DeliveryWait()
            let makeOutput = { (producer: KafkaProducer, wait: DeliveryWait) in
                KafkaOutput(
                    producer: producer, deadLetterTopic: configuration.deadLetterTopic,
                    maxRecordBytes: (configuration.kafka.properties["message.max.bytes"].flatMap { Int($0) } ?? 1_000_000) - 1024,
                    metrics: metrics, logger: logger, reportWaiting: { wait.report($0) },
                    isStoppingNow: { control.stopRequest == .immediate })
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
            // At least once, batch plans are committed in a group of their own (exactly once, nothing is planned).
            let plans = configuration.isExactlyOnce ? nil : try KafkaConsumer(config: consumerConfig(setup.plansGroupID, nil), logger: logger)
            return Stages(
                sources: SourceStage(
                    consumer: sourceConsumer, plans: plans, output: makeOutput(sourceProducer, sourcesWaiting), setup: setup, configuration: configuration,
                    logger: logger, metrics: metrics, crashTrigger: crashTrigger, transactions: sourceTransactions),
                shards: ShardStage(
                    consumer: shardConsumer,
                    restoreConsumer: try KafkaConsumer(config: consumerConfig("\(setup.shardGroupID)-restore", nil), logger: logger),
                    output: makeOutput(shardProducer, shardsWaiting), setup: setup, configuration: configuration, logger: logger, metrics: metrics,
                    crashTrigger: crashTrigger, transactions: shardTransactions),
                sourcesWaiting: sourcesWaiting, shardsWaiting: shardsWaiting)
        }
        let current = CurrentStages(try makeStages())
        self.current = current
        directory = try ShardDirectory(
            topic: setup.membersTopic, instanceID: setup.instanceID, address: setup.advertisedURL ?? "-", kafka: configuration.kafka,
            groupID: "\(setup.shardGroupID)-restore", producer: metadataProducer, logger: logger
        ) { current.withLock { $0.shards.totals.ownedShards } }
    }

    public func start() throws {
        try control.state.withLock { control in
            guard !control.isStarted else { throw StreamingError(.invalidState, "the context was already started") }
            control.isStarted = true
            control.isRecovered = true
        }
        probe.start()
        try directory.start()
        run(current.withLock { $0 })
    }

    /// Runs a pair of stages on a thread each; once both have finished, replaces them after a client's fatal error
    /// (unless a stop was requested), or else ends the context with their result.
    private func run(_ stages: Stages) {
        let completion = StageCompletion(stages: 2)
        let threads: [(String, @Sendable () throws -> Void)] = [
            ("sluice-sources", { try stages.sources.run() }), ("sluice-shards", { try stages.shards.run() }),
        ]
        for (name, stage) in threads {
            let thread = Thread { [self] in
                let result = Result { try stage() }
                if case .failure(let error) = result {
                    logger.error("a stage stopped on an error", metadata: ["stage": "\(name)", "stream.error": "\(error)"])
                    // Reported by /healthz while the other stage finishes (a fenced producer names `_FENCED` here).
                    control.state.withLock { $0.failure = $0.failure ?? "\(name): \(error)" }
                    // One stage failing stops the other: both leave their groups.
                    stages.sources.requestStop()
                    stages.shards.requestStop()
                }
                guard let result = completion.finish(with: result) else { return }
                if case .failure(let error) = result, Self.isClientFailure(error), control.stopRequest == .none {
                    do {
                        try replace(after: error)
                        return
                    } catch {
                        logger.error("the stages could not be replaced", metadata: ["stream.error": "\(error)"])
                    }
                }
                probe.stop()
                directory.stop()
                control.finish(with: result)
            }
            thread.name = name
            thread.start()
        }
    }

    /// Builds and starts new stages with new clients in place of the ones a fatal client error ended.
    private func replace(after error: any Error) throws {
        logger.warning("a client failed for good: replacing both stages' clients, the instance rejoins as a new member", metadata: [
            "stream.error": "\(error)",
        ])
        metrics.clientReplacements.increment()
        let stages = try makeStages()
        current.withLock { $0 = stages }
        control.state.withLock { $0.failure = nil }
        // A stop requested while they were built reaches them here.
        switch control.stopRequest {
        case .none: break
        case .graceful: stop(graceful: true)
        case .immediate: stop(graceful: false)
        }
        run(stages)
    }

    /// Whether `error` is, or wraps, a client's fatal error, which a new client does not have.
    static func isClientFailure(_ error: any Error) -> Bool {
        if let kafka = error as? KafkaError { return kafka.isFatal }
        if let streaming = error as? StreamingError, let underlying = streaming.underlying { return isClientFailure(underlying) }
        return false
    }

    public func awaitTermination() async throws {
        try await control.awaitResult()
    }

    /// Stops both stages: stage 1 sends what it took, stage 2 writes a last cycle, both leave their groups.
    public func stop(graceful: Bool) {
        control.requestStop(graceful: graceful)
        let stages = current.withLock { $0 }
        stages.sources.requestStop()
        stages.shards.requestStop()
    }

    public var status: StreamingStatus {
        let stages = current.withLock { $0 }
        let source = stages.sources.status.withLock { $0 }
        let shard = stages.shards.status.withLock { $0 }
        let watermark = stages.shards.totals.watermark
        return control.state.withLock { control in
            var status = StreamingStatus(
                // Ready once both stages have joined their groups: input taken earlier waits for stage 2.
                isRecovered: control.isRecovered && source.hasJoined && shard.hasJoined, assigned: source.owned + shard.owned,
                lag: source.lag.merging(shard.lag) { $1 }, backlogBytes: 0, logBytes: nil, lastCheckpoint: nil, watermark: watermark,
                // Batches: stage 1's sent batches (one per input partition and cut); output: stage 2's records.
                totals: StreamingTotals(batches: source.batches, records: source.records, outputRecords: shard.outputRecords),
                sinceLastPoll: [source.lastPoll, shard.lastPoll].compactMap { $0 }.min().map { .now - $0 },
                sinceLastBatch: [source.lastWork, shard.lastWork].compactMap { $0 }.max().map { .now - $0 },
                failure: control.failure ?? source.failure ?? shard.failure ?? stages.sourcesWaiting.current ?? stages.shardsWaiting.current
                    ?? shard.failedShards.first ?? probe.failure,
                isFinished: control.result != nil)
            status.ownedShards = shard.owned.map(\.partition)
            return status
        }
    }

    public var recentBatches: [BatchInfo] { [] }

    /// The totals of the shards this instance owns now, for state queries.
    public var shardTotals: ShardTotals { current.withLock { $0.shards.totals } }

    /// The instance that announced owning `shard` (not this one), with the address of its state queries ("-": it
    /// serves none); nil if no other instance has announced it.
    public func owner(of shard: Int32) -> (instanceID: String, address: String)? {
        directory.owner(of: shard).map { ($0.instanceID, $0.address) }
    }
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
