//! `fapiao bench-net`: a four-member network on loopback, as four processes. Phase 1
//! measures certified throughput: every member's node gets the same number of
//! pre-signed events at once, and the clock stops when every node holds every chain
//! certified to its owner's head. Phase 2 offers a steady load (by default half the
//! phase-1 rate) and measures, per submitted batch, the time from submission until its
//! last event is certified on its owner's node. A benchmark, not a test.

use crate::bench::presign_for;
use crate::dev;
use anyhow::{bail, Context, Result};
use fapiao_api::Client;
use fapiao_core::{keyfile, Event, EventId, Genesis};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const N: usize = 4;

struct Member {
    dir: PathBuf,
    client: Client,
    child: Child,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

fn start(dirs: &[PathBuf]) -> Result<Vec<Member>> {
    let exe = std::env::current_exe()?;
    let mut out = Vec::new();
    for d in dirs {
        let cfg = crate::config::load(&d.join("node.toml"))?;
        let log = std::fs::File::create(d.join("node.log"))?;
        let child = Command::new(&exe)
            .args(["node", "run", "--config"])
            .arg(d.join("node.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let token = std::fs::read_to_string(d.join("read.token"))?.trim().to_string();
        out.push(Member {
            dir: d.clone(),
            client: Client::new(&format!("http://{}", cfg.config.http_listen), Some(token)),
            child,
        });
    }
    let t0 = Instant::now();
    for m in &out {
        loop {
            if let Ok(s) = m.client.status() {
                if s.peers.len() == N - 1 && s.head_height >= 1 {
                    break;
                }
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("{} did not join the network; see its node.log", m.dir.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(out)
}

/// Whether every node holds every chain certified to the owner's head.
fn all_certified(members: &[Member]) -> Result<bool> {
    let heads: Vec<(String, u64)> = members
        .iter()
        .map(|m| m.client.status().map(|s| (s.chain, s.head_height)))
        .collect::<Result<_, _>>()?;
    for m in members {
        let s = m.client.status()?;
        for (chain, h) in &heads {
            let ok = s.chains.iter().any(|c| c.chain == *chain && c.certified >= *h);
            if !ok {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

// Long: one measured scenario; its phases share the processes and the clock it reads.
pub(crate) fn run(
    data: &Path,
    events: usize,
    batch: usize,
    rate: Option<f64>,
    seconds: u64,
    settle_seconds: u64,
) -> Result<()> {
    if data.exists() {
        bail!("{} exists; the benchmark makes a fresh network there", data.display());
    }
    let limit = crate::siglimit::Limit::measure(Duration::from_secs(2));
    println!("{}", limit.describe());
    let topology = dev::Topology {
        witnesses: N,
        merchants: 0,
        tax_office_node: false,
        admin_node: false,
    };
    let dirs = dev::init_multi(data, topology, dev::DEV_FEE_BALANCE)?;
    let genesis = Genesis::from_toml(&std::fs::read_to_string(dirs[0].join("genesis.toml"))?)?;
    let keys: Vec<_> = dirs
        .iter()
        .map(|d| keyfile::from_key_file(&std::fs::read_to_string(d.join("client.key"))?).map_err(anyhow::Error::from))
        .collect::<Result<_>>()?;
    let members = start(&dirs)?;
    let chains: Vec<_> = genesis.config().members().iter().map(|m| m.code).collect();

    // Phase 1: throughput.
    let signed: Vec<Vec<Event>> = (0..N)
        .map(|i| presign_for(&keys[i], genesis.network_id(), chains[i], events, "T"))
        .collect();
    let t0 = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = members
            .iter()
            .zip(&signed)
            .map(|(m, evs)| {
                s.spawn(move || -> Result<()> {
                    for c in evs.chunks(batch) {
                        m.client.submit_batch(c)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("submitter panicked"))??;
        }
        Ok(())
    })?;
    let submitted = t0.elapsed().as_secs_f64();
    while !all_certified(&members)? {
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = t0.elapsed().as_secs_f64();
    let total = (N * events) as f64;
    let throughput = total / secs;
    println!(
        "throughput: {N} members x {events} events (batches of {batch}), submitted in {submitted:.1} s, \
         certified on all {N} nodes in {secs:.1} s = {throughput:.0} certified events/s"
    );
    // Each node verifies every member's events: the four nodes share this machine's cores.
    println!("  certified rate against the limit: {}", limit.ratio(throughput));

    // Phase 2: latency at a steady load, after the nodes have digested the burst (RocksDB
    // flushes and compactions of phase 1 run in the background for a while).
    std::thread::sleep(Duration::from_secs(settle_seconds));
    let rate = rate.unwrap_or(throughput / 2.0);
    let tick = Duration::from_millis(50);
    let per_tick = ((rate / N as f64) * tick.as_secs_f64()).round().max(1.0) as usize;
    let ticks = (seconds * 1000 / tick.as_millis() as u64) as usize;
    let signed: Vec<Vec<Event>> = (0..N)
        .map(|i| presign_for(&keys[i], genesis.network_id(), chains[i], per_tick * ticks, "L"))
        .collect();
    let origin = Instant::now();
    let latencies: Vec<(f64, f64)> = std::thread::scope(|s| -> Result<Vec<(f64, f64)>> {
        let handles: Vec<_> = members
            .iter()
            .zip(&signed)
            .map(|(m, evs)| {
                s.spawn(move || -> Result<Vec<(f64, f64)>> {
                    let mut outstanding: Vec<(Instant, EventId)> = Vec::new();
                    let mut done = Vec::new();
                    let start = Instant::now();
                    for (k, c) in evs.chunks(per_tick).enumerate() {
                        let due = start + tick * k as u32;
                        while Instant::now() < due {
                            poll(&m.client, origin, &mut outstanding, &mut done)?;
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        let sent = Instant::now();
                        m.client.submit_batch(c)?;
                        if let Some(last) = c.last() {
                            outstanding.push((sent, last.id()));
                        }
                    }
                    let until = Instant::now() + Duration::from_secs(60);
                    while !outstanding.is_empty() && Instant::now() < until {
                        poll(&m.client, origin, &mut outstanding, &mut done)?;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Ok(done)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| anyhow::anyhow!("submitter panicked"))??);
        }
        Ok(all)
    })?;
    // The first and last thirds of the run, by submission time, show whether a queue
    // builds up (overload).
    let mut by_time = latencies;
    by_time.sort_by(|a, b| a.0.total_cmp(&b.0));
    let third = by_time.len() / 3;
    let mut early: Vec<f64> = by_time[..third].iter().map(|x| x.1).collect();
    let mut late: Vec<f64> = by_time[by_time.len() - third..].iter().map(|x| x.1).collect();
    early.sort_by(f64::total_cmp);
    late.sort_by(f64::total_cmp);
    let mut sorted: Vec<f64> = by_time.iter().map(|x| x.1).collect();
    sorted.sort_by(f64::total_cmp);
    println!(
        "latency: {settle_seconds} s after the burst, offered {:.0} events/s ({} per member every {} ms) for {seconds} s; \
         submit-to-certified over {} batches: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        (per_tick * N) as f64 / tick.as_secs_f64(),
        per_tick,
        tick.as_millis(),
        sorted.len(),
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "  p50 in the first third of the run {:.0} ms, in the last third {:.0} ms",
        percentile(&early, 0.5),
        percentile(&late, 0.5)
    );
    drop(members);
    Ok(())
}

fn poll(
    client: &Client,
    origin: Instant,
    outstanding: &mut Vec<(Instant, EventId)>,
    done: &mut Vec<(f64, f64)>,
) -> Result<()> {
    // Batches certify in order (one chain), often several in one block: each found
    // certified is followed at once by the next, not 10 ms later, which would add up
    // to the time measured.
    while let Some((sent, id)) = outstanding.first().copied() {
        let st = client.event_status(&id).context("event status")?;
        if st.status != "certified" {
            break;
        }
        done.push((
            sent.duration_since(origin).as_secs_f64(),
            sent.elapsed().as_secs_f64() * 1000.0,
        ));
        outstanding.remove(0);
    }
    Ok(())
}
