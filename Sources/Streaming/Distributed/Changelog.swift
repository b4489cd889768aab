import KafkaIO
import StreamEngine

/// The `<group>-changelog` topic: the source of truth of the shard states, partition = shard, compacted.
///
/// A shard's state is written in cycles. Each cycle writes a record per changed key, waits until all are delivered,
/// then writes one commit record: the cycle is committed once its commit record is in the partition. A key's record
/// carries both its value as of the last committed cycle (OLD) and the value the cycle sets (NEW), so a reader of
/// the partition takes NEW from a committed cycle and OLD from one that never committed, whatever compaction kept.
/// The first cycle after a restore writes again every key whose newest record is from an uncommitted cycle, so
/// such records are only ever the newest of the partition's cycles.
///
/// - Keys: `t WORD` (running total), `w START WORD` (count of an open window), `~commit`.
/// - Key values: `CYCLE OLD NEW`, each of OLD and NEW a number or `-` (absent); a window that closed in the cycle
///   has NEW `xCOUNT`: absent from the state, COUNT its final count (for output).
/// - Commit value: `CYCLE BATCH_TIME WATERMARK|- [TOPIC PARTITION SEQUENCE END EVENT_TIME|- IDLE(0|1) ...]`.
enum Changelog {
    static let commitKey = Array("~commit".utf8)

    /// The records of a cycle's changes, to be delivered before its commit record.
    static func records(of changes: ShardState.Changes, state: ShardState, cycle: Int64, topic: String) -> [OutputRecord] {
        var records: [OutputRecord] = []
        records.reserveCapacity(changes.totalsOrder.count + changes.windowsOrder.count + changes.closed.count)
        var cycleText: [UInt8] = []
        cycleText.appendDecimal(cycle)
        /// `CYCLE OLD NEW`, NEW prefixed with `x` for a window that closed.
        func value(old: Int64?, new: Int64?, closed: Bool = false) -> [UInt8] {
            var value = cycleText
            value.reserveCapacity(cycleText.count + 43)
            value.append(UInt8(ascii: " "))
            append(old, to: &value)
            value.append(UInt8(ascii: " "))
            if closed { value.append(UInt8(ascii: "x")) }
            append(new, to: &value)
            return value
        }
        func record(_ key: ShardState.WindowKey?, word: String, value: [UInt8]) -> OutputRecord {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(word.utf8.count + 22)
            if let key {
                bytes.append(contentsOf: "w ".utf8)
                bytes.appendDecimal(key.start)
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(contentsOf: "t ".utf8)
            }
            bytes.append(contentsOf: word.utf8)
            return OutputRecord(topic: topic, key: bytes, value: value, partition: state.shard)
        }
        for word in changes.totalsOrder {
            records.append(record(nil, word: word, value: value(old: changes.totals[word] ?? nil, new: state.totals[word])))
        }
        var closed: [ShardState.WindowKey: Int64] = [:]
        for (key, count) in changes.closed { closed[key] = count }
        for key in changes.windowsOrder where closed[key] == nil {
            records.append(record(key, word: key.word, value: value(old: changes.windows[key] ?? nil, new: state.windows[key.start]?[key.word])))
        }
        for (key, count) in changes.closed {
            records.append(record(key, word: key.word, value: value(old: changes.windows[key] ?? count, new: count, closed: true)))
        }
        return records
    }

    /// The record that commits cycle `cycle` of `state`.
    static func commitRecord(of state: ShardState, cycle: Int64, batchTime: Int64, topic: String) -> OutputRecord {
        var value: [UInt8] = []
        func field(_ number: Int64?) {
            value.append(UInt8(ascii: " "))
            append(number, to: &value)
        }
        value.appendDecimal(cycle)
        field(batchTime)
        field(state.watermark)
        for (source, progress) in state.sources.sorted(by: { $0.key < $1.key }) {
            value.append(UInt8(ascii: " "))
            value.append(contentsOf: source.topic.utf8)
            field(Int64(source.partition))
            field(progress.sequence)
            field(progress.end)
            field(progress.eventTime)
            field(progress.isIdle ? 1 : 0)
        }
        return OutputRecord(topic: topic, key: commitKey, value: value, partition: state.shard)
    }

    /// Appends a number, or `-` for absent.
    private static func append(_ value: Int64?, to bytes: inout [UInt8]) {
        if let value { bytes.appendDecimal(value) } else { bytes.append(UInt8(ascii: "-")) }
    }

    /// Rebuilds a shard state from its changelog partition, read from the start or from a local checkpoint on.
    struct Restorer {
        private struct Entry {
            var cycle: Int64
            var old: Int64?
            /// nil: absent; `closed` tells a window closed in the cycle.
            var new: Int64?
            var closed: Bool
        }

        private var totals: [String: Entry] = [:]
        private var windows: [ShardState.WindowKey: Entry] = [:]
        private var commit: (cycle: Int64, batchTime: Int64, watermark: Int64?, sources: [KafkaPartition: ShardState.SourceProgress])?
        private var newestCycle: Int64 = 0
        private(set) var records = 0

        init() {}

