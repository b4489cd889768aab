import StreamEngine

/// A record to put into a test block.
struct TestRecord: Equatable {
    var topic = "lines"
    var partition: Int32 = 0
    var offset: Int64 = 0
    var timestamp: Int64
    var key: [UInt8]?
    var value: [UInt8]

    init(topic: String = "lines", partition: Int32 = 0, offset: Int64 = 0, timestamp: Int64, key: [UInt8]? = nil, value: [UInt8]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
    }

    init(_ text: String, at timestamp: Int64, offset: Int64 = 0) {
        self.init(offset: offset, timestamp: timestamp, value: Array(text.utf8))
    }
}

/// Builds a block of `records` with a `BlockBuilder`.
func makeBlock(_ records: [TestRecord]) -> Block {
    var builder = BlockBuilder(reservingCapacity: 64)
    for record in records {
        record.value.withUnsafeBytes { value in
            if let key = record.key {
                key.withUnsafeBytes { key in
                    builder.append(topic: record.topic, partition: record.partition, offset: record.offset,
                                   timestamp: record.timestamp, key: key, value: value)
                }
            } else {
                builder.append(topic: record.topic, partition: record.partition, offset: record.offset,
                               timestamp: record.timestamp, key: nil, value: value)
            }
        }
    }
    return builder.finish()
}

/// A block of text lines `(text, timestamp)` on partition 0, offsets counting from 0.
func lines(_ lines: (String, Int64)...) -> Block {
    makeBlock(lines.enumerated().map { TestRecord($1.0, at: $1.1, offset: Int64($0)) })
}

/// The records of `block`, copied out.
func records(of block: Block) -> [TestRecord] {
    var result: [TestRecord] = []
    block.forEachRecord { record in
        result.append(TestRecord(
            topic: record.topic, partition: record.partition, offset: record.offset, timestamp: record.timestamp,
            key: record.key.map { Array($0) }, value: Array(record.value)))
    }
    return result
}

/// The value of each input record as a string.
func texts(_ graph: StreamGraph) -> DStream<String> {
    graph.input().map { String(decoding: $0.value, as: UTF8.self) }
}

/// Collects what a sink receives, batch by batch.
final class Collected<Element> {
    var batches: [[Element]] = []

    var last: [Element] { batches.last ?? [] }

    init(_ stream: DStream<Element>) {
        stream.foreachBatch { [unowned self] _, elements in batches.append(elements) }
    }
}

extension OutputRecord {
    /// The value as a string.
    var text: String { String(decoding: value, as: UTF8.self) }
}
