import Foundation
import SampleData
import StreamEngine
@testable import Streaming
import Testing

/// Distributed mode end to end: sluice instances in their own processes on one consumer group, on the mock broker
/// in its own process, with kill -9s, a late joiner and a SIGTERM leave.
@Suite(.serialized, .timeLimit(.minutes(6)))
struct DistributedModeTests {
    static let shards = 8

    /// 3 instances over 6 input partitions; one is killed (SIGKILL) at seeded random moments and restarted, a fourth
    /// joins late, one leaves with SIGTERM. At the end the last total per word and every window count are exact,
    /// totals never go down in output order, no shard had two owners at once, and the changelog alone rebuilds the
    /// state.
    @Test func exactThroughKillsJoinsAndLeaves() throws {
        let group = uniqueGroup()
        let broker = try BrokerProcess(topics: Self.topics(group: group, inputPartitions: 6))
        let directory = TemporaryDirectory()
        let input = Input(chunks: 8, lines: 1_500, partitions: 6, seed: 14)
        var runs = Runs(environment: Self.environment(broker: broker.bootstrap, group: group, directory: directory), directory: directory.path)
        var random = SplitMix64(seed: 14)
        for name in ["a", "b", "c"] { try runs.start(name) }
        for (index, chunk) in input.chunks.enumerated() {
            try pythonProduce(chunk, topic: "lines", bootstrap: broker.bootstrap)
            Thread.sleep(forTimeInterval: 1 + Double(random.next() % 3000) / 1000)
            switch index {
            case 1, 3, 5: try runs.kill("b", restart: true)
            case 2: try runs.start("d")
            case 4: runs.terminate("c")
            default: break
            }
        }
        try Self.finish(input, runs: &runs, group: group, broker: broker)
    }

    /// One instance killed at each crash point of distributed mode in turn (each run restores what the one before
    /// left), then a run to the end: exact totals and windows, monotone totals, the changelog rebuilds the state, and
    /// the batch planned before the first kill was cut again.
    @Test func exactAfterAKillAtEachCrashPoint() throws {
        let group = uniqueGroup()
        let broker = try BrokerProcess(topics: Self.topics(group: group, inputPartitions: 4))
        let directory = TemporaryDirectory()
        let points = [
            "after-plan-commit:1", "mid-partials:1", "after-partials:1", "mid-changelog:1", "after-shard-commit:3",
            "during-restore:1", "in-revoke:1",
        ]
        let input = Input(chunks: points.count + 2, lines: 400, partitions: 4, seed: 15)
        var environment = Self.environment(broker: broker.bootstrap, group: group, directory: directory)
        environment["SLUICE_SESSION_TIMEOUT_MS"] = "3000"
        // The crash runs restart the first instance's pod: its data directory, with the checkpoints of its release.
        environment["SLUICE_CHECKPOINT_DIR"] = directory.path + "/data-first"
        var runs = Runs(environment: environment, directory: directory.path)
        try runs.start("first")
        try pythonProduce(input.chunks[0], topic: "lines", bootstrap: broker.bootstrap)
        Thread.sleep(forTimeInterval: 5)
        runs.terminate("first")
        for (index, point) in points.enumerated() {
            let result = try runs.crash(at: point, whileProducing: input.chunks[index + 1], bootstrap: broker.bootstrap)
            #expect(result.wasKilled, "\(point) was never reached: \(result.standardError.suffix(1500))")
        }
        try runs.start("last")
        try pythonProduce(input.chunks[points.count + 1], topic: "lines", bootstrap: broker.bootstrap)
        try Self.finish(input, runs: &runs, group: group, broker: broker)
        #expect(runs.logs.contains("cutting a planned batch again"), "no run cut a planned batch again")
        // The crash runs share one data directory, as restarts of one pod: restores start from its checkpoints.
        #expect(runs.logs.contains("shard.checkpoint=cycle"), "no restore started from a local checkpoint")
    }

