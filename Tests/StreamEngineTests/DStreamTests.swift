import StreamEngine
import Testing

@Suite struct DStreamTests {
    @Test func mapAndFilterKeepOrder() {
        let graph = StreamGraph()
        let evens = Collected(texts(graph).map { Int($0) ?? -1 }.filter { $0.isMultiple(of: 2) })
        _ = graph.runBatch(time: 1, blocks: [lines(("1", 0), ("2", 0), ("x", 0)), lines(("4", 0), ("5", 0))])
        #expect(evens.batches == [[2, 4]])
    }

    @Test func flatMapExpandsEachElement() {
        let graph = StreamGraph()
        let parts = Collected(texts(graph).flatMap { $0.split(separator: ",").map(String.init) })
        _ = graph.runBatch(time: 1, blocks: [lines(("a,b", 0), ("", 0), ("c", 0))])
        #expect(parts.batches == [["a", "b", "c"]])
    }

    @Test func reduceByKeyCombinesWithinTheBatchInFirstAppearanceOrder() {
        let graph = StreamGraph()
        let sums = Collected(graph.input().flatMapWords().map { ($0, $0.count) }.reduceByKey(+))
        _ = graph.runBatch(time: 1, blocks: [lines(("bb a bb", 0), ("ccc a bb", 0))])
        _ = graph.runBatch(time: 2, blocks: [lines(("a", 0))])
        #expect(sums.batches.map { $0.map(\.0) } == [["bb", "a", "ccc"], ["a"]])
        #expect(sums.batches.map { $0.map(\.1) } == [[6, 2, 3], [1]])
    }

    /// Enough distinct words to grow the word table several times within one batch, of every length class the
    /// table keys differently (up to 8 bytes, up to 16, longer), including long words that share their first 16
    /// bytes: every count must still be exact, and a later batch must count from scratch.
    @Test func countByValueIsExactForManyDistinctWordsOfEveryLength() {
        let graph = StreamGraph()
        let counts = Collected(graph.input().flatMapWords().countByValue())
        var truth: [String: Int64] = [:]
        var text: [String] = []
        for index in 0..<5_000 {
            let words = ["w\(index)", "medium-word-\(index)", "a-rather-long-shared-prefix-\(index)"]
            for (repeatCount, word) in words.enumerated() {
                for _ in 0...repeatCount {
                    text.append(word)
                    truth[word, default: 0] += 1
                }
            }
        }
        let block = makeBlock(stride(from: 0, to: text.count, by: 10).map { start in
            TestRecord(text[start..<min(start + 10, text.count)].joined(separator: " "), at: 0, offset: Int64(start))
        })
        _ = graph.runBatch(time: 1, blocks: [block])
        #expect(Dictionary(uniqueKeysWithValues: counts.last.map { ($0.0, $0.1) }) == truth)
        _ = graph.runBatch(time: 2, blocks: [lines(("w1 w1", 0))])
        #expect(counts.last.map(\.0) == ["w1"] && counts.last.map(\.1) == [2])
    }

    @Test func countByValueCountsPerBatch() {
        let graph = StreamGraph()
        let counts = Collected(graph.input().flatMapWords().countByValue())
        _ = graph.runBatch(time: 1, blocks: [lines(("to be or not to be", 0))])
        #expect(counts.last.map(\.0) == ["to", "be", "or", "not"])
        #expect(counts.last.map(\.1) == [2, 2, 1, 1])
    }

    @Test func updateStateByKeyEmitsOnlyChangedKeysWithRunningTotals() {
        let graph = StreamGraph()
        let totals = Collected(graph.input().flatMapWords().countByValue()
            .updateStateByKey(name: "totals") { (_, counts: [Int64], total: Int64?) in counts.reduce(total ?? 0, +) })
        _ = graph.runBatch(time: 1, blocks: [lines(("a b a", 0))])
        _ = graph.runBatch(time: 2, blocks: [lines(("b c", 0))])
        _ = graph.runBatch(time: 3, blocks: [lines(("a", 0), ("c c", 0))])
        #expect(totals.batches.map { $0.map(\.0) } == [["a", "b"], ["b", "c"], ["a", "c"]])
        #expect(totals.batches.map { $0.map(\.1) } == [[2, 1], [2, 1], [3, 3]])
    }

    @Test func updateStateByKeyRemovesKeysWhenUpdateReturnsNil() {
        let graph = StreamGraph()
        let totals = Collected(texts(graph).map { ("k", $0) }
            .updateStateByKey(name: "state") { (_, values: [String], state: String?) in
                values.contains("reset") ? nil : (state ?? "") + values.joined()
            })
        _ = graph.runBatch(time: 1, blocks: [lines(("x", 0), ("y", 0))])
        _ = graph.runBatch(time: 2, blocks: [lines(("reset", 0))])
        _ = graph.runBatch(time: 3, blocks: [lines(("z", 0))])
        #expect(totals.batches.map { $0.map(\.1) } == [["xy"], [], ["z"]])
    }

    @Test func sharedStreamsAreComputedOncePerBatch() {
        let graph = StreamGraph()
        var updates = 0
        let totals = graph.input().flatMapWords().countByValue()
            .updateStateByKey(name: "totals") { (_, counts: [Int64], total: Int64?) in
                updates += 1
                return counts.reduce(total ?? 0, +)
            }
        let first = Collected(totals)
        let second = Collected(totals)
        _ = graph.runBatch(time: 1, blocks: [lines(("a a", 0))])
        _ = graph.runBatch(time: 2, blocks: [lines(("a", 0))])
        #expect(updates == 2)
        #expect(first.batches.map { $0.map(\.1) } == [[2], [3]])
        #expect(second.batches.map { $0.map(\.1) } == [[2], [3]])
    }

