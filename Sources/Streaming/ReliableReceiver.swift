import CoreMetrics
import Foundation
import KafkaIO
import Logging
import Metrics
import StreamEngine
import Synchronization

/// Receives records from Kafka into blocks, stores each block durably, and only then commits its offsets.
///
/// Spark Streaming's reliable receiver: every block interval (or when a block reaches its size cap) the records
/// received so far become a ``Block``; the ``ReceivedBlockTracker`` writes it to the write-ahead log and syncs it,
/// and only after that are the block's "next" offsets committed to Kafka. A record whose offset Kafka holds as
/// committed is therefore always durable. Records below the offsets already known to be durable (from the
/// checkpoint and the log) are skipped, so a record delivered again after a crash is never counted twice.
///
/// - Important: ``run()`` runs on a dedicated thread; all blocking Kafka calls happen there. The rebalance handler
///   runs inside `poll` on that thread, or inside ``KafkaConsumer/close()`` after the loop ended.
final class ReliableReceiver: Sendable {
    /// What other threads may read: progress and health.
    struct Status: Sendable {
        var lastPoll: ContinuousClock.Instant?
        var assigned: [KafkaPartition] = []
        var failure: String?
        var reachedEnd = false
    }

    private let consumer: KafkaConsumer
    private let tracker: ReceivedBlockTracker
    private let configuration: StreamingConfiguration
    private let logger: Logger
    private let metrics: StreamingMetrics
    private let crashTrigger: CrashTrigger?
    private let loop: LoopState
    private let stopRequested = Atomic<Bool>(false)
    let status = Mutex(Status())

    /// State owned by the receiving thread.
    ///
    /// `@unchecked Sendable` because it is touched only by the thread running ``run()`` (including the rebalance
    /// handler, which librdkafka calls from inside `poll` on that thread) and, after that thread has finished, by
    /// the single thread that closes the consumer.
    private final class LoopState: @unchecked Sendable {
        var builder = BlockBuilder(reservingCapacity: 1 << 20)
        var blockStart = ContinuousClock.now
        /// Next offset per partition known to be durable or received (records below it are duplicates).
        var nextOffsets: [KafkaPartition: Int64]
        /// Offsets durable in the WAL whose commit has not succeeded yet.
        var uncommitted: [KafkaPartition: Int64] = [:]
        /// Offsets to reach before stopping, with `stopsAtEnd`.
        var endOffsets: [KafkaPartition: Int64]?
        var rateWindowStart = ContinuousClock.now
        var rateCounts: [KafkaPartition: Int] = [:]
        var ratePaused: Set<KafkaPartition> = []
        /// Input is held back (not polled) until the backlog drains.
        var isInputHeld = false
        var lastHeldPoll = ContinuousClock.now
        var assigned: [KafkaPartition] = []
        var failed = false
        /// Records received since the last metrics update (updated once per poll, not per record).
        var receivedSinceReport = 0

        init(nextOffsets: [KafkaPartition: Int64]) {
            self.nextOffsets = nextOffsets
        }
    }

    init(
        consumer: KafkaConsumer, tracker: ReceivedBlockTracker, configuration: StreamingConfiguration,
        knownOffsets: [KafkaPartition: Int64], logger: Logger, metrics: StreamingMetrics, crashTrigger: CrashTrigger?
    ) {
        self.consumer = consumer
        self.tracker = tracker
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.crashTrigger = crashTrigger
        self.loop = LoopState(nextOffsets: knownOffsets)
    }

