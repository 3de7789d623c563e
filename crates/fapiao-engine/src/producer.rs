//! The block producer: group commit of pending events into blocks.

use crate::Shared;
use fapiao_core::block::{entries_root, AttestationBody};
use fapiao_core::{Block, BlockHash, Certificate, Event, EventId, Hash32, HeaderBody, Timestamp};
use fapiao_domain::{execute_block, BlockContext, ChainContext};
use fapiao_store::{BlockCommit, RejectedInfo, StoreError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn producer_loop(shared: Arc<Shared>) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&shared)));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "block producer failed; the node must stop");
            shared.metrics.thread_failures.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            tracing::error!("block producer panicked; the node must stop");
            shared.metrics.thread_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn run(shared: &Shared) -> Result<(), StoreError> {
    let interval = Duration::from_millis(shared.config.block_interval_ms);
    loop {
        // Wait until a block is due: enough events, or the oldest has waited long enough.
        let batch: Vec<(u64, EventId, Event)> = {
            let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if shared.stopping.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let due = match pending.oldest {
                    None => None,
                    Some(_) if pending.len() >= shared.config.block_events_max => Some(Duration::ZERO),
                    Some(t) => Some(interval.saturating_sub(t.elapsed())),
                };
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
            pending
                .by_seq
                .iter()
                .take(shared.config.block_events_max)
                .take_while(|(_, (_, e))| {
                    let first = bytes == 0;
                    bytes += fapiao_core::codec::to_bytes(e).len();
                    first || bytes <= budget
                })
                .map(|(s, (id, e))| (*s, *id, e.clone()))
                .collect()
        };
        produce(shared, batch)?;
    }
}

/// Builds, signs and commits one block from `batch` (in admission order).
pub(crate) fn produce(shared: &Shared, batch: Vec<(u64, EventId, Event)>) -> Result<(), StoreError> {
    let started = Instant::now();
    let store = &shared.store;
    let chain = shared.chain;
    let head = store.head(chain)?;
    let (height, parent, last_time) = match head {
        Some(h) => (h.height + 1, h.hash, h.timestamp.0),
        None => (1, BlockHash(Hash32::ZERO), 0),
    };
    let timestamp = Timestamp(now_ms().max(last_time));
    let seqs: Vec<u64> = batch.iter().map(|(s, _, _)| *s).collect();
    // No event here is already in a block: a block commit removes its pending events
    // in the same atomic write, and admission dedupes against committed events first.
    let events: Vec<Event> = batch.into_iter().map(|(_, _, e)| e).collect();
    let ctx = match ChainContext::new(&shared.genesis, chain) {
        Some(c) => c,
        None => unreachable!("the engine starts only for a merchant of genesis"),
    };
    let bc = BlockContext { height, timestamp };
    let executed = execute_block(&ctx, &bc, &store.state(chain), &events).map_err(|e| match e {
        fapiao_domain::state::ExecError::Read(e) => e,
        fapiao_domain::state::ExecError::Corrupt(k) => StoreError::Corrupt {
            table: "state",
            key: format!("{k:?}"),
            message: "value has the wrong type for its key".into(),
        },
    })?;
    let rejected: Vec<(EventId, RejectedInfo)> = executed
        .rejected
        .iter()
        .map(|(i, r)| {
            (
                events[*i].id(),
                RejectedInfo {
                    code: r.code().to_string(),
                    message: r.to_string(),
                    field: r.field(),
                    at: timestamp,
                },
            )
        })
        .collect();
    shared
        .metrics
        .events_rejected_execution
        .fetch_add(rejected.len() as u64, Ordering::Relaxed);
    if executed.entries.is_empty() {
        // Nothing to put in a block: drop the pending events with their reasons.
        store.drop_pending(&seqs, &rejected)?;
    } else {
        let prepared = store.prepare_state(chain, executed.writes)?;
        let body = HeaderBody {
            network: shared.network,
            chain,
            height,
            parent,
            timestamp,
            events_root: entries_root(&executed.entries),
            event_count: executed.entries.len() as u32,
            state_root: prepared.root,
        };
        let header = body.sign(&shared.key);
        let hash = header.hash();
        // The owner witnesses its own block; with a quorum of one that is a certificate.
        let attestation = AttestationBody {
            network: shared.network,
            chain,
            height,
            block: hash,
            witness: chain,
        }
        .sign(&shared.key);
        let certificate = if shared.genesis.quorum() <= 1 {
            Certificate::from_attestations([&attestation])
        } else {
            None
        };
        let block = Block {
            header,
            entries: executed.entries,
        };
        let inputs = events.len() - rejected.len();
        let derived = block.entries.len() - inputs;
        store.commit_block(&BlockCommit {
            block: &block,
            state: &prepared,
            pending_done: &seqs,
            rejected: &rejected,
            vote: Some(hash),
            certificate: certificate.as_ref(),
        })?;
        if let Some(hook) = shared.block_hook.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            hook(&block);
        }
        let m = &shared.metrics;
        m.blocks_committed.fetch_add(1, Ordering::Relaxed);
        m.events_committed.fetch_add(inputs as u64, Ordering::Relaxed);
        m.derived_committed.fetch_add(derived as u64, Ordering::Relaxed);
        m.head_height.store(height, Ordering::Relaxed);
        if certificate.is_some() {
            m.certified_height.store(height, Ordering::Relaxed);
        }
        tracing::debug!(height, events = inputs, derived, "block committed");
    }
    let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
    for s in &seqs {
        pending.remove(*s);
    }
    if !pending.by_seq.is_empty() && pending.oldest.is_none() {
        pending.oldest = Some(Instant::now());
    }
    shared.metrics.pending.store(pending.len() as u64, Ordering::Relaxed);
    shared
        .metrics
        .block_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    Ok(())
}
