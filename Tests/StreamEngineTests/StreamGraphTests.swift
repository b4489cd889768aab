import StreamEngine
import Testing

@Suite struct StreamGraphTests {
    /// A graph with running state and windows.
    func makeGraph() throws -> StreamGraph {
        let graph = StreamGraph()
        try WordCountJob.build(on: graph, configuration: .init(windowLength: 10_000, slide: 5_000, allowedLateness: 2_000))
        return graph
    }

    let batches: [(time: Int64, block: Block)] = [
        (1_000, lines(("the cat", 500), ("the dog", 900))),
        (2_000, lines(("a cat", 6_000))),
        (3_000, lines()),
        (4_000, lines(("late cat", 1_000), ("The Bird", 13_000))),
        (5_000, lines(("dog dog", 11_500), ("Ünïcode wörds", 20_000))),
        (6_000, lines(("cat", 4_000), ("end", 26_000))),
    ]

    @Test func restoringACheckpointContinuesIdenticallyToAnUninterruptedRun() throws {
        let uninterrupted = try makeGraph()
        var expected: [BatchOutput] = []
        for (time, block) in batches {
            expected.append(uninterrupted.runBatch(time: time, blocks: [block]))
        }
        expected.append(uninterrupted.flushWindows())

        let first = try makeGraph()
        for (time, block) in batches.prefix(3) {
            _ = first.runBatch(time: time, blocks: [block])
        }
        let resumed = try makeGraph()
        try resumed.restore(from: first.checkpoint())
        #expect(resumed.checkpoint() == first.checkpoint())
        var outputs: [BatchOutput] = []
        for (time, block) in batches.dropFirst(3) {
            outputs.append(resumed.runBatch(time: time, blocks: [block]))
        }
        outputs.append(resumed.flushWindows())

        #expect(outputs == Array(expected.dropFirst(3)))
        #expect(resumed.checkpoint() == uninterrupted.checkpoint())
        #expect(expected.map(\.lateRecords) == [0, 0, 0, 0, 0, 1, 0])
        #expect(expected.map(\.records.count).reduce(0, +) > 10)
    }

    /// The graph holds a batch's only copy of its blocks and drops each once read, so a batch's input is not in
    /// memory while the batch aggregates and emits: by the first output record, no block is left.
    @Test func blocksAreReleasedOnceReadBeforeTheBatchEmits() throws {
        let graph = try makeGraph()
        let alive = AliveCount()
        func tracked(_ block: Block) -> Block {
            var block = block
            block.lifetime = alive.token()
            return block
        }
        var aliveAtEmits: [Int] = []
        let output = graph.runBatch(time: 1_000, blocks: batches.prefix(3).map { tracked($0.block) }) { _ in
            aliveAtEmits.append(alive.count)
        }
        #expect(output.recordsIn == 3)
        #expect(!aliveAtEmits.isEmpty && aliveAtEmits.allSatisfy { $0 == 0 })
    }

    @Test func checkpointsAreDeterministic() throws {
        let one = try makeGraph()
        let two = try makeGraph()
        for (time, block) in batches {
            _ = one.runBatch(time: time, blocks: [block])
            _ = two.runBatch(time: time, blocks: [block])
        }
        #expect(one.checkpoint() == two.checkpoint())
        #expect(try makeGraph().checkpoint() == [3, 0, 0, 2, 11] + Array("word-totals".utf8) + [1, 0, 12] + Array("word-windows".utf8) + [1, 0])
    }

