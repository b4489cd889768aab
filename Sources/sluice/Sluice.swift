import CMalloc
import CoreMetrics
import Foundation
import KafkaIO
import Logging
import Metrics
import Prometheus
import SampleData
import ServiceLifecycle
import Storage
import StreamEngine
import Streaming
import UnixSignals

/// The `sluice` service: word counts (running and windowed) from Kafka topics to Kafka topics.
@main
enum Sluice {
    static func main() async {
        let arguments = CommandLine.arguments.dropFirst()
        if arguments.contains("--help") || arguments.contains("-h") {
            print(ServiceConfiguration.help)
            return
        }
        let configuration: ServiceConfiguration
        do {
            configuration = try ServiceConfiguration(environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("sluice: configuration error: \(error)\n".utf8))
            exit(2)
        }
        if arguments.contains("--print-config") {
            print(configuration.printable)
            return
        }
        if let unknown = arguments.first(where: { $0 != "--print-config" }) {
            FileHandle.standardError.write(Data("sluice: unknown argument \(unknown); see --help\n".utf8))
            exit(2)
        }
        returnLargeBuffersToTheSystem()
        let logger = bootstrapLogging(configuration)
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        do {
            try await run(configuration, registry: registry, logger: logger)
        } catch let error as ConfigurationError {
            logger.critical("start-up failed", metadata: ["error": "\(error)"])
            exit(2)
        } catch let error where isStartUpRefusal(error) {
            logger.critical("start-up refused", metadata: ["error": "\(error)"])
            exit(2)
        } catch is ShutdownTimedOut {
            logger.critical("graceful shutdown timed out")
            // _exit: no atexit handlers racing librdkafka's threads, which may still be inside a blocked call.
            _exit(1)
        } catch {
            logger.critical("sluice stopped on an error", metadata: ["error": "\(error)"])
            exit(1)
        }
    }

    /// Errors that mean "not with this data directory or these settings": exit 2, like a bad variable.
    private static func isStartUpRefusal(_ error: any Error) -> Bool {
        if let error = error as? StreamingError { return [.settingChanged, .logMismatch, .invalidConfiguration].contains(error.code) }
        return (error as? StorageError)?.code == .locked
    }

    /// Serves every allocation of 1 MiB or more with its own memory mapping, returned to the system when freed.
    ///
    /// Blocks and per-batch arrays are large and short-lived. By default glibc raises this threshold each time such
    /// a buffer is freed (up to 32 MiB), after which they come from the heap, whose freed pages stay resident: on
    /// the 1M-line benchmark that costs about 40 MB of peak RSS.
    private static func returnLargeBuffersToTheSystem() {
        _ = mallopt(M_MMAP_THRESHOLD, 1 << 20)
    }

