import CRdKafka

/// A consumed record, read in place from librdkafka's buffers.
///
/// - Important: A view is valid only inside the handler it is passed to: its buffers are freed when the handler
///   returns. Copy what you keep.
public struct KafkaMessageView {
    private let message: UnsafePointer<rd_kafka_message_t>
    /// The topic name.
    public let topic: String

    init(message: UnsafePointer<rd_kafka_message_t>, topic: String) {
        self.message = message
        self.topic = topic
    }

    /// The partition number.
    public var partition: Int32 { message.pointee.partition }
    /// The record's offset.
    public var offset: Int64 { message.pointee.offset }
    /// The record timestamp in milliseconds since the epoch (create or log-append time), or -1 if none.
    public var timestamp: Int64 { rd_kafka_message_timestamp(message, nil) }
    /// The key bytes, or nil for a record without a key.
    public var key: UnsafeRawBufferPointer? {
        message.pointee.key.map { UnsafeRawBufferPointer(start: $0, count: message.pointee.key_len) }
    }
    /// The value bytes (empty for a null value).
    public var value: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: message.pointee.payload, count: message.pointee.payload == nil ? 0 : message.pointee.len)
    }

    /// The record's headers, copied.
    public var headers: [KafkaHeader] {
        var headers: OpaquePointer?
        guard rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers else { return [] }
        var result: [KafkaHeader] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(headers, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
            result.append(KafkaHeader(name: name.map { String(cString: $0) } ?? "", value: bytes ?? []))
            index += 1
        }
        return result
    }
}

/// A record header.
public struct KafkaHeader: Hashable, Sendable {
    /// The header name.
    public var name: String
    /// The header value.
    public var value: [UInt8]

    public init(name: String, value: [UInt8]) {
        self.name = name
        self.value = value
    }
}
