import Dispatch
import Foundation
import Storage
@testable import Streaming
import Synchronization
import Testing

/// Probes read the tracker's state while storage hangs: the backlog, the log's size and the stall itself are
/// answered at once while a log sync has not returned, and the stall is reported with its reason once it is longer
/// than the limit (a `/healthz` that waited on the log's lock would hang with the disk it should report).
@Suite struct StorageStallTests {
    /// A log whose sync blocks until released, as on a hung disk; appends then block too, as the log's own
    /// appends wait for the lock its sync holds.
    final class HungLog: BlockLog {
        let logID: UInt64 = 9
        let release = DispatchSemaphore(value: 0)
        let syncing = DispatchSemaphore(value: 0)
        let appendsBlock = Atomic<Bool>(false)
        let appending = DispatchSemaphore(value: 0)
        let appendRelease = DispatchSemaphore(value: 0)

        func append(_ record: WALRecord) throws -> (position: WALPosition, bytes: Int) {
            if appendsBlock.load(ordering: .acquiring) {
                appending.signal()
                appendRelease.wait()
            }
            return (WALPosition(segment: 1, offset: 1), 1)
        }

        func sync() throws {
            syncing.signal()
            release.wait()
        }

        func truncate(before position: WALPosition) throws -> Int { 0 }
        var bytesOnDisk: Int { 4096 }
        func close() {}
    }

    @Test func aHungSyncIsReportedWithoutWaitingForIt() throws {
        let log = HungLog()
        let tracker = ReceivedBlockTracker(log: log, metrics: StreamingMetrics())
        try tracker.add(StreamingRecordsTests.block(0..<3))
        let done = DispatchSemaphore(value: 0)
        Thread { _ = try? tracker.syncLog(); done.signal() }.start()
        log.syncing.wait()
        // The receiver's next block is stuck in its append (holding the tracker's lock, as it does around it).
        log.appendsBlock.store(true, ordering: .releasing)
        Thread { _ = try? tracker.add(StreamingRecordsTests.block(3..<6)) }.start()
        log.appending.wait()
        // The probes' reads, on a thread of their own so that a read that waits fails the test instead of hanging it.
        let answers = Mutex<(backlog: Int, logBytes: Int?, stall: String?)?>(nil)
        let answered = DispatchSemaphore(value: 0)
        Thread {
            answers.withLock { $0 = (tracker.backlogBytes, tracker.logBytesOnDisk, tracker.stalledSync(after: .milliseconds(300))) }
            answered.signal()
        }.start()
        #expect(answered.wait(timeout: .now() + .milliseconds(500)) == .success, "the probes' reads waited for storage")
        let read = answers.withLock { $0 }
        #expect(read?.backlog ?? 0 > 0)
        #expect(read?.logBytes == 4096)
        #expect(read.map { $0.stall == nil } == true)
        Thread.sleep(forTimeInterval: 0.4)
        let reason = tracker.stalledSync(after: .milliseconds(300))
        #expect(reason?.contains("write-ahead log sync has not returned") == true, "\(reason ?? "nil")")
        log.release.signal()
        log.appendRelease.signal()
        done.wait()
        #expect(tracker.stalledSync(after: .milliseconds(300)) == nil)
    }
}
