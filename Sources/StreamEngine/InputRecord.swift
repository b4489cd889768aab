/// One input record, as seen by operators on ``StreamGraph/input()``.
///
/// It references its block's bytes rather than copying them: ``withValueBytes(_:)`` reads the
/// value in place, ``key`` and ``value`` copy on access.
public struct InputRecord: Sendable, Equatable {
    /// The topic the record was read from.
    public let topic: String
    /// The partition the record was read from.
    public let partition: Int32
    /// The record's offset in its partition.
    public let offset: Int64
    /// The record's event time, in milliseconds since the Unix epoch.
    public let timestamp: Int64
    private let storage: [UInt8]
    // Byte ranges in `storage`, as 32-bit numbers (a block is far below 4 GiB) to keep a batch of records small;
    // `keyCount == .max` means no key.
    private let keyStart: UInt32
    private let keyCount: UInt32
    private let valueStart: UInt32
    private let valueCount: UInt32

    private var keyRange: Range<Int>? {
        keyCount == .max ? nil : Int(keyStart)..<Int(keyStart) + Int(keyCount)
    }

    private var valueRange: Range<Int> { Int(valueStart)..<Int(valueStart) + Int(valueCount) }

    /// A copy of the record key, or `nil` if the record has none.
    public var key: [UInt8]? { keyRange.map { Array(storage[$0]) } }

    /// A copy of the record value.
    public var value: [UInt8] { Array(storage[valueRange]) }

    public static func == (lhs: InputRecord, rhs: InputRecord) -> Bool {
        (lhs.topic, lhs.partition, lhs.offset, lhs.timestamp) == (rhs.topic, rhs.partition, rhs.offset, rhs.timestamp)
            && lhs.key == rhs.key && lhs.value == rhs.value
    }

    /// Calls `body` with the value bytes in place; the buffer is valid only inside `body`.
    public func withValueBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try storage.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[valueRange])) }
    }

    /// The records of `blocks`, in order, timed by their timestamps.
    static func elements(of blocks: [Block]) -> Elements<InputRecord> {
        var records = Elements<InputRecord>()
        let count = blocks.reduce(0) { $0 + $1.recordCount }
        records.values.reserveCapacity(count)
        records.times.reserveCapacity(count)
        for block in blocks {
            forEach(in: block) { records.append($0, at: $0.timestamp) }
        }
        return records
    }

    /// Calls `body` with each record of `block`, in order.
    static func forEach(in block: Block, _ body: (InputRecord) -> Void) {
        block.bytes.withUnsafeBytes { raw in
            block.forEachLayout(in: raw) { body(InputRecord(in: block, at: $0)) }
        }
    }
}

extension InputRecord {
    /// The record of `block` at `layout`, referencing the block's bytes.
    init(in block: Block, at layout: Block.RecordLayout) {
        let range = block.ranges[layout.range]
        self.init(
            topic: range.topic, partition: range.partition, offset: layout.offset, timestamp: layout.timestamp,
            storage: block.bytes,
            keyStart: UInt32(layout.key?.lowerBound ?? 0), keyCount: layout.key.map { UInt32($0.count) } ?? .max,
            valueStart: UInt32(layout.value.lowerBound), valueCount: UInt32(layout.value.count))
    }

    /// A record that owns a copy of its key and value.
    public init(topic: String, partition: Int32, offset: Int64, timestamp: Int64, key: [UInt8]?, value: [UInt8]) {
        self.init(
            topic: topic, partition: partition, offset: offset, timestamp: timestamp, storage: (key ?? []) + value,
            keyStart: 0, keyCount: key.map { UInt32($0.count) } ?? .max, valueStart: UInt32(key?.count ?? 0),
            valueCount: UInt32(value.count))
    }
}
