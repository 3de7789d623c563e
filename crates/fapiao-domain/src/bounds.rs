//! The bounds every event and every state record stays within.
//!
//! [`check_event`] holds every check that needs nothing but the event itself: ids, texts,
//! list lengths and amounts. Admission runs it before an event is acknowledged, so a
//! client learns at once that an amount or a list is out of bounds; execution runs it
//! again, so a block from a peer is held to the same bounds. Bounds that depend on the
//! state (refunds per payment, invoices per payment, red-letters per invoice) are checked
//! by execution, where the state is.
//!
//! With every amount at most [`fapiao_core::money::AMOUNT_FEN_MAX`] and every sum over at most
//! [`SUM_TERMS_MAX`] terms, no sum the ledger forms can overflow `i64`: the checked
//! arithmetic in execution is a second line of defence, not the rule.

use crate::amounts;
use crate::execute::Rejection;
use fapiao_core::event::{EventKind, LineItem, RedLetterScope};
#[cfg(test)]
use fapiao_core::money::AMOUNT_FEN_MAX;
use fapiao_core::money::SUM_TERMS_MAX;
use fapiao_core::Fen;

/// Longest id (payment, refund, request, deposit, terminal), in bytes.
pub const ID_BYTES_MAX: usize = 64;
/// Longest free text (names, descriptions, reasons, labels), in bytes.
pub const TEXT_BYTES_MAX: usize = 256;
/// Longest tax classification code field, in bytes: a well-formed code has 19 digits;
/// a mistyped one up to this length is recorded as the invoice's failure.
pub const TAX_CODE_LEN_MAX: usize = 32;
/// Most lines on one invoice or red-letter.
pub const LINES_MAX: usize = 100;
/// Most payments one invoice may cover.
pub const PAYMENTS_PER_INVOICE_MAX: usize = 100;
/// Most refunds one payment may collect; a payment record lists its refund ids, so this
/// bounds the record's size.
pub const REFUNDS_PER_PAYMENT_MAX: usize = 100;
/// Most invoices one payment may be drawn on over its life (red-lettered ones count too:
/// the payment's invoicing record lists them all).
pub const INVOICES_PER_PAYMENT_MAX: usize = 100;
/// Most red-letter invoices against one blue invoice.
pub const RED_LETTERS_PER_INVOICE_MAX: usize = 100;
/// Most red-letter confirmation forms on one blue invoice, whatever became of them (the
/// invoice record lists a summary of each).
pub const RED_FORMS_PER_INVOICE_MAX: usize = 100;

// Every sum runs over one of these lists (or the per-rate amounts of at most `LINES_MAX`
// lines), each term at most `AMOUNT_FEN_MAX`.
const _: () = assert!(LINES_MAX as i64 <= SUM_TERMS_MAX);
const _: () = assert!(PAYMENTS_PER_INVOICE_MAX as i64 <= SUM_TERMS_MAX);
const _: () = assert!(REFUNDS_PER_PAYMENT_MAX as i64 <= SUM_TERMS_MAX);
const _: () = assert!(INVOICES_PER_PAYMENT_MAX as i64 <= SUM_TERMS_MAX);
const _: () = assert!(RED_LETTERS_PER_INVOICE_MAX as i64 <= SUM_TERMS_MAX);

