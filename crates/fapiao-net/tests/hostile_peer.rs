//! The transport's per-peer bounds against a hostile member: member A runs the real
//! transport with a host thread, member B the drill's hostile transport, both on loopback.
//! Each case checks one bound through A's counters.

use fapiao_core::event::{InvoiceType, MerchantPolicy};
use fapiao_core::genesis::{Member, Role, Roles};
use fapiao_core::{codec, BlockHash, Fen, Genesis, Hash32, MemberCode, SecretKey, Timestamp};
use fapiao_net::hostile::{self, HostileCommand, HostileEvent, Topic};
use fapiao_net::{Command, HeadSummary, Net, NetConfig, NetEvent, NetStats, Request, Response};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Pair {
    genesis: Genesis,
    keys: Vec<SecretKey>,
    addrs: Vec<String>,
}

/// Two merchant members on loopback ports.
fn pair() -> Pair {
    let keys: Vec<SecretKey> = (0..2).map(|_| SecretKey::generate()).collect();
    let addrs: Vec<String> = (0..2).map(|_| format!("/ip4/127.0.0.1/tcp/{}", free_port())).collect();
    let members = keys
        .iter()
        .zip(&addrs)
        .enumerate()
        .map(|(i, (k, a))| Member {
            code: MemberCode::new(110_001 + i as u32).unwrap(),
            name: format!("Merchant {}", i + 1),
            roles: Roles::of(&[Role::Witness, Role::Merchant]),
            key: k.public(),
            addresses: vec![a.clone()],
            initial_fee_balance: Fen::from_fen(1_000),
            tax_id: None,
            policy: Some(MerchantPolicy {
                permitted_types: vec![InvoiceType::Normal],
                max_invoice_total: Fen::from_fen(100_000_000),
                rates: [0, 100, 300, 500, 600, 900, 1300]
                    .map(|bp| fapiao_core::tax::RateRule::always(fapiao_core::TaxRate::Bp(bp)))
                    .to_vec(),
            }),
        })
        .collect();
    let genesis = Genesis::new(
        "bounds".into(),
        Timestamp(0),
        None,
        Fen::from_fen(10),
        fapiao_core::tax::sample_classifications(),
        members,
    )
    .unwrap();
    Pair { genesis, keys, addrs }
}

/// What A's host does with each event.
type Host = Box<dyn FnMut(&NetEvent) -> Option<Command> + Send>;

/// Starts A (member 1, real transport, `cfg` from `NetConfig::new` changed by `tune`) with
/// `host` answering its events, and B (member 2, hostile); returns once B is connected.
async fn start(tune: impl FnOnce(&mut NetConfig), mut host: Host) -> (Arc<NetStats>, hostile::Hostile, Pair) {
    let p = pair();
    let mut cfg = NetConfig::new(vec![p.addrs[0].clone()], 4 * 1024 * 1024);
    tune(&mut cfg);
    let a_code = p.genesis.config().members()[0].code;
    let b_code = p.genesis.config().members()[1].code;
    let Net {
        commands,
        events,
        stats,
        ..
    } = fapiao_net::start(cfg, &p.genesis, p.genesis.config(), a_code, &p.keys[0]).unwrap();
    std::thread::spawn(move || {
        for ev in events {
            if let Some(c) = host(&ev) {
                if commands.blocking_send(c).is_err() {
                    return;
                }
            }
        }
    });
    let mut b = hostile::start_hostile(
        std::slice::from_ref(&p.addrs[1]),
        &p.genesis,
        b_code,
        &p.keys[1],
        32 * 1024 * 1024,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, b.events.recv()).await {
            Ok(Some(HostileEvent::Connected(m))) if m == a_code => break,
            Ok(Some(_)) => {}
            _ => panic!("B did not connect to A"),
        }
    }
    (stats, b, p)
}

