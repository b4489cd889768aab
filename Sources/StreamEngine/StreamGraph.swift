/// A stream-processing job: a graph of ``DStream``s built once, then driven batch by batch.
///
/// Runs are deterministic: the same sequence of batches yields identical outputs and
/// checkpoints, so a batch replayed after a crash (from the checkpoint of the batch before)
/// emits the same records.
///
///     let graph = StreamGraph()
///     let counts = graph.input().flatMapWords().countByValue()
///     counts.output { batchTime, pairs, emit in ... }
///     let output = graph.runBatch(time: now, blocks: blocks)
public final class StreamGraph {
    /// The current checkpoint format version.
    static let checkpointVersion: UInt8 = 3

    private struct StatefulOperator {
        let store: any AnyStateStore
        let evaluate: (BatchContext) -> Void
        /// A windowed operator: marks its open windows emitted by a flush, returning what undoes that.
        let markFlushed: (() -> () -> Void)?
    }

    /// The event-time watermark (`Int64.max` after ``flushWindows()``), or `nil` before the first record.
    ///
    /// It is the smallest of the input partitions' latest record timestamps, over the partitions that had records
    /// within ``idleAfterMilliseconds`` of batch time, and it never goes back. A partition that lags behind therefore
    /// holds the watermark back (its records are not late just because another partition ran ahead), while a
    /// partition that went quiet stops holding it back once it has been idle that long.
    ///
    /// It moves only in batches that have records, and idleness is measured in batch time, never in a count of
    /// batches: both are in the write-ahead log, so a batch replayed after a crash computes the same watermark and
    /// closes the same windows as the original run, however many empty batches ran in between.
    public private(set) var watermark: Int64?
    /// How much batch time without records makes a partition idle (no longer holding the watermark back).
    public let idleAfterMilliseconds: Int64
    /// How far an event time may be ahead of its batch time. A later record (a bad clock, a year-2100 timestamp)
    /// does not move the watermark and is left out of windows (``BatchOutput/futureRecords``), but is otherwise
    /// processed. Batch time, not the wall clock, keeps a replay identical.
    public let maxEventTimeAheadMilliseconds: Int64
    /// How many threads may read one batch's blocks at once (see ``DStream/flatMapWords()``); the output does not
    /// depend on it.
    public let parallelism: Int
    /// The latest record timestamp of each input partition, and the batch time that last had its records.
    private var partitionClocks: [TopicPartition: (latest: Int64, lastSeen: Int64)] = [:]
    /// Reads a block's records ahead of its batch, when one stream reads the input this way (``DStream/flatMapWords()``).
    var inputReadAhead: ((inout Block) -> Void)?
    /// Called on the batch thread once the running batch has read its input (``DStream/flatMapWords()``, when it
    /// reads ahead): from then until the next ``runBatch(time:blocks:assigned:sink:)``, the batch touches nothing that
    /// ``readAhead(_:nextBatchAfter:)`` does, so one other thread may call that meanwhile, for the next batch.
    public var inputWasRead: (() -> Void)?
    /// Whether ``readAhead(_:nextBatchAfter:)`` left a block for the next batch to read (it then reads no more).
    private var leftABlockForItsBatch = false
    private var sinks: [(BatchContext) -> Void] = []
    private var stateful: [StatefulOperator] = []
    private lazy var inputStream = DStream<InputRecord>(graph: self, isGraphInput: true) {
        InputRecord.elements(of: $0.takeBlocks())
    }

    /// Creates an empty graph.
    ///
    /// - Parameters:
    ///   - idleAfterMilliseconds: batch time without records after which a partition no longer holds the watermark
    ///     back (at least 1).
    ///   - maxEventTimeAheadMilliseconds: how far an event time may be ahead of its batch time.
    ///   - parallelism: how many threads may read one batch's blocks at once (at least 1).
    public init(idleAfterMilliseconds: Int64 = 10_000, maxEventTimeAheadMilliseconds: Int64 = .max, parallelism: Int = 1) {
        self.idleAfterMilliseconds = max(1, idleAfterMilliseconds)
        self.maxEventTimeAheadMilliseconds = max(0, maxEventTimeAheadMilliseconds)
        self.parallelism = max(1, parallelism)
    }

    /// The stream of input records: one element per record of the batch's blocks, in block order.
    public func input() -> DStream<InputRecord> {
        inputStream
    }

