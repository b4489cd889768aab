/// Appends state to a checkpoint in the engine's compact binary encoding.
public struct StateWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8] = []

    /// Creates an empty writer.
    public init() {}

    /// Writes an unsigned integer as a varint.
    public mutating func writeUnsigned(_ value: UInt64) {
        bytes.appendVarint(value)
    }

    /// Writes a signed integer as a zigzag varint.
    public mutating func writeSigned(_ value: Int64) {
        bytes.appendZigZag(value)
    }

    /// Writes eight bytes, little-endian.
    public mutating func writeFixed64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Writes a length, then the bytes.
    public mutating func writeBytes(_ value: some Collection<UInt8>) {
        bytes.appendLengthPrefixed(value)
    }

    /// Writes bytes as they are: what another writer wrote.
    mutating func writeRaw(_ value: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: value)
    }

    /// Writes a string as length-prefixed UTF-8.
    public mutating func writeString(_ value: String) {
        bytes.appendLengthPrefixed(value.utf8)
    }
}
