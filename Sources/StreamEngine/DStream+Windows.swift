extension DStream {
    /// Collects the elements of each event-time window and emits them once the window closes.
    ///
    /// One element per window that received elements, in order of window start; the values are
    /// in arrival order. The watermark is the largest record timestamp seen by the graph so far,
    /// across all partitions (an idle partition does not hold it back), and advances at the end of
    /// each batch. An element is added to each of its windows that is still open; one whose
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
        let stream = derive(stateful: true) { batch, context in
            for (element, time) in zip(batch.values, batch.times) {
                var assigned = false
                for start in spec.starts(containing: time)
                where !spec.isClosed(start: start, watermark: context.previousWatermark) {
                    fold(&store.value[start, default: [:]][key(element)], element)
                    assigned = true
                }
                if !assigned { context.lateRecords += 1 }
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
