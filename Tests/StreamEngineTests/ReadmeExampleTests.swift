import StreamEngine
import Testing

/// The job from the README's "Writing your own job", so the documented API keeps compiling and working.
@Suite struct ReadmeExampleTests {
    @Test func wordLengthsJobCountsRunningTotals() {
        let graph = StreamGraph()
        let lengths = graph.input()
            .flatMapWords()
            .map { ($0.utf8.count, Int64(1)) }
            .reduceByKey(+)
            .updateStateByKey(name: "lengths") { (_: Int, counts: [Int64], total: Int64?) in
                (total ?? 0) + counts.reduce(0, +)
            }
        lengths.output { batchTime, pairs, emit in
            for (length, total) in pairs {
                emit(OutputRecord(topic: "word-lengths", key: Array(String(length).utf8), value: Array(String(total).utf8)))
            }
        }
        _ = graph.runBatch(time: 1_000, blocks: [lines(("a bb cc", 10))])
        let second = graph.runBatch(time: 2_000, blocks: [lines(("dd e", 20))])
        let totals = second.records.map { (String(decoding: $0.key, as: UTF8.self), String(decoding: $0.value, as: UTF8.self)) }
        #expect(totals.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" } == ["1=2", "2=3"])
    }
}
