//! `fapiao bench`: throughput of one node with pre-signed events, in process or over
//! HTTP with batches. A benchmark, not a test: it reports what it measured.

use crate::dev;
use anyhow::{bail, Context, Result};
use fapiao_core::event::*;
use fapiao_core::{codec, Event, EventBody, Fen, MemberCode, Quantity, SecretKey, TaxRate, Timestamp};
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pre-signs `n` events: four payments then an invoice request for the last of them,
/// repeating, so a fifth of the events derive an issued invoice.
fn presign(key: &SecretKey, network: fapiao_core::NetworkId, n: usize) -> Vec<Event> {
    presign_for(
        key,
        network,
        MemberCode::new(dev::DEV_CHAIN).unwrap_or_else(|| unreachable!()),
        n,
        "B",
    )
}

/// As [`presign`], for `chain`, with business ids prefixed by `tag`.
pub(crate) fn presign_for(
    key: &SecretKey,
    network: fapiao_core::NetworkId,
    chain: MemberCode,
    n: usize,
    tag: &str,
) -> Vec<Event> {
    (0..n)
        .into_par_iter()
        .map(|i| {
            let kind = if i % 5 == 4 {
                EventKind::InvoiceRequested(InvoiceRequested {
                    request_id: format!("{tag}-R{i}"),
                    invoice_type: InvoiceType::Normal,
                    buyer: Buyer {
                        name: "Bench Buyer Co".into(),
                        tax_id: Some("91110000600037341L".into()),
                    },
                    lines: vec![LineItem {
                        description: "Oolong tea".into(),
                        tax_code: "3070401000000000000".into(),
                        quantity: Quantity(1000),
                        unit_price: Fen::from_fen(1000),
                        tax_rate: TaxRate::Bp(600),
                    }],
                    payment_ids: vec![format!("{tag}-P{}", i - 1)],
                    retry_of: None,
                    replaces: None,
                })
            } else {
                EventKind::PaymentRecorded(PaymentRecorded {
                    payment_id: format!("{tag}-P{i}"),
                    amount: Fen::from_fen(5000),
                    currency: Currency::Cny,
                    method: PaymentMethod::Wechat,
                    terminal_id: "POS-1".into(),
                    external_ref: format!("wx{i}"),
                })
            };
            EventBody {
                network,
                chain,
                author: key.public(),
                timestamp: Timestamp(1),
                kind,
            }
            .sign(key)
        })
        .collect()
}

