extension DStream where Element == InputRecord {
    /// The lowercased words of each record value (see ``WordTokenizer``), each with its record's
    /// event time. Values are read in place; a record whose value is not valid UTF-8 yields no
    /// words and is reported in ``BatchOutput/malformed``.
    public func flatMapWords() -> DStream<String> {
        derive { records, context in
            // Words are interned on their bytes: one String per distinct word per batch, and the
            // batch is dictionary-encoded by their ids, which also let downstream aggregations skip
            // re-hashing words they have just seen. A first pass collects the ids and the number of
            // words per record; their times are then filled in a tight loop.
            let inputs = records.decodedValues
            var interner = WordInterner()
            var ids: [Int32] = []
            var wordCounts = [Int](repeating: 0, count: inputs.count)
            var textBytes = 0
            for record in inputs {
                textBytes += record.withValueBytes { $0.count }
            }
            // About one word per 4 bytes of text is a generous guess; untouched reserved pages cost no memory.
            ids.reserveCapacity(textBytes / 4)
            for (index, record) in inputs.enumerated() {
                let before = ids.count
                let valid = record.withValueBytes { value in
                    WordTokenizer.forEachWord(in: value) { word in
                        ids.append(interner.id(of: word))
                    }
                }
                wordCounts[index] = ids.count - before
                if !valid { context.malformed.append(record) }
            }
            let times = records.times.withUnsafeBufferPointer { recordTimes in
                [Int64](unsafeUninitializedCapacity: ids.count) { buffer, count in
                    var position = 0
                    for (index, words) in wordCounts.enumerated() where words > 0 {
                        (buffer.baseAddress! + position).initialize(repeating: recordTimes[index], count: words)
                        position += words
                    }
                    count = position
                }
            }
            return Elements(dictionary: interner.words, ids: ids, times: times)
        }
    }
}
