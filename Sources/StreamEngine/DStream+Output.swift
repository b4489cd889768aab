extension DStream {
    /// Ends the stream in a sink that turns each batch into records to produce.
    ///
    /// `body` receives the batch time, the batch's elements (in the stream's order) and an `emit`
    /// function; emitted records are returned in ``BatchOutput/records``, sinks in registration order.
    public func output(
        _ body: @escaping (_ batchTime: Int64, _ elements: [Element], _ emit: (OutputRecord) -> Void) -> Void
    ) {
        addSink { batch, context in
            body(context.time, batch.decodedValues) { context.emit($0) }
        }
    }

    /// Ends the stream in a sink that receives each batch's time and elements.
    public func foreachBatch(_ body: @escaping (_ batchTime: Int64, _ elements: [Element]) -> Void) {
        addSink { batch, context in body(context.time, batch.decodedValues) }
    }
}
