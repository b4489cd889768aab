import KafkaIO
import StreamEngine

/// The state of one shard in stage 2: the totals and open windows of the words it owns, and how far each input
/// partition (source) has been applied.
///
/// The apply rule makes replays harmless and losses loud, and goes by input offsets: stage 1 sends cuts (batches of
/// several sources at once, ``Cut``), and a cut is applied once, all its batches together, when its markers arrive
/// (its partials were buffered until then, a word's partial sent twice counting once). Per source, a batch that ends
/// at or before the applied end is a replay or a re-cut of applied input, and skipped; one that starts where the
/// applied end is, is applied, whatever its sequence number (each owner of a source numbers its batches anew); one
/// that starts after it is a hole (input was lost or its offsets were reset), and one that straddles it cannot be
/// applied exactly: both are errors (``failure``), which stop this shard only. A cut of applied and new batches,
/// which stage 1 never cuts, is an error too. Partials of a cut that can no longer be applied (a batch of it was
/// applied in another cut: stage 1 crashed while sending it and its batches were cut again alone) are dropped.
///
/// Markers check and record their cut at once; the cut's partials are added at the next ``settle()``, together with
/// those of every cut whose markers came since, and windows the watermark passed are closed after them. The state is
/// the one adding each cut at its markers gives (each cut's words meet the watermark before that cut), with one table
/// lookup per word for all those cuts instead of one per word and cut.
struct ShardState {
    /// How far one source is applied.
    struct SourceProgress: Equatable, Sendable {
        var sequence: Int64
        /// The input offset after the last applied batch.
        var end: Int64
        /// The latest event time applied from the source (its watermark); nil if none.
        var eventTime: Int64?
        /// The source had no batch for a while: it does not hold the shard's watermark back.
        var isIdle: Bool
    }

    /// A (window start, word) key of the window state.
    struct WindowKey: Hashable, Sendable {
        var start: Int64
        var word: String
    }

    /// What changed since the last cycle, with each changed key's value before it (nil: absent), in change order.
    struct Changes {
        var totals: [String: Int64?] = [:]
        var totalsOrder: [String] = []
        var windows: [WindowKey: Int64?] = [:]
        var windowsOrder: [WindowKey] = []
        /// Windows closed since the last cycle with their final counts, by start then word.
        var closed: [(key: WindowKey, count: Int64)] = []
        var progressChanged = false
        /// The latest batch time applied since the last cycle.
        var batchTime: Int64?

        var isEmpty: Bool { totalsOrder.isEmpty && windowsOrder.isEmpty && closed.isEmpty && !progressChanged }
    }

    let shard: Int32
    let window: WindowSpec
    private(set) var totals: [String: Int64] = [:]
    private(set) var windows: [Int64: [String: Int64]] = [:]
    private(set) var sources: [KafkaPartition: SourceProgress] = [:]
    /// Every input partition: one that has sent neither a batch nor an idle marker holds the watermark back.
    let expectedSources: Set<KafkaPartition>
    /// Expected sources without a batch applied that reported themselves idle (kept in memory only: stage 1
    /// repeats idle markers, so a restored shard learns them again).
    private var idleUnseen: Set<KafkaPartition> = []
    private(set) var watermark: Int64?
    /// The last cycle number written to the changelog (committed or not).
    var cycle: Int64 = 0
    /// The batch time of the last committed cycle.
    var batchTime: Int64 = 0
    private(set) var changes = Changes()
    /// Words counted into no window because every window of their time was closed.
    private(set) var lateWords: Int64 = 0
    /// The partials of each cut whose markers have not come yet, as received (a word twice if a cut was sent again:
    /// the later one counts).
    private var pending: [Cut: [Partial]] = [:]
    /// The offset in the partials partition of each pending cut's first partial.
    private var pendingStarts: [Cut: Int64] = [:]
    /// Cuts whose markers came, in marker order, with the watermark before each: their partials are added at the
    /// next ``settle()``.
    private var ready: [(partials: [Partial], watermark: Int64?)] = []
    /// The watermark at the last closing of windows (windows added since were open at it).
    private var windowsClosedAt: Int64?
    /// The partials partition's offset after the last record received.
    private(set) var nextOffset: Int64?
    /// Why the shard stopped applying (a hole in its input, or a batch it cannot apply exactly); nil while it works.
    private(set) var failure: StreamingError?

