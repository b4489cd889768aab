extension DStream where Element == InputRecord {
    /// The lowercased words of each record value (see ``WordTokenizer``), each with its record's
    /// event time. Values are read in place; a record whose value is not valid UTF-8 yields no
    /// words and is reported in ``BatchOutput/malformed``.
    public func flatMapWords() -> DStream<String> {
        derive { records, context in
            // Words are interned on their bytes: one String per distinct word per batch, and the
            // batch is dictionary-encoded by their ids, which also let downstream aggregations skip
            // re-hashing words they have just seen. The words of a record share its time, stored
            // once per record (a run) rather than once per word.
            let inputs = records.decodedValues
            var interner = WordInterner()
            var ids: [Int32] = []
            var textBytes = 0
            for record in inputs {
                textBytes += record.withValueBytes { $0.count }
            }
            // About one word per 4 bytes of text is a generous guess; untouched reserved pages cost no memory.
            ids.reserveCapacity(textBytes / 4)
            var runTimes: [Int64] = []
            var runEnds: [Int32] = []
            for (record, time) in zip(inputs, records.decodedTimes) {
                let valid = record.withValueBytes { value in
                    WordTokenizer.forEachWord(in: value) { word in
                        ids.append(interner.id(of: word))
                    }
                }
                if !valid { context.malformed.append(record) }
                guard ids.count > Int(runEnds.last ?? 0) else { continue }
                if runTimes.last == time {
                    runEnds[runEnds.count - 1] = Int32(ids.count)
                } else {
                    runTimes.append(time)
                    runEnds.append(Int32(ids.count))
                }
            }
            let times = EventTimes(runs: runTimes, ends: runEnds)
            return Elements(dictionary: interner.words, ids: ids, times: times)
        }
    }
}
