import CASCIIScan
import Foundation

/// Splits UTF-8 text into lowercase words.
///
/// Words are maximal runs of non-whitespace scalars, where whitespace is Unicode's
/// `White_Space` property (`Unicode.Scalar.Properties.isWhitespace`). They are lowercased
/// scalar by scalar with Unicode's full lowercase mappings plus its one context rule, Final_Sigma
/// (a capital sigma at the end of a word becomes ς, as ICU does), and then put in Normalization
/// Form C, so canonically equivalent spellings (é as one scalar or as e and a combining accent)
/// are one word. Pure-ASCII input takes a byte-level fast path; other input is validated as
/// UTF-8 first.
public enum WordTokenizer {
    /// The longest word, in UTF-8 bytes, that the word count accepts: 64 KiB. A record with a longer word is
    /// malformed (``MalformedRecord/Reason/wordTooLong(bytes:)``), so that no output record (the word as key and,
    /// JSON-escaped, in the value) can reach a Kafka producer's 1 MB record limit.
    public static let maximumWordBytes = 65_536

    /// Calls `body` with the lowercased UTF-8 bytes of each word of `text`, in order.
    ///
    /// The word buffer is scratch memory valid only inside `body`. Returns `false`, without
    /// calling `body`, if `text` is not valid UTF-8. Empty or all-whitespace text has no words.
    public static func forEachWord(
        in text: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void
    ) rethrows -> Bool {
        let words: Void? = try withWords(in: text) { lowercased, spans in
            for span in spans {
                try body(UnsafeRawBufferPointer(rebasing: lowercased[span.range]))
            }
        }
        return words != nil
    }

    /// Calls `body` once with the lowercased text and the spans of all its words, in order, and returns its
    /// result; `nil`, without calling `body`, if `text` is not valid UTF-8. Both buffers are valid only inside `body`.
    static func withWords<Result>(
        in text: UnsafeRawBufferPointer,
        _ body: (_ lowercased: UnsafeRawBufferPointer, _ words: UnsafeBufferPointer<WordSpan>) throws -> Result
    ) rethrows -> Result? {
        if let result = try withASCIIWords(in: text, body) {
            return result
        }
        guard let decoded = String(validating: text, as: UTF8.self) else { return nil }
        var lowercased = lowercase(decoded).precomposedStringWithCanonicalMapping
        return try lowercased.withUTF8 { utf8 in
            let lowercased = UnsafeRawBufferPointer(utf8)
            let spans = unicodeWords(in: lowercased)
            return try spans.withUnsafeBufferPointer { try body(lowercased, $0) }
        }
    }

