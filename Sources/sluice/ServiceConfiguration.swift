import Foundation
import KafkaIO
import Streaming

/// A configuration value that cannot be used, named by its environment variable.
struct ConfigurationError: Error, CustomStringConvertible {
    var variable: String
    var value: String
    var accepted: String

    var description: String {
        "invalid \(variable)=\"\(value)\": expected \(accepted)"
    }
}

/// The service's whole configuration, read once from the environment at start-up.
///
/// Every variable has a default (see ``ServiceConfiguration/variables``); a bad value stops start-up with a
/// ``ConfigurationError`` naming the variable, the value, and what is accepted.
struct ServiceConfiguration {
    /// One documented environment variable.
    struct Variable {
        var name: String
        var defaultValue: String
        var meaning: String
        /// The modes that read it: the other one refuses it with exit 2 when it is set to anything but its
        /// default, rather than ignore it.
        var modes: Modes = .both
    }

    /// Which modes read a setting.
    enum Modes {
        case both
        /// The receiver, its WAL, the batch engine.
        case standalone
        /// The shards and the directory of instances.
        case distributed

        func include(_ mode: Mode) -> Bool {
            switch (self, mode) {
            case (.both, _), (.standalone, .standalone), (.distributed, .distributed): true
            default: false
            }
        }
    }

