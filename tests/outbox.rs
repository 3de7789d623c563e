//! The client's durable outbox against a real node: a POS stream survives the node being
//! killed and restarted, every payment recorded exactly once; the CLI queues while the
//! node is down or in maintenance and sends later; a different event reusing a payment
//! id is refused and kept aside with the node's answer; events admitted after a backup
//! are sent again to the node restored from it.

mod common;

use common::*;
use fapiao_api::outbox::{Backoff, Outbox};
use fapiao_api::Client;
use std::collections::BTreeSet;
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
    let client = Client::new(&node.url(), Some(node.token()));
    pos_stream(&mut node, &dir.path().join("pos-outbox"), "POS", PAYMENTS, 2);

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
    node.maintenance("on");
    let o = node.cli(&["pay", "--amount", "9.00", "--method", "cash", "--id", "Q2"]);
    assert!(
        out(&o).contains("queued") && out(&o).contains("MAINTENANCE"),
        "{}",
        out(&o)
    );
    node.maintenance("off");
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

/// Admission is not yet safety: a node restored from a backup no longer has what it
/// admitted after the backup. The outbox keeps every event until the node reports it
/// certified; flushed against the restored node it finds those events unknown and sends
/// them again, and each is recorded once. The backup is taken while the node runs.
#[test]
fn events_admitted_after_a_backup_are_sent_again_to_the_restored_node() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let mut node = DevNode::start(&data, free_port());
    let net = node.genesis().network_id();
    let key = node.client_key();
    let outbox = Outbox::open(&dir.path().join("outbox")).unwrap();
    let quick = Backoff {
        initial_ms: 50,
        max_ms: 500,
    };

    // Before the backup: certified, so it leaves the outbox.
    let client = Client::new(&node.url(), Some(node.token()));
    outbox.enqueue(&payment(net, dev_chain(), &key, "B1", 100)).unwrap();
    let r = outbox.drain(&client, quick, Duration::from_secs(30)).unwrap();
    assert_eq!((r.delivered, r.certified, r.pending, r.awaiting), (1, 1, 0, 0), "{r:?}");

    // A backup of the running node (it takes the checkpoint itself and keeps serving).
    let config = data.join("node.toml");
    let backup = dir.path().join("backup");
    let text = take_backup(&config, &backup);
    assert!(text.contains("the node is running"), "{text}");
    assert_eq!(client.payment("B1").unwrap().amount_fen, 100);

    // After the backup: admitted (durable on the node) but the block is a minute away.
    node.stop();
    set_engine(&config, "block_interval_ms = 60000");
    node.spawn();
    let client = Client::new(&node.url(), Some(node.token()));
    for id in ["A1", "A2"] {
        outbox.enqueue(&payment(net, dev_chain(), &key, id, 200)).unwrap();
    }
    let r = outbox.flush(&client).unwrap();
    assert_eq!((r.delivered, r.certified, r.pending, r.awaiting), (2, 0, 0, 2), "{r:?}");
    assert_eq!(
        client
            .event_status(&payment(net, dev_chain(), &key, "A1", 200).id())
            .unwrap()
            .status,
        "pending"
    );

    // The operator restores the backup: A1 and A2 are gone from the node.
    node.stop();
    let ledger = data.join("ledger");
    std::fs::remove_dir_all(&ledger).unwrap();
    std::fs::rename(&backup, &ledger).unwrap();
    set_engine(&config, "block_interval_ms = 100");
    node.spawn();
    let client = Client::new(&node.url(), Some(node.token()));
    assert_eq!(payment_ids(&client), vec!["B1".to_string()]);

    let r = outbox.drain(&client, quick, Duration::from_secs(30)).unwrap();
    assert_eq!(
        (r.resubmitted, r.certified, r.pending, r.awaiting),
        (2, 2, 0, 0),
        "{r:?}"
    );
    assert_eq!(
        payment_ids(&client),
        vec!["A1".to_string(), "A2".to_string(), "B1".to_string()]
    );
    // Flushing again sends nothing: every event was certified once.
    let r = outbox.flush(&client).unwrap();
    assert_eq!((r.delivered, r.resubmitted, r.awaiting), (0, 0, 0), "{r:?}");
    assert!(outbox.failed().unwrap().is_empty());
}
