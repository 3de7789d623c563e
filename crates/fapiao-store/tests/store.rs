//! The store on a real RocksDB: atomic block commits, reopening, corruption found at
//! open with the repair path, and replay.

use fapiao_core::block::entries_root;
use fapiao_core::event::*;
use fapiao_core::genesis::{Member, Role, Roles};
use fapiao_core::*;
use fapiao_domain::{execute_block, BlockContext, ChainContext, StateKey};
use fapiao_store::replay::{replay, ReplayOptions};
use fapiao_store::{BlockCommit, Store, StoreError, StoreOptions};

fn key() -> SecretKey {
    SecretKey::from_seed(&[1; 32])
}

fn genesis() -> Genesis {
    Genesis::new(
        "t".into(),
        Timestamp(0),
        None,
        Fen::from_fen(10),
        fapiao_core::tax::sample_classifications(),
        vec![Member {
            code: MemberCode::new(110_001).unwrap(),
            name: "M".into(),
            roles: Roles::of(&[Role::Witness, Role::Merchant]),
            key: key().public(),
            addresses: vec![],
            policy: Some(MerchantPolicy {
                permitted_types: vec![InvoiceType::Normal],
                max_invoice_total: Fen::from_fen(1_000_000),
                rates: [0, 100, 300, 500, 600, 900, 1300]
                    .map(|bp| fapiao_core::tax::RateRule::always(fapiao_core::TaxRate::Bp(bp)))
                    .to_vec(),
            }),
            initial_fee_balance: Fen::from_fen(1000),
            tax_id: None,
        }],
    )
    .unwrap()
}

fn chain() -> MemberCode {
    MemberCode::new(110_001).unwrap()
}

/// `kinds` as events signed by the owner for block `height`.
fn signed(g: &Genesis, height: u64, kinds: Vec<EventKind>) -> Vec<Event> {
    let k = key();
    kinds
        .into_iter()
        .map(|kind| {
            EventBody {
                network: g.network_id(),
                chain: chain(),
                author: k.public(),
                timestamp: Timestamp(height),
                kind,
            }
            .sign(&k)
        })
        .collect()
}

fn block_context(height: u64) -> BlockContext {
    BlockContext {
        height,
        timestamp: Timestamp(1_767_225_600_000 + height),
    }
}

/// Executes and commits one block of `kinds` signed by the owner.
fn commit(store: &Store, g: &Genesis, height: u64, kinds: Vec<EventKind>) {
    commit_at(store, g, height, block_context(height).timestamp, kinds);
}

/// [`commit`], the block made at `time`.
fn commit_at(store: &Store, g: &Genesis, height: u64, time: Timestamp, kinds: Vec<EventKind>) {
    let k = key();
    let events = signed(g, height, kinds);
    let ctx = ChainContext::new(g, g.config(), chain()).unwrap();
    let bc = BlockContext {
        height,
        timestamp: time,
    };
    let ex = execute_block(&ctx, &bc, &store.state(chain()), &events).unwrap();
    assert!(ex.rejected.is_empty(), "{:?}", ex.rejected);
    let prepared = store.prepare_state(chain(), ex.writes).unwrap();
    let parent = store
        .head(chain())
        .unwrap()
        .map(|h| h.hash)
        .unwrap_or(BlockHash(Hash32::ZERO));
    let header = HeaderBody {
        network: g.network_id(),
        chain: chain(),
        epoch: 0,
        height,
        parent,
        timestamp: bc.timestamp,
        events_root: entries_root(&ex.entries),
        event_count: ex.entries.len() as u32,
        state_root: prepared.root,
    }
    .sign(&k);
    let block = Block {
        header,
        entries: ex.entries,
    };
    store
        .commit_block(&BlockCommit {
            block: &block,
            state: &prepared,
            pending_done: &[],
            rejected: &[],
            vote: None,
            certificate: None,
        })
        .unwrap();
}

fn pay(id: &str, fen: i64) -> EventKind {
    fapiao_testkit::payment(id, fen)
}

fn invoice(id: &str, payment: &str) -> EventKind {
    fapiao_testkit::invoice_request(id, "B", vec![fapiao_testkit::line("x", 100, 600)], &[payment])
}

fn build(dir: &std::path::Path, g: &Genesis) {
    let store = Store::open(dir, &StoreOptions::default()).unwrap();
    for h in 1..=20u64 {
        commit(
            &store,
            g,
            h,
            vec![
                pay(&format!("P{h}"), 1000),
                invoice(&format!("R{h}"), &format!("P{h}")),
                invoice(&format!("X{h}"), "NOPE"),
            ],
        );
    }
}

#[test]
fn blocks_survive_reopen_and_replay_matches() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    build(dir.path(), &g);
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let head = store.head(chain()).unwrap().unwrap();
    assert_eq!(head.height, 20);
    assert_eq!(store.state_root(chain()).unwrap(), head.state_root);
    let b = store.block(chain(), 7).unwrap().unwrap();
    assert_eq!(b.entries.len(), 5); // payment, request + issued, request + failed
                                    // A state proof from the store verifies against the head's root.
    let k = StateKey::Payment("P7".into());
    let proof = store.prove(chain(), &k).unwrap();
    let v = fapiao_domain::StateRead::get(&store.state(chain()), &k)
        .unwrap()
        .unwrap();
    fapiao_core::smt::verify(
        &head.state_root,
        &fapiao_core::smt::key_hash(&k.to_bytes()),
        Some(&fapiao_core::smt::value_hash(&v.to_bytes())),
        &proof,
    )
    .unwrap();

    let fresh = tempfile::tempdir().unwrap();
    let target = Store::open(fresh.path(), &StoreOptions::default()).unwrap();
    let report = replay(
        &store,
        &target,
        &g,
        ReplayOptions {
            verify_signatures: true,
        },
        &mut |_| {},
    )
    .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.counts.payments, 20);
    assert_eq!(report.counts.invoices_issued, 20);
    assert_eq!(report.counts.failures.get("PAYMENT_NOT_FOUND"), Some(&20));
    assert_eq!(report.counts.signatures_verified, 60);
    assert_eq!(target.state_root(chain()).unwrap(), head.state_root);
}

