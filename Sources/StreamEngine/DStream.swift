/// A discretized stream: a sequence of batches of `Element`s, each element carrying the
/// event time (ms) of the record it came from.
///
/// Streams are nodes of a ``StreamGraph``: create the graph's input with
/// ``StreamGraph/input()``, derive streams with operators (`map`, `reduceByKey`,
/// `updateStateByKey`, `reduceByKeyAndWindow`, ...), and end them in sinks (`output`,
/// `foreachBatch`). Operator closures run synchronously inside ``StreamGraph/runBatch(time:blocks:)``.
/// A stream must not outlive its graph.
public final class DStream<Element> {
    unowned let graph: StreamGraph
    private let compute: (BatchContext) -> Elements<Element>
    /// For a `map`: reads the mapped batch without storing it, used when one consumer reads it.
    private let lazySource: ((BatchContext) -> ElementSource<Element>)?
    private let isStateful: Bool
    /// The graph's input: its records are decoded from the batch's blocks.
    let isGraphInput: Bool
    private var consumers = 0
    private var cached: Elements<Element>?

    init(
        graph: StreamGraph, stateful: Bool = false, isGraphInput: Bool = false,
        compute: @escaping (BatchContext) -> Elements<Element>, lazySource: ((BatchContext) -> ElementSource<Element>)? = nil
    ) {
        self.graph = graph
        self.isStateful = stateful
        self.isGraphInput = isGraphInput
        self.compute = compute
        self.lazySource = lazySource
    }

    /// The stream's elements for the running batch, read one by one: a `map` read by a single
    /// consumer is applied as the elements are read instead of being stored first.
    func source(in context: BatchContext) -> ElementSource<Element> {
        if let lazySource, hasSingleConsumer { return lazySource(context) }
        return elements(in: context).source
    }

    /// A new stream computed from this one's elements, read one by one.
    func deriveFromSource<Output>(
        stateful: Bool = false, _ transform: @escaping (ElementSource<Element>, BatchContext) -> Elements<Output>
    ) -> DStream<Output> {
        consumers += 1
        return DStream<Output>(graph: graph, stateful: stateful) { [self] context in
            transform(source(in: context), context)
        }
    }

    /// A new stream of `transform` applied to each element; the result keeps the element's event time.
    func deriveMap<Output>(_ transform: @escaping (Element) -> Output) -> DStream<Output> {
        consumers += 1
        return DStream<Output>(
            graph: graph,
            compute: { [self] context in elements(in: context).mapped(transform) },
            lazySource: { [self] context in
                let batch = elements(in: context)
                if batch.isDictionaryEncoded { return batch.mapped(transform).source }
                let values = batch.source
                return ElementSource(count: values.count, times: values.times, ids: values.ids, idCount: values.idCount) {
                    transform(values.value($0))
                }
            })
    }

    /// The stream's elements for the running batch. A stateful stream, or one read by several
    /// consumers, computes them once per batch and caches them until the batch ends.
    func elements(in context: BatchContext) -> Elements<Element> {
        guard !hasSingleConsumer else { return compute(context) }
        if let cached { return cached }
        let computed = compute(context)
        cached = computed
        context.atEnd { self.cached = nil }
        return computed
    }

    /// A new stream computed by `transform`, which reads this one's elements itself.
    func deriveReading<Output>(_ transform: @escaping (BatchContext) -> Elements<Output>) -> DStream<Output> {
        consumers += 1
        return DStream<Output>(graph: graph, compute: transform)
    }

    /// Whether this stream's elements are read by one consumer and need not be kept (a stateful stream is computed
    /// once per batch and cached, whoever reads it).
    var hasSingleConsumer: Bool { consumers <= 1 && !isStateful }

    /// A new stream computed from this one's elements.
    func derive<Output>(
        stateful: Bool = false, _ transform: @escaping (Elements<Element>, BatchContext) -> Elements<Output>
    ) -> DStream<Output> {
        consumers += 1
        return DStream<Output>(graph: graph, stateful: stateful) { [self] context in
            transform(elements(in: context), context)
        }
    }

    /// Registers `consume` to run with this stream's elements in every batch.
    func addSink(_ consume: @escaping (Elements<Element>, BatchContext) -> Void) {
        consumers += 1
        graph.addSink { [self] context in consume(elements(in: context), context) }
    }
}
