//! `fapiao sim`: the deterministic simulator (`fapiao_chain::sim`) over many seeds, on
//! several threads. Each seed is the standard run: four merchant members running the
//! whole domain over a lossy, duplicating, reordering network, with crash-restarts and an
//! equivocating member. A failing seed is printed with its message and the command that
//! reruns it alone; the command exits non-zero if any seed failed.

use anyhow::{bail, Context, Result};
use fapiao_chain::sim::{run_caught, SimConfig, SimFailure, SimReport, WorkloadCounts};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Progress is printed at most this often.
const PROGRESS_INTERVAL_MS: u64 = 2_000;
/// Results waiting for the printing thread, per worker.
const RESULTS_PER_WORKER_MAX: usize = 16;

/// `fapiao sim` arguments.
#[derive(clap::Args)]
pub(crate) struct SimArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed (seeds `from` to `from + seeds - 1` run).
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Runs the seeds, printing progress to stderr and failures and the summary to stdout.
// Long: the run and its report, section by section.
pub(crate) fn run(args: &SimArgs) -> Result<()> {
    let end = args
        .from
        .checked_add(args.seeds)
        .context("--from plus --seeds is beyond the last seed")?;
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
    .min(usize::try_from(args.seeds).unwrap_or(usize::MAX).max(1));
    eprintln!(
        "sim: seeds {}..{} on {threads} thread(s)",
        args.from,
        end.saturating_sub(1)
    );
    let started = Instant::now();
    let next = AtomicU64::new(args.from);
    let (tx, rx) = mpsc::sync_channel::<(u64, Result<SimReport, SimFailure>)>(threads * RESULTS_PER_WORKER_MAX);
    let mut failures: Vec<SimFailure> = Vec::new();
    let mut totals = WorkloadCounts::default();
    let mut done = 0u64;
    // Configuration changes, chain resets among them, and resets whose chain certified again.
    let (mut changes, mut resets, mut resumed) = (0u64, 0u64, 0u64);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                if tx.send((seed, run_caught(SimConfig::standard(seed)))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut last_progress = Instant::now();
        for (_seed, result) in rx {
            done += 1;
            match result {
                Ok(report) => {
                    totals.add(&report.workload);
                    changes += report.reconfigurations;
                    resets += report.resets;
                    resumed += report.resets_resumed;
                }
                Err(f) => {
                    println!("FAILED {f}");
                    println!("  rerun: fapiao sim --seeds 1 --from {}", f.seed);
                    failures.push(f);
                }
            }
            if last_progress.elapsed() >= Duration::from_millis(PROGRESS_INTERVAL_MS) || done == args.seeds {
                last_progress = Instant::now();
                eprintln!(
                    "sim: {done}/{} seeds, {} failed, {:.1} seeds/s",
                    args.seeds,
                    failures.len(),
                    rate(done, started.elapsed())
                );
            }
        }
    });
    let elapsed = started.elapsed();
    println!(
        "{done} seeds in {:.1} s ({:.1} seeds/s on {threads} thread(s)), {} failed",
        elapsed.as_secs_f64(),
        rate(done, elapsed),
        failures.len()
    );
    println!(
        "configuration changes: {changes} ({resets} chain resets, {resumed} of those certified the chain's next block)"
    );
    println!("what the honest chains recorded, over every passing seed:");
    for (family, n) in totals.families() {
        println!("  {family:<34} {n}");
    }
    if !failures.is_empty() {
        failures.sort_by_key(|f| f.seed);
        let seeds: Vec<String> = failures.iter().map(|f| f.seed.to_string()).collect();
        bail!("{} of {done} seeds failed: {}", failures.len(), seeds.join(", "));
    }
    Ok(())
}

fn rate(done: u64, elapsed: Duration) -> f64 {
    done as f64 / elapsed.as_secs_f64().max(1e-9)
}
