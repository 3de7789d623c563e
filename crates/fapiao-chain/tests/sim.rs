//! The replication state machine under the deterministic simulator: many seeds, each
//! with 4 members, loss, duplication, reordering, delay, a crash with restart and an
//! equivocating member. A failing run names its seed; rerun one with
//! `FAPIAO_SIM_SEED=<seed> cargo test -p fapiao-chain --test sim one_seed`.

use fapiao_chain::sim::{run, SimConfig};

/// Seeds run by the test suite (more with `FAPIAO_SIM_SEEDS`), split over a few tests
/// so they use every core.
const SEEDS: u64 = 200;
const SHARDS: u64 = 4;

fn check_seeds(shard: u64) {
    let seeds = std::env::var("FAPIAO_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS);
    let mut failures = Vec::new();
    for seed in (0..seeds).filter(|s| s % SHARDS == shard) {
        match std::panic::catch_unwind(|| run(SimConfig::standard(seed))) {
            Ok(Ok(report)) => {
                assert!(report.honest_blocks > 0, "seed {seed}: nothing was produced");
                assert!(report.certificates > 0, "seed {seed}: nothing was certified");
            }
            Ok(Err(f)) => failures.push(f.to_string()),
            Err(_) => failures.push(format!("simulation seed {seed} panicked")),
        }
    }
    assert!(failures.is_empty(), "failing seeds:\n{}", failures.join("\n"));
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
    println!("{report:?}");
    assert!(report.equivocations > 0, "the standard run equivocates");
    assert_eq!(report.crashes, 1, "the standard run crashes one member");
}

/// Without faults every block is certified, and a single member certifies alone.
#[test]
fn quiet_network_and_single_member() {
    let mut cfg = SimConfig::standard(1);
    cfg.loss_percent = 0;
    cfg.duplicate_percent = 0;
    cfg.crash = false;
    cfg.equivocate = false;
    let r = run(cfg).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(r.crashes, 0);
    assert!(
        r.converged_at_ms < cfg.fault_ms + 5_000,
        "quiet network converges quickly: {r:?}"
    );
    let mut one = cfg;
    one.members = 1;
    let r = run(one).unwrap_or_else(|f| panic!("{f}"));
    assert!(r.certificates >= r.honest_blocks && r.honest_blocks > 0, "{r:?}");
}
