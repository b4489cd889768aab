import Foundation
import KafkaIO
import NIOHTTP1
import Prometheus
import StreamEngine
import Streaming

/// The HTTP routes: health and readiness probes, Prometheus metrics, the streaming page and its JSON API, and
/// state queries of the running totals (Kafka Streams' interactive queries).
enum ServiceRoutes {
    /// How many of the largest totals `/api/top` may return (`n` beyond it is a bad request).
    static let maximumTop = 1000

    /// Where state queries are answered from.
    enum Totals: Sendable {
        /// The standalone job's state: every word.
        case standalone(StateView<String, Int64>)
        /// The shards a distributed instance owns now; a word of another shard is answered with 503 naming it.
        case distributed(DistributedContext)

        var distinctWords: Int {
            switch self {
            case .standalone(let view): view.keyCount
            case .distributed(let context): context.shardTotals.wordCount
            }
        }
    }

    static func make(
        context: any StreamingRuntime, totals: Totals, registry: PrometheusCollectorRegistry,
        configuration: ServiceConfiguration
    ) -> HTTPEndpoint.Routes {
        let interval = configuration.streaming.batchIntervalMilliseconds
        let exact: [String: HTTPEndpoint.Handler] = [
            "/": { _ in .init(status: .ok, body: StreamingPage.html, contentType: "text/html; charset=utf-8") },
            "/healthz": { _ in
                let status = context.status
                return status.isHealthy(staleAfter: .seconds(30))
                    ? .init(status: .ok, body: "ok\n")
                    : .init(status: .serviceUnavailable, body: "unhealthy: \(status.failure ?? "no progress")\n")
            },
            "/readyz": { _ in
                let status = context.status
                return status.isReady
                    ? .init(status: .ok, body: "ready\n")
                    : .init(status: .serviceUnavailable, body: "not ready: recovered=\(status.isRecovered) partitions=\(status.assignedPartitions)\n")
            },
            "/metrics": { _ in
                var buffer: [UInt8] = []
                registry.emit(into: &buffer)
                return .init(status: .ok, body: String(decoding: buffer, as: UTF8.self), contentType: "text/plain; version=0.0.4")
            },
            "/api/status": { _ in
                json(StatusDocument(context.status, recent: context.recentBatches, configuration: configuration, distinctWords: totals.distinctWords))
            },
            "/api/batches": { _ in json(BatchesDocument(batchIntervalMs: interval, batches: context.recentBatches)) },
            "/api/top": { request in top(request, totals: totals) },
        ]
        return HTTPEndpoint.Routes(exact: exact, prefixes: ["/api/counts/": { request in count(request, totals: totals) }])
    }

    /// `GET /api/counts/<word>`: the word (percent-encoded; normalized as the tokenizer does) and its total.
    private static func count(_ request: HTTPEndpoint.Request, totals: Totals) -> HTTPEndpoint.Response {
        let encoded = request.path.dropFirst("/api/counts/".count)
        guard let text = PercentDecoding.string(encoded, plusIsSpace: false) else {
            return .error(.badRequest, "the word is not valid percent-encoded UTF-8")
        }
        let words = WordTokenizer.words(text)
        guard words.count == 1, let word = words.first else {
            return .error(.badRequest, "expected exactly one word, found \(words.count)")
        }
        switch totals {
        case .standalone(let view):
            return json(WordCount(word: word, count: view.state(of: word) ?? 0))
        case .distributed(let context):
            let shards = context.shardTotals
            switch shards.total(of: word) {
            case .total(let total):
                return json(WordCount(word: word, count: total))
            case .notOwned(let shard):
                // A query redirected here by an instance whose directory was behind: no second redirect (no loops).
                guard request.query["redirected"] == nil, let owner = context.owner(of: shard) else {
                    return .error(
                        .serviceUnavailable,
                        "\(word) is in shard \(shard), which this instance does not own and no other instance has announced "
                            + "(it is being restored or moved): try again")
                }
                guard owner.address != "-" else {
                    return .error(.serviceUnavailable, "\(word) is in shard \(shard), owned by \(owner.instanceID), which serves no HTTP")
                }
                var response = HTTPEndpoint.Response.error(
                    .temporaryRedirect, "\(word) is in shard \(shard), owned by \(owner.instanceID): \(owner.address)\(request.path)")
                response.location = owner.address + request.path + "?redirected=1"
                return response
            }
        }
    }

