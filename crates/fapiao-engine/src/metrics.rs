//! Counters and gauges, rendered in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// The engine's metrics.
#[derive(Default, Debug)]
pub struct Metrics {
    /// Events admitted (durable pending).
    pub events_admitted: AtomicU64,
    /// Submissions of an already known event.
    pub events_duplicate: AtomicU64,
    /// Events refused at admission.
    pub events_refused: AtomicU64,
    /// Admitted events dropped at execution by a ledger rule.
    pub events_rejected_execution: AtomicU64,
    /// Admitted events refused because executing them failed (a panic, a damaged record
    /// they read): the poison is recorded and production goes on.
    pub events_execution_failed: AtomicU64,
    /// Times block production paused because storage failed (IO, full disk, a damaged
    /// state tree); the events stay pending.
    pub producer_stalls: AtomicU64,
    /// 1 while block production is paused by a storage failure.
    pub producer_stalled: AtomicU64,
    /// 1 while writes are refused because free disk is below the reserve.
    pub storage_full: AtomicU64,
    /// 1 while block production is held: at start until a peer has told this node how
    /// far its own chain goes, or for good when a peer holds more of it.
    pub production_held: AtomicU64,
    /// Input events committed in blocks.
    pub events_committed: AtomicU64,
    /// Derived events committed.
    pub derived_committed: AtomicU64,
    /// Blocks committed.
    pub blocks_committed: AtomicU64,
    /// Current pending events.
    pub pending: AtomicU64,
    /// Head height of this node's chain.
    pub head_height: AtomicU64,
    /// Highest certified height of this node's chain.
    pub certified_height: AtomicU64,
    /// Signatures checked at admission.
    pub signatures_verified: AtomicU64,
    /// Admission groups written (one synced write each).
    pub admission_groups: AtomicU64,
    /// Time in admission writes, microseconds.
    pub admission_micros: AtomicU64,
    /// Time building and committing blocks, microseconds.
    pub block_micros: AtomicU64,
    /// Critical threads that died.
    pub thread_failures: AtomicU64,
    /// HTTP requests answered with an error.
    pub http_errors: AtomicU64,
    /// Peer connections refused (not a genesis member, or banned).
    pub peer_refused: AtomicU64,
    /// Peers disconnected and banned for sending invalid data.
    pub peer_penalties: AtomicU64,
    /// Gossip messages dropped because replication was behind.
    pub gossip_dropped: AtomicU64,
    /// Blocks of other chains validated and stored.
    pub blocks_replicated: AtomicU64,
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, u64); 25] = [
            (
                "fapiao_peer_connections_refused_total",
                "counter",
                "Peer connections refused (not a genesis member, or banned).",
                g(&self.peer_refused),
            ),
            (
                "fapiao_peer_penalties_total",
                "counter",
                "Peers disconnected and banned for sending invalid data.",
                g(&self.peer_penalties),
            ),
            (
                "fapiao_gossip_dropped_total",
                "counter",
                "Gossip messages dropped because replication was behind (sync recovers them).",
                g(&self.gossip_dropped),
            ),
            (
                "fapiao_blocks_replicated_total",
                "counter",
                "Blocks of other members' chains validated by re-execution and stored.",
                g(&self.blocks_replicated),
            ),
            (
                "fapiao_events_admitted_total",
                "counter",
                "Events admitted (durable, acknowledged).",
                g(&self.events_admitted),
            ),
            (
                "fapiao_events_duplicate_total",
                "counter",
                "Submissions of an already known event.",
                g(&self.events_duplicate),
            ),
            (
                "fapiao_events_refused_total",
                "counter",
                "Events refused at admission.",
                g(&self.events_refused),
            ),
            (
                "fapiao_events_rejected_execution_total",
                "counter",
                "Admitted events dropped when executed.",
                g(&self.events_rejected_execution),
            ),
            (
                "fapiao_events_execution_failed_total",
                "counter",
                "Admitted events refused because executing them failed (EXECUTION_FAILED): a panic or a damaged record they read.",
                g(&self.events_execution_failed),
            ),
            (
                "fapiao_producer_stalls_total",
                "counter",
                "Times block production paused because storage failed; events stay pending.",
                g(&self.producer_stalls),
            ),
            (
                "fapiao_producer_stalled",
                "gauge",
                "1 while block production is paused by a storage failure.",
                g(&self.producer_stalled),
            ),
            (
                "fapiao_production_held",
                "gauge",
                "1 while block production is held for the peers' view of this node's own chain (at start, or for good when they hold more of it).",
                g(&self.production_held),
            ),
            (
                "fapiao_storage_full",
                "gauge",
                "1 while writes are refused with STORAGE_FULL (free disk below the reserve).",
                g(&self.storage_full),
            ),
            (
                "fapiao_events_committed_total",
                "counter",
                "Input events committed in blocks.",
                g(&self.events_committed),
            ),
            (
                "fapiao_derived_committed_total",
                "counter",
                "Derived events committed in blocks.",
                g(&self.derived_committed),
            ),
            (
                "fapiao_blocks_committed_total",
                "counter",
                "Blocks committed.",
                g(&self.blocks_committed),
            ),
            (
                "fapiao_pending_events",
                "gauge",
                "Admitted events waiting for a block.",
                g(&self.pending),
            ),
            (
                "fapiao_head_height",
                "gauge",
                "Height of this node's chain.",
                g(&self.head_height),
            ),
            (
                "fapiao_certified_height",
                "gauge",
                "Highest certified height of this node's chain.",
                g(&self.certified_height),
            ),
            (
                "fapiao_signatures_verified_total",
                "counter",
                "Event signatures verified at admission.",
                g(&self.signatures_verified),
            ),
            (
                "fapiao_admission_groups_total",
                "counter",
                "Synced admission writes.",
                g(&self.admission_groups),
            ),
            (
                "fapiao_admission_seconds_total",
                "counter",
                "Seconds spent in admission writes.",
                g(&self.admission_micros) / 1_000_000,
            ),
            (
                "fapiao_block_seconds_total",
                "counter",
                "Seconds spent building and committing blocks.",
                g(&self.block_micros) / 1_000_000,
            ),
            (
                "fapiao_thread_failures_total",
                "counter",
                "Critical threads that died.",
                g(&self.thread_failures),
            ),
            (
                "fapiao_http_errors_total",
                "counter",
                "HTTP requests answered with an error.",
                g(&self.http_errors),
            ),
        ];
        let mut s = String::new();
        for (name, kind, help, value) in rows {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        s
    }
}
