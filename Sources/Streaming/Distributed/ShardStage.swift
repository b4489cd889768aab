import CoreMetrics
import Foundation
import KafkaIO
import Logging
import Metrics
import StreamEngine
import Synchronization

/// Stage 2 of distributed mode, for the shards the shard group gives this instance: applies each shard's partials
/// (``ShardState``), and writes a cycle once it has read the partials to their end with a batch applied, or else
/// every batch interval: changelog records, then the commit record, then the counts and closed windows, then the
/// partials offsets (never past a cut still waiting for its markers).
///
/// A shard given to this instance is first restored (``Changelog/Restorer``): from its local checkpoint if there is
/// one, then the changelog records after it, or else from the whole changelog partition; what its last committed
/// cycle published is published again (it may not have been delivered). A shard taken away is written out in a last
/// cycle, checkpointed and dropped. Checkpoints are written at most every ``checkpointInterval`` per shard, and on
/// release. Ownership changes are logged with the time, for audits.
///
/// A stage stopped for longer than half the session timeout (a paused process, SIGSTOP) may have lost its shards
/// without knowing it yet. At least once nothing fences it, so before it writes anything more it confirms that it
/// still owns them: its commit of the partials offsets is checked against the group generation. A commit the group
/// refuses drops the owned shards (their uncommitted changes with them) and waits for the rebalance; any other
/// failure leaves them and tries again at the next cycle. The same check runs after each delivery wait within a
/// cycle, so a stop there writes no commit record and no output. (A stop between a check and the writes it allows,
/// a window of microseconds, is not covered; exactly-once output fences a stale owner whenever it stops.)
///
/// With exactly-once output (``StageTransactions``), a cycle's changelog records, counts and windows go in one
/// transaction with the partials offsets; read_committed readers (the restore among them) see whole cycles only, so
/// a restore publishes nothing again. An aborted cycle reloads its shards (checkpoint and changelog) and rewinds
/// their partials to the committed offsets. Checkpoints are written only after a commit.
///
/// - Important: ``run()`` runs on a dedicated thread; polls, commits and rebalance callbacks all happen there.
final class ShardStage: @unchecked Sendable {
    private let consumer: KafkaConsumer
    private let restoreConsumer: KafkaConsumer
    private let output: KafkaOutput
    private let setup: DistributedSetup
    private let configuration: StreamingConfiguration
    private let logger: Logger
    private let metrics: StreamingMetrics
    private let crashTrigger: CrashTrigger?
    /// Exactly-once output; nil: at-least-once (a restore publishes the last committed cycle again).
    private let transactions: StageTransactions?
    private let stopRequested = Atomic<Bool>(false)
    private var states: [Int32: ShardState] = [:]
    private let checkpoints: ShardCheckpoints
    /// The cycle and time of each owned shard's last checkpoint.
    private var checkpointed: [Int32: (cycle: Int64, at: ContinuousClock.Instant)] = [:]
    static let checkpointInterval = Duration.seconds(30)
    /// A stop longer than this (half the session timeout) may have cost the shards: see ``confirmOwnership(since:)``.
    private let stallLimit: Duration
    /// A stall was seen and ownership is not confirmed yet: nothing is written until it is.
    private var mustConfirmOwnership = false
    /// When the current poll started: a rebalance callback inside it that comes after a stop checks ownership too.
    private var pollStarted = ContinuousClock.now
    /// Every partition of the input topics, read at start: each holds the shards' watermarks back until heard from.
    private var inputPartitions: Set<KafkaPartition> = []
    let status = Mutex(StageStatus())
    /// The owned shards' totals and watermark, for state queries and the status page.
    let totals: ShardTotals

