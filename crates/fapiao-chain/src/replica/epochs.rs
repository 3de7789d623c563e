//! Epochs: the configurations the admin chain's certified changes define, which
//! committee certifies a block, whether this member attests it, and what a new epoch
//! changes in what the member holds (PROTOCOL.md "Epochs").

use super::*;
use fapiao_core::{Entry, EventKind};

impl Replica {
    /// The newest configuration known.
    pub(super) fn latest(&self) -> &fapiao_core::Config {
        self.epochs.latest()
    }

    /// Every configuration known, from genesis.
    pub fn epochs(&self) -> &Epochs {
        &self.epochs
    }

    /// The epoch whose committee certifies the block after `parent` on `chain`: the
    /// parent's epoch, or the chain's first epoch at height 1. So the committee a chain
    /// leaves certifies the block that moves it, and two blocks at one height are always
    /// certified by one committee.
    pub(super) fn certifying_epoch(&self, chain: MemberCode, parent: Option<StoredHead>) -> u32 {
        self.epochs.certifying(chain, parent.map(|p| (p.height, p.epoch)))
    }

    /// Whether this member attests a block of `chain` made in `epoch` and certified by
    /// `certifying`: it is a witness of `certifying` under its own key, and the block's
    /// owner key is the chain's key in the newest configuration (a block signed by a key
    /// since rotated, or on a chain since closed, is never attested once the change is
    /// known).
    pub(super) fn may_attest(&self, chain: MemberCode, certifying: u32, epoch: u32) -> bool {
        let mine = self
            .epochs
            .at(certifying)
            .and_then(|c| c.witness(self.me))
            .is_some_and(|m| m.key == self.key.public());
        let signer = self.epochs.at(epoch).and_then(|c| c.chain_owner(chain)).map(|m| m.key);
        let current = self.latest().chain_owner(chain).map(|m| m.key);
        mine && signer.is_some() && signer == current
    }

    /// Reads the admin chain's newly certified blocks and takes their configuration
    /// changes, in order; each new epoch is announced to the host and widens what this
    /// member holds and watches.
    pub(super) fn learn_epochs<L: Ledger>(&mut self, ledger: &L) -> Result<(), L::Error> {
        let Some(admin) = self.latest().admin() else {
            return Ok(());
        };
        let certified = self.chains.get(&admin).map_or(0, |c| c.certified);
        while self.admin_applied < certified {
            let height = self.admin_applied + 1;
            let Some(block) = ledger.block(admin, height)? else {
                // Certified means held; a ledger that lost it is read again next time.
                return Ok(());
            };
            for entry in &block.entries {
                if let Entry::Event(e) = entry {
                    if let EventKind::ConfigChanged(r) = &e.body.kind {
                        // Executed (so valid) on the admin chain's own copy of the
                        // configuration, which is this one.
                        if self.epochs.apply(r).is_ok() {
                            self.epoch_started();
                            if let fapiao_core::ConfigChange::ResetChain { chain, height, .. } = r.change {
                                self.chain_reset(ledger, chain, height)?;
                            }
                        }
                    }
                }
            }
            self.admin_applied = height;
        }
        Ok(())
    }

    /// A reset resumed `chain` after `height` under a successor key: evidence against it
    /// from before no longer freezes it (it stays on record), and what is held above
    /// `height` from before the reset is dropped. On a chain we hold, blocks stored above
    /// it are set aside by the host ([`Output::ChainReset`]) with our votes for them, so
    /// this member attests the chain's new block there. Our own chain is set aside by the
    /// host when it starts again with the successor key (production is held until then;
    /// meanwhile its votes and certified prefix above `height` are dropped here).
    fn chain_reset<L: Ledger>(&mut self, ledger: &L, chain: MemberCode, height: u64) -> Result<(), L::Error> {
        let (set_aside, certified_voided) = if let Some(w) = self.watched.get_mut(&chain) {
            if w.frozen.as_ref().is_some_and(|ev| self.epochs.superseded(ev)) {
                w.frozen = None;
            }
            w.headers.split_off(&(height + 1));
            (false, 0)
        } else if self.chains.contains_key(&chain) {
            self.reset_held(ledger, chain, height)?
        } else {
            return Ok(());
        };
        // The host sets aside what `set_aside` says and moves stored evidence to the record.
        self.outputs.push_back(Output::ChainReset {
            chain,
            height,
            epoch: self.epochs.current(),
            set_aside,
            certified_voided,
        });
        Ok(())
    }

    /// [`Replica::chain_reset`] on a chain we hold: whether blocks we store above
    /// `height` are set aside, and how many heights above it we held certified.
    fn reset_held<L: Ledger>(&mut self, ledger: &L, chain: MemberCode, height: u64) -> Result<(bool, u64), L::Error> {
        let c = self.chains.held(chain);
        let mut aside = false;
        if chain != self.me && c.height() > height {
            let next = ledger.header(chain, height + 1)?;
            aside = next.is_some_and(|h| self.epochs.set_aside(chain, height + 1, h.body.epoch).is_some());
        }
        let kept = match aside && height > 0 {
            true => ledger.header(chain, height)?.map(|h| StoredHead::of(&h)),
            false => None,
        };
        let superseded = c.frozen.as_ref().is_some_and(|ev| self.epochs.superseded(ev));
        let c = self.chains.held_mut(chain);
        let certified_voided = c.certified.saturating_sub(height);
        if superseded {
            c.frozen = None;
        }
        c.certs.split_off(&(height + 1));
        c.pool.split_off(&(height + 1));
        c.buffer.clear();
        c.ahead.clear();
        c.sync = None;
        c.behind = None;
        c.best = None;
        if aside {
            c.head = kept;
        }
        // Our own chain's blocks above `height` stay stored until the node starts again
        // with the successor key, but nothing of them is voted for or counted here.
        c.certified = c.certified.min(height);
        c.votes.split_off(&(height + 1));
        self.to_attest.insert(chain);
        Ok((aside, certified_voided))
    }

    /// What a new epoch changes here: new chains are held or watched, and a member whose
    /// key was rotated away stops producing until it runs with its new key.
    fn epoch_started(&mut self) {
        let latest = self.latest().clone();
        for chain in latest.chains() {
            if self.chains.contains_key(&chain) {
                continue;
            }
            if latest.may_read(self.me, chain) {
                self.watched.remove(&chain);
                self.chains.insert(chain, ChainState::default());
            } else {
                self.watched.entry(chain).or_default();
            }
        }
        let mine = latest.member(self.me).map(|m| m.key);
        if mine != Some(self.key.public()) {
            self.own = OwnChain::Behind;
            self.outputs.push_back(Output::HoldProduction {
                reason: match mine {
                    Some(_) => format!(
                        "epoch {}: this member's key was rotated; restart the node with the new key",
                        latest.epoch()
                    ),
                    None => format!("epoch {}: this member left the consortium", latest.epoch()),
                },
                refuse_writes: true,
            });
        }
        self.peers.retain(|p| latest.member(*p).is_some());
        self.outputs.push_back(Output::EpochStarted(latest));
    }
}
