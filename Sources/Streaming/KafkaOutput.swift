import CoreMetrics
import KafkaIO
import Logging
import StreamEngine

/// Produces a batch's output records and dead-letter copies, and waits until the brokers have them.
///
/// Delivery waits as long as librdkafka keeps retrying (a broker outage), reporting the wait through
/// `reportWaiting`, unless `isStoppingNow` says an immediate stop was requested; a delivery that librdkafka gave up
/// on is an error.
struct KafkaOutput: Sendable {
    let producer: KafkaProducer
    let deadLetterTopic: String?
    let metrics: StreamingMetrics
    let logger: Logger
    /// Called with a reason while output waits for the brokers, and with nil once it is delivered.
    let reportWaiting: @Sendable (String?) -> Void
    let isStoppingNow: @Sendable () -> Bool

    /// Produces the records in order and waits for their delivery.
    func emit(_ records: [OutputRecord]) throws {
        guard !records.isEmpty else { return }
        var preparedTopic: String?
        for record in records {
            if record.topic != preparedTopic {
                producer.prepare(topic: record.topic, timeout: .seconds(1))
                preparedTopic = record.topic
            }
            try producer.send(KafkaProducerRecord(
                topic: record.topic, key: record.key, value: record.value,
                headers: record.headers.map { KafkaHeader(name: $0.0, value: $0.1) }
            ))
        }
        try awaitDelivery(of: "batch output")
        metrics.outputRecords.increment(by: records.count)
    }

    /// Counts and logs malformed records (one line per batch, so bad input cannot flood the log) and copies them to
    /// the dead-letter topic when one is configured, with their origin in headers.
    func divertMalformed(_ records: [InputRecord]) throws {
        guard let first = records.first else { return }
        metrics.malformedRecords.increment(by: records.count)
        logger.warning("skipped malformed records (value is not valid UTF-8)", metadata: [
            "stream.malformed": "\(records.count)", "kafka.topic": "\(first.topic)",
            "kafka.partition": "\(first.partition)", "kafka.offset": "\(first.offset)",
        ])
        guard let topic = deadLetterTopic else { return }
        producer.prepare(topic: topic, timeout: .seconds(1))
        for record in records {
            try producer.send(KafkaProducerRecord(
                topic: topic, key: record.key, value: record.value,
                headers: [
                    KafkaHeader(name: "sluice-source", value: Array("\(record.topic)/\(record.partition)/\(record.offset)".utf8)),
                    KafkaHeader(name: "sluice-error", value: Array("invalid UTF-8".utf8)),
                ],
                timestamp: record.timestamp
            ))
        }
        try awaitDelivery(of: "dead-letter records")
    }

    private func awaitDelivery(of what: String) throws {
        while true {
            do {
                try producer.flush(timeout: .seconds(10))
                reportWaiting(nil)
                return
            } catch let error as KafkaError where error.kind == .timedOut {
                reportWaiting("\(what) not yet delivered: \(error)")
                logger.warning("output is waiting for the brokers", metadata: ["kafka.error": "\(error)"])
                if isStoppingNow() {
                    throw StreamingError(.output, "\(what) was not delivered before an immediate stop", underlying: error)
                }
            } catch {
                throw StreamingError(.output, "\(what) was not delivered", underlying: error)
            }
        }
    }
}
