import Foundation
import Glibc
@_spi(Testing) import KafkaIO
import Logging
import StreamEngine
import Synchronization
import Testing

@testable import Storage
@testable import Streaming

@Suite(.serialized, .timeLimit(.minutes(2)))
struct ReliableReceiverTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs a receiver over 200 records of a fresh topic until `done` says so, then stops it and returns it with its
    /// consumer and the topic name. With `skipAtStart`, the receiver knows both partitions start at 0 (as after a
    /// checkpoint) and the consumer drops that many of partition 0's first records, `skipTimes` times.
    func receive(
        tracker: ReceivedBlockTracker, cluster: MockCluster, committer: ((KafkaConsumer) -> any OffsetCommitter)? = nil,
        skipAtStart: Int = 0, skipTimes: Int = 1, maxRatePerPartition: Int = 0, maxBacklogBytes: Int? = nil,
        until done: @escaping (ReliableReceiver, KafkaConsumer) -> Bool
    ) throws -> (ReliableReceiver, KafkaConsumer, String) {
        let topic = "input-\(UUID().uuidString.prefix(6))"
        try cluster.createTopic(topic, partitions: 2)
        let producer = try KafkaProducer(config: KafkaProducerConfig(common: KafkaConfig(bootstrapServers: cluster.bootstrapServers)), logger: logger)
        for index in 0..<200 {
            try producer.send(KafkaProducerRecord(topic: topic, partition: Int32(index % 2), value: Array("word \(index)".utf8)))
        }
        try producer.flush(timeout: .seconds(10))
        var configuration = StreamingConfiguration(
            kafka: KafkaConfig(bootstrapServers: cluster.bootstrapServers), inputTopics: [topic], groupID: "group-\(topic)",
            blockIntervalMilliseconds: 50, maxBlockBytes: 512, maxRatePerPartition: maxRatePerPartition, sessionTimeoutMilliseconds: 6000
        )
        if let maxBacklogBytes { configuration.maxBacklogBytes = maxBacklogBytes }
        let consumer = try KafkaConsumer(
            config: KafkaConsumerConfig(common: configuration.kafka, groupID: configuration.groupID, sessionTimeoutMilliseconds: 6000),
            logger: logger
        )
        var known: [KafkaPartition: Int64] = [:]
        if skipAtStart > 0 {
            known = [KafkaPartition(topic: topic, partition: 0): 0, KafkaPartition(topic: topic, partition: 1): 0]
            consumer.injectSkip(0..<Int64(skipAtStart), of: KafkaPartition(topic: topic, partition: 0), times: skipTimes)
        }
        let receiver = ReliableReceiver(
            consumer: consumer, committer: committer?(consumer), tracker: tracker, configuration: configuration, knownOffsets: known, logger: logger,
            metrics: StreamingMetrics(), crashTrigger: nil
        )
        let finished = Atomic<Bool>(false)
        let thread = Thread {
            receivingThread.store(UInt(pthread_self()), ordering: .releasing)
            receiver.run()
            finished.store(true, ordering: .releasing)
        }
        thread.start()
        let deadline = ContinuousClock.now + .seconds(30)
        while !done(receiver, consumer), ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        receiver.requestStop()
        while !finished.load(ordering: .acquiring) {
            Thread.sleep(forTimeInterval: 0.01)
        }
        return (receiver, consumer, topic)
    }

    /// The offsets of the log's blocks at `directory`, per partition, in log order.
    func loggedOffsets(in directory: String) throws -> [Int32: [Int64]] {
        let (_, recovery) = try WriteAheadLog.open(directory: directory)
        var logged: [Int32: [Int64]] = [:]
        for entry in recovery.entries {
            guard case .block(let block) = try WALRecord(decoding: entry.payload, at: entry.position) else { continue }
            block.forEachRecord { logged[$0.partition, default: []].append($0.offset) }
        }
        return logged
    }

    /// A `done` condition: takes the blocks allocated so far, adding their records to `received`, until it holds
    /// `count`.
    func receivedAll(_ count: Int, from tracker: ReceivedBlockTracker, counting received: RecordCount) -> (ReliableReceiver, KafkaConsumer) -> Bool {
        { _, _ in
            let blocks = (try? tracker.allocateBatch(time: 0).blocks) ?? []
            return received.total.withLock { total in
                total += blocks.reduce(0) { $0 + $1.recordCount }
                return total == count
            }
        }
    }

    /// What a receiver on a fresh write-ahead log took, once `count` records were in batches.
    struct LogRun {
        /// The offsets of the log's blocks, per partition, in log order.
        var logged: [Int32: [Int64]]
        /// The group's committed offsets when the receiver stopped.
        var committed: [KafkaPartition: Int64]
        /// From the first record in a batch to the last.
        var elapsed: Duration
    }

    /// Runs a receiver (see ``receive(tracker:cluster:committer:skipAtStart:skipTimes:maxRatePerPartition:until:)``)
    /// with a fresh write-ahead log until `count` records were allocated to batches.
    func receiveIntoFreshLog(count: Int = 200, skipAtStart: Int = 0, skipTimes: Int = 1, maxRatePerPartition: Int = 0) throws -> LogRun {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cluster = try MockCluster(logger: logger)
        let (log, _) = try WriteAheadLog.open(directory: directory)
        let tracker = ReceivedBlockTracker(log: log, metrics: StreamingMetrics())
        let received = RecordCount()
        let done = receivedAll(count, from: tracker, counting: received)
        let firstRecord = Mutex<ContinuousClock.Instant?>(nil)
        let (_, consumer, topic) = try receive(
            tracker: tracker, cluster: cluster, skipAtStart: skipAtStart, skipTimes: skipTimes, maxRatePerPartition: maxRatePerPartition
        ) { receiver, consumer in
            let finished = done(receiver, consumer)
            if received.total.withLock({ $0 }) > 0 { firstRecord.withLock { $0 = $0 ?? .now } }
            return finished
        }
        defer { consumer.close() }
        let elapsed = ContinuousClock.now - (firstRecord.withLock { $0 } ?? .now)
        let partitions = [KafkaPartition(topic: topic, partition: 0), KafkaPartition(topic: topic, partition: 1)]
        let committed = try consumer.committed(partitions, timeout: .seconds(5))
        log.close()
        return LogRun(logged: try loggedOffsets(in: directory), committed: committed, elapsed: elapsed)
    }

    @Test func everyCommittedRecordIsInTheLog() throws {
        let run = try receiveIntoFreshLog()
        #expect(run.committed.values.sorted() == [100, 100])
        #expect(run.logged == [0: Array(0..<100), 1: Array(0..<100)])
    }

    /// librdkafka 2.0.2 can skip offsets after a pause and resume with batch consumption (#4208). With 7 records of a
    /// partition dropped where its next offset is known, the partition is sought back over the gap and every offset
    /// is logged exactly once.
    @Test func skippedOffsetsAreFetchedAgain() throws {
        let run = try receiveIntoFreshLog(skipAtStart: 7)
        #expect(run.logged == [0: Array(0..<100), 1: Array(0..<100)])
    }

    /// A gap that is still there after the refetch is real (transaction markers, compacted records) and is passed
    /// over, not fetched again and again. Simulated by dropping partition 0's first 7 records twice, in the first
    /// fetch and in the refetch (the mock broker writes no transaction markers).
    @Test func aGapSeenAgainAfterTheRefetchIsPassedOver() throws {
        let run = try receiveIntoFreshLog(count: 193, skipAtStart: 7, skipTimes: 2)
        #expect(run.logged == [0: Array(7..<100), 1: Array(0..<100)])
    }

    /// The rate limit is a bound, not a hint: 100 records per partition at 40 per second take three one-second
    /// windows (at least 2 s; unlimited they take well under one), and every offset is logged exactly once although
    /// each pause leaves the rest of a poll's records to be fetched again.
    @Test func theRateLimitHoldsAndLosesNothing() throws {
        let run = try receiveIntoFreshLog(maxRatePerPartition: 40)
        #expect(run.elapsed >= .milliseconds(1900), "200 records at 2 x 40/s took \(run.elapsed)")
        #expect(run.logged == [0: Array(0..<100), 1: Array(0..<100)])
    }

    @Test func aFailingWALStopsCommitsAndReportsTheFailure() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cluster = try MockCluster(logger: logger)
        // The assignment goes to segment 1, the first block to segment 2; the next one rolls to segment 3, which is
        // /dev/full (ENOSPC).
        let (log, _) = try WriteAheadLog.open(directory: directory, options: .init(segmentSizeLimit: 64)) { path in
            path.hasSuffix("00000000000000000003.wal")
                ? Glibc.open("/dev/full", O_WRONLY | O_CLOEXEC)
                : Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        }
        let tracker = ReceivedBlockTracker(log: log, metrics: StreamingMetrics())
        let (receiver, consumer, topic) = try receive(tracker: tracker, cluster: cluster) { receiver, _ in
            receiver.status.withLock { $0.failure != nil }
        }
        defer { consumer.close() }
        let failure = receiver.status.withLock { $0.failure }
        #expect(failure?.contains("storing a block failed") == true)
        #expect(failure?.contains("No space left on device") == true || failure?.contains("\(ENOSPC)") == true)
        // Exactly what reached the disk is committed, and nothing after it.
        log.close()
        let (_, recovery) = try WriteAheadLog.open(directory: directory)
        var durable: [KafkaPartition: Int64] = [:]
        for entry in recovery.entries {
            guard case .block(let block) = try WALRecord(decoding: entry.payload, at: entry.position) else { continue }
            for (partition, next) in block.nextOffsets() {
                durable[KafkaPartition(topic: partition.topic, partition: partition.partition)] = next
            }
        }
        #expect(!durable.isEmpty)
        #expect(durable.values.reduce(0, +) < 200)
        let partitions = [KafkaPartition(topic: topic, partition: 0), KafkaPartition(topic: topic, partition: 1)]
        #expect(try consumer.committed(partitions, timeout: .seconds(5)) == durable)
    }

    /// Without a WAL, offsets are committed after a checkpoint, which the batch thread writes: the commit itself
    /// must run on the polling thread (librdkafka 2.0.2 #4059: a commit from another thread during a rebalance can
    /// make the assignment count as lost).
    /// The backlog bound counts a running batch's blocks until the batch drops them: while a batch still holds the
    /// blocks it took, the receiver stays held (taking one record per 100 ms); once they are dropped it goes on, and
    /// nothing is lost.
    @Test func aBatchThatStillHoldsItsBlocksKeepsTheInputHeld() throws {
        let cluster = try MockCluster(logger: logger)
        let tracker = ReceivedBlockTracker(log: nil, metrics: StreamingMetrics())
        let received = RecordCount()
        /// The blocks of the "running batch", and when it took them.
        let batch = Mutex<(blocks: [Block], since: ContinuousClock.Instant)?>(nil)
        let heldWhileKept = Mutex<[Bool]>([])
        let (_, consumer, _) = try receive(tracker: tracker, cluster: cluster, maxBacklogBytes: 1024) { receiver, _ in
            let isHeld = receiver.status.withLock { $0.isInputHeld }
            let taken = batch.withLock { $0 }
            if taken == nil {
                guard isHeld else { return false }
                let blocks = (try? tracker.allocateBatch(time: 0).blocks) ?? []
                received.total.withLock { $0 += blocks.reduce(0) { $0 + $1.recordCount } }
                batch.withLock { $0 = (blocks, .now) }
                return false
            }
            if let taken, !taken.blocks.isEmpty {
                guard ContinuousClock.now - taken.since > .milliseconds(400) else {
                    heldWhileKept.withLock { $0.append(isHeld) }
                    return false
                }
                batch.withLock { $0 = ([], taken.since) }
            }
            let blocks = (try? tracker.allocateBatch(time: 0).blocks) ?? []
            return received.total.withLock { total in
                total += blocks.reduce(0) { $0 + $1.recordCount }
                return total == 200
            }
        }
        consumer.close()
        let samples = heldWhileKept.withLock { $0 }
        #expect(samples.count >= 3 && samples.allSatisfy { $0 }, "held while the batch kept its blocks: \(samples)")
        #expect(received.total.withLock { $0 } == 200)
        #expect(tracker.heldBytes == 0)
    }

    @Test func checkpointCommitsRunOnThePollingThread() throws {
        let cluster = try MockCluster(logger: logger)
        let tracker = ReceivedBlockTracker(log: nil, metrics: StreamingMetrics())
        let threads = ThreadNames()
        let handed = Mutex(false)
        let (_, consumer, _) = try receive(tracker: tracker, cluster: cluster, committer: { consumer in
            ThreadRecordingCommitter(consumer: consumer, threads: threads)
        }) { receiver, _ in
            let blocks = (try? tracker.allocateBatch(time: 0).blocks) ?? []
            if !blocks.isEmpty, !handed.withLock({ $0 }) {
                var offsets: [KafkaPartition: Int64] = [:]
                offsets.advance(past: blocks)
                receiver.commitCheckpointed(offsets)
                handed.withLock { $0 = true }
            }
            return !threads.names.withLock { $0.isEmpty }
        }
        consumer.close()
        let names = threads.names.withLock { $0 }
        #expect(handed.withLock { $0 })
        let receiving = receivingThread.load(ordering: .acquiring)
        #expect(!names.isEmpty && names.allSatisfy { $0 == receiving }, "commits ran on \(names), the receiver on \(receiving)")
    }

    /// A fatal consumer error is not retried in a loop: the receiver fails with the error, which the batch loop and
    /// `/healthz` report.
    @Test func aFatalConsumerErrorFailsTheReceiver() throws {
        let cluster = try MockCluster(logger: logger)
        let tracker = ReceivedBlockTracker(log: nil, metrics: StreamingMetrics())
        let injected = Mutex(false)
        let (receiver, consumer, _) = try receive(tracker: tracker, cluster: cluster) { receiver, consumer in
            _ = try? tracker.allocateBatch(time: 0)
            if receiver.status.withLock({ !$0.assigned.isEmpty }), !injected.withLock({ $0 }) {
                consumer.injectFatalError(reason: "injected by the test")
                injected.withLock { $0 = true }
            }
            return receiver.status.withLock { $0.failure != nil }
        }
        consumer.close()
        let failure = receiver.status.withLock { $0.failure }
        #expect(failure?.contains("the consumer failed") == true, "failure: \(failure ?? "none")")
        #expect(failure?.contains("injected by the test") == true)
    }

    /// The power-loss model: at the moment of every commit, only what the log has synced would survive. Fails if
    /// the receiver commits a block before ``LogSyncer`` reports it synced, or the sync is left out.
    @Test func everyCommitFollowsTheSyncOfItsBlocks() throws {
        let cluster = try MockCluster(logger: logger)
        let log = PowerLossLog()
        let tracker = ReceivedBlockTracker(log: log, metrics: StreamingMetrics())
        let checker = Mutex<DurabilityCheckingCommitter?>(nil)
        let received = RecordCount()
        let (_, consumer, _) = try receive(tracker: tracker, cluster: cluster, committer: { consumer in
            let committer = DurabilityCheckingCommitter(log: log, consumer: consumer)
            checker.withLock { $0 = committer }
            return committer
        }, until: receivedAll(200, from: tracker, counting: received))
        consumer.close()
        let committer = try #require(checker.withLock { $0 })
        #expect(received.total.withLock { $0 } == 200)
        #expect(committer.commits.withLock { $0 } > 1)
        #expect(committer.violations.withLock { $0 } == [])
    }
}

