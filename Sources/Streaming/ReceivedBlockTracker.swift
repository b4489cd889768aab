import CoreMetrics
import Dispatch
import Metrics
import Storage
import StreamEngine
import Synchronization

/// Holds received blocks until a batch takes them, writing each block and each batch allocation to the
/// write-ahead log first when the log is on.
///
/// Adding a block and allocating a batch are serialised by one lock, so the log's order of blocks and allocations
/// is exactly the order in which batches saw them.
final class ReceivedBlockTracker: Sendable {
    /// What a batch takes: the blocks, the partitions assigned since the last batch, and the position of the
    /// allocation in the log (nil without a log, or for an empty batch).
    struct Allocation {
        var blocks: [Block]
        var assigned: [TopicPartition]
        var position: WALPosition?

        /// The blocks, leaving none here, so that the batch holds their only copy and can release each once read.
        mutating func takeBlocks() -> [Block] {
            defer { blocks = [] }
            return blocks
        }
    }

    private struct State {
        var pending: [Block] = []
        /// How many of the pending blocks were offered to ``ReceivedBlockTracker/readAhead(_:)``.
        var offeredAhead = 0
        var assigned: [TopicPartition] = []
        var pendingBytes = 0
        /// Blocks logged so far; a block's number is the count when it was logged (the first is 1).
        var blocksLogged = 0
    }

    private let log: (any BlockLog)?
    private let state = Mutex(State())
    /// ``State/pendingBytes`` as of its last change, read without the lock (which an append holds across its write):
    /// probes never wait on storage.
    private let backlog = Atomic<Int>(0)
    /// When each sync of the log now running started, by a number of its own (held only to note a start or an end).
    private let syncs = Mutex<(next: Int, started: [Int: ContinuousClock.Instant])>((0, [:]))
    private let metrics: StreamingMetrics
    private let held: HeldInput

    init(log: (any BlockLog)?, metrics: StreamingMetrics) {
        self.log = log
        self.metrics = metrics
        held = HeldInput(gauge: metrics.heldInputBytes)
    }

    /// Whether blocks are written to a write-ahead log.
    var isLogging: Bool { log != nil }

    /// The identity of the log blocks are written to (nil without one).
    var logID: UInt64? { log?.logID }

    /// The bytes the write-ahead log takes on disk (nil without one).
    var logBytesOnDisk: Int? { log?.bytesOnDisk }

    /// The bytes of blocks received but not yet in a batch.
    var backlogBytes: Int { backlog.load(ordering: .relaxed) }

    /// The bytes of received blocks still in memory: the backlog and the blocks of a running batch that it has not
    /// yet read (a batch releases each block once read).
    var heldBytes: Int { held.bytes }

    /// Logs the block and queues it for the next batch. When logging, returns the block's number in the log: it is
    /// durable once ``syncLog()`` has returned a number at least as high.
    ///
    /// - Throws: A storage error if the block could not be written; the log is then unusable and the next batch
    ///   allocation fails too, so nothing built on the block is checkpointed.
    @discardableResult
    func add(_ block: Block) throws -> Int? {
        var number: Int?
        if let log {
            let written = try state.withLock { state in
                let written = try log.append(.block(block)).bytes
                enqueue(block, into: &state)
                state.blocksLogged += 1
                number = state.blocksLogged
                return written
            }
            metrics.walBytesWritten.increment(by: Int64(written))
        } else {
            state.withLock { enqueue(block, into: &$0) }
        }
        metrics.blocksWritten.increment()
        metrics.backlogBytes.record(backlogBytes)
        return number
    }

    /// Makes every block logged so far durable; returns how many blocks that is (0 without a log).
    ///
    /// - Throws: A storage error if the sync failed: the log is unusable after it.
    func syncLog() throws -> Int {
        guard let log else { return 0 }
        let logged = state.withLock { $0.blocksLogged }
        try timedSync(log)
        return logged
    }

    /// Queues a block recovered from the log without logging it again.
    func requeue(_ block: Block) {
        state.withLock { enqueue(block, into: &$0) }
    }

    /// Logs partitions newly assigned to the receiver (made durable with the next sync) for the next batch.
    func noteAssignment(_ partitions: [TopicPartition]) throws {
        try state.withLock { state in
            _ = try log?.append(.partitionsAssigned(partitions))
            state.assigned += partitions
        }
    }

    /// Queues an assignment recovered from the log without logging it again.
    func requeue(assigned partitions: [TopicPartition]) {
        state.withLock { $0.assigned += partitions }
    }

    private func enqueue(_ block: Block, into state: inout State) {
        var block = block
        held.hold(&block)
        state.pending.append(block)
        state.pendingBytes += block.bytes.count
        backlog.store(state.pendingBytes, ordering: .relaxed)
    }

