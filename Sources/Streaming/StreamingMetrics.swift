import CoreMetrics
import Metrics

/// The metrics of the streaming runtime, created once. Names follow Prometheus conventions with units; labels are
/// bounded (never a word or a record key).
struct StreamingMetrics: Sendable {
    let recordsReceived = Counter(label: "sluice_records_received_total")
    let duplicateRecordsSkipped = Counter(label: "sluice_records_duplicate_total")
    let malformedRecords = Counter(label: "sluice_records_malformed_total")
    let lateRecords = Counter(label: "sluice_records_late_total")
    let futureRecords = Counter(label: "sluice_records_future_total")
    let blocksWritten = Counter(label: "sluice_blocks_written_total")
    let walBytesWritten = Counter(label: "sluice_wal_bytes_written_total")
    let walFsyncDuration = Timer(label: "sluice_wal_fsync_duration_seconds", preferredDisplayUnit: .seconds)
    let commitDuration = Timer(label: "sluice_commit_duration_seconds", preferredDisplayUnit: .seconds)
    let commitFailures = Counter(label: "sluice_commit_failures_total")
    let batchesCompleted = Counter(label: "sluice_batches_completed_total")
    let batchProcessingDuration = Timer(label: "sluice_batch_processing_duration_seconds", preferredDisplayUnit: .seconds)
    let batchSchedulingDelay = Timer(label: "sluice_batch_scheduling_delay_seconds", preferredDisplayUnit: .seconds)
    let outputRecords = Counter(label: "sluice_output_records_total")
    let oversizeOutputRecords = Counter(label: "sluice_output_records_oversize_total")
    let checkpointsWritten = Counter(label: "sluice_checkpoints_written_total")
    let lastCheckpointTime = Gauge(label: "sluice_last_checkpoint_timestamp_seconds")
    let backlogBytes = Gauge(label: "sluice_backlog_bytes")
    let heldInputBytes = Gauge(label: "sluice_held_input_bytes")
    let pausedPartitions = Gauge(label: "sluice_paused_partitions")
    /// Distributed mode: pairs of stages replaced after a client's fatal error (see ``DistributedContext``).
    let clientReplacements = Counter(label: "sluice_client_replacements_total")
    /// Distributed mode: owned shards stopped on a hole in their input (see ``ShardState``).
    let failedShards = Gauge(label: "sluice_shards_failed")
    let consumerErrors = Counter(label: "sluice_consumer_errors_total")
    let offsetResets = Counter(label: "sluice_offset_resets_total")
    let offsetGapsRefetched = Counter(label: "sluice_offset_gaps_refetched_total")
    let transactionsCommitted = Counter(label: "sluice_transactions_committed_total")
    let transactionsAborted = Counter(label: "sluice_transactions_aborted_total")
    let transactionCommitDuration = Timer(label: "sluice_transaction_commit_duration_seconds", preferredDisplayUnit: .seconds)

    /// The consumer lag of one partition, in records.
    func lag(topic: String, partition: Int32) -> Gauge {
        Gauge(label: "sluice_consumer_lag_records", dimensions: [("topic", topic), ("partition", String(partition))])
    }
}