    init(
        consumer: KafkaConsumer, restoreConsumer: KafkaConsumer, output: KafkaOutput, setup: DistributedSetup,
        configuration: StreamingConfiguration, logger: Logger, metrics: StreamingMetrics, crashTrigger: CrashTrigger?,
        transactions: StageTransactions?
    ) {
        self.transactions = transactions
        self.consumer = consumer
        self.restoreConsumer = restoreConsumer
        self.output = output
        self.setup = setup
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.crashTrigger = crashTrigger
        checkpoints = ShardCheckpoints(directory: configuration.checkpointDirectory)
        totals = ShardTotals(shards: setup.shards)
        stallLimit = .milliseconds(configuration.sessionTimeoutMilliseconds / 2)
    }

    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
    }

    /// Applies partials and writes cycles until ``requestStop()``; then writes a last cycle and leaves the group.
    func run() throws {
        defer {
            consumer.close()
            restoreConsumer.close()
        }
        try transactions?.initialize(configuration: configuration)
        inputPartitions = Set(try consumer.partitions(of: configuration.inputTopics, timeout: .seconds(30)))
        try consumer.subscribe([setup.partialsTopic]) { [self] event in
            do {
                return try rebalance(event)
            } catch {
                status.withLock { $0.failure = "stage 2 rebalance: \(error)" }
                stopRequested.store(true, ordering: .releasing)
                return [:]
            }
        }
        let interval = Duration.milliseconds(configuration.batchIntervalMilliseconds)
        var nextCycle = ContinuousClock.now + interval
        while !stopRequested.load(ordering: .acquiring) {
            let wait = min(max(nextCycle - .now, .zero), .milliseconds(100))
            pollStarted = .now
            let tick = pollStarted
            let events = try consumer.poll(timeout: wait) { event in
                guard case .message(let message) = event, let shard = states.index(forKey: message.partition) else { return }
                guard let record = ExchangeRecord(key: message.key.map { Array($0) }, value: Array(message.value)) else {
                    metrics.malformedRecords.increment()
                    return
                }
                do {
                    try states.values[shard].receive(record, at: message.offset)
                } catch {
                    // This shard only: the instance keeps its other shards (and this one, so that no other instance
                    // meets the same hole and stops too).
                    logger.error("shard stopped: its input has a hole", metadata: [
                        "shard.id": "\(message.partition)", "stream.error": "\(error)",
                    ])
                    publishTotals()
                }
            }
            if events > 0 {
                for shard in Array(states.keys) { states[shard]?.settle() }
            }
            status.withLock { $0.lastPoll = .now }
            // Read to the end of the partials with a batch applied: its output need not wait for the interval.
            let caughtUp = events == 0 && states.values.contains { $0.changes.batchTime != nil }
                && consumer.lag().values.allSatisfy { $0 == 0 }
            if caughtUp || ContinuousClock.now >= nextCycle {
                guard try confirmOwnership(since: tick) == .owned else {
                    nextCycle = .now + interval
                    continue
                }
                try writeCycle(of: Array(states.keys))
                try writeCheckpoints(of: Array(states.keys), due: .now - Self.checkpointInterval)
                let lag = consumer.lag()
                status.withLock { status in
                    status.lastWork = .now
                    status.lag = lag
                }
                nextCycle = .now + interval
            }
        }
        if let failure = status.withLock({ $0.failure }) { throw StreamingError(.output, failure) }
        try writeCycle(of: Array(states.keys))
        try writeCheckpoints(of: Array(states.keys), due: .now)
    }

    /// Restores acquired shards, returning where their partials are read from; writes out and drops released ones.
    private func rebalance(_ event: KafkaRebalance) throws -> [KafkaPartition: Int64] {
        var startOffsets: [KafkaPartition: Int64] = [:]
        switch event {
        case .assigned(let partitions):
            // A new generation: what was not confirmed before is moot (dropped shards are restored here).
            mustConfirmOwnership = false
            let shards = partitions.filter { $0.topic == setup.partialsTopic }.map(\.partition).sorted()
            // With transactions, the committed offsets before the restore: a cycle committed in between is in the
            // restored state (its partials read again are skipped as applied); read after it, such a cycle's
            // partials would be skipped unapplied. (At least once, offsets follow the delivered changelog.)
            if transactions != nil { startOffsets = try consumer.committed(partitions, timeout: .seconds(30)) }
            try restore(shards)
            logger.info("shards acquired", metadata: [
                "shard.ids": "\(shards.map(String.init).joined(separator: ","))", "instance.id": "\(setup.instanceID)",
                "at_ms": "\(WallClock.milliseconds())",
            ])
        case .revoked(let partitions):
            CrashPoint.reach(.inRevoke, armed: crashTrigger)
            let shards = partitions.filter { $0.topic == setup.partialsTopic }.map(\.partition).sorted()
            if consumer.isAssignmentLost {
                // Already someone else's: the next owner restores the last committed cycle and applies the rest.
                logger.warning("shards lost: their uncommitted changes are dropped", metadata: [
                    "shard.ids": "\(shards.map(String.init).joined(separator: ","))",
                ])
            } else if try confirmOwnership(since: pollStarted) != .owned {
                // Revoked after a stop: the last cycle is not written (the next owner applies its partials again).
                logger.warning("shards revoked after a stop: their uncommitted changes are dropped", metadata: [
                    "shard.ids": "\(shards.map(String.init).joined(separator: ","))",
                ])
            } else {
                try writeCycle(of: shards)
                try writeCheckpoints(of: shards, due: .now)
            }
            for shard in shards {
                states[shard] = nil
                checkpointed[shard] = nil
            }
            logger.info("shards released", metadata: [
                "shard.ids": "\(shards.map(String.init).joined(separator: ","))", "instance.id": "\(setup.instanceID)",
                "at_ms": "\(WallClock.milliseconds())",
            ])
        }
        status.withLock { status in
            status.owned = states.keys.sorted().map { KafkaPartition(topic: setup.partialsTopic, partition: $0) }
            if case .assigned = event { status.hasJoined = true }
        }
        publishTotals()
        return startOffsets
    }

    /// Rebuilds the shards from their local checkpoints and the changelog records after them (or the whole changelog
    /// partition), read to their ends, and publishes again what each one's last committed cycle published.
    private func restore(_ shards: [Int32]) throws {
        guard !shards.isEmpty else { return }
        var restorers: [Int32: Changelog.Restorer] = [:]
        var starts: [KafkaPartition: Int64] = [:]
        var open: Set<Int32> = []
        for shard in shards {
            let partition = KafkaPartition(topic: setup.changelogTopic, partition: shard)
            let offsets = try? restoreConsumer.watermarks(of: partition, timeout: .seconds(30))
            let (checkpoint, reason) = usableCheckpoint(of: shard, within: offsets)
            restorers[shard] = checkpoint.map { Changelog.Restorer(checkpoint: $0) } ?? Changelog.Restorer()
            if let checkpoint { checkpointed[shard] = (checkpoint.cycle, .now) }
            if let reason {
                logger.warning("shard checkpoint passed over: restoring from the whole changelog", metadata: [
                    "shard.id": "\(shard)", "reason": "\(reason)",
                ])
            }
            // Nothing after the checkpoint (or an empty changelog): nothing to read.
            if let offsets, (checkpoint?.changelogOffset ?? offsets.low) >= offsets.high { continue }
            starts[partition] = checkpoint?.changelogOffset ?? -2  // -2: from the beginning
            open.insert(shard)
        }
        try restoreConsumer.assign(starts)
        CrashPoint.reach(.duringRestore, armed: crashTrigger)
        let deadline = ContinuousClock.now + .seconds(300)
        while !open.isEmpty {
            guard ContinuousClock.now < deadline else {
                throw StreamingError(.output, "restoring shards \(open.sorted()) from \(setup.changelogTopic) took over 300 s")
            }
            try restoreConsumer.poll(timeout: .milliseconds(100)) { event in
                switch event {
                case .message(let message):
                    try restorers[message.partition]?.add(key: message.key.map { Array($0) } ?? [], value: Array(message.value))
                case .endOfPartition(let partition, _):
                    open.remove(partition.partition)
                }
            }
        }
        try restoreConsumer.assign([:])
        var republished = KafkaOutput.Batch()
        for shard in shards {
            var state = ShardState(shard: shard, window: setup.window, expectedSources: inputPartitions)
            var republish = restorers[shard]!.build(into: &state)
            // A committed cycle's output committed with it.
            if transactions != nil { republish = .init(batchTime: republish.batchTime, totals: [], closedWindows: []) }
            let stamp = WordCountJob.BatchStamp(batchTime: republish.batchTime)
            for (word, total) in republish.totals {
                try output.send(WordCountJob.totalRecord(word: word, total: total, stamp: stamp, topic: setup.countsTopic), in: &republished)
            }
            for (key, count) in republish.closedWindows {
                try output.send(WordCountJob.windowRecord(
                    word: key.word, count: count, window: setup.window.window(startingAt: key.start), topic: setup.windowsTopic), in: &republished)
            }
            states[shard] = state
            totals.replace(shard, with: state.totals)
            logger.info("shard restored", metadata: [
                "shard.id": "\(shard)", "changelog.records": "\(restorers[shard]!.records)", "shard.words": "\(state.totals.count)",
                "shard.cycle": "\(state.cycle)", "shard.checkpoint": "\(checkpointed[shard].map { "cycle \($0.cycle)" } ?? "none")",
            ])
        }
        try output.complete(republished)
    }

    /// The shard's local checkpoint if it can be used with its changelog partition's `offsets` (nil: they could not
    /// be read), or why not (nil, nil: there is none).
    private func usableCheckpoint(of shard: Int32, within offsets: (low: Int64, high: Int64)?) -> (ShardCheckpoint?, String?) {
        let checkpoint: ShardCheckpoint?
        do {
            checkpoint = try checkpoints.load(shard)
        } catch {
            return (nil, "unreadable: \(error)")
        }
        guard let checkpoint else { return (nil, nil) }
        guard let (low, high) = offsets else { return (nil, "the changelog's offsets could not be read") }
        // Outside the partition: the topic was recreated, or compaction removed records the checkpoint did not see.
        guard (low...high).contains(checkpoint.changelogOffset) else {
            return (nil, "its changelog offset \(checkpoint.changelogOffset) is outside \(low)..<\(high)")
        }
        return (checkpoint, nil)
    }

    /// Checkpoints each given shard that changed since its last checkpoint, if that one is older than `due`: its
    /// state (its last cycle is written and committed) with the changelog partition's end, which lies above every
    /// record of its cycles.
    private func writeCheckpoints(of shards: [Int32], due: ContinuousClock.Instant) throws {
        for shard in shards.sorted() {
            guard let state = states[shard], state.changes.isEmpty, state.cycle > checkpointed[shard]?.cycle ?? 0,
                checkpointed[shard].map({ $0.at <= due }) ?? true
            else { continue }
            let end = try restoreConsumer.watermarks(
                of: KafkaPartition(topic: setup.changelogTopic, partition: shard), timeout: .seconds(30)).high
            try checkpoints.write(ShardCheckpoint(of: state, changelogOffset: end), shard: shard)
            checkpointed[shard] = (state.cycle, .now)
        }
    }

    /// Writes a cycle of the given shards: changelog records, commit records, output, then the partials offsets; with
    /// exactly-once output all in one transaction.
    private func writeCycle(of shards: [Int32]) throws {
        var offsets: [KafkaPartition: Int64] = [:]
        for shard in shards {
            if let offset = states[shard]?.committableOffset {
                offsets[KafkaPartition(topic: setup.partialsTopic, partition: shard)] = offset
            }
        }
        var written: [Int32] = []
        if let transactions {
            guard try transactions.run(offsets: offsets, { _ = try produceCycle(of: shards, written: &written) }) == .committed else {
                try reload(written)
                return
            }
        } else {
            // Not written whole (ownership lost or unconfirmed on the way): nothing is committed.
            guard try produceCycle(of: shards, written: &written) else { return }
            do {
                try metrics.commitDuration.measure { try consumer.commit(offsets) }
            } catch {
                // The changelog holds the state: partials read again are skipped as applied.
                metrics.commitFailures.increment()
                logger.warning("offset commit failed", metadata: ["stream.commit": "partials", "kafka.error": "\(error)"])
            }
        }
        CrashPoint.reach(.afterShardCommit, armed: crashTrigger)
        if !written.isEmpty { publishTotals() }
    }

    /// Produces a cycle of the shards that changed, adding each to `written` as its changes are taken: changelog
    /// records, then (once delivered) commit records, then counts and closed windows. Whether it wrote them all:
    /// a stop on the way that cost the shards leaves them dropped, one whose ownership is not confirmed yet leaves
    /// them as of their last committed cycle (``reload(_:)``).
    private func produceCycle(of shards: [Int32], written: inout [Int32]) throws -> Bool {
        let start = ContinuousClock.now
        var cycles: [(shard: Int32, cycle: Int64, batchTime: Int64, changes: ShardState.Changes)] = []
        var changelog = KafkaOutput.Batch()
        for shard in shards.sorted() {
            guard var state = states[shard], !state.changes.isEmpty else { continue }
            let changes = state.takeChanges()
            let cycle = state.cycle + 1
            state.cycle = cycle
            states[shard] = state
            written.append(shard)
            for record in Changelog.records(of: changes, state: state, cycle: cycle, topic: setup.changelogTopic) {
                try output.send(record, in: &changelog)
            }
            cycles.append((shard, cycle, changes.batchTime ?? state.batchTime, changes))
            CrashPoint.reach(.midChangelog, armed: crashTrigger)
        }
        try output.complete(changelog)
        // Stopped while they were delivered: uncommitted records, which a restore passes over; nothing more.
        guard try ownershipHolds(since: start, written: written) else { return false }
        var commits = KafkaOutput.Batch()
        for (shard, cycle, batchTime, _) in cycles {
            try output.send(Changelog.commitRecord(of: states[shard]!, cycle: cycle, batchTime: batchTime, topic: setup.changelogTopic), in: &commits)
            states[shard]!.batchTime = batchTime
        }
        // Output only once the cycle is committed: a restore never goes back behind a published total.
        try output.complete(commits)
        guard try ownershipHolds(since: start, written: written) else { return false }
        var published = KafkaOutput.Batch()
        for (shard, _, batchTime, changes) in cycles {
            let state = states[shard]!
            let stamp = WordCountJob.BatchStamp(batchTime: batchTime)
            for word in changes.totalsOrder {
                guard let total = state.totals[word] else { continue }
                try output.send(WordCountJob.totalRecord(word: word, total: total, stamp: stamp, topic: setup.countsTopic), in: &published)
            }
            for (key, count) in changes.closed {
                try output.send(WordCountJob.windowRecord(
                    word: key.word, count: count, window: setup.window.window(startingAt: key.start), topic: setup.windowsTopic), in: &published)
            }
        }
        try output.complete(published)
        status.withLock { [count = published.sent] in $0.outputRecords += count }
        for (shard, _, _, changes) in cycles {
            let state = states[shard]!
            totals.update(shard, changes.totalsOrder.lazy.compactMap { word in state.totals[word].map { (word, $0) } })
        }
        return true
    }

    /// What a check of ownership found.
    private enum Ownership {
        /// The shards may be written.
        case owned
        /// The group moved on: the shards are dropped, until the rebalance gives this instance its new ones.
        case lost
        /// Not known yet (the check could not be made): write nothing, try again.
        case unconfirmed
    }

    /// Whether the owned shards may be written: always after a stop no longer than ``stallLimit`` since `since`
    /// (and no earlier stall unconfirmed); else once the group accepts a commit of their partials offsets (at
    /// least once; exactly-once output is fenced by its transactions). A refusal by the group drops the shards.
    private func confirmOwnership(since: ContinuousClock.Instant) throws -> Ownership {
        guard transactions == nil, mustConfirmOwnership || ContinuousClock.now - since > stallLimit else { return .owned }
        mustConfirmOwnership = true
        var offsets: [KafkaPartition: Int64] = [:]
        for (shard, state) in states {
            if let offset = state.committableOffset { offsets[KafkaPartition(topic: setup.partialsTopic, partition: shard)] = offset }
        }
        do {
            try consumer.commit(offsets)
        } catch let error as KafkaError where Self.groupRefusals.contains(error.codeName) {
            logger.warning("stopped past the session timeout, and the group moved on: the owned shards are dropped unwritten", metadata: [
                "shard.ids": "\(states.keys.sorted().map(String.init).joined(separator: ","))", "kafka.error": "\(error)",
            ])
            states = [:]
            checkpointed = [:]
            publishTotals()
            return .lost
        } catch {
            logger.warning("stopped past the session timeout; ownership not confirmed yet", metadata: ["kafka.error": "\(error)"])
            return .unconfirmed
        }
        mustConfirmOwnership = false
        logger.info("stopped past the session timeout; the shards are still owned")
        return .owned
    }

    /// ``confirmOwnership(since:)`` within a cycle: unconfirmed, the shards written so far go back to their last
    /// committed cycle.
    private func ownershipHolds(since: ContinuousClock.Instant, written: [Int32]) throws -> Bool {
        switch try confirmOwnership(since: since) {
        case .owned: return true
        case .lost: return false
        case .unconfirmed:
            try reload(written)
            return false
        }
    }

    /// Commit errors by which the group says this member no longer owns what it holds.
    private static let groupRefusals: Set<String> = [
        "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "REBALANCE_IN_PROGRESS", "FENCED_INSTANCE_ID", "_ASSIGNMENT_LOST",
    ]

    /// After an aborted cycle: the shards as of their last committed cycle (checkpoint and changelog), their
    /// partials read again from the committed offsets (what the restored state applied already is skipped).
    private func reload(_ shards: [Int32]) throws {
        for shard in shards { checkpointed[shard] = nil }
        try restore(shards)
        let partitions = shards.map { KafkaPartition(topic: setup.partialsTopic, partition: $0) }
        let committed = try consumer.committed(partitions, timeout: .seconds(30))
        try consumer.seek(Dictionary(uniqueKeysWithValues: partitions.map { ($0, committed[$0] ?? -2) }))  // -2: from the beginning
    }

    /// Publishes the owned shards' totals and watermark, and which of them failed (``ShardState/failure``).
    private func publishTotals() {
        totals.keep(only: Set(states.keys), watermark: states.values.compactMap(\.watermark).min())
        let failed = states.filter { $0.value.failure != nil }.sorted { $0.key < $1.key }
        metrics.failedShards.record(failed.count)
        status.withLock { status in
            status.failedShards = failed.map { "shard \($0.key) stopped: \($0.value.failure!)" }
        }
    }
}
