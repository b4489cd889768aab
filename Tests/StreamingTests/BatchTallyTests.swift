import KafkaIO
import StreamEngine
import Testing

@testable import Streaming

/// Stage 1's per-batch counts, without Kafka.
struct BatchTallyTests {
    @Test func countsWordsPerBucketAndSkipsMalformedRecordsWhole() throws {
        let window = try WindowSpec(length: 2_000, slide: 1_000)
        var tally = BatchTally()
        func add(_ bytes: [UInt8], at time: Int64) -> MalformedRecord.Reason? {
            bytes.withUnsafeBytes { tally.add($0, at: time, slot: 0, window: window) }
        }
        #expect(add(Array("The cat the".utf8), at: 500) == nil)
        #expect(add([0x64, 0x6F, 0x67, 0x20, 0xFF], at: 600) == .invalidUTF8)
        #expect(add(Array(("dog " + String(repeating: "x", count: WordTokenizer.maximumWordBytes + 1)).utf8), at: 700)
            == .wordTooLong(bytes: WordTokenizer.maximumWordBytes + 1))
        #expect(add(Array("cat".utf8), at: 1_500) == nil)
        #expect(add(Array("  ".utf8), at: 1_600) == nil)
        #expect(add(Array("cat later".utf8), at: 9_000) == nil)
        #expect(add(Array("soon".utf8), at: 5_500) == nil)
        let partials = tally.partials(horizon: 5_000)
        // In first-seen order; "dog" was only in malformed records, and bucket 9000 is past the horizon.
        #expect(partials.records == [
            Partial(word: "the", count: 2, buckets: [BucketCount(start: 0, count: 2)]),
            Partial(word: "cat", count: 3, buckets: [BucketCount(start: 0, count: 1), BucketCount(start: 1_000, count: 1)]),
            Partial(word: "later", count: 1, buckets: []),
            Partial(word: "soon", count: 1, buckets: [BucketCount(start: 5_000, count: 1)]),
        ])
        #expect(partials.futureWords == 2)
        // Every record moves the event time, as in standalone mode, a record without words (at 1600) too; the record
        // at 5500 is past the horizon, and its bucket holds the event time back instead of moving it to 5000.
        #expect(partials.maxEventTimes == [1_600])
        #expect(tally.partials(horizon: 1_550).maxEventTimes == [700], "malformed records move it too")
    }

    /// A cut counts the words of all its sources together, and keeps each source's latest event time (by slot).
    @Test func aCutCountsItsSourcesTogetherAndKeepsEachOnesEventTime() throws {
        let window = try WindowSpec(length: 1_000, slide: 1_000)
        var tally = BatchTally()
        for (text, time, slot) in [("a b", Int64(100), 0), ("a", 2_500, 2), ("b a", 400, 0), ("c", 5_000, 2)] {
            #expect(Array(text.utf8).withUnsafeBytes { tally.add($0, at: time, slot: slot, window: window) } == nil)
        }
        let partials = tally.partials(horizon: 4_000)
        #expect(partials.records == [
            Partial(word: "a", count: 3, buckets: [BucketCount(start: 0, count: 2), BucketCount(start: 2_000, count: 1)]),
            Partial(word: "b", count: 2, buckets: [BucketCount(start: 0, count: 2)]),
            Partial(word: "c", count: 1, buckets: []),
        ])
        #expect(partials.maxEventTimes == [400, nil, 2_500])
    }
}
