//! Payments and the daily reconciliation.

use super::*;
use fapiao_core::event::{Currency, PaymentMethod};

/// A payment's voiding.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct VoidDto {
    /// When.
    pub at_ms: u64,
    /// Why.
    pub reason: String,
    /// The voiding event.
    pub event_id: String,
}

/// A payment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PaymentDto {
    /// Merchant's id.
    pub payment_id: String,
    /// Paid, fen.
    pub amount_fen: i64,
    /// Currency.
    #[schema(schema_with = currencies_schema)]
    pub currency: String,
    /// Method.
    #[schema(schema_with = payment_methods_schema)]
    pub method: String,
    /// Terminal.
    pub terminal_id: String,
    /// Processor reference.
    pub external_ref: String,
    /// Block time recorded.
    pub recorded_at_ms: u64,
    /// Recording event.
    pub event_id: String,
    /// Refunded, fen.
    pub refunded_fen: i64,
    /// Refund ids.
    pub refund_ids: Vec<String>,
    /// Its voiding, if it was voided as wrongly entered.
    pub voided: Option<VoidDto>,
    /// Covered by issued, unreversed invoices, fen.
    pub invoiced_fen: i64,
    /// Still invoiceable, fen (paid - refunded - invoiced, at least 0; 0 if voided).
    pub invoiceable_fen: i64,
    /// Invoices that drew on it.
    pub invoices: Vec<String>,
    /// Refunded after invoicing: an invoice must be red-lettered.
    pub needs_red_letter: bool,
}

impl From<&PaymentView> for PaymentDto {
    fn from(v: &PaymentView) -> Self {
        let r = &v.record;
        PaymentDto {
            payment_id: r.recorded.payment_id.clone(),
            amount_fen: r.recorded.amount.fen(),
            currency: r.recorded.currency.code().into(),
            method: r.recorded.method.name().into(),
            terminal_id: r.recorded.terminal_id.clone(),
            external_ref: r.recorded.external_ref.clone(),
            recorded_at_ms: r.recorded_at.0,
            event_id: r.event.to_string(),
            refunded_fen: r.refunded.fen(),
            refund_ids: r.refund_ids.clone(),
            voided: r.voided.as_ref().map(|x| VoidDto {
                at_ms: x.at.0,
                reason: x.reason.clone(),
                event_id: x.event.to_string(),
            }),
            invoiced_fen: v.invoicing.invoiced.fen(),
            invoiceable_fen: v.invoiceable().fen(),
            invoices: v.invoicing.invoices.iter().map(|n| n.to_string()).collect(),
            needs_red_letter: v.needs_red_letter(),
        }
    }
}

/// One reconciliation row: a business day (UTC+8) and a payment method. Amounts in fen.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ReconRowDto {
    /// `YYYY-MM-DD` (UTC+8), or `all` for the total.
    pub day: String,
    /// Payment method, or `all`.
    #[schema(schema_with = payment_methods_schema)]
    pub method: String,
    /// Payments (not counting voided ones).
    pub payments: u64,
    /// Paid.
    pub paid_fen: i64,
    /// Refunded.
    pub refunded_fen: i64,
    /// Invoiced (issued, before red-letter reversals).
    pub invoiced_fen: i64,
    /// Red-letter reversed.
    pub reversed_fen: i64,
    /// Still to invoice.
    pub not_invoiced_fen: i64,
    /// Payments reversed as wrongly entered.
    pub voided_fen: i64,
}

impl ReconRowDto {
    /// From a row.
    pub fn new(r: &fapiao_engine::ReconRow, day: String) -> Self {
        ReconRowDto {
            day,
            method: r.method.clone(),
            payments: r.payments,
            paid_fen: r.paid.fen(),
            refunded_fen: r.refunded.fen(),
            invoiced_fen: r.invoiced.fen(),
            reversed_fen: r.reversed.fen(),
            not_invoiced_fen: r.not_invoiced.fen(),
            voided_fen: r.voided.fen(),
        }
    }
}

