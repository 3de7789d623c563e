//! Attestations and certificates: this member's vote on what it holds, the pool of
//! others' votes, a quorum folded into a certificate, and equivocation evidence.

use super::*;

impl Replica {
    /// Records that we store (chain, height, hash), a block made in `epoch` and
    /// certified by `certifying`, unless we voted for another block there. The
    /// attestation follows in [`Replica::attest_pending`] once the block's parent is
    /// certified.
    pub(super) fn attest(&mut self, chain: MemberCode, height: u64, hash: BlockHash, certifying: u32, epoch: u32) {
        let c = self.chains.held_mut(chain);
        match c.voted(height) {
            Some(v) if v != hash => {
                // We stored a block at this height after voting for another: impossible
                // unless the store was replaced. Never vote twice.
                return;
            }
            Some(_) => {}
            None => {
                c.votes.insert(
                    height,
                    Vote {
                        block: hash,
                        epoch: certifying,
                        made_in: epoch,
                        attested: false,
                    },
                );
                self.outputs.push_back(Output::PersistVote {
                    chain,
                    height,
                    block: hash,
                });
            }
        }
        self.to_attest.insert(chain);
    }

    /// Attests, on every chain whose prefix moved or that got a vote, the block we hold
    /// just above the certified prefix, if [`Replica::may_attest`] allows it: a witness
    /// attests a block only once its parent is certified. Certified blocks then form one
    /// chain whatever epochs they were made in (PROTOCOL.md, "Safety across an epoch
    /// change"). Our own attestation may complete a certificate, which moves the prefix
    /// again: the loop runs until nothing is left.
    pub(super) fn attest_pending(&mut self) {
        while let Some(chain) = self.to_attest.pop_first() {
            let Some(c) = self.chains.get(&chain) else { continue };
            let height = c.certified + 1;
            let Some(v) = c.votes.get(&height).copied() else {
                continue;
            };
            if v.attested || c.frozen.is_some() || !self.may_attest(chain, v.epoch, v.made_in) {
                continue;
            }
            self.chains
                .held_mut(chain)
                .votes
                .insert(height, Vote { attested: true, ..v });
            let att = AttestationBody {
                network: self.network,
                chain,
                epoch: v.epoch,
                height,
                block: v.block,
                witness: self.me,
            }
            .sign(&self.key);
            self.outputs.push_back(Output::BroadcastAttestation(att.clone()));
            self.add_attestation(att);
        }
    }

    pub(super) fn on_attestation(&mut self, att: Attestation) -> Verdict {
        if let Err(e) = att.verify(&self.epochs, &self.network) {
            return refused(e);
        }
        let (chain, height) = (att.body.chain, att.body.height);
        if self.epochs.set_aside(chain, height, att.body.epoch).is_some() {
            // Certified by a committee before a reset that resumed the chain below this
            // height: for a block set aside (its witness may not know the reset yet).
            return Verdict::Ignored(super::blocks::SET_ASIDE);
        }
        let Some(c) = self.chains.get(&chain) else {
            if self.watched.contains_key(&chain) {
                return Verdict::Ignored("a chain this member does not hold");
            }
            return Verdict::Invalid(BlockError::UnknownChain(chain).into());
        };
        if c.frozen.is_some() {
            return Verdict::Ignored("chain is frozen");
        }
        if height == 0 || height <= c.certified || c.certs.contains_key(&height) {
            return Verdict::Ignored("height already certified");
        }
        if height > c.height() + self.config.attestation_heights_max {
            return Verdict::Ignored("attestation too far above our head");
        }
        if self.add_attestation(att) {
            Verdict::Accepted
        } else {
            Verdict::Ignored("duplicate attestation")
        }
    }

    /// Pools an attestation (checked: its epoch is known); at its epoch's quorum, forms
    /// and records the certificate. Attestations for one block in different epochs are
    /// pooled apart: a certificate is one committee's.
    pub(super) fn add_attestation(&mut self, att: Attestation) -> bool {
        let (chain, height, block, witness) = (att.body.chain, att.body.height, att.body.block, att.body.witness);
        let epoch = att.body.epoch;
        let quorum = self.quorum_of(epoch);
        let c = self.chains.held_mut(chain);
        if height <= c.certified || c.certs.contains_key(&height) {
            return false;
        }
        let at = c.pool.entry(height).or_default();
        if at.iter().any(|((b, _), w)| *b != block && w.contains_key(&witness)) {
            // The witness attested another block here: it equivocated as a witness. Its
            // second vote counts for nothing.
            return false;
        }
        let voters = at.entry((block, epoch)).or_default();
        if voters.insert(witness, att).is_some() {
            return false;
        }
        if voters.len() >= quorum {
            // Recorded, the pool at this height goes. A certificate that cannot be
            // judged yet (its block, or the one below, is not stored here) leaves the
            // attestations pooled, for `certify_pooled` once the block is stored:
            // dropped, they would come back only with sync, seconds later, and this
            // member could not attest the next height meanwhile.
            let cert = Certificate::from_attestations(voters.values()).unwrap_or_else(|| unreachable!());
            self.record_certificate(cert);
        }
        true
    }

