import CRdKafka
import Logging
import Synchronization

/// A change of the partitions assigned to this consumer by its group.
public enum KafkaRebalance: Sendable, Equatable {
    /// These partitions are now this consumer's.
    case assigned([KafkaPartition])
    /// These partitions are being taken away; finish and commit their work now.
    case revoked([KafkaPartition])
}

/// What one ``KafkaConsumer/poll(timeout:maxMessages:_:)`` call delivers to its handler.
public enum KafkaConsumerEvent {
    /// A record.
    case message(KafkaMessageView)
    /// The consumer reached the current end of a partition; `nextOffset` is the offset it will read next.
    case endOfPartition(KafkaPartition, nextOffset: Int64)
}

/// A high-level Kafka consumer in a consumer group, with manual offset commits.
///
/// Offsets are never committed automatically: call ``commit(_:)`` with "next to read" offsets (last processed
/// + 1) once the records are safe. All calls are synchronous and may block up to their timeout, so run them on a
/// dedicated thread, never on the Swift concurrency pool. The handle is thread-safe.
///
/// - Important: Call ``close()`` before dropping the consumer so that it leaves the group at once; otherwise its
///   partitions stall for the session timeout.
public final class KafkaConsumer: Sendable {
    private let client: RDKafkaClient
    private let queue: RDKafkaChild
    private let logger: Logger
    private let isClosed = Atomic<Bool>(false)
    /// ``subscribe(_:onRebalance:)`` was called: the consumer is in a group.
    private let isSubscribed = Atomic<Bool>(false)
    /// A static member (`group.instance.id`) must not leave its group on close: its restart keeps the partitions.
    private let isStaticMember: Bool
    /// librdkafka reported a fatal error: the client is unusable (see ``close()``).
    private let isFatallyFailed = Atomic<Bool>(false)
    /// Offsets to drop per partition and how many more times, for ``injectSkip(_:of:times:)``; `hasInjectedSkips`
    /// keeps the check off the hot path.
    private let injectedSkips = Mutex<[KafkaPartition: (offsets: Range<Int64>, times: Int)]>([:])
    private let hasInjectedSkips = Atomic<Bool>(false)
    /// Topic names by `rd_kafka_topic_t` handle, so that reading a record's topic does not allocate.
    private let topicNames = Mutex<[UInt: String]>([:])
    /// The longest the prefetch queue has been since fetching was last nudged (see ``keepFetching()``).
    private let peakQueueLength = Atomic<Int>(0)

    /// Creates a consumer.
    ///
    /// - Throws: A ``KafkaError`` of kind `.configuration` if librdkafka rejects a property.
    public init(config: KafkaConsumerConfig, logger: Logger) throws {
        var logger = logger
        logger[metadataKey: "kafka.group.id"] = "\(config.groupID)"
        self.logger = logger
        isStaticMember = config.groupInstanceID != nil
        client = try RDKafkaClient(type: RD_KAFKA_CONSUMER, properties: config.properties(), logger: logger, withRebalance: true)
        rd_kafka_poll_set_consumer(client.handle)
        queue = RDKafkaChild(rd_kafka_queue_get_consumer(client.handle), of: client, destroy: rd_kafka_queue_destroy)
    }

    /// Never blocks on the network: a consumer dropped without ``close()`` is destroyed without leaving its group
    /// (the group notices after the session timeout) and without running its revoke handler. A fatally failed
    /// client is leaked, as ``close()`` explains.
    deinit {
        if isFatallyFailed.load(ordering: .acquiring) {
            _ = Unmanaged.passRetained(client)
        }
    }

