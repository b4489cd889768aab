import SampleData
import StreamEngine
import Testing

@Suite struct DStreamWindowsTests {
    /// Windowed word counts rendered as "start-end word=count" lines, batch by batch.
    final class WindowedCounts {
        let graph = StreamGraph()
        var batches: [[String]] = []
        var late: [Int] = []

        init(_ spec: WindowSpec) {
            graph.input().flatMapWords().map { ($0, Int64(1)) }
                .reduceByKeyAndWindow(name: "windows", spec, +)
                .foreachBatch { [unowned self] _, counts in
                    batches.append(counts.map { "\($0.1.window.start)-\($0.1.window.end) \($0.0)=\($0.1.value)" })
                }
        }

        @discardableResult
        func run(_ block: Block) -> [String] {
            late.append(graph.runBatch(time: 0, blocks: [block]).lateRecords)
            return batches.last ?? []
        }

        func flush() -> [String] {
            late.append(graph.flushWindows().lateRecords)
            return batches.last ?? []
        }
    }

    /// A flush at the end of an input leaves, in the checkpoint taken just before it, its windows open and marked
    /// emitted: a run restored from it emits such a window again only for the keys that change, whether the window
    /// closes on the watermark or at the next flush, and a run over no new input emits nothing. Both fold paths: a
    /// keyed reduce (per element) and a count by value (per dictionary id).
    @Test func windowsFlushedAtTheEndAreEmittedAgainOnlyForTheKeysThatChange() throws {
        let spec = try WindowSpec(length: 10_000)
        func graphs() -> (StreamGraph, () -> [String]) {
            let graph = StreamGraph()
            var emitted: [String] = []
            let words = graph.input().flatMapWords()
            words.map { ($0, Int64(1)) }.reduceByKeyAndWindow(name: "reduce", spec, +)
                .foreachBatch { _, counts in emitted += counts.map { "r \($0.1.window.start) \($0.0)=\($0.1.value)" } }
            words.countByValueAndWindow(name: "count", spec)
                .foreachBatch { _, counts in emitted += counts.map { "c \($0.1.window.start) \($0.0)=\($0.1.value)" } }
            return (graph, { defer { emitted = [] }; return emitted.sorted() })
        }
        let (first, firstOutput) = graphs()
        _ = first.runBatch(time: 0, blocks: [lines(("a b", 11_000), ("a", 12_000))])
        #expect(firstOutput() == [])
        let flushed = first.checkpointAsFlushed()
        _ = first.flushWindows()
        #expect(firstOutput() == ["c 10000 a=2", "c 10000 b=1", "r 10000 a=2", "r 10000 b=1"])

        // Over no new input: nothing again.
        let (idle, idleOutput) = graphs()
        try idle.restore(from: flushed)
        _ = idle.flushWindows()
        #expect(idleOutput() == [])

        // A new record for b in the flushed window, which the watermark then closes, and one for c in a new window.
        let (second, secondOutput) = graphs()
        try second.restore(from: flushed)
        _ = second.runBatch(time: 0, blocks: [lines(("b", 13_000), ("c", 25_000))])
        #expect(secondOutput() == ["c 10000 b=2", "r 10000 b=2"])
        let again = second.checkpointAsFlushed()
        _ = second.flushWindows()
        #expect(secondOutput() == ["c 20000 c=1", "r 20000 c=1"])

        // A plain checkpoint (no flush) keeps the marks of the flushes before it; restored twice, the same.
        let (third, thirdOutput) = graphs()
        try third.restore(from: again)
        #expect(third.checkpoint() == again)
        _ = third.flushWindows()
        #expect(thirdOutput() == [])
    }

