//! Read commands for what the API offers beyond invoices: payments, blocks and
//! equivocation evidence, printed for people (times as dates in UTC+8) or as the API's
//! JSON with `--json`.

use super::Ctx;
use crate::client::ClientOpts;
use anyhow::Result;
use clap::Subcommand;
use fapiao_api::dto::PaymentDto;
use fapiao_core::Fen;
use fapiao_engine::format_time;

#[derive(Subcommand)]
pub(crate) enum PaymentCommand {
    /// One payment: amount, method, refunds, voiding, what is invoiced and left.
    Show {
        /// The payment id.
        id: String,
    },
    /// Payments in id order, a page at a time.
    List {
        /// Start after this payment id.
        #[arg(long)]
        after: Option<String>,
        /// At most this many (the node caps a page at its page size).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        limit: u64,
    },
}

#[derive(Subcommand)]
pub(crate) enum BlockCommand {
    /// Block headers of this node's chain, with whether each is certified.
    List {
        /// First height.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        from: u64,
        /// At most this many.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        limit: u64,
    },
    /// One block of this node's chain: its header, its entries and its certificate.
    Show {
        /// The height (1 is the first block).
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        height: u64,
    },
}

pub(crate) fn payment(opts: &ClientOpts, cmd: PaymentCommand) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    match cmd {
        PaymentCommand::Show { id } => {
            let p = ctx.client.payment(&id)?;
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&p)?);
                return Ok(());
            }
            print_payment(&p);
        }
        PaymentCommand::List { after, limit } => {
            let page = ctx.client.payments(after.as_deref(), limit as usize)?;
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(());
            }
            println!(
                "{:<24} {:>12} {:<10} {:>12} {:>12} {:>12}  recorded",
                "payment", "amount", "method", "refunded", "invoiced", "invoiceable"
            );
            for p in &page {
                println!(
                    "{:<24} {:>12} {:<10} {:>12} {:>12} {:>12}  {}{}",
                    p.payment_id,
                    Fen::from_fen(p.amount_fen).to_string(),
                    p.method,
                    Fen::from_fen(p.refunded_fen).to_string(),
                    Fen::from_fen(p.invoiced_fen).to_string(),
                    Fen::from_fen(p.invoiceable_fen).to_string(),
                    format_time(p.recorded_at_ms),
                    if p.voided.is_some() { "  VOIDED" } else { "" }
                );
            }
            if let Some(last) = page.last() {
                if page.len() as u64 == limit {
                    println!("more: fapiao payment list --after {}", last.payment_id);
                }
            }
        }
    }
    Ok(())
}

fn print_payment(p: &PaymentDto) {
    println!(
        "PAYMENT {}: {} {} by {} at terminal {}",
        p.payment_id,
        Fen::from_fen(p.amount_fen),
        p.currency,
        p.method,
        p.terminal_id
    );
    println!(
        "  recorded     {} (event {})",
        format_time(p.recorded_at_ms),
        p.event_id
    );
    if !p.external_ref.is_empty() {
        println!("  reference    {}", p.external_ref);
    }
    if let Some(r) = &p.voided {
        println!(
            "  VOIDED       {} ({}; event {})",
            format_time(r.at_ms),
            r.reason,
            r.event_id
        );
    }
    println!(
        "  refunded     {}{}",
        Fen::from_fen(p.refunded_fen),
        if p.refund_ids.is_empty() {
            String::new()
        } else {
            format!(" ({})", p.refund_ids.join(", "))
        }
    );
    println!("  invoiced     {}", Fen::from_fen(p.invoiced_fen));
    println!("  invoiceable  {}", Fen::from_fen(p.invoiceable_fen));
    if !p.invoices.is_empty() {
        println!("  invoices     {}", p.invoices.join(", "));
    }
    if p.needs_red_letter {
        println!("  NEEDS RED LETTER: refunded after invoicing; red-letter the invoice");
    }
}

pub(crate) fn block(opts: &ClientOpts, cmd: BlockCommand) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    match cmd {
        BlockCommand::List { from, limit } => {
            let headers = ctx.client.blocks(from, limit)?;
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&headers)?);
                return Ok(());
            }
            println!(
                "{:>8} {:>6} {:<11} {:<16}  time",
                "height", "events", "certified", "hash"
            );
            for h in &headers {
                println!(
                    "{:>8} {:>6} {:<11} {:<16}  {}",
                    h.height,
                    h.event_count,
                    if h.certified { "certified" } else { "pending" },
                    h.hash.get(..16).unwrap_or(&h.hash),
                    format_time(h.timestamp_ms)
                );
            }
        }
        BlockCommand::Show { height } => {
            let b = ctx.client.block(height)?;
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&b)?);
                return Ok(());
            }
            let h = &b.header;
            println!(
                "BLOCK {} of chain {}: {} event(s), {}",
                h.height,
                h.chain,
                h.event_count,
                if h.certified { "certified" } else { "not certified yet" }
            );
            println!("  time         {}", format_time(h.timestamp_ms));
            println!("  hash         {}", h.hash);
            println!("  parent       {}", h.parent);
            println!("  events root  {}", h.events_root);
            println!("  state root   {}", h.state_root);
            if !b.certificate_witnesses.is_empty() {
                println!("  certified by {}", b.certificate_witnesses.join(", "));
            }
            for (i, e) in b.entries.iter().enumerate() {
                let (what, kind) = e.type_and_kind();
                println!("  [{i}] {what} {kind}  {}", e.data());
            }
        }
    }
    Ok(())
}

pub(crate) fn evidence(opts: &ClientOpts) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let all = ctx.client.evidence()?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    if all.is_empty() {
        println!("no equivocation evidence: no chain is frozen");
    }
    for e in &all {
        let state = match e.superseded_in_epoch {
            None => "FROZEN".to_string(),
            Some(epoch) => format!("RESET in epoch {epoch}, on record:"),
        };
        println!(
            "{state} chain {} at height {}: two blocks signed by its owner: {}",
            e.chain,
            e.height,
            e.blocks.join(" and ")
        );
    }
    Ok(())
}
