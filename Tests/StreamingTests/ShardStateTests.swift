import KafkaIO
import SampleData
import StreamEngine
import Testing

@testable import Streaming

/// Stage 2's apply rule and watermark, without Kafka.
struct ShardStateTests {
    static let p0 = KafkaPartition(topic: "lines", partition: 0)
    static let p1 = KafkaPartition(topic: "lines", partition: 1)
    static let window = try! WindowSpec(length: 1000, slide: 1000, allowedLateness: 0)

    static func batch(_ source: KafkaPartition, _ sequence: Int64, start: Int64, end: Int64, words: [String: [Int64: Int64]], maxEventTime: Int64?)
        -> [ExchangeRecord]
    {
        let id = SourceBatch(source: source, sequence: sequence)
        let partials = words.sorted { $0.key < $1.key }.map { word, buckets in
            ExchangeRecord.partials(Cut([id]), [Partial(
                word: word, count: buckets.values.reduce(0, +),
                buckets: buckets.sorted { $0.key < $1.key }.map { BucketCount(start: $0.key, count: $0.value) })])
        }
        return partials + [.marker([BatchMarker(batch: id, start: start, end: end, batchTime: 0, maxEventTime: maxEventTime)])]
    }

    /// A source partition not heard from yet holds the watermark back: its records are not late when they come.
    @Test func theWatermarkWaitsForEveryInputPartition() throws {
        var state = ShardState(shard: 0, window: Self.window, expectedSources: [Self.p0, Self.p1])
        var offset: Int64 = 0
        for record in Self.batch(Self.p0, 1, start: 0, end: 10, words: ["a": [0: 1]], maxEventTime: 5_000) {
            try state.receive(record, at: offset)
            offset += 1
        }
        #expect(state.watermark == nil)
        for record in Self.batch(Self.p1, 7, start: 0, end: 5, words: ["a": [1_000: 2]], maxEventTime: 1_500) {
            try state.receive(record, at: offset)
            offset += 1
        }
        #expect(state.watermark == 1_500)
        #expect(state.lateWords == 0)
        let changes = state.takeChanges()
        #expect(changes.closed.map(\.count) == [1])
        #expect(state.windows[1_000]?["a"] == 2)
    }

    /// An idle marker from a partition that never had a batch (sequence -1) releases the watermark.
    @Test func anIdleNeverBatchedPartitionReleasesTheWatermark() throws {
        var state = ShardState(shard: 0, window: Self.window, expectedSources: [Self.p0, Self.p1])
        for (offset, record) in Self.batch(Self.p0, 1, start: 0, end: 10, words: ["a": [0: 1]], maxEventTime: 5_000).enumerated() {
            try state.receive(record, at: Int64(offset))
        }
        #expect(state.watermark == nil)
        try state.receive(.idle(SourceBatch(source: Self.p1, sequence: -1)), at: 10)
        #expect(state.watermark == 5_000)
    }

    /// Random interleavings of three sources' batches, each batch delivered once or twice (a replay after a crash,
    /// partials and marker again), some after a first part of their partials (a crash while they were sent): the
    /// totals are the sums over distinct batches.
    @Test func replayedBatchesAreAppliedOnce() throws {
        var random = SplitMix64(seed: 3)
        for _ in 0..<50 {
            let sources = (0..<3).map { KafkaPartition(topic: "lines", partition: Int32($0)) }
            var streams: [[ExchangeRecord]] = []
            var expected: [String: Int64] = [:]
            for source in sources {
                var stream: [ExchangeRecord] = []
                var start: Int64 = 0
                for sequence in Int64(1)...5 {
                    var words: [String: [Int64: Int64]] = [:]
                    for _ in 0..<(1 + random.next() % 4) {
                        let word = "w\(random.next() % 6)"
                        let count = Int64(1 + random.next() % 3)
                        words[word, default: [:]][0, default: 0] += count
                        expected[word, default: 0] += count
                    }
                    let end = start + Int64(1 + random.next() % 9)
                    let records = Self.batch(source, sequence, start: start, end: end, words: words, maxEventTime: nil)
                    if random.next() % 3 == 0 { stream += records.prefix(Int(random.next() % UInt64(records.count))) }
                    stream += records
                    if random.next() % 2 == 0 { stream += records }
                    start = end
                }
                streams.append(stream)
            }
            var state = ShardState(shard: 0, window: Self.window, expectedSources: Set(sources))
            var offset: Int64 = 0
            while streams.contains(where: { !$0.isEmpty }) {
                let candidates = streams.indices.filter { !streams[$0].isEmpty }
                let pick = candidates[Int(random.next() % UInt64(candidates.count))]
                try state.receive(streams[pick].removeFirst(), at: offset)
                offset += 1
            }
            state.settle()
            #expect(state.totals == expected)
        }
    }

