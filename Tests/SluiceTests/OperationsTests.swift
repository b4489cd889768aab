import Foundation
import KafkaIO
import Testing

/// The service as an operator runs it: HTTP health, readiness and metrics; graceful shutdown; bounded memory.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct OperationsTests {
    @Test func healthReadinessAndMetricsOverHTTP() throws {
        let broker = try BrokerProcess(topics: ["lines": 4, "word-counts": 4, "word-counts-windowed": 4])
        let service = try ServiceWithHTTP(on: broker)
        let (child, port) = (service.child, service.port)
        defer { _ = child.wait(timeout: .seconds(1)) }

        // The first group join takes 3 s: readiness must say "not ready" before the partitions are assigned.
        var readiness: [Int] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while readiness.last != 200, ContinuousClock.now < deadline {
            if let (status, _) = try? httpGet(port: port, path: "/readyz") { readiness.append(status) }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(readiness.first == 503)
        #expect(readiness.last == 200)
        #expect(try httpGet(port: port, path: "/healthz").status == 200)
        #expect(try httpGet(port: port, path: "/nothing-here").status == 404)

        let before = try metrics(port: port)
        #expect(before["sluice_records_received_total"] ?? 0 == 0)
        let lines = (0..<500).map { (value: Array("metrics move \($0)".utf8), timestamp: StreamingClock.now) }
        try produceLines(lines, topic: "lines", partitions: 4, bootstrap: broker.bootstrap)
        var after: [String: Double] = [:]
        let until = ContinuousClock.now + .seconds(20)
        // A batch's checkpoint is written after its output is delivered, so the two counters move one after the other.
        while after["sluice_output_records_total"] ?? 0 < 502 || after["sluice_checkpoints_written_total"] ?? 0 < 1,
              ContinuousClock.now < until {
            Thread.sleep(forTimeInterval: 0.3)
            after = try metrics(port: port)
        }
        #expect(after["sluice_records_received_total"] == 500)
        #expect(after["sluice_blocks_written_total"] ?? 0 >= 1)
        #expect(after["sluice_wal_bytes_written_total"] ?? 0 > 500 * 14)
        #expect(after["sluice_batches_completed_total"] ?? 0 >= 1)
        // "metrics" and "move" change once, and each of the 500 numbers once.
        #expect(after["sluice_output_records_total"] == 502)
        #expect(after["sluice_checkpoints_written_total"] ?? 0 >= 1)
        child.signal(SIGTERM)
        let result = child.wait(timeout: .seconds(30))
        #expect(result.exitCode == 0 && !result.wasKilled)
    }

    /// Idle HTTP connections once took every descriptor, and the next checkpoint failed with "Too many open files".
    /// Now connections beyond the cap are closed at once and idle ones after 10 s.
    @Test func idleHTTPConnectionsAreBoundedAndClosed() throws {
        let broker = try BrokerProcess(topics: ["lines": 4, "word-counts": 4, "word-counts-windowed": 4])
        let service = try ServiceWithHTTP(on: broker, ["SLUICE_HTTP_HOST": "127.0.0.1"])
        let (child, port) = (service.child, service.port)
        #expect(child.waitForLog("partitions assigned", timeout: .seconds(30)))
        let descriptors = { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(child.process.processIdentifier)/fd").count) ?? 0 }
        let baseline = descriptors()
        let sockets = (0..<300).map { _ in connectIdle(port: port) }
        defer { sockets.forEach { _ = close($0) } }
        #expect(sockets.allSatisfy { $0 >= 0 })
        Thread.sleep(forTimeInterval: 1)
        #expect(descriptors() <= baseline + 128 + 4, "the connection cap is 128")
        Thread.sleep(forTimeInterval: 10.5)
        #expect(descriptors() <= baseline + 4, "idle connections are closed after 10 s")
        #expect(try httpGet(port: port, path: "/healthz").status == 200)
        child.signal(SIGTERM)
        #expect(child.wait(timeout: .seconds(30)).exitCode == 0)
    }

    /// A recovery scenario of 40,000 lines with sluice started on it, 5.5 s in: past the group join, input flowing.
    static func underLoad(seed: UInt64, shutdownTimeoutMilliseconds: Int) throws -> (RecoveryTests.Scenario, SluiceProcess) {
        let scenario = try RecoveryTests.Scenario(lines: 40_000, seed: seed)
        var environment = scenario.environment
        environment["SLUICE_SHUTDOWN_TIMEOUT_MS"] = String(shutdownTimeoutMilliseconds)
        let child = try SluiceProcess(environment: environment, logDirectory: scenario.directory.path)
        Thread.sleep(forTimeInterval: 5.5)
        return (scenario, child)
    }

    @Test func sigtermUnderLoadExitsCleanlyAndARestartLosesAndRepeatsNothing() throws {
        let (scenario, child) = try Self.underLoad(seed: 3, shutdownTimeoutMilliseconds: 20_000)
        let signalled = ContinuousClock.now
        child.signal(SIGTERM)
        let stopped = child.wait(timeout: .seconds(30))
        #expect(stopped.exitCode == 0 && !stopped.wasKilled, "stderr: \(stopped.standardError.suffix(2000))")
        #expect(ContinuousClock.now - signalled < .seconds(20))
        #expect(stopped.standardError.contains("streaming stopped"))
        try scenario.checkNothingCommittedIsLost()
        try scenario.finishAndCheckExactOutput()
    }

    /// A graceful shutdown that cannot finish (the broker is frozen, so the final commit, output and group leave all
    /// wait) ends at once on a second SIGTERM, and a restart still loses and repeats nothing.
    @Test func aSecondSigtermEndsAStuckShutdownAtOnceAndARestartLosesNothing() throws {
        let (scenario, child) = try Self.underLoad(seed: 5, shutdownTimeoutMilliseconds: 120_000)
        let broker = scenario.broker.process.processIdentifier
        kill(broker, SIGSTOP)
        defer { kill(broker, SIGCONT) }
        child.signal(SIGTERM)
        #expect(child.waitForLog("shutting down", timeout: .seconds(10)))
        let signalled = ContinuousClock.now
        child.signal(SIGTERM)
        let stopped = child.wait(timeout: .seconds(20))
        #expect(stopped.wasKilled && !stopped.timedOut, "exit \(stopped.exitCode); stderr: \(stopped.standardError.suffix(2000))")
        #expect(ContinuousClock.now - signalled < .seconds(5))
        // Where the shutdown waits depends on what the last batch had to deliver: in its output, or, once streaming
        // stopped, in leaving the group. Either way only the second signal ended it (`wasKilled` above).
        kill(broker, SIGCONT)
        try scenario.checkNothingCommittedIsLost()
        try scenario.finishAndCheckExactOutput()
    }

    @Test func backpressureKeepsTheBacklogUnderItsBound() throws {
        let partitions = 8
        let broker = try BrokerProcess(topics: ["lines": partitions, "word-counts": 4, "word-counts-windowed": 4])
        // 24 MB of input, loaded before the service starts: input is far faster than batches every 2 s.
        let line = Array(String(repeating: "backpressure keeps memory bounded ", count: 30).utf8)
        let lines = (0..<24_000).map { _ in (value: line, timestamp: StreamingClock.now) }
        try produceLines(lines, topic: "lines", partitions: partitions, bootstrap: broker.bootstrap)
        let service = try ServiceWithHTTP(on: broker, [
            "SLUICE_MAX_BACKLOG_MB": "2", "SLUICE_BATCH_INTERVAL_MS": "2000", "SLUICE_BLOCK_INTERVAL_MS": "100",
        ])
        let (child, port) = (service.child, service.port)
        var maximumBacklog = 0.0
        var maximumHeld = 0.0
        var sawPause = false
        var received = 0.0
        let deadline = ContinuousClock.now + .seconds(120)
        while received < 24_000, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.2)
            guard let values = try? metrics(port: port) else { continue }
            maximumBacklog = max(maximumBacklog, values["sluice_backlog_bytes"] ?? 0)
            maximumHeld = max(maximumHeld, values["sluice_held_input_bytes"] ?? 0)
            sawPause = sawPause || (values["sluice_paused_partitions"] ?? 0) > 0
            received = values["sluice_records_received_total"] ?? 0
        }
        let peakRSS = residentSetHighWaterMark(child.process.processIdentifier)
        child.signal(SIGTERM)
        let result = child.wait(timeout: .seconds(30))
        #expect(received == 24_000)
        #expect(sawPause)
        // The documented bound on the input held in memory (the backlog and the running batch's unread blocks): the
        // limit, plus the block (a quarter of the limit) whose storing crossed it, plus the rest of that poll (at most
        // 1024 records of about 1 KiB here).
        let bound = 2.0 * 1_048_576 + 0.5 * 1_048_576 + 1024 * Double(line.count + 64)
        #expect(maximumHeld <= bound, "input held peaked at \(maximumHeld) bytes, bound \(bound)")
        #expect(maximumBacklog <= maximumHeld && maximumHeld > 1_048_576)
        #expect(peakRSS < 200 << 20, "peak RSS \(peakRSS >> 20) MiB")
        #expect(result.exitCode == 0)
    }
}

