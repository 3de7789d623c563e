//! Hostile input and faults against a real node process: amounts at every edge through
//! admission and execution, a record rewritten on disk (never served, only the event that
//! reads it refused, replay names it, rebuild-state repairs it), a full disk (writes
//! refused with STORAGE_FULL, reads go on, nothing acknowledged lost, resumes by itself),
//! and a damaged database file (the node refuses to start and names the file and the
//! repair).

mod common;

use common::*;
use fapiao_api::{Client, ClientError};
use fapiao_core::event::*;
use fapiao_core::money::AMOUNT_FEN_MAX;
use fapiao_core::{codec, Event, EventBody, Fen, SecretKey, Timestamp};
use fapiao_testkit::disk::SmallDisk;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Process tests share the machine's two cores and loopback ports: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn sign(node: &DevNode, key: &SecretKey, kind: EventKind) -> Event {
    EventBody {
        network: node.genesis().network_id(),
        chain: dev_chain(),
        author: key.public(),
        timestamp: Timestamp(1),
        kind,
    }
    .sign(key)
}

fn pay_event(node: &DevNode, id: &str, fen: i64) -> Event {
    payment(node.genesis().network_id(), dev_chain(), &node.client_key(), id, fen)
}

fn request_event(node: &DevNode, id: &str, payments: &[&str], total: i64) -> Event {
    sign(
        node,
        &node.client_key(),
        fapiao_testkit::invoice_request(
            id,
            "Shanghai Trading Co",
            vec![fapiao_testkit::line("Oolong tea", total, 0)],
            payments,
        ),
    )
}

/// What a submission came to: the HTTP status and the code (or the status's word).
fn submit(client: &Client, e: &Event) -> (u16, String) {
    match client.submit(e) {
        Ok(r) => (202, r.status),
        Err(ClientError::Api { status, error, .. }) => (status, error.code),
        Err(e) => panic!("transport: {e}"),
    }
}

fn committed(client: &Client, e: &Event) -> fapiao_api::dto::EventStatusDto {
    client.wait_committed(&e.id(), Duration::from_secs(30)).unwrap()
}

/// Waits for `e`'s block and asserts it is in one (committed, or already certified).
fn recorded(client: &Client, e: &Event) {
    let s = committed(client, e);
    assert!(matches!(s.status.as_str(), "committed" | "certified"), "{s:?}");
}

/// Posts bytes that are no event; the HTTP status of the answer.
fn submit_garbage(node: &DevNode) -> u16 {
    reqwest::blocking::Client::new()
        .post(format!("{}/v1/events", node.url()))
        .json(&serde_json::json!({ "event": "00ff00ff" }))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn metric(node: &DevNode, name: &str) -> u64 {
    metric_at(&node.url(), name)
}

#[test]
fn amounts_at_every_edge_are_refused_at_admission_or_recorded_and_the_node_keeps_going() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start_with(dir.path(), free_port(), &["--fee-balance", "100"]);
    let client = Client::new(&node.url(), Some(node.token()));
    // Payments: zero and below invalid, one fen and the bound recorded, one fen past the
    // bound (and i64::MAX, the amount that stopped nodes) refused, all at admission.
    for (id, fen, expected) in [
        ("E-ZERO", 0, (400, "INVALID_FIELD")),
        ("E-NEG", -1, (400, "INVALID_FIELD")),
        ("E-ONE", 1, (202, "pending")),
        ("E-MAX", AMOUNT_FEN_MAX, (202, "pending")),
        ("E-MAX2", AMOUNT_FEN_MAX, (202, "pending")),
        ("E-OVER", AMOUNT_FEN_MAX + 1, (400, "AMOUNT_ABOVE_MAX")),
        ("E-I64", i64::MAX, (400, "AMOUNT_ABOVE_MAX")),
    ] {
        let e = pay_event(&node, id, fen);
        let (status, code) = submit(&client, &e);
        assert_eq!((status, code.as_str()), expected, "payment {id} of {fen} fen");
        if status == 202 {
            recorded(&client, &e);
        }
    }
    // The policy limit is raised to the bound by the operator, then the attack: one
    // request naming both payments at the bound. An invoice of exactly the bound issues;
    // one fen more is refused at admission and never reaches the producer.
    let op = node.operator_key();
    let policy = sign(
        &node,
        &op,
        EventKind::MerchantPolicySet(MerchantPolicy {
            permitted_types: vec![InvoiceType::Normal, InvoiceType::SpecialVat],
            max_invoice_total: Fen::MAX,
            rates: [0, 100, 300, 500, 600, 900, 1300]
                .map(|bp| fapiao_core::tax::RateRule::always(fapiao_core::TaxRate::Bp(bp)))
                .to_vec(),
        }),
    );
    assert_eq!(submit(&client, &policy).0, 202);
    committed(&client, &policy);
    let over = request_event(&node, "R-OVER", &["E-MAX", "E-MAX2"], AMOUNT_FEN_MAX + 1);
    assert_eq!(submit(&client, &over), (400, "AMOUNT_ABOVE_MAX".into()));
    let at = request_event(&node, "R-AT", &["E-MAX", "E-MAX2"], AMOUNT_FEN_MAX);
    assert_eq!(submit(&client, &at).0, 202);
    committed(&client, &at);
    let h = client.request("R-AT").unwrap();
    let number = h.history.last().unwrap().invoice_number.clone().expect("issued");
    assert_eq!(client.invoice(&number).unwrap().total_fen, AMOUNT_FEN_MAX);
    // Still producing.
    let after = pay_event(&node, "E-AFTER", 100);
    assert_eq!(submit(&client, &after).0, 202);
    recorded(&client, &after);
    assert_eq!(metric(&node, "fapiao_thread_failures_total"), 0);
    assert_eq!(metric(&node, "fapiao_events_execution_failed_total"), 0);
}

