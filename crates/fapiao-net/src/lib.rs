//! Fapiao's peer-to-peer transport: libp2p over TCP with noise and yamux, identify,
//! gossipsub (one topic per network for block headers, attestations and evidence), a
//! request-response sync protocol, and a request-response delivery protocol by which a
//! chain's owner hands its new block to the members that may read it (blocks are never
//! gossiped: gossip reaches every member). Only genesis members may connect: the libp2p identity
//! is the member's ed25519 key, and every other peer is refused once its key is known.
//!
//! Architecture invariant: this crate moves bytes and enforces peer admission and
//! message limits; it does not judge blocks. The host validates each gossiped object and
//! reports back ([`Command::Validate`]), so nothing is forwarded before it was checked,
//! and a peer that sent invalid data is disconnected and banned for a while. Every
//! queue on the path from a peer is bounded; when the host falls behind, gossip is
//! dropped (sync recovers it) rather than buffered.

mod codec;
pub mod hostile;
pub mod wire;

use fapiao_core::{codec as canonical, Block, Config, Genesis, MemberCode, PublicKey, SecretKey};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId};
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{allow_block_list, identify, identity, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
pub use wire::{Gossip, HeadSummary, Request, Response};

/// The sync protocol name.
pub const SYNC_PROTOCOL: &str = "/fapiao/sync/1";
/// The block delivery protocol name.
pub const DELIVER_PROTOCOL: &str = "/fapiao/deliver/1";

/// Every bound of the transport, unit last.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Addresses to listen on (multiaddr text).
    pub listen: Vec<String>,
    /// How often members we are not connected to are dialled.
    pub dial_interval_ms: u64,
    /// Largest gossip message. Gossip carries headers, attestations and evidence (two
    /// headers), each well under a kilobyte; blocks go by sync only.
    pub gossip_bytes_max: usize,
    /// Largest sync request or response frame.
    pub sync_frame_bytes_max: usize,
    /// An unanswered sync request fails after this long.
    pub sync_timeout_ms: u64,
    /// Events queued for the host before gossip is dropped.
    pub events_max: usize,
    /// Encoded bytes of gossip and delivered blocks handed to the host and not yet
    /// judged; above it they are dropped as when the queue is full. The event queue
    /// bounds a count of messages; this bounds their memory.
    pub events_bytes_max: usize,
    /// Largest delivered block frame: the largest block plus room for its framing.
    pub deliver_frame_bytes_max: usize,
    /// Commands queued from the host.
    pub commands_max: usize,
    /// Inbound sync requests awaiting the host's answer.
    pub inbound_requests_max: usize,
    /// Of those, from one peer: one peer cannot take every slot from the others.
    pub peer_inbound_requests_max: usize,
    /// Encoded bytes of our answers a peer has not finished reading; an answer that would
    /// go above it is replaced by `Unavailable` until the peer reads (one answer always
    /// goes). A peer that asks and never reads must not hold our memory.
    pub peer_responses_bytes_max: usize,
    /// Open connections per peer (two when both sides dial at once); more are closed.
    pub peer_connections_max: u32,
    /// How long a peer that sent invalid data stays disconnected.
    pub ban_ms: u64,
    /// How long a member that a new epoch removed stays connected before it is
    /// disconnected and refused: meanwhile it still receives gossip, so the attestations
    /// that certify its removal reach it and its node learns that it left (its own
    /// messages are refused at once).
    pub leave_grace_ms: u64,
}

