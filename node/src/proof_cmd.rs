//! `fapiao proof get` and `fapiao verify`: fetch an invoice's proof bundle, and check one
//! offline against a genesis file.

use anyhow::{bail, Context, Result};
use fapiao_api::Client;
use fapiao_proof::{Bundle, Status};
use std::path::Path;

/// Parses `500ms`, `90s`, `10m`, `24h`, `7d` into milliseconds.
pub(crate) fn parse_duration_ms(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .with_context(|| format!("{s:?} is not a duration like 90s, 10m, 24h"))?;
    let ms = match unit {
        "ms" => 1,
        "s" | "" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("{s:?}: the unit must be ms, s, m, h or d"),
    };
    n.checked_mul(ms).context("duration too long")
}

/// What identifies an invoice to the node besides its number.
pub(crate) enum Factors<'a> {
    /// The check code.
    CheckCode(&'a str),
    /// The issue date (`YYYY-MM-DD`) and the total including tax (yuan).
    DateAndTotal(&'a str, &'a str),
}

/// Fetches the bundle from the profile's node (no token needed) and writes its
/// canonical bytes to `out`.
pub(crate) fn get(profile: &Path, number: &str, factors: Factors<'_>, as_of: Option<&str>, out: &Path) -> Result<()> {
    let (p, _) = crate::config::load_profile(profile)?;
    let client = Client::new(&p.node_url, None);
    let mut params = match factors {
        Factors::CheckCode(c) => vec![("check_code", c)],
        Factors::DateAndTotal(d, t) => vec![("issue_date", d), ("total", t)],
    };
    params.extend(as_of.map(|a| ("as_of", a)));
    let dto = client.proof_with(number, &params)?;
    let bytes = hex::decode(&dto.bundle_hex).context("the node sent a bundle that is not hex")?;
    crate::files::write_atomic_bytes(out, &bytes)?;
    println!(
        "bundle for {number}: {} bytes, status as of block {} of its chain, written to {}; this invoice can be \
         checked {} more time(s) today on this node",
        bytes.len(),
        status_height(&bytes)?,
        out.display(),
        dto.checks_left_today
    );
    Ok(())
}

/// The height a bundle proves its status as of (checked properly by `fapiao verify`).
fn status_height(bytes: &[u8]) -> Result<u64> {
    let b: Bundle = fapiao_core::codec::decode(bytes).context("the node sent a bundle that does not decode")?;
    let h = b
        .headers
        .get(b.status.header as usize)
        .context("the bundle's status names no header")?;
    Ok(h.header.body.height)
}