    /// Runs one batch: computes every sink over `blocks`, then advances the watermark.
    ///
    /// The graph takes the blocks: when nothing else holds them, each is released as soon as it has been read.
    ///
    /// - Parameters:
    ///   - assigned: Input partitions assigned since the previous batch. Each holds the watermark back until it
    ///     delivers a record or has been idle for ``idleAfterMilliseconds`` of batch time since its assignment: a
    ///     partition that starts late (a broker may answer one partition per fetch) is not late.
    ///   - sink: Takes each output record as it is produced, in order, instead of collecting them in
    ///     ``BatchOutput/records``: a batch that changes millions of totals then never holds all its records.
    public func runBatch(
        time: Int64, blocks: consuming [Block], assigned: [TopicPartition] = [], sink: ((OutputRecord) -> Void)? = nil
    ) -> BatchOutput {
        leftABlockForItsBatch = false
        for partition in assigned {
            partitionClocks[partition] = (partitionClocks[partition]?.latest ?? Self.noRecordYet, time)
        }
        var advanced = watermark
        let horizon = eventTimeHorizon(batchTime: time)
        if !blocks.isEmpty {
            for index in blocks.indices {
                for (range, latest) in zip(blocks[index].ranges, blocks[index].latestTimestamps(notAfter: horizon)) {
                    guard let latest else { continue }
                    let partition = TopicPartition(topic: range.topic, partition: range.partition)
                    partitionClocks[partition] = (max(partitionClocks[partition]?.latest ?? Self.noRecordYet, latest), time)
                }
            }
            let active = partitionClocks.values.filter { time - $0.lastSeen < idleAfterMilliseconds }
            // An active partition without records yet holds the watermark where it is.
            let candidate = active.contains { $0.latest == Self.noRecordYet } ? nil : active.map(\.latest).min()
            advanced = [watermark, candidate].compactMap { $0 }.max()
        }
        return run(BatchContext(
            time: time, blocks: consume blocks, previousWatermark: watermark, watermark: advanced, eventTimeHorizon: horizon, sink: sink))
    }

    /// Reads the records of a block queued for the next batch while the batch thread has nothing else to do, so that
    /// the batch finds them read; the output does not change.
    ///
    /// It reads when the graph's input is read by one ``DStream/flatMapWords()`` stream, and the block has no record
    /// after the event-time horizon of any batch later than `lastBatchTime`. Such a block is left for its batch, which
    /// must read it to find its latest timestamp within the horizon, and so is every later block until the next
    /// ``runBatch``: the words read ahead of a batch are those of its first blocks.
    ///
    /// - Returns: Whether it read the block; `block` is then ``Block/droppingRecords()``, and the next ``runBatch``
    ///   must be given it after the blocks read ahead before it and before any other block.
    public func readAhead(_ block: inout Block, nextBatchAfter lastBatchTime: Int64) -> Bool {
        guard let inputReadAhead, inputStream.hasSingleConsumer, !block.recordsWereReadAhead, !leftABlockForItsBatch else {
            return false
        }
        guard lastBatchTime < .max, block.latestTimestamps.allSatisfy({ $0 <= eventTimeHorizon(batchTime: lastBatchTime + 1) }) else {
            leftABlockForItsBatch = true
            return false
        }
        inputReadAhead(&block)
        return true
    }

    /// The latest event time the batch of `batchTime` accepts (see ``maxEventTimeAheadMilliseconds``).
    private func eventTimeHorizon(batchTime: Int64) -> Int64 {
        batchTime > .max - maxEventTimeAheadMilliseconds ? .max : batchTime + maxEventTimeAheadMilliseconds
    }

    /// The clock of an assigned partition that has not delivered a record yet.
    private static let noRecordYet = Int64.min

    /// Ends the input: runs an empty batch at the watermark `Int64.max`, which emits every open
    /// window. Sinks see the previous watermark (or 0 before any record) as the batch time.
    /// Elements of any later batch are late.
    public func flushWindows() -> BatchOutput {
        run(BatchContext(time: watermark ?? 0, blocks: [], previousWatermark: watermark, watermark: .max))
    }

    /// The checkpoint of the state as ``flushWindows()`` is about to leave it for a later run: the windows still
    /// open (with the real watermark), each marked as emitted with its current values, so that a later run emits a
    /// window again only for the keys that change. Take it just before ``flushWindows()``; the state is unchanged.
    public func checkpointAsFlushed() -> [UInt8] {
        let undo = stateful.compactMap { $0.markFlushed?() }
        defer { for step in undo { step() } }
        return checkpoint()
    }

