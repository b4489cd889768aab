import CoreMetrics
import Foundation
import KafkaIO
import Logging
import Metrics
import Storage
import StreamEngine
import Synchronization

/// Runs a streaming job over Kafka: receives, batches, processes, emits, checkpoints, and recovers.
///
/// Spark Streaming's driver: ``getOrCreate(configuration:logger:crashTrigger:setup:)`` builds the job with
/// `setup`, restores its state from the newest valid checkpoint, and plans the replay of the batches the
/// write-ahead log holds after it. ``start()`` replays them (same batch times, same blocks, so the same output),
/// then starts receiving. Every batch interval the received blocks form a batch; its output is produced to Kafka
/// and delivered before the state is checkpointed.
///
/// - Important: The batch loop and the receiver each run on a dedicated thread, so blocking Kafka and file calls
///   never run on the Swift concurrency pool.
public final class StreamingContext: Sendable {
    private let configuration: StreamingConfiguration
    private let logger: Logger
    private let metrics = StreamingMetrics()
    private let consumer: KafkaConsumer
    private let producer: KafkaProducer
    private let tracker: ReceivedBlockTracker
    private let checkpoints: CheckpointStore
    private let receiver: ReliableReceiver
    private let crashTrigger: CrashTrigger?
    private let driver: DriverState
    private let control = Mutex(Control())

    private struct Control {
        var isStarted = false
        var stopRequest: Bool?  // graceful?
        var isRecovered = false
        var lastBatch: ContinuousClock.Instant?
        var result: Result<Void, any Error>?
        var waiters: [CheckedContinuation<Void, any Error>] = []
        var failure: String?
    }

    /// The job and the progress owned by the batch thread.
    ///
    /// `@unchecked Sendable` because only the batch thread touches it after ``start()``; before that, only the
    /// thread calling ``getOrCreate(configuration:logger:crashTrigger:setup:)``.
    private final class DriverState: @unchecked Sendable {
        let graph: StreamGraph
        var replay: [(time: Int64, blocks: [Block], position: WALPosition)]
        var trailingBlocks: [Block]
        var lastBatchTime: Int64
        var walPosition: WALPosition?
        var offsets: [KafkaPartition: Int64]
        var checkpointSequence: UInt64
        var batchesSinceCheckpoint = 0
        /// The WAL position of the newest checkpoint on disk; the log is truncated before it once a newer one exists.
        var previousCheckpointPosition: WALPosition?
        /// A WAL directory left by a run with the log on, while this run has it off.
        var staleLogDirectory: String?
        var lastProgressLog = ContinuousClock.now
        var recordsSinceProgressLog = 0

        init(graph: StreamGraph, checkpoint: DriverCheckpoint?, sequence: UInt64) {
            self.graph = graph
            replay = []
            trailingBlocks = []
            lastBatchTime = checkpoint?.batchTime ?? 0
            walPosition = checkpoint?.walPosition
            previousCheckpointPosition = checkpoint?.walPosition
            offsets = checkpoint?.offsets ?? [:]
            checkpointSequence = sequence
        }
    }