    /// The internal topics are created through the admin API where the broker has it (Tansu), start-up is refused
    /// naming the topic where it does not (the mock), and a shard count other than the topics' is refused naming
    /// `SLUICE_SHARDS`: both with exit code 2.
    @Test func internalTopicsAreCreatedOrTheRefusalNamesThem() throws {
        let directory = TemporaryDirectory()
        let outputs = ["lines": 2, "word-counts": 2, "word-counts-windowed": 2]
        let tansu = try TansuProcess(topics: outputs)
        let group = uniqueGroup()
        var environment = Self.environment(broker: tansu.bootstrap, group: group, directory: directory)
        environment["SLUICE_SHARDS"] = "4"
        let first = try SluiceProcess(environment: environment, librdkafka: .bundled, logDirectory: directory.path)
        #expect(first.waitForLog("shards acquired", timeout: .seconds(60)))
        first.signal(SIGTERM)
        let created = first.wait(timeout: .seconds(30))
        #expect(created.exitCode == 0, "\(created.standardError.suffix(1500))")
        for topic in ["\(group)-partials", "\(group)-changelog"] {
            #expect(created.standardError.contains("kafka.topic=\(topic) [Streaming] internal topic created"), "\(topic) not created")
        }
        environment["SLUICE_SHARDS"] = "8"
        environment["SLUICE_CHECKPOINT_DIR"] = directory.path + "/other"
        let other = try SluiceProcess.run(environment, librdkafka: .bundled, logDirectory: directory.path)
        #expect(other.exitCode == 2)
        #expect(other.standardError.contains("SLUICE_SHARDS is 8 but \(group)-partials has 4 partitions"), "\(other.standardError.suffix(1500))")

        let mock = try BrokerProcess(topics: outputs)
        environment = Self.environment(broker: mock.bootstrap, group: group, directory: directory)
        environment["SLUICE_CHECKPOINT_DIR"] = directory.path + "/mock"
        let missing = try SluiceProcess.run(environment, logDirectory: directory.path)
        #expect(missing.exitCode == 2)
        #expect(missing.standardError.contains("internal topic \(group)-partials is missing and could not be created"), "\(missing.standardError.suffix(1500))")
    }

    /// The settings the group's state depends on are pinned in `<group>-config` by the first instance: another
    /// instance (its own, empty data directory) started with another window exits 2 naming the setting and both
    /// values, before it applies anything; the same settings start.
    @Test func settingsTheStateDependsOnArePinnedForTheGroup() throws {
        let group = uniqueGroup()
        let broker = try BrokerProcess(topics: Self.topics(group: group, inputPartitions: 2))
        let directory = TemporaryDirectory()
        var environment = Self.environment(broker: broker.bootstrap, group: group, directory: directory)
        environment["SLUICE_SESSION_TIMEOUT_MS"] = "3000"
        let first = try SluiceProcess(environment: environment, logDirectory: directory.path)
        #expect(first.waitForLog("shards acquired", timeout: .seconds(60)))
        first.signal(SIGTERM)
        #expect(first.wait(timeout: .seconds(30)).exitCode == 0)
        for (name, value) in [("SLUICE_WINDOW_MS", "5000"), ("SLUICE_SHARDS", "4"), ("SLUICE_INPUT_TOPICS", "other")] {
            var changed = environment
            changed[name] = value
            if name == "SLUICE_WINDOW_MS" { changed["SLUICE_SLIDE_MS"] = value }
            changed["SLUICE_CHECKPOINT_DIR"] = directory.path + "/other-\(name)"
            let refused = try SluiceProcess.run(changed, logDirectory: directory.path)
            #expect(refused.exitCode == 2, "\(name): \(refused.standardError.suffix(1500))")
            let pinned = name == "SLUICE_WINDOW_MS" ? "1000" : name == "SLUICE_SHARDS" ? String(Self.shards) : "lines"
            #expect(refused.standardError.contains("\(name) is \(value)"), "\(name): \(refused.standardError.suffix(1500))")
            #expect(refused.standardError.contains("was built with \(pinned)") || name == "SLUICE_SHARDS", "\(refused.standardError.suffix(1500))")
        }
        environment["SLUICE_CHECKPOINT_DIR"] = directory.path + "/same"
        let same = try SluiceProcess(environment: environment, logDirectory: directory.path)
        #expect(same.waitForLog("shards acquired", timeout: .seconds(60)))
        same.signal(SIGTERM)
        #expect(same.wait(timeout: .seconds(30)).exitCode == 0)
    }

