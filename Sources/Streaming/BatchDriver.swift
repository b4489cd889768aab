import CoreMetrics
import Dispatch
import Foundation
import KafkaIO
import Logging
import Metrics
import StreamEngine
import Synchronization

/// The batch thread: replays the recovered batches, consumes a log left by a run with the log on (when this run
/// has it off), then runs one batch per interval, as ``BatchSchedule`` decides, until a stop.
///
/// `@unchecked Sendable` because only the batch thread touches it after ``StreamingContext/start()``; before that,
/// only the thread that built it.
final class BatchDriver: @unchecked Sendable {
    /// A log left by a run with the log on, while this run has it off: consumed, then retired and deleted.
    struct StaleLog {
        var directory: String
        var logID: UInt64
    }

    private let graph: StreamGraph
    private let configuration: StreamingConfiguration
    private let tracker: ReceivedBlockTracker
    private let checkpointer: Checkpointer
    private let output: KafkaOutput
    /// Exactly-once output: each batch's output in a transaction with its progress; nil: at-least-once.
    private let transactions: BatchTransactions?
    private let receiver: ReliableReceiver
    private let consumer: KafkaConsumer
    private let control: ContextControl
    private let history: BatchHistory
    private let metrics: StreamingMetrics
    private let logger: Logger
    private let crashTrigger: CrashTrigger?
    private var plan: RecoveryPlan
    private let staleLog: StaleLog?
    private let receiverDone = DispatchSemaphore(value: 0)
    private var isReceiverRunning = false
    private var lastBatchTime: Int64
    private var offsets: [KafkaPartition: Int64]
    private var progress = ProgressLog()
    /// With `stopsAtEnd`: reads the last blocks while a batch runs, once the input's end is reached.
    private var readAheadWorker: ReadAheadWorker?

    init(
        graph: StreamGraph, plan: RecoveryPlan, checkpoint: DriverCheckpoint?, staleLog: StaleLog?,
        configuration: StreamingConfiguration, tracker: ReceivedBlockTracker, checkpointer: Checkpointer,
        output: KafkaOutput, transactions: BatchTransactions?, receiver: ReliableReceiver, consumer: KafkaConsumer, control: ContextControl,
        history: BatchHistory, metrics: StreamingMetrics, logger: Logger, crashTrigger: CrashTrigger?
    ) {
        self.graph = graph
        self.plan = plan
        self.staleLog = staleLog
        self.configuration = configuration
        self.tracker = tracker
        self.checkpointer = checkpointer
        self.output = output
        self.transactions = transactions
        self.receiver = receiver
        self.consumer = consumer
        self.control = control
        self.history = history
        self.metrics = metrics
        self.logger = logger
        self.crashTrigger = crashTrigger
        lastBatchTime = checkpoint?.batchTime ?? 0
        offsets = checkpoint?.offsets ?? [:]
    }

    /// Runs until a stop, the end of input (with `stopsAtEnd`) or an error; the consumer is closed at the end.
    func run() throws {
        // Only once the receiver has stored the input's last block is a core free for it (see ``ReadAheadWorker``).
        if configuration.stopsAtEnd {
            readAheadWorker = ReadAheadWorker(
                readBlock: { [unowned self] in receiver.status.withLock(\.reachedEnd) && readAhead(nextBatchAfter: $0) },
                waitForBlock: { [control] in control.sleep(milliseconds: 50) })
        }
        defer {
            readAheadWorker?.finish()
            stopReceiver()
            consumer.close()
        }
        guard try replay() else { return }
        try retireStaleLog()
        if configuration.stopsAtEnd {
            try receiver.captureEndOffsets()
        }
        startReceiver()
        control.state.withLock { $0.isRecovered = true }
        try runBatches()
        logger.info("streaming stopped", metadata: ["stream.last_batch_time": "\(lastBatchTime)"])
    }

    /// Replays the recovered batches; false if a stop came first (what is not replayed stays in the log).
    private func replay() throws -> Bool {
        let batches = plan.replay
        plan.replay = []
        for batch in batches {
            guard control.stopRequest == .none else { return false }
            logger.info("replaying a batch from the write-ahead log", metadata: [
                "stream.batch_time": "\(batch.time)", "stream.blocks": "\(batch.blocks.count)",
            ])
            let logID = staleLog?.logID ?? tracker.logID ?? 0
            try runBatch(
                time: batch.time, blocks: batch.blocks, assigned: batch.assigned,
                coverage: .covered(logID: logID, through: batch.position), checkpoint: .ifChanged, schedulingDelay: nil)
        }
        return true
    }

