import CRdKafka

/// A topic to create: its name, partition count and topic-level settings (such as `cleanup.policy=compact`).
public struct KafkaNewTopic: Sendable, Equatable {
    public var name: String
    public var partitions: Int32
    public var settings: [String: String]

    public init(name: String, partitions: Int32, settings: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.settings = settings
    }
}

extension KafkaProducer {
    /// Creates topics through the admin API (CreateTopics), with the broker's default replication factor.
    ///
    /// - Returns: Each topic's outcome: nil when it was created, the broker's error otherwise (`TOPIC_ALREADY_EXISTS`
    ///   among them: another instance may have created it first).
    /// - Throws: A ``KafkaError`` when the request as a whole failed or no answer came within `timeout` (a broker
    ///   without the admin API answers so).
    public func createTopics(_ topics: [KafkaNewTopic], timeout: Duration) throws -> [String: KafkaError?] {
        var errorBuffer = [CChar].errorBuffer()
        var handles: [OpaquePointer?] = []
        defer { for handle in handles { rd_kafka_NewTopic_destroy(handle) } }
        for topic in topics {
            guard let handle = rd_kafka_NewTopic_new(topic.name, topic.partitions, -1, &errorBuffer, errorBuffer.count) else {
                throw KafkaError(kind: .invalidArgument, message: "topic \(topic.name): \(errorBuffer.errorText)")
            }
            handles.append(handle)
            for (name, value) in topic.settings.sorted(by: { $0.key < $1.key }) {
                let err = rd_kafka_NewTopic_set_config(handle, name, value)
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.rdkafka(err, "topic \(topic.name) setting \(name)") }
            }
        }
        let queue = RDKafkaChild(rd_kafka_queue_new(client.handle), of: client, destroy: rd_kafka_queue_destroy)
        let options = rd_kafka_AdminOptions_new(client.handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_request_timeout(options, Int32(timeout.milliseconds), &errorBuffer, errorBuffer.count)
        handles.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_CreateTopics(client.handle, buffer.baseAddress, buffer.count, options, queue.pointer)
        }
        // The request timeout ends the request; the extra second only covers its delivery to the queue.
        guard let event = rd_kafka_queue_poll(queue.pointer, timeout.milliseconds + 1000) else {
            throw KafkaError(kind: .timedOut, message: "create topics: no answer within \(timeout)")
        }
        defer { rd_kafka_event_destroy(event) }
        let err = rd_kafka_event_error(event)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            let text: UnsafePointer<CChar>? = rd_kafka_event_error_string(event)
            throw KafkaError.rdkafka(err, "create topics: \(text.map { String(cString: $0) } ?? "no reason given")")
        }
        var count = 0
        guard let result = rd_kafka_event_CreateTopics_result(event),
            let results = rd_kafka_CreateTopics_result_topics(result, &count)
        else { throw KafkaError(kind: .librdkafka, message: "create topics: the answer holds no topic results") }
        var outcomes: [String: KafkaError?] = [:]
        for index in 0..<count {
            let name = String(cString: rd_kafka_topic_result_name(results[index]))
            let code = rd_kafka_topic_result_error(results[index])
            let text = rd_kafka_topic_result_error_string(results[index]).map { String(cString: $0) } ?? ""
            outcomes[name] = code == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError.rdkafka(code, "create topic \(name): \(text)")
        }
        return outcomes
    }
}
