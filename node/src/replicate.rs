//! The replication loop: wires the sans-IO state machine (`fapiao-chain`) to the store,
//! the engine and the libp2p transport (`fapiao-net`). One thread owns the replica; every
//! input reaches it through one bounded channel; outputs are performed in order (a vote
//! is durable before its attestation is published).

use anyhow::{Context, Result};
use fapiao_chain::{reexecute, Config, Input, Invalid, Ledger, Output, Persisted, Replica, Signatures, Verdict};
use fapiao_core::sig::Cores;
use fapiao_core::{Block, Genesis, Header, MemberCode, SecretKey, Timestamp};
use fapiao_engine::{ChainReplication, Engine, ReplicationStatus};
use fapiao_net::{Command, Gossip, Net, NetEvent, Request, Response, Validation};
use fapiao_store::{BlockCommit, PreparedState, Store, StoreError};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Inputs queued for the replication thread.
const INBOX_MAX: usize = 4_096;
/// How often the state machine's clock ticks.
const TICK_MS: u64 = 100;
// A bounded queue of plain values (see fapiao-net's NetEvent): sized for its largest.
#[allow(clippy::large_enum_variant)]
enum Inbox {
    Net(NetEvent),
    OwnBlock(Block),
}

/// The store as the state machine's ledger: re-execute, then one atomic commit with our
/// vote.
struct StoreLedger {
    store: Arc<Store>,
    genesis: Arc<Genesis>,
    /// For blocks of our own chain taken back from peers (they leave the pending set).
    engine: Engine,
    /// Blocks appended (for the metrics).
    blocks: u64,
}

impl Ledger for StoreLedger {
    type Error = StoreError;

    fn header(&self, chain: MemberCode, height: u64) -> Result<Option<Header>, StoreError> {
        self.store.header(chain, height)
    }

    fn block(&self, chain: MemberCode, height: u64) -> Result<Option<Block>, StoreError> {
        self.store.block(chain, height)
    }

    fn append(&mut self, block: &Block, config: &fapiao_core::Config) -> Result<Result<(), Invalid>, StoreError> {
        let chain = block.header.body.chain;
        let view = self.store.state(chain);
        let done = match reexecute(&self.genesis, config, block, &view, Signatures::Verify, Cores::All) {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Ok(Err(e)),
            Err(e) => return Err(StoreError::from_read(e, chain)),
        };
        let prepared = PreparedState::new(chain, done);
        self.blocks += 1;
        if chain == self.engine.chain() {
            self.engine.adopt_own_block(block, &prepared)?;
            return Ok(Ok(()));
        }
        self.store.commit_block(&BlockCommit {
            block,
            state: &prepared,
            pending_done: &[],
            rejected: &[],
            vote: Some(block.header.hash()),
            certificate: None,
        })?;
        Ok(Ok(()))
    }
}

/// What the replica needs from disk to resume ([`fapiao_chain::disk::load`]); records
/// each chain's certified prefix so the next start reads only above it.
fn persisted(store: &Store, genesis: &Genesis) -> Result<Persisted> {
    let p = fapiao_chain::disk::load(store, genesis, fapiao_chain::disk::LoadLimits::default())?;
    for (chain, certified) in &p.certified {
        store.set_certified_prefix(*chain, *certified)?;
    }
    Ok(p)
}

fn now() -> Timestamp {
    crate::now()
}

