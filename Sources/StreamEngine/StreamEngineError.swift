/// An error of the stream engine: bytes that cannot be decoded (a block or a checkpoint), a checkpoint of another
/// graph, or window parameters that cannot work. A failed restore leaves the graph unchanged.
public struct StreamEngineError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A format version this build does not understand (or empty input).
        public static let unsupportedVersion = Code("unsupported version")
        /// Truncated or inconsistent bytes.
        public static let malformed = Code("malformed")
        /// A checkpoint of different stateful operators (by name, in registration order) than the graph's.
        public static let operatorMismatch = Code("operator mismatch")
        /// Window parameters that cannot work.
        public static let invalidWindow = Code("invalid window")
    }

    /// The kind of failure.
    public var code: Code
    /// What exactly failed.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// The format version byte (nil: the input is empty) is not one this build understands.
    public static func unsupportedVersion(_ version: UInt8?) -> Self {
        Self(.unsupportedVersion, version.map { "format version \($0)" } ?? "empty input")
    }

    /// The bytes are truncated or inconsistent; `part` names the part that failed.
    public static func malformed(_ part: String) -> Self {
        Self(.malformed, part)
    }

    /// The checkpoint's stateful operators are not the graph's.
    public static func operatorMismatch(expected: [String], found: [String]) -> Self {
        Self(.operatorMismatch, "the graph has operators \(expected), the checkpoint \(found)")
    }

    /// The window length or slide is not positive.
    public static let nonPositiveDuration = Self(.invalidWindow, "the length and the slide must be positive")
    /// The allowed lateness is negative.
    public static let negativeLateness = Self(.invalidWindow, "the allowed lateness must not be negative")
    /// The window length is not a multiple of the slide.
    public static let lengthNotMultipleOfSlide = Self(.invalidWindow, "the length must be a multiple of the slide")
    /// The window length or allowed lateness exceeds ``WindowSpec/maximumDuration``.
    public static let durationTooLong = Self(.invalidWindow, "the length and the allowed lateness must not exceed WindowSpec.maximumDuration")
}
