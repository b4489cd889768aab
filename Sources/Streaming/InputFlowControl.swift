import KafkaIO

/// When the receiver takes input and from which partitions: the backlog bound and the per-partition rate limit,
/// as a state machine the receiver feeds with what happened and whose answers it carries out on the consumer.
///
/// - Backlog: once the received blocks held in memory (queued, or in a batch that has not read them yet) exceed
///   `maxBacklogBytes`, input is held (not polled, so librdkafka's bounded prefetch queue holds it; partitions are
///   not paused, because pausing drops what was prefetched) until they have halved.
/// - Rate: a partition that reached `maxRatePerPartition` records in the current one-second window is paused
///   until the next window. A resumed partition is sought back to the offset after the last record received from
///   it: librdkafka 2.0.2 can skip offsets after a pause and resume with batch consumption (#4208).
struct InputFlowControl {
    let maxBacklogBytes: Int
    /// 0: unlimited.
    let maxRatePerPartition: Int
    /// Input is held until the backlog drains.
    private(set) var isInputHeld = false
    /// Partitions paused for the rest of the rate window.
    private(set) var ratePaused: Set<KafkaPartition> = []
    private var rateCounts: [KafkaPartition: Int] = [:]
    private var rateWindowStart: ContinuousClock.Instant

    init(maxBacklogBytes: Int, maxRatePerPartition: Int, now: ContinuousClock.Instant) {
        self.maxBacklogBytes = maxBacklogBytes
        self.maxRatePerPartition = maxRatePerPartition
        rateWindowStart = now
    }

    /// Counts a record of `partition`; true if the partition must now be paused for the rest of the window.
    mutating func received(from partition: KafkaPartition) -> Bool {
        guard maxRatePerPartition > 0 else { return false }
        rateCounts[partition, default: 0] += 1
        guard rateCounts[partition, default: 0] >= maxRatePerPartition else { return false }
        return ratePaused.insert(partition).inserted
    }

    /// Opens a new rate window once a second has passed; returns the partitions to resume.
    mutating func tick(now: ContinuousClock.Instant) -> [KafkaPartition] {
        guard maxRatePerPartition > 0, now - rateWindowStart >= .seconds(1) else { return [] }
        rateWindowStart = now
        rateCounts = [:]
        defer { ratePaused = [] }
        return ratePaused.sorted()
    }

    /// Holds input once the backlog exceeds its bound, takes it again once it has halved; true if that changed.
    mutating func backlog(bytes: Int) -> Bool {
        let hold = isInputHeld ? bytes > maxBacklogBytes / 2 : bytes > maxBacklogBytes
        defer { isInputHeld = hold }
        return hold != isInputHeld
    }

    /// Revoked partitions are no longer paused by the rate limit.
    mutating func revoke(_ partitions: Set<KafkaPartition>) {
        ratePaused.subtract(partitions)
        for partition in partitions { rateCounts[partition] = nil }
    }

    /// How many of the `assigned` partitions are not being read.
    func pausedCount(assigned: Int) -> Int {
        isInputHeld ? assigned : ratePaused.count
    }
}