    /// Cuts of three sources, some sent in part before a crash (then their batches cut again, each alone, as the next
    /// owner does from the batch plans), some sent whole and then cut again alone (a crash before the input was
    /// committed): every source batch counts once, partials of a cut that can no longer be applied are dropped, and
    /// the committable offset is not held back by them.
    @Test func cutsSentInPartAndCutAgainAloneCountOnce() throws {
        var random = SplitMix64(seed: 5)
        let sources = (0..<3).map { KafkaPartition(topic: "lines", partition: Int32($0)) }
        for _ in 0..<50 {
            var stream: [ExchangeRecord] = []
            var expected: [String: Int64] = [:]
            var starts: [Int64] = [0, 0, 0]
            for sequence in Int64(1)...5 {
                var words: [[String: Int64]] = []
                var markers: [BatchMarker] = []
                for (index, source) in sources.enumerated() {
                    var counts: [String: Int64] = [:]
                    for _ in 0..<(1 + random.next() % 4) { counts["w\(random.next() % 6)", default: 0] += Int64(1 + random.next() % 3) }
                    for (word, count) in counts { expected[word, default: 0] += count }
                    words.append(counts)
                    let end = starts[index] + Int64(1 + random.next() % 9)
                    markers.append(BatchMarker(
                        batch: SourceBatch(source: source, sequence: sequence), start: starts[index], end: end, batchTime: 0, maxEventTime: nil))
                    starts[index] = end
                }
                let cut = Cut(markers.map(\.batch))
                let combined = words.reduce(into: [String: Int64]()) { $0.merge($1, uniquingKeysWith: +) }.sorted { $0.key < $1.key }
                let records: [ExchangeRecord] = combined.map { .partials(cut, [Partial(word: $0.key, count: $0.value, buckets: [])]) }
                    + [.marker(markers)]
                let alone = markers.indices.flatMap { index -> [ExchangeRecord] in
                    words[index].sorted { $0.key < $1.key }.map {
                        .partials(Cut([markers[index].batch]), [Partial(word: $0.key, count: $0.value, buckets: [])])
                    } + [.marker([markers[index]])]
                }
                switch random.next() % 3 {
                case 0: stream += records
                case 1: stream += records.prefix(Int(random.next() % UInt64(records.count))) + alone  // the marker not sent
                default: stream += records + alone
                }
            }
            var state = ShardState(shard: 0, window: Self.window, expectedSources: Set(sources))
            for (offset, record) in stream.enumerated() {
                try state.receive(record, at: Int64(offset))
            }
            state.settle()
            #expect(state.totals == expected)
            #expect(state.committableOffset == Int64(stream.count))
        }
    }

