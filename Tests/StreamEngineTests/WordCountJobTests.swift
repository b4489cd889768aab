import Foundation
@testable import StreamEngine
import SampleData
import Testing

@Suite struct WordCountJobTests {
    @Test func producesExactCountAndWindowRecords() throws {
        // Partition 1 has no records in the second batch, 60 s of batch time later: idle after 1 ms, it stops
        // holding the watermark back there, so the first window closes.
        let graph = StreamGraph(idleAfterMilliseconds: 1)
        try WordCountJob.build(on: graph)

        let first = graph.runBatch(time: 5_000, blocks: [
            lines(("Hello world", 1_000)),
            makeBlock([
                TestRecord(partition: 1, offset: 3, timestamp: 2_000, value: Array(#"hello "Quote" back\slash"#.utf8)),
                TestRecord(partition: 1, offset: 4, timestamp: 2_500, value: [0x68, 0xFF]),
            ]),
        ])
        let header: [(name: String, value: [UInt8])] = [(name: "sluice-batch", value: Array("5000".utf8))]
        #expect(first.records == [
            OutputRecord(topic: "word-counts", key: Array("hello".utf8), value: Array(#"{"word":"hello","count":2,"batch_time":5000}"#.utf8), headers: header),
            OutputRecord(topic: "word-counts", key: Array("world".utf8), value: Array(#"{"word":"world","count":1,"batch_time":5000}"#.utf8), headers: header),
            OutputRecord(topic: "word-counts", key: Array(#""quote""#.utf8), value: Array(#"{"word":"\"quote\"","count":1,"batch_time":5000}"#.utf8), headers: header),
            OutputRecord(topic: "word-counts", key: Array(#"back\slash"#.utf8), value: Array(#"{"word":"back\\slash","count":1,"batch_time":5000}"#.utf8), headers: header),
        ])
        #expect(first.recordsIn == 3)
        #expect(first.malformedRecords == 1)
        // The slowest partition decides: partition 0 is at 1,000, partition 1 at 2,500.
        #expect(first.watermark == 1_000)

        let second = graph.runBatch(time: 65_000, blocks: [lines(("World tab\u{1}", 61_000))])
        #expect(second.records.map(\.topic) == ["word-counts", "word-counts"] + Array(repeating: "word-counts-windowed", count: 4))
        #expect(second.records.map(\.text) == [
            #"{"word":"world","count":2,"batch_time":65000}"#,
            #"{"word":"tab\u0001","count":1,"batch_time":65000}"#,
            #"{"word":"\"quote\"","count":1,"window_start":0,"window_end":60000}"#,
            #"{"word":"back\\slash","count":1,"window_start":0,"window_end":60000}"#,
            #"{"word":"hello","count":2,"window_start":0,"window_end":60000}"#,
            #"{"word":"world","count":1,"window_start":0,"window_end":60000}"#,
        ])
        #expect(second.records.last?.key == Array("world".utf8))
        #expect(second.records.last?.headers.isEmpty == true)

        let flushed = graph.flushWindows()
        #expect(flushed.records.map(\.text) == [
            #"{"word":"tab\u0001","count":1,"window_start":60000,"window_end":120000}"#,
            #"{"word":"world","count":1,"window_start":60000,"window_end":120000}"#,
        ])
        #expect(flushed.records.map(\.key) == [Array("tab\u{1}".utf8), Array("world".utf8)])
    }

    @Test func usesTheConfiguredTopics() throws {
        let graph = StreamGraph()
        try WordCountJob.build(on: graph, configuration: .init(countsTopic: "totals", windowsTopic: "per-second", windowLength: 1_000))
        let output = graph.runBatch(time: 1, blocks: [lines(("x", 100), ("y", 2_000))])
        #expect(output.records.map(\.topic) == ["totals", "totals", "per-second"])
        #expect(output.records.last?.text == #"{"word":"x","count":1,"window_start":0,"window_end":1000}"#)
    }

    @Test func defaultsAndInvalidWindowsAreReported() throws {
        #expect(WordCountJob.Configuration() == WordCountJob.Configuration(
            countsTopic: "word-counts", windowsTopic: "word-counts-windowed", windowLength: 60_000, slide: 60_000, allowedLateness: 0))
        let graph = StreamGraph()
        #expect(throws: StreamEngineError.lengthNotMultipleOfSlide) {
            try WordCountJob.build(on: graph, configuration: .init(windowLength: 10_000, slide: 3_000))
        }
        #expect(graph.checkpoint() == [3, 0, 0, 0])
    }

    /// Eight blocks of about 0.7 MiB each; malformed records (invalid UTF-8, a word over the limit) in several of them,
    /// and words first seen in later blocks.
    func mixedBlocks() -> [Block] {
        var generator = SplitMix64(seed: 7)
        var blocks: [Block] = []
        for index in 0..<8 {
            var records: [TestRecord] = []
            for line in 0..<20_000 {
                let words = (0..<6).map { _ in "w\(generator.next() % UInt64(2_000 * (index + 1)))" }
                let offset = Int64(index * 20_000 + line)
                records.append(TestRecord(partition: Int32(index % 3), offset: offset, timestamp: offset / 7,
                                          value: Array(words.joined(separator: " ").utf8)))
            }
            if index.isMultiple(of: 3) {
                records.append(TestRecord(offset: Int64(index), timestamp: 1, value: [0x61, 0xFF]))
                records.append(TestRecord(offset: Int64(index), timestamp: 2,
                                          value: Array(("new\(index) " + String(repeating: "x", count: 70_000)).utf8)))
            }
            blocks.append(makeBlock(records))
        }
        return blocks
    }

    /// The output and final checkpoint of the word count over two batches of `blocks` (five, then three blocks), with
    /// the first `readAhead` blocks of each batch read ahead of it.
    func wordCount(
        _ blocks: [Block], parallelism: Int, readAhead: Int = 0, maxEventTimeAhead: Int64 = .max
    ) throws -> (outputs: [BatchOutput], checkpoint: [UInt8], readAhead: Int) {
        let graph = StreamGraph(maxEventTimeAheadMilliseconds: maxEventTimeAhead, parallelism: parallelism)
        try WordCountJob.build(on: graph, configuration: .init(windowLength: 1_000))
        var outputs: [BatchOutput] = []
        var readCount = 0
        var lastBatchTime: Int64 = 0
        for (time, range) in [(Int64(1_000), 0..<5), (2_000, 5..<8)] {
            var batch = Array(blocks[range])
            for index in batch.indices.prefix(readAhead) where graph.readAhead(&batch[index], nextBatchAfter: lastBatchTime) {
                readCount += 1
            }
            outputs.append(graph.runBatch(time: time, blocks: batch))
            lastBatchTime = time
        }
        outputs.append(graph.flushWindows())
        return (outputs, graph.checkpoint(), readCount)
    }

    @Test func blocksReadInParallelGiveTheOutputOfOnePass() throws {
        // Read by three and two threads.
        let blocks = mixedBlocks()
        #expect(BlockTasks.split(Array(blocks[0..<5]), into: 4).count == 3)
        #expect(BlockTasks.split(Array(blocks[5...]), into: 4).count == 2)
        let onePass = try wordCount(blocks, parallelism: 1)
        let parallel = try wordCount(blocks, parallelism: 4)
        #expect(onePass.outputs[0].malformedRecords == 4)
        #expect(onePass.outputs[0].records.count > 10_000)
        // Compared first, so that a failure reports a line rather than both outputs.
        let sameOutput = parallel.outputs == onePass.outputs
        let sameCheckpoint = parallel.checkpoint == onePass.checkpoint
        #expect(sameOutput)
        #expect(sameCheckpoint)
    }

    @Test func blocksReadAheadOfTheirBatchGiveTheOutputOfOnePass() throws {
        let blocks = mixedBlocks()
        let onePass = try wordCount(blocks, parallelism: 1)
        // Some or all of each batch's blocks read ahead; the rest read on one thread or in parallel runs.
        for (parallelism, readAhead) in [(1, 1), (1, 5), (4, 1), (4, 2)] {
            let run = try wordCount(blocks, parallelism: parallelism, readAhead: readAhead)
            #expect(run.readAhead == 2 * readAhead - (readAhead == 5 ? 2 : 0))
            let sameOutput = run.outputs == onePass.outputs
            let sameCheckpoint = run.checkpoint == onePass.checkpoint
            #expect(sameOutput, "parallelism \(parallelism), \(readAhead) blocks read ahead")
            #expect(sameCheckpoint, "parallelism \(parallelism), \(readAhead) blocks read ahead")
        }
        #expect(onePass.outputs[0].malformedRecords == 4)
    }

    /// Blocks handed to the thread that reads them ahead while a batch runs; the test waits for it before it touches
    /// them again.
    final class BlocksReadElsewhere: @unchecked Sendable {
        var blocks: [Block]
        let done = DispatchSemaphore(value: 0)

        init(_ blocks: [Block]) {
            self.blocks = blocks
        }
    }

    /// As the driver's read-ahead worker does: once the first batch has read its input (`inputWasRead`), another
    /// thread reads the second batch's first blocks ahead while the first batch goes on with its state and output.
    @Test func blocksReadAheadOnAnotherThreadWhileABatchRunsGiveTheOutputOfOnePass() throws {
        let blocks = mixedBlocks()
        let onePass = try wordCount(blocks, parallelism: 1)
        let graph = StreamGraph()
        try WordCountJob.build(on: graph, configuration: .init(windowLength: 1_000))
        let second = BlocksReadElsewhere(Array(blocks[5..<8]))
        nonisolated(unsafe) let reader = graph
        graph.inputWasRead = {
            Thread.detachNewThread {
                for index in second.blocks.indices.prefix(2) {
                    _ = reader.readAhead(&second.blocks[index], nextBatchAfter: 1_000)
                }
                second.done.signal()
            }
        }
        var outputs = [graph.runBatch(time: 1_000, blocks: Array(blocks[0..<5]))]
        graph.inputWasRead = nil
        second.done.wait()
        #expect(second.blocks.filter(\.recordsWereReadAhead).count == 2)
        outputs.append(graph.runBatch(time: 2_000, blocks: second.blocks))
        outputs.append(graph.flushWindows())
        let sameOutput = outputs == onePass.outputs
        #expect(sameOutput)
        #expect(graph.checkpoint() == onePass.checkpoint)
    }

    @Test func aBlockPastTheEventTimeHorizonIsLeftForItsBatch() throws {
        // Block i holds records up to (i + 1) * 2.86 s after the epoch. A batch after 0 accepts events up to 10 s ahead
        // of it, so the first three blocks of the first batch can be read ahead, and none of the second (from 17 s on,
        // past 11 s): the batch must read those to find their latest timestamp within its horizon.
        let blocks = mixedBlocks()
        let onePass = try wordCount(blocks, parallelism: 1, maxEventTimeAhead: 10_000)
        let run = try wordCount(blocks, parallelism: 1, readAhead: 8, maxEventTimeAhead: 10_000)
        #expect(run.readAhead == 3)
        let sameOutput = run.outputs == onePass.outputs
        #expect(sameOutput)
        #expect(run.checkpoint == onePass.checkpoint)
    }

    @Test func aBlockAfterOneLeftForItsBatchIsLeftToo() throws {
        // A record from a bad clock, far past the horizon, in the first block only: the blocks after it are within the
        // horizon, but the words read ahead must be those of the batch's first blocks, so they are left as well.
        func blocks() -> [Block] {
            [lines(("a b", 1_000), ("c", 900_000)), lines(("a d", 1_500)), lines(("e", 2_000))]
        }
        let graph = StreamGraph(maxEventTimeAheadMilliseconds: 10_000)
        try WordCountJob.build(on: graph, configuration: .init(windowLength: 1_000))
        var batch = blocks()
        #expect(batch.indices.map { graph.readAhead(&batch[$0], nextBatchAfter: 0) } == [false, false, false])
        let output = graph.runBatch(time: 1_000, blocks: batch)
        let onePass = StreamGraph(maxEventTimeAheadMilliseconds: 10_000)
        try WordCountJob.build(on: onePass, configuration: .init(windowLength: 1_000))
        #expect(output == onePass.runBatch(time: 1_000, blocks: blocks()))
        #expect(output.futureRecords == 1)
        // The next batch reads ahead again.
        var next = lines(("f", 2_500))
        #expect(graph.readAhead(&next, nextBatchAfter: 1_000))
    }

    @Test func onlyAnInputReadByOneWordStreamIsReadAhead() throws {
        let graph = StreamGraph()
        let input = graph.input()
        input.flatMapWords().countByValue().output { _, _, _ in }
        var block = lines(("a b", 1))
        #expect(graph.readAhead(&block, nextBatchAfter: 0))
        input.map(\.offset).output { _, _, _ in }
        var second = lines(("c", 2))
        #expect(!graph.readAhead(&second, nextBatchAfter: 0))
        #expect(records(of: second).count == 1)
    }

    @Test func recordsSpellNumbersAndEscapesExactly() {
        for value in [0, 7, -7, 10, 1_234_567_890, Int64.max, Int64.min] {
            var bytes: [UInt8] = []
            bytes.appendDecimal(value)
            #expect(String(decoding: bytes, as: UTF8.self) == String(value))
        }
        let cases = [("plain", #""plain""#), ("a\"b\\c", #""a\"b\\c""#), ("tab\u{1}", #""tab\u0001""#),
                     (String(repeating: "long", count: 10), "\"" + String(repeating: "long", count: 10) + "\""), ("", #""""#)]
        for (text, json) in cases {
            var bytes: [UInt8] = []
            var text = text
            text.withUTF8 { bytes.appendJSONString(utf8: $0) }
            #expect(String(decoding: bytes, as: UTF8.self) == json)
        }
        let record = WordCountJob.totalRecord(word: "w", total: -3, stamp: .init(batchTime: 42), topic: "t")
        #expect(record.text == #"{"word":"w","count":-3,"batch_time":42}"#)
        #expect(record.headers.map(\.value) == [Array("42".utf8)])
    }
}
