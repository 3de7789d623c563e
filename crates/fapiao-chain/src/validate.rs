//! Validation of another member's block by deterministic re-execution.
//!
//! A witness never trusts a block's derived events or its state root: it re-runs the
//! block's input events through the same rules on its own copy of the chain's state and
//! requires the same entries, in the same order, and the same state root.

use fapiao_core::block::BlockError;
use fapiao_core::sig::{self, BatchItem, Cores, SigError};
use fapiao_core::smt::{Node, NodeMap, NodeStore, TreeError};
use fapiao_core::{Block, Config, Entry, Event, Genesis, Hash32};
use fapiao_domain::state::ExecError;
use fapiao_domain::{execute_block, BlockContext, ChainContext, StateKey, StateRead, StateValue};
use std::collections::BTreeMap;

/// Why a block is not a valid next block of its chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The header, its signature, or the entries against the header.
    #[error("block: {0}")]
    Block(#[from] BlockError),
    /// An input event's signature is invalid.
    #[error("event {index} has an invalid signature: {error}")]
    EventSignature {
        /// Index among the block's input events.
        index: usize,
        /// Why.
        error: SigError,
    },
    /// The block's height or parent does not follow the chain's head.
    #[error("block does not extend the head: {0}")]
    Link(String),
    /// The block's time goes back or is too far ahead.
    #[error("block timestamp: {0}")]
    Timestamp(String),
    /// Re-executing an input event rejected it: a valid block holds only accepted events.
    #[error("event {index} is rejected on re-execution: {code}")]
    Rejected {
        /// Index among the block's input events.
        index: usize,
        /// The rejection code.
        code: &'static str,
    },
    /// Re-execution derived different entries.
    #[error("re-execution derives different entries ({ours} vs {theirs})")]
    Entries {
        /// Entry count re-executed here.
        ours: usize,
        /// Entry count in the block.
        theirs: usize,
    },
    /// Re-execution gives a different state root.
    #[error("re-execution gives state root {ours}, the header says {theirs}")]
    StateRoot {
        /// Root computed here.
        ours: Hash32,
        /// Root in the header.
        theirs: Hash32,
    },
}

/// Reading the local state failed (IO or corruption): not the block's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError<E> {
    /// State records.
    #[error("state: {0}")]
    State(ExecError<E>),
    /// State tree.
    #[error("state tree: {0}")]
    Tree(TreeError<E>),
}

/// What a block does to its chain's state: the records it writes and the tree update
/// they make. Building a block and re-executing one both end with it; the host stores
/// it with the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// State records written.
    pub writes: BTreeMap<StateKey, StateValue>,
    /// Tree nodes changed (`None` = deleted), as the tree update leaves them; the store
    /// groups them by page.
    pub tree: NodeMap<Option<Node>>,
    /// The state root after the block (equal to the header's).
    pub root: Hash32,
}

impl StateChange {
    /// The tree update of `writes` over `base`, its leaves hashed on `cores`: the one
    /// state-tree update every block goes through.
    pub fn of<S: NodeStore>(
        base: &S,
        writes: BTreeMap<StateKey, StateValue>,
        cores: Cores,
    ) -> Result<StateChange, TreeError<S::Error>> {
        let (tree, root) = fapiao_core::state::tree_update_on(base, &writes, cores)?;
        Ok(StateChange { writes, tree, root })
    }
}

/// How re-execution treats a block's event signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signatures {
    /// Verify them, in batches (a witness).
    Verify,
    /// The caller has checked them (replay lists every bad one itself) or was not asked
    /// to (replay without `--verify-signatures`).
    Checked,
}

/// The input events of a block, in order.
pub fn inputs(block: &Block) -> Vec<Event> {
    block
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Event(ev) => Some(ev.clone()),
            Entry::Derived(_) => None,
        })
        .collect()
}

/// Verifies events' signatures in batches of [`sig::BATCH_ITEMS`] on `cores` and names
/// every bad one by its index in `events`, in order.
pub fn bad_event_signatures(events: &[Event], cores: Cores) -> Vec<(usize, SigError)> {
    let ids: Vec<Hash32> = events.iter().map(|e| e.id().0).collect();
    let items: Vec<BatchItem<'_>> = events
        .iter()
        .zip(&ids)
        .map(|(e, id)| BatchItem {
            key: &e.body.author,
            digest: id,
            signature: &e.signature,
        })
        .collect();
    sig::verify_batches(&items, cores)
}

/// Re-executes `block` under `config`, its epoch's configuration, on `base`, the
/// chain's state after the block's parent, with its
/// signature batches and leaf hashing on `cores`. The caller has checked the header
/// signature, the link to the parent and the timestamp.
///
/// Returns `Ok(Err(_))` when the block is invalid and `Err(_)` when the local state
/// cannot be read.
pub fn reexecute<S, E>(
    genesis: &Genesis,
    config: &Config,
    block: &Block,
    base: &S,
    signatures: Signatures,
    cores: Cores,
) -> Result<Result<StateChange, Invalid>, ReadError<E>>
where
    S: StateRead<Error = E> + NodeStore<Error = E>,
{
    let h = &block.header.body;
    if let Err(e) = block.check_entries() {
        return Ok(Err(e.into()));
    }
    if config.epoch() != h.epoch {
        return Ok(Err(BlockError::UnknownEpoch(h.epoch).into()));
    }
    let Some(ctx) = ChainContext::new(genesis, config, h.chain) else {
        return Ok(Err(BlockError::UnknownChain(h.chain).into()));
    };
    let events = inputs(block);
    if signatures == Signatures::Verify {
        if let Some((index, error)) = bad_event_signatures(&events, cores).first() {
            return Ok(Err(Invalid::EventSignature {
                index: *index,
                error: *error,
            }));
        }
    }
    let bc = BlockContext {
        height: h.height,
        timestamp: h.timestamp,
    };
    let executed = execute_block(&ctx, &bc, base, &events).map_err(ReadError::State)?;
    if let Some((index, r)) = executed.rejected.first() {
        return Ok(Err(Invalid::Rejected {
            index: *index,
            code: r.code().as_str(),
        }));
    }
    if executed.entries != block.entries {
        return Ok(Err(Invalid::Entries {
            ours: executed.entries.len(),
            theirs: block.entries.len(),
        }));
    }
    let change = StateChange::of(base, executed.writes, cores).map_err(ReadError::Tree)?;
    if change.root != h.state_root {
        return Ok(Err(Invalid::StateRoot {
            ours: change.root,
            theirs: h.state_root,
        }));
    }
    Ok(Ok(change))
}
