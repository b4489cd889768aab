import Foundation
@testable import KafkaIO
import Synchronization
import Testing

@Suite(.serialized, .timeLimit(.minutes(2)))
struct KafkaRoundTripTests {
    @Test func tenThousandRecordsComeBackInPartitionOrder() throws {
        let cluster = try MockCluster(brokerCount: 1, logger: quietLogger)
        let topic = uniqueName("roundtrip")
        try cluster.createTopic(topic, partitions: 4)

        let producer = try KafkaProducer(config: KafkaProducerConfig(common: KafkaConfig(bootstrapServers: cluster.bootstrapServers)), logger: quietLogger)
        var sent: [Int32: [(key: [UInt8], value: [UInt8], headers: [KafkaHeader])]] = [:]
        for index in 0..<10_000 {
            let partition = Int32(index % 4)
            let key = Array("key-\(index)".utf8)
            let value = Array("value \(index) ✓".utf8)
            let headers = [KafkaHeader(name: "index", value: Array(String(index).utf8)), KafkaHeader(name: "empty", value: [])]
            try producer.send(KafkaProducerRecord(topic: topic, partition: partition, key: key, value: value, headers: headers))
            sent[partition, default: []].append((key, value, headers))
        }
        try producer.flush(timeout: .seconds(30))
        #expect(producer.deliveredCount == 10_000)

        let rebalances = Mutex<[KafkaRebalance]>([])
        let consumer = try KafkaConsumer(config: testConsumerConfig(cluster.bootstrapServers, group: uniqueName("group")), logger: quietLogger)
        try consumer.subscribe([topic]) { event in
            rebalances.withLock { $0.append(event) }
            return [:]
        }
        let records = try consume(consumer, count: 10_000)
        #expect(records.count == 10_000)
        for partition in Int32(0)..<4 {
            let received = records.filter { $0.partition == partition }
            let expected = sent[partition] ?? []
            #expect(received.map(\.offset) == Array(0..<Int64(expected.count)))
            #expect(received.map(\.key) == expected.map(\.key))
            #expect(received.map(\.value) == expected.map(\.value))
            #expect(received.map(\.headers) == expected.map(\.headers))
        }
        let assigned = rebalances.withLock { $0 }
        #expect(assigned.first == .assigned((0..<4).map { KafkaPartition(topic: topic, partition: $0) }))
        consumer.close()
        #expect(rebalances.withLock { $0 }.last == .revoked((0..<4).map { KafkaPartition(topic: topic, partition: $0) }))
    }

    @Test func committedOffsetsReadBackAsCommitted() throws {
        let test = try TestTopic("commit", partitions: 2)
        let topic = test.name
        try test.produce(100) { Int32($0 % 2) }

        let group = uniqueName("group")
        let consumer = try test.makeConsumer(group: group)
        try consumer.subscribe([topic])
        _ = try consume(consumer, count: 100)
        let offsets = [KafkaPartition(topic: topic, partition: 0): Int64(37), KafkaPartition(topic: topic, partition: 1): Int64(50)]
        try consumer.commit(offsets)
        // Committing the same offsets again is not an error.
        try consumer.commit(offsets)
        #expect(try consumer.committed(Array(offsets.keys), timeout: .seconds(5)) == offsets)
        consumer.close()

        // A new member of the same group starts where the group committed.
        let second = try test.makeConsumer(group: group)
        try second.subscribe([topic])
        // Partition 0 holds offsets 0..<50 and resumes at 37; partition 1 was committed at its end (50).
        let rest = try consume(second, count: 13)
        #expect(rest.count == 13)
        #expect(rest.filter { $0.partition == 0 }.map(\.offset) == Array(37..<50))
        #expect(rest.filter { $0.partition == 1 }.map(\.offset) == Array(50..<50))
        second.close()
    }

    @Test func explicitStartOffsetsFromTheRebalanceHandlerWin() throws {
        let test = try TestTopic("start", partitions: 1)
        let topic = test.name
        try test.produce(20)
        let consumer = try test.makeConsumer()
        try consumer.subscribe([topic]) { event in
            guard case .assigned = event else { return [:] }
            return [KafkaPartition(topic: topic, partition: 0): 15]
        }
        let records = try consume(consumer, count: 5)
        #expect(records.map(\.offset) == [15, 16, 17, 18, 19])
        consumer.close()
    }

    /// Polls one record at a time until the first arrives (20 s at most), then gives the fetch half a second to
    /// fill the prefetch queue; the records taken (1, or 0 if none came).
    private func awaitFirstRecord(_ consumer: KafkaConsumer) throws -> Int {
        var received = 0
        let deadline = ContinuousClock.now + .seconds(20)
        while received == 0, ContinuousClock.now < deadline {
            try consumer.poll(timeout: .milliseconds(100), maxMessages: 1) { event in
                if case .message = event { received += 1 }
            }
        }
        Thread.sleep(forTimeInterval: 0.5)
        return received
    }