/// Waits until `what` of A's counters reaches `at_least`, or fails after 20 s.
async fn wait_for(stats: &NetStats, what: &str, at_least: u64) {
    let counter = |s: &NetStats| match what {
        "busy" => s.busy.load(Ordering::Relaxed),
        "refused" => s.refused.load(Ordering::Relaxed),
        "gossip_dropped" => s.gossip_dropped.load(Ordering::Relaxed),
        _ => unreachable!(),
    };
    let start = Instant::now();
    while counter(stats) < at_least {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} stayed at {} (expected {at_least}): {stats:?}",
            counter(stats)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn frame(r: &Request) -> Vec<u8> {
    let b = codec::to_bytes(r);
    let mut f = (b.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(&b);
    f
}

/// A peer that asks and never reads holds at most `peer_responses_bytes_max` of our
/// answers (or one answer, however large); the rest are answered `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_holds_a_bounded_amount_of_answers() {
    // Each answer is about 1.2 MiB, more than the peer's stream window takes in.
    let heads: Vec<HeadSummary> = (0..20_000u32)
        .map(|i| HeadSummary {
            chain: MemberCode::new(i % 999_999).unwrap(),
            height: 1,
            hash: BlockHash(Hash32::ZERO),
            certified: 1,
            frozen: false,
        })
        .collect();
    let host: Host = Box::new(move |ev| match ev {
        NetEvent::Request { token, .. } => Some(Command::Respond(*token, Response::Heads(heads.clone()))),
        _ => None,
    });
    let (stats, b, p) = start(|c| c.peer_responses_bytes_max = 2 * 1024 * 1024, host).await;
    let a = p.genesis.config().members()[0].code;
    for _ in 0..10 {
        b.commands
            .send(HostileCommand::Request {
                member: a,
                bytes: frame(&Request::Heads),
                stall: true,
            })
            .await
            .unwrap();
    }
    // At most two answers (2.4 MiB) can be unread at once: eight of ten are refused.
    wait_for(&stats, "busy", 8).await;
}

/// A peer gets at most `peer_connections_max` connections; more are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_gets_at_most_two_connections() {
    let (stats, b, p) = start(|_| {}, Box::new(|_| None)).await;
    let a = p.genesis.config().members()[0].code;
    for _ in 0..4 {
        b.commands.send(HostileCommand::Dial(a)).await.unwrap();
    }
    // One or two of the five may be within the bound; at least three are closed.
    wait_for(&stats, "refused", 3).await;
}

/// Gossip handed to the host and not yet judged is bounded in bytes: past
/// `events_bytes_max`, messages are dropped unforwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_awaiting_judgement_is_bounded_in_bytes() {
    // The host holds every token: nothing is ever judged, so nothing is released.
    let mut held = Vec::new();
    let host: Host = Box::new(move |ev| {
        if let NetEvent::Gossip { token, .. } = ev {
            held.push(token.clone());
        }
        None::<Command>
    });
    let (stats, b, p) = start(|c| c.events_bytes_max = 8 * 1024, host).await;
    // Headers of B's chain (about 200 bytes each): they decode, and the host would judge
    // them, but it never does.
    let key = &p.keys[1];
    let chain = p.genesis.config().members()[1].code;
    // Wait for A's subscriptions to reach B.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for h in 0..80u64 {
        let body = fapiao_core::HeaderBody {
            network: p.genesis.network_id(),
            chain,
            epoch: 0,
            height: 1_000 + h,
            parent: BlockHash(Hash32::ZERO),
            timestamp: Timestamp(1),
            events_root: Hash32::ZERO,
            event_count: 0,
            state_root: Hash32::ZERO,
        };
        b.commands
            .send(HostileCommand::Publish(
                Topic::Headers,
                codec::to_bytes(&body.sign(key)),
            ))
            .await
            .unwrap();
    }
    // About forty fit in 8 KiB; the others are dropped.
    wait_for(&stats, "gossip_dropped", 5).await;
}
