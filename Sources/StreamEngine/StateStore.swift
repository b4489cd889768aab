/// The checkpointed state of one stateful operator.
final class StateStore<Value: StateCodable> {
    let name: String
    var value: Value
    /// Called after a restore replaced ``value`` (a ``StateView`` rebuilds its ranking).
    var didRestore: (() -> Void)?

    init(name: String, value: Value) {
        self.name = name
        self.value = value
    }

    /// Runs `body` on the value in place: one access for all of `body`'s reads and writes, where each use of
    /// ``value`` in a loop is an access of its own (checked at run time, since the store is a shared object).
    func withValue<Result>(_ body: (inout Value) -> Result) -> Result {
        body(&value)
    }
}

/// A ``StateStore`` seen by the graph, whatever its value type.
protocol AnyStateStore: AnyObject {
    var name: String { get }
    func encode(to writer: inout StateWriter)
    /// Decodes a state without applying it; the returned closure applies it.
    func decode(from reader: inout StateReader) throws(StreamEngineError) -> () -> Void
}

extension StateStore: AnyStateStore {
    func encode(to writer: inout StateWriter) {
        value.encode(to: &writer)
    }

    func decode(from reader: inout StateReader) throws(StreamEngineError) -> () -> Void {
        let decoded = try Value(from: &reader)
        return {
            self.value = decoded
            self.didRestore?()
        }
    }
}
