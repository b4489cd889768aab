/// Maps word bytes to small dense ids, creating one `String` per distinct word.
///
/// An open-addressing hash table over the raw bytes: looking up a word seen before costs a few
/// loads, multiplies and compares, with no `String` created or hashed. The table holds only
/// 4-byte ids, so it stays small in cache; per-id entries are dense in first-seen order (frequent
/// words come first). Words of up to 16 bytes are kept zero-padded in their entry and compared
/// as two machine words; longer words are compared against a byte arena.
struct WordInterner {
    private struct Entry {
        /// Short words: the zero-padded bytes. Long words: the hash, and 0.
        var first: UInt64
        var second: UInt64
        var length: Int
    }

    /// The distinct words, by id.
    private(set) var words: [String] = []
    /// The bytes of every long distinct word, concatenated; keyed by id in `longStarts`.
    private var arena: [UInt8] = []
    private var longStarts: [Int: Int] = [:]
    private var hashes: [UInt64] = []
    private var entries: [Entry] = []
    /// Slot -> id + 1 (0: empty); the count is a power of two, kept at most half full.
    private var slots: [UInt32]

    init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [UInt32](repeating: 0, count: size)
    }

    var count: Int { words.count }

    /// The id of `word`, adding it if new.
    mutating func id(of word: UnsafeRawBufferPointer) -> Int32 {
        let length = word.count
        var first: UInt64 = 0
        var second: UInt64 = 0
        let hash: UInt64
        if length <= 16 {
            (first, second) = Self.paddedWords(word)
            hash = Self.mix((first &* 0x9E37_79B9_7F4A_7C15) ^ ((second &+ UInt64(length)) &* 0xC2B2_AE3D_27D4_EB4F))
        } else {
            hash = Self.longHash(word)
            first = hash
        }
        let mask = slots.count - 1
        var index = Int(truncatingIfNeeded: hash) & mask
        while true {
            let stored = Int(slots[index])
            if stored == 0 { break }
            let id = stored - 1
            let entry = entries[id]
            if entry.first == first, entry.second == second, entry.length == length,
               length <= 16 || longMatches(id, word) {
                return Int32(id)
            }
            index = (index + 1) & mask
        }
        return insert(word, first: first, second: second, hash: hash)
    }

    private mutating func insert(_ word: UnsafeRawBufferPointer, first: UInt64, second: UInt64, hash: UInt64) -> Int32 {
        let id = words.count
        words.append(String(decoding: word, as: UTF8.self))
        hashes.append(hash)
        if word.count > 16 {
            longStarts[id] = arena.count
            arena.append(contentsOf: word)
        }
        entries.append(Entry(first: first, second: second, length: word.count))
        place(UInt32(id + 1), hash: hash, in: &slots)
        if words.count * 2 > slots.count { grow() }
        return Int32(id)
    }

    private func place(_ slot: UInt32, hash: UInt64, in table: inout [UInt32]) {
        let mask = table.count - 1
        var index = Int(truncatingIfNeeded: hash) & mask
        while table[index] != 0 { index = (index + 1) & mask }
        table[index] = slot
    }

    private mutating func grow() {
        var larger = [UInt32](repeating: 0, count: slots.count * 2)
        for id in hashes.indices {
            place(UInt32(id + 1), hash: hashes[id], in: &larger)
        }
        slots = larger
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
        var value: UInt64 = 0
        for index in 0..<count {
            value |= UInt64(word[index]) << UInt64(index * 8)
        }
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
