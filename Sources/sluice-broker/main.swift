import Foundation
import KafkaIO
import Logging

// A standalone embedded Kafka broker (librdkafka's mock cluster) for tests, benchmarks and demos that need the
// broker to live in its own process, e.g. to survive a kill -9 of the service.
//
// Usage: sluice-broker [--brokers N] [--rtt MS] [--topic NAME:PARTITIONS]...
// `--rtt` delays every broker's responses by MS milliseconds, as a remote cluster's round trip would. Prints `bootstrap=HOST:PORT,...` on its first line, then runs until stdin closes or SIGTERM/SIGINT.

var brokerCount = 1
var roundTripMilliseconds = 0
var topics: [(String, Int)] = []
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--brokers":
        guard let value = arguments.popFirst().flatMap({ Int($0) }), value > 0 else {
            FileHandle.standardError.write(Data("--brokers needs a positive number\n".utf8))
            exit(2)
        }
        brokerCount = value
    case "--rtt":
        guard let value = arguments.popFirst().flatMap({ Int($0) }), value >= 0 else {
            FileHandle.standardError.write(Data("--rtt needs milliseconds (0 or more)\n".utf8))
            exit(2)
        }
        roundTripMilliseconds = value
    case "--topic":
        let spec = arguments.popFirst()?.split(separator: ":") ?? []
        guard spec.count == 2, let partitions = Int(spec[1]), partitions > 0 else {
            FileHandle.standardError.write(Data("--topic needs NAME:PARTITIONS\n".utf8))
            exit(2)
        }
        topics.append((String(spec[0]), partitions))
    default:
        FileHandle.standardError.write(Data("usage: sluice-broker [--brokers N] [--rtt MS] [--topic NAME:PARTITIONS]...\n".utf8))
        exit(2)
    }
}

var logger = Logger(label: "sluice-broker")
logger.logLevel = .warning
do {
    let cluster = try MockCluster(brokerCount: brokerCount, logger: logger)
    for (name, partitions) in topics {
        try cluster.createTopic(name, partitions: partitions)
    }
    for broker in 1...Int32(brokerCount) where roundTripMilliseconds > 0 {
        try cluster.setRoundTripTime(.milliseconds(roundTripMilliseconds), broker: broker)
    }
    FileHandle.standardOutput.write(Data("bootstrap=\(cluster.bootstrapServers)\n".utf8))
    signal(SIGTERM) { _ in exit(0) }
    signal(SIGINT) { _ in exit(0) }
    // Serve until whoever started us closes our stdin (or exits): no broker is left behind.
    while let _ = readLine(strippingNewline: false) {}
    withExtendedLifetime(cluster) {}
} catch {
    FileHandle.standardError.write(Data("sluice-broker: \(error)\n".utf8))
    exit(1)
}