    @Test func aPollReturnsWhatIsQueuedWithoutWaitingForAFullBatch() throws {
        let test = try TestTopic("prompt", partitions: 1)
        try test.produce(5)
        let consumer = try test.makeConsumer()
        try consumer.subscribe([test.name])
        // Once the first record is in, the fetch has queued the others.
        var received = try awaitFirstRecord(consumer)
        // librdkafka's batch call would wait out the whole timeout for 1,024 events.
        let started = ContinuousClock.now
        try consumer.poll(timeout: .seconds(10), maxMessages: 1024) { event in
            if case .message = event { received += 1 }
        }
        #expect(received == 5)
        #expect(ContinuousClock.now - started < .seconds(5))
        consumer.close()
    }

    /// librdkafka 2.0.2 refills a drained prefetch queue only once a request wakes its broker thread (see
    /// `KafkaConsumer.keepFetching`); the request's answer is not needed, so the poll that sends it must not wait for
    /// it. With every answer 300 ms away, each poll of 1,024 records already queued returns at once; it used to wait
    /// 100 ms for the answer (the receiver sat idle a round trip per refill: 3.4 against 2.4 s over 1 M lines at 20 ms).
    @Test func aPollThatWakesTheFetcherDoesNotWaitForTheBroker() throws {
        let test = try TestTopic("wake", partitions: 1)
        try test.produce(30_000)
        let consumer = try test.makeConsumer()
        try consumer.subscribe([test.name])
        _ = try awaitFirstRecord(consumer)
        try test.cluster.setRoundTripTime(.milliseconds(300), broker: 1)
        var slowest = Duration.zero
        var fullPolls = 0
        while true {
            var taken = 0
            let started = ContinuousClock.now
            try consumer.poll(timeout: .zero, maxMessages: 1024) { event in
                if case .message = event { taken += 1 }
            }
            guard taken == 1024 else { break }
            slowest = max(slowest, ContinuousClock.now - started)
            fullPolls += 1
        }
        #expect(fullPolls >= 4, "the queue held \(fullPolls) full polls")
        #expect(slowest < .milliseconds(80), "the slowest poll of queued records took \(slowest)")
        consumer.close()
    }

    @Test func endOfPartitionIsReported() throws {
        let test = try TestTopic("eof", partitions: 1)
        let topic = test.name
        try test.produce(3)
        let consumer = try test.makeConsumer()
        try consumer.subscribe([topic])
        var endOffset: Int64?
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while endOffset == nil, clock.now < deadline {
            try consumer.poll(timeout: .milliseconds(100)) { event in
                if case .endOfPartition(_, let next) = event { endOffset = next }
            }
        }
        #expect(endOffset == 3)
        #expect(try consumer.watermarks(of: KafkaPartition(topic: topic, partition: 0), timeout: .seconds(5)) == (0, 3))
        consumer.close()
    }
}

/// librdkafka has no rebalance protocol to tell once a consumer is closing (NULL): the
/// rebalance callback must not trap on it (it did, as `String(cString:)` of NULL, when a consumer closed during its
/// first rebalance).
@Suite(.serialized, .timeLimit(.minutes(2)))
struct RebalanceProtocolTests {
    @Test func aClosedConsumerHasNoProtocol() throws {
        let cluster = try MockCluster(brokerCount: 1, logger: quietLogger)
        let consumer = try KafkaConsumer(config: testConsumerConfig(cluster.bootstrapServers, group: uniqueName("group")), logger: quietLogger)
        #expect(consumer.rebalanceProtocol == "NONE")
        consumer.close()
        #expect(consumer.rebalanceProtocol == nil)
    }

    @Test func consumersClosedDuringTheirFirstRebalanceCloseCleanly() throws {
        let cluster = try MockCluster(brokerCount: 1, logger: quietLogger)
        let topic = uniqueName("first-rebalance")
        try cluster.createTopic(topic, partitions: 2)
        let group = uniqueName("group")
        for attempt in 0..<3 {
            let consumer = try KafkaConsumer(config: testConsumerConfig(cluster.bootstrapServers, group: group), logger: quietLogger)
            try consumer.subscribe([topic]) { _ in [:] }
            // From just after the join starts to past the first assignment (the mock's first join takes 3 s).
            let deadline = ContinuousClock.now + .milliseconds(500 * attempt)
            while ContinuousClock.now < deadline { _ = try consumer.poll(timeout: .milliseconds(50)) { _ in } }
            consumer.close()
        }
    }
}
