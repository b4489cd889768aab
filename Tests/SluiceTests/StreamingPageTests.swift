import Foundation
import Testing

/// The streaming page in a real browser (headless Chromium) while sluice runs under load: its charts and tables
/// fill from the JSON API, and a screenshot is saved for a person to look at.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct StreamingPageTests {
    static let chromium = "/usr/bin/chromium"
    /// Where the screenshot goes (`SLUICE_SCREENSHOT` overrides).
    static var screenshotPath: String {
        ProcessInfo.processInfo.environment["SLUICE_SCREENSHOT"]
            ?? FileManager.default.currentDirectoryPath + "/.build/streaming-page.png"
    }

    @Test func theStreamingPageDrawsLiveBatchesInABrowser() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.chromium) else {
            throw TestFailure("\(Self.chromium) is missing: scripts/deps.sh test installs it")
        }
        let broker = try BrokerProcess(topics: ["lines": 4, "word-counts": 4, "word-counts-windowed": 4])
        let service = try ServiceWithHTTP(on: broker, ["SLUICE_MAX_RATE_PER_PARTITION": "500"])
        let (child, port) = (service.child, service.port)
        defer { _ = child.wait(timeout: .seconds(1)) }
        #expect(child.waitForLog("partitions assigned", timeout: .seconds(30)))
        let lines = (0..<40_000).map { (value: Array("alpha beta gamma w\($0 % 700)".utf8), timestamp: StreamingClock.now) }
        try produceLines(lines, topic: "lines", partitions: 4, bootstrap: broker.bootstrap)
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? json(port, "/api/counts/alpha")["count"] as? Int) ?? 0 < 8000, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.3)
        }

        let url = "http://127.0.0.1:\(port)/"
        let dom = try browser(["--dump-dom", url])
        let points = dom.matches(of: /id="chart-(\w+)"[^>]*data-points="(\d+)"/).map { (String($0.1), Int($0.2) ?? 0) }
        #expect(points.map(\.0).sorted() == ["delay", "processing", "rate"], "\(dom.prefix(300))")
        #expect(points.allSatisfy { $0.1 >= 4 }, "points per chart: \(points)")
        #expect(dom.contains("<td>alpha</td>"), "the top-words table lists alpha")
        #expect(dom.matches(of: /<td>lines-\d<\/td>/).count == 4, "the partitions table lists the four input partitions")
        #expect(dom.contains("healthy · ready"))

        try? FileManager.default.removeItem(atPath: Self.screenshotPath)
        _ = try browser(["--hide-scrollbars", "--window-size=1400,1100", "--screenshot=\(Self.screenshotPath)", url])
        let size = (try? FileManager.default.attributesOfItem(atPath: Self.screenshotPath)[.size] as? Int) ?? 0
        #expect(size > 20_000, "screenshot at \(Self.screenshotPath): \(size) bytes")
        child.signal(SIGTERM)
        #expect(child.wait(timeout: .seconds(30)).exitCode == 0)
    }

    /// Runs headless Chromium for 3 s of page time (the page polls every second) and returns its standard output.
    private func browser(_ arguments: [String]) throws -> String {
        let (status, output) = try runTool(Self.chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000"] + arguments)
        guard status == 0 else { throw TestFailure("chromium exited \(status)") }
        return output
    }
}
