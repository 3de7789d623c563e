//! What the protocol reads from a member's own storage ([`ChainRead`]), and what a
//! restarting replica loads from it ([`load`]). The node implements [`ChainRead`] over
//! RocksDB and the simulator over memory, so the simulator exercises the rules the node
//! runs; the sync answers built from it are in [`crate::sync`].

use crate::replica::{Persisted, StoredHead};
use fapiao_core::{
    Block, BlockHash, Certificate, Entry, Epochs, Equivocation, EventKind, Genesis, MemberCode, Reconfiguration,
};

/// What the protocol reads from a member's storage. Reads only: the host writes.
pub trait ChainRead {
    /// A storage failure.
    type Error;
    /// Every chain's stored head.
    fn heads(&self) -> Result<Vec<(MemberCode, StoredHead)>, Self::Error>;
    /// The stored block of `chain` at `height`.
    fn block(&self, chain: MemberCode, height: u64) -> Result<Option<Block>, Self::Error>;
    /// The hash of the stored block of `chain` at `height`.
    fn block_hash(&self, chain: MemberCode, height: u64) -> Result<Option<BlockHash>, Self::Error>;
    /// The stored certificate of `chain` at `height` (it may certify a block this member
    /// does not hold: evidence).
    fn certificate(&self, chain: MemberCode, height: u64) -> Result<Option<Certificate>, Self::Error>;
    /// At most `limit` stored certificates of `chain` from `from` up, by height.
    fn certificates(&self, chain: MemberCode, from: u64, limit: usize) -> Result<Vec<Certificate>, Self::Error>;
    /// At most `limit` of this member's votes on `chain` from `from` up: (height, block).
    fn votes(&self, chain: MemberCode, from: u64, limit: usize) -> Result<Vec<(u64, BlockHash)>, Self::Error>;
    /// The equivocation evidence held.
    fn evidence(&self) -> Result<Vec<Equivocation>, Self::Error>;
    /// A height up to which every block held of `chain` was found certified at the last
    /// start (0 when the host keeps no such record): [`load`] starts there.
    fn certified_prefix(&self, chain: MemberCode) -> Result<u64, Self::Error>;
}

/// How much [`load`] reads at a time and keeps.
#[derive(Debug, Clone, Copy)]
pub struct LoadLimits {
    /// Rows per storage read.
    pub page_rows: usize,
    /// Most certificates above a chain's certified prefix handed to the replica; the
    /// rest are fetched again by sync.
    pub certificates_max: usize,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            page_rows: 1024,
            certificates_max: 10_000,
        }
    }
}

/// What a restarting replica needs from storage: every head; the configuration changes
/// of the admin chain's certified prefix (so every epoch is known before anything is
/// checked against one); and per chain that ever existed, the certified prefix
/// (extended from the one recorded at the last start, a certificate counting only when
/// it certifies the block held at its height), the certificates and this member's votes
/// above it; and the evidence. Reads a page at a time, only above each recorded prefix;
/// the host records the new prefixes from `certified`.
pub fn load<S: ChainRead>(s: &S, genesis: &Genesis, limits: LoadLimits) -> Result<Persisted, S::Error> {
    let mut p = Persisted::default();
    p.heads.extend(s.heads()?);
    let (epochs, reconfigurations, admin_applied) = epochs(s, genesis)?;
    p.reconfigurations = reconfigurations;
    p.admin_applied = admin_applied;
    for chain in epochs.every_chain() {
        let certified = match p.certified.get(&chain) {
            Some(c) => *c,
            None => certified_prefix(s, chain, &mut p, limits)?,
        };
        // Votes above the prefix: at most the blocks not yet certified. Each is certified
        // by its parent's epoch (the chain's first at height 1).
        let mut next = certified + 1;
        loop {
            let page = s.votes(chain, next, limits.page_rows.max(1))?;
            let Some(&(last, _)) = page.last() else { break };
            next = last + 1;
            for (height, block) in page {
                // A vote whose blocks are not both held cannot be placed in its epoch: it
                // is left out (never attested again), rather than guessed.
                let certifying = match height {
                    1 => Some(epochs.certifying(chain, None)),
                    h => s
                        .block(chain, h - 1)?
                        .map(|b| epochs.certifying(chain, Some((h - 1, b.header.body.epoch)))),
                };
                let made_in = s.block(chain, height)?.map(|b| b.header.body.epoch);
                if let (Some(epoch), Some(made_in)) = (certifying, made_in) {
                    if epochs.set_aside(chain, height, made_in).is_none() {
                        p.votes.push((chain, height, block, epoch, made_in));
                    }
                }
            }
        }
    }
    p.evidence = s.evidence()?;
    Ok(p)
}