        /// Starts from a local checkpoint: its keys as of its committed cycle, which the records after its changelog
        /// offset override.
        init(checkpoint: ShardCheckpoint) {
            for (word, total) in checkpoint.totals {
                totals[word] = Entry(cycle: 0, old: total, new: total, closed: false)
            }
            for (start, words) in checkpoint.windows {
                for (word, count) in words {
                    windows[ShardState.WindowKey(start: start, word: word)] = Entry(cycle: 0, old: count, new: count, closed: false)
                }
            }
            commit = (checkpoint.cycle, checkpoint.batchTime, checkpoint.watermark, checkpoint.sourceProgress)
            newestCycle = checkpoint.cycle
        }

        /// Takes the next record of the partition; a nil value is a deletion.
        mutating func add(key: [UInt8], value: [UInt8]?) throws(StreamingError) {
            records += 1
            let keyText = String(decoding: key, as: UTF8.self)
            guard let value else {
                if keyText.hasPrefix("t ") { totals[String(keyText.dropFirst(2))] = nil }
                if let windowKey = Self.windowKey(keyText) { windows[windowKey] = nil }
                return
            }
            let fields = String(decoding: value, as: UTF8.self).split(separator: " ").map(String.init)
            if key == Changelog.commitKey {
                try readCommit(fields)
                return
            }
            guard fields.count == 3, let cycle = Int64(fields[0]) else { throw Self.corrupt(keyText) }
            let closed = fields[2].hasPrefix("x")
            let entry = Entry(
                cycle: cycle, old: Int64(fields[1]), new: Int64(closed ? String(fields[2].dropFirst()) : fields[2]), closed: closed)
            newestCycle = max(newestCycle, cycle)
            if keyText.hasPrefix("t ") {
                totals[String(keyText.dropFirst(2))] = entry
            } else if let windowKey = Self.windowKey(keyText) {
                windows[windowKey] = entry
            } else {
                throw Self.corrupt(keyText)
            }
        }

        private mutating func readCommit(_ fields: [String]) throws(StreamingError) {
            guard fields.count >= 3, (fields.count - 3) % 6 == 0, let cycle = Int64(fields[0]), let time = Int64(fields[1]) else {
                throw Self.corrupt("~commit")
            }
            var sources: [KafkaPartition: ShardState.SourceProgress] = [:]
            var index = 3
            while index < fields.count {
                guard let partition = Int32(fields[index + 1]), let sequence = Int64(fields[index + 2]), let end = Int64(fields[index + 3]) else {
                    throw Self.corrupt("~commit")
                }
                sources[KafkaPartition(topic: fields[index], partition: partition)] = ShardState.SourceProgress(
                    sequence: sequence, end: end, eventTime: Int64(fields[index + 4]), isIdle: fields[index + 5] == "1")
                index += 6
            }
            commit = (cycle, time, Int64(fields[2]), sources)
            newestCycle = max(newestCycle, cycle)
        }

        private static func windowKey(_ key: String) -> ShardState.WindowKey? {
            let parts = key.split(separator: " ", maxSplits: 2)
            guard parts.count == 3, parts[0] == "w", let start = Int64(parts[1]) else { return nil }
            return ShardState.WindowKey(start: start, word: String(parts[2]))
        }

        private static func corrupt(_ key: String) -> StreamingError {
            StreamingError(.corruptChangelog, "the changelog record of key \(key) cannot be read")
        }

        /// What the last committed cycle published: re-published after a restore, since it may not have been delivered.
        struct Republish {
            var batchTime: Int64
            var totals: [(word: String, total: Int64)]
            var closedWindows: [(key: ShardState.WindowKey, count: Int64)]
        }

        /// Sets the restored state into `state` and returns what the last committed cycle published.
        func build(into state: inout ShardState) -> Republish {
            let committed = commit?.cycle ?? 0
            var republish = Republish(batchTime: commit?.batchTime ?? 0, totals: [], closedWindows: [])
            var restoredTotals: [String: Int64] = [:]
            var rewriteTotals: [String] = []
            for (word, entry) in totals {
                let value = entry.cycle <= committed ? entry.new : entry.old
                if let value { restoredTotals[word] = value }
                if entry.cycle > committed { rewriteTotals.append(word) }
                if entry.cycle == committed, let value { republish.totals.append((word, value)) }
            }
            var restoredWindows: [Int64: [String: Int64]] = [:]
            var rewriteWindows: [ShardState.WindowKey] = []
            for (key, entry) in windows {
                if entry.cycle > committed {
                    rewriteWindows.append(key)
                    if let old = entry.old { restoredWindows[key.start, default: [:]][key.word] = old }
                } else if entry.closed {
                    if entry.cycle == committed, let count = entry.new { republish.closedWindows.append((key, count)) }
                } else if let value = entry.new {
                    restoredWindows[key.start, default: [:]][key.word] = value
                }
            }
            state.restore(
                totals: restoredTotals, windows: restoredWindows, sources: commit?.sources ?? [:], watermark: commit?.watermark,
                rewriteTotals: rewriteTotals.sorted(), rewriteWindows: rewriteWindows.sorted { ($0.start, $0.word) < ($1.start, $1.word) })
            state.cycle = newestCycle
            state.batchTime = commit?.batchTime ?? 0
            republish.totals.sort { $0.word < $1.word }
            republish.closedWindows.sort { ($0.key.start, $0.key.word) < ($1.key.start, $1.key.word) }
            return republish
        }
    }
}
