/// One batch of a stream: values with their event times (ms), as parallel arrays.
struct Elements<Value> {
    var values: [Value] = []
    var times: [Int64] = []

    mutating func append(_ value: Value, at time: Int64) {
        values.append(value)
        times.append(time)
    }

    /// Groups pairs by key in order of first appearance, folding each key's values into an
    /// accumulator; a group's time is the latest time of its values.
    func aggregated<Key: Hashable, Input, Accumulator>(
        _ start: (Input) -> Accumulator, _ combine: (inout Accumulator, Input) -> Void
    ) -> Elements<(Key, Accumulator)> where Value == (Key, Input) {
        var groups = Elements<(Key, Accumulator)>()
        var indices: [Key: Int] = [:]
        for ((key, value), time) in zip(values, times) {
            if let index = indices[key] {
                combine(&groups.values[index].1, value)
                groups.times[index] = max(groups.times[index], time)
            } else {
                indices[key] = groups.values.count
                groups.append((key, start(value)), at: time)
            }
        }
        return groups
    }
}
