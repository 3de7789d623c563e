//! Fault drills for operators and tests: deliberately misbehave as a member, to check
//! that the rest of the network catches it. Hidden from `--help`.

use crate::config::Loaded;
use crate::files;
use anyhow::{Context, Result};
use fapiao_core::{Block, Timestamp};
use fapiao_net::{Command, Gossip, NetConfig, NetEvent};
use fapiao_store::{Store, StoreOptions};
use std::time::{Duration, Instant};

/// What a drill publishes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Misdeed {
    /// A second validly signed block at the head height.
    Equivocate,
    /// The head block with its header altered after signing: the signature is invalid.
    BadSignature,
}

/// Gossips, with the member's own identity, either a second validly signed block at its
/// head height (same entries, time one millisecond later) or that block with a signature
/// that does not match. The node must be stopped: the drill opens its store and listens
/// on its peer address.
pub(crate) async fn misbehave(cfg: &Loaded, what: Misdeed, wait_ms: u64) -> Result<()> {
    let genesis = files::read_genesis(&cfg.path(&cfg.config.genesis))?;
    let key = files::read_key_file(&cfg.path(&cfg.config.member_key))?;
    let member = genesis
        .member_by_key(&key.public())
        .context("the key is not a member of genesis")?
        .code;
    let p2p = cfg.config.p2p.as_ref().context("node.toml has no [p2p] section")?;
    let block: Block = {
        let store = Store::open(
            &cfg.ledger_dir(),
            &StoreOptions {
                read_only: true,
                ..StoreOptions::default()
            },
        )?;
        let head = store.head(member)?.context("the chain has no block yet")?;
        store.block(member, head.height)?.context("head block missing")?
    };
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
        .send(Command::Publish(Gossip::Block(twin.clone())))
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
