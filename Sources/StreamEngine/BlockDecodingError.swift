/// Why bytes could not be decoded as a ``Block``.
public enum BlockDecodingError: Error, Equatable, Sendable {
    /// The format version byte is not one this build understands (or the input is empty: version `nil`).
    case unsupportedVersion(UInt8?)
    /// The bytes are truncated or inconsistent; the associated text names the part that failed.
    case malformed(String)
}
