import KafkaIO
import StreamEngine

extension Dictionary where Key == KafkaPartition, Value == Int64 {
    /// Raises each partition's "next offset to read" past the records of `blocks` (never lowers it).
    mutating func advance(past blocks: some Sequence<Block>) {
        for block in blocks {
            for (partition, next) in block.nextOffsets() {
                let key = KafkaPartition(partition)
                self[key] = Swift.max(self[key] ?? 0, next)
            }
        }
    }
}

// The one place where the Kafka client's and the engine's names for a partition meet (the two modules do not
// depend on each other).
extension KafkaPartition {
    init(_ partition: TopicPartition) {
        self.init(topic: partition.topic, partition: partition.partition)
    }
}

extension TopicPartition {
    init(_ partition: KafkaPartition) {
        self.init(topic: partition.topic, partition: partition.partition)
    }
}
