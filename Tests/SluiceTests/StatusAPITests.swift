import Foundation
import Testing

/// The streaming page's JSON API and the state queries, against exact counts of a known input; malformed requests;
/// a bounded request loop under load; the page itself in a headless browser.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct StatusAPITests {
    /// 1,000 lines: "alpha beta beta gamma gamma gamma w<i>", so alpha 1,000, beta 2,000, gamma 3,000 and 1,000
    /// words counted once.
    static let knownLines = (0..<1000).map { (value: Array("alpha beta beta gamma gamma gamma w\($0)".utf8), timestamp: StreamingClock.now) }

    @Test func statusBatchesAndStateQueriesMatchAKnownInput() throws {
        let broker = try BrokerProcess(topics: ["lines": 4, "word-counts": 4, "word-counts-windowed": 4])
        let service = try ServiceWithHTTP(on: broker)
        let (child, port) = (service.child, service.port)
        defer { _ = child.wait(timeout: .seconds(1)) }
        #expect(child.waitForLog("partitions assigned", timeout: .seconds(30)))
        try produceLines(Self.knownLines, topic: "lines", partitions: 4, bootstrap: broker.bootstrap)
        try waitUntil(port: port, word: "gamma", reaches: 3000)
        #expect(try json(port, "/api/counts/gamma")["count"] as? Int == 3000)

        #expect(try json(port, "/api/counts/alpha")["count"] as? Int == 1000)
        #expect(try json(port, "/api/counts/BETA")["count"] as? Int == 2000, "a query is normalized as the input is")
        #expect(try json(port, "/api/counts/w17")["count"] as? Int == 1)
        #expect(try json(port, "/api/counts/never-seen")["count"] as? Int == 0)
        let top = try json(port, "/api/top?n=5")
        #expect(top["distinctWords"] as? Int == 1003)
        let ranking = (top["top"] as? [[String: Any]] ?? []).map { "\($0["word"] ?? "")=\($0["count"] ?? "")" }
        #expect(ranking == ["gamma=3000", "beta=2000", "alpha=1000", "w0=1", "w1=1"])

        let status = try json(port, "/api/status")
        let totals = status["totals"] as? [String: Any] ?? [:]
        #expect(totals["records"] as? Int == 1000)
        #expect((status["partitions"] as? [Any])?.count == 4)
        #expect(status["ready"] as? Bool == true && status["healthy"] as? Bool == true)
        #expect(status["walBytes"] as? Int ?? 0 > 1000 * 30)
        // Every batch has read its blocks and dropped them: what is held is the backlog.
        #expect(status["heldInputBytes"] as? Int == status["backlogBytes"] as? Int)
        #expect(status["watermark"] is Int && status["lastCheckpoint"] is [String: Any])
        let batches = try json(port, "/api/batches")["batches"] as? [[String: Any]] ?? []
        #expect(batches.compactMap { $0["records"] as? Int }.reduce(0, +) == 1000)
        // Each batch emits the totals it changed: the 1,000 single words once, alpha, beta and gamma once per batch.
        let output = batches.compactMap { $0["outputRecords"] as? Int }.reduce(0, +)
        #expect(output == totals["outputRecords"] as? Int && output >= 1003)

        for (path, expected) in Self.badRequests {
            #expect(try httpGet(port: port, path: path).status == expected, "GET \(path.prefix(60))")
        }
        #expect(try httpStatus(port: port, path: "/api/status", method: "POST") == 405)
        child.signal(SIGTERM)
        #expect(child.wait(timeout: .seconds(30)).exitCode == 0)
    }

    /// Requests that get a 4xx, and which.
    static let badRequests: [(String, Int)] = [
        ("/api/counts/%ff", 400), ("/api/counts/%zz", 400), ("/api/counts/two%20words", 400), ("/api/counts/", 404),
        ("/api/counts/" + String(repeating: "a", count: 3000), 414), ("/api/top?n=0", 400), ("/api/top?n=1001", 400),
        ("/api/top?n=ten", 400), ("/api/nothing", 404), ("/index.php", 404),
    ]

    /// 10,000 requests (pages, JSON, queries, bad requests) on keep-alive connections while rate-limited input flows:
    /// batches keep the pace they had in the 6 s before (same run, after the first burst), and the resident memory
    /// stays where it was.
    @Test func tenThousandRequestsLeaveProcessingAndMemoryUnchanged() throws {
        let broker = try BrokerProcess(topics: ["lines": 4, "word-counts": 4, "word-counts-windowed": 4])
        let service = try ServiceWithHTTP(on: broker, ["SLUICE_MAX_RATE_PER_PARTITION": "500"])
        let (child, port) = (service.child, service.port)
        defer { _ = child.wait(timeout: .seconds(1)) }
        #expect(child.waitForLog("partitions assigned", timeout: .seconds(30)))
        // Far more input than the run takes at about 2,000 records/s, so that it flows until the end.
        let lines = (0..<100_000).map { (value: Array("alpha beta gamma w\($0 % 10_000)".utf8), timestamp: StreamingClock.now) }
        try produceLines(lines, topic: "lines", partitions: 4, bootstrap: broker.bootstrap)
        try waitUntil(port: port, word: "alpha", reaches: 4000)
        let baselineStarted = StreamingClock.now
        Thread.sleep(forTimeInterval: 6)
        let pid = child.process.processIdentifier
        let memoryBefore = residentSetSize(pid)
        let started = StreamingClock.now

        let paths = ["/api/status", "/api/batches", "/api/top?n=1000", "/api/counts/alpha", "/", "/metrics", "/api/counts/%ff", "/nope"]
        let codes = try curlMany(port: port, paths: (0..<10_000).map { paths[$0 % paths.count] })
        #expect(codes.count == 10_000)
        #expect(codes.filter { $0 == 200 }.count == 7500 && codes.filter { $0 == 400 }.count == 1250)

        let ended = StreamingClock.now
        let memoryAfter = residentSetSize(pid)
        #expect(memoryAfter - memoryBefore < 16 << 20, "RSS \(memoryBefore >> 20) MiB -> \(memoryAfter >> 20) MiB")
        let batches = (try json(port, "/api/batches")["batches"] as? [[String: Any]] ?? []).compactMap { batch in
            (batch["batchTime"] as? Int).map { (time: Int64($0), records: batch["records"] as? Int ?? 0, delay: batch["schedulingDelayMilliseconds"] as? Int ?? 0) }
        }
        let before = batches.filter { $0.time > baselineStarted && $0.time <= started }
        let during = batches.filter { $0.time > started && $0.time <= ended }
        let rate = { (batches: ArraySlice<(time: Int64, records: Int, delay: Int)>) in Double(batches.map(\.records).reduce(0, +)) / Double(max(1, batches.count)) }
        let (rateBefore, rateDuring) = (rate(before[...]), rate(during[...]))
        print("10,000 requests in \(ended - started) ms; records per batch \(Int(rateBefore)) before, \(Int(rateDuring)) during; RSS \(memoryBefore >> 20) -> \(memoryAfter >> 20) MiB")
        #expect(during.count >= 2 && during.allSatisfy { $0.delay < 1000 }, "\(during)")
        #expect(rateDuring > 0.75 * rateBefore, "records per batch: \(rateBefore) before, \(rateDuring) during")
        child.signal(SIGTERM)
        #expect(child.wait(timeout: .seconds(30)).exitCode == 0)
    }

    /// Waits until the running total of `word` reaches `count` (30 s at most).
    private func waitUntil(port: Int, word: String, reaches count: Int) throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? json(port, "/api/counts/\(word)")["count"] as? Int) ?? 0 < count, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.2)
        }
        guard try json(port, "/api/counts/\(word)")["count"] as? Int ?? 0 >= count else {
            throw TestFailure("\(word) did not reach \(count)")
        }
    }
}

