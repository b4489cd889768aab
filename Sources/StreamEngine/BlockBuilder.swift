/// Accumulates records into a ``Block``, appending each straight into one growing byte buffer.
///
/// Topic names and partitions are interned, so appending allocates nothing per record
/// beyond occasional buffer growth. ``finish()`` returns the block and resets the builder
/// for reuse, keeping its buffer capacity.
public struct BlockBuilder {
    /// Per-block tables, reset by ``finish()``.
    private struct Tables {
        var topics: [String] = []
        var topicIndices: [String: Int] = [:]
        var ranges: [OpenRange] = []
        var rangeIndices: [RangeKey: Int] = [:]
        var lastRange: Int?
        var previousTimestamp: Int64 = 0
        var recordCount = 0
    }

    private struct RangeKey: Hashable {
        var topic: Int
        var partition: Int32
    }

    private struct OpenRange {
        var key: RangeKey
        var first: Int64
        var last: Int64
        var previous: Int64
        var latestTimestamp: Int64 = .min
    }

    private var records: [UInt8] = []
    private var tables = Tables()

    /// Creates an empty builder whose record buffer can hold `capacity` bytes before growing.
    public init(reservingCapacity capacity: Int) {
        records.reserveCapacity(capacity)
    }

    /// The number of record bytes appended so far (the finished block adds a small header).
    public var byteCount: Int { records.count }

    /// The number of records appended so far.
    public var recordCount: Int { tables.recordCount }

    /// Whether no record has been appended since the builder was created or last finished.
    public var isEmpty: Bool { tables.recordCount == 0 }

    /// Appends one record; `key` and `value` are copied into the block.
    ///
    /// - Precondition: `offset` is a Kafka offset, in `0..<Int64.max`.
    public mutating func append(
        topic: String, partition: Int32, offset: Int64, timestamp: Int64,
        key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer
    ) {
        precondition(offset >= 0 && offset < .max, "Kafka offsets lie in 0..<Int64.max")
        let range = rangeIndex(topic: topic, partition: partition, offset: offset)
        records.appendVarint(UInt64(range))
        records.appendZigZag(offset &- tables.ranges[range].previous)
        records.appendZigZag(timestamp &- tables.previousTimestamp)
        if let key {
            records.appendVarint(UInt64(key.count) + 1)
            records.append(raw: key)
        } else {
            records.append(0)
        }
        records.appendVarint(UInt64(value.count))
        records.append(raw: value)

        tables.ranges[range].previous = offset
        tables.ranges[range].first = min(tables.ranges[range].first, offset)
        tables.ranges[range].last = max(tables.ranges[range].last, offset)
        tables.previousTimestamp = timestamp
        tables.ranges[range].latestTimestamp = max(tables.ranges[range].latestTimestamp, timestamp)
        tables.recordCount += 1
    }

    /// Returns the block of all records appended since the last call and resets the builder.
    public mutating func finish() -> Block {
        var bytes: [UInt8] = [Block.formatVersion]
        bytes.appendVarint(UInt64(tables.topics.count))
        for topic in tables.topics {
            bytes.appendLengthPrefixed(topic.utf8)
        }
        bytes.appendVarint(UInt64(tables.ranges.count))
        for range in tables.ranges {
            bytes.appendVarint(UInt64(range.key.topic))
            bytes.appendZigZag(Int64(range.key.partition))
            bytes.appendVarint(UInt64(range.first))
            bytes.appendVarint(UInt64(range.last - range.first))
        }
        bytes.appendVarint(UInt64(tables.recordCount))
        let recordsStart = bytes.count
        bytes.reserveCapacity(recordsStart + records.count)
        bytes.append(contentsOf: records)

        let block = Block(
            bytes: bytes,
            ranges: tables.ranges.map {
                PartitionRange(
                    topic: tables.topics[$0.key.topic], partition: $0.key.partition,
                    firstOffset: $0.first, lastOffset: $0.last)
            },
            recordCount: tables.recordCount,
            recordsStart: recordsStart,
            latestTimestamps: tables.ranges.map(\.latestTimestamp)
        )
        records.removeAll(keepingCapacity: true)
        tables = Tables()
        return block
    }

    /// The index of the range for `topic`/`partition`, opening it at `offset` if new.
    private mutating func rangeIndex(topic: String, partition: Int32, offset: Int64) -> Int {
        if let last = tables.lastRange,
           tables.ranges[last].key.partition == partition,
           tables.topics[tables.ranges[last].key.topic] == topic {
            return last
        }
        let topicIndex: Int
        if let known = tables.topicIndices[topic] {
            topicIndex = known
        } else {
            topicIndex = tables.topics.count
            tables.topics.append(topic)
            tables.topicIndices[topic] = topicIndex
        }
        let key = RangeKey(topic: topicIndex, partition: partition)
        let index: Int
        if let known = tables.rangeIndices[key] {
            index = known
        } else {
            index = tables.ranges.count
            tables.ranges.append(OpenRange(key: key, first: offset, last: offset, previous: 0))
            tables.rangeIndices[key] = index
        }
        tables.lastRange = index
        return index
    }
}