/// Rewrites payment `id`'s state record in the stopped node's ledger to `fen`.
/// A node whose pending set is full answers 503 BUSY with a Retry-After at once, before
/// any decoding or signature check (a garbage event gets BUSY too, not a 400), loses
/// none of what it acknowledged, and takes new events again once a block makes room.
#[test]
fn a_full_pending_set_refuses_at_the_door_and_takes_events_again_after_a_block() {
    let _g = serial();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("node");
    let mut node = DevNode::start(&data, free_port());
    node.stop();
    // Three events may wait, and a block is cut only every 4 s.
    set_engine(&data.join("node.toml"), "pending_max = 3\nblock_interval_ms = 4000");
    node.spawn();
    let client = Client::new(&node.url(), Some(node.token()));
    let waiting: Vec<Event> = (1..=3).map(|i| pay_event(&node, &format!("Q{i}"), 100 * i)).collect();
    for e in &waiting {
        assert_eq!(submit(&client, e).0, 202);
    }
    let more = pay_event(&node, "Q4", 400);
    let refused = client.submit(&more).unwrap_err();
    match &refused {
        ClientError::Api { status, error, .. } => {
            assert_eq!((*status, error.code.as_str()), (503, "BUSY"), "{refused:?}");
            assert!(error.message.contains("3 events waiting"), "{refused:?}");
        }
        other => panic!("not refused as busy: {other:?}"),
    }
    assert_eq!(refused.retry_after_s(), Some(1));
    // Not even decoded: bytes that are no event get the same answer while it is full.
    assert_eq!(submit_garbage(&node), 503);
    // The block takes the three; the fourth is then admitted and recorded.
    for e in &waiting {
        recorded(&client, e);
    }
    let started = Instant::now();
    loop {
        match submit(&client, &more) {
            (202, _) => break,
            (503, code) if code == "BUSY" && started.elapsed() < SETTLE => {
                std::thread::sleep(Duration::from_millis(200))
            }
            other => panic!("not admitted after the block: {other:?}"),
        }
    }
    recorded(&client, &more);
    // Once there is room, garbage is refused for what it is.
    assert_eq!(submit_garbage(&node), 400);
}

/// Opens the ledger at `ledger` (its node stopped) and hands `change` the database, its
/// state table and the key of payment `id`'s record.
fn with_payment_row(ledger: &Path, id: &str, change: impl FnOnce(&rocksdb::DB, &rocksdb::ColumnFamily, &[u8])) {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(false);
    let db = rocksdb::DB::open_cf(&opts, ledger, fapiao_store::tables::ALL).unwrap();
    let cf = db.cf_handle("state").unwrap();
    let mut k = dev_chain().get().to_be_bytes().to_vec();
    k.extend_from_slice(&fapiao_domain::StateKey::Payment(id.into()).to_bytes());
    change(&db, cf, &k);
}

