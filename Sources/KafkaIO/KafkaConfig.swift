import CRdKafka

/// Settings shared by producers and consumers, mapped to librdkafka properties.
///
/// Typed fields cover what sluice itself relies on; `properties` passes any other librdkafka property through
/// verbatim (`security.protocol`, `sasl.mechanisms`, ...). A property librdkafka does not know, or a value it
/// rejects, makes client creation throw a ``KafkaError`` of kind `.configuration` that names the property.
public struct KafkaConfig: Sendable {
    /// Comma-separated `host:port` list of brokers.
    ///
    /// Default: `localhost:9092`.
    public var bootstrapServers: String
    /// The client id sent to the brokers.
    ///
    /// Default: `sluice`.
    public var clientID: String
    /// Extra librdkafka properties, applied after the typed fields (so they can override them).
    ///
    /// Default: empty.
    public var properties: [String: String]

    public init(bootstrapServers: String = "localhost:9092", clientID: String = "sluice", properties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.clientID = clientID
        self.properties = properties
    }

    /// The librdkafka properties common to every client, in the order they are applied.
    func baseProperties() -> [(String, String)] {
        [("bootstrap.servers", bootstrapServers), ("client.id", clientID)]
    }
}

/// Consumer settings on top of ``KafkaConfig``.
public struct KafkaConsumerConfig: Sendable {
    /// Where a partition with no committed offset starts.
    public struct OffsetReset: Sendable, Hashable {
        let value: String
        /// Start at the oldest retained record.
        public static let earliest = OffsetReset(value: "earliest")
        /// Start at the end: only records produced after the assignment.
        public static let latest = OffsetReset(value: "latest")
    }

    /// Connection and passthrough settings.
    public var common: KafkaConfig
    /// The consumer group.
    ///
    /// Default: `sluice`.
    public var groupID: String
    /// Where to start without a committed offset.
    ///
    /// Default: `.earliest`.
    public var offsetReset: OffsetReset
    /// How long the group coordinator waits for a silent member before rebalancing it away, in milliseconds.
    ///
    /// Default: 10000 (a restarted instance gets its partitions back within this time).
    public var sessionTimeoutMilliseconds: Int
    /// Report the end of each partition as an event.
    ///
    /// Default: `true`.
    public var reportsEndOfPartition: Bool
    /// Static membership (`group.instance.id`): a member that restarts within the session timeout gets its
    /// partitions back without a rebalance, and a new member with the same id replaces a dead one at once.
    ///
    /// Default: nil (dynamic membership).
    public var groupInstanceID: String?
    /// The most record bytes librdkafka prefetches for the application, in KiB (`queued.max.messages.kbytes`).
    /// Every queued record costs a few hundred bytes besides its payload, so the queue is small for topics of many
    /// small records (KafkaConsumer wakes the fetchers as it drains); a topic of few large records needs room for
    /// more than a few of them, or each fetch waits for the queue to drain.
    ///
    /// Default: 1024.
    public var prefetchKilobytes: Int

    public init(
        common: KafkaConfig = KafkaConfig(),
        groupID: String = "sluice",
        offsetReset: OffsetReset = .earliest,
        sessionTimeoutMilliseconds: Int = 10_000,
        reportsEndOfPartition: Bool = true,
        groupInstanceID: String? = nil,
        prefetchKilobytes: Int = 1024
    ) {
        self.common = common
        self.groupID = groupID
        self.offsetReset = offsetReset
        self.sessionTimeoutMilliseconds = sessionTimeoutMilliseconds
        self.reportsEndOfPartition = reportsEndOfPartition
        self.groupInstanceID = groupInstanceID
        self.prefetchKilobytes = prefetchKilobytes
    }

