import KafkaIO
import StreamEngine

/// The fixed mapping of words to state shards: FNV-1a (64 bit) of the word's UTF-8 bytes, modulo the shard count.
///
/// Never librdkafka's partitioner: the shard of a word must not depend on a client version or setting, since every
/// instance, before and after any restart, has to send a word's partial counts to the same shard.
public struct ShardMap: Sendable, Hashable {
    /// How many shards (partitions of the partials and changelog topics).
    public let count: Int32

    public init(count: Int32) {
        precondition(count > 0, "at least one shard")
        self.count = count
    }

    /// The shard that owns `word`.
    public func shard(of word: some Collection<UInt8>) -> Int32 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in word {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return Int32(truncatingIfNeeded: hash % UInt64(count))
    }
}

/// One batch of one input partition, as stage 1 cut it.
struct SourceBatch: Hashable, Sendable {
    var source: KafkaPartition
    /// Consecutive per source: batch `q + 1` starts at the offset where batch `q` ended.
    var sequence: Int64
}

/// The batches of several input partitions that stage 1 cut at one moment and sent as one: their words counted
/// together, so a shard gets one partial per word and cut rather than one per word and input partition. The unit
/// that stage 2 applies, all its batches or none, exactly once. (A planned batch cut again after a crash or a
/// rebalance goes in a cut of its own: only its own records are in its plan.)
struct Cut: Hashable, Sendable {
    /// In partition order, one per input partition.
    let batches: [SourceBatch]

    /// A cut of batches of distinct input partitions.
    init(_ batches: [SourceBatch]) {
        self.batches = batches.sorted { $0.source < $1.source }
        precondition(zip(self.batches, self.batches.dropFirst()).allSatisfy { $0.source < $1.source }, "one batch per partition")
    }

    /// As read from a record: nil unless in partition order, one per partition, and at least one.
    init?(decoding batches: [SourceBatch]) {
        guard !batches.isEmpty, zip(batches, batches.dropFirst()).allSatisfy({ $0.source < $1.source }) else { return nil }
        self.batches = batches
    }
}

/// The pre-aggregated count of one word in one cut.
struct Partial: Equatable, Sendable {
    var word: String
    /// Occurrences of the word in the cut.
    var count: Int64
    /// Occurrences per event-time bucket, in increasing order of bucket start, for the windows; records too far
    /// ahead of the batch time are in ``count`` only.
    var buckets: [BucketCount]
}

/// A word's occurrences in one event-time bucket of a batch.
struct BucketCount: Equatable, Sendable {
    /// The bucket's start, a multiple of the window slide.
    var start: Int64
    var count: Int64
}

/// Closes one batch of a cut: all the partials of the cut are before the cut's markers in each shard's partition.
struct BatchMarker: Equatable, Sendable {
    var batch: SourceBatch
    /// The batch's input offsets, `[start, end)`.
    var start: Int64
    var end: Int64
    /// The batch time stage 1 gave it (kept in the batch plan, so a replay has the same).
    var batchTime: Int64
    /// The latest event time in the batch that may move the watermark; nil if none.
    var maxEventTime: Int64?
}

/// A record of the `<group>-partials` topic.
///
/// Partials go many to a record, in binary: byte 2, a varint batch count and per batch of the cut the source topic
/// (varint length, UTF-8), zigzag partition and sequence, then a varint partial count and per partial the word (varint
/// length, UTF-8), zigzag count, a varint bucket count and per bucket zigzag start and count (buckets in increasing
/// order). No key. One record per shard and cut, cut into several when it would exceed ``partialsRecordBytes``.
///
/// Markers are ASCII, fields separated by one space (topic names hold no spaces), no key:
/// - cut marker: `c N` and per batch of the cut `TOPIC PARTITION SEQ START END BATCH_TIME MAX_EVENT_TIME|-`
/// - idle marker: `i TOPIC PARTITION SEQ [END]` (the source had no batch after SEQ, or after the one that ended at
///   offset END, for a while: it stops holding the watermark back until its next batch)
///
/// Records of earlier versions are still read, a batch of one partition each being a cut of one: binary partials
/// of format 1 (one source batch, `TOPIC PARTITION SEQ` without the count), batch markers `m TOPIC PARTITION SEQ START
/// END BATCH_TIME MAX_EVENT_TIME|-`, and partials of the ASCII form, one per record keyed by its word (`p TOPIC
/// PARTITION SEQ COUNT [BUCKET:COUNT ...]`).
enum ExchangeRecord: Equatable, Sendable {
    /// Partials of one cut, for one shard.
    case partials(Cut, [Partial])
    /// The markers of a cut's batches, in partition order.
    case marker([BatchMarker])
    /// The source had nothing after its batch `batch.sequence` (-1: none yet), or after the one that ended at `end`.
    case idle(SourceBatch, end: Int64? = nil)

