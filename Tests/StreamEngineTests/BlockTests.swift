import SampleData
import StreamEngine
import Testing

@Suite struct BlockTests {
    let sample: [TestRecord] = [
        TestRecord(topic: "lines", partition: 0, offset: 10, timestamp: 1_700_000_000_000, key: Array("k1".utf8), value: Array("hello world".utf8)),
        TestRecord(topic: "lines", partition: 1, offset: 7, timestamp: 1_699_999_999_000, key: nil, value: []),
        TestRecord(topic: "other", partition: 0, offset: 0, timestamp: -1, key: [], value: [0, 255, 10]),
        TestRecord(topic: "lines", partition: 0, offset: 12, timestamp: 1_700_000_000_500, key: nil, value: Array("again".utf8)),
        TestRecord(topic: "lines", partition: 0, offset: 11, timestamp: 1_700_000_000_400, key: nil, value: Array("late".utf8)),
    ]

    @Test func roundTripPreservesRecordsRangesAndOffsets() throws {
        let block = makeBlock(sample)
        #expect(block.recordCount == 5)
        #expect(records(of: block) == sample)
        #expect(block.ranges == [
            PartitionRange(topic: "lines", partition: 0, firstOffset: 10, lastOffset: 12),
            PartitionRange(topic: "lines", partition: 1, firstOffset: 7, lastOffset: 7),
            PartitionRange(topic: "other", partition: 0, firstOffset: 0, lastOffset: 0),
        ])
        #expect(block.nextOffsets() == [
            TopicPartition(topic: "lines", partition: 0): 13,
            TopicPartition(topic: "lines", partition: 1): 8,
            TopicPartition(topic: "other", partition: 0): 1,
        ])

        let decoded = try Block(decoding: block.bytes)
        #expect(decoded == block)
        #expect(decoded.ranges == block.ranges)
        #expect(decoded.recordCount == 5)
        #expect(records(of: decoded) == sample)
    }

    @Test func encodingIsCompactAndPinned() {
        let block = makeBlock([TestRecord(topic: "t", offset: 5, timestamp: 1000, value: Array("a".utf8))])
        #expect(block.bytes == [
            1,                  // version
            1, 1, 0x74,         // topics: ["t"]
            1, 0, 0, 5, 0,      // ranges: topic 0, partition 0, first 5, span 0
            1,                  // record count
            0, 10, 0xD0, 0x0F,  // range 0, offset delta +5, timestamp delta +1000
            0, 1, 0x61,         // no key, value "a"
        ])
    }

    @Test func builderResetsForReuse() throws {
        var builder = BlockBuilder(reservingCapacity: 16)
        #expect(builder.isEmpty)
        Array("abc".utf8).withUnsafeBytes {
            builder.append(topic: "a", partition: 3, offset: 1, timestamp: 5, key: nil, value: $0)
        }
        #expect(builder.recordCount == 1)
        #expect(builder.byteCount == 8)
        _ = builder.finish()
        #expect(builder.isEmpty && builder.byteCount == 0 && builder.recordCount == 0)

        Array("de".utf8).withUnsafeBytes {
            builder.append(topic: "b", partition: 0, offset: 9, timestamp: 6, key: nil, value: $0)
        }
        let second = builder.finish()
        #expect(records(of: second) == [TestRecord(topic: "b", partition: 0, offset: 9, timestamp: 6, value: Array("de".utf8))])
        #expect(second.ranges == [PartitionRange(topic: "b", partition: 0, firstOffset: 9, lastOffset: 9)])
        #expect(try Block(decoding: second.bytes) == second)
    }

    @Test func emptyBlockRoundTrips() throws {
        var builder = BlockBuilder(reservingCapacity: 0)
        let block = builder.finish()
        #expect(block.bytes == [1, 0, 0, 0])
        #expect(block.recordCount == 0 && block.ranges.isEmpty && block.nextOffsets().isEmpty)
        #expect(try Block(decoding: block.bytes) == block)
    }

    @Test func rejectsEmptyInputAndUnknownVersions() {
        #expect(throws: StreamEngineError.unsupportedVersion(nil)) { try Block(decoding: []) }
        #expect(throws: StreamEngineError.unsupportedVersion(2)) { try Block(decoding: [2, 0, 0, 0]) }
    }

    @Test func rejectsEveryTruncationAndTrailingBytes() {
        let bytes = makeBlock(sample).bytes
        for length in 1..<bytes.count {
            #expect(throws: StreamEngineError.self) { try Block(decoding: Array(bytes.prefix(length))) }
        }
        #expect(throws: StreamEngineError.self) { try Block(decoding: bytes + [0]) }
    }

    @Test func rejectsRangesThatDoNotMatchTheRecords() {
        var bytes = makeBlock([TestRecord(topic: "t", offset: 5, timestamp: 1000, value: Array("a".utf8))]).bytes
        bytes[8] = 2  // the range now claims offsets 5...7
        #expect(throws: StreamEngineError.malformed("offsets of t-0 outside or not spanning its range")) {
            try Block(decoding: bytes)
        }
        bytes[8] = 0
        bytes[9] = 2  // two records announced, one present
        #expect(throws: StreamEngineError.malformed("record count 2 but 1 records")) { try Block(decoding: bytes) }
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var random = SplitMix64(seed: 42)
        let valid = makeBlock(sample).bytes
        var decodedCount = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round.isMultiple(of: 2) {
                bytes = (0..<Int.random(in: 0...48, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                if !bytes.isEmpty, round.isMultiple(of: 4) { bytes[0] = 1 }
            } else {
                bytes = valid
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                }
            }
            if let block = try? Block(decoding: bytes) {
                decodedCount += 1
                #expect(records(of: block).count == block.recordCount)
            }
        }
        #expect(decodedCount < 20_000)
    }
}