/// Verifies a bundle file offline. Returns whether it is valid (the caller exits 0 or 1).
// Long: prints every field of a verified bundle, in the order a verifier reads them.
pub(crate) fn verify(
    bundle: &Path,
    genesis: &Path,
    max_age: Option<&str>,
    compare: Option<&str>,
    json: bool,
) -> Result<bool> {
    let g = crate::files::read_genesis(genesis)?;
    let bytes = std::fs::read(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    let max_age_ms = max_age.map(parse_duration_ms).transpose()?;
    let now = crate::now().0;
    let mut confirmed = None;
    let result = Bundle::from_bytes(&bytes)
        .map_err(|p| vec![p])
        .and_then(|b| fapiao_proof::verify(&b, &g, now, max_age_ms))
        .and_then(|v| match compare {
            None => Ok(v),
            Some(url) => match second_opinion(url, &v, &g, now) {
                Ok(msg) => {
                    confirmed = Some(msg);
                    Ok(v)
                }
                Err(reason) => Err(vec![fapiao_proof::Problem::Status(reason)]),
            },
        });
    match result {
        Ok(v) => {
            let mut status = match &v.status {
                Status::Issued => "issued".to_string(),
                Status::PartiallyReversed(r) => format!("partially reversed by {}", join(r)),
                Status::Reversed(r) => format!("reversed by {}", join(r)),
            };
            if let Some(n) = v.replaced_by {
                status.push_str(&format!(", replaced by corrected invoice {n}"));
            }
            if let Some(n) = v.issued.replaces {
                status.push_str(&format!(" (corrects {n})"));
            }
            let claim = v.claim.as_ref().map(|c| match c.closed_at_ms {
                None => format!(
                    "locked for reimbursement by member {} ({}) at {}",
                    c.claimant,
                    c.claim_ref,
                    fapiao_engine::format_time(c.at_ms)
                ),
                Some(closed) => format!(
                    "reimbursed (closed) by member {} ({}) at {}",
                    c.claimant,
                    c.claim_ref,
                    fapiao_engine::format_time(closed)
                ),
            });
            let booking = v
                .booking
                .map(|(b, at)| format!("{} {} at {}", b.code(), b.name(), fapiao_engine::format_time(at)));
            let forms: Vec<String> = v
                .forms
                .iter()
                .map(|f| {
                    let red = f.red_number.map(|n| format!(", red invoice {n}")).unwrap_or_default();
                    format!("form {} by the {}: {}{red}", f.form, f.initiator.name(), f.state.name())
                })
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "valid": true,
                        "number": v.issued.number.to_string(),
                        "chain": v.chain.to_string(),
                        "total_fen": v.issued.total.fen(),
                        "buyer": v.issued.buyer.name,
                        "status": status,
                        "claim": claim,
                        "booking": booking,
                        "forms": forms,
                        "issued_height": v.issued_height,
                        "as_of_height": v.as_of_height,
                        "as_of_ms": v.as_of_ms,
                    })
                );
            } else {
                println!("VALID");
                println!(
                    "  invoice   {} (chain {}, block {})",
                    v.issued.number, v.chain, v.issued_height
                );
                println!("  buyer     {}", v.issued.buyer.name);
                println!("  total     {}", v.issued.total);
                println!("  status    {status}");
                if let Some(c) = claim {
                    println!("  claim     {c}");
                }
                if let Some(b) = booking {
                    println!("  booking   {b}");
                }
                for f in &forms {
                    println!("  red form  {f}");
                }
                println!(
                    "  as of     block {}, certified by a quorum, {} s ago",
                    v.as_of_height,
                    now.saturating_sub(v.as_of_ms) / 1000
                );
                if let Some(c) = &confirmed {
                    println!("  checked   {c}");
                }
            }
            Ok(true)
        }
        Err(problems) => {
            if json {
                let reasons: Vec<String> = problems.iter().map(ToString::to_string).collect();
                println!("{}", serde_json::json!({"valid": false, "reasons": reasons}));
            } else {
                println!("INVALID");
                for p in &problems {
                    println!("  {p}");
                }
            }
            Ok(false)
        }
    }
}

/// Fetches the same invoice's bundle from another member's node and compares: a newer
/// certified status that differs makes ours outdated.
fn second_opinion(
    url: &str,
    ours: &fapiao_proof::Verified,
    genesis: &fapiao_core::Genesis,
    now: u64,
) -> std::result::Result<String, String> {
    let client = Client::new(url, None);
    let dto = client
        .proof(&ours.issued.number.to_string(), &ours.issued.check_code.to_string())
        .map_err(|e| format!("could not confirm with {url}: {e}"))?;
    let bytes = hex::decode(&dto.bundle_hex).map_err(|e| format!("{url} sent a bundle that is not hex: {e}"))?;
    let theirs = Bundle::from_bytes(&bytes)
        .map_err(|p| vec![p])
        .and_then(|b| fapiao_proof::verify(&b, genesis, now, None))
        .map_err(|p| format!("{url} sent an invalid bundle: {}", p[0]))?;
    if theirs.as_of_height > ours.as_of_height && (theirs.status != ours.status || theirs.claim != ours.claim) {
        return Err(format!(
            "outdated: {url} proves a newer status as of block {} (this bundle is as of block {}): \
             status {:?}, claim {:?}",
            theirs.as_of_height, ours.as_of_height, theirs.status, theirs.claim
        ));
    }
    Ok(format!(
        "{url} agrees as of block {} (this bundle: block {})",
        theirs.as_of_height, ours.as_of_height
    ))
}

fn join(numbers: &[fapiao_core::InvoiceNumber]) -> String {
    numbers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// `fapiao bench-verify`: how long verifying one bundle takes here (decode included),
/// over `runs` runs; prints the size and the median and p99 times.
pub(crate) fn bench(bundle: &Path, genesis: &Path, runs: usize) -> Result<()> {
    let g = crate::files::read_genesis(genesis)?;
    let bytes = std::fs::read(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    let now = crate::now().0;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = std::time::Instant::now();
        let b = Bundle::from_bytes(&bytes).map_err(|p| anyhow::anyhow!("{p}"))?;
        let v = fapiao_proof::verify(&b, &g, now, None);
        times.push(t.elapsed().as_secs_f64() * 1e6);
        if let Err(p) = v {
            bail!("the bundle is invalid: {}", p[0]);
        }
    }
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "bundle {} bytes; verification over {} runs: median {:.0} µs, p99 {:.0} µs",
        bytes.len(),
        times.len(),
        pick(0.5),
        pick(0.99)
    );
    Ok(())
}
