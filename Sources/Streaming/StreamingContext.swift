import Foundation
import KafkaIO
import Logging
import Storage
import StreamEngine
import Synchronization

/// Runs a streaming job over Kafka: receives, batches, processes, emits, checkpoints, and recovers.
///
/// Spark Streaming's driver: ``getOrCreate(configuration:logger:crashTrigger:setup:)`` builds the job with
/// `setup`, restores its state from the newest valid checkpoint, and plans the replay of the batches the
/// write-ahead log holds after it (``RecoveryPlan``). ``start()`` replays them (same batch times, same blocks, so
/// the same output), then starts receiving (``ReliableReceiver``). Every batch interval the received blocks form
/// a batch (``BatchDriver``, ``BatchSchedule``); its output is produced to Kafka and delivered before the state is
/// checkpointed (``Checkpointer``).
///
/// - Important: The batch loop and the receiver each run on a dedicated thread, so blocking Kafka and file calls
///   never run on the Swift concurrency pool.
public final class StreamingContext: Sendable {
    private let control: ContextControl
    private let receiver: ReliableReceiver
    private let driver: BatchDriver
    private let tracker: ReceivedBlockTracker
    private let history: BatchHistory
    private let probe: BrokerProbe
    private let logger: Logger
    /// Held while the context lives: one process per checkpoint directory.
    private let lock: DirectoryLock

    private init(
        control: ContextControl, receiver: ReliableReceiver, driver: BatchDriver, tracker: ReceivedBlockTracker,
        history: BatchHistory, probe: BrokerProbe, lock: DirectoryLock, logger: Logger
    ) {
        self.control = control
        self.probe = probe
        self.tracker = tracker
        self.history = history
        self.lock = lock
        self.receiver = receiver
        self.driver = driver
        self.logger = logger
    }

    /// Builds the job with `setup`, then restores it from the newest valid checkpoint in the checkpoint
    /// directory, if there is one, and reads the write-ahead log for the batches to replay.
    ///
    /// The job graph itself is always built by `setup` (Swift closures cannot be serialized); what is restored is
    /// its state: running totals, open windows, the watermark, and the input offsets the state covers.
    ///
    /// - Throws: ``StreamingError`` `.invalidConfiguration` for a bad configuration, `.settingChanged` if a state
    ///   setting differs from the checkpoint's, `.logMismatch` if the checkpoint covers another log, or if
    ///   checkpoints exist but none is readable; a storage error if another process uses the checkpoint directory
    ///   (`.locked`), it is not writable, or the WAL is corrupt in the middle; a ``KafkaError`` for bad client
    ///   properties.
    public static func getOrCreate(
        configuration: StreamingConfiguration, logger: Logger, crashTrigger: CrashTrigger? = nil,
        setup: (StreamGraph) throws -> Void
    ) throws -> StreamingContext {
        try configuration.validate()
        guard !configuration.isExactlyOnce || configuration.isWriteAheadLogEnabled else {
            throw StreamingError(.invalidConfiguration, "exactly-once output needs the write-ahead log: replays must cut the same batches")
        }
        let graph = StreamGraph(
            idleAfterMilliseconds: 10 * Int64(configuration.batchIntervalMilliseconds),
            maxEventTimeAheadMilliseconds: configuration.maxEventTimeAheadMilliseconds,
            parallelism: configuration.engineThreads)
        try setup(graph)
        let restored = try Restored(configuration: configuration, graph: graph, logger: logger)
        let metrics = StreamingMetrics()
        let control = ContextControl()
        let history = BatchHistory()
        let tracker = ReceivedBlockTracker(log: restored.log, metrics: metrics)
        if restored.log != nil {
            for block in restored.plan.trailingBlocks {
                tracker.requeue(block)
            }
            tracker.requeue(assigned: restored.plan.trailingAssignments)
        }
        let (consumer, producer) = try makeClients(configuration: configuration, logger: logger)
        let receiver = ReliableReceiver(
            consumer: consumer, tracker: tracker, configuration: configuration, knownOffsets: restored.plan.knownOffsets,
            logger: logger, metrics: metrics, crashTrigger: crashTrigger, wakeBatchThread: { control.wake() }
        )
        let checkpointer = Checkpointer(
            store: restored.store, sequence: restored.sequence, coverage: restored.plan.coverage,
            settings: configuration.stateSettings, everyBatches: configuration.checkpointEveryBatches, tracker: tracker,
            commitCovered: tracker.isLogging ? nil : { receiver.commitCheckpointed($0) }, metrics: metrics,
            crashTrigger: crashTrigger
        )
        let output = KafkaOutput(
            producer: producer, deadLetterTopic: configuration.deadLetterTopic,
            maxRecordBytes: (configuration.kafka.properties["message.max.bytes"].flatMap { Int($0) } ?? 1_000_000) - 1024,
            metrics: metrics, logger: logger,
            reportWaiting: { reason in control.state.withLock { $0.failure = reason } },
            isStoppingNow: { control.stopRequest == .immediate }
        )
        var transactions: BatchTransactions?
        if configuration.isExactlyOnce {
            let batchTransactions = BatchTransactions(
                producer: producer, groupID: configuration.groupID, metrics: metrics, logger: logger, crashTrigger: crashTrigger)
            try batchTransactions.recover(configuration: configuration, logger: logger)
            transactions = batchTransactions
        }
        let driver = BatchDriver(
            graph: graph, plan: restored.plan, checkpoint: restored.checkpoint, staleLog: restored.staleLog,
            configuration: configuration, tracker: tracker, checkpointer: checkpointer, output: output, transactions: transactions,
            receiver: receiver, consumer: consumer, control: control, history: history, metrics: metrics, logger: logger,
            crashTrigger: crashTrigger
        )
        return StreamingContext(
            control: control, receiver: receiver, driver: driver, tracker: tracker, history: history,
            probe: BrokerProbe(producer: producer, bootstrapServers: configuration.kafka.bootstrapServers), lock: restored.lock,
            logger: logger)
    }

