import Foundation
import KafkaIO
import SampleData
import Storage
import StreamEngine
import Testing

@testable import Streaming

/// Crash recovery with real kill -9s of the service process, the broker living in its own process.
@Suite(.serialized, .timeLimit(.minutes(8)))
struct RecoveryTests {
    static let topics = ["lines": 4, "word-counts": 4, "word-counts-windowed": 4]
    static let isSoak = ProcessInfo.processInfo.environment["SLUICE_SOAK"] != nil

    struct Input {
        var lines: [(value: [UInt8], timestamp: Int64)] = []
        var words: [String: Int64] = [:]
        var windows: [String: Int64] = [:]
        var offsetsPerPartition: [Int32: Int64] = [:]
    }

    static func input(lines count: Int, seed: UInt64) -> Input {
        var input = Input()
        let start = WallClock.milliseconds() - Int64(count) * 5
        for index in 0..<count {
            let timestamp = start + Int64(index) * 5
            let text = testLine(index, seed: seed)
            input.lines.append((Array(text.utf8), timestamp))
            input.offsetsPerPartition[Int32(index % 4), default: 0] += 1
            for word in referenceWords(text) {
                input.words[word, default: 0] += 1
                input.windows["\(timestamp / 10_000 * 10_000)|\(word)", default: 0] += 1
            }
        }
        return input
    }

    /// A broker process loaded with seeded input, a fresh data directory and a fresh consumer group.
    struct Scenario {
        let broker: BrokerProcess
        let input: Input
        let directory = TemporaryDirectory()
        let group = uniqueGroup()

        init(lines: Int, seed: UInt64) throws {
            broker = try BrokerProcess(topics: RecoveryTests.topics)
            input = RecoveryTests.input(lines: lines, seed: seed)
            try produceLines(input.lines, topic: "lines", partitions: 4, bootstrap: broker.bootstrap)
        }

        var environment: [String: String] { RecoveryTests.environment(broker, directory, group: group) }

        func checkNothingCommittedIsLost() throws {
            try RecoveryTests.checkNothingCommittedIsLost(broker, directory, group: group)
        }

        @discardableResult
        func finishAndCheckExactOutput() throws -> ProcessResult {
            try RecoveryTests.finishAndCheckExactOutput(broker, directory, group: group, input: input)
        }

        /// Runs until the service kills itself at `point`, and returns the checkpoint files then on disk, oldest first.
        func crash(at point: String) throws -> [String] {
            var environment = environment
            environment["SLUICE_TEST_CRASH_AT"] = point
            let result = try SluiceProcess.run(environment, logDirectory: directory.path, timeout: .seconds(90))
            #expect(result.wasKilled && !result.timedOut, "\(point) was never reached: \(result.standardError.suffix(2000))")
            let checkpoints = directory.path + "/data/checkpoints"
            return try FileManager.default.contentsOfDirectory(atPath: checkpoints)
                .filter { $0.hasSuffix(".ckp") }.sorted().map { checkpoints + "/" + $0 }
        }
    }

    static func environment(_ broker: BrokerProcess, _ directory: TemporaryDirectory, group: String) -> [String: String] {
        [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_GROUP_ID": group,
            "SLUICE_BATCH_INTERVAL_MS": "400",
            "SLUICE_BLOCK_INTERVAL_MS": "100",
            "SLUICE_WINDOW_MS": "10000",
            // Windows are emitted at the end of input: restarts change which partition runs ahead, not the counts.
            "SLUICE_ALLOWED_LATENESS_MS": "3600000",
            // Slow enough that kills land while records are moving.
            "SLUICE_MAX_RATE_PER_PARTITION": "2500",
        ]
    }

