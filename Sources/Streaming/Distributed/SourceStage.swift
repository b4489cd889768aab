import CoreMetrics
import Foundation
import KafkaIO
import Logging
import Metrics
import StreamEngine
import Synchronization

/// Stage 1 of distributed mode, for the input partitions the group gives this instance: cuts each partition's
/// records into batches, all partitions at once (a ``Cut``), counts the words of a cut per word and event-time bucket
/// (map-side combine, over all its partitions), and sends the counts to the words' shards in `<group>-partials`,
/// followed by the cut's markers to every shard. A cut is made every batch interval, and when the last one was made
/// with input waiting (more than a tenth of what it held) or partitions were just assigned, as soon as what waited is
/// taken: the interval bounds how long a record waits, never the rate. (Unlike a standalone batch, a cut holds no records, only their counts,
/// so its size is not bounded: a smaller cut would only cost stage 2 one more cycle per distinct word.)
///
/// The partials topic plays the write-ahead log's role: a batch's input offsets are committed only once all its
/// partials and markers are delivered (`acks=all`). Before a batch is sent, its start is committed in the input's
/// group (which fences an instance that lost the partition) and its end in the plans group (``BatchPlan``), so
/// whichever instance owns the partition next cuts exactly the same batch again.
///
/// With exactly-once output (``StageTransactions``), a tick's partials and markers go in one transaction with the
/// batches' end offsets, and no plan is committed before: an aborted transaction left nothing visible, so the stage
/// rewinds to the committed offsets and cuts the batches again, with the same sequence numbers.
///
/// - Important: ``run()`` runs on a dedicated thread; polls, commits and rebalance callbacks all happen there.
final class SourceStage: @unchecked Sendable {
    /// One owned input partition.
    private struct Source {
        /// The offset the open batch starts at (the committed offset); nil until known.
        var start: Int64?
        /// The offset after the last record taken.
        var next: Int64?
        var sequence: Int64
        /// A planned batch to cut again exactly, alone: the counts of its records taken so far, and the records
        /// taken since they were last counted.
        var replay: (plan: BatchPlan, tally: BatchTally, records: BlockBuilder)?
        /// The last batch sent (for idle markers), and when.
        var lastSequence: Int64?
        var lastBatch = ContinuousClock.now
        /// When the last idle marker went out; they repeat while the source stays idle.
        var lastIdleMarker: ContinuousClock.Instant?

        /// Its batch of `plan` is sent: the next one starts at its end.
        mutating func advance(past plan: BatchPlan) {
            start = plan.end
            sequence = plan.sequence + 1
            lastSequence = plan.sequence
            lastBatch = .now
            lastIdleMarker = nil
        }
    }

    /// A source whose records are being taken, with its partition.
    private struct Run {
        var partition: KafkaPartition
        var source: Source
        /// Whether it has a slot in the next cut.
        var hasSlot: Bool
    }

    /// About the most record bytes of a block handed to the counter.
    private static let blockBytes = 1 << 20

    private let consumer: KafkaConsumer
    /// A consumer of the plans group, for its committed offsets only; nil with exactly-once output.
    private let plans: KafkaConsumer?
    private let output: KafkaOutput
    private let setup: DistributedSetup
    private let configuration: StreamingConfiguration
    private let logger: Logger
    private let metrics: StreamingMetrics
    private let crashTrigger: CrashTrigger?
    /// Exactly-once output; nil: at-least-once (plans committed before, ends after the partials are delivered).
    private let transactions: StageTransactions?
    private let stopRequested = Atomic<Bool>(false)
    private var sources: [KafkaPartition: Source] = [:]
    /// The records taken since the last cut (but a replay's), not yet handed to ``counter``.
    private var records = BlockBuilder(reservingCapacity: SourceStage.blockBytes + (64 << 10))
    /// Counts the next cut's records on a thread of its own.
    private let counter: BlockCounter
    /// The slot (in the next cut's tally) of each source that took records since the last cut.
    private var slots: [KafkaPartition: Int] = [:]
    /// Input is waiting that the last cut did not take (more than a tenth of what it held, so not records merely in
    /// flight), or partitions were just assigned: the next cut is made as soon as it is taken, not at the next tick.
    private var isBehind = false
    /// The source whose records are being taken, out of ``sources`` while it is: a poll's records come in runs of
    /// one partition, so the table is looked up once per run rather than per record (and no second reference makes
    /// the tally copy). Put back by ``endRun()`` at the end of every poll.
    private var taking: Run?
    /// Records taken in the current poll (counted into the metrics once per poll).
    private var recordsTaken = 0
    let status = Mutex(StageStatus())

