import CPrefetch

/// Maps word bytes to small dense ids, creating one `String` per distinct word.
///
/// An open-addressing hash table over the raw bytes: looking up a word seen before costs a few
/// loads, multiplies and compares, with no `String` created or hashed. Each slot holds its word's
/// key inline (words of up to 16 bytes zero-padded into two machine words, longer ones as their
/// hash, compared against a byte arena), so a lookup touches one slot rather than a slot and then
/// an entry elsewhere: the table is larger than the words it holds, and a second cache miss per
/// word was most of the cost. Ids are dense in first-seen order (frequent words come first).
public struct WordInterner: Sendable {
    private struct Slot {
        /// Short words: the zero-padded bytes. Long words: the hash, and 0.
        var first: UInt64 = 0
        var second: UInt64 = 0
        /// The word's length, and its id + 1 (0: an empty slot).
        var length: UInt32 = 0
        var idPlusOne: UInt32 = 0
    }

    /// The distinct words, by id.
    public private(set) var words: [String] = []
    /// The bytes of every long distinct word, concatenated; keyed by id in `longStarts`.
    private var arena: [UInt8] = []
    private var longStarts: [Int: Int] = [:]
    /// A power of two, kept at most half full.
    private var slots: [Slot]
    /// 64 less the base-2 logarithm of the slot count: a hash shifted right by it is a slot.
    private var shift: UInt64