    /// No loss: every offset below the group's committed offset is in the WAL or covered by the checkpoint.
    static func checkNothingCommittedIsLost(_ broker: BrokerProcess, _ directory: TemporaryDirectory, group: String) throws {
        let consumer = try KafkaConsumer(
            config: KafkaConsumerConfig(common: KafkaConfig(bootstrapServers: broker.bootstrap), groupID: group),
            logger: quietLogger
        )
        defer { consumer.close() }
        let partitions = (0..<Int32(4)).map { KafkaPartition(topic: "lines", partition: $0) }
        let committed = try consumer.committed(partitions, timeout: .seconds(10))

        // Open copies: opening the log repairs a torn tail and starts a new segment.
        let copy = TemporaryDirectory()
        try FileManager.default.copyItem(atPath: directory.path + "/data", toPath: copy.path + "/data")
        var covered: [KafkaPartition: Int64] = [:]
        if let loaded = try CheckpointStore(directory: copy.path + "/data/checkpoints").loadLatest() {
            covered = try DriverCheckpoint(decoding: loaded.payload).offsets
        }
        var logged: [KafkaPartition: Set<Int64>] = [:]
        if FileManager.default.fileExists(atPath: copy.path + "/data/wal") {
            let (_, recovery) = try WriteAheadLog.open(directory: copy.path + "/data/wal")
            for entry in recovery.entries {
                guard case .block(let block) = try WALRecord(decoding: entry.payload, at: entry.position) else { continue }
                block.forEachRecord { record in
                    logged[KafkaPartition(topic: record.topic, partition: record.partition), default: []].insert(record.offset)
                }
            }
        }
        for (partition, next) in committed {
            let floor = min(covered[partition] ?? 0, next)
            let missing = (floor..<next).filter { !(logged[partition]?.contains($0) ?? false) }
            #expect(missing.isEmpty, "\(partition): committed up to \(next), checkpoint covers \(floor), \(missing.count) offsets in neither, first \(missing.first ?? -1)")
        }
    }

    /// After all restarts, a final run to the end of input must produce the exact counts and windows.
    @discardableResult
    static func finishAndCheckExactOutput(_ broker: BrokerProcess, _ directory: TemporaryDirectory, group: String, input: Input) throws -> ProcessResult {
        var environment = environment(broker, directory, group: group)
        environment["SLUICE_STOP_AT_END"] = "true"
        environment["SLUICE_MAX_RATE_PER_PARTITION"] = "0"
        let result = try SluiceProcess.run(environment, logDirectory: directory.path, timeout: .seconds(180))
        #expect(result.exitCode == 0, "stderr: \(result.standardError.suffix(3000))")

        let totals = try lastValuePerKey(topic: "word-counts", bootstrap: broker.bootstrap)
        #expect(totals.count == input.words.count)
        for (word, count) in input.words {
            #expect(totals[word].flatMap(countField) == count, "word \(word): \(totals[word] ?? "missing")")
        }
        var last: [String: Int64] = [:]
        for (key, count) in try windowRecords(bootstrap: broker.bootstrap) {
            last[key] = count
        }
        #expect(last == input.windows)
        return result
    }

