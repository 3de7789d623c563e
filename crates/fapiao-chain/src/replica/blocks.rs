//! Blocks arriving from gossip, sync and the host: checked, appended in order, parked
//! while their parent is missing, and compared with what is held (evidence).

use super::*;

/// Why a block or header of a reset chain's old lineage is ignored: a peer that does not
/// know the reset yet may still hold and send it, which is no fault.
pub(super) const SET_ASIDE: &str = "set aside by a chain reset";

impl Replica {
    // Long: a received block's checks one after the other (header, height, entries, chain, link, time) and then
    // storing and voting; each check ends in its own verdict.
    pub(super) fn on_block<L: Ledger>(
        &mut self,
        now: Timestamp,
        from: MemberCode,
        block: Block,
        ledger: &mut L,
    ) -> Result<Verdict, L::Error> {
        let b = &block.header.body;
        let (chain, height) = (b.chain, b.height);
        if let Some(v) = self.refuse_header(&block.header) {
            return Ok(v);
        }
        if height == 0 {
            return Ok(Verdict::Invalid(Invalid::Link("height 0".into())));
        }
        if let Err(e) = block.check_entries() {
            return Ok(Verdict::Invalid(e.into()));
        }
        let Some(c) = self.chains.get(&chain) else {
            // Verified: a merchant's chain, one this member may not read. Its owner chose
            // to send it; it is not kept.
            return Ok(Verdict::Ignored("a chain this member does not hold"));
        };
        if c.frozen.is_some() {
            return Ok(Verdict::Ignored("chain is frozen"));
        }
        let hash = block.header.hash();
        let head_height = c.height();
        if height <= head_height {
            return self.at_held_height(block.header, "duplicate block", ledger);
        }
        if let Some((other, _)) = c.buffer.get(&height) {
            if other.header.hash() == hash {
                return Ok(Verdict::Ignored("duplicate block"));
            }
            let ev = Equivocation::new(other.header.clone(), block.header);
            return Ok(self.on_evidence(ev, true));
        }
        if let Some(announced) = c.ahead.get(&height).filter(|h| h.hash() != hash) {
            // Its owner announced another block at this height.
            let ev = Equivocation::new(announced.clone(), block.header);
            return Ok(self.on_evidence(ev, true));
        }
        if chain == self.me && !matches!(self.own, OwnChain::Recovering { .. }) {
            // Our own chain grows only through OwnBlock; a block of ours that we never
            // produced, above our head, means our key signs elsewhere, or our ledger lost
            // it (the host then turns recovery on). It becomes evidence when its sibling
            // shows up; until then it is ignored.
            return Ok(Verdict::Ignored("own chain block not produced here"));
        }
        if height > head_height + 1 {
            let size = fapiao_core::codec::to_bytes(&block).len();
            let (blocks_max, bytes_max) = (self.config.buffer_blocks_max, self.config.buffer_bytes_max);
            let c = self.chains.held_mut(chain);
            // Make room by dropping the highest parked blocks, the last to be needed; a
            // block above all of them waits for sync instead.
            while c.buffer.len() >= blocks_max || c.buffer.values().map(|(_, n)| n).sum::<usize>() + size > bytes_max {
                match c.buffer.keys().next_back().copied() {
                    Some(highest) if highest > height => {
                        c.buffer.remove(&highest);
                    }
                    _ => {
                        self.request_missing(now.0, chain, from);
                        return Ok(Verdict::Ignored("parent missing and buffer full"));
                    }
                }
            }
            c.buffer.insert(height, (block, size));
            self.request_missing(now.0, chain, from);
            return Ok(Verdict::Accepted);
        }
        // height == head + 1.
        let verdict = self.extend(now, from, block, ledger)?;
        if chain == self.me {
            if let Verdict::Invalid(
                e @ (Invalid::Rejected { .. } | Invalid::Entries { .. } | Invalid::StateRoot { .. }),
            ) = &verdict
            {
                // Signed by our key and linked to our head, but not what our ledger's
                // state derives: the ledger is not the one the chain was built on.
                let reason = format!(
                    "block {height} of this node's own chain, signed by this node's key and held by member {from}, \
                     does not re-execute on this ledger ({e}): the ledger is not the one that chain was built on. \
                     Stop the node and restore the member's own ledger, or start it with an empty one (OPERATIONS.md, \
                     \"Back up\")"
                );
                self.own = OwnChain::Behind;
                self.outputs.push_back(Output::HoldProduction {
                    reason,
                    refuse_writes: true,
                });
                return Ok(Verdict::Ignored("own block does not re-execute on this ledger"));
            }
        }
        if verdict == Verdict::Accepted {
            self.drain_buffer(now, from, chain, ledger)?;
        }
        Ok(verdict)
    }

