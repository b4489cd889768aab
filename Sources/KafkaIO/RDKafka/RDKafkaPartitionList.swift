import CRdKafka
import Glibc

/// Owns one `rd_kafka_topic_partition_list_t` and destroys it in `deinit`.
///
/// - Important: A leaked list makes `rd_kafka_destroy` hang, so every list sluice creates lives in one of these.
///   The pointer must not escape the lifetime of this object.
final class RDKafkaPartitionList {
    let pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(capacity: Int = 1) {
        pointer = rd_kafka_topic_partition_list_new(Int32(max(capacity, 1)))
    }

    /// A list with each partition set to the given offset (`RD_KAFKA_OFFSET_INVALID` means "none"), and commit
    /// metadata where `metadata` names the partition.
    convenience init(_ offsets: [KafkaPartition: Int64], metadata: [KafkaPartition: String] = [:]) {
        self.init(capacity: offsets.count)
        for (partition, offset) in offsets.sorted(by: { $0.key < $1.key }) {
            add(partition, offset: offset, metadata: metadata[partition])
        }
    }

    /// A list of partitions without offsets.
    convenience init(_ partitions: [KafkaPartition]) {
        self.init(capacity: partitions.count)
        for partition in partitions {
            add(partition, offset: Int64(RD_KAFKA_OFFSET_INVALID))
        }
    }

    deinit {
        rd_kafka_topic_partition_list_destroy(pointer)
    }

    /// Adds a partition; `metadata` (commit metadata, ASCII) is copied into memory the list frees.
    func add(_ partition: KafkaPartition, offset: Int64, metadata: String? = nil) {
        guard let element = rd_kafka_topic_partition_list_add(pointer, partition.topic, partition.partition) else { return }
        element.pointee.offset = offset
        if let metadata, let copy = strdup(metadata) {
            element.pointee.metadata = UnsafeMutableRawPointer(copy)
            element.pointee.metadata_size = metadata.utf8.count
        }
    }

    /// The commit metadata of each entry (empty when none), as text.
    var metadata: [KafkaPartition: String] {
        var result: [KafkaPartition: String] = [:]
        for index in 0..<Int(pointer.pointee.cnt) {
            let element = pointer.pointee.elems[index]
            let partition = KafkaPartition(topic: String(cString: element.topic), partition: element.partition)
            guard let bytes = element.metadata, element.metadata_size > 0 else {
                result[partition] = ""
                continue
            }
            result[partition] = String(decoding: UnsafeRawBufferPointer(start: bytes, count: element.metadata_size), as: UTF8.self)
        }
        return result
    }

    /// Reads a list that librdkafka owns (for example the one passed to a rebalance callback).
    static func entries(of list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> [(KafkaPartition, Int64, rd_kafka_resp_err_t)] {
        (0..<Int(list.pointee.cnt)).map { index in
            let element = list.pointee.elems[index]
            return (KafkaPartition(topic: String(cString: element.topic), partition: element.partition), element.offset, element.err)
        }
    }

    var entries: [(KafkaPartition, Int64, rd_kafka_resp_err_t)] {
        Self.entries(of: pointer)
    }
}