/// Starts replication for the node whose engine is `engine`. Returns a flag that turns
/// true if the loop dies (the node must then stop).
pub(crate) fn start(engine: &Engine, key: SecretKey, net: Net) -> Result<Arc<AtomicBool>> {
    let store = engine.store_handle();
    let genesis = Arc::new(engine.genesis().clone());
    let me = engine.chain();
    let replica = Replica::new(
        Config::default(),
        (*genesis).clone(),
        me,
        key,
        persisted(&store, &genesis)?,
    );
    let (tx, rx) = sync_channel::<Inbox>(INBOX_MAX);
    let own = tx.clone();
    engine.set_block_hook(Box::new(move |b: &Block| {
        let _ = own.send(Inbox::OwnBlock(b.clone()));
    }));
    let Net {
        commands,
        events,
        stats,
        ..
    } = net;
    forward(events, tx)?;
    let failed = Arc::new(AtomicBool::new(false));
    let flag = failed.clone();
    let engine = engine.clone();
    std::thread::Builder::new()
        .name("replication".into())
        .spawn(move || {
            let mut r = Loop {
                replica,
                ledger: StoreLedger {
                    store,
                    genesis,
                    engine: engine.clone(),
                    blocks: 0,
                },
                commands,
                engine,
                peer_heights: BTreeMap::new(),
                penalised: BTreeMap::new(),
                stats,
            };
            if let Err(e) = r.run(rx) {
                tracing::error!(error = %e, "replication stopped; the node must stop");
                flag.store(true, Ordering::SeqCst);
            }
        })
        .context("starting the replication thread")?;
    Ok(failed)
}

fn forward(events: Receiver<NetEvent>, tx: SyncSender<Inbox>) -> Result<()> {
    std::thread::Builder::new()
        .name("net-events".into())
        .spawn(move || {
            for ev in events {
                if tx.send(Inbox::Net(ev)).is_err() {
                    return;
                }
            }
        })
        .context("starting the network event thread")?;
    Ok(())
}

/// Inputs that cost little to handle and that other chains' progress may wait on:
/// gossip, and peers coming and going (see [`Schedule`]).
fn is_light(item: &Inbox) -> bool {
    matches!(
        item,
        Inbox::Net(NetEvent::Gossip { .. } | NetEvent::Connected(_) | NetEvent::Disconnected(_))
    )
}

struct Loop {
    replica: Replica,
    ledger: StoreLedger,
    commands: tokio::sync::mpsc::Sender<Command>,
    engine: Engine,
    /// The heights each connected peer last claimed per chain: (peer, chain) → height.
    peer_heights: BTreeMap<(MemberCode, MemberCode), u64>,
    /// When we last penalised each member. Gossip it sent before that is dropped unjudged:
    /// a hostile peer's backlog must not cost one re-execution per message after its ban.
    penalised: BTreeMap<MemberCode, Instant>,
    stats: Arc<fapiao_net::NetStats>,
}

/// The order the replication loop takes its inputs in: in turn, except that light inputs
/// (gossip: attestations, headers, evidence; peers coming and going) overtake heavy ones
/// (blocks, sync traffic) queued before them. One block's re-execution takes tens of
/// milliseconds, an attestation's check tens of microseconds, and a chain certifies one
/// block per round of attestations, so an attestation waiting behind other chains' blocks
/// slows every chain. The replica takes inputs in any order (the network gives no order
/// either).
///
/// Bounds, so that a member flooding gossip gains nothing: each round takes at most `max`
/// inputs off the queue before the next heavy one, and holds at most `max` heavy ones
/// aside (then it stops reading, and the bounded queue pushes back on the transport). A
/// heavy input is therefore taken after no more inputs than were queued ahead of it, plus
/// at most `max` light ones that arrived after it.
struct Schedule<T> {
    heavy: VecDeque<T>,
    is_light: fn(&T) -> bool,
    max: usize,
}

impl<T> Schedule<T> {
    fn new(is_light: fn(&T) -> bool, max: usize) -> Self {
        Schedule {
            heavy: VecDeque::new(),
            is_light,
            max,
        }
    }

