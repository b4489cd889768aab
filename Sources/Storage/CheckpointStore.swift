import Glibc
import Synchronization

/// Atomically written, checksummed checkpoint files in one directory.
///
/// Each checkpoint is a file `checkpoint-%020llu.ckp` named by its sequence number and
/// containing `"SLCKP"`, version `1`, the sequence number (`UInt64`), the payload length
/// and the payload's CRC-32C (`UInt32` each, all little-endian), then the payload.
/// ``write(_:sequence:)`` writes a temporary file, syncs it, renames it into place and
/// syncs the directory, so a crash leaves either the old or the new checkpoint, never a
/// partial one. ``loadLatest()`` returns the newest intact checkpoint, falling back to
/// older ones if newer files are damaged.
///
/// All methods are thread-safe; calls are serialized by an internal lock. A directory
/// must be used by one store at a time.
public final class CheckpointStore: Sendable {
    /// Tuning knobs for a ``CheckpointStore``.
    public struct Options: Sendable {
        /// How many of the newest checkpoints to keep after each write; values below 1 count as 1.
        ///
        /// Keeping more than one lets ``CheckpointStore/loadLatest()`` fall back to an older
        /// checkpoint if the newest is damaged. Default: 2.
        public var retain: Int

        /// Creates options.
        ///
        /// - Parameter retain: How many of the newest checkpoints to keep.
        public init(retain: Int = 2) {
            self.retain = retain
        }
    }

    private static let magic: [UInt8] = Array("SLCKP".utf8)
    private static let version: UInt8 = 1
    /// Magic, version, sequence, length and checksum.
    private static let headerSize = 22
    private static let prefix = "checkpoint-"
    private static let suffix = ".ckp"
    private static let temporarySuffix = ".tmp"

    /// The directory holding the checkpoint files.
    public let directory: String
    private let options: Options
    private let lock = Mutex(())

    /// Opens the store in `directory`, creating the directory and its parents if missing.
    ///
    /// - Parameters:
    ///   - directory: The directory for checkpoint files, such as `<checkpointDir>/checkpoints`.
    ///   - options: Retention settings.
    /// - Throws: ``StorageError`` with code `.notWritable` if `directory` is not a writable directory.
    public init(directory: String, options: Options = .init()) throws {
        try FileSystem.prepareWritableDirectory(directory)
        self.directory = directory
        self.options = options
    }

    /// Durably and atomically stores a checkpoint, then deletes older ones.
    ///
    /// Writes `checkpoint-<sequence>.tmp`, syncs it, renames it to
    /// `checkpoint-<sequence>.ckp` (replacing a checkpoint with the same sequence) and syncs
    /// the directory. Afterwards it deletes all but the newest ``Options/retain``
    /// checkpoints and any leftover temporary files. Sequence numbers should increase with
    /// every write: a checkpoint older than the retained ones is deleted right away.
    ///
    /// - Parameters:
    ///   - payload: The checkpoint contents; at most `UInt32.max` bytes.
    ///   - sequence: The checkpoint's sequence number.
    /// - Throws: ``StorageError`` with code `.payloadTooLarge` or `.io`. If only the
    ///   clean-up fails, the new checkpoint is already durable.
    public func write(_ payload: [UInt8], sequence: UInt64) throws {
        guard payload.count <= UInt32.max else {
            throw StorageError(code: .payloadTooLarge, message: "\(payload.count) bytes exceed the 4 GiB checkpoint limit", path: directory)
        }
        let contents = Self.encode(payload, sequence: sequence)
        let temporaryPath = path(FileSystem.fileName(prefix: Self.prefix, number: sequence, suffix: Self.temporarySuffix))
        let finalPath = path(FileSystem.fileName(prefix: Self.prefix, number: sequence, suffix: Self.suffix))
        try lock.withLock { _ in
            let descriptor = try FileSystem.open(temporaryPath, flags: O_WRONLY | O_CREAT | O_TRUNC)
            do {
                try FileSystem.writeAll(descriptor, contents, path: temporaryPath)
                try FileSystem.sync(descriptor, path: temporaryPath)
                FileSystem.close(descriptor)
            } catch {
                FileSystem.close(descriptor)
                try? FileSystem.remove(temporaryPath)
                throw error
            }
            try FileSystem.rename(temporaryPath, to: finalPath)
            try FileSystem.syncDirectory(directory)
            try removeObsoleteFiles()
        }
    }

