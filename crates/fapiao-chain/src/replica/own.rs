//! This member's own chain against what its peers hold of it: production waits until
//! enough peers have answered, and blocks of its own a restore lost are taken back
//! (PROTOCOL.md, "Never signing a height twice after a restore").

use super::*;

impl Replica {
    pub(super) fn own_height(&self) -> u64 {
        self.chains.get(&self.me).map_or(0, ChainState::height)
    }

    /// `peer` says it holds our chain up to `height`. Above our head, its block at our
    /// next height is asked for before the claim is believed: a claim alone could be a
    /// lie, a block signed by our key cannot.
    pub(super) fn own_claimed(&mut self, now: u64, peer: MemberCode, height: u64) {
        if self.own_liars.contains(&peer) {
            return;
        }
        self.own_claims.insert(peer, (height, now));
        let ours = self.own_height();
        let since = match self.own {
            OwnChain::Waiting { since_ms: since } => since.unwrap_or(now),
            OwnChain::Clear => now,
            OwnChain::Recovering { .. } => return self.own_release_if_ready(now),
            OwnChain::Checking { .. } | OwnChain::Behind => return,
        };
        if height > ours {
            self.own = OwnChain::Checking {
                peer,
                asked_ms: now,
                since_ms: since,
            };
            self.outputs.push_back(Output::HoldProduction {
                reason: format!("member {peer} claims this node's chain up to height {height}; checking"),
                refuse_writes: false,
            });
            self.outputs.push_back(Output::RequestBlocks {
                peer,
                chain: self.me,
                from: ours + 1,
                to: ours + 1,
            });
        } else {
            self.own_release_if_ready(now);
        }
    }

    /// A blocks answer for our own chain while a claim is checked: a block at our next
    /// height signed by our key starts recovery (and the answer is then taken as usual);
    /// anything else from above our head refutes the claim, and the peer is at fault.
    pub(super) fn own_blocks_shown(
        &mut self,
        now: u64,
        from: MemberCode,
        blocks: &[(Block, Option<Certificate>)],
    ) -> Option<Verdict> {
        let OwnChain::Checking { since_ms: since, .. } = self.own else {
            return None;
        };
        let ours = self.own_height();
        if blocks.first().is_some_and(|(b, _)| b.header.body.height <= ours) {
            return None; // heights we hold: not an answer to the check
        }
        if blocks.first().is_some_and(|(b, _)| {
            let h = &b.header.body;
            self.epochs.set_aside(h.chain, h.height, h.epoch).is_some()
        }) {
            // A peer that has not learned our chain's reset yet: no fault, and no claim
            // until its next heads answer.
            self.own_claims.remove(&from);
            self.own = OwnChain::Waiting { since_ms: Some(since) };
            return Some(Verdict::Ignored(blocks::SET_ASIDE));
        }
        // A block of an epoch this member does not know yet (a ledger restored from before
        // a configuration change) cannot be checked, nor refuted: it counts as shown, so
        // production stays held while the epoch is learned and the block taken back.
        let shown = blocks.first().is_some_and(|(b, _)| {
            b.header.body.height == ours + 1
                && b.header.body.chain == self.me
                && matches!(
                    b.header.verify(&self.epochs, &self.network),
                    Ok(_) | Err(BlockError::UnknownEpoch(_))
                )
        });
        if shown {
            self.own = OwnChain::Recovering { since_ms: since };
            self.outputs.push_back(Output::HoldProduction {
                reason: format!(
                    "member {from} holds block {} of this node's own chain, signed by this node's key, but this \
                     ledger ends at height {ours}: it was restored from an older backup or started empty. The chain \
                     is being recovered from the peers before this node signs anything",
                    ours + 1
                ),
                refuse_writes: true,
            });
            return None;
        }
        self.own_claims.remove(&from);
        self.own_liars.insert(from);
        self.own = OwnChain::Waiting { since_ms: Some(since) };
        self.own_release_if_ready(now);
        Some(Verdict::Invalid(Invalid::Link(format!(
            "claimed chain {} above height {ours} without the block",
            self.me
        ))))
    }

    /// Ends a wait or a recovery once it is safe to sign our next height: at least
    /// `w - q + 1` other witnesses have said how far they hold our chain (w witnesses,
    /// quorum q), and we hold every height any peer claims; and every connected peer
    /// that may hold our chain has answered, or the wait has lasted
    /// [`Config::own_chain_wait_ms`].
    ///
    /// Why `w - q + 1`: a certified block of ours was stored by at least q witnesses, so
    /// by at least q - 1 others when we witness too (q when we do not); any `w - q + 1` of
    /// the other witnesses include one of them, so every certified block of ours is
    /// claimed by someone we heard. (With the default quorum that is q - 1 or fewer.)
    /// With fewer witnesses reachable no block of ours could be certified anyway, so
    /// waiting costs nothing but the blocks' production (events are still admitted).
    pub(super) fn own_release_if_ready(&mut self, now: u64) {
        let since = match self.own {
            OwnChain::Waiting { since_ms: since } => since.unwrap_or(now),
            OwnChain::Recovering { since_ms: since } => since,
            OwnChain::Checking { .. } | OwnChain::Clear | OwnChain::Behind => return,
        };
        let latest = self.epochs.latest();
        let witnesses = latest.with_role(Role::Witness).count();
        let others = witnesses - usize::from(latest.witness(self.me).is_some());
        let need = (witnesses + 1).saturating_sub(latest.quorum() as usize).min(others);
        let fresh = |p: &MemberCode| {
            self.own_claims
                .get(p)
                .is_some_and(|(_, at)| *at >= self.own_fresh_from_ms)
        };
        let heard = self
            .own_claims
            .keys()
            .filter(|p| fresh(p) && latest.witness(**p).is_some());
        let answered = heard.count() >= need.max(1);
        let everyone = self
            .peers
            .iter()
            .filter(|p| latest.may_read(**p, self.me))
            .all(|p| fresh(p) || self.own_liars.contains(p));
        let waited = now.saturating_sub(since) >= self.config.own_chain_wait_ms;
        let ours = self.own_height();
        let target = self.own_claims.values().map(|(h, _)| *h).max().unwrap_or(0);
        if !answered || !(everyone || waited) || target > ours {
            return;
        }
        let why = if matches!(self.own, OwnChain::Recovering { .. }) {
            format!("this node's own chain is recovered from its peers up to height {ours}")
        } else {
            format!(
                "{} peer(s) hold nothing of this node's chain above its head {ours}",
                self.own_claims.len()
            )
        };
        self.own = OwnChain::Clear;
        self.outputs.push_back(Output::ReleaseProduction { why });
    }
}
