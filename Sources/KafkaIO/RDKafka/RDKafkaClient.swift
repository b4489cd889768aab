import CRdKafka
import Logging
import Synchronization

/// The events librdkafka reports through callbacks, bridged to Swift closures.
///
/// - Important: An instance is passed to C as the configuration opaque with `Unmanaged.passRetained`; the
///   ``RDKafkaClient`` that owns the handle balances it with one `release()` after `rd_kafka_destroy` returns,
///   so the context outlives every callback. Callbacks run on librdkafka's threads or inside a poll call, so all
///   state here is immutable, atomic or behind a `Mutex`.
final class RDKafkaCallbacks: Sendable {
    let logger: Logger
    /// Called from inside a consumer poll or close on a rebalance.
    let rebalance: Mutex<Handler<(OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>)>?>
    /// Delivery outcomes, counted for each delivery report while the producer is polled or flushed.
    let deliveries = DeliveryCounts()

    /// A closure in a class, so that reading it out of a `Mutex` copies a reference, not a function value
    /// (which Swift 6.3 re-wraps in a new thunk on every read through `withLock`).
    final class Handler<Argument>: Sendable {
        let call: @Sendable (Argument) -> Void

        init(_ call: @escaping @Sendable (Argument) -> Void) {
            self.call = call
        }
    }

    init(logger: Logger) {
        self.logger = logger
        self.rebalance = Mutex(nil)
    }

    static func from(_ opaque: UnsafeMutableRawPointer?) -> RDKafkaCallbacks? {
        guard let opaque else { return nil }
        return Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    }
}

private func logCallback(_ rk: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?, _ text: UnsafePointer<CChar>?) {
    guard let rk, let callbacks = RDKafkaCallbacks.from(rd_kafka_opaque(rk)), let text else { return }
    let logLevel: Logger.Level
    switch level {
    case ...3: logLevel = .error
    case 4: logLevel = .warning
    case 5, 6: logLevel = .info
    default: logLevel = .debug
    }
    callbacks.logger.log(
        level: logLevel,
        "\(String(cString: text))",
        metadata: ["kafka.facility": "\(facility.map { String(cString: $0) } ?? "")"]
    )
}

private func errorCallback(_ rk: OpaquePointer?, _ err: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let callbacks = RDKafkaCallbacks.from(opaque) else { return }
    let code = rd_kafka_resp_err_t(err)
    let error = KafkaError.rdkafka(code, reason.map { String(cString: $0) } ?? "client error")
    // Client errors (brokers down, transport) are retried by librdkafka itself; a fatal one is worth more attention.
    callbacks.logger.log(level: code == RD_KAFKA_RESP_ERR__FATAL ? .error : .info, "librdkafka reported an error", metadata: ["kafka.error": "\(error)"])
}

private func rebalanceCallback(
    _ rk: OpaquePointer?, _ err: rd_kafka_resp_err_t,
    _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let rk, let partitions, let callbacks = RDKafkaCallbacks.from(opaque) else { return }
    if let handler = callbacks.rebalance.withLock({ $0 }) {
        handler.call((rk, err, partitions))
        return
    }
    // No handler (yet, or any more): do what librdkafka does without a callback, so the group never stalls.
    let cooperative = isCooperativeRebalance(rk)
    let assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
    switch (cooperative, assign) {
    case (true, true): rd_kafka_incremental_assign(rk, partitions).map { rd_kafka_error_destroy($0) }
    case (true, false): rd_kafka_incremental_unassign(rk, partitions).map { rd_kafka_error_destroy($0) }
    case (false, true): rd_kafka_assign(rk, partitions)
    case (false, false): rd_kafka_assign(rk, nil)
    }
}

/// Whether the consumer's group rebalances cooperatively (incremental assign and unassign). librdkafka answers NULL
/// for the protocol once the consumer is closing (its group's queue is gone): then eager, as with every assignor
/// sluice configures (a cooperative-only unassign would be refused with an error, not a crash).
func isCooperativeRebalance(_ handle: OpaquePointer) -> Bool {
    rebalanceProtocol(of: handle) == "COOPERATIVE"
}

/// The group's rebalance protocol ("NONE", "EAGER", "COOPERATIVE"), or nil when librdkafka has none to tell.
func rebalanceProtocol(of handle: OpaquePointer) -> String? {
    let name: UnsafePointer<CChar>? = rd_kafka_rebalance_protocol(handle)
    return name.map { String(cString: $0) }
}

/// Runs once per produced record: counts it without a lock, and without retaining the context (which outlives
/// every callback).
private func deliveryCallback(_ rk: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let message, let opaque else { return }
    Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque)._withUnsafeGuaranteedRef { $0.deliveries.count(message.pointee.err) }
}

