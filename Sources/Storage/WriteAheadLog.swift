import Glibc
import Synchronization

/// A segmented, append-only log of opaque byte payloads, stored in one directory.
///
/// ## Layout
/// The directory holds segment files named by their number, `%020llu.wal`
/// (`00000000000000000003.wal`). Each segment starts with a 16-byte file header
/// (`"SLWAL"`, version `2`, two reserved bytes, the log's identity) followed by frames: a 12-byte header —
/// payload length, CRC-32C of the payload and CRC-32C of those 8 header bytes, each a
/// little-endian `UInt32` — and the payload. Because the header is checksummed, a damaged
/// length field is detected as corruption rather than mistaken for a short final write.
///
/// ## Durability
/// `append(_:)` only hands data to the kernel; it is durable
/// once ``sync()`` returns. `sync()` runs `fdatasync` on the current segment and, when a
/// segment was created since the last directory sync, `fsync` on the directory so the
/// new file name survives a crash. Synced pages are then dropped from the page cache
/// (`POSIX_FADV_DONTNEED`): the log is read back only at recovery, so it should not push out
/// the cache of a broker on the same machine. When a segment fills up, it is synced before the log
/// moves on, so only the last segment can ever have an incomplete tail. If a write or
/// sync fails, the state of the page cache is unknown: the log becomes unusable and every
/// later call throws the original error.
///
/// ## Recovery
/// ``open(directory:options:)`` reads every segment in order. In the **last** segment, a
/// torn tail — fewer bytes left than a frame header, a valid header whose payload runs past
/// the end of the file, a payload checksum failure in the frame that ends exactly at the
/// end of the file, or zero bytes up to the end of the file — is what a crash during the
/// final write leaves behind: the file is truncated at the start of that frame (and
/// synced), and the cut is reported in ``WALRecovery/truncatedTail``. A last segment whose
/// file header itself is incomplete is deleted. Any other invalid frame — damage anywhere
/// in an earlier segment, or a bad frame followed by more data — is corruption: `open`
/// throws `.corruptEntry` naming the file and byte offset, unless
/// ``Options/skipCorruptEntries`` is set, in which case the rest of that segment is
/// ignored, reported in ``WALRecovery/skippedCorruption``, and recovery continues with the
/// next segment. A file header with unknown magic bytes or version always throws
/// `.unsupportedFormat`. After recovery, appends go to a new segment; existing files are
/// never appended to.
///
/// ## Identity
/// A new log gets a random ``logID``, written into every segment's header. A checkpoint that
/// records a position together with the identity can therefore never be applied to another
/// log that happens to reuse the same segment numbers. Segments of different identities in
/// one directory are corruption (`.corruptEntry`).
///
/// All methods are thread-safe; calls are serialized by an internal lock. A directory
/// must be used by one log instance at a time.
public final class WriteAheadLog: Sendable {
    /// Tuning knobs for a ``WriteAheadLog``.
    public struct Options: Sendable {
        /// The size in bytes above which the log starts a new segment file.
        ///
        /// An entry that would take the current segment past the limit goes into a new
        /// segment; an entry larger than the limit gets a segment of its own.
        /// Default: 64 MiB.
        public var segmentSizeLimit: Int
        /// Whether recovery skips the damaged remainder of a segment instead of throwing.
        ///
        /// Skipped data is reported in ``WALRecovery/skippedCorruption`` and left on disk.
        /// Default: `false`.
        public var skipCorruptEntries: Bool

        /// Creates options.
        ///
        /// - Parameters:
        ///   - segmentSizeLimit: The size in bytes above which a new segment is started.
        ///   - skipCorruptEntries: Whether recovery skips damaged segment remainders.
        public init(segmentSizeLimit: Int = 64 << 20, skipCorruptEntries: Bool = false) {
            self.segmentSizeLimit = segmentSizeLimit
            self.skipCorruptEntries = skipCorruptEntries
        }
    }

    /// Creates a new segment file and returns its descriptor, or -1 with `errno` set.
    typealias SegmentCreator = @Sendable (_ path: String) -> Int32

    private struct State {
        /// The descriptor of the current segment, or -1 once closed.
        var descriptor: Int32
        var segment: UInt64
        var size: UInt64
        /// The numbers of all segment files on disk, ascending; the last is the current one.
        var segments: [UInt64]
        /// The sizes of the segments before the current one.
        var sealedSizes: [UInt64: UInt64] = [:]
        var directoryNeedsSync = true
        /// Set when the log became unusable; thrown by every later call.
        var failure: StorageError?
    }

