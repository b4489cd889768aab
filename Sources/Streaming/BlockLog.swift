import Storage

/// Where received blocks and batch allocations are made durable: the write-ahead log, or a test's fake of it.
///
/// An appended entry is durable only once ``sync()`` returns; the receiver commits a block's offsets only after
/// that (``ReceivedBlockTracker/add(_:)``).
protocol BlockLog: AnyObject, Sendable {
    /// The log's identity, recorded in checkpoints next to positions.
    var logID: UInt64 { get }
    /// Appends an entry; durable after the next ``sync()``.
    func append(_ record: WALRecord) throws -> (position: WALPosition, bytes: Int)
    /// Makes every appended entry durable.
    func sync() throws
    /// Deletes whole segments before `position`.
    func truncate(before position: WALPosition) throws -> Int
    /// The bytes the log takes on disk.
    var bytesOnDisk: Int { get }
    /// Closes the log.
    func close()
}

extension WriteAheadLog: BlockLog {
    func append(_ record: WALRecord) throws -> (position: WALPosition, bytes: Int) {
        try record.append(to: self)
    }
}
