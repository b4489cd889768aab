import Foundation
import KafkaIO
import Logging

/// The topics sluice owns beside the user's: in distributed mode `<group>-partials` and `<group>-changelog`
/// (compacted), one partition per shard each, `<group>-config` and `<group>-members` (one partition each); with exactly-once output `<group>-progress` (compacted, one
/// partition). At start-up they are created through the admin API when missing (Kafka Streams creates its internal
/// topics the same way), and a partition count other than the one needed is refused.
enum InternalTopics {
    /// The internal topics of distributed mode.
    static func distributed(_ setup: DistributedSetup) -> [KafkaNewTopic] {
        [
            KafkaNewTopic(name: setup.partialsTopic, partitions: setup.shards.count),
            KafkaNewTopic(name: setup.changelogTopic, partitions: setup.shards.count, settings: ["cleanup.policy": "compact"]),
            // Kept for ever and not compacted: its first record is the group's pinned settings (``PinnedSettings``).
            KafkaNewTopic(name: setup.configTopic, partitions: 1, settings: ["retention.ms": "-1"]),
            KafkaNewTopic(name: setup.membersTopic, partitions: 1, settings: ["cleanup.policy": "compact"]),
        ]
    }

    /// Creates the missing topics and checks the partition counts of all of them.
    ///
    /// - Parameter mismatch: The refusal for a topic that has another partition count than it needs.
    /// - Throws: ``StreamingError`` `.invalidConfiguration` (start-up refused) naming the topic when its partition
    ///   count differs, or when it is missing and could not be created.
    static func ensure(
        _ topics: [KafkaNewTopic], producer: KafkaProducer, logger: Logger,
        mismatch: (_ topic: KafkaNewTopic, _ partitions: Int) -> String = { topic, count in
            "\(topic.name) has \(count) partitions where sluice needs \(topic.partitions): delete it, or use a new SLUICE_GROUP_ID"
        }
    ) throws {
        var counts = try producer.topicPartitionCounts(timeout: .seconds(10))
        let missing = topics.filter { counts[$0.name] == nil }
        if !missing.isEmpty {
            let outcomes: [String: KafkaError?]
            do {
                outcomes = try producer.createTopics(missing, timeout: .seconds(10))
            } catch {
                throw refusal(missing[0], "is missing and could not be created (\(error))")
            }
            for topic in missing {
                // Another instance may have created it a moment before.
                if let failure = outcomes[topic.name] ?? nil, failure.codeName != "TOPIC_ALREADY_EXISTS" {
                    throw refusal(topic, "is missing and could not be created (\(failure))")
                }
                logger.info("internal topic created", metadata: ["kafka.topic": "\(topic.name)", "kafka.partitions": "\(topic.partitions)"])
            }
            // A created topic shows in the metadata a moment later.
            for _ in 0..<50 where missing.contains(where: { counts[$0.name] == nil }) {
                Thread.sleep(forTimeInterval: 0.2)
                counts = try producer.topicPartitionCounts(timeout: .seconds(10))
            }
        }
        for topic in topics {
            guard let count = counts[topic.name] else { throw refusal(topic, "was created but does not show in the metadata") }
            guard count == Int(topic.partitions) else { throw StreamingError(.invalidConfiguration, mismatch(topic, count)) }
        }
    }

    private static func refusal(_ topic: KafkaNewTopic, _ what: String) -> StreamingError {
        let settings = topic.settings.map { " --config \($0.key)=\($0.value)" }.joined()
        return StreamingError(
            .invalidConfiguration,
            "internal topic \(topic.name) \(what): create it with kafka-topics.sh --create --topic \(topic.name) --partitions \(topic.partitions)\(settings)")
    }
}
