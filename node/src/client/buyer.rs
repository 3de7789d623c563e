//! The buyer's side of an invoice from the command line: red-letter confirmation forms
//! (`fapiao redform`) and the reimbursement claim with the booking status
//! (`fapiao claim`). Each command signs one event with the key of the side it speaks for
//! (`--as`), submits it to the issuer's node and prints the outcome its block recorded,
//! read from the public `GET /v1/events/{id}/outcome` (no read token needed); a refusal
//! is an error (exit status 1) with the reason.

use super::invoices::print_request;
use super::{gen_id, parse_line, parse_number, Ctx};
use crate::client::ClientOpts;
use anyhow::{anyhow, bail, Result};
use clap::{Subcommand, ValueEnum};
use fapiao_api::dto::{
    ClaimRefusalDto, DerivedDataDto, DerivedEntryDto, EntryDto, EventDataDto, EventEntryDto, RedFormRefusalDto,
};
use fapiao_core::event::*;
use fapiao_core::SecretKey;

/// Whose key signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Side {
    /// The merchant: the profile's client key (it needs the `invoices` permission).
    Seller,
    /// The buyer member: the profile's `buyer_key` (its tax id is the invoice's buyer
    /// tax id).
    Buyer,
    /// The verifier member that holds the reimbursement claim: the profile's
    /// `verifier_key`.
    Verifier,
}

#[derive(Subcommand)]
pub(crate) enum RedformCommand {
    /// Start a red-letter confirmation form. As the seller (default) it is a red-letter
    /// request: issued at once if the buyer has neither booked nor claimed the invoice,
    /// otherwise it waits for the buyer. As the buyer it waits for the seller.
    Start {
        /// The invoice to reverse.
        number: String,
        /// issue_error (01), sales_return (02), service_termination (03) or
        /// sales_discount (04).
        #[arg(long)]
        reason: String,
        /// Lines to reverse ("DESCRIPTION|QTY|UNIT_PRICE|RATE|TAX_CODE"), in the invoice's line
        /// order; none = the whole rest.
        #[arg(long = "line")]
        lines: Vec<String>,
        /// The seller's request id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Which side starts it.
        #[arg(long = "as", value_enum, default_value = "seller")]
        side: Side,
    },
    /// Confirm a form that waits for your side: the red invoice is issued.
    Confirm {
        /// The invoice.
        number: String,
        /// The form's number on it.
        form: u32,
        /// Which side answers.
        #[arg(long = "as", value_enum, default_value = "seller")]
        side: Side,
    },
    /// Reject a form that waits for your side.
    Reject {
        /// The invoice.
        number: String,
        /// The form's number on it.
        form: u32,
        /// Which side answers.
        #[arg(long = "as", value_enum, default_value = "seller")]
        side: Side,
    },
    /// Withdraw a waiting form your side started.
    Withdraw {
        /// The invoice.
        number: String,
        /// The form's number on it.
        form: u32,
        /// Which side withdraws.
        #[arg(long = "as", value_enum, default_value = "seller")]
        side: Side,
    },
    /// List an invoice's forms (read token of the issuer's node).
    List {
        /// The invoice.
        number: String,
    },
    /// Show one form in full (read token of the issuer's node).
    Show {
        /// The invoice.
        number: String,
        /// The form's number on it.
        form: u32,
    },
}

#[derive(Subcommand)]
pub(crate) enum ClaimCommand {
    /// Lock an invoice for your reimbursement flow (verifier key by default). Any other
    /// claimant is refused while it is locked or closed, told when, not by whom.
    Lock {
        /// The invoice.
        number: String,
        /// Its check code (proves you hold the invoice).
        #[arg(long)]
        check_code: String,
        /// Your reference (expense report number).
        #[arg(long = "ref")]
        claim_ref: String,
        /// Which member locks.
        #[arg(long = "as", value_enum, default_value = "verifier")]
        side: Side,
    },
    /// Release your lock (your flow failed); another claimant may then lock it.
    Unlock {
        /// The invoice.
        number: String,
        /// The reference you locked it with.
        #[arg(long = "ref")]
        claim_ref: String,
        /// Which member holds the lock.
        #[arg(long = "as", value_enum, default_value = "verifier")]
        side: Side,
    },
    /// Close your claim: the invoice is reimbursed, for good.
    Close {
        /// The invoice.
        number: String,
        /// The reference you locked it with.
        #[arg(long = "ref")]
        claim_ref: String,
        /// Which member holds the lock.
        #[arg(long = "as", value_enum, default_value = "verifier")]
        side: Side,
    },
    /// Record the invoice's booking status as its buyer (入账): 01 not booked, 02 booked
    /// and deducted, 03 booked not deducted, 06 booking withdrawn (names work too).
    Book {
        /// The invoice.
        number: String,
        /// 01, 02, 03, 06, or not_booked, booked_deducted, booked_not_deducted, withdrawn.
        #[arg(long)]
        status: String,
        /// Which member books (the buyer, or the claim's holder).
        #[arg(long = "as", value_enum, default_value = "buyer")]
        side: Side,
    },
}

