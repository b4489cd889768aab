import CCRC32C

/// The CRC-32C (Castagnoli) checksum used to protect every byte the module writes.
///
/// It uses the processor's CRC-32C instruction where there is one (SSE 4.2, Arm's CRC extension), eight bytes per
/// instruction; elsewhere a table-driven loop that also processes eight bytes per step ("slicing-by-8"), using the
/// reflected polynomial `0x82F63B78`. The result matches the checksum of iSCSI, ext4 and Kafka record batches:
/// `"123456789"` hashes to `0xE3069283`.
public enum CRC32C {
    /// Whether ``checksum(_:seed:)`` uses the processor's instruction.
    static let usesHardware = sluice_crc32c_hardware_available() != 0

    /// Eight 256-entry lookup tables stored back to back; table `k` advances a byte by `k` extra bytes.
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 {
                crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
            }
            tables[byte] = crc
        }
        for table in 1..<8 {
            for byte in 0..<256 {
                let previous = tables[(table - 1) * 256 + byte]
                tables[table * 256 + byte] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    /// Computes the CRC-32C of a region of memory.
    ///
    /// Pass the checksum of the preceding bytes as `seed` to checksum data in pieces:
    /// `checksum(b, seed: checksum(a))` equals the checksum of `a` followed by `b`.
    ///
    /// - Parameters:
    ///   - bytes: The bytes to checksum.
    ///   - seed: The checksum of any preceding bytes, or `0` to start a new checksum.
    /// - Returns: The CRC-32C of the bytes.
    public static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        guard usesHardware, let base = bytes.baseAddress else { return tableChecksum(bytes, seed: seed) }
        return ~sluice_crc32c_update(~seed, base, bytes.count)
    }

    /// ``checksum(_:seed:)`` by table lookups: the portable path, and the reference the instruction is tested against.
    static func tableChecksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        var crc = ~seed
        var index = 0
        tables.withUnsafeBufferPointer { table in
            while bytes.count - index >= 8 {
                let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                let low = UInt32(truncatingIfNeeded: word) ^ crc
                let high = UInt32(truncatingIfNeeded: word >> 32)
                crc = table[7 * 256 + Int(low & 0xFF)]
                    ^ table[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ table[5 * 256 + Int((low >> 16) & 0xFF)]
                    ^ table[4 * 256 + Int(low >> 24)]
                    ^ table[3 * 256 + Int(high & 0xFF)]
                    ^ table[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ table[1 * 256 + Int((high >> 16) & 0xFF)]
                    ^ table[Int(high >> 24)]
                index += 8
            }
            while index < bytes.count {
                crc = table[Int((crc ^ UInt32(bytes[index])) & 0xFF)] ^ (crc >> 8)
                index += 1
            }
        }
        return ~crc
    }

    /// Computes the CRC-32C of a collection of bytes, such as `[UInt8]` or `String.UTF8View`.
    ///
    /// Collections with contiguous storage are checksummed in place; others are copied first.
    ///
    /// - Parameters:
    ///   - bytes: The bytes to checksum.
    ///   - seed: The checksum of any preceding bytes, or `0` to start a new checksum.
    /// - Returns: The CRC-32C of the bytes.
    public static func checksum(_ bytes: some Collection<UInt8>, seed: UInt32 = 0) -> UInt32 {
        if let crc = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0), seed: seed) }) {
            return crc
        }
        return Array(bytes).withUnsafeBytes { checksum($0, seed: seed) }
    }
}