    init(
        consumer: KafkaConsumer, plans: KafkaConsumer?, output: KafkaOutput, setup: DistributedSetup,
        configuration: StreamingConfiguration, logger: Logger, metrics: StreamingMetrics, crashTrigger: CrashTrigger?,
        transactions: StageTransactions?
    ) {
        self.transactions = transactions
        self.consumer = consumer
        self.plans = plans
        self.output = output
        self.setup = setup
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.crashTrigger = crashTrigger
        counter = BlockCounter(window: setup.window, queueLimit: 8 * Self.blockBytes)
    }

    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
    }

    /// Receives and sends batches until ``requestStop()``; then sends what it took and leaves the group.
    func run() throws {
        counter.start()
        defer {
            // Closing can revoke the partitions, and a revoke cuts (or drops) what was taken: the counter is still needed.
            consumer.close()
            plans?.close()
            counter.stop()
        }
        try transactions?.initialize(configuration: configuration)
        try consumer.subscribe(configuration.inputTopics) { [self] event in
            do {
                try rebalance(event)
            } catch {
                status.withLock { $0.failure = "stage 1 rebalance: \(error)" }
                stopRequested.store(true, ordering: .releasing)
            }
            return [:]
        }
        let interval = Duration.milliseconds(configuration.batchIntervalMilliseconds)
        var nextBatch = ContinuousClock.now + interval
        while !stopRequested.load(ordering: .acquiring) {
            let wait = min(max(nextBatch - .now, .zero), .milliseconds(100))
            try consumer.poll(timeout: wait) { event in try handle(event) }
            endRun()
            metrics.recordsReceived.increment(by: recordsTaken)
            status.withLock { [recordsTaken] status in
                status.lastPoll = .now
                status.records += recordsTaken
            }
            recordsTaken = 0
            if (isBehind && !slots.isEmpty && isCaughtUp()) || ContinuousClock.now >= nextBatch {
                if !slots.isEmpty {
                    let held = sources.values.reduce(Int64(0)) { $0 + ($1.next ?? 0) - ($1.start ?? 0) }
                    isBehind = consumer.lag().values.reduce(0, +) > held / 10
                }
                try sendCut()
                try sendIdleMarkers()
                let lag = consumer.lag()
                status.withLock { status in
                    status.lastWork = .now
                    status.lag = lag
                }
                nextBatch = .now + interval
            }
        }
        if let failure = status.withLock({ $0.failure }) { throw StreamingError(.receiver, failure) }
        try sendCut()
    }

    private func handle(_ event: KafkaConsumerEvent) throws {
        switch event {
        case .message(let message):
            let sameRun = taking?.partition.partition == message.partition && taking?.partition.topic == message.topic
            if !sameRun || message.offset >= taking?.source.replay?.plan.end ?? .max {
                endRun()
                let partition = KafkaPartition(topic: message.topic, partition: message.partition)
                if let plan = sources[partition]?.replay?.plan, message.offset >= plan.end { try finishReplay(of: partition) }
                guard let source = sources.removeValue(forKey: partition) else { return }
                taking = Run(partition: partition, source: source, hasSlot: slots[partition] != nil)
            }
            take(message, into: &taking!)
        case .endOfPartition(let partition, let nextOffset):
            endRun()
            guard let plan = sources[partition]?.replay?.plan, nextOffset >= plan.end else { return }
            try finishReplay(of: partition)
        }
    }

    /// Takes a record into the next cut (or its source's replay), unless it was taken before: copied into a block,
    /// counted when the block is full.
    private func take(_ message: KafkaMessageView, into run: inout Run) {
        if let next = run.source.next, message.offset < next { return }
        run.source.start = run.source.start ?? message.offset
        run.source.next = message.offset + 1
        recordsTaken += 1
        if run.source.replay != nil {
            Self.append(message, to: &run.source.replay!.records)
            if run.source.replay!.records.byteCount >= Self.blockBytes { countReplay(of: &run.source, partition: run.partition) }
            return
        }
        if !run.hasSlot {
            slots[run.partition] = slots.count
            run.hasSlot = true
        }
        Self.append(message, to: &records)
        if records.byteCount >= Self.blockBytes { handOverRecords() }
    }

    private static func append(_ message: KafkaMessageView, to records: inout BlockBuilder) {
        records.append(
            topic: message.topic, partition: message.partition, offset: message.offset, timestamp: message.timestamp,
            key: message.key, value: message.value)
    }

    /// Hands the records taken for the next cut to the counter.
    private func handOverRecords() {
        guard !records.isEmpty else { return }
        counter.submit(records.finish(), slots: slots)
    }

    /// Counts the records a replaying source took since they were last counted.
    private func countReplay(of source: inout Source, partition: KafkaPartition) {
        guard source.replay != nil, !source.replay!.records.isEmpty else { return }
        BlockCounter.count(source.replay!.records.finish(), slots: [partition: 0], into: &source.replay!.tally, window: setup.window)
    }

    /// Whether every owned partition is read to its end (a partition not fetched yet has no lag to tell).
    private func isCaughtUp() -> Bool {
        let lag = consumer.lag()
        return lag.count == sources.count && lag.values.allSatisfy { $0 == 0 }
    }

    /// Puts the source whose records were being taken back into ``sources``.
    private func endRun() {
        guard let taking else { return }
        sources[taking.partition] = taking.source
        self.taking = nil
    }

    private func rebalance(_ event: KafkaRebalance) throws {
        switch event {
        case .assigned(let partitions):
            let committed = try consumer.committed(partitions, timeout: .seconds(30))
            let planned = try plans?.committed(partitions, timeout: .seconds(30)) ?? [:]
            // Each owner starts a new run of sequence numbers (the shards go by offsets; a sequence names a batch).
            let fresh = WallClock.milliseconds()
            // Taken again from the committed offsets: counts of them still in the next cut would count twice.
            if partitions.contains(where: { slots[$0] != nil }) { try rewindCut(except: Set(partitions)) }
            for partition in partitions {
                var source = Source(sequence: fresh)
                if let start = committed[partition] {
                    source.start = start
                    source.next = start
                    if let end = planned[partition], start < end {
                        let plan = BatchPlan(sequence: fresh, end: end, batchTime: WallClock.milliseconds())
                        source.replay = (plan, BatchTally(), BlockBuilder(reservingCapacity: 0))
                        logger.info("cutting a planned batch again", metadata: [
                            "kafka.partition": "\(partition)", "stream.sequence": "\(plan.sequence)",
                            "stream.offsets": "\(start)..<\(end)",
                        ])
                    }
                }
                sources[partition] = source
            }
            isBehind = true
            status.withLock { status in
                status.owned = sources.keys.sorted()
                status.hasJoined = true
            }
        case .revoked(let partitions):
            if consumer.isAssignmentLost {
                // Already someone else's: what was taken since the last commit is dropped, the next owner takes it.
                logger.warning("input partitions lost: their uncommitted batches are left to the next owner", metadata: [
                    "kafka.partitions": "\(partitions.sorted())",
                ])
            } else {
                // Finish the work taken so far, so that the next owner starts after it.
                try sendCut()
            }
            // Records of leaving partitions still in the next cut (lost, or their plans could not be committed) go
            // to the next owner: the cut starts again without them.
            if partitions.contains(where: { slots[$0] != nil }) { try rewindCut(except: Set(partitions)) }
            for partition in partitions { sources[partition] = nil }
            status.withLock { $0.owned = sources.keys.sorted() }
        }
    }

    /// Sends a planned batch whose records are all taken, in a cut of its own, and commits its end.
    private func finishReplay(of partition: KafkaPartition) throws {
        guard var source = sources[partition], source.replay != nil, let start = source.start else { return }
        countReplay(of: &source, partition: partition)
        sources[partition] = source
        let replay = source.replay!
        guard try send(PlannedCut(batches: [(partition, start, replay.plan, 0)], tally: replay.tally, isReplay: true)) else { return }
        source.replay = nil
        source.next = max(source.next ?? replay.plan.end, replay.plan.end)
        source.advance(past: replay.plan)
        sources[partition] = source
    }

    /// Batches of several partitions, sent as one ``Cut`` with the counts of all their records.
    private struct PlannedCut {
        /// In partition order; each batch's slot in `tally`.
        var batches: [(partition: KafkaPartition, start: Int64, plan: BatchPlan, slot: Int)]
        var tally: BatchTally
        /// A planned batch cut again (alone); else the batches of every source with a slot.
        var isReplay = false
    }

    /// Cuts a batch of every partition that took records since the last cut, in one cut: plans committed, partials
    /// sent, ends committed.
    private func sendCut() throws {
        let batchTime = WallClock.milliseconds()
        var batches: [(partition: KafkaPartition, start: Int64, plan: BatchPlan, slot: Int)] = []
        for (partition, source) in sources.sorted(by: { $0.key < $1.key }) {
            guard let slot = slots[partition], let start = source.start, let next = source.next else { continue }
            batches.append((partition, start, BatchPlan(sequence: source.sequence, end: next, batchTime: batchTime), slot))
        }
        guard !batches.isEmpty else { return }
        // At least once, a batch is sent only once its plan is committed: a next owner must cut exactly the batch
        // that shards may have applied. Without the plan, nothing is sent; the records are taken again (here at the
        // next tick, or by the next owner from the committed offset).
        if let plans {
            let planning = ContinuousClock.now
            guard commit(Dictionary(uniqueKeysWithValues: batches.map { ($0.partition, $0.start) }), by: consumer, what: "batch starts"),
                commit(Dictionary(uniqueKeysWithValues: batches.map { ($0.partition, $0.plan.end) }), by: plans, what: "batch plans")
            else { return }
            // Stopped past half the session timeout while planning: the partitions may be someone else's by now.
            // Sent, the batches would still be the ones planned (the next owner cuts them again exactly), but a
            // fresh start checks that: the next tick commits the starts again, which the group refuses if so.
            guard ContinuousClock.now - planning <= .milliseconds(configuration.sessionTimeoutMilliseconds / 2) else {
                logger.warning("stopped past the session timeout while planning batches: taking their records again")
                try rewindCut()
                return
            }
            CrashPoint.reach(.afterPlanCommit, armed: crashTrigger)
        }
        handOverRecords()
        guard try send(PlannedCut(batches: batches, tally: counter.take())) else { return }
        slots = [:]
        for (partition, _, plan, _) in batches { sources[partition]?.advance(past: plan) }
    }

    /// Sends the partials and markers of a planned cut and commits its batches' ends: after their delivery, or in
    /// their transaction. Whether the cut is done; false after an aborted transaction, once its partitions are
    /// rewound to their committed offsets.
    private func send(_ cut: PlannedCut) throws -> Bool {
        let ends = Dictionary(uniqueKeysWithValues: cut.batches.map { ($0.partition, $0.plan.end) })
        if let transactions {
            guard try transactions.run(offsets: ends, { try produce(cut) }) == .committed else {
                if cut.isReplay {
                    try rewindReplay(of: cut.batches[0].partition)
                } else {
                    try rewindCut()
                }
                return false
            }
        } else {
            try produce(cut)
            // Failing, the plans stay committed: the next owner cuts the same batches again, and the shards skip them.
            _ = commit(ends, by: consumer, what: "batch ends")
        }
        metrics.batchesCompleted.increment(by: cut.batches.count)
        status.withLock { $0.batches += cut.batches.count }
        return true
    }

    /// Forgets the next cut's counts and takes its sources' records again from their open batches' starts (the
    /// committed offsets), but those of `leaving`.
    private func rewindCut(except leaving: Set<KafkaPartition> = []) throws {
        var offsets: [KafkaPartition: Int64] = [:]
        for partition in slots.keys where !leaving.contains(partition) {
            guard let start = sources[partition]?.start else { continue }
            sources[partition]?.next = start
            offsets[partition] = start
        }
        handOverRecords()
        _ = counter.take()
        slots = [:]
        try consumer.seek(offsets)
    }

    /// Takes a planned batch's records again from its start.
    private func rewindReplay(of partition: KafkaPartition) throws {
        guard let start = sources[partition]?.start else { return }
        sources[partition]?.replay?.tally = BatchTally()
        _ = sources[partition]?.replay?.records.finish()
        sources[partition]?.next = start
        try consumer.seek([partition: start])
    }

    /// Produces the partials and markers of a planned cut, and its malformed records to the dead-letter topic, and
    /// waits for their delivery.
    private func produce(_ cut: PlannedCut) throws {
        var sent = KafkaOutput.Batch()
        // One batch time per cut (a fresh cut's batches share it; a replay is a cut of its own).
        let counted = cut.tally.partials(horizon: cut.batches[0].plan.batchTime + configuration.maxEventTimeAheadMilliseconds)
        let id = Cut(cut.batches.map { SourceBatch(source: $0.partition, sequence: $0.plan.sequence) })
        let byShard = Dictionary(grouping: counted.records) { setup.shards.shard(of: $0.word.utf8) }
        var records: [(shard: Int32, value: [UInt8])] = []
        for (shard, partials) in byShard.sorted(by: { $0.key < $1.key }) {
            records += ExchangeRecord.partials(id, partials).values().map { (shard, $0) }
        }
        for (index, record) in records.enumerated() {
            try output.send(OutputRecord(topic: setup.partialsTopic, key: [], value: record.value, partition: record.shard), in: &sent)
            if index == records.count / 2 { CrashPoint.reach(.midPartials, armed: crashTrigger) }
        }
        let markers = ExchangeRecord.marker(cut.batches.map { batch in
            BatchMarker(
                batch: SourceBatch(source: batch.partition, sequence: batch.plan.sequence), start: batch.start, end: batch.plan.end,
                batchTime: batch.plan.batchTime,
                maxEventTime: batch.slot < counted.maxEventTimes.count ? counted.maxEventTimes[batch.slot] : nil)
        }).values()
        for shard in 0..<setup.shards.count {
            for value in markers {
                try output.send(OutputRecord(topic: setup.partialsTopic, key: [], value: value, partition: shard), in: &sent)
            }
        }
        try output.complete(sent)
        try output.divertMalformed(cut.tally.malformed)
        metrics.futureRecords.increment(by: counted.futureWords)
        CrashPoint.reach(.afterPartials, armed: crashTrigger)
    }

    /// Commits, timed; a failure (for example a rebalance under way) is counted and logged. Whether it succeeded.
    private func commit(_ offsets: [KafkaPartition: Int64], by committer: KafkaConsumer, what: String) -> Bool {
        do {
            try metrics.commitDuration.measure { try committer.commit(offsets) }
            return true
        } catch {
            metrics.commitFailures.increment()
            logger.warning("offset commit failed", metadata: ["stream.commit": "\(what)", "kafka.error": "\(error)"])
            return false
        }
    }

    /// Tells every shard, every ten batch intervals, that a partition read to its end without input for that long
    /// is idle, so that it stops holding the shards' watermarks back (as an idle partition does in standalone mode).
    /// A marker names the offset the source's next batch starts at (its last batch's end), so a new owner's markers
    /// count too; a partition without a known start says so with sequence -1, which a shard that already applied
    /// batches of it ignores. The markers repeat, so a shard restored elsewhere learns them again.
    private func sendIdleMarkers() throws {
        let idleAfter = Duration.milliseconds(10 * configuration.batchIntervalMilliseconds)
        let lag = consumer.lag()
        let now = ContinuousClock.now
        let idle = sources.filter { partition, source in
            slots[partition] == nil && source.replay == nil && lag[partition] == 0 && now - source.lastBatch >= idleAfter
                && source.lastIdleMarker.map({ now - $0 >= idleAfter }) ?? true
        }
        guard !idle.isEmpty else { return }
        let produce = { [self] in
            var sent = KafkaOutput.Batch()
            for (partition, source) in idle.sorted(by: { $0.key < $1.key }) {
                let batch = SourceBatch(source: partition, sequence: source.lastSequence ?? -1)
                let marker = ExchangeRecord.idle(batch, end: source.start).values()
                for shard in 0..<setup.shards.count {
                    for value in marker {
                        try output.send(OutputRecord(topic: setup.partialsTopic, key: [], value: value, partition: shard), in: &sent)
                    }
                }
            }
            try output.complete(sent)
        }
        if let transactions {
            // Aborted, they are sent again at the next tick.
            guard try transactions.run(offsets: [:], produce) == .committed else { return }
        } else {
            try produce()
        }
        for partition in idle.keys { sources[partition]?.lastIdleMarker = now }
    }
}

