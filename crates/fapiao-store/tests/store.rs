//! The store on a real RocksDB: atomic block commits, reopening, corruption found at
//! open with the repair path, and replay.

use fapiao_core::block::entries_root;
use fapiao_core::event::*;
use fapiao_core::genesis::{Member, Role};
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
        Fen(10),
        vec![TaxRate(600)],
        vec![Member {
            code: MemberCode::new(110_001).unwrap(),
            name: "M".into(),
            role: Role::Merchant,
            key: key().public(),
            addresses: vec![],
            policy: Some(MerchantPolicy {
                permitted_types: vec![InvoiceType::Normal],
                max_invoice_total: Fen(1_000_000),
            }),
            initial_fee_balance: Fen(1000),
        }],
    )
    .unwrap()
}

fn chain() -> MemberCode {
    MemberCode::new(110_001).unwrap()
}

/// Executes and commits one block of `kinds` signed by the owner.
fn commit(store: &Store, g: &Genesis, height: u64, kinds: Vec<EventKind>) {
    let k = key();
    let events: Vec<Event> = kinds
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
        .collect();
    let ctx = ChainContext::new(g, chain()).unwrap();
    let bc = BlockContext {
        height,
        timestamp: Timestamp(1_767_225_600_000 + height),
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
    EventKind::PaymentRecorded(PaymentRecorded {
        payment_id: id.into(),
        amount: Fen(fen),
        currency: Currency::Cny,
        method: PaymentMethod::Cash,
        terminal_id: String::new(),
        external_ref: String::new(),
    })
}

fn invoice(id: &str, payment: &str) -> EventKind {
    EventKind::InvoiceRequested(InvoiceRequested {
        request_id: id.into(),
        invoice_type: InvoiceType::Normal,
        buyer: Buyer {
            name: "B".into(),
            tax_id: None,
        },
        lines: vec![LineItem {
            description: "x".into(),
            quantity: Quantity(1000),
            unit_price: Fen(100),
            tax_rate: TaxRate(600),
        }],
        payment_ids: vec![payment.into()],
        retry_of: None,
        replaces: None,
    })
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
        let mut bad = v.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        db.put_cf(cf, &k, &bad).unwrap();
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
                p.amount = Fen(999_999);
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
