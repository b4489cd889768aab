/// A borrowed view of one record of a ``Block``.
///
/// The `key` and `value` buffers point into the block's bytes: they are valid only inside
/// the ``Block/forEachRecord(_:)`` body that received the view and must not escape it.
public struct RecordView {
    /// The topic the record was read from (interned: shared by all records of the topic).
    public let topic: String
    /// The partition the record was read from.
    public let partition: Int32
    /// The record's offset in its partition.
    public let offset: Int64
    /// The record's event time, in milliseconds since the Unix epoch.
    public let timestamp: Int64
    /// The record key, or `nil` if the record has none.
    public let key: UnsafeRawBufferPointer?
    /// The record value.
    public let value: UnsafeRawBufferPointer
}
