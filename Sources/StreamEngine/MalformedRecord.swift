/// An input record that was skipped, and why: it cannot be processed without breaking the batch.
public struct MalformedRecord: Sendable, Equatable {
    /// Why a record was skipped.
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        /// The value is not valid UTF-8.
        case invalidUTF8
        /// A word is longer than ``WordTokenizer/maximumWordBytes``: its output records could exceed what a Kafka
        /// producer accepts, and a batch that cannot be produced would fail again on every replay.
        case wordTooLong(bytes: Int)

        public var description: String {
            switch self {
            case .invalidUTF8: "invalid UTF-8"
            case .wordTooLong(let bytes): "a word of \(bytes) bytes, over the \(WordTokenizer.maximumWordBytes)-byte limit"
            }
        }
    }

    public var record: InputRecord
    public var reason: Reason

    public init(record: InputRecord, reason: Reason) {
        self.record = record
        self.reason = reason
    }
}
