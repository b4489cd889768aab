import CoreMetrics
import KafkaIO
import Logging
import StreamEngine
import Synchronization

/// Where the input ends, when it went back or jumped ahead, and the rate limit's pauses.
extension ReliableReceiver {
    /// Whether to drop a record because its partition jumped over offsets.
    ///
    /// librdkafka 2.0.2 can skip offsets after a pause and resume with batch consumption (#4208), and the rate
    /// limit pauses and resumes. A record past the next expected offset is therefore dropped, and its partition is
    /// sought back to that offset once; the rest of the same poll's records of that partition are dropped too (the
    /// refetch delivers them again). If a later poll shows the same gap, it is real (transaction markers, compacted
    /// records) and the record is taken. Invariant: a partition's records are taken in offset order, and an offset
    /// is passed over only after it was fetched again and still not there.
    func skipsOverGap(_ partition: KafkaPartition, expected next: Int64, found offset: Int64) -> Bool {
        if let refetch = loop.gapRefetches[partition], refetch.offset == next {
            if refetch.poll == loop.polls, offset > next { return true }
            loop.gapRefetches[partition] = nil
            return false
        }
        guard offset > next else { return false }
        loop.gapRefetches[partition] = (next, loop.polls)
        metrics.offsetGapsRefetched.increment()
        logger.info("a partition skipped offsets; fetching them again", metadata: [
            "kafka.partition": "\(partition)", "kafka.expected_offset": "\(next)", "kafka.offset": "\(offset)",
        ])
        do {
            try consumer.seek([partition: next])
        } catch {
            loop.errorLog.warning(logger, "seeking back over a gap failed", error: error)
        }
        return true
    }

    /// With `stopsAtEnd`: reads the end offsets to reach, as they are now.
    ///
    /// - Throws: A ``KafkaError`` if the brokers cannot be asked (for example none is reachable); a ``StreamingError``
    ///   if an input topic does not exist.
    func captureEndOffsets() throws {
        let ends = try consumer.endOffsets(of: configuration.inputTopics, timeout: .seconds(10))
        let missing = configuration.inputTopics.filter { topic in !ends.keys.contains { $0.topic == topic } }
        guard missing.isEmpty else {
            throw StreamingError(.receiver, "input topic \(missing.joined(separator: ", ")) does not exist: there is no input to read to its end")
        }
        for (partition, end) in ends.sorted(by: { $0.key < $1.key }) {
            if let known = loop.nextOffsets[partition], end < known {
                offsetWasReset(partition, to: end, below: known)
                return
            }
        }
        loop.endOffsets = ends
        logger.info("reading to the current end of the input", metadata: ["stream.end_offsets": "\(ends.values.reduce(0, +))"])
        checkEnd()
    }

    /// With end offsets captured: whether every partition has been received up to them.
    var hasReceivedToEnd: Bool {
        guard let ends = loop.endOffsets else { return false }
        return ends.allSatisfy { partition, end in end <= 0 || (loop.nextOffsets[partition] ?? 0) >= end }
    }

    /// With end offsets captured: marks the end reached once every partition got there and its block is stored.
    func checkEnd() {
        guard loop.builder.isEmpty, hasReceivedToEnd else { return }
        if !status.withLock({ $0.reachedEnd }) {
            status.withLock { $0.reachedEnd = true }
            wakeBatchThread()
        }
    }

    /// A partition that restarts below the offset the state already holds was recreated or truncated: its records
    /// would all be dropped as duplicates. sluice stops rather than decide for the operator.
    func offsetWasReset(_ partition: KafkaPartition, to offset: Int64, below known: Int64) {
        metrics.offsetResets.increment()
        let reason = StreamingError(
            .offsetReset,
            "\(partition) is at offset \(offset), below offset \(known) that the checkpoint and log already hold: the "
                + "topic was recreated or truncated, and its records would be dropped as duplicates. To process it from "
                + "the start, stop sluice and start it with an empty SLUICE_CHECKPOINT_DIR")
        fail("the input went back", reason)
    }

    /// The state is built from every input partition, so an instance given only part of them (another member
    /// joined its group) must not go on: its totals would be built on part of the input and overwrite the whole.
    /// It fails before it takes a record of the partial assignment, naming the group.
    func checkWholeInputAssigned() {
        guard let all = try? consumer.partitions(of: configuration.inputTopics, timeout: .seconds(5)) else { return }
        let missing = Set(all).subtracting(loop.assigned)
        guard !missing.isEmpty, !loop.failed else { return }
        // The instance stays in the group for a session timeout, taking no records, before it reports the failure
        // and leaves: leaving at once could hand the whole input to the member that just joined before that member
        // saw its own share, and it would run on alone, without this instance's totals.
        stopTakingRecords()
        loop.heldFailure = (
            "another member joined consumer group \(configuration.groupID)",
            StreamingError(
                .partialInput,
                "this instance was assigned \(all.count - missing.count) of the \(all.count) input partitions, so its "
                    + "totals would be built on part of the input. Run one standalone sluice per consumer group, or run "
                    + "every instance of the group with SLUICE_MODE=distributed"),
            .now + .milliseconds(configuration.sessionTimeoutMilliseconds))
    }

    /// Reports a held failure once its time has come, or at once when the receiver stops sooner (`stopping`), so that
    /// a stop during the wait does not hide it.
    func reportHeldFailure(stopping: Bool = false) {
        guard let held = loop.heldFailure, stopping || ContinuousClock.now >= held.until else { return }
        loop.heldFailure = nil
        fail(held.message, held.error)
    }

    /// Resumes the partitions paused for the rate limit when a new window opens, each from the offset after its
    /// last received record (see ``InputFlowControl``).
    func resumeRateLimited() {
        let resumed = loop.flow.tick(now: .now)
        if !resumed.isEmpty {
            do {
                try consumer.resume(resumed)
                try consumer.seek(loop.nextOffsets.offsets.filter { resumed.contains($0.key) })
            } catch {
                fail("resuming rate-limited partitions failed", error)
            }
        }
        reportFlow()
    }

    func reportFlow() {
        metrics.pausedPartitions.record(loop.flow.pausedCount(assigned: loop.assigned.count))
        let held = loop.flow.isInputHeld
        let becameHeld = status.withLock { status in
            defer { status.isInputHeld = held }
            return held && !status.isInputHeld
        }
        // A full backlog starts the next batch at once (``BatchSchedule``).
        if becameHeld { wakeBatchThread() }
    }
}
