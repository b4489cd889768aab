/// A bounds-checked reader over borrowed bytes. Every read returns `nil` instead of
/// trapping when the input is truncated or malformed; callers turn that into their
/// own error. Valid only while the memory it reads stays alive.
struct ByteCursor {
    let buffer: UnsafeRawBufferPointer
    private(set) var position: Int

    init(_ buffer: UnsafeRawBufferPointer, position: Int = 0) {
        self.buffer = buffer
        self.position = position
    }

    var isAtEnd: Bool { position == buffer.count }

    mutating func byte() -> UInt8? {
        guard position < buffer.count else { return nil }
        defer { position += 1 }
        return buffer[position]
    }

    /// Reads an unsigned LEB128 varint; rejects encodings longer than 10 bytes or above `UInt64.max`.
    mutating func varint() -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while position < buffer.count {
            let byte = buffer[position]
            position += 1
            if shift == 63, byte > 1 { return nil }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
        }
        return nil
    }

    /// Reads a varint that must fit a non-negative `Int`.
    mutating func count() -> Int? {
        varint().flatMap { Int(exactly: $0) }
    }

    mutating func zigZag() -> Int64? {
        varint().map { Int64(bitPattern: ($0 >> 1) ^ (0 &- ($0 & 1))) }
    }

    /// Reads eight little-endian bytes.
    mutating func fixed64() -> UInt64? {
        guard buffer.count - position >= 8 else { return nil }
        defer { position += 8 }
        return UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: position, as: UInt64.self))
    }

    /// Skips `count` bytes and returns their positions in the buffer.
    mutating func span(_ count: Int) -> Range<Int>? {
        guard count >= 0, buffer.count - position >= count else { return nil }
        defer { position += count }
        return position..<position + count
    }

    /// Reads a varint length, then that many bytes.
    mutating func lengthPrefixed() -> Range<Int>? {
        count().flatMap { span($0) }
    }

    /// Reads a length-prefixed string, which must be valid UTF-8.
    mutating func string() -> String? {
        // Over a typed buffer, not a slice of the raw one: the slice took the generic path (metadata lookups per call).
        lengthPrefixed().flatMap { String(validating: UnsafeRawBufferPointer(rebasing: buffer[$0]).assumingMemoryBound(to: UInt8.self), as: UTF8.self) }
    }
}
