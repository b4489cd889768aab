import Foundation
import KafkaIO
import Logging
import Synchronization

/// Who owns which shard, and where its state queries are answered: every instance of a group announces its owned
/// shards and its advertised HTTP address in the compacted `<group>-members` topic (key: the instance id), and
/// reads the topic to its end and on, so that a query for a word of another instance's shard is sent there.
///
/// An announcement goes out when the owned shards change (checked every ``interval``), and again every 30 s, and
/// with no shards when the instance stops. Where two instances claim a shard (the earlier owner was killed, or has
/// not announced its release yet), the later announcement wins; a shard no instance claims has no owner until its
/// next owner has restored it and announced it. Kafka is the directory: there is no membership protocol of sluice's
/// own.
final class ShardDirectory: Sendable {
    /// How often the owned shards are compared with the last announcement.
    static let interval = Duration.seconds(1)
    static let reannounceInterval = Duration.seconds(30)

    /// One instance's latest announcement.
    struct Member: Equatable, Sendable {
        var instanceID: String
        var address: String
        var shards: [Int32]
        /// When it was made (ms since the epoch, the announcer's clock).
        var at: Int64
    }

    private let topic: String
    private let instanceID: String
    private let address: String
    private let producer: KafkaProducer
    private let reader: KafkaConsumer
    private let ownedShards: @Sendable () -> [Int32]
    private let logger: Logger
    private let state = Mutex<(members: [String: Member], isStopped: Bool)>(([:], false))
    private let stopped = DispatchSemaphore(value: 0)

    init(
        topic: String, instanceID: String, address: String, kafka: KafkaConfig, groupID: String, producer: KafkaProducer,
        logger: Logger, ownedShards: @escaping @Sendable () -> [Int32]
    ) throws {
        self.topic = topic
        self.instanceID = instanceID
        self.address = address
        self.producer = producer
        self.logger = logger
        self.ownedShards = ownedShards
        reader = try KafkaConsumer(config: KafkaConsumerConfig(common: kafka, groupID: groupID, reportsEndOfPartition: false), logger: logger)
    }

    /// The instance that last announced `shard`, other than this one, and its address; nil if none did.
    func owner(of shard: Int32) -> Member? {
        state.withLock { state in
            state.members.values.filter { $0.shards.contains(shard) }.max { ($0.at, $0.instanceID) < ($1.at, $1.instanceID) }
        }.flatMap { $0.instanceID == instanceID ? nil : $0 }
    }

    /// Every instance's latest announcement, by instance id.
    var members: [Member] { state.withLock { $0.members.values.sorted { $0.instanceID < $1.instanceID } } }

    /// Reads and announces on a thread of its own, until ``stop()``.
    func start() throws {
        try reader.assign([KafkaPartition(topic: topic, partition: 0): -2])  // -2: from the beginning
        let thread = Thread { [self] in
            var announced: (shards: [Int32], at: ContinuousClock.Instant)?
            var nextCheck = ContinuousClock.now
            while !state.withLock({ $0.isStopped }) {
                _ = try? reader.poll(timeout: .milliseconds(100)) { event in
                    guard case .message(let message) = event, let key = message.key,
                        let member = Self.member(instanceID: String(decoding: key, as: UTF8.self), from: Array(message.value))
                    else { return }
                    state.withLock { $0.members[member.instanceID] = member }
                }
                guard ContinuousClock.now >= nextCheck else { continue }
                nextCheck = .now + Self.interval
                let shards = ownedShards()
                if let announced, announced.shards == shards, ContinuousClock.now - announced.at < Self.reannounceInterval { continue }
                if announce(shards) { announced = (shards, .now) }
            }
            _ = announce([])
            reader.close()
            stopped.signal()
        }
        thread.name = "sluice-directory"
        thread.start()
    }

    /// Announces that this instance owns nothing any more, and ends the thread.
    func stop() {
        guard !state.withLock({ state in defer { state.isStopped = true }; return state.isStopped }) else { return }
        _ = stopped.wait(timeout: .now() + .seconds(10))
    }

    /// Produces this instance's announcement; whether it was delivered.
    private func announce(_ shards: [Int32]) -> Bool {
        let member = Member(instanceID: instanceID, address: address, shards: shards, at: WallClock.milliseconds())
        do {
            try producer.send(KafkaProducerRecord(topic: topic, partition: 0, key: Array(instanceID.utf8), value: Self.value(of: member)))
            try producer.flush(timeout: .seconds(5))
            return true
        } catch {
            logger.warning("shard ownership could not be announced", metadata: ["kafka.topic": "\(topic)", "kafka.error": "\(error)"])
            return false
        }
    }

    /// `v1 AT ADDRESS SHARD,SHARD,...` (ASCII; an address holds no space).
    static func value(of member: Member) -> [UInt8] {
        Array("v1 \(member.at) \(member.address) \(member.shards.map(String.init).joined(separator: ","))".utf8)
    }

    static func member(instanceID: String, from value: [UInt8]) -> Member? {
        let fields = String(decoding: value, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == 4 || fields.count == 3, fields[0] == "v1", let at = Int64(fields[1]) else { return nil }
        let shards = fields.count == 4 ? fields[3].split(separator: ",").compactMap { Int32($0) } : []
        return Member(instanceID: instanceID, address: String(fields[2]), shards: shards, at: at)
    }
}
