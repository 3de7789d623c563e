//! Operator commands: replay, rebuild-state, export, backup.

use crate::config;
use crate::files;
use anyhow::{bail, Context, Result};
use fapiao_core::{Genesis, MemberCode};
use fapiao_store::replay::{replay, ReplayOptions, ReplayReport};
use fapiao_store::{Store, StoreOptions};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// The block cache of the ledger a replay reads, in bytes. Both stores a replay opens
/// charge their index and filter blocks, and the target its memtables, to their caches
/// (`StoreOptions::bounded_memory`); BENCHMARKS.md has the peak memory measured. The
/// ledger is read once, in order: a small cache serves it.
const REPLAY_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// The block cache of the store a replay writes, in bytes: the state it re-executes on
/// is read at random, so it gets the larger share.
const REPLAY_TARGET_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// The memtables of the store a replay writes, charged to its block cache, in bytes;
/// each family's at most half of it, twice.
const REPLAY_MEMTABLE_BYTES: usize = 32 * 1024 * 1024;

/// Finds the ledger directory and genesis of a node data directory (one holding
/// `node.toml`, as `fapiao dev` makes) or of explicit paths.
pub(crate) fn locate(data: &Path, genesis: Option<&Path>) -> Result<(PathBuf, Genesis)> {
    let node_toml = data.join("node.toml");
    if node_toml.exists() {
        let cfg = config::load(&node_toml)?;
        let g = match genesis {
            Some(g) => files::read_genesis(g)?,
            None => files::read_genesis(&cfg.path(&cfg.config.genesis))?,
        };
        return Ok((cfg.ledger_dir(), g));
    }
    let Some(g) = genesis else {
        bail!("{} has no node.toml; pass --genesis FILE", data.display());
    };
    let ledger = if data.join("ledger").exists() {
        data.join("ledger")
    } else {
        data.to_path_buf()
    };
    Ok((ledger, files::read_genesis(g)?))
}

fn total_blocks(store: &Store, genesis: &Genesis) -> Result<u64> {
    let (epochs, _, _) = fapiao_chain::disk::epochs(store, genesis)?;
    Ok(fapiao_store::replay::chain_heights(store, &epochs)?
        .iter()
        .map(|(_, h)| h)
        .sum())
}

/// The most memory this process has held resident so far (the kernel's high-water mark,
/// `VmHWM`), in bytes; `None` where the kernel does not say.
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?;
    kb.trim().parse::<u64>().ok().map(|kb| kb * 1024)
}

/// The name of a replay's scratch store in the temporary directory, before its pid.
const SCRATCH_PREFIX: &str = "fapiao-replay-";

/// A replay's scratch store, removed when the replay ends however it ends (its report, an
/// error such as a full disk, a panic). Declared before the store, so the store closes
/// first. A killed replay cannot remove it: [`sweep_scratch`] does, at the next replay.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes, from the temporary directory `tmp`, the scratch stores of replays that were
/// killed (a replay of a 10M-event ledger leaves 6.5 GB): each `fapiao-replay-PID`
/// directory whose process is gone and which holds a store (a `CURRENT` file) or
/// nothing. Returns what it removed.
fn sweep_scratch(tmp: &Path) -> Vec<PathBuf> {
    // Without `/proc` every process would look gone, a running replay's too: no sweep.
    if !Path::new("/proc/self").exists() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let pid: u32 = name.strip_prefix(SCRATCH_PREFIX)?.parse().ok()?;
            let dir = e.path();
            let running = Path::new("/proc").join(pid.to_string()).exists();
            let a_store = dir.join("CURRENT").is_file() || std::fs::read_dir(&dir).ok()?.next().is_none();
            (!running && e.file_type().ok()?.is_dir() && a_store && std::fs::remove_dir_all(&dir).is_ok())
                .then_some(dir)
        })
        .collect()
}

