import Dispatch
import Foundation
import KafkaIO
import Synchronization

/// Asks the brokers for metadata every few seconds on its own thread, so that a broker that stopped answering is
/// reported (``StreamingStatus/failure``, so `/healthz`) even when there is no output waiting on it: a frozen
/// broker otherwise only shows as polls that return nothing.
final class BrokerProbe: Sendable {
    /// How often the brokers are asked, and how long an answer may take.
    static let interval = Duration.seconds(5)

    private let producer: KafkaProducer
    private let bootstrapServers: String
    private let state = Mutex<(unreachableSince: ContinuousClock.Instant?, isStopped: Bool)>((nil, false))
    private let wakeup = DispatchSemaphore(value: 0)

    init(producer: KafkaProducer, bootstrapServers: String) {
        self.producer = producer
        self.bootstrapServers = bootstrapServers
    }

    /// Why the brokers count as unreachable (no answer within ``interval``), or nil.
    var failure: String? {
        state.withLock { state in
            state.unreachableSince.map {
                "Kafka at \(bootstrapServers) has not answered a metadata request for \(Int((.now - $0) / .seconds(1))) s"
            }
        }
    }

    /// Starts probing on a new thread, until ``stop()``.
    func start() {
        let thread = Thread { [self] in
            while !state.withLock({ $0.isStopped }) {
                let started = ContinuousClock.now
                let answered = (try? producer.checkReachable(timeout: Self.interval)) != nil
                state.withLock { state in
                    state.unreachableSince = answered ? nil : state.unreachableSince ?? started
                }
                let rest = Self.interval - (ContinuousClock.now - started)
                if rest > .zero { _ = wakeup.wait(timeout: .now() + .milliseconds(Int(rest / .milliseconds(1)))) }
            }
        }
        thread.name = "sluice-probe"
        thread.start()
    }

    /// Ends the probing thread (within one request's timeout).
    func stop() {
        state.withLock { $0.isStopped = true }
        wakeup.signal()
    }
}
