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
/// received so far become a ``Block``; the ``ReceivedBlockTracker`` writes it to the write-ahead log, a
/// ``LogSyncer`` syncs it while the receiver goes on taking records, and only after the sync are the block's "next"
/// offsets committed to Kafka. A record whose offset Kafka holds as committed is therefore always durable. Records
/// below the offsets already known to be durable (from the checkpoint and the log) are skipped, so a record
/// delivered again after a crash is never counted twice.
///
/// - Important: ``run()`` runs on a dedicated thread; all blocking Kafka calls happen there, commits included
///   (librdkafka 2.0.2 #4059: a commit from another thread during a rebalance can lose the assignment). The
///   rebalance handler runs inside `poll` on that thread, or inside ``KafkaConsumer/close()`` after the loop ended.
final class ReliableReceiver: Sendable {
    let consumer: KafkaConsumer
    private let committer: any OffsetCommitter
    private let tracker: ReceivedBlockTracker
    let configuration: StreamingConfiguration
    let logger: Logger
    let metrics: StreamingMetrics
    private let crashTrigger: CrashTrigger?
    let wakeBatchThread: @Sendable () -> Void
    let loop: ReceiverLoopState
    private let stopRequested = Atomic<Bool>(false)
    private let handoff = CommitHandoff()
    /// Syncs stored blocks while the receiver goes on (nil without a write-ahead log).
    private let logSyncer: LogSyncer?
    let status = Mutex(ReceiverStatus())

    /// - Parameters:
    ///   - committer: Where offsets are committed; the consumer itself unless a test observes the commits.
    ///   - wakeBatchThread: Called when a block is stored, input is held back, the end of input is reached or the
    ///     receiver fails: each is something the batch thread acts on.
    init(
        consumer: KafkaConsumer, committer: (any OffsetCommitter)? = nil, tracker: ReceivedBlockTracker,
        configuration: StreamingConfiguration, knownOffsets: [KafkaPartition: Int64], logger: Logger,
        metrics: StreamingMetrics, crashTrigger: CrashTrigger?, wakeBatchThread: @escaping @Sendable () -> Void = {}
    ) {
        self.consumer = consumer
        self.committer = committer ?? consumer
        self.tracker = tracker
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.crashTrigger = crashTrigger
        self.wakeBatchThread = wakeBatchThread
        logSyncer = tracker.isLogging ? LogSyncer(tracker: tracker) : nil
        let flow = InputFlowControl(
            maxBacklogBytes: configuration.maxBacklogBytes, maxRatePerPartition: configuration.maxRatePerPartition, now: .now)
        self.loop = ReceiverLoopState(nextOffsets: knownOffsets, flow: flow)
    }

