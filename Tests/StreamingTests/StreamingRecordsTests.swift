import Foundation
import KafkaIO
import Storage
import StreamEngine
import Testing

@testable import Streaming

@Suite struct StreamingRecordsTests {
    static func block(_ offsets: Range<Int64>, partition: Int32 = 0) -> Block {
        var builder = BlockBuilder(reservingCapacity: 1024)
        for offset in offsets {
            let value = Array("record \(offset)".utf8)
            value.withUnsafeBytes { builder.append(topic: "lines", partition: partition, offset: offset, timestamp: 1000 + offset, key: nil, value: $0) }
        }
        return builder.finish()
    }

    @Test func walRecordsRoundTripThroughTheLog() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let written: [WALRecord] = [.block(Self.block(10..<20)), .batchAllocated(time: 1_795_555_272_000), .block(Self.block(20..<21))]
        let (log, _) = try WriteAheadLog.open(directory: directory)
        let appended = try written.map { try $0.append(to: log) }
        log.close()
        let (_, recovery) = try WriteAheadLog.open(directory: directory)
        #expect(try recovery.entries.map { try WALRecord(decoding: $0.payload, at: $0.position) } == written)
        #expect(recovery.entries.map(\.position) == appended.map(\.position))
        #expect(recovery.entries.map(\.payload.count) == appended.map(\.bytes))
    }

    @Test func unknownOrDamagedWALRecordsAreClearErrors() {
        let position = WALPosition(segment: 3, offset: 4096)
        for bytes: [UInt8] in [[], [9, 1, 2], [2, 1, 2, 3], [1, 0xff, 0xff]] {
            let error = #expect(throws: StreamingError.self) { try WALRecord(decoding: bytes, at: position) }
            #expect(error?.code == .corruptLog)
            #expect(error?.description.contains("\(position)") == true)
        }
    }

    @Test func driverCheckpointsRoundTripAndRefuseUnknownVersions() throws {
        let offsets: [KafkaPartition: Int64] = [KafkaPartition(topic: "lines", partition: 0): 17, KafkaPartition(topic: "other", partition: 3): 5]
        for log: LogCoverage in [.none, .covered(logID: 0xDEAD_BEEF_0000_0001, through: WALPosition(segment: 7, offset: 123)), .retired(logID: 9)] {
            let checkpoint = DriverCheckpoint(
                batchTime: 42_000, log: log, offsets: offsets, settings: ["SLUICE_WINDOW_MS": "60000"], graphState: [1, 2, 3, 250])
            #expect(try DriverCheckpoint(decoding: checkpoint.encoded) == checkpoint)
        }
        let checkpoint = DriverCheckpoint(batchTime: 1, log: .none, offsets: offsets, settings: [:], graphState: [])
        var future = checkpoint.encoded
        future[0] = 3
        let error = #expect(throws: StreamingError.self) { try DriverCheckpoint(decoding: future) }
        #expect(error?.code == .unsupportedVersion)
        let truncated = Array(checkpoint.encoded.prefix(6))
        #expect((#expect(throws: StreamingError.self) { try DriverCheckpoint(decoding: truncated) })?.code == .corruptLog)
    }

    /// Version 1 had no log identity (its logs are identity 0) and no settings.
    @Test func versionOneCheckpointsAreRead() throws {
        var writer = StateWriter()
        writer.writeUnsigned(1)
        writer.writeSigned(5_000)
        writer.writeUnsigned(1)
        writer.writeFixed64(2)
        writer.writeFixed64(64)
        writer.writeUnsigned(1)
        writer.writeString("lines")
        writer.writeSigned(0)
        writer.writeSigned(10)
        writer.writeBytes([7])
        #expect(try DriverCheckpoint(decoding: writer.bytes) == DriverCheckpoint(
            batchTime: 5_000, log: .covered(logID: 0, through: WALPosition(segment: 2, offset: 64)),
            offsets: [KafkaPartition(topic: "lines", partition: 0): 10], settings: [:], graphState: [7]))
    }

    @Test func batchAllocationsAreLoggedAfterTheirBlocks() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (log, _) = try WriteAheadLog.open(directory: directory)
        let tracker = ReceivedBlockTracker(log: log, metrics: StreamingMetrics())
        let first = Self.block(0..<5)
        let second = Self.block(5..<9)
        let assigned = [TopicPartition(topic: "lines", partition: 3)]
        try tracker.add(first)
        try tracker.noteAssignment(assigned)
        try tracker.add(second)
        #expect(tracker.backlogBytes == first.bytes.count + second.bytes.count)
        let allocation = try tracker.allocateBatch(time: 1000)
        #expect(allocation.blocks == [first, second] && allocation.assigned == assigned)
        #expect(tracker.backlogBytes == 0)
        // An empty batch writes nothing, so an idle service does not grow its log.
        let empty = try tracker.allocateBatch(time: 2000)
        #expect(empty.blocks.isEmpty && empty.assigned.isEmpty && empty.position == nil)
        log.close()

        let (_, recovery) = try WriteAheadLog.open(directory: directory)
        let records = try recovery.entries.map { try WALRecord(decoding: $0.payload, at: $0.position) }
        #expect(records == [.block(first), .partitionsAssigned(assigned), .block(second), .batchAllocated(time: 1000)])
        #expect(recovery.entries[3].position == allocation.position)
    }

    /// The backpressure bound counts the input in memory: the backlog and a running batch's blocks until it drops them.
    @Test func heldBytesCountBlocksUntilTheirLastCopyIsDropped() throws {
        let tracker = ReceivedBlockTracker(log: nil, metrics: StreamingMetrics())
        let first = Self.block(0..<5)
        let second = Self.block(5..<9)
        try tracker.add(first)
        try tracker.add(second)
        let bytes = first.bytes.count + second.bytes.count
        #expect(tracker.heldBytes == bytes && tracker.backlogBytes == bytes)
        var allocation = try tracker.allocateBatch(time: 1000)
        #expect(tracker.backlogBytes == 0 && tracker.heldBytes == bytes)
        var blocks = allocation.takeBlocks()
        #expect(allocation.blocks.isEmpty && tracker.heldBytes == bytes)
        _ = blocks.popLast()
        #expect(tracker.heldBytes == first.bytes.count)
        blocks = []
        #expect(tracker.heldBytes == 0)
    }

    /// Each queued block is offered to a read ahead once, keeps its place in the next batch, and stays counted as held
    /// input until the batch drops it.
    @Test func blocksAreOfferedToReadAheadOnceEachAndKeepTheirPlace() throws {
        let tracker = ReceivedBlockTracker(log: nil, metrics: StreamingMetrics())
        let graph = StreamGraph()
        try WordCountJob.build(on: graph, configuration: .init())
        let blocks = [Self.block(0..<5), Self.block(5..<9), Self.block(9..<12), Self.block(12..<14)]
        let bytes = blocks.map(\.bytes.count)
        var offered: [[PartitionRange]] = []
        func readAhead() -> Bool {
            tracker.readAhead { block in
                offered.append(block.ranges)
                #expect(graph.readAhead(&block, nextBatchAfter: 0))
            }
        }
        try tracker.add(blocks[0])
        try tracker.add(blocks[1])
        #expect(readAhead() && readAhead() && !readAhead())
        try tracker.add(blocks[2])
        #expect(readAhead() && !readAhead())
        #expect(offered == blocks.prefix(3).map(\.ranges))
        #expect(tracker.heldBytes == bytes[0] + bytes[1] + bytes[2] && tracker.backlogBytes == tracker.heldBytes)
        var allocation = try tracker.allocateBatch(time: 1000)
        #expect(allocation.blocks.map(\.ranges) == blocks.prefix(3).map(\.ranges))
        #expect(allocation.blocks.allSatisfy { $0.bytes.isEmpty && $0.recordCount > 0 })
        let output = graph.runBatch(time: 1000, blocks: allocation.takeBlocks())
        #expect(output.recordsIn == 12 && output.recordsOut > 0)
        #expect(tracker.heldBytes == 0)
        // The next batch's blocks are offered from its first.
        try tracker.add(blocks[3])
        #expect(readAhead() && offered.last == blocks[3].ranges)
    }
}

/// A fresh directory path under the system's temporary directory.
func temporaryDirectory() -> String {
    NSTemporaryDirectory() + "sluice-streaming-" + UUID().uuidString.prefix(8)
}