impl NetConfig {
    /// The defaults, listening on `listen`, for blocks of at most `block_bytes_max`.
    pub fn new(listen: Vec<String>, block_bytes_max: usize) -> NetConfig {
        // A frame is decoded in one piece, so it can be no larger than a decode allows.
        let sync_frame_bytes_max = (4 * block_bytes_max + 64 * 1024).min(canonical::DECODE_BYTES_MAX);
        NetConfig {
            listen,
            dial_interval_ms: 1_000,
            gossip_bytes_max: 16 * 1024,
            sync_frame_bytes_max,
            sync_timeout_ms: 20_000,
            events_max: 8_192,
            events_bytes_max: 16 * block_bytes_max,
            deliver_frame_bytes_max: block_bytes_max + 64 * 1024,
            commands_max: 8_192,
            inbound_requests_max: 256,
            peer_inbound_requests_max: 32,
            peer_responses_bytes_max: 2 * sync_frame_bytes_max,
            peer_connections_max: 2,
            ban_ms: 60_000,
            leave_grace_ms: 5_000,
        }
    }
}

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The node's own member is not in genesis, or its key does not match.
    #[error("member {0} is not in genesis with this key")]
    NotAMember(MemberCode),
    /// A key could not be turned into a libp2p identity.
    #[error("key: {0}")]
    Key(String),
    /// An address does not parse.
    #[error("address {address}: {message}")]
    Address {
        /// The address.
        address: String,
        /// Why.
        message: String,
    },
    /// The swarm could not be built or could not listen.
    #[error("transport: {0}")]
    Transport(String),
}

/// Identifies a gossip message for [`Command::Validate`]. While a token lives, its
/// message's bytes count against `events_bytes_max`.
#[derive(Debug, Clone)]
pub struct GossipToken {
    id: MessageId,
    source: PeerId,
    received: Instant,
    _charge: Arc<Charge>,
}

impl GossipToken {
    /// When the transport received the message. A host that penalised the sender after
    /// this can drop the message unjudged: it was sent before the ban.
    pub fn received(&self) -> Instant {
        self.received
    }
}

/// Bytes counted against a budget until dropped.
#[derive(Debug)]
struct Charge {
    bytes: usize,
    budget: Arc<AtomicUsize>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Held by the host while it judges a delivered block: until dropped, the block's bytes
/// count against `events_bytes_max`.
#[derive(Debug)]
pub struct Budget(#[allow(dead_code)] Charge);

/// Identifies an inbound sync request for [`Command::Respond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestToken(u64);

/// What the transport tells the host.
// Sized for the largest variant on purpose: events go through a bounded queue of at
// most `events_max` slots (8192 × ~0.5 KiB), and boxing would allocate per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum NetEvent {
    /// A member's node connected.
    Connected(MemberCode),
    /// A member's node's last connection closed.
    Disconnected(MemberCode),
    /// A gossiped object, decoded but not validated. Answer with [`Command::Validate`].
    Gossip {
        /// The member whose node forwarded it.
        from: MemberCode,
        /// For the validation answer.
        token: GossipToken,
        /// The object.
        gossip: Gossip,
    },
    /// A block delivered by `from`, decoded but not validated (the transport has already
    /// acknowledged its receipt). Penalise the member if it is invalid.
    Block {
        /// The member that delivered it.
        from: MemberCode,
        /// The block.
        block: Block,
        /// Drop when judged.
        budget: Budget,
    },
    /// A member asks for sync data. Answer with [`Command::Respond`].
    Request {
        /// The member.
        from: MemberCode,
        /// For the answer.
        token: RequestToken,
        /// What it asks.
        request: Request,
    },
    /// The answer to one of our requests.
    Response {
        /// The member that answered.
        from: MemberCode,
        /// What we asked.
        request: Request,
        /// Its answer.
        response: Response,
    },
}

/// How the host judged a gossiped object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Valid: forward it.
    Accept,
    /// Valid but not useful (duplicate, old): do not forward, no penalty.
    Ignore,
    /// Invalid: do not forward; penalise and disconnect the peer that sent it.
    Reject,
}

/// What the host tells the transport.
// As for `NetEvent`: a bounded queue of plain values.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Command {
    /// Publish to the object's topic.
    Publish(Gossip),
    /// The verdict on a gossiped object.
    Validate(GossipToken, Validation),
    /// Answer an inbound sync request.
    Respond(RequestToken, Response),
    /// Send a sync request.
    Request(MemberCode, Request),
    /// Deliver a block of our own chain to a member (that may read it).
    Deliver(MemberCode, Block),
    /// Disconnect and ban a member's node for a while (it sent invalid sync data).
    Penalise(MemberCode, String),
    /// A new epoch: admit exactly this configuration's members (a member that left is
    /// disconnected and refused from now on; one that joined is dialled).
    Members(Box<Config>),
}

