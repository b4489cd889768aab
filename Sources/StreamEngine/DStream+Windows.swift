extension DStream {
    /// Collects the elements of each event-time window and emits them once the window closes.
    ///
    /// One element per window that received elements, in order of window start; the values are
    /// in arrival order. Windows close on the graph's ``StreamGraph/watermark``: the smallest of
    /// the active partitions' latest record timestamps (an idle partition does not hold it back),
    /// which advances at the end of each batch with records. An element is added to each of its windows that is still open; one whose
    /// windows have all closed is dropped and counted in ``BatchOutput/lateRecords``. Open windows
    /// are checkpointed under `name`.
    public func window(name: String, _ spec: WindowSpec) -> DStream<Windowed<[Element]>> where Element: StateCodable {
        aggregateWindows(name: name, spec: spec, key: { _ in Unkeyed() }, input: { $0 }) { (values: inout [Element]?, element) in
            var collected = values.take() ?? []
            collected.append(element)
            values = collected
        }
        .map { $0.1 }
    }

    /// Combines the values of each key per event-time window and emits them once the window closes.
    ///
    /// One `(key, windowed total)` element per window and key, ordered by window start, then key,
    /// timed at the window's last instant. Windowing, watermark and lateness are as in
    /// ``window(name:_:)``. Open windows are checkpointed under `name`.
    public func reduceByKeyAndWindow<Key: StateKey, Value: StateCodable>(
        name: String, _ spec: WindowSpec, _ combine: @escaping (Value, Value) -> Value
    ) -> DStream<(Key, Windowed<Value>)> where Element == (Key, Value) {
        aggregateWindows(name: name, spec: spec, key: { $0.0 }, input: { $0.1 }) { (total: inout Value?, value) in
            total = total.map { combine($0, value) } ?? value
        }
    }

    /// Counts the occurrences of each distinct element per event-time window, emitting them once the window closes.
    ///
    /// The same elements as `map { ($0, 1) }.reduceByKeyAndWindow(name:spec, +)`; a dictionary-encoded batch (the words
    /// of ``flatMapWords()``) is counted per (window, id) first, with no call per element.
    public func countByValueAndWindow(name: String, _ spec: WindowSpec) -> DStream<(Element, Windowed<Int64>)>
    where Element: StateKey {
        aggregateWindows(
            name: name, spec: spec, key: { $0 }, input: { _ in Int64(1) },
            fold: { (total: inout Int64?, one) in total = (total ?? 0) + one },
            foldRepeated: { total, one, times in total = (total ?? 0) + one * times })
    }

    /// Folds each element's `input` into per-(window, key) accumulators, emitting and dropping windows as they close.
    ///
    /// Each (window, key) accumulator touched by the batch is taken out of the store once, folded in arrival order in
    /// a dense local table, and put back at the end: the same folds in the same order as folding in place, without
    /// hashing the key again for every element. A dictionary-encoded batch is read per id: each distinct element's key
    /// and input are computed once, and its elements go straight to their accumulators by id.
    ///
    /// - Parameter foldRepeated: Folds an input a number of times at once. Given, a dictionary-encoded batch is counted
    ///   per (window, id) and each count folded once, which reorders the folds: only for a fold whose result does not
    ///   depend on their order.
    private func aggregateWindows<Key: StateKey, Input, Accumulator: StateCodable>(
        name: String, spec: WindowSpec, key: @escaping (Element) -> Key, input: @escaping (Element) -> Input,
        fold: @escaping (inout Accumulator?, Input) -> Void,
        foldRepeated: ((inout Accumulator?, Input, Int64) -> Void)? = nil
    ) -> DStream<(Key, Windowed<Accumulator>)> {
        let store = StateStore<[Int64: [Key: Accumulator]]>(name: name, value: [:])
        let stream = deriveFromSource(stateful: true) { batch, context in
            var pending = PendingWindows<Key, Accumulator>(idCount: batch.ids?.count == batch.count ? batch.idCount : 0) {
                store.value[$0]?.removeValue(forKey: $1)
            }
            var open = OpenWindows(spec: spec, watermark: context.previousWatermark)
            if let dictionary = batch.dictionary, let ids = batch.ids {
                let keys = dictionary.map(key)
                let inputs = dictionary.map(input)
                batch.times.forEachRun { time, positions in
                    guard time <= context.eventTimeHorizon else {
                        context.futureRecords += positions.count
                        return
                    }
                    let starts = open.starts(containing: time)
                    guard !starts.isEmpty else {
                        context.lateRecords += positions.count
                        return
                    }
                    for start in starts {
                        pending.withWindow(start) { window in
                            if foldRepeated != nil {
                                window.count(ids[positions])
                                return
                            }
                            for position in positions {
                                let id = Int(ids[position])
                                fold(&window.accumulators[window.index(ofExactID: id, key: keys[id])], inputs[id])
                            }
                        }
                    }
                }
                if let foldRepeated {
                    pending.forEach { window in
                        window.foldCounted { id, accumulator, times in foldRepeated(&accumulator, inputs[id], times) } key: { keys[$0] }
                    }
                }
            } else {
                let ids = batch.ids.flatMap { $0.count == batch.count ? $0 : nil }
                var times = batch.times.makeIterator()
                for position in 0..<batch.count {
                    // Read exactly once per element, late or not.
                    let element = batch.value(position)
                    let time = times.next()!
                    guard time <= context.eventTimeHorizon else {
                        context.futureRecords += 1
                        continue
                    }
                    let starts = open.starts(containing: time)
                    guard !starts.isEmpty else {
                        context.lateRecords += 1
                        continue
                    }
                    for start in starts {
                        pending.withWindow(start) { window in
                            let index = window.index(of: key(element), hint: ids.map { Int($0[position]) })
                            fold(&window.accumulators[index], input(element))
                        }
                    }
                }
            }
            for (start, window) in pending.touched() {
                store.value[start, default: [:]].merge(window)
            }
            var result = Elements<(Key, Windowed<Accumulator>)>()
            for start in store.value.keys.sorted() where spec.isClosed(start: start, watermark: context.watermark) {
                let window = spec.window(startingAt: start)
                let totals = store.value.removeValue(forKey: start) ?? [:]
                for (key, total) in totals.sorted(by: { $0.key < $1.key }) {
                    result.append((key, Windowed(window: window, value: total)), at: window.end - 1)
                }
            }
            return result
        }
        graph.register(store, evaluating: stream)
        return stream
    }
}

