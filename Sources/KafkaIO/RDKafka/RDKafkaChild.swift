import CRdKafka

/// Owns an object that belongs to an `rd_kafka_t` (a queue, a mock cluster) and destroys it in `deinit`.
///
/// - Important: It keeps its client alive, so the object is always destroyed before `rd_kafka_destroy` runs.
///   `@unchecked Sendable` because these librdkafka objects are thread-safe and the pointer never changes.
final class RDKafkaChild: @unchecked Sendable {
    let pointer: OpaquePointer
    private let client: RDKafkaClient
    private let destroy: (OpaquePointer) -> Void

    init(_ pointer: OpaquePointer, of client: RDKafkaClient, destroy: @escaping (OpaquePointer) -> Void) {
        self.pointer = pointer
        self.client = client
        self.destroy = destroy
    }

    deinit {
        destroy(pointer)
    }
}