/// A reconciliation of payments against invoices.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReconciliationDto {
    /// First day (UTC+8).
    pub from: String,
    /// Last day.
    pub to: String,
    /// Per day and method.
    pub rows: Vec<ReconRowDto>,
    /// Totals.
    pub total: ReconRowDto,
    /// Payments with nothing invoiced yet: `[payment_id, open_fen]`, the first 1000.
    pub uninvoiced: Vec<(String, i64)>,
    /// Uninvoiced payments beyond the listed ones.
    pub uninvoiced_more: u64,
    /// Invoices whose payments were refunded afterwards: `[payment_id, invoice_number]`,
    /// the first 1000.
    pub needs_red_letter: Vec<(String, String)>,
    /// Such invoices beyond the listed ones.
    pub needs_red_letter_more: u64,
    /// Invoiced per tax rate: blue invoices issued and red invoices issued on the range's
    /// days, by rate.
    pub by_rate: Vec<RateRowDto>,
    /// The invoicing quota of each month the range touches that had one.
    pub quota: Vec<QuotaMonthDto>,
    /// Balance errors (empty when everything reconciles).
    pub errors: Vec<String>,
    /// No balance error.
    pub balanced: bool,
}

/// Invoice amounts at one tax rate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RateRowDto {
    /// The rate as printed, e.g. `6%`, `免税`, `不征税`.
    pub rate: String,
    /// The rate in basis points (600 = 6%; 0 under a flag).
    pub rate_bp: u16,
    /// Set for the exempt and not-taxable rows.
    pub flag: Option<TaxFlagDto>,
    /// Net of the blue invoices issued.
    pub issued_net_fen: i64,
    /// Their tax.
    pub issued_tax_fen: i64,
    /// Net the red invoices reversed.
    pub reversed_net_fen: i64,
    /// Their tax.
    pub reversed_tax_fen: i64,
}

/// One month's invoicing quota.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuotaMonthDto {
    /// `YYYYMM` (UTC+8).
    pub month: u32,
    /// Granted, tax included.
    pub granted_fen: i64,
    /// Used.
    pub used_fen: i64,
    /// Left (not carried over).
    pub left_fen: i64,
    /// Suspended (at the month's end, or now).
    pub suspended: bool,
}

impl ReconciliationDto {
    /// From a reconciliation.
    pub fn new(r: &fapiao_engine::Reconciliation, from: u64, to: u64) -> Self {
        ReconciliationDto {
            from: fapiao_engine::format_day(from),
            to: fapiao_engine::format_day(to),
            rows: r
                .rows
                .iter()
                .map(|x| ReconRowDto::new(x, fapiao_engine::format_day(x.day)))
                .collect(),
            total: ReconRowDto::new(&r.total, "all".into()),
            uninvoiced: r.uninvoiced.iter().map(|(p, f)| (p.clone(), f.fen())).collect(),
            uninvoiced_more: r.uninvoiced_more,
            needs_red_letter_more: r.needs_red_letter_more,
            needs_red_letter: r
                .needs_red_letter
                .iter()
                .map(|(p, n)| (p.clone(), n.to_string()))
                .collect(),
            by_rate: r
                .by_rate
                .iter()
                .map(|x| RateRowDto {
                    rate: x.rate.to_string(),
                    rate_bp: x.rate.bp(),
                    flag: TaxFlagDto::of(x.rate),
                    issued_net_fen: x.issued_net.fen(),
                    issued_tax_fen: x.issued_tax.fen(),
                    reversed_net_fen: x.reversed_net.fen(),
                    reversed_tax_fen: x.reversed_tax.fen(),
                })
                .collect(),
            quota: r
                .quota
                .iter()
                .map(|q| QuotaMonthDto {
                    month: q.month,
                    granted_fen: q.granted.fen(),
                    used_fen: q.used.fen(),
                    left_fen: q.left.fen(),
                    suspended: q.suspended,
                })
                .collect(),
            errors: r.errors.clone(),
            balanced: r.errors.is_empty(),
        }
    }
}

pub(super) fn currencies_schema() -> utoipa::openapi::Object {
    closed_set(Currency::ALL.map(Currency::code), false)
}

pub(super) fn payment_methods_schema() -> utoipa::openapi::Object {
    closed_set(PaymentMethod::ALL.map(PaymentMethod::name), false)
}
