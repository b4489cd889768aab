/// The `capacity` largest entries offered, largest first, ties by key, held in at most twice that many: the one
/// ranking rule of state queries' `top` (a ``StateView``, distributed mode's owned shards).
public struct TopSelection<Key: Comparable & Sendable, State: Comparable & Sendable> {
    public typealias Entry = (key: Key, state: State)

    public let capacity: Int
    private var entries: [Entry] = []
    /// The smallest kept entry once `capacity` are kept: an entry that does not rank before it cannot enter.
    private var floor: Entry?

    public init(capacity: Int) {
        self.capacity = capacity
    }

    public mutating func offer(_ entry: Entry) {
        if let floor, !Self.ranksBefore(entry, floor) { return }
        entries.append(entry)
        if entries.count >= 2 * capacity { prune() }
    }

    public mutating func result() -> [Entry] {
        prune()
        return entries
    }

    private mutating func prune() {
        entries.sort(by: Self.ranksBefore)
        if entries.count > capacity { entries.removeLast(entries.count - capacity) }
        if entries.count == capacity { floor = entries.last }
    }

    /// Larger states first, ties by key.
    public static func ranksBefore(_ a: Entry, _ b: Entry) -> Bool {
        a.state != b.state ? a.state > b.state : a.key < b.key
    }
}