    /// The directory holding the segment files.
    public let directory: String
    /// The identity of this log, in every segment's header: random when the log was created (never 0), 0 for a log
    /// created by a version that wrote no identity.
    public let logID: UInt64
    private let options: Options
    private let createSegmentFile: SegmentCreator
    private let state: Mutex<State>
    /// ``bytesOnDisk``, kept as the log changes: read without the lock, which a sync holds across `fdatasync`.
    private let diskBytes = Atomic<Int>(0)

    private init(directory: String, logID: UInt64, options: Options, createSegmentFile: @escaping SegmentCreator, state: State) {
        self.directory = directory
        self.logID = logID
        self.options = options
        self.createSegmentFile = createSegmentFile
        diskBytes.store(Self.bytes(of: state), ordering: .relaxed)
        self.state = Mutex(state)
    }

    private static func bytes(of state: borrowing State) -> Int {
        Int(state.sealedSizes.values.reduce(state.size, +))
    }

    private func publishSize(_ state: borrowing State) {
        diskBytes.store(Self.bytes(of: state), ordering: .relaxed)
    }

    deinit {
        close()
    }

    /// Opens the log in `directory`, recovering the entries already stored there.
    ///
    /// Creates the directory and its parents if missing, scans all segments (see the
    /// type's documentation for how damage is classified and repaired), then creates a new
    /// segment, numbered one past the last existing one, for subsequent appends.
    ///
    /// - Parameters:
    ///   - directory: The directory holding the segment files, such as `<checkpointDir>/wal`.
    ///   - options: Segment size and recovery behavior.
    /// - Returns: The log, ready for appends, and the recovered entries.
    /// - Throws: ``StorageError`` with code `.notWritable` if `directory` is not a writable
    ///   directory, `.corruptEntry` for damage other than a torn tail,
    ///   `.unsupportedFormat` for a foreign or newer segment file, or `.io`.
    public static func open(directory: String, options: Options = .init()) throws -> (log: WriteAheadLog, recovery: WALRecovery) {
        try open(directory: directory, options: options) { path in
            Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        }
    }

    /// Opens the log like ``open(directory:options:)``, creating segment files with `createSegmentFile`.
    static func open(
        directory: String,
        options: Options,
        createSegmentFile: @escaping SegmentCreator
    ) throws -> (log: WriteAheadLog, recovery: WALRecovery) {
        try FileSystem.prepareWritableDirectory(directory)
        var segments = try FileSystem.listDirectory(directory)
            .compactMap { FileSystem.number(inFileName: $0, suffix: WALFormat.segmentSuffix) }
            .sorted()
        let number = (segments.last ?? 0) + 1
        let recovery = try recover(directory: directory, segments: &segments, options: options)
        let logID = recovery.logID ?? UInt64.random(in: 1...UInt64.max)
        let descriptor = try createSegment(number, logID: logID, in: directory, using: createSegmentFile)
        var state = State(
            descriptor: descriptor,
            segment: number,
            size: UInt64(WALFormat.fileHeaderSize),
            segments: segments + [number]
        )
        for segment in segments {
            var info = stat()
            if stat(path(of: segment, in: directory), &info) == 0 { state.sealedSizes[segment] = UInt64(info.st_size) }
        }
        let log = WriteAheadLog(directory: directory, logID: logID, options: options, createSegmentFile: createSegmentFile, state: state)
        return (log, recovery)
    }

    /// The position the next entry will have if it fits into the current segment.
    ///
    /// Every entry appended so far is strictly before this position and every later entry
    /// is at or after it, so it is the position to record in a checkpoint that covers all
    /// appended entries.
    public var nextPosition: WALPosition {
        state.withLock { WALPosition(segment: $0.segment, offset: $0.size) }
    }

    /// The numbers of the segment files on disk, ascending; the last one receives appends.
    public var segmentNumbers: [UInt64] {
        state.withLock { $0.segments }
    }

    /// The bytes the log's segment files take on disk: kept as entries are appended and segments are started and
    /// deleted, and read without waiting for a running append or sync.
    public var bytesOnDisk: Int { diskBytes.load(ordering: .relaxed) }

    /// Appends a payload and returns the position of its entry.
    ///
    /// Header and payload are written with one `writev`. If the entry would take the
    /// current segment past ``Options/segmentSizeLimit``, the current segment is synced and
    /// a new one is started first. The entry is not durable until ``sync()`` returns.
    ///
    /// - Parameter payload: The bytes to store; at most `UInt32.max` bytes.
    /// - Returns: The position of the new entry.
    /// - Throws: ``StorageError`` with code `.payloadTooLarge`, `.closed`, or `.io` if the
    ///   write fails (after which the log is unusable).
    public func append(_ payload: UnsafeRawBufferPointer) throws -> WALPosition {
        try append(prefix: [], payload)
    }

