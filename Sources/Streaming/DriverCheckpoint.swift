import KafkaIO
import Storage
import StreamEngine

/// What a checkpoint holds: the job's state after a batch, and how far input is covered by it.
struct DriverCheckpoint: Equatable {
    static let formatVersion: UInt64 = 1

    /// The time of the last batch whose effects are in `graphState`.
    var batchTime: Int64
    /// Every WAL entry up to and including this position is reflected in the state (nil without a WAL).
    var walPosition: WALPosition?
    /// The next offset to read per partition: every record below it is reflected in the state.
    var offsets: [KafkaPartition: Int64]
    /// The serialized state of the job's operators.
    var graphState: [UInt8]

    var encoded: [UInt8] {
        var writer = StateWriter()
        writer.writeUnsigned(Self.formatVersion)
        writer.writeSigned(batchTime)
        if let walPosition {
            writer.writeUnsigned(1)
            writer.writeFixed64(walPosition.segment)
            writer.writeFixed64(walPosition.offset)
        } else {
            writer.writeUnsigned(0)
        }
        writer.writeUnsigned(UInt64(offsets.count))
        for (partition, offset) in offsets.sorted(by: { $0.key < $1.key }) {
            writer.writeString(partition.topic)
            writer.writeSigned(Int64(partition.partition))
            writer.writeSigned(offset)
        }
        writer.writeBytes(graphState)
        return writer.bytes
    }

    /// Decodes a checkpoint.
    ///
    /// - Throws: ``StreamingError`` `.unsupportedVersion` for a format this build does not know, `.corruptLog`
    ///   for malformed content.
    init(decoding bytes: [UInt8]) throws {
        self = try StateReader.reading(bytes) { reader in try Self(reading: &reader) }
    }

    private init(reading reader: inout StateReader) throws {
        do {
            let version = try reader.readUnsigned()
            guard version == Self.formatVersion else {
                throw StreamingError(.unsupportedVersion, "checkpoint format version \(version); this build reads \(Self.formatVersion)")
            }
            batchTime = try reader.readSigned()
            walPosition = try reader.readUnsigned() == 1 ? WALPosition(segment: try reader.readFixed64(), offset: try reader.readFixed64()) : nil
            offsets = [:]
            for _ in 0..<(try reader.readUnsigned()) {
                let topic = try reader.readString()
                let partition = Int32(truncatingIfNeeded: try reader.readSigned())
                offsets[KafkaPartition(topic: topic, partition: partition)] = try reader.readSigned()
            }
            graphState = try reader.readBytes()
        } catch let error as StreamingError {
            throw error
        } catch {
            throw StreamingError(.corruptLog, "malformed checkpoint", underlying: error)
        }
    }

    init(batchTime: Int64, walPosition: WALPosition?, offsets: [KafkaPartition: Int64], graphState: [UInt8]) {
        self.batchTime = batchTime
        self.walPosition = walPosition
        self.offsets = offsets
        self.graphState = graphState
    }
}