    /// The first byte of a binary partials record (the ASCII kinds start with a letter): of one source batch, as
    /// earlier versions wrote them, and of a cut.
    private static let sourceBatchPartialsFormat: UInt8 = 1
    private static let cutPartialsFormat: UInt8 = 2
    /// About the most bytes of partials one record holds: well below the producer's 1 MB default limit.
    static let partialsRecordBytes = 256 << 10

    /// The record values (no key) that carry this: one for a marker, and for partials, all of one cut, as many as
    /// keep each at most about ``partialsRecordBytes``.
    func values() -> [[UInt8]] {
        switch self {
        case .partials(let cut, let partials):
            return Self.partialsRecords(of: cut, partials)
        case .marker(let markers):
            let text = (["c \(markers.count)"] + markers.map { marker in
                "\(marker.batch.source.topic) \(marker.batch.source.partition) \(marker.batch.sequence) \(marker.start) "
                    + "\(marker.end) \(marker.batchTime) \(marker.maxEventTime.map(String.init) ?? "-")"
            }).joined(separator: " ")
            return [Array(text.utf8)]
        case .idle(let batch, let end):
            return [Array("i \(batch.source.topic) \(batch.source.partition) \(batch.sequence)\(end.map { " \($0)" } ?? "")".utf8)]
        }
    }

    private static func partialsRecords(of cut: Cut, _ partials: [Partial]) -> [[UInt8]] {
        var header = StateWriter()
        header.writeUnsigned(UInt64(cutPartialsFormat))
        header.writeUnsigned(UInt64(cut.batches.count))
        for batch in cut.batches {
            header.writeString(batch.source.topic)
            header.writeSigned(Int64(batch.source.partition))
            header.writeSigned(batch.sequence)
        }
        var records: [[UInt8]] = []
        var chunk = StateWriter()
        var count = 0
        func close() {
            var record = header
            record.writeUnsigned(UInt64(count))
            records.append(record.bytes + chunk.bytes)
            chunk = StateWriter()
            count = 0
        }
        for partial in partials {
            chunk.writeString(partial.word)
            chunk.writeSigned(partial.count)
            chunk.writeUnsigned(UInt64(partial.buckets.count))
            for bucket in partial.buckets {
                chunk.writeSigned(bucket.start)
                chunk.writeSigned(bucket.count)
            }
            count += 1
            if chunk.bytes.count >= partialsRecordBytes { close() }
        }
        if count > 0 { close() }
        return records
    }

    /// Decodes a record; nil if it is not one of ours.
    init?(key: [UInt8]?, value: [UInt8]) {
        if value.first == Self.cutPartialsFormat || value.first == Self.sourceBatchPartialsFormat {
            guard let (cut, partials) = try? Self.decodePartials(value) else { return nil }
            self = .partials(cut, partials)
            return
        }
        let fields = value.split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
        if fields.first == "c" {
            guard fields.count >= 2, let count = Int(fields[1]), count > 0, fields.count == 2 + 7 * count else { return nil }
            var markers: [BatchMarker] = []
            for index in 0..<count {
                guard let marker = Self.batchMarker(fields[(2 + 7 * index)...].prefix(7)) else { return nil }
                markers.append(marker)
            }
            guard Cut(decoding: markers.map(\.batch)) != nil else { return nil }
            self = .marker(markers)
            return
        }
        guard fields.count >= 4, let batch = Self.sourceBatch(fields[1...3]) else { return nil }
        switch fields[0] {
        case "p":
            guard fields.count >= 5, let count = Int64(fields[4]), let key else { return nil }
            var buckets: [Int64: Int64] = [:]
            for field in fields.dropFirst(5) {
                let parts = field.split(separator: ":")
                guard parts.count == 2, let bucket = Int64(parts[0]), let bucketCount = Int64(parts[1]) else { return nil }
                buckets[bucket] = bucketCount
            }
            self = .partials(Cut([batch]), [Partial(
                word: String(decoding: key, as: UTF8.self), count: count,
                buckets: buckets.sorted { $0.key < $1.key }.map { BucketCount(start: $0.key, count: $0.value) })])
        case "m":
            guard fields.count == 8, let marker = Self.batchMarker(fields[1...]) else { return nil }
            self = .marker([marker])
        case "i":
            guard fields.count <= 5 else { return nil }
            let end = fields.count == 5 ? Int64(fields[4]) : nil
            guard fields.count == 4 || end != nil else { return nil }
            self = .idle(batch, end: end)
        default:
            return nil
        }
    }

