/// A value computed over one event-time window.
public struct Windowed<Value> {
    /// The window the value covers.
    public let window: TimeWindow
    /// The value.
    public let value: Value

    /// Creates a windowed value.
    public init(window: TimeWindow, value: Value) {
        self.window = window
        self.value = value
    }
}

extension Windowed: Sendable where Value: Sendable {}

extension Windowed: Equatable where Value: Equatable {}
