/// The newest intact checkpoint found by ``CheckpointStore/loadLatest()``.
public struct LoadedCheckpoint: Equatable, Sendable {
    /// The sequence number the checkpoint was written with.
    public let sequence: UInt64
    /// The payload exactly as written.
    public let payload: [UInt8]
    /// The paths of newer checkpoint files that were corrupt or truncated and were passed over, newest first.
    public let skipped: [String]
}
