import Foundation
import Glibc
@testable import Storage
import Testing

@Suite struct WriteAheadLogTests {
    /// Appends `payloads` to a new log in `directory`, syncs and closes it, and returns the positions.
    private func writeLog(_ directory: String, _ payloads: [[UInt8]], segmentSizeLimit: Int = 64 << 20) throws -> [WALPosition] {
        let (log, recovery) = try WriteAheadLog.open(directory: directory, options: .init(segmentSizeLimit: segmentSizeLimit))
        #expect(recovery.entries.isEmpty)
        let positions = try payloads.map { try log.append($0) }
        try log.sync()
        log.close()
        return positions
    }

    /// `bytesOnDisk` is kept as the log changes, so that probes read it without the lock a sync holds across
    /// `fdatasync`: it equals the segment files' sizes after appends across segment starts, after a truncation,
    /// and after a reopen.
    @Test func bytesOnDiskFollowsTheFiles() throws {
        try withTemporaryDirectory { directory in
            func filesBytes() throws -> Int {
                try fileNames(in: directory).reduce(0) { $0 + Int(try fileSize(directory + "/" + $1)) }
            }
            let options = WriteAheadLog.Options(segmentSizeLimit: 64 << 10)
            let (log, _) = try WriteAheadLog.open(directory: directory, options: options)
            #expect(try filesBytes() == log.bytesOnDisk)
            var last = log.nextPosition
            for payload in makePayloads(count: 500) { last = try log.append(payload) }
            try log.sync()
            #expect(log.segmentNumbers.count > 2)
            #expect(try filesBytes() == log.bytesOnDisk)
            #expect(try log.truncate(before: last) > 0)
            #expect(try filesBytes() == log.bytesOnDisk)
            log.close()
            let (reopened, _) = try WriteAheadLog.open(directory: directory, options: options)
            #expect(try filesBytes() == reopened.bytesOnDisk)
            reopened.close()
        }
    }

    @Test func roundTripAcrossSegments() throws {
        try withTemporaryDirectory { directory in
            let limit = 256 << 10
            let payloads = makePayloads(count: 3_000)
            let positions = try writeLog(directory, payloads, segmentSizeLimit: limit)

            #expect(zip(positions, positions.dropFirst()).allSatisfy { $0 < $1 })
            let segments = Set(positions.map(\.segment)).sorted()
            #expect(segments.count >= 5)
            #expect(segments == Array(1...UInt64(segments.count)))
            #expect(try fileNames(in: directory) == segments.map { URL(fileURLWithPath: segmentPath(directory, $0)).lastPathComponent })
            for segment in segments {
                let entryCount = positions.count { $0.segment == segment }
                #expect(try fileSize(segmentPath(directory, segment)) <= UInt64(limit) || entryCount == 1)
            }

            let (log, recovery) = try WriteAheadLog.open(directory: directory, options: .init(segmentSizeLimit: limit))
            defer { log.close() }
            #expect(recovery.entries.map(\.payload) == payloads)
            #expect(recovery.entries.map(\.position) == positions)
            #expect(recovery.truncatedTail == nil)
            #expect(recovery.skippedCorruption.isEmpty)
            let lastSegment = try #require(segments.last)
            #expect(log.nextPosition == WALPosition(segment: lastSegment + 1, offset: 16))
            #expect(log.segmentNumbers == segments + [lastSegment + 1])
        }
    }