/// GETs `path` and parses its JSON object.
func json(_ port: Int, _ path: String) throws -> [String: Any] {
    let (status, body) = try httpGet(port: port, path: path)
    guard status == 200, let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
        throw TestFailure("GET \(path): \(status) \(body.prefix(200))")
    }
    return object
}

/// The status code of one request with `method`.
func httpStatus(port: Int, path: String, method: String) throws -> Int {
    try curl(["-s", "-o", "/dev/null", "-X", method, "-w", "%{http_code}", "http://127.0.0.1:\(port)\(path)"])
        .split(separator: "\n").compactMap { Int($0) }.first ?? 0
}

/// GETs every path with one curl process (which keeps its connection alive); the status codes in order.
func curlMany(port: Int, paths: [String]) throws -> [Int] {
    let directory = TemporaryDirectory()
    let config = directory.path + "/requests"
    let lines = paths.map { "url = \"http://127.0.0.1:\(port)\($0)\"\noutput = \"/dev/null\"\n" }
    try lines.joined().write(toFile: config, atomically: true, encoding: .utf8)
    return try curl(["-s", "-K", config, "-w", "%{http_code}\n"]).split(separator: "\n").compactMap { Int($0) }
}

/// Runs curl and returns its standard output.
private func curl(_ arguments: [String]) throws -> String {
    try runTool("/usr/bin/curl", arguments).output
}