    /// With the log off: processes a stale log's trailing blocks, writes a checkpoint that retires the log (so a
    /// crash before or during its deletion never replays it again), then deletes it.
    private func retireStaleLog() throws {
        guard let staleLog else { return }
        let blocks = plan.trailingBlocks
        plan.trailingBlocks = []
        try runBatch(
            time: lastBatchTime + Int64(configuration.batchIntervalMilliseconds), blocks: blocks, assigned: plan.trailingAssignments,
            coverage: .retired(logID: staleLog.logID), checkpoint: .always, schedulingDelay: nil
        )
        CrashPoint.reach(.afterStaleLogRetired, armed: crashTrigger)
        try FileManager.default.removeItem(atPath: staleLog.directory)
        logger.info("removed the write-ahead log of an earlier run", metadata: ["wal.directory": "\(staleLog.directory)"])
    }

    private func runBatches() throws {
        var schedule = BatchSchedule(
            interval: Int64(configuration.batchIntervalMilliseconds), lastBatchTime: lastBatchTime,
            now: WallClock.milliseconds(), stopsAtEnd: configuration.stopsAtEnd
        )
        while true {
            let receiverStatus = receiver.status.withLock { $0 }
            let observed = BatchSchedule.Observation(
                stopRequest: control.stopRequest, reachedEnd: receiverStatus.reachedEnd,
                receiverFailure: receiverStatus.failure,
                // Held input with nothing left unallocated: the receiver has not yet seen the last batch take it.
                isBacklogFull: receiverStatus.isInputHeld && tracker.backlogBytes > 0
            )
            switch schedule.next(now: WallClock.milliseconds(), observed: observed) {
            case .wait(let milliseconds):
                // Rather than wait, read the next batch's blocks as they come (the receiver wakes this thread for each),
                // one at a time, so that a batch that became due meanwhile starts without waiting for the rest.
                if !readAhead(nextBatchAfter: lastBatchTime) { control.sleep(milliseconds: milliseconds) }
            case .runBatch(let time):
                try runAllocatedBatch(time: time, checkpoint: .whenDue)
            case .finish(let time):
                stopReceiver()
                let endsInput = configuration.stopsAtEnd && receiver.status.withLock { $0.reachedEnd }
                try runAllocatedBatch(time: time, checkpoint: .ifChanged, flushingWindows: endsInput)
                return
            case .stop:
                return
            case .fail(let message):
                throw StreamingError(.receiver, message)
            }
        }
    }

    /// Reads the records of the next block queued for the batch after `batchTime` ahead of it; false if there was none.
    private func readAhead(nextBatchAfter batchTime: Int64) -> Bool {
        tracker.readAhead { _ = graph.readAhead(&$0, nextBatchAfter: batchTime) }
    }

    /// Allocates the received blocks to the batch of `time` (logged first, with a log) and runs it.
    private func runAllocatedBatch(time: Int64, checkpoint: Checkpointer.Rule, flushingWindows: Bool = false) throws {
        let schedulingDelay = max(0, WallClock.milliseconds() - time)
        metrics.batchSchedulingDelay.recordMilliseconds(schedulingDelay)
        var allocation = try tracker.allocateBatch(time: time)
        var coverage: LogCoverage?
        if let logID = tracker.logID, let position = allocation.position { coverage = .covered(logID: logID, through: position) }
        try runBatch(
            time: time, blocks: allocation.takeBlocks(), assigned: allocation.assigned, coverage: coverage, checkpoint: checkpoint,
            schedulingDelay: schedulingDelay, flushingWindows: flushingWindows)
    }