    /// Appends an entry whose payload is `prefix` followed by `payload`, written without joining them in memory.
    ///
    /// Reads back as one payload; otherwise the same as ``append(_:)-(UnsafeRawBufferPointer)``.
    ///
    /// - Parameters:
    ///   - prefix: A few leading bytes (for example a record kind).
    ///   - payload: The rest of the entry; together at most `UInt32.max` bytes.
    public func append(prefix: [UInt8], _ payload: UnsafeRawBufferPointer) throws -> WALPosition {
        let count = prefix.count + payload.count
        guard count <= UInt32.max else {
            throw StorageError(code: .payloadTooLarge, message: "\(count) bytes exceed the 4 GiB entry limit", path: directory)
        }
        return try state.withLock { state in
            try checkUsable(state)
            let frameSize = UInt64(WALFormat.frameHeaderSize + count)
            if state.size > UInt64(WALFormat.fileHeaderSize) && state.size + frameSize > UInt64(options.segmentSizeLimit) {
                try startNextSegment(&state)
            }
            let position = WALPosition(segment: state.segment, offset: state.size)
            let headerSize = WALFormat.frameHeaderSize
            try withUnsafeTemporaryAllocation(byteCount: headerSize + prefix.count, alignment: 4) { header in
                prefix.withUnsafeBytes { prefix in
                    WALFormat.encodeFrameHeader(for: payload, after: prefix, into: UnsafeMutableRawBufferPointer(rebasing: header[..<headerSize]))
                    UnsafeMutableRawBufferPointer(rebasing: header[headerSize...]).copyMemory(from: prefix)
                }
                do throws(StorageError) {
                    try FileSystem.writeAll(state.descriptor, UnsafeRawBufferPointer(header), payload, path: path(of: state.segment))
                } catch {
                    state.failure = error
                    throw error
                }
            }
            state.size += frameSize
            publishSize(state)
            return position
        }
    }

    /// Appends a payload and returns the position of its entry.
    ///
    /// Same as the `UnsafeRawBufferPointer` overload: one write of header and payload, durable after ``sync()``.
    ///
    /// - Parameter payload: The bytes to store; at most `UInt32.max` bytes.
    /// - Returns: The position of the new entry.
    /// - Throws: ``StorageError`` with code `.payloadTooLarge`, `.closed`, or `.io`.
    public func append(_ payload: [UInt8]) throws -> WALPosition {
        try payload.withUnsafeBytes { try append($0) }
    }

    /// Makes every entry appended so far durable.
    ///
    /// Runs `fdatasync` on the current segment, drops its now clean pages from the page cache, and, if segment
    /// files were created since the last directory sync, `fsync` on the directory.
    ///
    /// - Throws: ``StorageError`` with code `.closed`, or `.io` if a sync fails (after which
    ///   the log is unusable: the kernel may have dropped the unsynced data).
    public func sync() throws {
        try state.withLock { state in
            try checkUsable(state)
            do throws(StorageError) {
                try syncSegment(state)
                try syncDirectoryIfNeeded(&state)
            } catch {
                state.failure = error
                throw error
            }
        }
    }

    /// Deletes the segment files whose entries all lie strictly before `position`.
    ///
    /// These are the segments numbered below `position.segment`; the current segment is
    /// never deleted. The directory is synced afterwards, so the deletion is durable.
    ///
    /// - Parameter position: The first position that must be kept, typically the
    ///   ``nextPosition`` recorded in a checkpoint.
    /// - Returns: The number of segment files deleted.
    /// - Throws: ``StorageError`` with code `.closed` or `.io`.
    public func truncate(before position: WALPosition) throws -> Int {
        try state.withLock { state in
            try checkUsable(state)
            let limit = min(position.segment, state.segment)
            let obsolete = state.segments.prefix { $0 < limit }
            guard !obsolete.isEmpty else {
                return 0
            }
            for number in obsolete {
                try FileSystem.remove(path(of: number))
                state.segments.removeFirst()
                state.sealedSizes[number] = nil
            }
            publishSize(state)
            state.directoryNeedsSync = true
            do throws(StorageError) {
                try syncDirectoryIfNeeded(&state)
            } catch {
                state.failure = error
                throw error
            }
            return obsolete.count
        }
    }

    /// Closes the current segment file; later calls throw `.closed`.
    ///
    /// Does not sync: call ``sync()`` first to make the last appends durable. Calling
    /// `close()` more than once has no further effect.
    public func close() {
        state.withLock { state in
            if state.descriptor >= 0 {
                FileSystem.close(state.descriptor)
                state.descriptor = -1
            }
            if state.failure == nil {
                state.failure = StorageError(code: .closed, message: "the log was closed", path: directory)
            }
        }
    }