/// A write-ahead log in memory that loses every entry not yet synced in a simulated power loss (a kill -9 keeps
/// the page cache, so only this model catches a missing or late `fdatasync`).
final class PowerLossLog: BlockLog {
    private struct State {
        var entries: [WALRecord] = []
        var synced = 0
    }

    let logID: UInt64 = 7
    private let state = Mutex(State())

    func append(_ record: WALRecord) throws -> (position: WALPosition, bytes: Int) {
        state.withLock { state in
            state.entries.append(record)
            return (WALPosition(segment: 1, offset: UInt64(state.entries.count)), 1)
        }
    }

    /// Makes durable what was appended before the call, after a few milliseconds, as `fdatasync` does: a receiver
    /// that committed a block before its sync returned would be caught meanwhile.
    func sync() throws {
        let appended = state.withLock { $0.entries.count }
        Thread.sleep(forTimeInterval: 0.02)
        state.withLock { $0.synced = max($0.synced, appended) }
    }

    func truncate(before position: WALPosition) throws -> Int { 0 }
    var bytesOnDisk: Int { 0 }

    func close() {}

    /// The blocks that would survive a power loss now.
    var durableBlocks: [Block] {
        state.withLock { state in
            state.entries.prefix(state.synced).compactMap { if case .block(let block) = $0 { block } else { nil } }
        }
    }
}