    /// A setting only standalone mode reads (the rate limit, the backlog bound, the engine threads, the WAL, stop at
    /// end) is refused in distributed mode with exit 2 naming it, rather than ignored; its default is accepted.
    @Test func settingsDistributedModeDoesNotHonourAreRefused() throws {
        let directory = TemporaryDirectory()
        let environment = Self.environment(broker: "127.0.0.1:1", group: uniqueGroup(), directory: directory)
        for (name, value) in [
            ("SLUICE_MAX_RATE_PER_PARTITION", "10"), ("SLUICE_MAX_BACKLOG_MB", "8"), ("SLUICE_ENGINE_THREADS", "2"),
            ("SLUICE_WAL", "false"), ("SLUICE_STOP_AT_END", "true"), ("SLUICE_BLOCK_INTERVAL_MS", "100"),
        ] {
            let result = try SluiceProcess.run(environment.merging([name: value]) { $1 }, logDirectory: directory.path)
            #expect(result.exitCode == 2, "\(name): \(result.standardError.suffix(800))")
            #expect(result.standardError.contains("invalid \(name)=\"\(value)\""), "\(name): \(result.standardError.suffix(800))")
            #expect(result.standardError.contains("distributed mode, which does not honour it"), "\(result.standardError.suffix(800))")
        }
        let defaults = environment.merging(["SLUICE_STOP_AT_END": "false", "SLUICE_MAX_RATE_PER_PARTITION": "0", "SLUICE_WAL": "true", "SLUICE_HTTP_PORT": "0"]) { $1 }
        let accepted = try SluiceProcess(environment: defaults, logDirectory: directory.path)
        Thread.sleep(forTimeInterval: 2)
        accepted.signal(SIGKILL)
        #expect(!accepted.wait(timeout: .seconds(10)).standardError.contains("does not honour"))
    }