    /// Asks ``run()`` to finish its current block and return.
    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
    }

    /// With `stopsAtEnd`: reads the end offsets to reach, as they are now.
    ///
    /// - Throws: A ``KafkaError`` if the brokers cannot be asked (for example none is reachable).
    func captureEndOffsets() throws {
        let counts = try consumer.topicPartitionCounts(timeout: .seconds(10))
        var ends: [KafkaPartition: Int64] = [:]
        for topic in configuration.inputTopics {
            for partition in 0..<Int32(counts[topic] ?? 0) {
                let key = KafkaPartition(topic: topic, partition: partition)
                ends[key] = try consumer.watermarks(of: key, timeout: .seconds(10)).high
            }
        }
        loop.endOffsets = ends
        logger.info("reading to the current end of the input", metadata: ["stream.end_offsets": "\(ends.values.reduce(0, +))"])
        checkEnd()
    }

    /// Subscribes and receives until ``requestStop()``; the last block is stored before it returns.
    func run() {
        do {
            try consumer.subscribe(configuration.inputTopics) { [self] event in
                handleRebalance(event)
            }
        } catch {
            fail("subscribe failed", error)
            return
        }
        while !stopRequested.load(ordering: .acquiring) {
            releaseInputIfDrained()
            do {
                if loop.isInputHeld {
                    try pollWhileHeld()
                } else {
                    let remaining = Duration.milliseconds(configuration.blockIntervalMilliseconds) - (ContinuousClock.now - loop.blockStart)
                    try consumer.poll(timeout: min(max(remaining, .zero), .milliseconds(100))) { event in
                        handle(event)
                    }
                }
            } catch let error as KafkaError where error.kind == .closed {
                break
            } catch {
                logger.warning("consumer reported an error", metadata: ["kafka.error": "\(error)"])
            }
            status.withLock { $0.lastPoll = .now }
            if loop.receivedSinceReport > 0 {
                metrics.recordsReceived.increment(by: loop.receivedSinceReport)
                loop.receivedSinceReport = 0
            }
            if loop.builder.byteCount >= configuration.maxBlockBytes
                || ContinuousClock.now - loop.blockStart >= .milliseconds(configuration.blockIntervalMilliseconds)
            {
                storeBlock()
                commitDurableOffsets()
                updateRateLimit()
                checkEnd()
            }
        }
        storeBlock()
        commitDurableOffsets()
    }

    private func handle(_ event: KafkaConsumerEvent) {
        switch event {
        case .message(let message):
            let partition = KafkaPartition(topic: message.topic, partition: message.partition)
            guard !loop.failed else { return }
            if let next = loop.nextOffsets[partition], message.offset < next {
                metrics.duplicateRecordsSkipped.increment()
                return
            }
            loop.builder.append(
                topic: message.topic, partition: message.partition, offset: message.offset,
                timestamp: message.timestamp, key: message.key, value: message.value
            )
            loop.nextOffsets[partition] = message.offset + 1
            loop.receivedSinceReport += 1
            if configuration.maxRatePerPartition > 0 {
                loop.rateCounts[partition, default: 0] += 1
                if loop.rateCounts[partition, default: 0] >= configuration.maxRatePerPartition, !loop.ratePaused.contains(partition) {
                    loop.ratePaused.insert(partition)
                    try? consumer.pause([partition])
                }
            }
            if loop.builder.byteCount >= configuration.maxBlockBytes {
                storeBlock()
            }
        case .endOfPartition(let partition, let nextOffset):
            if loop.nextOffsets[partition].map({ $0 < nextOffset }) ?? true {
                loop.nextOffsets[partition] = nextOffset
            }
        }
    }

    /// Stores the current block durably, then commits its offsets (with the WAL on).
    private func storeBlock() {
        defer { loop.blockStart = .now }
        guard !loop.builder.isEmpty, !loop.failed else { return }
        let block = loop.builder.finish()
        do {
            try tracker.add(block)
        } catch {
            // The block's offsets were never committed: Kafka still has these records.
            fail("storing a block failed; offsets are no longer committed", error)
            return
        }
        holdInputIfBacklogged()
        CrashPoint.reach(.afterBlockSync, armed: crashTrigger)
        if tracker.isLogging {
            loop.uncommitted.advance(past: [block])
            commitDurableOffsets()
        }
        CrashPoint.reach(.afterCommit, armed: crashTrigger)
    }

    /// Commits the offsets of durable blocks; a failed commit is retried on the next block tick.
    private func commitDurableOffsets() {
        guard !loop.uncommitted.isEmpty, !loop.failed else { return }
        do {
            try metrics.commitDuration.measure { try consumer.commit(loop.uncommitted) }
            loop.uncommitted = [:]
        } catch {
            // The records are durable in the WAL; the commit is retried on the next block tick.
            metrics.commitFailures.increment()
            logger.warning("offset commit failed; will retry", metadata: ["kafka.error": "\(error)"])
        }
    }

    private func handleRebalance(_ event: KafkaRebalance) -> [KafkaPartition: Int64] {
        switch event {
        case .assigned(let partitions):
            loop.assigned = Array(Set(loop.assigned).union(partitions)).sorted()
            status.withLock { $0.assigned = loop.assigned }
            var starts: [KafkaPartition: Int64] = [:]
            for partition in partitions {
                starts[partition] = loop.nextOffsets[partition]
            }
            return starts
        case .revoked(let partitions):
            storeBlock()
            commitDurableOffsets()
            let revoked = Set(partitions)
            // A commit for a partition that is no longer ours must not be retried over its new owner's.
            for partition in revoked { loop.uncommitted[partition] = nil }
            loop.assigned.removeAll { revoked.contains($0) }
            loop.ratePaused.subtract(revoked)
            status.withLock { $0.assigned = loop.assigned }
            return [:]
        }
    }

    /// Holds input back once the stored-but-unprocessed backlog exceeds its bound.
    ///
    /// Checked after every stored block, so the backlog stays under the bound plus one block plus the records of
    /// one poll call. Held input stays in librdkafka's prefetch queue, which is bounded by
    /// `queued.max.messages.kbytes`; the partitions are not paused, because pausing drops what was prefetched.
    private func holdInputIfBacklogged() {
        let backlog = tracker.backlogBytes
        guard !loop.isInputHeld, backlog > configuration.maxBacklogBytes else { return }
        loop.isInputHeld = true
        reportPausedPartitions()
        logger.debug("backlog over its bound: holding input", metadata: ["stream.backlog_bytes": "\(backlog)"])
    }

    /// Takes input again once the backlog has halved.
    private func releaseInputIfDrained() {
        let backlog = tracker.backlogBytes
        guard loop.isInputHeld, backlog <= configuration.maxBacklogBytes / 2 else { return }
        loop.isInputHeld = false
        reportPausedPartitions()
        logger.debug("backlog drained: taking input again", metadata: ["stream.backlog_bytes": "\(backlog)"])
    }

    /// While input is held: waits a little, and every 100 ms takes one record, so that the consumer keeps serving
    /// rebalance callbacks and stays in its group.
    private func pollWhileHeld() throws {
        Thread.sleep(forTimeInterval: 0.005)
        guard ContinuousClock.now - loop.lastHeldPoll >= .milliseconds(100) else { return }
        loop.lastHeldPoll = .now
        try consumer.poll(timeout: .zero, maxMessages: 1) { event in
            handle(event)
        }
    }

    /// Opens a new rate-limit window every second.
    private func updateRateLimit() {
        if configuration.maxRatePerPartition > 0, ContinuousClock.now - loop.rateWindowStart >= .seconds(1) {
            loop.rateWindowStart = .now
            loop.rateCounts = [:]
            if !loop.ratePaused.isEmpty {
                try? consumer.resume(Array(loop.ratePaused))
            }
            loop.ratePaused = []
        }
        reportPausedPartitions()
    }

    /// The partitions not being read: all of them while input is held, else those over their rate.
    private func reportPausedPartitions() {
        metrics.pausedPartitions.record(loop.isInputHeld ? loop.assigned.count : loop.ratePaused.count)
    }

    private func checkEnd() {
        guard let ends = loop.endOffsets, loop.builder.isEmpty else { return }
        let reached = ends.allSatisfy { partition, end in end <= 0 || (loop.nextOffsets[partition] ?? 0) >= end }
        if reached {
            status.withLock { $0.reachedEnd = true }
        }
    }

    private func fail(_ message: String, _ error: any Error) {
        loop.failed = true
        try? consumer.pause(loop.assigned)
        logger.error("\(message)", metadata: ["stream.error": "\(error)"])
        status.withLock { $0.failure = "\(message): \(error)" }
    }
}
