/// Reads state back from a checkpoint; the counterpart of ``StateWriter``.
///
/// A reader borrows the checkpoint bytes and is valid only inside the
/// ``StateCodable/init(from:)`` call that received it.
public struct StateReader {
    private var cursor: ByteCursor

    init(_ cursor: ByteCursor) {
        self.cursor = cursor
    }

    /// Runs `body` with a reader over `bytes`; the reader must not escape `body`.
    public static func reading<R>(_ bytes: [UInt8], _ body: (inout StateReader) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { buffer in
            var reader = StateReader(ByteCursor(buffer))
            return try body(&reader)
        }
    }

    /// Whether every byte has been read.
    public var isAtEnd: Bool { cursor.isAtEnd }

    /// Reads an unsigned varint.
    public mutating func readUnsigned() throws(StreamEngineError) -> UInt64 {
        guard let value = cursor.varint() else { throw .malformed("varint") }
        return value
    }

    /// Reads a zigzag varint.
    public mutating func readSigned() throws(StreamEngineError) -> Int64 {
        guard let value = cursor.zigZag() else { throw .malformed("varint") }
        return value
    }

    /// Reads eight little-endian bytes.
    public mutating func readFixed64() throws(StreamEngineError) -> UInt64 {
        guard let value = cursor.fixed64() else { throw .malformed("fixed64") }
        return value
    }

    /// Reads length-prefixed bytes.
    public mutating func readBytes() throws(StreamEngineError) -> [UInt8] {
        guard let span = cursor.lengthPrefixed() else { throw .malformed("bytes") }
        return Array(cursor.buffer[span])
    }

    /// Reads a length-prefixed UTF-8 string.
    public mutating func readString() throws(StreamEngineError) -> String {
        guard let value = cursor.string() else { throw .malformed("string") }
        return value
    }

    /// Reads a length-prefixed section and hands it to `body` as a reader of its own,
    /// which `body` must consume exactly.
    mutating func readSection<T>(
        _ name: String, _ body: (inout StateReader) throws(StreamEngineError) -> T
    ) throws(StreamEngineError) -> T {
        guard let span = cursor.lengthPrefixed() else { throw .malformed(name) }
        var section = StateReader(ByteCursor(UnsafeRawBufferPointer(rebasing: cursor.buffer[span])))
        let value = try body(&section)
        guard section.isAtEnd else { throw .malformed("\(name): trailing bytes") }
        return value
    }
}