    /// The apply rule goes by offsets: a new owner's batch that starts where the applied input ended is applied
    /// whatever its sequence number (each owner numbers its batches from its own clock), a re-cut or a stale
    /// owner's batch of applied input is skipped, an idle marker of the new owner counts, and only a hole stops the
    /// shard: it stays stopped, takes nothing more, and its committable offset stays before the marker of the hole.
    @Test func batchesGoByOffsetsAndOnlyAHoleStopsTheShard() throws {
        var state = ShardState(shard: 0, window: Self.window, expectedSources: [Self.p0])
        var offset: Int64 = 0
        func receive(_ records: [ExchangeRecord]) throws {
            for record in records {
                try state.receive(record, at: offset)
                offset += 1
            }
        }
        try receive(Self.batch(Self.p0, 1_796_675_071_294, start: 0, end: 5666, words: ["a": [0: 2]], maxEventTime: 10))
        // A restarted owner: fresh sequence, contiguous offsets.
        try receive(Self.batch(Self.p0, 1_796_675_079_770, start: 5666, end: 6000, words: ["a": [0: 3]], maxEventTime: 20))
        // The same input cut again under other sequences (a re-cut, a stale owner): skipped.
        try receive(Self.batch(Self.p0, 1_796_675_090_000, start: 5666, end: 6000, words: ["a": [0: 3]], maxEventTime: 20))
        try receive(Self.batch(Self.p0, 1_796_675_071_290, start: 100, end: 5666, words: ["a": [0: 7]], maxEventTime: 10))
        state.settle()
        #expect(state.totals == ["a": 5])
        #expect(state.failure == nil)
        try receive([.idle(SourceBatch(source: Self.p0, sequence: -1), end: 6000)])
        #expect(state.sources[Self.p0]?.isIdle == true)
        // A hole: 6000..<6100 never came.
        let beforeHole = offset
        #expect(throws: StreamingError.self) {
            try receive(Self.batch(Self.p0, 1_796_675_100_000, start: 6100, end: 6200, words: ["b": [0: 1]], maxEventTime: 30))
        }
        #expect(state.failure?.code == .lostInput)
        try receive(Self.batch(Self.p0, 1_796_675_100_001, start: 6000, end: 6100, words: ["c": [0: 1]], maxEventTime: 30))
        state.settle()
        #expect(state.totals == ["a": 5])
        #expect(state.committableOffset == beforeHole)
    }

    /// A batch cut again across the applied end (its start before it, its end after) cannot be applied exactly.
    @Test func aBatchAcrossTheAppliedEndIsAnError() throws {
        var state = ShardState(shard: 0, window: Self.window, expectedSources: [Self.p0])
        try state.receive(.marker([BatchMarker(batch: SourceBatch(source: Self.p0, sequence: 1), start: 0, end: 5, batchTime: 0, maxEventTime: nil)]), at: 0)
        #expect(throws: StreamingError.self) {
            try state.receive(.marker([BatchMarker(batch: SourceBatch(source: Self.p0, sequence: 7), start: 3, end: 9, batchTime: 0, maxEventTime: nil)]), at: 1)
        }
    }

    /// A cut of an applied batch and a new one is never cut by stage 1: it stops the shard, naming the batches.
    @Test func aCutOfAppliedAndNewBatchesIsAnError() throws {
        var state = ShardState(shard: 0, window: Self.window, expectedSources: [Self.p0, Self.p1])
        let first = [Self.p0, Self.p1].map { BatchMarker(batch: SourceBatch(source: $0, sequence: 1), start: 0, end: 5, batchTime: 0, maxEventTime: nil) }
        try state.receive(.marker(first), at: 0)
        let mixed = [first[0], BatchMarker(batch: SourceBatch(source: Self.p1, sequence: 2), start: 5, end: 9, batchTime: 0, maxEventTime: nil)]
        #expect(throws: StreamingError.self) { try state.receive(.marker(mixed), at: 1) }
    }

    /// Settling once after many batches gives the state, lateness and closed windows of settling after every record:
    /// each batch's words meet the watermark as it was before that batch, although the batches after it moved it on
    /// and closed windows (random batches of three sources, watermarks moving within a settle, idle markers, partials
    /// sent twice).
    @Test func settlingLateGivesTheStateOfSettlingAtEveryRecord() throws {
        var random = SplitMix64(seed: 11)
        let window = try WindowSpec(length: 2_000, slide: 1_000, allowedLateness: 500)
        var (lateWords, closedWindows): (Int64, Int) = (0, 0)
        for _ in 0..<40 {
            let sources = (0..<3).map { KafkaPartition(topic: "lines", partition: Int32($0)) }
            var streams: [[ExchangeRecord]] = []
            for source in sources {
                var stream: [ExchangeRecord] = []
                var (start, eventTime): (Int64, Int64) = (0, 0)
                for sequence in Int64(1)...6 {
                    eventTime += Int64(random.next() % 3_000)
                    var words: [String: [Int64: Int64]] = [:]
                    for _ in 0..<(1 + random.next() % 5) {
                        let bucket = (eventTime - Int64(random.next() % 6_000)) / 1_000 * 1_000
                        words["w\(random.next() % 5)", default: [:]][bucket, default: 0] += Int64(1 + random.next() % 3)
                    }
                    let end = start + Int64(1 + random.next() % 9)
                    var records = Self.batch(source, sequence, start: start, end: end, words: words, maxEventTime: eventTime)
                    if random.next() % 3 == 0 { records.insert(contentsOf: records.prefix(records.count - 1), at: 0) }
                    stream += records
                    if random.next() % 4 == 0 { stream.append(.idle(SourceBatch(source: source, sequence: sequence))) }
                    start = end
                }
                streams.append(stream)
            }
            var eager = ShardState(shard: 0, window: window, expectedSources: Set(sources))
            var late = eager
            var offset: Int64 = 0
            while streams.contains(where: { !$0.isEmpty }) {
                let candidates = streams.indices.filter { !streams[$0].isEmpty }
                let record = streams[candidates[Int(random.next() % UInt64(candidates.count))]].removeFirst()
                try eager.receive(record, at: offset)
                eager.settle()
                try late.receive(record, at: offset)
                if random.next() % 8 == 0 { late.settle() }
                offset += 1
            }
            let (eagerChanges, lateChanges) = (eager.takeChanges(), late.takeChanges())
            #expect(late.totals == eager.totals && late.windows == eager.windows && late.lateWords == eager.lateWords)
            #expect(late.watermark == eager.watermark && late.sources == eager.sources)
            #expect(lateChanges.closed.map { "\($0.key.start) \($0.key.word) \($0.count)" }
                == eagerChanges.closed.map { "\($0.key.start) \($0.key.word) \($0.count)" })
            #expect(lateChanges.totals == eagerChanges.totals && lateChanges.windows == eagerChanges.windows)
            #expect(Set(lateChanges.totalsOrder) == Set(eagerChanges.totalsOrder))
            lateWords += eager.lateWords
            closedWindows += eagerChanges.closed.count
        }
        #expect(lateWords > 0 && closedWindows > 0, "the batches close windows and come late")
    }

    /// Partials travel many to a record, cut below the record limit, and come back as they were sent, with their cut;
    /// records of earlier versions (binary partials of one source batch, ASCII partials and batch markers) are read as
    /// cuts of one batch; a cut whose batches are out of partition order is not ours.
    @Test func partialsRoundTripInRecordsBelowTheLimit() throws {
        let batch = SourceBatch(source: Self.p1, sequence: 42)
        let cut = Cut([batch, SourceBatch(source: Self.p0, sequence: 7), SourceBatch(source: KafkaPartition(topic: "other", partition: 0), sequence: 1)])
        #expect(cut.batches.map(\.source) == [Self.p0, Self.p1, KafkaPartition(topic: "other", partition: 0)])
        let partials = (0..<40_000).map { (index: Int) -> Partial in
            let buckets = index.isMultiple(of: 3) ? [] : [
                BucketCount(start: -1_000, count: 1), BucketCount(start: Int64(index) * 1_000, count: Int64(index % 7)),
            ]
            return Partial(word: "word\(index)", count: Int64(index % 7 + 1), buckets: buckets)
        }
        let records = ExchangeRecord.partials(cut, partials).values()
        #expect(records.count > 1)
        #expect(records.allSatisfy { $0.count < ExchangeRecord.partialsRecordBytes + 1_024 })
        var decoded: [Partial] = []
        for record in records {
            guard case .partials(let some, let those) = ExchangeRecord(key: nil, value: record), some == cut else {
                Issue.record("a partials record did not decode")
                return
            }
            decoded += those
        }
        #expect(decoded == partials)
        #expect(ExchangeRecord(key: nil, value: Array(records[0].dropLast())) == nil)
        var earlier = StateWriter()  // format 1: one source batch
        earlier.writeUnsigned(1)
        earlier.writeString("lines")
        earlier.writeSigned(1)
        earlier.writeSigned(42)
        earlier.writeUnsigned(1)
        earlier.writeString("w")
        earlier.writeSigned(3)
        earlier.writeUnsigned(0)
        #expect(ExchangeRecord(key: nil, value: earlier.bytes) == .partials(Cut([batch]), [Partial(word: "w", count: 3, buckets: [])]))
        #expect(ExchangeRecord(key: Array("w".utf8), value: Array("p lines 1 42 3 0:1 1000:2".utf8))
            == .partials(Cut([batch]), [Partial(
                word: "w", count: 3, buckets: [BucketCount(start: 0, count: 1), BucketCount(start: 1_000, count: 2)])]))
        #expect(ExchangeRecord(key: nil, value: Array("m lines 1 42 7 9 1000 -".utf8))
            == .marker([BatchMarker(batch: batch, start: 7, end: 9, batchTime: 1_000, maxEventTime: nil)]))
        let markers = [
            BatchMarker(batch: SourceBatch(source: Self.p0, sequence: 7), start: 0, end: 3, batchTime: 1_000, maxEventTime: -5),
            BatchMarker(batch: batch, start: 7, end: 9, batchTime: 1_000, maxEventTime: nil),
        ]
        for record in [ExchangeRecord.marker(markers), .marker([markers[1]]), .idle(batch)] {
            #expect(record.values().map { ExchangeRecord(key: nil, value: $0) } == [record])
        }
        #expect(ExchangeRecord(key: nil, value: Array("c 2 lines 1 42 7 9 1000 - lines 0 7 0 3 1000 -5".utf8)) == nil)
        #expect(ExchangeRecord(key: nil, value: Array("c 2 lines 0 7 0 3 1000 -5".utf8)) == nil)
    }

    /// A shard checkpoint comes back as it was written (open windows, a source without event time, an idle one); a
    /// checkpoint of the earlier JSON form, or a cut one, does not decode (the shard then restores from its changelog).
    @Test func shardCheckpointsRoundTrip() throws {
        var state = ShardState(shard: 3, window: Self.window, expectedSources: [Self.p0, Self.p1])
        var offset: Int64 = 0
        for record in Self.batch(Self.p0, 1, start: 0, end: 10, words: ["a": [0: 1, 2_000: 4], "é": [1_000: 2]], maxEventTime: 2_500)
            + Self.batch(Self.p1, 5, start: 3, end: 8, words: ["b": [3_000: 1]], maxEventTime: nil) + [.idle(SourceBatch(source: Self.p1, sequence: 5))]
        {
            try state.receive(record, at: offset)
            offset += 1
        }
        state.settle()
        state.cycle = 9
        state.batchTime = 1_234
        let checkpoint = ShardCheckpoint(of: state, changelogOffset: 77)
        #expect(checkpoint.sources.count == 2 && checkpoint.watermark == 2_500 && !checkpoint.windows.isEmpty)
        let bytes = checkpoint.encoded()
        #expect(try ShardCheckpoint(decoding: bytes) == checkpoint)
        #expect(throws: (any Error).self) { try ShardCheckpoint(decoding: Array(bytes.dropLast())) }
        #expect(throws: (any Error).self) { try ShardCheckpoint(decoding: Array(#"{"cycle":9,"changelogOffset":77}"#.utf8)) }
    }

    /// Stage 1 tells words apart by their bytes: two Unicode forms of one text are two words of a batch, and both
    /// partials count (Swift's `String` equality would have taken the second for a copy of the first).
    @Test func wordsThatDifferInBytesOnlyBothCount() throws {
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        #expect(composed == decomposed && !composed.utf8.elementsEqual(decomposed.utf8))
        var state = ShardState(shard: 0, window: Self.window, expectedSources: [Self.p0])
        var offset: Int64 = 0
        let batch = SourceBatch(source: Self.p0, sequence: 1)
        for record in [
            ExchangeRecord.partials(Cut([batch]), [
                Partial(word: composed, count: 2, buckets: []), Partial(word: decomposed, count: 3, buckets: []),
            ]),
            .marker([BatchMarker(batch: batch, start: 0, end: 4, batchTime: 0, maxEventTime: nil)]),
        ] {
            try state.receive(record, at: offset)
            offset += 1
        }
        state.settle()
        #expect(state.totals[composed] == 5)
    }
}