    /// Every variable the service reads, with its default and meaning: the source of `--help` and the README table.
    static let variables: [Variable] = [
        Variable(name: "KAFKA_BOOTSTRAP_SERVERS", defaultValue: "(unset)", meaning: "brokers, host:port,...; unset starts the embedded broker with sample text"),
        Variable(name: "SLUICE_INPUT_TOPICS", defaultValue: "lines", meaning: "comma-separated input topics"),
        Variable(name: "SLUICE_GROUP_ID", defaultValue: "sluice-wordcount", meaning: "consumer group"),
        Variable(name: "SLUICE_COUNTS_TOPIC", defaultValue: "word-counts", meaning: "running totals topic"),
        Variable(name: "SLUICE_WINDOWS_TOPIC", defaultValue: "word-counts-windowed", meaning: "windowed counts topic"),
        Variable(name: "SLUICE_BATCH_INTERVAL_MS", defaultValue: "1000", meaning: "batch interval"),
        Variable(name: "SLUICE_BLOCK_INTERVAL_MS", defaultValue: "200", meaning: "standalone mode: block interval (WAL write + commit cadence), at most the batch interval", modes: .standalone),
        Variable(name: "SLUICE_WINDOW_MS", defaultValue: "60000", meaning: "event-time window length"),
        Variable(name: "SLUICE_SLIDE_MS", defaultValue: "= window", meaning: "window slide; the window must be a multiple of it"),
        Variable(name: "SLUICE_ALLOWED_LATENESS_MS", defaultValue: "0", meaning: "how late an event may be after its window's end passed the watermark"),
        Variable(name: "SLUICE_MAX_EVENT_AHEAD_MS", defaultValue: "3600000", meaning: "how far an event time may be ahead of its batch time; later records neither move the watermark nor enter windows"),
        Variable(name: "SLUICE_CHECKPOINT_DIR", defaultValue: "./sluice-data (a fresh temporary directory with the embedded broker)", meaning: "WAL and checkpoints"),
        Variable(name: "SLUICE_CHECKPOINT_EVERY_BATCHES", defaultValue: "1", meaning: "standalone mode: write a checkpoint every N batches, at most a tenth of the time", modes: .standalone),
        Variable(name: "SLUICE_WAL", defaultValue: "true", meaning: "standalone mode: receiver write-ahead log", modes: .standalone),
        Variable(name: "SLUICE_WAL_SKIP_CORRUPT", defaultValue: "false", meaning: "standalone mode: skip (and lose) a corrupt middle part of the WAL instead of refusing to start", modes: .standalone),
        Variable(name: "SLUICE_MODE", defaultValue: "standalone", meaning: "standalone (one instance per group, local WAL) or distributed (N instances in one group, state sharded over Kafka)"),
        Variable(name: "SLUICE_SHARDS", defaultValue: "32", meaning: "distributed mode: state shards (partitions of <group>-partials and <group>-changelog); fixed for the life of the group's state", modes: .distributed),
        Variable(name: "SLUICE_ADVERTISED_URL", defaultValue: "http://<SLUICE_INSTANCE_ID>:<SLUICE_HTTP_PORT>", meaning: "distributed mode: where other instances send a state query for a shard this instance owns (announced in <group>-members)", modes: .distributed),
        Variable(name: "SLUICE_INSTANCE_ID", defaultValue: "the host name", meaning: "this instance's stable name: in logs and shard ownership records, and its group.instance.id with static membership"),
        Variable(name: "SLUICE_STATIC_MEMBERSHIP", defaultValue: "false", meaning: "static group membership (group.instance.id = SLUICE_INSTANCE_ID): a restart within the session timeout keeps its partitions without a rebalance, and replaces a killed member at once"),
        Variable(name: "SLUICE_EXACTLY_ONCE", defaultValue: "false", meaning: "each batch's output in one Kafka transaction with its progress (read_committed readers see each batch once); needs a broker with transactions, and the WAL in standalone mode"),
        Variable(name: "SLUICE_MAX_RATE_PER_PARTITION", defaultValue: "0", meaning: "standalone mode: records/s per partition, 0 unlimited", modes: .standalone),
        Variable(name: "SLUICE_MAX_BACKLOG_MB", defaultValue: "48", meaning: "standalone mode: received input held in memory (blocks not yet read by a batch) above which the receiver stops taking records", modes: .standalone),
        Variable(name: "SLUICE_ENGINE_THREADS", defaultValue: "the cores less one, at least 1", meaning: "standalone mode: threads that read one batch's input blocks at once; the output does not depend on it", modes: .standalone),
        Variable(name: "SLUICE_STOP_AT_END", defaultValue: "false (true with the embedded broker)", meaning: "standalone mode: process the input present at start-up, flush windows, checkpoint, commit, exit 0", modes: .standalone),
        Variable(name: "SLUICE_DEAD_LETTER_TOPIC", defaultValue: "(unset)", meaning: "where malformed records are copied before they are skipped"),
        Variable(name: "SLUICE_SESSION_TIMEOUT_MS", defaultValue: "10000", meaning: "consumer group session timeout"),
        Variable(name: "SLUICE_HTTP_PORT", defaultValue: "9400", meaning: "the streaming page, its JSON API, state queries, /healthz, /readyz, /metrics; 0 disables"),
        Variable(name: "SLUICE_HTTP_HOST", defaultValue: "0.0.0.0", meaning: "address the HTTP endpoint binds (127.0.0.1: this host only)"),
        Variable(name: "SLUICE_SHUTDOWN_TIMEOUT_MS", defaultValue: "30000", meaning: "graceful shutdown bound; a second signal exits at once"),
        Variable(name: "SLUICE_LOG_LEVEL", defaultValue: "info", meaning: "trace, debug, info, notice, warning, error, critical"),
        Variable(name: "SLUICE_LOG_FORMAT", defaultValue: "text", meaning: "text or json (one object per line)"),
        Variable(name: "SLUICE_DEMO_LINES", defaultValue: "5000", meaning: "sample lines fed to the embedded broker"),
        Variable(name: "SLUICE_KAFKA_<PROP>", defaultValue: "", meaning: "librdkafka property, e.g. SLUICE_KAFKA_SECURITY_PROTOCOL=SASL_SSL sets security.protocol"),
    ]

    /// The most overlapping sliding windows a record may be counted in (window length / slide).
    static let maximumWindowsPerRecord = 100