    /// Subscribes to topics; partitions arrive through `onRebalance`.
    ///
    /// `onRebalance` runs on the polling thread, inside ``poll(timeout:maxMessages:_:)`` or ``close()``. For
    /// `.assigned`, it may return explicit start offsets for some of the partitions (for example offsets known to be
    /// safe from a write-ahead log); the others start at their committed offset. For `.revoked`, it runs before the
    /// partitions are given up, so pending work can be committed; its return value is ignored.
    ///
    /// - Throws: A ``KafkaError`` of kind `.invalidArgument` for an empty topic list, or librdkafka's error.
    public func subscribe(
        _ topics: [String],
        onRebalance: @escaping @Sendable (KafkaRebalance) -> [KafkaPartition: Int64] = { _ in [:] }
    ) throws {
        let topics = topics.filter { !$0.isEmpty }
        guard !topics.isEmpty else {
            throw KafkaError(kind: .invalidArgument, message: "subscribe needs at least one topic name")
        }
        let logger = self.logger
        client.callbacks.rebalance.withLock {
            $0 = .init { handle, err, list in
                Self.rebalance(handle: handle, err: err, list: list, logger: logger, handler: onRebalance)
            }
        }
        let list = RDKafkaPartitionList(capacity: topics.count)
        for topic in topics {
            list.add(KafkaPartition(topic: topic, partition: Int32(RD_KAFKA_PARTITION_UA)), offset: Int64(RD_KAFKA_OFFSET_INVALID))
        }
        let err = rd_kafka_subscribe(client.handle, list.pointer)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdkafka(err, "subscribe to \(topics)")
        }
        isSubscribed.store(true, ordering: .releasing)
    }

    /// The group's rebalance protocol ("NONE" before the first join), nil once the consumer is closing.
    var rebalanceProtocol: String? { KafkaIO.rebalanceProtocol(of: client.handle) }

    private static func rebalance(
        handle: OpaquePointer, err: rd_kafka_resp_err_t, list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>,
        logger: Logger, handler: @Sendable (KafkaRebalance) -> [KafkaPartition: Int64]
    ) {
        let partitions = RDKafkaPartitionList.entries(of: list).map(\.0)
        let cooperative = isCooperativeRebalance(handle)
        if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            let startOffsets = handler(.assigned(partitions))
            for index in 0..<Int(list.pointee.cnt) {
                let element = list.pointee.elems[index]
                let partition = KafkaPartition(topic: String(cString: element.topic), partition: element.partition)
                if let offset = startOffsets[partition] {
                    list.pointee.elems[index].offset = offset
                }
            }
            logger.info("partitions assigned", metadata: ["kafka.partitions": "\(partitions.sorted())"])
            if cooperative {
                rd_kafka_incremental_assign(handle, list).map { error in
                    logger.error("incremental assign failed", metadata: ["kafka.error": "\(KafkaError.consuming(error, "assign"))"])
                }
            } else {
                let result = rd_kafka_assign(handle, list)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                    logger.error("assign failed", metadata: ["kafka.error": "\(KafkaError.rdkafka(result, "assign"))"])
                }
            }
        } else {
            _ = handler(.revoked(partitions))
            logger.info("partitions revoked", metadata: ["kafka.partitions": "\(partitions.sorted())"])
            if cooperative {
                rd_kafka_incremental_unassign(handle, list).map { error in
                    logger.error("incremental unassign failed", metadata: ["kafka.error": "\(KafkaError.consuming(error, "unassign"))"])
                }
            } else {
                rd_kafka_assign(handle, nil)
            }
        }
    }

    /// Waits up to `timeout` for records and hands each event to `handler`, in partition order: up to `maxMessages` of
    /// them, as many as are queued once the first has come (it never waits for more).
    ///
    /// Serves rebalance callbacks too, so call it regularly (also while paused) to stay in the group.
    ///
    /// - Returns: How many events were handled (0 on timeout).
    /// - Throws: What `handler` throws, or, once every record of the call has been handled, the first consumer error
    ///   librdkafka reported among them (other than end of partition): records after an error are never dropped.
    @discardableResult
    public func poll(timeout: Duration, maxMessages: Int = 1024, _ handler: (KafkaConsumerEvent) throws -> Void) throws -> Int {
        guard !isClosed.load(ordering: .acquiring) else {
            throw KafkaError(kind: .closed, message: "poll on a closed consumer")
        }
        var firstError: KafkaError?
        // A poll's records mostly share one topic: its name is looked up once per run of records, not per record.
        var lastTopic: (handle: OpaquePointer?, name: String)?
        let count = try consumeBatch(timeout: timeout, maxMessages: maxMessages) { message in
            let topic: String
            if let lastTopic, lastTopic.handle == message.pointee.rkt {
                topic = lastTopic.name
            } else {
                topic = topicName(message.pointee.rkt)
                lastTopic = (message.pointee.rkt, topic)
            }
            switch message.pointee.err {
            case RD_KAFKA_RESP_ERR_NO_ERROR:
                if hasInjectedSkips.load(ordering: .relaxed), dropInjected(KafkaPartition(topic: topic, partition: message.pointee.partition), offset: message.pointee.offset) {
                    return
                }
                try handler(.message(KafkaMessageView(message: message, topic: topic)))
            case RD_KAFKA_RESP_ERR__PARTITION_EOF:
                try handler(.endOfPartition(KafkaPartition(topic: topic, partition: message.pointee.partition), nextOffset: message.pointee.offset))
            default:
                let text = rd_kafka_message_errstr(message).map { String(cString: $0) } ?? ""
                let error = KafkaError.rdkafka(message.pointee.err, "consume from \(topic)[\(message.pointee.partition)]: \(text)")
                if error.isFatal { isFatallyFailed.store(true, ordering: .releasing) }
                firstError = firstError ?? error
            }
        }
        guard count > 0 else { return 0 }
        keepFetching()
        if let firstError { throw firstError }
        return count
    }

    /// Makes a ``poll(timeout:maxMessages:_:)`` that is waiting, on another thread, return at once (with what it has).
    public func wakeUp() {
        guard !isClosed.load(ordering: .acquiring) else { return }
        rd_kafka_queue_yield(queue.pointer)
    }

    /// Takes up to `maxMessages` events from the queue, waiting up to `timeout` for the first (rebalance callbacks run
    /// meanwhile), hands each to `body`, and destroys every one, even when `body` throws; returns how many there were.
    private func consumeBatch(
        timeout: Duration, maxMessages: Int, _ body: (UnsafeMutablePointer<rd_kafka_message_t>) throws -> Void
    ) rethrows -> Int {
        let messages = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: maxMessages)
        defer { messages.deallocate() }
        // librdkafka's batch call waits until it has `maxMessages` or the timeout has passed, even with events in hand:
        // what is queued is taken without waiting, and the wait is for the first event only.
        var count = rd_kafka_consume_batch_queue(queue.pointer, 0, messages, maxMessages)
        if count == 0, timeout > .zero {
            count = max(0, rd_kafka_consume_batch_queue(queue.pointer, timeout.milliseconds, messages, 1))
            if count == 1, maxMessages > 1 {
                count += max(0, rd_kafka_consume_batch_queue(queue.pointer, 0, messages + 1, maxMessages - 1))
            }
        }
        guard count > 0 else { return 0 }
        defer {
            for index in 0..<count {
                rd_kafka_message_destroy(messages[index])
            }
        }
        for index in 0..<count {
            if let message = messages[index] { try body(message) }
        }
        return count
    }

    /// Fetching stalls for up to a second whenever the prefetch queue fills, unless something wakes the fetchers.
    ///
    /// librdkafka 2.0.2 takes a partition off its broker's fetch list once the queue holds `queued.min.messages` or
    /// `queued.max.messages.kbytes`, and looks at it again only when that broker's thread next wakes: after at most
    /// one second when no other request is under way. A consumer that drains the queue faster than that would wait
    /// for the rest of the second. So the queue is watched: when it has drained to a quarter of its last peak (of at
    /// least 1,000 records), a ListOffsets request to the assigned partitions' leaders wakes their threads, and
    /// fetching resumes while the rest of the queue is consumed. An idle or slowly fed consumer never sends one.
    /// librdkafka 2.2 and later instead retry such a partition after `fetch.queue.backoff.ms`, which
    /// ``KafkaConsumerConfig`` sets short; there a wake-up would change nothing, and none is sent.
    private func keepFetching() {
        guard !KafkaConsumerConfig.backsOffFullQueues else { return }
        let length = Int(rd_kafka_queue_length(queue.pointer))
        let peak = peakQueueLength.load(ordering: .relaxed)
        if length > peak {
            peakQueueLength.store(length, ordering: .relaxed)
            return
        }
        guard peak >= 1000, length <= peak / 4 else { return }
        peakQueueLength.store(length, ordering: .relaxed)
        var assigned: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(client.handle, &assigned) == RD_KAFKA_RESP_ERR_NO_ERROR, let assigned else { return }
        defer { rd_kafka_topic_partition_list_destroy(assigned) }
        guard assigned.pointee.cnt > 0 else { return }
        for index in 0..<Int(assigned.pointee.cnt) {
            assigned.pointee.elems[index].offset = -1  // the latest offset
        }
        // Sending the request is what wakes the threads; the answer is not needed, so it is not waited for (with no
        // time to wait, librdkafka sends the requests and returns; their answers are dropped).
        _ = rd_kafka_offsets_for_times(client.handle, assigned, 0)
    }

    private func topicName(_ topic: OpaquePointer?) -> String {
        guard let topic else { return "" }
        let id = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(topic)))
        return topicNames.withLock { names in
            if let name = names[id] { return name }
            let name = String(cString: rd_kafka_topic_name(topic))
            names[id] = name
            return name
        }
    }

    /// Commits "next to read" offsets (last processed + 1) for the group, waiting for the broker's answer.
    ///
    /// Committing offsets that did not change since the last commit succeeds.
    ///
    /// - Throws: A ``KafkaError`` if the broker refused the commit or a partition's commit failed.
    public func commit(_ offsets: [KafkaPartition: Int64]) throws {
        try commit(offsets, metadata: [:])
    }

    /// Commits like ``commit(_:)``; `metadata` (ASCII, under 4 KB: librdkafka 2.0.2 cuts binary metadata at a NUL) is stored with the offsets of
    /// the partitions it names, for whichever member owns them next (``committedEntries(_:timeout:)``).
    public func commit(_ offsets: [KafkaPartition: Int64], metadata: [KafkaPartition: String]) throws {
        guard !offsets.isEmpty else { return }
        let list = RDKafkaPartitionList(offsets, metadata: metadata)
        let err = rd_kafka_commit(client.handle, list.pointer, 0)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET else {
            throw KafkaError.rdkafka(err, "commit \(offsets.count) partition offsets")
        }
        if let failed = list.entries.first(where: { $0.2 != RD_KAFKA_RESP_ERR_NO_ERROR }) {
            throw KafkaError.rdkafka(failed.2, "commit offset of \(failed.0)")
        }
    }

    /// Starts committing offsets without waiting for the answer; failures are logged.
    public func commitAsync(_ offsets: [KafkaPartition: Int64]) throws {
        guard !offsets.isEmpty else { return }
        let list = RDKafkaPartitionList(offsets)
        let err = rd_kafka_commit(client.handle, list.pointer, 1)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET else {
            throw KafkaError.rdkafka(err, "commit \(offsets.count) partition offsets")
        }
    }

    /// The group's committed offsets for the given partitions; partitions without a commit are absent.
    public func committed(_ partitions: [KafkaPartition], timeout: Duration) throws -> [KafkaPartition: Int64] {
        try committedEntries(partitions, timeout: timeout).mapValues(\.offset)
    }

    /// The group's committed offsets with their commit metadata; partitions without a commit are absent.
    public func committedEntries(_ partitions: [KafkaPartition], timeout: Duration) throws -> [KafkaPartition: (offset: Int64, metadata: String)] {
        let list = RDKafkaPartitionList(partitions)
        let err = rd_kafka_committed(client.handle, list.pointer, timeout.milliseconds)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdkafka(err, "read committed offsets")
        }
        let metadata = list.metadata
        var result: [KafkaPartition: (offset: Int64, metadata: String)] = [:]
        for (partition, offset, _) in list.entries where offset >= 0 {
            result[partition] = (offset, metadata[partition] ?? "")
        }
        return result
    }

    /// Reads the given partitions from the given offsets outside any group rebalancing (no ``subscribe(_:onRebalance:)``):
    /// for reading a topic such as a changelog directly. Replaces any earlier assignment.
    public func assign(_ offsets: [KafkaPartition: Int64]) throws {
        let list = RDKafkaPartitionList(offsets)
        let err = rd_kafka_assign(client.handle, list.pointer)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdkafka(err, "assign \(offsets.count) partitions")
        }
    }

    /// The partitions currently assigned to this consumer.
    public func assignment() throws -> [KafkaPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        let err = rd_kafka_assignment(client.handle, &list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let list else {
            throw KafkaError.rdkafka(err, "read assignment")
        }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return RDKafkaPartitionList.entries(of: list).map(\.0).sorted()
    }

    /// Stops fetching from these partitions (keep polling: that keeps the consumer in the group).
    public func pause(_ partitions: [KafkaPartition]) throws {
        let list = RDKafkaPartitionList(partitions)
        let err = rd_kafka_pause_partitions(client.handle, list.pointer)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.rdkafka(err, "pause") }
    }

    /// Resumes fetching from paused partitions.
    public func resume(_ partitions: [KafkaPartition]) throws {
        let list = RDKafkaPartitionList(partitions)
        let err = rd_kafka_resume_partitions(client.handle, list.pointer)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.rdkafka(err, "resume") }
    }

    /// Moves the fetch positions of assigned partitions to the given offsets, without waiting (call from the
    /// polling thread, between polls).
    ///
    /// Asynchronous (timeout 0): librdkafka 2.0.2 converts a non-zero timeout wrongly (#4230); a seek that fails
    /// later is reported as a consumer error by the next poll.
    public func seek(_ offsets: [KafkaPartition: Int64]) throws {
        guard !offsets.isEmpty else { return }
        let list = RDKafkaPartitionList(offsets)
        if let error = rd_kafka_seek_partitions(client.handle, list.pointer, 0) {
            throw KafkaError.consuming(error, "seek")
        }
    }

    /// Raises a fabricated fatal error in this client (librdkafka's `rd_kafka_test_fatal_error`), which the next
    /// poll reports as `_FATAL`: for tests of fatal-error handling, like ``MockCluster``'s fault injection.
    @_spi(Testing) public func injectFatalError(reason: String) {
        _ = rd_kafka_test_fatal_error(client.handle, RD_KAFKA_RESP_ERR__INVALID_ARG, reason)
    }

    /// For tests: the records of `partition` at `offsets` are dropped before any handler sees them, the first
    /// `times` times they are fetched, the way librdkafka 2.0.2 can skip offsets after a pause and resume with batch
    /// consumption (#4208).
    @_spi(Testing) public func injectSkip(_ offsets: Range<Int64>, of partition: KafkaPartition, times: Int = 1) {
        injectedSkips.withLock { $0[partition] = (offsets, times) }
        hasInjectedSkips.store(true, ordering: .relaxed)
    }

    /// Whether the record at `offset` of `partition` is to be dropped by ``injectSkip(_:of:times:)``.
    private func dropInjected(_ partition: KafkaPartition, offset: Int64) -> Bool {
        injectedSkips.withLock { skips in
            guard let skip = skips[partition], skip.times > 0, skip.offsets.contains(offset) else { return false }
            if offset == skip.offsets.upperBound - 1 { skips[partition]?.times -= 1 }
            return true
        }
    }

    /// The current end offset (high watermark) of every partition of `topics`; a topic the cluster does not have
    /// contributes none.
    ///
    /// - Throws: A ``KafkaError`` if the brokers cannot be asked.
    public func endOffsets(of topics: [String], timeout: Duration) throws -> [KafkaPartition: Int64] {
        var ends: [KafkaPartition: Int64] = [:]
        for partition in try partitions(of: topics, timeout: timeout) {
            ends[partition] = try watermarks(of: partition, timeout: timeout).high
        }
        return ends
    }

    /// Every partition of `topics`, from the cluster's metadata; a topic the cluster does not have contributes none.
    ///
    /// - Throws: A ``KafkaError`` if the brokers cannot be asked.
    public func partitions(of topics: [String], timeout: Duration) throws -> [KafkaPartition] {
        let counts = try topicPartitionCounts(timeout: timeout)
        return topics.flatMap { topic in (0..<Int32(counts[topic] ?? 0)).map { KafkaPartition(topic: topic, partition: $0) } }
    }

    /// The partition counts of all topics in the cluster.
    ///
    /// - Throws: A ``KafkaError`` of kind `.timedOut` when no broker answered within `timeout`.
    public func topicPartitionCounts(timeout: Duration) throws -> [String: Int] {
        try client.topicPartitionCounts(timeout: timeout)
    }

    /// The low and high watermark offsets of a partition, asked of the broker.
    public func watermarks(of partition: KafkaPartition, timeout: Duration) throws -> (low: Int64, high: Int64) {
        try client.watermarks(of: partition, timeout: timeout)
    }

    /// The consumer lag (high watermark minus next offset to read) of each assigned partition, from the last
    /// fetched state; it does not ask the broker.
    public func lag() -> [KafkaPartition: Int64] {
        guard let assigned = try? assignment(), !assigned.isEmpty else { return [:] }
        let list = RDKafkaPartitionList(assigned)
        guard rd_kafka_position(client.handle, list.pointer) == RD_KAFKA_RESP_ERR_NO_ERROR else { return [:] }
        var result: [KafkaPartition: Int64] = [:]
        for (partition, position, _) in list.entries where position >= 0 {
            var low: Int64 = 0
            var high: Int64 = 0
            if rd_kafka_get_watermark_offsets(client.handle, partition.topic, partition.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 {
                result[partition] = max(0, high - position)
            }
        }
        return result
    }

    /// Whether the group took the assignment away without a revoke in time (a session timeout, a fenced member):
    /// asked in a revoke callback, the partitions may already be someone else's, so nothing may be committed for them.
    public var isAssignmentLost: Bool {
        rd_kafka_assignment_lost(client.handle) != 0
    }

    /// The consumer group metadata, for ``KafkaProducer/sendOffsetsToTransaction(_:metadata:consumer:timeout:)``, fetched
    /// fresh (it carries the group generation that fences zombies).
    ///
    /// - Throws: A ``KafkaError`` when librdkafka has none (a consumer without a group).
    func groupMetadata() throws -> RDKafkaGroupMetadata {
        let pointer: OpaquePointer? = rd_kafka_consumer_group_metadata(client.handle)
        guard let pointer else {
            throw KafkaError(kind: .invalidArgument, message: "the consumer has no group metadata (no group.id)")
        }
        return RDKafkaGroupMetadata(pointer)
    }

    /// Leaves the group (the revoke callback runs first) and stops the consumer. Idempotent.
    ///
    /// After a fatal error the client is left as it is, neither closed nor destroyed: librdkafka 2.0.2 can spin
    /// forever in `rd_kafka_destroy` then (seen with an injected fatal error), and the owner is expected to end the
    /// process. The handle is deliberately leaked.
    public func close() {
        guard !isClosed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if isFatallyFailed.load(ordering: .acquiring) {
            _ = Unmanaged.passRetained(client)
            return
        }
        if isSubscribed.load(ordering: .acquiring), !isStaticMember { leaveGroup(within: .seconds(10)) }
        let err = rd_kafka_consumer_close(client.handle)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.info("consumer close reported an error", metadata: ["kafka.error": "\(KafkaError.rdkafka(err, "close"))"])
        }
        client.callbacks.rebalance.withLock { $0 = nil }
    }
}

