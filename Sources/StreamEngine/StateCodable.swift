/// A value that can be stored in a checkpoint: the keys and states of stateful operators.
///
/// Encodings must be deterministic: equal values must write identical bytes.
public protocol StateCodable {
    /// Writes the value.
    func encode(to writer: inout StateWriter)
    /// Reads a value written by ``encode(to:)``.
    init(from reader: inout StateReader) throws(StreamEngineError)
}

/// A key of keyed state: hashable for lookup, comparable for deterministic ordering
/// of checkpoints and window output, and codable into checkpoints.
public typealias StateKey = Hashable & Comparable & StateCodable

extension String: StateCodable {
    /// Writes the string as length-prefixed UTF-8.
    public func encode(to writer: inout StateWriter) {
        writer.writeString(self)
    }

    /// Reads length-prefixed UTF-8.
    public init(from reader: inout StateReader) throws(StreamEngineError) {
        self = try reader.readString()
    }
}

extension Int64: StateCodable {
    /// Writes the integer as a zigzag varint.
    public func encode(to writer: inout StateWriter) {
        writer.writeSigned(self)
    }

    /// Reads a zigzag varint.
    public init(from reader: inout StateReader) throws(StreamEngineError) {
        self = try reader.readSigned()
    }
}

extension Int: StateCodable {
    /// Writes the integer as a zigzag varint.
    public func encode(to writer: inout StateWriter) {
        writer.writeSigned(Int64(self))
    }

    /// Reads a zigzag varint that must fit `Int`.
    public init(from reader: inout StateReader) throws(StreamEngineError) {
        guard let value = Int(exactly: try reader.readSigned()) else { throw .malformed("Int out of range") }
        self = value
    }
}

extension Double: StateCodable {
    /// Writes the IEEE 754 bit pattern, little-endian.
    public func encode(to writer: inout StateWriter) {
        writer.writeFixed64(bitPattern)
    }

    /// Reads an IEEE 754 bit pattern.
    public init(from reader: inout StateReader) throws(StreamEngineError) {
        self = Double(bitPattern: try reader.readFixed64())
    }
}

extension Array: StateCodable where Element: StateCodable {
    /// Writes the count, then the elements in order.
    public func encode(to writer: inout StateWriter) {
        writer.writeUnsigned(UInt64(count))
        for element in self {
            element.encode(to: &writer)
        }
    }

    /// Reads the count, then the elements.
    public init(from reader: inout StateReader) throws(StreamEngineError) {
        let count = try reader.readUnsigned()
        self = []
        for _ in 0..<count {
            append(try Element(from: &reader))
        }
    }
}

extension Dictionary: StateCodable where Key: StateKey, Value: StateCodable {
    /// Writes the count, then the entries in the byte order of their encoded keys, so equal dictionaries encode
    /// identically. (Comparing a few bytes is far cheaper than comparing `String`s; the order is any fixed one.)
    // Specialized for the word count's stores, which are encoded through generic code at every checkpoint.
    @_specialize(where Key == String, Value == Int64)
    @_specialize(where Key == Int64, Value == [String: Int64])
    public func encode(to writer: inout StateWriter) {
        writer.writeUnsigned(UInt64(count))
        let entries = Array(self)
        var keys = StateWriter()
        var ends: [Int] = []
        ends.reserveCapacity(entries.count)
        for entry in entries {
            entry.key.encode(to: &keys)
            ends.append(keys.bytes.count)
        }
        keys.bytes.withUnsafeBytes { keys in
            func key(_ index: Int) -> UnsafeRawBufferPointer {
                UnsafeRawBufferPointer(rebasing: keys[(index == 0 ? 0 : ends[index - 1])..<ends[index]])
            }
            // Sorted on each key's first eight bytes as one big-endian integer, the rest compared only on a tie: the
            // sort then reads an array of pairs instead of keys spread over the buffer.
            var order = entries.indices.map { index in
                var prefix: UInt64 = 0
                withUnsafeMutableBytes(of: &prefix) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: key(index).prefix(8))) }
                return (prefix: UInt64(bigEndian: prefix), index: index)
            }
            order.sort { $0.prefix != $1.prefix ? $0.prefix < $1.prefix : key($0.index).lexicographicallyPrecedes(key($1.index)) }
            for (_, index) in order {
                writer.writeRaw(key(index))
                entries[index].value.encode(to: &writer)
            }
        }
    }

    /// Reads the count, then the entries; a repeated key is malformed.
    public init(from reader: inout StateReader) throws(StreamEngineError) {
        let count = try reader.readUnsigned()
        self = [:]
        for _ in 0..<count {
            let key = try Key(from: &reader)
            guard updateValue(try Value(from: &reader), forKey: key) == nil else { throw .malformed("repeated key") }
        }
    }
}
