import Dispatch

/// Blocks as the unit of parallel work, as Spark's tasks are: a batch's blocks are cut into contiguous runs, each run
/// is read on its own thread, and the results come back in block order for a deterministic merge.
enum BlockTasks {
    /// The least input worth a thread of its own: below it, a run is read where it is.
    static let minimumBytesPerTask = 1 << 20

    /// `blocks` cut into at most `parts` contiguous runs of about equal bytes, each of at least
    /// ``minimumBytesPerTask`` (one run for little input); empty input gives no runs.
    static func split(_ blocks: [Block], into parts: Int) -> [[Block]] {
        guard !blocks.isEmpty else { return [] }
        let total = blocks.reduce(0) { $0 + $1.bytes.count }
        let count = max(1, min(parts, blocks.count, total / minimumBytesPerTask))
        var runs: [[Block]] = []
        var run: [Block] = []
        var bytes = 0
        for block in blocks {
            run.append(block)
            bytes += block.bytes.count
            // Close the run once it holds its share of the bytes read so far.
            if runs.count < count - 1, bytes * count >= total * (runs.count + 1) {
                runs.append(run)
                run = []
            }
        }
        if !run.isEmpty { runs.append(run) }
        return runs
    }

    /// `body` applied to each run, on up to `runs.count` threads (the caller's among them), results in run order.
    /// Each run is handed over whole, so a body that drops its blocks as it reads them releases them.
    static func map<Result: Sendable>(
        _ runs: consuming [[Block]], _ body: @Sendable (consuming [Block]) -> Result
    ) -> [Result] {
        let tasks = runs.map(Run<Result>.init)
        runs = []
        if tasks.count == 1 {
            tasks[0].run(body)
        } else {
            DispatchQueue.concurrentPerform(iterations: tasks.count) { tasks[$0].run(body) }
        }
        return tasks.map { $0.result! }
    }

    /// One run of blocks and, once it has run, its result; each is touched by one thread at a time.
    private final class Run<Result>: @unchecked Sendable {
        private var blocks: [Block]
        var result: Result?

        init(_ blocks: [Block]) {
            self.blocks = blocks
        }

        func run(_ body: (consuming [Block]) -> Result) {
            result = body(take())
        }

        private func take() -> [Block] {
            defer { blocks = [] }
            return blocks
        }
    }
}
