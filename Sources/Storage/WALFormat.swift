/// The on-disk layout of write-ahead-log segment files, and the scanner that validates them.
///
/// A segment starts with a 16-byte file header: `"SLWAL"`, version `2`, two reserved zero
/// bytes, and the log's identity (a little-endian `UInt64` shared by every segment of one log).
/// Version `1` headers (8 bytes, no identity) are still read, as identity 0. Frames follow: a
/// 12-byte header — payload length, CRC-32C of the payload, and CRC-32C of those first 8
/// header bytes, each a little-endian `UInt32` — and the payload.
enum WALFormat {
    /// The segment format version written.
    static let version: UInt8 = 2
    /// The size of a file header of the version written.
    static let fileHeaderSize = 16

    /// The file header of a new segment of the log `logID`.
    static func fileHeader(logID: UInt64) -> [UInt8] {
        Array("SLWAL".utf8) + [version, 0, 0] + withUnsafeBytes(of: logID.littleEndian, Array.init)
    }
    /// The size of a frame header.
    static let frameHeaderSize = 12
    /// The file-name extension of segment files.
    static let segmentSuffix = ".wal"

    /// The result of scanning one segment file.
    struct Scan {
        /// The intact entries before any damage.
        var entries: [WALEntry] = []
        /// What stopped the scan before the end of the file, if anything.
        var damage: Damage?
        /// The identity of the log the segment belongs to (0 for a version 1 segment); nil if the header is unreadable.
        var logID: UInt64?
    }

    /// An invalid region of a segment file.
    enum Damage {
        /// An incomplete final write starting at `offset`; only reported for the last segment.
        case tornTail(offset: Int)
        /// An invalid frame at `offset` that is not explained by an incomplete final write.
        case corrupt(offset: Int, reason: String)
        /// The file header has the wrong magic bytes or an unknown version.
        case unsupportedFormat(reason: String)
    }

    /// Fills `header` (12 bytes) with the frame header for `payload`, whose size must fit in a `UInt32`.
    static func encodeFrameHeader(
        for payload: UnsafeRawBufferPointer, after prefix: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        into header: UnsafeMutableRawBufferPointer
    ) {
        header.storeBytes(of: UInt32(prefix.count + payload.count).littleEndian, toByteOffset: 0, as: UInt32.self)
        let checksum = CRC32C.checksum(payload, seed: CRC32C.checksum(prefix))
        header.storeBytes(of: checksum.littleEndian, toByteOffset: 4, as: UInt32.self)
        let headerChecksum = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: header[0..<8]))
        header.storeBytes(of: headerChecksum.littleEndian, toByteOffset: 8, as: UInt32.self)
    }

    /// Validates the contents of a segment file and returns its intact entries.
    ///
    /// In the last segment, damage that an interrupted final write can produce is a torn
    /// tail: fewer bytes left than a header, a valid header whose payload runs past the end,
    /// a payload checksum failure in the frame that ends exactly at the end of the file, or
    /// zero bytes up to the end. Everything else, and any damage in another segment, is corruption.
    static func scan(_ bytes: UnsafeRawBufferPointer, segment: UInt64, isLast: Bool) -> Scan {
        var scan = Scan()
        func damage(at offset: Int, _ reason: String, torn: Bool) -> Damage {
            isLast && (torn || bytes[offset...].allSatisfy { $0 == 0 })
                ? .tornTail(offset: offset)
                : .corrupt(offset: offset, reason: reason)
        }
        let headerSize: Int
        switch readFileHeader(bytes, isLast: isLast) {
        case .success(let header):
            headerSize = header.size
            scan.logID = header.logID
        case .failure(let error):
            scan.damage = error.damage
            return scan
        }
        var offset = headerSize
        while offset < bytes.count {
            guard bytes.count - offset >= frameHeaderSize else {
                scan.damage = damage(at: offset, "frame header truncated", torn: true)
                return scan
            }
            let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            let payloadChecksum = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
            let headerChecksum = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self))
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 8])) == headerChecksum else {
                scan.damage = damage(at: offset, "frame header checksum mismatch", torn: false)
                return scan
            }
            let payloadStart = offset + frameHeaderSize
            let end = payloadStart + length
            guard end <= bytes.count else {
                scan.damage = damage(at: offset, "payload runs past end of file", torn: true)
                return scan
            }
            let payload = UnsafeRawBufferPointer(rebasing: bytes[payloadStart..<end])
            guard CRC32C.checksum(payload) == payloadChecksum else {
                scan.damage = damage(at: offset, "payload checksum mismatch", torn: end == bytes.count)
                return scan
            }
            scan.entries.append(WALEntry(position: WALPosition(segment: segment, offset: UInt64(offset)), payload: Array(payload)))
            offset = end
        }
        return scan
    }

    /// Reads a segment's file header: its size and the log identity (0 for version 1), or the damage.
    private static func readFileHeader(_ bytes: UnsafeRawBufferPointer, isLast: Bool) -> Result<(size: Int, logID: UInt64), DamageError> {
        let torn = { (reason: String) in
            DamageError(isLast ? .tornTail(offset: 0) : .corrupt(offset: 0, reason: reason))
        }
        guard bytes.count >= 6 else { return .failure(torn("segment file header truncated")) }
        guard bytes.starts(with: "SLWAL".utf8) else {
            return .failure(DamageError(isLast && bytes.allSatisfy({ $0 == 0 })
                ? .tornTail(offset: 0) : .unsupportedFormat(reason: "not a WAL segment (bad magic)")))
        }
        let size: Int
        switch bytes[5] {
        case 1: size = 8
        case version: size = fileHeaderSize
        default: return .failure(DamageError(.unsupportedFormat(reason: "unsupported WAL segment version \(bytes[5])")))
        }
        guard bytes.count >= size else { return .failure(torn("segment file header truncated")) }
        let logID = size == 8 ? 0 : UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        return .success((size, logID))
    }

    /// ``Damage`` as an error, to travel in a `Result`.
    struct DamageError: Error {
        let damage: Damage
        init(_ damage: Damage) { self.damage = damage }
    }
}
