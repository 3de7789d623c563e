//! The simulator's storage: one chain in memory ([`MemChain`]) and a member's whole disk
//! ([`MemLedger`]): the [`Ledger`] its replica writes through, which survives a simulated
//! crash.

use crate::build::{build_block, Refusal};
use crate::disk::ChainRead;
use crate::replica::{Ledger, Persisted, StoredHead};
use crate::validate::{reexecute, Invalid, Signatures, StateChange};
use fapiao_core::sig::Cores;
use fapiao_core::smt::{self, MemNodes, Node, NodeKey, NodeStore};
use fapiao_core::{
    Block, BlockHash, Certificate, Config, Equivocation, Genesis, Hash32, Header, MemberCode, SecretKey, Timestamp,
};
use fapiao_domain::{ChainContext, MemState, StateKey, StateRead, StateValue};
use std::collections::BTreeMap;
use std::convert::Infallible;

/// In-memory state reads cannot fail.
fn unreachable_read(e: crate::validate::ReadError<Infallible>) -> ! {
    match e {
        crate::validate::ReadError::State(fapiao_domain::state::ExecError::Read(e)) => match e {},
        crate::validate::ReadError::State(fapiao_domain::state::ExecError::Corrupt(k)) => {
            panic!("simulated state corrupt at {k:?}")
        }
        crate::validate::ReadError::Tree(fapiao_core::smt::TreeError::Read(e)) => match e {},
        crate::validate::ReadError::Tree(fapiao_core::smt::TreeError::Corrupt(d)) => {
            panic!("simulated tree corrupt at depth {d}")
        }
    }
}

/// One chain in memory: its blocks, state records and state tree. The simulator's
/// members keep one per chain; tests use one to build blocks as a chain owner would.
#[derive(Default, Clone)]
pub struct MemChain {
    pub(super) blocks: Vec<Block>,
    /// The root of the stored state tree after each block, read back from the tree after
    /// applying it (not copied from the header), so members can be compared.
    pub(super) roots: Vec<Hash32>,
    pub(super) state: MemState,
    nodes: MemNodes,
}

/// A block built on top of a [`MemChain`], with what storing it writes.
pub(super) struct Built {
    pub(super) block: Block,
    change: StateChange,
}

impl StateRead for MemChain {
    type Error = Infallible;
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, Infallible> {
        self.state.get(key)
    }
}

impl NodeStore for MemChain {
    type Error = Infallible;
    fn node(&self, at: &NodeKey) -> Result<Option<Node>, Infallible> {
        self.nodes.node(at)
    }
}

impl MemChain {
    /// The blocks, from height 1.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Executes `events` as the next block of `chain` at `timestamp` (or later, to keep
    /// time monotonic) and signs it with `key`, without storing it. `None` when every
    /// event is rejected.
    pub fn build_next(
        &self,
        genesis: &Genesis,
        config: &Config,
        chain: MemberCode,
        key: &SecretKey,
        timestamp: Timestamp,
        events: &[fapiao_core::Event],
    ) -> Option<Block> {
        self.execute_next(genesis, config, chain, key, timestamp, events)
            .map(|b| b.block)
    }

    /// [`MemChain::build_next`], keeping what storing the block writes: the node's block
    /// builder over memory. An event that the builder refuses as poison (its execution
    /// panicked) is a violation here: the workload's events must all be executable.
    pub(super) fn execute_next(
        &self,
        genesis: &Genesis,
        config: &Config,
        chain: MemberCode,
        key: &SecretKey,
        timestamp: Timestamp,
        events: &[fapiao_core::Event],
    ) -> Option<Built> {
        let ctx = ChainContext::new(genesis, config, chain)?;
        let on = self.blocks.last().map(|b| StoredHead::of(&b.header));
        let built = match build_block(&ctx, key, on.as_ref(), timestamp, self, events, Cores::One) {
            Ok(b) => b,
            Err(e) => unreachable_read(e),
        };
        if let Some((i, Refusal::Poison(why))) = built.refused.iter().find(|(_, r)| matches!(r, Refusal::Poison(_))) {
            panic!("simulated event {} could not be executed: {why}", events[*i].id());
        }
        let (block, change) = built.block?;
        Some(Built { block, change })
    }

    /// Stores the owner's own block as it executed it, without re-executing it: a
    /// node's producer does the same, and every witness re-executes it.
    pub(super) fn store_own(&mut self, built: Built) -> Block {
        assert_eq!(
            built.block.header.body.height,
            self.blocks.len() as u64 + 1,
            "an own block extends the head"
        );
        self.state.apply(built.change.writes);
        self.nodes.apply(built.change.tree);
        self.blocks.push(built.block.clone());
        self.roots.push(self.root());
        built.block
    }

    /// Re-executes `block` as the next block and stores it.
    pub fn apply(&mut self, genesis: &Genesis, config: &Config, block: &Block) -> Result<(), Invalid> {
        let done = match reexecute(genesis, config, block, self, Signatures::Verify, Cores::One) {
            Ok(x) => x?,
            Err(e) => unreachable_read(e),
        };
        assert_eq!(
            block.header.body.height,
            self.blocks.len() as u64 + 1,
            "apply extends the head"
        );
        self.state.apply(done.writes);
        self.nodes.apply(done.tree);
        self.blocks.push(block.clone());
        self.roots.push(self.root());
        Ok(())
    }

    /// The state root.
    pub fn root(&self) -> Hash32 {
        self.nodes
            .0
            .get(&NodeKey::on_path(0, &smt::EMPTY))
            .map(|n| n.hash())
            .unwrap_or(smt::EMPTY)
    }
}

