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
                "mounts": sorted(v.split(":")[0] for name in ("prometheus", "grafana") for v in doc["services"][name]["volumes"]),
                "replicas": {name: {"mode": s["environment"]["SLUICE_MODE"], "group": s["environment"]["SLUICE_GROUP_ID"],
                                    "id": s["environment"]["SLUICE_INSTANCE_ID"], "profiles": s["profiles"],
                                    "volume": s["volumes"][0].split(":")[0] in doc["volumes"]}
                             for name, s in doc["services"].items() if name.startswith("sluice-")},
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
        #expect(parsed["services"] as? [String] == ["create-topics", "grafana", "kafka", "prometheus", "sluice", "sluice-1", "sluice-2", "sluice-3"])
        // The distributed example: three replicas of one group, each with its own instance id and data volume, only
        // with the `distributed` profile.
        let replicas = try #require(parsed["replicas"] as? [String: [String: Any]])
        #expect(Set(replicas.values.compactMap { $0["id"] as? String }) == ["sluice-1", "sluice-2", "sluice-3"])
        for (name, replica) in replicas {
            #expect(replica["mode"] as? String == "distributed", "\(name)")
            #expect(replica["group"] as? String == "sluice-distributed", "\(name)")
            #expect(replica["profiles"] as? [String] == ["distributed"], "\(name)")
            #expect(replica["volume"] as? Bool == true, "\(name)")
        }
        for mount in parsed["mounts"] as? [String] ?? [] {
            #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("docker").appendingPathComponent(mount).path), "\(mount)")
        }
        #expect((parsed["mounts"] as? [String])?.count == 3)
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

    /// Every series the dashboard queries is one the service exports (names read from its metrics table).
    @Test func theGrafanaDashboardQueriesOnlyExportedMetrics() throws {
        let source = try String(contentsOf: Self.root.appendingPathComponent("Sources/Streaming/StreamingMetrics.swift"), encoding: .utf8)
        let exported = Set(source.matches(of: /label: "(sluice_\w+)"/).map { String($0.1) })
        #expect(exported.count >= 20)
        let data = try Data(contentsOf: Self.root.appendingPathComponent("docker/grafana/sluice-dashboard.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let panels = dashboard["panels"] as? [[String: Any]] ?? []
        let expressions = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(panels.count >= 10 && expressions.count >= panels.count)
        var used: Set<String> = []
        for expression in expressions {
            for match in expression.matches(of: /sluice_\w+/) {
                let name = String(match.0).replacing(/_(bucket|sum|count)$/, with: "")
                #expect(exported.contains(name), "\(name) in \(expression)")
                used.insert(name)
            }
        }
        #expect(used.isSuperset(of: ["sluice_records_received_total", "sluice_consumer_lag_records", "sluice_batch_processing_duration_seconds"]))
    }
}