    /// `String.lowercased()` plus Unicode's Final_Sigma rule.
    static func lowercase(_ text: String) -> String {
        guard text.unicodeScalars.contains("\u{03A3}") else { return text.lowercased() }
        let scalars = Array(text.unicodeScalars)
        var result = String.UnicodeScalarView()
        for index in scalars.indices {
            if scalars[index] == "\u{03A3}", isFinalSigma(scalars, at: index) {
                result.append("\u{03C2}")
            } else {
                result.append(contentsOf: scalars[index].properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(result)
    }

    /// Final_Sigma: a cased letter before (case-ignorable scalars skipped), and none after.
    private static func isFinalSigma(_ scalars: [Unicode.Scalar], at index: Int) -> Bool {
        var before = index - 1
        while before >= 0, scalars[before].properties.isCaseIgnorable { before -= 1 }
        guard before >= 0, scalars[before].properties.isCased else { return false }
        var after = index + 1
        while after < scalars.count, scalars[after].properties.isCaseIgnorable { after += 1 }
        return after == scalars.count || !scalars[after].properties.isCased
    }

    /// The words of `text`, lowercased (a convenience for tests and tools).
    public static func words(_ text: String) -> [String] {
        var words: [String] = []
        var utf8 = text
        utf8.withUTF8 { bytes in
            _ = forEachWord(in: UnsafeRawBufferPointer(bytes)) { words.append(String(decoding: $0, as: UTF8.self)) }
        }
        return words
    }

    /// `body` of the lowercased text and its words if `text` is all ASCII, else nil without calling it. The text is
    /// read once, 64 bytes at a time (``sluice_ascii_scan64``): whether a byte is 0x80 or above is gathered along the
    /// way and checked at the end.
    private static func withASCIIWords<Result>(
        in text: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer, UnsafeBufferPointer<WordSpan>) throws -> Result
    ) rethrows -> Result? {
        // The text is copied into scratch memory rounded up to whole 64-byte chunks (at least one), padded with spaces,
        // and lowercased there in place.
        let chunked = max(64, (text.count + 63) & ~63)
        return try withUnsafeTemporaryAllocation(byteCount: chunked, alignment: 16) { scratch in
            scratch.copyMemory(from: text)
            UnsafeMutableRawBufferPointer(rebasing: scratch[text.count...]).initializeMemory(as: UInt8.self, repeating: 0x20)
            // Words are separated, so at most every other byte starts one (whatever the bytes: text that turns out not
            // to be ASCII is split too before it is set aside).
            return try withUnsafeTemporaryAllocation(of: WordSpan.self, capacity: chunked / 2) { spans in
                // Words started and words ended so far: a word starts at a non-whitespace byte after whitespace and
                // ends at a whitespace byte after a non-whitespace one (the text starts after whitespace).
                var count = 0
                var ended = 0
                var whitespaceBefore: UInt64 = 1
                var seen = SIMD16<UInt8>()
                let bytes = scratch.baseAddress!.assumingMemoryBound(to: UInt8.self)
                for offset in stride(from: 0, to: chunked, by: 64) {
                    // Each byte's flag next to the flag of the byte before it; the chunk's last flag carries over.
                    let whitespace = sluice_ascii_scan64(bytes + offset, &seen)
                    let previous = whitespace << 1 | whitespaceBefore
                    whitespaceBefore = whitespace >> 63
                    var starts = ~whitespace & previous
                    var ends = whitespace & ~previous
                    while starts != 0 {
                        spans[count] = WordSpan(start: offset + starts.trailingZeroBitCount)
                        count += 1
                        starts &= starts &- 1
                    }
                    while ends != 0 {
                        spans[ended].end(at: offset + ends.trailingZeroBitCount)
                        ended += 1
                        ends &= ends &- 1
                    }
                }
                guard sluice_is_ascii(seen) else { return nil }
                // Text padded with spaces ended its last word; text of whole chunks may not have.
                if ended < count { spans[ended].end(at: text.count) }
                return try body(
                    UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(scratch)[..<text.count]),
                    UnsafeBufferPointer(rebasing: spans[..<count]))
            }
        }
    }

    /// The words of valid, already lowercased UTF-8, split on whitespace scalars.
    private static func unicodeWords(in text: UnsafeRawBufferPointer) -> [WordSpan] {
        var spans: [WordSpan] = []
        var iterator = text.makeIterator()
        var decoder = UTF8()
        var position = 0
        var wordStart: Int?
        while case .scalarValue(let scalar) = decoder.decode(&iterator) {
            if scalar.properties.isWhitespace {
                if let start = wordStart {
                    spans.append(WordSpan(start: start, end: position))
                    wordStart = nil
                }
            } else if wordStart == nil {
                wordStart = position
            }
            position += UTF8.width(scalar)
        }
        if let start = wordStart {
            spans.append(WordSpan(start: start, end: position))
        }
        return spans
    }
}

/// Where a word is in the text ``WordTokenizer`` hands out: its byte offset and length.
struct WordSpan {
    let start: Int32
    private(set) var count: Int32

    /// Text is a record value, far below 2 GiB.
    init(start: Int, end: Int) {
        self.start = Int32(truncatingIfNeeded: start)
        self.count = Int32(truncatingIfNeeded: end - start)
    }

    /// A word whose end is not known yet.
    init(start: Int) {
        self.init(start: start, end: start)
    }

    /// Sets the end of the word.
    mutating func end(at end: Int) {
        count = Int32(truncatingIfNeeded: end) - start
    }

    var range: Range<Int> { Int(start)..<Int(start) + Int(count) }
}
