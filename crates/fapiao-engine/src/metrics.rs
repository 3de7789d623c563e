//! Counters and gauges, rendered in the OpenMetrics text format (which Prometheus reads)
//! by `prometheus-client`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

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
    /// HTTP requests answered with an error: [`Metrics::count_http_error`] counts one.
    pub http_errors: AtomicU64,
    /// Peer connections refused (not a genesis member, or banned).
    pub peer_refused: AtomicU64,
    /// Peers disconnected and banned for sending invalid data.
    pub peer_penalties: AtomicU64,
    /// Gossip messages dropped because replication was behind.
    pub gossip_dropped: AtomicU64,
    /// Blocks of other chains validated and stored.
    pub blocks_replicated: AtomicU64,
    /// How long this node's blocks wait for their certificates.
    pub certification: Certification,
}

/// The upper bounds, in seconds, of the certification histogram's buckets: a round on a
/// quiet loopback network takes milliseconds, under load tens to hundreds, and without a
/// quorum blocks wait until one returns.
const CERTIFICATION_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Blocks remembered while they wait for a certificate; past that the oldest is
/// forgotten, not observed (a node without a quorum for hours).
const AWAITING_MAX: usize = 4_096;

/// Seconds from committing each block of this node's chain to learning of its
/// certificate (`fapiao_certification_seconds`): the round of attestations the producer
/// paces itself on (PROTOCOL.md, "Block size under load"). A block certified as it is
/// committed (a quorum of one) counts as 0. Blocks committed before the node started are
/// not observed.
#[derive(Debug)]
pub struct Certification {
    histogram: Histogram,
    /// Blocks committed and not yet known certified: height → when committed.
    awaiting: Mutex<BTreeMap<u64, Instant>>,
}

impl Default for Certification {
    fn default() -> Self {
        Certification {
            histogram: Histogram::new(CERTIFICATION_BUCKETS),
            awaiting: Mutex::default(),
        }
    }
}

impl Certification {
    /// A block of this node's chain at `height` was committed; `certified` if its
    /// certificate was written with it.
    pub fn committed(&self, height: u64, certified: bool) {
        if certified {
            self.histogram.observe(0.0);
            return;
        }
        let mut awaiting = self.awaiting.lock().unwrap_or_else(|p| p.into_inner());
        awaiting.insert(height, Instant::now());
        while awaiting.len() > AWAITING_MAX {
            awaiting.pop_first();
        }
    }

    /// This node's chain is certified up to `height`: every block at or below it that was
    /// waiting is observed.
    pub fn certified(&self, height: u64) {
        let mut awaiting = self.awaiting.lock().unwrap_or_else(|p| p.into_inner());
        let above = awaiting.split_off(&height.saturating_add(1));
        let done = std::mem::replace(&mut *awaiting, above);
        drop(awaiting);
        for committed in done.into_values() {
            self.histogram.observe(committed.elapsed().as_secs_f64());
        }
    }
}

/// How a value is exposed.
#[derive(Clone, Copy)]
enum Kind {
    /// A counter: its sample is named `…_total`.
    Counter,
    /// A counter of whole seconds: `…_seconds_total`, with a `# UNIT` line.
    Seconds,
    /// A gauge.
    Gauge,
}