    private func path(of segment: UInt64) -> String {
        Self.path(of: segment, in: directory)
    }

    private func checkUsable(_ state: State) throws(StorageError) {
        if let failure = state.failure {
            throw failure
        }
    }

    /// Syncs and closes the current segment, then creates the next one. Failures make the log unusable.
    private func startNextSegment(_ state: inout State) throws(StorageError) {
        do {
            try syncSegment(state)
            FileSystem.close(state.descriptor)
            state.descriptor = -1
            let number = state.segment + 1
            state.sealedSizes[state.segment] = state.size
            state.descriptor = try Self.createSegment(number, logID: logID, in: directory, using: createSegmentFile)
            state.segment = number
            state.size = UInt64(WALFormat.fileHeaderSize)
            state.segments.append(number)
            state.directoryNeedsSync = true
        } catch {
            state.failure = error
            throw error
        }
    }

    /// Syncs the current segment, then drops its clean pages from the page cache.
    private func syncSegment(_ state: borrowing State) throws(StorageError) {
        try FileSystem.sync(state.descriptor, path: path(of: state.segment))
        // Advice only: the entries are durable whether or not the kernel takes it.
        _ = posix_fadvise(state.descriptor, 0, 0, POSIX_FADV_DONTNEED)
    }

    private func syncDirectoryIfNeeded(_ state: inout State) throws(StorageError) {
        if state.directoryNeedsSync {
            try FileSystem.syncDirectory(directory)
            state.directoryNeedsSync = false
        }
    }

    private static func path(of segment: UInt64, in directory: String) -> String {
        directory + "/" + FileSystem.fileName(number: segment, suffix: WALFormat.segmentSuffix)
    }

    /// Creates a segment file and writes its file header.
    private static func createSegment(
        _ number: UInt64,
        logID: UInt64,
        in directory: String,
        using createSegmentFile: SegmentCreator
    ) throws(StorageError) -> Int32 {
        let path = path(of: number, in: directory)
        var descriptor = createSegmentFile(path)
        while descriptor < 0 && Glibc.errno == EINTR {
            descriptor = createSegmentFile(path)
        }
        guard descriptor >= 0 else {
            let error = Glibc.errno
            let code: StorageError.Code = [EACCES, EPERM, EROFS].contains(error) ? .notWritable : .io
            throw StorageError(code: code, message: "cannot create segment file", path: path, errno: error)
        }
        do {
            try FileSystem.writeAll(descriptor, WALFormat.fileHeader(logID: logID), path: path)
        } catch {
            FileSystem.close(descriptor)
            throw error
        }
        return descriptor
    }

    /// Scans all segments, repairing a torn tail in the last one; removes a deleted last segment from `segments`.
    private static func recover(directory: String, segments: inout [UInt64], options: Options) throws -> WALRecovery {
        var recovery = WALRecovery()
        for (index, number) in segments.enumerated() {
            let path = path(of: number, in: directory)
            let bytes = try FileSystem.readFile(path)
            let scan = bytes.withUnsafeBytes { WALFormat.scan($0, segment: number, isLast: index == segments.count - 1) }
            recovery.entries += scan.entries
            if let segmentLogID = scan.logID {
                if let logID = recovery.logID, logID != segmentLogID {
                    throw StorageError(
                        code: .corruptEntry, message: "segment belongs to log \(segmentLogID), the segments before it to log \(logID)",
                        path: path, fileOffset: 0)
                }
                recovery.logID = segmentLogID
            }
            switch scan.damage {
            case nil:
                break
            case .tornTail(let offset):
                recovery.truncatedTail = .init(path: path, offset: UInt64(offset), droppedBytes: UInt64(bytes.count - offset))
                if offset == 0 {
                    try FileSystem.remove(path)
                    try FileSystem.syncDirectory(directory)
                    segments.removeLast()
                } else {
                    try FileSystem.truncate(path, length: UInt64(offset))
                }
            case .corrupt(let offset, let reason):
                guard options.skipCorruptEntries else {
                    throw StorageError(code: .corruptEntry, message: reason, path: path, fileOffset: UInt64(offset))
                }
                recovery.skippedCorruption.append(
                    .init(path: path, offset: UInt64(offset), droppedBytes: UInt64(bytes.count - offset), reason: reason)
                )
            case .unsupportedFormat(let reason):
                throw StorageError(code: .unsupportedFormat, message: reason, path: path, fileOffset: 0)
            }
        }
        return recovery
    }
}
