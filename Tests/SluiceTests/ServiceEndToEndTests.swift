import Foundation
import KafkaIO
import Testing

/// The service as an outside user sees it: a broker in its own process, `sluice` as a child process, and `kcat`
/// reading the output topics.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct ServiceEndToEndTests {
    static let topics = ["lines": 4, "word-counts": 4, "word-counts-windowed": 4, "dead-letters": 1]
    static let firstTimestamp: Int64 = 1_700_000_000_000

    /// 100,000 lines with known timestamps (10 ms apart: 1,000 s of event time, about 17 one-minute windows), plus
    /// malformed records that must be skipped.
    static func input() -> (lines: [(value: [UInt8], timestamp: Int64)], words: [String: Int64], windows: [String: Int64]) {
        var lines: [(value: [UInt8], timestamp: Int64)] = []
        var words: [String: Int64] = [:]
        var windows: [String: Int64] = [:]
        for index in 0..<100_000 {
            let timestamp = firstTimestamp + Int64(index) * 10
            let text = testLine(index, seed: 7)
            lines.append((Array(text.utf8), timestamp))
            for word in referenceWords(text) {
                words[word, default: 0] += 1
                windows["\(timestamp / 60_000 * 60_000)|\(word)", default: 0] += 1
            }
            if index == 50_000 {
                // One record larger than a block (the block cap is a quarter of SLUICE_MAX_BACKLOG_MB).
                let huge = String(repeating: "huge ", count: 140_000)
                lines.append((Array(huge.utf8), timestamp))
                words["huge", default: 0] += 140_000
                windows["\(timestamp / 60_000 * 60_000)|huge", default: 0] += 140_000
            }
            if index % 10_000 == 5 {
                lines.append(([0x66, 0x6f, 0xff, 0xfe, 0x20, 0x62], timestamp))  // invalid UTF-8
                lines.append(([], timestamp))  // empty
            }
        }
        return (lines, words, windows)
    }

    @Test func countsAndWindowsAreExactForAnOutsideReader() throws {
        let broker = try BrokerProcess(topics: Self.topics)
        let (lines, words, windows) = Self.input()
        try produceLines(lines, topic: "lines", partitions: 4, bootstrap: broker.bootstrap)
        let directory = TemporaryDirectory()
        let result = try SluiceProcess.run([
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "SLUICE_STOP_AT_END": "true",
            "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_BATCH_INTERVAL_MS": "500",
            "SLUICE_BLOCK_INTERVAL_MS": "100",
            "SLUICE_DEAD_LETTER_TOPIC": "dead-letters",
            "SLUICE_MAX_BACKLOG_MB": "2",
            // Partitions are read at different paces; two minutes of lateness keeps every record inside its window.
            "SLUICE_ALLOWED_LATENESS_MS": "120000",
        ], logDirectory: directory.path, timeout: .seconds(180))
        #expect(result.exitCode == 0, "stderr: \(result.standardError.suffix(2000))")

        let totals = try lastValuePerKey(topic: "word-counts", bootstrap: broker.bootstrap)
        #expect(totals.count == words.count)
        for (word, count) in words {
            #expect(totals[word].flatMap(countField) == count, "word \(word)")
        }
        #expect(totals["école"]?.contains("\"word\":\"école\"") == true)

        var seen: [String: Int64] = [:]
        for (key, count) in try windowRecords(bootstrap: broker.bootstrap) {
            #expect(seen[key] == nil, "window \(key) emitted twice")
            seen[key] = count
        }
        #expect(seen == windows)

        // The ten invalid UTF-8 records went to the dead-letter topic with their origin; the empty ones did not.
        let dead = try kcat(["-C", "-b", broker.bootstrap, "-t", "dead-letters", "-e", "-q", "-f", "%h\n"])
        let origins = dead.split(separator: "\n")
        #expect(origins.count == 10)
        #expect(origins.allSatisfy { $0.contains("sluice-source=lines/") && $0.contains("sluice-error=invalid UTF-8") })
    }

    /// A run to the end of the input emits its open windows with its last batch, yet checkpoints them open with the
    /// real watermark (encoded before they are emitted): a later run over more input completes them and emits them
    /// again, with their final counts.
    @Test func aRunToTheEndOfTheInputLeavesItsWindowsOpenForTheNextRun() throws {
        let broker = try BrokerProcess(topics: Self.topics)
        let directory = TemporaryDirectory()
        let environment = [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_GROUP_ID": uniqueGroup(), "SLUICE_STOP_AT_END": "true",
        ]
        let timestamp = StreamingClock.now
        for text in ["a b", "a c"] {
            // One line per partition, so that every partition moves the watermark.
            let lines = Array(repeating: (value: Array(text.utf8), timestamp: timestamp), count: 4)
            try produceLines(lines, topic: "lines", partitions: 4, bootstrap: broker.bootstrap)
            let run = try SluiceProcess.run(environment, logDirectory: directory.path, timeout: .seconds(60))
            #expect(run.exitCode == 0, "stderr: \(run.standardError.suffix(2000))")
        }
        var last: [String: Int64] = [:]
        for (key, count) in try windowRecords(bootstrap: broker.bootstrap) {
            last[key] = count
        }
        let window = timestamp / 60_000 * 60_000
        #expect(last == ["\(window)|a": 8, "\(window)|b": 4, "\(window)|c": 4])
    }

    @Test func theDemoRunsOnTheEmbeddedBrokerAndPrintsCounts() throws {
        let directory = TemporaryDirectory()
        let result = try SluiceProcess.run([
            "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_DEMO_LINES": "2000",
        ], logDirectory: directory.path, timeout: .seconds(120))
        #expect(result.exitCode == 0, "stderr: \(result.standardError.suffix(2000))")
        #expect(result.standardOutput.contains("Top words in word-counts ("))
        // "the" is the most common word of the sample vocabulary.
        #expect(result.standardOutput.split(separator: "\n").dropFirst().first?.contains("the") == true)
    }

    @Test func anUnreachableBrokerStopsStartUpWithAClearError() throws {
        let directory = TemporaryDirectory()
        let started = ContinuousClock.now
        let result = try SluiceProcess.run([
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_LOG_FORMAT": "json",
        ], logDirectory: directory.path, timeout: .seconds(60))
        #expect(result.exitCode == 1)
        #expect(result.standardError.contains("cannot reach Kafka at 127.0.0.1:1"))
        // Structured logs: every line is one JSON object with a level and a message.
        let lines = result.standardError.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["level"] is String && object?["message"] is String, "not a JSON log line: \(line)")
        }
        #expect(ContinuousClock.now - started < .seconds(40))
    }
}

