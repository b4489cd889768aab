import CRdKafka
import Dispatch
import Foundation
import Logging
import Synchronization

/// A record to produce.
public struct KafkaProducerRecord: Sendable {
    /// The topic.
    public var topic: String
    /// The partition, or nil to let the partitioner choose from the key.
    public var partition: Int32?
    /// The key bytes, or nil for no key.
    public var key: [UInt8]?
    /// The value bytes.
    public var value: [UInt8]
    /// Headers, in order.
    public var headers: [KafkaHeader]
    /// The record timestamp in milliseconds since the epoch, or nil for "now".
    public var timestamp: Int64?

    public init(topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8], headers: [KafkaHeader] = [], timestamp: Int64? = nil) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }
}

/// A topic of one producer, looked up once (``KafkaProducer/topic(_:timeout:)``): records sent through it skip
/// librdkafka's lookup of the topic by name, which takes the client's write lock, on every record.
public struct KafkaTopic: Sendable {
    /// The topic name.
    public let name: String
    /// nil: records go by name (librdkafka refused the name; producing then reports why).
    let handle: RDKafkaChild?

    /// A topic that records go to by name, looked up by librdkafka on every record.
    public init(named name: String) {
        self.init(name: name, handle: nil)
    }

    init(name: String, handle: RDKafkaChild?) {
        self.name = name
        self.handle = handle
    }
}

/// A Kafka producer: idempotent by default, optionally transactional.
///
/// ``send(_:)`` queues a record without waiting; ``flush(timeout:)`` waits until every queued record is delivered
/// and throws if any delivery since the previous flush failed. All calls are synchronous and may block up to their
/// timeout, so run them on a dedicated thread, never on the Swift concurrency pool. Releasing the producer never
/// blocks: records not delivered by then are discarded, so flush first.
public final class KafkaProducer: Sendable {
    let client: RDKafkaClient
    private let logger: Logger
    /// Topics whose metadata was looked up by ``prepare(topic:timeout:)``; holding the handles keeps it known.
    private let preparedTopics = Mutex<[String: KafkaTopic]>([:])

    /// Creates a producer.
    ///
    /// - Throws: A ``KafkaError`` of kind `.configuration` if librdkafka rejects a property.
    public init(config: KafkaProducerConfig, logger: Logger) throws {
        self.logger = logger
        client = try RDKafkaClient(type: RD_KAFKA_PRODUCER, properties: config.properties(), logger: logger)
    }

