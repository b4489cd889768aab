import StreamEngine
import Testing

@Suite struct WordTokenizerTests {
    /// The words of raw bytes, or `nil` if they are not valid UTF-8.
    func words(_ bytes: [UInt8]) -> [String]? {
        var words: [String] = []
        let valid = bytes.withUnsafeBytes { text in
            WordTokenizer.forEachWord(in: text) { words.append(String(decoding: $0, as: UTF8.self)) }
        }
        return valid ? words : nil
    }

    @Test func splitsASCIIOnWhitespace() {
        #expect(WordTokenizer.words("the quick\tbrown\n\nfox\r\u{0B}\u{0C}jumps  ") == ["the", "quick", "brown", "fox", "jumps"])
        #expect(WordTokenizer.words("  punctuation, stays-attached!") == ["punctuation,", "stays-attached!"])
    }

    @Test func lowercasesMixedCase() {
        #expect(WordTokenizer.words("Hello WORLD MiXeD 42AbC") == ["hello", "world", "mixed", "42abc"])
    }

    @Test func splitsOnUnicodeWhitespace() {
        #expect(WordTokenizer.words("a\u{3000}b\u{00A0}c\u{2028}d\u{0085}e\u{1680}f") == ["a", "b", "c", "d", "e", "f"])
    }

    @Test func lowercasesNonASCII() {
        #expect(WordTokenizer.words("ÉCOLE Straße ΑΒΓ İ") == ["école", "straße", "αβγ", "i\u{307}"])
        // As String.lowercased(), but for a final capital sigma (see below).
        #expect(WordTokenizer.words("ǅemal ΣΊΣΥΦΟΣ") == ["ǆemal", "σίσυφος"])
        for text in ["ÉCOLE über ÅNGSTRÖM", "mixed ascii AND ÜNICODE words"] {
            let expected = text.lowercased().unicodeScalars.split { $0.properties.isWhitespace }.map { String(String.UnicodeScalarView($0)) }
            #expect(WordTokenizer.words(text) == expected)
        }
    }

    @Test func invalidUTF8IsMalformedAndYieldsNoWords() {
        #expect(words([0x61, 0x20, 0xFF, 0x62]) == nil)
        #expect(words(Array("longer than eight bytes ".utf8) + [0xC3]) == nil)
        #expect(words([0xED, 0xA0, 0x80]) == nil)  // an encoded surrogate
    }

    @Test func emptyAndBlankTextHaveNoWords() {
        #expect(words([]) == [])
        #expect(words(Array(" \t\n ".utf8)) == [])
        #expect(words(Array("\u{3000}".utf8)) == [])
    }

    @Test func longASCIIInputUsesAllBytes() {
        let text = String(repeating: "Ab ", count: 100) + "END"
        #expect(WordTokenizer.words(text) == Array(repeating: "ab", count: 100) + ["end"])
    }

    /// The ASCII path reads 64 bytes at a time; against a byte-by-byte reference, every byte value below 0x80 at
    /// every position and length up to three chunks (words ending on, before and after a chunk boundary, a text
    /// ending mid-word), and a non-ASCII letter at every position, which sends the text to the Unicode path.
    @Test func asciiChunksAgreeWithByteByByteSplitting() {
        let whitespace: Set<UInt8> = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20]
        func reference(_ bytes: [UInt8]) -> [String] {
            bytes.split { whitespace.contains($0) }.map { word in
                String(decoding: word.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
            }
        }
        var generator = SystemRandomNumberGenerator()
        for length in 0...192 {
            for _ in 0..<50 {
                let bytes = (0..<length).map { _ -> UInt8 in
                    Bool.random(using: &generator)
                        ? [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x08, 0x0E, 0x1F, 0x21].randomElement(using: &generator)!
                        : UInt8.random(in: 0...0x7F, using: &generator)
                }
                #expect(words(bytes) == reference(bytes), "\(bytes)")
            }
        }
        let every = Array(0...0x7F as ClosedRange<UInt8>)
        #expect(words(every) == reference(every))
        let text = Array(String(repeating: "Ab c ", count: 30).utf8)
        for position in text.indices {
            var bytes = text
            bytes.replaceSubrange(position..<position + 1, with: Array("É".utf8))
            let expected = reference(bytes).map { $0.lowercased() }
            #expect(words(bytes) == expected, "É at \(position)")
        }
    }

    /// Canonically equivalent spellings are one word (Normalization Form C), and a capital sigma that ends a word
    /// lowercases to ς, as ICU does; both used to depend on how the first occurrence was written.
    @Test func equivalentSpellingsAreOneWordAndFinalSigmaIsKept() {
        #expect(WordTokenizer.words("\u{E9}cole e\u{301}cole") == ["\u{E9}cole", "\u{E9}cole"])
        #expect(WordTokenizer.words("ΟΔΟΣ Σ ΟΔΟΣΟΣ ὈΔΥΣΣΕΎΣ.") == ["οδος", "σ", "οδοσος", "ὀδυσσεύς."])
        #expect(WordTokenizer.words("οδοσ") == ["οδοσ"])
    }
}