    /// Builds the job with `setup`, then restores it from the newest valid checkpoint in the checkpoint
    /// directory, if there is one, and reads the write-ahead log for the batches to replay.
    ///
    /// The job graph itself is always built by `setup` (Swift closures cannot be serialized); what is restored is
    /// its state: running totals, open windows, the watermark, and the input offsets the state covers.
    ///
    /// - Throws: A storage error if the checkpoint directory is not writable or the WAL is corrupt in the middle; a
    ///   ``StreamingError`` if checkpoints exist but none is readable; a ``KafkaError`` for bad client properties.
    public static func getOrCreate(
        configuration: StreamingConfiguration, logger: Logger, crashTrigger: CrashTrigger? = nil,
        setup: (StreamGraph) throws -> Void
    ) throws -> StreamingContext {
        let graph = StreamGraph()
        try setup(graph)
        let root = configuration.checkpointDirectory
        let checkpoints = try CheckpointStore(directory: root + "/checkpoints")
        var checkpoint: DriverCheckpoint?
        var sequence: UInt64 = 0
        if let loaded = try checkpoints.loadLatest() {
            for path in loaded.skipped {
                logger.warning("skipped an unreadable checkpoint; using an older one", metadata: ["checkpoint.path": "\(path)"])
            }
            let decoded = try DriverCheckpoint(decoding: loaded.payload)
            try graph.restore(from: decoded.graphState)
            checkpoint = decoded
            sequence = loaded.sequence
            logger.info("restored state from checkpoint", metadata: [
                "checkpoint.sequence": "\(loaded.sequence)", "checkpoint.batch_time": "\(decoded.batchTime)",
            ])
        }
        let driver = DriverState(graph: graph, checkpoint: checkpoint, sequence: sequence)
        let metrics = StreamingMetrics()
        var log: WriteAheadLog?
        let logDirectory = root + "/wal"
        if configuration.isWriteAheadLogEnabled || FileManager.default.fileExists(atPath: logDirectory) {
            let (opened, recovery) = try WriteAheadLog.open(
                directory: logDirectory,
                options: .init(skipCorruptEntries: configuration.skipsCorruptWriteAheadLog)
            )
            if let position = driver.walPosition, let oldest = opened.segmentNumbers.first, oldest > position.segment {
                throw StreamingError(
                    .corruptLog,
                    "the checkpoint continues at WAL \(position), but the log starts at segment \(oldest): entries it needs are gone"
                )
            }
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
            try planReplay(of: recovery.entries, into: driver)
            if configuration.isWriteAheadLogEnabled {
                log = opened
            } else {
                opened.close()
                driver.staleLogDirectory = logDirectory
            }
        }
        let tracker = ReceivedBlockTracker(log: log, metrics: metrics)
        if log != nil {
            for block in driver.trailingBlocks {
                tracker.requeue(block)
            }
            driver.trailingBlocks = []
        }
        var knownOffsets = driver.offsets
        knownOffsets.advance(past: driver.replay.flatMap(\.blocks) + driver.trailingBlocks + tracker.queuedBlocks)
        let consumer = try KafkaConsumer(
            config: KafkaConsumerConfig(
                common: configuration.kafka, groupID: configuration.groupID,
                sessionTimeoutMilliseconds: configuration.sessionTimeoutMilliseconds
            ),
            logger: logger
        )
        let producer = try KafkaProducer(config: KafkaProducerConfig(common: configuration.kafka), logger: logger)
        let receiver = ReliableReceiver(
            consumer: consumer, tracker: tracker, configuration: configuration, knownOffsets: knownOffsets,
            logger: logger, metrics: metrics, crashTrigger: crashTrigger
        )
        return StreamingContext(
            configuration: configuration, logger: logger, consumer: consumer, producer: producer, tracker: tracker,
            checkpoints: checkpoints, receiver: receiver, crashTrigger: crashTrigger, driver: driver
        )
    }

    private init(
        configuration: StreamingConfiguration, logger: Logger, consumer: KafkaConsumer, producer: KafkaProducer,
        tracker: ReceivedBlockTracker, checkpoints: CheckpointStore, receiver: ReliableReceiver,
        crashTrigger: CrashTrigger?, driver: DriverState
    ) {
        self.configuration = configuration
        self.logger = logger
        self.consumer = consumer
        self.producer = producer
        self.tracker = tracker
        self.checkpoints = checkpoints
        self.receiver = receiver
        self.crashTrigger = crashTrigger
        self.driver = driver
    }

    /// Groups the log entries after the checkpoint into the batches they were allocated to; blocks after the last
    /// allocation go to the next batch.
    private static func planReplay(of entries: [WALEntry], into driver: DriverState) throws {
        var blocks: [Block] = []
        for entry in entries where driver.walPosition.map({ entry.position > $0 }) ?? true {
            switch try WALRecord(decoding: entry.payload, at: entry.position) {
            case .block(let block):
                blocks.append(block)
            case .batchAllocated(let time):
                driver.replay.append((time, blocks, entry.position))
                blocks = []
            }
        }
        driver.trailingBlocks = blocks
    }

