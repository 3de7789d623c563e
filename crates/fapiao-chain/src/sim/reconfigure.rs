//! The simulated admin: one configuration change per run, proposed at a time the seed
//! picks while blocks are in flight, on the admin chain the operator's node produces.
//! The seed picks which: a witness removed (its node keeps running and sending), the
//! quorum raised to every witness, a witness's key rotated, or a merchant's chain reset
//! at its certified head under a successor key (for both, its node stops first, as the
//! runbook says, and comes back under the new key once the change is certified, after
//! importing the admin chain as `fapiao node join` does).

use super::{Rng, World};
use fapiao_core::{ConfigChange, EventBody, EventKind, MemberCode, Reconfiguration, SecretKey, Timestamp};

/// Which change a run makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChangeKind {
    /// A witness leaves; its node keeps running.
    Remove,
    /// The quorum becomes every witness.
    Quorum,
    /// A witness's key is replaced.
    Rotate,
    /// A merchant's chain is reset at its certified head under a successor key: its next
    /// block is certified by the reset's committee.
    Reset,
}

/// The run's configuration change.
pub(super) struct Change {
    pub(super) at: u64,
    pub(super) kind: ChangeKind,
    /// The member it is about (a witness, never the equivocator nor the restored one).
    pub(super) target: usize,
    pub(super) proposed: bool,
    /// For a rotation or a reset: the new key, until the member runs with it.
    pub(super) new_key: Option<SecretKey>,
    /// For a reset: the height it keeps.
    pub(super) kept: Option<u64>,
}

impl Change {
    /// The seed's change: kind, time within the faults, and a witness that is neither
    /// the equivocator nor the restored member (`avoid`). With a restore in the run
    /// (`restoring`) the change is the quorum's: a rotated member is stopped for a while
    /// and a removed one is refused, and a restored member whose only copy of an
    /// uncertified block of its own sits on such a member cannot find it (the limit
    /// PROTOCOL.md "Never signing a height twice" states).
    pub(super) fn draw(
        rng: &mut Rng,
        fault_ms: u64,
        witnesses: usize,
        avoid: &[usize],
        restoring: bool,
    ) -> Option<Change> {
        // With fewer than four witnesses the change itself could not be certified while
        // a rotated member is stopped, or the quorum kept after a removal.
        let candidates: Vec<usize> = (0..witnesses).filter(|i| !avoid.contains(i)).collect();
        if witnesses < 4 || candidates.is_empty() {
            return None;
        }
        let kind = match rng.range(0, 3) {
            _ if restoring => ChangeKind::Quorum,
            0 => ChangeKind::Remove,
            1 => ChangeKind::Quorum,
            2 => ChangeKind::Rotate,
            _ => ChangeKind::Reset,
        };
        let target = candidates[rng.range(0, candidates.len() as u64 - 1) as usize];
        Some(Change {
            at: rng.range(fault_ms / 4, fault_ms * 3 / 4),
            kind,
            target,
            proposed: false,
            kept: None,
            new_key: matches!(kind, ChangeKind::Rotate | ChangeKind::Reset)
                .then(|| SecretKey::from_seed(&[0xAD ^ (target as u8); 32])),
        })
    }
}