    /// `TOPIC PARTITION SEQ`.
    private static func sourceBatch(_ fields: ArraySlice<String>) -> SourceBatch? {
        guard fields.count == 3, let partition = Int32(fields[fields.startIndex + 1]),
            let sequence = Int64(fields[fields.startIndex + 2])
        else { return nil }
        return SourceBatch(source: KafkaPartition(topic: fields[fields.startIndex], partition: partition), sequence: sequence)
    }

    /// `TOPIC PARTITION SEQ START END BATCH_TIME MAX_EVENT_TIME|-`.
    private static func batchMarker(_ fields: ArraySlice<String>) -> BatchMarker? {
        let first = fields.startIndex
        guard fields.count == 7, let batch = sourceBatch(fields[first..<(first + 3)]), let start = Int64(fields[first + 3]),
            let end = Int64(fields[first + 4]), let time = Int64(fields[first + 5])
        else { return nil }
        return BatchMarker(batch: batch, start: start, end: end, batchTime: time, maxEventTime: Int64(fields[first + 6]))
    }
}

extension ExchangeRecord {
    private static func decodePartials(_ value: [UInt8]) throws -> (Cut, [Partial]) {
        try StateReader.reading(value) { reader in
            let format = try reader.readUnsigned()
            let batchCount = format == UInt64(cutPartialsFormat) ? try reader.readUnsigned() : 1
            var batches: [SourceBatch] = []
            for _ in 0..<batchCount {
                let topic = try reader.readString()
                guard let partition = Int32(exactly: try reader.readSigned()) else { throw StreamEngineError.malformed("partition") }
                batches.append(SourceBatch(source: KafkaPartition(topic: topic, partition: partition), sequence: try reader.readSigned()))
            }
            guard let cut = Cut(decoding: batches) else { throw StreamEngineError.malformed("the cut's batches") }
            var partials: [Partial] = []
            for _ in 0..<(try reader.readUnsigned()) {
                let word = try reader.readString()
                let count = try reader.readSigned()
                var buckets: [BucketCount] = []
                for _ in 0..<(try reader.readUnsigned()) {
                    let bucket = BucketCount(start: try reader.readSigned(), count: try reader.readSigned())
                    guard bucket.start > buckets.last?.start ?? .min else { throw StreamEngineError.malformed("bucket order") }
                    buckets.append(bucket)
                }
                partials.append(Partial(word: word, count: count, buckets: buckets))
            }
            guard reader.isAtEnd else { throw StreamEngineError.malformed("trailing bytes") }
            return (cut, partials)
        }
    }
}

/// A batch of one input partition as stage 1 cuts it: its sequence number, its end offset (its start is the
/// partition's committed offset) and its batch time.
///
/// At least once, the end is committed in the group `<group>-plans` (``DistributedSetup/plansGroupID``) before the
/// batch's partials are sent, and in the input's group once they are delivered. Whichever instance owns the partition
/// next reads both: a planned end above the committed offset means the batch was planned and maybe partly sent, so
/// it is cut again exactly (same offsets; a new sequence number and batch time, which the shards' offset rule does
/// not need). A plan is an offset, not commit metadata: some brokers (Tansu 0.6) drop commit metadata.
struct BatchPlan: Equatable, Sendable {
    var sequence: Int64
    var end: Int64
    var batchTime: Int64
}
