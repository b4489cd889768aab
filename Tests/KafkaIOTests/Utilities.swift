import Foundation
import KafkaIO
import Logging

/// A logger that drops everything, so tests never bootstrap the logging system.
let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// A name no other test uses.
func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8))"
}

/// A consumer config for fast tests against the mock cluster.
func testConsumerConfig(_ bootstrap: String, group: String) -> KafkaConsumerConfig {
    KafkaConsumerConfig(
        common: KafkaConfig(bootstrapServers: bootstrap),
        groupID: group,
        sessionTimeoutMilliseconds: 6000
    )
}

/// An owned copy of a consumed record.
struct ConsumedRecord: Equatable {
    var partition: Int32
    var offset: Int64
    var key: [UInt8]?
    var value: [UInt8]
    var headers: [KafkaHeader]
}

/// Polls until `count` records arrived or `deadline` passed.
func consume(_ consumer: KafkaConsumer, count: Int, within deadline: Duration = .seconds(30)) throws -> [ConsumedRecord] {
    var records: [ConsumedRecord] = []
    let clock = ContinuousClock()
    let end = clock.now + deadline
    while records.count < count, clock.now < end {
        try consumer.poll(timeout: .milliseconds(100)) { event in
            if case .message(let message) = event {
                records.append(ConsumedRecord(
                    partition: message.partition, offset: message.offset,
                    key: message.key.map { Array($0) }, value: Array(message.value), headers: message.headers
                ))
            }
        }
    }
    return records
}

/// A mock cluster with one fresh topic and a producer for it.
struct TestTopic {
    let cluster: MockCluster
    let name: String
    let producer: KafkaProducer

    init(_ prefix: String, partitions: Int, producerProperties: [String: String] = [:]) throws {
        cluster = try MockCluster(brokerCount: 1, logger: quietLogger)
        name = uniqueName(prefix)
        try cluster.createTopic(name, partitions: partitions)
        let common = KafkaConfig(bootstrapServers: cluster.bootstrapServers, properties: producerProperties)
        producer = try KafkaProducer(config: KafkaProducerConfig(common: common), logger: quietLogger)
    }

    /// Produces `count` records `r0`, `r1`, ..., record i to partition `partition(i)`, and waits for delivery.
    func produce(_ count: Int, partition: (Int) -> Int32? = { _ in nil }) throws {
        for index in 0..<count {
            try producer.send(KafkaProducerRecord(topic: name, partition: partition(index), value: Array("r\(index)".utf8)))
        }
        try producer.flush(timeout: .seconds(10))
    }

    /// A consumer in `group` (a fresh one by default).
    func makeConsumer(group: String = uniqueName("group")) throws -> KafkaConsumer {
        try KafkaConsumer(config: testConsumerConfig(cluster.bootstrapServers, group: group), logger: quietLogger)
    }
}
