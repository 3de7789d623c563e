//! Criterion benchmarks: event encode/decode, event id, single and batch verification.
//! `cargo bench -p fapiao-core`.
#![allow(missing_docs)] // criterion_group! generates an undocumented public fn.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use fapiao_core::event::*;
use fapiao_core::sig::{verify, verify_batch, BatchItem};
use fapiao_core::*;

fn event(i: u64, key: &SecretKey) -> Event {
    EventBody {
        network: NetworkId(Hash32([7; 32])),
        chain: MemberCode::new(110_001).unwrap(),
        author: key.public(),
        timestamp: Timestamp(1_767_225_600_000 + i),
        kind: EventKind::InvoiceRequested(InvoiceRequested {
            request_id: format!("REQ-{i:08}"),
            invoice_type: InvoiceType::Normal,
            buyer: Buyer {
                name: "Shanghai Trading Co., Ltd.".into(),
                tax_id: Some("91110000600037341L".into()),
            },
            lines: vec![LineItem {
                description: "Oolong tea, 250 g".into(),
                tax_code: "3070401000000000000".into(),
                quantity: Quantity(2000),
                unit_price: Fen::from_fen(8800),
                tax_rate: TaxRate::Bp(1300),
            }],
            payment_ids: vec![format!("PAY-{i:08}")],
            retry_of: None,
            replaces: None,
        }),
    }
    .sign(key)
}

/// The batch of `events`' signatures over their ids.
fn batch<'a>(events: &'a [Event], ids: &'a [Hash32]) -> Vec<BatchItem<'a>> {
    events
        .iter()
        .zip(ids)
        .map(|(e, id)| BatchItem {
            key: &e.body.author,
            digest: id,
            signature: &e.signature,
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let key = SecretKey::from_seed(&[1; 32]);
    let e = event(1, &key);
    let bytes = codec::to_bytes(&e);
    let mut g = c.benchmark_group("event");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| b.iter(|| codec::to_bytes(black_box(&e))));
    g.bench_function("decode", |b| {
        b.iter(|| codec::decode::<Event>(black_box(&bytes)).unwrap())
    });
    g.bench_function("id", |b| b.iter(|| black_box(&e).id()));
    let id = e.id();
    g.bench_function("verify_single", |b| {
        b.iter(|| verify(black_box(&e.body.author), black_box(&id.0), black_box(&e.signature)).unwrap())
    });
    g.finish();

    let keys: Vec<SecretKey> = (0..64u8).map(|i| SecretKey::from_seed(&[i; 32])).collect();
    let events: Vec<Event> = (0..64u64).map(|i| event(i, &keys[i as usize])).collect();
    let ids: Vec<Hash32> = events.iter().map(|e| e.id().0).collect();
    let mut g = c.benchmark_group("verify64");
    g.throughput(Throughput::Elements(64));
    g.bench_function("batch", |b| {
        b.iter(|| verify_batch(black_box(&batch(&events, &ids))).unwrap())
    });
    // One POS terminal's key signs the whole batch.
    let pos: Vec<Event> = (0..64u64).map(|i| event(i, &keys[0])).collect();
    let pos_ids: Vec<Hash32> = pos.iter().map(|e| e.id().0).collect();
    g.bench_function("batch_one_signer", |b| {
        b.iter(|| verify_batch(black_box(&batch(&pos, &pos_ids))).unwrap())
    });
    g.bench_function("one_by_one", |b| {
        b.iter(|| {
            for (e, id) in events.iter().zip(&ids) {
                verify(&e.body.author, id, &e.signature).unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(core, benches);
criterion_main!(core);