#[test]
fn corrupted_state_is_found_at_open_and_rebuild_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    build(dir.path(), &g);
    // Damage the state tree's root node behind the store's back.
    {
        let cfs = fapiao_store::tables::ALL;
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(false);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), cfs).unwrap();
        let cf = db.cf_handle("tree").unwrap();
        let mut k = chain().get().to_be_bytes().to_vec();
        k.push(0);
        k.extend_from_slice(&[0u8; 32]);
        let v = db.get_cf(cf, &k).unwrap().unwrap();
        // The page's root node (its first slot) gets a different hash.
        let mut page: fapiao_store::pages::Page = codec::decode(&v).unwrap();
        let top = fapiao_core::smt::NodeKey::on_path(0, &Hash32([0; 32]));
        let bad = match page.node(&top).unwrap() {
            fapiao_core::smt::Node::Inner { left, .. } => fapiao_core::smt::Node::Inner { left, right: left },
            fapiao_core::smt::Node::Leaf { key_hash, .. } => fapiao_core::smt::Node::Leaf {
                key_hash,
                value_hash: key_hash,
            },
        };
        page.set(&top, Some(bad));
        db.put_cf(cf, &k, codec::to_bytes(&page)).unwrap();
    }
    let err = Store::open(dir.path(), &StoreOptions::default())
        .err()
        .expect("a damaged store must not open");
    assert!(matches!(err, StoreError::Inconsistent { .. }), "{err}");
    assert!(err.to_string().contains("fapiao rebuild-state"), "{err}");

    // The repair: clear what is derived from blocks and replay in place.
    let store = Store::open(
        dir.path(),
        &StoreOptions {
            skip_check: true,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    store.clear_derived().unwrap();
    let report = replay(&store, &store, &g, ReplayOptions::default(), &mut |_| {}).unwrap();
    assert!(report.anomalies.is_empty(), "{report:?}");
    drop(store);
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(store.head(chain()).unwrap().unwrap().height, 20);
}

/// The producer builds a block on the one still being written: the state after that
/// block, laid over the stored state, must read, check and update exactly like the
/// stored state once it is written (and laying it over itself changes nothing).
#[test]
fn the_state_after_a_block_in_flight_is_the_state_once_it_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    build(dir.path(), &g);
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let ctx = ChainContext::new(&g, g.config(), chain()).unwrap();
    let kinds21 = || vec![pay("P21", 1000), invoice("R21", "P21"), pay("P21b", 500)];
    let e21 = signed(&g, 21, kinds21());
    let ex21 = execute_block(&ctx, &block_context(21), &store.state(chain()), &e21).unwrap();
    let in_flight = std::sync::Arc::new(store.prepare_state(chain(), ex21.writes).unwrap());
    // Block 22 reads what 21 wrote (P21b), what it did not (P20), and what neither has.
    let e22 = signed(&g, 22, vec![invoice("R22", "P21b"), pay("P22", 700)]);
    // Block 22 on `view`: its entries, the three payments read, and its root.
    let block22 = |view: &fapiao_store::ChainView<'_>| {
        let ex = execute_block(&ctx, &block_context(22), view, &e22).unwrap();
        let reads: Vec<_> = ["P21b", "P20", "P99"]
            .iter()
            .map(|p| fapiao_domain::StateRead::get(view, &StateKey::Payment((*p).into())).unwrap())
            .collect();
        let root = view.prepare(ex.writes.clone()).unwrap().root;
        (ex.entries, reads, root)
    };
    let over = |store: &Store| block22(&store.state_after(chain(), in_flight.clone()));
    let before = over(&store);
    assert!(before.1[0].is_some() && before.1[1].is_some() && before.1[2].is_none());
    // Now block 21 is stored, as the writer would.
    commit(&store, &g, 21, kinds21());
    assert_eq!(store.state_root(chain()).unwrap(), in_flight.root);
    let stored = block22(&store.state(chain()));
    assert!(stored.0.len() > e22.len(), "the invoice request was issued");
    assert_eq!(
        before, stored,
        "built on the block in flight, block 22 is the same block"
    );
    assert_eq!(over(&store), stored, "the block in flight laid over itself");
}

/// A ledger whose state tree is stored one node per row (the layout before pages) is
/// refused at open with the repair, and the repair rebuilds the tree in pages.
#[test]
fn a_tree_stored_one_node_per_row_is_refused_and_rebuilt_in_pages() {
    use fapiao_core::smt::{Node, NodeKey};
    use fapiao_store::pages::{Page, PAGE_LEVELS};
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    build(dir.path(), &g);
    let row = |at: &NodeKey| {
        let mut k = chain().get().to_be_bytes().to_vec();
        k.push(at.depth);
        k.extend_from_slice(at.prefix.as_bytes());
        k
    };
    let mut nodes = 0;
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(false);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), fapiao_store::tables::ALL).unwrap();
        let cf = db.cf_handle("tree").unwrap();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = db
            .iterator_cf(cf, rocksdb::IteratorMode::Start)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect();
        assert!(rows.len() > 1, "the test ledger's tree spans several pages");
        for (k, v) in rows {
            let page: Page = codec::decode(&v).unwrap();
            let top = NodeKey {
                depth: k[4],
                prefix: Hash32(k[5..].try_into().unwrap()),
            };
            db.delete_cf(cf, &k).unwrap();
            // Every position of the page: each depth below its root, each branch.
            for rel in 0..PAGE_LEVELS {
                for branch in 0u32..(1 << rel) {
                    let mut path = top.prefix;
                    for i in 0..rel {
                        if branch >> (rel - 1 - i) & 1 == 1 {
                            let d = (top.depth + i) as usize;
                            path.0[d / 8] |= 0x80 >> (d % 8);
                        }
                    }
                    let at = NodeKey::on_path(top.depth + rel, &path);
                    if let Some(n) = page.node(&at) {
                        db.put_cf(cf, row(&at), codec::to_bytes::<Node>(&n)).unwrap();
                        nodes += 1;
                    }
                }
            }
        }
    }
    assert!(nodes > 15);
    let err = Store::open(dir.path(), &StoreOptions::default())
        .err()
        .expect("a ledger with the old tree layout must not open");
    assert!(err.to_string().contains("fapiao rebuild-state"), "{err}");
    let store = Store::open_cleared(dir.path(), &StoreOptions::default()).unwrap();
    let report = replay(&store, &store, &g, ReplayOptions::default(), &mut |_| {}).unwrap();
    assert!(report.anomalies.is_empty(), "{report:?}");
    drop(store);
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(store.head(chain()).unwrap().unwrap().height, 20);
    store.prove(chain(), &StateKey::Payment("P7".into())).unwrap();
}

