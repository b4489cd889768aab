/// An error of the streaming runtime.
public struct StreamingError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A write-ahead-log entry or a checkpoint could not be understood.
        public static let corruptLog = Code("corrupt log")
        /// The checkpoint was written by an unknown format version.
        public static let unsupportedVersion = Code("unsupported version")
        /// Input could not be received or stored.
        public static let receiver = Code("receiver")
        /// Output could not be delivered.
        public static let output = Code("output")
        /// The checkpoint covers a write-ahead log other than the one on disk.
        public static let logMismatch = Code("log mismatch")
        /// A setting differs from the one the checkpointed state was built with.
        public static let settingChanged = Code("setting changed")
        /// An input partition restarted below the offset the state holds (the topic was recreated or truncated).
        public static let offsetReset = Code("offset reset")
        /// The instance was assigned only part of its input: another member joined its consumer group.
        public static let partialInput = Code("partial input")
        /// Distributed mode: a shard found a source batch missing or different from the one it applied.
        public static let lostInput = Code("lost input")
        /// Distributed mode: a changelog record could not be understood.
        public static let corruptChangelog = Code("corrupt changelog")
        /// A ``StreamingConfiguration`` value cannot be used.
        public static let invalidConfiguration = Code("invalid configuration")
        /// The context was used in a state that does not allow the call.
        public static let invalidState = Code("invalid state")
    }

    /// The kind of failure.
    public var code: Code
    /// What happened.
    public var message: String
    /// The error that caused it, if any.
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        if let underlying { return "\(code): \(message): \(underlying)" }
        return "\(code): \(message)"
    }
}