    /// State queries in distributed mode answer for any word on any instance, never a made-up zero: the instance
    /// that owns the word's shard answers, the others redirect (307) to it, as announced in `<group>-members`
    /// (three instances, 100 random words each, following the redirect as `curl -L` does); a redirected query is
    /// not redirected again. The largest totals come only from an instance that owns every shard (503 before);
    /// once one instance is left, it answers them exactly. The status shows each instance's input partitions with
    /// their lag, and what it took and published.
    @Test func stateQueriesAnswerAnyWordOnAnyInstance() throws {
        let group = uniqueGroup()
        let broker = try BrokerProcess(topics: Self.topics(group: group, inputPartitions: 3))
        let directory = TemporaryDirectory()
        let input = Input(chunks: 1, lines: 3_000, partitions: 3, seed: 31)
        var environment = Self.environment(broker: broker.bootstrap, group: group, directory: directory)
        environment["SLUICE_SESSION_TIMEOUT_MS"] = "3000"
        var instances: [(port: Int, process: SluiceProcess)] = []
        for name in ["a", "b", "c"] {
            let port = try freePort()
            instances.append((port, try SluiceProcess(
                environment: environment.merging([
                    "SLUICE_INSTANCE_ID": name, "SLUICE_HTTP_PORT": String(port), "SLUICE_CHECKPOINT_DIR": "\(directory.path)/data-\(name)",
                    "SLUICE_ADVERTISED_URL": "http://127.0.0.1:\(port)",
                ]) { $1 }, logDirectory: directory.path)))
        }
        try pythonProduce(input.chunks[0], topic: "lines", bootstrap: broker.bootstrap)
        BrokerMatrixTests.check(try BrokerMatrixTests.awaitTotals(input.words, broker: broker, librdkafka: .system), input.words)
        func owned(_ port: Int) throws -> [Int] { try json(port, "/api/status")["ownedShards"] as? [Int] ?? [] }
        // Every shard owned and announced (an announcement follows an ownership change within a second).
        let deadline = ContinuousClock.now + .seconds(30)
        while try instances.reduce(0, { $0 + (try owned($1.port)).count }) < Self.shards, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.5)
        }
        Thread.sleep(forTimeInterval: 2)
        var random = SplitMix64(seed: 31)
        let words = input.words.keys.sorted()
        let sample = (0..<100).map { _ in words[Int(random.next() % UInt64(words.count))] } + ["never-seen-word"]
        for (port, _) in instances {
            let answers = try curlFollowing(port: port, paths: sample.map { "/api/counts/\($0)" })
            for (word, answer) in zip(sample, answers) {
                #expect(answer.status == 200 && answer.body.contains("\"count\":\(input.words[word] ?? 0),"), "\(word) on \(port): \(answer)")
            }
        }
        let map = ShardMap(count: Int32(Self.shards))
        let foreign = try #require(sample.first { !(try owned(instances[0].port)).contains(Int(map.shard(of: $0.utf8))) })
        let (status, body) = try httpGet(port: instances[0].port, path: "/api/counts/\(foreign)?redirected=1")
        #expect(status == 503, "a redirected query for a shard not owned here: \(status) \(body)")
        // The status tells each instance's input partitions with their lag, and what it took and published.
        var records = 0
        var published = 0
        var inputPartitions = 0
        for (port, _) in instances {
            let status = try json(port, "/api/status")
            let totals = status["totals"] as? [String: Any] ?? [:]
            records += totals["records"] as? Int ?? 0
            published += totals["outputRecords"] as? Int ?? 0
            let inputs = (status["partitions"] as? [[String: Any]] ?? []).filter { $0["topic"] as? String == "lines" }
            #expect(inputs.allSatisfy { $0["lag"] as? Int == 0 }, "\(inputs)")
            inputPartitions += inputs.count
        }
        #expect(inputPartitions == 3)
        #expect(records >= 3_000, "records taken: \(records)")
        #expect(published >= input.words.count, "records published: \(published)")
        for (port, _) in instances {
            let (status, body) = try httpGet(port: port, path: "/api/top?n=20")
            #expect(status == 503 && body.contains("need all \(Self.shards) shards"), "\(status) \(body)")
        }
        for instance in instances.dropFirst() {
            instance.process.signal(SIGTERM)
            #expect(instance.process.wait(timeout: .seconds(30)).exitCode == 0)
        }
        let port = instances[0].port
        let alone = ContinuousClock.now + .seconds(30)
        while try owned(port).count < Self.shards, ContinuousClock.now < alone { Thread.sleep(forTimeInterval: 0.5) }
        for word in sample.prefix(20) {
            #expect(try json(port, "/api/counts/\(word)")["count"] as? Int == Int(input.words[word] ?? 0), "\(word)")
        }
        let top = try json(port, "/api/top?n=20")["top"] as? [[String: Any]] ?? []
        let truth = input.words.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(20)
        #expect(top.map { "\($0["word"] ?? "")=\($0["count"] ?? "")" } == truth.map { "\($0.key)=\($0.value)" })
        instances[0].process.signal(SIGTERM)
        #expect(instances[0].process.wait(timeout: .seconds(30)).exitCode == 0)
    }

    /// GETs each path with curl, following redirects; each final status and body.
    func curlFollowing(port: Int, paths: [String]) throws -> [(status: Int, body: String)] {
        try paths.map { path in
            let output = try runTool("/usr/bin/curl", ["-sL", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"]).output
            let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }
    }

    static func topics(group: String, inputPartitions: Int) -> [String: Int] {
        ["lines": inputPartitions, "word-counts": 4, "word-counts-windowed": 4, "\(group)-partials": shards, "\(group)-changelog": shards,
         "\(group)-config": 1, "\(group)-members": 1]
    }

    static func environment(broker: String, group: String, directory: TemporaryDirectory) -> [String: String] {
        [
            "KAFKA_BOOTSTRAP_SERVERS": broker, "SLUICE_MODE": "distributed", "SLUICE_SHARDS": String(shards),
            "SLUICE_GROUP_ID": group, "SLUICE_WINDOW_MS": "1000", "SLUICE_ALLOWED_LATENESS_MS": "3600000",
            "SLUICE_BATCH_INTERVAL_MS": "400", "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
        ]
    }

    /// Waits for the exact totals, closes every window with sentinels, checks them, stops every instance (exit 0),
    /// then checks shard ownership, monotone totals and the changelog rebuild.
    static func finish(_ input: Input, runs: inout Runs, group: String, broker: any TestBroker) throws {
        let librdkafka = runs.librdkafka
        let totals = try BrokerMatrixTests.awaitTotals(input.words, broker: broker, librdkafka: librdkafka, timeout: .seconds(150))
        BrokerMatrixTests.check(totals, input.words)
        // Sentinels two hours on close every window (an hour of lateness keeps records of sources that paused in
        // their windows); they come only now, so no source can be idle past them while its records wait.
        try pythonProduce(
            (0..<input.partitions).map { (Int32($0), input.start + 2 * 3_600_000, "sentinel") }, topic: "lines", bootstrap: broker.bootstrap)
        var received: [String: Int64] = [:]
        let deadline = ContinuousClock.now + .seconds(60)
        while received != input.windows, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 1)
            received = [:]
            for (key, count) in try windowRecords(bootstrap: broker.bootstrap, librdkafka: librdkafka) where !key.hasSuffix("|sentinel") {
                received[key] = count
            }
        }
        #expect(received == input.windows, "\(received.count) windows of \(input.windows.count)")
        let ownership = runs.stopAll()
        #expect(ownership.overlaps.isEmpty, "shards with two owners at once: \(ownership.overlaps)")
        try checkMonotoneTotals(bootstrap: broker.bootstrap, librdkafka: librdkafka)
        try checkChangelogRebuild(
            group: group, bootstrap: broker.bootstrap, librdkafka: librdkafka,
            expected: input.words.merging(["sentinel": Int64(input.partitions)]) { $1 })
    }

    /// Every word's totals, read in topic order, never go down.
    static func checkMonotoneTotals(bootstrap: String, librdkafka: Librdkafka = .system) throws {
        var last: [String: Int64] = [:]
        var decreases: [String] = []
        for (word, value) in try keyedRecords(topic: "word-counts", bootstrap: bootstrap, librdkafka: librdkafka) {
            guard let count = countField(value) else { continue }
            if let previous = last[word], count < previous { decreases.append("\(word): \(previous) -> \(count)") }
            last[word] = count
        }
        #expect(decreases.isEmpty, "totals went down: \(decreases.prefix(10))")
    }

    /// Rebuilds every shard from its changelog partition alone: the totals equal the truth, each word in its own
    /// shard, and no window is left open but the sentinels'.
    static func checkChangelogRebuild(group: String, bootstrap: String, librdkafka: Librdkafka = .system, expected: [String: Int64]) throws {
        let text = try kcat(["-C", "-b", bootstrap, "-t", "\(group)-changelog", "-e", "-q", "-f", "%p\t%k\t%s\n"], librdkafka: librdkafka)
        var restorers = [Changelog.Restorer](repeating: Changelog.Restorer(), count: shards)
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, let partition = Int(parts[0]) else { continue }
            try restorers[partition].add(key: Array(parts[1].utf8), value: Array(parts[2].utf8))
        }
        let window = try WindowSpec(length: 1000, allowedLateness: 3_600_000)
        let map = ShardMap(count: Int32(shards))
        var rebuilt: [String: Int64] = [:]
        var openWindows: [String] = []
        for shard in 0..<shards {
            var state = ShardState(shard: Int32(shard), window: window, expectedSources: [])
            _ = restorers[shard].build(into: &state)
            for (word, total) in state.totals {
                #expect(map.shard(of: Array(word.utf8)) == Int32(shard), "\(word) in shard \(shard)")
                rebuilt[word] = total
            }
            openWindows += state.windows.values.flatMap(\.keys).filter { $0 != "sentinel" }
        }
        #expect(rebuilt == expected, "rebuilt \(rebuilt.count) words of \(expected.count)")
        #expect(openWindows.isEmpty, "windows left open: \(openWindows.prefix(10))")
    }

    /// Every record of a topic as (key, value), in each partition's order.
    static func keyedRecords(topic: String, bootstrap: String, librdkafka: Librdkafka = .system) throws -> [(String, String)] {
        try kcat(["-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-f", "%k\t%s\n"], librdkafka: librdkafka).split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }
    }
}

