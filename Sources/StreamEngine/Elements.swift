/// One batch of a stream: values with their event times (ms), as parallel arrays.
///
/// A batch is either plain (``values`` and ``times`` hold every element) or dictionary-encoded:
/// element `i` is `dictionary[ids[i]]`, and its time is stored once per run of equal times, so a
/// batch of words (many repeated values, a few per record's time) stores each distinct word once
/// and each record's time once.
struct Elements<Value> {
    /// The elements of a plain batch (empty for a dictionary-encoded one).
    var values: [Value] = []
    /// The times of a plain batch's elements (empty for a dictionary-encoded one).
    var times: [Int64] = []
    /// Optional grouping hint, parallel to the elements: elements with the same id (in `0..<idCount`) came from
    /// equal values upstream (for example the same word). It lets ``aggregated(_:_:)`` and windowed aggregation
    /// skip hashing a key they have just seen; it is only a hint, always confirmed with `==` before use, so a
    /// transform that maps equal inputs to different keys still groups exactly by key. For a dictionary-encoded
    /// batch the ids are exact: they index the dictionary.
    var ids: [Int32]? = nil
    var idCount = 0
    /// The distinct values and the times of a dictionary-encoded batch.
    private var encoded: (dictionary: [Value], times: EventTimes)?
    /// A dictionary-encoded batch whose dictionary holds no two equal values (the words of ``flatMapWords()``), so
    /// its ids group exactly by value. Set only where that holds by construction; ``mapped(_:)`` does not keep it.
    var dictionaryIsDistinct = false
    /// A batch of (key, value) pairs made by grouping (``ElementSource/counted()``, ``ElementSource/aggregated(_:_:)``):
    /// no two elements have equal keys, so grouping it again by key changes nothing.
    var keysAreDistinct = false

    init(values: [Value] = [], times: [Int64] = [], ids: [Int32]? = nil, idCount: Int = 0) {
        self.values = values
        self.times = times
        self.ids = ids
        self.idCount = idCount
    }

    /// A dictionary-encoded batch: element `i` is `dictionary[ids[i]]`, at the `i`-th of `times`.
    init(dictionary: [Value], ids: [Int32], times: EventTimes, isDistinct: Bool = false) {
        self.encoded = (dictionary, times)
        self.ids = ids
        self.idCount = dictionary.count
        self.dictionaryIsDistinct = isDistinct
    }

    /// Whether the batch is dictionary-encoded.
    var isDictionaryEncoded: Bool { encoded != nil }

    /// The number of elements.
    var count: Int { encoded == nil ? times.count : ids?.count ?? 0 }

    /// Every element, decoded if the batch is dictionary-encoded.
    var decodedValues: [Value] {
        guard let (dictionary, _) = encoded, let ids else { return values }
        return ids.map { dictionary[Int($0)] }
    }

    /// Every element's time, one per element.
    var decodedTimes: [Int64] {
        encoded?.times.expanded ?? times
    }

    /// `transform` applied to every element. A dictionary-encoded batch stays encoded: `transform` is applied once
    /// per distinct value (operators are functions of their element, as in Spark), not once per element.
    func mapped<Output>(_ transform: (Value) -> Output) -> Elements<Output> {
        if let (dictionary, times) = encoded, let ids {
            return Elements<Output>(dictionary: dictionary.map(transform), ids: ids, times: times)
        }
        return Elements<Output>(values: values.map(transform), times: times, ids: ids, idCount: idCount)
    }

    mutating func append(_ value: Value, at time: Int64) {
        precondition(encoded == nil, "appending to a dictionary-encoded batch")
        values.append(value)
        times.append(time)
    }

    /// Reads the batch element by element.
    var source: ElementSource<Value> {
        if let (dictionary, times) = encoded, let ids {
            return ElementSource(
                count: ids.count, times: times, ids: ids, idCount: idCount, dictionary: dictionary,
                dictionaryIsDistinct: dictionaryIsDistinct
            ) { dictionary[Int(ids[$0])] }
        }
        let values = values
        return ElementSource(count: values.count, times: EventTimes(times), ids: ids, idCount: idCount) { values[$0] }
    }

