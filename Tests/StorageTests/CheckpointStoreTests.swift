import Storage
import Testing

@Suite struct CheckpointStoreTests {
    @Test func writeThenLoadRoundTrips() throws {
        try withTemporaryDirectory { directory in
            let store = try CheckpointStore(directory: directory + "/checkpoints")
            #expect(try store.loadLatest() == nil)
            let payload: [UInt8] = Array(0...255)
            try store.write(payload, sequence: 7)
            let loaded = try #require(try store.loadLatest())
            #expect(loaded.sequence == 7)
            #expect(loaded.payload == payload)
            #expect(loaded.skipped.isEmpty)
            #expect(try fileNames(in: store.directory) == ["checkpoint-00000000000000000007.ckp"])
            #expect(try fileSize(checkpointPath(store.directory, 7)) == 22 + 256)

            try store.write([], sequence: 7)
            #expect(try store.loadLatest()?.payload == [])
        }
    }

    @Test func retainKeepsNewestAndRemovesTemporaryFiles() throws {
        try withTemporaryDirectory { directory in
            try writeBytes(directory + "/checkpoint-00000000000000000099.tmp", [1, 2, 3])
            let store = try CheckpointStore(directory: directory)
            for sequence in 1...5 as ClosedRange<UInt64> {
                try store.write([UInt8(sequence)], sequence: sequence)
            }
            #expect(try fileNames(in: directory) == [
                "checkpoint-00000000000000000004.ckp",
                "checkpoint-00000000000000000005.ckp",
            ])
            let loaded = try #require(try store.loadLatest())
            #expect(loaded.sequence == 5)
            #expect(loaded.payload == [5])

            let keepThree = try CheckpointStore(directory: directory, options: .init(retain: 3))
            try keepThree.write([6], sequence: 6)
            try keepThree.write([7], sequence: 7)
            #expect(try fileNames(in: directory).count == 3)
        }
    }

    enum Damage: CaseIterable, Sendable {
        case empty, truncatedHeader, truncatedPayload, flippedPayloadByte, flippedSequenceByte, flippedMagic
    }

    @Test(arguments: Damage.allCases)
    func damagedNewestFallsBackToPrevious(damage: Damage) throws {
        try withTemporaryDirectory { directory in
            let store = try CheckpointStore(directory: directory)
            try store.write([1, 1, 1], sequence: 1)
            try store.write(Array(repeating: 2, count: 100), sequence: 2)
            let newest = checkpointPath(directory, 2)
            switch damage {
            case .empty: try truncateFile(newest, to: 0)
            case .truncatedHeader: try truncateFile(newest, to: 10)
            case .truncatedPayload: try truncateFile(newest, to: 22 + 50)
            case .flippedPayloadByte: try flipByte(newest, at: 22 + 99)
            case .flippedSequenceByte: try flipByte(newest, at: 6)
            case .flippedMagic: try flipByte(newest, at: 0)
            }

            let loaded = try #require(try store.loadLatest())
            #expect(loaded.sequence == 1)
            #expect(loaded.payload == [1, 1, 1])
            #expect(loaded.skipped == [newest])
        }
    }

    @Test func allCheckpointsCorruptThrows() throws {
        try withTemporaryDirectory { directory in
            let store = try CheckpointStore(directory: directory)
            try store.write([1], sequence: 1)
            try store.write([2], sequence: 2)
            try flipByte(checkpointPath(directory, 1), at: 22)
            try truncateFile(checkpointPath(directory, 2), to: 3)

            let error = try #require(throws: StorageError.self) {
                try store.loadLatest()
            }
            #expect(error.code == .noValidCheckpoint)
            #expect(error.path == directory)
            #expect(error.description == """
                no valid checkpoint in \(directory): 2 checkpoint file(s) exist but none is intact \
                (checkpoint-00000000000000000002.ckp: truncated header (3 bytes); \
                checkpoint-00000000000000000001.ckp: payload checksum mismatch)
                """)
        }
    }

    @Test func directoryWithoutCheckpointsLoadsNil() throws {
        try withTemporaryDirectory { directory in
            try writeBytes(directory + "/checkpoint-00000000000000000001.tmp", [1])
            try writeBytes(directory + "/unrelated.txt", [1])
            let store = try CheckpointStore(directory: directory)
            #expect(try store.loadLatest() == nil)
        }
    }

    @Test func notWritableDirectoryIsRejected() throws {
        try withTemporaryDirectory { directory in
            let file = directory + "/regular-file"
            try writeBytes(file, [1])
            let error = try #require(throws: StorageError.self) {
                try CheckpointStore(directory: file + "/checkpoints")
            }
            #expect(error.code == .notWritable)
            #expect(error.description.contains(file + "/checkpoints"))
        }
    }
}