    @Test func checkpointBytesArePinnedAndSortedByKey() {
        let graph = StreamGraph()
        _ = graph.input().flatMapWords().countByValue()
            .updateStateByKey(name: "t") { (_, counts: [Int64], total: Int64?) in counts.reduce(total ?? 0, +) }
        _ = graph.runBatch(time: 1, blocks: [lines(("b a", 5))])
        #expect(graph.checkpoint() == [
            3,              // version
            1, 10,          // watermark 5
            1, 5] + Array("lines".utf8) + [0, 10, 2,  // one partition clock: lines/0 at 5, last seen at batch time 1
            1, 1, 0x74,     // one operator, "t"
            7, 2,           // its 7-byte state: two keys
            1, 0x61, 2,     // "a": 1
            1, 0x62, 2,     // "b": 1
        ])
    }

    /// Entries are written in the order of their encoded keys, whatever order the dictionary iterates in: keys that
    /// share their first eight bytes, are prefixes of one another or are empty; tables of different sizes and
    /// insertion orders.
    @Test func equalDictionariesEncodeIdenticallyWhateverTheirHistory() throws {
        var keys = ["", "a", "abcdefgh", "abcdefgh1", "abcdefgh2", "abcdefgh\u{0}", "abcdefg", "é", "zz"]
        keys += (0..<300).map { "shared-prefix-\($0 * 7919 % 1000)" }
        var one: [String: Int64] = [:]
        for (index, key) in keys.enumerated() { one[key] = Int64(index) }
        var two: [String: Int64] = [:]
        two.reserveCapacity(5000)
        for (index, key) in keys.enumerated().reversed() { two[key] = Int64(index) }
        two["removed"] = 1
        two["removed"] = nil
        var first = StateWriter(), second = StateWriter()
        one.encode(to: &first)
        two.encode(to: &second)
        #expect(first.bytes == second.bytes)
        #expect(try StateReader.reading(first.bytes) { try [String: Int64](from: &$0) } == one)
    }

    @Test func unknownVersionsAreRejected() throws {
        let graph = try makeGraph()
        var checkpoint = graph.checkpoint()
        checkpoint[0] = 99
        #expect(throws: StreamEngineError.unsupportedVersion(99)) { try graph.restore(from: checkpoint) }
        #expect(throws: StreamEngineError.unsupportedVersion(nil)) { try graph.restore(from: []) }
    }

    @Test func operatorNamesMustMatch() throws {
        let other = StreamGraph()
        _ = other.input().flatMapWords().countByValue()
            .updateStateByKey(name: "totals") { (_, counts: [Int64], total: Int64?) in counts.reduce(total ?? 0, +) }
        #expect(throws: StreamEngineError.operatorMismatch(expected: ["totals"], found: ["word-totals", "word-windows"])) {
            try other.restore(from: try makeGraph().checkpoint())
        }
    }

    @Test func corruptCheckpointsFailWithoutChangingState() throws {
        let source = try makeGraph()
        for (time, block) in batches.prefix(4) {
            _ = source.runBatch(time: time, blocks: [block])
        }
        let checkpoint = source.checkpoint()
        let target = try makeGraph()
        let pristine = target.checkpoint()
        for length in 1..<checkpoint.count {
            #expect(throws: StreamEngineError.self) { try target.restore(from: Array(checkpoint.prefix(length))) }
        }
        #expect(throws: StreamEngineError.malformed("trailing bytes")) { try target.restore(from: checkpoint + [0]) }
        #expect(target.checkpoint() == pristine)
        try target.restore(from: checkpoint)
        #expect(target.checkpoint() == checkpoint)
    }

    @Test func theWatermarkFollowsTheSlowestActivePartition() {
        let graph = StreamGraph(idleAfterMilliseconds: 2_000)
        graph.input().foreachBatch { _, _ in }
        #expect(graph.runBatch(time: 1_000, blocks: []).watermark == nil)
        let block = makeBlock([
            TestRecord(partition: 0, offset: 0, timestamp: 5_000, value: []),
            TestRecord(partition: 1, offset: 0, timestamp: 9_000, value: []),
        ])
        #expect(graph.runBatch(time: 1_000, blocks: [block]).watermark == 5_000)
        // An older record does not move partition 0's clock back, nor the watermark.
        #expect(graph.runBatch(time: 2_000, blocks: [lines(("x", 1_000))]).watermark == 5_000)
        let partitionOne = { (offset: Int64, time: Int64) in makeBlock([TestRecord(partition: 1, offset: offset, timestamp: time, value: [])]) }
        // Partition 0 was last seen 1 s of batch time ago: it still holds the watermark back...
        #expect(graph.runBatch(time: 3_000, blocks: [partitionOne(1, 12_000)]).watermark == 5_000)
        // ...empty batches never move the watermark, however much time passes...
        #expect(graph.runBatch(time: 9_000, blocks: []).watermark == 5_000)
        // ...and 2 s of batch time makes it idle, in the next batch with records.
        #expect(graph.runBatch(time: 10_000, blocks: [partitionOne(2, 13_000)]).watermark == 13_000)
        // The watermark never goes back, even when the idle partition returns with old records.
        #expect(graph.runBatch(time: 11_000, blocks: [lines(("y", 6_000))]).watermark == 13_000)
        #expect(graph.watermark == 13_000)
    }

    /// A partition assigned but not delivering yet (a broker may answer one partition per fetch) holds the
    /// watermark back, so its first records are not late; it stops holding it once idle since its assignment.
    @Test func anAssignedPartitionWithoutRecordsHoldsTheWatermarkBack() {
        let graph = StreamGraph(idleAfterMilliseconds: 3_000)
        let late = Collected(graph.input().flatMapWords().map { ($0, Int64(1)) }.reduceByKeyAndWindow(
            name: "w", try! WindowSpec(length: 1_000), +))
        let partitions = [TopicPartition(topic: "lines", partition: 0), TopicPartition(topic: "lines", partition: 1)]
        let partitionOne = { (offset: Int64, time: Int64) in makeBlock([TestRecord(partition: 1, offset: offset, timestamp: time, value: Array("b".utf8))]) }
        #expect(graph.runBatch(time: 1_000, blocks: [], assigned: partitions).watermark == nil)
        // Partition 0 runs ahead; partition 1 has delivered nothing yet.
        #expect(graph.runBatch(time: 2_000, blocks: [lines(("a", 9_000))]).watermark == nil)
        // Partition 1 starts with older records: none of them is late.
        let started = graph.runBatch(time: 3_000, blocks: [partitionOne(0, 4_500)])
        #expect(started.watermark == 4_500 && started.lateRecords == 0)
        // Assigned again later (a rebalance) and silent: it holds the watermark until idle since the assignment.
        _ = graph.runBatch(time: 5_000, blocks: [], assigned: [TopicPartition(topic: "lines", partition: 2)])
        #expect(graph.runBatch(time: 6_000, blocks: [lines(("a", 9_500))]).watermark == 4_500)
        #expect(graph.runBatch(time: 8_000, blocks: [partitionOne(1, 9_200)]).watermark == 9_200)
        #expect(late.batches.joined().isEmpty == false)
    }

    /// One record from a bad clock (the year 2100) used to move the watermark there for good, closing every window.
    @Test func anEventTimeTooFarAheadNeitherMovesTheWatermarkNorEntersWindows() throws {
        let graph = StreamGraph(maxEventTimeAheadMilliseconds: 60_000)
        let windowed = Collected(graph.input().flatMapWords().map { ($0, Int64(1)) }.reduceByKeyAndWindow(
            name: "w", try WindowSpec(length: 1_000), +))
        let year2100: Int64 = 4_102_444_800_000
        let output = graph.runBatch(time: 100_000, blocks: [lines(("now", 99_000), ("future", year2100), ("later", 130_000))])
        #expect(output.watermark == 130_000)
        #expect(output.futureRecords == 1)
        let next = graph.runBatch(time: 200_000, blocks: [lines(("again", 199_000))])
        #expect(next.watermark == 199_000)
        #expect(Set(windowed.batches.joined().map(\.0)) == ["now", "later"])
    }

    /// A replay after a crash runs only the logged batches (empty batches are not logged): restored from the
    /// checkpoint of batch k, it must emit exactly what the original run emitted for batches k+1...N.
    @Test func aReplayWithoutTheEmptyBatchesEmitsTheSameRecords() throws {
        let make = { () throws -> StreamGraph in
            let graph = StreamGraph(idleAfterMilliseconds: 3_000)
            try WordCountJob.build(on: graph, configuration: .init(windowLength: 2_000, slide: 1_000, allowedLateness: 0))
            return graph
        }
        // Partition 1 stops early; partition 0 keeps going; empty batches in between.
        var batches: [(time: Int64, blocks: [Block])] = []
        for index in 0..<30 {
            let time = Int64(index + 1) * 1_000
            if index % 3 == 2 { batches.append((time, [])); continue }
            var records = [TestRecord(partition: 0, offset: Int64(index), timestamp: time - 500, value: Array("a b a\(index % 4)".utf8))]
            if index < 8 { records.append(TestRecord(partition: 1, offset: Int64(index), timestamp: time - 1_500, value: Array("b c".utf8))) }
            batches.append((time, [makeBlock(records)]))
        }
        let original = try make()
        var emitted: [[OutputRecord]] = []
        var checkpoints: [[UInt8]] = []
        for batch in batches {
            emitted.append(original.runBatch(time: batch.time, blocks: batch.blocks).records)
            checkpoints.append(original.checkpoint())
        }
        #expect(emitted.joined().contains { $0.topic == "word-counts-windowed" })
        for k in [0, 4, 9, 13, 20] {
            let replayed = try make()
            try replayed.restore(from: checkpoints[k])
            for index in (k + 1)..<batches.count where !batches[index].blocks.isEmpty {
                #expect(replayed.runBatch(time: batches[index].time, blocks: batches[index].blocks).records == emitted[index], "batch \(index) after the checkpoint of batch \(k)")
            }
            #expect(replayed.checkpoint() == original.checkpoint())
        }
    }

    @Test func flushingRunsAtTheLastWatermark() {
        let graph = StreamGraph()
        var times: [Int64] = []
        graph.input().foreachBatch { time, _ in times.append(time) }
        _ = graph.runBatch(time: 100, blocks: [lines(("x", 42))])
        #expect(graph.flushWindows().watermark == .max)
        #expect(times == [100, 42])
        #expect(StreamGraph().flushWindows() == BatchOutput(records: [], recordsIn: 0, lateRecords: 0, watermark: .max))
    }
}

/// Counts live tokens: a token attached to a block as its lifetime shows whether any copy of the block is left.
private final class AliveCount: @unchecked Sendable {
    private(set) var count = 0

    func token() -> Token {
        count += 1
        return Token(self)
    }

    final class Token: @unchecked Sendable {
        let owner: AliveCount
        init(_ owner: AliveCount) { self.owner = owner }
        deinit { owner.count -= 1 }
    }
}