impl Ctx {
    fn side_key(&self, side: Side) -> Result<SecretKey> {
        match side {
            Side::Seller => self.client_key(),
            Side::Buyer => self.key(self.profile.buyer_key.as_deref(), "buyer"),
            Side::Verifier => self.key(self.profile.verifier_key.as_deref(), "verifier"),
        }
    }

    /// Submits `kind` signed for `side`, then prints what its block recorded; a refusal
    /// is an error.
    fn act(&self, side: Side, kind: EventKind) -> Result<()> {
        let key = self.side_key(side)?;
        let (id, r) = self.submit(&key, kind)?;
        if r.height.is_none() {
            return self.print_submitted("event", &r);
        }
        let outcome = self.client.event_outcome(&id)?;
        if self.opts.json {
            println!("{}", serde_json::to_string_pretty(&outcome)?);
        }
        let mut refused = None;
        for d in &outcome.derived {
            let (line, refusal) = describe(d);
            if !self.opts.json {
                println!("{line}");
            }
            refused = refused.or(refusal);
        }
        match refused {
            Some(why) => bail!("REFUSED: {why}"),
            None => Ok(()),
        }
    }
}

/// One derived entry for people, and the refusal it carries, if it is one.
// Long: one arm per derived entry kind a buyer sees.
fn describe(d: &DerivedEntryDto) -> (String, Option<String>) {
    let time = fapiao_engine::format_time;
    let fen = fapiao_core::Fen::from_fen;
    match &d.derived {
        DerivedDataDto::ClaimRecorded(c) => (
            format!(
                "LOCKED: invoice {} for member {} (ref {})",
                c.invoice_number, c.claimant, c.claim_ref
            ),
            None,
        ),
        DerivedDataDto::ClaimUnlocked(c) => (
            format!("UNLOCKED: invoice {} at {}", c.invoice_number, time(c.at_ms)),
            None,
        ),
        DerivedDataDto::ClaimClosed(c) => (
            format!("CLOSED: invoice {} reimbursed at {}", c.invoice_number, time(c.at_ms)),
            None,
        ),
        DerivedDataDto::BookingRecorded(b) => (
            format!("BOOKED: invoice {} status {} {}", b.invoice_number, b.code, b.status),
            None,
        ),
        DerivedDataDto::RedFormChanged(f) => (
            format!("FORM {}/{}: {}", f.invoice_number, f.form, f.state.to_uppercase()),
            None,
        ),
        DerivedDataDto::InvoiceReversed(r) => (
            format!(
                "RED INVOICE {} issued against {} (total {} reversed)",
                r.red_number,
                r.original,
                fen(r.total_fen)
            ),
            None,
        ),
        DerivedDataDto::InvoiceFailed(f) => {
            let why = format!("{}: {} Remedy: {}", f.reason, f.detail, f.remedy);
            (format!("FAILED {why}"), Some(why))
        }
        DerivedDataDto::ClaimRefused(c) => {
            let why = match &c.refusal {
                ClaimRefusalDto::AlreadyClaimed {
                    first_claimed_at_ms, ..
                } => {
                    format!("already locked for reimbursement since {}", time(*first_claimed_at_ms))
                }
                ClaimRefusalDto::Closed { closed_at_ms } => {
                    format!("the claim was closed (reimbursed) at {}", time(*closed_at_ms))
                }
                ClaimRefusalDto::Reversed => "the invoice is fully red-letter reversed".into(),
                ClaimRefusalDto::NotLocked => "the invoice is not locked".into(),
                ClaimRefusalDto::NotLockHolder => "the lock is not yours (another member or reference)".into(),
                ClaimRefusalDto::NotFound => "no such invoice or form for this member".into(),
            };
            (format!("REFUSED: {why}"), Some(why))
        }
        DerivedDataDto::RedFormRefused(f) => {
            let why = match &f.refusal {
                RedFormRefusalDto::NotWaiting { state } => format!("the form no longer waits: it is {state}"),
                RedFormRefusalDto::WrongSide => "the form waits for (or was started by) the other side".into(),
                RedFormRefusalDto::Failed { code, remedy, detail } => format!("{code}: {detail} Remedy: {remedy}"),
                RedFormRefusalDto::NotFound => "no such invoice or form for this member".into(),
            };
            (format!("REFUSED: {why}"), Some(why))
        }
        DerivedDataDto::InvoiceIssued(i) => (
            format!(
                "ISSUED {} to {} (total {}){}",
                i.number,
                i.buyer.name,
                fen(i.total_fen),
                i.replaces
                    .as_ref()
                    .map(|r| format!(", replacing {r}"))
                    .unwrap_or_default()
            ),
            None,
        ),
    }
}

