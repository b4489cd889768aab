import Foundation
import KafkaIO
import Logging
import SampleData
import Testing

/// A logger that drops everything, so tests never bootstrap the logging system.
let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// Where `swift build` put the executables this package builds.
let binaryDirectory: URL = {
    if let override = ProcessInfo.processInfo.environment["SLUICE_BIN_DIR"] {
        return URL(fileURLWithPath: override)
    }
    // The test bundle lives next to the products: .build/<triple>/debug/sluicePackageTests.xctest
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    while url.path != "/" {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("sluice").path) { return url }
    }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug").standardized
}()

/// A temporary directory removed when the value is released.
final class TemporaryDirectory {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "sluice-test-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// The embedded broker in its own process (`sluice-broker`), so it survives a kill -9 of the service.
final class BrokerProcess {
    let process = Process()
    let bootstrap: String
    private let input = Pipe()

    init(topics: [String: Int]) throws {
        process.executableURL = binaryDirectory.appendingPathComponent("sluice-broker")
        process.arguments = topics.sorted { $0.key < $1.key }.flatMap { ["--topic", "\($0.key):\($0.value)"] }
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = input
        try process.run()
        var line = Data()
        while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("bootstrap=") else {
            throw TestFailure("sluice-broker did not start: \(text)")
        }
        bootstrap = String(text.dropFirst("bootstrap=".count))
    }

