import Foundation
import KafkaIO
import Testing

/// What operators do by accident: a second process on the data directory, a changed setting, an output topic that
/// is also an input topic. Each is refused at start-up with exit code 2 and a message naming it.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct OperatorFaultsTests {
    static let topics = ["lines": 4, "word-counts": 4, "word-counts-windowed": 4]

    @Test func aSecondProcessOnTheDataDirectoryIsRefused() throws {
        let broker = try BrokerProcess(topics: Self.topics)
        let directory = TemporaryDirectory()
        let environment = [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_GROUP_ID": uniqueGroup(),
        ]
        let first = try SluiceProcess(environment: environment, logDirectory: directory.path)
        #expect(first.waitForLog("partitions assigned", timeout: .seconds(30)))
        let second = try SluiceProcess.run(environment, logDirectory: directory.path, timeout: .seconds(30))
        #expect(second.exitCode == 2, "stderr: \(second.standardError.suffix(1000))")
        #expect(second.standardError.contains(directory.path + "/data"))
        #expect(second.standardError.contains("pid \(first.process.processIdentifier)"))
        first.signal(SIGTERM)
        #expect(first.wait(timeout: .seconds(30)).exitCode == 0)
        // The lock goes with its holder: the next start takes it.
        var next = environment
        next["SLUICE_STOP_AT_END"] = "true"
        #expect(try SluiceProcess.run(next, logDirectory: directory.path, timeout: .seconds(60)).exitCode == 0)
    }

    @Test func aSettingTheStateDependsOnCannotChangeUnderIt() throws {
        let broker = try BrokerProcess(topics: Self.topics)
        let directory = TemporaryDirectory()
        try produceLines([(Array("a b c".utf8), StreamingClock.now)], topic: "lines", partitions: 4, bootstrap: broker.bootstrap)
        var environment = [
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SLUICE_CHECKPOINT_DIR": directory.path + "/data",
            "SLUICE_GROUP_ID": uniqueGroup(), "SLUICE_STOP_AT_END": "true", "SLUICE_WINDOW_MS": "60000",
        ]
        #expect(try SluiceProcess.run(environment, logDirectory: directory.path, timeout: .seconds(60)).exitCode == 0)
        environment["SLUICE_WINDOW_MS"] = "5000"
        let changed = try SluiceProcess.run(environment, logDirectory: directory.path, timeout: .seconds(60))
        #expect(changed.exitCode == 2)
        #expect(changed.standardError.contains("SLUICE_WINDOW_MS is 5000, but the checkpointed state was built with 60000"))
        environment["SLUICE_WINDOW_MS"] = "60000"
        #expect(try SluiceProcess.run(environment, logDirectory: directory.path, timeout: .seconds(60)).exitCode == 0)
    }

    @Test func anOutputTopicThatIsAnInputTopicIsRefused() throws {
        let directory = TemporaryDirectory()
        let result = try SluiceProcess.run([
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "SLUICE_INPUT_TOPICS": "lines,word-counts",
        ], logDirectory: directory.path, timeout: .seconds(30))
        #expect(result.exitCode == 2)
        #expect(result.standardError.contains("SLUICE_COUNTS_TOPIC"))
    }
}