/// One input event of an invoice's history for people: what was asked, and by whom.
fn describe_event(e: &EventEntryDto) -> String {
    let by = &e.author[..e.author.len().min(12)];
    let what = match &e.event {
        EventDataDto::InvoiceRedLetterRequested(r) => {
            format!("red-letter requested ({}, request {})", r.reason, r.request_id)
        }
        EventDataDto::InvoiceClaimRequested(c) => format!("lock requested (ref {})", c.claim_ref),
        EventDataDto::InvoiceClaimUnlocked(c) => format!("unlock requested (ref {})", c.claim_ref),
        EventDataDto::InvoiceClaimClosed(c) => format!("closing requested (ref {})", c.claim_ref),
        EventDataDto::InvoiceBookingSet(b) => format!("booking status {} {} set", b.code, b.status),
        EventDataDto::RedFormStarted(f) => format!("form started by the buyer ({})", f.reason),
        EventDataDto::RedFormAnswered(a) => {
            format!("form {} {}", a.form, if a.confirm { "confirmed" } else { "rejected" })
        }
        EventDataDto::RedFormWithdrawn(f) => format!("form {} withdrawn", f.form),
        EventDataDto::InvoiceRequested(r) => format!("invoice requested (request {})", r.request_id),
        _ => EntryDto::Event(e.clone()).type_and_kind().1,
    };
    format!("{what}, signed by key {by}...")
}