    /// One round: waits up to `wait` for an input when none is held, then hands `take`
    /// every light input already queued (at most `max` inputs read) and the oldest heavy
    /// one. Returns false once the queue is closed.
    fn round<E>(
        &mut self,
        rx: &Receiver<T>,
        wait: Duration,
        mut take: impl FnMut(T) -> Result<(), E>,
    ) -> Result<bool, E> {
        let next = if self.heavy.is_empty() {
            rx.recv_timeout(wait)
        } else {
            rx.try_recv().map_err(|e| match e {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        };
        match next {
            Ok(first) => {
                let mut item = Some(first);
                let mut read = 0;
                while let Some(i) = item {
                    if (self.is_light)(&i) {
                        take(i)?;
                    } else {
                        self.heavy.push_back(i);
                    }
                    read += 1;
                    item = if read < self.max && self.heavy.len() < self.max {
                        rx.try_recv().ok()
                    } else {
                        None
                    };
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(false),
        }
        if let Some(item) = self.heavy.pop_front() {
            take(item)?;
        }
        Ok(true)
    }
}

impl Loop {
    /// Takes inputs in the [`Schedule`]'s order, and ticks the state machine's clock.
    fn run(&mut self, rx: Receiver<Inbox>) -> Result<()> {
        let tick = Duration::from_millis(TICK_MS);
        let mut last_tick = std::time::Instant::now();
        let mut schedule = Schedule::new(is_light, INBOX_MAX);
        while schedule.round(&rx, tick, |item| self.take(item))? {
            if last_tick.elapsed() >= tick {
                last_tick = std::time::Instant::now();
                self.feed(Input::Tick)?;
                self.publish_status();
            }
        }
        Ok(())
    }

    fn take(&mut self, item: Inbox) -> Result<()> {
        match item {
            Inbox::OwnBlock(b) => self.feed(Input::OwnBlock(b)),
            Inbox::Net(ev) => self.net_event(ev),
        }
    }

    /// Has the transport disconnect and ban `member` for a while: its sync answer was
    /// invalid.
    fn penalise(&mut self, member: MemberCode, reason: String) {
        tracing::warn!(%member, %reason, "invalid sync answer");
        self.penalised.insert(member, Instant::now());
        self.send(Command::Penalise(member, reason));
    }

    fn send(&self, c: Command) {
        // Blocking is fine: this is a plain thread and the transport drains commands.
        if self.commands.blocking_send(c).is_err() {
            tracing::warn!("the transport has stopped");
        }
    }

    /// Handles an input whose verdict has no consequence (our own block, time, peers,
    /// heads: none of these can be invalid in a way a peer is penalised for).
    fn feed(&mut self, input: Input) -> Result<()> {
        match self.handle(input)? {
            Verdict::Accepted | Verdict::Ignored(_) => {}
            Verdict::Invalid(e) => tracing::warn!(error = %e, "input refused"),
        }
        Ok(())
    }

    fn handle(&mut self, input: Input) -> Result<Verdict> {
        let verdict = self
            .replica
            .handle(now(), input, &mut self.ledger)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        while let Some(o) = self.replica.poll_output() {
            self.perform(o)?;
        }
        Ok(verdict)
    }

    fn perform(&mut self, o: Output) -> Result<()> {
        let store = &self.ledger.store;
        match o {
            Output::AnnounceHeader(h) => self.send(Command::Publish(Gossip::Header(h))),
            Output::SendBlock { peer, block } => self.send(Command::Deliver(peer, block)),
            Output::BroadcastAttestation(a) => self.send(Command::Publish(Gossip::Attestation(a))),
            Output::BroadcastEvidence(e) => self.send(Command::Publish(Gossip::Evidence(e))),
            Output::RequestHeads { peer } => self.send(Command::Request(peer, Request::Heads)),
            Output::RequestBlocks { peer, chain, from, to } => {
                self.send(Command::Request(peer, Request::Blocks { chain, from, to }))
            }
            Output::RequestCertificates { peer, chain, from, to } => {
                self.send(Command::Request(peer, Request::Certificates { chain, from, to }))
            }
            Output::PersistVote { chain, height, block } => {
                if store.vote(chain, height)? != Some(block) {
                    store.put_vote(chain, height, block)?;
                }
            }
            Output::PersistCertificate(cert) => store.put_certificate(&cert)?,
            Output::BlockCertified { chain, height, .. } => {
                if chain == self.engine.chain() {
                    self.engine.own_certified(height);
                }
                tracing::debug!(%chain, height, "block certified");
            }
            Output::HoldProduction { reason, refuse_writes } => self.engine.hold_production(reason, refuse_writes),
            Output::ReleaseProduction { why } => {
                tracing::info!(%why, "producing");
                self.engine.release_production();
            }
            Output::EpochStarted(config) => {
                tracing::info!(
                    epoch = config.epoch(),
                    members = config.members().len(),
                    quorum = config.quorum(),
                    "a certified configuration change started a new epoch"
                );
                self.engine.set_epochs(self.replica.epochs().clone());
                self.send(Command::Members(Box::new(config)));
            }
            Output::ChainReset {
                chain,
                height,
                epoch,
                set_aside,
                certified_voided,
            } => self.chain_reset(chain, height, epoch, set_aside, certified_voided)?,
            Output::EvidenceFound(ev) => {
                tracing::error!(
                    chain = %ev.first.body.chain,
                    height = ev.first.body.height,
                    "equivocation: two blocks signed for one height; the chain is frozen here"
                );
                store.put_evidence(&ev)?;
            }
        }
        Ok(())
    }

    /// Performs [`Output::ChainReset`]: our copy of `chain` above `height` (blocks, when
    /// `set_aside`, and any certificate or vote) is set aside, and its evidence goes on
    /// record. Our own chain waits for the next start, under the successor key: the
    /// producer may hold a block of it in flight now.
    fn chain_reset(&self, chain: MemberCode, height: u64, epoch: u32, set_aside: bool, voided: u64) -> Result<()> {
        let store = &self.ledger.store;
        let own = chain == self.engine.chain();
        if voided > 0 {
            tracing::error!(
                %chain,
                kept = height,
                certified_voided = voided,
                "a chain reset named a height below blocks this node held certified: they are set aside too{}",
                if own { " (this node's own chain: at its next start)" } else { "" }
            );
        }
        if !own {
            let blocks = store.set_aside(self.engine.genesis(), self.replica.epochs(), chain, height)?;
            if set_aside || !blocks.is_empty() {
                tracing::warn!(%chain, kept = height, epoch, set_aside = blocks.len(), "chain reset: blocks set aside");
            }
        }
        store.supersede_evidence(chain, epoch)?;
        tracing::info!(%chain, kept = height, epoch, "chain reset: the chain resumes under a successor key");
        Ok(())
    }

    // Long: one arm per transport event.
    fn net_event(&mut self, ev: NetEvent) -> Result<()> {
        match ev {
            NetEvent::Connected(m) => self.feed(Input::PeerConnected(m))?,
            NetEvent::Disconnected(m) => {
                self.peer_heights.retain(|(p, _), _| *p != m);
                self.feed(Input::PeerGone(m))?;
            }
            NetEvent::Gossip { from, token, gossip } => {
                if self.penalised.get(&from).is_some_and(|t| token.received() <= *t) {
                    self.send(Command::Validate(token, Validation::Ignore));
                    return Ok(());
                }
                let input = match gossip {
                    Gossip::Header(header) => Input::Header { from, header },
                    Gossip::Attestation(attestation) => Input::Attestation { from, attestation },
                    Gossip::Evidence(evidence) => Input::Evidence { from, evidence },
                };
                let v = match self.handle(input)? {
                    Verdict::Accepted => Validation::Accept,
                    Verdict::Ignored(_) => Validation::Ignore,
                    Verdict::Invalid(e) => {
                        tracing::warn!(member = %from, error = %e, "invalid gossip");
                        self.penalised.insert(from, Instant::now());
                        Validation::Reject
                    }
                };
                self.send(Command::Validate(token, v));
            }
            NetEvent::Block { from, block, budget } => {
                // A block delivered by its owner.
                if let Verdict::Invalid(e) = self.handle(Input::Block { from, block })? {
                    self.penalise(from, e.to_string());
                }
                drop(budget);
            }
            NetEvent::Request { from, token, request } => {
                let response = self.answer(from, &request).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot answer a sync request");
                    Response::Unavailable
                });
                self.send(Command::Respond(token, response));
            }
            NetEvent::Response {
                from,
                request,
                response,
            } => match (request, response) {
                (_, Response::Unavailable) => {}
                (Request::Blocks { chain, .. }, Response::NotEntitled) => {
                    // An honest replica asks only for chains it may read.
                    tracing::warn!(peer = %from, %chain, "refused blocks of a chain this member may not read");
                }
                (Request::Heads, Response::Heads(heads)) => {
                    if let Err(e) = fapiao_chain::sync::check_heads(&heads) {
                        self.penalise(from, e);
                        return Ok(());
                    }
                    for h in &heads {
                        self.peer_heights.insert((from, h.chain), h.height);
                    }
                    self.feed(Input::Heads { from, heads })?;
                }
                (Request::Blocks { chain, from: lo, .. }, Response::Blocks(blocks)) => {
                    self.take_blocks(from, chain, lo, blocks)?;
                }
                (
                    Request::Certificates {
                        chain,
                        from: lo,
                        to: hi,
                    },
                    Response::Certificates(certificates),
                ) => {
                    let verdict = match fapiao_chain::sync::check_certificates(chain, (lo, hi), &certificates) {
                        Ok(()) => self.handle(Input::Certificates {
                            from,
                            chain,
                            certificates,
                        })?,
                        Err(e) => Verdict::Invalid(Invalid::Link(e)),
                    };
                    if let Verdict::Invalid(e) = verdict {
                        self.penalise(from, e.to_string());
                    }
                }
                (_, _) => self.penalise(from, "answer does not match the request".into()),
            },
        }
        Ok(())
    }

    /// Answers a sync request from member `asker`. Blocks go only to a member that may
    /// read the chain (its owner, a witness, a tax office): the rule is enforced here, by
    /// the sender. Heads and certificates hold no business data and go to any member.
    fn answer(&self, asker: MemberCode, request: &Request) -> Result<Response, StoreError> {
        match request {
            Request::Heads => Ok(Response::Heads(self.replica.heads())),
            Request::Blocks { chain, from, to } => {
                let read = &*self.ledger.store;
                // Twice the largest block: the transport's frame holds at least that much
                // (asserted in fapiao-net's configuration).
                let bytes_max = self.engine.config().block_bytes_max * 2;
                let config = self.replica.config();
                let blocks = fapiao_chain::sync::answer_blocks(
                    read,
                    self.replica.epochs().latest(),
                    config,
                    asker,
                    (*chain, *from, *to),
                    bytes_max,
                )?;
                Ok(blocks.map_or_else(
                    || {
                        tracing::warn!(member = %asker, %chain, "asked for blocks of a chain it may not read");
                        Response::NotEntitled
                    },
                    Response::Blocks,
                ))
            }
            Request::Certificates { chain, from, to } => {
                let read = &*self.ledger.store;
                let config = self.replica.config();
                Ok(Response::Certificates(fapiao_chain::sync::answer_certificates(
                    read,
                    config,
                    (*chain, *from, *to),
                )?))
            }
        }
    }

    /// A sync answer of blocks for `chain`, checked and handed to the state machine.
    fn take_blocks(
        &mut self,
        from: MemberCode,
        chain: MemberCode,
        lo: u64,
        blocks: Vec<(Block, Option<fapiao_core::Certificate>)>,
    ) -> Result<()> {
        let claimed = self.peer_heights.get(&(from, chain)).copied();
        let verdict = match fapiao_chain::sync::check_blocks(chain, lo, &blocks, claimed) {
            Ok(()) => self.handle(Input::Blocks { from, chain, blocks })?,
            Err(e) => Verdict::Invalid(Invalid::Link(e)),
        };
        if let Verdict::Invalid(e) = verdict {
            self.penalise(from, e.to_string());
        }
        Ok(())
    }

    fn publish_status(&self) {
        let m = self.engine.metrics();
        m.peer_refused
            .store(self.stats.refused.load(Ordering::Relaxed), Ordering::Relaxed);
        m.peer_penalties
            .store(self.stats.penalties.load(Ordering::Relaxed), Ordering::Relaxed);
        m.gossip_dropped
            .store(self.stats.gossip_dropped.load(Ordering::Relaxed), Ordering::Relaxed);
        m.blocks_replicated.store(self.ledger.blocks, Ordering::Relaxed);
        let peers = self.replica.peers().iter().copied().collect();
        let chains = self
            .replica
            .heads()
            .into_iter()
            .map(|h| ChainReplication {
                chain: h.chain,
                height: h.height,
                certified: h.certified,
                frozen: h.frozen,
                peer_height: self
                    .peer_heights
                    .iter()
                    .filter(|((_, c), _)| *c == h.chain)
                    .map(|(_, v)| *v)
                    .max()
                    .unwrap_or(0),
            })
            .collect();
        self.engine.set_replication(ReplicationStatus { peers, chains });
    }
}

#[cfg(test)]
mod tests {
    use super::Schedule;
    use std::convert::Infallible;
    use std::sync::mpsc::sync_channel;
    use std::time::Duration;

    /// A light input (gossip) or a heavy one (a block), numbered in the order queued.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Item {
        Gossip(usize),
        Block(usize),
    }

    fn light(i: &Item) -> bool {
        matches!(i, Item::Gossip(_))
    }

    /// Queues `items` and returns the order the schedule takes them in, and how many
    /// heavy inputs it held aside at most once a round had taken its heavy one.
    fn taken(items: &[Item], max: usize) -> (Vec<Item>, usize) {
        let (tx, rx) = sync_channel(items.len());
        for i in items {
            tx.send(*i).unwrap();
        }
        let mut schedule = Schedule::new(light, max);
        let mut order = Vec::new();
        let mut held = 0;
        for _ in 0..2 * items.len() {
            let open = schedule
                .round::<Infallible>(&rx, Duration::from_millis(1), |i| {
                    order.push(i);
                    Ok(())
                })
                .unwrap();
            assert!(open);
            held = held.max(schedule.heavy.len());
            if order.len() == items.len() {
                break;
            }
        }
        drop(tx);
        (order, held)
    }

    #[test]
    fn gossip_queued_behind_blocks_is_taken_before_them() {
        let items = [
            Item::Block(0),
            Item::Block(1),
            Item::Gossip(2),
            Item::Block(3),
            Item::Gossip(4),
        ];
        let (order, _) = taken(&items, 16);
        assert_eq!(
            order,
            [
                Item::Gossip(2),
                Item::Gossip(4),
                Item::Block(0),
                Item::Block(1),
                Item::Block(3)
            ]
        );
    }

    #[test]
    fn a_gossip_flood_delays_a_block_no_more_than_a_queue_in_turn_would() {
        let max = 64;
        // A member floods gossip: ten queues' worth, with a block after every queue's worth
        // and a half, and more gossip after each block.
        let mut items = Vec::new();
        for n in 0..10 * max {
            items.push(Item::Gossip(items.len()));
            if n % (max + max / 2) == max + max / 2 - 1 {
                items.push(Item::Block(items.len()));
            }
        }
        let blocks = items.iter().filter(|i| !light(i)).count();
        assert!(blocks >= 6);
        let (order, held) = taken(&items, max);
        assert_eq!(order.len(), items.len(), "every input is taken once");
        assert!(held < max, "held {held} blocks aside");
        for (at, item) in order.iter().enumerate() {
            if let Item::Block(queued) = *item {
                // Taken after no more inputs than were queued ahead of it, plus at most
                // one round's worth of gossip that arrived after it.
                assert!(at <= queued + max, "block queued at {queued} taken at {at}");
            }
        }
        // Blocks keep their order among themselves.
        let block_order: Vec<_> = order.iter().filter(|i| !light(i)).collect();
        let queued_order: Vec<_> = items.iter().filter(|i| !light(i)).collect();
        assert_eq!(block_order, queued_order);
    }

    #[test]
    fn a_queue_of_blocks_is_held_aside_at_most_max_at_a_time() {
        let max = 8;
        let items: Vec<_> = (0..5 * max).map(Item::Block).collect();
        let (order, held) = taken(&items, max);
        assert_eq!(order, items);
        assert!(held < max, "held {held}");
    }
}
