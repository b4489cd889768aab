import Foundation
import Testing

/// The service end to end on more than librdkafka's own mock: Tansu, an independently written broker that
/// answers one partition per fetch (so partitions start at different times), and librdkafka 2.16 at run time, as
/// newer distributions ship it (sluice stays built against 2.0.2). librdkafka 2.0.2 cannot talk to Tansu (it
/// misreads Tansu's ApiVersions response, librdkafka #4253), so Tansu runs with 2.16 only.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct BrokerMatrixTests {
    static let topics = ["lines": 4, "word-counts": 4, "word-counts-windowed": 4]

    /// 8,000 lines over 16 s of event time on 4 partitions, then one `sentinel` per partition `sentinelAfter` ms
    /// later, which closes every earlier one-second window (with up to that much allowed lateness).
    typealias Input = (records: [(partition: Int32, timestamp: Int64, value: String)], words: [String: Int64], windows: [String: Int64])

    static func input(start: Int64, sentinelAfter: Int64 = 600_000) -> Input {
        var records: [(partition: Int32, timestamp: Int64, value: String)] = []
        var words: [String: Int64] = ["sentinel": 4]
        var windows: [String: Int64] = [:]
        for index in 0..<8_000 {
            let timestamp = start + Int64(index) * 2
            let text = testLine(index, seed: 3)
            records.append((Int32(index % 4), timestamp, text))
            for word in referenceWords(text) {
                words[word, default: 0] += 1
                windows["\(timestamp / 1000 * 1000)|\(word)", default: 0] += 1
            }
        }
        records += (0..<4).map { (Int32($0), start + sentinelAfter, "sentinel") }
        return (records, words, windows)
    }

    @Test(arguments: [(BrokerKind.mock, Librdkafka.bundled), (.tansu, .bundled)])
    func exactCountsAndWindows(broker kind: BrokerKind, librdkafka: Librdkafka) throws {
        print("BrokerMatrixTests: \(kind) with \(librdkafka)")
        let broker = try kind.start(topics: Self.topics)
        let input = Self.input(start: StreamingClock.now / 1000 * 1000 - 120_000)
        let directory = TemporaryDirectory()
        let child = try SluiceProcess(environment: [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_GROUP_ID": uniqueGroup(), "SLUICE_WINDOW_MS": "1000", "SLUICE_BATCH_INTERVAL_MS": "400",
            "SLUICE_BLOCK_INTERVAL_MS": "100",
        ], librdkafka: librdkafka, logDirectory: directory.path)
        #expect(child.waitForLog("partitions assigned", timeout: .seconds(30)))
        // Partition 0 delivers all of its records, its sentinel included, before the others deliver anything (as a
        // broker answering one partition per fetch can make happen): the silent partitions must hold the watermark.
        try pythonProduce(input.records.filter { $0.partition == 0 }, topic: "lines", bootstrap: broker.bootstrap)
        Thread.sleep(forTimeInterval: 2)
        try pythonProduce(input.records.filter { $0.partition != 0 }, topic: "lines", bootstrap: broker.bootstrap)
        try Self.finish(child, expecting: input, broker: broker, librdkafka: librdkafka)
    }

    /// Kill -9s at three points (a block synced, a checkpoint written, output flushed), each in a run of its own,
    /// a SIGTERM drain while records are coming, then a run to the end: totals and windows exact. The end is known
    /// from the input (Tansu's ListOffsets is not trustworthy, so `SLUICE_STOP_AT_END` is not used).
    @Test(arguments: [(BrokerKind.mock, Librdkafka.bundled), (.tansu, .bundled)])
    func exactAfterKillsAndADrain(broker kind: BrokerKind, librdkafka: Librdkafka) throws {
        print("BrokerMatrixTests: kill -9 recovery on \(kind) with \(librdkafka)")
        let broker = try kind.start(topics: Self.topics)
        // Restarts leave partitions idle for a while, so one may run ahead in event time: an hour of allowed
        // lateness keeps every record in its window, and the sentinels two hours on close them all.
        let input = Self.input(start: StreamingClock.now / 1000 * 1000 - 3 * 3_600_000, sentinelAfter: 2 * 3_600_000)
        try pythonProduce(input.records, topic: "lines", bootstrap: broker.bootstrap)
        let directory = TemporaryDirectory()
        let environment = [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_GROUP_ID": uniqueGroup(), "SLUICE_WINDOW_MS": "1000", "SLUICE_ALLOWED_LATENESS_MS": "3600000",
            "SLUICE_BATCH_INTERVAL_MS": "400", "SLUICE_BLOCK_INTERVAL_MS": "100",
        ]
        for point in ["after-block-sync:3", "after-checkpoint:2", "after-output-flush:3"] {
            // Slow enough that every kill lands while records are still coming.
            let crashing = environment.merging(["SLUICE_TEST_CRASH_AT": point, "SLUICE_MAX_RATE_PER_PARTITION": "300"]) { $1 }
            let result = try SluiceProcess.run(crashing, librdkafka: librdkafka, logDirectory: directory.path, timeout: .seconds(60))
            #expect(result.wasKilled && !result.timedOut, "\(point) was never reached: \(result.standardError.suffix(1500))")
        }
        // A SIGTERM while records are still coming: the service drains (last block stored, final batch, checkpoint,
        // commit) and exits 0.
        let draining = try SluiceProcess(
            environment: environment.merging(["SLUICE_MAX_RATE_PER_PARTITION": "300"]) { $1 }, librdkafka: librdkafka,
            logDirectory: directory.path)
        #expect(draining.waitForLog("partitions assigned", timeout: .seconds(30)))
        Thread.sleep(forTimeInterval: 1)
        draining.signal(SIGTERM)
        let drained = draining.wait(timeout: .seconds(30))
        #expect(drained.exitCode == 0 && !drained.wasKilled, "SIGTERM drain: \(drained.standardError.suffix(1500))")

        let child = try SluiceProcess(environment: environment, librdkafka: librdkafka, logDirectory: directory.path)
        try Self.finish(child, expecting: input, broker: broker, librdkafka: librdkafka)
    }

    /// Two members of one consumer group (kcat's balanced consumer, on the librdkafka under test) split the
    /// partitions: once both have joined, each partition's records reach exactly one of them, and together they get
    /// every record once. librdkafka 2.0.2 cannot talk to Tansu (see the suite's comment).
    @Test(arguments: [(BrokerKind.mock, Librdkafka.system), (.mock, .bundled), (.tansu, .bundled)])
    func twoMembersOfAGroupSplitThePartitions(broker kind: BrokerKind, librdkafka: Librdkafka) throws {
        print("BrokerMatrixTests: two group members on \(kind) with \(librdkafka)")
        let broker = try kind.start(topics: ["lines": 4])
        let directory = TemporaryDirectory()
        let group = uniqueGroup()
        let members = try (0..<2).map {
            try GroupMember(bootstrap: broker.bootstrap, group: group, topic: "lines", librdkafka: librdkafka, directory: directory, name: "member\($0)")
        }
        let split = { () -> Bool in
            guard let first = members[0].assigned, let second = members[1].assigned else { return false }
            return !first.isEmpty && !second.isEmpty && first.isDisjoint(with: second) && first.union(second) == [0, 1, 2, 3]
        }
        var deadline = ContinuousClock.now + .seconds(40)
        while !split(), ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.2) }
        #expect(split(), "assignments: \(String(describing: members[0].assigned)) and \(String(describing: members[1].assigned))")

        try pythonProduce((0..<400).map { (Int32($0 % 4), StreamingClock.now, "record \($0)") }, topic: "lines", bootstrap: broker.bootstrap)
        deadline = ContinuousClock.now + .seconds(30)
        while members.map(\.received.count).reduce(0, +) < 400, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.2) }
        Thread.sleep(forTimeInterval: 0.5)
        let received = members.map(\.received)
        for partition in Int32(0)..<4 {
            let readers = received.indices.filter { index in received[index].contains { $0.partition == partition } }
            #expect(readers.count == 1, "partition \(partition) was read by members \(readers)")
            let offsets = received.flatMap { $0.filter { $0.partition == partition }.map(\.offset) }
            #expect(offsets.sorted() == Array(0..<100), "partition \(partition): \(offsets.count) records")
        }
    }

    /// A backlog is read at the broker's pace, not one prefetch queue per second. librdkafka parks a partition whose
    /// records fill the prefetch queue: 2.0.2 until its broker thread next wakes (up to a second; `KafkaConsumer`
    /// wakes it), 2.2 and later for `fetch.queue.backoff.ms` (1 s by default; `KafkaConsumerConfig` sets 1 ms). Each
    /// fetch of the mock answers one producer batch of 10,000 records per partition, a full queue, so 300,000 records
    /// parked each time would take at least 15 s after the assignment; read at the broker's pace they take about a
    /// second (a debug build). The bound of 7.5 s leaves a slow machine room; the totals must be exact.
    @Test(arguments: [Librdkafka.system, .bundled])
    func aBacklogIsReadAtTheBrokersPace(librdkafka: Librdkafka) throws {
        print("BrokerMatrixTests: a 300,000-record backlog with \(librdkafka)")
        let broker = try BrokerKind.mock.start(topics: Self.topics)
        try pythonProduce((0..<300_000).map { (Int32($0 % 4), StreamingClock.now, "w\($0 % 100)") }, topic: "lines", bootstrap: broker.bootstrap)
        let directory = TemporaryDirectory()
        let child = try SluiceProcess(environment: [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_GROUP_ID": uniqueGroup(), "SLUICE_STOP_AT_END": "true",
        ], librdkafka: librdkafka, logDirectory: directory.path)
        #expect(child.waitForLog("partitions assigned", timeout: .seconds(30)))
        let assigned = ContinuousClock.now
        let result = child.wait(timeout: .seconds(60))
        let reading = ContinuousClock.now - assigned
        print("BrokerMatrixTests: \(librdkafka) read the backlog and stopped \(reading) after the assignment")
        #expect(result.exitCode == 0, "stderr: \(result.standardError.suffix(2000))")
        #expect(reading < .milliseconds(7_500), "\(reading) from the assignment to the end of 300,000 records")
        let totals = try lastValuePerKey(topic: "word-counts", bootstrap: broker.bootstrap, librdkafka: librdkafka).mapValues(countField)
        Self.check(totals, Dictionary(uniqueKeysWithValues: (0..<100).map { ("w\($0)", Int64(3_000)) }))
    }

    /// Waits for every expected total, stops the service with SIGTERM (exit 0), then checks totals and windows.
    static func finish(
        _ child: SluiceProcess, expecting input: Input, broker: any TestBroker, librdkafka: Librdkafka
    ) throws {
        let totals = try awaitTotals(input.words, broker: broker, librdkafka: librdkafka)
        child.signal(SIGTERM)
        let result = child.wait(timeout: .seconds(30))
        #expect(result.exitCode == 0, "stderr: \(result.standardError.suffix(2000))")
        check(totals, input.words)
        try checkWindows(input.windows, broker: broker, librdkafka: librdkafka)
    }

    /// Reads the counts topic until every word has its expected total (`timeout` at most); the last totals read.
    static func awaitTotals(
        _ words: [String: Int64], broker: any TestBroker, librdkafka: Librdkafka, timeout: Duration = .seconds(90)
    ) throws -> [String: Int64?] {
        var totals: [String: Int64?] = [:]
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            totals = try lastValuePerKey(topic: "word-counts", bootstrap: broker.bootstrap, librdkafka: librdkafka).mapValues(countField)
            if words.allSatisfy({ totals[$0.key] == $0.value }) { break }
            Thread.sleep(forTimeInterval: 1)
        }
        return totals
    }

    static func check(_ totals: [String: Int64?], _ words: [String: Int64]) {
        #expect(totals.count == words.count)
        for (word, count) in words {
            #expect(totals[word] == count, "word \(word)")
        }
    }

    /// The last count of each window (sentinels aside) equals the expected one.
    static func checkWindows(_ expected: [String: Int64], broker: any TestBroker, librdkafka: Librdkafka) throws {
        var windows: [String: Int64] = [:]
        for (key, count) in try windowRecords(bootstrap: broker.bootstrap, librdkafka: librdkafka) where !key.hasSuffix("|sentinel") {
            windows[key] = count
        }
        #expect(windows == expected, "\(windows.count) windows of \(expected.count)")
    }
}