// Long: the replay command: options, progress, the run and its report.
pub(crate) fn run_replay(
    data: &Path,
    genesis: Option<&Path>,
    verify_signatures: bool,
    report: Option<&Path>,
    into: Option<&Path>,
) -> Result<()> {
    let (ledger, genesis) = locate(data, genesis)?;
    // With signatures verified, the machine's signature limit is the ceiling to state.
    let limit = verify_signatures.then(|| crate::siglimit::Limit::measure(std::time::Duration::from_secs(1)));
    // Replay reads the blocks once, in order, and writes a fresh store: small caches
    // keep its memory flat however long the ledger (REPLAY_CACHE_BYTES).
    let source = Store::open(
        &ledger,
        &StoreOptions {
            read_only: true,
            skip_check: true,
            block_cache_bytes: REPLAY_CACHE_BYTES,
            bounded_memory: true,
            ..StoreOptions::default()
        },
    )?;
    let mut scratch = None;
    let target_dir = match into {
        Some(d) => {
            if d.exists() && std::fs::read_dir(d)?.next().is_some() {
                bail!("{} is not empty; replay writes a fresh store", d.display());
            }
            d.to_path_buf()
        }
        None => {
            let tmp = std::env::temp_dir();
            for left in sweep_scratch(&tmp) {
                eprintln!(
                    "removed {}, the scratch store of a replay that was killed",
                    left.display()
                );
            }
            let dir = tmp.join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
            scratch.insert(Scratch(dir)).0.clone()
        }
    };
    let target = Store::open(
        &target_dir,
        &StoreOptions {
            block_cache_bytes: REPLAY_TARGET_CACHE_BYTES,
            memtable_bytes: REPLAY_MEMTABLE_BYTES,
            bounded_memory: true,
            // Built from the blocks, and built again after a crash: no log, and one
            // flush after the last block, before the comparison (which makes a store
            // `--into` keeps durable). It keeps the versions of each chain's
            // last 256 blocks only (the comparison checks the versions both keep): with
            // the node's retention it took as much disk again as the ledger's versions.
            scratch: true,
            state_history_days: 0,
            ..StoreOptions::default()
        },
    )?;
    let total = total_blocks(&source, &genesis)?;
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} blocks {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let started = std::time::Instant::now();
    let r = replay(
        &source,
        &target,
        &genesis,
        ReplayOptions { verify_signatures },
        &mut |n| {
            if let Some(b) = &bar {
                b.set_position(n);
            }
        },
    )?;
    let secs = started.elapsed().as_secs_f64();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    drop(target);
    drop(scratch);
    print_report(&r, secs);
    let peak = peak_resident_bytes();
    if let Some(bytes) = peak {
        println!("peak memory: {} MiB resident", bytes >> 20);
    }
    if let Some(limit) = &limit {
        println!("{}", limit.describe());
        println!(
            "  replay rate against the limit: {}",
            limit.ratio(r.counts.events as f64 / secs.max(1e-9))
        );
    }
    if let Some(path) = report {
        let text = serde_json::to_string_pretty(&report_json(&r, secs, peak))?;
        files::write_atomic(path, &text)?;
        println!("report written to {}", path.display());
    }
    if !r.is_clean() {
        bail!("replay found {} anomalies", r.anomalies.len().max(1));
    }
    Ok(())
}