/// Counters the host can show.
#[derive(Debug, Default)]
pub struct NetStats {
    /// Gossip messages received.
    pub gossip_in: AtomicU64,
    /// Gossip messages dropped because the host's queue was full.
    pub gossip_dropped: AtomicU64,
    /// Peers penalised for invalid data.
    pub penalties: AtomicU64,
    /// Connections refused because the peer is not a member (or is banned), or closed
    /// because the peer had too many.
    pub refused: AtomicU64,
    /// Sync requests answered `Unavailable` because a bound was reached.
    pub busy: AtomicU64,
}

/// A running transport.
pub struct Net {
    /// Commands to the transport.
    pub commands: mpsc::Sender<Command>,
    /// Events from the transport (bounded).
    pub events: Receiver<NetEvent>,
    /// Counters.
    pub stats: Arc<NetStats>,
    /// Our libp2p peer id.
    pub peer_id: PeerId,
}

/// The libp2p peer id of a member key.
pub fn peer_id(key: &PublicKey) -> Result<PeerId, NetError> {
    let ed = identity::ed25519::PublicKey::try_from_bytes(&key.0).map_err(|e| NetError::Key(e.to_string()))?;
    Ok(identity::PublicKey::from(ed).to_peer_id())
}

pub(crate) fn keypair(key: &SecretKey) -> Result<identity::Keypair, NetError> {
    identity::Keypair::ed25519_from_bytes(key.seed()).map_err(|e| NetError::Key(e.to_string()))
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    /// Off only in [`probe`], which dials whoever it is given.
    allowed: Toggle<allow_block_list::Behaviour<allow_block_list::AllowedPeers>>,
    banned: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    identify: identify::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<codec::SyncCodec>,
    deliver: request_response::Behaviour<codec::DeliverCodec>,
}

pub(crate) struct Topics {
    pub(crate) headers: IdentTopic,
    pub(crate) attestations: IdentTopic,
    pub(crate) evidence: IdentTopic,
}

impl Topics {
    pub(crate) fn new(genesis: &Genesis) -> Topics {
        let net = genesis.network_id().to_string();
        let t = |kind: &str| IdentTopic::new(format!("fapiao/{net}/{kind}"));
        Topics {
            headers: t("headers"),
            attestations: t("attestations"),
            evidence: t("evidence"),
        }
    }
}

