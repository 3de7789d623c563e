//! Setting a reset chain's blocks aside (PROTOCOL.md "Chain recovery"): a configuration
//! change resumed the chain after a height under a successor key, and the blocks this
//! node stores above that height, made before the reset, are part of no chain any more.

use crate::store::Index;
use crate::tables::*;
use crate::{Store, StoreError, STATE_VERSIONS_KEPT};
use fapiao_core::{Block, MemberCode};
use rocksdb::WriteBatch;

impl Store {
    /// Sets aside `chain`'s blocks above `height`, in one synced write: each block is
    /// kept on record in the `set_aside` table; its header, entries, certificate, this
    /// node's vote, its index rows and its invoices' history rows are removed; the
    /// chain's state and state tree are rewound to `height` with the undo each block
    /// recorded; the head becomes the block at `height` (none at 0). Returns the blocks
    /// set aside, lowest first, so their events can be resubmitted. Refused when more
    /// blocks lie above `height` than the undo kept ([`STATE_VERSIONS_KEPT`]).
    // Long: the rows of every block set aside in one atomic WriteBatch; splitting it would split the write.
    pub fn set_aside(&self, chain: MemberCode, height: u64) -> Result<Vec<Block>, StoreError> {
        let Some(head) = self.head(chain)? else {
            return Ok(Vec::new());
        };
        if head.height <= height {
            return Ok(Vec::new());
        }
        let inconsistent = |detail: String| StoreError::Inconsistent { chain, detail };
        if head.height - height > STATE_VERSIONS_KEPT {
            return Err(inconsistent(format!(
                "a reset kept height {height}, but {} blocks lie above it and the state undo covers the last \
                 {STATE_VERSIONS_KEPT}",
                head.height - height
            )));
        }
        let mut b = WriteBatch::default();
        let mut blocks = Vec::new();
        // From the head down: the undo of the lowest block written last wins, which is the
        // state as of `height`.
        for h in (height + 1..=head.height).rev() {
            let block = self
                .block(chain, h)?
                .ok_or_else(|| inconsistent(format!("block {h} below the head is missing")))?;
            let undo = self
                .get::<StateUndo>(&(chain, h))?
                .ok_or_else(|| inconsistent(format!("the state undo of block {h} is missing")))?;
            for (at, old) in &undo.tree {
                let key = Tree::key(&(chain, *at));
                match old {
                    Some(bytes) => b.put_cf(self.cf(Tree::NAME), key, bytes),
                    None => b.delete_cf(self.cf(Tree::NAME), key),
                }
            }
            for (k, old) in &undo.records {
                let key = State::key(&(chain, k.clone()));
                match old {
                    Some(bytes) => b.put_cf(self.cf(State::NAME), key, bytes),
                    None => b.delete_cf(self.cf(State::NAME), key),
                }
            }
            self.delete::<StateUndo>(&mut b, &(chain, h));
            self.delete::<Headers>(&mut b, &(chain, h));
            for i in 0..block.entries.len() {
                self.delete::<Entries>(&mut b, &(chain, h, i as u32));
            }
            self.delete::<Certs>(&mut b, &(chain, h));
            self.delete::<Votes>(&mut b, &(chain, h));
            self.index_block(&mut b, &block, Index::Remove);
            self.put::<SetAsideBlocks>(&mut b, &(chain, h, block.header.hash()), &block);
            blocks.push(block);
        }
        match height {
            0 => self.delete::<Heads>(&mut b, &chain),
            _ => {
                let kept = self
                    .header(chain, height)?
                    .ok_or_else(|| inconsistent(format!("block {height}, which the reset keeps, is missing")))?;
                let head = Head {
                    height,
                    hash: kept.hash(),
                    state_root: kept.body.state_root,
                    timestamp: kept.body.timestamp,
                };
                self.put::<Heads>(&mut b, &chain, &head);
            }
        }
        if self.certified_prefix(chain)? > height {
            self.put::<CertifiedPrefix>(&mut b, &chain, &height);
        }
        self.write_synced(b)?;
        blocks.reverse();
        Ok(blocks)
    }

    /// Moves `chain`'s stored evidence, which the reset of `epoch` superseded, to the
    /// record of superseded evidence: the chain is no longer frozen here, and the
    /// evidence stays on record. One synced write; nothing when none is stored.
    pub fn supersede_evidence(&self, chain: MemberCode, epoch: u32) -> Result<(), StoreError> {
        let Some(ev) = self.get::<EvidenceTable>(&chain)? else {
            return Ok(());
        };
        let mut b = WriteBatch::default();
        self.put::<EvidenceSuperseded>(&mut b, &(chain, epoch), &ev);
        self.delete::<EvidenceTable>(&mut b, &chain);
        self.write_synced(b)
    }

    /// Every piece of evidence a reset superseded, with the reset's epoch.
    pub fn superseded_evidence(&self) -> Result<Vec<(u32, fapiao_core::Equivocation)>, StoreError> {
        let rows = self.scan::<EvidenceSuperseded>(&[], None, usize::MAX)?;
        rows.into_iter()
            .map(|(key, ev)| EvidenceSuperseded::decode(&key).map(|(_, epoch)| (epoch, ev)))
            .collect()
    }

    /// Every block set aside on `chain`, by height.
    pub fn set_aside_blocks(&self, chain: MemberCode) -> Result<Vec<Block>, StoreError> {
        let rows = self.scan::<SetAsideBlocks>(&chain_prefix(chain), None, usize::MAX)?;
        Ok(rows.into_iter().map(|(_, block)| block).collect())
    }
}