// Long: prints the audit report's sections in order.
fn print_report(r: &ReplayReport, secs: f64) {
    let c = &r.counts;
    println!(
        "replayed {} blocks, {} events ({} entries) in {:.2} s: {:.0} events/s",
        c.blocks,
        c.events,
        c.entries,
        secs,
        c.events as f64 / secs.max(1e-9)
    );
    if c.signatures_verified > 0 {
        println!("signatures verified: {}", c.signatures_verified);
    }
    println!(
        "{:<8} {:>8} {:>8} {:>10} {:<66} LIVE STATE",
        "CHAIN", "HEIGHT", "OF", "CERTIFIED", "STATE ROOT"
    );
    for ch in &r.chains {
        println!(
            "{:<8} {:>8} {:>8} {:>10} {:<66} {}",
            ch.chain.to_string(),
            ch.height,
            ch.source_height,
            ch.certified,
            ch.state_root.to_string(),
            if ch.matches_live_state { "matches" } else { "DIFFERS" }
        );
    }
    println!(
        "payments {} (paid {}), refunds {} (refunded {}), payments voided {}",
        c.payments,
        yuan(c.paid_fen),
        c.refunds,
        yuan(c.refunded_fen),
        c.payment_reversals
    );
    println!(
        "invoices issued {}, red-letter {}, claims {} (refused {})",
        c.invoices_issued, c.red_letters, c.claims, c.claims_refused
    );
    if !c.buyer_actions.is_empty() {
        let actions: Vec<String> = c.buyer_actions.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("buyer's side: {}", actions.join(", "));
    }
    let statuses: Vec<String> = c.invoices_by_status.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "invoices by status: {}",
        if statuses.is_empty() {
            "none".into()
        } else {
            statuses.join(", ")
        }
    );
    let failures: Vec<String> = c.failures.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "failures by reason: {}",
        if failures.is_empty() {
            "none".into()
        } else {
            failures.join(", ")
        }
    );
    if r.anomalies.is_empty() {
        println!("anomalies: none");
    } else {
        println!("anomalies: {}", r.anomalies.len());
        for a in &r.anomalies {
            println!("  chain {} height {}: {} — {}", a.chain, a.height, a.kind, a.detail);
        }
    }
}

/// Yuan with two decimals of a whole-ledger sum in fen.
fn yuan(fen: i128) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A whole-ledger sum in fen as a JSON number, or a string beyond what JSON readers
/// hold exactly.
fn fen_json(fen: i128) -> serde_json::Value {
    i64::try_from(fen).map_or_else(|_| json!(fen.to_string()), |v| json!(v))
}

