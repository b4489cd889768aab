import Foundation
import KafkaIO
import Testing

/// What operators do by accident: a second process on the data directory, a changed setting, an output topic that
/// is also an input topic. Each is refused at start-up with exit code 2 and a message naming it.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct OperatorFaultsTests {
    static let topics = ["lines": 4, "word-counts": 4, "word-counts-windowed": 4]

    @Test func aSecondProcessOnTheDataDirectoryIsRefused() throws {
        let broker = try BrokerProcess(topics: Self.topics)
        let directory = TemporaryDirectory()
        let environment = [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_GROUP_ID": uniqueGroup(),
        ]
        let first = try SluiceProcess(environment: environment, logDirectory: directory.path)
        #expect(first.waitForLog("partitions assigned", timeout: .seconds(30)))
        let second = try SluiceProcess.run(environment, logDirectory: directory.path, timeout: .seconds(30))
        #expect(second.exitCode == 2, "stderr: \(second.standardError.suffix(1000))")
        #expect(second.standardError.contains(directory.path + "/data"))
        #expect(second.standardError.contains("pid \(first.process.processIdentifier)"))
        first.signal(SIGTERM)
        #expect(first.wait(timeout: .seconds(30)).exitCode == 0)
        // The lock goes with its holder: the next start takes it.
        var next = environment
        next["SLUICE_STOP_AT_END"] = "true"
        #expect(try SluiceProcess.run(next, logDirectory: directory.path, timeout: .seconds(60)).exitCode == 0)
    }

    @Test func aSettingTheStateDependsOnCannotChangeUnderIt() throws {
        let broker = try BrokerProcess(topics: Self.topics)
        let directory = TemporaryDirectory()
        try produceLines([(Array("a b c".utf8), StreamingClock.now)], topic: "lines", partitions: 4, bootstrap: broker.bootstrap)
        var environment = [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_GROUP_ID": uniqueGroup(), "SLUICE_STOP_AT_END": "true", "SLUICE_WINDOW_MS": "60000",
        ]
        #expect(try SluiceProcess.run(environment, logDirectory: directory.path, timeout: .seconds(60)).exitCode == 0)
        environment["SLUICE_WINDOW_MS"] = "5000"
        let changed = try SluiceProcess.run(environment, logDirectory: directory.path, timeout: .seconds(60))
        #expect(changed.exitCode == 2)
        #expect(changed.standardError.contains("SLUICE_WINDOW_MS is 5000, but the checkpointed state was built with 60000"))
        environment["SLUICE_WINDOW_MS"] = "60000"
        #expect(try SluiceProcess.run(environment, logDirectory: directory.path, timeout: .seconds(60)).exitCode == 0)
    }

    @Test(arguments: [
        (["SLUICE_INPUT_TOPICS": "lines,word-counts"], "SLUICE_COUNTS_TOPIC"),
        (["SLUICE_WINDOW_MS": "3600000", "SLUICE_SLIDE_MS": "1000"], "SLUICE_SLIDE_MS"),
    ])
    func settingsThatCannotWorkAreRefused(environment: [String: String], named variable: String) throws {
        let directory = TemporaryDirectory()
        let result = try SluiceProcess.run(
            environment.merging(["KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"]) { $1 }, logDirectory: directory.path, timeout: .seconds(30))
        #expect(result.exitCode == 2)
        #expect(result.standardError.contains(variable))
    }

    /// With `SLUICE_STOP_AT_END` a missing input topic used to end the run at once with exit 0 and no word.
    @Test func readingToTheEndOfAMissingTopicIsAnError() throws {
        let broker = try BrokerProcess(topics: Self.topics)
        let directory = TemporaryDirectory()
        let result = try SluiceProcess.run([
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_INPUT_TOPICS": "no-such-topic", "SLUICE_STOP_AT_END": "true", "SLUICE_GROUP_ID": uniqueGroup(),
        ], logDirectory: directory.path, timeout: .seconds(60))
        #expect(result.exitCode == 1)
        #expect(result.standardError.contains("input topic no-such-topic does not exist"))
    }

    /// One huge word used to make an output record over the producer's limit: sluice exited 1, and every restart
    /// replayed the same batch and died again. Now such a record is malformed: counted, dead-lettered by reference
    /// when it is too large to copy, and skipped, while the words around it are counted exactly.
    @Test(arguments: [500_000, 2_000_000, 8_000_000])
    func aRecordWithAHugeWordIsDeadLetteredAndSkipped(wordBytes: Int) throws {
        let broker = try BrokerProcess(topics: Self.topics.merging(["dead-letters": 1]) { $1 })
        let directory = TemporaryDirectory()
        let producer = try KafkaProducer(
            config: KafkaProducerConfig(common: KafkaConfig(
                bootstrapServers: broker.bootstrap, properties: ["compression.codec": "lz4", "message.max.bytes": "20000000"])),
            logger: quietLogger
        )
        let now = StreamingClock.now
        for (index, value) in ["before huge", String(repeating: "w", count: wordBytes), "after huge"].enumerated() {
            try producer.send(KafkaProducerRecord(topic: "lines", partition: 0, value: Array(value.utf8), timestamp: now + Int64(index)))
        }
        try producer.flush(timeout: .seconds(60))
        let environment = [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_GROUP_ID": uniqueGroup(), "SLUICE_STOP_AT_END": "true", "SLUICE_DEAD_LETTER_TOPIC": "dead-letters",
        ]
        let result = try SluiceProcess.run(environment, logDirectory: directory.path, timeout: .seconds(90))
        #expect(result.exitCode == 0, "stderr: \(result.standardError.suffix(2000))")
        let totals = try lastValuePerKey(topic: "word-counts", bootstrap: broker.bootstrap).mapValues(countField)
        #expect(totals == ["before": 1, "huge": 2, "after": 1])
        let dead = try kcat(["-C", "-b", broker.bootstrap, "-t", "dead-letters", "-e", "-q", "-f", "%h|%S\n"])
        #expect(dead.contains("sluice-source=lines/0/1"))
        #expect(dead.contains("sluice-error=a word of \(wordBytes) bytes"))
        // Under the producer's limit the record is copied; over it, only its origin and size go.
        #expect(dead.hasSuffix(wordBytes < 900_000 ? "|\(wordBytes)\n" : "sluice-not-copied-bytes=\(wordBytes)|0\n"), "\(dead.prefix(300))")
        // A restart finds nothing to redo.
        #expect(try SluiceProcess.run(environment, logDirectory: directory.path, timeout: .seconds(60)).exitCode == 0)
    }

    /// A recreated input topic starts again at offset 0, below the offsets the checkpoint holds: librdkafka resets
    /// to it and every record used to be dropped as a duplicate, silently. Now sluice stops and says why, whether it
    /// reads to the end of the input or runs on.
    @Test func aRecreatedInputTopicStopsTheServiceInsteadOfDroppingItsRecords() throws {
        let directory = TemporaryDirectory()
        let group = uniqueGroup()
        let lines = (0..<2_000).map { (value: Array("first topic \($0)".utf8), timestamp: StreamingClock.now) }
        do {
            let original = try BrokerProcess(topics: Self.topics)
            try produceLines(lines, topic: "lines", partitions: 4, bootstrap: original.bootstrap)
            let first = try SluiceProcess.run([
                "KAFKA_BOOTSTRAP_SERVERS": original.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
                "SLUICE_GROUP_ID": group, "SLUICE_STOP_AT_END": "true",
            ], logDirectory: directory.path, timeout: .seconds(60))
            #expect(first.exitCode == 0)
        }
        // The same topic, created anew (a new broker: offsets start at 0 again), with fewer records.
        let recreated = try BrokerProcess(topics: Self.topics)
        try produceLines(Array(lines.prefix(400)), topic: "lines", partitions: 4, bootstrap: recreated.bootstrap)
        for stopsAtEnd in ["true", "false"] {
            let result = try SluiceProcess.run([
                "KAFKA_BOOTSTRAP_SERVERS": recreated.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
                "SLUICE_GROUP_ID": group, "SLUICE_STOP_AT_END": stopsAtEnd,
            ], logDirectory: directory.path, timeout: .seconds(60))
            #expect(result.exitCode == 1, "stop at end \(stopsAtEnd): \(result.standardError.suffix(1500))")
            #expect(result.standardError.contains("the topic was recreated or truncated"))
            #expect(result.standardError.contains("below offset 500"))
        }
    }

    /// A frozen broker (SIGSTOP) used to leave `/healthz` green while no output was waiting on it: polls just came
    /// back empty. Now a metadata probe every 5 s reports it within about 10 s, and the report clears once the broker
    /// answers again; nothing is lost meanwhile.
    @Test func aFrozenBrokerIsReportedByHealthzAndTheReportClears() throws {
        let broker = try BrokerProcess(topics: Self.topics)
        let service = try ServiceWithHTTP(on: broker)
        let (child, port) = (service.child, service.port)
        defer { _ = child.wait(timeout: .seconds(1)) }
        #expect(child.waitForLog("partitions assigned", timeout: .seconds(30)))
        let lines = (0..<200).map { (value: Array("frozen broker \($0)".utf8), timestamp: StreamingClock.now) }
        try produceLines(Array(lines.prefix(100)), topic: "lines", partitions: 4, bootstrap: broker.bootstrap)
        #expect(try waitForHTTP(port: port, path: "/api/counts/frozen", timeout: .seconds(20)) { $0.body.contains(#""count":100"#) })
        #expect(try httpGet(port: port, path: "/healthz").status == 200)

        kill(broker.process.processIdentifier, SIGSTOP)
        let frozen = try waitForHTTP(port: port, path: "/healthz", timeout: .seconds(20)) { $0.status == 503 }
        #expect(frozen, "/healthz stayed 200 with the broker frozen")
        #expect(try httpGet(port: port, path: "/healthz").body.contains("has not answered a metadata request"))
        kill(broker.process.processIdentifier, SIGCONT)
        #expect(try waitForHTTP(port: port, path: "/healthz", timeout: .seconds(30)) { $0.status == 200 })

        try produceLines(Array(lines.suffix(100)), topic: "lines", partitions: 4, bootstrap: broker.bootstrap)
        #expect(try waitForHTTP(port: port, path: "/api/counts/frozen", timeout: .seconds(30)) { $0.body.contains(#""count":200"#) })
        child.signal(SIGTERM)
        #expect(child.wait(timeout: .seconds(30)).exitCode == 0)
    }

    /// A second instance on the same consumer group used to split the partitions, and each published totals of its
    /// half under the same keys. Now each stops when it is given part of the input, and the counts stay right.
    @Test func aSecondInstanceInTheGroupStopsBothInsteadOfPublishingPartialTotals() throws {
        let broker = try BrokerProcess(topics: Self.topics)
        let lines = (0..<2_000).map { (value: Array("one group \($0 % 10)".utf8), timestamp: StreamingClock.now) }
        try produceLines(lines, topic: "lines", partitions: 4, bootstrap: broker.bootstrap)
        let group = uniqueGroup()
        let first = TemporaryDirectory()
        let second = TemporaryDirectory()
        let environment = { (directory: TemporaryDirectory) in
            ["KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data", "SLUICE_GROUP_ID": group]
        }
        let a = try SluiceProcess(environment: environment(first), logDirectory: first.path)
        #expect(a.waitForLog("partitions assigned", timeout: .seconds(30)))
        Thread.sleep(forTimeInterval: 2)
        let b = try SluiceProcess(environment: environment(second), logDirectory: second.path)
        let resultB = b.wait(timeout: .seconds(60))
        let resultA = a.wait(timeout: .seconds(60))
        for result in [resultA, resultB] {
            #expect(result.exitCode == 1 && !result.timedOut, "stderr: \(result.standardError.suffix(1500))")
            #expect(result.standardError.contains("another member joined consumer group \(group)"))
        }
        let totals = try lastValuePerKey(topic: "word-counts", bootstrap: broker.bootstrap).mapValues(countField)
        #expect(totals["one"] == 2_000 && totals["group"] == 2_000)
        #expect((0..<10).allSatisfy { totals[String($0)] == 200 })
    }
}
