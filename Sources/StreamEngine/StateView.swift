import Synchronization

/// Read access to a keyed state from other threads, as Kafka Streams' interactive queries give: a key's current
/// state and the largest states.
///
/// Pass it to `updateStateByKey(name:view:_:)`. A reader sees the state as a batch's update left it,
/// never half of an update: the batch thread changes the state under the view's lock, once per batch.
///
/// The ranking holds the ``rankingCapacity`` largest states (ties by key), so a request costs at most that many
/// entries, whatever the size of the state. Each batch merges the keys it updated into the previous ranking, and
/// a restore from a checkpoint rebuilds it from the whole state: that is exact for states that never decrease, such
/// as running counts (a state that shrinks may leave a larger unranked one out until the next restore).
public final class StateView<Key: StateKey & Sendable, State: StateCodable & Comparable & Sendable>: Sendable {
    /// How many of the largest states the ranking keeps.
    public let rankingCapacity: Int
    private let shared: Mutex<Shared>

    private struct Shared: @unchecked Sendable {
        // @unchecked: the store is touched only under the mutex (reads and writes from any thread) or, without
        // it, by the batch thread that alone writes it.
        var store: StateStore<[Key: State]>?
        var ranking: [(key: Key, state: State)] = []
    }

    /// Creates a view that ranks up to `rankingCapacity` keys (at least 1).
    public init(rankingCapacity: Int = 1000) {
        self.rankingCapacity = max(1, rankingCapacity)
        shared = Mutex(Shared())
    }

    /// The current state of `key`, or nil if it has none (or the view is not attached to a stream yet).
    public func state(of key: Key) -> State? {
        shared.withLock { $0.store?.value[key] }
    }

    /// How many keys have a state.
    public var keyCount: Int {
        shared.withLock { $0.store?.value.count ?? 0 }
    }

    /// The `count` largest states, largest first, ties by key (at most ``rankingCapacity``).
    public func largest(_ count: Int) -> [(key: Key, state: State)] {
        shared.withLock { Array($0.ranking.prefix(max(0, count))) }
    }

    /// Attaches the view to the store of one stream; the store calls ``restored()`` after a restore.
    func attach(to store: StateStore<[Key: State]>) {
        shared.withLock { shared in
            precondition(shared.store == nil, "a StateView can view one stateful stream only")
            shared.store = store
        }
        store.didRestore = { [weak self] in self?.restored() }
    }

    /// Runs a batch's update of the state under the lock, then merges the keys it updated into the ranking.
    func update(_ body: () -> Elements<(Key, State)>) -> Elements<(Key, State)> {
        shared.withLock { shared in
            let updated = body()
            guard let store = shared.store else { return updated }
            var top = TopSelection(capacity: rankingCapacity)
            var ranked: Set<Key> = []
            var kept = 0
            for (key, _) in shared.ranking {
                ranked.insert(key)
                guard let state = store.value[key] else { continue }
                top.offer((key, state))
                kept += 1
            }
            // With every key of a full ranking still there and states that never decrease (the exactness the ranking
            // promises), its last entry is a floor: an updated key that does not rank before it cannot enter, and
            // is passed over before it costs a lookup in `ranked`.
            let floor = kept == rankingCapacity ? shared.ranking.last : nil
            for (key, state) in updated.values {
                if let floor, !Self.ranksBefore((key, state), floor) { continue }
                if !ranked.contains(key) { top.offer((key, state)) }
            }
            shared.ranking = top.result()
            return updated
        }
    }

    /// Rebuilds the ranking from the whole state, after a restore replaced it.
    private func restored() {
        shared.withLock { shared in
            var top = TopSelection(capacity: rankingCapacity)
            for (key, state) in shared.store?.value ?? [:] {
                top.offer((key, state))
            }
            shared.ranking = top.result()
        }
    }

    /// The `capacity` largest entries offered, largest first (ties by key), held in at most twice that many.
    private struct TopSelection {
        let capacity: Int
        private var entries: [(key: Key, state: State)] = []
        /// The smallest kept entry once `capacity` are kept: an entry that does not rank before it cannot enter.
        private var floor: (key: Key, state: State)?

        init(capacity: Int) {
            self.capacity = capacity
        }

        mutating func offer(_ entry: (key: Key, state: State)) {
            if let floor, !StateView.ranksBefore(entry, floor) { return }
            entries.append(entry)
            if entries.count >= 2 * capacity { prune() }
        }

        mutating func result() -> [(key: Key, state: State)] {
            prune()
            return entries
        }

        private mutating func prune() {
            entries.sort(by: StateView.ranksBefore)
            if entries.count > capacity { entries.removeLast(entries.count - capacity) }
            if entries.count == capacity { floor = entries.last }
        }
    }

    private static func ranksBefore(_ a: (key: Key, state: State), _ b: (key: Key, state: State)) -> Bool {
        a.state != b.state ? a.state > b.state : a.key < b.key
    }
}