fn report_json(r: &ReplayReport, secs: f64, peak_resident_bytes: Option<u64>) -> serde_json::Value {
    let c = &r.counts;
    json!({
        "seconds": secs,
        "peak_resident_bytes": peak_resident_bytes,
        "clean": r.is_clean(),
        "chains": r.chains.iter().map(|ch| json!({
            "chain": ch.chain.to_string(), "height": ch.height, "source_height": ch.source_height,
            "certified": ch.certified, "state_root": ch.state_root.to_string(), "matches_live_state": ch.matches_live_state,
        })).collect::<Vec<_>>(),
        "counts": {
            "blocks": c.blocks, "entries": c.entries, "events": c.events, "signatures_verified": c.signatures_verified,
            "payments": c.payments, "paid_fen": fen_json(c.paid_fen), "refunds": c.refunds, "refunded_fen": fen_json(c.refunded_fen),
            "payment_reversals": c.payment_reversals, "invoices_issued": c.invoices_issued, "red_letters": c.red_letters,
            "claims": c.claims, "claims_refused": c.claims_refused, "buyer_actions": c.buyer_actions,
            "invoices_by_status": c.invoices_by_status, "failures_by_reason": c.failures,
        },
        "anomalies": r.anomalies.iter().map(|a| json!({
            "chain": a.chain.to_string(), "height": a.height, "kind": a.kind, "detail": a.detail,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn rebuild_state(config_path: &Path) -> Result<()> {
    let cfg = config::load(config_path)?;
    let genesis = files::read_genesis(&cfg.path(&cfg.config.genesis))?;
    println!("dropping state, state tree and indexes (their files too); replaying every block");
    let store = Store::open_cleared(&cfg.ledger_dir(), &StoreOptions::default())
        .context("opening the ledger (is the node still running? stop it first)")?;
    let started = std::time::Instant::now();
    let r = replay(&store, &store, &genesis, ReplayOptions::default(), &mut |_| {})?;
    print_report(&r, started.elapsed().as_secs_f64());
    if !r.anomalies.is_empty() {
        bail!("the block log itself has anomalies; restore a checkpoint");
    }
    store.check_heads()?;
    println!("state rebuilt; the node can start");
    Ok(())
}

pub(crate) fn export(data: &Path, genesis: Option<&Path>, chain: &str, format: &str, out: Option<&Path>) -> Result<()> {
    if format != "jsonl" {
        bail!("--format: only jsonl is supported");
    }
    let chain: MemberCode = chain
        .parse()
        .map_err(|e: fapiao_core::ids::ParseError| anyhow::anyhow!("--chain: {e}"))?;
    let (ledger, _) = locate(data, genesis)?;
    let store = Store::open(
        &ledger,
        &StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        },
    )?;
    let head = store.head(chain)?.map(|h| h.height).unwrap_or(0);
    let mut w: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut n = 0u64;
    for h in 1..=head {
        let Some(block) = store.block(chain, h)? else {
            bail!("block {h} of chain {chain} is missing");
        };
        let certified = store.certificate(chain, h)?.is_some();
        for (i, e) in block.entries.iter().enumerate() {
            let mut v = serde_json::to_value(fapiao_api::dto::EntryDto::new(e))?;
            v["height"] = json!(h);
            v["index"] = json!(i);
            v["block_hash"] = json!(block.header.hash().to_string());
            v["certified"] = json!(certified);
            writeln!(w, "{}", serde_json::to_string(&v)?)?;
            n += 1;
        }
    }
    w.flush()?;
    eprintln!("exported {n} entries of chain {chain} ({head} blocks)");
    Ok(())
}

pub(crate) fn backup(config_path: &Path, out: &Path) -> Result<()> {
    let cfg = config::load(config_path)?;
    if out.exists() {
        bail!("{} exists; a checkpoint goes into a new directory", out.display());
    }
    match Store::open(&cfg.ledger_dir(), &StoreOptions::default()) {
        Ok(store) => store.checkpoint(out)?,
        // The node holds the ledger's lock (RocksDB: "While lock file: .../LOCK"): it is
        // running, and takes the checkpoint itself while it keeps serving.
        Err(e) if e.to_string().contains("While lock file") => backup_running(&cfg, out)?,
        Err(e) => return Err(e).context("opening the ledger"),
    }
    println!(
        "checkpoint written to {} (a ledger directory: to restore, stop the node and put it in place of {})",
        out.display(),
        cfg.ledger_dir().display()
    );
    Ok(())
}

/// How long a running node has to take a backup request before `fapiao backup` gives up
/// (it looks every 250 ms); once taken, the command waits for the copy however long.
const ONLINE_BACKUP_CLAIM_S: u64 = 10;
/// A request older than this when the node sees it is dropped, not served: its command
/// gave up long ago (the node was down).
const ONLINE_BACKUP_STALE_S: u64 = 60;

/// Asks the running node for a checkpoint: a request file in its data directory (write
/// access to it is the credential, as for maintenance mode, and it already allows
/// anything: the keys and node.toml live there), holding the output path's bytes. The
/// node claims it by renaming it to `.taken` and answers with `.done` or `.error`.
fn backup_running(cfg: &config::Loaded, out: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let dir = cfg.backup_requests_dir();
    let out = if out.is_absolute() {
        out.to_path_buf()
    } else {
        std::env::current_dir()?.join(out)
    };
    let id = format!("{}-{}", crate::now().0, std::process::id());
    let request = dir.join(format!("{id}.request"));
    files::write_atomic_bytes(&request, out.as_os_str().as_bytes())
        .with_context(|| format!("writing the request {} (is the node running here?)", request.display()))?;
    eprintln!("the node is running: asked it for a checkpoint ({})", request.display());
    let (taken, done, error) = (
        dir.join(format!("{id}.taken")),
        dir.join(format!("{id}.done")),
        dir.join(format!("{id}.error")),
    );
    let asked = std::time::Instant::now();
    loop {
        if done.exists() {
            let _ = std::fs::remove_file(&done);
            return Ok(());
        }
        if error.exists() {
            let why = std::fs::read_to_string(&error).unwrap_or_default();
            let _ = std::fs::remove_file(&error);
            bail!("the node could not write the checkpoint: {}", why.trim());
        }
        if request.exists() && asked.elapsed() > std::time::Duration::from_secs(ONLINE_BACKUP_CLAIM_S) {
            let _ = std::fs::remove_file(&request);
            bail!(
                "the process holding {} did not take the request within {ONLINE_BACKUP_CLAIM_S} s: \
                 is it a node (and not, say, a replay)?",
                cfg.ledger_dir().display()
            );
        }
        if !request.exists() && !taken.exists() && !done.exists() && !error.exists() {
            bail!("the request {} disappeared without an answer", request.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A running node's side of `fapiao backup`: claims each fresh request (renaming it,
/// so that it is served once), takes the checkpoint, and answers with `<id>.done` or
/// `<id>.error`. Called by the node's watcher task; `dir` exists (made at start).
pub(crate) fn answer_backup_requests(store: &Store, dir: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".request"))
            .map(str::to_string)
        else {
            continue;
        };
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(ONLINE_BACKUP_STALE_S));
        if stale {
            tracing::warn!(request = %path.display(), "dropping a stale checkpoint request");
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let taken = dir.join(format!("{id}.taken"));
        if let Err(e) = std::fs::rename(&path, &taken) {
            tracing::warn!(request = %path.display(), error = %e, "cannot take a checkpoint request");
            continue;
        }
        let bytes = std::fs::read(&taken).unwrap_or_default();
        let target = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
        let result = if !target.is_absolute() {
            Err(format!("{} is not an absolute path", target.display()))
        } else if target.exists() {
            Err(format!(
                "{} exists; a checkpoint goes into a new directory",
                target.display()
            ))
        } else {
            store.checkpoint(&target).map_err(|e| e.to_string())
        };
        let answer = match &result {
            Ok(()) => {
                tracing::info!(out = %target.display(), "checkpoint written on request");
                (dir.join(format!("{id}.done")), String::from("ok\n"))
            }
            Err(e) => {
                tracing::warn!(out = %target.display(), error = %e, "checkpoint request failed");
                (dir.join(format!("{id}.error")), format!("{e}\n"))
            }
        };
        if let Err(e) = files::write_atomic(&answer.0, &answer.1) {
            tracing::warn!(error = %e, "cannot answer a checkpoint request");
        }
        let _ = std::fs::remove_file(&taken);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the stores of replays whose process is gone are removed: not a running
    /// replay's, not a directory holding something else, not another name.
    #[test]
    fn the_sweep_removes_only_stores_of_replays_that_are_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = |name: &str, file: Option<&str>| {
            let d = tmp.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            if let Some(f) = file {
                std::fs::write(d.join(f), "x").unwrap();
            }
            d
        };
        // 4194305 is above the kernel's largest process id: never running.
        let killed = dir("fapiao-replay-4194305", Some("CURRENT"));
        let empty = dir("fapiao-replay-4194306", None);
        let running = dir(&format!("fapiao-replay-{}", std::process::id()), Some("CURRENT"));
        let foreign = dir("fapiao-replay-4194307", Some("notes.txt"));
        let other = dir("fapiao-replay-x", Some("CURRENT"));
        let mut removed = sweep_scratch(tmp.path());
        removed.sort();
        assert_eq!(removed, vec![killed.clone(), empty.clone()]);
        assert!(!killed.exists() && !empty.exists());
        assert!(running.exists() && foreign.exists() && other.exists());
    }
}
