extension DStream where Element == InputRecord {
    /// The lowercased words of each record value (see ``WordTokenizer``), each with its record's
    /// event time. Values are read in place; a record whose value is not valid UTF-8, or has a word
    /// longer than ``WordTokenizer/maximumWordBytes``, yields no words and is reported in
    /// ``BatchOutput/malformed``.
    public func flatMapWords() -> DStream<String> {
        // Sized from the previous batch, so that a steady stream does not grow the table and the word list batch
        // after batch (each growth copies what was read so far).
        var expectedDistinctWords = 1024
        var expectedWords = 0
        // The words of the next batch's first blocks, read ahead of it (see ``StreamGraph/readAhead(_:nextBatchAfter:)``).
        var readAhead: WordsRead?
        if isGraphInput {
            graph.inputReadAhead = { block in
                if readAhead == nil { readAhead = WordsRead(expectedDistinctWords: expectedDistinctWords, expectedWords: expectedWords) }
                readAhead!.readAhead(&block)
            }
        }
        return deriveReading { [self] context in
            var words: WordBatch
            if isGraphInput, hasSingleConsumer {
                // The graph's input, read by this stream alone: records are decoded straight from the blocks, each
                // block is released as soon as its words are read, and runs of blocks are read in parallel, then
                // merged in block order (see ``WordBatch/append(_:)``), so the result is the same as one pass. Words
                // read ahead are those of the batch's first blocks, so the read goes on from there.
                // Only the reading holds the blocks (`blocks` and `runs` are moved out), so each is released once read.
                var blocks = context.takeBlocks()
                var first = blocks.isEmpty ? nil : readAhead.take()
                first?.takeBlocksReadAhead(from: &blocks)
                var runs = BlockTasks.split(consume blocks, into: graph.parallelism)
                var parts: [WordsRead]
                if var first, runs.count <= 1 {
                    first.read(runs.popLast() ?? [])
                    parts = [first]
                } else {
                    parts = (first.map { [$0] } ?? [])
                        + WordsRead.read(consume runs, expectedDistinctWords: expectedDistinctWords)
                }
                context.malformed += parts.flatMap(\.malformed)
                let wordCount = parts.reduce(0) { $0 + $1.words.wordCount }
                // Each part is moved out of the list before it is merged, so that no array of it is copied.
                parts.reverse()
                words = parts.popLast()?.words ?? WordBatch(expectedDistinctWords: 0)
                words.reserve(words: wordCount)
                while let part = parts.popLast() {
                    words.append(part.words)
                }
            } else {
                words = WordBatch(expectedDistinctWords: expectedDistinctWords)
                let records = elements(in: context)
                let values = records.decodedValues
                words.reserve(textBytes: values.reduce(0) { $0 + $1.withValueBytes { $0.count } })
                for (record, time) in zip(values, records.decodedTimes) {
                    if let reason = record.withValueBytes({ words.add(value: $0, at: time) }) {
                        context.malformed.append(MalformedRecord(record: record, reason: reason))
                    }
                }
            }
            expectedDistinctWords = max(1024, words.distinctCount)
            // An idle batch says nothing about the next busy one.
            if words.wordCount > 0 { expectedWords = words.wordCount }
            // Reading ahead for the next batch may go on meanwhile (nothing above is touched again in this batch).
            if isGraphInput, hasSingleConsumer { graph.inputWasRead?() }
            return words.elements
        }
    }
}

/// The words of consecutive blocks and the records among them found malformed: one run of a batch's blocks, or the
/// batch's first blocks read ahead of it.
private struct WordsRead: Sendable {
    var words: WordBatch
    var malformed: [MalformedRecord] = []
    /// The ranges of each block read ahead, in order: the batch must start with these blocks.
    private var blocksReadAhead: [[PartitionRange]] = []

    init(expectedDistinctWords: Int, expectedWords: Int = 0) {
        words = WordBatch(expectedDistinctWords: expectedDistinctWords)
        // Reserved pages cost no memory until words are written to them.
        words.reserve(words: expectedWords)
    }

    /// The words of each run of blocks, read on up to `runs.count` threads; each block is released once read.
    static func read(_ runs: consuming [[Block]], expectedDistinctWords: Int) -> [WordsRead] {
        BlockTasks.map(runs) { (blocks: consuming [Block]) in
            var part = WordsRead(expectedDistinctWords: expectedDistinctWords)
            part.read(blocks)
            return part
        }
    }