    @Test func tumblingWindowsEmitWhenTheWatermarkPassesTheirEnd() throws {
        let counts = WindowedCounts(try WindowSpec(length: 10_000))
        #expect(counts.run(lines(("a", 1_000), ("b", 2_000), ("a", 9_999), ("a", 12_000), ("z", -1))) == [
            "-10000-0 z=1", "0-10000 a=2", "0-10000 b=1",
        ])
        #expect(counts.run(lines(("c", 25_000))) == ["10000-20000 a=1"])
        #expect(counts.flush() == ["20000-30000 c=1"])
        #expect(counts.late == [0, 0, 0])
    }

    /// A batch of words stores each record's time once for all its words; every word must still land in the window
    /// of its own record, across records without words and consecutive records with equal times, and through
    /// operators that decode the batch (`flatMap`, `filter`) as well as those that read it in place.
    @Test func everyWordKeepsItsRecordsTimeThroughEachKindOfOperator() throws {
        let graph = StreamGraph()
        let spec = try WindowSpec(length: 10)
        let words = graph.input().flatMapWords()
        var inPlace: [String] = []
        var decoded: [String] = []
        words.map { ($0, Int64(1)) }.reduceByKeyAndWindow(name: "in-place", spec, +)
            .foreachBatch { _, counts in inPlace += counts.map { "\($0.1.window.start) \($0.0)=\($0.1.value)" } }
        words.filter { $0 != "x" }.flatMap { [$0, $0.uppercased()] }.map { ($0, Int64(1)) }
            .reduceByKeyAndWindow(name: "decoded", spec, +)
            .foreachBatch { _, counts in decoded += counts.map { "\($0.1.window.start) \($0.0)=\($0.1.value)" } }
        _ = graph.runBatch(time: 0, blocks: [lines(("a b", 1), ("a x", 1), ("", 5), ("b", 9), ("a", 10), ("b b", 25))])
        _ = graph.flushWindows()
        #expect(inPlace == ["0 a=2", "0 b=2", "0 x=1", "10 a=1", "20 b=2"])
        #expect(decoded == ["0 A=2", "0 B=2", "0 a=2", "0 b=2", "10 A=1", "10 a=1", "20 B=2", "20 b=2"])
    }

    @Test func slidingWindowsCountEachElementInEveryWindow() throws {
        let counts = WindowedCounts(try WindowSpec(length: 10_000, slide: 5_000))
        #expect(counts.run(lines(("x", 3_000), ("x", 7_000), ("y", 12_000))) == [
            "-5000-5000 x=1", "0-10000 x=2",
        ])
        #expect(counts.flush() == [
            "5000-15000 x=1", "5000-15000 y=1", "10000-20000 y=1",
        ])
    }

    @Test func outOfOrderElementsWithinTheLatenessAreCountedAndLaterOnesDropped() throws {
        let counts = WindowedCounts(try WindowSpec(length: 10_000, allowedLateness: 5_000))
        #expect(counts.run(lines(("a", 9_000), ("b", 12_000))) == [])
        #expect(counts.run(lines(("a", 4_000), ("c", 16_000))) == ["0-10000 a=2"])
        #expect(counts.run(lines(("a", 8_000), ("d", 14_000))) == [])
        #expect(counts.late == [0, 0, 1])
        #expect(counts.flush() == ["10000-20000 b=1", "10000-20000 c=1", "10000-20000 d=1"])
    }

    @Test func aWindowClosesWhenTheWatermarkReachesItsEndPlusLateness() throws {
        let counts = WindowedCounts(try WindowSpec(length: 10_000, allowedLateness: 1_000))
        #expect(counts.run(lines(("a", 5_000), ("b", 10_999))) == [])
        #expect(counts.run(lines(("e", 9_999), ("c", 11_000))) == ["0-10000 a=1", "0-10000 e=1"])
        #expect(counts.run(lines(("d", 9_999))) == [])
        #expect(counts.late == [0, 0, 1])
    }

    @Test func anElementIsLateOnlyWhenAllItsWindowsClosed() throws {
        let counts = WindowedCounts(try WindowSpec(length: 10_000, slide: 5_000))
        counts.run(lines(("a", 11_000)))  // watermark 11000 closes windows ending at or before it
        #expect(counts.run(lines(("b", 7_000), ("c", 4_000))) == [])  // b joins 5000-15000; c has no open window
        #expect(counts.late == [0, 1])
        #expect(counts.flush() == ["5000-15000 a=1", "5000-15000 b=1", "10000-20000 a=1"])
    }

    @Test func everyWindowIsEmittedExactlyOnceAcrossManyBatches() throws {
        let counts = WindowedCounts(try WindowSpec(length: 10_000))
        var emitted: [String] = []
        for second in 0..<95 {
            emitted += counts.run(lines(("w", Int64(second) * 1_000), ("v", Int64(second) * 1_000 + 500)))
            emitted += counts.run(lines())
        }
        emitted += counts.flush()
        let expected = (0..<10).flatMap { window -> [String] in
            let count = window == 9 ? 5 : 10
            return ["\(window * 10_000)-\(window * 10_000 + 10_000) v=\(count)", "\(window * 10_000)-\(window * 10_000 + 10_000) w=\(count)"]
        }
        #expect(emitted == expected)
        #expect(counts.late.allSatisfy { $0 == 0 })
    }

    @Test func elementsAfterTheFlushAreLate() throws {
        let counts = WindowedCounts(try WindowSpec(length: 10_000))
        counts.run(lines(("a", 1_000)))
        #expect(counts.flush() == ["0-10000 a=1"])
        #expect(counts.run(lines(("b", 50_000))) == [])
        #expect(counts.late == [0, 0, 1])
        #expect(counts.graph.watermark == .max)
    }

    @Test func windowCollectsElementsInArrivalOrder() throws {
        let graph = StreamGraph()
        let windows = Collected(texts(graph).window(name: "raw", try WindowSpec(length: 100)))
        _ = graph.runBatch(time: 0, blocks: [lines(("b", 10), ("a", 20), ("c", 150))])
        _ = graph.flushWindows()
        #expect(windows.batches == [
            [Windowed(window: TimeWindow(start: 0, end: 100), value: ["b", "a"])],
            [Windowed(window: TimeWindow(start: 100, end: 200), value: ["c"])],
        ])
    }

    @Test func invalidWindowParametersAreErrors() {
        #expect(throws: StreamEngineError.nonPositiveDuration) { try WindowSpec(length: 0) }
        #expect(throws: StreamEngineError.nonPositiveDuration) { try WindowSpec(length: 10, slide: -5) }
        #expect(throws: StreamEngineError.lengthNotMultipleOfSlide) { try WindowSpec(length: 10_000, slide: 3_000) }
        #expect(throws: StreamEngineError.negativeLateness) { try WindowSpec(length: 10, allowedLateness: -1) }
        #expect(throws: StreamEngineError.durationTooLong) { try WindowSpec(length: .max) }
    }

    @Test func countingOperatorsGiveWhatTheirPerElementFoldsGive() throws {
        // countByValue and countByValueAndWindow count a dictionary-encoded batch per id, in another order than the
        // per-element folds they stand for. Random lines over a small vocabulary, in several batches, with sliding
        // windows and lateness (some records are late), over the words themselves, over a map that is not
        // one-to-one (initials), and over decoded words (flatMap): each pair must agree, element times included
        // (seen through the windows downstream).
        let spec = try WindowSpec(length: 40, slide: 20, allowedLateness: 10)
        let timeWindows = try WindowSpec(length: 7)
        let graph = StreamGraph()
        let words = graph.input().flatMapWords()
        var pairs: [(counted: Collected<String>, folded: Collected<String>)] = []
        for (index, input) in [words, words.map { String($0.prefix(1)) }, words.flatMap { [$0] }].enumerated() {
            func totals(_ counts: DStream<(String, Int64)>, _ name: String) -> Collected<String> {
                Collected(counts.map { "\($0.0)=\($0.1)" }.window(name: "\(name)-\(index)", timeWindows)
                    .map { "\($0.window.start) \($0.value)" })
            }
            func windowed(_ counts: DStream<(String, Windowed<Int64>)>) -> Collected<String> {
                Collected(counts.map { "\($0.1.window.start) \($0.0)=\($0.1.value)" })
            }
            pairs.append((totals(input.countByValue(), "counted"), totals(input.map { ($0, Int64(1)) }.reduceByKey(+), "folded")))
            pairs.append((
                windowed(input.countByValueAndWindow(name: "counted-windows-\(index)", spec)),
                windowed(input.map { ($0, Int64(1)) }.reduceByKeyAndWindow(name: "folded-windows-\(index)", spec, +))))
        }
        var generator = SplitMix64(seed: 11)
        let vocabulary = ["a", "ab", "abc", "b", "ba", "c", "cab", "d"]
        var late = 0
        for batch in 1...8 {
            let records = (0..<60).map { line in
                let text = (0..<Int(generator.next() % 5)).map { _ in vocabulary[Int(generator.next() % 8)] }.joined(separator: " ")
                return TestRecord(text, at: Int64(batch * 30) - Int64(generator.next() % 90), offset: Int64(line))
            }
            late += graph.runBatch(time: Int64(batch) * 1_000, blocks: [makeBlock(records)]).lateRecords
        }
        _ = graph.flushWindows()
        #expect(late > 0)
        for (counted, folded) in pairs {
            #expect(counted.batches.joined().count > 10)
            #expect(counted.batches == folded.batches)
        }
    }
}
