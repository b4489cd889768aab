extension DStream {
    /// Combines the values of each key within the batch.
    ///
    /// One element per key, in order of the key's first appearance in the batch, timed by the
    /// latest of its elements.
    public func reduceByKey<Key: Hashable, Value>(
        _ combine: @escaping (Value, Value) -> Value
    ) -> DStream<(Key, Value)> where Element == (Key, Value) {
        deriveFromSource { batch, _ in batch.aggregated({ $0 }) { $0 = combine($0, $1) } }
    }

    /// Counts the occurrences of each distinct element within the batch, in order of first appearance.
    public func countByValue() -> DStream<(Element, Int64)> where Element: Hashable {
        deriveFromSource { batch, _ in batch.counted() }
    }

    /// Keeps a running state per key across batches.
    ///
    /// In each batch, `update` is called once for every key that has new values, with those
    /// values (in arrival order) and the key's current state (`nil` if none); it returns the new
    /// state, or `nil` to remove the key. The stream carries `(key, newState)` for each key whose
    /// state was set in this batch, in order of the key's first appearance in the batch. Keys
    /// without new values are neither updated nor emitted. The state is checkpointed under `name`.
    public func updateStateByKey<Key: StateKey, Value, State: StateCodable>(
        name: String, _ update: @escaping (_ key: Key, _ newValues: [Value], _ state: State?) -> State?
    ) -> DStream<(Key, State)> where Element == (Key, Value) {
        keyedState(name: name, update) { _ in { $0() } }
    }

    /// ``updateStateByKey(name:_:)`` with a `view` through which other threads read the state while batches run.
    public func updateStateByKey<Key: StateKey & Sendable, Value, State: StateCodable & Comparable & Sendable>(
        name: String, view: StateView<Key, State>,
        _ update: @escaping (_ key: Key, _ newValues: [Value], _ state: State?) -> State?
    ) -> DStream<(Key, State)> where Element == (Key, Value) {
        keyedState(name: name, update) { store in
            view.attach(to: store)
            return view.update
        }
    }

    /// The keyed state; `guarded` receives the store and returns how each batch's update of it is to be run.
    private func keyedState<Key: StateKey, Value, State: StateCodable>(
        name: String, _ update: @escaping (_ key: Key, _ newValues: [Value], _ state: State?) -> State?,
        guarded: (StateStore<[Key: State]>) -> (() -> Elements<(Key, State)>) -> Elements<(Key, State)>
    ) -> DStream<(Key, State)> where Element == (Key, Value) {
        let store = StateStore<[Key: State]>(name: name, value: [:])
        let run = guarded(store)
        let stream = derive(stateful: true) { batch, _ in
            run {
                var result = Elements<(Key, State)>()
                // One access to the store for the whole batch, and one lookup per key through the entry's `inout`
                // subscript to read and replace (or remove) it.
                store.withValue { table in
                    func apply(_ key: Key, _ values: [Value], at time: Int64) {
                        let state = table[key].replace { update(key, values, $0) }
                        if let state { result.append((key, state), at: time) }
                    }
                    if batch.keysAreDistinct {
                        // One value per key, passed in one reused array (an update that keeps it makes it copy).
                        result.values.reserveCapacity(batch.count)
                        result.times.reserveCapacity(batch.count)
                        var values: [Value] = []
                        values.reserveCapacity(1)
                        for ((key, value), time) in zip(batch.decodedValues, batch.decodedTimes) {
                            values.removeAll(keepingCapacity: true)
                            values.append(value)
                            apply(key, values, at: time)
                        }
                    } else {
                        let groups = batch.aggregated({ [$0] }) { $0.append($1) }
                        for ((key, values), time) in zip(groups.values, groups.times) {
                            apply(key, values, at: time)
                        }
                    }
                }
                return result
            }
        }
        graph.register(store, evaluating: stream)
        return stream
    }
}

extension Optional {
    /// Replaces the value with `transform` of it and returns the new one.
    fileprivate mutating func replace(_ transform: (Wrapped?) -> Wrapped?) -> Wrapped? {
        self = transform(self)
        return self
    }
}