    /// Each variable's default as `--help` prints it; the parseable ones are also the defaults used.
    static let defaults = Dictionary(uniqueKeysWithValues: variables.map { ($0.name, $0.defaultValue) })

    var streaming: StreamingConfiguration
    var countsTopic: String
    var windowsTopic: String
    var windowMilliseconds: Int64
    var slideMilliseconds: Int64
    var allowedLatenessMilliseconds: Int64
    /// nil: start the embedded broker.
    var bootstrapServers: String?
    var demoLines: Int
    var httpPort: Int
    var httpHost: String
    var shutdownTimeoutMilliseconds: Int
    var logLevel: String
    var logFormat: String
    /// A test-only crash point, `POINT` or `POINT:COUNT` (`SLUICE_TEST_CRASH_AT`).
    var crashTrigger: CrashTrigger?
    /// How the job runs (`SLUICE_MODE`).
    enum Mode: Equatable {
        /// One instance per group, the receiver's local WAL and checkpoints.
        case standalone
        /// N instances of one group, state in `shards` shards over Kafka (`SLUICE_SHARDS`).
        case distributed(shards: Int32)

        var name: String {
            switch self {
            case .standalone: "standalone"
            case .distributed: "distributed"
            }
        }
    }

    var mode: Mode
    var instanceID: String
    /// Distributed mode: where this instance's state queries are answered; nil with HTTP off.
    var advertisedURL: String?
    /// Distributed mode: static group membership with the instance id (`SLUICE_STATIC_MEMBERSHIP`).
    var staticMembership: Bool