/// `fapiao invoice history NUMBER`: every state the invoice went through, in ledger
/// order, page by page: each request or answer and what the ledger recorded for it.
pub(crate) fn print_invoice_history(ctx: &Ctx, number: &str) -> Result<()> {
    let mut after: Option<String> = None;
    let mut all = Vec::new();
    loop {
        let page = ctx.client.invoice_history(number, after.as_deref())?;
        all.extend(page.entries);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    if ctx.opts.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    println!("invoice {number}: {} entries", all.len());
    for h in &all {
        let text = match &h.entry {
            EntryDto::Event(e) => format!("  asked: {}", describe_event(e)),
            EntryDto::Derived(d) => describe(d).0,
        };
        println!(
            "{} block {}.{}{}  {text}",
            fapiao_engine::format_time(h.timestamp_ms),
            h.height,
            h.index,
            if h.certified { "" } else { " (not yet certified)" }
        );
    }
    Ok(())
}

fn reason(name: &str) -> Result<RedLetterReason> {
    let by_code = match name {
        "01" => Some(RedLetterReason::IssueError),
        "02" => Some(RedLetterReason::SalesReturn),
        "03" => Some(RedLetterReason::ServiceTermination),
        "04" => Some(RedLetterReason::SalesDiscount),
        _ => None,
    };
    by_code.or_else(|| RedLetterReason::from_name(name)).ok_or_else(|| {
        anyhow!("--reason: issue_error (01), sales_return (02), service_termination (03) or sales_discount (04)")
    })
}

// Long: one arm per `redform` subcommand.
pub(crate) fn redform(opts: &ClientOpts, cmd: RedformCommand) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let form_ref = |number: &str, form: u32| -> Result<RedFormRef> {
        Ok(RedFormRef {
            invoice_number: parse_number(number)?,
            form,
        })
    };
    match cmd {
        RedformCommand::Start {
            number,
            reason: r,
            lines,
            id,
            side,
        } => {
            let invoice_number = parse_number(&number)?;
            let reason = reason(&r)?;
            let scope = if lines.is_empty() {
                RedLetterScope::Full
            } else {
                RedLetterScope::Partial(lines.iter().map(|l| parse_line(l)).collect::<Result<Vec<_>>>()?)
            };
            if side != Side::Seller {
                if id.is_some() {
                    bail!("--id names the seller's request; a buyer's form is numbered on the invoice");
                }
                return ctx.act(
                    side,
                    EventKind::RedFormStarted(RedFormStart {
                        invoice_number,
                        reason,
                        scope,
                    }),
                );
            }
            let id = id.unwrap_or_else(|| gen_id("RED"));
            let key = ctx.client_key()?;
            ctx.submit(
                &key,
                EventKind::InvoiceRedLetterRequested(RedLetterRequested {
                    request_id: id.clone(),
                    invoice_number,
                    reason,
                    scope,
                }),
            )?;
            print_request(&ctx, &id)
        }
        RedformCommand::Confirm { number, form, side } => ctx.act(
            side,
            EventKind::RedFormAnswered(RedFormAnswer {
                form: form_ref(&number, form)?,
                confirm: true,
            }),
        ),
        RedformCommand::Reject { number, form, side } => ctx.act(
            side,
            EventKind::RedFormAnswered(RedFormAnswer {
                form: form_ref(&number, form)?,
                confirm: false,
            }),
        ),
        RedformCommand::Withdraw { number, form, side } => {
            ctx.act(side, EventKind::RedFormWithdrawn(form_ref(&number, form)?))
        }
        RedformCommand::List { number } => {
            let i = ctx.client.invoice(&number)?;
            if ctx.opts.json {
                println!("{}", serde_json::to_string_pretty(&i.forms)?);
                return Ok(());
            }
            if i.forms.is_empty() {
                println!("invoice {number} has no red-letter confirmation form");
            }
            for f in &i.forms {
                println!("{}", crate::render::form_line(f));
            }
            Ok(())
        }
        RedformCommand::Show { number, form } => {
            let f = ctx.client.red_form(&number, form)?;
            if ctx.opts.json {
                println!("{}", serde_json::to_string_pretty(&f)?);
                return Ok(());
            }
            println!(
                "form {}/{} by the {}: {}",
                f.invoice_number, f.form, f.initiator, f.state
            );
            println!("  reason    {}", f.reason);
            println!("  scope     {}", crate::render::scope(&f.scope));
            println!("  request   {}", f.request_id);
            println!("  opened    {}", fapiao_engine::format_time(f.opened_at_ms));
            println!("  deadline  {}", fapiao_engine::format_time(f.deadline_ms));
            if let Some(t) = f.decided_at_ms {
                println!("  decided   {}", fapiao_engine::format_time(t));
            }
            if let Some(n) = &f.red_number {
                println!("  red       {n}");
            }
            Ok(())
        }
    }
}

pub(crate) fn claim(opts: &ClientOpts, cmd: ClaimCommand) -> Result<()> {
    let ctx = Ctx::new(opts)?;
    let action = |number: &str, claim_ref: String| -> Result<ClaimAction> {
        Ok(ClaimAction {
            invoice_number: parse_number(number)?,
            claim_ref,
        })
    };
    match cmd {
        ClaimCommand::Lock {
            number,
            check_code,
            claim_ref,
            side,
        } => {
            let check_code: fapiao_core::CheckCode = check_code
                .parse()
                .map_err(|e: fapiao_core::ids::ParseError| anyhow!("--check-code: {e}"))?;
            ctx.act(
                side,
                EventKind::InvoiceClaimRequested(ClaimRequested {
                    invoice_number: parse_number(&number)?,
                    check_code,
                    claim_ref,
                }),
            )
        }
        ClaimCommand::Unlock {
            number,
            claim_ref,
            side,
        } => ctx.act(side, EventKind::InvoiceClaimUnlocked(action(&number, claim_ref)?)),
        ClaimCommand::Close {
            number,
            claim_ref,
            side,
        } => ctx.act(side, EventKind::InvoiceClaimClosed(action(&number, claim_ref)?)),
        ClaimCommand::Book { number, status, side } => {
            let status = BookingStatus::parse(&status).ok_or_else(|| {
                anyhow!("--status: 01 not_booked, 02 booked_deducted, 03 booked_not_deducted or 06 withdrawn")
            })?;
            ctx.act(
                side,
                EventKind::InvoiceBookingSet(BookingSet {
                    invoice_number: parse_number(&number)?,
                    status,
                }),
            )
        }
    }
}
