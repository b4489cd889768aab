import KafkaIO
import Testing

@testable import Streaming

/// The receiver's and the batch loop's state machines, driven without threads or Kafka.
@Suite struct StateMachineTests {
    typealias Observation = BatchSchedule.Observation

    /// Checkpoints take at most a tenth of the time: after a write of 500 ms the next waits 4.5 s.
    @Test func aSlowCheckpointDelaysTheNextOneWithinItsCostBound() {
        let end = ContinuousClock.now
        let lastWrite = (duration: Duration.milliseconds(500), end: end)
        #expect(Checkpointer.costAllows(nil, now: end))
        #expect(!Checkpointer.costAllows(lastWrite, now: end + .milliseconds(4_400)))
        #expect(Checkpointer.costAllows(lastWrite, now: end + .milliseconds(4_500)))
        #expect(Checkpointer.costAllows((duration: .milliseconds(2), end: end), now: end + .milliseconds(20)))
    }

    @Test func batchesRunOnIntervalBoundariesAndNeverGoBack() {
        var schedule = BatchSchedule(interval: 1_000, lastBatchTime: 0, now: 10_400, stopsAtEnd: false)
        #expect(schedule.next(now: 10_400, observed: Observation()) == .wait(milliseconds: 600))
        #expect(schedule.next(now: 11_000, observed: Observation()) == .runBatch(time: 11_000))
        // The batch took 2.5 intervals: the next one runs at once, and the one after it catches up with the clock
        // instead of running every missed boundary.
        #expect(schedule.next(now: 13_500, observed: Observation()) == .wait(milliseconds: 0))
        #expect(schedule.next(now: 13_500, observed: Observation()) == .runBatch(time: 12_000))
        // The wall clock steps back: batch times still only move forward, and a wait is at most one interval.
        #expect(schedule.next(now: 5_000, observed: Observation()) == .wait(milliseconds: 1_000))
        #expect(schedule.next(now: 6_000, observed: Observation()) == .runBatch(time: 13_000))
        #expect(schedule.next(now: 6_000, observed: Observation()) == .wait(milliseconds: 1_000))
        #expect(schedule.next(now: 7_000, observed: Observation()) == .runBatch(time: 14_000))
    }

    /// A full backlog waits for no boundary: the batch runs at once at the current time, batch times stay strictly
    /// increasing, and the boundary batch follows as usual.
    @Test func aFullBacklogStartsTheBatchAtOnce() {
        var schedule = BatchSchedule(interval: 1_000, lastBatchTime: 0, now: 10_400, stopsAtEnd: false)
        let full = Observation(isBacklogFull: true)
        #expect(schedule.next(now: 10_400, observed: Observation()) == .wait(milliseconds: 600))
        // Woken by the receiver 100 ms into the wait.
        #expect(schedule.next(now: 10_500, observed: full) == .runBatch(time: 10_500))
        #expect(schedule.next(now: 10_500, observed: full) == .runBatch(time: 10_501))
        #expect(schedule.next(now: 10_700, observed: Observation()) == .wait(milliseconds: 300))
        #expect(schedule.next(now: 10_800, observed: Observation()) == .wait(milliseconds: 200))
        #expect(schedule.next(now: 11_000, observed: Observation()) == .runBatch(time: 11_000))
        // At or past the boundary, the boundary batch is the one that runs.
        #expect(schedule.next(now: 12_000, observed: full) == .wait(milliseconds: 0))
        #expect(schedule.next(now: 12_000, observed: full) == .runBatch(time: 12_000))
        // The wall clock steps back: still after the last batch.
        #expect(schedule.next(now: 9_000, observed: full) == .runBatch(time: 12_001))
    }

    @Test func aRestartContinuesAfterTheLastBatchTime() {
        var schedule = BatchSchedule(interval: 1_000, lastBatchTime: 50_000, now: 10_000, stopsAtEnd: false)
        // The clock is behind the checkpoint's batch time: the wait is one interval, then the batch runs.
        #expect(schedule.next(now: 10_000, observed: Observation()) == .wait(milliseconds: 1_000))
        #expect(schedule.next(now: 11_000, observed: Observation()) == .runBatch(time: 51_000))
    }

    @Test func stopsFailuresAndTheEndOfInputEndTheLoop() {
        var graceful = BatchSchedule(interval: 1_000, lastBatchTime: 0, now: 0, stopsAtEnd: false)
        #expect(graceful.next(now: 0, observed: Observation(stopRequest: .graceful)) == .finish(time: 1_000))
        #expect(graceful.next(now: 0, observed: Observation()) == .stop)
        var immediate = BatchSchedule(interval: 1_000, lastBatchTime: 0, now: 0, stopsAtEnd: false)
        #expect(immediate.next(now: 0, observed: Observation(stopRequest: .immediate)) == .stop)
        var failing = BatchSchedule(interval: 1_000, lastBatchTime: 0, now: 0, stopsAtEnd: false)
        #expect(failing.next(now: 0, observed: Observation(stopRequest: .graceful, receiverFailure: "disk")) == .fail("disk"))
        var atEnd = BatchSchedule(interval: 1_000, lastBatchTime: 0, now: 0, stopsAtEnd: true)
        #expect(atEnd.next(now: 0, observed: Observation(reachedEnd: true)) == .finish(time: 1_000))
        var notAtEnd = BatchSchedule(interval: 1_000, lastBatchTime: 0, now: 0, stopsAtEnd: false)
        #expect(notAtEnd.next(now: 0, observed: Observation(reachedEnd: true)) == .wait(milliseconds: 1_000))
    }

    @Test func inputIsHeldOverTheBacklogBoundUntilItHalves() {
        var flow = InputFlowControl(maxBacklogBytes: 100, maxRatePerPartition: 0, now: .now)
        let changes = [100, 101, 51, 50].map { bytes in (flow.backlog(bytes: bytes), flow.isInputHeld) }
        #expect(changes.map(\.0) == [false, true, false, true])
        #expect(changes.map(\.1) == [false, true, true, false])
        #expect(flow.pausedCount(assigned: 4) == 0)
    }

    @Test func aPartitionOverItsRateIsPausedUntilTheNextSecond() {
        let start = ContinuousClock.now
        let partition = KafkaPartition(topic: "lines", partition: 0)
        var flow = InputFlowControl(maxBacklogBytes: 100, maxRatePerPartition: 3, now: start)
        // The third record reaches the rate: pause once, not again for the fourth.
        let pauses = (0..<4).map { _ in flow.received(from: partition) }
        #expect(pauses == [false, false, true, false])
        let early = flow.tick(now: start + .milliseconds(500))
        let resumed = flow.tick(now: start + .seconds(1))
        #expect(early.isEmpty && resumed == [partition])
        #expect(flow.ratePaused.isEmpty)
    }
}