/// The words of a cut, counted per word and per event-time bucket (a window slide), and the latest event times of each
/// of its sources (by slot).
///
/// Words are interned (``WordInterner``): one `String` per distinct word, and per bucket one count per word id.
struct BatchTally {
    /// One event-time bucket of the cut.
    private struct Bucket {
        var start: Int64
        /// The latest event time of every record in the bucket (with or without words, malformed or not) per slot
        /// (`.min`: none), as a block's latest timestamps are in standalone mode.
        var latest: [Int64] = []
        /// The count of each word by id (ids past the end: none yet).
        var counts: [Int64] = []
    }

    private var words = WordInterner()
    /// In order of first record.
    private var buckets: [Bucket] = []
    /// The index of each bucket by start; the bucket of the last record is tried first (records mostly come in
    /// event-time order, so most records fall in the bucket of the one before).
    private var bucketIndex: [Int64: Int] = [:]
    private var lastBucket = 0
    /// The ids of the record being added.
    private var recordIDs: [Int32] = []
    var malformed: [MalformedRecord] = []
    /// One more than the highest slot of a record.
    private var slots = 0

    /// Counts the words of a record value of the source in `slot`; returns why the record is malformed (then none of
    /// its words is counted). Every record moves its source's event time.
    mutating func add(_ value: UnsafeRawBufferPointer, at time: Int64, slot: Int, window: WindowSpec) -> MalformedRecord.Reason? {
        slots = max(slots, slot + 1)
        let index = bucket(startingAt: window.latestStart(containing: time))
        if buckets[index].latest.count <= slot {
            buckets[index].latest.append(contentsOf: repeatElement(.min, count: slot + 1 - buckets[index].latest.count))
        }
        buckets[index].latest[slot] = max(buckets[index].latest[slot], time)
        recordIDs.removeAll(keepingCapacity: true)
        if let reason = words.appendIDs(ofWordsIn: value, to: &recordIDs) { return reason }
        if buckets[index].counts.count < words.count {
            buckets[index].counts.append(contentsOf: repeatElement(0, count: words.count - buckets[index].counts.count))
        }
        for id in recordIDs {
            buckets[index].counts[Int(id)] += 1
        }
        return nil
    }