#[test]
fn a_tampered_block_is_an_anomaly_in_replay() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    build(dir.path(), &g);
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(false);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), fapiao_store::tables::ALL).unwrap();
        let cf = db.cf_handle("entries").unwrap();
        // Entry 0 of block 9: change the payment amount but keep a valid encoding.
        let mut k = chain().get().to_be_bytes().to_vec();
        k.extend_from_slice(&9u64.to_be_bytes());
        k.extend_from_slice(&0u32.to_be_bytes());
        let v = db.get_cf(cf, &k).unwrap().unwrap();
        let mut e: Entry = codec::decode(&v).unwrap();
        if let Entry::Event(ev) = &mut e {
            if let EventKind::PaymentRecorded(p) = &mut ev.body.kind {
                p.amount = Fen::from_fen(999_999);
            }
        }
        db.put_cf(cf, &k, codec::to_bytes(&e)).unwrap();
    }
    let store = Store::open(
        dir.path(),
        &StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let target = Store::open(fresh.path(), &StoreOptions::default()).unwrap();
    let report = replay(
        &store,
        &target,
        &g,
        ReplayOptions {
            verify_signatures: true,
        },
        &mut |_| {},
    )
    .unwrap();
    assert!(!report.is_clean());
    let a = &report.anomalies[0];
    assert_eq!((a.chain, a.height), (chain(), 9), "{a:?}");
    assert_eq!(report.chains[0].height, 8, "replay stops at the broken block");
}