    /// Loads the newest intact checkpoint.
    ///
    /// Checkpoint files are tried newest first; a file that is truncated, has a bad
    /// header or fails its checksum is passed over and listed in
    /// ``LoadedCheckpoint/skipped``.
    ///
    /// - Returns: The newest intact checkpoint, or `nil` if the directory holds no checkpoint files.
    /// - Throws: ``StorageError`` with code `.noValidCheckpoint` if checkpoint files exist
    ///   but none is intact (the message lists each file and what is wrong with it), or `.io`.
    public func loadLatest() throws -> LoadedCheckpoint? {
        try lock.withLock { _ in
            let checkpoints = try checkpointFiles().reversed()
            guard !checkpoints.isEmpty else {
                return nil
            }
            var skipped: [String] = []
            var problems: [String] = []
            for (sequence, name) in checkpoints {
                let path = path(name)
                let bytes = try FileSystem.readFile(path)
                switch Self.decode(bytes, sequence: sequence) {
                case .success(let payload):
                    return LoadedCheckpoint(sequence: sequence, payload: payload, skipped: skipped)
                case .failure(let problem):
                    skipped.append(path)
                    problems.append("\(name): \(problem.reason)")
                }
            }
            throw StorageError(
                code: .noValidCheckpoint,
                message: "\(checkpoints.count) checkpoint file(s) exist but none is intact (\(problems.joined(separator: "; ")))",
                path: directory
            )
        }
    }

    /// Why a checkpoint file was rejected.
    private struct Problem: Error {
        let reason: String
    }

    private func path(_ name: String) -> String {
        directory + "/" + name
    }

    /// The checkpoint files in the directory as (sequence, file name), oldest first.
    private func checkpointFiles() throws(StorageError) -> [(sequence: UInt64, name: String)] {
        try FileSystem.listDirectory(directory)
            .compactMap { name in
                FileSystem.number(inFileName: name, prefix: Self.prefix, suffix: Self.suffix).map { ($0, name) }
            }
            .sorted { $0.sequence < $1.sequence }
    }

    /// Deletes all but the newest retained checkpoints, and any temporary files.
    private func removeObsoleteFiles() throws(StorageError) {
        for (_, name) in try checkpointFiles().dropLast(max(1, options.retain)) {
            try FileSystem.remove(path(name))
        }
        for name in try FileSystem.listDirectory(directory)
        where FileSystem.number(inFileName: name, prefix: Self.prefix, suffix: Self.temporarySuffix) != nil {
            try FileSystem.remove(path(name))
        }
    }

    private static func encode(_ payload: [UInt8], sequence: UInt64) -> [UInt8] {
        var bytes = magic + [version]
        bytes.reserveCapacity(headerSize + payload.count)
        withUnsafeBytes(of: sequence.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: UInt32(payload.count).littleEndian) { bytes += $0 }
        withUnsafeBytes(of: CRC32C.checksum(payload).littleEndian) { bytes += $0 }
        return bytes + payload
    }

    private static func decode(_ bytes: [UInt8], sequence: UInt64) -> Result<[UInt8], Problem> {
        guard bytes.count >= headerSize else {
            return .failure(Problem(reason: "truncated header (\(bytes.count) bytes)"))
        }
        guard bytes.starts(with: magic) else {
            return .failure(Problem(reason: "bad magic"))
        }
        guard bytes[5] == version else {
            return .failure(Problem(reason: "unsupported version \(bytes[5])"))
        }
        return bytes.withUnsafeBytes { raw in
            let storedSequence = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 6, as: UInt64.self))
            let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 14, as: UInt32.self)))
            let checksum = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 18, as: UInt32.self))
            guard storedSequence == sequence else {
                return .failure(Problem(reason: "sequence \(storedSequence) does not match file name"))
            }
            guard length == bytes.count - headerSize else {
                return .failure(Problem(reason: "length \(length) does not match \(bytes.count - headerSize) payload bytes"))
            }
            let payload = UnsafeRawBufferPointer(rebasing: raw[headerSize...])
            guard CRC32C.checksum(payload) == checksum else {
                return .failure(Problem(reason: "payload checksum mismatch"))
            }
            return .success(Array(payload))
        }
    }
}
