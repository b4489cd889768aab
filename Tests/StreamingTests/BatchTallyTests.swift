import Foundation
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

    /// The counter thread gives, for the blocks handed to it at once (a queue limit below a block, so the stage waits
    /// on it),
    /// the counts of adding each record in turn, malformed records listed in order, and the next take starts from zero;
    /// a block handed over after it stopped is counted too.
    @Test func theCounterThreadCountsBlocksAsAddingEachRecordDoes() throws {
        let window = try WindowSpec(length: 2_000, slide: 1_000)
        let counter = BlockCounter(window: window, queueLimit: 1_000)
        counter.start()
        defer { counter.stop() }
        var expected = BatchTally()
        var builder = BlockBuilder(reservingCapacity: 0)
        var blocks: [Block] = []
        let partitions = (0..<3).map { KafkaPartition(topic: "lines", partition: Int32($0)) }
        let slots = [partitions[2]: 0, partitions[0]: 1, partitions[1]: 2]
        for index in 0..<20_000 {
            let partition = partitions[index % 3]
            let value = index % 97 == 0 ? Array("bad ".utf8) + [0xFF] : Array("w\(index % 13) x\(index % 5) w\(index % 7)".utf8)
            let time = Int64(index * 3)
            value.withUnsafeBytes { bytes in
                if let reason = expected.add(bytes, at: time, slot: slots[partition]!, window: window) {
                    expected.malformed.append(MalformedRecord(
                        record: InputRecord(topic: partition.topic, partition: partition.partition, offset: Int64(index), timestamp: time, key: nil, value: value),
                        reason: reason))
                }
                builder.append(topic: partition.topic, partition: partition.partition, offset: Int64(index), timestamp: time, key: nil, value: bytes)
            }
            if builder.byteCount > 20_000 { blocks.append(builder.finish()) }
        }
        blocks.append(builder.finish())
        for block in blocks { counter.submit(block, slots: slots) }
        let counted = counter.take()
        #expect(counted.partials(horizon: 10_000).records == expected.partials(horizon: 10_000).records)
        #expect(counted.partials(horizon: 10_000).maxEventTimes == expected.partials(horizon: 10_000).maxEventTimes)
        #expect(counted.malformed == expected.malformed && !counted.malformed.isEmpty)
        #expect(counter.take().partials(horizon: 10_000).records.isEmpty)
        // Stopped (a revoke while the stage closes its consumer still hands records over): counted all the same.
        counter.stop()
        Thread.sleep(forTimeInterval: 0.2)  // its thread has ended
        counter.submit(blocks[0], slots: slots)
        #expect(!counter.take().partials(horizon: 10_000).records.isEmpty)
    }
}