    /// Looks up the partitions and leaders of `topic` now, once per topic.
    ///
    /// librdkafka learns about a topic on its first record, through its own metadata refresh, which held the first
    /// records for about half a second; a direct request takes one round trip. Best effort: if the brokers do not
    /// answer within `timeout`, librdkafka looks the topic up by itself as before.
    ///
    /// - Returns: Whether the topic's metadata arrived (`true` also when it was prepared before).
    @discardableResult
    public func prepare(topic name: String, timeout: Duration) -> Bool {
        guard preparedTopics.withLock({ $0[name] == nil }) else { return true }
        // Keeping the handle keeps the topic, and what was learnt about it, in the client.
        let topic = KafkaTopic(name: name, handle: rd_kafka_topic_new(client.handle, name, nil).map {
            RDKafkaChild($0, of: client, destroy: rd_kafka_topic_destroy)
        })
        preparedTopics.withLock { $0[name] = topic }
        guard let handle = topic.handle else { return true }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(client.handle, 0, handle.pointer, &metadata, timeout.milliseconds)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            logger.debug("no metadata for an output topic yet", metadata: ["kafka.topic": "\(name)", "kafka.error": "\(KafkaError.rdkafka(err, "metadata"))"])
            return false
        }
        rd_kafka_metadata_destroy(metadata)
        return true
    }

    /// The topic `name`, prepared (``prepare(topic:timeout:)``) on first use, for ``send(to:partition:key:value:headers:timestamp:)``.
    public func topic(_ name: String, timeout: Duration) -> KafkaTopic {
        prepare(topic: name, timeout: timeout)
        return preparedTopics.withLock { $0[name] } ?? KafkaTopic(named: name)
    }

    /// The number of records delivered so far.
    public var deliveredCount: Int { client.callbacks.deliveries.deliveredCount }

    /// Queues a record for delivery. When librdkafka's queue is full it serves delivery reports and retries.
    ///
    /// - Throws: A ``KafkaError`` if the record cannot be queued (unknown partition, message too large, fatal error).
    public func send(_ record: KafkaProducerRecord) throws {
        try record.value.withUnsafeBytes { value in
            try withOptionalBytes(record.key) { key in
                try send(
                    to: KafkaTopic(named: record.topic), partition: record.partition, key: key, value: value,
                    headers: record.headers.map { ($0.name, $0.value) }, timestamp: record.timestamp)
            }
        }
    }

    /// Queues a record for delivery, copying key, value and headers; the lean form of ``send(_:)`` that output
    /// records take, one call each. When librdkafka's queue is full it serves delivery reports and retries.
    ///
    /// - Throws: A ``KafkaError`` if the record cannot be queued (unknown partition, message too large, fatal error).
    public func send(
        to topic: KafkaTopic, partition: Int32? = nil, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer,
        headers: [(name: String, value: [UInt8])] = [], timestamp: Int64? = nil
    ) throws {
        while true {
            let err = produce(to: topic, partition: partition, key: key, value: value, headers: headers, timestamp: timestamp)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR { return }
            if err == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                rd_kafka_poll(client.handle, 10)
                continue
            }
            throw KafkaError.rdkafka(err, "produce to \(topic.name)")
        }
    }

    private func produce(
        to topic: KafkaTopic, partition: Int32?, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer,
        headers: [(name: String, value: [UInt8])], timestamp: Int64?
    ) -> rd_kafka_resp_err_t {
        guard let handle = topic.handle else {
            return topic.name.withCString { name in
                produce(argument(RD_KAFKA_VTYPE_TOPIC) { $0.u.cstr = name }, partition, key, value, headers, timestamp)
            }
        }
        return produce(argument(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = handle.pointer }, partition, key, value, headers, timestamp)
    }

    private func produce(
        _ topic: rd_kafka_vu_t, _ partition: Int32?, _ key: UnsafeRawBufferPointer?, _ value: UnsafeRawBufferPointer,
        _ headers: [(name: String, value: [UInt8])], _ timestamp: Int64?
    ) -> rd_kafka_resp_err_t {
        // The argument list is on the stack: this runs for every output record.
        withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 7) { items in
            items[0] = topic
            var count = 1
            func add(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                items[count] = argument(type, set)
                count += 1
            }
            add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
            add(RD_KAFKA_VTYPE_VALUE) {
                $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                $0.u.mem.size = value.count
            }
            if let key {
                add(RD_KAFKA_VTYPE_KEY) {
                    $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                    $0.u.mem.size = key.count
                }
            }
            if let partition { add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = partition } }
            if let timestamp { add(RD_KAFKA_VTYPE_TIMESTAMP) { $0.u.i64 = timestamp } }
            // A header list of our own (RD_KAFKA_VTYPE_HEADERS): librdkafka owns it only if the produce
            // succeeds, so it is destroyed here on failure. Building headers inside produceva with
            // RD_KAFKA_VTYPE_HEADER double-frees them when the partitioner fails (librdkafka #4627).
            let headerList = makeHeaders(headers)
            if let headerList { add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headerList } }
            guard let error = rd_kafka_produceva(client.handle, items.baseAddress, count) else {
                return RD_KAFKA_RESP_ERR_NO_ERROR
            }
            if let headerList { rd_kafka_headers_destroy(headerList) }
            let code = rd_kafka_error_code(error)
            rd_kafka_error_destroy(error)
            return code
        }
    }

    /// Waits until every queued record is delivered or failed.
    ///
    /// - Throws: A ``KafkaError`` of kind `.timedOut` if records are still in flight after `timeout`, or of kind
    ///   `.delivery` if any record since the previous flush could not be delivered.
    public func flush(timeout: Duration) throws {
        let err = rd_kafka_flush(client.handle, timeout.milliseconds)
        if let (count, code) = client.callbacks.deliveries.takeFailures() {
            throw KafkaError(kind: .delivery, code: code.rawValue, message: "\(count) records were not delivered: \(String(cString: rd_kafka_err2str(code)))")
        }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdkafka(err, "flush (\(rd_kafka_outq_len(client.handle)) records still in flight)")
        }
    }

    /// Serves delivery reports without blocking.
    public func poll() {
        rd_kafka_poll(client.handle, 0)
    }

    /// Asks the brokers for the metadata of the topics this producer knows (one light round trip).
    ///
    /// - Throws: A ``KafkaError`` of kind `.timedOut` when no broker answered within `timeout`.
    public func checkReachable(timeout: Duration) throws {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(client.handle, 0, nil, &metadata, timeout.milliseconds)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { throw KafkaError.rdkafka(err, "metadata request") }
        rd_kafka_metadata_destroy(metadata)
    }

    /// The partition counts of all topics in the cluster.
    ///
    /// - Throws: A ``KafkaError`` of kind `.timedOut` when no broker answered within `timeout`.
    public func topicPartitionCounts(timeout: Duration) throws -> [String: Int] {
        try client.topicPartitionCounts(timeout: timeout)
    }

    // MARK: Transactions

    /// Registers the transactional id with the coordinator and fences older producers with the same id.
    public func initTransactions(timeout: Duration) throws {
        if let error = rd_kafka_init_transactions(client.handle, timeout.milliseconds) {
            throw KafkaError.consuming(error, "init transactions")
        }
    }

    /// Starts a transaction: records sent from now on commit or abort together.
    public func beginTransaction() throws {
        if let error = rd_kafka_begin_transaction(client.handle) {
            throw KafkaError.consuming(error, "begin transaction")
        }
    }

    /// Adds the consumer's "next to read" offsets to the current transaction, so they commit with its records;
    /// `metadata` (ASCII) is stored with the offsets of the partitions it names, as ``KafkaConsumer/commit(_:metadata:)`` does.
    ///
    /// librdkafka can ignore this call's timeout while the group coordinator is down (#5456), so the call runs on
    /// its own thread under a watchdog: past `timeout` and a grace of as long again, it is reported as a fatal
    /// error (the caller must end the process; the blocked call cannot be taken back).
    public func sendOffsetsToTransaction(
        _ offsets: [KafkaPartition: Int64], metadata: [KafkaPartition: String] = [:], consumer: KafkaConsumer, timeout: Duration
    ) throws {
        let outcome = Mutex<(any Error)?>(nil)
        let done = DispatchSemaphore(value: 0)
        let call = Thread { [client] in
            let result: (any Error)?
            do {
                let list = RDKafkaPartitionList(offsets, metadata: metadata)
                let group = try consumer.groupMetadata()
                let error = rd_kafka_send_offsets_to_transaction(client.handle, list.pointer, group.pointer, timeout.milliseconds)
                result = error.map { KafkaError.consuming($0, "send offsets to transaction") }
            } catch {
                result = error
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        call.name = "sluice-send-offsets"
        call.start()
        guard done.wait(timeout: .now() + .milliseconds(Int(2 * timeout.milliseconds))) == .success else {
            throw KafkaError(
                kind: .timedOut, message: "send offsets to transaction did not return within twice its timeout of \(timeout)",
                isFatal: true)
        }
        if let error = outcome.withLock({ $0 }) { throw error }
    }

    /// Flushes and commits the current transaction, however long that takes (librdkafka asks for an infinite
    /// timeout here: a bounded one can leave its transaction state out of step).
    public func commitTransaction() throws {
        if let error = rd_kafka_commit_transaction(client.handle, -1) {
            throw KafkaError.consuming(error, "commit transaction")
        }
    }

    /// Aborts the current transaction: its records are never visible to `read_committed` consumers. Infinite
    /// timeout, as for the commit.
    public func abortTransaction() throws {
        if let error = rd_kafka_abort_transaction(client.handle, -1) {
            throw KafkaError.consuming(error, "abort transaction")
        }
    }
}

/// One argument of `rd_kafka_produceva`.
private func argument(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) -> rd_kafka_vu_t {
    var item = rd_kafka_vu_t()
    item.vtype = type
    set(&item)
    return item
}

private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
    guard let bytes else { return try body(nil) }
    return try bytes.withUnsafeBytes { try body($0) }
}

/// A new header list holding copies of `headers`, or nil when there are none.
private func makeHeaders(_ headers: [(name: String, value: [UInt8])]) -> OpaquePointer? {
    guard !headers.isEmpty, let list = rd_kafka_headers_new(headers.count) else { return nil }
    for header in headers {
        header.value.withUnsafeBytes { value in
            _ = rd_kafka_header_add(list, header.name, -1, value.baseAddress, value.count)
        }
    }
    return list
}