/// The windows still open for an event time, as of the watermark the batch started with; consecutive elements (the
/// words of one record) share a time, so the starts of the last time are kept.
private struct OpenWindows {
    let spec: WindowSpec
    let watermark: Int64?
    private var time: Int64?
    private var starts: [Int64] = []

    init(spec: WindowSpec, watermark: Int64?) {
        self.spec = spec
        self.watermark = watermark
    }

    /// The starts of the open windows containing `time`, in increasing order.
    mutating func starts(containing time: Int64) -> [Int64] {
        if self.time != time {
            self.time = time
            starts.removeAll(keepingCapacity: true)
            for start in spec.starts(containing: time) where !spec.isClosed(start: start, watermark: watermark) {
                starts.append(start)
            }
        }
        return starts
    }
}

/// The windows touched by the running batch, by start; the last one used is kept out of the dictionary.
private struct PendingWindows<Key: Hashable, Accumulator> {
    private var windows: [Int64: PendingWindow<Key, Accumulator>] = [:]
    private var currentStart: Int64?
    private var current: PendingWindow<Key, Accumulator>
    private let idCount: Int
    /// Removes and returns the stored accumulator of (window start, key).
    private let take: (Int64, Key) -> Accumulator?

    init(idCount: Int, take: @escaping (Int64, Key) -> Accumulator?) {
        self.idCount = idCount
        self.take = take
        current = PendingWindow(start: 0, idCount: 0, take: take)
    }

    /// Runs `body` on the window starting at `start`.
    mutating func withWindow(_ start: Int64, _ body: (inout PendingWindow<Key, Accumulator>) -> Void) {
        if currentStart != start {
            if let previous = currentStart { windows[previous] = current }
            current = windows.removeValue(forKey: start) ?? PendingWindow(start: start, idCount: idCount, take: take)
            currentStart = start
        }
        body(&current)
    }

