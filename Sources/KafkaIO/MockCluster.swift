import CRdKafka
import Logging

/// librdkafka's mock cluster: an embedded Kafka broker set listening on 127.0.0.1, for the demo and for tests.
///
/// Real clients in this or other processes (librdkafka, kcat, confluent-kafka) connect to ``bootstrapServers``.
/// The mock keeps at most 5 MiB per partition and its transactions are a smoke test only.
///
/// - Important: The cluster runs on its own thread inside a dedicated `rd_kafka_t`; `deinit` destroys the
///   cluster before that handle.
public final class MockCluster: Sendable {
    private let client: RDKafkaClient
    private let cluster: RDKafkaChild
    /// The `host:port,...` list of the brokers, for `bootstrap.servers`.
    public let bootstrapServers: String

    /// Starts a cluster of `brokerCount` brokers on ephemeral ports.
    ///
    /// - Throws: A ``KafkaError`` if librdkafka cannot create it.
    public init(brokerCount: Int = 1, logger: Logger) throws {
        // The handle only hosts the cluster and never connects: without a log level of errors it would warn that it
        // has no bootstrap.servers, the first thing a demo printed.
        client = try RDKafkaClient(
            type: RD_KAFKA_PRODUCER, properties: [("client.id", "sluice-mock-cluster"), ("log_level", "3")], logger: logger)
        guard let cluster = rd_kafka_mock_cluster_new(client.handle, Int32(brokerCount)) else {
            throw KafkaError(kind: .librdkafka, message: "rd_kafka_mock_cluster_new failed")
        }
        self.cluster = RDKafkaChild(cluster, of: client, destroy: rd_kafka_mock_cluster_destroy)
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    /// Creates a topic with `partitions` partitions.
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws {
        let err = rd_kafka_mock_topic_create(cluster.pointer, name, Int32(partitions), Int32(replicationFactor))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdkafka(err, "create topic \(name)")
        }
    }

    /// Takes a broker down: its connections close and it refuses new ones until ``setBrokerUp(_:)``.
    @_spi(Testing) public func setBrokerDown(_ brokerID: Int32) throws {
        try check(rd_kafka_mock_broker_set_down(cluster.pointer, brokerID), "broker \(brokerID) down")
    }

    /// Brings a broker back up.
    @_spi(Testing) public func setBrokerUp(_ brokerID: Int32) throws {
        try check(rd_kafka_mock_broker_set_up(cluster.pointer, brokerID), "broker \(brokerID) up")
    }

    /// Delays every response of a broker by `rtt`.
    public func setRoundTripTime(_ rtt: Duration, broker brokerID: Int32) throws {
        try check(rd_kafka_mock_broker_set_rtt(cluster.pointer, brokerID, rtt.milliseconds), "broker \(brokerID) rtt")
    }

    /// Makes the next `count` requests of a Kafka API (by API key, e.g. 0 = Produce, 8 = OffsetCommit) fail with
    /// the librdkafka error code `code`.
    @_spi(Testing) public func failNextRequests(apiKey: Int16, code: Int32, count: Int = 1) {
        for _ in 0..<count {
            sluice_mock_push_request_error(cluster.pointer, apiKey, rd_kafka_resp_err_t(code))
        }
    }

    private func check(_ err: rd_kafka_resp_err_t, _ context: String) throws {
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.rdkafka(err, context) }
    }
}
