import Glibc

/// The error thrown by every API of the `Storage` module.
///
/// The ``description`` names what went wrong, the file and byte offset when known, and
/// the operating-system error when a system call failed, for example
/// `corrupt WAL entry in /x/wal/00000000000000000003.wal at byte 4096: payload checksum mismatch`.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    /// The category of a ``StorageError``.
    ///
    /// Compare against the static members; more codes may be added in later versions,
    /// so do not assume the list is complete.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// A short phrase naming the category; it starts ``StorageError/description``.
        public let description: String

        private init(_ description: String) {
            self.description = description
        }

        /// A system call failed; ``StorageError/errno`` holds the reason.
        public static let io = Code("I/O error")
        /// The storage directory cannot be created or is not a writable directory.
        public static let notWritable = Code("storage directory not writable")
        /// A write-ahead-log frame failed validation somewhere other than a torn tail.
        public static let corruptEntry = Code("corrupt WAL entry")
        /// A file does not start with the expected magic bytes or has an unknown version.
        public static let unsupportedFormat = Code("unsupported file format")
        /// A payload does not fit the 32-bit length field of the on-disk format.
        public static let payloadTooLarge = Code("payload too large")
        /// The write-ahead log was closed with ``WriteAheadLog/close()``.
        public static let closed = Code("write-ahead log closed")
        /// Another process holds the directory's ``DirectoryLock``.
        public static let locked = Code("directory in use")
        /// Checkpoint files exist but none of them is intact.
        public static let noValidCheckpoint = Code("no valid checkpoint")
    }

    /// The category of the error.
    public let code: Code
    /// What exactly failed, such as `payload checksum mismatch` or `fdatasync failed`.
    public let message: String
    /// The file or directory concerned, if any.
    public let path: String?
    /// The byte offset within ``path`` where the problem was found, if any.
    public let fileOffset: UInt64?
    /// The `errno` value of the failed system call, if any.
    public let errno: Int32?

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: The category of the error.
    ///   - message: What exactly failed.
    ///   - path: The file or directory concerned.
    ///   - fileOffset: The byte offset within `path` where the problem was found.
    ///   - errno: The `errno` value of the failed system call.
    public init(code: Code, message: String, path: String? = nil, fileOffset: UInt64? = nil, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.fileOffset = fileOffset
        self.errno = errno
    }

    /// A one-line description: code, path, byte offset, message and system error.
    public var description: String {
        var text = code.description
        if let path {
            text += " in \(path)"
        }
        if let fileOffset {
            text += " at byte \(fileOffset)"
        }
        text += ": \(message)"
        if let errno {
            text += " (errno \(errno): \(String(cString: strerror(errno))))"
        }
        return text
    }
}