// Long: one measured scenario; its phases share the engine and the clock it reads.
pub(crate) fn run(data: &Path, events: usize, batch: usize, http: bool, clients: usize) -> Result<()> {
    if data.exists() {
        bail!("{} exists; the benchmark makes a fresh network there", data.display());
    }
    // The ceiling first, on an idle machine: what the same cores verify per second.
    let limit = crate::siglimit::Limit::measure(Duration::from_secs(2));
    println!("{}", limit.describe());
    // An opening fee balance that covers every invoice of the run.
    dev::init_with(data, None, Fen::from_fen(1_000_000_000_000))?;
    let mut cfg = crate::config::load(&data.join("node.toml"))?;
    // Measure throughput, not the admission cap: let every event wait for a block.
    cfg.config.engine.pending_max = events + 10_000;
    let g = crate::files::read_genesis(&cfg.path(&cfg.config.genesis))?;
    let client_key = crate::files::read_key_file(&data.join("client.key"))?;
    let t0 = Instant::now();
    let signed = presign(&client_key, g.network_id(), events);
    eprintln!("pre-signed {events} events in {:.1} s", t0.elapsed().as_secs_f64());
    let encoded: Vec<Vec<u8>> = signed.par_iter().map(codec::to_bytes).collect();
    drop(signed);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let running = crate::run::start(&cfg).await?;
        // The bootstrap authorisation first.
        let boot = data.join("bootstrap.events");
        let text = std::fs::read_to_string(&boot)?;
        let boot_events: Vec<Event> = codec::decode(&hex::decode(text.trim())?)?;
        let boot_id = boot_events[0].id();
        running
            .engine
            .admit(boot_events.iter().map(codec::to_bytes).collect())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        while running.engine.event_status(&boot_id)? == fapiao_engine::EventStatus::Pending {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        std::fs::remove_file(&boot)?;
        let engine = running.engine.clone();
        let start_height = engine.store().head(engine.chain())?.map(|h| h.height).unwrap_or(0);
        let committed_before = engine
            .metrics()
            .events_committed
            .load(std::sync::atomic::Ordering::Relaxed);
        let chunks: Vec<Vec<Vec<u8>>> = encoded.chunks(batch).map(|c| c.to_vec()).collect();
        let chunks = Arc::new(std::sync::Mutex::new(chunks.into_iter()));
        let started = Instant::now();
        // Each mode only differs in how events reach the engine; the measuring is shared.
        let (mode, admitted, server) = if http {
            let mut tasks = Vec::new();
            let url = format!("http://{}", running.addr);
            let server = tokio::spawn(running.serve());
            for _ in 0..clients {
                let chunks = chunks.clone();
                let url = url.clone();
                tasks.push(tokio::task::spawn_blocking(move || -> Result<usize> {
                    let http = reqwest::blocking::Client::new();
                    let mut ok = 0;
                    loop {
                        let Some(c) = chunks.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                            return Ok(ok);
                        };
                        let body = serde_json::json!({"events": c.iter().map(hex::encode).collect::<Vec<_>>()});
                        let r: serde_json::Value =
                            http.post(format!("{url}/v1/events/batch")).json(&body).send()?.json()?;
                        ok += r["accepted"].as_u64().unwrap_or(0) as usize;
                    }
                }));
            }
            let mut admitted = 0;
            for t in tasks {
                admitted += t.await??;
            }
            ("http", admitted, Some(server))
        } else {
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let chunks = chunks.clone();
                let engine = engine.clone();
                tasks.push(tokio::spawn(async move {
                    let mut ok = 0usize;
                    loop {
                        let next = chunks.lock().unwrap_or_else(|p| p.into_inner()).next();
                        let Some(c) = next else { return ok };
                        if let Ok(answers) = engine.admit(c).await {
                            ok += answers.iter().filter(|a| a.is_ok()).count();
                        }
                    }
                }));
            }
            let mut admitted = 0;
            for t in tasks {
                admitted += t.await?;
            }
            ("in-process", admitted, None)
        };
        let admit_secs = started.elapsed().as_secs_f64();
        let total = wait_committed(&engine, committed_before, admitted).await;
        let commit_secs = started.elapsed().as_secs_f64();
        report(
            mode,
            events,
            batch,
            clients,
            admitted,
            admit_secs,
            total,
            commit_secs,
            &engine,
            start_height,
        )?;
        // Every event of the run is signed by the one client key.
        println!(
            "  committed rate against the limit: {}",
            limit.ratio(total as f64 / commit_secs)
        );
        if let Some(server) = server {
            server.abort();
        }
        let e2 = engine.clone();
        tokio::task::spawn_blocking(move || e2.stop()).await?;
        Ok::<_, anyhow::Error>(())
    })
    .context("benchmark failed")
}

async fn wait_committed(engine: &fapiao_engine::Engine, before: u64, admitted: usize) -> u64 {
    loop {
        let c = engine
            .metrics()
            .events_committed
            .load(std::sync::atomic::Ordering::Relaxed)
            + engine
                .metrics()
                .events_rejected_execution
                .load(std::sync::atomic::Ordering::Relaxed);
        if c >= before + admitted as u64 {
            return c - before;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    mode: &str,
    events: usize,
    batch: usize,
    clients: usize,
    admitted: usize,
    admit_secs: f64,
    committed: u64,
    commit_secs: f64,
    engine: &fapiao_engine::Engine,
    start_height: u64,
) -> Result<()> {
    let head = engine.store().head(engine.chain())?.map(|h| h.height).unwrap_or(0);
    let m = engine.metrics();
    let rejected = m.events_rejected_execution.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{mode}: {events} pre-signed events, batches of {batch}, {clients} concurrent submitters\n\
         \x20 admitted  {admitted} in {admit_secs:.2} s = {:.0} events/s (durable, acknowledged)\n\
         \x20 committed {committed} in {commit_secs:.2} s = {:.0} events/s ({} blocks, {} rejected at execution)\n\
         \x20 derived events {}",
        admitted as f64 / admit_secs,
        committed as f64 / commit_secs,
        head - start_height,
        rejected,
        m.derived_committed.load(std::sync::atomic::Ordering::Relaxed),
    );
    Ok(())
}
