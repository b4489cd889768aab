/// Deterministic sample prose for the demo: sentences drawn from a fixed vocabulary with a seeded generator, so the
/// same settings always produce the same lines (and so the same word counts).
public enum SampleText {
    private static let vocabulary = """
        the of and to in a is that for it as was with be by on not he this are or his from at which but have an they \
        you were her she there been one all we their has would when if so no what up out who them some could more \
        river stream water flows over stones under bridge toward sea quiet morning light falls across valley where \
        old mill once turned wheel grinding grain while children watched from bank and boats drifted slowly past \
        fields of barley waiting for harvest rain clouds gathered above hills wind carried voices of people walking \
        home after long day work town market square bells rang evening lamps were lit along narrow streets stories \
        told by fire travellers rested before journey north winter came early snow covered roads ice held ponds still
        """.split(separator: " ").map(String.init)

    /// The `index`-th line: 8 to 12 words, some capitalised, ending with a full stop.
    public static func line(_ index: Int, seed: UInt64 = 42) -> String {
        var generator = SplitMix64(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        let count = 8 + Int(generator.next() % 5)
        var words: [String] = []
        words.reserveCapacity(count)
        for position in 0..<count {
            // Squaring skews the choice toward the common words at the front of the list, as in real prose.
            let uniform = Double(generator.next() >> 11) / Double(1 << 53)
            var word = vocabulary[Int(uniform * uniform * Double(vocabulary.count))]
            if position == 0 || generator.next() % 17 == 0 {
                word = word.prefix(1).uppercased() + word.dropFirst()
            }
            words.append(word)
        }
        return words.joined(separator: " ") + "."
    }
}
