/// What ``WriteAheadLog/open(directory:options:)`` found in the log directory.
public struct WALRecovery: Sendable {
    /// The end of the last segment that was cut off because its final write was incomplete.
    public struct TruncatedTail: Equatable, Sendable {
        /// The segment file that was truncated (or deleted, when even its file header was incomplete).
        public let path: String
        /// The offset the file was truncated to: the start of the incomplete frame.
        public let offset: UInt64
        /// How many bytes were removed.
        public let droppedBytes: UInt64
    }

    /// The rest of a segment that was passed over because ``WriteAheadLog/Options/skipCorruptEntries`` was set.
    public struct SkippedCorruption: Equatable, Sendable {
        /// The damaged segment file; it is left unchanged on disk.
        public let path: String
        /// The offset of the first invalid frame.
        public let offset: UInt64
        /// How many bytes, from `offset` to the end of the file, were ignored.
        public let droppedBytes: UInt64
        /// What was wrong with the frame, such as `payload checksum mismatch`.
        public let reason: String
    }

    /// The identity of the recovered log; nil when the directory held no readable segment (a new log).
    public internal(set) var logID: UInt64?
    /// Every intact entry, in log order.
    public internal(set) var entries: [WALEntry] = []
    /// The incomplete tail that was removed from the last segment, if there was one.
    public internal(set) var truncatedTail: TruncatedTail?
    /// The damaged segment remainders that were skipped, in log order.
    public internal(set) var skippedCorruption: [SkippedCorruption] = []
}