enum StreamingClock {
    /// Milliseconds since the epoch.
    static var now: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// A TCP port that was free a moment ago.
func freePort() throws -> Int {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
    }
    guard bound else { throw TestFailure("no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A blocking HTTP GET on 127.0.0.1 with curl: the status code and the body.
func httpGet(port: Int, path: String) throws -> (status: Int, body: String) {
    let (exit, text) = try runTool("/usr/bin/curl", ["-s", "-m", "5", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"])
    guard exit == 0, let newline = text.lastIndex(of: "\n"), let status = Int(text[text.index(after: newline)...]) else {
        throw TestFailure("GET \(path) failed")
    }
    return (status, String(text[..<newline]))
}

/// Polls `path` every 200 ms until `done` accepts the answer; whether it did within `timeout`.
func waitForHTTP(port: Int, path: String, timeout: Duration, until done: ((status: Int, body: String)) -> Bool) throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    repeat {
        if let answer = try? httpGet(port: port, path: path), done(answer) { return true }
        Thread.sleep(forTimeInterval: 0.2)
    } while ContinuousClock.now < deadline
    return false
}

/// The unlabelled samples of a Prometheus text exposition (labelled series are summed per name).
func metrics(port: Int) throws -> [String: Double] {
    let (status, body) = try httpGet(port: port, path: "/metrics")
    guard status == 200 else { throw TestFailure("/metrics answered \(status)") }
    var values: [String: Double] = [:]
    for line in body.split(separator: "\n") where !line.hasPrefix("#") {
        let parts = line.split(separator: " ")
        guard parts.count >= 2, let value = Double(parts[1]) else { continue }
        let name = String(parts[0].prefix { $0 != "{" })
        values[name, default: 0] += value
    }
    return values
}

/// The peak resident set size of a process, from /proc (VmHWM).
func residentSetHighWaterMark(_ pid: Int32) -> Int {
    memoryField("VmHWM", of: pid)
}

/// The current resident set size of a process, from /proc (VmRSS).
func residentSetSize(_ pid: Int32) -> Int {
    memoryField("VmRSS", of: pid)
}

/// A size field of /proc/<pid>/status, in bytes (0 if unreadable).
private func memoryField(_ name: String, of pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") })
    else { return 0 }
    return (Int(line.split(separator: " ")[1]) ?? 0) * 1024
}

/// A TCP connection to 127.0.0.1:`port` that sends nothing; the descriptor, or -1.
func connectIdle(port: Int) -> Int32 {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let connected = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else {
        _ = close(socket)
        return -1
    }
    return socket
}