@Suite(.timeLimit(.minutes(2)))
struct ConfigurationErrorTests {
    @Test(arguments: [
        ("SLUICE_BATCH_INTERVAL_MS", "soon"),
        ("SLUICE_BATCH_INTERVAL_MS", "-5"),
        ("SLUICE_BLOCK_INTERVAL_MS", "5000"),
        ("SLUICE_SLIDE_MS", "7000"),
        ("SLUICE_LOG_LEVEL", "loud"),
        ("SLUICE_LOG_FORMAT", "xml"),
        ("SLUICE_WAL", "maybe"),
        ("SLUICE_HTTP_PORT", "70000"),
        ("SLUICE_EXACTLY_ONCE", "true"),
        ("SLUICE_INPUT_TOPICS", "lines,,other"),
        ("SLUICE_ENGINE_THREADS", "0"),
    ])
    func aBadValueExitsWithCode2NamingTheVariable(variable: String, value: String) throws {
        let directory = TemporaryDirectory()
        let result = try SluiceProcess.run([variable: value, "SLUICE_CHECKPOINT_DIR": directory.path + "/data"], logDirectory: directory.path, timeout: .seconds(30))
        #expect(result.exitCode == 2)
        #expect(result.standardError.contains(variable))
        #expect(result.standardError.contains(value))
    }

    /// A `SLUICE_` variable that is no setting (a typo, or one that does not exist) exits 2 naming it and the nearest
    /// setting, where it used to start the word count with the defaults and no word of warning.
    @Test(arguments: [("SLUICE_WINDOWMS", "5000", "SLUICE_WINDOW_MS"), ("SLUICE_STOP_AT_ENDS", "true", "SLUICE_STOP_AT_END")])
    func anUnknownVariableExitsWithCode2NamingTheNearest(variable: String, value: String, nearest: String) throws {
        let directory = TemporaryDirectory()
        let result = try SluiceProcess.run([variable: value, "SLUICE_CHECKPOINT_DIR": directory.path + "/data"], logDirectory: directory.path, timeout: .seconds(30))
        #expect(result.exitCode == 2)
        #expect(result.standardError.contains("there is no \(variable); did you mean \(nearest)?"), "\(result.standardError.suffix(600))")
    }

    @Test func anUnknownKafkaPropertyIsNamed() throws {
        let directory = TemporaryDirectory()
        let broker = try BrokerProcess(topics: ["lines": 1])
        let result = try SluiceProcess.run([
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_KAFKA_NO_SUCH_THING": "1",
            "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
        ], logDirectory: directory.path, timeout: .seconds(30))
        #expect(result.exitCode != 0)
        #expect(result.standardError.contains("no.such.thing"))
    }

    @Test func anUnwritableCheckpointDirectoryStopsStartUp() throws {
        let directory = TemporaryDirectory()
        let broker = try BrokerProcess(topics: ["lines": 1])
        // A path below a regular file can never be created, even as root.
        _ = FileManager.default.createFile(atPath: directory.path + "/file", contents: Data())
        let result = try SluiceProcess.run([
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/file/data",
        ], logDirectory: directory.path, timeout: .seconds(30))
        #expect(result.exitCode == 1)
        #expect(result.standardError.contains(directory.path + "/file/data"))
    }