/// Delivery outcomes, updated by the delivery callback and read by any thread.
final class DeliveryCounts: Sendable {
    private let delivered = Atomic<Int>(0)
    /// Failures since the last ``takeFailures()``: their number and the first one's code. Rare, so under a lock.
    private let failures = Mutex<(count: Int, first: rd_kafka_resp_err_t)?>(nil)

    /// The records delivered so far.
    var deliveredCount: Int { delivered.load(ordering: .relaxed) }

    func count(_ err: rd_kafka_resp_err_t) {
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else {
            delivered.add(1, ordering: .relaxed)
            return
        }
        failures.withLock { $0 = (($0?.count ?? 0) + 1, $0?.first ?? err) }
    }

    /// The failures since the last call, if any; resets them.
    func takeFailures() -> (count: Int, first: rd_kafka_resp_err_t)? {
        failures.withLock { $0.take() }
    }
}

/// Owns one `rd_kafka_t` handle and its callback context.
///
/// - Important: librdkafka handles are thread-safe, which is why this box is `@unchecked Sendable`: the pointer
///   itself is never mutated after `init`. `deinit` destroys the handle and then releases the callbacks.
final class RDKafkaClient: @unchecked Sendable {
    let handle: OpaquePointer
    let callbacks: RDKafkaCallbacks

    /// Creates a client of the given type from `(property, value)` pairs applied in order.
    ///
    /// - Throws: A ``KafkaError`` of kind `.configuration` naming the first property librdkafka rejects.
    init(type: rd_kafka_type_t, properties: [(String, String)], logger: Logger, withRebalance: Bool = false) throws {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(kind: .configuration, message: "rd_kafka_conf_new failed")
        }
        var errorBuffer = [CChar].errorBuffer()
        for (name, value) in properties {
            let result = rd_kafka_conf_set(conf, name, value, &errorBuffer, errorBuffer.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(kind: .configuration, message: "property '\(name)': \(errorBuffer.errorText)")
            }
        }
        let callbacks = RDKafkaCallbacks(logger: logger)
        let opaque = Unmanaged.passRetained(callbacks).toOpaque()
        rd_kafka_conf_set_opaque(conf, opaque)
        rd_kafka_conf_set_log_cb(conf, logCallback)
        rd_kafka_conf_set_error_cb(conf, errorCallback)
        if type == RD_KAFKA_PRODUCER {
            rd_kafka_conf_set_dr_msg_cb(conf, deliveryCallback)
        }
        if withRebalance {
            rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
        }
        guard let handle = rd_kafka_new(type, conf, &errorBuffer, errorBuffer.count) else {
            // On failure the configuration still belongs to us.
            rd_kafka_conf_destroy(conf)
            Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque).release()
            throw KafkaError(kind: .configuration, message: "rd_kafka_new failed: \(errorBuffer.errorText)")
        }
        self.handle = handle
        self.callbacks = callbacks
    }

    /// Destroys the handle without a consumer close (a network round trip and the revoke callback): closing is the
    /// owner's explicit step, never a side effect of releasing the last reference.
    deinit {
        rd_kafka_destroy_flags(handle, Int32(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE))
        Unmanaged.passUnretained(callbacks).release()
    }

    /// Asks the brokers for metadata of every topic.
    ///
    /// - Returns: The partition count per topic.
    /// - Throws: A ``KafkaError`` of kind `.timedOut` naming the bootstrap servers when no broker answered in time.
    func topicPartitionCounts(timeout: Duration) throws -> [String: Int] {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 1, nil, &metadata, timeout.milliseconds)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError.rdkafka(err, "metadata request")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        var result: [String: Int] = [:]
        for index in 0..<Int(metadata.pointee.topic_cnt) {
            let topic = metadata.pointee.topics[index]
            if topic.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                result[String(cString: topic.topic)] = Int(topic.partition_cnt)
            }
        }
        return result
    }

    /// The low and high watermark offsets of a partition, asked of the broker.
    func watermarks(of partition: KafkaPartition, timeout: Duration) throws -> (low: Int64, high: Int64) {
        var low: Int64 = 0
        var high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(handle, partition.topic, partition.partition, &low, &high, timeout.milliseconds)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdkafka(err, "watermarks of \(partition)")
        }
        return (low, high)
    }
}

extension Duration {
    /// The duration in whole milliseconds, clamped to `Int32`, for librdkafka's timeout arguments.
    var milliseconds: Int32 {
        let (seconds, attoseconds) = components
        let total = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: total)
    }
}

extension [CChar] {
    /// A buffer for the error text librdkafka writes into (`errstr`, `errstr_size`).
    static func errorBuffer() -> [CChar] {
        [CChar](repeating: 0, count: 512)
    }

    /// The NUL-terminated text librdkafka wrote into an ``errorBuffer()``.
    var errorText: String {
        String(decoding: prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
