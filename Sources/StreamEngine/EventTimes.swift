/// The event times (ms) of a batch's elements, in element order.
///
/// Stored either one per element, or once per run of consecutive elements with the same time: the
/// words of one record all carry the record's time, so a batch of words needs one entry per record.
struct EventTimes: Sequence {
    fileprivate enum Storage {
        case perElement([Int64])
        /// Run `i` covers the elements before `ends[i]` and from `ends[i - 1]` (0 for the first run).
        case runs(times: [Int64], ends: [Int32])
    }

    private let storage: Storage

    /// One time per element.
    init(_ times: [Int64]) {
        storage = .perElement(times)
    }

    /// Runs of equal times: `times[i]` for the elements up to (excluding) `ends[i]`; `ends` increase strictly.
    init(runs times: [Int64], ends: [Int32]) {
        precondition(times.count == ends.count, "one end per run")
        storage = .runs(times: times, ends: ends)
    }

    /// Every time, one per element.
    var expanded: [Int64] {
        switch storage {
        case .perElement(let times):
            return times
        case .runs(let times, let ends):
            var result: [Int64] = []
            result.reserveCapacity(Int(ends.last ?? 0))
            var start = 0
            for (time, end) in zip(times, ends) {
                result.append(contentsOf: repeatElement(time, count: Int(end) - start))
                start = Int(end)
            }
            return result
        }
    }

    /// Calls `body` with each run of consecutive elements that share a time: the time and the elements' positions.
    func forEachRun(_ body: (Int64, Range<Int>) throws -> Void) rethrows {
        switch storage {
        case .perElement(let times):
            for (position, time) in times.enumerated() {
                try body(time, position..<position + 1)
            }
        case .runs(let times, let ends):
            var start = 0
            for (time, end) in zip(times, ends) {
                try body(time, start..<Int(end))
                start = Int(end)
            }
        }
    }

    func makeIterator() -> Iterator {
        Iterator(storage: storage)
    }

    /// Reads the times in order; each step is O(1).
    struct Iterator: IteratorProtocol {
        fileprivate let storage: Storage
        private var position = 0
        private var run = 0

        fileprivate init(storage: Storage) {
            self.storage = storage
        }

        mutating func next() -> Int64? {
            defer { position += 1 }
            switch storage {
            case .perElement(let times):
                return position < times.count ? times[position] : nil
            case .runs(let times, let ends):
                while run < ends.count, position >= Int(ends[run]) { run += 1 }
                return run < ends.count ? times[run] : nil
            }
        }
    }
}
