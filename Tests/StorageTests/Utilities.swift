import Foundation
import Glibc
import SampleData
import Testing

/// Runs `body` with the path of a fresh, empty temporary directory that is removed afterwards.
func withTemporaryDirectory<Result>(_ body: (String) throws -> Result) throws -> Result {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("storage-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// Returns `count` payloads of deterministic random bytes, mostly small, some empty and some up to 20 KB.
func makePayloads(count: Int, seed: UInt64 = 42, maxSize: Int = 20_000) -> [[UInt8]] {
    var generator = SplitMix64(seed: seed)
    return (0..<count).map { _ in
        let size: Int
        switch Int.random(in: 0..<10, using: &generator) {
        case 0: size = 0
        case 1: size = Int.random(in: 0...maxSize, using: &generator)
        default: size = Int.random(in: 1...600, using: &generator)
        }
        return (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}

/// The names of the regular files in `directory`, sorted.
func fileNames(in directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
}

/// The size of the file at `path` in bytes.
func fileSize(_ path: String) throws -> UInt64 {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return try #require(attributes[.size] as? UInt64)
}

/// Reads the whole file at `path`.
func readBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// Replaces the contents of the file at `path`.
func writeBytes(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Inverts every bit of the byte at `offset` in the file at `path`.
func flipByte(_ path: String, at offset: Int) throws {
    var bytes = try readBytes(path)
    bytes[offset] ^= 0xFF
    try writeBytes(path, bytes)
}

/// Cuts the file at `path` to `length` bytes.
func truncateFile(_ path: String, to length: UInt64) throws {
    try #require(Glibc.truncate(path, off_t(length)) == 0)
}

/// The path of WAL segment `number` in `directory`.
func segmentPath(_ directory: String, _ number: UInt64) -> String {
    directory + "/" + String(format: "%020llu.wal", number)
}

/// The path of checkpoint `sequence` in `directory`.
func checkpointPath(_ directory: String, _ sequence: UInt64) -> String {
    directory + "/" + String(format: "checkpoint-%020llu.ckp", sequence)
}