    private static func makeClients(configuration: StreamingConfiguration, logger: Logger) throws -> (KafkaConsumer, KafkaProducer) {
        let consumer = try KafkaConsumer(
            config: KafkaConsumerConfig(
                common: configuration.kafka, groupID: configuration.groupID,
                sessionTimeoutMilliseconds: configuration.sessionTimeoutMilliseconds, groupInstanceID: configuration.groupInstanceID
            ),
            logger: logger
        )
        // Output waits out a broker outage of any length (reported by `status`), never a restart loop: a record that
        // librdkafka gave up on would stop the service, and every restart would replay the same batch.
        let producer = try KafkaProducer(
            config: configuration.isExactlyOnce
                ? BatchTransactions.producerConfig(configuration, transactionalID: configuration.groupID)
                : KafkaProducerConfig(common: configuration.kafka, deliveryTimeoutMilliseconds: 0),
            logger: logger)
        return (consumer, producer)
    }

    /// A snapshot of progress and health.
    /// A log sync that takes longer makes the status unhealthy, naming the storage (``ReceivedBlockTracker/stalledSync(after:)``).
    static let syncStallLimit = Duration.seconds(5)

    /// Read by every probe: it takes no lock that storage or a running batch holds across slow calls.
    public var status: StreamingStatus {
        let receiverStatus = receiver.status.withLock { $0 }
        // Not the recent batches: status is read by every probe request.
        let progress = history.state.withLock {
            (lag: $0.lag, lastCheckpoint: $0.lastCheckpoint, watermark: $0.watermark, totals: $0.totals)
        }
        let logBytes = tracker.logBytesOnDisk
        return control.state.withLock { control in
            StreamingStatus(
                isRecovered: control.isRecovered,
                assigned: receiverStatus.assigned,
                lag: progress.lag, backlogBytes: tracker.backlogBytes, heldInputBytes: tracker.heldBytes, logBytes: logBytes,
                lastCheckpoint: progress.lastCheckpoint, watermark: progress.watermark, totals: progress.totals,
                sinceLastPoll: receiverStatus.lastPoll.map { .now - $0 },
                sinceLastBatch: control.lastBatch.map { .now - $0 },
                failure: control.failure ?? receiverStatus.failure ?? tracker.stalledSync(after: Self.syncStallLimit) ?? probe.failure,
                isFinished: control.result != nil
            )
        }
    }

    /// The most recent batches (up to 120), oldest first.
    public var recentBatches: [BatchInfo] {
        history.state.withLock { $0.recent }
    }

    /// Replays the batches recovered from the WAL, then starts receiving and running batches.
    ///
    /// - Throws: ``StreamingError`` `.invalidState` if the context was started before.
    public func start() throws {
        try control.state.withLock { control in
            guard !control.isStarted else { throw StreamingError(.invalidState, "the context was already started") }
            control.isStarted = true
        }
        probe.start()
        let thread = Thread { [driver, control, probe, logger] in
            let result = Result { try driver.run() }
            probe.stop()
            if case .failure(let error) = result {
                logger.error("streaming stopped on an error", metadata: ["stream.error": "\(error)"])
            }
            control.finish(with: result)
        }
        thread.name = "sluice-batches"
        thread.start()
    }

    /// Waits until the context stops: after ``stop(graceful:)``, at the end of input with `stopsAtEnd`, or on a
    /// fatal error, which it throws. Cancelling the waiting task ends the wait with `CancellationError`; the
    /// context itself goes on until stopped.
    public func awaitTermination() async throws {
        try await control.awaitResult()
    }

    /// Stops the context. A graceful stop stores and processes everything received so far, checkpoints and commits;
    /// an immediate stop only checkpoints what completed batches already produced.
    public func stop(graceful: Bool = true) {
        control.requestStop(graceful: graceful)
        receiver.requestStop()
    }
}
