extension Block {
    /// Where one record's fields live in ``bytes``.
    struct RecordLayout {
        var range: Int
        var offset: Int64
        var timestamp: Int64
        var key: Range<Int>?
        var value: Range<Int>
    }

    /// Calls `body` with each record of the block, in the order they were appended.
    ///
    /// The ``RecordView`` buffers are valid only inside `body`.
    public func forEachRecord(_ body: (RecordView) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { raw in
            try forEachLayout(in: raw) { record in
                let range = ranges[record.range]
                try body(RecordView(
                    topic: range.topic,
                    partition: range.partition,
                    offset: record.offset,
                    timestamp: record.timestamp,
                    key: record.key.map { UnsafeRawBufferPointer(rebasing: raw[$0]) },
                    value: UnsafeRawBufferPointer(rebasing: raw[record.value])
                ))
            }
        }
    }

    /// The latest record timestamp of each partition range that is not after `horizon`; nil where none is.
    ///
    /// Reads the records only when some range's latest timestamp is after the horizon (a rare, bad clock).
    func latestTimestamps(notAfter horizon: Int64) -> [Int64?] {
        guard latestTimestamps.contains(where: { $0 > horizon }) else { return latestTimestamps }
        var latest = [Int64?](repeating: nil, count: ranges.count)
        bytes.withUnsafeBytes { raw in
            forEachLayout(in: raw) { record in
                if record.timestamp <= horizon { latest[record.range] = max(latest[record.range] ?? .min, record.timestamp) }
            }
        }
        return latest
    }

    /// Calls `body` with the layout of each record; `raw` must be ``bytes``.
    func forEachLayout(in raw: UnsafeRawBufferPointer, _ body: (RecordLayout) throws -> Void) rethrows {
        precondition(!recordsWereReadAhead, "the records of this block were read ahead of its batch")
        // The record section was validated when the block was built or decoded, so the scan runs to the end.
        _ = try Block.scanRecords(raw, from: recordsStart, rangeCount: ranges.count, body)
    }

    /// Walks the record section starting at `start`; returns `false` at the first
    /// malformed record (offset checks against the ranges are left to the caller).
    static func scanRecords(
        _ raw: UnsafeRawBufferPointer, from start: Int, rangeCount: Int, _ body: (RecordLayout) throws -> Void
    ) rethrows -> Bool {
        var cursor = ByteCursor(raw, position: start)
        var previousOffsets = [Int64](repeating: 0, count: rangeCount)
        var timestamp: Int64 = 0
        while !cursor.isAtEnd {
            guard let range = cursor.count(), range < rangeCount,
                  let offsetDelta = cursor.zigZag(),
                  let timestampDelta = cursor.zigZag(),
                  let keyTag = cursor.count()
            else { return false }
            let key: Range<Int>?
            if keyTag == 0 {
                key = nil
            } else {
                guard let span = cursor.span(keyTag - 1) else { return false }
                key = span
            }
            guard let value = cursor.lengthPrefixed() else { return false }
            let offset = previousOffsets[range] &+ offsetDelta
            previousOffsets[range] = offset
            timestamp &+= timestampDelta
            try body(RecordLayout(range: range, offset: offset, timestamp: timestamp, key: key, value: value))
        }
        return true
    }
}
