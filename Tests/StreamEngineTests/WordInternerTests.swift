import StreamEngine
import Testing

@Suite struct WordInternerTests {
    /// The ids of the words of `text`, through the interner's public entry.
    func ids(_ text: String, in interner: inout WordInterner) -> [Int32] {
        var ids: [Int32] = []
        var text = text
        let reason = text.withUTF8 { interner.appendIDs(ofWordsIn: UnsafeRawBufferPointer($0), to: &ids) }
        #expect(reason == nil)
        return ids
    }

    /// Every word of one to three letters over a small alphabet (the short keys are built from the first, middle and
    /// last bytes), words on both sides of the 8- and 16-byte key boundaries, and long words that differ in one byte
    /// only, each at its first-seen id, from a table that starts small and grows many times.
    @Test func distinctWordsGetDistinctIDsInFirstSeenOrder() {
        let letters = ["a", "b", "c", "d"]
        var words = letters
        words += letters.flatMap { x in letters.map { x + $0 } }
        words += letters.flatMap { x in letters.flatMap { y in letters.map { x + y + $0 } } }
        for length in 4...40 {
            let base = String(repeating: "x", count: length)
            words.append(base)
            words.append(String(base.dropLast()) + "y")
            words.append("y" + base.dropFirst())
        }
        var interner = WordInterner(capacity: 1)
        let first = ids(words.joined(separator: " "), in: &interner)
        #expect(first == words.indices.map(Int32.init))
        #expect(interner.words == words)
        // Seen again, in another order and mixed case, every word keeps its id.
        let again = ids(words.reversed().map { $0.uppercased() }.joined(separator: "\n"), in: &interner)
        #expect(again == words.indices.reversed().map(Int32.init))
        #expect(interner.count == words.count)
    }
}
