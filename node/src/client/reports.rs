//! The node as a whole: the outbox, the node's status, and the daily reconciliation.

use super::*;

/// The profile's outbox, and the profile.
fn open_outbox(opts: &ClientOpts) -> Result<(Outbox, ClientProfile)> {
    let (profile, dir) = load_profile(&opts.client)?;
    let Some(o) = &profile.outbox else {
        bail!("the client profile has no outbox directory (`outbox = \"outbox\"`)");
    };
    let ob = Outbox::open(&if o.is_absolute() { o.clone() } else { dir.join(o) })?;
    Ok((ob, profile))
}

/// `fapiao outbox status`: what waits, and what was refused for good.
pub(crate) fn outbox_status(opts: &ClientOpts) -> Result<()> {
    let (ob, _) = open_outbox(opts)?;
    println!(
        "waiting {}, admitted and awaiting certification {}",
        ob.pending()?,
        ob.awaiting()?
    );
    print_refused(&ob)
}

/// `fapiao outbox flush`: sends what waits, for at most `wait_s` seconds.
pub(crate) fn outbox_flush(opts: &ClientOpts, wait_s: u64) -> Result<()> {
    let (ob, profile) = open_outbox(opts)?;
    {
        let client = Client::new(&profile.node_url, profile.read_token.clone());
        let r = ob.drain(&client, Backoff::default(), Duration::from_secs(wait_s))?;
        println!(
            "delivered {}, refused {}, still waiting {}; certified {}, sent again {}, awaiting certification {}{}",
            r.delivered,
            r.failed,
            r.pending,
            r.certified,
            r.resubmitted,
            r.awaiting,
            r.deferred.map(|d| format!(" ({d})")).unwrap_or_default()
        );
        if let Some(why) = r.unconfirmed {
            println!("the node did not say which admitted events are certified: {why}");
        }
    }
    print_refused(&ob)
}

/// The events the outbox set aside because the node refused them for good.
fn print_refused(ob: &Outbox) -> Result<()> {
    let failed = ob.failed()?;
    if !failed.is_empty() {
        println!(
            "refused for good ({}), see the outbox's failed/ directory:",
            failed.len()
        );
        for (p, e) in &failed {
            println!("  {}  {} {}", p.display(), e.code, e.message);
        }
    }
    Ok(())
}

pub(crate) fn status(opts: &ClientOpts) -> Result<()> {
    let (profile, _) = load_profile(&opts.client)?;
    let client = Client::new(&profile.node_url, profile.read_token.clone());
    let s = client.status()?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!("network   {} ({})", s.network_name, s.network_id);
        println!(
            "chain     {}  head {}  certified {}  pending {}",
            s.chain, s.head_height, s.certified_height, s.pending
        );
        println!("members   {} (quorum {})  version {}", s.members, s.quorum, s.version);
        if s.maintenance {
            println!("MAINTENANCE: writes are refused with 503 and Retry-After; reads and verification go on");
        }
        if !s.chains.is_empty() {
            let peers = if s.peers.is_empty() {
                "none".to_string()
            } else {
                s.peers.join(", ")
            };
            println!("peers     {peers}");
            println!("{:<8} {:>8} {:>10} {:>6}  state", "chain", "head", "certified", "lag");
            for c in &s.chains {
                let state = if c.frozen {
                    "FROZEN (equivocation evidence; see /v1/evidence)"
                } else if c.certified == c.height {
                    "in sync"
                } else {
                    "certifying"
                };
                println!(
                    "{:<8} {:>8} {:>10} {:>6}  {state}",
                    c.chain, c.height, c.certified, c.lag
                );
            }
        }
    }
    Ok(())
}

/// `fapiao reconcile`: payments against invoices per day and method; exits non-zero when
/// a balance check fails.
// Long: prints the reconciliation's sections in the order of the report.
pub(crate) fn reconcile(opts: &ClientOpts, from: &str, to: &str, format: &str) -> Result<()> {
    let (profile, _) = load_profile(&opts.client)?;
    let client = Client::new(&profile.node_url, profile.read_token.clone());
    let r = client.reconciliation(from, to)?;
    let rows: Vec<&fapiao_api::dto::ReconRowDto> = r.rows.iter().chain(std::iter::once(&r.total)).collect();
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&r)?),
        "csv" => {
            println!("day,method,payments,paid,refunded,invoiced,reversed,not_invoiced,voided");
            for x in &rows {
                println!(
                    "{},{},{},{},{},{},{},{},{}",
                    x.day,
                    x.method,
                    x.payments,
                    Fen::from_fen(x.paid_fen),
                    Fen::from_fen(x.refunded_fen),
                    Fen::from_fen(x.invoiced_fen),
                    Fen::from_fen(x.reversed_fen),
                    Fen::from_fen(x.not_invoiced_fen),
                    Fen::from_fen(x.voided_fen)
                );
            }
        }
        _ => {
            println!(
                "{:<10} {:<12} {:>6} {:>12} {:>12} {:>12} {:>12} {:>12} {:>10}",
                "day", "method", "count", "paid", "refunded", "invoiced", "reversed", "to invoice", "voided"
            );
            for x in &rows {
                println!(
                    "{:<10} {:<12} {:>6} {:>12} {:>12} {:>12} {:>12} {:>12} {:>10}",
                    x.day,
                    x.method,
                    x.payments,
                    Fen::from_fen(x.paid_fen).to_string(),
                    Fen::from_fen(x.refunded_fen).to_string(),
                    Fen::from_fen(x.invoiced_fen).to_string(),
                    Fen::from_fen(x.reversed_fen).to_string(),
                    Fen::from_fen(x.not_invoiced_fen).to_string(),
                    Fen::from_fen(x.voided_fen).to_string()
                );
            }
            if !r.uninvoiced.is_empty() {
                println!(
                    "not invoiced yet: {}",
                    r.uninvoiced
                        .iter()
                        .map(|(p, f)| format!("{p} ({})", Fen::from_fen(*f)))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for (p, n) in &r.needs_red_letter {
                println!("needs red-letter: invoice {n} (payment {p} was refunded after invoicing)");
            }
            if !r.by_rate.is_empty() {
                println!(
                    "{:<6} {:>14} {:>12} {:>14} {:>12}",
                    "rate", "issued net", "issued tax", "reversed net", "reversed tax"
                );
                for x in &r.by_rate {
                    println!(
                        "{:<6} {:>14} {:>12} {:>14} {:>12}",
                        x.rate,
                        Fen::from_fen(x.issued_net_fen).to_string(),
                        Fen::from_fen(x.issued_tax_fen).to_string(),
                        Fen::from_fen(x.reversed_net_fen).to_string(),
                        Fen::from_fen(x.reversed_tax_fen).to_string()
                    );
                }
            }
            for q in &r.quota {
                println!(
                    "quota {}: granted {}  used {}  left {}{}",
                    q.month,
                    Fen::from_fen(q.granted_fen),
                    Fen::from_fen(q.used_fen),
                    Fen::from_fen(q.left_fen),
                    if q.suspended { "  SUSPENDED" } else { "" }
                );
            }
            println!("{}", if r.balanced { "balanced" } else { "NOT BALANCED" });
        }
    }
    if !r.balanced {
        for e in &r.errors {
            eprintln!("balance error: {e}");
        }
        bail!("{} balance error(s)", r.errors.len());
    }
    Ok(())
}