    /// A snapshot of progress and health.
    public var status: StreamingStatus {
        let receiverStatus = receiver.status.withLock { $0 }
        return control.withLock { control in
            StreamingStatus(
                isRecovered: control.isRecovered,
                assignedPartitions: receiverStatus.assigned.count,
                sinceLastPoll: receiverStatus.lastPoll.map { .now - $0 },
                sinceLastBatch: control.lastBatch.map { .now - $0 },
                failure: control.failure ?? receiverStatus.failure,
                isFinished: control.result != nil
            )
        }
    }

    /// Replays the batches recovered from the WAL, then starts receiving and running batches.
    ///
    /// - Throws: ``StreamingError`` `.invalidState` if the context was started before.
    public func start() throws {
        try control.withLock { control in
            guard !control.isStarted else { throw StreamingError(.invalidState, "the context was already started") }
            control.isStarted = true
        }
        let thread = Thread { [self] in
            let result = Result { try runDriver() }
            if case .failure(let error) = result {
                logger.error("streaming stopped on an error", metadata: ["stream.error": "\(error)"])
            }
            let waiters = control.withLock { control in
                control.result = result
                defer { control.waiters = [] }
                return control.waiters
            }
            for waiter in waiters {
                waiter.resume(with: result)
            }
        }
        thread.name = "sluice-batches"
        thread.start()
    }

