import Synchronization

/// The running totals of the shards this instance owns, for state queries (``ShardStage`` keeps it): a shard's
/// totals as restored, then as of each cycle it writes; a shard that is released or lost leaves it.
///
/// A query answers only what this instance knows: the total of a word whose shard it owns (absent there: 0, the
/// truth), or which shard owns the word when it does not own that shard. Answers are never made up. (Asking the
/// owner instead is the one-runtime issue's work: it needs a directory of members and their endpoints.)
public final class ShardTotals: Sendable {
    /// What this instance can say about a word's total.
    public enum Answer: Equatable, Sendable {
        case total(Int64)
        /// The word's shard is not owned here (another instance owns it, or it is being restored).
        case notOwned(shard: Int32)
    }

    public let shards: ShardMap
    private let state = Mutex<(totals: [Int32: [String: Int64]], watermark: Int64?)>(([:], nil))

    init(shards: ShardMap) {
        self.shards = shards
    }

    public func total(of word: String) -> Answer {
        let shard = shards.shard(of: word.utf8)
        return state.withLock { state in
            guard let totals = state.totals[shard] else { return .notOwned(shard: shard) }
            return .total(totals[word] ?? 0)
        }
    }

    /// The owned shards, in order.
    public var ownedShards: [Int32] { state.withLock { $0.totals.keys.sorted() } }

    /// The distinct words of the owned shards.
    public var wordCount: Int { state.withLock { $0.totals.values.reduce(0) { $0 + $1.count } } }

    /// The least watermark of the owned shards.
    public var watermark: Int64? { state.withLock { $0.watermark } }

    /// The `n` largest totals (ties by word), when every shard is owned here; nil otherwise, as the largest of
    /// some shards are not the largest of all.
    public func largest(_ n: Int) -> [(word: String, total: Int64)]? {
        state.withLock { state in
            guard state.totals.count == Int(shards.count) else { return nil }
            var best: [(word: String, total: Int64)] = []
            for totals in state.totals.values {
                for (word, total) in totals where best.count < n || Self.ranksBefore((word, total), best[best.count - 1]) {
                    let index = best.firstIndex { Self.ranksBefore((word, total), $0) } ?? best.count
                    best.insert((word, total), at: index)
                    if best.count > n { best.removeLast() }
                }
            }
            return best
        }
    }

    private static func ranksBefore(_ a: (word: String, total: Int64), _ b: (word: String, total: Int64)) -> Bool {
        a.total != b.total ? a.total > b.total : a.word < b.word
    }

    /// A shard's totals, whole (after a restore).
    func replace(_ shard: Int32, with totals: [String: Int64]) {
        state.withLock { $0.totals[shard] = totals }
    }

    /// Changed totals of an owned shard (after a cycle).
    func update(_ shard: Int32, _ changed: some Sequence<(String, Int64)>) {
        state.withLock { state in
            guard state.totals[shard] != nil else { return }
            for (word, total) in changed { state.totals[shard]![word] = total }
        }
    }

    /// Leaves only these shards (after a release or a loss).
    func keep(only owned: Set<Int32>, watermark: Int64?) {
        state.withLock { state in
            state.totals = state.totals.filter { owned.contains($0.key) }
            state.watermark = watermark
        }
    }
}
