import CRdKafka

/// An error from librdkafka or from the Kafka layer around it.
///
/// `code` is librdkafka's `rd_kafka_resp_err_t` value (negative values are client-side errors such as
/// `_TRANSPORT`, positive ones are broker error codes). `isFatal` and `isRetriable` let a caller choose between
/// retrying, recreating the client, and stopping.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a category that callers can switch on.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A configuration property was unknown or had an invalid value.
        public static let configuration = Kind("configuration")
        /// A librdkafka call returned an error code.
        public static let librdkafka = Kind("librdkafka")
        /// A message could not be delivered by the producer.
        public static let delivery = Kind("delivery")
        /// The brokers did not answer within the allowed time.
        public static let timedOut = Kind("timed out")
        /// The client was already closed.
        public static let closed = Kind("closed")
        /// A caller passed an argument that cannot work (for example an empty topic list).
        public static let invalidArgument = Kind("invalid argument")
    }

    /// The category of the error.
    public var kind: Kind
    /// librdkafka's error code (`RD_KAFKA_RESP_ERR_NO_ERROR`, 0, when the error did not come from librdkafka).
    public var code: Int32
    /// A human-readable message, including librdkafka's own text where there is one.
    public var message: String
    /// The error is fatal for the client instance: it must be recreated.
    public var isFatal: Bool
    /// The operation may succeed if retried.
    public var isRetriable: Bool
    /// A transactional call failed in a way that leaves the current transaction only one way out: abort it
    /// (librdkafka's `rd_kafka_error_txn_requires_abort`).
    public var requiresAbort: Bool

    public init(
        kind: Kind, code: Int32 = 0, message: String, isFatal: Bool = false, isRetriable: Bool = false, requiresAbort: Bool = false
    ) {
        self.kind = kind
        self.code = code
        self.message = message
        self.isFatal = isFatal
        self.isRetriable = isRetriable
        self.requiresAbort = requiresAbort
    }

    /// librdkafka's name for the code, such as `_TRANSPORT` or `UNKNOWN_TOPIC_OR_PART`.
    public var codeName: String {
        String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(code)))
    }

    public var description: String {
        code == 0 ? "KafkaError(\(kind)): \(message)" : "KafkaError(\(kind), \(codeName)): \(message)"
    }

    /// The error for a response code returned by a librdkafka call.
    static func rdkafka(_ err: rd_kafka_resp_err_t, _ context: String) -> KafkaError {
        let text = String(cString: rd_kafka_err2str(err))
        return KafkaError(
            kind: err == RD_KAFKA_RESP_ERR__TIMED_OUT ? .timedOut : .librdkafka,
            code: err.rawValue,
            message: "\(context): \(text)",
            isFatal: err == RD_KAFKA_RESP_ERR__FATAL
        )
    }

    /// Takes ownership of an `rd_kafka_error_t`, destroys it, and returns the equivalent Swift error.
    static func consuming(_ error: OpaquePointer, _ context: String) -> KafkaError {
        defer { rd_kafka_error_destroy(error) }
        return KafkaError(
            kind: .librdkafka,
            code: rd_kafka_error_code(error).rawValue,
            message: "\(context): \(String(cString: rd_kafka_error_string(error)))",
            isFatal: rd_kafka_error_is_fatal(error) != 0,
            isRetriable: rd_kafka_error_is_retriable(error) != 0,
            requiresAbort: rd_kafka_error_txn_requires_abort(error) != 0
        )
    }
}