    /// Waits until a batch releases a block it has read, or `milliseconds` pass (for the receiver while its input is
    /// held back by the backlog bound).
    func waitForRelease(milliseconds: Int) {
        held.waitForRelease(milliseconds: milliseconds)
    }

    /// Offers the first queued block not offered yet to `read`, which may replace it (by the block without its
    /// records, once it has read them): the next batch takes what `read` left. Returns false if there was none.
    ///
    /// Call it on the thread that allocates batches: the block is read outside the lock, so that the receiver can
    /// queue the next one meanwhile, and put back at its place, which no allocation can move in between.
    func readAhead(_ read: (inout Block) -> Void) -> Bool {
        guard let (index, offered) = state.withLock({ state -> (Int, Block)? in
            guard state.offeredAhead < state.pending.count else { return nil }
            defer { state.offeredAhead += 1 }
            return (state.offeredAhead, state.pending[state.offeredAhead])
        }) else { return false }
        var block = consume offered
        read(&block)
        state.withLock { $0.pending[index] = block }
        return true
    }

    /// Takes every queued block and assignment for the batch of `time`, logging and syncing the allocation when
    /// logging (an empty batch logs nothing).
    ///
    /// A checkpoint taken after this batch covers every log entry up to and including the allocation's position.
    func allocateBatch(time: Int64) throws -> Allocation {
        // The allocation is appended and the queue emptied under one lock: no block can slip in between.
        let allocation = try state.withLock { state -> Allocation in
            guard !state.pending.isEmpty || !state.assigned.isEmpty else { return Allocation(blocks: [], assigned: [], position: nil) }
            let position = try log?.append(.batchAllocated(time: time)).position
            defer {
                state = State(blocksLogged: state.blocksLogged)
                backlog.store(0, ordering: .relaxed)
            }
            return Allocation(blocks: state.pending, assigned: state.assigned, position: position)
        }
        if let log, allocation.position != nil {
            try timedSync(log)
            metrics.backlogBytes.record(0)
        }
        return allocation
    }

    /// Syncs the log, timed, noting the sync as running meanwhile (see ``stalledSync(after:)``).
    private func timedSync(_ log: any BlockLog) throws {
        let id = syncs.withLock { syncs in
            defer { syncs.next += 1 }
            syncs.started[syncs.next] = .now
            return syncs.next
        }
        defer { _ = syncs.withLock { $0.started.removeValue(forKey: id) } }
        try metrics.walFsyncDuration.measure { try log.sync() }
    }

    /// Why storage looks hung, when a sync of the log has been running for longer than `limit`; nil otherwise.
    /// Read without waiting for the sync (or an append) to return.
    func stalledSync(after limit: Duration) -> String? {
        guard let oldest = syncs.withLock({ $0.started.values.min() }), ContinuousClock.now - oldest > limit else { return nil }
        let seconds = (ContinuousClock.now - oldest) / .seconds(1)
        return "a write-ahead log sync has not returned for \(Int(seconds)) s: the storage may be hung"
    }

    /// Deletes log segments wholly covered by a checkpoint at `position`.
    func truncateLog(coveredBy position: WALPosition) throws {
        _ = try log?.truncate(before: position)
    }
}

/// The bytes of blocks in memory, counted from when the tracker queues a block until its last copy is dropped.
///
/// Each queued block carries a ``Lease`` as its ``Block/lifetime``; the lease's deinit gives the bytes back and wakes a
/// waiting receiver. Every change is recorded in `gauge`. Atomics, not the tracker's lock: a lease can be dropped on
/// any thread, under any lock.
private final class HeldInput: Sendable {
    private let held = Atomic<Int>(0)
    private let waiters = Atomic<Int>(0)
    private let released = DispatchSemaphore(value: 0)
    private let gauge: Gauge

    init(gauge: Gauge) {
        self.gauge = gauge
    }

    var bytes: Int { held.load(ordering: .acquiring) }

    func hold(_ block: inout Block) {
        let bytes = block.bytes.count
        gauge.record(held.add(bytes, ordering: .releasing).newValue)
        block.lifetime = Lease(bytes: bytes, of: self)
    }

    func waitForRelease(milliseconds: Int) {
        waiters.add(1, ordering: .sequentiallyConsistent)
        defer { waiters.subtract(1, ordering: .sequentiallyConsistent) }
        _ = released.wait(timeout: .now() + .milliseconds(milliseconds))
    }

    fileprivate func release(_ bytes: Int) {
        gauge.record(held.subtract(bytes, ordering: .releasing).newValue)
        // A signal nobody waits for makes a later wait return early once, which only means one more look.
        if waiters.load(ordering: .sequentiallyConsistent) > 0 { released.signal() }
    }

    private final class Lease: Sendable {
        let bytes: Int
        let input: HeldInput

        init(bytes: Int, of input: HeldInput) {
            self.bytes = bytes
            self.input = input
        }

        deinit { input.release(bytes) }
    }
}