    /// Offsets are committed only by explicit calls; librdkafka prefetches up to a bounded queue.
    func properties() -> [(String, String)] {
        common.baseProperties() + [
            ("group.id", groupID),
            ("auto.offset.reset", offsetReset.value),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", reportsEndOfPartition ? "true" : "false"),
            ("session.timeout.ms", String(sessionTimeoutMilliseconds)),
            ("heartbeat.interval.ms", String(max(100, sessionTimeoutMilliseconds / 5))),
            // The high-level consumer's prefetch queue is one queue for all partitions (see prefetchKilobytes).
            ("queued.min.messages", "10000"),
            ("queued.max.messages.kbytes", String(prefetchKilobytes)),
            ("fetch.wait.max.ms", "50"),
        ] + Self.fetchQueueBackoff + (groupInstanceID.map { [("group.instance.id", $0)] } ?? []) + common.properties.sorted { $0.key < $1.key }
    }
}

extension KafkaConsumerConfig {
    /// librdkafka 2.2 and later (the library loaded at run time: sluice builds against 2.0.2's headers, which lack
    /// the property) postpone a partition's next fetch by `fetch.queue.backoff.ms`, 1 s by default, whenever the
    /// prefetch queue is over `queued.min.messages` or `queued.max.messages.kbytes`. The queue here is small and
    /// drained within milliseconds, so the default capped a backlog's reading at about one queue per second (20,000
    /// records/s with 2.16, against the mock and Tansu alike). 1 ms lets fetching resume as soon as the queue has
    /// room; 0 makes the broker threads spin (measured: 1 ms 1.28 s marginal and 1.76 CPU s over 1 M lines, 10 ms
    /// 1.52 s and 2.0-2.3 s, 0 1.52 s and 2.50 s). librdkafka 2.0.2 needs ``KafkaConsumer``'s wake-ups instead.
    static let fetchQueueBackoff: [(String, String)] = backsOffFullQueues ? [("fetch.queue.backoff.ms", "1")] : []

    /// Whether the librdkafka loaded is 2.2 or later, which retries a partition parked by a full prefetch queue after
    /// `fetch.queue.backoff.ms` (2.0.2 only when its broker thread next wakes).
    static let backsOffFullQueues = rd_kafka_version() >= 0x0202_0000
}

/// Producer settings on top of ``KafkaConfig``.
public struct KafkaProducerConfig: Sendable {
    /// Connection and passthrough settings.
    public var common: KafkaConfig
    /// Idempotent delivery: retries never duplicate or reorder records within a partition.
    ///
    /// Default: `true`.
    public var isIdempotent: Bool
    /// A transactional id enables the transactional API (``KafkaProducer/beginTransaction()`` and friends).
    ///
    /// Default: `nil` (not transactional).
    public var transactionalID: String?
    /// How long records wait to fill a batch, in milliseconds.
    ///
    /// Default: 5.
    public var lingerMilliseconds: Int
    /// How long librdkafka tries to deliver a record before it gives up (`message.timeout.ms`); 0 never gives up.
    ///
    /// Default: `nil` (librdkafka's 300,000).
    public var deliveryTimeoutMilliseconds: Int?

    public init(
        common: KafkaConfig = KafkaConfig(),
        isIdempotent: Bool = true,
        transactionalID: String? = nil,
        lingerMilliseconds: Int = 5,
        deliveryTimeoutMilliseconds: Int? = nil
    ) {
        self.common = common
        self.isIdempotent = isIdempotent
        self.transactionalID = transactionalID
        self.lingerMilliseconds = lingerMilliseconds
        self.deliveryTimeoutMilliseconds = deliveryTimeoutMilliseconds
    }

    func properties() -> [(String, String)] {
        var result = common.baseProperties() + [
            ("enable.idempotence", isIdempotent ? "true" : "false"),
            ("linger.ms", String(lingerMilliseconds)),
            ("batch.num.messages", "10000"),
        ]
        if let transactionalID {
            result.append(("transactional.id", transactionalID))
        }
        if let deliveryTimeoutMilliseconds {
            result.append(("message.timeout.ms", String(deliveryTimeoutMilliseconds)))
        }
        return result + common.properties.sorted { $0.key < $1.key }
    }
}