    /// Serializes the watermark and every stateful operator's state, in registration order.
    ///
    /// Layout: version byte, then varint watermark presence (0/1) and zigzag watermark, the
    /// partition clocks (sorted: topic, partition, latest timestamp, last batch time seen), varint
    /// operator count, and per operator its name and length-prefixed state. Identical state
    /// gives identical bytes.
    public func checkpoint() -> [UInt8] {
        var writer = StateWriter()
        writer.writeUnsigned(watermark == nil ? 0 : 1)
        if let watermark { writer.writeSigned(watermark) }
        writer.writeUnsigned(UInt64(partitionClocks.count))
        for (partition, clock) in partitionClocks.sorted(by: { $0.key < $1.key }) {
            writer.writeString(partition.topic)
            writer.writeSigned(Int64(partition.partition))
            writer.writeSigned(clock.latest)
            writer.writeSigned(clock.lastSeen)
        }
        writer.writeUnsigned(UInt64(stateful.count))
        for operation in stateful {
            var state = StateWriter()
            operation.store.encode(to: &state)
            writer.writeString(operation.store.name)
            writer.writeBytes(state.bytes)
        }
        return [Self.checkpointVersion] + writer.bytes
    }

    /// Replaces the graph's state with a checkpoint taken from a graph built the same way.
    ///
    /// On error the graph is left unchanged.
    public func restore(from checkpoint: [UInt8]) throws(StreamEngineError) {
        guard let version = checkpoint.first else { throw .unsupportedVersion(nil) }
        guard version == Self.checkpointVersion else { throw .unsupportedVersion(version) }
        let decoded = checkpoint.withUnsafeBytes { raw in
            Result { () throws(StreamEngineError) in
                var reader = StateReader(ByteCursor(raw, position: 1))
                return try decodeState(from: &reader)
            }
        }
        try decoded.get()()
    }

    func addSink(_ sink: @escaping (BatchContext) -> Void) {
        sinks.append(sink)
    }

    /// Registers a stateful stream so it is checkpointed and computed in every batch; a windowed one with what
    /// marks its open windows flushed (see ``checkpointAsFlushed()``).
    func register<Value, Element>(
        _ store: StateStore<Value>, evaluating stream: DStream<Element>, markFlushed: (() -> () -> Void)? = nil
    ) {
        stateful.append(StatefulOperator(store: store, evaluate: { _ = stream.elements(in: $0) }, markFlushed: markFlushed))
    }

    private func run(_ context: BatchContext) -> BatchOutput {
        for sink in sinks {
            sink(context)
        }
        for operation in stateful {
            operation.evaluate(context)
        }
        watermark = context.watermark
        return context.finish()
    }

    /// Decodes a checkpoint body; the returned closure applies it.
    private func decodeState(from reader: inout StateReader) throws(StreamEngineError) -> () -> Void {
        let watermark: Int64? =
            switch try reader.readUnsigned() {
            case 0: nil
            case 1: try reader.readSigned()
            default: throw .malformed("watermark")
            }
        var clocks: [TopicPartition: (latest: Int64, lastSeen: Int64)] = [:]
        for _ in 0..<(try reader.readUnsigned()) {
            let topic = try reader.readString()
            guard let partition = Int32(exactly: try reader.readSigned()) else { throw .malformed("partition") }
            clocks[TopicPartition(topic: topic, partition: partition)] = (try reader.readSigned(), try reader.readSigned())
        }
        let count = try reader.readUnsigned()
        var names: [String] = []
        var applies: [() -> Void] = []
        for _ in 0..<count {
            let name = try reader.readString()
            names.append(name)
            if names.count <= stateful.count, stateful[names.count - 1].store.name == name {
                let store = stateful[names.count - 1].store
                applies.append(try reader.readSection(name) { (state) throws(StreamEngineError) in try store.decode(from: &state) })
            } else {
                _ = try reader.readBytes()
            }
        }
        let expected = stateful.map(\.store.name)
        guard names == expected else { throw .operatorMismatch(expected: expected, found: names) }
        guard reader.isAtEnd else { throw .malformed("trailing bytes") }
        return {
            self.watermark = watermark
            self.partitionClocks = clocks
            for apply in applies {
                apply()
            }
        }
    }
}
