extension DStream where Element == InputRecord {
    /// The lowercased words of each record value (see ``WordTokenizer``), each with its record's
    /// event time. Values are read in place; a record whose value is not valid UTF-8 yields no
    /// words and is reported in ``BatchOutput/malformed``.
    public func flatMapWords() -> DStream<String> {
        derive { records, context in
            var words = Elements<String>()
            for (record, time) in zip(records.values, records.times) {
                let valid = record.withValueBytes { value in
                    WordTokenizer.forEachWord(in: value) { words.append(String(decoding: $0, as: UTF8.self), at: time) }
                }
                if !valid { context.malformed.append(record) }
            }
            return words
        }
    }
}
