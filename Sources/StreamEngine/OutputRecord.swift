/// A record for a sink to produce to Kafka.
public struct OutputRecord: Sendable, Equatable {
    /// The destination topic.
    public var topic: String
    /// The record key.
    public var key: [UInt8]
    /// The record value.
    public var value: [UInt8]
    /// The record headers, in order.
    public var headers: [(name: String, value: [UInt8])]
    /// The destination partition; nil: the producer's partitioner picks it from the key.
    public var partition: Int32?

    /// Creates an output record.
    public init(topic: String, key: [UInt8], value: [UInt8], headers: [(name: String, value: [UInt8])] = [], partition: Int32? = nil) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
    }

    /// Records are equal when topic, partition, key, value and headers (in order) are.
    public static func == (lhs: OutputRecord, rhs: OutputRecord) -> Bool {
        lhs.topic == rhs.topic && lhs.partition == rhs.partition && lhs.key == rhs.key && lhs.value == rhs.value
            && lhs.headers.elementsEqual(rhs.headers) { $0.name == $1.name && $0.value == $1.value }
    }
}
