import Foundation
import KafkaIO

/// How a ``StreamingContext`` receives, batches, stores and emits.
///
/// The service fills this from its environment; a program using the library sets it directly.
public struct StreamingConfiguration: Sendable {
    /// Brokers and librdkafka passthrough properties for the consumer and the producer.
    ///
    /// Default: `localhost:9092`, no extra properties.
    public var kafka: KafkaConfig
    /// The topics to consume.
    ///
    /// Default: `["lines"]`.
    public var inputTopics: [String]
    /// The consumer group.
    ///
    /// Default: `sluice-wordcount`.
    public var groupID: String
    /// How often received blocks form a batch, in milliseconds.
    ///
    /// Default: 1000.
    public var batchIntervalMilliseconds: Int
    /// How often received records are cut into a block (written to the WAL, then committed), in milliseconds.
    ///
    /// Default: 200.
    public var blockIntervalMilliseconds: Int
    /// A block is also cut when it reaches this many bytes.
    ///
    /// Default: 8 MiB.
    public var maxBlockBytes: Int
    /// The directory of the write-ahead log (`wal/`) and the checkpoints (`checkpoints/`).
    ///
    /// Default: `./sluice-data`.
    public var checkpointDirectory: String
    /// Write every block to the write-ahead log and commit offsets only once it is durable. Without it, offsets are
    /// committed after the batch that used the records is checkpointed (at-least-once output, no WAL cost).
    ///
    /// Default: `true`.
    public var isWriteAheadLogEnabled: Bool
    /// On a corrupt entry in the middle of the WAL, skip the rest of that segment with a warning instead of refusing
    /// to start. Records in the skipped part are lost.
    ///
    /// Default: `false`.
    public var skipsCorruptWriteAheadLog: Bool
    /// Write a checkpoint after every N batches.
    ///
    /// Default: 1.
    public var checkpointEveryBatches: Int
    /// At most this many records per second are read from each partition; 0 is unlimited.
    ///
    /// Default: 0.
    public var maxRatePerPartition: Int
    /// When received blocks held in memory (queued, or in the running batch and not yet read by it) take more than
    /// this many bytes, the receiver stops taking records until they halve, and the next batch starts at once. This
    /// bounds the memory used for received input and the size of a batch, not the rate.
    ///
    /// Default: 48 MiB.
    public var maxBacklogBytes: Int
    /// Read up to the partitions' ends as they were at start-up, process everything, flush all windows, checkpoint,
    /// commit and stop.
    ///
    /// Default: `false`.
    public var stopsAtEnd: Bool
    /// Where malformed input records (for example invalid UTF-8) are copied before they are skipped; nil: skip only.
    ///
    /// Default: nil.
    public var deadLetterTopic: String?
    /// How long a member may be silent before its group gives its partitions to others, in milliseconds.
    ///
    /// Default: 10000.
    public var sessionTimeoutMilliseconds: Int
    /// How far a record's event time may be ahead of its batch time: a later record does not move the watermark and
    /// is left out of windows (counted), so one bad clock cannot close every window for good.
    ///
    /// Default: 3,600,000 (one hour).
    public var maxEventTimeAheadMilliseconds: Int64
    /// How many threads read one batch's input blocks at once (``StreamGraph/parallelism``); the output does not
    /// depend on it.
    ///
    /// Default: ``defaultEngineThreads``.
    public var engineThreads: Int
    /// The cores less one, at least 1: the receiver and librdkafka's threads keep about one core busy while a batch
    /// runs, and a second engine thread on a two-core machine only takes turns with them.
    public static let defaultEngineThreads = max(1, ProcessInfo.processInfo.activeProcessorCount - 1)
    /// The settings the job's state depends on (name -> value), stored in every checkpoint: a restart with a
    /// different value for a name the checkpoint holds is refused (``StreamingError/Code/settingChanged``), because
    /// the restored state would be misread. Name them as your users set them (the service uses its variables).
    ///
    /// Default: none.
    public var stateSettings: [String: String]
    /// Each batch's output in one Kafka transaction with its progress: in standalone mode ``BatchTransactions``
    /// (needs the write-ahead log), in distributed mode ``StageTransactions``.
    ///
    /// Default: `false`.
    public var isExactlyOnce: Bool
    /// Static group membership (`group.instance.id`): a restart within the session timeout keeps the partitions,
    /// and replaces a killed member at once.
    ///
    /// Default: nil (dynamic membership).
    public var groupInstanceID: String?

