import KafkaIO
import StreamEngine

extension Dictionary where Key == KafkaPartition, Value == Int64 {
    /// Raises each partition's "next offset to read" past the records of `blocks` (never lowers it).
    mutating func advance(past blocks: some Sequence<Block>) {
        for block in blocks {
            for (partition, next) in block.nextOffsets() {
                let key = KafkaPartition(topic: partition.topic, partition: partition.partition)
                self[key] = Swift.max(self[key] ?? 0, next)
            }
        }
    }
}
