//! The simulator's storage: one chain in memory ([`MemChain`]) and a member's whole disk
//! ([`MemLedger`]): the [`Ledger`] its replica writes through, which survives a simulated
//! crash.

use crate::disk::ChainRead;
use crate::replica::{Ledger, Persisted, StoredHead};
use crate::validate::{reexecute, Invalid};
use fapiao_core::block::entries_root;
use fapiao_core::smt::{self, MemNodes, Node, NodeKey, NodeStore};
use fapiao_core::{
    Block, BlockHash, Certificate, Equivocation, Genesis, Hash32, Header, HeaderBody, MemberCode, SecretKey, Timestamp,
};
use fapiao_domain::{execute_block, BlockContext, ChainContext, MemState, StateKey, StateRead, StateValue};
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
    writes: BTreeMap<StateKey, StateValue>,
    tree: BTreeMap<NodeKey, Option<Node>>,
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
        chain: MemberCode,
        key: &SecretKey,
        timestamp: Timestamp,
        events: &[fapiao_core::Event],
    ) -> Option<Block> {
        self.execute_next(genesis, chain, key, timestamp, events)
            .map(|b| b.block)
    }

    /// [`MemChain::build_next`], keeping what storing the block writes.
    pub(super) fn execute_next(
        &self,
        genesis: &Genesis,
        chain: MemberCode,
        key: &SecretKey,
        timestamp: Timestamp,
        events: &[fapiao_core::Event],
    ) -> Option<Built> {
        let (height, parent, last) = match self.blocks.last() {
            Some(b) => (b.header.body.height + 1, b.header.hash(), b.header.body.timestamp.0),
            None => (1, BlockHash(Hash32::ZERO), 0),
        };
        let timestamp = Timestamp(timestamp.0.max(last));
        let ctx = ChainContext::new(genesis, chain)?;
        let bc = BlockContext { height, timestamp };
        let ex = match execute_block(&ctx, &bc, self, events) {
            Ok(x) => x,
            Err(e) => match e {
                fapiao_domain::state::ExecError::Read(e) => match e {},
                fapiao_domain::state::ExecError::Corrupt(k) => panic!("in-memory state corrupt at {k:?}"),
            },
        };
        if ex.entries.is_empty() {
            return None;
        }
        let (tree, root) =
            fapiao_core::state::tree_update(self, &ex.writes).unwrap_or_else(|e| panic!("in-memory tree: {e}"));
        let header = HeaderBody {
            network: genesis.network_id(),
            chain,
            height,
            parent,
            timestamp,
            events_root: entries_root(&ex.entries),
            event_count: ex.entries.len() as u32,
            state_root: root,
        }
        .sign(key);
        Some(Built {
            block: Block {
                header,
                entries: ex.entries,
            },
            writes: ex.writes,
            tree,
        })
    }

    /// Stores the owner's own block as it executed it, without re-executing it: a
    /// node's producer does the same, and every witness re-executes it.
    pub(super) fn store_own(&mut self, built: Built) -> Block {
        assert_eq!(
            built.block.header.body.height,
            self.blocks.len() as u64 + 1,
            "an own block extends the head"
        );
        self.state.apply(built.writes);
        self.nodes.apply(built.tree);
        self.blocks.push(built.block.clone());
        self.roots.push(self.root());
        built.block
    }

    /// Re-executes `block` as the next block and stores it.
    pub fn apply(&mut self, genesis: &Genesis, block: &Block) -> Result<(), Invalid> {
        let done = match reexecute(genesis, block, self) {
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

    fn append(&mut self, block: &Block) -> Result<Result<(), Invalid>, Infallible> {
        let c = self.chains.entry(block.header.body.chain).or_default();
        if let Err(e) = c.apply(&self.genesis, block) {
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
                Some((
                    *chain,
                    StoredHead {
                        height: b.header.body.height,
                        hash: b.header.hash(),
                        timestamp: b.header.body.timestamp,
                    },
                ))
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
