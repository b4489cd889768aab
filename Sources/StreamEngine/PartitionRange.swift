/// The offsets of one partition's records inside a ``Block``.
public struct PartitionRange: Hashable, Sendable {
    /// The topic name.
    public var topic: String
    /// The partition number within the topic.
    public var partition: Int32
    /// The smallest offset of the partition's records in the block (inclusive).
    public var firstOffset: Int64
    /// The largest offset of the partition's records in the block (inclusive).
    public var lastOffset: Int64

    /// Creates a partition range.
    public init(topic: String, partition: Int32, firstOffset: Int64, lastOffset: Int64) {
        self.topic = topic
        self.partition = partition
        self.firstOffset = firstOffset
        self.lastOffset = lastOffset
    }
}
