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
    ///   per (window, id) and each count folded once, in place in the stored window, which reorders the folds: only
    ///   for a fold whose result does not depend on their order.
    private func aggregateWindows<Key: StateKey, Input, Accumulator: StateCodable>(
        name: String, spec: WindowSpec, key: @escaping (Element) -> Key, input: @escaping (Element) -> Input,
        fold: @escaping (inout Accumulator?, Input) -> Void,
        foldRepeated: ((inout Accumulator?, Input, Int64) -> Void)? = nil
    ) -> DStream<(Key, Windowed<Accumulator>)> {
        let store = StateStore<WindowState<Key, Accumulator>>(name: name, value: WindowState())
        let stream = deriveFromSource(stateful: true) { batch, context in
            let idCount = batch.ids?.count == batch.count ? batch.idCount : 0
            var pending = TouchedWindows { start in
                PendingWindow<Key, Accumulator>(idCount: idCount) { store.value.windows[start]?.removeValue(forKey: $0) }
            }
            var open = OpenWindows(spec: spec, watermark: context.previousWatermark)
            if let dictionary = batch.dictionary, let ids = batch.ids {
                let keys = dictionary.map(key)
                let inputs = dictionary.map(input)
                var counted = TouchedWindows { _ in IDCounts(idCount: dictionary.count) }
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
                        if foldRepeated != nil {
                            counted.withWindow(start) { $0.count(ids[positions]) }
                            continue
                        }
                        pending.withWindow(start) { window in
                            for position in positions {
                                let id = Int(ids[position])
                                fold(&window.accumulators[window.index(ofExactID: id, key: keys[id])], inputs[id])
                            }
                        }
                    }
                }
                if let foldRepeated {
                    // Each (window, id) count is folded straight into the stored window: one key lookup each.
                    for (start, window) in counted.touched() {
                        store.value.noteChanged(start) { changed in
                            for id in window.ids { changed.insert(keys[Int(id)]) }
                        }
                        var totals = store.value.windows.removeValue(forKey: start) ?? [:]
                        // A new window is sized once; a stored one grows only by the keys it did not hold.
                        if totals.isEmpty { totals.reserveCapacity(window.ids.count) }
                        for id in window.ids.lazy.map(Int.init) {
                            foldRepeated(&totals[keys[id]], inputs[id], window.counts[id])
                        }
                        if !totals.isEmpty { store.value.windows[start] = totals }
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
                store.value.noteChanged(start) { $0.formUnion(window.keys) }
                store.value.windows[start, default: [:]].merge(window)
            }
            var result = Elements<(Key, Windowed<Accumulator>)>()
            for start in store.value.windows.keys.sorted() where spec.isClosed(start: start, watermark: context.watermark) {
                let window = spec.window(startingAt: start)
                let totals = store.value.windows.removeValue(forKey: start) ?? [:]
                // Emitted by a flush at the end of an earlier input: only what changed since goes out again.
                let changed = store.value.changedSinceFlush.removeValue(forKey: start)
                for (key, total) in totals.sorted(by: { $0.key < $1.key }) where changed?.contains(key) ?? true {
                    result.append((key, Windowed(window: window, value: total)), at: window.end - 1)
                }
            }
            return result
        }
        graph.register(store, evaluating: stream) {
            let before = store.value.changedSinceFlush
            store.value.markFlushed()
            return { store.value.changedSinceFlush = before }
        }
        return stream
    }
}

/// The state of one windowed operator: the accumulators of each open window by start, and, for the windows that a
/// flush at the end of an input emitted (``StreamGraph/checkpointAsFlushed()``), the keys changed since: when such a
/// window closes (or is flushed again), only those go out again, so a restart over finished input publishes no
/// window twice.
///
/// Encoded as the windows' dictionary, then (only if a window was flushed) the count of flushed windows and per
/// window its start and its changed keys, sorted: a state without flushed windows encodes as the dictionary alone.
struct WindowState<Key: StateKey, Accumulator: StateCodable>: StateCodable {
    var windows: [Int64: [Key: Accumulator]] = [:]
    var changedSinceFlush: [Int64: Set<Key>] = [:]

    init() {}

    /// Runs `body` on the changed keys of the window starting at `start`, if a flush emitted it.
    mutating func noteChanged(_ start: Int64, _ body: (inout Set<Key>) -> Void) {
        guard changedSinceFlush[start] != nil else { return }
        body(&changedSinceFlush[start]!)
    }

    /// Every open window is emitted as it is now.
    mutating func markFlushed() {
        changedSinceFlush = windows.mapValues { _ in [] }
    }

    func encode(to writer: inout StateWriter) {
        windows.encode(to: &writer)
        guard !changedSinceFlush.isEmpty else { return }
        writer.writeUnsigned(UInt64(changedSinceFlush.count))
        for (start, keys) in changedSinceFlush.sorted(by: { $0.key < $1.key }) {
            writer.writeSigned(start)
            keys.sorted().encode(to: &writer)
        }
    }

    init(from reader: inout StateReader) throws(StreamEngineError) {
        windows = try [Int64: [Key: Accumulator]](from: &reader)
        guard !reader.isAtEnd else { return }
        for _ in 0..<(try reader.readUnsigned()) {
            let start = try reader.readSigned()
            changedSinceFlush[start] = Set(try [Key](from: &reader))
        }
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

/// A table per window touched by the running batch, by window start, each made on first touch; the table in use is
/// kept out of the dictionary, since consecutive elements (the words of one record) share their windows.
private struct TouchedWindows<Table> {
    private var windows: [Int64: Table] = [:]
    private var currentStart: Int64?
    private var current: Table?
    private let make: (Int64) -> Table

    init(make: @escaping (Int64) -> Table) {
        self.make = make
    }

    /// Runs `body` on the table of the window starting at `start`.
    mutating func withWindow(_ start: Int64, _ body: (inout Table) -> Void) {
        if currentStart != start {
            parkCurrent()
            current = windows.removeValue(forKey: start) ?? make(start)
            currentStart = start
        }
        body(&current!)
    }

    /// Every touched window's table.
    mutating func touched() -> [Int64: Table] {
        parkCurrent()
        return windows
    }

    /// Puts the table in use back into the dictionary.
    private mutating func parkCurrent() {
        if let start = currentStart, let table = current.take() { windows[start] = table }
        currentStart = nil
    }
}

/// How many elements of each dictionary id one window received, and the ids counted, in first-count order.
private struct IDCounts {
    private(set) var counts: [Int64]
    private(set) var ids: [Int32] = []

    init(idCount: Int) {
        counts = [Int64](repeating: 0, count: idCount)
    }

    mutating func count(_ elements: ArraySlice<Int32>) {
        var counted = ids
        ids = []
        counts.withUnsafeMutableBufferPointer { counts in
            for id in elements {
                if counts[Int(id)] == 0 { counted.append(id) }
                counts[Int(id)] += 1
            }
        }
        ids = counted
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
    /// Removes and returns the stored accumulator of a key in this window.
    private let take: (Key) -> Accumulator?

    init(idCount: Int, take: @escaping (Key) -> Accumulator?) {
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

    private mutating func index(of key: Key) -> Int {
        if let known = indices[key] { return known }
        let index = keys.count
        indices[key] = index
        keys.append(key)
        accumulators.append(take(key))
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
