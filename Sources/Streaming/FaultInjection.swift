import Glibc

/// Points in the receive path where a test can have the process kill itself (SIGKILL), to prove the order of
/// durability and commit. Never set outside tests.
public enum CrashPoint: String, Sendable, CaseIterable {
    /// After a block is durable in the WAL, before its offsets are committed.
    case afterBlockSync = "after-block-sync"
    /// After an offset commit by the receiver (of durable blocks, or of a checkpoint without the WAL).
    case afterCommit = "after-commit"
    /// After a batch's output is flushed, before its checkpoint is written.
    case afterOutputFlush = "after-output-flush"
    /// After a checkpoint is written.
    case afterCheckpoint = "after-checkpoint"
    /// With the log off: after the checkpoint that retires a log left by a run with it on, before its deletion.
    case afterStaleLogRetired = "after-stale-log-retired"
    /// Exactly-once output: after a batch's progress record is sent, before its transaction commits.
    case beforeTransactionCommit = "before-txn-commit"
    /// Exactly-once output: after a batch's transaction committed, before its checkpoint.
    case afterTransactionCommit = "after-txn-commit"
    /// Distributed mode: after the batch plans are committed, before any partial is sent.
    case afterPlanCommit = "after-plan-commit"
    /// Distributed mode: after some of a batch's partials are queued, before its markers.
    case midPartials = "mid-partials"
    /// Distributed mode: after a batch's partials and markers are delivered, before its input offsets are committed.
    case afterPartials = "after-partials"
    /// Distributed mode: after some of a cycle's changelog records are queued, before its commit record.
    case midChangelog = "mid-changelog"
    /// Distributed mode: after a cycle's output and partials offsets are committed.
    case afterShardCommit = "after-shard-commit"
    /// Distributed mode: while a shard is restored from the changelog.
    case duringRestore = "during-restore"
    /// Distributed mode: inside the revoke handler of stage 2, before the revoked shards are flushed.
    case inRevoke = "in-revoke"

    /// Kills the process if `point` is this one and `countdown` reaches zero.
    static func reach(_ point: CrashPoint, armed: CrashTrigger?) {
        guard let armed, armed.point == point else { return }
        if armed.countdown.subtract(1, ordering: .relaxed).newValue == 0 {
            kill(getpid(), SIGKILL)
        }
    }
}

import Synchronization

/// A crash point armed to fire on its `count`-th visit.
public final class CrashTrigger: Sendable {
    let point: CrashPoint
    let countdown: Atomic<Int>

    public init(point: CrashPoint, count: Int) {
        self.point = point
        self.countdown = Atomic(max(1, count))
    }
}
