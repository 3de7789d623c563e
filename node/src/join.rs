//! `fapiao node join`: a member added after genesis imports the admin chain's certified
//! blocks (from `fapiao consortium export` on any member's node), so its node knows the
//! epoch that made it a member before it starts. Nothing in the file is trusted: every
//! block is checked against genesis (signature, certificate under the epochs before it,
//! entries) and re-executed before it is stored.

use crate::config::Loaded;
use crate::files;
use anyhow::{bail, Context, Result};
use fapiao_chain::{reexecute, Signatures};
use fapiao_core::sig::Cores;
use fapiao_core::Block;
use fapiao_proof::ConfigBlock;
use fapiao_store::{BlockCommit, PreparedState, Store, StoreError, StoreOptions};
use std::path::Path;

/// Largest configuration file read.
const CONFIGURATION_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Checks `file` (the admin chain's certified blocks, canonical) against the node's
/// genesis and stores the blocks its ledger does not hold yet. Returns the newest epoch
/// and this node's member code in it.
pub(crate) fn join(cfg: &Loaded, file: &Path) -> Result<(u32, fapiao_core::MemberCode)> {
    let genesis = files::read_genesis(&cfg.path(&cfg.config.genesis))?;
    let key = files::read_key_file(&cfg.path(&cfg.config.member_key))?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let blocks: Vec<ConfigBlock> = fapiao_core::codec::decode_limited(&bytes, CONFIGURATION_BYTES_MAX)
        .with_context(|| format!("{} is not a configuration export", file.display()))?;
    let epochs = fapiao_proof::configuration_epochs(&blocks, &genesis)
        .map_err(|p| anyhow::anyhow!("{}: {p}", file.display()))?;
    let latest = epochs.latest();
    let Some(me) = latest.member_by_key(&key.public()) else {
        bail!(
            "this node's key is not a member of epoch {}, the newest in {}: the admin has not added it yet, or \
             the export is older than the change",
            latest.epoch(),
            file.display()
        );
    };
    let me = me.code;
    let ledger = cfg.ledger_dir();
    std::fs::create_dir_all(&ledger).with_context(|| format!("creating {}", ledger.display()))?;
    let store = Store::open(&ledger, &StoreOptions::default())?;
    let Some(admin) = genesis.config().admin() else {
        bail!("this genesis has no admin chain: its configuration never changes");
    };
    let held = store.head(admin)?.map_or(0, |h| h.height);
    let mut known = fapiao_core::Epochs::new(&genesis);
    for b in &blocks {
        let block = Block {
            header: b.header.header.clone(),
            entries: b.entries.clone(),
        };
        let height = block.header.body.height;
        if height <= held {
            let ours = store.header(admin, height)?.map(|h| h.hash());
            if ours != Some(block.header.hash()) {
                bail!("this ledger holds another block at admin chain height {height}: it belongs to another network");
            }
        } else {
            let config = known
                .at(block.header.body.epoch)
                .context("an admin block of an epoch not yet defined")?;
            let view = store.state(admin);
            let change = match reexecute(&genesis, config, &block, &view, Signatures::Verify, Cores::All) {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => bail!("admin block {height} does not re-execute: {e}"),
                Err(e) => return Err(StoreError::from_read(e, admin).into()),
            };
            store.commit_block(&BlockCommit {
                block: &block,
                state: &PreparedState::new(admin, change),
                pending_done: &[],
                rejected: &[],
                vote: None,
                certificate: Some(&b.header.certificate),
            })?;
        }
        for entry in &block.entries {
            if let fapiao_core::Entry::Event(e) = entry {
                if let fapiao_core::EventKind::ConfigChanged(r) = &e.body.kind {
                    known
                        .apply(r)
                        .map_err(|e| anyhow::anyhow!("admin block {height}: {e}"))?;
                }
            }
        }
    }
    Ok((latest.epoch(), me))
}