    @Test func statefulOperatorsAdvanceWithoutSinks() {
        let graph = StreamGraph()
        let words = graph.input().flatMapWords()
        _ = words.countByValue().updateStateByKey(name: "silent") { (_, counts: [Int64], total: Int64?) in counts.reduce(total ?? 0, +) }
        _ = graph.runBatch(time: 1, blocks: [lines(("a", 0))])
        let before = graph.checkpoint()
        _ = graph.runBatch(time: 2, blocks: [lines(("a", 0))])
        #expect(graph.checkpoint() != before)
    }

    @Test func emptyBatchesProduceNothing() {
        let graph = StreamGraph()
        let counts = Collected(graph.input().flatMapWords().countByValue())
        let output = graph.runBatch(time: 7, blocks: [])
        #expect(output == BatchOutput(records: [], recordsIn: 0, lateRecords: 0, watermark: nil))
        var builder = BlockBuilder(reservingCapacity: 0)
        #expect(graph.runBatch(time: 8, blocks: [builder.finish()]).recordsIn == 0)
        #expect(counts.batches.map(\.count) == [0, 0])
    }

    @Test func malformedRecordsAreCountedAndSkipped() {
        let graph = StreamGraph()
        let words = Collected(graph.input().flatMapWords())
        let block = makeBlock([
            TestRecord("good one", at: 5),
            TestRecord(offset: 1, timestamp: 6, value: [0x62, 0x61, 0x64, 0x20, 0xC0]),
            TestRecord("", at: 7, offset: 2),
        ])
        let output = graph.runBatch(time: 1, blocks: [block])
        #expect(words.last == ["good", "one"])
        #expect(output.recordsIn == 3)
        #expect(output.malformedRecords == 1)
        #expect(output.watermark == 7)
    }

    @Test func aRecordWithAWordOverTheLimitIsMalformedAndContributesNothing() {
        let graph = StreamGraph()
        let words = Collected(graph.input().flatMapWords())
        let limit = WordTokenizer.maximumWordBytes
        let block = makeBlock([
            TestRecord("ok " + String(repeating: "a", count: limit), at: 5),
            TestRecord("x " + String(repeating: "b", count: limit + 1) + " y", at: 6, offset: 1),
            TestRecord("z", at: 7, offset: 2),
        ])
        let output = graph.runBatch(time: 1, blocks: [block])
        #expect(words.last == ["ok", String(repeating: "a", count: limit), "z"])
        #expect(output.malformed.map(\.reason) == [.wordTooLong(bytes: limit + 1)])
        #expect(output.malformed.map(\.record.offset) == [1])
    }

    @Test func inputRecordsExposeTheirMetadata() {
        let graph = StreamGraph()
        let seen = Collected(graph.input().map { "\($0.topic)/\($0.partition)@\($0.offset) t=\($0.timestamp) key=\($0.key ?? [])" })
        let block = makeBlock([TestRecord(topic: "in", partition: 2, offset: 40, timestamp: 99, key: [7], value: [])])
        _ = graph.runBatch(time: 1, blocks: [block])
        #expect(seen.last == ["in/2@40 t=99 key=[7]"])
    }

    /// Reference grouping: the batch's (key, sum) pairs in order of first appearance.
    private func grouped(_ pairs: [(String, Int)]) -> [(String, Int)] {
        var order: [String] = []
        var sums: [String: Int] = [:]
        for (key, value) in pairs {
            if sums[key] == nil { order.append(key) }
            sums[key, default: 0] += value
        }
        return order.map { ($0, sums[$0]!) }
    }

    @Test func wordsOfEveryLengthAreCountedExactly() {
        // Words of 1 to 40 bytes that share prefixes, differ only in their last byte, or are all one letter.
        var words: [String] = []
        for length in 1...40 {
            words.append(String(repeating: "a", count: length))
            words.append(String(repeating: "a", count: length - 1) + "b")
            words.append(String((0..<length).map { Character(UnicodeScalar(UInt8(97 + $0 % 26))) }))
        }
        let text = (words + words.reversed() + words.shuffled()).joined(separator: " ")
        let graph = StreamGraph()
        let counts = Collected(graph.input().flatMapWords().countByValue())
        _ = graph.runBatch(time: 1, blocks: [lines((text, 0), ("Ünïcode ünïcode ÜNÏCODE straße", 0))])
        let expected = grouped((WordTokenizer.words(text) + WordTokenizer.words("Ünïcode ünïcode ÜNÏCODE straße")).map { ($0, 1) })
        #expect(counts.last.map(\.0) == expected.map(\.0))
        #expect(counts.last.map { Int($0.1) } == expected.map(\.1))
    }

    @Test func aMapOverWordsRunsOncePerDistinctWordAndGroupsByItsKey() throws {
        final class Counter { var calls = 0 }
        let counter = Counter()
        let graph = StreamGraph()
        // Several words map to one key: the counts and the windowed counts group by the key, in arrival order.
        let keyed = graph.input().flatMapWords().map { word -> (String, Int64) in
            counter.calls += 1
            return (String(word.prefix(1)), 1)
        }
        let sums = Collected(keyed.reduceByKey(+))
        let windowed = Collected(try keyed.reduceByKeyAndWindow(name: "w", WindowSpec(length: 10), +))
        let text = "apple Banana avocado blueberry apple cherry b"
        _ = graph.runBatch(time: 1, blocks: [lines((text, 0))])
        #expect(counter.calls == 6)
        #expect(sums.last.map(\.0) == ["a", "b", "c"])
        #expect(sums.last.map(\.1) == [3, 3, 1])
        _ = graph.flushWindows()
        #expect(windowed.last.map(\.0) == ["a", "b", "c"])
        #expect(windowed.last.map(\.1.value) == [3, 3, 1])
    }
}