impl Metrics {
    /// The media type of [`Metrics::render`]'s text, the OpenMetrics text format.
    pub const CONTENT_TYPE: &'static str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// Counts one HTTP request answered with an error (`fapiao_http_errors_total`).
    pub fn count_http_error(&self) {
        self.http_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition of every metric in the OpenMetrics text format (see
    /// [`Metrics::CONTENT_TYPE`]), ending with `# EOF`. Samples are named `fapiao_…`,
    /// counters' with `_total`.
    // Long: one registration per exported metric, in the order of the output.
    pub fn render(&self) -> String {
        use Kind::{Counter, Gauge, Seconds};
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // Names without the `fapiao_` prefix, and without the `_seconds` unit and the
        // `_total` suffix, which prometheus-client adds; help texts without the full stop
        // it adds too.
        let rows = [
            (
                "peer_connections_refused",
                Counter,
                "Peer connections refused (not a genesis member, or banned)",
                g(&self.peer_refused),
            ),
            (
                "peer_penalties",
                Counter,
                "Peers disconnected and banned for sending invalid data",
                g(&self.peer_penalties),
            ),
            (
                "gossip_dropped",
                Counter,
                "Gossip messages dropped because replication was behind (sync recovers them)",
                g(&self.gossip_dropped),
            ),
            (
                "blocks_replicated",
                Counter,
                "Blocks of other members' chains validated by re-execution and stored",
                g(&self.blocks_replicated),
            ),
            (
                "events_admitted",
                Counter,
                "Events admitted (durable, acknowledged)",
                g(&self.events_admitted),
            ),
            (
                "events_duplicate",
                Counter,
                "Submissions of an already known event",
                g(&self.events_duplicate),
            ),
            ("events_refused", Counter, "Events refused at admission", g(&self.events_refused)),
            (
                "events_rejected_execution",
                Counter,
                "Admitted events dropped when executed",
                g(&self.events_rejected_execution),
            ),
            (
                "events_execution_failed",
                Counter,
                "Admitted events refused because executing them failed (EXECUTION_FAILED): a panic or a damaged record they read",
                g(&self.events_execution_failed),
            ),
            (
                "producer_stalls",
                Counter,
                "Times block production paused because storage failed; events stay pending",
                g(&self.producer_stalls),
            ),
            (
                "producer_stalled",
                Gauge,
                "1 while block production is paused by a storage failure",
                g(&self.producer_stalled),
            ),
            (
                "production_held",
                Gauge,
                "1 while block production is held for the peers' view of this node's own chain (at start, or for good when they hold more of it)",
                g(&self.production_held),
            ),
            (
                "storage_full",
                Gauge,
                "1 while writes are refused with STORAGE_FULL (free disk below the reserve)",
                g(&self.storage_full),
            ),
            ("events_committed", Counter, "Input events committed in blocks", g(&self.events_committed)),
            (
                "derived_committed",
                Counter,
                "Derived events committed in blocks",
                g(&self.derived_committed),
            ),
            ("blocks_committed", Counter, "Blocks committed", g(&self.blocks_committed)),
            ("pending_events", Gauge, "Admitted events waiting for a block", g(&self.pending)),
            ("head_height", Gauge, "Height of this node's chain", g(&self.head_height)),
            (
                "certified_height",
                Gauge,
                "Highest certified height of this node's chain",
                g(&self.certified_height),
            ),
            (
                "signatures_verified",
                Counter,
                "Event signatures verified at admission",
                g(&self.signatures_verified),
            ),
            ("admission_groups", Counter, "Synced admission writes", g(&self.admission_groups)),
            (
                "admission",
                Seconds,
                "Seconds spent in admission writes",
                g(&self.admission_micros) / 1_000_000,
            ),
            (
                "block",
                Seconds,
                "Seconds spent building and committing blocks",
                g(&self.block_micros) / 1_000_000,
            ),
            ("thread_failures", Counter, "Critical threads that died", g(&self.thread_failures)),
            ("http_errors", Counter, "HTTP requests answered with an error", g(&self.http_errors)),
        ];
        // A registry of this instant's values, so the atomics above stay the API the
        // engine, the server and the node update.
        let mut registry = Registry::with_prefix("fapiao");
        for (name, kind, help, value) in rows {
            match kind {
                Counter => registry.register(name, help, ConstCounter::new(value)),
                Seconds => registry.register_with_unit(name, help, Unit::Seconds, ConstCounter::new(value)),
                Gauge => registry.register(name, help, ConstGauge::new(value)),
            }
        }
        registry.register_with_unit(
            "certification",
            "Seconds from committing a block of this node's chain to its certificate",
            Unit::Seconds,
            self.certification.histogram.clone(),
        );
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_keep_their_names_and_http_errors_are_counted() {
        let m = Metrics::default();
        m.count_http_error();
        m.block_micros.store(2_500_000, Ordering::Relaxed);
        let text = m.render();
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        // 25 values, and the histogram's sum, count and 13 buckets.
        assert_eq!(samples.len(), 25 + 15, "{text}");
        assert!(samples.contains(&"fapiao_http_errors_total 1"), "{text}");
        assert!(samples.contains(&"fapiao_block_seconds_total 2"), "{text}");
        assert!(samples.contains(&"fapiao_pending_events 0"), "{text}");
        assert!(!text.contains("_total_total"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    fn sample<'a>(text: &'a str, name: &str) -> &'a str {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {text}"));
        line.rsplit(' ').next().unwrap_or_default()
    }

    #[test]
    fn certification_observes_each_block_once_when_its_certificate_arrives() {
        let m = Metrics::default();
        // A quorum of one: certified as committed.
        m.certification.committed(1, true);
        m.certification.committed(2, false);
        m.certification.committed(3, false);
        m.certification.committed(4, false);
        let text = m.render();
        assert_eq!(sample(&text, "fapiao_certification_seconds_count"), "1", "{text}");
        // One certificate for height 3 certifies 2 and 3 (a certificate covers its
        // ancestors); 4 still waits.
        std::thread::sleep(std::time::Duration::from_millis(30));
        m.certification.certified(3);
        m.certification.certified(3);
        let text = m.render();
        assert_eq!(sample(&text, "fapiao_certification_seconds_count"), "3", "{text}");
        let sum: f64 = sample(&text, "fapiao_certification_seconds_sum").parse().unwrap();
        assert!(sum >= 0.06, "two blocks waited at least 30 ms each: {text}");
        assert_eq!(
            sample(&text, "fapiao_certification_seconds_bucket{le=\"0.005\"}"),
            "1",
            "only the quorum-of-one block is under 5 ms: {text}"
        );
        m.certification.certified(10);
        assert_eq!(sample(&m.render(), "fapiao_certification_seconds_count"), "4");
    }

    #[test]
    fn certification_forgets_the_oldest_blocks_past_its_bound() {
        let c = Certification::default();
        for h in 0..(AWAITING_MAX as u64 + 10) {
            c.committed(h, false);
        }
        let awaiting = c.awaiting.lock().unwrap();
        assert_eq!(awaiting.len(), AWAITING_MAX);
        assert_eq!(awaiting.keys().next(), Some(&10));
    }
}