    /// Groups pairs by key in order of first appearance, folding each key's values into an
    /// accumulator; a group's time is the latest time of its values.
    func aggregated<Key: Hashable, Input, Accumulator>(
        _ start: (Input) -> Accumulator, _ combine: (inout Accumulator, Input) -> Void
    ) -> Elements<(Key, Accumulator)> where Value == (Key, Input) {
        source.aggregated(start, combine)
    }
}

extension Elements {
    /// Folds `input`, at `time`, into the group at `index`: its accumulator, and its time, the latest of its inputs'.
    @inline(__always)
    fileprivate mutating func fold<Key, Input, Accumulator>(
        _ input: Input, at time: Int64, intoGroup index: Int, _ combine: (inout Accumulator, Input) -> Void
    ) where Value == (Key, Accumulator) {
        combine(&values[index].1, input)
        times[index] = max(times[index], time)
    }

    /// Folds `input`, at `time`, into the group of `key`, starting one at the end if it has none; returns its index.
    @inline(__always)
    fileprivate mutating func fold<Key: Hashable, Input, Accumulator>(
        _ input: Input, of key: Key, at time: Int64, indices: inout [Key: Int],
        _ start: (Input) -> Accumulator, _ combine: (inout Accumulator, Input) -> Void
    ) -> Int where Value == (Key, Accumulator) {
        if let index = indices[key] {
            fold(input, at: time, intoGroup: index, combine)
            return index
        }
        let index = values.count
        indices[key] = index
        append((key, start(input)), at: time)
        return index
    }
}

/// A batch read element by element, in order: either stored ``Elements``, or a `map` over plain ones
/// that is applied as its single consumer reads each element (exactly once per element), so the
/// mapped batch is never stored.
struct ElementSource<Value> {
    let count: Int
    let times: EventTimes
    /// The grouping hint of ``Elements/ids``.
    let ids: [Int32]?
    let idCount: Int
    /// The distinct values of a dictionary-encoded batch: element `i` is `dictionary[ids[i]]`, so readers can work
    /// per id and touch each distinct value once instead of calling `value` per element.
    var dictionary: [Value]? = nil
    /// See ``Elements/dictionaryIsDistinct``.
    var dictionaryIsDistinct = false
    let value: (Int) -> Value

    /// Groups pairs by key in order of first appearance, folding each key's values into an
    /// accumulator; a group's time is the latest time of its values.
    func aggregated<Key: Hashable, Input, Accumulator>(
        _ start: (Input) -> Accumulator, _ combine: (inout Accumulator, Input) -> Void
    ) -> Elements<(Key, Accumulator)> where Value == (Key, Input) {
        if let dictionary, let ids { return aggregated(dictionary: dictionary, ids: ids, start, combine) }
        var groups = Elements<(Key, Accumulator)>()
        groups.keysAreDistinct = true
        var indices: [Key: Int] = [:]
        guard let ids, ids.count == count else {
            // Bounded, so that many duplicates cannot make the reservation large.
            indices.reserveCapacity(min(count, 1 << 16))
            var times = times.makeIterator()
            for position in 0..<count {
                let (key, value) = value(position)
                _ = groups.fold(value, of: key, at: times.next()!, indices: &indices, start, combine)
            }
            return groups
        }
        // Cache: id -> group index of the last key seen with that id (-1: none yet).
        var slots = [Int32](repeating: -1, count: idCount)
        indices.reserveCapacity(min(idCount, count))
        groups.values.reserveCapacity(min(idCount, count))
        groups.times.reserveCapacity(min(idCount, count))
        var times = times.makeIterator()
        for position in 0..<count {
            let (key, value) = value(position)
            let time = times.next()!
            let id = Int(ids[position])
            let slot = Int(slots[id])
            if slot >= 0, groups.values[slot].0 == key {
                groups.fold(value, at: time, intoGroup: slot, combine)
            } else {
                slots[id] = Int32(groups.fold(value, of: key, at: time, indices: &indices, start, combine))
            }
        }
        return groups
    }