    /// The index of the bucket starting at `start`, added if new.
    private mutating func bucket(startingAt start: Int64) -> Int {
        if lastBucket < buckets.count, buckets[lastBucket].start == start { return lastBucket }
        if let index = bucketIndex[start] {
            lastBucket = index
        } else {
            lastBucket = buckets.count
            bucketIndex[start] = lastBucket
            buckets.append(Bucket(start: start))
        }
        return lastBucket
    }

    /// The partial counts of the cut, in first-seen order of the words; buckets that start after `horizon` count in
    /// the totals but in no window, and do not move the watermark. Nor does a bucket whose latest record of a source
    /// is after `horizon`: its other records' times are not kept, so it holds the source's event time back rather
    /// than move it to a time no record had. `maxEventTimes` by slot (nil: none).
    func partials(horizon: Int64) -> (records: [Partial], maxEventTimes: [Int64?], futureWords: Int) {
        var totals = [Int64](repeating: 0, count: words.count)
        var windowed = [[BucketCount]](repeating: [], count: words.count)
        var futureWords = 0
        for bucket in buckets.sorted(by: { $0.start < $1.start }) {
            for (id, count) in bucket.counts.enumerated() where count > 0 {
                totals[id] += count
                if bucket.start <= horizon {
                    windowed[id].append(BucketCount(start: bucket.start, count: count))
                } else {
                    futureWords += Int(count)
                }
            }
        }
        var records: [Partial] = []
        records.reserveCapacity(words.count)
        for (id, word) in words.words.enumerated() where totals[id] > 0 {
            records.append(Partial(word: word, count: totals[id], buckets: windowed[id]))
        }
        let maxEventTimes = (0..<slots).map { slot in
            buckets.compactMap { slot < $0.latest.count ? $0.latest[slot] : nil }.filter { $0 != .min && $0 <= horizon }.max()
        }
        return (records, maxEventTimes, futureWords)
    }
}

/// What a stage reports to the status page and health checks.
struct StageStatus: Sendable {
    var owned: [KafkaPartition] = []
    /// The stage has had its first assignment (stage 2: with its shards restored).
    var hasJoined = false
    var lastPoll: ContinuousClock.Instant?
    var lastWork: ContinuousClock.Instant?
    var failure: String?
    /// Stage 2: owned shards stopped on a hole in their input, each with why.
    var failedShards: [String] = []
    /// Records behind the end of each owned partition, as of the last batch or cycle.
    var lag: [KafkaPartition: Int64] = [:]
    /// Since start: stage 1's records taken and batches sent; stage 2's records published.
    var records = 0
    var batches = 0
    var outputRecords = 0
}
