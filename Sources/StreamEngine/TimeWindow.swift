/// An event-time window `[start, end)`, in milliseconds since the Unix epoch.
public struct TimeWindow: Hashable, Sendable, Comparable {
    /// The first instant in the window.
    public let start: Int64
    /// The first instant after the window.
    public let end: Int64

    /// Creates a window.
    public init(start: Int64, end: Int64) {
        self.start = start
        self.end = end
    }

    /// Orders by start, then end.
    public static func < (lhs: TimeWindow, rhs: TimeWindow) -> Bool {
        (lhs.start, lhs.end) < (rhs.start, rhs.end)
    }
}