fn delete_payment(ledger: &Path, id: &str) {
    with_payment_row(ledger, id, |db, cf, k| {
        assert!(db.get_cf(cf, k).unwrap().is_some());
        db.delete_cf(cf, k).unwrap();
    });
}

fn rewrite_payment(ledger: &Path, id: &str, fen: i64) {
    with_payment_row(ledger, id, |db, cf, k| {
        let mut v: fapiao_domain::StateValue = codec::decode(&db.get_cf(cf, k).unwrap().unwrap()).unwrap();
        match &mut v {
            fapiao_domain::StateValue::Payment(p) => p.recorded.amount = Fen::from_fen(fen),
            other => panic!("{other:?}"),
        }
        db.put_cf(cf, k, codec::to_bytes(&v)).unwrap();
    });
}

#[test]
fn a_rewritten_record_is_never_served_poisons_only_the_event_that_reads_it_and_replay_names_it() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(dir.path(), free_port());
    let client = Client::new(&node.url(), Some(node.token()));
    for (id, fen) in [("S1", 500), ("S2", 700), ("S4", 300)] {
        let e = pay_event(&node, id, fen);
        submit(&client, &e);
        committed(&client, &e);
    }
    node.stop();
    // The case: S1 (5.00) rewritten to 999.99 in RocksDB while the node is down;
    // and S4's record deleted.
    rewrite_payment(&dir.path().join("ledger"), "S1", 99_999);
    delete_payment(&dir.path().join("ledger"), "S4");
    node.spawn();
    let client = Client::new(&node.url(), Some(node.token()));
    // Admission names the event that holds a payment id only from a record checked
    // against the tree: the rewritten S1 is refused as damage, not named.
    let again = pay_event(&node, "S1", 100);
    assert_eq!(submit(&client, &again), (503, "UNAVAILABLE".into()));
    // Admission finds no S4 record and admits a second S4 (it does not walk the tree
    // for an id it does not find); execution reads the record checked and refuses it.
    let twice = pay_event(&node, "S4", 400);
    assert_eq!(submit(&client, &twice).0, 202);
    let st = committed(&client, &twice);
    assert_eq!(
        (st.status.as_str(), st.code.as_deref()),
        ("rejected", Some("EXECUTION_FAILED")),
        "{st:?}"
    );
    assert!(st.message.as_deref().unwrap_or("").contains("S4"), "{st:?}");
    match client.payment("S1") {
        Err(ClientError::Api { status, error, .. }) => {
            assert_eq!((status, error.code.as_str()), (500, "STORE_DAMAGED"), "{error:?}");
            assert!(error.message.contains("rebuild-state"), "{}", error.message);
        }
        other => panic!("the rewritten record was served: {other:?}"),
    }
    assert_eq!(client.payment("S2").unwrap().amount_fen, 700);
    // A refund reads S1 while executing: only that event is refused, with its reason;
    // a payment in the same stretch is recorded, and the node goes on.
    let refund = sign(
        &node,
        &node.client_key(),
        EventKind::PaymentRefunded(PaymentRefunded {
            payment_id: "S1".into(),
            refund_id: "F1".into(),
            amount: Fen::from_fen(100),
            reason: String::new(),
        }),
    );
    let next = pay_event(&node, "S3", 900);
    assert_eq!(submit(&client, &refund).0, 202, "admission does not read S1");
    assert_eq!(submit(&client, &next).0, 202);
    let st = client.wait_committed(&refund.id(), Duration::from_secs(30)).unwrap();
    assert_eq!(
        (st.status.as_str(), st.code.as_deref()),
        ("rejected", Some("EXECUTION_FAILED")),
        "{st:?}"
    );
    assert!(st.message.as_deref().unwrap_or("").contains("S1"), "{st:?}");
    recorded(&client, &next);
    assert_eq!(metric(&node, "fapiao_events_execution_failed_total"), 2);
    assert_eq!(metric(&node, "fapiao_thread_failures_total"), 0);
    let health = reqwest::blocking::get(format!("{}/health", node.url())).unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // The audit names the chain and the key.
    let replay = Command::new(bin())
        .args(["replay", "--data", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let text = out(&replay);
    assert!(!replay.status.success(), "{text}");
    assert!(
        text.contains("state_leaf") && text.contains("Payment(\"S1\")"),
        "{text}"
    );
    assert!(text.contains("chain 110001"), "{text}");
    // The repair: rebuild the derived tables from the blocks, and S1 is 5.00 again.
    node.stop();
    let config = dir.path().join("node.toml");
    fapiao_ok(&["rebuild-state", "--config", config.to_str().unwrap()]);
    node.spawn();
    let client = Client::new(&node.url(), Some(node.token()));
    assert_eq!(client.payment("S1").unwrap().amount_fen, 500);
    assert_eq!(client.payment("S4").unwrap().amount_fen, 300);
    let clean = Command::new(bin())
        .args(["replay", "--data", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(clean.status.success(), "{}", out(&clean));
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_loses_nothing_and_resumes_by_itself() {
    let _g = serial();
    let root = tempfile::tempdir().unwrap();
    // First start with the default 256 MiB reserve (tmpfs takes memory only for what
    // is written), then a small reserve so that filling the disk stays cheap.
    let disk = SmallDisk::mount(&root.path().join("disk"), 512);
    let data = disk.dir.join("node");
    let mut node = DevNode::start(&data, free_port());
    node.stop();
    // A 32 MiB reserve, and blocks cut only every 3 s so admitted events are still
    // pending when the disk fills.
    set_engine(
        &data.join("node.toml"),
        "disk_reserve_mb = 32\nblock_interval_ms = 3000",
    );
    node.spawn();
    let client = Client::new(&node.url(), Some(node.token()));
    let pay = pay_event(&node, "D1", 1000);
    assert_eq!(submit(&client, &pay).0, 202);
    committed(&client, &pay);
    let req = request_event(&node, "DR1", &["D1"], 500);
    submit(&client, &req);
    committed(&client, &req);
    let number = client.request("DR1").unwrap().history[0]
        .invoice_number
        .clone()
        .unwrap();
    let check_code = client.invoice(&number).unwrap().check_code;

    // Admitted, acknowledged, waiting for its block: then the disk fills past half the
    // reserve, so neither admission nor production writes.
    let waiting = pay_event(&node, "D2", 2000);
    assert_eq!(submit(&client, &waiting).0, 202);
    disk.fill("filler", 8);
    let refused = pay_event(&node, "D3", 3000);
    let started = Instant::now();
    let answer = loop {
        match client.submit(&refused) {
            Err(ClientError::Api { status: 503, error, .. }) if error.code == "STORAGE_FULL" => break error,
            other if started.elapsed() > SETTLE => panic!("not refused: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(answer.message.contains("reserve"), "{answer:?}");
    let raw = reqwest::blocking::Client::new()
        .post(format!("{}/v1/events", node.url()))
        .json(&serde_json::json!({ "event": hex::encode(codec::to_bytes(&refused)) }))
        .send()
        .unwrap();
    assert_eq!(raw.status().as_u16(), 503);
    assert_eq!(raw.headers()["retry-after"], "10");
    // Reads and verification go on.
    assert_eq!(client.payment("D1").unwrap().amount_fen, 1000);
    client.proof(&number, &check_code).unwrap();
    assert_eq!(client.status().unwrap().chain, dev_chain().to_string());
    // The waiting event is not lost and not refused: it waits, the producer paused.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(client.event_status(&waiting.id()).unwrap().status, "pending");
    assert_eq!(metric(&node, "fapiao_storage_full"), 1);
    assert!(metric(&node, "fapiao_producer_stalls_total") >= 1);
    // A crash now loses nothing acknowledged either.
    node.kill9();
    node.spawn();
    let client = Client::new(&node.url(), Some(node.token()));
    assert_eq!(client.event_status(&waiting.id()).unwrap().status, "pending");
    // Space comes back: the node resumes by itself.
    disk.free("filler");
    recorded(&client, &waiting);
    let started = Instant::now();
    loop {
        match client.submit(&refused) {
            Ok(_) => break,
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(e) => panic!("writes did not resume: {e}"),
        }
    }
    recorded(&client, &refused);
    assert_eq!(metric(&node, "fapiao_storage_full"), 0);
    node.stop();
}

/// The table files of the stopped node's ledger, with the column family each belongs to.
fn table_files(ledger: &Path) -> Vec<(String, std::path::PathBuf)> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(false);
    let db = rocksdb::DB::open_cf_for_read_only(&opts, ledger, fapiao_store::tables::ALL, false).unwrap();
    db.live_files()
        .unwrap()
        .into_iter()
        .map(|f| (f.column_family_name, ledger.join(f.name.trim_start_matches('/'))))
        .collect()
}

/// Starts the node expecting it to refuse: its exit status and what it printed.
fn start_refused(dir: &Path) -> String {
    let o = Command::new(bin())
        .args([
            "dev",
            "--data",
            dir.to_str().unwrap(),
            "--port",
            &free_port().to_string(),
        ])
        .env("FAPIAO_LOG", "warn")
        .output()
        .unwrap();
    let text = out(&o);
    assert!(!o.status.success(), "the node started on a damaged ledger:\n{text}");
    text
}

fn truncate_half(file: &Path) {
    let len = std::fs::metadata(file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
}

#[test]
fn a_damaged_table_file_or_log_refuses_the_start_naming_the_file_and_the_repair() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(dir.path(), free_port());
    let client = Client::new(&node.url(), Some(node.token()));
    for i in 0..20 {
        let e = pay_event(&node, &format!("T{i}"), 100 + i);
        submit(&client, &e);
        committed(&client, &e);
    }
    // A clean stop writes every table to files; a checkpoint of the stopped node.
    node.stop();
    let config = dir.path().join("node.toml");
    let backup = dir.path().join("backup-1");
    take_backup(&config, &backup);
    let ledger = dir.path().join("ledger");

    // A truncated file of the state table: refused, the file named; rebuild-state
    // repairs it from the blocks.
    let files = table_files(&ledger);
    let (_, state_file) = files.iter().find(|(cf, _)| cf == "state").expect("a state table file");
    truncate_half(state_file);
    let name = state_file.file_name().unwrap().to_str().unwrap().to_string();
    let text = start_refused(dir.path());
    assert!(text.contains(&name) && text.contains("rebuild-state"), "{text}");
    fapiao_ok(&["rebuild-state", "--config", config.to_str().unwrap()]);
    node.spawn();
    let client = Client::new(&node.url(), Some(node.token()));
    assert_eq!(client.payment("T7").unwrap().amount_fen, 107);
    node.stop();

    // A truncated file of the blocks themselves: refused; the repair is the checkpoint.
    let files = table_files(&ledger);
    let (_, entries_file) = files
        .iter()
        .find(|(cf, _)| cf == "entries")
        .expect("an entries table file");
    truncate_half(entries_file);
    let name = entries_file.file_name().unwrap().to_str().unwrap().to_string();
    let text = start_refused(dir.path());
    assert!(text.contains(&name) && text.contains("checkpoint"), "{text}");
    std::fs::remove_dir_all(&ledger).unwrap();
    std::fs::rename(&backup, &ledger).unwrap();
    node.spawn();
    let client = Client::new(&node.url(), Some(node.token()));
    assert_eq!(client.payment("T19").unwrap().amount_fen, 119);

    // Damage in the middle of the write-ahead log (acknowledged events not yet in a
    // table file): refused rather than silently dropping what follows it.
    for i in 20..40 {
        let e = pay_event(&node, &format!("T{i}"), 100 + i);
        submit(&client, &e);
        committed(&client, &e);
    }
    node.kill9();
    let log = std::fs::read_dir(&ledger)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a write-ahead log");
    let mut bytes = std::fs::read(&log).unwrap();
    assert!(bytes.len() > 4096, "the log holds the last writes");
    let mid = bytes.len() / 3;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&log, &bytes).unwrap();
    let text = start_refused(dir.path());
    let name = log
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches('0')
        .to_string();
    assert!(text.contains("damaged") && text.contains("checkpoint"), "{text}");
    assert!(
        text.contains(name.trim_end_matches(".log")),
        "the log file is named: {text}"
    );
}
