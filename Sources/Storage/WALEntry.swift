/// An entry read back from a ``WriteAheadLog`` during recovery.
public struct WALEntry: Equatable, Sendable {
    /// Where the entry's frame starts; the value `append` returned for it.
    public let position: WALPosition
    /// The payload exactly as appended.
    public let payload: [UInt8]
}
