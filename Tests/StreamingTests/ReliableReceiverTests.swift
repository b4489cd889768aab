import Foundation
import Glibc
import KafkaIO
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
    /// consumer and the topic name.
    func receive(
        tracker: ReceivedBlockTracker, cluster: MockCluster, until done: @escaping (ReliableReceiver) -> Bool
    ) throws -> (ReliableReceiver, KafkaConsumer, String) {
        let topic = "input-\(UUID().uuidString.prefix(6))"
        try cluster.createTopic(topic, partitions: 2)
        let producer = try KafkaProducer(config: KafkaProducerConfig(common: KafkaConfig(bootstrapServers: cluster.bootstrapServers)), logger: logger)
        for index in 0..<200 {
            try producer.send(KafkaProducerRecord(topic: topic, partition: Int32(index % 2), value: Array("word \(index)".utf8)))
        }
        try producer.flush(timeout: .seconds(10))
        let configuration = StreamingConfiguration(
            kafka: KafkaConfig(bootstrapServers: cluster.bootstrapServers), inputTopics: [topic], groupID: "group-\(topic)",
            blockIntervalMilliseconds: 50, maxBlockBytes: 512, sessionTimeoutMilliseconds: 6000
        )
        let consumer = try KafkaConsumer(
            config: KafkaConsumerConfig(common: configuration.kafka, groupID: configuration.groupID, sessionTimeoutMilliseconds: 6000),
            logger: logger
        )
        let receiver = ReliableReceiver(
            consumer: consumer, tracker: tracker, configuration: configuration, knownOffsets: [:], logger: logger,
            metrics: StreamingMetrics(), crashTrigger: nil
        )
        let finished = Atomic<Bool>(false)
        let thread = Thread {
            receiver.run()
            finished.store(true, ordering: .releasing)
        }
        thread.start()
        let deadline = ContinuousClock.now + .seconds(30)
        while !done(receiver), ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        receiver.requestStop()
        while !finished.load(ordering: .acquiring) {
            Thread.sleep(forTimeInterval: 0.01)
        }
        return (receiver, consumer, topic)
    }

    @Test func everyCommittedRecordIsInTheLog() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cluster = try MockCluster(logger: logger)
        let (log, _) = try WriteAheadLog.open(directory: directory)
        let tracker = ReceivedBlockTracker(log: log, metrics: StreamingMetrics())
        let received = Mutex(0)
        let (_, consumer, topic) = try receive(tracker: tracker, cluster: cluster) { _ in
            let blocks = (try? tracker.allocateBatch(time: 0).blocks) ?? []
            return received.withLock { count in
                count += blocks.reduce(0) { $0 + $1.recordCount }
                return count == 200
            }
        }
        defer { consumer.close() }
        #expect(received.withLock { $0 } == 200)
        let partitions = [KafkaPartition(topic: topic, partition: 0), KafkaPartition(topic: topic, partition: 1)]
        #expect(try consumer.committed(partitions, timeout: .seconds(5)) == [partitions[0]: 100, partitions[1]: 100])

        log.close()
        let (_, recovery) = try WriteAheadLog.open(directory: directory)
        var logged: [Int32: [Int64]] = [:]
        for entry in recovery.entries {
            guard case .block(let block) = try WALRecord(decoding: entry.payload, at: entry.position) else { continue }
            block.forEachRecord { logged[$0.partition, default: []].append($0.offset) }
        }
        #expect(logged == [0: Array(0..<100), 1: Array(0..<100)])
    }

    @Test func aFailingWALStopsCommitsAndReportsTheFailure() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cluster = try MockCluster(logger: logger)
        // The first block goes to segment 1; the next one rolls to segment 2, which is /dev/full (ENOSPC).
        let (log, _) = try WriteAheadLog.open(directory: directory, options: .init(segmentSizeLimit: 64)) { path in
            path.hasSuffix("00000000000000000002.wal")
                ? Glibc.open("/dev/full", O_WRONLY | O_CLOEXEC)
                : Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        }
        let tracker = ReceivedBlockTracker(log: log, metrics: StreamingMetrics())
        let (receiver, consumer, topic) = try receive(tracker: tracker, cluster: cluster) { receiver in
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
}
