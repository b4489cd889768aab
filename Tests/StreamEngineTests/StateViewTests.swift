import SampleData
import StreamEngine
import Testing

/// The state view behind the state queries: a key's state, and a ranking kept batch by batch that equals a full sort.
@Suite struct StateViewTests {
    /// Random batches over a skewed vocabulary; after each, the kept ranking equals the brute-force top of all totals.
    @Test func theRankingKeptPerBatchEqualsAFullSortOfTheTotals() throws {
        let graph = StreamGraph()
        let totals = try WordCountJob.build(on: graph)
        var expected: [String: Int64] = [:]
        var generator = SplitMix64(seed: 7)
        for batch in 0..<40 {
            var text: [(String, Int64)] = []
            for _ in 0..<50 {
                // Skewed: low word numbers are frequent, so leaders change and many words tie at small counts.
                let word = "w\(generator.next() % 40 * (generator.next() % 40))"
                expected[word, default: 0] += 1
                text.append((word, Int64(batch)))
            }
            _ = graph.runBatch(time: Int64(batch + 1) * 1000, blocks: [makeBlock(text.enumerated().map {
                TestRecord(partition: 0, offset: Int64(batch * 50 + $0.offset), timestamp: $0.element.1, value: Array($0.element.0.utf8))
            })])
            let sorted = expected.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            #expect(totals.largest(25).map { "\($0.key)=\($0.state)" } == sorted.prefix(25).map { "\($0.key)=\($0.value)" }, "batch \(batch)")
        }
        #expect(totals.keyCount == expected.count)
        #expect(totals.state(of: "w0") == expected["w0"])
        #expect(totals.state(of: "never") == nil)
    }

    /// A graph of running word totals, ranked by a view of `rankingCapacity`.
    func wordTotals(rankingCapacity: Int) -> (StreamGraph, StateView<String, Int64>) {
        let graph = StreamGraph()
        let totals = StateView<String, Int64>(rankingCapacity: rankingCapacity)
        graph.input().flatMapWords().countByValue().updateStateByKey(name: "totals", view: totals) { (_, counts: [Int64], total: Int64?) in
            counts.reduce(total ?? 0, +)
        }.foreachBatch { _, _ in }
        return (graph, totals)
    }

    /// A full ranking passes over updated keys that do not rank before its last entry; with a small capacity that
    /// path runs in almost every batch, and the ranking still equals a full sort.
    @Test func aFullSmallRankingEqualsAFullSortOfTheTotals() throws {
        let (graph, totals) = wordTotals(rankingCapacity: 10)
        var expected: [String: Int64] = [:]
        var generator = SplitMix64(seed: 11)
        for batch in 0..<60 {
            let words = (0..<30).map { _ in "w\(generator.next() % 30 * (generator.next() % 30))" }
            for word in words { expected[word, default: 0] += 1 }
            _ = graph.runBatch(time: Int64(batch + 1) * 1000, blocks: [lines((words.joined(separator: " "), Int64(batch)))])
            let sorted = expected.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            #expect(totals.largest(10).map { "\($0.key)=\($0.state)" } == sorted.prefix(10).map { "\($0.key)=\($0.value)" }, "batch \(batch)")
        }
    }

    /// A small capacity: words leave and enter the ranking as their totals pass each other.
    @Test func aFullRankingAdmitsAWordThatOvertakesItsLast() throws {
        let (graph, totals) = wordTotals(rankingCapacity: 2)
        _ = graph.runBatch(time: 1000, blocks: [lines(("a a a b b c", 1))])
        #expect(totals.largest(5).map(\.key) == ["a", "b"])
        _ = graph.runBatch(time: 2000, blocks: [lines(("c c c", 2))])
        #expect(totals.largest(5).map { "\($0.key)=\($0.state)" } == ["c=4", "a=3"])
    }

    /// A restore replaces the state; the ranking is rebuilt from it, not left from before.
    @Test func aRestoreRebuildsTheRanking() throws {
        let source = StreamGraph()
        try WordCountJob.build(on: source)
        _ = source.runBatch(time: 1000, blocks: [lines(("x x x y", 1))])
        let checkpoint = source.checkpoint()

        let graph = StreamGraph()
        let totals = try WordCountJob.build(on: graph)
        _ = graph.runBatch(time: 1000, blocks: [lines(("z z z z z", 1))])
        try graph.restore(from: checkpoint)
        #expect(totals.largest(3).map { "\($0.key)=\($0.state)" } == ["x=3", "y=1"])
        #expect(totals.state(of: "z") == nil)
    }
}
