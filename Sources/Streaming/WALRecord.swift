import Storage
import StreamEngine

/// What one write-ahead-log entry holds: a received block, partitions newly assigned to the receiver, or the
/// allocation of the entries before it to a batch.
///
/// Recording batch allocations (as Spark's received-block tracker does) lets recovery replay the same batches with
/// the same batch times, so replayed output is identical to what was produced before the crash. Assignments are
/// logged because they decide the watermark: an assigned partition holds it back until it delivers.
enum WALRecord: Equatable {
    /// A block of received records (its bytes are the block's own encoding).
    case block(Block)
    /// Every block and assignment logged before this entry and after the previous allocation forms the batch of
    /// `time`.
    case batchAllocated(time: Int64)
    /// Partitions assigned to the receiver.
    case partitionsAssigned([TopicPartition])

    private static let blockKind: UInt8 = 1
    private static let allocationKind: UInt8 = 2
    private static let assignmentKind: UInt8 = 3

    /// Appends the entry to `log`: a kind byte, then the block bytes (written in place) or the batch time
    /// (little-endian).
    ///
    /// - Returns: The entry's position and its size in bytes.
    func append(to log: WriteAheadLog) throws -> (position: WALPosition, bytes: Int) {
        switch self {
        case .block(let block):
            let position = try block.bytes.withUnsafeBytes { try log.append(prefix: [Self.blockKind], $0) }
            return (position, block.bytes.count + 1)
        case .batchAllocated(let time):
            let bytes = [Self.allocationKind] + withUnsafeBytes(of: time.littleEndian, Array.init)
            return (try log.append(bytes), bytes.count)
        case .partitionsAssigned(let partitions):
            var writer = StateWriter()
            writer.writeUnsigned(UInt64(partitions.count))
            for partition in partitions {
                writer.writeString(partition.topic)
                writer.writeSigned(Int64(partition.partition))
            }
            let bytes = [Self.assignmentKind] + writer.bytes
            return (try log.append(bytes), bytes.count)
        }
    }

    /// Decodes an entry.
    ///
    /// - Throws: ``StreamingError`` `.corruptLog` for an unknown kind or a malformed block.
    init(decoding bytes: [UInt8], at position: WALPosition) throws {
        guard let kind = bytes.first else {
            throw StreamingError(.corruptLog, "empty write-ahead-log entry at \(position)")
        }
        switch kind {
        case Self.blockKind:
            do {
                self = .block(try Block(decoding: Array(bytes.dropFirst())))
            } catch {
                throw StreamingError(.corruptLog, "undecodable block at WAL \(position): \(error)")
            }
        case Self.allocationKind where bytes.count == 9:
            let time = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 1, as: Int64.self) }
            self = .batchAllocated(time: Int64(littleEndian: time))
        case Self.assignmentKind:
            do {
                self = .partitionsAssigned(try StateReader.reading(Array(bytes.dropFirst())) { reader in
                    try (0..<reader.readUnsigned()).map { _ in
                        TopicPartition(topic: try reader.readString(), partition: Int32(truncatingIfNeeded: try reader.readSigned()))
                    }
                })
            } catch {
                throw StreamingError(.corruptLog, "undecodable assignment at WAL \(position): \(error)")
            }
        default:
            throw StreamingError(.corruptLog, "unknown write-ahead-log entry kind \(kind) at \(position)")
        }
    }
}
