import Foundation
import Testing

/// The tools of the broker matrix, fetched by `scripts/test-brokers.sh` (which `make test` runs first).
let brokerTools = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build-brokers").standardized

/// Which librdkafka a child process (sluice, kcat) runs with. sluice is always built against Debian's 2.0.2
/// headers; the newer library is only put on `LD_LIBRARY_PATH`.
enum Librdkafka: String, CustomStringConvertible, CaseIterable, Sendable {
    /// The system's librdkafka (Debian 12: 2.0.2).
    case system
    /// The librdkafka of the confluent-kafka wheel (2.16), as newer distributions ship one.
    case bundled

    var environment: [String: String] {
        switch self {
        case .system: [:]
        case .bundled: ["LD_LIBRARY_PATH": brokerTools.appendingPathComponent("lib").path]
        }
    }

    var description: String { self == .system ? "librdkafka 2.0.2 (system)" : "librdkafka 2.16 (confluent-kafka wheel)" }
}

/// A broker the end-to-end tests run against, in its own process on 127.0.0.1.
protocol TestBroker: AnyObject {
    var bootstrap: String { get }
}

extension BrokerProcess: TestBroker {}

/// Which broker: librdkafka's mock (in `sluice-broker`) or Tansu, an independently written Kafka-protocol broker.
enum BrokerKind: String, CustomStringConvertible, Sendable {
    case mock
    case tansu

    var description: String { self == .mock ? "librdkafka's mock cluster" : "Tansu 0.6" }

    func start(topics: [String: Int]) throws -> any TestBroker {
        switch self {
        case .mock: try BrokerProcess(topics: topics)
        case .tansu: try TansuProcess(topics: topics)
        }
    }
}

/// Tansu with in-memory storage. Measured deviations the tests work around: ListOffsets "latest" answers the
/// newest batch's base offset + 1 (so `SLUICE_STOP_AT_END` cannot find the end: tests wait for the known output
/// instead), and a join takes half the session timeout.
final class TansuProcess: TestBroker {
    let process: Process
    let bootstrap: String

    init(topics: [String: Int]) throws {
        (process, bootstrap) = try startBrokerTool("tansu") { bootstrap in
            [
                "broker", "--listener-url", "tcp://\(bootstrap)", "--advertised-listener-url", "tcp://\(bootstrap)",
                "--storage-engine", "memory://tansu/",
            ]
        }
        for (topic, partitions) in topics.sorted(by: { $0.key < $1.key }) {
            try createTopic(topic, partitions: partitions, tansu: brokerTools.appendingPathComponent("tansu"))
        }
    }

    private func createTopic(_ topic: String, partitions: Int, tansu: URL) throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let create = Process()
            create.executableURL = tansu
            create.arguments = ["topic", "create", "--broker", "tcp://\(bootstrap)", "--partitions", String(partitions), topic]
            create.standardOutput = FileHandle.nullDevice
            create.standardError = FileHandle.nullDevice
            try create.run()
            create.waitUntilExit()
            if create.terminationStatus == 0 { return }
            guard ContinuousClock.now < deadline else { throw TestFailure("tansu could not create \(topic)") }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    deinit {
        // Tansu does not stop on SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// Starts a broker program of `scripts/test-brokers.sh` on a free 127.0.0.1 port, its output discarded; `arguments`
/// get the bootstrap address (`127.0.0.1:PORT`).
func startBrokerTool(_ name: String, arguments: (_ bootstrap: String) -> [String]) throws -> (Process, bootstrap: String) {
    let tool = brokerTools.appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: tool.path) else {
        throw TestFailure("\(tool.path) is missing: run scripts/test-brokers.sh (make test does)")
    }
    let bootstrap = "127.0.0.1:\(try freePort())"
    let process = Process()
    process.executableURL = tool
    process.arguments = arguments(bootstrap)
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    return (process, bootstrap)
}

/// Produces records with Python's confluent-kafka (librdkafka 2.16), which every broker of the matrix accepts.
func pythonProduce(_ records: [(partition: Int32, timestamp: Int64, value: String)], topic: String, bootstrap: String) throws {
    let process = Process()
    process.executableURL = brokerTools.appendingPathComponent("venv/bin/python")
    process.arguments = ["-c", """
        import sys
        from confluent_kafka import Producer
        producer = Producer({"bootstrap.servers": sys.argv[1], "linger.ms": 20})
        for line in sys.stdin.buffer:
            partition, timestamp, value = line.rstrip(b"\\n").split(b"\\t", 2)
            while True:
                try:
                    producer.produce(sys.argv[2], value=value, partition=int(partition), timestamp=int(timestamp))
                    break
                except BufferError:
                    producer.poll(0.1)
        if producer.flush(60) != 0:
            sys.exit("not delivered")
        """, bootstrap, topic]
    let input = Pipe()
    process.standardInput = input
    process.standardError = FileHandle.nullDevice
    try process.run()
    let text = records.map { "\($0.partition)\t\($0.timestamp)\t\($0.value)\n" }.joined()
    try input.fileHandleForWriting.write(contentsOf: Data(text.utf8))
    try input.fileHandleForWriting.close()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw TestFailure("python producer exited \(process.terminationStatus)") }
}

/// A member of a consumer group: kcat's balanced consumer on the librdkafka under test, writing `partition offset`
/// per record to a file, and its rebalances to another.
final class GroupMember {
    let process = Process()
    let records: String
    let events: String

    init(bootstrap: String, group: String, topic: String, librdkafka: Librdkafka, directory: TemporaryDirectory, name: String) throws {
        records = "\(directory.path)/\(name).records"
        events = "\(directory.path)/\(name).events"
        _ = FileManager.default.createFile(atPath: records, contents: nil)
        _ = FileManager.default.createFile(atPath: events, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/kcat")
        process.arguments = [
            "-b", bootstrap, "-G", group, "-u", "-f", "%p %o\n", "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000", topic,
        ]
        process.environment = ProcessInfo.processInfo.environment.merging(librdkafka.environment) { $1 }
        process.standardOutput = FileHandle(forWritingAtPath: records)
        process.standardError = FileHandle(forWritingAtPath: events)
        try process.run()
    }

    /// The partitions of the latest assignment kcat reported (nil before the first).
    var assigned: Set<Int32>? {
        let text = (try? String(contentsOfFile: events, encoding: .utf8)) ?? ""
        guard let line = text.split(separator: "\n").last(where: { $0.contains("assigned:") }) else { return nil }
        return Set(line.matches(of: /\[(\d+)\]/).compactMap { Int32($0.1) })
    }

    /// The records received: (partition, offset).
    var received: [(partition: Int32, offset: Int64)] {
        let text = (try? String(contentsOfFile: records, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 2, let partition = Int32(parts[0]), let offset = Int64(parts[1]) else { return nil }
            return (partition, offset)
        }
    }

    /// SIGKILL: kcat's balanced consumer does not always end on SIGTERM (its consumer close can wait).
    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
