//! Catching up: peers' heads, the ranges asked of a peer ahead, and its answers.

use super::*;

impl Replica {
    pub(super) fn request_missing(&mut self, now: u64, chain: MemberCode, peer: MemberCode) {
        let max = self.config.sync_blocks_max;
        let timeout = self.config.sync_timeout_ms;
        let c = self.chains.held_mut(chain);
        if c.sync.is_some_and(|s| now.saturating_sub(s.since_ms) < timeout) {
            return;
        }
        let from = c.height() + 1;
        c.sync = Some(SyncInFlight { peer, since_ms: now });
        self.outputs.push_back(Output::RequestBlocks {
            peer,
            chain,
            from,
            to: from + max - 1,
        });
    }

    pub(super) fn on_heads(&mut self, now: Timestamp, from: MemberCode, heads: &[HeadSummary]) {
        if self.latest().chain_owner(self.me).is_some() && self.latest().may_read(from, self.me) {
            // Only a member that may read our chain holds it; the others' heads omit it.
            let claimed = heads.iter().find(|h| h.chain == self.me).map_or(0, |h| h.height);
            self.own_claimed(now.0, from, claimed);
        }
        for h in heads {
            let Some(c) = self.chains.get_mut(&h.chain) else {
                continue;
            };
            if c.frozen.is_some() {
                continue;
            }
            if h.height > 0
                && c.head
                    .is_some_and(|ours| ours.height == h.height && ours.hash != h.hash)
            {
                // Another block at our head's height: the owner signed two. Its block
                // there, once fetched, is the evidence (heads alone never differ in
                // height, so nothing else would fetch it).
                self.outputs.push_back(Output::RequestBlocks {
                    peer: from,
                    chain: h.chain,
                    from: h.height,
                    to: h.height,
                });
            }
            let view = PeerView {
                peer: from,
                height: h.height,
                certified: h.certified,
            };
            if h.height > c.height() || h.certified > c.certified {
                if c.best
                    .is_none_or(|b| (h.certified, h.height) > (b.certified, b.height) || b.peer == from)
                {
                    c.best = Some(view);
                }
                match c.behind {
                    // Still below the mark set a round ago: gossip did not close the gap.
                    Some(b)
                        if now.0.saturating_sub(b.seen_ms) >= self.config.sync_interval_ms
                            && (c.certified < b.certified || c.height() < b.height) =>
                    {
                        self.request_range(now.0, h.chain, view);
                    }
                    Some(b) if c.certified < b.certified || c.height() < b.height => {}
                    _ => {
                        c.behind = Some(Behind {
                            certified: h.certified,
                            height: h.height,
                            seen_ms: now.0,
                        })
                    }
                }
            } else if c
                .behind
                .is_some_and(|b| c.certified >= b.certified && c.height() >= b.height)
            {
                c.behind = None;
            }
        }
    }

    /// Asks a peer that is ahead for the next range: certificates we lack for blocks we
    /// hold first (certificates only, not the blocks again), then blocks above our head
    /// (with their certificates).
    pub(super) fn request_range(&mut self, now: u64, chain: MemberCode, view: PeerView) {
        let max = self.config.sync_blocks_max;
        let timeout = self.config.sync_timeout_ms;
        let certs_max = self.config.sync_certificates_max;
        let c = self.chains.held_mut(chain);
        if c.sync.is_some_and(|s| now.saturating_sub(s.since_ms) < timeout) {
            return;
        }
        let held_uncertified = c.height() > c.certified;
        // A certificate above our prefix for another block than the one we hold: the
        // owner forked and we hold the losing side. The certified block, asked for again,
        // turns that into evidence.
        let next = c.certified + 1;
        let forked = c.certs.get(&next).is_some_and(|b| c.voted(next) != Some(*b));
        let output = if forked {
            Output::RequestBlocks {
                peer: view.peer,
                chain,
                from: next,
                to: next,
            }
        } else if view.certified > c.certified && held_uncertified {
            let from = c.certified + 1;
            let to = view.certified.min(c.height()).min(from + certs_max - 1);
            Output::RequestCertificates {
                peer: view.peer,
                chain,
                from,
                to,
            }
        } else if view.certified > c.certified || view.height > c.height() {
            let from = c.height() + 1;
            let to = view.height.max(view.certified).min(from + max - 1);
            if to < from {
                return;
            }
            Output::RequestBlocks {
                peer: view.peer,
                chain,
                from,
                to,
            }
        } else {
            return;
        };
        c.sync = Some(SyncInFlight {
            peer: view.peer,
            since_ms: now,
        });
        self.outputs.push_back(output);
    }

