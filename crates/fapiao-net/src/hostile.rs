//! A hostile member's transport, for fault drills only (`fapiao drill garbage`).
//!
//! It connects to the other members with a member's identity and sends whatever bytes it
//! is given, on every gossip topic and on the sync protocol, as requester and as
//! responder: oversized, truncated or undecodable frames that the real transport
//! ([`crate::start`]) can never produce. It has none of the real transport's bounds and
//! judges nothing; nothing but the drill uses it.

use crate::{keypair, peer_id, NetError, Topics, SYNC_PROTOCOL};
use fapiao_core::{Genesis, MemberCode, SecretKey};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A gossip topic of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// `fapiao/<network>/headers`.
    Headers,
    /// `fapiao/<network>/attestations`.
    Attestations,
    /// `fapiao/<network>/evidence`.
    Evidence,
}

/// What the drill tells its transport.
#[derive(Debug)]
pub enum HostileCommand {
    /// Publish `bytes` as they are on a topic (gossipsub signs its envelope with our key;
    /// the payload is whatever it is).
    Publish(Topic, Vec<u8>),
    /// Open a sync stream to `member`, write `bytes` as they are (the caller writes the
    /// length prefix, or lies in it) and close our side. With `stall`, the answer is never
    /// read: the stream is held until the request times out.
    Request {
        /// The member.
        member: MemberCode,
        /// The raw bytes.
        bytes: Vec<u8>,
        /// Never read the answer.
        stall: bool,
    },
    /// Answer an inbound sync request with `bytes` as they are.
    Respond(u64, Vec<u8>),
    /// Open one more connection to `member`, even if one is open.
    Dial(MemberCode),
}

/// What the transport tells the drill.
#[derive(Debug)]
pub enum HostileEvent {
    /// A member's node connected.
    Connected(MemberCode),
    /// A member's node's last connection closed.
    Disconnected(MemberCode),
    /// A member asks us something: the raw bytes of its frame (length prefix included).
    Request {
        /// The member.
        from: MemberCode,
        /// For [`HostileCommand::Respond`].
        token: u64,
        /// The frame.
        bytes: Vec<u8>,
    },
}

/// What the hostile transport did, for the drill's summary.
#[derive(Debug, Default)]
pub struct HostileStats {
    /// Gossip messages published.
    pub published: AtomicU64,
    /// Gossip messages the local gossipsub would not send (no peer subscribed yet).
    pub publish_failed: AtomicU64,
    /// Sync requests sent.
    pub requests: AtomicU64,
    /// Answers to our requests that were read.
    pub answers: AtomicU64,
    /// Our requests that failed (refused, reset, timed out).
    pub request_failures: AtomicU64,
    /// Inbound requests answered.
    pub responded: AtomicU64,
    /// Connections established.
    pub connections: AtomicU64,
    /// Dials or inbound connections that failed or were refused.
    pub connection_failures: AtomicU64,
}

/// A running hostile transport.
pub struct Hostile {
    /// Commands to the transport.
    pub commands: mpsc::Sender<HostileCommand>,
    /// Events from the transport (bounded; dropped when full).
    pub events: mpsc::Receiver<HostileEvent>,
    /// Counters.
    pub stats: Arc<HostileStats>,
}

/// Bytes and answers as they are: nothing is framed, checked or decoded.
#[derive(Debug, Clone)]
struct RawCodec {
    /// Reads stop here.
    read_bytes_max: usize,
    /// Never read an answer.
    stall: bool,
}

async fn read_all<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(max as u64).read_to_end(&mut buf).await?;
    Ok(buf)
}

async fn write_all<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    io.write_all(bytes).await?;
    io.close().await
}

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_all(io, self.read_bytes_max).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        if self.stall {
            // Hold the stream, read nothing: the responder's answer waits in its memory
            // until our request times out.
            futures::future::pending::<()>().await;
        }
        read_all(io, self.read_bytes_max).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_all(io, &req).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_all(io, &res).await
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<RawCodec>,
    /// Outbound only: the requests whose answers are never read.
    stall: request_response::Behaviour<RawCodec>,
}

