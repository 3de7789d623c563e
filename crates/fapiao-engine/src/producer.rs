//! The block producer: group commit of pending events into blocks.
//!
//! Two kinds of trouble are kept apart, because they call for opposite answers:
//!
//! - **An event that cannot be executed** (its execution panicked, or it reads a state
//!   record that is undecodable or fails its integrity check): the event is the poison,
//!   so the block builder (`fapiao_chain::build`, the one the simulator runs too) leaves
//!   it out, and it alone is refused, recorded with its reason (`EXECUTION_FAILED`),
//!   counted and logged, and the block goes on without it. Nothing an admitted event does can stop
//!   the producer.
//! - **Storage that cannot be used now** (an IO error, a full disk, a damaged state
//!   tree): no event is at fault, so none is refused. The events stay durable in the
//!   pending table, the producer pauses with a growing delay, says so in its log and
//!   metrics, and tries again; reads and verification go on meanwhile.

use crate::Shared;
use fapiao_chain::build::{build_block, panic_text, Refusal};
use fapiao_chain::StoredHead;
use fapiao_core::block::AttestationBody;
use fapiao_core::sig::Cores;
use fapiao_core::{Block, Certificate, Event, EventId, Timestamp};
use fapiao_domain::ChainContext;
use fapiao_store::{BlockCommit, PreparedState, RejectedInfo, StoreError};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The code an admitted event gets when executing it failed for a reason that is not a
/// ledger rule (see the module documentation).
pub const EXECUTION_FAILED: &str = fapiao_domain::ErrorCode::ExecutionFailed.as_str();

/// The first pause after a storage failure; it doubles up to [`STALL_PAUSE_MS_MAX`].
const STALL_PAUSE_MS_MIN: u64 = 200;
/// The longest pause between attempts while storage keeps failing.
const STALL_PAUSE_MS_MAX: u64 = 10_000;

pub(crate) fn now_ms() -> u64 {
    crate::wall_clock().0
}

pub(crate) fn producer_loop(shared: Arc<Shared>) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&shared)));
    if result.is_err() {
        // Only the producer's own invariants can get here (events are guarded one by one).
        tracing::error!("block producer panicked; the node must stop");
        shared.metrics.thread_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the producer waits for next.
enum Next {
    /// The engine is stopping.
    Stop,
    /// The writer reported on the block in flight.
    Settled(Written),
    /// A block is due with these pending events (sequence, id, event), in admission
    /// order, none of them in the block being written.
    Batch(Vec<(u64, EventId, Event)>),
}

/// A block handed to the writer and not yet known to be stored: the next block is
/// built on it (its state laid over the stored one, see `Store::state_after`).
struct InFlight {
    head: StoredHead,
    state: Arc<PreparedState>,
    /// Its pending events, which the next block must not take again.
    seqs: HashSet<u64>,
}

/// How writing a block ended, as the writer thread reports it.
enum Written {
    Stored,
    Failed(StoreError),
    Panicked(String),
}

/// The producer is a two-stage pipeline: this thread executes, hashes and signs block
/// N+1 on the state as block N leaves it while a writer thread commits block N (one
/// synced write, the slowest step). A block is handed to the writer only once the one
/// before it is stored; if that write failed, the block built on it is dropped unsent
/// (its header never left this process, so signing another at its height is no
/// equivocation), and its events, still pending, go into the next attempt.
fn run(shared: &Shared) {
    std::thread::scope(|scope| {
        let (to_writer, jobs) = std::sync::mpsc::sync_channel::<Box<Ready>>(1);
        let (written_tx, written) = std::sync::mpsc::channel::<Written>();
        let writer = std::thread::Builder::new()
            .name("block-writer".into())
            .spawn_scoped(scope, move || {
                for ready in jobs {
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(shared, ready)));
                    let report = match outcome {
                        Ok(Ok(())) => Written::Stored,
                        Ok(Err(e)) => Written::Failed(e),
                        Err(panic) => Written::Panicked(panic_text(&*panic)),
                    };
                    let _ = written_tx.send(report);
                    shared.wake.notify_all();
                }
            });
        if writer.is_err() {
            tracing::error!("cannot start the block writer thread; the node must stop");
            shared.metrics.thread_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pipeline(shared, &to_writer, &written);
    })
}

/// Waits for the writer's report on the block in flight.
fn settle(written: &std::sync::mpsc::Receiver<Written>) -> Result<(), StoreError> {
    match written.recv() {
        Ok(report) => outcome(report),
        Err(_) => panic!("the block writer stopped"),
    }
}

