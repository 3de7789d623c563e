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

/// Fetches the bundle from the profile's node (no token needed) and writes its
/// canonical bytes to `out`.
pub(crate) fn get(profile: &Path, number: &str, check_code: &str, out: &Path) -> Result<()> {
    let (p, _) = crate::config::load_profile(profile)?;
    let client = Client::new(&p.node_url, None);
    let dto = client.proof(number, check_code)?;
    let bytes = hex::decode(&dto.bundle_hex).context("the node sent a bundle that is not hex")?;
    crate::files::write_atomic_bytes(out, &bytes)?;
    println!(
        "bundle for {number}: {} bytes, written to {}",
        bytes.len(),
        out.display()
    );
    Ok(())
}

/// Verifies a bundle file offline. Returns whether it is valid (the caller exits 0 or 1).
pub(crate) fn verify(bundle: &Path, genesis: &Path, max_age: Option<&str>, json: bool) -> Result<bool> {
    let g = crate::files::read_genesis(genesis)?;
    let bytes = std::fs::read(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    let max_age_ms = max_age.map(parse_duration_ms).transpose()?;
    let now = crate::now().0;
    let result = Bundle::from_bytes(&bytes)
        .map_err(|p| vec![p])
        .and_then(|b| fapiao_proof::verify(&b, &g, now, max_age_ms));
    match result {
        Ok(v) => {
            let status = match &v.status {
                Status::Issued => "issued".to_string(),
                Status::PartlyReversed(r) => format!("partly reversed by {}", join(r)),
                Status::Reversed(r) => format!("reversed by {}", join(r)),
            };
            let claim = v.claim.as_ref().map(|c| {
                format!(
                    "claimed by member {} ({}), block time {} ms",
                    c.claimant, c.claim_ref, c.at_ms
                )
            });
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "valid": true,
                        "number": v.issued.number.to_string(),
                        "chain": v.chain.to_string(),
                        "total_fen": v.issued.total.0,
                        "buyer": v.issued.buyer.name,
                        "status": status,
                        "claim": claim,
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
                println!(
                    "  as of     block {}, certified by a quorum, {} s ago",
                    v.as_of_height,
                    now.saturating_sub(v.as_of_ms) / 1000
                );
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

fn join(numbers: &[fapiao_core::InvoiceNumber]) -> String {
    numbers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