    public init(
        kafka: KafkaConfig = KafkaConfig(),
        inputTopics: [String] = ["lines"],
        groupID: String = "sluice-wordcount",
        batchIntervalMilliseconds: Int = 1000,
        blockIntervalMilliseconds: Int = 200,
        maxBlockBytes: Int = 8 << 20,
        checkpointDirectory: String = "./sluice-data",
        isWriteAheadLogEnabled: Bool = true,
        skipsCorruptWriteAheadLog: Bool = false,
        checkpointEveryBatches: Int = 1,
        maxRatePerPartition: Int = 0,
        maxBacklogBytes: Int = 48 << 20,
        stopsAtEnd: Bool = false,
        deadLetterTopic: String? = nil,
        sessionTimeoutMilliseconds: Int = 10_000,
        maxEventTimeAheadMilliseconds: Int64 = 3_600_000,
        engineThreads: Int = StreamingConfiguration.defaultEngineThreads,
        stateSettings: [String: String] = [:],
        isExactlyOnce: Bool = false,
        groupInstanceID: String? = nil
    ) {
        self.kafka = kafka
        self.inputTopics = inputTopics
        self.groupID = groupID
        self.batchIntervalMilliseconds = batchIntervalMilliseconds
        self.blockIntervalMilliseconds = blockIntervalMilliseconds
        self.maxBlockBytes = maxBlockBytes
        self.checkpointDirectory = checkpointDirectory
        self.isWriteAheadLogEnabled = isWriteAheadLogEnabled
        self.skipsCorruptWriteAheadLog = skipsCorruptWriteAheadLog
        self.checkpointEveryBatches = checkpointEveryBatches
        self.maxRatePerPartition = maxRatePerPartition
        self.maxBacklogBytes = maxBacklogBytes
        self.stopsAtEnd = stopsAtEnd
        self.deadLetterTopic = deadLetterTopic
        self.sessionTimeoutMilliseconds = sessionTimeoutMilliseconds
        self.maxEventTimeAheadMilliseconds = maxEventTimeAheadMilliseconds
        self.engineThreads = engineThreads
        self.stateSettings = stateSettings
        self.isExactlyOnce = isExactlyOnce
        self.groupInstanceID = groupInstanceID
    }

    /// Checks the values that the runtime divides by or sizes with.
    ///
    /// - Throws: ``StreamingError`` `.invalidConfiguration` naming the first bad property.
    public func validate() throws {
        let positive: [(String, Int)] = [
            ("batchIntervalMilliseconds", batchIntervalMilliseconds), ("blockIntervalMilliseconds", blockIntervalMilliseconds),
            ("maxBlockBytes", maxBlockBytes), ("checkpointEveryBatches", checkpointEveryBatches),
            ("maxBacklogBytes", maxBacklogBytes), ("sessionTimeoutMilliseconds", sessionTimeoutMilliseconds),
            ("engineThreads", engineThreads),
        ]
        for (name, value) in positive where value <= 0 {
            throw StreamingError(.invalidConfiguration, "\(name) must be positive, not \(value)")
        }
        guard maxRatePerPartition >= 0 else {
            throw StreamingError(.invalidConfiguration, "maxRatePerPartition must be 0 (unlimited) or positive, not \(maxRatePerPartition)")
        }
        guard maxEventTimeAheadMilliseconds >= 0 else {
            throw StreamingError(.invalidConfiguration, "maxEventTimeAheadMilliseconds must not be negative")
        }
        guard !inputTopics.isEmpty else { throw StreamingError(.invalidConfiguration, "inputTopics is empty") }
    }
}