    /// Reads and validates every variable.
    ///
    /// - Throws: ``ConfigurationError`` for the first bad value.
    init(environment: [String: String]) throws {
        try Self.refuseUnknownVariables(in: environment)
        let reader = EnvironmentReader(environment, defaults: Self.defaults)
        bootstrapServers = try reader.string("KAFKA_BOOTSTRAP_SERVERS")
        let inputTopics = try reader.list("SLUICE_INPUT_TOPICS")
        countsTopic = try reader.text("SLUICE_COUNTS_TOPIC")
        windowsTopic = try reader.text("SLUICE_WINDOWS_TOPIC")
        let batch = try reader.integer("SLUICE_BATCH_INTERVAL_MS", range: 1...3_600_000)
        // The documented default, lowered to the batch interval when that is shorter.
        let block = try reader.integer("SLUICE_BLOCK_INTERVAL_MS", default: min(Int(Self.defaults["SLUICE_BLOCK_INTERVAL_MS"]!)!, batch), range: 1...3_600_000)
        guard block <= batch else {
            throw ConfigurationError(variable: "SLUICE_BLOCK_INTERVAL_MS", value: String(block), accepted: "at most SLUICE_BATCH_INTERVAL_MS (\(batch))")
        }
        windowMilliseconds = Int64(try reader.integer("SLUICE_WINDOW_MS", range: 1...Int(Int32.max)))
        slideMilliseconds = Int64(try reader.integer("SLUICE_SLIDE_MS", default: Int(windowMilliseconds), range: 1...Int(Int32.max)))
        guard slideMilliseconds <= windowMilliseconds, windowMilliseconds % slideMilliseconds == 0 else {
            throw ConfigurationError(variable: "SLUICE_SLIDE_MS", value: String(slideMilliseconds), accepted: "a divisor of SLUICE_WINDOW_MS (\(windowMilliseconds))")
        }
        // Every record is counted in window / slide windows: a 1 h window with a 1 s slide would keep 3,600 copies.
        guard windowMilliseconds / slideMilliseconds <= Self.maximumWindowsPerRecord else {
            throw ConfigurationError(
                variable: "SLUICE_SLIDE_MS", value: String(slideMilliseconds),
                accepted: "at least SLUICE_WINDOW_MS / \(Self.maximumWindowsPerRecord) (\(windowMilliseconds / Int64(Self.maximumWindowsPerRecord))): each record is counted in every window that holds it")
        }
        allowedLatenessMilliseconds = Int64(try reader.integer("SLUICE_ALLOWED_LATENESS_MS", range: 0...Int(Int32.max)))
        let exactlyOnce = try reader.boolean("SLUICE_EXACTLY_ONCE")
        let shardCount = try reader.integer("SLUICE_SHARDS", range: 1...10_000)
        mode = try reader.choice("SLUICE_MODE", among: ["standalone", "distributed"]) == "distributed"
            ? .distributed(shards: Int32(shardCount)) : .standalone
        instanceID = try reader.string("SLUICE_INSTANCE_ID") ?? ProcessInfo.processInfo.hostName
        staticMembership = try reader.boolean("SLUICE_STATIC_MEMBERSHIP")
        for variable in Self.variables where !variable.modes.include(mode) {
            // Its default is what the mode does anyway ("false (true with ...)": false).
            let neutral = [variable.defaultValue, String(variable.defaultValue.prefix { $0 != " " })]
            guard let value = try reader.string(variable.name), !neutral.contains(value) else { continue }
            throw ConfigurationError(
                variable: variable.name, value: value, accepted: "unset (or its default) in \(mode.name) mode, which does not honour it")
        }
        if mode != .standalone, bootstrapServers == nil {
            throw ConfigurationError(variable: "SLUICE_MODE", value: mode.name, accepted: "standalone without KAFKA_BOOTSTRAP_SERVERS (the embedded broker serves one instance)")
        }
        demoLines = try reader.integer("SLUICE_DEMO_LINES", range: 1...10_000_000)
        httpPort = try reader.integer("SLUICE_HTTP_PORT", range: 0...65535)
        if let url = try reader.string("SLUICE_ADVERTISED_URL") {
            guard url.hasPrefix("http://") || url.hasPrefix("https://"), url.count > "https://".count, !url.contains(" ") else {
                throw ConfigurationError(
                    variable: "SLUICE_ADVERTISED_URL", value: url, accepted: "an http:// or https:// URL without spaces, such as http://sluice-1:9400")
            }
            advertisedURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        } else {
            advertisedURL = httpPort == 0 ? nil : "http://\(instanceID):\(httpPort)"
        }
        httpHost = try reader.text("SLUICE_HTTP_HOST")
        shutdownTimeoutMilliseconds = try reader.integer("SLUICE_SHUTDOWN_TIMEOUT_MS", range: 1...3_600_000)
        logLevel = try reader.choice("SLUICE_LOG_LEVEL", among: ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        logFormat = try reader.choice("SLUICE_LOG_FORMAT", among: ["text", "json"])
        if let crash = try reader.string("SLUICE_TEST_CRASH_AT") {
            let parts = crash.split(separator: ":")
            guard let point = CrashPoint(rawValue: String(parts[0])), parts.count <= 2,
                let count = parts.count == 2 ? Int(parts[1]) : 1, count > 0
            else {
                throw ConfigurationError(variable: "SLUICE_TEST_CRASH_AT", value: crash, accepted: "POINT[:COUNT] with POINT one of \(CrashPoint.allCases.map(\.rawValue))")
            }
            crashTrigger = CrashTrigger(point: point, count: count)
        }

        // The embedded broker starts empty every time, so its demo must not resume an earlier run's state.
        let defaultCheckpointDirectory = bootstrapServers == nil ? NSTemporaryDirectory() + "sluice-demo-\(getpid())" : "./sluice-data"
        let backlog = try reader.integer("SLUICE_MAX_BACKLOG_MB", range: 1...1_000_000) << 20
        var kafkaProperties: [String: String] = [:]
        for (name, value) in environment where name.hasPrefix("SLUICE_KAFKA_") && name.count > "SLUICE_KAFKA_".count {
            let property = name.dropFirst("SLUICE_KAFKA_".count).lowercased().replacingOccurrences(of: "_", with: ".")
            // These would silently break the commit-after-durability guarantee or the group the service joins.
            guard !["enable.auto.commit", "enable.auto.offset.store", "group.id", "bootstrap.servers"].contains(property) else {
                throw ConfigurationError(variable: name, value: value, accepted: "nothing: sluice manages \(property) itself")
            }
            kafkaProperties[property] = value
        }
        streaming = StreamingConfiguration(
            kafka: KafkaConfig(bootstrapServers: bootstrapServers ?? "", clientID: "sluice", properties: kafkaProperties),
            inputTopics: inputTopics,
            groupID: try reader.text("SLUICE_GROUP_ID"),
            batchIntervalMilliseconds: batch,
            blockIntervalMilliseconds: block,
            maxBlockBytes: min(8 << 20, backlog / 4),
            checkpointDirectory: try reader.string("SLUICE_CHECKPOINT_DIR") ?? defaultCheckpointDirectory,
            isWriteAheadLogEnabled: try reader.boolean("SLUICE_WAL"),
            skipsCorruptWriteAheadLog: try reader.boolean("SLUICE_WAL_SKIP_CORRUPT"),
            checkpointEveryBatches: try reader.integer("SLUICE_CHECKPOINT_EVERY_BATCHES", range: 1...1_000_000),
            maxRatePerPartition: try reader.integer("SLUICE_MAX_RATE_PER_PARTITION", range: 0...Int(Int32.max)),
            maxBacklogBytes: backlog,
            stopsAtEnd: try reader.boolean("SLUICE_STOP_AT_END", default: bootstrapServers == nil),
            deadLetterTopic: try reader.string("SLUICE_DEAD_LETTER_TOPIC"),
            sessionTimeoutMilliseconds: try reader.integer("SLUICE_SESSION_TIMEOUT_MS", range: 1000...3_600_000),
            maxEventTimeAheadMilliseconds: Int64(try reader.integer("SLUICE_MAX_EVENT_AHEAD_MS", range: 0...Int(Int64.max / 2))),
            engineThreads: try reader.integer(
                "SLUICE_ENGINE_THREADS", default: StreamingConfiguration.defaultEngineThreads, range: 1...256)
        )
        if staticMembership { streaming.groupInstanceID = instanceID }
        if exactlyOnce {
            guard bootstrapServers != nil else {
                throw ConfigurationError(
                    variable: "SLUICE_EXACTLY_ONCE", value: "true",
                    accepted: "false without KAFKA_BOOTSTRAP_SERVERS (the embedded broker's transactions are not real)")
            }
            // Distributed mode needs no log: the partials topic is its log, and a transaction covers each step.
            guard streaming.isWriteAheadLogEnabled || mode != .standalone else {
                throw ConfigurationError(variable: "SLUICE_WAL", value: "false", accepted: "true with SLUICE_EXACTLY_ONCE (replays must cut the same batches)")
            }
            streaming.isExactlyOnce = true
        }
        for output in [countsTopic, windowsTopic] + [streaming.deadLetterTopic].compactMap({ $0 }) where inputTopics.contains(output) {
            let variable = output == countsTopic ? "SLUICE_COUNTS_TOPIC" : output == windowsTopic ? "SLUICE_WINDOWS_TOPIC" : "SLUICE_DEAD_LETTER_TOPIC"
            throw ConfigurationError(variable: variable, value: output, accepted: "a topic that is not an input topic (it would feed its own output back)")
        }
        streaming.stateSettings = [
            "SLUICE_INPUT_TOPICS": inputTopics.sorted().joined(separator: ","),
            "SLUICE_COUNTS_TOPIC": countsTopic, "SLUICE_WINDOWS_TOPIC": windowsTopic,
            "SLUICE_WINDOW_MS": String(windowMilliseconds), "SLUICE_SLIDE_MS": String(slideMilliseconds),
            "SLUICE_ALLOWED_LATENESS_MS": String(allowedLatenessMilliseconds),
        ]
    }

    /// The variables read beside the table: a test-only one.
    private static let unlistedVariables: Set<String> = ["SLUICE_TEST_CRASH_AT"]

    /// A `SLUICE_` variable that names no setting (a typo, or one this version does not have) stops start-up,
    /// naming the nearest setting, rather than leave its intent silently unapplied. `SLUICE_KAFKA_<PROP>` passes
    /// properties to librdkafka, which names an unknown one itself.
    private static func refuseUnknownVariables(in environment: [String: String]) throws {
        let known = Set(variables.map(\.name)).union(unlistedVariables)
        for (name, value) in environment.sorted(by: { $0.key < $1.key })
        where name.hasPrefix("SLUICE_") && !name.hasPrefix("SLUICE_KAFKA_") && !known.contains(name) {
            let nearest = variables.map(\.name).filter { !$0.hasSuffix("<PROP>") }.min { distance($0, name) < distance($1, name) }
            throw ConfigurationError(
                variable: name, value: value,
                accepted: "a setting sluice has: there is no \(name)\(nearest.map { "; did you mean \($0)?" } ?? "") (--help lists them all)")
        }
    }

    /// The edit distance of two names (insertions, deletions and substitutions of one character).
    private static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// Distributed mode's shard count; nil in standalone mode.
    var shardCount: Int32? {
        if case .distributed(let shards) = mode { shards } else { nil }
    }

    /// The effective configuration, one `NAME=value` per line, with secrets masked.
    var printable: String {
        var lines = [
            "KAFKA_BOOTSTRAP_SERVERS=\(bootstrapServers ?? "(embedded broker)")",
            "SLUICE_INPUT_TOPICS=\(streaming.inputTopics.joined(separator: ","))",
            "SLUICE_GROUP_ID=\(streaming.groupID)",
            "SLUICE_COUNTS_TOPIC=\(countsTopic)",
            "SLUICE_WINDOWS_TOPIC=\(windowsTopic)",
            "SLUICE_BATCH_INTERVAL_MS=\(streaming.batchIntervalMilliseconds)",
            "SLUICE_BLOCK_INTERVAL_MS=\(streaming.blockIntervalMilliseconds)",
            "SLUICE_WINDOW_MS=\(windowMilliseconds)",
            "SLUICE_SLIDE_MS=\(slideMilliseconds)",
            "SLUICE_ALLOWED_LATENESS_MS=\(allowedLatenessMilliseconds)",
            "SLUICE_MAX_EVENT_AHEAD_MS=\(streaming.maxEventTimeAheadMilliseconds)",
            "SLUICE_CHECKPOINT_DIR=\(streaming.checkpointDirectory)",
            "SLUICE_CHECKPOINT_EVERY_BATCHES=\(streaming.checkpointEveryBatches)",
            "SLUICE_WAL=\(streaming.isWriteAheadLogEnabled)",
            "SLUICE_WAL_SKIP_CORRUPT=\(streaming.skipsCorruptWriteAheadLog)",
            "SLUICE_MODE=\(mode.name)",
            "SLUICE_SHARDS=\(shardCount.map(String.init) ?? Self.defaults["SLUICE_SHARDS"]!)",
            "SLUICE_INSTANCE_ID=\(instanceID)",
            "SLUICE_ADVERTISED_URL=\(advertisedURL ?? "")",
            "SLUICE_STATIC_MEMBERSHIP=\(staticMembership)",
            "SLUICE_EXACTLY_ONCE=\(streaming.isExactlyOnce)",
            "SLUICE_MAX_RATE_PER_PARTITION=\(streaming.maxRatePerPartition)",
            "SLUICE_MAX_BACKLOG_MB=\(streaming.maxBacklogBytes >> 20)",
            "SLUICE_ENGINE_THREADS=\(streaming.engineThreads)",
            "SLUICE_STOP_AT_END=\(streaming.stopsAtEnd)",
            "SLUICE_DEAD_LETTER_TOPIC=\(streaming.deadLetterTopic ?? "")",
            "SLUICE_SESSION_TIMEOUT_MS=\(streaming.sessionTimeoutMilliseconds)",
            "SLUICE_HTTP_PORT=\(httpPort)",
            "SLUICE_HTTP_HOST=\(httpHost)",
            "SLUICE_SHUTDOWN_TIMEOUT_MS=\(shutdownTimeoutMilliseconds)",
            "SLUICE_LOG_LEVEL=\(logLevel)",
            "SLUICE_LOG_FORMAT=\(logFormat)",
        ]
        for (name, value) in streaming.kafka.properties.sorted(by: { $0.key < $1.key }) {
            let isSecret = ["password", "secret", "key", "token", "jaas"].contains { name.contains($0) }
            let variable = "SLUICE_KAFKA_" + name.uppercased().replacingOccurrences(of: ".", with: "_")
            lines.append("\(variable)=\(isSecret ? "****" : value)")
        }
        return lines.joined(separator: "\n")
    }

    /// The `--help` text.
    static var help: String {
        let width = variables.map(\.name.count).max() ?? 0
        let rows = variables.map { variable in
            let padded = variable.name.padding(toLength: width, withPad: " ", startingAt: 0)
            let defaultText = variable.defaultValue.isEmpty ? "" : " (default: \(variable.defaultValue))"
            return "  \(padded)  \(variable.meaning)\(defaultText)"
        }
        return """
            sluice: a Kafka stream-processing consumer (running and windowed word counts).

            Usage: sluice [--help | --print-config]
            Configuration comes from environment variables:
            \(rows.joined(separator: "\n"))
            """
    }
}

/// Typed reads of environment variables; every failure names the variable. Without an explicit `default:`, a read
/// uses the variable's default from ``ServiceConfiguration/variables``, the one place it is written.
private struct EnvironmentReader {
    let environment: [String: String]
    let defaults: [String: String]

