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

extension KafkaPartition {
    /// The Kafka client's name for the engine's partition of a block: the one conversion between the two modules,
    /// which do not depend on each other.
    init(_ partition: TopicPartition) {
        self.init(topic: partition.topic, partition: partition.partition)
    }
}