fn build_swarm(key: &SecretKey, cfg: &NetConfig, allowed: Option<&[PeerId]>) -> Result<Swarm<Behaviour>, NetError> {
    let transport = |e: &dyn std::fmt::Display| NetError::Transport(e.to_string());
    let gossip_max = cfg.gossip_bytes_max;
    let frame_max = cfg.sync_frame_bytes_max;
    let deliver_max = cfg.deliver_frame_bytes_max;
    let sync_timeout = Duration::from_millis(cfg.sync_timeout_ms);
    let allowed = allowed.map(<[PeerId]>::to_vec);
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair(key)?)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| transport(&e))?
        .with_behaviour(move |kp| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .max_transmit_size(gossip_max)
                .validation_mode(gossipsub::ValidationMode::Strict)
                .validate_messages()
                .heartbeat_interval(Duration::from_millis(500))
                .build()
                .map_err(|e| e.to_string())?;
            let gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Signed(kp.clone()), gossip_config)?;
            let allowed_peers = allowed.as_ref().map(|list| {
                let mut b = allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
                for p in list {
                    b.allow_peer(*p);
                }
                b
            });
            let sync = request_response::Behaviour::with_codec(
                codec::SyncCodec::new(frame_max),
                [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(sync_timeout),
            );
            // Few streams at once: an owner delivers one block at a time to each peer.
            let deliver = request_response::Behaviour::with_codec(
                codec::DeliverCodec::new(deliver_max),
                [(StreamProtocol::new(DELIVER_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(sync_timeout)
                    .with_max_concurrent_streams(8),
            );
            Ok(Behaviour {
                allowed: Toggle::from(allowed_peers),
                banned: allow_block_list::Behaviour::default(),
                identify: identify::Behaviour::new(identify::Config::new("/fapiao/1".into(), kp.public())),
                gossipsub,
                sync,
                deliver,
            })
        })
        .map_err(|e| transport(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}

/// The other members of `config` by peer id, and their addresses.
type Admitted = (HashMap<PeerId, MemberCode>, BTreeMap<MemberCode, Vec<Multiaddr>>);

fn admitted(config: &Config, me: MemberCode) -> Result<Admitted, NetError> {
    let mut members: HashMap<PeerId, MemberCode> = HashMap::new();
    let mut addresses: BTreeMap<MemberCode, Vec<Multiaddr>> = BTreeMap::new();
    for m in config.members() {
        if m.code == me {
            continue;
        }
        members.insert(peer_id(&m.key)?, m.code);
        let addrs = m
            .addresses
            .iter()
            .map(|a| {
                a.parse::<Multiaddr>().map_err(|e| NetError::Address {
                    address: a.clone(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        addresses.insert(m.code, addrs);
    }
    Ok((members, addresses))
}

/// Starts the transport for member `me` on the current tokio runtime, admitting the
/// other members of `config` (the newest configuration known; [`Command::Members`]
/// replaces it).
pub fn start(
    cfg: NetConfig,
    genesis: &Genesis,
    config: &Config,
    me: MemberCode,
    key: &SecretKey,
) -> Result<Net, NetError> {
    if config.member(me).is_none_or(|m| m.key != key.public()) {
        return Err(NetError::NotAMember(me));
    }
    let (members, addresses) = admitted(config, me)?;
    let allowed: Vec<PeerId> = members.keys().copied().collect();
    let mut swarm = build_swarm(key, &cfg, Some(&allowed))?;
    let topics = Topics::new(genesis);
    for t in [&topics.headers, &topics.attestations, &topics.evidence] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(t)
            .map_err(|e| NetError::Transport(e.to_string()))?;
    }
    for l in &cfg.listen {
        let addr: Multiaddr = l.parse().map_err(|e: libp2p::multiaddr::Error| NetError::Address {
            address: l.clone(),
            message: e.to_string(),
        })?;
        swarm.listen_on(addr).map_err(|e| NetError::Transport(e.to_string()))?;
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(cfg.commands_max);
    let (ev_tx, ev_rx) = sync_channel(cfg.events_max);
    let stats = Arc::new(NetStats::default());
    let peer_id = *swarm.local_peer_id();
    let task = Task {
        swarm,
        cfg,
        me,
        topics,
        members,
        addresses,
        events: ev_tx,
        stats: stats.clone(),
        connected: HashMap::new(),
        bans: Vec::new(),
        leaving: Vec::new(),
        inbound: HashMap::new(),
        answering: HashMap::new(),
        outbound: HashMap::new(),
        next_token: 0,
        gossip_bytes: Arc::new(AtomicUsize::new(0)),
    };
    tokio::spawn(task.run(cmd_rx));
    Ok(Net {
        commands: cmd_tx,
        events: ev_rx,
        stats,
        peer_id,
    })
}

struct Task {
    swarm: Swarm<Behaviour>,
    cfg: NetConfig,
    me: MemberCode,
    topics: Topics,
    members: HashMap<PeerId, MemberCode>,
    addresses: BTreeMap<MemberCode, Vec<Multiaddr>>,
    events: SyncSender<NetEvent>,
    stats: Arc<NetStats>,
    /// Open connections per member peer.
    connected: HashMap<PeerId, u32>,
    bans: Vec<(Instant, PeerId)>,
    /// Peers of members a new epoch removed, and when their grace ends.
    leaving: Vec<(Instant, PeerId)>,
    /// Inbound requests awaiting the host's answer.
    inbound: HashMap<RequestToken, (ResponseChannel<codec::Answer>, PeerId, InboundRequestId)>,
    /// Answers given and not yet read by their peer: their encoded size.
    answering: HashMap<InboundRequestId, (PeerId, usize)>,
    outbound: HashMap<OutboundRequestId, (MemberCode, Request)>,
    next_token: u64,
    /// Encoded bytes of gossip handed to the host and not yet judged.
    gossip_bytes: Arc<AtomicUsize>,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut dial = tokio::time::interval(Duration::from_millis(self.cfg.dial_interval_ms));
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(c) => self.command(c),
                    None => {
                        tracing::info!("transport stopping: the host went away");
                        return;
                    }
                },
                event = self.swarm.select_next_some() => self.swarm_event(event),
                _ = dial.tick() => self.redial(),
            }
        }
    }

    fn emit(&mut self, ev: NetEvent) -> bool {
        match self.events.try_send(ev) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.stats.gossip_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    fn member_peer(&self, code: MemberCode) -> Option<PeerId> {
        self.members.iter().find(|(_, c)| **c == code).map(|(p, _)| *p)
    }

    fn penalise(&mut self, peer: PeerId, reason: &str) {
        tracing::warn!(%peer, member = ?self.members.get(&peer), reason, "peer sent invalid data: disconnecting and banning it");
        self.stats.penalties.fetch_add(1, Ordering::Relaxed);
        self.swarm.behaviour_mut().banned.block_peer(peer);
        let _ = self.swarm.disconnect_peer_id(peer);
        self.bans
            .push((Instant::now() + Duration::from_millis(self.cfg.ban_ms), peer));
    }

    /// Encoded bytes of our answers `peer` has not finished reading.
    fn unread_bytes(&self, peer: PeerId) -> usize {
        self.answering
            .values()
            .filter(|(p, _)| *p == peer)
            .map(|(_, n)| n)
            .sum()
    }

    /// Answers `Unavailable` without asking the host (or instead of its answer): a bound
    /// was reached.
    fn busy(&mut self, channel: ResponseChannel<codec::Answer>) {
        self.stats.busy.fetch_add(1, Ordering::Relaxed);
        let bytes = canonical::to_bytes(&Response::Unavailable);
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, codec::Answer::Encoded(bytes));
    }

    fn redial(&mut self) {
        let now = Instant::now();
        let left: Vec<PeerId> = self
            .leaving
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, p)| *p)
            .collect();
        self.leaving.retain(|(t, _)| *t > now);
        for p in left {
            if let Some(allowed) = self.swarm.behaviour_mut().allowed.as_mut() {
                allowed.disallow_peer(p);
            }
            let _ = self.swarm.disconnect_peer_id(p);
        }
        let expired: Vec<PeerId> = self.bans.iter().filter(|(t, _)| *t <= now).map(|(_, p)| *p).collect();
        self.bans.retain(|(t, _)| *t > now);
        for p in expired {
            self.swarm.behaviour_mut().banned.unblock_peer(p);
        }
        let banned: HashSet<PeerId> = self.bans.iter().map(|(_, p)| *p).collect();
        let targets: Vec<(PeerId, Vec<Multiaddr>)> = self
            .members
            .iter()
            .filter(|(p, _)| !self.connected.contains_key(p) && !banned.contains(p))
            .map(|(p, c)| (*p, self.addresses.get(c).cloned().unwrap_or_default()))
            .collect();
        for (peer, addrs) in targets {
            if addrs.is_empty() {
                continue;
            }
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "dial failed");
            }
        }
    }

    // Long: one arm per transport command.
    fn command(&mut self, c: Command) {
        match c {
            Command::Publish(g) => {
                let topic = match &g {
                    Gossip::Header(_) => self.topics.headers.clone(),
                    Gossip::Attestation(_) => self.topics.attestations.clone(),
                    Gossip::Evidence(_) => self.topics.evidence.clone(),
                };
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic, wire::encode_gossip(&g))
                {
                    // No peer yet, or a duplicate: sync and re-sends cover it.
                    tracing::debug!(error = %e, "publish not sent");
                }
            }
            Command::Validate(token, v) => {
                let acceptance = match v {
                    Validation::Accept => MessageAcceptance::Accept,
                    Validation::Ignore => MessageAcceptance::Ignore,
                    Validation::Reject => MessageAcceptance::Reject,
                };
                let _ = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                    &token.id,
                    &token.source,
                    acceptance,
                );
                if v == Validation::Reject {
                    self.penalise(token.source, "invalid gossip");
                }
            }
            Command::Respond(token, response) => {
                if let Some((ch, peer, id)) = self.inbound.remove(&token) {
                    let bytes = canonical::to_bytes(&response);
                    let len = bytes.len();
                    let unread = self.unread_bytes(peer);
                    // One answer always goes, however large; more wait for the peer to read.
                    if unread > 0 && unread + len > self.cfg.peer_responses_bytes_max {
                        self.busy(ch);
                        return;
                    }
                    if self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(ch, codec::Answer::Encoded(bytes))
                        .is_ok()
                    {
                        self.answering.insert(id, (peer, len));
                    }
                }
            }
            Command::Request(member, request) => {
                if let Some(peer) = self.member_peer(member) {
                    if self.connected.contains_key(&peer) {
                        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request.clone());
                        self.outbound.insert(id, (member, request));
                    }
                }
            }
            Command::Deliver(member, block) => {
                if let Some(peer) = self.member_peer(member) {
                    if self.connected.contains_key(&peer) {
                        let delivery = codec::Delivery { block, bytes: 0 };
                        self.swarm.behaviour_mut().deliver.send_request(&peer, delivery);
                    }
                }
            }
            Command::Penalise(member, reason) => {
                if let Some(peer) = self.member_peer(member) {
                    self.penalise(peer, &reason);
                }
            }
            Command::Members(config) => self.set_members(&config),
        }
    }

    /// Admits exactly `config`'s other members from now on.
    fn set_members(&mut self, config: &Config) {
        let (members, addresses) = match admitted(config, self.me) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, epoch = config.epoch(), "the new configuration's members are not admitted");
                return;
            }
        };
        let gone: Vec<PeerId> = self
            .members
            .keys()
            .filter(|p| !members.contains_key(p))
            .copied()
            .collect();
        let new: Vec<PeerId> = members
            .keys()
            .filter(|p| !self.members.contains_key(p))
            .copied()
            .collect();
        if let Some(allowed) = self.swarm.behaviour_mut().allowed.as_mut() {
            for p in &new {
                allowed.allow_peer(*p);
            }
        }
        // A member rejoining within its grace is simply kept.
        self.leaving.retain(|(_, p)| !new.contains(p));
        let until = Instant::now() + Duration::from_millis(self.cfg.leave_grace_ms);
        self.leaving.extend(gone.into_iter().map(|p| (until, p)));
        tracing::info!(
            epoch = config.epoch(),
            members = members.len(),
            "members admitted for the new epoch"
        );
        self.members = members;
        self.addresses = addresses;
        self.redial();
    }

    fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id, connection_id, ..
            } => {
                let n = self.connected.entry(peer_id).or_insert(0);
                *n += 1;
                if *n > self.cfg.peer_connections_max {
                    tracing::info!(%peer_id, connections = *n, "closing a connection over the per-peer bound");
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    self.swarm.close_connection(connection_id);
                } else if *n == 1 {
                    if let Some(code) = self.members.get(&peer_id).copied() {
                        tracing::info!(member = %code, %peer_id, "member connected");
                        self.emit(NetEvent::Connected(code));
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    self.answering.retain(|_, (p, _)| *p != peer_id);
                }
                if num_established == 0 && self.connected.remove(&peer_id).is_some() {
                    if let Some(code) = self.members.get(&peer_id).copied() {
                        tracing::info!(member = %code, "member disconnected");
                        self.emit(NetEvent::Disconnected(code));
                    }
                } else if let Some(n) = self.connected.get_mut(&peer_id) {
                    *n = num_established;
                }
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                if matches!(error, libp2p::swarm::ListenError::Denied { .. }) {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(error = %error, "refused a connection from a peer that is not a member");
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => tracing::info!(%address, "peer transport listening"),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.gossip(propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.sync_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Deliver(ev)) => self.deliver_event(ev),
            _ => {}
        }
    }

    fn gossip(&mut self, source: PeerId, id: MessageId, message: gossipsub::Message) {
        self.stats.gossip_in.fetch_add(1, Ordering::Relaxed);
        let bytes = message.data.len();
        let queued = self.gossip_bytes.fetch_add(bytes, Ordering::Relaxed);
        let token = GossipToken {
            id,
            source,
            received: Instant::now(),
            _charge: Arc::new(Charge {
                bytes,
                budget: self.gossip_bytes.clone(),
            }),
        };
        if queued + bytes > self.cfg.events_bytes_max {
            // The host is behind by more than the byte bound: drop it unforwarded, as when
            // the queue is full; sync recovers.
            self.stats.gossip_dropped.fetch_add(1, Ordering::Relaxed);
            self.command(Command::Validate(token, Validation::Ignore));
            return;
        }
        let Some(from) = self.members.get(&source).copied() else {
            // Unreachable through the allowlist; refuse anyway.
            self.command(Command::Validate(token, Validation::Reject));
            return;
        };
        let t = &message.topic;
        let decoded = if *t == self.topics.headers.hash() {
            canonical::decode(&message.data).map(Gossip::Header)
        } else if *t == self.topics.attestations.hash() {
            canonical::decode(&message.data).map(Gossip::Attestation)
        } else if *t == self.topics.evidence.hash() {
            canonical::decode(&message.data).map(Gossip::Evidence)
        } else {
            self.command(Command::Validate(token, Validation::Ignore));
            return;
        };
        match decoded {
            Ok(gossip) => {
                let ev = NetEvent::Gossip {
                    from,
                    token: token.clone(),
                    gossip,
                };
                if !self.emit(ev) {
                    // The host is behind: drop it unforwarded; sync recovers.
                    self.command(Command::Validate(token, Validation::Ignore));
                }
            }
            Err(e) => {
                tracing::warn!(member = %from, error = %e, "undecodable gossip");
                self.command(Command::Validate(token, Validation::Reject));
            }
        }
    }

    fn deliver_event(&mut self, ev: request_response::Event<codec::Delivery, ()>) {
        match ev {
            request_response::Event::Message {
                peer,
                message: request_response::Message::Request { request, channel, .. },
                ..
            } => {
                // Acknowledge receipt at once; the host judges the block.
                let _ = self.swarm.behaviour_mut().deliver.send_response(channel, ());
                let Some(from) = self.members.get(&peer).copied() else {
                    return;
                };
                // The frame's length, as read: the block is not encoded again to weigh it.
                let bytes = request.bytes;
                let queued = self.gossip_bytes.fetch_add(bytes, Ordering::Relaxed);
                let budget = Budget(Charge {
                    bytes,
                    budget: self.gossip_bytes.clone(),
                });
                if queued + bytes > self.cfg.events_bytes_max {
                    // The host is behind: drop it; the header and sync bring it again.
                    self.stats.gossip_dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                self.emit(NetEvent::Block {
                    from,
                    block: request.block,
                    budget,
                });
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                if matches!(error, request_response::InboundFailure::Io(ref e) if e.kind() == std::io::ErrorKind::InvalidData)
                {
                    self.penalise(peer, "undecodable block delivery");
                }
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, error = %error, "block delivery failed");
            }
            request_response::Event::Message { .. } | request_response::Event::ResponseSent { .. } => {}
        }
    }

    // Long: one arm per request-response event.
    fn sync_event(&mut self, ev: request_response::Event<Request, codec::Answer>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => {
                let Some(from) = self.members.get(&peer).copied() else {
                    return;
                };
                match message {
                    request_response::Message::Request {
                        request_id,
                        request,
                        channel,
                    } => {
                        let waiting = self.inbound.values().filter(|(_, p, _)| *p == peer).count();
                        if self.inbound.len() >= self.cfg.inbound_requests_max
                            || waiting >= self.cfg.peer_inbound_requests_max
                            || self.unread_bytes(peer) >= self.cfg.peer_responses_bytes_max
                        {
                            self.busy(channel);
                            return;
                        }
                        self.next_token += 1;
                        let token = RequestToken(self.next_token);
                        self.inbound.insert(token, (channel, peer, request_id));
                        if !self.emit(NetEvent::Request { from, token, request }) {
                            if let Some((ch, _, _)) = self.inbound.remove(&token) {
                                self.busy(ch);
                            }
                        }
                    }
                    request_response::Message::Response { request_id, response } => {
                        let codec::Answer::Read(response) = response else {
                            unreachable!("the codec reads every response decoded")
                        };
                        if let Some((member, request)) = self.outbound.remove(&request_id) {
                            self.emit(NetEvent::Response {
                                from: member,
                                request,
                                response,
                            });
                        }
                    }
                }
            }
            request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                self.outbound.remove(&request_id);
                if matches!(error, request_response::OutboundFailure::Io(ref e) if e.kind() == std::io::ErrorKind::InvalidData)
                {
                    self.penalise(peer, "undecodable sync response");
                } else {
                    tracing::debug!(%peer, error = %error, "sync request failed");
                }
            }
            request_response::Event::InboundFailure {
                peer,
                error,
                request_id,
                ..
            } => {
                self.answering.remove(&request_id);
                if matches!(error, request_response::InboundFailure::Io(ref e) if e.kind() == std::io::ErrorKind::InvalidData)
                {
                    self.penalise(peer, "undecodable sync request");
                }
            }
            request_response::Event::ResponseSent { request_id, .. } => {
                self.answering.remove(&request_id);
            }
        }
    }
}

