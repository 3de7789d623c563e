//! Setting a reset chain's blocks aside (PROTOCOL.md "Chain recovery"): a configuration
//! change resumed the chain after a height under a successor key, and the blocks this
//! node stores above that height, made before the reset, are part of no chain any more.

use crate::pages::{Page, PageVersion};
use crate::store::{hex_key, Index};
use crate::tables::*;
use crate::{BlockCommit, PreparedState, Store, StoreError};
use fapiao_chain::validate::{self, Signatures};
use fapiao_core::sig::Cores;
use fapiao_core::smt::NodeKey;
use fapiao_core::{Block, Epochs, Genesis, MemberCode};
use fapiao_domain::StateKey;
use rocksdb::WriteBatch;
use std::collections::BTreeMap;

impl Store {
    /// Sets aside `chain`'s blocks above `height`, in one synced write: each block is
    /// kept on record in the `set_aside` table; its header, entries, certificate, this
    /// node's vote, its index rows and its invoices' history rows are removed; the
    /// chain's state and state tree are rewound to `height` with the versions each block
    /// kept of what it overwrote, and those versions go; the head becomes the block at
    /// `height` (none at 0). Returns the blocks set aside, lowest first, so their events
    /// can be resubmitted. When a block above `height` no longer has its versions (pruned
    /// past the retention, see [`crate::STATE_HISTORY_DAYS`]), the chain's state is
    /// instead dropped in that write and rebuilt from its blocks up to `height`, each
    /// re-executed under its epoch's configuration in `epochs` (slower; a crash
    /// meanwhile leaves the head at the last block rebuilt, and the node takes the
    /// rest again from its peers).
    // Long: the rows of every block set aside in one atomic WriteBatch; splitting it would split the write.
    pub fn set_aside(
        &self,
        genesis: &Genesis,
        epochs: &Epochs,
        chain: MemberCode,
        height: u64,
    ) -> Result<Vec<Block>, StoreError> {
        let mut b = WriteBatch::default();
        // Certificates and votes above `height` are a set-aside lineage's, whether or not
        // their blocks are held (a certificate can arrive before its block).
        let above = block_prefix(chain, height.saturating_add(1));
        let end = (chain.get() + 1).to_be_bytes();
        for name in [Certs::NAME, Votes::NAME] {
            b.delete_range_cf(self.cf(name), above.as_slice(), end.as_slice());
        }
        let head = match self.head(chain)? {
            Some(head) if head.height > height => head,
            _ => {
                self.write_synced(b)?;
                return Ok(Vec::new());
            }
        };
        let inconsistent = |detail: String| StoreError::Inconsistent { chain, detail };
        // What each block overwrote, read once; with the versions of one of the blocks
        // missing (pruned past the retention, or deleted by an earlier set-aside), none,
        // and the state is rebuilt instead.
        let mut overwritten = Vec::new();
        for h in height + 1..=head.height {
            match self.overwritten(chain, h)? {
                Some(old) => overwritten.push(old),
                None => {
                    overwritten.clear();
                    break;
                }
            }
        }
        let deep = overwritten.is_empty();
        let mut blocks = Vec::new();
        // Each tree page the blocks changed, undone block by block from the head down,
        // from the page now to the page as of `height` (`None`: no page).
        let mut pages: BTreeMap<NodeKey, Option<Page>> = BTreeMap::new();
        let now = self.state_trusted(chain);
        // From the head down: what the lowest block overwrote is written last and wins,
        // which is the state as of `height`.
        for h in (height + 1..=head.height).rev() {
            let block = self
                .block(chain, h)?
                .ok_or_else(|| inconsistent(format!("block {h} below the head is missing")))?;
            let (written, tree, records) = overwritten.pop().unwrap_or_default();
            for (at, version) in &tree {
                let after = match pages.remove(at) {
                    Some(page) => page,
                    None => now.page(*at)?,
                };
                pages.insert(*at, version.undo(after));
            }
            for (k, old) in &records {
                let key = State::key(&(chain, k.clone()));
                match old {
                    Some(bytes) => b.put_cf(self.cf(State::NAME), key, bytes),
                    None => b.delete_cf(self.cf(State::NAME), key),
                }
            }
            if !deep {
                self.delete_written(&mut b, chain, h, &written);
            }
            self.delete::<Headers>(&mut b, &(chain, h));
            for i in 0..block.entries.len() {
                self.delete::<Entries>(&mut b, &(chain, h, i as u32));
            }
            self.index_block(&mut b, &block, Index::Remove);
            self.put::<SetAsideBlocks>(&mut b, &(chain, h, block.header.hash()), &block);
            blocks.push(block);
        }
        for (at, page) in &pages {
            let key = Tree::key(&(chain, *at));
            match page {
                Some(p) => b.put_cf(self.cf(Tree::NAME), key, p.to_bytes()),
                None => b.delete_cf(self.cf(Tree::NAME), key),
            }
        }
        if deep {
            // Every state row of the chain goes; the blocks kept build it again below.
            let from = chain_prefix(chain);
            let to = (chain.get() + 1).to_be_bytes();
            for name in [
                State::NAME,
                Tree::NAME,
                StateWritten::NAME,
                TreeVersions::NAME,
                StateVersions::NAME,
            ] {
                b.delete_range_cf(self.cf(name), from.as_slice(), to.as_slice());
            }
            self.delete::<HistoryFrom>(&mut b, &chain);
        }
        match height {
            _ if deep => self.delete::<Heads>(&mut b, &chain),
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
        if deep {
            self.rebuild_chain(genesis, epochs, chain, height)?;
        }
        blocks.reverse();
        Ok(blocks)
    }

    /// What block `height` of `chain` overwrote, from its versions: their list, and each
    /// tree page's and record's bytes before it. `None` when its versions are not kept.
    #[allow(clippy::type_complexity)]
    fn overwritten(
        &self,
        chain: MemberCode,
        height: u64,
    ) -> Result<Option<(Written, Vec<(NodeKey, PageVersion)>, Vec<(StateKey, Option<Vec<u8>>)>)>, StoreError> {
        let Some(written) = self.get::<StateWritten>(&(chain, height))? else {
            return Ok(None);
        };
        let missing = |what: String| StoreError::Inconsistent {
            chain,
            detail: format!("block {height} lists {what} as written, but its version is missing"),
        };
        let mut tree = Vec::with_capacity(written.pages.len());
        for at in &written.pages {
            let key = (chain, *at, height);
            let old = self
                .get::<TreeVersions>(&key)?
                .ok_or_else(|| missing(format!("tree page {at:?}")))?;
            let version = PageVersion::from_stored(old.as_deref()).map_err(|message| StoreError::Corrupt {
                table: TreeVersions::NAME,
                key: hex_key(&TreeVersions::key(&key)),
                message,
            })?;
            tree.push((*at, version));
        }
        let mut records = Vec::with_capacity(written.records.len());
        for key in &written.records {
            let old = self
                .get::<StateVersions>(&(chain, key.clone(), height))?
                .ok_or_else(|| missing(format!("record {key:?}")))?;
            records.push((key.clone(), old));
        }
        Ok(Some((written, tree, records)))
    }

    /// Builds `chain`'s state from nothing by re-executing its stored blocks `1..=to`
    /// (their signatures were checked when stored) and committing each again: the
    /// witnesses' re-execution, as replay runs it.
    fn rebuild_chain(&self, genesis: &Genesis, epochs: &Epochs, chain: MemberCode, to: u64) -> Result<(), StoreError> {
        let inconsistent = |detail: String| StoreError::Inconsistent { chain, detail };
        for h in 1..=to {
            let block = self
                .block(chain, h)?
                .ok_or_else(|| inconsistent(format!("block {h}, which the reset keeps, is missing")))?;
            let epoch = block.header.body.epoch;
            let config = epochs
                .at(epoch)
                .ok_or_else(|| inconsistent(format!("block {h} is of epoch {epoch}, which is not known")))?;
            let change = {
                let view = self.state_trusted(chain);
                match validate::reexecute(genesis, config, &block, &view, Signatures::Checked, Cores::All) {
                    Ok(Ok(change)) => change,
                    Ok(Err(invalid)) => return Err(inconsistent(format!("block {h} does not re-execute: {invalid}"))),
                    Err(e) => return Err(StoreError::from_read(e, chain)),
                }
            };
            self.commit_block(&BlockCommit {
                block: &block,
                state: &PreparedState::new(chain, change),
                pending_done: &[],
                rejected: &[],
                vote: None,
                certificate: None,
            })?;
        }
        Ok(())
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
