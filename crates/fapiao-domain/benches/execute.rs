//! Criterion benchmarks of block execution: a fee deposit that re-issues the 1,000
//! requests waiting in the fee queue, against a block of 1,000 fresh invoice requests
//! issued directly (the same invoices by the ordinary path).
//! `cargo bench -p fapiao-domain`.
#![allow(missing_docs)] // criterion_group! generates an undocumented public fn.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use fapiao_core::event::*;
use fapiao_core::*;
use fapiao_domain::execute::FEE_BLOCKED_MAX;
use fapiao_domain::{execute_block, BlockContext, ChainContext};
use fapiao_testkit::world::*;

const N: usize = FEE_BLOCKED_MAX;

fn deposit(w: &World, id: &str, fen: i64) -> Event {
    w.event(
        &w.operator,
        EventKind::FeeDeposited(FeeDeposited {
            deposit_id: id.into(),
            amount: Fen::from_fen(fen),
        }),
    )
}

/// A world with `N + 10` payments; the genesis balance pays for 10 invoices.
fn paid() -> World {
    let mut w = World::new();
    let pays: Vec<Event> = (0..N + 10)
        .map(|i| w.event(&w.owner, EventKind::PaymentRecorded(payment(&format!("P{i}"), 10_000))))
        .collect();
    w.block(&pays);
    w
}

/// Requests `R{i}` for payments `P{i}`, `i` in `from..from + N`.
fn requests(w: &World, prefix: &str, from: usize) -> Vec<Event> {
    (from..from + N)
        .map(|i| {
            w.event(
                &w.owner,
                EventKind::InvoiceRequested(request(&format!("{prefix}{i}"), &[&format!("P{i}")])),
            )
        })
        .collect()
}

/// The context of the block after `w`'s last.
fn next(w: &World) -> (ChainContext<'_>, BlockContext) {
    (
        ChainContext::new(&w.genesis, w.genesis.config(), w.chain).unwrap(),
        BlockContext {
            height: w.height + 1,
            timestamp: Timestamp(w.time + 1000),
        },
    )
}

fn execute(c: &mut Criterion) {
    let mut g = c.benchmark_group("execute");
    g.sample_size(20);
    g.throughput(Throughput::Elements(N as u64));

    // Fee-blocked: 10 requests issue on the genesis balance, the next N fail and wait.
    let mut blocked = paid();
    let mut first = requests(&blocked, "F", N);
    first.truncate(10);
    blocked.block(&first);
    let waiting = requests(&blocked, "R", 0);
    let ex = blocked.block(&waiting);
    assert_eq!(ex.entries.len(), 2 * N, "every request failed and was recorded");
    let dep = deposit(&blocked, "D", N as i64 * 10);
    let (ctx, bc) = next(&blocked);
    let once = execute_block(&ctx, &bc, &blocked.state, std::slice::from_ref(&dep)).unwrap();
    assert_eq!(once.entries.len(), 1 + N, "the deposit re-issues every waiting request");
    g.bench_function("deposit_reissues_1000_waiting", |b| {
        b.iter(|| execute_block(&ctx, &bc, black_box(&blocked.state), std::slice::from_ref(&dep)).unwrap())
    });

    // The same invoices requested with the balance already there.
    let mut funded = paid();
    let d = deposit(&funded, "D", N as i64 * 10);
    funded.block(&[d]);
    let fresh = requests(&funded, "R", 0);
    let (ctx, bc) = next(&funded);
    let once = execute_block(&ctx, &bc, &funded.state, &fresh).unwrap();
    assert_eq!(once.entries.len(), 2 * N, "every request is issued");
    g.bench_function("block_of_1000_requests_issued", |b| {
        b.iter(|| execute_block(&ctx, &bc, black_box(&funded.state), &fresh).unwrap())
    });
    g.finish();
}

criterion_group!(benches, execute);
criterion_main!(benches);