/// Test lines in chunks, round-robin over the input partitions, two milliseconds of event time apart from three
/// hours ago, with the expected totals and one-second window counts.
struct Input {
    let start = StreamingClock.now / 1000 * 1000 - 3 * 3_600_000
    let partitions: Int
    private(set) var chunks: [[(partition: Int32, timestamp: Int64, value: String)]] = []
    private(set) var words: [String: Int64] = [:]
    private(set) var windows: [String: Int64] = [:]

    init(chunks count: Int, lines: Int, partitions: Int, seed: UInt64) {
        self.partitions = partitions
        for chunk in 0..<count {
            var records: [(partition: Int32, timestamp: Int64, value: String)] = []
            for index in 0..<lines {
                let line = chunk * lines + index
                let timestamp = start + Int64(line) * 2
                let text = testLine(line, seed: seed)
                for word in referenceWords(text) {
                    words[word, default: 0] += 1
                    windows["\(timestamp / 1000 * 1000)|\(word)", default: 0] += 1
                }
                records.append((Int32(line % partitions), timestamp, text))
            }
            chunks.append(records)
        }
    }
}

/// The sluice processes of one test, by instance name, and what their logs say about shard ownership.
struct Runs {
    /// One shard owned by one process from `start` to `end` (ms since the epoch).
    struct Ownership {
        var shard: Int
        var process: String
        var start: Int64
        var end: Int64
    }