/// Opens the closed store at `dir` with RocksDB itself and lets `f` change rows behind
/// the store's back, as someone with the files (and not the keys) could.
fn tamper(dir: &std::path::Path, f: impl FnOnce(&rocksdb::DB)) {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(false);
    let db = rocksdb::DB::open_cf(&opts, dir, fapiao_store::tables::ALL).unwrap();
    f(&db);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn state_row(key: &StateKey) -> Vec<u8> {
    let mut k = chain().get().to_be_bytes().to_vec();
    k.extend_from_slice(&key.to_bytes());
    k
}

fn text_row(text: &str) -> Vec<u8> {
    let mut k = chain().get().to_be_bytes().to_vec();
    k.extend_from_slice(text.as_bytes());
    k
}

/// Replays the (possibly tampered) store at `dir` into a fresh one.
fn audit(dir: &std::path::Path, g: &Genesis) -> fapiao_store::replay::ReplayReport {
    let store = Store::open(
        dir,
        &StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let target = Store::open(fresh.path(), &StoreOptions::default()).unwrap();
    replay(&store, &target, g, ReplayOptions::default(), &mut |_| {}).unwrap()
}

/// One way to damage a row, and what the audit and the node must say about it.
struct Case {
    name: &'static str,
    damage: fn(&rocksdb::DB),
    /// The anomaly kind replay must report, and a piece of its detail.
    anomaly: (&'static str, &'static str),
    /// A read the node must refuse (it must not serve the damaged row).
    refused: fn(&Store) -> Result<(), StoreError>,
}

fn read_payment(store: &Store, id: &str) -> Result<(), StoreError> {
    fapiao_domain::StateRead::get(&store.state(chain()), &StateKey::Payment(id.into())).map(|_| ())
}

/// Rewrites the entry location in the first row of index `table` with `change`.
fn rewrite_first_loc(db: &rocksdb::DB, table: &str, change: fn(&mut fapiao_store::EntryLoc)) {
    let cf = db.cf_handle(table).unwrap();
    let (k, v) = db
        .iterator_cf(cf, rocksdb::IteratorMode::Start)
        .next()
        .unwrap()
        .unwrap();
    let mut loc: fapiao_store::EntryLoc = codec::decode(&v).unwrap();
    change(&mut loc);
    db.put_cf(cf, &k, codec::to_bytes(&loc)).unwrap();
}

#[test]
fn every_tampered_row_is_an_anomaly_and_is_never_served() {
    let g = genesis();
    let pristine = tempfile::tempdir().unwrap();
    build(pristine.path(), &g);
    assert!(audit(pristine.path(), &g).is_clean());
    let cases = [
        Case {
            // The immudb case: a record's value rewritten, valid encoding, 10.00 -> 999.99.
            name: "state record rewritten",
            damage: |db| {
                let cf = db.cf_handle("state").unwrap();
                let k = state_row(&StateKey::Payment("P5".into()));
                let mut v: fapiao_domain::StateValue = codec::decode(&db.get_cf(cf, &k).unwrap().unwrap()).unwrap();
                if let fapiao_domain::StateValue::Payment(p) = &mut v {
                    p.recorded.amount = Fen::from_fen(99_999);
                }
                db.put_cf(cf, &k, codec::to_bytes(&v)).unwrap();
            },
            anomaly: ("state_leaf", "Payment(\"P5\")"),
            refused: |s| read_payment(s, "P5"),
        },
        Case {
            name: "state record added",
            damage: |db| {
                let cf = db.cf_handle("state").unwrap();
                let v = db
                    .get_cf(cf, state_row(&StateKey::Payment("P5".into())))
                    .unwrap()
                    .unwrap();
                db.put_cf(cf, state_row(&StateKey::Payment("FAKE".into())), v).unwrap();
            },
            anomaly: (
                "state_record",
                "Payment(\"FAKE\"): is in the live store, but replay derives no such row",
            ),
            refused: |s| read_payment(s, "FAKE"),
        },
        Case {
            name: "state record deleted",
            damage: |db| {
                let cf = db.cf_handle("state").unwrap();
                db.delete_cf(cf, state_row(&StateKey::Payment("P6".into()))).unwrap();
            },
            anomaly: ("state_record", "Payment(\"P6\"): is missing from the live store"),
            refused: |s| read_payment(s, "P6"),
        },
        Case {
            // A leaf of the state tree (not the root, which the start-up check covers):
            // its value hash replaced by the rewritten record's, as a careful forger would.
            name: "state tree node rewritten",
            damage: |db| {
                let cf = db.cf_handle("tree").unwrap();
                let path = fapiao_core::smt::key_hash(&StateKey::Payment("P7".into()).to_bytes());
                for depth in 1..=255u8 {
                    let at = fapiao_core::smt::NodeKey::on_path(depth, &path);
                    let page_at = fapiao_store::pages::page_of(&at);
                    let mut k = chain().get().to_be_bytes().to_vec();
                    k.push(page_at.depth);
                    k.extend_from_slice(page_at.prefix.as_bytes());
                    let Some(v) = db.get_cf(cf, &k).unwrap() else { continue };
                    let mut page: fapiao_store::pages::Page = codec::decode(&v).unwrap();
                    if let Some(fapiao_core::smt::Node::Leaf { key_hash, .. }) = page.node(&at) {
                        let forged = fapiao_core::smt::Node::Leaf {
                            key_hash,
                            value_hash: Hash32([7; 32]),
                        };
                        page.set(&at, Some(forged));
                        db.put_cf(cf, &k, codec::to_bytes(&page)).unwrap();
                        return;
                    }
                }
                panic!("no leaf on P7's path");
            },
            anomaly: ("state_tree", "tree page at depth"),
            refused: |s| read_payment(s, "P7"),
        },
        Case {
            name: "entry index row pointed elsewhere",
            damage: |db| rewrite_first_loc(db, "events", |loc| loc.index = if loc.index == 0 { 1 } else { 0 }),
            anomaly: ("index", "table events, entry"),
            refused: |s| {
                for h in 1..=20 {
                    for e in s.block(chain(), h)?.unwrap().entries {
                        s.locate(&e.id())?;
                    }
                }
                Ok(())
            },
        },
        Case {
            name: "invoice index row pointed elsewhere",
            damage: |db| rewrite_first_loc(db, "idx_invoice", |loc| loc.height += 1),
            anomaly: ("index", "table idx_invoice, invoice"),
            refused: |_| Err(StoreError::ReadOnly), // proofs check it: see the engine's tests
        },
        Case {
            // The history table was once left out of the hand-kept list of derived
            // tables, so neither replay nor rebuild-state saw it; the list is now
            // generated from the table definitions.
            name: "invoice history row pointed elsewhere",
            damage: |db| rewrite_first_loc(db, "idx_invoice_history", |loc| loc.height += 1),
            anomaly: ("index", "table idx_invoice_history, history row"),
            refused: |_| Err(StoreError::ReadOnly), // history reads check the entry: see the engine's tests
        },
        Case {
            name: "payment index row deleted",
            damage: |db| {
                let cf = db.cf_handle("idx_payment").unwrap();
                db.delete_cf(cf, text_row("P3")).unwrap();
            },
            anomaly: ("index", "table idx_payment, payment P3: is missing from the live store"),
            refused: |_| Err(StoreError::ReadOnly), // not read by the node
        },
        Case {
            name: "request index row added",
            damage: |db| {
                let cf = db.cf_handle("idx_request").unwrap();
                let v = db.get_cf(cf, text_row("R3")).unwrap().unwrap();
                db.put_cf(cf, text_row("R-FORGED"), v).unwrap();
            },
            anomaly: ("index", "table idx_request, request R-FORGED: is in the live store"),
            refused: |_| Err(StoreError::ReadOnly), // not read by the node
        },
        Case {
            name: "failure index row rewritten",
            damage: |db| rewrite_first_loc(db, "idx_failure", |loc| loc.index = 0),
            anomaly: ("index", "table idx_failure, failure reason"),
            refused: |_| Err(StoreError::ReadOnly), // the engine's failure list checks it
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), dir.path());
        tamper(dir.path(), case.damage);
        let report = audit(dir.path(), &g);
        assert!(!report.is_clean(), "{}: replay found nothing", case.name);
        assert!(
            report
                .anomalies
                .iter()
                .any(|a| a.chain == chain() && a.kind == case.anomaly.0 && a.detail.contains(case.anomaly.1)),
            "{}: expected a {} anomaly naming {:?}, got {:#?}",
            case.name,
            case.anomaly.0,
            case.anomaly.1,
            report.anomalies
        );
        // The node opens (the head is intact) but refuses to serve the damaged row.
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        match (case.refused)(&store) {
            Err(StoreError::ReadOnly) => {} // a row the node itself never reads
            Err(e @ (StoreError::Tampered { .. } | StoreError::Inconsistent { .. })) => {
                assert!(e.to_string().contains("rebuild-state"), "{}: {e}", case.name);
            }
            other => panic!("{}: the damaged row was served: {other:?}", case.name),
        }
        // An untouched record is still served.
        read_payment(&store, "P1").unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
}

#[test]
fn rebuild_after_dropping_the_derived_tables_reopens_clean() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    build(dir.path(), &g);
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        store.flush().unwrap();
    }
    for round in 0..2 {
        let store = Store::open_cleared(dir.path(), &StoreOptions::default()).unwrap();
        let report = replay(&store, &store, &g, ReplayOptions::default(), &mut |_| {}).unwrap();
        assert!(report.anomalies.is_empty(), "round {round}: {report:?}");
        store.check_heads().unwrap();
        drop(store);
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(store.head(chain()).unwrap().unwrap().height, 20);
        read_payment(&store, "P3").unwrap();
    }
}

