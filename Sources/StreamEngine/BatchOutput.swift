/// What one batch (or a window flush) produced.
public struct BatchOutput: Sendable, Equatable {
    /// The records to produce, in sink registration order, then each sink's emission order (empty when a sink
    /// passed to ``StreamGraph/runBatch(time:blocks:assigned:sink:)`` took them as they came).
    public var records: [OutputRecord]
    /// The number of output records, whether kept in ``records`` or handed to a sink.
    public var recordsOut: Int
    /// The number of input records in the batch's blocks.
    public var recordsIn: Int
    /// Input records skipped (collected by each tokenizing stage) with the reason, so that a caller can count them
    /// and send them to a dead-letter topic.
    public var malformed: [MalformedRecord]
    /// Elements dropped because all their windows had closed (counted by each windowed operator).
    public var lateRecords: Int
    /// Elements left out of windows because their event time is too far ahead of the batch time (counted by each
    /// windowed operator).
    public var futureRecords: Int
    /// The watermark after the batch, or `nil` if no record has been seen yet.
    public var watermark: Int64?

    /// Creates a batch output.
    public init(
        records: [OutputRecord], recordsOut: Int? = nil, recordsIn: Int, malformed: [MalformedRecord] = [], lateRecords: Int, futureRecords: Int = 0,
        watermark: Int64?
    ) {
        self.records = records
        self.recordsOut = recordsOut ?? records.count
        self.recordsIn = recordsIn
        self.malformed = malformed
        self.lateRecords = lateRecords
        self.futureRecords = futureRecords
        self.watermark = watermark
    }

    /// The number of malformed input records.
    public var malformedRecords: Int { malformed.count }
}