    private static func describe(_ shards: [Int32]) -> String {
        shards.isEmpty ? "none" : "shards " + shards.map(String.init).joined(separator: ",")
    }

    /// `GET /api/top?n=20`: the largest totals, largest first (ties by word).
    private static func top(_ request: HTTPEndpoint.Request, totals: Totals) -> HTTPEndpoint.Response {
        let text = request.query["n"] ?? "20"
        guard let n = Int(text), (1...maximumTop).contains(n) else {
            return .error(.badRequest, "n must be an integer from 1 to \(maximumTop), got \(text.prefix(40))")
        }
        switch totals {
        case .standalone(let view):
            let largest = view.largest(n).map { WordCount(word: $0.key, count: $0.state) }
            return json(TopDocument(distinctWords: view.keyCount, top: largest))
        case .distributed(let context):
            let shards = context.shardTotals
            guard let largest = shards.largest(n) else {
                return .error(
                    .serviceUnavailable,
                    "the largest totals need all \(shards.shards.count) shards, and this instance owns \(describe(shards.ownedShards)) now")
            }
            return json(TopDocument(distinctWords: shards.wordCount, top: largest.map { WordCount(word: $0.word, count: $0.total) }))
        }
    }

    private static func json(_ document: some Encodable) -> HTTPEndpoint.Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(document) else { return .error(.internalServerError, "encoding failed") }
        return .init(status: .ok, body: String(decoding: data, as: UTF8.self), contentType: "application/json")
    }
}

private struct WordCount: Encodable {
    var word: String
    var count: Int64
}

private struct TopDocument: Encodable {
    var distinctWords: Int
    var top: [WordCount]
}

/// `/api/batches`: the batch interval and the recent batches, oldest first.
private struct BatchesDocument: Encodable {
    var batchIntervalMs: Int
    var batches: [BatchInfo]
}

/// `/api/status`: what the streaming page shows besides the batches.
private struct StatusDocument: Encodable {
    struct Partition: Encodable {
        var topic: String
        var partition: Int32
        var lag: Int64?
    }

    var time = Int64(Date().timeIntervalSince1970 * 1000)
    var mode: String
    /// Distributed mode: the shards this instance owns.
    var ownedShards: [Int32]?
    var group: String
    var inputTopics: [String]
    var batchIntervalMs: Int
    var healthy: Bool
    var ready: Bool
    var recovered: Bool
    var failure: String?
    /// Input records per second over the last (up to 10) batches that were not replayed.
    var inputRecordsPerSecond: Double
    var watermark: Int64?
    var backlogBytes: Int
    var heldInputBytes: Int
    var walBytes: Int?
    var lastCheckpoint: CheckpointInfo?
    var partitions: [Partition]
    var totals: StreamingTotals
    var distinctWords: Int

    init(_ status: StreamingStatus, recent: [BatchInfo], configuration: ServiceConfiguration, distinctWords: Int) {
        let interval = configuration.streaming.batchIntervalMilliseconds
        let live = recent.filter { !$0.isReplay }.suffix(10)
        mode = status.ownedShards == nil ? "standalone" : "distributed"
        ownedShards = status.ownedShards
        group = configuration.streaming.groupID
        inputTopics = configuration.streaming.inputTopics
        batchIntervalMs = interval
        healthy = status.isHealthy(staleAfter: .seconds(30))
        ready = status.isReady
        recovered = status.isRecovered
        failure = status.failure
        inputRecordsPerSecond = live.isEmpty ? 0 : Double(live.map(\.records).reduce(0, +)) * 1000 / Double(live.count * interval)
        watermark = status.watermark
        backlogBytes = status.backlogBytes
        heldInputBytes = status.heldInputBytes
        walBytes = status.logBytes
        lastCheckpoint = status.lastCheckpoint
        partitions = status.assigned.sorted().map { Partition(topic: $0.topic, partition: $0.partition, lag: status.lag[$0]) }
        totals = status.totals
        self.distinctWords = distinctWords
    }
}
