import KafkaIO
import Storage
import StreamEngine
import Testing

@testable import Streaming

/// The pure recovery rules: which log entries a checkpoint covers, and refusing a checkpoint of another log.
@Suite struct RecoveryPlanTests {
    let logID: UInt64 = 0xABCD
    let first = StreamingRecordsTests.block(0..<5)
    let second = StreamingRecordsTests.block(5..<8)
    let trailing = StreamingRecordsTests.block(8..<10)

    func position(_ offset: UInt64) -> WALPosition { WALPosition(segment: 1, offset: offset) }

    /// block(0..<5), batch 1000, block(5..<8), batch 2000, block(8..<10).
    var log: RecoveryPlan.RecoveredLog {
        .init(logID: logID, records: [
            (position(16), .block(first)), (position(100), .batchAllocated(time: 1000)),
            (position(120), .block(second)), (position(200), .batchAllocated(time: 2000)), (position(220), .block(trailing)),
        ])
    }

    func checkpoint(_ log: LogCoverage, offset: Int64 = 5) -> DriverCheckpoint {
        DriverCheckpoint(batchTime: 1000, log: log, offsets: [KafkaPartition(topic: "lines", partition: 0): offset], settings: [:], graphState: [])
    }

    @Test func entriesAfterTheCheckpointAreReplayedAsTheirBatches() throws {
        let plan = try RecoveryPlan(checkpoint: checkpoint(.covered(logID: logID, through: position(100))), log: log)
        #expect(plan.replay == [.init(time: 2000, blocks: [second], position: position(200))])
        #expect(plan.trailingBlocks == [trailing])
        #expect(plan.knownOffsets == [KafkaPartition(topic: "lines", partition: 0): 10])
        #expect(plan.coverage == .covered(logID: logID, through: position(100)))
        #expect(plan.logEnd == position(220))
    }

    @Test func withoutACheckpointTheWholeLogIsReplayed() throws {
        let plan = try RecoveryPlan(checkpoint: nil, log: log)
        #expect(plan.replay.map(\.time) == [1000, 2000])
        #expect(plan.trailingBlocks == [trailing])
        #expect(plan.coverage == .none)
    }

    /// Bug: WAL on -> off -> on. The WAL-off run deleted the log; the new log reuses segment 1 and its positions.
    /// A checkpoint that still named a position (without the log's identity) skipped the new log's entries at or
    /// below it, although their offsets were committed.
    @Test func aCheckpointOfAnotherLogIsRefusedNeverAppliedByPosition() throws {
        let stale = checkpoint(.covered(logID: 0x1111, through: position(200)))
        let error = #expect(throws: StreamingError.self) { try RecoveryPlan(checkpoint: stale, log: log) }
        #expect(error?.code == .logMismatch)
        #expect(error?.description.contains("log \(logID)") == true)
        let gone = #expect(throws: StreamingError.self) { try RecoveryPlan(checkpoint: stale, log: nil) }
        #expect(gone?.code == .logMismatch)
    }

    /// A log that a run with the log off consumed (and retired in its checkpoint) is never replayed again, even
    /// if a crash kept it on disk; a new log after it is replayed whole.
    @Test func aRetiredLogIsNotReplayedAndALaterLogIs() throws {
        let retired = try RecoveryPlan(checkpoint: checkpoint(.retired(logID: logID), offset: 10), log: log)
        #expect(retired.replay.isEmpty && retired.trailingBlocks.isEmpty)
        #expect(retired.coverage == .covered(logID: logID, through: position(220)))
        let later = try RecoveryPlan(checkpoint: checkpoint(.retired(logID: 0x2222), offset: 0), log: log)
        #expect(later.replay.map(\.time) == [1000, 2000])
        #expect(later.coverage == .none)
        #expect(try RecoveryPlan(checkpoint: checkpoint(.retired(logID: logID)), log: nil).replay.isEmpty)
    }
}