    init(shard: Int32, window: WindowSpec, expectedSources: Set<KafkaPartition>) {
        self.shard = shard
        self.window = window
        self.expectedSources = expectedSources
    }

    /// The partials offset to commit: never past the first partial of a cut whose markers have not come yet.
    var committableOffset: Int64? {
        pendingStarts.values.min() ?? nextOffset
    }

    /// Takes one record of the shard's partials partition, at `offset`.
    /// Once the shard has failed, nothing more is taken, and its committable offset stays before the record that
    /// failed it: whoever owns the shard next meets the same record, and fails the same way.
    mutating func receive(_ record: ExchangeRecord, at offset: Int64) throws(StreamingError) {
        guard failure == nil else { return }
        defer { if failure == nil { nextOffset = offset + 1 } }
        switch record {
        case .partials(let cut, let partials):
            // Whether they are applied is decided at their markers (by offsets, which partials do not carry).
            pending[cut, default: []] += partials
            pendingStarts[cut] = min(pendingStarts[cut] ?? offset, offset)
        case .marker(let markers):
            try apply(markers)
        case .idle(let batch, let end):
            guard sources[batch.source] != nil else {
                idleUnseen.insert(batch.source)
                advanceWatermark()
                return
            }
            guard var progress = sources[batch.source], !progress.isIdle,
                end.map({ $0 == progress.end }) ?? (progress.sequence == batch.sequence)
            else { return }
            progress.isIdle = true
            sources[batch.source] = progress
            changes.progressChanged = true
            advanceWatermark()
        }
    }

    /// How a batch's offsets stand to its source's applied end.
    private enum Standing {
        /// Its source has nothing applied, or it starts where the applied end is.
        case next
        /// It ends at or before the applied end: its input is applied.
        case applied
        /// It starts after the applied end: input between them is missing.
        case hole(appliedEnd: Int64)
        /// It starts before the applied end and ends after it.
        case straddle(appliedEnd: Int64)
    }

    private func standing(of marker: BatchMarker) -> Standing {
        guard let progress = sources[marker.batch.source] else { return .next }
        if marker.start == progress.end { return .next }
        if marker.end <= progress.end { return .applied }
        return marker.start > progress.end ? .hole(appliedEnd: progress.end) : .straddle(appliedEnd: progress.end)
    }

    private mutating func apply(_ markers: [BatchMarker]) throws(StreamingError) {
        let cut = Cut(markers.map(\.batch))
        var applied = 0
        for marker in markers {
            let source = marker.batch.source
            switch standing(of: marker) {
            case .next:
                continue
            case .applied:
                let progress = sources[source]!
                if marker.batch.sequence == progress.sequence, marker.end != progress.end {
                    throw fail("\(source) batch \(marker.batch.sequence) was applied as ending at offset \(progress.end), and "
                        + "now comes again ending at \(marker.end): the input offsets were reset")
                }
                applied += 1
            case .hole(let end):
                throw fail("shard \(shard) applied \(source) up to offset \(end), and the next batch to come starts at offset "
                    + "\(marker.start): input between them is missing (its committed offsets were lost or reset)")
            case .straddle(let end):
                throw fail("shard \(shard) applied \(source) up to offset \(end), and a batch of \(marker.start)..<\(marker.end) "
                    + "comes, cut again across that end: it cannot be applied exactly")
            }
        }
        guard applied == 0 else {
            guard applied == markers.count else {
                throw fail("shard \(shard) got a cut of applied and new batches "
                    + "(\(markers.map { "\($0.batch.source) \($0.start)..<\($0.end)" }.joined(separator: ", "))): "
                    + "the input's committed offsets were changed while it was sent")
            }
            dropPending(cut)
            return
        }
        ready.append((pending[cut] ?? [], watermark))
        dropPending(cut)
        for marker in markers {
            let source = marker.batch.source
            idleUnseen.remove(source)
            let eventTime = [sources[source]?.eventTime, marker.maxEventTime].compactMap { $0 }.max()
            sources[source] = SourceProgress(sequence: marker.batch.sequence, end: marker.end, eventTime: eventTime, isIdle: false)
            changes.batchTime = max(changes.batchTime ?? marker.batchTime, marker.batchTime)
        }
        changes.progressChanged = true
        // Any other cut with a batch of these sources: partials of a cut sent in part before a crash, or of an
        // earlier owner; their markers, if they come, are applied input or an error.
        let appliedSources = Set(markers.map(\.batch.source))
        for other in pending.keys where other.batches.contains(where: { appliedSources.contains($0.source) }) {
            dropPending(other)
        }
        advanceWatermark()
    }

