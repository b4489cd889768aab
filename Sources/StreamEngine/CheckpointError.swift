/// Why a checkpoint could not be restored. A failed restore leaves the graph unchanged.
public enum CheckpointError: Error, Equatable, Sendable {
    /// The format version is not one this build understands (or the input is empty: version `nil`).
    case unsupportedVersion(UInt8?)
    /// The checkpoint holds different stateful operators (by name, in registration order) than the graph.
    case operatorMismatch(expected: [String], found: [String])
    /// The bytes are truncated or inconsistent; the associated text names the part that failed.
    case malformed(String)
}
