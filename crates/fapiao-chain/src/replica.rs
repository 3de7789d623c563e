//! The replication state machine of one member: it holds and validates every chain the
//! member may read (its own; every chain for a witness or a tax office), attests them
//! when the member is a witness, forms certificates, detects equivocation (from full
//! blocks, and from the headers gossiped for chains it may not read) and drives sync.
//!
//! Sans-IO: [`Replica::handle`] takes the time and one input; what must happen next comes
//! out of [`Replica::poll_output`], in order. The host performs each output before it
//! handles the next input, and it performs them in the order given: that is how "persist
//! the vote before sending the attestation" holds. The one call back into the host is
//! [`Ledger`], the chain store: reading a stored header, and appending a block after
//! re-executing it (the re-execution needs the chain's state, which the host owns).

use crate::validate::Invalid;
use fapiao_core::block::BlockError;
use fapiao_core::{
    Attestation, AttestationBody, Block, BlockHash, Certificate, Equivocation, Genesis, Hash32, Header, MemberCode,
    NetworkId, Role, SecretKey, Timestamp,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Every bound of the state machine, with its unit last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How far a block's time may be ahead of the local clock.
    pub skew_ms_max: u64,
    /// Blocks kept per chain while their parent is missing.
    pub buffer_blocks_max: usize,
    /// Their encoded bytes per chain: a member may fill its own chain's buffer with
    /// blocks it signs at heights it never reaches, so the count alone (64 blocks of up to
    /// 4 MiB) is too loose a bound on memory.
    pub buffer_bytes_max: usize,
    /// How far above a chain's local head attestations are kept.
    pub attestation_heights_max: u64,
    /// How often every connected peer is asked for its heads.
    pub sync_interval_ms: u64,
    /// After this long an unanswered block request is given up and may be re-sent.
    pub sync_timeout_ms: u64,
    /// Blocks asked for in one request (the responder may send fewer).
    pub sync_blocks_max: u64,
    /// Certificates asked for in one request.
    pub sync_certificates_max: u64,
    /// How often our attestations for uncertified blocks, and known evidence, are sent again.
    pub resend_interval_ms: u64,
    /// Uncertified heights per chain whose attestations are re-sent.
    pub resend_heights_max: u64,
    /// How long production waits at start (or while a peer's claim on our chain is
    /// checked) for a peer to show how far our own chain goes. With no answer by then,
    /// nobody reachable holds more of it.
    pub own_chain_wait_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            skew_ms_max: 30_000,
            buffer_blocks_max: 64,
            buffer_bytes_max: 16 * 1024 * 1024,
            attestation_heights_max: 256,
            sync_interval_ms: 1_000,
            sync_timeout_ms: 5_000,
            sync_blocks_max: 32,
            sync_certificates_max: 256,
            resend_interval_ms: 2_000,
            resend_heights_max: 16,
            own_chain_wait_ms: 10_000,
        }
    }
}

/// One chain as a member sees it: what a heads request answers (on the wire too, in the
/// canonical encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeadSummary {
    /// The chain.
    pub chain: MemberCode,
    /// Height of the last stored block (0: none).
    pub height: u64,
    /// Its hash (zero when none).
    pub hash: BlockHash,
    /// Every block up to here has a certificate.
    pub certified: u64,
    /// Equivocation evidence is known for this chain.
    pub frozen: bool,
}

/// A block as stored by the host, with the timestamp the next block must not go below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHead {
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: BlockHash,
    /// Block time.
    pub timestamp: Timestamp,
}

/// What a restarting member loads from its disk.
#[derive(Debug, Clone, Default)]
pub struct Persisted {
    /// Each chain's stored head.
    pub heads: BTreeMap<MemberCode, StoredHead>,
    /// Each chain's contiguous certified prefix: every height up to it is certified.
    pub certified: BTreeMap<MemberCode, u64>,
    /// Certificates stored above each chain's contiguous certified prefix.
    pub certificates: Vec<Certificate>,
    /// Our votes above the certified prefix: (chain, height, block).
    pub votes: Vec<(MemberCode, u64, BlockHash)>,
    /// Evidence we hold; each freezes its chain.
    pub evidence: Vec<Equivocation>,
}

