import Foundation
import Glibc
import SampleData
import Testing

/// noida-db, an independent Kafka-protocol broker that writes transaction markers, hides aborted records from
/// read_committed readers and fences a second producer with the same transactional id (measured; librdkafka's
/// mock does none of these, and Tansu delivers aborted records). Fetched by `scripts/test-brokers.sh`.
final class NoidaProcess: TestBroker {
    let process: Process
    let bootstrap: String
    private let directory = TemporaryDirectory()

    init(topics: [String: Int]) throws {
        let data = directory.path + "/noida"
        (process, bootstrap) = try startBrokerTool("noida-db") { bootstrap in
            ["start", "--only", "kafka", "--kafka-port", String(bootstrap.split(separator: ":").last!), "--data-dir", data]
        }
        try createTopics(topics)
    }

    /// Creates the topics with Python's admin client, retrying while the broker starts.
    private func createTopics(_ topics: [String: Int]) throws {
        let script = """
            import sys, time
            from confluent_kafka.admin import AdminClient, NewTopic
            admin = AdminClient({"bootstrap.servers": sys.argv[1]})
            wanted = {name: int(count) for name, count in (item.split(":") for item in sys.argv[2:])}
            deadline = time.time() + 20
            while True:
                try:
                    existing = admin.list_topics(timeout=2).topics
                    missing = [NewTopic(name, count) for name, count in wanted.items() if name not in existing]
                    for future in admin.create_topics(missing).values() if missing else []:
                        future.result(10)
                    break
                except Exception:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.2)
            """
        let result = try runTool(
            brokerTools.appendingPathComponent("venv/bin/python").path,
            ["-c", script, bootstrap] + topics.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" })
        guard result.status == 0 else { throw TestFailure("noida-db: topics not created: \(result.output)") }
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// Exactly-once output (`SLUICE_EXACTLY_ONCE`, standalone mode) on noida-db, read as a read_committed consumer
/// reads it.
@Suite(.serialized) struct ExactlyOnceTests {
    /// kill -9 inside the transaction (after the output is produced, after the progress record, after the commit
    /// before the checkpoint), then at seeded random moments under rate-limited input (`SLUICE_TEST_SEED` repeats a
    /// run), each restart on the same data directory, then a run to the end of input: every
    /// (word, batch) appears once in the counts topic, every (window, word) once in the windows topic, and the
    /// totals and window counts are exact.
    @Test func aReadCommittedReaderSeesEachBatchOnceThroughKills() throws {
        let broker = try NoidaProcess(topics: ["lines": 2, "word-counts": 2, "word-counts-windowed": 2])
        let directory = TemporaryDirectory()
        let points = ["after-output-flush:1", "before-txn-commit:1", "after-txn-commit:1"]
        let randomKills = 3
        let input = Input(chunks: points.count + randomKills + 1, lines: 600, partitions: 2, seed: 21)
        let environment = [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_EXACTLY_ONCE": "true", "SLUICE_STATIC_MEMBERSHIP": "true",
            "SLUICE_INSTANCE_ID": "one", "SLUICE_GROUP_ID": uniqueGroup(), "SLUICE_WINDOW_MS": "1000",
            "SLUICE_ALLOWED_LATENESS_MS": "3600000", "SLUICE_BATCH_INTERVAL_MS": "300", "SLUICE_SESSION_TIMEOUT_MS": "6000",
            "SLUICE_CHECKPOINT_DIR": directory.path + "/data", "SLUICE_HTTP_PORT": "0", "SLUICE_MAX_RATE_PER_PARTITION": "400",
        ]
        for (index, point) in points.enumerated() {
            let process = try SluiceProcess(environment: environment.merging(["SLUICE_TEST_CRASH_AT": point]) { $1 }, logDirectory: directory.path)
            try pythonProduce(input.chunks[index], topic: "lines", bootstrap: broker.bootstrap)
            let result = process.wait(timeout: .seconds(60))
            #expect(result.wasKilled && !result.timedOut, "\(point) was never reached: \(result.standardError.suffix(3000))")
        }
        let seed = ProcessInfo.processInfo.environment["SLUICE_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...99_999)
        print("ExactlyOnceTests random kills: seed \(seed) (set SLUICE_TEST_SEED to repeat)")
        var random = SplitMix64(seed: seed)
        for index in points.count..<(points.count + randomKills) {
            let process = try SluiceProcess(environment: environment, logDirectory: directory.path)
            try pythonProduce(input.chunks[index], topic: "lines", bootstrap: broker.bootstrap)
            Thread.sleep(forTimeInterval: 0.3 + Double(random.next() % 1700) / 1000)
            process.signal(SIGKILL)
            _ = process.wait(timeout: .seconds(10))
        }
        try pythonProduce(input.chunks[points.count + randomKills], topic: "lines", bootstrap: broker.bootstrap)
        let last = try SluiceProcess.run(environment.merging(["SLUICE_STOP_AT_END": "true"]) { $1 }, logDirectory: directory.path)
        #expect(last.exitCode == 0, "\(last.standardError.suffix(1500))")

        try checkOnce(input, bootstrap: broker.bootstrap, countsKey: "batch_time")
    }

    /// Runs to the end of input that an earlier run finished (static membership, as the probe that found it): none
    /// crashes on the way out (the rebalance callback met librdkafka's NULL protocol of a closing consumer), and the
    /// windows the first run flushed at the end are not published again, so a read_committed reader sees each
    /// (window, word) and each (word, batch) once. Four runs after the first in `make test`, ten with `SLUICE_SOAK`.
    @Test func runsOverFinishedInputPublishNothingTwice() throws {
        let broker = try NoidaProcess(topics: ["lines": 2, "word-counts": 2, "word-counts-windowed": 2])
        let directory = TemporaryDirectory()
        let input = Input(chunks: 1, lines: 1_500, partitions: 2, seed: 24)
        try pythonProduce(input.chunks[0], topic: "lines", bootstrap: broker.bootstrap)
        let environment = [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_EXACTLY_ONCE": "true", "SLUICE_STATIC_MEMBERSHIP": "true",
            "SLUICE_INSTANCE_ID": "one", "SLUICE_GROUP_ID": uniqueGroup(), "SLUICE_WINDOW_MS": "1000",
            "SLUICE_ALLOWED_LATENESS_MS": "3600000", "SLUICE_BATCH_INTERVAL_MS": "300", "SLUICE_SESSION_TIMEOUT_MS": "6000",
            "SLUICE_CHECKPOINT_DIR": directory.path + "/data", "SLUICE_HTTP_PORT": "0", "SLUICE_STOP_AT_END": "true",
        ]
        let runs = 1 + (ProcessInfo.processInfo.environment["SLUICE_SOAK"] != nil ? 10 : 4)
        for run in 0..<runs {
            let result = try SluiceProcess.run(environment, logDirectory: directory.path)
            #expect(result.exitCode == 0 && !result.wasKilled, "run \(run): \(result.standardError.suffix(1500))")
        }
        try checkOnce(input, bootstrap: broker.bootstrap, countsKey: "batch_time")
    }

    /// Three distributed instances with exactly-once output on one group: each armed in turn to kill itself inside
    /// a transaction (stage 1 after its partials are produced, stage 2 amid its changelog records, after the offsets
    /// are sent, after the commit before the checkpoint), then killed at seeded random moments, each restarted with
    /// its instance id and data directory (static membership: noida-db evicts a killed member only after 300 s).
    /// A read_committed reader sees each (word, total) once, each (window, word) once, and exact totals; shards never
    /// had two owners and the changelog rebuilds the state.
    @Test func distributedInstancesEmitEachCycleOnceThroughKills() throws {
        let group = uniqueGroup()
        let broker = try NoidaProcess(topics: ["lines": 4, "word-counts": 4, "word-counts-windowed": 4])
        let directory = TemporaryDirectory()
        let rounds = [["a": "after-partials:1", "b": "mid-changelog:3", "c": "before-txn-commit:4"], ["a": "after-txn-commit:3"]]
        let randomKills = 3
        let input = Input(chunks: 2 * rounds.count + randomKills + 1, lines: 400, partitions: 4, seed: 23)
        var environment = DistributedModeTests.environment(broker: broker.bootstrap, group: group, directory: directory)
        environment.merge([
            "SLUICE_EXACTLY_ONCE": "true", "SLUICE_STATIC_MEMBERSHIP": "true", "SLUICE_SESSION_TIMEOUT_MS": "6000",
            "SLUICE_BATCH_INTERVAL_MS": "300",
        ]) { $1 }
        var runs = Runs(environment: environment, directory: directory.path)
        var chunk = 0
        for name in ["a", "b", "c"] { try runs.start(name, crashingAt: rounds[0][name]) }
        for (index, round) in rounds.enumerated() {
            for _ in 0..<2 {
                try pythonProduce(input.chunks[chunk], topic: "lines", bootstrap: broker.bootstrap)
                chunk += 1
            }
            // Each instance that crashed restarts at once, armed for the next round if that names it.
            for (name, point) in round.sorted(by: { $0.key < $1.key }) {
                let result = runs.awaitCrash(name, timeout: .seconds(60))
                #expect(result?.wasKilled == true && result?.timedOut == false, "\(name) never reached \(point): \(result?.standardError.suffix(2000) ?? "")")
                try runs.start(name, crashingAt: index + 1 < rounds.count ? rounds[index + 1][name] : nil)
            }
        }
        let seed = ProcessInfo.processInfo.environment["SLUICE_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...99_999)
        print("ExactlyOnceTests distributed random kills: seed \(seed) (set SLUICE_TEST_SEED to repeat)")
        var random = SplitMix64(seed: seed)
        for _ in 0..<randomKills {
            try pythonProduce(input.chunks[chunk], topic: "lines", bootstrap: broker.bootstrap)
            chunk += 1
            Thread.sleep(forTimeInterval: 0.3 + Double(random.next() % 1700) / 1000)
            try runs.kill(["a", "b", "c"][Int(random.next() % 3)], restart: true)
        }
        try pythonProduce(input.chunks[chunk], topic: "lines", bootstrap: broker.bootstrap)
        try DistributedModeTests.finish(input, runs: &runs, group: group, broker: broker)
        // Every total a cycle publishes is new (a word is published only when its count grew): a (word, total) seen
        // twice is a cycle published twice.
        try checkOnce(input, bootstrap: broker.bootstrap, countsKey: "count", ignoring: "sentinel")
    }

    /// A second process that takes the transactional id (standalone: the group; distributed: the instance's stage 2
    /// in its first incarnation, `<group>-<instance>-shards-0`) fences the running one: its next commit fails with
    /// `_FENCED`. Standalone, that is another instance of the group: it exits non-zero, and no batch it started
    /// after the fence is visible to a read_committed reader. Distributed, the instance replaces its clients (a new
    /// incarnation) and rejoins: it stays alive, and a read_committed reader sees exact output, each total once.
    @Test(arguments: ["standalone", "distributed"])
    func aSecondProducerWithTheTransactionalIDFencesTheFirst(mode: String) throws {
        let broker = try NoidaProcess(topics: ["lines": 2, "word-counts": 2, "word-counts-windowed": 2])
        let directory = TemporaryDirectory()
        let group = uniqueGroup()
        let input = Input(chunks: 2, lines: 1_500, partitions: 2, seed: 22)
        try pythonProduce(input.chunks[0], topic: "lines", bootstrap: broker.bootstrap)
        var environment = [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_EXACTLY_ONCE": "true", "SLUICE_GROUP_ID": group,
            "SLUICE_BATCH_INTERVAL_MS": "200", "SLUICE_HTTP_PORT": "0", "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_MODE": mode, "SLUICE_INSTANCE_ID": "one", "SLUICE_WINDOW_MS": "1000",
            "SLUICE_ALLOWED_LATENESS_MS": "3600000", "SLUICE_SESSION_TIMEOUT_MS": "6000",
        ]
        // Standalone: slow enough that batches still run when the fence comes.
        if mode == "standalone" { environment["SLUICE_MAX_RATE_PER_PARTITION"] = "300" } else { environment["SLUICE_SHARDS"] = "4" }
        let first = try SluiceProcess(environment: environment, logDirectory: directory.path)
        #expect(first.waitForLog(mode == "standalone" ? "earlier transactions fenced" : "shards acquired", timeout: .seconds(30)))
        Thread.sleep(forTimeInterval: 2)
        let fence = try runTool(brokerTools.appendingPathComponent("venv/bin/python").path, ["-c", """
            import sys, time
            from confluent_kafka import Producer
            producer = Producer({"bootstrap.servers": sys.argv[1], "transactional.id": sys.argv[2]})
            producer.init_transactions(30)
            print(int(time.time() * 1000))
            """, broker.bootstrap, mode == "standalone" ? group : "\(group)-one-shards-0"])
        #expect(fence.status == 0, "\(fence.output)")
        let fencedAt = try #require(Int64(fence.output.split(separator: "\n").last ?? ""))
        guard mode == "distributed" else {
            let result = first.wait(timeout: .seconds(60))
            #expect(result.exitCode != 0 && !result.timedOut)
            #expect(result.standardError.contains("_FENCED"), "\(result.standardError.suffix(1500))")
            let late = try committedRecords(topic: "word-counts", bootstrap: broker.bootstrap).filter { _, value in
                (value.firstMatch(of: /"batch_time":(\d+)/).flatMap { Int64($0.1) } ?? 0) > fencedAt
            }
            #expect(late.isEmpty, "\(late.count) records of batches after the fence are visible")
            #expect(try !committedRecords(topic: "word-counts", bootstrap: broker.bootstrap).isEmpty, "nothing committed before the fence")
            return
        }
        // A cycle after the fence, to meet it.
        try pythonProduce(input.chunks[1], topic: "lines", bootstrap: broker.bootstrap)
        #expect(first.waitForLog("a client failed for good: replacing both stages' clients", timeout: .seconds(60)))
        try pythonProduce(
            (0..<input.partitions).map { (Int32($0), input.start + 2 * 3_600_000, "sentinel") }, topic: "lines", bootstrap: broker.bootstrap)
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline, try windowCount(bootstrap: broker.bootstrap) < input.windows.count {
            Thread.sleep(forTimeInterval: 1)
        }
        first.signal(SIGTERM)
        let result = first.wait(timeout: .seconds(60))
        #expect(result.exitCode == 0 && !result.wasKilled, "\(result.standardError.suffix(1500))")
        try checkOnce(input, bootstrap: broker.bootstrap, countsKey: "count", ignoring: "sentinel")
    }

    /// How many (window, word) records a read_committed reader sees, sentinels aside.
    func windowCount(bootstrap: String) throws -> Int {
        try committedRecords(topic: "word-counts-windowed", bootstrap: bootstrap).filter { $0.0 != "sentinel" }.count
    }

    /// Exactly-once output in standalone mode needs the WAL (replays must cut the same batches), and a real broker:
    /// either contradiction stops start-up with exit 2 naming the variable.
    @Test(arguments: [
        (["KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "SLUICE_WAL": "false"], "SLUICE_WAL"), ([:], "SLUICE_EXACTLY_ONCE"),
    ])
    func contradictorySettingsAreRefused(environment: [String: String], named: String) throws {
        let directory = TemporaryDirectory()
        let result = try SluiceProcess.run(
            environment.merging(["SLUICE_EXACTLY_ONCE": "true", "SLUICE_CHECKPOINT_DIR": directory.path + "/data"]) { $1 },
            logDirectory: directory.path, timeout: .seconds(30))
        #expect(result.exitCode == 2)
        #expect(result.standardError.contains(named), "\(result.standardError)")
    }

    /// What a read_committed reader sees: each (word, `countsKey` field) once in the counts topic, the totals exact,
    /// and each (window, word) once in the windows topic, with the exact counts (records of `ignoring` aside).
    func checkOnce(_ input: Input, bootstrap: String, countsKey: String, ignoring ignored: String? = nil) throws {
        var seen: Set<String> = []
        var duplicates: [String] = []
        var totals: [String: Int64] = [:]
        for (key, value) in try committedRecords(topic: "word-counts", bootstrap: bootstrap) where key != ignored {
            let field = value.firstMatch(of: try Regex("\"\(countsKey)\":(\\d+)")).map { String($0.output[1].substring ?? "") } ?? "?"
            if !seen.insert("\(key)|\(field)").inserted { duplicates.append("\(key)@\(field)") }
            totals[key] = countField(value)
        }
        #expect(duplicates.isEmpty, "\(duplicates.count) (word, \(countsKey)) pairs seen twice, e.g. \(duplicates.prefix(5))")
        BrokerMatrixTests.check(totals, input.words)
        var windows: [String: Int64] = [:]
        var windowDuplicates = 0
        for (key, value) in try committedRecords(topic: "word-counts-windowed", bootstrap: bootstrap) where key != ignored {
            let start = value.firstMatch(of: /"window_start":(\d+)/).map { String($0.1) } ?? "?"
            if windows.updateValue(countField(value) ?? -1, forKey: "\(start)|\(key)") != nil { windowDuplicates += 1 }
        }
        #expect(windowDuplicates == 0, "\(windowDuplicates) (window, word) pairs seen twice")
        #expect(windows == input.windows, "\(windows.count) windows of \(input.windows.count)")
    }

    /// Every record of a topic as a read_committed consumer reads it (key, value), in partition order.
    func committedRecords(topic: String, bootstrap: String) throws -> [(String, String)] {
        let output = try kcat(["-C", "-b", bootstrap, "-t", topic, "-X", "isolation.level=read_committed", "-e", "-q", "-f", "%k\t%s\n"])
        return output.split(separator: "\n").map { line in
            let parts = line.split(separator: "\t", maxSplits: 1)
            return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }
    }
}
