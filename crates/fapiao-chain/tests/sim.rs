//! The replication state machine and the whole domain under the deterministic
//! simulator: many seeds, each with 4 merchant members running a mixed workload
//! (payments, refunds, invoices issued and failed, retries, fee failures re-issued by the
//! operator's deposits, red-letters, corrected invoices, the verifier's claims), message
//! loss, duplication, reordering and delay, crash-restarts of any members, and an
//! equivocating member (two seeds in three) or a member restored from an older backup
//! that must recover its own chain from its peers without signing any height twice (the
//! third).
//!
//! A failing run names its seed; rerun one with
//! `FAPIAO_SIM_SEED=<seed> cargo test -p fapiao-chain --test sim one_seed -- --nocapture`
//! or `fapiao sim --seeds 1 --from <seed>`. Run more seeds with `FAPIAO_SIM_SEEDS=<n>`
//! or `fapiao sim --seeds <n>`.

use fapiao_chain::sim::{run, run_caught, SimConfig, WorkloadCounts};

/// Seeds run by the test suite (more with `FAPIAO_SIM_SEEDS`), split over a few tests
/// so they use every core.
const SEEDS: u64 = 1000;
const SHARDS: u64 = 4;
/// A shard of at least this many seeds must have exercised every event family (a few
/// seeds, from `FAPIAO_SIM_SEEDS`, need not).
const FAMILY_SEEDS_MIN: u64 = 50;

fn seeds() -> u64 {
    std::env::var("FAPIAO_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS)
}

fn rerun(seed: u64) -> String {
    format!(
        "rerun: FAPIAO_SIM_SEED={seed} cargo test -p fapiao-chain --test sim one_seed -- --nocapture \
         (or: fapiao sim --seeds 1 --from {seed})"
    )
}

/// Runs this shard's seeds; every one must pass, and together they must have exercised
/// every event family of the domain.
fn check_seeds(shard: u64) {
    let mut failures = Vec::new();
    let mut total = WorkloadCounts::default();
    let (mut runs, mut crashes, mut equivocator_crashes) = (0, 0, 0);
    let (mut restores, mut recovered) = (0, 0);
    let (mut reconfigurations, mut refused, mut resets, mut resumed) = (0, 0, 0, 0);
    // Runs in which nothing was produced or certified: crashes and losses kept the
    // members from hearing enough peers to start producing within the fault window. They
    // exercise nothing, and must stay rare.
    let mut empty = 0u64;
    for seed in (0..seeds()).filter(|s| s % SHARDS == shard) {
        match run_caught(SimConfig::standard(seed)) {
            Ok(report) => {
                if report.honest_blocks == 0 || report.certificates == 0 {
                    empty += 1;
                }
                total.add(&report.workload);
                runs += 1;
                crashes += report.crashes;
                equivocator_crashes += report.equivocator_crashes;
                restores += report.restores;
                recovered += report.recovered_blocks;
                reconfigurations += report.reconfigurations;
                resets += report.resets;
                resumed += report.resets_resumed;
                refused += report.refused;
            }
            Err(f) => failures.push(format!("{f}\n  {}", rerun(f.seed))),
        }
    }
    assert!(failures.is_empty(), "failing seeds:\n{}", failures.join("\n"));
    assert!(
        empty * 100 <= runs.max(100),
        "{empty} of {runs} runs produced or certified nothing"
    );
    println!(
        "shard {shard}: {runs} seeds, {crashes} crashes ({equivocator_crashes} of the equivocator), \
         {restores} restores ({recovered} blocks behind), {reconfigurations} configuration changes ({resets} \
         chain resets, {resumed} certified again; {refused} messages of removed members refused), {empty} empty, {total:?}"
    );
    if runs < FAMILY_SEEDS_MIN {
        return;
    }
    // Crashes hit any member, the equivocator too, and some runs crash more than once.
    assert!(
        crashes > runs && equivocator_crashes > 0,
        "{crashes} crashes in {runs} runs, {equivocator_crashes} of the equivocator"
    );
    // Most runs changed the configuration while blocks were in flight, and removed
    // members kept sending.
    assert!(
        reconfigurations * 2 > runs && refused > 0 && resumed > 0,
        "{reconfigurations} configuration changes ({resets} resets, {resumed} certified again) in {runs} runs, \
         {refused} messages refused"
    );
    // Restored members had blocks of their own chain to take back from their peers.
    assert!(
        restores > runs / 4 && recovered > restores,
        "{restores} restores in {runs} runs, {recovered} blocks behind"
    );
    let missing: Vec<&str> = total
        .families()
        .into_iter()
        .filter(|(_, n)| *n == 0)
        .map(|(name, _)| name)
        .collect();
    assert!(
        missing.is_empty(),
        "over the seeds of shard {shard} the workload never produced: {missing:?}\n{total:#?}"
    );
}

#[test]
fn seeds_shard_0() {
    check_seeds(0);
}

#[test]
fn seeds_shard_1() {
    check_seeds(1);
}

#[test]
fn seeds_shard_2() {
    check_seeds(2);
}

#[test]
fn seeds_shard_3() {
    check_seeds(3);
}

/// One seed from the environment (default 7), with its report printed.
#[test]
fn one_seed() {
    let seed = std::env::var("FAPIAO_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let report = run(SimConfig::standard(seed)).unwrap_or_else(|f| panic!("{f}"));
    println!("{report:#?}");
    if std::env::var("FAPIAO_SIM_SEED").is_err() {
        assert!(report.equivocations > 0, "seed 7 equivocates");
        assert!(report.crashes >= 1, "seed 7 crashes a member");
        assert!(report.workload.invoices_issued > 0, "seed 7 issues invoices");
    }
}

/// Without faults every block is certified, and a single member certifies alone.
#[test]
fn quiet_network_and_single_member() {
    let mut cfg = SimConfig::standard(1);
    cfg.loss_percent = 0;
    cfg.duplicate_percent = 0;
    cfg.crashes_max = 0;
    cfg.equivocate = false;
    let r = run(cfg).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(r.crashes, 0);
    assert!(
        r.converged_at_ms < cfg.fault_ms + 5_000,
        "quiet network converges quickly: {r:?}"
    );
    let mut one = cfg;
    one.members = 1;
    one.merchants_only = 0;
    let r = run(one).unwrap_or_else(|f| panic!("{f}"));
    assert!(r.certificates >= r.honest_blocks && r.honest_blocks > 0, "{r:?}");
}