/// An input to the state machine.
#[derive(Debug, Clone)]
pub enum Input {
    /// A block delivered by `from` (not necessarily its author).
    Block {
        /// The member whose node delivered it.
        from: MemberCode,
        /// The block.
        block: Block,
    },
    /// A block header gossiped by `from` (not necessarily its author). Blocks themselves
    /// are not gossiped: a member that may read the chain fetches the block by sync from
    /// a peer that checks it may (PROTOCOL.md, "Confidentiality").
    Header {
        /// The member whose node delivered it.
        from: MemberCode,
        /// The header.
        header: Header,
    },
    /// An attestation gossiped by `from`.
    Attestation {
        /// The member whose node delivered it.
        from: MemberCode,
        /// The attestation.
        attestation: Attestation,
    },
    /// Equivocation evidence gossiped by `from`.
    Evidence {
        /// The member whose node delivered it.
        from: MemberCode,
        /// The evidence.
        evidence: Equivocation,
    },
    /// `from`'s answer to a heads request.
    Heads {
        /// The peer.
        from: MemberCode,
        /// Its view of every chain.
        heads: Vec<HeadSummary>,
    },
    /// `from`'s answer to a block request for `chain`, in height order.
    Blocks {
        /// The peer.
        from: MemberCode,
        /// The chain asked for.
        chain: MemberCode,
        /// Blocks with their certificates where the peer has one.
        blocks: Vec<(Block, Option<Certificate>)>,
    },
    /// `from`'s answer to a certificates request for `chain`.
    Certificates {
        /// The peer.
        from: MemberCode,
        /// The chain asked for.
        chain: MemberCode,
        /// Certificates, by increasing height.
        certificates: Vec<Certificate>,
    },
    /// The host produced, stored (with our vote) and will serve its own next block.
    OwnBlock(Block),
    /// Time passed.
    Tick,
    /// A member's node connected.
    PeerConnected(MemberCode),
    /// A member's node went away.
    PeerGone(MemberCode),
}

/// What the host must do, in order.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Gossip our own block's header to every member.
    AnnounceHeader(Header),
    /// Deliver our own block to `peer`, a connected member that may read our chain (a
    /// witness or a tax office): on the same hop as the header, so that a block we sign
    /// is held by the witnesses as soon as gossip would have carried it, which is what
    /// lets a restored member find it again (PROTOCOL.md, "Never signing a height twice").
    SendBlock {
        /// The peer.
        peer: MemberCode,
        /// The block.
        block: Block,
    },
    /// Gossip an attestation (ours).
    BroadcastAttestation(Attestation),
    /// Gossip equivocation evidence.
    BroadcastEvidence(Equivocation),
    /// Ask `peer` for its heads.
    RequestHeads {
        /// The peer.
        peer: MemberCode,
    },
    /// Ask `peer` for `chain`'s blocks `from..=to` with their certificates.
    RequestBlocks {
        /// The peer.
        peer: MemberCode,
        /// The chain.
        chain: MemberCode,
        /// First height.
        from: u64,
        /// Last height.
        to: u64,
    },
    /// Ask `peer` for `chain`'s certificates `from..=to` (we hold those blocks).
    RequestCertificates {
        /// The peer.
        peer: MemberCode,
        /// The chain.
        chain: MemberCode,
        /// First height.
        from: u64,
        /// Last height.
        to: u64,
    },
    /// Durably record that we attested `block` at (chain, height). Must complete before
    /// the attestation that follows is sent. (For a block appended through
    /// [`Ledger::append`] the vote is already stored with it; performing this again is
    /// idempotent.)
    PersistVote {
        /// The chain.
        chain: MemberCode,
        /// The height.
        height: u64,
        /// The block.
        block: BlockHash,
    },
    /// Durably store a certificate.
    PersistCertificate(Certificate),
    /// A block we hold is now final.
    BlockCertified {
        /// The chain.
        chain: MemberCode,
        /// The height.
        height: u64,
        /// The block.
        block: BlockHash,
    },
    /// New, verified evidence: store it; its chain is now frozen here.
    EvidenceFound(Equivocation),
    /// Produce no block (and, with `refuse_writes`, admit no event) until
    /// [`Output::ReleaseProduction`]: a peer may hold blocks of our own chain above our
    /// head, and producing would sign one of those heights a second time. Emitted at
    /// start, while a peer's claim is checked, while our chain is recovered from peers,
    /// and for good when a block of ours does not re-execute on our ledger.
    HoldProduction {
        /// For the log, the status and the refusal.
        reason: String,
        /// Whether admission refuses writes meanwhile.
        refuse_writes: bool,
    },
    /// Production may resume: no reachable peer holds our chain above our head.
    ReleaseProduction {
        /// For the log.
        why: String,
    },
}

/// How an input was taken.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Used.
    Accepted,
    /// Valid but of no use now (duplicate, too old, too far ahead, frozen chain).
    Ignored(&'static str),
    /// Invalid: the peer that sent it should be penalised.
    Invalid(Invalid),
}

/// The chain store the state machine appends to.
pub trait Ledger {
    /// A storage failure: the host must stop.
    type Error: std::fmt::Display;
    /// The stored header of `chain` at `height`.
    fn header(&self, chain: MemberCode, height: u64) -> Result<Option<Header>, Self::Error>;
    /// Re-executes `block` (the chain's next block: its parent is the stored head, and
    /// its time was checked) and, when valid, stores it durably as the new head together
    /// with our vote for it, in one atomic write. A stored block is always a voted
    /// block, so a crash between storing and voting cannot leave a block we hold but
    /// would not count towards its certificate after a restart.
    fn append(&mut self, block: &Block) -> Result<Result<(), Invalid>, Self::Error>;
}