/// A writer's report as the producer acts on it: a panic there is the producer's own
/// invariant broken, so it stops the producer too.
fn outcome(report: Written) -> Result<(), StoreError> {
    match report {
        Written::Stored => Ok(()),
        Written::Failed(e) => Err(e),
        Written::Panicked(what) => panic!("the block writer panicked: {what}"),
    }
}

// Long: the producer thread's loop: a block due, building it on the one in flight, the handover to the writer, and
// the backoff while storage fails, whose state lives across iterations.
fn pipeline(
    shared: &Shared,
    to_writer: &std::sync::mpsc::SyncSender<Box<Ready>>,
    written: &std::sync::mpsc::Receiver<Written>,
) {
    let mut pause_ms = 0u64;
    let mut in_flight: Option<InFlight> = None;
    loop {
        let attempt = match next(shared, in_flight.as_ref(), written) {
            Next::Stop => {
                if in_flight.take().is_some() {
                    let _ = settle(written);
                }
                return;
            }
            Next::Settled(report) => {
                in_flight = None;
                outcome(report).map_err(Stall::Store)
            }
            Next::Batch(batch) => match shared.disk.too_low_to_produce() {
                Some(free) => {
                    if in_flight.take().is_some() {
                        let _ = settle(written);
                    }
                    Err(Stall::DiskLow(free))
                }
                None => {
                    let built = build(shared, batch, in_flight.as_ref());
                    // The block before must be stored before this one is handed on.
                    let before = match in_flight.take() {
                        Some(_) => settle(written),
                        None => Ok(()),
                    };
                    match (before, built) {
                        (Err(e), _) | (Ok(()), Err(e)) => Err(Stall::Store(e)),
                        (Ok(()), Ok(Outcome::Nothing { seqs, refused })) => {
                            drop_refused(shared, &seqs, &refused).map_err(Stall::Store)
                        }
                        (Ok(()), Ok(Outcome::Block(ready))) => {
                            in_flight = Some(InFlight {
                                head: StoredHead::of(&ready.block.header),
                                state: ready.state.clone(),
                                seqs: ready.seqs.iter().copied().collect(),
                            });
                            if to_writer.send(ready).is_err() {
                                panic!("the block writer stopped");
                            }
                            Ok(())
                        }
                    }
                }
            },
        };
        match attempt {
            Ok(()) => {
                if pause_ms > 0 {
                    tracing::warn!("block production resumed");
                    shared.metrics.producer_stalled.store(0, Ordering::Relaxed);
                }
                pause_ms = 0;
            }
            Err(e) => {
                pause_ms = (pause_ms * 2).clamp(STALL_PAUSE_MS_MIN, STALL_PAUSE_MS_MAX);
                tracing::error!(error = %e, pause_ms, "block production paused; the events stay pending");
                shared.metrics.producer_stalls.fetch_add(1, Ordering::Relaxed);
                shared.metrics.producer_stalled.store(1, Ordering::Relaxed);
                let pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
                // Woken early only to stop.
                let _ = shared
                    .wake
                    .wait_timeout_while(pending, Duration::from_millis(pause_ms), |_| {
                        !shared.stopping.load(Ordering::SeqCst)
                    });
            }
        }
    }
}