    init(_ environment: [String: String], defaults: [String: String]) {
        self.environment = environment
        self.defaults = defaults
    }

    /// The trimmed value, or nil when unset or empty.
    func string(_ name: String) throws -> String? {
        guard let value = environment[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        return value
    }

    /// The value, or the documented default.
    func text(_ name: String) throws -> String {
        try string(name) ?? documentedDefault(name)
    }

    func list(_ name: String) throws -> [String] {
        guard let raw = try string(name) else { return documentedDefault(name).split(separator: ",").map(String.init) }
        let items = raw.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !items.isEmpty, !items.contains(where: \.isEmpty) else {
            throw ConfigurationError(variable: name, value: raw, accepted: "a comma-separated list of non-empty names")
        }
        return items
    }

    func integer(_ name: String, default defaultValue: Int? = nil, range: ClosedRange<Int>) throws -> Int {
        guard let raw = try string(name) else { return defaultValue ?? Int(documentedDefault(name))! }
        guard let value = Int(raw), range.contains(value) else {
            throw ConfigurationError(variable: name, value: raw, accepted: "an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    func boolean(_ name: String, default defaultValue: Bool? = nil) throws -> Bool {
        guard let raw = try string(name) else { return defaultValue ?? (documentedDefault(name) == "true") }
        switch raw.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw ConfigurationError(variable: name, value: raw, accepted: "true or false")
        }
    }

    func choice(_ name: String, among choices: [String]) throws -> String {
        guard let raw = try string(name) else { return documentedDefault(name) }
        guard choices.contains(raw.lowercased()) else {
            throw ConfigurationError(variable: name, value: raw, accepted: "one of \(choices.joined(separator: ", "))")
        }
        return raw.lowercased()
    }

    /// A variable's default from the table: a missing one is a programming error, caught by every start.
    private func documentedDefault(_ name: String) -> String {
        guard let value = defaults[name] else { preconditionFailure("\(name) is not in ServiceConfiguration.variables") }
        return value
    }
}