    let environment: [String: String]
    let directory: String
    /// The librdkafka of the instances and of the checks' clients (the bundled one for Tansu).
    let librdkafka: Librdkafka
    private var running: [String: SluiceProcess] = [:]
    private var finished: [(name: String, result: ProcessResult, killedAt: Int64?)] = []
    /// Stops (SIGSTOP to SIGCONT) past the session timeout, by instance name: the group gave the shards away
    /// at the stop, and the stopped instance wrote nothing more for them (its checks fence it).
    private var pauses: [String: [(from: Int64, to: Int64)]] = [:]

    init(environment: [String: String], directory: String, librdkafka: Librdkafka = .system) {
        self.environment = environment
        self.directory = directory
        self.librdkafka = librdkafka
    }

    /// Starts an instance, armed to kill itself at a crash point (`POINT:COUNT`) if one is given.
    mutating func start(_ name: String, crashingAt point: String? = nil) throws {
        // Each instance its own data directory, kept over its restarts, as a pod's volume.
        var environment = environment.merging(["SLUICE_INSTANCE_ID": name, "SLUICE_CHECKPOINT_DIR": "\(directory)/data-\(name)"]) { $1 }
        if let point { environment["SLUICE_TEST_CRASH_AT"] = point }
        running[name] = try SluiceProcess(environment: environment, librdkafka: librdkafka, logDirectory: directory)
    }

