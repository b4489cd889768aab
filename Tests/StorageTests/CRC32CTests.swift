import SampleData
@testable import Storage
import Testing

@Suite struct CRC32CTests {
    @Test func knownVectors() {
        #expect(CRC32C.checksum("123456789".utf8) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    @Test func rawBufferMatchesCollection() {
        let bytes = Array("The quick brown fox jumps over the lazy dog".utf8)
        let raw = bytes.withUnsafeBytes { CRC32C.checksum($0) }
        #expect(raw == CRC32C.checksum(bytes))
        #expect(raw == 0x2262_0404)
    }

    @Test func seedChainsPieces() {
        let bytes = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let whole = CRC32C.checksum(bytes)
        for split in [0, 1, 7, 8, 9, 100, bytes.count] {
            let first = CRC32C.checksum(bytes[..<split])
            #expect(CRC32C.checksum(bytes[split...], seed: first) == whole)
        }
    }

    /// Compares the slicing-by-8 implementation with a bit-by-bit reference at every length and alignment.
    @Test func matchesBitwiseReference() {
        var generator = SplitMix64(seed: 3)
        let bytes = (0..<300).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for start in 0..<9 {
            for end in stride(from: start, through: bytes.count, by: 7) {
                #expect(CRC32C.checksum(bytes[start..<end]) == bitwiseCRC32C(bytes[start..<end]))
            }
        }
    }

    /// The table path, which machines without the instruction use, against the same reference.
    @Test func tablePathMatchesBitwiseReference() {
        var generator = SplitMix64(seed: 5)
        let bytes = (0..<300).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for start in 0..<9 {
            for end in stride(from: start, through: bytes.count, by: 7) {
                let table = Array(bytes[start..<end]).withUnsafeBytes { CRC32C.tableChecksum($0, seed: 0) }
                #expect(table == bitwiseCRC32C(bytes[start..<end]))
            }
        }
    }

    private func bitwiseCRC32C(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 {
                crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
            }
        }
        return ~crc
    }
}