/// A member's disk in memory (every chain, votes, certificates, evidence): the
/// simulator's [`Ledger`], and it survives a simulated crash.
#[derive(Clone)]
pub struct MemLedger {
    pub(super) genesis: Genesis,
    pub(super) chains: BTreeMap<MemberCode, MemChain>,
    pub(super) votes: BTreeMap<(MemberCode, u64), BlockHash>,
    pub(super) certs: BTreeMap<(MemberCode, u64), Certificate>,
    pub(super) evidence: BTreeMap<MemberCode, Equivocation>,
}

impl Ledger for MemLedger {
    type Error = Infallible;

    fn header(&self, chain: MemberCode, height: u64) -> Result<Option<Header>, Infallible> {
        Ok(self
            .chains
            .get(&chain)
            .and_then(|c| c.blocks.get(height.wrapping_sub(1) as usize))
            .map(|b| b.header.clone()))
    }

    fn block(&self, chain: MemberCode, height: u64) -> Result<Option<Block>, Infallible> {
        Ok(self.block_at(chain, height).cloned())
    }

    fn append(&mut self, block: &Block, config: &Config) -> Result<Result<(), Invalid>, Infallible> {
        let c = self.chains.entry(block.header.body.chain).or_default();
        if let Err(e) = c.apply(&self.genesis, config, block) {
            return Ok(Err(e));
        }
        // The vote goes with the block, atomically (see `Ledger::append`).
        let b = &block.header.body;
        self.votes.insert((b.chain, b.height), block.header.hash());
        Ok(Ok(()))
    }
}

impl MemLedger {
    /// An empty ledger for `genesis`.
    pub fn new(genesis: Genesis) -> MemLedger {
        MemLedger {
            genesis,
            chains: BTreeMap::new(),
            votes: BTreeMap::new(),
            certs: BTreeMap::new(),
            evidence: BTreeMap::new(),
        }
    }

    /// What the node's store does for [`crate::Output::ChainReset`] with `set_aside`:
    /// `chain`'s blocks above `height` leave it with their votes and certificates, and
    /// its state is as of `height` (rebuilt here by applying the kept blocks again, each
    /// under its epoch's configuration in `epochs`). Returns the blocks set aside.
    pub fn set_aside(&mut self, epochs: &fapiao_core::Epochs, chain: MemberCode, height: u64) -> Vec<Block> {
        let Some(c) = self.chains.get_mut(&chain) else {
            return Vec::new();
        };
        let aside = c.blocks.split_off((height as usize).min(c.blocks.len()));
        let kept = std::mem::take(&mut c.blocks);
        let mut rebuilt = MemChain::default();
        for b in &kept {
            let config = epochs.at(b.header.body.epoch).expect("a stored block's epoch is known");
            rebuilt
                .apply(&self.genesis, config, b)
                .expect("a stored block re-executes on the blocks below it");
        }
        *c = rebuilt;
        self.votes.retain(|(ch, h), _| *ch != chain || *h <= height);
        self.certs.retain(|(ch, h), _| *ch != chain || *h <= height);
        aside
    }

    /// A chain as stored here.
    pub fn chain(&self, chain: MemberCode) -> Option<&MemChain> {
        self.chains.get(&chain)
    }

    /// What a restarting replica loads: the node's rule ([`crate::disk::load`]) over
    /// this memory.
    pub fn persisted(&self) -> Persisted {
        match crate::disk::load(self, &self.genesis, crate::disk::LoadLimits::default()) {
            Ok(p) => p,
            Err(e) => match e {},
        }
    }

    /// The block of `chain` at `height`.
    fn block_at(&self, chain: MemberCode, height: u64) -> Option<&Block> {
        self.chains.get(&chain)?.blocks.get(height.checked_sub(1)? as usize)
    }
}

impl ChainRead for MemLedger {
    type Error = Infallible;

    fn heads(&self) -> Result<Vec<(MemberCode, StoredHead)>, Infallible> {
        Ok(self
            .chains
            .iter()
            .filter_map(|(chain, c)| {
                let b = c.blocks.last()?;
                Some((*chain, StoredHead::of(&b.header)))
            })
            .collect())
    }

    fn block(&self, chain: MemberCode, height: u64) -> Result<Option<Block>, Infallible> {
        Ok(self.block_at(chain, height).cloned())
    }

    fn block_hash(&self, chain: MemberCode, height: u64) -> Result<Option<BlockHash>, Infallible> {
        Ok(self.block_at(chain, height).map(|b| b.header.hash()))
    }

    fn certificate(&self, chain: MemberCode, height: u64) -> Result<Option<Certificate>, Infallible> {
        Ok(self.certs.get(&(chain, height)).cloned())
    }

    fn certificates(&self, chain: MemberCode, from: u64, limit: usize) -> Result<Vec<Certificate>, Infallible> {
        Ok(self
            .certs
            .range((chain, from)..=(chain, u64::MAX))
            .take(limit)
            .map(|(_, c)| c.clone())
            .collect())
    }

    fn votes(&self, chain: MemberCode, from: u64, limit: usize) -> Result<Vec<(u64, BlockHash)>, Infallible> {
        Ok(self
            .votes
            .range((chain, from)..=(chain, u64::MAX))
            .take(limit)
            .map(|((_, h), b)| (*h, *b))
            .collect())
    }

    fn evidence(&self) -> Result<Vec<Equivocation>, Infallible> {
        Ok(self.evidence.values().cloned().collect())
    }

    /// The simulator keeps no record of it: every start reads from height 1.
    fn certified_prefix(&self, _chain: MemberCode) -> Result<u64, Infallible> {
        Ok(0)
    }
}
