import Foundation
import Testing

/// The Docker files cannot run here (no Docker engine), so their structure is checked instead.
@Suite struct DockerFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    @Test func composeFileParsesAndWiresSluiceToKafka() throws {
        let script = """
            import json, sys, yaml
            doc = yaml.safe_load(open(sys.argv[1]))
            print(json.dumps({
                "services": sorted(doc["services"]),
                "bootstrap": doc["services"]["sluice"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"],
                "image": doc["services"]["kafka"]["image"],
                "depends": sorted(doc["services"]["sluice"]["depends_on"]),
                "dockerfile": doc["services"]["sluice"]["build"]["dockerfile"],
            }, sort_keys=True))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, Self.root.appendingPathComponent("docker/compose.yml").path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let parsed = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(parsed["services"] as? [String] == ["create-topics", "kafka", "sluice"])
        #expect(parsed["bootstrap"] as? String == "kafka:9092")
        #expect((parsed["image"] as? String)?.hasPrefix("apache/kafka:") == true)
        #expect(parsed["depends"] as? [String] == ["create-topics"])
        #expect(parsed["dockerfile"] as? String == "docker/Dockerfile")
    }

    @Test func dockerfileBuildsInOneStageAndRunsInASlimOne() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("docker/Dockerfile"), encoding: .utf8)
        let stages = text.split(separator: "\n").filter { $0.hasPrefix("FROM ") }
        #expect(stages.count == 2)
        #expect(stages.first?.contains("swift:") == true)
        #expect(text.contains("librdkafka1"))
        #expect(text.contains("ENTRYPOINT [\"/usr/local/bin/sluice\"]"))
    }
}
