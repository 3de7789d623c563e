//! A chain reset on this node's ledger (PROTOCOL.md "Chain recovery"): at start, blocks a
//! certified reset set aside are removed from the chain (on record in the store), its
//! superseded evidence is moved to the record, and this member's own events from its
//! set-aside blocks are submitted again, to be recorded once under its successor key.

use anyhow::Result;
use fapiao_core::{codec, Entry, Epochs, Event, Genesis, MemberCode};
use fapiao_engine::Engine;
use fapiao_store::Store;

/// Sets aside what every known reset set aside, and moves superseded evidence to the
/// record. Idempotent: run at every start, before the engine, so a node stopped (or
/// crashed) between learning a reset and acting on it, and the owner's node, which acts
/// on its own chain's reset only here (it restarts with the successor key), catch up.
pub(crate) fn apply(store: &Store, genesis: &Genesis, epochs: &Epochs) -> Result<()> {
    for (chain, height, epoch) in fapiao_chain::disk::set_aside_due(store, epochs)? {
        let blocks = store.set_aside(genesis, epochs, chain, height)?;
        tracing::warn!(
            %chain,
            kept = height,
            epoch,
            set_aside = blocks.len(),
            "a chain reset set aside blocks above its certified prefix; they stay on record"
        );
    }
    for ev in store.evidence()? {
        let chain = ev.first.body.chain;
        if epochs.superseded(&ev) {
            let epoch = epochs.resets(chain).map(|r| r.epoch).max().unwrap_or(0);
            store.supersede_evidence(chain, epoch)?;
            tracing::info!(%chain, epoch, "equivocation evidence superseded by a chain reset; kept on record");
        }
    }
    Ok(())
}

/// The events of `me`'s set-aside blocks that are on no block of its chain now and
/// were never dropped: what its node submits again after a reset. Each carries its
/// client's signature and business ids, so admission and execution record it at most
/// once whatever else resubmits it (the client's outbox).
pub(crate) fn to_resubmit(store: &Store, me: MemberCode) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    for block in store.set_aside_blocks(me)? {
        for entry in block.entries {
            if let Entry::Event(e) = entry {
                let id = e.id();
                if store.locate(&id)?.is_none() && store.rejected(&id)?.is_none() {
                    events.push(e);
                }
            }
        }
    }
    Ok(events)
}

/// Submits `events` through admission, in order and in batches the engine takes; an
/// event already admitted again (pending) is answered as a duplicate and not stored twice.
pub(crate) async fn resubmit(engine: &Engine, events: Vec<Event>) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let total = events.len();
    let mut admitted = 0;
    for batch in events.chunks(engine.config().batch_events_max.max(1)) {
        let encoded = batch.iter().map(codec::to_bytes).collect();
        let answers = engine.admit(encoded).await?;
        admitted += answers.iter().filter(|a| a.is_ok()).count();
        for (e, a) in batch.iter().zip(&answers) {
            if let Err(err) = a {
                tracing::warn!(event = %e.id(), error = %err, "an event of a set-aside block was not admitted again");
            }
        }
    }
    tracing::info!(total, admitted, "events of set-aside blocks submitted again");
    Ok(())
}