    @Test func oversizedEntryGetsItsOwnSegment() throws {
        try withTemporaryDirectory { directory in
            let payloads = [[UInt8](repeating: 1, count: 100), [UInt8](repeating: 2, count: 5_000), [UInt8](repeating: 3, count: 10)]
            let positions = try writeLog(directory, payloads, segmentSizeLimit: 1_000)
            #expect(positions == [
                WALPosition(segment: 1, offset: 16),
                WALPosition(segment: 2, offset: 16),
                WALPosition(segment: 3, offset: 16),
            ])
            #expect(try fileSize(segmentPath(directory, 2)) == 16 + 12 + 5_000)
            let (log, recovery) = try WriteAheadLog.open(directory: directory)
            log.close()
            #expect(recovery.entries.map(\.payload) == payloads)
        }
    }

    /// Cut points within the final 1,000-byte entry's 1,012-byte frame: inside the header and inside the payload.
    @Test(arguments: [1, 4, 11, 12, 13, 500, 1_011])
    func tornTailIsTruncated(cut: UInt64) throws {
        try withTemporaryDirectory { directory in
            let payloads = makePayloads(count: 19, maxSize: 2_000) + [[UInt8](repeating: 9, count: 1_000)]
            let positions = try writeLog(directory, payloads)
            let last = try #require(positions.last)
            let path = segmentPath(directory, 1)
            #expect(try fileSize(path) == last.offset + 1_012)
            try truncateFile(path, to: last.offset + cut)

            let (log, recovery) = try WriteAheadLog.open(directory: directory)
            #expect(recovery.entries.map(\.payload) == Array(payloads.dropLast()))
            #expect(recovery.truncatedTail == WALRecovery.TruncatedTail(path: path, offset: last.offset, droppedBytes: cut))
            #expect(recovery.skippedCorruption.isEmpty)
            #expect(try fileSize(path) == last.offset)

            let extra: [[UInt8]] = [[1, 2, 3], [], [4]]
            let extraPositions = try extra.map { try log.append($0) }
            #expect(extraPositions.map(\.segment) == [2, 2, 2])
            try log.sync()
            log.close()

            let (reopened, again) = try WriteAheadLog.open(directory: directory)
            reopened.close()
            #expect(again.entries.map(\.payload) == Array(payloads.dropLast()) + extra)
            #expect(again.entries.suffix(3).map(\.position) == extraPositions)
            #expect(again.truncatedTail == nil)
        }
    }

    @Test func checksumFailureInFinalFrameIsTornTail() throws {
        try withTemporaryDirectory { directory in
            let payloads = makePayloads(count: 10, maxSize: 500) + [[UInt8](repeating: 7, count: 300)]
            let positions = try writeLog(directory, payloads)
            let path = segmentPath(directory, 1)
            let size = try fileSize(path)
            try flipByte(path, at: Int(size) - 1)

            let (log, recovery) = try WriteAheadLog.open(directory: directory)
            log.close()
            let last = try #require(positions.last)
            #expect(recovery.entries.map(\.payload) == Array(payloads.dropLast()))
            #expect(recovery.truncatedTail == WALRecovery.TruncatedTail(path: path, offset: last.offset, droppedBytes: size - last.offset))
            #expect(try fileSize(path) == last.offset)
        }
    }

    @Test func zeroFilledTailIsTornTail() throws {
        try withTemporaryDirectory { directory in
            let payloads = makePayloads(count: 50, maxSize: 1_000)
            _ = try writeLog(directory, payloads)
            let path = segmentPath(directory, 1)
            let size = try fileSize(path)
            try writeBytes(path, try readBytes(path) + [UInt8](repeating: 0, count: 4_096))

            let (log, recovery) = try WriteAheadLog.open(directory: directory)
            log.close()
            #expect(recovery.entries.map(\.payload) == payloads)
            #expect(recovery.truncatedTail == WALRecovery.TruncatedTail(path: path, offset: size, droppedBytes: 4_096))
            #expect(try fileSize(path) == size)
        }
    }

    @Test func zeroFilledLastSegmentIsDeleted() throws {
        try withTemporaryDirectory { directory in
            let payloads = makePayloads(count: 5, maxSize: 100)
            _ = try writeLog(directory, payloads)
            let path = segmentPath(directory, 2)
            try writeBytes(path, [UInt8](repeating: 0, count: 64))

            let (log, recovery) = try WriteAheadLog.open(directory: directory)
            log.close()
            #expect(recovery.entries.map(\.payload) == payloads)
            #expect(recovery.truncatedTail == WALRecovery.TruncatedTail(path: path, offset: 0, droppedBytes: 64))
            #expect(log.segmentNumbers == [1, 3])
            #expect(try fileNames(in: directory) == ["00000000000000000001.wal", "00000000000000000003.wal"])
        }
    }

    enum Damage: CaseIterable, Sendable {
        case payloadByte, lengthField
    }

    /// 45 entries of 300 bytes fill segments 1-3 with 13 entries each and segment 4 with 6;
    /// the third entry of segment 2 (a middle segment) or segment 4 (the last one) is damaged.
    @Test(arguments: Damage.allCases, [2, 4] as [UInt64])
    func corruptionInTheMiddleIsReported(damage: Damage, segment: UInt64) throws {
        try withTemporaryDirectory { directory in
            let payloads = (0..<45).map { [UInt8](repeating: UInt8($0), count: 300) }
            let positions = try writeLog(directory, payloads, segmentSizeLimit: 4_096)
            let expectedSegments: [UInt64] = (0..<45).map { index in UInt64(index / 13 + 1) }
            #expect(positions.map(\.segment) == expectedSegments)
            let target = try #require(positions.filter { $0.segment == segment }.dropFirst(2).first)
            let path = segmentPath(directory, segment)
            try flipByte(path, at: Int(target.offset) + (damage == .payloadByte ? 12 + 5 : 1))
            let reason = damage == .payloadByte ? "payload checksum mismatch" : "frame header checksum mismatch"

            let error = try #require(throws: StorageError.self) {
                try WriteAheadLog.open(directory: directory)
            }
            #expect(error.code == .corruptEntry)
            #expect(error.path == path)
            #expect(error.fileOffset == target.offset)
            #expect(error.description == "corrupt WAL entry in \(path) at byte \(target.offset): \(reason)")
            #expect(try fileNames(in: directory).count == 4)

            let (log, recovery) = try WriteAheadLog.open(directory: directory, options: .init(skipCorruptEntries: true))
            log.close()
            let expected = zip(positions, payloads).filter { $0.0.segment != segment || $0.0 < target }
            #expect(recovery.entries.map(\.position) == expected.map(\.0))
            #expect(recovery.entries.map(\.payload) == expected.map(\.1))
            #expect(recovery.skippedCorruption == [
                WALRecovery.SkippedCorruption(
                    path: path, offset: target.offset, droppedBytes: try fileSize(path) - target.offset, reason: reason
                ),
            ])
            #expect(recovery.truncatedTail == nil)
        }
    }

    @Test func truncateBeforeDeletesCoveredSegments() throws {
        try withTemporaryDirectory { directory in
            let payloads = (0..<45).map { [UInt8](repeating: UInt8($0), count: 300) }
            let (log, _) = try WriteAheadLog.open(directory: directory, options: .init(segmentSizeLimit: 4_096))
            let positions = try payloads.map { try log.append($0) }
            try log.sync()
            #expect(log.segmentNumbers == [1, 2, 3, 4])

            let middleOfSegment3 = try #require(positions.filter { $0.segment == 3 }.dropFirst(4).first)
            #expect(try log.truncate(before: middleOfSegment3) == 2)
            #expect(log.segmentNumbers == [3, 4])
            #expect(try fileNames(in: directory) == ["00000000000000000003.wal", "00000000000000000004.wal"])
            #expect(try log.truncate(before: WALPosition(segment: 3, offset: 0)) == 0)
            #expect(try log.truncate(before: WALPosition(segment: 100, offset: 0)) == 1)
            #expect(try fileNames(in: directory) == ["00000000000000000004.wal"])
            log.close()

            let (reopened, recovery) = try WriteAheadLog.open(directory: directory)
            let expected = zip(positions, payloads).filter { $0.0.segment == 4 }
            #expect(expected.count == 6)
            #expect(recovery.entries.map(\.position) == expected.map(\.0))
            #expect(recovery.entries.map(\.payload) == expected.map(\.1))
            #expect(try reopened.truncate(before: reopened.nextPosition) == 1)
            #expect(try fileNames(in: directory) == ["00000000000000000005.wal"])
            reopened.close()

            let (empty, emptyRecovery) = try WriteAheadLog.open(directory: directory)
            empty.close()
            #expect(emptyRecovery.entries.isEmpty)
        }
    }

    @Test func syncedEntriesAreVisibleToAFreshOpen() throws {
        try withTemporaryDirectory { directory in
            let (log, _) = try WriteAheadLog.open(directory: directory)
            defer { log.close() }
            let payloads = makePayloads(count: 10, maxSize: 1_000)
            let positions = try payloads.map { try log.append($0) }
            try log.sync()

            let (other, recovery) = try WriteAheadLog.open(directory: directory)
            other.close()
            #expect(recovery.entries.map(\.payload) == payloads)
            #expect(recovery.entries.map(\.position) == positions)
        }
    }

    /// The log is read only at recovery: once synced, its pages leave the page cache (a file system that keeps files
    /// in memory, such as tmpfs, cannot drop them and is not checked).
    @Test func syncedPagesLeaveThePageCache() throws {
        try withTemporaryDirectory { directory in
            guard try fileSystemType(of: directory) != "tmpfs" else { return }
            let (log, _) = try WriteAheadLog.open(directory: directory)
            defer { log.close() }
            for byte in 0..<256 { _ = try log.append([UInt8](repeating: UInt8(byte), count: 16_384)) }
            let path = segmentPath(directory, 1)
            let written = try residentPages(path)
            try log.sync()
            let synced = try residentPages(path)
            #expect(written.total > 1_000 && written.resident > written.total / 2)
            #expect(synced.resident == 0)
        }
    }

    /// The type of the file system that holds `path`, from the longest mount point above it in `/proc/self/mounts`.
    private func fileSystemType(of path: String) throws -> String {
        let mounts = try String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)
        let entries = mounts.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }.filter { $0.count > 2 }
        let above = entries.filter { path == $0[1] || path.hasPrefix($0[1] == "/" ? "/" : $0[1] + "/") }
        return try #require(above.max { $0[1].count < $1[1].count })[2]
    }

    /// How many of a file's pages are in the page cache (`mincore` over a mapping of the file).
    private func residentPages(_ path: String) throws -> (resident: Int, total: Int) {
        let descriptor = open(path, O_RDONLY)
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        let size = Int(try fileSize(path))
        let mapping = try #require(mmap(nil, size, PROT_READ, MAP_SHARED, descriptor, 0).flatMap { $0 == MAP_FAILED ? nil : $0 })
        defer { munmap(mapping, size) }
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        var pages = [UInt8](repeating: 0, count: (size + pageSize - 1) / pageSize)
        try #require(mincore(mapping, size, &pages) == 0)
        return (pages.count { $0 & 1 != 0 }, pages.count)
    }

    @Test func directoryIsCreatedWithParents() throws {
        try withTemporaryDirectory { directory in
            let nested = directory + "/a/b/wal"
            let (log, _) = try WriteAheadLog.open(directory: nested)
            log.close()
            #expect(try fileNames(in: nested) == ["00000000000000000001.wal"])
            let header = try readBytes(nested + "/00000000000000000001.wal")
            #expect(Array(header.prefix(8)) == Array("SLWAL".utf8) + [2, 0, 0])
            #expect(Array(header.suffix(8)) == withUnsafeBytes(of: log.logID.littleEndian, Array.init))
            #expect(header.count == 16 && log.logID != 0)
        }
    }

    /// Every segment carries the log's identity, kept across reopenings; a segment of another log is corruption.
    @Test func theLogKeepsItsIdentityAndRefusesForeignSegments() throws {
        try withTemporaryDirectory { directory in
            let (log, recovery) = try WriteAheadLog.open(directory: directory)
            let identity = log.logID
            #expect(recovery.logID == nil)
            _ = try log.append([1])
            try log.sync()
            log.close()
            let (reopened, again) = try WriteAheadLog.open(directory: directory)
            reopened.close()
            #expect(reopened.logID == identity && again.logID == identity)
            try withTemporaryDirectory { other in
                let (foreign, _) = try WriteAheadLog.open(directory: other)
                foreign.close()
                #expect(foreign.logID != identity)
                try writeBytes(segmentPath(directory, 9), try readBytes(segmentPath(other, 1)))
            }
            let error = try #require(throws: StorageError.self) { try WriteAheadLog.open(directory: directory) }
            #expect(error.code == .corruptEntry)
            #expect(error.description.contains("belongs to log"))
        }
    }

    @Test func notWritableDirectoryIsRejected() throws {
        try withTemporaryDirectory { directory in
            let file = directory + "/regular-file"
            try writeBytes(file, [1])
            for path in [file + "/wal", file] {
                let error = try #require(throws: StorageError.self) {
                    try WriteAheadLog.open(directory: path)
                }
                #expect(error.code == .notWritable)
                #expect(error.path == path)
                #expect(error.description.contains(path))
            }
        }
    }

    @Test func unknownSegmentFormatIsRejected() throws {
        try withTemporaryDirectory { directory in
            let path = segmentPath(directory, 1)
            for (header, message) in [
                (Array("SLWAL".utf8) + [3, 0, 0], "unsupported WAL segment version 3"),
                (Array("NOTAWAL!".utf8), "not a WAL segment (bad magic)"),
            ] {
                try writeBytes(path, header)
                let error = try #require(throws: StorageError.self) {
                    try WriteAheadLog.open(directory: directory, options: .init(skipCorruptEntries: true))
                }
                #expect(error.code == .unsupportedFormat)
                #expect(error.description == "unsupported file format in \(path) at byte 0: \(message)")
            }
        }
    }

    @Test func closedLogRejectsCalls() throws {
        try withTemporaryDirectory { directory in
            let (log, _) = try WriteAheadLog.open(directory: directory)
            log.close()
            log.close()
            let error = try #require(throws: StorageError.self) {
                try log.append([1])
            }
            #expect(error.code == .closed)
            #expect(throws: StorageError.self) { try log.sync() }
        }
    }

    /// Segment 2 is "created" on /dev/full, so the roll to it fails with ENOSPC.
    @Test func writeFailureMakesLogUnusable() throws {
        try withTemporaryDirectory { directory in
            let failing = segmentPath(directory, 2)
            let (log, _) = try WriteAheadLog.open(directory: directory, options: .init(segmentSizeLimit: 100)) { path in
                path == failing
                    ? Glibc.open("/dev/full", O_WRONLY | O_CLOEXEC)
                    : Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            }
            let first = [UInt8](repeating: 1, count: 80)
            #expect(try log.append(first) == WALPosition(segment: 1, offset: 16))
            let error = try #require(throws: StorageError.self) {
                try log.append(first)
            }
            #expect(error.code == .io)
            #expect(error.errno == ENOSPC)
            #expect(error.path == failing)

            for call in [{ _ = try log.append([1]) }, { try log.sync() }, { _ = try log.truncate(before: log.nextPosition) }] {
                let later = try #require(throws: StorageError.self, performing: call)
                #expect(later.code == .io)
                #expect(later.errno == ENOSPC)
            }
            log.close()

            let (reopened, recovery) = try WriteAheadLog.open(directory: directory)
            reopened.close()
            #expect(recovery.entries.map(\.payload) == [first])
        }
    }
}
