//! Fault drills for operators and tests: deliberately misbehave as a member, to check
//! that the rest of the network catches it. Hidden from `--help`.

use crate::config::Loaded;
use crate::files;
use anyhow::{Context, Result};
use fapiao_core::block::entries_root;
use fapiao_core::{
    codec, Attestation, AttestationBody, Block, BlockHash, Entry, Equivocation, Genesis, Hash32, HeaderBody,
    MemberCode, NetworkId, SecretKey, Timestamp,
};
use fapiao_net::hostile::{self, HostileCommand, HostileEvent, Topic};
use fapiao_net::{Command, Gossip, HeadSummary, NetConfig, NetEvent, Request, Response};
use fapiao_store::tables::Head;
use fapiao_store::{Store, StoreOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// What a drill publishes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Misdeed {
    /// A second validly signed block at the head height.
    Equivocate,
    /// The head block with its header altered after signing: the signature is invalid.
    BadSignature,
}

/// Gossips, with the member's own identity, the header of either a second validly signed
/// block at its head height (same entries, time one millisecond later) or of that block
/// with a signature that does not match. The node must be stopped: the drill opens its store and listens
/// on its peer address.
pub(crate) async fn misbehave(cfg: &Loaded, what: Misdeed, wait_ms: u64) -> Result<()> {
    let genesis = files::read_genesis(&cfg.path(&cfg.config.genesis))?;
    let key = files::read_key_file(&cfg.path(&cfg.config.member_key))?;
    let (member, latest, block) = head_block(cfg, &genesis, &key)?;
    let p2p = cfg.config.p2p.as_ref().context("node.toml has no [p2p] section")?;
    let mut body = block.header.body.clone();
    body.timestamp = Timestamp(body.timestamp.0 + 1);
    let twin = match what {
        Misdeed::Equivocate => Block {
            header: body.sign(&key),
            entries: block.entries.clone(),
        },
        Misdeed::BadSignature => {
            let mut header = block.header.clone();
            header.body.timestamp = body.timestamp;
            Block {
                header,
                entries: block.entries.clone(),
            }
        }
    };
    let net = fapiao_net::start(
        NetConfig::new(vec![p2p.listen.clone()], 4 * 1024 * 1024),
        &genesis,
        &latest,
        member,
        &key,
    )?;
    // Wait for a peer and for its topic subscriptions to reach us.
    let start = Instant::now();
    let mut connected = false;
    while start.elapsed() < Duration::from_secs(20) && !connected {
        while let Ok(ev) = net.events.try_recv() {
            connected |= matches!(ev, NetEvent::Connected(_));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(connected, "no member connected within 20 s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    net.commands
        .send(Command::Publish(Gossip::Header(twin.header.clone())))
        .await
        .context("transport stopped")?;
    println!(
        "published: chain {member} height {} original {} other {}",
        twin.header.body.height,
        block.header.hash(),
        twin.header.hash()
    );
    let until = Instant::now() + Duration::from_millis(wait_ms);
    while Instant::now() < until {
        while net.events.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The far heights at which the garbage drill signs blocks that park: the real chain
/// never reaches them, so they can never conflict with a real block (which would be
/// equivocation evidence and freeze the chain).
const FAR_HEIGHT: u64 = 1 << 40;
/// How often the garbage drill sends a round.
const ROUND_MS: u64 = 200;
/// Rounds per cycle of the garbage drill, and how many of them are heavy.
const CYCLE_ROUNDS: u64 = 10;
const HEAVY_ROUNDS: u64 = 7;
/// Streams per member whose answers the drill never reads, opened per heavy round.
const STALLED_PER_ROUND: usize = 10;
/// Connections per member the drill opens beyond the first.
const EXTRA_CONNECTIONS: usize = 4;

/// `fapiao drill garbage`: acts as a hostile member's node with that member's key (its own
/// node stopped) for `seconds`, in cycles of two phases:
///
/// - heavy (7 rounds of 200 ms): what an honest peer could also send, so it is not
///   penalised, but as much of it as possible: headers of large blocks of its chain at
///   far heights (the node asks the drill for them), attestations for blocks that do not exist, sync requests that cost the
///   node work and requests whose answers it never reads, truncated sync frames, heads
///   at absurd heights, several connections at once;
/// - garbage (3 rounds): every gossip topic and the sync protocol, as requester and as
///   responder, with oversized, truncated and undecodable frames, encodings of the wrong
///   type, and validly signed but invalid objects. The first one a node judges gets us
///   banned, so the order rotates.
///
/// It never signs two blocks at one height the real chain holds or will reach, so it
/// produces no equivocation evidence: the member's real node can come back and catch up.
// Long: one scripted fault drill, its steps in the order the drill plays them.
pub(crate) async fn garbage(cfg: &Loaded, seconds: u64) -> Result<()> {
    let genesis = files::read_genesis(&cfg.path(&cfg.config.genesis))?;
    let key = files::read_key_file(&cfg.path(&cfg.config.member_key))?;
    let me = genesis
        .config()
        .member_by_key(&key.public())
        .context("the key is not a member of genesis")?
        .code;
    let p2p = cfg.config.p2p.as_ref().context("node.toml has no [p2p] section")?;
    let limits = NetConfig::new(vec![], cfg.engine_config().block_bytes_max);
    let mut kit = Kit::load(cfg, genesis, me, key, &limits)?;
    let mut net = hostile::start_hostile(
        std::slice::from_ref(&p2p.listen),
        &kit.genesis,
        me,
        &kit.key,
        2 * limits.sync_frame_bytes_max,
    )?;
    let mut connected: BTreeSet<MemberCode> = BTreeSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(ROUND_MS));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut round = 0u64;
    let mut sent: BTreeMap<&'static str, u64> = BTreeMap::new();
    while Instant::now() < until {
        tokio::select! {
            _ = tick.tick() => {
                round += 1;
                kit.heavy = round % CYCLE_ROUNDS < HEAVY_ROUNDS;
                for (topic, bytes, what) in kit.gossip(round) {
                    *sent.entry(what).or_default() += 1;
                    net.commands.send(HostileCommand::Publish(topic, bytes)).await.context("transport stopped")?;
                }
                for &member in &connected {
                    for (bytes, stall, what) in kit.requests(round) {
                        *sent.entry(what).or_default() += 1;
                        net.commands
                            .send(HostileCommand::Request { member, bytes, stall })
                            .await
                            .context("transport stopped")?;
                    }
                }
            }
            ev = net.events.recv() => match ev.context("transport stopped")? {
                HostileEvent::Connected(m) => {
                    connected.insert(m);
                    // More connections than the per-peer bound: the extra ones are closed.
                    for _ in 0..EXTRA_CONNECTIONS {
                        net.commands.send(HostileCommand::Dial(m)).await.context("transport stopped")?;
                    }
                }
                HostileEvent::Disconnected(m) => {
                    connected.remove(&m);
                }
                HostileEvent::Request { token, bytes, .. } => {
                    let (answer, what) = kit.answer(&bytes);
                    *sent.entry(what).or_default() += 1;
                    net.commands.send(HostileCommand::Respond(token, answer)).await.context("transport stopped")?;
                }
            }
        }
    }
    let s = &net.stats;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "garbage drill: {round} rounds in {seconds} s; connections {} (failed or refused {}); published {} (not sent {}); \
         requests {} (answered {}, failed {}); answers given {}",
        n(&s.connections),
        n(&s.connection_failures),
        n(&s.published),
        n(&s.publish_failed),
        n(&s.requests),
        n(&s.answers),
        n(&s.request_failures),
        n(&s.responded),
    );
    for (what, count) in sent {
        println!("  {count:>6}  {what}");
    }
    Ok(())
}

/// A little-endian `u32` length prefix, then `body`: a sync frame, honest or lying.
fn frame(len: usize, body: &[u8]) -> Vec<u8> {
    let mut f = u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// A head summary with the zero hash: what the drill claims for chains it does not hold.
fn fake_head(chain: MemberCode, height: u64, certified: u64) -> HeadSummary {
    HeadSummary {
        chain,
        height,
        hash: BlockHash(Hash32::ZERO),
        certified,
        frozen: false,
    }
}

/// This member's code and newest configuration, from its (stopped) node's ledger, and
/// the head block of its chain.
fn head_block(cfg: &Loaded, genesis: &Genesis, key: &SecretKey) -> Result<(MemberCode, fapiao_core::Config, Block)> {
    let store = Store::open(
        &cfg.ledger_dir(),
        &StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        },
    )?;
    let (epochs, _, _) = fapiao_chain::disk::epochs(&store, genesis)?;
    let latest = epochs.latest().clone();
    let member = latest
        .member_by_key(&key.public())
        .context("the key is not a member of the newest epoch")?
        .code;
    let head = store.head(member)?.context("the chain has no block yet")?;
    let block = store.block(member, head.height)?.context("head block missing")?;
    Ok((member, latest, block))
}

/// What the garbage drill builds its messages from.
struct Kit {
    genesis: Genesis,
    network: NetworkId,
    me: MemberCode,
    key: SecretKey,
    /// Our chain's head as every member holds it (our node is stopped).
    head: Head,
    /// Its epoch: the drill's blocks are made in it.
    epoch: u32,
    /// Each chain's head as our store holds it.
    heads: BTreeMap<MemberCode, Head>,
    /// A few real blocks of each chain, for answers that replay them at the wrong place.
    real: BTreeMap<MemberCode, Vec<Block>>,
    /// Our chain's real entries, repeated to build large blocks.
    filler: Vec<(Entry, usize)>,
    limits: NetConfig,
    block_bytes_max: usize,
    /// A large block's entries and their root (built once).
    big: Option<(Vec<Entry>, Hash32)>,
    /// The largest sync frame the node accepts, of garbage.
    full_frame: Vec<u8>,
    far: u64,
    answers: u64,
    rng: u64,
    /// This round is a heavy one.
    heavy: bool,
    /// The next chain code a heads answer names that is not in genesis.
    stray: u32,
}

impl Kit {
    fn load(cfg: &Loaded, genesis: Genesis, me: MemberCode, key: SecretKey, limits: &NetConfig) -> Result<Kit> {
        let store = Store::open(
            &cfg.ledger_dir(),
            &StoreOptions {
                read_only: true,
                ..StoreOptions::default()
            },
        )?;
        let heads: BTreeMap<MemberCode, Head> = store.heads()?.into_iter().collect();
        let head = heads.get(&me).copied().context("our chain has no block yet")?;
        let epoch = store.header(me, head.height)?.map_or(0, |h| h.body.epoch);
        let mut real: BTreeMap<MemberCode, Vec<Block>> = BTreeMap::new();
        for (chain, h) in &heads {
            for height in h.height.saturating_sub(7).max(1)..=h.height {
                if let Some(b) = store.block(*chain, height)? {
                    real.entry(*chain).or_default().push(b);
                }
            }
        }
        let mut filler = Vec::new();
        for height in (head.height.saturating_sub(63).max(1)..=head.height).rev() {
            if let Some(b) = store.block(me, height)? {
                filler.extend(b.entries.into_iter().map(|e| {
                    let n = fapiao_core::codec::to_bytes(&e).len();
                    (e, n)
                }));
            }
        }
        anyhow::ensure!(
            !filler.is_empty(),
            "our chain's blocks hold no entries to build large blocks from"
        );
        let block_bytes_max = cfg.engine_config().block_bytes_max;
        let mut kit = Kit {
            network: genesis.network_id(),
            genesis,
            me,
            key,
            head,
            epoch,
            heads,
            real,
            filler,
            limits: limits.clone(),
            block_bytes_max,
            big: None,
            full_frame: Vec::new(),
            far: FAR_HEIGHT,
            answers: 0,
            rng: 0x9e37_79b9_7f4a_7c15 ^ u64::from(me.get()),
            heavy: false,
            stray: 1,
        };
        let body = kit.noise(limits.sync_frame_bytes_max - 1);
        kit.full_frame = frame(body.len(), &body);
        Ok(kit)
    }

    /// splitmix64: garbage needs no better randomness.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn noise(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }

    fn hash(&mut self) -> Hash32 {
        let mut h = [0u8; 32];
        h.copy_from_slice(&self.noise(32));
        Hash32(h)
    }

    fn far_height(&mut self) -> u64 {
        self.far += 1;
        self.far
    }

    /// A block of ours signed with our key; `events_root` None is the entries' true root.
    fn block(
        &self,
        height: u64,
        parent: BlockHash,
        entries: Vec<Entry>,
        events_root: Option<Hash32>,
        state_root: Hash32,
        network: NetworkId,
    ) -> Block {
        let body = HeaderBody {
            network,
            chain: self.me,
            epoch: self.epoch,
            height,
            parent,
            timestamp: Timestamp(crate::now().0.max(self.head.timestamp.0)),
            events_root: events_root.unwrap_or_else(|| entries_root(&entries)),
            event_count: u32::try_from(entries.len()).unwrap_or(u32::MAX),
            state_root,
        };
        Block {
            header: body.sign(&self.key),
            entries,
        }
    }

    /// Our next block, after the head every member holds, with a wrong state root.
    fn next_with_wrong_state(&mut self, entries: Vec<Entry>, events_root: Option<Hash32>) -> Block {
        let root = self.hash();
        self.block(
            self.head.height + 1,
            self.head.hash,
            entries,
            events_root,
            root,
            self.network,
        )
    }

    /// Entries (and their root) of a block just under the block size.
    fn big_entries(&mut self) -> (Vec<Entry>, Hash32) {
        if self.big.is_none() {
            let target = self.block_bytes_max - 64 * 1024;
            let (mut entries, mut bytes) = (Vec::new(), 0);
            for (e, n) in self.filler.iter().cycle() {
                if bytes + n > target {
                    break;
                }
                bytes += n;
                entries.push(e.clone());
            }
            let root = entries_root(&entries);
            self.big = Some((entries, root));
        }
        self.big.clone().unwrap_or_else(|| unreachable!())
    }

    fn attestation(
        &self,
        chain: MemberCode,
        height: u64,
        block: BlockHash,
        witness: MemberCode,
        network: NetworkId,
    ) -> Attestation {
        AttestationBody {
            network,
            chain,
            epoch: self.epoch,
            height,
            block,
            witness,
        }
        .sign(&self.key)
    }

    fn other_network(&mut self) -> NetworkId {
        NetworkId(self.hash())
    }

    /// One round of gossip, every kind on every topic, in an order that rotates so that a
    /// different kind comes first on each connection (the first invalid one gets us banned).
    // Long: one scripted fault drill, its steps in the order the drill plays them.
    fn gossip(&mut self, round: u64) -> Vec<(Topic, Vec<u8>, &'static str)> {
        let mut out: Vec<(Topic, Vec<u8>, &'static str)> = Vec::new();
        if self.heavy {
            // The header of a block just under the size limit at a new far height: the
            // node asks us for it.
            let (entries, root) = self.big_entries();
            let far = self.far_height();
            let (parent, state) = (BlockHash(self.hash()), self.hash());
            let b = self.block(far, parent, entries, Some(root), state, self.network);
            out.push((
                Topic::Headers,
                codec::to_bytes(&b.header),
                "heavy gossip: header of a large block at a far height",
            ));
            for (chain, h) in self.heads.clone() {
                let random = BlockHash(self.hash());
                let a = self.attestation(chain, h.height + 1 + round % 200, random, self.me, self.network);
                out.push((
                    Topic::Attestations,
                    codec::to_bytes(&a),
                    "heavy gossip: attestation of a block that does not exist",
                ));
                let random = BlockHash(self.hash());
                let a = self.attestation(chain, h.height + 100_000 + round, random, self.me, self.network);
                out.push((
                    Topic::Attestations,
                    codec::to_bytes(&a),
                    "heavy gossip: attestation at a far height",
                ));
            }
            return out;
        }
        let real_header = self.real.get(&self.me).and_then(|b| b.last()).map(|b| b.header.clone());
        let small = self.next_with_wrong_state(Vec::new(), None);
        let small_bytes = codec::to_bytes(&small.header);
        let whole_block = codec::to_bytes(&small);
        let other = *self.heads.keys().find(|c| **c != self.me).unwrap_or(&self.me);
        let other_height = self.heads.get(&other).map_or(0, |h| h.height);
        let random = BlockHash(self.hash());
        let att = self.attestation(other, other_height + 1, random, self.me, self.network);
        let att_bytes = codec::to_bytes(&att);
        // Undecodable, truncated, another type, a length claim: on every topic.
        for topic in [Topic::Headers, Topic::Attestations, Topic::Evidence] {
            let len = 1 + (self.next() % 512) as usize;
            out.push((topic, self.noise(len), "gossip: undecodable bytes"));
        }
        out.push((
            Topic::Headers,
            small_bytes[..small_bytes.len() / 2].to_vec(),
            "gossip: truncated header",
        ));
        out.push((
            Topic::Attestations,
            att_bytes[..att_bytes.len() - 1].to_vec(),
            "gossip: truncated attestation",
        ));
        out.push((
            Topic::Headers,
            att_bytes.clone(),
            "gossip: attestation on the headers topic",
        ));
        out.push((
            Topic::Attestations,
            small_bytes.clone(),
            "gossip: header on the attestations topic",
        ));
        out.push((
            Topic::Evidence,
            codec::to_bytes(&Request::Heads),
            "gossip: sync request on the evidence topic",
        ));
        out.push((
            Topic::Headers,
            whole_block,
            "gossip: a whole block on the headers topic",
        ));
        // Validly signed headers are binding: two at one height are evidence against us,
        // so each one signed here names a height of its own, far above the head (the node
        // asks us for the block, and our answers are garbage). Invalid blocks at the next
        // height go in sync answers, which the node judges and forgets.
        let net = self.other_network();
        let root = self.hash();
        let foreign = self.block(self.head.height + 1, self.head.hash, Vec::new(), None, root, net);
        out.push((
            Topic::Headers,
            codec::to_bytes(&foreign.header),
            "gossip: signed header of another network",
        ));
        let far = self.far_height();
        let (parent, root) = (BlockHash(self.hash()), self.hash());
        let parked = self.block(far, parent, Vec::new(), None, root, self.network);
        out.push((
            Topic::Headers,
            codec::to_bytes(&parked.header),
            "gossip: signed header at a far height",
        ));
        // Validly signed, invalid or useless attestations.
        out.push((
            Topic::Attestations,
            att_bytes,
            "gossip: attestation of a block that does not exist",
        ));
        let random = BlockHash(self.hash());
        let far_att = self.attestation(other, other_height + 100_000, random, self.me, self.network);
        out.push((
            Topic::Attestations,
            codec::to_bytes(&far_att),
            "gossip: attestation at a far height",
        ));
        let random = BlockHash(self.hash());
        let posing = self.attestation(other, other_height + 1, random, other, self.network);
        out.push((
            Topic::Attestations,
            codec::to_bytes(&posing),
            "gossip: attestation signed for another witness",
        ));
        let net = self.other_network();
        let random = BlockHash(self.hash());
        let foreign = self.attestation(other, other_height + 1, random, self.me, net);
        out.push((
            Topic::Attestations,
            codec::to_bytes(&foreign),
            "gossip: attestation of another network",
        ));
        let unknown = MemberCode::new(MemberCode::MAX).unwrap_or(self.me);
        let random = BlockHash(self.hash());
        let stray = self.attestation(unknown, 1, random, self.me, self.network);
        out.push((
            Topic::Attestations,
            codec::to_bytes(&stray),
            "gossip: attestation of a chain not in genesis",
        ));
        // Evidence that proves nothing.
        if let Some(h) = real_header {
            let same = Equivocation {
                first: h.clone(),
                second: h.clone(),
            };
            out.push((
                Topic::Evidence,
                codec::to_bytes(&same),
                "gossip: evidence, one header twice",
            ));
            let mut forged = h.clone();
            forged.body.timestamp = Timestamp(forged.body.timestamp.0 + 1);
            out.push((
                Topic::Evidence,
                codec::to_bytes(&Equivocation::new(h.clone(), forged)),
                "gossip: evidence, second header not signed",
            ));
            let net = self.other_network();
            let root = self.hash();
            let elsewhere = self.block(h.body.height, h.body.parent, Vec::new(), None, root, net);
            let mut elsewhere2 = elsewhere.header.clone();
            elsewhere2.body.state_root = self.hash();
            let elsewhere2 = elsewhere2.body.sign(&self.key);
            out.push((
                Topic::Evidence,
                codec::to_bytes(&Equivocation::new(elsewhere.header, elsewhere2)),
                "gossip: evidence of another network",
            ));
        }
        let (a, b) = (self.far_height(), self.far_height());
        let (ha, hb) = (
            self.block(a, BlockHash(Hash32::ZERO), Vec::new(), None, Hash32::ZERO, self.network),
            self.block(b, BlockHash(Hash32::ZERO), Vec::new(), None, Hash32::ZERO, self.network),
        );
        out.push((
            Topic::Evidence,
            codec::to_bytes(&Equivocation::new(ha.header, hb.header)),
            "gossip: evidence, headers at two heights",
        ));
        // Over the gossip limit: gossipsub drops it.
        let topic = [Topic::Headers, Topic::Attestations, Topic::Evidence][(round % 3) as usize];
        let bytes = self.noise(self.limits.gossip_bytes_max + 4096);
        out.push((topic, bytes, "gossip: over the size limit"));
        let k = out.len();
        out.rotate_left((round as usize) % k);
        out
    }

    /// One round of sync requests to one member: valid ones that cost the node work, and
    /// frames that are oversized, truncated, undecodable or of the wrong type.
    // Long: one scripted fault drill, its steps in the order the drill plays them.
    fn requests(&mut self, round: u64) -> Vec<(Vec<u8>, bool, &'static str)> {
        let req = |r: &Request| {
            let b = codec::to_bytes(r);
            frame(b.len(), &b)
        };
        let chain = *self
            .heads
            .keys()
            .nth((round as usize) % self.heads.len().max(1))
            .unwrap_or(&self.me);
        let unknown = MemberCode::new(MemberCode::MAX).unwrap_or(self.me);
        if self.heavy {
            // The chain with the most blocks makes the largest answers.
            let big = self
                .heads
                .iter()
                .max_by_key(|(_, h)| h.height)
                .map_or(self.me, |(c, _)| *c);
            let mut out = vec![(
                req(&Request::Blocks {
                    chain: big,
                    from: 1,
                    to: u64::MAX,
                }),
                false,
                "heavy request: blocks 1..=u64::MAX",
            )];
            for _ in 0..STALLED_PER_ROUND {
                let from = 1 + self.next() % 4;
                out.push((
                    req(&Request::Blocks {
                        chain: big,
                        from,
                        to: u64::MAX,
                    }),
                    true,
                    "heavy request: blocks, answer never read",
                ));
            }
            out.push((frame(1024, &self.noise(100)), false, "heavy request: truncated frame"));
            return out;
        }
        let mut claim = codec::to_bytes(&Request::Blocks { chain, from: 1, to: 2 });
        claim.truncate(4);
        claim.extend_from_slice(&[0xff; 20]);
        let mut out = vec![
            (req(&Request::Heads), false, "request: heads"),
            (
                req(&Request::Blocks {
                    chain,
                    from: 0,
                    to: u64::MAX,
                }),
                false,
                "request: blocks 0..=u64::MAX",
            ),
            (
                req(&Request::Blocks { chain, from: 1, to: 32 }),
                true,
                "request: blocks 1..=32, answer never read",
            ),
            (
                req(&Request::Blocks {
                    chain: unknown,
                    from: 1,
                    to: 10,
                }),
                false,
                "request: blocks of a chain not in genesis",
            ),
            (
                req(&Request::Certificates {
                    chain,
                    from: 0,
                    to: u64::MAX,
                }),
                false,
                "request: certificates 0..=u64::MAX",
            ),
            (
                frame(4096, &self.noise(4096)),
                false,
                "request: over the 1 KiB frame limit",
            ),
            (
                frame(u32::MAX as usize, &self.noise(8)),
                false,
                "request: length prefix u32::MAX",
            ),
            (frame(1000, &self.noise(10)), false, "request: truncated frame"),
            (frame(4, &[99, 0, 0, 0]), false, "request: undecodable"),
            (frame(claim.len(), &claim), false, "request: bad field inside"),
            (
                {
                    let b = codec::to_bytes(&Response::Heads(Vec::new()));
                    frame(b.len(), &b)
                },
                false,
                "request: a response instead",
            ),
            (Vec::new(), false, "request: empty stream"),
            (vec![1, 0], false, "request: half a length prefix"),
        ];
        let k = out.len();
        out.rotate_left((round as usize) % k);
        out
    }

    /// Our answer to a node's sync request, taking turns through the kinds of garbage.
    // Long: one scripted fault drill, its steps in the order the drill plays them.
    fn answer(&mut self, bytes: &[u8]) -> (Vec<u8>, &'static str) {
        let resp = |r: &Response| {
            let b = codec::to_bytes(r);
            frame(b.len(), &b)
        };
        let request: Option<Request> = bytes.get(4..).and_then(|b| codec::decode(b).ok());
        self.answers += 1;
        let n = self.answers;
        if self.heavy {
            return match (request, n % 3) {
                (Some(Request::Heads), 0) => {
                    // Chains not in genesis, new ones each time.
                    let heads: Vec<HeadSummary> = (0..5000)
                        .filter_map(|_| {
                            self.stray = if self.stray >= MemberCode::MAX {
                                1
                            } else {
                                self.stray + 1
                            };
                            MemberCode::new(self.stray).filter(|c| !self.heads.contains_key(c))
                        })
                        .map(|c| fake_head(c, 1, 1))
                        .collect();
                    (
                        resp(&Response::Heads(heads)),
                        "heavy answer: heads of 5000 chains not in genesis",
                    )
                }
                (Some(Request::Heads), _) => {
                    let heads: Vec<HeadSummary> = self
                        .heads
                        .keys()
                        .map(|c| fake_head(*c, u64::MAX / 2, u64::MAX / 4))
                        .collect();
                    (resp(&Response::Heads(heads)), "heavy answer: heads at absurd heights")
                }
                (_, 0) => (resp(&Response::Unavailable), "heavy answer: unavailable"),
                _ => (frame(1 << 20, &self.noise(100)), "heavy answer: truncated frame"),
            };
        }
        match n % 8 {
            0 => {
                return (
                    frame(u32::MAX as usize, &self.noise(16)),
                    "answer: length prefix u32::MAX",
                )
            }
            1 => return (frame(1 << 20, &self.noise(100)), "answer: truncated frame"),
            2 => return (frame(8, &self.noise(8)), "answer: undecodable"),
            3 if n % 3 == 0 => return (self.full_frame.clone(), "answer: largest frame, undecodable"),
            _ => {}
        }
        match request {
            Some(Request::Heads) => match n % 4 {
                0 => (
                    resp(&Response::Certificates(Vec::new())),
                    "answer: certificates for heads",
                ),
                1 => {
                    let mut heads: Vec<HeadSummary> = self
                        .heads
                        .keys()
                        .map(|c| fake_head(*c, u64::MAX / 2, u64::MAX / 2))
                        .collect();
                    heads.extend(
                        (1..5000)
                            .filter_map(MemberCode::new)
                            .filter(|c| !self.heads.contains_key(c))
                            .map(|c| fake_head(c, 1, 1)),
                    );
                    (
                        resp(&Response::Heads(heads)),
                        "answer: heads of 5000 chains not in genesis",
                    )
                }
                _ => {
                    let heads: Vec<HeadSummary> = self
                        .heads
                        .keys()
                        .map(|c| fake_head(*c, u64::MAX / 2, u64::MAX / 2))
                        .collect();
                    (resp(&Response::Heads(heads)), "answer: heads at absurd heights")
                }
            },
            Some(Request::Blocks { chain, from, .. }) => {
                let ours = chain == self.me && from > self.head.height;
                match n % 5 {
                    0 => (resp(&Response::Heads(Vec::new())), "answer: heads for blocks"),
                    1 => (resp(&Response::Blocks(Vec::new())), "answer: no blocks"),
                    2 if ours => {
                        let root = self.hash();
                        let random = BlockHash(self.hash());
                        let a = self.block(from, random, Vec::new(), None, root, self.network);
                        let root = self.hash();
                        let random = BlockHash(self.hash());
                        let b = self.block(from + 1, random, Vec::new(), None, root, self.network);
                        (
                            resp(&Response::Blocks(vec![(a, None), (b, None)])),
                            "answer: blocks that do not link",
                        )
                    }
                    3 if ours && from == self.head.height + 1 => {
                        // Every other time a large one, which costs a re-execution.
                        let b = if n % 2 == 0 {
                            let (entries, root) = self.big_entries();
                            self.next_with_wrong_state(entries, Some(root))
                        } else {
                            self.next_with_wrong_state(Vec::new(), None)
                        };
                        (
                            resp(&Response::Blocks(vec![(b, None)])),
                            "answer: signed block, wrong state root",
                        )
                    }
                    _ => {
                        // Real blocks, but not the range asked.
                        let blocks: Vec<(Block, Option<fapiao_core::Certificate>)> = self
                            .real
                            .values()
                            .flatten()
                            .filter(|b| b.header.body.chain != chain || b.header.body.height != from)
                            .take(8)
                            .map(|b| (b.clone(), None))
                            .collect();
                        (resp(&Response::Blocks(blocks)), "answer: blocks out of the range asked")
                    }
                }
            }
            Some(Request::Certificates { chain, from, .. }) => {
                let random = BlockHash(self.hash());
                let att = self.attestation(chain, from.max(1), random, self.me, self.network);
                let cert = fapiao_core::Certificate::from_attestations([&att]);
                (
                    resp(&Response::Certificates(cert.into_iter().collect())),
                    "answer: certificate below quorum",
                )
            }
            None => (resp(&Response::Unavailable), "answer: unavailable"),
        }
    }
}
