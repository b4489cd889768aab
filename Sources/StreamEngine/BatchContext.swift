/// The state of one batch run, shared by all operators while it runs.
final class BatchContext {
    /// The batch time handed to sinks.
    let time: Int64
    /// The input blocks, until a reader takes them (see ``takeBlocks()``).
    private var blocks: [Block]
    private let recordCount: Int
    /// The watermark when the batch started: windows it closed are closed for this batch's elements.
    let previousWatermark: Int64?
    /// The watermark at the end of the batch, which decides the windows emitted now.
    let watermark: Int64?
    /// The latest event time this batch accepts into windows and the watermark (see ``StreamGraph``).
    let eventTimeHorizon: Int64
    var malformed: [MalformedRecord] = []
    var lateRecords = 0
    var futureRecords = 0
    /// The records kept for ``BatchOutput/records`` (none when a `sink` takes them as they come).
    private var records: [OutputRecord] = []
    private var emitted = 0
    private let sink: ((OutputRecord) -> Void)?
    private var cleanups: [() -> Void] = []

    init(
        time: Int64, blocks: consuming [Block], previousWatermark: Int64?, watermark: Int64?, eventTimeHorizon: Int64 = .max,
        sink: ((OutputRecord) -> Void)? = nil
    ) {
        self.time = time
        self.sink = sink
        self.eventTimeHorizon = eventTimeHorizon
        self.recordCount = blocks.reduce(0) { $0 + $1.recordCount }
        self.blocks = blocks
        self.previousWatermark = previousWatermark
        self.watermark = watermark
    }

    /// Hands the input blocks to their only reader, which may then release each block once it has read it.
    func takeBlocks() -> [Block] {
        defer { blocks = [] }
        return blocks
    }

    /// Hands an output record to the sink, or keeps it for the result.
    func emit(_ record: OutputRecord) {
        emitted += 1
        if let sink { sink(record) } else { records.append(record) }
    }

    /// Registers work to run once the batch is done (dropping per-batch caches).
    func atEnd(_ cleanup: @escaping () -> Void) {
        cleanups.append(cleanup)
    }

    /// Runs the registered cleanups and returns the batch's result.
    func finish() -> BatchOutput {
        for cleanup in cleanups {
            cleanup()
        }
        return BatchOutput(
            records: records,
            recordsOut: emitted,
            recordsIn: recordCount,
            malformed: malformed,
            lateRecords: lateRecords,
            futureRecords: futureRecords,
            watermark: watermark
        )
    }
}
