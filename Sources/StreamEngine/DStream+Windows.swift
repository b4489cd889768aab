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
        aggregateWindows(name: name, spec: spec, key: { _ in Unkeyed() }) { (values: inout [Element]?, element) in
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
        aggregateWindows(name: name, spec: spec, key: { $0.0 }) { (total: inout Value?, element) in
            total = total.map { combine($0, element.1) } ?? element.1
        }
    }

    /// Folds elements into per-(window, key) accumulators, emitting and dropping windows as they close.
    private func aggregateWindows<Key: StateKey, Accumulator: StateCodable>(
        name: String, spec: WindowSpec, key: @escaping (Element) -> Key,
        fold: @escaping (inout Accumulator?, Element) -> Void
    ) -> DStream<(Key, Windowed<Accumulator>)> {
        let store = StateStore<[Int64: [Key: Accumulator]]>(name: name, value: [:])
        let stream = deriveFromSource(stateful: true) { batch, context in
            // Each (window, key) accumulator touched by the batch is taken out of the store once, folded in
            // arrival order in a dense local table, and put back at the end: the same folds in the same order
            // as folding in place, without hashing the key again for every element.
            var pending: [Int64: PendingWindow<Key, Accumulator>] = [:]
            var currentStart: Int64?
            var current = PendingWindow<Key, Accumulator>(idCount: 0)
            let ids = batch.ids.flatMap { $0.count == batch.count ? $0 : nil }
            // The open windows of the last time seen: consecutive elements (the words of one record) share it.
            var openTime: Int64?
            var openStarts: [Int64] = []
            var times = batch.times.makeIterator()
            for position in 0..<batch.count {
                // Read exactly once per element, late or not.
                let element = batch.value(position)
                let time = times.next()!
                guard time <= context.eventTimeHorizon else {
                    context.futureRecords += 1
                    continue
                }
                if openTime != time {
                    openTime = time
                    openStarts.removeAll(keepingCapacity: true)
                    for start in spec.starts(containing: time)
                    where !spec.isClosed(start: start, watermark: context.previousWatermark) {
                        openStarts.append(start)
                    }
                }
                var assigned = false
                for start in openStarts {
                    if currentStart != start {
                        if let previous = currentStart { pending[previous] = current }
                        current = pending.removeValue(forKey: start)
                            ?? PendingWindow(idCount: ids == nil ? 0 : batch.idCount)
                        currentStart = start
                    }
                    let elementKey = key(element)
                    let index = current.index(
                        of: elementKey, id: ids.map { Int($0[position]) },
                        taking: { store.value[start]?.removeValue(forKey: $0) })
                    fold(&current.accumulators[index], element)
                    assigned = true
                }
                if !assigned { context.lateRecords += 1 }
            }
            if let previous = currentStart { pending[previous] = current }
            for (start, window) in pending {
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
    var indices: [Key: Int] = [:]
    /// Element id -> index of the last key seen with that id (-1: none).
    var slots: [Int32]

    init(idCount: Int) {
        slots = [Int32](repeating: -1, count: idCount)
        indices.reserveCapacity(idCount)
        keys.reserveCapacity(idCount)
        accumulators.reserveCapacity(idCount)
    }

    /// The local index of `key`, adding it (with the accumulator `taking` removes from the store) if new.
    mutating func index(of key: Key, id: Int?, taking: (Key) -> Accumulator?) -> Int {
        if let id {
            let slot = Int(slots[id])
            if slot >= 0, keys[slot] == key { return slot }
        }
        let index: Int
        if let known = indices[key] {
            index = known
        } else {
            index = keys.count
            indices[key] = index
            keys.append(key)
            accumulators.append(taking(key))
        }
        if let id { slots[id] = Int32(index) }
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