extension KafkaConsumer {
    /// Reads one partition outside any group, from its beginning to its end as of now, handing each record to
    /// `body`, then unassigns it. Needs end-of-partition events (``KafkaConsumerConfig/reportsEndOfPartition``).
    ///
    /// - Throws: A ``KafkaError`` of kind `.timedOut` if the end is not reached within `timeout`, or what `body` throws.
    public func readFromBeginning(_ partition: KafkaPartition, timeout: Duration, _ body: (KafkaMessageView) throws -> Void) throws {
        try assign([partition: -2])  // -2: from the beginning
        defer { try? assign([:]) }
        var atEnd = false
        let deadline = ContinuousClock.now + timeout
        while !atEnd {
            guard ContinuousClock.now < deadline else {
                throw KafkaError(kind: .timedOut, message: "reading \(partition) to its end took over \(timeout)")
            }
            try poll(timeout: .milliseconds(100)) { event in
                switch event {
                case .message(let message): try body(message)
                case .endOfPartition: atEnd = true
                }
            }
        }
    }

    /// Unsubscribes, then serves the queue (rebalance callbacks run, records are dropped) until the assignment has
    /// been empty for a whole poll, or `limit` has passed.
    ///
    /// librdkafka can hang in `rd_kafka_consumer_close` when an assignment arrives while it closes, a rebalance being
    /// under way when the instance stops: `rd_kafka_assign` in the rebalance callback never returns
    /// (confluentinc/librdkafka#4884, eager; #4527, cooperative, fixed in 2.4.0). Seen here as a distributed instance
    /// that did not exit after SIGTERM. Leaving the group first, and closing only once no assignment is pending, is the
    /// workaround librdkafka's maintainers confirmed: an assignment that arrives meanwhile is taken and given back as
    /// in any rebalance. Static members skip it, since unsubscribing would send the LeaveGroup their close must not.
    private func leaveGroup(within limit: Duration) {
        let err = rd_kafka_unsubscribe(client.handle)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            logger.info("unsubscribe before close failed", metadata: ["kafka.error": "\(KafkaError.rdkafka(err, "unsubscribe"))"])
            return
        }
        let deadline = ContinuousClock.now + limit
        var emptyPolls = 0
        while emptyPolls < 2, ContinuousClock.now < deadline {
            _ = consumeBatch(timeout: .milliseconds(100), maxMessages: 256) { _ in }
            emptyPolls = ((try? assignment()) ?? []).isEmpty ? emptyPolls + 1 : 0
        }
        if emptyPolls < 2 {
            logger.warning("the assignment did not empty before close", metadata: ["kafka.timeout": "\(limit)"])
        }
    }
}

/// Owns an `rd_kafka_consumer_group_metadata_t` and destroys it in `deinit`.
final class RDKafkaGroupMetadata {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        rd_kafka_consumer_group_metadata_destroy(pointer)
    }
}