    /// A table sized for about `capacity` distinct words (it grows past them).
    public init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [Slot](repeating: Slot(), count: size)
        shift = UInt64(64 - size.trailingZeroBitCount)
    }

    /// The number of distinct words.
    public var count: Int { words.count }

    /// The id of `word`, adding it if new.
    mutating func id(of word: UnsafeRawBufferPointer) -> Int32 {
        id(of: word, key: Self.key(of: word))
    }

    /// Appends the ids of the words of a record value (``WordTokenizer``), adding new words, in order; or appends
    /// nothing and returns why the value is malformed (not valid UTF-8, or a word over
    /// ``WordTokenizer/maximumWordBytes``).
    public mutating func appendIDs(ofWordsIn value: UnsafeRawBufferPointer, to ids: inout [Int32]) -> MalformedRecord.Reason? {
        let outcome = WordTokenizer.withWords(in: value) { text, spans -> MalformedRecord.Reason? in
            // No word is longer than its text, so most values need no look at the words' lengths.
            if text.count > WordTokenizer.maximumWordBytes {
                let longest = spans.reduce(0) { max($0, Int($1.count)) }
                guard longest <= WordTokenizer.maximumWordBytes else { return .wordTooLong(bytes: longest) }
            }
            appendIDs(of: spans, in: text, to: &ids)
            return nil
        }
        return outcome ?? .invalidUTF8
    }

    /// Appends the ids of the words at `spans` of `text`, adding new words, in order.
    ///
    /// The slots of up to ``lookahead`` words are prefetched before the first of them is looked up, so that their
    /// cache misses (the table is larger than the caches near the core) overlap instead of following one another.
    mutating func appendIDs(of spans: UnsafeBufferPointer<WordSpan>, in text: UnsafeRawBufferPointer, to ids: inout [Int32]) {
        withUnsafeTemporaryAllocation(of: Key.self, capacity: Self.lookahead) { keys in
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: Self.lookahead) { found in
                var start = 0
                while start < spans.count {
                    let end = min(start + Self.lookahead, spans.count)
                    slots.withUnsafeBufferPointer { slots in
                        for position in start..<end {
                            let key = Self.key(of: Self.word(spans[position], in: text))
                            keys[position - start] = key
                            sluice_prefetch(slots.baseAddress! + home(of: key.hash))
                        }
                    }
                    for position in start..<end {
                        found[position - start] = id(of: Self.word(spans[position], in: text), key: keys[position - start])
                    }
                    ids.append(contentsOf: UnsafeBufferPointer(rebasing: found[..<(end - start)]))
                    start = end
                }
            }
        }
    }

    /// The bytes of the word at `span` of `text`, which holds it (the tokenizer's spans do).
    @inline(__always)
    private static func word(_ span: WordSpan, in text: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: text.baseAddress! + Int(span.start), count: Int(span.count))
    }

    /// How many words ``appendIDs(of:in:to:)`` prefetches ahead.
    private static let lookahead = 16

    /// What a slot stores of a word, and the word's slot hash.
    private struct Key {
        var first: UInt64
        var second: UInt64
        var hash: UInt64
    }

    @inline(__always)
    private static func key(of word: UnsafeRawBufferPointer) -> Key {
        var first: UInt64 = 0
        var second: UInt64 = 0
        if word.count <= 16 {
            (first, second) = paddedWords(word)
        } else {
            first = longHash(word)
        }
        return Key(first: first, second: second, hash: hash(first: first, second: second, length: word.count))
    }

    /// The first slot to probe for a hash: its top bits (a multiplicative hash mixes every input bit into them).
    @inline(__always)
    private func home(of hash: UInt64) -> Int {
        Int(truncatingIfNeeded: hash &>> shift)
    }

    @inline(__always)
    private mutating func id(of word: UnsafeRawBufferPointer, key: Key) -> Int32 {
        let length = word.count
        let (first, second) = (key.first, key.second)
        let mask = slots.count - 1
        var index = home(of: key.hash)
        let found: Int32? = slots.withUnsafeBufferPointer { slots in
            while true {
                let slot = slots[index]
                if slot.idPlusOne == 0 { return nil }
                if slot.first == first, slot.second == second, Int(slot.length) == length,
                   length <= 16 || longMatches(Int(slot.idPlusOne) - 1, word) {
                    return Int32(slot.idPlusOne - 1)
                }
                index = (index + 1) & mask
            }
        }
        return found ?? insert(word, first: first, second: second, at: index)
    }

    /// The slot hash of a key: short words multiply their bytes (only the top bits are used), a long word's key is
    /// already its hash.
    @inline(__always)
    private static func hash(first: UInt64, second: UInt64, length: Int) -> UInt64 {
        length <= 16 ? (first &* 0x9E37_79B9_7F4A_7C15) ^ ((second &+ UInt64(length)) &* 0xC2B2_AE3D_27D4_EB4F) : first
    }

    private mutating func insert(_ word: UnsafeRawBufferPointer, first: UInt64, second: UInt64, at index: Int) -> Int32 {
        let id = words.count
        words.append(String(decoding: word, as: UTF8.self))
        if word.count > 16 {
            longStarts[id] = arena.count
            arena.append(contentsOf: word)
        }
        slots[index] = Slot(first: first, second: second, length: UInt32(word.count), idPlusOne: UInt32(id + 1))
        if words.count * 2 > slots.count { grow() }
        return Int32(id)
    }

    private mutating func grow() {
        let smaller = slots
        slots = [Slot](repeating: Slot(), count: smaller.count * 2)
        shift -= 1
        let mask = slots.count - 1
        for slot in smaller where slot.idPlusOne != 0 {
            var index = home(of: Self.hash(first: slot.first, second: slot.second, length: Int(slot.length)))
            while slots[index].idPlusOne != 0 { index = (index + 1) & mask }
            slots[index] = slot
        }
    }

    private func longMatches(_ id: Int, _ word: UnsafeRawBufferPointer) -> Bool {
        guard let start = longStarts[id] else { return false }
        return arena.withUnsafeBytes { stored in
            stored.baseAddress.map { memcmp($0 + start, word.baseAddress!, word.count) } ?? false
        }
    }

    /// The bytes of a word of at most 16 bytes, zero-padded, as two little-endian words.
    @inline(__always)
    private static func paddedWords(_ word: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        let count = word.count
        if count >= 8 {
            let first = word.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
            guard count > 8 else { return (first, 0) }
            let tail = word.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
            return (first, tail >> UInt64((16 - count) * 8))
        }
        if count >= 4 {
            let low = UInt64(word.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
            let high = UInt64(word.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self))
            return (low | (high >> UInt64((8 - count) * 8)) << 32, 0)
        }
        guard count > 0 else { return (0, 0) }
        // One to three bytes: the first, the middle and the last (some the same byte) at their places.
        let middle = count >> 1
        let value = UInt64(word[0]) | UInt64(word[middle]) << UInt64(middle * 8) | UInt64(word[count - 1]) << UInt64((count - 1) * 8)
        return (value, 0)
    }

    private static func longHash(_ word: UnsafeRawBufferPointer) -> UInt64 {
        var hash = UInt64(truncatingIfNeeded: word.count) &* 0x9E37_79B9_7F4A_7C15
        var index = 0
        while index + 8 <= word.count {
            hash = (hash ^ word.loadUnaligned(fromByteOffset: index, as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
            hash ^= hash >> 32
            index += 8
        }
        if index < word.count {
            hash ^= word.loadUnaligned(fromByteOffset: word.count - 8, as: UInt64.self)
        }
        return mix(hash)
    }

    @inline(__always)
    private static func mix(_ value: UInt64) -> UInt64 {
        var hash = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        hash = (hash ^ (hash >> 27)) &* 0x94D0_49BB_1331_11EB
        return hash ^ (hash >> 31)
    }
}

/// Whether `count` bytes at `lhs` and `rhs` are equal.
private func memcmp(_ lhs: UnsafeRawPointer, _ rhs: UnsafeRawPointer, _ count: Int) -> Bool {
    var index = 0
    while index + 8 <= count {
        if lhs.loadUnaligned(fromByteOffset: index, as: UInt64.self) != rhs.loadUnaligned(fromByteOffset: index, as: UInt64.self) {
            return false
        }
        index += 8
    }
    while index < count {
        if lhs.load(fromByteOffset: index, as: UInt8.self) != rhs.load(fromByteOffset: index, as: UInt8.self) { return false }
        index += 1
    }
    return true
}