    @Test func killedAtRandomMomentsNothingCommittedIsLostAndTheFinalCountsAreExact() throws {
        let seed = ProcessInfo.processInfo.environment["SLUICE_TEST_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...1_000_000)
        print("RecoveryTests random kills: seed \(seed) (set SLUICE_TEST_SEED to repeat)")
        var generator = SplitMix64(seed: seed)
        let scenario = try Scenario(lines: Self.isSoak ? 200_000 : 60_000, seed: seed)
        let kills = Self.isSoak ? 20 : 5
        for round in 0..<kills {
            // Rejoining takes up to the 6 s session timeout of the killed member, then records flow.
            let delay = Double(1000 + Int(generator.next() % 9000)) / 1000
            print("RecoveryTests: kill \(round + 1) of \(kills) after \(delay) s")
            let child = try SluiceProcess(environment: scenario.environment, logDirectory: scenario.directory.path)
            Thread.sleep(forTimeInterval: delay)
            child.signal(SIGKILL)
            let result = child.wait(timeout: .seconds(10))
            #expect(result.wasKilled, "the service ended by itself: \(result.standardError.suffix(2000))")
            try scenario.checkNothingCommittedIsLost()
        }
        try scenario.finishAndCheckExactOutput()
    }

    @Test(arguments: [
        // A crash while a batch is being received and stored...
        ["after-block-sync:2", "after-commit:2"],
        // ...and between output flush and checkpoint, and right after a checkpoint.
        ["after-output-flush:2", "after-checkpoint:2", "after-output-flush:2"],
    ])
    func crashAtEachPointThenRecoverExactly(points: [String]) throws {
        // Each run must still find input to reach its crash point: 40,000 lines at 4 x 2,500 records/s last 4 s.
        let scenario = try Scenario(lines: 40_000, seed: 11)
        for point in points {
            _ = try scenario.crash(at: point)
            try scenario.checkNothingCommittedIsLost()
        }
        try scenario.finishAndCheckExactOutput()
    }

    @Test func aCorruptNewestCheckpointFallsBackToTheOlderOneAndStaysExact() throws {
        let scenario = try Scenario(lines: 20_000, seed: 9)
        let checkpoints = try scenario.crash(at: "after-checkpoint:2")
        #expect(checkpoints.count == 2)
        let newest = try #require(checkpoints.last)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: newest))
        bytes[bytes.count - 1] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: newest))
        let result = try scenario.finishAndCheckExactOutput()
        #expect(result.standardError.contains("skipped an unreadable checkpoint"))
    }

    @Test func noReadableCheckpointStopsStartUpInsteadOfStartingFromZero() throws {
        let scenario = try Scenario(lines: 20_000, seed: 4)
        let checkpoints = try scenario.crash(at: "after-checkpoint:2")
        #expect(checkpoints.count == 2)
        for path in checkpoints {
            try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        }
        let result = try SluiceProcess.run(scenario.environment, logDirectory: scenario.directory.path, timeout: .seconds(60))
        #expect(result.exitCode == 1)
        #expect(result.standardError.contains("no valid checkpoint"))
        #expect(result.standardError.contains(URL(fileURLWithPath: checkpoints[0]).lastPathComponent))
    }

    /// The log switched off and on again, with crashes at the seams: a log consumed by a run with the log off is
    /// never replayed again (it is retired in a checkpoint before it is deleted), and a new log is never skipped by
    /// a checkpoint that named a position in the old one.
    @Test func switchingTheWALOffAndOnAgainNeitherLosesNorRepeats() throws {
        // Slow input (4 x 500 records/s), so that every run still finds records to crash on.
        let scenario = try Scenario(lines: 60_000, seed: 21)
        var walOn = scenario.environment
        walOn["SLUICE_MAX_RATE_PER_PARTITION"] = "500"
        walOn["SLUICE_TEST_CRASH_AT"] = "after-block-sync:6"
        var result = try SluiceProcess.run(walOn, logDirectory: scenario.directory.path, timeout: .seconds(90))
        #expect(result.wasKilled, "stderr: \(result.standardError.suffix(2000))")
        var walOff = walOn
        walOff["SLUICE_WAL"] = "false"
        walOff["SLUICE_TEST_CRASH_AT"] = "after-stale-log-retired"
        result = try SluiceProcess.run(walOff, logDirectory: scenario.directory.path, timeout: .seconds(90))
        #expect(result.wasKilled, "the stale log was not retired: \(result.standardError.suffix(2000))")
        walOff["SLUICE_TEST_CRASH_AT"] = "after-checkpoint:2"
        result = try SluiceProcess.run(walOff, logDirectory: scenario.directory.path, timeout: .seconds(90))
        #expect(result.wasKilled, "stderr: \(result.standardError.suffix(2000))")
        #expect(!FileManager.default.fileExists(atPath: scenario.directory.path + "/data/wal"))
        walOn["SLUICE_TEST_CRASH_AT"] = "after-block-sync:4"
        result = try SluiceProcess.run(walOn, logDirectory: scenario.directory.path, timeout: .seconds(90))
        #expect(result.wasKilled, "stderr: \(result.standardError.suffix(2000))")
        try scenario.checkNothingCommittedIsLost()
        try scenario.finishAndCheckExactOutput()
    }

    @Test func withoutTheWALTheFinalCountsAreStillExactAfterAGracefulRestart() throws {
        let scenario = try Scenario(lines: 20_000, seed: 5)
        var environment = scenario.environment
        environment["SLUICE_WAL"] = "false"
        let child = try SluiceProcess(environment: environment, logDirectory: scenario.directory.path)
        Thread.sleep(forTimeInterval: 6)
        child.signal(SIGTERM)
        let stopped = child.wait(timeout: .seconds(30))
        #expect(stopped.exitCode == 0 && !stopped.wasKilled, "stderr: \(stopped.standardError.suffix(2000))")
        #expect(!FileManager.default.fileExists(atPath: scenario.directory.path + "/data/wal"))
        try scenario.finishAndCheckExactOutput()
    }
}

func uniqueGroup() -> String {
    "group-\(UUID().uuidString.prefix(8))"
}
