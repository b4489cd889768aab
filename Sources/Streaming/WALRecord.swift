import Storage
import StreamEngine

/// What one write-ahead-log entry holds: a received block, or the allocation of the blocks before it to a batch.
///
/// Recording batch allocations (as Spark's received-block tracker does) lets recovery replay the same batches with
/// the same batch times, so replayed output is identical to what was produced before the crash.
enum WALRecord: Equatable {
    /// A block of received records (its bytes are the block's own encoding).
    case block(Block)
    /// Every block logged before this entry and after the previous allocation forms the batch of `time`.
    case batchAllocated(time: Int64)

    private static let blockKind: UInt8 = 1
    private static let allocationKind: UInt8 = 2

    /// The entry's bytes: a kind byte, then the block bytes or the batch time (little-endian).
    var encoded: [UInt8] {
        switch self {
        case .block(let block):
            var bytes = [UInt8]()
            bytes.reserveCapacity(block.bytes.count + 1)
            bytes.append(Self.blockKind)
            bytes.append(contentsOf: block.bytes)
            return bytes
        case .batchAllocated(let time):
            return [Self.allocationKind] + withUnsafeBytes(of: time.littleEndian, Array.init)
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
        default:
            throw StreamingError(.corruptLog, "unknown write-ahead-log entry kind \(kind) at \(position)")
        }
    }
}