    /// Records why the shard cannot go on (it stays failed: its next markers throw it again) and returns the error.
    private mutating func fail(_ message: String) -> StreamingError {
        let error = StreamingError(.lostInput, message)
        failure = error
        return error
    }

    private mutating func dropPending(_ cut: Cut) {
        pending[cut] = nil
        pendingStarts[cut] = nil
    }

    /// Adds the partials of the cuts whose markers came since the last call, then closes the windows the watermark
    /// has passed; call it after a run of ``receive(_:at:)`` (``takeChanges()`` does).
    mutating func settle() {
        if !ready.isEmpty { addReady() }
        closePassedWindows()
    }

    /// Adds the ready cuts' partials, word by word in the byte order of their UTF-8: of a word sent twice in one cut
    /// the later partial, and per window only the counts of cuts whose watermark had not closed it. (Bytes,
    /// as stage 1 tells words apart: two words that differ in bytes only, such as two Unicode forms of one text, are
    /// two words, whose partials both count.)
    private mutating func addReady() {
        let batches = ready
        ready = []
        let order = Self.byteOrder(of: batches.map(\.partials))
        var windowCounts: [BucketCount] = []
        var position = 0
        while position < order.count {
            let word = batches[Int(order[position].batch)].partials[Int(order[position].index)].word
            var total: Int64 = 0
            windowCounts.removeAll(keepingCapacity: true)
            while position < order.count {
                let (batch, index) = (Int(order[position].batch), Int(order[position].index))
                let partial = batches[batch].partials[index]
                guard partial.word.utf8.elementsEqual(word.utf8) else { break }
                position += 1
                // Equal words are in batch order, each batch's in the order received: the last of a batch counts.
                if position < order.count, Int(order[position].batch) == batch,
                    batches[batch].partials[Int(order[position].index)].word.utf8.elementsEqual(word.utf8)
                {
                    continue
                }
                total += partial.count
                for bucket in partial.buckets {
                    var counted = false
                    for start in window.starts(containing: bucket.start)
                    where !window.isClosed(start: start, watermark: batches[batch].watermark) {
                        if let slot = windowCounts.firstIndex(where: { $0.start == start }) {
                            windowCounts[slot].count += bucket.count
                        } else {
                            windowCounts.append(BucketCount(start: start, count: bucket.count))
                        }
                        counted = true
                    }
                    if !counted { lateWords += bucket.count }
                }
            }
            add(total, windowCounts, to: word)
        }
    }

