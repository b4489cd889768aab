import Foundation
import SampleData
import Storage
import StreamEngine

// Micro-benchmarks of the hot path, so regressions show: tokenize + count, WAL append + sync, and checkpoint.
// Run in release (`make bench`); each figure is the median of five runs. Usage: sluice-microbench [LINES]

let lineCount = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 200_000

/// The median of five timed runs of `body`, in seconds.
func median(_ body: () throws -> Void) rethrows -> Double {
    var samples: [Double] = []
    for _ in 0..<5 {
        let start = ContinuousClock.now
        try body()
        let elapsed = ContinuousClock.now - start
        samples.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
    return samples.sorted()[2]
}

/// Deterministic lines of 8 to 12 words over a 50,000-word vocabulary, skewed toward common words, in blocks,
/// and their text back to back with each line's end.
func makeBlocks(lines: Int, perBlock: Int) -> (blocks: [Block], words: Int, text: [UInt8], lineEnds: [Int]) {
    var generator = SplitMix64(seed: 42)
    func next() -> UInt64 { generator.next() }
    var builder = BlockBuilder(reservingCapacity: 1 << 20)
    var blocks: [Block] = []
    var words = 0
    var text: [UInt8] = []
    var lineEnds: [Int] = []
    for index in 0..<lines {
        let count = 8 + Int(next() % 5)
        var line = ""
        for position in 0..<count {
            let uniform = Double(next() >> 11) / Double(1 << 53)
            let rank = Int(uniform * uniform * uniform * 50_000)
            line += (position == 0 ? "" : " ") + (rank % 7 == 0 ? "Word\(rank)" : "word\(rank)")
        }
        words += count
        let start = text.count
        text.append(contentsOf: line.utf8)
        lineEnds.append(text.count)
        text.withUnsafeBytes { text in
            builder.append(
                topic: "lines", partition: Int32(index % 16), offset: Int64(index / 16), timestamp: 1_700_000_000_000 + Int64(index),
                key: nil, value: UnsafeRawBufferPointer(rebasing: text[start...]))
        }
        if builder.recordCount == perBlock { blocks.append(builder.finish()) }
    }
    if !builder.isEmpty { blocks.append(builder.finish()) }
    return (blocks, words, text, lineEnds)
}

let (blocks, words, text, lineEnds) = makeBlocks(lines: lineCount, perBlock: 10_000)
let bytes = blocks.reduce(0) { $0 + $1.bytes.count }
print("input: \(lineCount) lines, \(words) words, \(bytes >> 20) MiB in \(blocks.count) blocks")

var ids: [Int32] = []
let read = median {
    var interner = WordInterner()
    ids = []
    ids.reserveCapacity(words)
    text.withUnsafeBytes { text in
        var start = 0
        for end in lineEnds {
            _ = interner.appendIDs(ofWordsIn: UnsafeRawBufferPointer(rebasing: text[start..<end]), to: &ids)
            start = end
        }
    }
}
print(String(format: "read words (tokenize + intern): %.3f s, %.1f ns per word", read, read * 1e9 / Double(ids.count)))

var graph = StreamGraph()
let count = try median {
    graph = StreamGraph()
    try WordCountJob.build(on: graph, configuration: .init())
    for (index, batch) in stride(from: 0, to: blocks.count, by: 5).enumerated() {
        _ = graph.runBatch(time: Int64(index) * 1000, blocks: Array(blocks[batch..<min(batch + 5, blocks.count)]))
    }
    _ = graph.flushWindows()
}
print(String(format: "tokenize + count (word-count job): %.3f s, %.2f M words/s", count, Double(words) / count / 1e6))

var crc: UInt32 = 0
let checksum = median {
    for block in blocks {
        crc ^= block.bytes.withUnsafeBytes { CRC32C.checksum($0) }
    }
}
print(String(format: "CRC32C of every block: %.3f s, %.1f GiB/s (checksum %08x)", checksum, Double(bytes) / checksum / 1_073_741_824, crc))

let directory = NSTemporaryDirectory() + "sluice-microbench-\(getpid())"
defer { try? FileManager.default.removeItem(atPath: directory) }
let wal = try median {
    try? FileManager.default.removeItem(atPath: directory + "/wal")
    let (log, _) = try WriteAheadLog.open(directory: directory + "/wal")
    for block in blocks {
        _ = try log.append(block.bytes)
        try log.sync()
    }
    log.close()
}
print(String(format: "WAL append + sync per block: %.3f s, %.0f MiB/s, %.2f ms per block", wal, Double(bytes) / wal / 1_048_576, wal * 1000 / Double(blocks.count)))

var state: [UInt8] = []
let serialize = median { state = graph.checkpoint() }
let store = try CheckpointStore(directory: directory + "/checkpoints")
var sequence: UInt64 = 0
let write = try median {
    sequence += 1
    try store.write(state, sequence: sequence)
}
print(String(format: "checkpoint: serialize %.2f ms, atomic write %.2f ms, %d KiB of state", serialize * 1000, write * 1000, state.count >> 10))