    /// Asks ``run()`` to finish its current block and return, waking its poll.
    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
        consumer.wakeUp()
    }

    /// Commits offsets that a checkpoint covers (used without a WAL): on the polling thread while ``run()`` polls,
    /// directly when nothing polls (before the receiver starts or after it stopped). A direct commit that fails is
    /// not retried: the checkpoint holds the offsets, so a restart skips what Kafka delivers again.
    func commitCheckpointed(_ offsets: [KafkaPartition: Int64]) {
        guard !handoff.hand(offsets) else { return }
        _ = commit(offsets)
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
        handoff.setPolling(true)
        logSyncer?.start()
        defer { logSyncer?.stop() }
        while !stopRequested.load(ordering: .acquiring), !loop.failed || loop.heldFailure != nil {
            reportHeldFailure()
            do {
                try pollOnce()
            } catch let error as KafkaError where error.kind == .closed {
                break
            } catch let error as KafkaError where error.isFatal {
                fail("the consumer failed", error)
            } catch {
                metrics.consumerErrors.increment()
                loop.errorLog.warning(logger, "consumer reported an error", error: error)
            }
            status.withLock { $0.lastPoll = .now }
            if loop.receivedSinceReport > 0 {
                metrics.recordsReceived.increment(by: loop.receivedSinceReport)
                loop.receivedSinceReport = 0
            }
            if takeSyncedBlocks() { commitDurableOffsets() }
            // The block is stored at its size cap, at the end of its interval, or at once when it completes the
            // input to be read (with `stopsAtEnd`), which need not wait for the interval.
            if !loop.failed, loop.builder.byteCount >= configuration.maxBlockBytes
                || ContinuousClock.now - loop.blockStart >= .milliseconds(configuration.blockIntervalMilliseconds)
                || (!loop.builder.isEmpty && hasReceivedToEnd)
            {
                storeBlock()
                commitDurableOffsets()
                resumeRateLimited()
                checkEnd()
            }
        }
        reportHeldFailure(stopping: true)
        storeBlock()
        takeSyncedBlocks(waiting: true)
        handoff.setPolling(false)
        commitDurableOffsets()
    }

    /// Polls once, or while input is held sleeps until a batch releases blocks it has read, taking one record every 100 ms
    /// meanwhile, so that the consumer keeps serving rebalance callbacks and stays in its group.
    private func pollOnce() throws {
        loop.polls += 1
        if loop.flow.backlog(bytes: tracker.heldBytes) { reportFlow() }
        if loop.flow.isInputHeld {
            let sinceHeldPoll = ContinuousClock.now - loop.lastHeldPoll
            if sinceHeldPoll < .milliseconds(100) {
                tracker.waitForRelease(milliseconds: Int((.milliseconds(100) - sinceHeldPoll) / .milliseconds(1)) + 1)
                return
            }
            loop.lastHeldPoll = .now
            try consumer.poll(timeout: .zero, maxMessages: 1) { handle($0) }
        } else {
            let remaining = Duration.milliseconds(configuration.blockIntervalMilliseconds) - (ContinuousClock.now - loop.blockStart)
            try consumer.poll(timeout: min(max(remaining, .zero), .milliseconds(100))) { handle($0) }
        }
    }

    private func handle(_ event: KafkaConsumerEvent) {
        guard !loop.failed else { return }
        switch event {
        case .message(let message):
            let partition = KafkaPartition(topic: message.topic, partition: message.partition)
            // Checked for emptiness first, here and below: this runs for every record, and a lookup hashes the topic.
            if !loop.startedAt.isEmpty, let start = loop.startedAt.removeValue(forKey: partition), message.offset < start {
                offsetWasReset(partition, to: message.offset, below: start)
                return
            }
            // A partition paused for the rate limit takes no more of this poll's records: the resume seeks back to
            // the offset after its last record, so they come again in its next window.
            if !loop.flow.ratePaused.isEmpty, loop.flow.ratePaused.contains(partition) { return }
            // One lookup for the read and the update of the partition's next offset.
            let known = loop.nextOffsets.index(of: partition)
            if let known {
                let next = loop.nextOffsets[known]
                if message.offset < next {
                    metrics.duplicateRecordsSkipped.increment()
                    return
                }
                if message.offset > next || !loop.gapRefetches.isEmpty, skipsOverGap(partition, expected: next, found: message.offset) {
                    return
                }
            }
            loop.builder.append(
                topic: message.topic, partition: message.partition, offset: message.offset,
                timestamp: message.timestamp, key: message.key, value: message.value
            )
            if let known {
                loop.nextOffsets[known] = message.offset + 1
            } else {
                loop.nextOffsets[partition] = message.offset + 1
            }
            loop.receivedSinceReport += 1
            if loop.flow.received(from: partition) {
                try? consumer.pause([partition])
            }
            if loop.builder.byteCount >= configuration.maxBlockBytes {
                storeBlock()
            }
        case .endOfPartition(let partition, let nextOffset):
            // Not while records of the partition were left to be fetched again (a rate pause, a gap): the end is
            // past them, and taking it would skip them as duplicates.
            if loop.flow.ratePaused.contains(partition) || loop.gapRefetches[partition] != nil { return }
            if loop.nextOffsets[partition].map({ $0 < nextOffset }) ?? true {
                loop.nextOffsets[partition] = nextOffset
            }
        }
    }

    /// Stores the current block, and with the WAL on has it synced: its offsets are committed once it is durable.
    ///
    /// The previous block's sync has had a block interval to finish, and is waited for before this block is logged,
    /// so a block is durable before the next one is written: a failed write leaves every block before it durable and
    /// committed, as when the receiver synced each block itself.
    private func storeBlock() {
        defer { loop.blockStart = .now }
        guard !loop.builder.isEmpty, !loop.failed else { return }
        if takeSyncedBlocks(waiting: true) { commitDurableOffsets() }
        guard !loop.failed else { return }
        let block = loop.builder.finish()
        let number: Int?
        do {
            number = try tracker.add(block)
        } catch {
            // The block's offsets were never committed: Kafka still has these records.
            fail("storing a block failed; offsets are no longer committed", error)
            return
        }
        if loop.flow.backlog(bytes: tracker.heldBytes) { reportFlow() }
        // The batch thread reads a stored block ahead of its batch while it would otherwise wait.
        wakeBatchThread()
        if let number, let logSyncer {
            var offsets: [KafkaPartition: Int64] = [:]
            offsets.advance(past: [block])
            loop.awaitingSync.append((number, offsets))
            logSyncer.request(number)
        }
    }

    /// Moves the offsets of the stored blocks the log has synced to those to commit (waiting for the last stored
    /// block's sync if asked); a failed sync fails the receiver. Returns whether any block became durable.
    @discardableResult
    private func takeSyncedBlocks(waiting: Bool = false) -> Bool {
        guard let logSyncer, let last = loop.awaitingSync.last, !loop.failed else { return false }
        let (durable, failure) = waiting ? logSyncer.waitUntilDurable(last.number) : logSyncer.progress
        if let failure {
            // The blocks not synced were never committed: Kafka still has their records.
            fail("storing a block failed; offsets are no longer committed", failure)
            return false
        }
        let synced = loop.awaitingSync.prefix { $0.number <= durable }
        guard !synced.isEmpty else { return false }
        CrashPoint.reach(.afterBlockSync, armed: crashTrigger)
        for block in synced {
            loop.uncommitted.merge(block.offsets, uniquingKeysWith: max)
        }
        loop.awaitingSync.removeFirst(synced.count)
        return true
    }

    /// Commits the offsets of durable blocks and of checkpoints; a failed commit is retried on the next block tick.
    private func commitDurableOffsets() {
        loop.uncommitted.merge(handoff.take(), uniquingKeysWith: max)
        // The records are durable: a failed commit is retried on the next block tick.
        guard !loop.uncommitted.isEmpty, !loop.failed, commit(loop.uncommitted) else { return }
        loop.uncommitted = [:]
        CrashPoint.reach(.afterCommit, armed: crashTrigger)
    }

    /// Commits, timed; a failure is counted and logged. Whether it succeeded.
    private func commit(_ offsets: [KafkaPartition: Int64]) -> Bool {
        do {
            try metrics.commitDuration.measure { try committer.commit(offsets) }
            return true
        } catch {
            metrics.commitFailures.increment()
            logger.warning("offset commit failed", metadata: ["kafka.error": "\(error)"])
            return false
        }
    }

    private func handleRebalance(_ event: KafkaRebalance) -> [KafkaPartition: Int64] {
        switch event {
        case .assigned(let partitions):
            loop.assigned = Array(Set(loop.assigned).union(partitions)).sorted()
            status.withLock { $0.assigned = loop.assigned }
            let starts = loop.nextOffsets.offsets.filter { partitions.contains($0.key) }
            loop.startedAt.merge(starts) { $1 }
            do {
                try tracker.noteAssignment(partitions.map(TopicPartition.init))
            } catch {
                fail("logging an assignment failed", error)
            }
            checkWholeInputAssigned()
            return starts
        case .revoked(let partitions):
            storeBlock()
            takeSyncedBlocks(waiting: true)
            commitDurableOffsets()
            let revoked = Set(partitions)
            // A commit for a partition that is no longer ours must not be retried over its new owner's.
            for partition in revoked {
                loop.uncommitted[partition] = nil
                loop.gapRefetches[partition] = nil
            }
            loop.assigned.removeAll { revoked.contains($0) }
            loop.flow.revoke(revoked)
            status.withLock { $0.assigned = loop.assigned }
            return [:]
        }
    }

    func fail(_ message: String, _ error: any Error) {
        stopTakingRecords()
        logger.error("\(message)", metadata: ["stream.error": "\(error)"])
        status.withLock { $0.failure = "\(message): \(error)" }
        wakeBatchThread()
    }

    /// From now on records and end-of-partition events are ignored and nothing is stored or committed.
    func stopTakingRecords() {
        loop.failed = true
        try? consumer.pause(loop.assigned)
    }
}