/// Every table's key decodes back to itself, and bytes that encode no key of the table
/// are refused as damage, never sliced into a wrong key or a panic.
#[test]
fn every_table_key_decodes_back_and_garbage_is_refused() {
    use fapiao_core::smt::NodeKey;
    use fapiao_store::tables::*;
    fn round_trip<T: Table>(key: T::Key)
    where
        T::Key: PartialEq + std::fmt::Debug,
    {
        let bytes = T::key(&key);
        assert_eq!(T::decode(&bytes).unwrap(), key, "{}", T::NAME);
        // A key ending in free text stays a key when cut short (a shorter id); every
        // other key cut short is no key.
        let text = matches!(T::NAME, "idx_request" | "idx_failure");
        let cut = &bytes[..bytes.len() - 1];
        for bad in [&[][..], &[0xff; 3][..]].into_iter().chain((!text).then_some(cut)) {
            assert!(
                matches!(T::decode(bad), Err(StoreError::Corrupt { .. })),
                "{}: {bad:02x?} decoded",
                T::NAME
            );
        }
    }
    let c = chain();
    let id = EventId(Hash32([7; 32]));
    let n = InvoiceNumber::new(26, c, 42).unwrap();
    round_trip::<Headers>((c, 9));
    round_trip::<Entries>((c, 9, 3));
    round_trip::<Certs>((c, u64::MAX));
    round_trip::<Events>(id);
    round_trip::<IdxInvoice>(n);
    round_trip::<IdxInvoiceHistory>((n, c, 9, 3));
    round_trip::<IdxPayment>((c, "P-1 支付".into()));
    round_trip::<IdxRequest>((c, "R1".into()));
    round_trip::<IdxFailure>((c, 29, "R1".into()));
    round_trip::<State>((c, StateKey::Payment("P1".into())));
    round_trip::<Tree>((c, NodeKey::on_path(4, &Hash32([9; 32]))));
    round_trip::<StateWritten>((c, 9));
    round_trip::<TreeVersions>((c, NodeKey::on_path(4, &Hash32([9; 32])), 9));
    round_trip::<StateVersions>((c, StateKey::Payment("P1".into()), u64::MAX));
    round_trip::<HistoryFrom>(c);
    round_trip::<Pending>(77);
    round_trip::<Votes>((c, 1));
    round_trip::<Rejected>(id);
    round_trip::<Heads>(c);
    round_trip::<EvidenceTable>(c);
    round_trip::<CertifiedPrefix>(c);
    round_trip::<EvidenceSuperseded>((c, 3));
    round_trip::<SetAsideBlocks>((c, 9, BlockHash(Hash32([5; 32]))));
    // A member code above 999999 is no member: refused, not decoded.
    assert!(Heads::decode(&[0xff; 4]).is_err());
    // Every table in ALL is one of the above.
    assert_eq!(ALL.len(), 23);
}

/// The state as of every kept height reads back: its root is the one that height's
/// header commits to, its records are those of that height (a later payment absent, an
/// earlier one present), and a proof from it verifies against that root.
#[test]
fn the_state_as_of_every_kept_height_reads_back_and_proves() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    build(dir.path(), &g);
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let empty = store.state_at(chain(), 0).unwrap().expect("kept");
    assert_eq!(empty.root().unwrap(), fapiao_core::smt::EMPTY, "root as of 0");
    assert_eq!(empty.get(&StateKey::Payment("P1".into())).unwrap(), None);
    for v in 1..=20u64 {
        assert_proves_as_of(&store, v);
        // The invoicing record changes after its payment's block (the request in the same
        // block draws on it), and as of an earlier height it is absent.
        let invoicing = StateKey::PaymentInvoicing(format!("P{v}"));
        let at = store.state_at(chain(), v).unwrap().unwrap();
        assert!(at.get(&invoicing).unwrap().is_some());
        let before = store.state_at(chain(), v - 1).unwrap().unwrap();
        assert_eq!(before.get(&invoicing).unwrap(), None);
    }
    assert!(store.state_at(chain(), 21).unwrap().is_none(), "above the head");
}

fn history_days(days: u64) -> StoreOptions {
    StoreOptions {
        state_history_days: days,
        ..StoreOptions::default()
    }
}

/// With no days of retention, only the last `STATE_VERSIONS_KEPT` heights are kept:
/// older ones are refused, not served wrong.
#[test]
fn state_versions_older_than_the_kept_window_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    let store = Store::open(dir.path(), &history_days(0)).unwrap();
    let kept = fapiao_store::STATE_VERSIONS_KEPT;
    let head = kept + 4;
    for h in 1..=head {
        commit(&store, &g, h, vec![pay(&format!("P{h}"), 1000)]);
    }
    let oldest = head - kept;
    assert_eq!(store.oldest_kept(chain()).unwrap(), oldest);
    assert!(store.state_at(chain(), oldest - 1).unwrap().is_none());
    let at = store
        .state_at(chain(), oldest)
        .unwrap()
        .expect("the oldest kept height");
    assert_eq!(
        at.root().unwrap(),
        store.header(chain(), oldest).unwrap().unwrap().body.state_root
    );
    let rows = store
        .raw_rows(<fapiao_store::tables::StateWritten as fapiao_store::tables::Table>::NAME)
        .count() as u64;
    assert_eq!(rows, kept, "one list of versions per kept block");
}