    pub(super) fn on_blocks<L: Ledger>(
        &mut self,
        now: Timestamp,
        from: MemberCode,
        chain: MemberCode,
        blocks: Vec<(Block, Option<Certificate>)>,
        ledger: &mut L,
    ) -> Result<Verdict, L::Error> {
        if !self.answered(from, chain) {
            return Ok(Verdict::Invalid(BlockError::UnknownChain(chain).into()));
        }
        if chain == self.me {
            if let Some(refused) = self.own_blocks_shown(now.0, from, &blocks) {
                return Ok(refused);
            }
        }
        let mut verdict = Verdict::Ignored("nothing new");
        for (block, cert) in blocks {
            if block.header.body.chain != chain {
                return Ok(Verdict::Invalid(Invalid::Link(
                    "block of another chain in the answer".into(),
                )));
            }
            let (height, hash) = (block.header.body.height, block.header.hash());
            match self.on_block(now, from, block, ledger)? {
                Verdict::Invalid(e) => return Ok(Verdict::Invalid(e)),
                Verdict::Accepted => verdict = Verdict::Accepted,
                Verdict::Ignored(_) => {}
            }
            if let Some(cert) = cert {
                if cert.chain != chain || cert.height != height || cert.block != hash {
                    return Ok(Verdict::Invalid(Invalid::Link(
                        "certificate is for another block".into(),
                    )));
                }
                let c = self.chains.held(chain);
                if c.frozen.is_some() || height <= c.certified || c.certs.contains_key(&height) {
                    continue;
                }
                if let Err(e) = cert.verify(&self.epochs, &self.network) {
                    return Ok(refused(e));
                }
                self.record_certificate(cert);
                verdict = Verdict::Accepted;
            }
        }
        self.continue_sync(now, chain, &verdict);
        self.follow_announced(now.0, chain, from);
        if chain == self.me {
            self.own_release_if_ready(now.0);
        }
        Ok(verdict)
    }

    /// A sync answer from `from` arrived for `chain`: the request is no longer in
    /// flight. False for a chain that is not in genesis.
    pub(super) fn answered(&mut self, from: MemberCode, chain: MemberCode) -> bool {
        let Some(c) = self.chains.get_mut(&chain) else {
            return false;
        };
        if c.sync.is_some_and(|s| s.peer == from) {
            c.sync = None;
        }
        true
    }

    /// After a useful sync answer, ask for the next range while a peer is ahead.
    pub(super) fn continue_sync(&mut self, now: Timestamp, chain: MemberCode, verdict: &Verdict) {
        let c = self.chains.held(chain);
        if c.frozen.is_none() && *verdict == Verdict::Accepted {
            if let Some(view) = c.best {
                self.request_range(now.0, chain, view);
            }
        }
    }

    pub(super) fn on_certificates(
        &mut self,
        now: Timestamp,
        from: MemberCode,
        chain: MemberCode,
        certificates: Vec<Certificate>,
    ) -> Verdict {
        if !self.answered(from, chain) {
            return Verdict::Invalid(BlockError::UnknownChain(chain).into());
        }
        let mut verdict = Verdict::Ignored("nothing new");
        for cert in certificates {
            if cert.chain != chain {
                return Verdict::Invalid(Invalid::Link("certificate of another chain in the answer".into()));
            }
            let c = self.chains.held(chain);
            if c.frozen.is_some() || cert.height <= c.certified || c.certs.contains_key(&cert.height) {
                continue;
            }
            if let Err(e) = cert.verify(&self.epochs, &self.network) {
                return refused(e);
            }
            self.record_certificate(cert);
            verdict = Verdict::Accepted;
        }
        self.continue_sync(now, chain, &verdict);
        verdict
    }
}