/// Waits until a block is due (enough events, or the oldest has waited long enough),
/// the block in flight has been written, or the engine stops.
fn next(shared: &Shared, in_flight: Option<&InFlight>, written: &std::sync::mpsc::Receiver<Written>) -> Next {
    let interval = Duration::from_millis(shared.config.block_interval_ms);
    let certify_wait = Duration::from_millis(shared.config.certify_wait_ms.max(shared.config.block_interval_ms));
    let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return Next::Stop;
        }
        let flying = in_flight.map_or(0, |f| f.seqs.len());
        let waiting = pending.len().saturating_sub(flying);
        let held = shared.hold.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        let wait = if uncertified(shared, in_flight) >= shared.config.uncertified_blocks_max {
            certify_wait
        } else {
            interval
        };
        let due = match pending.oldest {
            _ if held || waiting == 0 => None,
            None => None,
            Some(_) if waiting >= shared.config.block_events_max => Some(Duration::ZERO),
            Some(t) => Some(wait.saturating_sub(t.elapsed())),
        };
        if due != Some(Duration::ZERO) && in_flight.is_some() {
            // Nothing to build yet: hear how the block in flight went.
            if let Ok(report) = written.try_recv() {
                return Next::Settled(report);
            }
        }
        match due {
            Some(d) if d.is_zero() => break,
            Some(d) => {
                pending = shared
                    .wake
                    .wait_timeout(pending, d)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            None => {
                pending = shared
                    .wake
                    .wait_timeout(pending, Duration::from_millis(500))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }
    // Input events fill at most half the block's bytes; derived events get the rest.
    let mut bytes = 0usize;
    let budget = shared.config.block_bytes_max / 2;
    let batch: Vec<(u64, EventId, Event)> = pending
        .by_seq
        .iter()
        .filter(|(s, _)| !in_flight.is_some_and(|f| f.seqs.contains(s)))
        .take(shared.config.block_events_max)
        .take_while(|(_, (_, e))| {
            let first = bytes == 0;
            bytes += fapiao_core::codec::to_bytes(e).len();
            first || bytes <= budget
        })
        .map(|(s, (id, e))| (*s, *id, e.clone()))
        .collect();
    // The events left waiting are timed from now, not from the ones taken.
    let left = pending.len() - in_flight.map_or(0, |f| f.seqs.len()) - batch.len();
    pending.oldest = (left > 0).then(Instant::now);
    Next::Batch(batch)
}

/// Blocks of this chain, the one in flight included, that have no certificate yet.
fn uncertified(shared: &Shared, in_flight: Option<&InFlight>) -> u64 {
    let m = &shared.metrics;
    let head = in_flight.map_or_else(|| m.head_height.load(Ordering::Relaxed), |f| f.head.height);
    head.saturating_sub(m.certified_height.load(Ordering::Relaxed))
}

/// Why a block could not be produced now; no event is at fault.
#[derive(Debug, thiserror::Error)]
enum Stall {
    /// The store failed.
    #[error("storage failed: {0}")]
    Store(StoreError),
    /// Free disk is below half the reserve.
    #[error("free disk ({0} bytes) is below half the reserve")]
    DiskLow(u64),
}

/// A batch after execution.
enum Outcome {
    /// Every event was refused: nothing to put in a block.
    Nothing {
        seqs: Vec<u64>,
        refused: Vec<(EventId, RejectedInfo)>,
    },
    /// A signed block, ready to be written.
    Block(Box<Ready>),
}

/// A signed block and everything its commit writes.
struct Ready {
    block: Block,
    state: Arc<PreparedState>,
    seqs: Vec<u64>,
    refused: Vec<(EventId, RejectedInfo)>,
    certificate: Option<Certificate>,
    /// Input events in the block.
    inputs: usize,
    started: Instant,
}

/// Builds a block from `batch` (in admission order) on the state after `on` (the block
/// in flight) or the stored head, with the chain's one block builder
/// (`fapiao_chain::build_block`, which the simulator runs too), and self-attests it. An
/// `Err` is a storage failure: nothing was built and every event of the batch is still
/// pending.
fn build(shared: &Shared, batch: Vec<(u64, EventId, Event)>, on: Option<&InFlight>) -> Result<Outcome, StoreError> {
    let started = Instant::now();
    let store = &shared.store;
    let chain = shared.chain;
    let tip = match on {
        Some(f) => Some(f.head),
        None => store
            .header(chain, store.head(chain)?.map_or(0, |h| h.height))?
            .map(|h| StoredHead::of(&h)),
    };
    let now = Timestamp(now_ms().saturating_add(shared.config.clock_offset_ms));
    let seqs: Vec<u64> = batch.iter().map(|(s, _, _)| *s).collect();
    // No event here is already in a block: a block commit removes its pending events
    // in the same atomic write, admission dedupes against committed events first, and
    // the events of the block in flight are not taken again.
    let events: Vec<Event> = batch.into_iter().map(|(_, _, e)| e).collect();
    // The block is made in the newest epoch known. A chain closed by it (or a key
    // rotated away) has production held by replication; until that lands, nothing is
    // built and the events stay pending.
    let epochs = shared.epochs();
    let latest = epochs.latest();
    let ctx = match ChainContext::new(&shared.genesis, latest, chain) {
        Some(c) if c.owner() == shared.key.public() => c,
        _ => {
            return Ok(Outcome::Nothing {
                seqs,
                refused: Vec::new(),
            })
        }
    };
    // One view for executing and for the tree update: the update walks the tree pages
    // the reads' checks already fetched.
    let view = match on {
        Some(f) => store.state_after(chain, f.state.clone()),
        None => store.state(chain),
    };
    let built = build_block(&ctx, &shared.key, tip.as_ref(), now, &view, &events, Cores::All)
        .map_err(|e| StoreError::from_read(e, chain))?;
    let refused = refusals(&events, built.refused, built.timestamp, &shared.metrics);
    let Some((block, change)) = built.block else {
        return Ok(Outcome::Nothing { seqs, refused });
    };
    let hash = block.header.hash();
    let height = block.header.body.height;
    let certificate = self_certificate(shared, &epochs, tip.as_ref(), chain, height, hash);
    let inputs = events.len() - refused.len();
    Ok(Outcome::Block(Box::new(Ready {
        block,
        state: Arc::new(PreparedState::new(chain, change)),
        seqs,
        refused,
        certificate,
        inputs,
        started,
    })))
}

/// A witness owner attests its own block in the epoch that certifies it (its parent's,
/// the chain's first at height 1); with a quorum of one that is a certificate.
fn self_certificate(
    shared: &Shared,
    epochs: &fapiao_core::Epochs,
    tip: Option<&StoredHead>,
    chain: fapiao_core::MemberCode,
    height: u64,
    hash: fapiao_core::BlockHash,
) -> Option<Certificate> {
    let certifying = epochs.certifying(chain, tip.map(|t| (t.height, t.epoch)));
    let committee = epochs.at(certifying)?;
    let mine = committee.witness(chain).is_some_and(|m| m.key == shared.key.public());
    if committee.quorum() > 1 || !mine {
        return None;
    }
    let attestation = AttestationBody {
        network: shared.network,
        chain,
        epoch: certifying,
        height,
        block: hash,
        witness: chain,
    }
    .sign(&shared.key);
    Certificate::from_attestations([&attestation])
}

/// The events the builder left out, as the pending table records them (code, message,
/// field, block time), counted and, for poison, logged.
fn refusals(
    events: &[Event],
    refused: Vec<(usize, Refusal)>,
    at: Timestamp,
    m: &crate::metrics::Metrics,
) -> Vec<(EventId, RejectedInfo)> {
    refused
        .into_iter()
        .map(|(i, why)| {
            let id = events[i].id();
            let info = match why {
                Refusal::Rule(r) => {
                    m.events_rejected_execution.fetch_add(1, Ordering::Relaxed);
                    RejectedInfo {
                        code: r.code().as_str().to_string(),
                        message: r.to_string(),
                        field: r.field(),
                        at,
                    }
                }
                Refusal::Poison(why) => {
                    m.events_execution_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(event = %id, reason = %why, "event refused: it cannot be executed");
                    RejectedInfo {
                        code: EXECUTION_FAILED.to_string(),
                        message: format!("the node could not execute this event: {why}; it is refused and recorded, the node goes on (see OPERATIONS.md, refused poison event)"),
                        field: None,
                        at,
                    }
                }
            };
            (id, info)
        })
        .collect()
}

/// Writes a block (on the writer thread), then tells the rest of the node: its hook
/// (gossip), the metrics, and the pending set its events leave.
fn commit(shared: &Shared, ready: Box<Ready>) -> Result<(), StoreError> {
    let Ready {
        block,
        state,
        seqs,
        refused,
        certificate,
        inputs,
        started,
    } = *ready;
    let hash = block.header.hash();
    let height = block.header.body.height;
    // A failed write leaves nothing behind: the signed header never left this
    // process, so signing another block at this height later is no equivocation.
    shared.store.commit_block(&BlockCommit {
        block: &block,
        state: &state,
        pending_done: &seqs,
        rejected: &refused,
        vote: Some(hash),
        certificate: certificate.as_ref(),
    })?;
    // Before the hook hands the block to replication, so its certificate cannot come first.
    shared.metrics.certification.committed(height, certificate.is_some());
    if let Some(hook) = shared.block_hook.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        hook(&block);
    }
    let derived = block.entries.len() - inputs;
    let m = &shared.metrics;
    m.blocks_committed.fetch_add(1, Ordering::Relaxed);
    m.events_committed.fetch_add(inputs as u64, Ordering::Relaxed);
    m.derived_committed.fetch_add(derived as u64, Ordering::Relaxed);
    m.head_height.store(height, Ordering::Relaxed);
    if certificate.is_some() {
        m.certified_height.store(height, Ordering::Relaxed);
    }
    tracing::debug!(height, events = inputs, derived, "block committed");
    leave_pending(shared, &seqs);
    m.block_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    Ok(())
}

/// Drops a batch that put nothing in a block, with the reasons its events were refused.
fn drop_refused(shared: &Shared, seqs: &[u64], refused: &[(EventId, RejectedInfo)]) -> Result<(), StoreError> {
    shared.store.drop_pending(seqs, refused)?;
    leave_pending(shared, seqs);
    Ok(())
}

/// Takes stored (or dropped) events out of the pending set.
fn leave_pending(shared: &Shared, seqs: &[u64]) {
    let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
    for s in seqs {
        pending.remove(*s);
    }
    if !pending.by_seq.is_empty() && pending.oldest.is_none() {
        pending.oldest = Some(Instant::now());
    }
    shared.metrics.pending.store(pending.len() as u64, Ordering::Relaxed);
}