    /// The number of elements of each distinct value, in order of first appearance; a value's time is the latest of
    /// its elements'. A dictionary-encoded batch is counted per id in one pass, with no call per element: the same
    /// groups, counts and times as folding `+ 1` element by element, since the sum does not depend on the order.
    func counted() -> Elements<(Value, Int64)> where Value: Hashable {
        guard let dictionary, let ids else {
            return ElementSource<(Value, Int64)>(count: count, times: times, ids: ids, idCount: idCount) { (value($0), 1) }
                .aggregated({ $0 }) { $0 += $1 }
        }
        var occurrences = [Int64](repeating: 0, count: dictionary.count)
        var latest = [Int64](repeating: .min, count: dictionary.count)
        var firstSeen: [Int32] = []
        firstSeen.reserveCapacity(dictionary.count)
        occurrences.withUnsafeMutableBufferPointer { occurrences in
            latest.withUnsafeMutableBufferPointer { latest in
                ids.withUnsafeBufferPointer { ids in
                    times.forEachRun { time, positions in
                        for position in positions {
                            let id = Int(ids[position])
                            if occurrences[id] == 0 { firstSeen.append(Int32(id)) }
                            occurrences[id] += 1
                            latest[id] = max(latest[id], time)
                        }
                    }
                }
            }
        }
        var groups = Elements<(Value, Int64)>()
        groups.keysAreDistinct = true
        groups.values.reserveCapacity(firstSeen.count)
        groups.times.reserveCapacity(firstSeen.count)
        if dictionaryIsDistinct {
            for id in firstSeen.lazy.map(Int.init) {
                groups.append((dictionary[id], occurrences[id]), at: latest[id])
            }
            return groups
        }
        var indices: [Value: Int] = [:]
        indices.reserveCapacity(firstSeen.count)
        for id in firstSeen.lazy.map(Int.init) {
            // The value may be another id's too (a map that is not one-to-one).
            let value = dictionary[id]
            if let index = indices[value] {
                groups.values[index].1 += occurrences[id]
                groups.times[index] = max(groups.times[index], latest[id])
            } else {
                indices[value] = groups.values.count
                groups.append((value, occurrences[id]), at: latest[id])
            }
        }
        return groups
    }

    /// ``aggregated(_:_:)`` of a dictionary-encoded batch: each id's key is looked up once, at its first element;
    /// later elements go straight to their group by id, in arrival order.
    private func aggregated<Key: Hashable, Input, Accumulator>(
        dictionary: [(Key, Input)], ids: [Int32], _ start: (Input) -> Accumulator, _ combine: (inout Accumulator, Input) -> Void
    ) -> Elements<(Key, Accumulator)> where Value == (Key, Input) {
        var groups = Elements<(Key, Accumulator)>()
        groups.keysAreDistinct = true
        groups.values.reserveCapacity(dictionary.count)
        groups.times.reserveCapacity(dictionary.count)
        var indices: [Key: Int] = [:]
        indices.reserveCapacity(dictionary.count)
        var groupOfID = [Int32](repeating: -1, count: dictionary.count)
        times.forEachRun { time, range in
            for position in range {
                let id = Int(ids[position])
                let group = Int(groupOfID[id])
                if group >= 0 {
                    groups.fold(dictionary[id].1, at: time, intoGroup: group, combine)
                } else {
                    // The key may be another id's too (a map that is not one-to-one).
                    groupOfID[id] = Int32(groups.fold(dictionary[id].1, of: dictionary[id].0, at: time, indices: &indices, start, combine))
                }
            }
        }
        return groups
    }
}