/// A storage failure reported by the [`Ledger`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger failed: {0}")]
pub struct Fatal(pub String);

#[derive(Debug, Clone, Copy)]
struct SyncInFlight {
    peer: MemberCode,
    since: u64,
}

#[derive(Debug, Clone, Copy)]
struct PeerView {
    peer: MemberCode,
    height: u64,
    certified: u64,
}

#[derive(Debug, Default)]
struct ChainState {
    head: Option<StoredHead>,
    /// Every height `1..=certified` has a certificate for the block we store.
    certified: u64,
    /// Certificates above `certified`, by height: the certified block.
    certs: BTreeMap<u64, BlockHash>,
    /// The blocks we store above `certified` (our votes, when we are a witness).
    votes: BTreeMap<u64, BlockHash>,
    /// Attestations above `certified`: height → block → witness → attestation.
    pool: BTreeMap<u64, BTreeMap<BlockHash, BTreeMap<MemberCode, Attestation>>>,
    /// Blocks whose parent we do not have yet, with their encoded size.
    buffer: BTreeMap<u64, (Block, usize)>,
    sync: Option<SyncInFlight>,
    /// The most advanced view a peer advertised for this chain.
    best: Option<PeerView>,
    /// Valid headers gossiped above our head: their blocks are fetched until held, and a
    /// block that arrives for one of these heights with another hash is evidence.
    ahead: BTreeMap<u64, Header>,
    /// When we first saw a peer ahead, and the (certified, height) it had then. Gossip
    /// normally closes a small gap by itself, so sync starts only if we are still below
    /// that mark one heads round later.
    behind: Option<(u64, u64, u64)>,
    frozen: Option<Equivocation>,
}

impl ChainState {
    fn height(&self) -> u64 {
        self.head.map_or(0, |h| h.height)
    }
}

/// What a member knows of its own chain as its peers hold it (PROTOCOL.md, "Never
/// signing a height twice after a restore").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnChain {
    /// Production held until enough peers have said how far they hold our chain (see
    /// [`Replica::own_release_if_ready`]); `since` is when the wait began (the first input).
    Waiting { since: Option<u64> },
    /// `peer` claims our chain above our head: its block at our next height was asked for,
    /// to check our own signature on it before believing the claim. `since`: the wait's.
    Checking { peer: MemberCode, asked: u64, since: u64 },
    /// A peer showed a block of ours above our head: our ledger lost blocks (an older
    /// backup, an empty ledger). Blocks of our own chain are taken from sync answers like
    /// any member's until we hold every height the peers claim.
    Recovering { since: u64 },
    /// Producing: nothing we know of lies above our head.
    Clear,
    /// A block of ours does not re-execute on our ledger: held until the operator repairs it.
    Behind,
}

/// A chain this member may not read: the latest headers gossiped for it, enough to see
/// its owner sign two blocks at one height.
#[derive(Debug, Default)]
struct Watched {
    headers: BTreeMap<u64, Header>,
    frozen: Option<Equivocation>,
}

/// One member's replication state machine.
pub struct Replica {
    config: Config,
    genesis: Genesis,
    network: NetworkId,
    me: MemberCode,
    key: SecretKey,
    /// The chains this member may read and holds.
    chains: BTreeMap<MemberCode, ChainState>,
    /// The chains it may not read: headers only.
    watched: BTreeMap<MemberCode, Watched>,
    /// Whether this member is a witness: it attests what it holds.
    witness: bool,
    peers: BTreeSet<MemberCode>,
    outputs: VecDeque<Output>,
    last_heads_poll: u64,
    last_resend: u64,
    /// Our own chain against what the peers hold of it.
    own: OwnChain,
    /// How far each connected peer last said it holds our own chain.
    own_claims: BTreeMap<MemberCode, (u64, u64)>,
    /// Only claims received from this time on count for a release: a block of ours still
    /// in flight, or parked at a peer, may land there after an earlier answer. A heads
    /// poll after the first input, and again after each block of ours taken back.
    own_fresh_from: u64,
    /// Members that claimed our chain above our head and could not show the block: their
    /// claims on it are ignored from then on (an honest member never makes one while we
    /// run, so a liar must not hold our production again and again).
    own_liars: BTreeSet<MemberCode>,
}