    /// The (batch, index) of every partial of `batches` in the byte order of their words' UTF-8, equal words in batch
    /// order and then in the order received: sorted on each word's first eight bytes as one big-endian integer, the
    /// bytes after them compared only on a tie.
    private static func byteOrder(of batches: [[Partial]]) -> [(batch: Int32, index: Int32)] {
        var keys: [(prefix: UInt64, batch: Int32, index: Int32)] = []
        keys.reserveCapacity(batches.reduce(0) { $0 + $1.count })
        for (batch, partials) in batches.enumerated() {
            for (index, partial) in partials.enumerated() {
                var prefix: UInt64 = 0
                withUnsafeMutableBytes(of: &prefix) { prefix in
                    for (offset, byte) in partial.word.utf8.prefix(8).enumerated() { prefix[offset] = byte }
                }
                keys.append((UInt64(bigEndian: prefix), Int32(batch), Int32(index)))
            }
        }
        keys.sort { first, second in
            guard first.prefix == second.prefix else { return first.prefix < second.prefix }
            let (a, b) = (batches[Int(first.batch)][Int(first.index)].word.utf8, batches[Int(second.batch)][Int(second.index)].word.utf8)
            if a.elementsEqual(b) { return (first.batch, first.index) < (second.batch, second.index) }
            return a.lexicographicallyPrecedes(b)
        }
        return keys.map { ($0.batch, $0.index) }
    }

    /// Adds a word's total and window counts, noting each changed key's value before the cycle.
    private mutating func add(_ total: Int64, _ windowCounts: [BucketCount], to word: String) {
        let oldTotal = Self.add(total, to: word, in: &totals)
        if changes.totals.index(forKey: word) == nil {
            changes.totals[word] = .some(oldTotal)
            changes.totalsOrder.append(word)
        }
        for counted in windowCounts {
            let old = Self.add(counted.count, to: word, in: &windows[counted.start, default: [:]])
            let key = WindowKey(start: counted.start, word: word)
            if changes.windows.index(forKey: key) == nil {
                changes.windows[key] = .some(old)
                changes.windowsOrder.append(key)
            }
        }
    }

    /// Adds `count` to the word's value in `table` (absent: 0) and returns the value before (nil: absent), looking
    /// the word up once when it is present.
    private static func add(_ count: Int64, to word: String, in table: inout [String: Int64]) -> Int64? {
        guard let index = table.index(forKey: word) else {
            table[word] = count
            return nil
        }
        defer { table.values[index] += count }
        return table.values[index]
    }

    /// The shard's watermark: the least event time over the sources that are not idle, never going back, and none
    /// while an expected source has not been heard from. The windows it closes close at the next ``settle()``.
    private mutating func advanceWatermark() {
        guard !expectedSources.contains(where: { sources[$0] == nil && !idleUnseen.contains($0) }) else { return }
        guard let least = sources.values.filter({ !$0.isIdle }).compactMap(\.eventTime).min(),
            least > watermark ?? .min
        else { return }
        watermark = least
    }

    /// Moves the windows the watermark has closed to ``Changes/closed``, by start then word.
    private mutating func closePassedWindows() {
        guard watermark != windowsClosedAt else { return }
        windowsClosedAt = watermark
        for start in windows.keys.sorted() where window.isClosed(start: start, watermark: watermark) {
            for (word, count) in (windows.removeValue(forKey: start) ?? [:]).sorted(by: { $0.key < $1.key }) {
                changes.closed.append((WindowKey(start: start, word: word), count))
            }
        }
    }

    /// Ends a cycle (after settling): the changes are written; the next ones start empty.
    mutating func takeChanges() -> Changes {
        settle()
        defer { changes = Changes() }
        return changes
    }

    /// Sets restored values (see ``Changelog``); `rewrite` marks keys whose newest changelog record belongs to a
    /// cycle that never committed: the next cycle writes their value again.
    mutating func restore(
        totals: [String: Int64], windows: [Int64: [String: Int64]], sources: [KafkaPartition: SourceProgress],
        watermark: Int64?, rewriteTotals: [String], rewriteWindows: [WindowKey]
    ) {
        self.totals = totals
        self.windows = windows
        self.sources = sources
        self.watermark = watermark
        for word in rewriteTotals where changes.totals[word] == nil {
            changes.totals[word] = .some(totals[word])
            changes.totalsOrder.append(word)
        }
        for key in rewriteWindows where changes.windows[key] == nil {
            changes.windows[key] = .some(windows[key.start]?[key.word])
            changes.windowsOrder.append(key)
        }
    }
}
