/// An immutable batch of Kafka records: the unit the receiver writes to the write-ahead log.
///
/// ``bytes`` is the complete, self-describing encoding and is written to the log as is.
/// Layout (varints are unsigned LEB128, "zigzag" marks zigzag-encoded signed varints):
///
///     u8      format version (1)
///     varint  topic count, then per topic: varint length, UTF-8 name
///     varint  range count, then per range: varint topic index, zigzag partition,
///             varint first offset, varint last offset - first offset
///     varint  record count
///     records, each:
///             varint  range index
///             zigzag  offset - previous offset of the same range (0 before its first record)
///             zigzag  timestamp - previous record's timestamp (0 before the first record)
///             varint  key length + 1 (0: no key), key bytes
///             varint  value length, value bytes
///
/// Offsets are in `0..<Int64.max`; each range's first and last offsets are exactly the
/// smallest and largest offsets of its records.
public struct Block: Sendable, Equatable {
    /// The current format version.
    static let formatVersion: UInt8 = 1

    /// The encoded block.
    public let bytes: [UInt8]
    /// One range per partition present in the block, in order of first appearance.
    public let ranges: [PartitionRange]
    /// The number of records in the block.
    public let recordCount: Int
    /// Where the record section starts in ``bytes``.
    let recordsStart: Int
    /// The largest record timestamp of each range, parallel to ``ranges``.
    let latestTimestamps: [Int64]
    /// An object that lives exactly as long as some copy of the block does, for whoever accounts for the memory of
    /// blocks: its deinit notes that the block is gone. Not part of the block's value.
    public var lifetime: (any AnyObject & Sendable)?

    init(bytes: [UInt8], ranges: [PartitionRange], recordCount: Int, recordsStart: Int, latestTimestamps: [Int64]) {
        self.bytes = bytes
        self.ranges = ranges
        self.recordCount = recordCount
        self.recordsStart = recordsStart
        self.latestTimestamps = latestTimestamps
    }

    /// Decodes and fully validates an encoded block (as read back from the write-ahead log).
    ///
    /// Never traps on bad input: every inconsistency is reported as a ``StreamEngineError``.
    public init(decoding bytes: [UInt8]) throws(StreamEngineError) {
        let decoded = bytes.withUnsafeBytes { raw in
            Result { () throws(StreamEngineError) in try Block.decode(raw) }
        }
        let (ranges, recordCount, recordsStart, latestTimestamps) = try decoded.get()
        self.init(bytes: bytes, ranges: ranges, recordCount: recordCount, recordsStart: recordsStart, latestTimestamps: latestTimestamps)
    }

    /// Two blocks are equal when their encodings are.
    public static func == (lhs: Block, rhs: Block) -> Bool {
        lhs.bytes == rhs.bytes
    }

    /// Whether the record section was dropped because the records were read ahead of the batch (see
    /// ``StreamGraph/readAhead(_:nextBatchAfter:)``); the ranges, counts and latest timestamps remain.
    var recordsWereReadAhead: Bool { bytes.isEmpty }

    /// This block without its record section, once its records were read ahead: a batch still needs its ranges,
    /// counts and latest timestamps, and the lifetime still accounts for the block until the batch drops it.
    func droppingRecords() -> Block {
        var header = Block(bytes: [], ranges: ranges, recordCount: recordCount, recordsStart: 0, latestTimestamps: latestTimestamps)
        header.lifetime = lifetime
        return header
    }

    /// The offset to resume each partition from once this block is processed: last offset + 1.
    public func nextOffsets() -> [TopicPartition: Int64] {
        Dictionary(uniqueKeysWithValues: ranges.map {
            (TopicPartition(topic: $0.topic, partition: $0.partition), $0.lastOffset + 1)
        })
    }

    private static func decode(
        _ raw: UnsafeRawBufferPointer
    ) throws(StreamEngineError) -> (ranges: [PartitionRange], recordCount: Int, recordsStart: Int, latestTimestamps: [Int64]) {
        var cursor = ByteCursor(raw)
        guard let version = cursor.byte() else { throw .unsupportedVersion(nil) }
        guard version == formatVersion else { throw .unsupportedVersion(version) }

        guard let topicCount = cursor.count() else { throw .malformed("topic count") }
        var topics: [String] = []
        for _ in 0..<topicCount {
            guard let topic = cursor.string() else { throw .malformed("topic name") }
            topics.append(topic)
        }

        guard let rangeCount = cursor.count() else { throw .malformed("range count") }
        var ranges: [PartitionRange] = []
        var seen: Set<TopicPartition> = []
        for _ in 0..<rangeCount {
            guard let topic = cursor.count(), topic < topics.count,
                  let partition = cursor.zigZag().flatMap({ Int32(exactly: $0) }),
                  let first = cursor.varint().flatMap({ Int64(exactly: $0) }),
                  let span = cursor.varint().flatMap({ Int64(exactly: $0) }),
                  span < Int64.max - first,
                  seen.insert(TopicPartition(topic: topics[topic], partition: partition)).inserted
            else { throw .malformed("partition range") }
            ranges.append(PartitionRange(topic: topics[topic], partition: partition, firstOffset: first, lastOffset: first + span))
        }

        guard let recordCount = cursor.count() else { throw .malformed("record count") }
        let recordsStart = cursor.position
        var smallest = [Int64](repeating: .max, count: ranges.count)
        var largest = [Int64](repeating: .min, count: ranges.count)
        var latest = [Int64](repeating: .min, count: ranges.count)
        var found = 0
        let complete = scanRecords(raw, from: recordsStart, rangeCount: ranges.count) { record in
            smallest[record.range] = min(smallest[record.range], record.offset)
            largest[record.range] = max(largest[record.range], record.offset)
            latest[record.range] = max(latest[record.range], record.timestamp)
            found += 1
        }
        guard complete else { throw .malformed("record \(found)") }
        guard found == recordCount else { throw .malformed("record count \(recordCount) but \(found) records") }
        for (index, range) in ranges.enumerated()
        where smallest[index] != range.firstOffset || largest[index] != range.lastOffset {
            throw .malformed("offsets of \(range.topic)-\(range.partition) outside or not spanning its range")
        }
        return (ranges, recordCount, recordsStart, latest)
    }
}
