/// When the batch thread runs the next batch and when it stops: the batch loop's state machine.
///
/// Pure: the driver passes the wall clock and what it observed, and performs the action returned. Batch times are
/// strictly increasing, even when the wall clock steps back, and multiples of the interval, except that a full
/// backlog starts a batch at once, at the current time: the interval bounds how long a record waits to be batched,
/// never the rate (as Structured Streaming starts the next micro-batch at once when it is behind). A batch that
/// overran its interval is followed at once too. A wait is never longer than one interval.
struct BatchSchedule {
    /// What the driver saw since the last call.
    struct Observation: Equatable {
        var stopRequest = StopRequest.none
        /// With `stopsAtEnd`: the receiver has reached the end offsets captured at start-up.
        var reachedEnd = false
        /// The receiver failed (it cannot store or commit).
        var receiverFailure: String?
        /// The receiver holds input: its backlog is over the bound, so a full batch is waiting.
        var isBacklogFull = false
    }

    enum Action: Equatable {
        /// Sleep up to this long (a stop or the end of input wakes the driver), then ask again.
        case wait(milliseconds: Int64)
        /// Run the batch of this time.
        case runBatch(time: Int64)
        /// Stop the receiver, run a last batch of this time with everything received, and stop.
        case finish(time: Int64)
        /// Stop at once: only completed batches count.
        case stop
        /// Stop with an error.
        case fail(String)
    }

    private enum Phase: Equatable {
        /// The next call waits for the batch time.
        case waiting
        /// Waiting until `at` (wall clock): from then on the next call runs the batch unless something was observed.
        case due(at: Int64)
        case finished
    }

    let interval: Int64
    let stopsAtEnd: Bool
    /// The time of the next batch on an interval boundary.
    private(set) var nextTime: Int64
    /// The time of the last batch run.
    private var lastTime: Int64
    private var phase = Phase.waiting

    /// Starts one interval after `lastBatchTime` (the checkpoint's or the last replayed batch), and never before
    /// the next interval boundary of the wall clock.
    init(interval: Int64, lastBatchTime: Int64, now: Int64, stopsAtEnd: Bool) {
        precondition(interval > 0, "the batch interval is validated by StreamingConfiguration")
        self.interval = interval
        self.stopsAtEnd = stopsAtEnd
        lastTime = lastBatchTime
        nextTime = max(lastBatchTime + interval, (now / interval + 1) * interval)
    }

    mutating func next(now: Int64, observed: Observation) -> Action {
        if phase == .finished { return .stop }
        if let failure = observed.receiverFailure {
            phase = .finished
            return .fail(failure)
        }
        switch observed.stopRequest {
        case .immediate:
            phase = .finished
            return .stop
        case .graceful:
            phase = .finished
            return .finish(time: nextTime)
        case .none where stopsAtEnd && observed.reachedEnd:
            phase = .finished
            return .finish(time: nextTime)
        case .none:
            break
        }
        switch phase {
        case .waiting:
            if let early = earlyBatch(now: now, observed: observed) { return early }
            let wait = min(max(nextTime - now, 0), interval)
            phase = .due(at: now + wait)
            return .wait(milliseconds: wait)
        case .due(let at) where now < at:
            // Woken before the boundary (the backlog filled up).
            if let early = earlyBatch(now: now, observed: observed) {
                phase = .waiting
                return early
            }
            return .wait(milliseconds: min(at - now, interval))
        case .finished:
            return .stop
        case .due:
            phase = .waiting
            let time = nextTime
            lastTime = time
            nextTime = max(nextTime + interval, (now / interval) * interval)
            return .runBatch(time: time)
        }
    }

    /// A batch at the current time when the backlog is full and the next boundary is still ahead.
    private mutating func earlyBatch(now: Int64, observed: Observation) -> Action? {
        guard observed.isBacklogFull else { return nil }
        let time = max(lastTime + 1, now)
        guard time < nextTime else { return nil }
        lastTime = time
        return .runBatch(time: time)
    }
}