impl World {
    /// Drives the run's change: proposes it when due (a rotation first stops its member,
    /// once that member's chain is certified to its head), and brings a rotated member
    /// back under its new key once the change is certified.
    pub(super) fn reconfigure_due(&mut self) {
        let Some(admin) = self.admin else { return };
        let Some(change) = &self.change else { return };
        let (kind, target) = (change.kind, change.target);
        if !change.proposed && self.now >= self.cfg.fault_ms {
            // The admin never got to propose it (down, or held) during the faults: the
            // change is dropped, and a member stopped for it comes back as it was.
            self.change = None;
            if self.paused.take() == Some(target) && !self.up(target) {
                self.start(target);
            }
            return;
        }
        if !change.proposed && change.at <= self.now {
            if matches!(kind, ChangeKind::Rotate | ChangeKind::Reset) {
                if !self.fully_certified(target) {
                    return; // blocks of the old key still await their certificates
                }
                if self.up(target) {
                    self.crash(target);
                    self.report.crashes -= 1; // a planned stop, not a fault
                }
                self.paused = Some(target);
            }
            if !self.up(admin) || self.members[admin].held {
                return;
            }
            let code = self.members[target].code;
            let head = self.members[target]
                .disk
                .chains
                .get(&code)
                .map_or(0, |c| c.blocks.len() as u64);
            let new_key = self
                .change
                .as_ref()
                .and_then(|c| c.new_key.as_ref())
                .map(SecretKey::public);
            let c = match kind {
                ChangeKind::Remove => ConfigChange::RemoveMember(code),
                ChangeKind::Quorum => ConfigChange::SetQuorum(Some(self.cfg.members as u32)),
                ChangeKind::Rotate => ConfigChange::RotateKey {
                    member: code,
                    key: new_key.unwrap_or_else(|| unreachable!()),
                },
                // Its chain is certified to the head its disk holds (checked above).
                ChangeKind::Reset => ConfigChange::ResetChain {
                    chain: code,
                    height: head,
                    key: new_key.unwrap_or_else(|| unreachable!()),
                },
            };
            if self.propose(admin, c) {
                if let Some(ch) = &mut self.change {
                    ch.proposed = true;
                    ch.kept = (kind == ChangeKind::Reset).then_some(head);
                }
                self.report.reconfigurations += 1;
                self.report.resets += u64::from(kind == ChangeKind::Reset);
                if kind == ChangeKind::Remove {
                    self.left = Some(target);
                }
            }
            return;
        }
        if change.proposed && self.paused == Some(target) && self.admin_certified() {
            self.rejoin(target);
        }
    }

    /// The admin node builds, stores and announces a block holding `change`.
    fn propose(&mut self, admin: usize, change: ConfigChange) -> bool {
        let genesis = self.members[admin].disk.genesis.clone();
        let latest = self.latest_config(admin);
        let m = &self.members[admin];
        let event = EventBody {
            network: genesis.network_id(),
            chain: m.code,
            author: m.key.public(),
            timestamp: Timestamp(self.now),
            kind: EventKind::ConfigChanged(Reconfiguration {
                epoch: latest.epoch() + 1,
                change,
            }),
        }
        .sign(&m.key);
        let Some(built) = self.build(admin, &genesis, &[event]) else {
            self.violation("the admin's configuration change was refused by its own chain".into());
            return false;
        };
        let code = self.members[admin].code;
        let m = &mut self.members[admin];
        let height = built.block.header.body.height;
        let block = m.disk.chains.entry(code).or_default().store_own(built);
        m.disk.votes.insert((code, height), block.header.hash());
        self.input(admin, super::Input::OwnBlock(block));
        true
    }

    /// Whether the admin chain's block holding the change is certified.
    fn admin_certified(&self) -> bool {
        let Some(admin) = self.admin else { return false };
        self.certified.contains_key(&(self.members[admin].code, 1))
    }

    /// Whether member `i`'s own chain is certified to its head, as its disk holds it.
    fn fully_certified(&self, i: usize) -> bool {
        let m = &self.members[i];
        let len = m.disk.chains.get(&m.code).map_or(0, |c| c.blocks.len() as u64);
        (1..=len).all(|h| self.certified.contains_key(&(m.code, h)))
    }

    /// A rotated member comes back: its disk takes the admin chain from a member that
    /// holds it certified (what `fapiao node join` imports), its key becomes the new one,
    /// and it starts.
    fn rejoin(&mut self, i: usize) {
        let Some(admin) = self.admin else { return };
        let admin_code: MemberCode = self.members[admin].code;
        let Some(source) = (0..self.members.len()).find(|&j| {
            j != i
                && self.members[j].disk.certs.contains_key(&(admin_code, 1))
                && self.members[j]
                    .disk
                    .chains
                    .get(&admin_code)
                    .is_some_and(|c| !c.blocks.is_empty())
        }) else {
            return;
        };
        let chain = self.members[source]
            .disk
            .chains
            .get(&admin_code)
            .cloned()
            .unwrap_or_default();
        let certs: Vec<_> = self.members[source]
            .disk
            .certs
            .iter()
            .filter(|((c, _), _)| *c == admin_code)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let key = self
            .change
            .as_mut()
            .and_then(|c| c.new_key.take())
            .unwrap_or_else(|| unreachable!());
        let m = &mut self.members[i];
        let held = m.disk.chains.get(&admin_code).map_or(0, |c| c.blocks.len());
        if held < chain.blocks.len() {
            m.disk.chains.insert(admin_code, chain);
        }
        m.disk.certs.extend(certs);
        m.key = key;
        self.paused = None;
        self.start(i);
    }
}
