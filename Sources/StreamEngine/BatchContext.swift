/// The state of one batch run, shared by all operators while it runs.
final class BatchContext {
    /// The batch time handed to sinks.
    let time: Int64
    let blocks: [Block]
    /// The watermark when the batch started: windows it closed are closed for this batch's elements.
    let previousWatermark: Int64?
    /// The watermark at the end of the batch, which decides the windows emitted now.
    let watermark: Int64?
    var malformed: [InputRecord] = []
    var lateRecords = 0
    var records: [OutputRecord] = []
    private var cleanups: [() -> Void] = []

    init(time: Int64, blocks: [Block], previousWatermark: Int64?, watermark: Int64?) {
        self.time = time
        self.blocks = blocks
        self.previousWatermark = previousWatermark
        self.watermark = watermark
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
            recordsIn: blocks.reduce(0) { $0 + $1.recordCount },
            malformed: malformed,
            lateRecords: lateRecords,
            watermark: watermark
        )
    }
}
