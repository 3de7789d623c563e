//! `fapiao bench`: throughput of one node with pre-signed events, in process or over
//! HTTP with batches. A benchmark, not a test: it reports what it measured.

use crate::dev;
use anyhow::{bail, Context, Result};
use fapiao_core::event::*;
use fapiao_core::{codec, Event, EventBody, Fen, MemberCode, Quantity, SecretKey, TaxRate, Timestamp};
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pre-signs `n` events for `chain`, business ids prefixed by `tag`: four payments then
/// an invoice request for the last of them, repeating, so a fifth of the events derive
/// an issued invoice.
pub(crate) fn presign_for(
    key: &SecretKey,
    network: fapiao_core::NetworkId,
    chain: MemberCode,
    n: usize,
    tag: &str,
) -> Vec<Event> {
    presign_range(key, network, chain, 0..n, tag)
}

/// Events `range` of the sequence [`presign_for`] makes.
fn presign_range(
    key: &SecretKey,
    network: fapiao_core::NetworkId,
    chain: MemberCode,
    range: std::ops::Range<usize>,
    tag: &str,
) -> Vec<Event> {
    range
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

/// Events pre-signed at a time and written to the event file: the benchmark holds one
/// such chunk, not the run, so `--events 10000000` fits in bounded memory.
const PRESIGN_CHUNK: usize = 100_000;

/// How long a submitter waits before offering again the events the node refused as
/// busy (its pending set is full; a full set refuses a whole submission at the door).
const BUSY_PAUSE: Duration = Duration::from_millis(20);

/// Pre-signs `events` events into `path`, chunk by chunk: each event's canonical bytes
/// after their length (4 bytes, little-endian).
fn presign_to_file(key: &SecretKey, network: fapiao_core::NetworkId, path: &Path, events: usize) -> Result<()> {
    let chain = MemberCode::new(dev::DEV_CHAIN).unwrap_or_else(|| unreachable!());
    let mut out = BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?);
    for start in (0..events).step_by(PRESIGN_CHUNK) {
        let end = (start + PRESIGN_CHUNK).min(events);
        let encoded: Vec<Vec<u8>> = presign_range(key, network, chain, start..end, "B")
            .par_iter()
            .map(codec::to_bytes)
            .collect();
        for e in encoded {
            out.write_all(&(e.len() as u32).to_le_bytes())?;
            out.write_all(&e)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The event file, read a batch at a time by the submitters.
struct EventFile(BufReader<File>);

impl EventFile {
    /// The next `n` events (fewer at the end, none after it).
    fn next_batch(&mut self, n: usize) -> Result<Vec<Vec<u8>>> {
        let mut batch = Vec::with_capacity(n);
        let mut len = [0u8; 4];
        while batch.len() < n {
            match self.0.read_exact(&mut len) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
            let mut e = vec![0u8; u32::from_le_bytes(len) as usize];
            self.0.read_exact(&mut e)?;
            batch.push(e);
        }
        Ok(batch)
    }
}

/// Peak resident memory of this process so far, in MiB (`VmHWM`).
pub(crate) fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
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
    let cfg = crate::config::load(&data.join("node.toml"))?;
    let g = crate::files::read_genesis(&cfg.path(&cfg.config.genesis))?;
    let client_key = crate::files::read_key_file(&data.join("client.key"))?;
    let t0 = Instant::now();
    let event_file = data.join("bench-events.bin");
    presign_to_file(&client_key, g.network_id(), &event_file, events)?;
    eprintln!(
        "pre-signed {events} events into {} in {:.1} s",
        event_file.display(),
        t0.elapsed().as_secs_f64()
    );
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
        let committed_before = committed_so_far(&engine);
        let file = Arc::new(std::sync::Mutex::new(EventFile(BufReader::new(File::open(
            &event_file,
        )?))));
        let next = move |file: &std::sync::Mutex<EventFile>| -> Result<Vec<Vec<u8>>> {
            file.lock().unwrap_or_else(|p| p.into_inner()).next_batch(batch)
        };
        let started = Instant::now();
        // The committed count at every tenth of the run, to compare its first and last.
        let tenths = tokio::spawn(watch_tenths(engine.clone(), committed_before, events, started));
        // Each mode only differs in how events reach the engine; the measuring is shared.
        // A submitter offers events the node refused as busy again after a pause, as a
        // client would: the pending set stays within its configured bound.
        let (mode, admitted, server) = if http {
            let mut tasks = Vec::new();
            let url = format!("http://{}", running.addr);
            let server = tokio::spawn(running.serve());
            for _ in 0..clients {
                let file = file.clone();
                let url = url.clone();
                tasks.push(tokio::task::spawn_blocking(move || -> Result<usize> {
                    let http = reqwest::blocking::Client::new();
                    let mut ok = 0;
                    loop {
                        let mut todo = next(&file)?;
                        if todo.is_empty() {
                            return Ok(ok);
                        }
                        while !todo.is_empty() {
                            let body = serde_json::json!({"events": todo.iter().map(hex::encode).collect::<Vec<_>>()});
                            let sent = http.post(format!("{url}/v1/events/batch")).json(&body).send()?;
                            if sent.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                                std::thread::sleep(BUSY_PAUSE);
                                continue;
                            }
                            let r: fapiao_api::dto::BatchResponse = sent.error_for_status()?.json()?;
                            ok += r.accepted;
                            todo = todo
                                .into_iter()
                                .zip(r.results)
                                .filter(|(_, res)| {
                                    res.error
                                        .as_ref()
                                        .is_some_and(|e| e.code == fapiao_domain::ErrorCode::Busy.as_str())
                                })
                                .map(|(e, _)| e)
                                .collect();
                            if !todo.is_empty() {
                                std::thread::sleep(BUSY_PAUSE);
                            }
                        }
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
                let file = file.clone();
                let engine = engine.clone();
                tasks.push(tokio::spawn(async move {
                    let mut ok = 0usize;
                    loop {
                        let mut todo = next(&file)?;
                        if todo.is_empty() {
                            return Ok::<_, anyhow::Error>(ok);
                        }
                        while !todo.is_empty() {
                            let answers = match engine.admit(todo.clone()).await {
                                Ok(a) => a,
                                Err(fapiao_engine::AdmitError::Busy { .. }) => {
                                    tokio::time::sleep(BUSY_PAUSE).await;
                                    continue;
                                }
                                Err(e) => anyhow::bail!("submission refused: {e}"),
                            };
                            ok += answers.iter().filter(|a| a.is_ok()).count();
                            todo = todo
                                .into_iter()
                                .zip(answers)
                                .filter(|(_, a)| matches!(a, Err(fapiao_engine::AdmitError::Busy { .. })))
                                .map(|(e, _)| e)
                                .collect();
                            if !todo.is_empty() {
                                tokio::time::sleep(BUSY_PAUSE).await;
                            }
                        }
                    }
                }));
            }
            let mut admitted = 0;
            for t in tasks {
                admitted += t.await??;
            }
            ("in-process", admitted, None)
        };
        let admit_secs = started.elapsed().as_secs_f64();
        let total = wait_committed(&engine, committed_before, admitted).await;
        let commit_secs = started.elapsed().as_secs_f64();
        let tenths = tenths.await?;
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
        print_tenths(&tenths, events);
        print_proofs(&engine, &g)?;
        print_disk(&engine, total)?;
        if let Some(mib) = peak_rss_mib() {
            println!("  peak resident memory of the benchmark process (node included): {mib:.0} MiB");
        }
        if let Some(server) = server {
            server.abort();
        }
        let e2 = engine.clone();
        tokio::task::spawn_blocking(move || e2.stop()).await?;
        std::fs::remove_file(&event_file)?;
        Ok::<_, anyhow::Error>(())
    })
    .context("benchmark failed")
}

/// Events committed or refused at execution so far.
fn committed_so_far(engine: &fapiao_engine::Engine) -> u64 {
    let m = engine.metrics();
    m.events_committed.load(std::sync::atomic::Ordering::Relaxed)
        + m.events_rejected_execution.load(std::sync::atomic::Ordering::Relaxed)
}

/// The seconds since `started` at which each tenth of `events` had been committed.
async fn watch_tenths(engine: fapiao_engine::Engine, before: u64, events: usize, started: Instant) -> Vec<f64> {
    let mut at = Vec::with_capacity(10);
    while at.len() < 10 {
        let done = committed_so_far(&engine).saturating_sub(before) as usize;
        while at.len() < 10 && done * 10 >= events * (at.len() + 1) {
            at.push(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    at
}

/// The committed rate of each tenth of the run, and the last tenth's against the first.
fn print_tenths(at: &[f64], events: usize) {
    let tenth = events as f64 / 10.0;
    let rates: Vec<f64> = at
        .iter()
        .scan(0.0, |prev, t| {
            let rate = tenth / (t - *prev).max(1e-9);
            *prev = *t;
            Some(rate)
        })
        .collect();
    let list: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    println!("  committed events/s by tenth of the run: {}", list.join(", "));
    if let (Some(first), Some(last)) = (rates.first(), rates.last()) {
        println!(
            "  last tenth against the first: {:.0}% (the first tenth includes the start, while admission also runs)",
            100.0 * last / first
        );
    }
}

async fn wait_committed(engine: &fapiao_engine::Engine, before: u64, admitted: usize) -> u64 {
    loop {
        let c = committed_so_far(engine);
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

/// What the ledger takes, and how much of it is state versions (FORMAT.md §10).
fn print_disk(engine: &fapiao_engine::Engine, events: u64) -> Result<()> {
    let sizes = engine.store().table_bytes()?;
    let total: u64 = sizes.iter().map(|(_, b)| b).sum();
    let versions: u64 = sizes
        .iter()
        .filter(|(name, _)| fapiao_store::tables::VERSIONED.contains(name))
        .map(|(_, b)| b)
        .sum();
    let per = |b: u64| b as f64 / events.max(1) as f64;
    println!(
        "  ledger {:.0} MB ({:.0} bytes per event), of which state versions {:.0} MB ({:.0} bytes per event)",
        total as f64 / 1e6,
        per(total),
        versions as f64 / 1e6,
        per(versions)
    );
    Ok(())
}

/// How many times each bundle is verified for its median.
const VERIFY_RUNS: usize = 101;

/// The proof bundle of the run's first invoice, its status as of the newest certified
/// block and as of the block that issued it (an old height on a long run), each with
/// its size and median offline verification time.
fn print_proofs(engine: &fapiao_engine::Engine, g: &fapiao_core::Genesis) -> Result<()> {
    use fapiao_core::state::{InvoiceRecord, StateKey, StateValue};
    use fapiao_engine::{AsOf, Factors};
    use fapiao_store::tables::IdxInvoice;
    let store = engine.store();
    let Some((key, loc)) = store.scan::<IdxInvoice>(&[], None, 1)?.into_iter().next() else {
        println!("  proofs: the run issued no invoice");
        return Ok(());
    };
    let number: fapiao_core::InvoiceNumber = codec::decode(&key)?;
    let record = fapiao_domain::StateRead::get(&store.state(number.member()), &StateKey::Invoice(number))?;
    let Some(StateValue::Invoice(InvoiceRecord::Blue(blue))) = record else {
        bail!("invoice {number} has no issued record");
    };
    let factors = Factors::CheckCode(blue.issued.check_code);
    for (what, as_of) in [
        ("newest certified block".to_string(), AsOf::NewestCertified),
        (
            format!("block {}, where it was issued", loc.height),
            AsOf::Height(loc.height),
        ),
    ] {
        let bundle = engine.proof_bundle(&number, &factors, as_of)?;
        let bytes = codec::to_bytes(&bundle).len();
        let mut times = Vec::with_capacity(VERIFY_RUNS);
        for _ in 0..VERIFY_RUNS {
            let t = Instant::now();
            let verified = fapiao_proof::verify(&bundle, g, fapiao_engine::wall_clock().0, None);
            times.push(t.elapsed());
            if let Err(problems) = verified {
                bail!("the bundle of invoice {number} as of the {what} does not verify: {problems:?}");
            }
        }
        times.sort();
        println!(
            "  proof of invoice {number} as of the {what}: {bytes} bytes, verified offline in {:.0} µs (median of {VERIFY_RUNS})",
            times[VERIFY_RUNS / 2].as_secs_f64() * 1e6
        );
    }
    Ok(())
}