/// Checks that the state as of `v` has the root block `v` commits to, and proves the
/// payment recorded at `v` against it, and holds nothing recorded later.
fn assert_proves_as_of(store: &Store, v: u64) {
    let at = store.state_at(chain(), v).unwrap().expect("kept");
    let root = store.header(chain(), v).unwrap().unwrap().body.state_root;
    assert_eq!(at.root().unwrap(), root, "root as of {v}");
    assert_eq!(at.get(&StateKey::Payment(format!("P{}", v + 1))).unwrap(), None);
    let k = StateKey::Payment(format!("P{v}"));
    let value = at.get(&k).unwrap().expect("recorded at its own height");
    let proof = at.prove(&k).unwrap();
    fapiao_core::smt::verify(
        &root,
        &fapiao_core::smt::key_hash(&k.to_bytes()),
        Some(&fapiao_core::smt::value_hash(&value.to_bytes())),
        &proof,
    )
    .unwrap();
}

/// State versions are kept for the retention's days of block time however many blocks
/// that is, so a status is proven as of any height in them; past the retention they are
/// pruned, oldest first and a few per commit, and those heights are refused. The last
/// `STATE_VERSIONS_KEPT` blocks stay whatever their age.
#[test]
fn state_versions_are_kept_for_the_retention_days_and_pruned_after() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    let day0 = block_context(0).timestamp.0;
    let day = 86_400_000;
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        for h in 1..=300 {
            commit(&store, &g, h, vec![pay(&format!("P{h}"), 1000)]);
        }
        assert_eq!(store.oldest_kept(chain()).unwrap(), 1);
        for v in [1, 2, 44, 150, 299, 300] {
            assert_proves_as_of(&store, v);
        }
    }
    // Reopened with one day of retention, two days later: each commit prunes a few of
    // the oldest blocks' versions until only the last 256 blocks are left.
    let store = Store::open(dir.path(), &history_days(1)).unwrap();
    for h in 301..=303 {
        commit_at(
            &store,
            &g,
            h,
            Timestamp(day0 + 2 * day + h),
            vec![pay(&format!("P{h}"), 1000)],
        );
    }
    let pruned = 3 * fapiao_store::PRUNE_PER_COMMIT;
    assert_eq!(store.oldest_kept(chain()).unwrap(), pruned);
    assert!(store.state_at(chain(), pruned - 1).unwrap().is_none());
    assert_proves_as_of(&store, pruned);
    for h in 304..=330 {
        commit_at(
            &store,
            &g,
            h,
            Timestamp(day0 + 2 * day + h),
            vec![pay(&format!("P{h}"), 1000)],
        );
    }
    assert_eq!(
        store.oldest_kept(chain()).unwrap(),
        330 - fapiao_store::STATE_VERSIONS_KEPT
    );
    assert_proves_as_of(&store, 330 - fapiao_store::STATE_VERSIONS_KEPT);
    // The blocks made within the day are all kept.
    let rows = store
        .raw_rows(<fapiao_store::tables::StateWritten as fapiao_store::tables::Table>::NAME)
        .count() as u64;
    assert_eq!(rows, fapiao_store::STATE_VERSIONS_KEPT);
    drop(store);
    // Replay rebuilds with the default retention, which keeps every version: a version
    // only one side keeps is no difference, and the ones both keep are equal.
    let report = audit(dir.path(), &g);
    assert!(report.is_clean(), "{report:?}");
}

