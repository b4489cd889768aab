extension Array where Element == UInt8 {
    /// Appends `value` as an unsigned LEB128 varint (1 to 10 bytes).
    mutating func appendVarint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        append(UInt8(rest))
    }

    /// Appends `value` zigzag-encoded as a varint, so small magnitudes of either sign stay short.
    mutating func appendZigZag(_ value: Int64) {
        appendVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// Appends the length of `bytes` as a varint, then the bytes.
    mutating func appendLengthPrefixed(_ bytes: some Collection<UInt8>) {
        appendVarint(UInt64(bytes.count))
        append(contentsOf: bytes)
    }

    /// Appends raw memory without any framing.
    mutating func append(raw bytes: UnsafeRawBufferPointer) {
        bytes.withMemoryRebound(to: UInt8.self) { append(contentsOf: $0) }
    }

    /// Appends the decimal ASCII digits of `value`.
    public mutating func appendDecimal(_ value: Int64) {
        // Written backwards into a buffer (20 bytes hold any magnitude), then appended in one piece.
        var magnitude = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 { append(UInt8(ascii: "-")) }
            append(contentsOf: UnsafeBufferPointer(rebasing: digits[start...]))
        }
    }

    /// Appends UTF-8 `text` as a quoted JSON string: `"` and `\` are escaped and control
    /// characters are written as `\u00XX`; everything else is copied as is.
    mutating func appendJSONString(utf8 text: UnsafeBufferPointer<UInt8>) {
        append(UInt8(ascii: "\""))
        var plain = 0
        while plain < text.count, text[plain] >= 0x20, text[plain] != UInt8(ascii: "\""), text[plain] != UInt8(ascii: "\\") {
            plain += 1
        }
        // Most text needs no escape: then it is copied in one piece.
        append(contentsOf: UnsafeBufferPointer(rebasing: text[..<plain]))
        for byte in text[plain...] {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                append(UInt8(ascii: "\\"))
                append(byte)
            case ..<0x20:
                append(contentsOf: #"\u00"#.utf8)
                append(UInt8(ascii: "0") + byte >> 4)
                let low = byte & 0xF
                append(low < 10 ? UInt8(ascii: "0") + low : UInt8(ascii: "a") + low - 10)
            default:
                append(byte)
            }
        }
        append(UInt8(ascii: "\""))
    }
}