    /// A gossiped header: for a chain we hold, the block it names is fetched by sync (from
    /// its owner when connected, which always holds it), and a header that conflicts with
    /// a block we hold is evidence. For a chain we may not read, the latest headers are
    /// kept to catch its owner signing two blocks at one height.
    pub(super) fn on_header<L: Ledger>(
        &mut self,
        now: Timestamp,
        from: MemberCode,
        header: Header,
        ledger: &mut L,
    ) -> Result<Verdict, L::Error> {
        if let Some(v) = self.refuse_header(&header) {
            return Ok(v);
        }
        let (chain, height, hash) = (header.body.chain, header.body.height, header.hash());
        if height == 0 {
            return Ok(Verdict::Invalid(Invalid::Link("height 0".into())));
        }
        if header.body.timestamp.0 > now.0.saturating_add(self.config.skew_ms_max) {
            return Ok(Verdict::Ignored(
                "block time is ahead of our clock by more than the skew",
            ));
        }
        let Some(c) = self.chains.get_mut(&chain) else {
            let keep = self.config.buffer_blocks_max;
            let w = self
                .watched
                .get_mut(&chain)
                .unwrap_or_else(|| unreachable!("verified: a merchant's chain"));
            if w.frozen.is_some() {
                return Ok(Verdict::Ignored("chain is frozen"));
            }
            return Ok(match w.headers.get(&height) {
                Some(seen) if seen.hash() == hash => Verdict::Ignored("duplicate header"),
                Some(seen) => {
                    let ev = Equivocation::new(seen.clone(), header);
                    self.on_evidence(ev, true)
                }
                None => {
                    w.headers.insert(height, header);
                    while w.headers.len() > keep {
                        w.headers.pop_first();
                    }
                    Verdict::Accepted
                }
            });
        };
        if c.frozen.is_some() {
            return Ok(Verdict::Ignored("chain is frozen"));
        }
        if height <= c.height() {
            return self.at_held_height(header, "duplicate header", ledger);
        }
        let seen = c.ahead.get(&height).or(c.buffer.get(&height).map(|(b, _)| &b.header));
        if let Some(other) = seen {
            if other.hash() == hash {
                return Ok(Verdict::Ignored("duplicate header"));
            }
            let ev = Equivocation::new(other.clone(), header);
            return Ok(self.on_evidence(ev, true));
        }
        if chain == self.me && !matches!(self.own, OwnChain::Recovering { .. }) {
            return Ok(Verdict::Ignored("own chain header not produced here"));
        }
        c.ahead.insert(height, header);
        while c.ahead.len() > self.config.buffer_blocks_max {
            c.ahead.pop_last();
        }
        let peer = self.block_source(chain, from);
        self.request_missing(now.0, chain, peer);
        Ok(Verdict::Accepted)
    }

    /// The verdict on a header that fails its own checks: its owner's signature in its
    /// epoch, and not of a block a chain reset set aside.
    fn refuse_header(&self, header: &Header) -> Option<Verdict> {
        if let Err(e) = header.verify(&self.epochs, &self.network) {
            return Some(refused(e));
        }
        let b = &header.body;
        self.epochs
            .set_aside(b.chain, b.height, b.epoch)
            .map(|_| Verdict::Ignored(SET_ASIDE))
    }

    /// A validly signed header at a height of a chain we hold: the block we hold
    /// (`duplicate`), or a second block its owner signed there, which is evidence.
    pub(super) fn at_held_height<L: Ledger>(
        &mut self,
        header: Header,
        duplicate: &'static str,
        ledger: &mut L,
    ) -> Result<Verdict, L::Error> {
        let (chain, height, hash) = (header.body.chain, header.body.height, header.hash());
        let c = self.chains.held(chain);
        let ours = match (c.head, c.voted(height)) {
            (Some(h), _) if h.height == height => Some(h.hash),
            (_, Some(v)) => Some(v),
            _ => ledger.header(chain, height)?.map(|h| h.hash()),
        };
        if ours == Some(hash) {
            return Ok(Verdict::Ignored(duplicate));
        }
        let Some(stored) = ledger.header(chain, height)? else {
            return Ok(Verdict::Ignored("stored block missing"));
        };
        Ok(self.on_evidence(Equivocation::new(stored, header), true))
    }

    /// Who to ask for `chain`'s blocks after `from` announced one: the owner when
    /// connected (it holds every block of its chain), else `from`.
    pub(super) fn block_source(&self, chain: MemberCode, from: MemberCode) -> MemberCode {
        if chain != self.me && self.peers.contains(&chain) {
            chain
        } else {
            from
        }
    }

    /// After a blocks answer: a header announced above what we now hold is fetched next.
    pub(super) fn follow_announced(&mut self, now: u64, chain: MemberCode, from: MemberCode) {
        let Some(c) = self.chains.get(&chain) else { return };
        if c.frozen.is_none() && c.sync.is_none() && c.ahead.keys().next_back().is_some_and(|h| *h > c.height()) {
            let peer = self.block_source(chain, from);
            self.request_missing(now, chain, peer);
        }
    }