    /// Stops the running instance of that name (SIGSTOP) for `duration`, then lets it go on (SIGCONT).
    mutating func pause(_ name: String, for duration: Duration) {
        guard let process = running[name] else { return }
        let from = StreamingClock.now
        process.signal(SIGSTOP)
        Thread.sleep(forTimeInterval: Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
        process.signal(SIGCONT)
        pauses[name, default: []].append((from, StreamingClock.now))
    }

    /// Waits for an instance armed with a crash point to kill itself; whether it did.
    mutating func awaitCrash(_ name: String, timeout: Duration) -> ProcessResult? {
        guard let process = running.removeValue(forKey: name) else { return nil }
        let result = process.wait(timeout: timeout)
        finished.append((name, result, StreamingClock.now))
        return result
    }

    mutating func kill(_ name: String, restart: Bool) throws {
        guard let process = running.removeValue(forKey: name) else { return }
        let killedAt = StreamingClock.now
        process.signal(SIGKILL)
        finished.append((name, process.wait(timeout: .seconds(10)), killedAt))
        if restart { try start(name) }
    }

    /// Runs an instance armed to kill itself at `point` while `records` are produced; a SIGTERM after 15 s reaches
    /// points that only a stop passes (the revoke handler).
    mutating func crash(
        at point: String, whileProducing records: [(partition: Int32, timestamp: Int64, value: String)], bootstrap: String
    ) throws -> ProcessResult {
        let process = try SluiceProcess(
            environment: environment.merging(["SLUICE_INSTANCE_ID": point, "SLUICE_TEST_CRASH_AT": point]) { $1 }, logDirectory: directory)
        try pythonProduce(records, topic: "lines", bootstrap: bootstrap)
        let deadline = ContinuousClock.now + .seconds(15)
        while process.process.isRunning, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.1) }
        process.signal(SIGTERM)
        let result = process.wait(timeout: .seconds(30))
        finished.append((point, result, result.wasKilled ? StreamingClock.now : nil))
        return result
    }

    /// The standard error of every finished run.
    var logs: String { finished.map(\.result.standardError).joined(separator: "\n") }

    mutating func terminate(_ name: String) {
        guard let process = running.removeValue(forKey: name) else { return }
        process.signal(SIGTERM)
        let result = process.wait(timeout: .seconds(60))
        #expect(result.exitCode == 0 && !result.wasKilled, "\(name) after SIGTERM: \(Self.crashReport(in: result.standardError))")
        finished.append((name, result, nil))
    }

    /// The start of a crash report in `log` (the crashed thread's frames), or else its end.
    static func crashReport(in log: String) -> String {
        guard let start = log.range(of: "Program crashed") ?? log.range(of: "Fatal error") else { return String(log.suffix(1500)) }
        return String(log[start.lowerBound...].prefix(4000))
    }

    /// Stops every process with SIGTERM, and reads their ownership records: shards held by two at once, and how
    /// many acquisitions there were.
    mutating func stopAll() -> (overlaps: [String], acquisitions: Int) {
        for name in running.keys.sorted() { terminate(name) }
        var spans: [Ownership] = []
        var acquisitions = 0
        var restoredRecords = 0
        for (index, run) in finished.enumerated() {
            var open: [Int: Int64] = [:]
            for line in run.result.standardError.split(separator: "\n") {
                if line.contains("shard restored") { restoredRecords += Self.field("changelog.records", in: line).flatMap { Int($0) } ?? 0 }
                let acquired = line.contains("shards acquired")
                guard acquired || line.contains("shards released"),
                    let at = Self.field("at_ms", in: line).flatMap({ Int64($0) }), let ids = Self.field("shard.ids", in: line)
                else { continue }
                for shard in ids.split(separator: ",").compactMap({ Int($0) }) {
                    if acquired {
                        open[shard] = at
                        acquisitions += 1
                    } else if let start = open.removeValue(forKey: shard) {
                        spans.append(Ownership(shard: shard, process: "\(run.name)#\(index)", start: start, end: at))
                    }
                }
            }
            for (shard, start) in open {
                spans.append(Ownership(shard: shard, process: "\(run.name)#\(index)", start: start, end: run.killedAt ?? .max))
            }
        }
        // A span across a stop ends at the stop (the instance learns it only later, and writes nothing meanwhile).
        for (position, span) in spans.enumerated() {
            let name = String(span.process.prefix { $0 != "#" })
            if let pause = pauses[name]?.first(where: { span.start < $0.from && $0.from < span.end }) { spans[position].end = pause.from }
        }
        print("DistributedModeTests: \(finished.count) runs (\(finished.filter { $0.killedAt != nil }.count) killed), \(acquisitions) shard acquisitions, \(restoredRecords) changelog records restored")
        var overlaps: [String] = []
        for shard in Set(spans.map(\.shard)) {
            let owners = spans.filter { $0.shard == shard }.sorted { $0.start < $1.start }
            for (earlier, later) in zip(owners, owners.dropFirst()) where later.start < earlier.end {
                overlaps.append("shard \(shard): \(earlier.process) until \(earlier.end), \(later.process) from \(later.start)")
            }
        }
        return (overlaps, acquisitions)
    }

    private static func field(_ name: String, in line: Substring) -> String? {
        guard let range = line.range(of: "\(name)=") else { return nil }
        return String(line[range.upperBound...].prefix { !$0.isWhitespace })
    }
}