    /// Waits until the context stops: after ``stop(graceful:)``, at the end of input with `stopsAtEnd`, or on a
    /// fatal error, which it throws.
    public func awaitTermination() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let result: Result<Void, any Error>? = control.withLock { control in
                if control.result == nil { control.waiters.append(continuation) }
                return control.result
            }
            if let result { continuation.resume(with: result) }
        }
    }

    /// Stops the context. A graceful stop stores and processes everything received so far, checkpoints and commits;
    /// an immediate stop only checkpoints what completed batches already produced.
    public func stop(graceful: Bool = true) {
        control.withLock { control in
            if control.stopRequest == nil || !graceful { control.stopRequest = graceful }
        }
        receiver.requestStop()
    }

    // MARK: The batch thread

    private func runDriver() throws {
        let recovered = driver.replay
        driver.replay = []
        for batch in recovered {
            guard control.withLock({ $0.stopRequest }) == nil else {
                // What is not replayed stays in the WAL for the next start.
                consumer.close()
                return
            }
            logger.info("replaying a batch from the write-ahead log", metadata: [
                "stream.batch_time": "\(batch.time)", "stream.blocks": "\(batch.blocks.count)",
            ])
            try runBatch(time: batch.time, blocks: batch.blocks, position: batch.position, forceCheckpoint: true)
        }
        try removeStaleLog()
        if configuration.stopsAtEnd {
            try receiver.captureEndOffsets()
        }
        let receiverDone = Atomic<Bool>(false)
        let receiverThread = Thread { [receiver] in
            receiver.run()
            receiverDone.store(true, ordering: .releasing)
        }
        receiverThread.name = "sluice-receiver"
        receiverThread.start()
        control.withLock { $0.isRecovered = true }
        // Whatever ends the loop, the receiver finishes before the consumer closes (which runs its revoke handler).
        defer {
            receiver.requestStop()
            while !receiverDone.load(ordering: .acquiring) { Thread.sleep(forTimeInterval: 0.01) }
            consumer.close()
        }

        let interval = Int64(configuration.batchIntervalMilliseconds)
        var nextTime = max(driver.lastBatchTime + interval, (Self.wallClockMilliseconds() / interval + 1) * interval)
        while true {
            // Wait for the batch time, but never longer than one interval: batch times only move forward, even
            // when the wall clock steps back.
            let deadline = ContinuousClock.now + .milliseconds(min(max(nextTime - Self.wallClockMilliseconds(), 0), interval))
            var ending: Bool? = nil  // graceful?
            while ending == nil, ContinuousClock.now < deadline {
                ending = control.withLock { $0.stopRequest }
                if ending == nil, configuration.stopsAtEnd, receiver.status.withLock({ $0.reachedEnd }) {
                    ending = true
                }
                if ending == nil { Thread.sleep(forTimeInterval: 0.01) }
            }
            if let failure = receiver.status.withLock({ $0.failure }) {
                throw StreamingError(.receiver, failure)
            }
            if let graceful = ending {
                receiver.requestStop()
                while !receiverDone.load(ordering: .acquiring) { Thread.sleep(forTimeInterval: 0.01) }
                guard graceful else { break }
                let (blocks, position) = try tracker.allocateBatch(time: nextTime)
                try runBatch(time: nextTime, blocks: blocks, position: position, forceCheckpoint: true)
                if configuration.stopsAtEnd, receiver.status.withLock({ $0.reachedEnd }) {
                    // The checkpoint above keeps the open windows and the real watermark, so a later run over new
                    // input completes them (and emits them again, with their final counts).
                    try emit(driver.graph.flushWindows())
                }
                break
            }
            metrics.batchSchedulingDelay.recordMilliseconds(max(0, Self.wallClockMilliseconds() - nextTime))
            let (blocks, position) = try tracker.allocateBatch(time: nextTime)
            try runBatch(time: nextTime, blocks: blocks, position: position, forceCheckpoint: false)
            nextTime = max(nextTime + interval, (Self.wallClockMilliseconds() / interval) * interval)
        }
        logger.info("streaming stopped", metadata: ["stream.last_batch_time": "\(driver.lastBatchTime)"])
    }

    /// With the WAL switched off, a log left by an earlier run has been replayed (and checkpointed) by now: remove it
    /// so that a later run with the WAL on does not replay it again.
    private func removeStaleLog() throws {
        guard !configuration.isWriteAheadLogEnabled, let staleLog = driver.staleLogDirectory else { return }
        if !driver.trailingBlocks.isEmpty {
            let time = driver.lastBatchTime + Int64(configuration.batchIntervalMilliseconds)
            try runBatch(time: time, blocks: driver.trailingBlocks, position: nil, forceCheckpoint: true)
        }
        driver.trailingBlocks = []
        try FileManager.default.removeItem(atPath: staleLog)
        logger.info("removed the write-ahead log of an earlier run", metadata: ["wal.directory": "\(staleLog)"])
    }

    private func runBatch(time: Int64, blocks: consuming [Block], position: WALPosition?, forceCheckpoint: Bool) throws {
        let started = ContinuousClock.now
        let blockCount = blocks.count
        var offsets = driver.offsets
        offsets.advance(past: blocks)
        // The graph takes the blocks, so that each can be released as soon as it has been read.
        let output = driver.graph.runBatch(time: time, blocks: blocks)
        try emit(output)
        if !output.malformed.isEmpty {
            try divertMalformed(output.malformed)
        }
        CrashPoint.reach(.afterOutputFlush, armed: crashTrigger)
        driver.lastBatchTime = time
        driver.offsets = offsets
        if let position { driver.walPosition = position }
        metrics.lateRecords.increment(by: output.lateRecords)
        if blockCount > 0 || !output.records.isEmpty {
            driver.batchesSinceCheckpoint += 1
        }
        if driver.batchesSinceCheckpoint > 0, forceCheckpoint || driver.batchesSinceCheckpoint >= configuration.checkpointEveryBatches {
            try writeCheckpoint()
        }
        metrics.batchesCompleted.increment()
        let duration = ContinuousClock.now - started
        metrics.batchProcessingDuration.record(duration: duration)
        logger.debug("batch completed", metadata: [
            "stream.batch_time": "\(time)", "stream.records": "\(output.recordsIn)", "stream.blocks": "\(blockCount)",
            "stream.processing_ms": "\(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)",
            "stream.backlog_bytes": "\(tracker.backlogBytes)",
        ])
        control.withLock { $0.lastBatch = .now }
        logProgress(records: output.recordsIn, batchTime: time)
    }

    private func emit(_ output: BatchOutput) throws {
        guard !output.records.isEmpty else { return }
        var preparedTopic: String?
        for record in output.records {
            if record.topic != preparedTopic {
                producer.prepare(topic: record.topic, timeout: .seconds(1))
                preparedTopic = record.topic
            }
            try producer.send(KafkaProducerRecord(
                topic: record.topic, key: record.key, value: record.value,
                headers: record.headers.map { KafkaHeader(name: $0.0, value: $0.1) }
            ))
        }
        try awaitDelivery(of: "batch output")
        metrics.outputRecords.increment(by: output.records.count)
    }

    /// Counts and logs malformed records (one line per batch, so bad input cannot flood the log) and copies them to
    /// the dead-letter topic when one is configured, with their origin in headers.
    private func divertMalformed(_ records: [InputRecord]) throws {
        metrics.malformedRecords.increment(by: records.count)
        let first = records[0]
        logger.warning("skipped malformed records (value is not valid UTF-8)", metadata: [
            "stream.malformed": "\(records.count)", "kafka.topic": "\(first.topic)",
            "kafka.partition": "\(first.partition)", "kafka.offset": "\(first.offset)",
        ])
        guard let topic = configuration.deadLetterTopic else { return }
        producer.prepare(topic: topic, timeout: .seconds(1))
        for record in records {
            try producer.send(KafkaProducerRecord(
                topic: topic, key: record.key, value: record.value,
                headers: [
                    KafkaHeader(name: "sluice-source", value: Array("\(record.topic)/\(record.partition)/\(record.offset)".utf8)),
                    KafkaHeader(name: "sluice-error", value: Array("invalid UTF-8".utf8)),
                ],
                timestamp: record.timestamp
            ))
        }
        try awaitDelivery(of: "dead-letter records")
    }

    /// Flushes the producer, waiting as long as librdkafka keeps retrying (a broker outage) unless an immediate
    /// stop is requested; a delivery that librdkafka gave up on is an error.
    private func awaitDelivery(of what: String) throws {
        while true {
            do {
                try producer.flush(timeout: .seconds(10))
                control.withLock { $0.failure = nil }
                return
            } catch let error as KafkaError where error.kind == .timedOut {
                control.withLock { $0.failure = "\(what) not yet delivered: \(error)" }
                logger.warning("output is waiting for the brokers", metadata: ["kafka.error": "\(error)"])
                if control.withLock({ $0.stopRequest }) == false {
                    throw StreamingError(.output, "\(what) was not delivered before an immediate stop", underlying: error)
                }
            } catch {
                throw StreamingError(.output, "\(what) was not delivered", underlying: error)
            }
        }
    }

    /// Writes the state and progress atomically, then drops the log segments it covers and, without a WAL,
    /// commits the offsets it covers.
    private func writeCheckpoint() throws {
        let checkpoint = DriverCheckpoint(
            batchTime: driver.lastBatchTime, walPosition: driver.walPosition, offsets: driver.offsets,
            graphState: driver.graph.checkpoint()
        )
        driver.checkpointSequence += 1
        try checkpoints.write(checkpoint.encoded, sequence: driver.checkpointSequence)
        driver.batchesSinceCheckpoint = 0
        metrics.checkpointsWritten.increment()
        metrics.lastCheckpointTime.record(Double(Self.wallClockMilliseconds()) / 1000)
        CrashPoint.reach(.afterCheckpoint, armed: crashTrigger)
        // Two checkpoints are kept; the log keeps everything after the older one, so falling back to it on a
        // damaged newest checkpoint finds every entry it needs.
        if let previous = driver.previousCheckpointPosition {
            try tracker.truncateLog(coveredBy: previous)
        }
        driver.previousCheckpointPosition = driver.walPosition
        if !tracker.isLogging {
            do {
                try metrics.commitDuration.measure { try consumer.commit(driver.offsets) }
            } catch {
                metrics.commitFailures.increment()
                logger.warning("offset commit after checkpoint failed; will retry", metadata: ["kafka.error": "\(error)"])
            }
        }
    }

    private func logProgress(records: Int, batchTime: Int64) {
        driver.recordsSinceProgressLog += records
        let elapsed = ContinuousClock.now - driver.lastProgressLog
        guard elapsed >= .seconds(5) else { return }
        let lag = consumer.lag()
        for (partition, value) in lag {
            metrics.lag(topic: partition.topic, partition: partition.partition).record(value)
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        logger.info("progress", metadata: [
            "stream.records_per_second": "\(Int(Double(driver.recordsSinceProgressLog) / seconds))",
            "stream.lag": "\(lag.values.reduce(0, +))",
            "stream.batch_time": "\(batchTime)",
        ])
        driver.recordsSinceProgressLog = 0
        driver.lastProgressLog = .now
    }

    static func wallClockMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}