impl Replica {
    /// A replica for member `me` (whose key is `key`), restored from what its host
    /// persisted. `me` must be a member of genesis and `key` its key.
    // Long: the replica's fields, each restored from what was persisted.
    pub fn new(config: Config, genesis: Genesis, me: MemberCode, key: SecretKey, persisted: Persisted) -> Replica {
        assert!(
            genesis.member(me).is_some_and(|m| m.key == key.public()),
            "a replica runs for a member of genesis with that member's key"
        );
        let network = genesis.network_id();
        let mut chains: BTreeMap<MemberCode, ChainState> = genesis
            .chains()
            .filter(|c| genesis.may_read(me, *c))
            .map(|c| (c, ChainState::default()))
            .collect();
        let watched: BTreeMap<MemberCode, Watched> = genesis
            .chains()
            .filter(|c| !chains.contains_key(c))
            .map(|c| (c, Watched::default()))
            .collect();
        for (chain, head) in persisted.heads {
            if let Some(c) = chains.get_mut(&chain) {
                c.head = Some(head);
            }
        }
        for (chain, certified) in persisted.certified {
            if let Some(c) = chains.get_mut(&chain) {
                c.certified = certified.min(c.height());
            }
        }
        for cert in persisted.certificates {
            if let Some(c) = chains.get_mut(&cert.chain) {
                if cert.height > c.certified {
                    c.certs.insert(cert.height, cert.block);
                }
            }
        }
        for (chain, height, block) in persisted.votes {
            if let Some(c) = chains.get_mut(&chain) {
                if height > c.certified {
                    c.votes.insert(height, block);
                }
            }
        }
        let mut watched = watched;
        for ev in persisted.evidence {
            let chain = ev.first.body.chain;
            if let Some(c) = chains.get_mut(&chain) {
                c.frozen.get_or_insert(ev);
            } else if let Some(w) = watched.get_mut(&chain) {
                w.frozen.get_or_insert(ev);
            }
        }
        // Only other witnesses are sure to hold our chain; with none (or no chain of our
        // own) nothing can lie above our head.
        let alone = genesis.merchant(me).is_none() || genesis.with_role(Role::Witness).all(|m| m.code == me);
        let witness = genesis.witness(me).is_some();
        let mut outputs = VecDeque::new();
        if !alone {
            outputs.push_back(Output::HoldProduction {
                reason: "waiting for a peer to say how far this node's own chain goes".into(),
                refuse_writes: false,
            });
        }
        Replica {
            config,
            genesis,
            network,
            me,
            key,
            chains,
            watched,
            witness,
            peers: BTreeSet::new(),
            outputs,
            last_heads_poll: 0,
            last_resend: 0,
            own: if alone {
                OwnChain::Clear
            } else {
                OwnChain::Waiting { since: None }
            },
            own_claims: BTreeMap::new(),
            own_fresh_from: 0,
            own_liars: BTreeSet::new(),
        }
    }

    /// The next thing the host must do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The settings it runs with (the sync responder's limits come from here).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every chain's head, certified prefix and frozen flag: the answer to a heads request.
    pub fn heads(&self) -> Vec<HeadSummary> {
        self.chains
            .iter()
            .map(|(chain, c)| HeadSummary {
                chain: *chain,
                height: c.height(),
                hash: c.head.map_or(BlockHash(Hash32::ZERO), |h| h.hash),
                certified: c.certified,
                frozen: c.frozen.is_some(),
            })
            .collect()
    }

    /// Evidence held for each frozen chain.
    pub fn evidence(&self) -> Vec<Equivocation> {
        let held = self.chains.values().filter_map(|c| c.frozen.clone());
        held.chain(self.watched.values().filter_map(|w| w.frozen.clone()))
            .collect()
    }

    /// Connected member peers.
    pub fn peers(&self) -> &BTreeSet<MemberCode> {
        &self.peers
    }

    /// Handles one input at time `now`. The outputs it causes are queued for
    /// [`Replica::poll_output`].
    pub fn handle<L: Ledger>(&mut self, now: Timestamp, input: Input, ledger: &mut L) -> Result<Verdict, Fatal> {
        let fatal = |e: L::Error| Fatal(e.to_string());
        if self.own == (OwnChain::Waiting { since: None }) {
            // The wait starts with the first input, not at construction (a host may build
            // the replica well before its transport runs).
            self.own = OwnChain::Waiting { since: Some(now.0) };
            self.own_fresh_from = now.0 + self.config.sync_interval_ms;
        }
        match input {
            Input::Block { from, block } => self.on_block(now, from, block, ledger).map_err(fatal),
            Input::Header { from, header } => self.on_header(now, from, header, ledger).map_err(fatal),
            Input::Attestation { from: _, attestation } => Ok(self.on_attestation(attestation)),
            Input::Evidence { from: _, evidence } => Ok(self.on_evidence(evidence, false)),
            Input::Heads { from, heads } => {
                self.on_heads(now, from, &heads);
                Ok(Verdict::Accepted)
            }
            Input::Blocks { from, chain, blocks } => self.on_blocks(now, from, chain, blocks, ledger).map_err(fatal),
            Input::Certificates {
                from,
                chain,
                certificates,
            } => Ok(self.on_certificates(now, from, chain, certificates)),
            Input::OwnBlock(block) => Ok(self.on_own_block(block)),
            Input::Tick => {
                self.on_tick(now);
                Ok(Verdict::Accepted)
            }
            Input::PeerConnected(peer) => {
                if peer != self.me && self.genesis.member(peer).is_some() && self.peers.insert(peer) {
                    self.outputs.push_back(Output::RequestHeads { peer });
                }
                Ok(Verdict::Accepted)
            }
            Input::PeerGone(peer) => {
                self.peers.remove(&peer);
                self.own_claims.remove(&peer);
                for c in self.chains.values_mut() {
                    if c.sync.is_some_and(|s| s.peer == peer) {
                        c.sync = None;
                    }
                    if c.best.is_some_and(|v| v.peer == peer) {
                        c.best = None;
                    }
                }
                Ok(Verdict::Accepted)
            }
        }
    }

