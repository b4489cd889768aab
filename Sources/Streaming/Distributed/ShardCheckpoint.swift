import Foundation
import KafkaIO
import Storage

/// A local copy of one shard's state as of a committed cycle, with the changelog offset it covers: the restore
/// shortcut that Kafka Streams keeps beside its changelog. A restore starts from it and reads only the changelog
/// records after `changelogOffset` (written later, by this instance or by another owner in between).
///
/// It is only a cache: the changelog stays the source of truth. A checkpoint whose offset lies outside the
/// changelog partition (the topic was recreated, or compacted past it) is passed over for a full restore.
struct ShardCheckpoint: Codable, Equatable {
    /// One source partition's progress (a list: JSON objects take only string keys).
    struct Source: Codable, Equatable {
        var topic: String
        var partition: Int32
        var progress: ShardState.SourceProgress
    }

    /// The changelog partition's end when the checkpoint was taken: every record of its cycles lies below it.
    var changelogOffset: Int64
    var cycle: Int64
    var batchTime: Int64
    var watermark: Int64?
    var sources: [Source]
    var totals: [String: Int64]
    /// Open windows: start, then word, then count.
    var windows: [Int64: [String: Int64]]

    /// The state of a shard whose last cycle is written and committed (no changes pending).
    init(of state: ShardState, changelogOffset: Int64) {
        self.changelogOffset = changelogOffset
        cycle = state.cycle
        batchTime = state.batchTime
        watermark = state.watermark
        sources = state.sources.sorted { $0.key < $1.key }.map {
            Source(topic: $0.key.topic, partition: $0.key.partition, progress: $0.value)
        }
        totals = state.totals
        windows = state.windows
    }

    var sourceProgress: [KafkaPartition: ShardState.SourceProgress] {
        Dictionary(uniqueKeysWithValues: sources.map { (KafkaPartition(topic: $0.topic, partition: $0.partition), $0.progress) })
    }

    func encoded() throws -> [UInt8] {
        Array(try JSONEncoder().encode(self))
    }

    init(decoding payload: [UInt8]) throws {
        self = try JSONDecoder().decode(Self.self, from: Data(payload))
    }
}

/// The shard checkpoints of one instance, one ``CheckpointStore`` per shard under `<data>/shards/<shard>`.
final class ShardCheckpoints {
    private let directory: String
    private var stores: [Int32: CheckpointStore] = [:]

    init(directory: String) {
        self.directory = directory
    }

    private func store(_ shard: Int32) throws -> CheckpointStore {
        if let store = stores[shard] { return store }
        let store = try CheckpointStore(directory: "\(directory)/shards/\(shard)")
        stores[shard] = store
        return store
    }

    func write(_ checkpoint: ShardCheckpoint, shard: Int32) throws {
        try store(shard).write(try checkpoint.encoded(), sequence: UInt64(max(0, checkpoint.cycle)))
    }

    /// The newest checkpoint of the shard; nil when there is none.
    ///
    /// - Throws: When checkpoints exist but none can be read (the caller restores from the changelog alone).
    func load(_ shard: Int32) throws -> ShardCheckpoint? {
        guard let loaded = try store(shard).loadLatest() else { return nil }
        return try ShardCheckpoint(decoding: loaded.payload)
    }
}