    @Test func helpListsEveryVariableAndPrintConfigMasksSecrets() throws {
        let directory = TemporaryDirectory()
        let help = try SluiceProcess(environment: [:], arguments: ["--help"], logDirectory: directory.path).wait(timeout: .seconds(30))
        #expect(help.exitCode == 0)
        for variable in ["KAFKA_BOOTSTRAP_SERVERS", "SLUICE_BATCH_INTERVAL_MS", "SLUICE_WAL", "SLUICE_HTTP_PORT", "SLUICE_KAFKA_<PROP>"] {
            #expect(help.standardOutput.contains(variable))
        }
        let printed = try SluiceProcess(
            environment: ["SLUICE_KAFKA_SASL_PASSWORD": "hunter2", "SLUICE_WINDOW_MS": "10000"],
            arguments: ["--print-config"], logDirectory: directory.path
        ).wait(timeout: .seconds(30))
        #expect(printed.exitCode == 0)
        #expect(printed.standardOutput.contains("SLUICE_WINDOW_MS=10000"))
        #expect(printed.standardOutput.contains("SLUICE_SLIDE_MS=10000"))
        #expect(printed.standardOutput.contains("SLUICE_KAFKA_SASL_PASSWORD=****"))
        #expect(!printed.standardOutput.contains("hunter2"))
    }

    /// The README's configuration table and `--help` (which prints the service's one table of variables) name the
    /// same variables with the same defaults.
    @Test func theReadmeTableMatchesHelp() throws {
        let directory = TemporaryDirectory()
        let help = try SluiceProcess(environment: [:], arguments: ["--help"], logDirectory: directory.path).wait(timeout: .seconds(30))
        var helpDefaults: [String: String] = [:]
        for line in help.standardOutput.split(separator: "\n") where line.hasPrefix("  ") {
            let name = String(line.dropFirst(2).prefix { $0 != " " })
            let defaultText = line.range(of: "(default: ").map { String(line[$0.upperBound...].dropLast()) } ?? ""
            helpDefaults[name] = defaultText == "(unset)" ? "unset" : defaultText
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let section = readme.components(separatedBy: "## Configuration")[1].components(separatedBy: "\n## ")[0]
        var readmeNames: Set<String> = []
        for row in section.split(separator: "\n") where row.hasPrefix("| `") {
            let cells = row.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let names = cells[1].split(separator: "/").map { $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "`", with: "") }
            readmeNames.formUnion(names)
            if names.count == 1, let expected = helpDefaults[names[0]] {
                #expect(cells[2].replacingOccurrences(of: "`", with: "") == expected, "default of \(names[0])")
            }
        }
        #expect(!helpDefaults.isEmpty)
        #expect(readmeNames == Set(helpDefaults.keys))
    }

    /// A partition that starts delivering after the others advanced (as with a broker that answers one partition
    /// per fetch) must not find its records late: the assigned partition held the watermark back. Before, its
    /// first records were dropped as late.
    @Test func aPartitionThatStartsLateHoldsTheWatermarkBack() throws {
        let broker = try BrokerProcess(topics: ["lines": 2, "word-counts": 2, "word-counts-windowed": 2])
        let service = try ServiceWithHTTP(on: broker, ["SLUICE_WINDOW_MS": "1000"])
        let (child, port) = (service.child, service.port)
        #expect(child.waitForLog("partitions assigned", timeout: .seconds(30)))
        let producer = try KafkaProducer(config: KafkaProducerConfig(common: KafkaConfig(bootstrapServers: broker.bootstrap)), logger: quietLogger)
        let start = StreamingClock.now / 1000 * 1000 - 60_000
        let produce = { (partition: Int32, seconds: Range<Int64>) in
            for second in seconds {
                try producer.send(KafkaProducerRecord(topic: "lines", partition: partition, value: Array("tick".utf8), timestamp: start + second * 1000))
            }
            try producer.flush(timeout: .seconds(10))
        }
        // Partition 0 runs 30 s of event time ahead; partition 1 starts 2 s of wall time later, from the beginning.
        try produce(0, 0..<30)
        Thread.sleep(forTimeInterval: 2)
        try produce(1, 0..<30)
        var late: Double?
        var windows = 0.0
        let deadline = ContinuousClock.now + .seconds(20)
        while windows < 28, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.5)
            let values = try metrics(port: port)
            late = values["sluice_records_late_total"]
            windows = values["sluice_output_records_total"] ?? 0
        }
        child.signal(SIGTERM)
        #expect(child.wait(timeout: .seconds(30)).exitCode == 0)
        #expect(late ?? 0 == 0, "records dropped as late")
        // Each closed one-second window holds one tick of each partition.
        let counts = try windowRecords(bootstrap: broker.bootstrap).map(\.count)
        #expect(!counts.isEmpty && counts.allSatisfy { $0 == 2 }, "\(counts)")
    }
}