/// The chains whose stored blocks a reset set aside, each with the height it kept and
/// the reset's epoch: the host sets those blocks aside before [`load`] (a node stopped, or
/// stopped by a crash, between learning a reset and performing
/// [`crate::replica::Output::ChainReset`], and the owner's node, which sets its own chain
/// aside when it starts with the successor key).
pub fn set_aside_due<S: ChainRead>(s: &S, epochs: &Epochs) -> Result<Vec<(MemberCode, u64, u32)>, S::Error> {
    let mut due = Vec::new();
    for (chain, head) in s.heads()? {
        let mut lowest: Option<(u64, u32)> = None;
        for r in epochs.resets(chain) {
            if head.height <= r.height || lowest.is_some_and(|(h, _)| h <= r.height) {
                continue;
            }
            let next = s.block(chain, r.height + 1)?;
            if next.is_some_and(|b| epochs.set_aside(chain, r.height + 1, b.header.body.epoch).is_some()) {
                lowest = Some((r.height, r.epoch));
            }
        }
        if let Some((height, epoch)) = lowest {
            due.push((chain, height, epoch));
        }
    }
    Ok(due)
}

/// Every epoch known from storage: the configuration changes in the admin chain's
/// blocks from height 1, each block counting only with a stored certificate for it that
/// verifies under the epochs before it. Returns the epochs, the changes in order, and
/// the admin chain height read up to.
pub fn epochs<S: ChainRead>(s: &S, genesis: &Genesis) -> Result<(Epochs, Vec<Reconfiguration>, u64), S::Error> {
    let mut epochs = Epochs::new(genesis);
    let mut changes = Vec::new();
    let mut applied = 0;
    let Some(admin) = genesis.config().admin() else {
        return Ok((epochs, changes, applied));
    };
    let network = genesis.network_id();
    // The epoch that certifies the next admin block: its parent's (0 at height 1).
    let mut certifying = 0;
    loop {
        let height = applied + 1;
        let Some(block) = s.block(admin, height)? else { break };
        let certified = s.certificate(admin, height)?.is_some_and(|c| {
            c.block == block.header.hash() && c.epoch == certifying && c.verify(&epochs, &network).is_ok()
        });
        if !certified {
            break;
        }
        for entry in &block.entries {
            if let Entry::Event(e) = entry {
                if let EventKind::ConfigChanged(r) = &e.body.kind {
                    if epochs.apply(r).is_ok() {
                        changes.push(r.clone());
                    }
                }
            }
        }
        applied = height;
        certifying = block.header.body.epoch;
    }
    Ok((epochs, changes, applied))
}

/// `chain`'s certified prefix, extended from the recorded one over the certificates
/// stored above it; the certificates above the prefix go into `p`.
fn certified_prefix<S: ChainRead>(
    s: &S,
    chain: MemberCode,
    p: &mut Persisted,
    limits: LoadLimits,
) -> Result<u64, S::Error> {
    let head = p.heads.get(&chain).map_or(0, |h| h.height);
    let mut certified = s.certified_prefix(chain)?.min(head);
    let mut next = certified + 1;
    loop {
        let page = s.certificates(chain, next, limits.page_rows.max(1))?;
        let Some(last) = page.last() else { break };
        next = last.height + 1;
        for cert in page {
            // A certificate for a block this member does not hold (stored before the
            // block arrived) does not extend the prefix; the replica matches it later.
            let holds = cert.height <= head && s.block_hash(chain, cert.height)? == Some(cert.block);
            if cert.height == certified + 1 && holds {
                certified = cert.height;
            } else if cert.height > certified && p.certificates.len() < limits.certificates_max {
                p.certificates.push(cert);
            }
        }
    }
    p.certified.insert(chain, certified);
    Ok(certified)
}
