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
    /// The largest record the producer accepts (librdkafka's `message.max.bytes`), less room for the record's
    /// framing: an output over it is never sent, so a batch can never fail the same way on every replay.
    let maxRecordBytes: Int
    let metrics: StreamingMetrics
    let logger: Logger
    /// Called with a reason while output waits for the brokers, and with nil once it is delivered.
    let reportWaiting: @Sendable (String?) -> Void
    let isStoppingNow: @Sendable () -> Bool

    /// What one batch has sent so far.
    struct Batch {
        var sent = 0
        var oversize = 0
        /// The topic of the last record sent.
        var topic: KafkaTopic?
    }

    /// Queues one record of `batch` for delivery, or counts it as oversize (a record over ``maxRecordBytes`` is counted,
    /// logged by ``complete(_:)`` and skipped).
    func send(_ record: OutputRecord, in batch: inout Batch) throws {
        guard record.key.count + record.value.count + record.headers.reduce(0, { $0 + $1.name.utf8.count + $1.value.count }) <= maxRecordBytes else {
            batch.oversize += 1
            return
        }
        let topic: KafkaTopic
        if let current = batch.topic, current.name == record.topic {
            topic = current
        } else {
            topic = producer.topic(record.topic, timeout: .seconds(1))
            batch.topic = topic
        }
        try record.key.withUnsafeBytes { key in
            try record.value.withUnsafeBytes { value in
                try producer.send(to: topic, partition: record.partition, key: key, value: value, headers: record.headers)
            }
        }
        batch.sent += 1
    }

    /// Logs what a batch skipped and waits until the brokers have everything it sent.
    func complete(_ batch: Batch) throws {
        if batch.oversize > 0 {
            metrics.oversizeOutputRecords.increment(by: batch.oversize)
            logger.error("skipped output records over the producer's record size limit", metadata: [
                "stream.oversize_records": "\(batch.oversize)", "kafka.max_record_bytes": "\(maxRecordBytes)",
            ])
        }
        guard batch.sent > 0 else { return }
        try awaitDelivery(of: "batch output")
        metrics.outputRecords.increment(by: batch.sent)
    }

    /// Counts and logs malformed records (one line per batch, so bad input cannot flood the log) and copies them to
    /// the dead-letter topic when one is configured, with their origin and the reason in headers. A record too large
    /// to copy goes by reference: its origin and size, without key and value.
    func divertMalformed(_ malformed: [MalformedRecord]) throws {
        guard let first = malformed.first else { return }
        metrics.malformedRecords.increment(by: malformed.count)
        logger.warning("skipped malformed records", metadata: [
            "stream.malformed": "\(malformed.count)", "stream.reason": "\(first.reason)", "kafka.topic": "\(first.record.topic)",
            "kafka.partition": "\(first.record.partition)", "kafka.offset": "\(first.record.offset)",
        ])
        guard let topic = deadLetterTopic else { return }
        producer.prepare(topic: topic, timeout: .seconds(1))
        for (record, reason) in malformed.map({ ($0.record, $0.reason) }) {
            let (key, value) = (record.key, record.value)
            let size = (key?.count ?? 0) + value.count
            let copied = size <= maxRecordBytes - 4096
            var headers = [
                KafkaHeader(name: "sluice-source", value: Array("\(record.topic)/\(record.partition)/\(record.offset)".utf8)),
                KafkaHeader(name: "sluice-error", value: Array("\(reason)".utf8)),
            ]
            if !copied { headers.append(KafkaHeader(name: "sluice-not-copied-bytes", value: Array(String(size).utf8))) }
            try producer.send(KafkaProducerRecord(
                topic: topic, key: copied ? key : nil, value: copied ? value : [], headers: headers,
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