    deinit {
        try? input.fileHandleForWriting.close()
        process.terminate()
        process.waitUntilExit()
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The outcome of one run of a child process.
struct ProcessResult {
    var exitCode: Int32
    var wasKilled: Bool
    /// The process was still running at the timeout and was killed by the test.
    var timedOut: Bool
    var standardOutput: String
    var standardError: String
}

/// A running `sluice` child process.
final class SluiceProcess {
    let process = Process()
    private let outputFile: String
    private let errorFile: String

    init(environment: [String: String], arguments: [String] = [], librdkafka: Librdkafka = .system, logDirectory: String) throws {
        process.executableURL = binaryDirectory.appendingPathComponent("sluice")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SLUICE_") && $0.key != "KAFKA_BOOTSTRAP_SERVERS" }
        env["SLUICE_HTTP_PORT"] = "0"
        env["SLUICE_SESSION_TIMEOUT_MS"] = "6000"
        env.merge(librdkafka.environment) { _, new in new }
        env.merge(environment) { _, new in new }
        process.environment = env
        let id = UUID().uuidString.prefix(6)
        outputFile = "\(logDirectory)/sluice-\(id).out"
        errorFile = "\(logDirectory)/sluice-\(id).err"
        _ = FileManager.default.createFile(atPath: outputFile, contents: nil)
        _ = FileManager.default.createFile(atPath: errorFile, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: outputFile)
        process.standardError = FileHandle(forWritingAtPath: errorFile)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// Sends a signal.
    func signal(_ number: Int32) {
        kill(process.processIdentifier, number)
    }

    /// Waits up to `timeout` for `text` to appear in the process's standard error; whether it did.
    func waitForLog(_ text: String, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let log = try? String(contentsOfFile: errorFile, encoding: .utf8), log.contains(text) { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    /// Waits up to `timeout` for the process to end (killing it after that) and returns what it did.
    func wait(timeout: Duration) -> ProcessResult {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        let timedOut = process.isRunning
        if timedOut {
            signal(SIGKILL)
        }
        process.waitUntilExit()
        return ProcessResult(
            exitCode: process.terminationStatus,
            wasKilled: process.terminationReason == .uncaughtSignal,
            timedOut: timedOut,
            standardOutput: (try? String(contentsOfFile: outputFile, encoding: .utf8)) ?? "",
            standardError: (try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? ""
        )
    }

    /// Runs sluice to completion.
    static func run(
        _ environment: [String: String], librdkafka: Librdkafka = .system, logDirectory: String, timeout: Duration = .seconds(120)
    ) throws -> ProcessResult {
        try SluiceProcess(environment: environment, librdkafka: librdkafka, logDirectory: logDirectory).wait(timeout: timeout)
    }
}

/// sluice running as a child process on a broker, with a fresh data directory, consumer group and HTTP port.
struct ServiceWithHTTP {
    let child: SluiceProcess
    let directory = TemporaryDirectory()
    let port: Int

    /// Starts sluice on `broker`; `environment` adds to or overrides the defaults.
    init(on broker: BrokerProcess, _ environment: [String: String] = [:]) throws {
        port = try freePort()
        child = try SluiceProcess(environment: [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_HTTP_PORT": String(port), "SLUICE_GROUP_ID": uniqueGroup(),
        ].merging(environment) { $1 }, logDirectory: directory.path)
    }
}

/// Runs a command-line tool to its end: its exit status and standard output (standard error is dropped).
func runTool(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Runs `kcat` and returns its standard output.
func kcat(_ arguments: [String], librdkafka: Librdkafka = .system, timeout: Duration = .seconds(60)) throws -> String {
    let (status, output) = try runTool("/usr/bin/kcat", arguments, environment: librdkafka.environment)
    guard status == 0 else {
        throw TestFailure("kcat \(arguments.joined(separator: " ")) exited \(status)")
    }
    return output
}

/// Reads a whole topic with kcat as an outside client and returns, per key, the last value.
func lastValuePerKey(topic: String, bootstrap: String, librdkafka: Librdkafka = .system) throws -> [String: String] {
    let text = try kcat(["-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-f", "%k\t%s\n"], librdkafka: librdkafka)
    var result: [String: String] = [:]
    for line in text.split(separator: "\n") {
        let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
        if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
    }
    return result
}

/// The reference word count: split on whitespace, lowercase, drop empty tokens.
func referenceWords(_ line: String) -> [String] {
    line.split(whereSeparator: { $0.isWhitespace }).map { $0.lowercased().precomposedStringWithCanonicalMapping }
}

/// Produces lines (with explicit timestamps) to a topic, round-robin over its partitions.
func produceLines(_ lines: [(value: [UInt8], timestamp: Int64)], topic: String, partitions: Int, bootstrap: String) throws {
    let producer = try KafkaProducer(
        config: KafkaProducerConfig(common: KafkaConfig(bootstrapServers: bootstrap, properties: ["compression.codec": "lz4"])),
        logger: quietLogger
    )
    for (index, line) in lines.enumerated() {
        try producer.send(KafkaProducerRecord(
            topic: topic, partition: Int32(index % partitions), value: line.value, timestamp: line.timestamp
        ))
    }
    try producer.flush(timeout: .seconds(60))
}

/// A deterministic line of text: 3 to 10 words from a small vocabulary, mixed case, some separated by tabs.
func testLine(_ index: Int, seed: UInt64) -> String {
    let vocabulary = ["alpha", "Beta", "gamma", "DELTA", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "école", "straße", "naïve"]
    var generator = SplitMix64(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
    let count = 3 + Int(generator.next() % 8)
    return (0..<count).map { _ in vocabulary[Int(generator.next() % UInt64(vocabulary.count))] }
        .joined(separator: generator.next() % 5 == 0 ? "\t " : " ")
}

/// Reads the windows topic with kcat: one `(window_start|word, count)` per record, in topic order.
func windowRecords(bootstrap: String, topic: String = "word-counts-windowed", librdkafka: Librdkafka = .system) throws -> [(key: String, count: Int64?)] {
    let text = try kcat(["-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-f", "%s\n"], librdkafka: librdkafka)
    return text.split(separator: "\n").compactMap { value in
        let json = String(value)
        guard let start = json.range(of: "\"window_start\":").map({ json[$0.upperBound...].prefix { $0.isNumber } }),
            let wordRange = json.range(of: "\"word\":\""),
            let end = json[wordRange.upperBound...].firstIndex(of: "\"")
        else { return nil }
        return ("\(start)|\(json[wordRange.upperBound..<end])", countField(json))
    }
}

/// The `"count":N` of a JSON value written by sluice.
func countField(_ json: String) -> Int64? {
    guard let range = json.range(of: "\"count\":") else { return nil }
    return Int64(json[range.upperBound...].prefix { $0.isNumber })
}