    /// Reads `blocks` in order, releasing each once read.
    mutating func read(_ blocks: consuming [Block]) {
        var blocks = consume blocks
        words.reserve(textBytes: blocks.reduce(0) { $0 + $1.bytes.count })
        blocks.reverse()
        while let block = blocks.popLast() {
            add(block)
        }
    }

    /// Reads `block` ahead of its batch and leaves it without its records.
    mutating func readAhead(_ block: inout Block) {
        words.reserve(textBytes: block.bytes.count)
        add(block)
        blocksReadAhead.append(block.ranges)
        block = block.droppingRecords()
    }

    /// Removes the blocks read ahead from the front of a batch's blocks, which must start with them.
    mutating func takeBlocksReadAhead(from blocks: inout [Block]) {
        let count = blocksReadAhead.count
        precondition(
            blocks.count >= count && zip(blocks, blocksReadAhead).allSatisfy { $0.recordsWereReadAhead && $0.ranges == $1 },
            "a batch must start with the blocks whose records were read ahead of it")
        blocks.removeFirst(count)
        blocksReadAhead = []
    }

    /// Reads the values in place: an ``InputRecord`` (which holds the block's bytes and topic) is made only for a
    /// malformed record.
    private mutating func add(_ block: Block) {
        block.bytes.withUnsafeBytes { raw in
            block.forEachLayout(in: raw) { layout in
                if let reason = words.add(value: UnsafeRawBufferPointer(rebasing: raw[layout.value]), at: layout.timestamp) {
                    malformed.append(MalformedRecord(record: InputRecord(in: block, at: layout), reason: reason))
                }
            }
        }
    }
}

/// The words of one batch: interned on their bytes (one String per distinct word), kept as ids into
/// the distinct words, with each record's time stored once for all its words.
private struct WordBatch: Sendable {
    private var interner: WordInterner
    private var ids: [Int32] = []
    private var runTimes: [Int64] = []
    private var runEnds: [Int32] = []

    init(expectedDistinctWords: Int) {
        interner = WordInterner(capacity: expectedDistinctWords)
    }

    var distinctCount: Int { interner.count }

    /// The batch as dictionary-encoded elements.
    var elements: Elements<String> {
        Elements(dictionary: interner.words, ids: ids, times: EventTimes(runs: runTimes, ends: runEnds), isDistinct: true)
    }

    /// The number of words (with repeats).
    var wordCount: Int { ids.count }

    /// Reserves room for the words of about `textBytes` more bytes of text.
    mutating func reserve(textBytes: Int) {
        // About one word per 4 bytes of text is a generous guess; untouched reserved pages cost no memory.
        reserve(words: ids.count + textBytes / 4)
    }

    /// Reserves room for `words` words in all, at least doubling the room when it grows (blocks read ahead one by
    /// one add their words in steps).
    mutating func reserve(words: Int) {
        guard words > ids.capacity else { return }
        ids.reserveCapacity(max(words, ids.isEmpty ? 0 : 2 * ids.capacity))
    }

    /// Appends the words of `other`, read from the input after this batch's, as if they had been added here: each
    /// new distinct word gets the next id in `other`'s first-seen order, so ids, elements and times are those of one
    /// pass over both.
    mutating func append(_ other: WordBatch) {
        let newIDs = other.interner.words.map { word in
            var word = word
            return word.withUTF8 { interner.id(of: UnsafeRawBufferPointer($0)) }
        }
        let offset = Int32(ids.count)
        for id in other.ids {
            ids.append(newIDs[Int(id)])
        }
        for (time, end) in zip(other.runTimes, other.runEnds) {
            if runTimes.last == time {
                runEnds[runEnds.count - 1] = end + offset
            } else {
                runTimes.append(time)
                runEnds.append(end + offset)
            }
        }
    }

    /// Adds the words of a record's `value`, or none of them and returns why it is malformed.
    mutating func add(value: UnsafeRawBufferPointer, at time: Int64) -> MalformedRecord.Reason? {
        if let reason = interner.appendIDs(ofWordsIn: value, to: &ids) { return reason }
        if ids.count > Int(runEnds.last ?? 0) {
            if runTimes.last == time {
                runEnds[runEnds.count - 1] = Int32(ids.count)
            } else {
                runTimes.append(time)
                runEnds.append(Int32(ids.count))
            }
        }
        return nil
    }
}