/// Replay's scratch store (no days of retention, unlogged, bounded memory) ends as a
/// node with no days of retention would: the versions of each chain's last
/// `STATE_VERSIONS_KEPT` blocks, which prove as of those heights, and none older. (It
/// writes only those, instead of writing every block's and pruning behind it; this
/// holds that shortcut to the end pruning reaches.)
#[test]
fn a_scratch_replay_versions_only_the_last_blocks_it_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    let head = fapiao_store::STATE_VERSIONS_KEPT + 30;
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        for h in 1..=head {
            commit(&store, &g, h, vec![pay(&format!("P{h}"), 1000)]);
        }
    }
    let source = Store::open(
        dir.path(),
        &StoreOptions {
            read_only: true,
            bounded_memory: true,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let target = Store::open(
        fresh.path(),
        &StoreOptions {
            scratch: true,
            bounded_memory: true,
            state_history_days: 0,
            block_cache_bytes: 8 << 20,
            memtable_bytes: 4 << 20,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let report = replay(&source, &target, &g, ReplayOptions::default(), &mut |_| {}).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let oldest = head - fapiao_store::STATE_VERSIONS_KEPT;
    assert_eq!(target.oldest_kept(chain()).unwrap(), oldest);
    assert!(target.state_at(chain(), oldest - 1).unwrap().is_none());
    for v in [oldest, oldest + 1, head - 1, head] {
        assert_proves_as_of(&target, v);
    }
    let rows = |store: &Store, table: &'static str| store.raw_rows(table).count() as u64;
    use fapiao_store::tables::{StateVersions, StateWritten, Table, TreeVersions};
    assert_eq!(rows(&target, StateWritten::NAME), fapiao_store::STATE_VERSIONS_KEPT);
    // The source keeps every block's versions (45 days); the target far fewer.
    assert_eq!(rows(&source, StateWritten::NAME), head);
    for table in [StateVersions::NAME, TreeVersions::NAME] {
        assert!(rows(&target, table) < rows(&source, table), "{table}");
    }
}

/// Replays the ledger at `source` into a fresh scratch store at `target` with tiny
/// memtables (so blocks reach the disk as they are replayed) on another thread, and
/// fails the test if it takes over a minute: a replay must end, with its report or an
/// error. (Memtables charged to the cache with writes allowed to stall on them hung
/// replay for good; the test below then fails here.) Returns the result and the number of
/// blocks written.
fn replay_within_a_minute(
    source: &std::path::Path,
    target: &std::path::Path,
) -> (Result<fapiao_store::replay::ReplayReport, StoreError>, u64) {
    let (source, target) = (source.to_path_buf(), target.to_path_buf());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let source = Store::open(
            &source,
            &StoreOptions {
                read_only: true,
                bounded_memory: true,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let target = Store::open(
            &target,
            &StoreOptions {
                scratch: true,
                bounded_memory: true,
                state_history_days: 0,
                block_cache_bytes: 4 << 20,
                memtable_bytes: 256 << 10,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let mut blocks = 0;
        let result = replay(&source, &target, &genesis(), ReplayOptions::default(), &mut |n| {
            blocks = n
        });
        let _ = tx.send((result, blocks));
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the replay neither finished nor failed in a minute: it hangs")
}

/// A replay whose store fills its disk stops with the store's error, naming the full
/// disk, instead of hanging or panicking on the thread that writes its blocks; the
/// ledger it reads is untouched and replays clean once there is room.
#[test]
fn a_replay_that_fills_its_disk_stops_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        for h in 1..=300 {
            let pays = (0..10).map(|i| pay(&format!("P{h}-{i}"), 1000 + i)).collect();
            commit(&store, &g, h, pays);
        }
    }
    let root = tempfile::tempdir().unwrap();
    let disk = fapiao_testkit::disk::SmallDisk::mount(&root.path().join("disk"), 2);
    let (result, blocks) = replay_within_a_minute(dir.path(), &disk.dir.join("replay"));
    let err = result.unwrap_err();
    assert!(err.is_no_space(), "{err}");
    // It failed on the thread that writes blocks, some blocks in: not at the start.
    assert!((1..300).contains(&blocks), "{blocks} blocks written before the error");
    drop(disk);
    let roomy = tempfile::tempdir().unwrap();
    let (result, blocks) = replay_within_a_minute(dir.path(), roomy.path());
    let report = result.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((blocks, report.counts.events), (300, 3000));
}

/// A version changed on disk differs from the one replay derives, and is reported.
#[test]
fn a_state_version_changed_on_disk_is_found_by_replay() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    build(dir.path(), &g);
    {
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), fapiao_store::tables::ALL).unwrap();
        let cf = db.cf_handle("state_versions").unwrap();
        let (k, _) = db
            .iterator_cf(cf, rocksdb::IteratorMode::Start)
            .next()
            .unwrap()
            .unwrap();
        db.put_cf(cf, &k, fapiao_core::codec::to_bytes(&Some(vec![1u8, 2, 3])))
            .unwrap();
    }
    let report = audit(dir.path(), &g);
    assert!(
        report
            .anomalies
            .iter()
            .any(|a| a.kind == "state_version" && a.detail.contains("differs")),
        "{report:?}"
    );
}

/// A version row deleted on disk, in a block whose versions the live store keeps, is
/// missing from what replay derives, and is reported: in each versioned table. (A row the
/// live store pruned is no difference: see the retention test above.)
#[test]
fn a_state_version_deleted_on_disk_is_found_by_replay() {
    for table in ["tree_versions", "state_versions", "state_written"] {
        let dir = tempfile::tempdir().unwrap();
        let g = genesis();
        build(dir.path(), &g);
        {
            let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), fapiao_store::tables::ALL).unwrap();
            let cf = db.cf_handle(table).unwrap();
            let (k, _) = db.iterator_cf(cf, rocksdb::IteratorMode::End).next().unwrap().unwrap();
            db.delete_cf(cf, &k).unwrap();
        }
        let report = audit(dir.path(), &g);
        assert!(
            report
                .anomalies
                .iter()
                .any(|a| a.kind == "state_version" && a.detail.contains(table) && a.detail.contains("missing")),
            "{table}: {report:?}"
        );
    }
}

/// Rewrites every page version of the ledger at `dir` as the whole page before its
/// block, as ledgers written before deltas kept them: each page's versions undone from
/// its current page down, newest first. Returns how many rows were deltas.
fn page_versions_as_whole_pages(dir: &std::path::Path) -> usize {
    use fapiao_store::pages::{Page, PageVersion};
    use fapiao_store::tables::{Table, Tree, TreeVersions};
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, fapiao_store::tables::ALL).unwrap();
    let (tree, versions) = (
        db.cf_handle(Tree::NAME).unwrap(),
        db.cf_handle(TreeVersions::NAME).unwrap(),
    );
    let rows: Vec<_> = db
        .iterator_cf(versions, rocksdb::IteratorMode::End)
        .map(|r| r.unwrap())
        .collect();
    let mut deltas = 0;
    let mut after: Option<(Vec<u8>, Option<Page>)> = None;
    for (key, value) in rows {
        let (chain, at, _) = TreeVersions::decode(&key).unwrap();
        let page_key = Tree::key(&(chain, at));
        let now = match after.take() {
            Some((k, page)) if k == page_key => page,
            _ => db
                .get_cf(tree, &page_key)
                .unwrap()
                .map(|b| Page::from_bytes(&b).unwrap()),
        };
        let stored: Option<Vec<u8>> = fapiao_core::codec::decode(&value).unwrap();
        let version = PageVersion::from_stored(stored.as_deref()).unwrap();
        deltas += matches!(version, PageVersion::Delta(_)) as usize;
        let before = version.undo(now);
        let whole = PageVersion::Whole(before.clone()).to_stored();
        db.put_cf(versions, &key, fapiao_core::codec::to_bytes(&whole)).unwrap();
        after = Some((page_key, before));
    }
    deltas
}

