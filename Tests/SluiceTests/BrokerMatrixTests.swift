import Foundation
import Testing

/// The service end to end on more than librdkafka's own mock: Tansu, an independently written broker that
/// answers one partition per fetch (so partitions start at different times), and librdkafka 2.16 at run time, as
/// newer distributions ship it (sluice stays built against 2.0.2). librdkafka 2.0.2 cannot talk to Tansu (it
/// misreads Tansu's ApiVersions response, librdkafka #4253), so Tansu runs with 2.16 only.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct BrokerMatrixTests {
    static let topics = ["lines": 4, "word-counts": 4, "word-counts-windowed": 4]

    /// 8,000 lines over 16 s of event time on 4 partitions, then one `sentinel` per partition 10 minutes later,
    /// which closes every earlier one-second window.
    static func input(start: Int64) -> (records: [(partition: Int32, timestamp: Int64, value: String)], words: [String: Int64], windows: [String: Int64]) {
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
        records += (0..<4).map { (Int32($0), start + 600_000, "sentinel") }
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
        // The true end is known here (Tansu's ListOffsets is not trustworthy): wait for every total.
        var totals: [String: Int64?] = [:]
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline {
            totals = try lastValuePerKey(topic: "word-counts", bootstrap: broker.bootstrap, librdkafka: librdkafka).mapValues(countField)
            if input.words.allSatisfy({ totals[$0.key] == $0.value }) { break }
            Thread.sleep(forTimeInterval: 1)
        }
        child.signal(SIGTERM)
        let result = child.wait(timeout: .seconds(30))
        #expect(result.exitCode == 0, "stderr: \(result.standardError.suffix(2000))")
        #expect(totals.count == input.words.count)
        for (word, count) in input.words {
            #expect(totals[word] == count, "word \(word)")
        }
        var windows: [String: Int64] = [:]
        for (key, count) in try windowRecords(bootstrap: broker.bootstrap, librdkafka: librdkafka) where !key.hasSuffix("|sentinel") {
            windows[key] = count
        }
        #expect(windows == input.windows, "\(windows.count) windows of \(input.windows.count)")
    }
}
