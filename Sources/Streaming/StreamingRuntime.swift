/// What the service runs, in either mode: ``StreamingContext`` (standalone) or ``DistributedContext``.
public protocol StreamingRuntime: Sendable {
    /// Starts the work on dedicated threads.
    func start() throws
    /// Waits until the runtime stops: after ``stop(graceful:)``, at the end of input, or on a fatal error, which it throws.
    func awaitTermination() async throws
    /// Stops; a graceful stop finishes and commits the work under way.
    func stop(graceful: Bool)
    /// A snapshot of progress and health.
    var status: StreamingStatus { get }
    /// The most recent batches, oldest first.
    var recentBatches: [BatchInfo] { get }
}

extension StreamingContext: StreamingRuntime {}