    /// Attestations that make a certificate in `epoch` (none suffice in an epoch not
    /// known here).
    fn quorum_of(&self, epoch: u32) -> usize {
        self.epochs.at(epoch).map_or(usize::MAX, |c| c.quorum() as usize)
    }

    /// Records the certificate a quorum of pooled attestations forms at `height`, if
    /// any: called once the block there is stored, for attestations that arrived first.
    pub(super) fn certify_pooled(&mut self, chain: MemberCode, height: u64) {
        let Some(at) = self.chains.held(chain).pool.get(&height) else {
            return;
        };
        let formed = at
            .iter()
            .filter(|((_, epoch), voters)| voters.len() >= self.quorum_of(*epoch))
            .find_map(|(_, voters)| Certificate::from_attestations(voters.values()));
        if let Some(cert) = formed {
            self.record_certificate(cert);
        }
    }

    /// Records a verified certificate, if it is by the committee that certifies its
    /// height: the epoch of the block below it (the chain's first at height 1). A
    /// certificate of any other epoch (a retired committee's keys, still valid for their
    /// own epoch) certifies nothing here; one for a height whose parent we do not hold yet
    /// cannot be judged and is not recorded (formed from gossiped attestations, those
    /// stay pooled until the block is stored; sync brings certificates with their
    /// blocks). A certificate for another block than the one we
    /// hold is not recorded either: the block it names is fetched, to become evidence.
    pub(super) fn record_certificate(&mut self, cert: Certificate) {
        let (chain, height, block) = (cert.chain, cert.height, cert.block);
        let c = self.chains.held(chain);
        if height <= c.certified || c.certs.contains_key(&height) {
            return;
        }
        if self.epochs.set_aside(chain, height, cert.epoch).is_some() {
            return; // a committee before a reset below this height: a set-aside block's
        }
        let certifying = match c.votes.get(&height) {
            Some(v) if v.block == block => Some(v.epoch),
            Some(_) => {
                // A quorum certified another block than the one we hold: the owner forked
                // and we hold the losing side. Fetching the certified block turns that into
                // evidence.
                if let Some(peer) = self.peers.iter().next().copied() {
                    self.outputs.push_back(Output::RequestBlocks {
                        peer,
                        chain,
                        from: height,
                        to: height,
                    });
                }
                return;
            }
            None if height == c.height() + 1 => Some(self.certifying_epoch(chain, c.head)),
            None => None,
        };
        if certifying != Some(cert.epoch) {
            return;
        }
        let c = self.chains.held_mut(chain);
        c.certs.insert(height, block);
        c.pool.remove(&height);
        self.outputs.push_back(Output::PersistCertificate(cert));
        // Every block we store above the certified prefix carries our vote.
        if c.voted(height) == Some(block) {
            self.outputs.push_back(Output::BlockCertified { chain, height, block });
        }
        self.fold_certified(chain);
    }

    /// Advances the contiguous certified prefix over heights whose certificate is for the
    /// block we store, and forgets votes and attestations below it.
    pub(super) fn fold_certified(&mut self, chain: MemberCode) {
        let c = self.chains.held_mut(chain);
        let head = c.height();
        while let Some(block) = c.certs.get(&(c.certified + 1)).copied() {
            let h = c.certified + 1;
            if h > head {
                break;
            }
            // The certified block must be the one we store (and voted for); a certificate
            // for another block means the owner forked and we hold the losing side.
            if c.voted(h) != Some(block) {
                break;
            }
            c.certs.remove(&h);
            c.certified = h;
        }
        let floor = c.certified + 1;
        c.votes = c.votes.split_off(&floor);
        c.pool = c.pool.split_off(&floor);
        self.to_attest.insert(chain);
    }

    pub(super) fn on_evidence(&mut self, ev: Equivocation, found_here: bool) -> Verdict {
        let (chain, _) = match ev.verify(&self.epochs, &self.network) {
            Ok(x) => x,
            Err(e) => return refused(e),
        };
        if self.epochs.superseded(&ev) {
            return Verdict::Ignored("superseded by a chain reset");
        }
        if let Some(c) = self.chains.get_mut(&chain) {
            if c.frozen.is_some() {
                return Verdict::Ignored("chain already frozen");
            }
            c.frozen = Some(ev.clone());
            c.buffer.clear();
            c.ahead.clear();
            c.pool.clear();
            c.sync = None;
        } else if let Some(w) = self.watched.get_mut(&chain) {
            if w.frozen.is_some() {
                return Verdict::Ignored("chain already frozen");
            }
            w.frozen = Some(ev.clone());
            w.headers.clear();
        } else {
            return Verdict::Invalid(BlockError::UnknownChain(chain).into());
        }
        self.outputs.push_back(Output::EvidenceFound(ev.clone()));
        if found_here {
            self.outputs.push_back(Output::BroadcastEvidence(ev));
        }
        Verdict::Accepted
    }
}