/// Commits through to the consumer, first checking that a power loss at this moment would keep every record below
/// the committed offsets.
final class DurabilityCheckingCommitter: OffsetCommitter {
    let log: PowerLossLog
    let consumer: KafkaConsumer
    let commits = Mutex(0)
    let violations = Mutex<[String]>([])

    init(log: PowerLossLog, consumer: KafkaConsumer) {
        self.log = log
        self.consumer = consumer
    }

    func commit(_ offsets: [KafkaPartition: Int64]) throws {
        var durable: [KafkaPartition: Int64] = [:]
        durable.advance(past: log.durableBlocks)
        for (partition, next) in offsets where next > durable[partition] ?? 0 {
            violations.withLock { $0.append("\(partition) committed at \(next), durable up to \(durable[partition] ?? 0)") }
        }
        commits.withLock { $0 += 1 }
        try consumer.commit(offsets)
    }
}

/// The `pthread_self()` of the thread running the receiver in ``ReliableReceiverTests/receive(tracker:cluster:committer:until:)``.
let receivingThread = Atomic<UInt>(0)

/// The threads that committed (`pthread_self()`).
final class ThreadNames: Sendable {
    let names = Mutex<[UInt]>([])
}

/// Commits through to the consumer and records each committing thread.
final class ThreadRecordingCommitter: OffsetCommitter {
    let consumer: KafkaConsumer
    let threads: ThreadNames

    init(consumer: KafkaConsumer, threads: ThreadNames) {
        self.consumer = consumer
        self.threads = threads
    }

    func commit(_ offsets: [KafkaPartition: Int64]) throws {
        threads.names.withLock { $0.append(UInt(pthread_self())) }
        try consumer.commit(offsets)
    }
}

/// Records received so far in a test, shared with its `done` condition.
final class RecordCount: Sendable {
    let total = Mutex(0)
}
