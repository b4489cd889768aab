import KafkaIO
import Storage
import StreamEngine

/// Which write-ahead log a checkpoint's state covers, and how far.
enum LogCoverage: Equatable {
    /// No log's entries are in the state: every entry of a log found on disk is newer than the state.
    case none
    /// Every entry of the log `logID` up to and including `position` is in the state.
    case covered(logID: UInt64, through: WALPosition)
    /// Every entry of the log `logID` is in the state and the log may be deleted (it was left by a run with the
    /// log on and consumed by a run with it off).
    case retired(logID: UInt64)
}

/// What a checkpoint holds: the job's state after a batch, and how far input is covered by it.
struct DriverCheckpoint: Equatable {
    static let formatVersion: UInt64 = 2

    /// The time of the last batch whose effects are in `graphState`.
    var batchTime: Int64
    /// The write-ahead-log entries reflected in the state.
    var log: LogCoverage
    /// The next offset to read per partition: every record below it is reflected in the state.
    var offsets: [KafkaPartition: Int64]
    /// The settings the state was built with (name -> value), such as the window length: a restart with another
    /// value would misread the state.
    var settings: [String: String]
    /// The serialized state of the job's operators.
    var graphState: [UInt8]

    init(batchTime: Int64, log: LogCoverage, offsets: [KafkaPartition: Int64], settings: [String: String], graphState: [UInt8]) {
        self.batchTime = batchTime
        self.log = log
        self.offsets = offsets
        self.settings = settings
        self.graphState = graphState
    }

    var encoded: [UInt8] {
        var writer = StateWriter()
        writer.writeUnsigned(Self.formatVersion)
        writer.writeSigned(batchTime)
        switch log {
        case .none:
            writer.writeUnsigned(0)
        case .covered(let logID, let position):
            writer.writeUnsigned(1)
            writer.writeFixed64(logID)
            writer.writeFixed64(position.segment)
            writer.writeFixed64(position.offset)
        case .retired(let logID):
            writer.writeUnsigned(2)
            writer.writeFixed64(logID)
        }
        writer.writeUnsigned(UInt64(offsets.count))
        for (partition, offset) in offsets.sorted(by: { $0.key < $1.key }) {
            writer.writeString(partition.topic)
            writer.writeSigned(Int64(partition.partition))
            writer.writeSigned(offset)
        }
        writer.writeUnsigned(UInt64(settings.count))
        for (name, value) in settings.sorted(by: { $0.key < $1.key }) {
            writer.writeString(name)
            writer.writeString(value)
        }
        writer.writeBytes(graphState)
        return writer.bytes
    }

    /// Decodes a checkpoint of this format or of version 1 (no log identity: its log is identity 0; no settings).
    ///
    /// - Throws: ``StreamingError`` `.unsupportedVersion` for a format this build does not know, `.corruptLog`
    ///   for malformed content.
    init(decoding bytes: [UInt8]) throws {
        self = try StateReader.reading(bytes) { reader in try Self(reading: &reader) }
    }

    private init(reading reader: inout StateReader) throws {
        do {
            let version = try reader.readUnsigned()
            guard version == 1 || version == Self.formatVersion else {
                throw StreamingError(.unsupportedVersion, "checkpoint format version \(version); this build reads 1 and \(Self.formatVersion)")
            }
            batchTime = try reader.readSigned()
            log = try Self.readCoverage(&reader, version: version)
            offsets = [:]
            for _ in 0..<(try reader.readUnsigned()) {
                let topic = try reader.readString()
                let partition = Int32(truncatingIfNeeded: try reader.readSigned())
                offsets[KafkaPartition(topic: topic, partition: partition)] = try reader.readSigned()
            }
            settings = [:]
            if version > 1 {
                for _ in 0..<(try reader.readUnsigned()) {
                    settings[try reader.readString()] = try reader.readString()
                }
            }
            graphState = try reader.readBytes()
        } catch let error as StreamingError {
            throw error
        } catch {
            throw StreamingError(.corruptLog, "malformed checkpoint", underlying: error)
        }
    }

    private static func readCoverage(_ reader: inout StateReader, version: UInt64) throws -> LogCoverage {
        let kind = try reader.readUnsigned()
        let logID = version == 1 || kind == 0 ? 0 : try reader.readFixed64()
        switch kind {
        case 0: return .none
        case 1: return .covered(logID: logID, through: WALPosition(segment: try reader.readFixed64(), offset: try reader.readFixed64()))
        case 2 where version > 1: return .retired(logID: logID)
        default: throw StreamingError(.corruptLog, "malformed checkpoint: log coverage kind \(kind)")
        }
    }
}
