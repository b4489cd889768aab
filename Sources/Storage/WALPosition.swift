/// The location of an entry in a ``WriteAheadLog``: a segment number and the byte offset where the entry's frame starts.
///
/// Positions order lexicographically, by segment and then offset, which is log order.
/// A checkpoint that covers "everything strictly before position P" can therefore be
/// applied with ``WriteAheadLog/truncate(before:)`` and by skipping recovered entries whose
/// position is less than P.
public struct WALPosition: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// The number of the segment file holding the entry.
    public var segment: UInt64
    /// The byte offset of the entry's frame within its segment file.
    public var offset: UInt64

    /// Creates a position.
    ///
    /// - Parameters:
    ///   - segment: The number of the segment file.
    ///   - offset: The byte offset within the segment file.
    public init(segment: UInt64, offset: UInt64) {
        self.segment = segment
        self.offset = offset
    }

    /// Orders positions by segment, then by offset.
    public static func < (lhs: WALPosition, rhs: WALPosition) -> Bool {
        (lhs.segment, lhs.offset) < (rhs.segment, rhs.offset)
    }

    /// The position as `segment:offset`, for example `3:4096`.
    public var description: String {
        "\(segment):\(offset)"
    }
}