    /// Runs one batch: output delivered, then the state checkpointed (as `checkpoint` says; the state is encoded
    /// before the output's delivery is awaited, and written after it).
    ///
    /// - Parameters:
    ///   - coverage: What the state covers once this batch is in it (nil: unchanged).
    ///   - schedulingDelay: How late the batch started, in ms (nil: replayed from the log).
    ///   - flushingWindows: Whether the batch ends the input: every open window's records follow its own output, in
    ///     its transaction, and are delivered with it. The checkpoint is encoded before, so it keeps those windows
    ///     open with the real watermark, marked emitted, and a later run over new input completes them (and emits
    ///     again the keys that changed, with their final counts).
    private func runBatch(
        time: Int64, blocks: consuming [Block], assigned: [TopicPartition], coverage: LogCoverage?, checkpoint: Checkpointer.Rule,
        schedulingDelay: Int64?, flushingWindows: Bool = false
    ) throws {
        let started = ContinuousClock.now
        let blockCount = blocks.count
        var offsets = self.offsets
        offsets.advance(past: blocks)
        // The graph takes the blocks, so that each can be released as soon as it has been read, and hands over each
        // output record as it is made, so that a batch never holds all of them.
        // With exactly-once output, a batch that a committed transaction holds re-applies its state only, and a
        // transaction starts with a batch's first output record: a batch without output commits none.
        let emits = transactions?.emits(batchTime: time) ?? true
        var inTransaction = false
        func openTransaction() throws {
            guard !inTransaction, let transactions else { return }
            try transactions.begin()
            inTransaction = true
        }
        var sent = KafkaOutput.Batch()
        var sendError: (any Error)?
        // Once the batch has read its input, the blocks that arrive meanwhile are read on the worker.
        graph.inputWasRead = { [readAheadWorker] in readAheadWorker?.start(nextBatchAfter: time) }
        defer {
            graph.inputWasRead = nil
            readAheadWorker?.stop(wake: control.wake)
        }
        let result = graph.runBatch(time: time, blocks: consume blocks, assigned: assigned) { [output] record in
            guard emits, sendError == nil else { return }
            do {
                try openTransaction()
                try output.send(record, in: &sent)
            } catch { sendError = error }
        }
        if let sendError { throw sendError }
        // A flush is always checkpointed, with its windows marked emitted: a later run emits them again only for
        // the keys that change (with exactly-once output, a restart over finished input publishes none twice).
        let pendingCheckpoint = checkpointer.prepare(
            hadData: blockCount > 0 || !assigned.isEmpty || result.recordsOut > 0, rule: flushingWindows && emits ? .always : checkpoint,
            state: flushingWindows && emits ? graph.checkpointAsFlushed : graph.checkpoint)
        let watermark = graph.watermark
        if emits {
            if flushingWindows {
                for record in graph.flushWindows().records {
                    try openTransaction()
                    try output.send(record, in: &sent)
                }
            }
            if !result.malformed.isEmpty, output.deadLetterTopic != nil { try openTransaction() }
            try output.complete(sent)
            try output.divertMalformed(result.malformed)
            CrashPoint.reach(.afterOutputFlush, armed: crashTrigger)
            if inTransaction { try transactions?.commit(batchTime: time) }
        }
        lastBatchTime = time
        self.offsets = offsets
        if let coverage { checkpointer.coverage = coverage }
        metrics.lateRecords.increment(by: result.lateRecords)
        metrics.futureRecords.increment(by: result.futureRecords)
        if let pendingCheckpoint { try checkpointer.write(pendingCheckpoint, batchTime: time, offsets: offsets) }
        metrics.batchesCompleted.increment()
        let duration = ContinuousClock.now - started
        metrics.batchProcessingDuration.record(duration: duration)
        let info = BatchInfo(
            batchTime: time, records: result.recordsIn, blocks: blockCount, outputRecords: result.recordsOut,
            malformedRecords: result.malformedRecords, lateRecords: result.lateRecords,
            schedulingDelayMilliseconds: schedulingDelay ?? 0, processingMilliseconds: duration / .milliseconds(1),
            completedAt: WallClock.milliseconds(), isReplay: schedulingDelay == nil)
        history.add(info, futureRecords: result.futureRecords, watermark: watermark, checkpointed: pendingCheckpoint != nil)
        logger.debug("batch completed", metadata: [
            "stream.batch_time": "\(time)", "stream.records": "\(result.recordsIn)", "stream.blocks": "\(blockCount)",
            "stream.processing_ms": "\(Int(duration / .milliseconds(1)))", "stream.backlog_bytes": "\(tracker.backlogBytes)",
        ])
        control.state.withLock { $0.lastBatch = .now }
        progress.add(records: result.recordsIn, batchTime: time, consumer: consumer, history: history, metrics: metrics, logger: logger)
    }

    private func startReceiver() {
        isReceiverRunning = true
        let thread = Thread { [receiver, receiverDone] in
            receiver.run()
            receiverDone.signal()
        }
        thread.name = "sluice-receiver"
        thread.start()
    }

    /// Stops the receiver and waits until it has stored its last block. Whatever ends the batch loop, the receiver
    /// finishes before the consumer closes (which runs its revoke handler).
    private func stopReceiver() {
        receiver.requestStop()
        guard isReceiverRunning else { return }
        receiverDone.wait()
        isReceiverRunning = false
    }
}

/// A progress line every 5 s, with the consumer lag (also kept for the status API).
private struct ProgressLog {
    private var since = ContinuousClock.now
    private var records = 0

    mutating func add(
        records: Int, batchTime: Int64, consumer: KafkaConsumer, history: BatchHistory, metrics: StreamingMetrics, logger: Logger
    ) {
        self.records += records
        let elapsed = ContinuousClock.now - since
        guard elapsed >= .seconds(5) else { return }
        let lag = consumer.lag()
        history.state.withLock { $0.lag = lag }
        for (partition, value) in lag {
            metrics.lag(topic: partition.topic, partition: partition.partition).record(value)
        }
        logger.info("progress", metadata: [
            "stream.records_per_second": "\(Int(Double(self.records) / (elapsed / .seconds(1))))",
            "stream.lag": "\(lag.values.reduce(0, +))",
            "stream.batch_time": "\(batchTime)",
        ])
        self.records = 0
        since = .now
    }
}