/// Checks everything about `kind` that needs no state: ids, texts, list lengths, and that
/// every amount (payment, refund, deposit, policy limit, unit price, line and invoice
/// total) is within [`fapiao_core::money::AMOUNT_FEN_MAX`].
// Long: one arm per event kind, each listing that kind's bounds.
pub fn check_event(kind: &EventKind) -> Result<(), Rejection> {
    match kind {
        EventKind::PaymentRecorded(p) => {
            check_id("payment_id", &p.payment_id)?;
            check_amount("amount", p.amount)?;
            check_text("terminal_id", &p.terminal_id)?;
            check_text("external_ref", &p.external_ref)
        }
        EventKind::PaymentRefunded(r) => {
            check_id("payment_id", &r.payment_id)?;
            check_id("refund_id", &r.refund_id)?;
            check_amount("amount", r.amount)?;
            check_text("reason", &r.reason)
        }
        EventKind::PaymentVoided(r) => {
            check_id("payment_id", &r.payment_id)?;
            check_text("reason", &r.reason)
        }
        EventKind::InvoiceRequested(r) => {
            check_id("request_id", &r.request_id)?;
            if let Some(prev) = &r.retry_of {
                check_id("retry_of", prev)?;
            }
            check_text("buyer.name", &r.buyer.name)?;
            if let Some(t) = &r.buyer.tax_id {
                if t.len() > ID_BYTES_MAX {
                    return Err(invalid("buyer.tax_id", format!("at most {ID_BYTES_MAX} bytes")));
                }
            }
            check_lines(&r.lines)?;
            if r.payment_ids.len() > PAYMENTS_PER_INVOICE_MAX {
                return Err(invalid(
                    "payment_ids",
                    format!("at most {PAYMENTS_PER_INVOICE_MAX} payments"),
                ));
            }
            for (i, p) in r.payment_ids.iter().enumerate() {
                check_id(&format!("payment_ids[{i}]"), p)?;
            }
            Ok(())
        }
        EventKind::InvoiceRedLetterRequested(r) => {
            check_id("request_id", &r.request_id)?;
            match &r.scope {
                RedLetterScope::Partial(lines) => check_lines(lines),
                RedLetterScope::Full => Ok(()),
            }
        }
        EventKind::InvoiceClaimRequested(c) => {
            check_text("claim_ref", &c.claim_ref)?;
            if !c.check_code.is_well_formed() || !c.invoice_number.is_well_formed() {
                return Err(invalid("invoice_number", "malformed invoice number or check code"));
            }
            Ok(())
        }
        // Every field of a change is bounded by the configuration rules, which execution
        // checks on the configuration it would make (`Config::apply`).
        EventKind::ConfigChanged(_) => Ok(()),
        EventKind::FeeDeposited(d) => {
            check_id("deposit_id", &d.deposit_id)?;
            check_amount("amount", d.amount)
        }
        EventKind::QuotaChanged(c) => {
            if !(197_001..=999_912).contains(&c.month) || !(1..=12).contains(&(c.month % 100)) {
                return Err(invalid("month", "must be YYYYMM, a month of the years 1970 to 9999"));
            }
            match c.action {
                fapiao_core::event::QuotaAction::Grant(a) => check_amount("amount", a),
                _ => Ok(()),
            }
        }
        EventKind::MerchantPolicySet(p) => {
            if p.permitted_types.windows(2).any(|w| w[0] >= w[1]) {
                return Err(invalid("permitted_types", "must be sorted and distinct"));
            }
            if p.max_invoice_total.is_negative() {
                return Err(invalid("max_invoice_total", "must not be negative"));
            }
            if p.max_invoice_total > Fen::MAX {
                return Err(above_max("max_invoice_total"));
            }
            // The rules must already be in canonical order: the event is signed bytes.
            let mut canonical = p.rates.clone();
            fapiao_core::tax::canonical_rate_rules(&mut canonical).map_err(|e| invalid("rates", e))?;
            if canonical != p.rates {
                return Err(invalid("rates", "must be sorted by rate, then start"));
            }
            Ok(())
        }
        EventKind::ClientKeyAuthorized(a) => {
            a.key.check().map_err(|e| invalid("key", e.to_string()))?;
            check_text("label", &a.label)?;
            if !a.permissions.payments && !a.permissions.invoices {
                return Err(invalid("permissions", "grant at least one permission"));
            }
            Ok(())
        }
        EventKind::ClientKeyRevoked(_) => Ok(()),
        EventKind::InvoiceClaimUnlocked(a) | EventKind::InvoiceClaimClosed(a) => {
            check_text("claim_ref", &a.claim_ref)?;
            check_number(&a.invoice_number)
        }
        EventKind::InvoiceBookingSet(b) => check_number(&b.invoice_number),
        EventKind::RedFormStarted(f) => {
            check_number(&f.invoice_number)?;
            match &f.scope {
                RedLetterScope::Partial(lines) => check_lines(lines),
                RedLetterScope::Full => Ok(()),
            }
        }
        EventKind::RedFormAnswered(a) => check_number(&a.form.invoice_number),
        EventKind::RedFormWithdrawn(f) => check_number(&f.invoice_number),
    }
}

fn check_number(n: &fapiao_core::InvoiceNumber) -> Result<(), Rejection> {
    if n.is_well_formed() {
        Ok(())
    } else {
        Err(invalid("invoice_number", "malformed invoice number"))
    }
}

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    Rejection::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn above_max(field: impl Into<String>) -> Rejection {
    Rejection::AmountAboveMax {
        field: field.into(),
        max: Fen::MAX,
    }
}

fn check_id(field: &str, id: &str) -> Result<(), Rejection> {
    if id.is_empty() || id.len() > ID_BYTES_MAX || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            field,
            format!("must be 1 to {ID_BYTES_MAX} printable ASCII characters without spaces"),
        ));
    }
    Ok(())
}

fn check_text(field: &str, text: &str) -> Result<(), Rejection> {
    if text.len() > TEXT_BYTES_MAX || text.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("must be at most {TEXT_BYTES_MAX} bytes without control characters"),
        ));
    }
    Ok(())
}

/// A payment, refund or deposit amount: above zero and at most the bound.
fn check_amount(field: &str, amount: Fen) -> Result<(), Rejection> {
    if !amount.is_positive() {
        return Err(invalid(field, "must be above zero"));
    }
    if amount > Fen::MAX {
        return Err(above_max(field));
    }
    Ok(())
}

/// The shape of a list of lines and the bound on their amounts. A quantity or price of
/// zero or below is left to execution, which records it as the invoice's failure with a
/// remedy; an amount above the bound cannot be an invoice at all.
fn check_lines(lines: &[LineItem]) -> Result<(), Rejection> {
    if lines.len() > LINES_MAX {
        return Err(invalid("lines", format!("at most {LINES_MAX} lines")));
    }
    let mut computable = true;
    for (i, l) in lines.iter().enumerate() {
        check_text(&format!("lines[{i}].description"), &l.description)?;
        // A malformed code is the invoice's recorded failure (TAX_CODE_UNKNOWN); only
        // its length is bounded here.
        if l.tax_code.len() > TAX_CODE_LEN_MAX {
            return Err(invalid(
                format!("lines[{i}].tax_code"),
                format!("at most {TAX_CODE_LEN_MAX} bytes"),
            ));
        }
        if l.unit_price > Fen::MAX {
            return Err(above_max(format!("lines[{i}].unit_price")));
        }
        if l.quantity.0 <= 0 || !l.unit_price.is_positive() {
            computable = false;
            continue;
        }
        match amounts::net_tax(l) {
            Some((net, tax)) if net <= Fen::MAX && net.checked_add(tax).is_some_and(|t| t <= Fen::MAX) => {}
            _ => return Err(above_max(format!("lines[{i}]"))),
        }
    }
    if computable {
        // A line's short name does not change its amounts.
        match amounts::totals(lines, |_| String::new()) {
            Some(t) if t.total <= Fen::MAX => {}
            _ => return Err(above_max("lines")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_leaves_room_for_every_sum() {
        assert!(AMOUNT_FEN_MAX.checked_mul(SUM_TERMS_MAX).is_some());
    }
}
