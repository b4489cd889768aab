/// When the batch thread runs the next batch and when it stops: the batch loop's state machine.
///
/// Pure: the driver passes the wall clock and what it observed, and performs the action returned. Batch times are
/// multiples of the interval and strictly increasing, even when the wall clock steps back; a wait is never longer
/// than one interval.
struct BatchSchedule {
    /// What the driver saw since the last call.
    struct Observation: Equatable {
        /// nil: no stop requested; true: a graceful stop; false: an immediate stop.
        var stopRequest: Bool?
        /// With `stopsAtEnd`: the receiver has reached the end offsets captured at start-up.
        var reachedEnd = false
        /// The receiver failed (it cannot store or commit).
        var receiverFailure: String?
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
        /// The wait is over: the next call runs the batch unless something was observed.
        case due
        case finished
    }

    let interval: Int64
    let stopsAtEnd: Bool
    /// The time of the next batch.
    private(set) var nextTime: Int64
    private var phase = Phase.waiting

    /// Starts one interval after `lastBatchTime` (the checkpoint's or the last replayed batch), and never before
    /// the next interval boundary of the wall clock.
    init(interval: Int64, lastBatchTime: Int64, now: Int64, stopsAtEnd: Bool) {
        precondition(interval > 0, "the batch interval is validated by StreamingConfiguration")
        self.interval = interval
        self.stopsAtEnd = stopsAtEnd
        nextTime = max(lastBatchTime + interval, (now / interval + 1) * interval)
    }

    mutating func next(now: Int64, observed: Observation) -> Action {
        if phase == .finished { return .stop }
        if let failure = observed.receiverFailure {
            phase = .finished
            return .fail(failure)
        }
        if let graceful = observed.stopRequest ?? (stopsAtEnd && observed.reachedEnd ? true : nil) {
            phase = .finished
            return graceful ? .finish(time: nextTime) : .stop
        }
        if phase == .waiting {
            phase = .due
            return .wait(milliseconds: min(max(nextTime - now, 0), interval))
        }
        phase = .waiting
        let time = nextTime
        nextTime = max(nextTime + interval, (now / interval) * interval)
        return .runBatch(time: time)
    }
}
