import Foundation
import Synchronization
import Testing

@testable import Streaming

/// The worker reads only between `start` and the return of `stop`, for the batch time it was started with.
@Suite struct ReadAheadWorkerTests {
    /// What the worker's reads saw: the batch times, and reads that were still going on once `stop` had returned.
    final class Reads: Sendable {
        let times = Mutex<[Int64]>([])
        let stopReturned = Atomic<Bool>(false)
        let lateReads = Atomic<Int>(0)

        /// A read that takes a few milliseconds, so that a stop comes in the middle of one.
        func read(_ time: Int64) -> Bool {
            Thread.sleep(forTimeInterval: 0.003)
            times.withLock { $0.append(time) }
            if stopReturned.load(ordering: .sequentiallyConsistent) { lateReads.add(1, ordering: .sequentiallyConsistent) }
            return true
        }

        var count: Int { times.withLock(\.count) }
    }

    @Test func readsOnlyBetweenStartAndStopForTheBatchItWasStartedFor() {
        let reads = Reads()
        let worker = ReadAheadWorker(readBlock: reads.read, waitForBlock: {})
        defer { worker.finish() }
        worker.stop(wake: {})  // never started: returns at once
        #expect(reads.count == 0)
        for batchTime: Int64 in [7, 8] {
            reads.stopReturned.store(false, ordering: .sequentiallyConsistent)
            let before = reads.count
            worker.start(nextBatchAfter: batchTime)
            worker.start(nextBatchAfter: batchTime + 100)  // changes nothing: the worker reads for the first
            let deadline = ContinuousClock.now + .seconds(10)
            while reads.count < before + 5, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.001) }
            worker.stop(wake: {})
            reads.stopReturned.store(true, ordering: .sequentiallyConsistent)
            let stoppedAt = reads.count
            Thread.sleep(forTimeInterval: 0.02)
            #expect(reads.count == stoppedAt, "no read after stop returned")
            #expect(reads.times.withLock { $0[before...].allSatisfy { $0 == batchTime } })
        }
        #expect(reads.lateReads.load(ordering: .sequentiallyConsistent) == 0)
    }
}
