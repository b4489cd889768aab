import KafkaIO
import Storage
import StreamEngine

/// A local copy of one shard's state as of a committed cycle, with the changelog offset it covers: the restore
/// shortcut that Kafka Streams keeps beside its changelog. A restore starts from it and reads only the changelog
/// records after `changelogOffset` (written later, by this instance or by another owner in between).
///
/// It is only a cache: the changelog stays the source of truth. A checkpoint whose offset lies outside the
/// changelog partition (the topic was recreated, or compacted past it) is passed over for a full restore.
///
/// Binary (``StateWriter``): a format byte (1), the changelog offset, cycle and batch time, the watermark, the
/// sources, then the totals and the open windows as the engine's state stores encode them. A checkpoint of the earlier
/// JSON form does not decode: it is passed over, and the shard restores from its whole changelog.
struct ShardCheckpoint: Equatable {
    /// One source partition's progress.
    struct Source: Equatable {
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

    private static let format: UInt64 = 1

    func encoded() -> [UInt8] {
        var writer = StateWriter()
        writer.writeUnsigned(Self.format)
        writer.writeSigned(changelogOffset)
        writer.writeSigned(cycle)
        writer.writeSigned(batchTime)
        Self.write(watermark, to: &writer)
        writer.writeUnsigned(UInt64(sources.count))
        for source in sources {
            writer.writeString(source.topic)
            writer.writeSigned(Int64(source.partition))
            writer.writeSigned(source.progress.sequence)
            writer.writeSigned(source.progress.end)
            Self.write(source.progress.eventTime, to: &writer)
            writer.writeUnsigned(source.progress.isIdle ? 1 : 0)
        }
        totals.encode(to: &writer)
        windows.encode(to: &writer)
        return writer.bytes
    }

    init(decoding payload: [UInt8]) throws {
        self = try StateReader.reading(payload) { reader in
            guard try reader.readUnsigned() == Self.format else {
                throw StreamEngineError.malformed("not a shard checkpoint of format \(Self.format)")
            }
            let changelogOffset = try reader.readSigned()
            let cycle = try reader.readSigned()
            let batchTime = try reader.readSigned()
            let watermark = try Self.readOptional(&reader)
            var sources: [Source] = []
            for _ in 0..<(try reader.readUnsigned()) {
                let topic = try reader.readString()
                guard let partition = Int32(exactly: try reader.readSigned()) else { throw StreamEngineError.malformed("partition") }
                let progress = ShardState.SourceProgress(
                    sequence: try reader.readSigned(), end: try reader.readSigned(), eventTime: try Self.readOptional(&reader),
                    isIdle: try reader.readUnsigned() == 1)
                sources.append(Source(topic: topic, partition: partition, progress: progress))
            }
            let checkpoint = ShardCheckpoint(
                changelogOffset: changelogOffset, cycle: cycle, batchTime: batchTime, watermark: watermark, sources: sources,
                totals: try [String: Int64](from: &reader), windows: try [Int64: [String: Int64]](from: &reader))
            guard reader.isAtEnd else { throw StreamEngineError.malformed("trailing bytes") }
            return checkpoint
        }
    }

    private init(
        changelogOffset: Int64, cycle: Int64, batchTime: Int64, watermark: Int64?, sources: [Source], totals: [String: Int64],
        windows: [Int64: [String: Int64]]
    ) {
        self.changelogOffset = changelogOffset
        self.cycle = cycle
        self.batchTime = batchTime
        self.watermark = watermark
        self.sources = sources
        self.totals = totals
        self.windows = windows
    }

    /// 0 for nil, else 1 and the value.
    private static func write(_ value: Int64?, to writer: inout StateWriter) {
        writer.writeUnsigned(value == nil ? 0 : 1)
        if let value { writer.writeSigned(value) }
    }

    private static func readOptional(_ reader: inout StateReader) throws(StreamEngineError) -> Int64? {
        try reader.readUnsigned() == 0 ? nil : try reader.readSigned()
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
        try store(shard).write(checkpoint.encoded(), sequence: UInt64(max(0, checkpoint.cycle)))
    }

    /// The newest checkpoint of the shard; nil when there is none.
    ///
    /// - Throws: When checkpoints exist but none can be read (the caller restores from the changelog alone).
    func load(_ shard: Int32) throws -> ShardCheckpoint? {
        guard let loaded = try store(shard).loadLatest() else { return nil }
        return try ShardCheckpoint(decoding: loaded.payload)
    }
}
