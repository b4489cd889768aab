/// Why window parameters were rejected.
public enum WindowSpecError: Error, Equatable, Sendable {
    /// The length or slide is not positive.
    case nonPositiveDuration
    /// The allowed lateness is negative.
    case negativeLateness
    /// The length is not a multiple of the slide.
    case lengthNotMultipleOfSlide
    /// The length or allowed lateness exceeds ``WindowSpec/maximumDuration``.
    case durationTooLong
}
