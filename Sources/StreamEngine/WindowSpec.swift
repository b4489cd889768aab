/// Event-time windowing parameters, in milliseconds.
///
/// Windows are epoch-aligned: `[start, start + length)` with `start` a multiple of `slide`.
/// They tumble when `slide == length` and slide (overlap) when `slide < length`. A window is
/// emitted and closed at the end of the first batch whose watermark reaches
/// `end + allowedLateness`; elements arriving for a closed window are late.
public struct WindowSpec: Hashable, Sendable {
    /// The largest accepted length or lateness (about 142,000 years).
    public static let maximumDuration: Int64 = 1 << 52

    /// Event times are clamped to ±2⁶¹ ms for window arithmetic, far beyond any real timestamp.
    private static let timeBound: Int64 = 1 << 61

    /// The window length.
    public let length: Int64
    /// The distance between consecutive window starts.
    public let slide: Int64
    /// How long after its end a window still accepts elements.
    public let allowedLateness: Int64

    /// Validates and creates window parameters; `slide` defaults to `length` (tumbling windows).
    public init(length: Int64, slide: Int64? = nil, allowedLateness: Int64 = 0) throws(StreamEngineError) {
        let slide = slide ?? length
        guard length > 0, slide > 0 else { throw .nonPositiveDuration }
        guard allowedLateness >= 0 else { throw .negativeLateness }
        guard length <= Self.maximumDuration, allowedLateness <= Self.maximumDuration else { throw .durationTooLong }
        guard length % slide == 0 else { throw .lengthNotMultipleOfSlide }
        self.length = length
        self.slide = slide
        self.allowedLateness = allowedLateness
    }

    /// The starts of the windows containing `time`, ascending.
    public func starts(containing time: Int64) -> StrideThrough<Int64> {
        let last = latestStart(containing: time)
        return stride(from: last - length + slide, through: last, by: Int(slide))
    }

    /// The start of the latest window containing `time`: `time` rounded down to a multiple of the slide. Times with
    /// the same latest start are in the same windows.
    public func latestStart(containing time: Int64) -> Int64 {
        let time = min(max(time, -Self.timeBound), Self.timeBound)
        let remainder = time % slide
        return time - (remainder < 0 ? remainder + slide : remainder)
    }

    /// The window starting at `start`.
    public func window(startingAt start: Int64) -> TimeWindow {
        TimeWindow(start: start, end: start + length)
    }

    /// Whether the window starting at `start` is closed once the watermark is `watermark`.
    public func isClosed(start: Int64, watermark: Int64?) -> Bool {
        guard let watermark else { return false }
        let (limit, overflow) = watermark.subtractingReportingOverflow(length + allowedLateness)
        return !overflow && start <= limit
    }
}
