//! The client's durable outbox against a real node: a POS stream survives the node being
//! killed and restarted, every payment recorded exactly once; the CLI queues while the
//! node is down or in maintenance and sends later; a different event reusing a payment
//! id is refused and kept aside with the node's answer.

mod common;

use common::*;
use fapiao_api::{Backoff, Client, Outbox};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PAYMENTS: usize = 3000;

/// Every payment id the node holds, paging through the list.
fn payment_ids(client: &Client) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = client.payments(after.as_deref(), 1000).unwrap();
        if page.is_empty() {
            return ids;
        }
        after = page.last().map(|p| p.payment_id.clone());
        ids.extend(page.into_iter().map(|p| p.payment_id));
    }
}

#[test]
fn a_pos_stream_survives_the_node_dying_and_records_each_payment_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(&dir.path().join("n"), free_port());
    let genesis = node.genesis();
    let key = node.client_key();
    let client = Client::new(&node.url(), Some(node.token()));
    let outbox = Arc::new(Outbox::open(&dir.path().join("pos-outbox")).unwrap());
    let backoff = Backoff {
        initial_ms: 20,
        max_ms: 300,
    };
    let producing = Arc::new(AtomicBool::new(true));

    // The till: signs and durably queues a payment every ~2 ms.
    let till = {
        let outbox = outbox.clone();
        let producing = producing.clone();
        let network = genesis.network_id();
        std::thread::spawn(move || {
            for i in 0..PAYMENTS {
                let e = payment(network, dev_chain(), &key, &format!("POS-{i:05}"), 100 + i as i64);
                outbox.enqueue(&e).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            producing.store(false, Ordering::SeqCst);
        })
    };
    // The sender: flushes continuously, backing off while the node is gone.
    let sender = {
        let outbox = outbox.clone();
        let producing = producing.clone();
        let client = client.clone();
        std::thread::spawn(move || {
            let mut attempt = 0;
            while producing.load(Ordering::SeqCst) || outbox.pending().unwrap() > 0 {
                let r = outbox.flush(&client).unwrap();
                assert_eq!(r.failed, 0, "the node refused a payment: {:?}", r.outcomes);
                if r.deferred.is_some() {
                    std::thread::sleep(backoff.wait(attempt, None));
                    attempt += 1;
                } else {
                    attempt = 0;
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        })
    };
    // Kill the node twice in the middle of the stream.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1500));
        node.kill9();
        std::thread::sleep(Duration::from_millis(500));
        node.spawn();
    }
    till.join().unwrap();
    sender.join().unwrap();
    assert_eq!(outbox.pending().unwrap(), 0);
    assert!(outbox.failed().unwrap().is_empty());

    // Every payment exactly once (each id once, and nothing else).
    let start = std::time::Instant::now();
    let ids = loop {
        let ids = payment_ids(&client);
        if ids.len() >= PAYMENTS || start.elapsed() > Duration::from_secs(30) {
            break ids;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), PAYMENTS, "payments recorded");
    assert_eq!(unique.len(), PAYMENTS, "each exactly once");
    assert!((0..PAYMENTS).all(|i| unique.contains(&format!("POS-{i:05}"))));
}

#[test]
fn the_cli_queues_while_the_node_is_down_or_in_maintenance_and_sends_later() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(dir.path(), free_port());
    let client = Client::new(&node.url(), Some(node.token()));

    // Node down: the payment is signed and kept on disk; the command succeeds.
    node.stop();
    let o = node.cli(&["pay", "--amount", "8.00", "--method", "cash", "--id", "Q1"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("queued"), "{}", out(&o));
    node.spawn();
    let o = node.cli(&["outbox", "flush", "--wait", "20"]);
    assert!(
        out(&o).contains("delivered 1, refused 0, still waiting 0"),
        "{}",
        out(&o)
    );

    // Maintenance: queued with the node's reason, sent once maintenance is over.
    let config = dir.path().join("node.toml");
    let maint = |state: &str| {
        let o = std::process::Command::new(bin())
            .args(["node", "maintenance", state, "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success());
        std::thread::sleep(Duration::from_millis(600));
    };
    maint("on");
    let o = node.cli(&["pay", "--amount", "9.00", "--method", "cash", "--id", "Q2"]);
    assert!(
        out(&o).contains("queued") && out(&o).contains("MAINTENANCE"),
        "{}",
        out(&o)
    );
    maint("off");
    let o = node.cli(&["outbox", "flush", "--wait", "20"]);
    assert!(out(&o).contains("delivered 1"), "{}", out(&o));

    // A different event reusing a payment id is refused, naming the original, and kept
    // aside; the original stays the only record.
    let o = node.cli(&["pay", "--amount", "1.00", "--method", "cash", "--id", "Q1"]);
    assert!(!o.status.success());
    assert!(out(&o).contains("DUPLICATE_PAYMENT_ID"), "{}", out(&o));
    let o = node.cli(&["outbox", "status"]);
    assert!(
        out(&o).contains("waiting 0") && out(&o).contains("DUPLICATE_PAYMENT_ID"),
        "{}",
        out(&o)
    );
    // (Delivered means admitted and durable; the block follows within moments.)
    let start = std::time::Instant::now();
    let ids = loop {
        let ids = payment_ids(&client);
        if ids.len() >= 2 || start.elapsed() > Duration::from_secs(10) {
            break ids;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ids, vec!["Q1".to_string(), "Q2".to_string()]);
    assert_eq!(client.payment("Q1").unwrap().amount_fen, 800);
}