    // Long: a received block's checks one after the other (header, height, entries, chain, link, time) and then
    // storing and voting; each check ends in its own verdict.
    fn on_block<L: Ledger>(
        &mut self,
        now: Timestamp,
        from: MemberCode,
        block: Block,
        ledger: &mut L,
    ) -> Result<Verdict, L::Error> {
        let b = &block.header.body;
        let (chain, height) = (b.chain, b.height);
        if let Err(e) = block.header.verify(&self.genesis, &self.network) {
            return Ok(Verdict::Invalid(e.into()));
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
            let c = self.chains.get_mut(&chain).unwrap_or_else(|| unreachable!());
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
    fn on_header<L: Ledger>(
        &mut self,
        now: Timestamp,
        from: MemberCode,
        header: Header,
        ledger: &mut L,
    ) -> Result<Verdict, L::Error> {
        if let Err(e) = header.verify(&self.genesis, &self.network) {
            return Ok(Verdict::Invalid(e.into()));
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

    /// A validly signed header at a height of a chain we hold: the block we hold
    /// (`duplicate`), or a second block its owner signed there, which is evidence.
    fn at_held_height<L: Ledger>(
        &mut self,
        header: Header,
        duplicate: &'static str,
        ledger: &mut L,
    ) -> Result<Verdict, L::Error> {
        let (chain, height, hash) = (header.body.chain, header.body.height, header.hash());
        let c = self.chains.get(&chain).unwrap_or_else(|| unreachable!());
        let ours = match (c.head, c.votes.get(&height)) {
            (Some(h), _) if h.height == height => Some(h.hash),
            (_, Some(v)) => Some(*v),
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
    fn block_source(&self, chain: MemberCode, from: MemberCode) -> MemberCode {
        if chain != self.me && self.peers.contains(&chain) {
            chain
        } else {
            from
        }
    }

    /// After a blocks answer: a header announced above what we now hold is fetched next.
    fn follow_announced(&mut self, now: u64, chain: MemberCode, from: MemberCode) {
        let Some(c) = self.chains.get(&chain) else { return };
        if c.frozen.is_none() && c.sync.is_none() && c.ahead.keys().next_back().is_some_and(|h| *h > c.height()) {
            let peer = self.block_source(chain, from);
            self.request_missing(now, chain, peer);
        }
    }

    /// Appends `block`, the next block of its chain, and attests it.
    fn extend<L: Ledger>(
        &mut self,
        now: Timestamp,
        from: MemberCode,
        block: Block,
        ledger: &mut L,
    ) -> Result<Verdict, L::Error> {
        let b = &block.header.body;
        let chain = b.chain;
        let c = self.chains.get(&chain).unwrap_or_else(|| unreachable!());
        let (parent, last_time) = match c.head {
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
        if let Err(e) = ledger.append(&block)? {
            return Ok(Verdict::Invalid(e));
        }
        let hash = block.header.hash();
        let height = b.height;
        let timestamp = b.timestamp;
        if chain == self.me {
            // A block of ours taken back: answers from before it (and the poll in
            // flight) may be stale.
            self.own_fresh_from = now.0 + self.config.sync_interval_ms;
        }
        let c = self.chains.get_mut(&chain).unwrap_or_else(|| unreachable!());
        c.head = Some(StoredHead {
            height,
            hash,
            timestamp,
        });
        c.ahead = c.ahead.split_off(&(height + 1));
        self.attest(chain, height, hash);
        self.after_append(chain, height, hash);
        Ok(Verdict::Accepted)
    }

    /// Records that we store (chain, height, hash) and, as a witness, votes for it, unless
    /// we voted for another block there.
    fn attest(&mut self, chain: MemberCode, height: u64, hash: BlockHash) {
        let c = self.chains.get_mut(&chain).unwrap_or_else(|| unreachable!());
        match c.votes.get(&height) {
            Some(v) if *v != hash => {
                // We stored a block at this height after voting for another: impossible
                // unless the store was replaced. Never vote twice.
                return;
            }
            Some(_) => {}
            None => {
                c.votes.insert(height, hash);
                self.outputs.push_back(Output::PersistVote {
                    chain,
                    height,
                    block: hash,
                });
            }
        }
        if !self.witness {
            return;
        }
        let att = AttestationBody {
            network: self.network,
            chain,
            height,
            block: hash,
            witness: self.me,
        }
        .sign(&self.key);
        self.outputs.push_back(Output::BroadcastAttestation(att.clone()));
        self.add_attestation(att);
    }

    /// After a block is stored: certificates that were waiting for it.
    fn after_append(&mut self, chain: MemberCode, height: u64, hash: BlockHash) {
        let c = self.chains.get_mut(&chain).unwrap_or_else(|| unreachable!());
        if c.certs.get(&height) == Some(&hash) {
            self.outputs.push_back(Output::BlockCertified {
                chain,
                height,
                block: hash,
            });
        }
        self.fold_certified(chain);
    }

    fn drain_buffer<L: Ledger>(
        &mut self,
        now: Timestamp,
        from: MemberCode,
        chain: MemberCode,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        loop {
            let c = self.chains.get_mut(&chain).unwrap_or_else(|| unreachable!());
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

    fn request_missing(&mut self, now: u64, chain: MemberCode, peer: MemberCode) {
        let max = self.config.sync_blocks_max;
        let timeout = self.config.sync_timeout_ms;
        let c = self.chains.get_mut(&chain).unwrap_or_else(|| unreachable!());
        if c.sync.is_some_and(|s| now.saturating_sub(s.since) < timeout) {
            return;
        }
        let from = c.height() + 1;
        c.sync = Some(SyncInFlight { peer, since: now });
        self.outputs.push_back(Output::RequestBlocks {
            peer,
            chain,
            from,
            to: from + max - 1,
        });
    }

    fn on_attestation(&mut self, att: Attestation) -> Verdict {
        if let Err(e) = att.verify(&self.genesis, &self.network) {
            return Verdict::Invalid(e.into());
        }
        let (chain, height) = (att.body.chain, att.body.height);
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

    /// Pools an attestation; at quorum, forms and records the certificate.
    fn add_attestation(&mut self, att: Attestation) -> bool {
        let quorum = self.genesis.quorum() as usize;
        let (chain, height, block, witness) = (att.body.chain, att.body.height, att.body.block, att.body.witness);
        let c = self.chains.get_mut(&chain).unwrap_or_else(|| unreachable!());
        if height <= c.certified || c.certs.contains_key(&height) {
            return false;
        }
        let at = c.pool.entry(height).or_default();
        if at.iter().any(|(b, w)| *b != block && w.contains_key(&witness)) {
            // The witness attested another block here: it equivocated as a witness. Its
            // second vote counts for nothing.
            return false;
        }
        let voters = at.entry(block).or_default();
        if voters.insert(witness, att).is_some() {
            return false;
        }
        if voters.len() >= quorum {
            let cert = Certificate::from_attestations(voters.values()).unwrap_or_else(|| unreachable!());
            c.pool.remove(&height);
            self.record_certificate(cert);
        }
        true
    }

    fn record_certificate(&mut self, cert: Certificate) {
        let (chain, height, block) = (cert.chain, cert.height, cert.block);
        let c = self.chains.get_mut(&chain).unwrap_or_else(|| unreachable!());
        if height <= c.certified || c.certs.contains_key(&height) {
            return;
        }
        c.certs.insert(height, block);
        c.pool.remove(&height);
        self.outputs.push_back(Output::PersistCertificate(cert));
        // Every block we store above the certified prefix carries our vote.
        match c.votes.get(&height) {
            Some(v) if *v == block => self.outputs.push_back(Output::BlockCertified { chain, height, block }),
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
            }
            None => {}
        }
        self.fold_certified(chain);
    }

    /// Advances the contiguous certified prefix over heights whose certificate is for the
    /// block we store, and forgets votes and attestations below it.
    fn fold_certified(&mut self, chain: MemberCode) {
        let c = self.chains.get_mut(&chain).unwrap_or_else(|| unreachable!());
        let head = c.height();
        while let Some(block) = c.certs.get(&(c.certified + 1)).copied() {
            let h = c.certified + 1;
            if h > head {
                break;
            }
            // The certified block must be the one we store (and voted for); a certificate
            // for another block means the owner forked and we hold the losing side.
            if c.votes.get(&h) != Some(&block) {
                break;
            }
            c.certs.remove(&h);
            c.certified = h;
        }
        let floor = c.certified + 1;
        c.votes = c.votes.split_off(&floor);
        c.pool = c.pool.split_off(&floor);
    }

    fn on_evidence(&mut self, ev: Equivocation, found_here: bool) -> Verdict {
        let (chain, _) = match ev.verify(&self.genesis, &self.network) {
            Ok(x) => x,
            Err(e) => return Verdict::Invalid(e.into()),
        };
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

    fn on_heads(&mut self, now: Timestamp, from: MemberCode, heads: &[HeadSummary]) {
        if self.genesis.merchant(self.me).is_some() && self.genesis.may_read(from, self.me) {
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
                    Some((certified, height, since))
                        if now.0.saturating_sub(since) >= self.config.sync_interval_ms
                            && (c.certified < certified || c.height() < height) =>
                    {
                        self.request_range(now.0, h.chain, view);
                    }
                    Some((certified, height, _)) if c.certified < certified || c.height() < height => {}
                    _ => c.behind = Some((h.certified, h.height, now.0)),
                }
            } else if c
                .behind
                .is_some_and(|(cert, height, _)| c.certified >= cert && c.height() >= height)
            {
                c.behind = None;
            }
        }
    }

    /// Asks a peer that is ahead for the next range: certificates we lack for blocks we
    /// hold first (certificates only, not the blocks again), then blocks above our head
    /// (with their certificates).
    fn request_range(&mut self, now: u64, chain: MemberCode, view: PeerView) {
        let max = self.config.sync_blocks_max;
        let timeout = self.config.sync_timeout_ms;
        let certs_max = self.config.sync_certificates_max;
        let c = self.chains.get_mut(&chain).unwrap_or_else(|| unreachable!());
        if c.sync.is_some_and(|s| now.saturating_sub(s.since) < timeout) {
            return;
        }
        let held_uncertified = c.height() > c.certified;
        // A certificate above our prefix for another block than the one we hold: the
        // owner forked and we hold the losing side. The certified block, asked for again,
        // turns that into evidence.
        let next = c.certified + 1;
        let forked = c.certs.get(&next).is_some_and(|b| c.votes.get(&next) != Some(b));
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
            since: now,
        });
        self.outputs.push_back(output);
    }

    fn on_blocks<L: Ledger>(
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
                let c = self.chains.get(&chain).unwrap_or_else(|| unreachable!());
                if c.frozen.is_some() || height <= c.certified || c.certs.contains_key(&height) {
                    continue;
                }
                if let Err(e) = cert.verify(&self.genesis, &self.network) {
                    return Ok(Verdict::Invalid(e.into()));
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

    fn own_height(&self) -> u64 {
        self.chains.get(&self.me).map_or(0, ChainState::height)
    }

    /// `peer` says it holds our chain up to `height`. Above our head, its block at our
    /// next height is asked for before the claim is believed: a claim alone could be a
    /// lie, a block signed by our key cannot.
    fn own_claimed(&mut self, now: u64, peer: MemberCode, height: u64) {
        if self.own_liars.contains(&peer) {
            return;
        }
        self.own_claims.insert(peer, (height, now));
        let ours = self.own_height();
        let since = match self.own {
            OwnChain::Waiting { since } => since.unwrap_or(now),
            OwnChain::Clear => now,
            OwnChain::Recovering { .. } => return self.own_release_if_ready(now),
            OwnChain::Checking { .. } | OwnChain::Behind => return,
        };
        if height > ours {
            self.own = OwnChain::Checking {
                peer,
                asked: now,
                since,
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
    fn own_blocks_shown(
        &mut self,
        now: u64,
        from: MemberCode,
        blocks: &[(Block, Option<Certificate>)],
    ) -> Option<Verdict> {
        let OwnChain::Checking { since, .. } = self.own else {
            return None;
        };
        let ours = self.own_height();
        if blocks.first().is_some_and(|(b, _)| b.header.body.height <= ours) {
            return None; // heights we hold: not an answer to the check
        }
        let shown = blocks.first().is_some_and(|(b, _)| {
            b.header.body.height == ours + 1
                && b.header.body.chain == self.me
                && b.header.verify(&self.genesis, &self.network).is_ok()
        });
        if shown {
            self.own = OwnChain::Recovering { since };
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
        self.own = OwnChain::Waiting { since: Some(since) };
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
    fn own_release_if_ready(&mut self, now: u64) {
        let since = match self.own {
            OwnChain::Waiting { since } => since.unwrap_or(now),
            OwnChain::Recovering { since } => since,
            OwnChain::Checking { .. } | OwnChain::Clear | OwnChain::Behind => return,
        };
        let witnesses = self.genesis.with_role(Role::Witness).count();
        let others = witnesses - usize::from(self.witness);
        let need = (witnesses + 1)
            .saturating_sub(self.genesis.quorum() as usize)
            .min(others);
        let fresh = |p: &MemberCode| self.own_claims.get(p).is_some_and(|(_, at)| *at >= self.own_fresh_from);
        let heard = self
            .own_claims
            .keys()
            .filter(|p| fresh(p) && self.genesis.witness(**p).is_some());
        let answered = heard.count() >= need.max(1);
        let everyone = self
            .peers
            .iter()
            .filter(|p| self.genesis.may_read(**p, self.me))
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

    /// A sync answer from `from` arrived for `chain`: the request is no longer in
    /// flight. False for a chain that is not in genesis.
    fn answered(&mut self, from: MemberCode, chain: MemberCode) -> bool {
        let Some(c) = self.chains.get_mut(&chain) else {
            return false;
        };
        if c.sync.is_some_and(|s| s.peer == from) {
            c.sync = None;
        }
        true
    }

    /// After a useful sync answer, ask for the next range while a peer is ahead.
    fn continue_sync(&mut self, now: Timestamp, chain: MemberCode, verdict: &Verdict) {
        let c = self.chains.get(&chain).unwrap_or_else(|| unreachable!());
        if c.frozen.is_none() && *verdict == Verdict::Accepted {
            if let Some(view) = c.best {
                self.request_range(now.0, chain, view);
            }
        }
    }

    fn on_certificates(
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
            let c = self.chains.get(&chain).unwrap_or_else(|| unreachable!());
            if c.frozen.is_some() || cert.height <= c.certified || c.certs.contains_key(&cert.height) {
                continue;
            }
            if let Err(e) = cert.verify(&self.genesis, &self.network) {
                return Verdict::Invalid(e.into());
            }
            self.record_certificate(cert);
            verdict = Verdict::Accepted;
        }
        self.continue_sync(now, chain, &verdict);
        verdict
    }

    /// Our own block, already stored by the producer: nothing to write here.
    fn on_own_block(&mut self, block: Block) -> Verdict {
        let b = &block.header.body;
        let (chain, height) = (b.chain, b.height);
        assert_eq!(chain, self.me, "own blocks are on our own chain");
        let hash = block.header.hash();
        let c = self.chains.get_mut(&chain).unwrap_or_else(|| unreachable!());
        assert_eq!(height, c.height() + 1, "own blocks extend our head");
        c.head = Some(StoredHead {
            height,
            hash,
            timestamp: b.timestamp,
        });
        let entitled: Vec<MemberCode> = self
            .peers
            .iter()
            .copied()
            .filter(|p| self.genesis.may_read(*p, self.me))
            .collect();
        self.outputs.push_back(Output::AnnounceHeader(block.header.clone()));
        for peer in entitled {
            self.outputs.push_back(Output::SendBlock {
                peer,
                block: block.clone(),
            });
        }
        self.attest(chain, height, hash);
        self.after_append(chain, height, hash);
        Verdict::Accepted
    }

    fn on_tick(&mut self, now: Timestamp) {
        let now = now.0;
        match self.own {
            // A checked peer that does not answer loses its claim; the wait goes on.
            OwnChain::Checking { peer, asked, since } if now.saturating_sub(asked) >= self.config.sync_timeout_ms => {
                self.own_claims.remove(&peer);
                self.own = OwnChain::Waiting { since: Some(since) };
                self.own_release_if_ready(now);
            }
            OwnChain::Waiting { .. } | OwnChain::Recovering { .. } => self.own_release_if_ready(now),
            _ => {}
        }
        if now.saturating_sub(self.last_heads_poll) >= self.config.sync_interval_ms {
            self.last_heads_poll = now;
            for peer in &self.peers {
                self.outputs.push_back(Output::RequestHeads { peer: *peer });
            }
        }
        for c in self.chains.values_mut() {
            if c.sync
                .is_some_and(|s| now.saturating_sub(s.since) >= self.config.sync_timeout_ms)
            {
                c.sync = None;
            }
        }
        if now.saturating_sub(self.last_resend) >= self.config.resend_interval_ms {
            self.last_resend = now;
            let mut again = Vec::new();
            for (chain, c) in &self.chains {
                if let Some(ev) = &c.frozen {
                    self.outputs.push_back(Output::BroadcastEvidence(ev.clone()));
                    continue;
                }
                for (height, block) in c.votes.iter().take(self.config.resend_heights_max as usize) {
                    if c.certs.contains_key(height) {
                        continue;
                    }
                    again.push(
                        AttestationBody {
                            network: self.network,
                            chain: *chain,
                            height: *height,
                            block: *block,
                            witness: self.me,
                        }
                        .sign(&self.key),
                    );
                }
            }
            self.outputs.extend(again.into_iter().map(Output::BroadcastAttestation));
        }
    }
}
