@_spi(Testing) import KafkaIO
import Testing

@Suite(.serialized, .timeLimit(.minutes(2)))
struct KafkaErrorTests {
    @Test func unknownPropertyIsNamed() throws {
        let config = KafkaProducerConfig(common: KafkaConfig(properties: ["no.such.property": "1"]))
        let error = #expect(throws: KafkaError.self) { try KafkaProducer(config: config, logger: quietLogger) }
        #expect(error?.kind == .configuration)
        #expect(error?.message.contains("no.such.property") == true)
    }

    @Test func invalidValueIsNamed() throws {
        let config = KafkaConsumerConfig(common: KafkaConfig(properties: ["fetch.wait.max.ms": "soon"]))
        let error = #expect(throws: KafkaError.self) { try KafkaConsumer(config: config, logger: quietLogger) }
        #expect(error?.message.contains("fetch.wait.max.ms") == true)
    }

    @Test func emptyTopicListIsRefused() throws {
        let consumer = try KafkaConsumer(config: testConsumerConfig("127.0.0.1:1", group: "g"), logger: quietLogger)
        let error = #expect(throws: KafkaError.self) { try consumer.subscribe([]) }
        #expect(error?.kind == .invalidArgument)
        #expect(throws: KafkaError.self) { try consumer.subscribe([""]) }
    }

    @Test func unreachableBrokerFailsWithinTheTimeout() throws {
        // Port 1 on loopback refuses connections.
        let producer = try KafkaProducer(config: KafkaProducerConfig(common: KafkaConfig(bootstrapServers: "127.0.0.1:1")), logger: quietLogger)
        let clock = ContinuousClock()
        let start = clock.now
        let error = #expect(throws: KafkaError.self) { try producer.topicPartitionCounts(timeout: .seconds(2)) }
        #expect(clock.now - start < .seconds(10))
        #expect(error?.kind == .timedOut || error?.kind == .librdkafka)
    }

    @Test func preparingAnOutputTopicIsBestEffort() throws {
        let unreachable = try KafkaProducer(config: KafkaProducerConfig(common: KafkaConfig(bootstrapServers: "127.0.0.1:1")), logger: quietLogger)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(!unreachable.prepare(topic: "counts", timeout: .milliseconds(500)))
        #expect(clock.now - start < .seconds(5))

        let test = try TestTopic("prepared", partitions: 2)
        #expect(test.producer.prepare(topic: test.name, timeout: .seconds(5)))
        #expect(test.producer.prepare(topic: test.name, timeout: .seconds(5)))
        try test.produce(10)
        #expect(test.producer.deliveredCount == 10)
    }

    @Test func deliveryFailsWhileTheBrokerIsDownAndResumesAfter() throws {
        let test = try TestTopic("down", partitions: 1, producerProperties: ["message.timeout.ms": "1500"])
        let (cluster, topic, producer) = (test.cluster, test.name, test.producer)
        try test.produce(1)

        try cluster.setBrokerDown(1)
        try producer.send(KafkaProducerRecord(topic: topic, value: [2]))
        let error = #expect(throws: KafkaError.self) { try producer.flush(timeout: .seconds(10)) }
        #expect(error?.kind == .delivery)

        try cluster.setBrokerUp(1)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        var delivered = false
        while !delivered, clock.now < deadline {
            try producer.send(KafkaProducerRecord(topic: topic, value: [3]))
            delivered = (try? producer.flush(timeout: .seconds(10))) != nil
        }
        #expect(delivered)
    }

    @Test func aRefusedRecordWithHeadersIsAnErrorNotACrash() throws {
        let test = try TestTopic("refused", partitions: 1)
        let (topic, producer) = (test.name, test.producer)
        try test.produce(1)
        let headers = [KafkaHeader(name: "a", value: [1, 2]), KafkaHeader(name: "b", value: [])]
        for _ in 0..<100 {
            // The partition does not exist: the partitioner refuses the record, and its headers are freed once.
            let error = #expect(throws: KafkaError.self) {
                try producer.send(KafkaProducerRecord(topic: topic, partition: 7, value: [1], headers: headers))
            }
            #expect(error?.codeName == "_UNKNOWN_PARTITION")
        }
        try producer.send(KafkaProducerRecord(topic: topic, partition: 0, value: [2], headers: headers))
        try producer.flush(timeout: .seconds(10))
        #expect(producer.deliveredCount == 2)
    }

    @Test func injectedCommitErrorsSurface() throws {
        let test = try TestTopic("commit-error", partitions: 1)
        let (cluster, topic) = (test.cluster, test.name)
        try test.produce(1)
        let consumer = try test.makeConsumer()
        try consumer.subscribe([topic])
        _ = try consume(consumer, count: 1)
        // OffsetCommit is API key 8; 29 (TOPIC_AUTHORIZATION_FAILED) is not retried by librdkafka.
        cluster.failNextRequests(apiKey: 8, code: 29)
        let error = #expect(throws: KafkaError.self) { try consumer.commit([KafkaPartition(topic: topic, partition: 0): 1]) }
        #expect(error?.code == 29)
        try consumer.commit([KafkaPartition(topic: topic, partition: 0): 1])
        consumer.close()
    }

    @Test func transactionalProducerSmoke() throws {
        // The mock's transactions are a smoke test only: it stores no transactional offsets and writes no abort
        // markers, so this only checks that the API calls go through.
        let cluster = try MockCluster(brokerCount: 1, logger: quietLogger)
        let topic = uniqueName("txn")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaProducer(
            config: KafkaProducerConfig(common: KafkaConfig(bootstrapServers: cluster.bootstrapServers), transactionalID: uniqueName("txn")),
            logger: quietLogger
        )
        try producer.initTransactions(timeout: .seconds(10))
        try producer.beginTransaction()
        try producer.send(KafkaProducerRecord(topic: topic, value: [1]))
        try producer.commitTransaction()
        try producer.beginTransaction()
        try producer.send(KafkaProducerRecord(topic: topic, value: [2]))
        try producer.abortTransaction()
    }
}
