import KafkaIO
import Logging

/// The settings a job's state depends on (window, slide, lateness, topics; in distributed mode the shard count), and
/// the one rule for a change: a value other than the one the state was built with is refused, naming the setting
/// and both values (``StreamingError/Code/settingChanged``, exit 2). Standalone mode pins them in its checkpoint;
/// distributed mode in the compacted `<group>-config` topic, which every instance of the group reads before it
/// applies anything.
enum PinnedSettings {
    /// The refusal for `current` against the `pinned` values, or nil when no pinned setting changed (a setting the
    /// pinned values lack is new, and not a change).
    static func refusal(current: [String: String], pinned: [String: String], pinnedWhere: String) -> StreamingError? {
        let changed = current.sorted(by: { $0.key < $1.key }).compactMap { name, value in
            pinned[name].flatMap { $0 == value ? nil : "\(name) is \(value), but \(pinnedWhere) was built with \($0)" }
        }
        guard !changed.isEmpty else { return nil }
        return StreamingError(.settingChanged, changed.joined(separator: "; "))
    }

    /// The record key of the settings in the config topic.
    static let recordKey = Array("settings".utf8)

    /// `NAME=value` lines, sorted by name.
    static func encode(_ settings: [String: String]) -> [UInt8] {
        Array(settings.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)\n" }.joined().utf8)
    }

    static func decode(_ bytes: [UInt8]) -> [String: String] {
        var settings: [String: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { settings[String(parts[0])] = String(parts[1]) }
        }
        return settings
    }

    /// Reads the group's pinned settings from `topic` (one partition); when there are none yet, pins `settings`
    /// there. The first record of the topic wins, so two instances that start at once with different values agree
    /// on one of them, and the other one is refused.
    ///
    /// - Throws: ``StreamingError`` `.settingChanged` naming each changed setting and both values.
    static func pin(_ settings: [String: String], topic: String, kafka: KafkaConfig, groupID: String, logger: Logger) throws {
        let reader = try KafkaConsumer(config: KafkaConsumerConfig(common: kafka, groupID: groupID), logger: logger)
        defer { reader.close() }
        let partition = KafkaPartition(topic: topic, partition: 0)
        var pinned = try firstRecord(of: partition, reader: reader)
        if pinned == nil {
            let producer = try KafkaProducer(config: KafkaProducerConfig(common: kafka), logger: logger)
            try producer.send(KafkaProducerRecord(topic: topic, partition: 0, key: recordKey, value: encode(settings)))
            try producer.flush(timeout: .seconds(30))
            pinned = try firstRecord(of: partition, reader: reader)
            logger.info("state settings pinned", metadata: ["kafka.topic": "\(topic)"])
        }
        if let refusal = refusal(current: settings, pinned: pinned ?? [:], pinnedWhere: "the group's state (\(topic))") {
            throw StreamingError(.settingChanged, refusal.message + ": set it back, or use a new SLUICE_GROUP_ID to build new state")
        }
    }

    /// The settings in the first settings record of the partition, read to its end; nil if it holds none.
    private static func firstRecord(of partition: KafkaPartition, reader: KafkaConsumer) throws -> [String: String]? {
        var first: [String: String]?
        try reader.readFromBeginning(partition, timeout: .seconds(60)) { message in
            if first == nil, message.key.map({ Array($0) }) == recordKey { first = decode(Array(message.value)) }
        }
        return first
    }
}