    private static func bootstrapLogging(_ configuration: ServiceConfiguration) -> Logger {
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        let isJSON = configuration.logFormat == "json"
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = isJSON ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "sluice")
    }

    private static func run(_ configuration: ServiceConfiguration, registry: PrometheusCollectorRegistry, logger: Logger) async throws {
        let job = WordCountJob.Configuration(
            countsTopic: configuration.countsTopic, windowsTopic: configuration.windowsTopic,
            windowLength: configuration.windowMilliseconds, slide: configuration.slideMilliseconds,
            allowedLateness: configuration.allowedLatenessMilliseconds
        )
        // Start-up blocks (broker round trips, WAL and checkpoint reads): keep it off the concurrency pool.
        let (context, totals, embedded) = try await onDedicatedThread { () throws -> (any StreamingRuntime, ServiceRoutes.Totals, MockCluster?) in
            var streamingConfiguration = configuration.streaming
            if case .distributed(let shards) = configuration.mode {
                try checkReachable(streamingConfiguration.kafka, logger: logger)
                let setup = try DistributedSetup(
                    groupID: streamingConfiguration.groupID, shards: shards, instanceID: configuration.instanceID,
                    advertisedURL: configuration.advertisedURL, job: job)
                let context = try DistributedContext(
                    configuration: streamingConfiguration, setup: setup, logger: logger, crashTrigger: configuration.crashTrigger)
                return (context, .distributed(context), nil)
            }
            var embedded: MockCluster?
            if configuration.bootstrapServers == nil {
                let cluster = try MockCluster(brokerCount: 1, logger: logger)
                try loadDemo(into: cluster, configuration: configuration, logger: logger)
                streamingConfiguration.kafka.bootstrapServers = cluster.bootstrapServers
                embedded = cluster
            } else {
                try checkReachable(streamingConfiguration.kafka, logger: logger)
            }
            var totals: StateView<String, Int64>?
            let context = try StreamingContext.getOrCreate(
                configuration: streamingConfiguration, logger: logger, crashTrigger: configuration.crashTrigger
            ) { graph in
                totals = try WordCountJob.build(on: graph, configuration: job)
            }
            return (context, .standalone(totals!), embedded)
        }
        // The context (and its Kafka clients) goes before the embedded broker does: no disconnect noise at the end.
        try await serve(context, totals: totals, configuration: configuration, registry: registry, logger: logger)
        if let embedded {
            try await onDedicatedThread {
                try printTopCounts(from: embedded, topic: configuration.countsTopic, logger: logger)
            }
        }
    }

    /// Runs the context and the HTTP endpoint as a service group until the context stops or a signal arrives.
    private static func serve(
        _ context: any StreamingRuntime, totals: ServiceRoutes.Totals, configuration: ServiceConfiguration,
        registry: PrometheusCollectorRegistry, logger: Logger
    ) async throws {
        let streaming = StreamingService(context: context, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if configuration.httpPort != 0 {
            let routes = ServiceRoutes.make(context: context, totals: totals, registry: registry, configuration: configuration)
            let endpoint = HTTPEndpoint(host: configuration.httpHost, port: configuration.httpPort, routes: routes, logger: logger)
            services.append(.init(service: endpoint, failureTerminationBehavior: .gracefullyShutdownGroup))
        }
        services.append(.init(service: streaming, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup))
        var groupConfiguration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // A graceful shutdown that takes longer is escalated to cancellation, which ends the wait for the context.
        groupConfiguration.maximumGracefulShutdownDuration = .milliseconds(configuration.shutdownTimeoutMilliseconds)
        let group = ServiceGroup(configuration: groupConfiguration)
        try await group.run()
    }

    /// Creates the demo topics on the embedded broker and feeds it the sample text.
    private static func loadDemo(into cluster: MockCluster, configuration: ServiceConfiguration, logger: Logger) throws {
        for topic in configuration.streaming.inputTopics {
            try cluster.createTopic(topic, partitions: 4)
        }
        try cluster.createTopic(configuration.countsTopic, partitions: 4)
        try cluster.createTopic(configuration.windowsTopic, partitions: 4)
        let producer = try KafkaProducer(
            config: KafkaProducerConfig(common: KafkaConfig(bootstrapServers: cluster.bootstrapServers, clientID: "sluice-demo-feeder")),
            logger: logger
        )
        let topic = configuration.streaming.inputTopics[0]
        for index in 0..<configuration.demoLines {
            try producer.send(KafkaProducerRecord(topic: topic, value: Array(SampleText.line(index).utf8)))
        }
        try producer.flush(timeout: .seconds(60))
        logger.info("embedded broker started with sample text", metadata: [
            "kafka.bootstrap": "\(cluster.bootstrapServers)", "demo.lines": "\(configuration.demoLines)",
        ])
    }

    /// Fails start-up with a clear message when no broker answers in time.
    private static func checkReachable(_ kafka: KafkaConfig, logger: Logger) throws {
        let probe = try KafkaProducer(config: KafkaProducerConfig(common: kafka), logger: logger)
        do {
            try probe.checkReachable(timeout: .seconds(15))
        } catch {
            throw StreamingError(.receiver, "cannot reach Kafka at \(kafka.bootstrapServers) within 15 s", underlying: error)
        }
    }

    /// Reads the counts topic back as any consumer would and prints the largest totals.
    private static func printTopCounts(from cluster: MockCluster, topic: String, logger: Logger) throws {
        let consumer = try KafkaConsumer(
            config: KafkaConsumerConfig(common: KafkaConfig(bootstrapServers: cluster.bootstrapServers), groupID: "sluice-demo-reader"),
            logger: logger
        )
        defer { consumer.close() }
        try consumer.subscribe([topic])
        let partitions = try consumer.topicPartitionCounts(timeout: .seconds(5))[topic] ?? 0
        var totals: [String: Int64] = [:]
        var ended: Set<Int32> = []
        let deadline = ContinuousClock.now + .seconds(30)
        while ended.count < partitions, ContinuousClock.now < deadline {
            try consumer.poll(timeout: .milliseconds(200)) { event in
                switch event {
                case .message(let message):
                    guard let key = message.key else { return }
                    let word = String(decoding: key, as: UTF8.self)
                    let value = String(decoding: message.value, as: UTF8.self)
                    if let range = value.range(of: "\"count\":"),
                        let count = Int64(value[range.upperBound...].prefix { $0.isNumber })
                    {
                        totals[word] = count
                    }
                case .endOfPartition(let partition, _):
                    ended.insert(partition.partition)
                }
            }
        }
        let top = totals.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(20)
        print("Top words in \(topic) (\(totals.count) distinct, \(totals.values.reduce(0, +)) in all):")
        for (word, count) in top {
            print("  \(word.padding(toLength: 12, withPad: " ", startingAt: 0)) \(count)")
        }
    }
}

/// Runs a ``StreamingContext`` as a service: a graceful shutdown stops it after its current work; the service
/// group bounds that with `SLUICE_SHUTDOWN_TIMEOUT_MS` by cancelling the wait; a second signal exits at once.
struct StreamingService: Service {
    let context: any StreamingRuntime
    let logger: Logger

    func run() async throws {
        try context.start()
        try await withTaskCancellationOrGracefulShutdownHandler {
            do {
                try await context.awaitTermination()
            } catch is CancellationError {
                throw ShutdownTimedOut()
            }
        } onCancelOrGracefulShutdown: { [context, logger] in
            // From now on a second SIGTERM or SIGINT ends the process at once. Before the log line, so that a second
            // signal sent on seeing it cannot reach the old handler.
            SecondSignal.endsTheProcess()
            logger.info("shutting down: finishing the current batch")
            context.stop(graceful: true)
        }
    }
}

/// After the first SIGTERM or SIGINT, the next one ends the process by the signal's default action.
///
/// Setting the default action alone lost the race, once, under load: the service group's own signal sources
/// (libdispatch) can still be armed after it, and then swallow the second signal, so a stuck shutdown waited out its
/// bound. A signal source of ours receives that signal too, and re-raises it with the default action.
enum SecondSignal {
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    static func endsTheProcess() {
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_DFL)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                signal(number, SIG_DFL)
                raise(number)
            }
            source.resume()
            sources.append(source)
        }
    }
}

/// The service group cancelled a graceful shutdown that outlasted `SLUICE_SHUTDOWN_TIMEOUT_MS`.
struct ShutdownTimedOut: Error {}

/// Runs blocking work on a new thread and waits for it without holding a thread of the concurrency pool.
func onDedicatedThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result(catching: work)) }
        thread.start()
    }
}