    /// Runs `body` on every touched window.
    mutating func forEach(_ body: (inout PendingWindow<Key, Accumulator>) -> Void) {
        parkCurrent()
        for start in Array(windows.keys) {
            body(&windows[start]!)
        }
    }

    /// Every touched window.
    mutating func touched() -> [Int64: PendingWindow<Key, Accumulator>] {
        parkCurrent()
        return windows
    }

    /// Puts the window in use back into the dictionary.
    private mutating func parkCurrent() {
        if let previous = currentStart { windows[previous] = current }
        currentStart = nil
    }
}

/// The single key of an unkeyed window.
private struct Unkeyed: StateKey {
    static func < (lhs: Unkeyed, rhs: Unkeyed) -> Bool { false }

    init() {}

    init(from reader: inout StateReader) {}

    func encode(to writer: inout StateWriter) {}
}

/// The accumulators of one window touched by the running batch, in first-touch order.
private struct PendingWindow<Key: Hashable, Accumulator> {
    var keys: [Key] = []
    var accumulators: [Accumulator?] = []
    private var indices: [Key: Int] = [:]
    /// Element id -> index of the last key seen with that id (-1: none).
    private var slots: [Int32]
    /// Element id -> elements counted but not folded yet (see ``count(_:)``), and the ids counted, in first-count order.
    private var counts: [Int64] = []
    private var countedIDs: [Int32] = []
    private let start: Int64
    private let take: (Int64, Key) -> Accumulator?

    init(start: Int64, idCount: Int, take: @escaping (Int64, Key) -> Accumulator?) {
        self.start = start
        self.take = take
        slots = [Int32](repeating: -1, count: idCount)
        indices.reserveCapacity(idCount)
        keys.reserveCapacity(idCount)
        accumulators.reserveCapacity(idCount)
    }

    /// The local index of `key`, adding it (with the accumulator taken from the store) if new. `hint` is the element's
    /// grouping id, confirmed with `==` before use.
    mutating func index(of key: Key, hint id: Int?) -> Int {
        if let id {
            let slot = Int(slots[id])
            if slot >= 0, keys[slot] == key { return slot }
        }
        let index = index(of: key)
        if let id { slots[id] = Int32(index) }
        return index
    }

    /// The local index of the element with dictionary id `id`, whose key is `key`: looked up once per id.
    @inline(__always)
    mutating func index(ofExactID id: Int, key: Key) -> Int {
        let slot = Int(slots[id])
        if slot >= 0 { return slot }
        let index = index(of: key)
        slots[id] = Int32(index)
        return index
    }

    /// Counts elements by dictionary id, to be folded at once by ``foldCounted(_:key:)``.
    mutating func count(_ ids: ArraySlice<Int32>) {
        if counts.isEmpty { counts = [Int64](repeating: 0, count: slots.count) }
        var counted = countedIDs
        countedIDs = []
        counts.withUnsafeMutableBufferPointer { counts in
            for id in ids {
                if counts[Int(id)] == 0 { counted.append(id) }
                counts[Int(id)] += 1
            }
        }
        countedIDs = counted
    }

    /// Folds each id's count into its key's accumulator, in first-count order, and clears the counts.
    mutating func foldCounted(_ fold: (Int, inout Accumulator?, Int64) -> Void, key: (Int) -> Key) {
        for id in countedIDs.lazy.map(Int.init) {
            fold(id, &accumulators[index(ofExactID: id, key: key(id))], counts[id])
            counts[id] = 0
        }
        countedIDs.removeAll()
    }

    private mutating func index(of key: Key) -> Int {
        if let known = indices[key] { return known }
        let index = keys.count
        indices[key] = index
        keys.append(key)
        accumulators.append(take(start, key))
        return index
    }
}

extension Dictionary {
    /// Puts a window's accumulators back (a `nil` accumulator removes its key).
    fileprivate mutating func merge(_ window: PendingWindow<Key, Value>) {
        for index in window.keys.indices {
            self[window.keys[index]] = window.accumulators[index]
        }
    }
}
