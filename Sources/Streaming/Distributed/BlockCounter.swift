import Foundation
import KafkaIO
import StreamEngine

/// Counts the words of stage 1's records on a thread of its own while the stage polls, as standalone mode's batch
/// thread reads the receiver's blocks as they are stored: the stage copies the records it takes into blocks and hands
/// each over, and at a cut takes the counts of every record handed over until then.
final class BlockCounter: @unchecked Sendable {
    private let window: WindowSpec
    /// At most this many bytes of blocks wait: past it, ``submit(_:slots:)`` waits for the counting to catch up.
    private let queueLimit: Int
    private let condition = NSCondition()
    /// Blocks handed over and not counted yet, each with the slots of its sources.
    private var queue: [(block: Block, slots: [KafkaPartition: Int])] = []
    private var queuedBytes = 0
    /// The counts of the blocks counted so far; out of here while a block is being counted.
    private var tally = BatchTally()
    private var isCounting = false
    private var isStopped = false

    init(window: WindowSpec, queueLimit: Int) {
        self.window = window
        self.queueLimit = queueLimit
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "sluice-sources-count"
        thread.start()
    }

    /// Ends the thread once the blocks handed over are counted; blocks handed over later are counted on the caller's
    /// thread.
    func stop() {
        condition.withLock {
            isStopped = true
            condition.broadcast()
        }
    }

    /// Hands a block over, with the tally slot of each source it holds records of; waits while the blocks not yet
    /// counted hold more than the queue limit.
    func submit(_ block: Block, slots: [KafkaPartition: Int]) {
        condition.withLock {
            if isStopped {
                while !queue.isEmpty || isCounting { condition.wait() }
                Self.count(block, slots: slots, into: &tally, window: window)
                return
            }
            while queuedBytes > queueLimit { condition.wait() }
            queue.append((block, slots))
            queuedBytes += block.bytes.count
            condition.broadcast()
        }
    }

    /// The counts of every block handed over, once they are all counted; the next blocks count from zero.
    func take() -> BatchTally {
        condition.withLock {
            while !queue.isEmpty || isCounting { condition.wait() }
            defer { tally = BatchTally() }
            return tally
        }
    }

    private func run() {
        condition.lock()
        defer { condition.unlock() }
        while true {
            while queue.isEmpty && !isStopped { condition.wait() }
            guard !queue.isEmpty else { return }
            let (block, slots) = queue.removeFirst()
            var counting = tally
            tally = BatchTally()
            isCounting = true
            condition.unlock()
            Self.count(block, slots: slots, into: &counting, window: window)
            condition.lock()
            tally = counting
            isCounting = false
            queuedBytes -= block.bytes.count
            condition.broadcast()
        }
    }

    /// Counts a block's records into `tally`, each in its source's slot; a malformed one goes to its list.
    static func count(_ block: Block, slots: [KafkaPartition: Int], into tally: inout BatchTally, window: WindowSpec) {
        var last: (topic: String, partition: Int32, slot: Int)?
        block.forEachRecord { record in
            let slot: Int
            if let last, last.partition == record.partition, last.topic == record.topic {
                slot = last.slot
            } else {
                guard let found = slots[KafkaPartition(topic: record.topic, partition: record.partition)] else {
                    preconditionFailure("a block's record of \(record.topic)[\(record.partition)] has no slot")
                }
                slot = found
                last = (record.topic, record.partition, slot)
            }
            guard let reason = tally.add(record.value, at: record.timestamp, slot: slot, window: window) else { return }
            tally.malformed.append(MalformedRecord(
                record: InputRecord(
                    topic: record.topic, partition: record.partition, offset: record.offset, timestamp: record.timestamp,
                    key: record.key.map { Array($0) }, value: Array(record.value)),
                reason: reason))
        }
    }
}