/// Starts a hostile transport for member `me` (with its key) on the current tokio runtime:
/// it listens on `listen`, dials every other member, and sends or reads at most
/// `bytes_max` bytes per message.
// Long: the hostile transport's set-up, line for line beside the real one it mirrors.
pub fn start_hostile(
    listen: &[String],
    genesis: &Genesis,
    me: MemberCode,
    key: &SecretKey,
    bytes_max: usize,
) -> Result<Hostile, NetError> {
    let transport = |e: &dyn std::fmt::Display| NetError::Transport(e.to_string());
    let mut members: HashMap<PeerId, MemberCode> = HashMap::new();
    let mut addresses: BTreeMap<MemberCode, Vec<Multiaddr>> = BTreeMap::new();
    for m in genesis.config().members() {
        if m.code == me || m.addresses.is_empty() {
            continue;
        }
        members.insert(peer_id(&m.key)?, m.code);
        let addrs: Vec<Multiaddr> = m.addresses.iter().filter_map(|a| a.parse().ok()).collect();
        addresses.insert(m.code, addrs);
    }
    let protocol = || [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)];
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair(key)?)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| transport(&e))?
        .with_behaviour(move |kp| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .max_transmit_size(bytes_max)
                .heartbeat_interval(Duration::from_millis(500))
                .build()
                .map_err(|e| e.to_string())?;
            let codec = |stall| RawCodec {
                read_bytes_max: bytes_max,
                stall,
            };
            Ok(Behaviour {
                identify: identify::Behaviour::new(identify::Config::new("/fapiao/1".into(), kp.public())),
                gossipsub: gossipsub::Behaviour::new(MessageAuthenticity::Signed(kp.clone()), gossip_config)?,
                sync: request_response::Behaviour::with_codec(
                    codec(false),
                    protocol(),
                    request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
                ),
                stall: request_response::Behaviour::with_codec(
                    codec(true),
                    [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Outbound)],
                    request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
                ),
            })
        })
        .map_err(|e| transport(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    let topics = Topics::new(genesis);
    for t in [&topics.headers, &topics.attestations, &topics.evidence] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(t)
            .map_err(|e| transport(&e))?;
    }
    for l in listen {
        let addr: Multiaddr = l.parse().map_err(|e: libp2p::multiaddr::Error| NetError::Address {
            address: l.clone(),
            message: e.to_string(),
        })?;
        swarm.listen_on(addr).map_err(|e| transport(&e))?;
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (ev_tx, ev_rx) = mpsc::channel(1024);
    let stats = Arc::new(HostileStats::default());
    let task = Task {
        swarm,
        topics,
        members,
        addresses,
        events: ev_tx,
        stats: stats.clone(),
        connected: HashMap::new(),
        answers: HashMap::new(),
        next_token: 0,
    };
    tokio::spawn(task.run(cmd_rx));
    Ok(Hostile {
        commands: cmd_tx,
        events: ev_rx,
        stats,
    })
}

/// Inbound requests held for the drill's answer; more are dropped unanswered.
const ANSWERS_MAX: usize = 1024;

struct Task {
    swarm: Swarm<Behaviour>,
    topics: Topics,
    members: HashMap<PeerId, MemberCode>,
    addresses: BTreeMap<MemberCode, Vec<Multiaddr>>,
    events: mpsc::Sender<HostileEvent>,
    stats: Arc<HostileStats>,
    connected: HashMap<PeerId, u32>,
    answers: HashMap<u64, ResponseChannel<Vec<u8>>>,
    next_token: u64,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<HostileCommand>) {
        let mut dial = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(c) => self.command(c),
                    None => return,
                },
                event = self.swarm.select_next_some() => self.swarm_event(event),
                _ = dial.tick() => {
                    let targets: Vec<MemberCode> = self
                        .members
                        .iter()
                        .filter(|(p, _)| !self.connected.contains_key(p))
                        .map(|(_, c)| *c)
                        .collect();
                    for m in targets {
                        self.dial(m, PeerCondition::DisconnectedAndNotDialing);
                    }
                }
            }
        }
    }

    fn peer(&self, member: MemberCode) -> Option<PeerId> {
        self.members.iter().find(|(_, c)| **c == member).map(|(p, _)| *p)
    }

    fn dial(&mut self, member: MemberCode, condition: PeerCondition) {
        let (Some(peer), Some(addrs)) = (self.peer(member), self.addresses.get(&member).cloned()) else {
            return;
        };
        let opts = DialOpts::peer_id(peer).addresses(addrs).condition(condition).build();
        if self.swarm.dial(opts).is_err() {
            self.stats.connection_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn topic(&self, t: Topic) -> IdentTopic {
        match t {
            Topic::Headers => self.topics.headers.clone(),
            Topic::Attestations => self.topics.attestations.clone(),
            Topic::Evidence => self.topics.evidence.clone(),
        }
    }

    fn command(&mut self, c: HostileCommand) {
        match c {
            HostileCommand::Publish(t, bytes) => {
                let topic = self.topic(t);
                match self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
                    Ok(_) => self.stats.published.fetch_add(1, Ordering::Relaxed),
                    Err(_) => self.stats.publish_failed.fetch_add(1, Ordering::Relaxed),
                };
            }
            HostileCommand::Request { member, bytes, stall } => {
                let Some(peer) = self.peer(member).filter(|p| self.connected.contains_key(p)) else {
                    return;
                };
                let b = self.swarm.behaviour_mut();
                if stall {
                    b.stall.send_request(&peer, bytes);
                } else {
                    b.sync.send_request(&peer, bytes);
                }
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
            }
            HostileCommand::Respond(token, bytes) => {
                if let Some(ch) = self.answers.remove(&token) {
                    let _ = self.swarm.behaviour_mut().sync.send_response(ch, bytes);
                    self.stats.responded.fetch_add(1, Ordering::Relaxed);
                }
            }
            HostileCommand::Dial(member) => self.dial(member, PeerCondition::Always),
        }
    }

    fn emit(&mut self, ev: HostileEvent) {
        let _ = self.events.try_send(ev);
    }

    fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                self.stats.connections.fetch_add(1, Ordering::Relaxed);
                let n = self.connected.entry(peer_id).or_insert(0);
                *n += 1;
                if *n == 1 {
                    if let Some(code) = self.members.get(&peer_id).copied() {
                        self.emit(HostileEvent::Connected(code));
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    self.connected.remove(&peer_id);
                    if let Some(code) = self.members.get(&peer_id).copied() {
                        self.emit(HostileEvent::Disconnected(code));
                    }
                } else {
                    self.connected.insert(peer_id, num_established);
                }
            }
            SwarmEvent::OutgoingConnectionError { .. } | SwarmEvent::IncomingConnectionError { .. } => {
                self.stats.connection_failures.fetch_add(1, Ordering::Relaxed);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.sync_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Stall(request_response::Event::OutboundFailure { .. })) => {
                self.stats.request_failures.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    fn sync_event(&mut self, ev: request_response::Event<Vec<u8>, Vec<u8>>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let Some(from) = self.members.get(&peer).copied() else {
                        return;
                    };
                    if self.answers.len() >= ANSWERS_MAX {
                        return;
                    }
                    self.next_token += 1;
                    self.answers.insert(self.next_token, channel);
                    let token = self.next_token;
                    self.emit(HostileEvent::Request {
                        from,
                        token,
                        bytes: request,
                    });
                }
                request_response::Message::Response { .. } => {
                    self.stats.answers.fetch_add(1, Ordering::Relaxed);
                }
            },
            request_response::Event::OutboundFailure { .. } => {
                self.stats.request_failures.fetch_add(1, Ordering::Relaxed);
            }
            request_response::Event::InboundFailure { .. } | request_response::Event::ResponseSent { .. } => {}
        }
        // Channels of requests whose connection closed are of no use any more.
        self.answers.retain(|_, ch| ch.is_open());
    }
}