/// A ledger written before page versions held only what each block changed keeps the
/// whole page before each block: it still reads and proves its state as of every kept
/// height, its audit finds the whole pages the same as the deltas replay derives, a
/// whole page that says otherwise is still found, and a reset rewinds through them.
#[test]
fn page_versions_kept_as_whole_pages_still_prove_audit_and_rewind() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    build(dir.path(), &g);
    assert!(page_versions_as_whole_pages(dir.path()) > 0, "the commit keeps deltas");
    assert_eq!(page_versions_as_whole_pages(dir.path()), 0, "all whole now");
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        for v in 1..=20 {
            assert_proves_as_of(&store, v);
        }
        commit(&store, &g, 21, vec![pay("P21", 1000)]);
        assert_proves_as_of(&store, 20);
        assert_proves_as_of(&store, 3);
    }
    let report = audit(dir.path(), &g);
    assert!(report.is_clean(), "{report:?}");
    // One whole page changed on disk: its first node's hash.
    let damaged = tempfile::tempdir().unwrap();
    build(damaged.path(), &g);
    page_versions_as_whole_pages(damaged.path());
    {
        use fapiao_store::tables::{Table, TreeVersions};
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), damaged.path(), fapiao_store::tables::ALL).unwrap();
        let cf = db.cf_handle(TreeVersions::NAME).unwrap();
        let (k, v) = db
            .iterator_cf(cf, rocksdb::IteratorMode::End)
            .map(|r| r.unwrap())
            .find(|(_, v)| v.len() > 40)
            .unwrap();
        let mut v = v.to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        db.put_cf(cf, &k, v).unwrap();
    }
    let report = audit(damaged.path(), &g);
    assert!(
        report
            .anomalies
            .iter()
            .any(|a| a.kind == "state_version" && a.detail.contains("tree_versions") && a.detail.contains("differs")),
        "{report:?}"
    );
    // A reset rewinds the state through the whole pages.
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let kept = store.header(chain(), 12).unwrap().unwrap();
        store.set_aside(&g, &Epochs::new(&g), chain(), 12).unwrap();
        assert_eq!(store.state_root(chain()).unwrap(), kept.body.state_root);
    }
    let report = audit(dir.path(), &g);
    assert!(report.is_clean(), "{report:?}");
}

/// A ledger written before versioned state (one undo row per block in `state_undo`) is
/// upgraded in place when its node opens it: the old undo goes, and the state is kept as
/// of the head on, as new blocks commit.
#[test]
fn a_ledger_with_per_block_undo_takes_up_versions_at_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    build(dir.path(), &g);
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(false);
        let mut db = rocksdb::DB::open_cf(&opts, dir.path(), fapiao_store::tables::ALL).unwrap();
        db.create_cf("state_undo", &rocksdb::Options::default()).unwrap();
        for name in ["state_written", "tree_versions", "state_versions"] {
            db.drop_cf(name).unwrap();
        }
    }
    let err = Store::open(
        dir.path(),
        &StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        },
    )
    .err()
    .expect("a read-only open cannot upgrade");
    assert!(err.to_string().contains("before versioned state"), "{err}");
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert!(
        store.state_at(chain(), 19).unwrap().is_none(),
        "no versions below the head"
    );
    assert!(store.state_at(chain(), 20).unwrap().is_some());
    commit(&store, &g, 21, vec![pay("P21", 1000)]);
    assert_proves_as_of(&store, 20);
    assert_proves_as_of(&store, 21);
    drop(store);
    let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
    assert!(!cfs.iter().any(|c| c == "state_undo"), "{cfs:?}");
}

/// A chain reset sets aside the blocks above the height it keeps: the chain, its state,
/// its state tree and every index are then exactly those of a ledger that never held
/// them (replay compares every derived row), the blocks stay on record, and the
/// business ids they used are free to be recorded again.
#[test]
fn blocks_set_aside_by_a_reset_leave_the_ledger_as_if_never_held() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    build(dir.path(), &g);
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let kept = store.header(chain(), 12).unwrap().unwrap();
        let p15 = store.block(chain(), 15).unwrap().unwrap().entries[0].id();
        assert!(store.locate(&p15).unwrap().is_some());
        let aside = store.set_aside(&g, &Epochs::new(&g), chain(), 12).unwrap();
        assert_eq!(
            aside.iter().map(|b| b.header.body.height).collect::<Vec<_>>(),
            (13..=20).collect::<Vec<_>>()
        );
        let head = store.head(chain()).unwrap().unwrap();
        assert_eq!((head.height, head.hash), (12, kept.hash()));
        assert_eq!(store.state_root(chain()).unwrap(), kept.body.state_root);
        assert!(store.block(chain(), 13).unwrap().is_none());
        assert!(store.locate(&p15).unwrap().is_none(), "the entry index forgets it");
        assert_eq!(read_payment(&store, "P15").ok(), Some(()));
        assert!(
            fapiao_domain::StateRead::get(&store.state(chain()), &StateKey::Payment("P15".into()))
                .unwrap()
                .is_none(),
            "the state is as of height 12"
        );
        assert!(
            fapiao_domain::StateRead::get(&store.state(chain()), &StateKey::Payment("P12".into()))
                .unwrap()
                .is_some()
        );
        assert_eq!(store.set_aside_blocks(chain()).unwrap(), aside, "on record");
        // Nothing above the head: setting aside again changes nothing.
        assert!(store.set_aside(&g, &Epochs::new(&g), chain(), 12).unwrap().is_empty());
        // The payment ids of the set-aside blocks can be recorded again.
        commit(&store, &g, 13, vec![pay("P15", 1000), pay("P13", 500)]);
    }
    let report = audit(dir.path(), &g);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.counts.payments, 14);
}

/// More blocks above the kept height than the state versions cover (pruned past the
/// retention): the chain's state is rebuilt from the blocks kept, to the same ledger.
#[test]
fn a_set_aside_deeper_than_the_versions_kept_rebuilds_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    {
        let store = Store::open(dir.path(), &history_days(0)).unwrap();
        let deep = fapiao_store::STATE_VERSIONS_KEPT + 4;
        for h in 1..=deep {
            commit(&store, &g, h, vec![pay(&format!("P{h}"), 100)]);
        }
        let kept = store.header(chain(), 3).unwrap().unwrap();
        let aside = store.set_aside(&g, &Epochs::new(&g), chain(), 3).unwrap();
        assert_eq!(aside.len() as u64, deep - 3);
        let head = store.head(chain()).unwrap().unwrap();
        assert_eq!((head.height, head.hash), (3, kept.hash()));
        assert_eq!(store.state_root(chain()).unwrap(), kept.body.state_root);
        commit(&store, &g, 4, vec![pay("P9", 100)]);
    }
    let report = audit(dir.path(), &g);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.counts.payments, 4);
}