    /// Appends `block`, the next block of its chain, and attests it.
    pub(super) fn extend<L: Ledger>(
        &mut self,
        now: Timestamp,
        from: MemberCode,
        block: Block,
        ledger: &mut L,
    ) -> Result<Verdict, L::Error> {
        let b = &block.header.body;
        let chain = b.chain;
        let c = self.chains.held(chain);
        let head = c.head;
        let (parent, last_time) = match head {
            Some(h) => (h.hash, Some(h.timestamp)),
            None => (BlockHash(Hash32::ZERO), None),
        };
        debug_assert_eq!(b.height, c.height() + 1);
        if b.parent != parent {
            // The owner signed a block on another parent: ask for the parent so a
            // conflicting block at a lower height shows up as evidence.
            let at = b.height - 1;
            if at > 0 {
                self.outputs.push_back(Output::RequestBlocks {
                    peer: from,
                    chain,
                    from: at,
                    to: at,
                });
            }
            return Ok(Verdict::Ignored("parent is not our head"));
        }
        if last_time.is_some_and(|t| b.timestamp < t) {
            return Ok(Verdict::Invalid(Invalid::Timestamp("earlier than its parent".into())));
        }
        if b.timestamp.0 > now.0.saturating_add(self.config.skew_ms_max) {
            return Ok(Verdict::Ignored(
                "block time is ahead of our clock by more than the skew",
            ));
        }
        let (certifying, config) = match self.epoch_of(chain, head, b.epoch) {
            Ok(x) => x,
            Err(v) => return Ok(v),
        };
        if let Err(e) = ledger.append(&block, config)? {
            return Ok(Verdict::Invalid(e));
        }
        let hash = block.header.hash();
        let height = b.height;
        let timestamp = b.timestamp;
        let epoch = b.epoch;
        if chain == self.me {
            // A block of ours taken back: answers from before it (and the poll in
            // flight) may be stale.
            self.own_fresh_from_ms = now.0 + self.config.sync_interval_ms;
        }
        let c = self.chains.held_mut(chain);
        c.head = Some(StoredHead {
            height,
            hash,
            timestamp,
            epoch,
        });
        c.ahead = c.ahead.split_off(&(height + 1));
        self.attest(chain, height, hash, certifying, epoch);
        self.after_append(chain, height, hash);
        Ok(Verdict::Accepted)
    }

    /// The epoch that certifies the block after `head` on `chain`, made in `epoch`, and
    /// that epoch's configuration; or the verdict on a block whose epoch goes back
    /// (invalid) or is not known yet (ignored: it comes back through sync).
    fn epoch_of(
        &self,
        chain: MemberCode,
        head: Option<StoredHead>,
        epoch: u32,
    ) -> Result<(u32, &fapiao_core::Config), Verdict> {
        let certifying = self.certifying_epoch(chain, head);
        if epoch < certifying {
            return Err(Verdict::Invalid(Invalid::Link(format!(
                "epoch {epoch} is before its parent's {certifying}"
            ))));
        }
        match self.epochs.at(epoch) {
            Some(config) => Ok((certifying, config)),
            None => Err(Verdict::Ignored("an epoch this member does not know yet")),
        }
    }

    /// After a block is stored: certificates that were waiting for it, and attestations
    /// that arrived before it and now form one.
    pub(super) fn after_append(&mut self, chain: MemberCode, height: u64, hash: BlockHash) {
        let c = self.chains.held_mut(chain);
        if c.certs.get(&height) == Some(&hash) {
            self.outputs.push_back(Output::BlockCertified {
                chain,
                height,
                block: hash,
            });
        }
        self.certify_pooled(chain, height);
        self.fold_certified(chain);
    }

    pub(super) fn drain_buffer<L: Ledger>(
        &mut self,
        now: Timestamp,
        from: MemberCode,
        chain: MemberCode,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        loop {
            let c = self.chains.held_mut(chain);
            if c.frozen.is_some() {
                return Ok(());
            }
            let next = c.height() + 1;
            // Drop buffered blocks at or below the head: they were stored meanwhile.
            c.buffer = c.buffer.split_off(&next);
            let Some((block, _)) = c.buffer.remove(&next) else {
                return Ok(());
            };
            if self.extend(now, from, block, ledger)? != Verdict::Accepted {
                return Ok(());
            }
        }
    }

    /// Our own block, already stored by the producer: nothing to write here.
    pub(super) fn on_own_block(&mut self, block: Block) -> Verdict {
        let b = &block.header.body;
        let (chain, height) = (b.chain, b.height);
        assert_eq!(chain, self.me, "own blocks are on our own chain");
        let hash = block.header.hash();
        let certifying = self.certifying_epoch(chain, self.chains.held(chain).head);
        let c = self.chains.held_mut(chain);
        assert_eq!(height, c.height() + 1, "own blocks extend our head");
        c.head = Some(StoredHead {
            height,
            hash,
            timestamp: b.timestamp,
            epoch: b.epoch,
        });
        let latest = self.epochs.latest();
        let entitled: Vec<MemberCode> = self
            .peers
            .iter()
            .copied()
            .filter(|p| latest.may_read(*p, self.me))
            .collect();
        self.outputs.push_back(Output::AnnounceHeader(block.header.clone()));
        for peer in entitled {
            self.outputs.push_back(Output::SendBlock {
                peer,
                block: block.clone(),
            });
        }
        self.attest(chain, height, hash, certifying, b.epoch);
        self.after_append(chain, height, hash);
        Verdict::Accepted
    }
}