/// What [`probe`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The node answered a heads request: we were let in.
    Answered(Vec<HeadSummary>),
    /// The node refused or dropped us before answering.
    Refused(String),
}

/// Connects to `addr` with `key` (member or not) and asks for heads: a diagnostic and a
/// test of the member allowlist. Gives up after `timeout_ms`.
pub async fn probe(addr: &str, key: &SecretKey, timeout_ms: u64) -> Result<ProbeOutcome, NetError> {
    let addr: Multiaddr = addr.parse().map_err(|e: libp2p::multiaddr::Error| NetError::Address {
        address: addr.into(),
        message: e.to_string(),
    })?;
    let cfg = NetConfig::new(vec![], 4 * 1024 * 1024);
    // The prober allows whoever it dials: it only wants to see whether it is let in.
    let mut swarm = build_swarm(key, &cfg, None)?;
    swarm.dial(addr).map_err(|e| NetError::Transport(e.to_string()))?;
    let deadline = tokio::time::sleep(Duration::from_millis(timeout_ms));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return Ok(ProbeOutcome::Refused("timed out".into())),
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    swarm.behaviour_mut().sync.send_request(&peer_id, Request::Heads);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. }, ..
                })) => {
                    return Ok(match response {
                        codec::Answer::Read(Response::Heads(h)) => ProbeOutcome::Answered(h),
                        other => ProbeOutcome::Refused(format!("unexpected answer {other:?}")),
                    });
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::OutboundFailure { error, .. })) => {
                    return Ok(ProbeOutcome::Refused(error.to_string()));
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    return Ok(ProbeOutcome::Refused(error.to_string()));
                }
                SwarmEvent::ConnectionClosed { cause, .. } => {
                    return Ok(ProbeOutcome::Refused(format!("connection closed: {cause:?}")));
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_frame_is_never_larger_than_a_decode_accepts() {
        for block in [1024 * 1024, 4 * 1024 * 1024, 64 * 1024 * 1024] {
            let cfg = NetConfig::new(vec![], block);
            assert!(
                cfg.sync_frame_bytes_max <= canonical::DECODE_BYTES_MAX,
                "block size {block}"
            );
            assert!(cfg.sync_frame_bytes_max >= 2 * block.min(canonical::DECODE_BYTES_MAX / 4));
        }
    }
}
