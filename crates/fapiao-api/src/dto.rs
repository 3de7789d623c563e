//! The API's JSON shapes and their conversions from ledger types. Internal types are
//! not serialised for the API's sake; these are.

use fapiao_core::event::{
    Buyer, ClaimRefusal, DerivedKind, EventKind, IssuedLine, LineItem, QuotaAction, RedFormRefusal, RedLetterScope,
};
use fapiao_core::{Entry, Header, InvoiceNumber, TaxRate};
use fapiao_domain::catalogue;
use fapiao_domain::state::{InvoiceRecord, ReissueTrigger, RequestBody, RequestOutcome, RequestRecord};
use fapiao_engine::{FailureRow, NodeStatus, PaymentView};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

/// Every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ApiError {
    /// Stable code, e.g. `BAD_SIGNATURE`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The offending field, if one.
    pub field: Option<String>,
}

/// Submit one signed event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// The event's canonical bytes (see docs/FORMAT.md), hex.
    pub event: String,
}

/// Submit several signed events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatchRequest {
    /// Canonical bytes of each event, hex.
    pub events: Vec<String>,
}

/// The outcome of one submitted event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct SubmitResult {
    /// The event id, hex.
    pub event_id: String,
    /// `pending`, `committed` or `rejected`.
    pub status: String,
    /// The block height when committed.
    pub height: Option<u64>,
    /// True when the same event was submitted before: nothing new was stored and this is
    /// its original outcome.
    pub duplicate: bool,
    /// For `rejected`: the code.
    pub code: Option<String>,
    /// For `rejected`: why.
    pub message: Option<String>,
}

/// One element of a batch answer: a result or an error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct BatchItemResult {
    /// The result, when admitted (or a duplicate).
    pub ok: Option<SubmitResult>,
    /// The error, when refused.
    pub error: Option<ApiError>,
}

/// A batch answer, in submission order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    /// One per submitted event.
    pub results: Vec<BatchItemResult>,
    /// Events admitted or already known.
    pub accepted: usize,
    /// Events refused.
    pub refused: usize,
}

/// An event's status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct EventStatusDto {
    /// The event id.
    pub event_id: String,
    /// `pending`, `committed`, `certified`, `rejected` or `unknown`.
    pub status: String,
    /// Block height.
    pub height: Option<u64>,
    /// Entry index in the block.
    pub index: Option<u32>,
    /// For `rejected`: code.
    pub code: Option<String>,
    /// For `rejected`: why.
    pub message: Option<String>,
    /// For `rejected`: field.
    pub field: Option<String>,
}

/// What recording an event derived: public, for the event's author (the event id is the
/// credential), so a POS terminal or a verifier member learns its outcome without any
/// read token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EventOutcomeDto {
    /// The event id.
    pub event_id: String,
    /// The event's block.
    pub height: u64,
    /// Its index in the block.
    pub index: u32,
    /// Whether the block is certified (final).
    pub certified: bool,
    /// The derived entries it caused, in block order, as in a block (see `entry_json`):
    /// for an invoice request its issue or failure, for a claim its record or refusal;
    /// empty for a payment.
    #[schema(value_type = Vec<Object>)]
    pub derived: Vec<Value>,
}

/// A payment's reversal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ReversalDto {
    /// When.
    pub at_ms: u64,
    /// Why.
    pub reason: String,
    /// The reversing event.
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
    pub currency: String,
    /// Method.
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
    /// Reversal, if reversed.
    pub reversed: Option<ReversalDto>,
    /// Covered by issued, unreversed invoices, fen.
    pub invoiced_fen: i64,
    /// Still invoiceable, fen (paid - refunded - invoiced, at least 0; 0 if reversed).
    pub invoiceable_fen: i64,
    /// Invoices that drew on it.
    pub invoices: Vec<String>,
    /// Refunded after invoicing: an invoice must be red-lettered.
    pub needs_red_letter: bool,
}

impl From<&PaymentView> for PaymentDto {
    fn from(v: &PaymentView) -> Self {
        let r = &v.record;
        let net = r.net_paid().map_or(0, |n| n.fen());
        let invoiced = v.invoicing.invoiced.fen();
        PaymentDto {
            payment_id: r.recorded.payment_id.clone(),
            amount_fen: r.recorded.amount.fen(),
            currency: "CNY".into(),
            method: r.recorded.method.name().into(),
            terminal_id: r.recorded.terminal_id.clone(),
            external_ref: r.recorded.external_ref.clone(),
            recorded_at_ms: r.recorded_at.0,
            event_id: r.event.to_string(),
            refunded_fen: r.refunded.fen(),
            refund_ids: r.refund_ids.clone(),
            reversed: r.reversed.as_ref().map(|x| ReversalDto {
                at_ms: x.at.0,
                reason: x.reason.clone(),
                event_id: x.event.to_string(),
            }),
            invoiced_fen: invoiced,
            invoiceable_fen: if r.reversed.is_some() {
                0
            } else {
                // Both within the amount bound: the difference is exact.
                net.saturating_sub(invoiced).max(0)
            },
            invoices: v.invoicing.invoices.iter().map(|n| n.to_string()).collect(),
            needs_red_letter: invoiced > net,
        }
    }
}

/// The two flags a line may carry instead of a rate; no tax is charged under either.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TaxFlagDto {
    /// 免税: exempt.
    Exempt,
    /// 不征税: not taxable.
    NotTaxable,
}

impl TaxFlagDto {
    /// The flag of a rate column, if it holds one.
    pub fn of(r: TaxRate) -> Option<Self> {
        match r {
            TaxRate::Bp(_) => None,
            TaxRate::Exempt => Some(TaxFlagDto::Exempt),
            TaxRate::NotTaxable => Some(TaxFlagDto::NotTaxable),
        }
    }

    /// The rate column from its two DTO fields.
    pub fn rate(bp: u16, flag: Option<Self>) -> TaxRate {
        match flag {
            None => TaxRate::Bp(bp),
            Some(TaxFlagDto::Exempt) => TaxRate::Exempt,
            Some(TaxFlagDto::NotTaxable) => TaxRate::NotTaxable,
        }
    }
}

/// An invoice line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct LineDto {
    /// What, as the line prints it after the short name.
    pub description: String,
    /// The tax classification code (税收分类编码).
    #[schema(pattern = "^[1-9][0-9]{18}$")]
    pub tax_code: String,
    /// The classification's short name (简称), printed as `*餐饮服务*` before the
    /// description.
    pub short_name: String,
    /// Quantity in thousandths.
    pub quantity_thousandths: i64,
    /// Tax-exclusive unit price, fen.
    pub unit_price_fen: i64,
    /// Rate, basis points (0 under a flag).
    #[schema(maximum = 10000)]
    pub tax_rate_bp: u16,
    /// Set when the line is exempt or not taxable instead of taxed at a rate.
    pub tax_flag: Option<TaxFlagDto>,
    /// The rate column as printed: `13%`, `免税`, `不征税`.
    pub tax_rate: String,
    /// Net, fen.
    pub net_fen: i64,
    /// Tax, fen.
    pub tax_fen: i64,
}

impl From<&IssuedLine> for LineDto {
    fn from(l: &IssuedLine) -> Self {
        LineDto {
            description: l.item.description.clone(),
            tax_code: l.item.tax_code.clone(),
            short_name: l.short_name.clone(),
            quantity_thousandths: l.item.quantity.0,
            unit_price_fen: l.item.unit_price.fen(),
            tax_rate_bp: l.item.tax_rate.bp(),
            tax_flag: TaxFlagDto::of(l.item.tax_rate),
            tax_rate: l.item.tax_rate.to_string(),
            net_fen: l.net.fen(),
            tax_fen: l.tax.fen(),
        }
    }
}

impl LineDto {
    /// The rate column.
    pub fn rate(&self) -> TaxRate {
        TaxFlagDto::rate(self.tax_rate_bp, self.tax_flag)
    }
}

/// A reimbursement claim.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ClaimDto {
    /// Claiming member.
    pub claimant: String,
    /// Their reference.
    pub claim_ref: String,
    /// When.
    pub claimed_at_ms: u64,
    /// `locked` (the claimant's flow is running) or `closed` (reimbursed: final).
    pub state: String,
    /// When it was closed.
    pub closed_at_ms: Option<u64>,
}

/// The buyer's booking status (入账状态).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct BookingDto {
    /// `not_booked` (01), `booked_deducted` (02), `booked_not_deducted` (03), `withdrawn` (06).
    pub status: String,
    /// The platform's two-digit code.
    pub code: String,
    /// The buyer member that recorded it.
    pub buyer: String,
    /// When.
    pub at_ms: u64,
}

/// A red-letter confirmation form (红字确认单) as its invoice lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FormSummaryDto {
    /// Its number on the invoice (from 1).
    pub form: u32,
    /// `seller` or `buyer`.
    pub initiator: String,
    /// `no_confirmation_needed`, `waiting_for_buyer`, `waiting_for_seller`, `confirmed`,
    /// `rejected`, `withdrawn` or `void` (a waiting form past its deadline is shown void).
    pub state: String,
    /// When it was started.
    pub opened_at_ms: u64,
    /// When a waiting form becomes void (72 hours of block time after it was started).
    pub deadline_ms: u64,
    /// The red invoice it issued.
    pub red_number: Option<String>,
}

impl FormSummaryDto {
    /// From a summary, its state as of `now`.
    pub fn new(f: &fapiao_domain::state::FormSummary, now: fapiao_core::Timestamp) -> Self {
        FormSummaryDto {
            form: f.form,
            initiator: f.initiator.name().into(),
            state: f.state_at(now).name().into(),
            opened_at_ms: f.opened_at.0,
            deadline_ms: f.opened_at.0.saturating_add(fapiao_core::event::RED_FORM_WINDOW_MS),
            red_number: f.red_number.map(|n| n.to_string()),
        }
    }
}

/// A red-letter confirmation form in full.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RedFormDto {
    /// The invoice.
    pub invoice_number: String,
    /// Its number on the invoice.
    pub form: u32,
    /// `seller` or `buyer`.
    pub initiator: String,
    /// The buyer-side member that started it (a buyer's form).
    pub buyer: Option<String>,
    /// `issue_error` (01), `sales_return` (02), `service_termination` (03), `sales_discount` (04).
    pub reason: String,
    /// `full`, or the partial lines.
    pub scope: Value,
    /// The request the red invoice answers (the seller's request id, or `{invoice}-F{form}`).
    pub request_id: String,
    /// The event that started it.
    pub event_id: String,
    /// As in [`FormSummaryDto`].
    pub state: String,
    /// When it was started.
    pub opened_at_ms: u64,
    /// When a waiting form becomes void.
    pub deadline_ms: u64,
    /// When it was answered, withdrawn or voided.
    pub decided_at_ms: Option<u64>,
    /// The red invoice it issued.
    pub red_number: Option<String>,
}

impl RedFormDto {
    /// From a form record, its state as of `now`.
    pub fn new(
        n: fapiao_core::InvoiceNumber,
        form: u32,
        f: &fapiao_domain::state::RedForm,
        now: fapiao_core::Timestamp,
    ) -> Self {
        RedFormDto {
            invoice_number: n.to_string(),
            form,
            initiator: f.initiator.name().into(),
            buyer: f.buyer.map(|m| m.to_string()),
            reason: f.reason.name().into(),
            scope: scope_json(&f.scope),
            request_id: f.request_id.clone(),
            event_id: f.event.to_string(),
            state: f.state_at(now).name().into(),
            opened_at_ms: f.opened_at.0,
            deadline_ms: f.deadline().0,
            decided_at_ms: f.decided_at.map(|t| t.0),
            red_number: f.red_number.map(|n| n.to_string()),
        }
    }
}

fn scope_json(scope: &RedLetterScope) -> Value {
    match scope {
        RedLetterScope::Full => json!("full"),
        RedLetterScope::Partial(lines) => json!({"partial": lines.iter().map(line_json).collect::<Vec<_>>()}),
    }
}

/// A payment's share of an invoice.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AllocationDto {
    /// Payment.
    pub payment_id: String,
    /// Fen.
    pub amount_fen: i64,
}

/// Which kind of invoice.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceKindDto {
    /// Issued from payments.
    Blue,
    /// A red-letter invoice, reversing (part of) a blue one.
    Red,
}

/// Where an invoice stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatusDto {
    /// Blue, nothing reversed.
    Issued,
    /// Blue, reversed in part by red-letter invoices.
    PartiallyReversed,
    /// Blue, reversed in full.
    Reversed,
    /// A red-letter invoice.
    RedLetter,
}

impl std::fmt::Display for InvoiceKindDto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InvoiceKindDto::Blue => "blue",
            InvoiceKindDto::Red => "red",
        })
    }
}

impl std::fmt::Display for InvoiceStatusDto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InvoiceStatusDto::Issued => "issued",
            InvoiceStatusDto::PartiallyReversed => "partially_reversed",
            InvoiceStatusDto::Reversed => "reversed",
            InvoiceStatusDto::RedLetter => "red_letter",
        })
    }
}

/// An invoice, blue (issued) or red (red-letter).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct InvoiceDto {
    /// 20-digit number.
    pub number: String,
    /// The seller: the merchant member whose chain issued it.
    pub seller_code: String,
    /// The seller's registered name (from genesis).
    pub seller_name: String,
    /// The seller's unified social credit code, when genesis gives one.
    pub seller_tax_id: Option<String>,
    /// Blue (issued) or red (a red-letter invoice).
    pub kind: InvoiceKindDto,
    /// 20-digit check code.
    pub check_code: String,
    /// `normal` or `special_vat` (blue only).
    pub invoice_type: Option<String>,
    /// The request it answers.
    pub request_id: String,
    /// Buyer name (blue only).
    pub buyer_name: Option<String>,
    /// Buyer tax id.
    pub buyer_tax_id: Option<String>,
    /// Lines.
    pub lines: Vec<LineDto>,
    /// Net, fen.
    pub net_fen: i64,
    /// Tax, fen.
    pub tax_fen: i64,
    /// Total, fen.
    pub total_fen: i64,
    /// Fee charged, fen (blue only).
    pub fee_fen: i64,
    /// Block time of issue.
    pub issued_at_ms: u64,
    /// Where the invoice stands.
    pub status: InvoiceStatusDto,
    /// Blue: total still standing, fen.
    pub remaining_total_fen: i64,
    /// Blue: red-letter invoices against it.
    pub red_letters: Vec<String>,
    /// Red: the invoice it reverses.
    pub original: Option<String>,
    /// Red: the reason.
    pub red_letter_reason: Option<String>,
    /// Blue: the reimbursement claim (lock or closed), if any.
    pub claim: Option<ClaimDto>,
    /// Blue: the buyer's booking status, once recorded.
    pub booking: Option<BookingDto>,
    /// Blue: its red-letter confirmation forms, in order.
    pub forms: Vec<FormSummaryDto>,
    /// How the total is drawn from payments (blue: standing; red: returned).
    pub allocations: Vec<AllocationDto>,
    /// Blue: the reversed invoice this corrected invoice replaces.
    pub replaces: Option<String>,
    /// Blue: the corrected invoice that replaced this one after its reversal.
    pub replaced_by: Option<String>,
}

impl InvoiceDto {
    /// From an invoice record; the seller's name comes from `genesis`; forms are shown
    /// as of `now` (a waiting form past its deadline is void).
    pub fn new(r: &InvoiceRecord, genesis: &fapiao_core::Genesis, now: fapiao_core::Timestamp) -> Self {
        let number = match r {
            InvoiceRecord::Blue(b) => b.issued.number,
            InvoiceRecord::Red(r) => r.red_number,
        };
        let seller = number.member();
        let seller_code = seller.to_string();
        let seller_name = genesis.member(seller).map(|m| m.name.clone()).unwrap_or_default();
        let seller_tax_id = genesis.member(seller).and_then(|m| m.tax_id.clone());
        match r {
            InvoiceRecord::Blue(b) => {
                let i = &b.issued;
                let status = if b.fully_reversed() {
                    InvoiceStatusDto::Reversed
                } else if b.red_letters.is_empty() {
                    InvoiceStatusDto::Issued
                } else {
                    InvoiceStatusDto::PartiallyReversed
                };
                InvoiceDto {
                    number: i.number.to_string(),
                    seller_code,
                    seller_name,
                    seller_tax_id,
                    kind: InvoiceKindDto::Blue,
                    check_code: i.check_code.to_string(),
                    invoice_type: Some(i.invoice_type.name().into()),
                    request_id: i.request_id.clone(),
                    buyer_name: Some(i.buyer.name.clone()),
                    buyer_tax_id: i.buyer.tax_id.clone(),
                    lines: i.lines.iter().map(LineDto::from).collect(),
                    net_fen: i.net.fen(),
                    tax_fen: i.tax.fen(),
                    total_fen: i.total.fen(),
                    fee_fen: i.fee.fen(),
                    issued_at_ms: i.issued_at.0,
                    status,
                    remaining_total_fen: b.remaining_total().map_or(0, |t| t.fen()),
                    red_letters: b.red_letters.iter().map(|n| n.to_string()).collect(),
                    original: None,
                    red_letter_reason: None,
                    claim: b.claim.as_ref().map(|c| ClaimDto {
                        claimant: c.claimant.to_string(),
                        claim_ref: c.claim_ref.clone(),
                        claimed_at_ms: c.claimed_at.0,
                        state: if c.closed_at.is_some() { "closed" } else { "locked" }.into(),
                        closed_at_ms: c.closed_at.map(|t| t.0),
                    }),
                    booking: b.booking.as_ref().map(|k| BookingDto {
                        status: k.status.name().into(),
                        code: k.status.code().into(),
                        buyer: k.buyer.to_string(),
                        at_ms: k.at.0,
                    }),
                    forms: b.forms.iter().map(|f| FormSummaryDto::new(f, now)).collect(),
                    allocations: b
                        .standing
                        .iter()
                        .map(|a| AllocationDto {
                            payment_id: a.payment_id.clone(),
                            amount_fen: a.amount.fen(),
                        })
                        .collect(),
                    replaces: i.replaces.map(|n| n.to_string()),
                    replaced_by: b.replaced_by.map(|n| n.to_string()),
                }
            }
            InvoiceRecord::Red(r) => InvoiceDto {
                number: r.red_number.to_string(),
                seller_code,
                seller_name,
                seller_tax_id,
                kind: InvoiceKindDto::Red,
                check_code: r.red_check_code.to_string(),
                invoice_type: None,
                request_id: r.request_id.clone(),
                buyer_name: None,
                buyer_tax_id: None,
                lines: r.lines.iter().map(LineDto::from).collect(),
                net_fen: -r.net.fen(),
                tax_fen: -r.tax.fen(),
                total_fen: -r.total.fen(),
                fee_fen: 0,
                issued_at_ms: r.reversed_at.0,
                status: InvoiceStatusDto::RedLetter,
                remaining_total_fen: 0,
                red_letters: Vec::new(),
                original: Some(r.original.to_string()),
                red_letter_reason: Some(r.reason.name().into()),
                claim: None,
                booking: None,
                forms: Vec::new(),
                allocations: r
                    .allocations
                    .iter()
                    .map(|a| AllocationDto {
                        payment_id: a.payment_id.clone(),
                        amount_fen: a.amount.fen(),
                    })
                    .collect(),
                replaces: None,
                replaced_by: None,
            },
        }
    }
}

/// A failure reason with its catalogue entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FailureInfoDto {
    /// Stable code.
    pub code: String,
    /// Whether the unchanged request can succeed later.
    pub retryable: bool,
    /// What the merchant should do.
    pub remedy: String,
    /// The field at fault.
    pub field: String,
    /// Specifics.
    pub detail: String,
}

/// What issued a blocked request automatically: a fee deposit (for FEE_BALANCE_TOO_LOW)
/// or a tax office's quota change (for QUOTA_EXCEEDED, QUOTA_EXPIRED, QUOTA_SUSPENDED).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AutoReissueDto {
    /// `fee_deposit` or `quota`.
    pub trigger: String,
    /// The deposit id, for a fee deposit.
    pub deposit_id: Option<String>,
    /// The quota's month (`YYYYMM`, UTC+8), for a quota change.
    pub quota_month: Option<u32>,
    /// The event that made room.
    pub event_id: String,
    /// Block time of that event (and of the issue).
    pub at_ms: u64,
}

/// A request and its outcome.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RequestDto {
    /// The request id.
    pub request_id: String,
    /// `invoice` or `red_letter`.
    pub kind: String,
    /// Block time.
    pub requested_at_ms: u64,
    /// The request event.
    pub event_id: String,
    /// `issued`, `reversed` or `failed`.
    pub outcome: String,
    /// The invoice issued (or red-letter number).
    pub invoice_number: Option<String>,
    /// The failure, if failed.
    pub failure: Option<FailureInfoDto>,
    /// The request it retried.
    pub retry_of: Option<String>,
    /// The request that retried it.
    pub retried_by: Option<String>,
    /// Set when it first failed for the fee balance and a fee deposit issued it.
    pub auto_reissue: Option<AutoReissueDto>,
    /// The request itself (buyer, lines, payments, type), canonical bytes of the
    /// `RequestBody` in hex, so a client can re-issue it with corrections.
    pub request_hex: String,
    /// A red-letter request that waits for the buyer's confirmation: the form it
    /// opened, `INVOICE/FORM`.
    pub red_form: Option<String>,
}

impl RequestDto {
    /// From a request record.
    pub fn new(id: &str, r: &RequestRecord) -> Self {
        let (kind, retry_of) = match &r.body {
            RequestBody::Invoice(i) => ("invoice", i.retry_of.clone()),
            RequestBody::RedLetter(_) => ("red_letter", None),
        };
        let (outcome, number, failure) = match &r.outcome {
            RequestOutcome::Issued(n) => ("issued", Some(n.to_string()), None),
            RequestOutcome::Reversed(n) => ("reversed", Some(n.to_string()), None),
            RequestOutcome::AwaitingConfirmation(_) => ("awaiting_confirmation", None, None),
            RequestOutcome::Failed { reason, field, detail } => {
                let info = catalogue::info(*reason);
                (
                    "failed",
                    None,
                    Some(FailureInfoDto {
                        code: info.code.into(),
                        retryable: info.retryable,
                        remedy: info.remedy.into(),
                        field: field.clone(),
                        detail: detail.clone(),
                    }),
                )
            }
        };
        RequestDto {
            request_id: id.into(),
            kind: kind.into(),
            requested_at_ms: r.requested_at.0,
            event_id: r.event.to_string(),
            outcome: outcome.into(),
            invoice_number: number,
            failure,
            retry_of,
            retried_by: r.retried_by.clone(),
            auto_reissue: r.auto_reissue.as_ref().map(|a| AutoReissueDto {
                trigger: match a.trigger {
                    ReissueTrigger::Deposit(_) => "fee_deposit",
                    ReissueTrigger::Quota(_) => "quota",
                }
                .into(),
                deposit_id: match &a.trigger {
                    ReissueTrigger::Deposit(d) => Some(d.clone()),
                    ReissueTrigger::Quota(_) => None,
                },
                quota_month: match a.trigger {
                    ReissueTrigger::Quota(m) => Some(m),
                    ReissueTrigger::Deposit(_) => None,
                },
                event_id: a.event.to_string(),
                at_ms: a.at.0,
            }),
            request_hex: hex::encode(fapiao_core::codec::to_bytes(&r.body)),
            red_form: match (&r.body, &r.outcome) {
                (RequestBody::RedLetter(rl), RequestOutcome::AwaitingConfirmation(form)) => {
                    Some(format!("{}/{form}", rl.invoice_number))
                }
                _ => None,
            },
        }
    }
}

/// A request with the requests it retried and that retried it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestHistoryDto {
    /// The request asked for.
    pub request_id: String,
    /// Oldest first.
    pub history: Vec<RequestDto>,
}

/// A failed request in the failures list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FailureDto {
    /// The request.
    pub request_id: String,
    /// Code.
    pub code: String,
    /// Retryable unchanged.
    pub retryable: bool,
    /// What to do.
    pub remedy: String,
    /// Field at fault.
    pub field: String,
    /// Specifics.
    pub detail: String,
    /// Block time.
    pub requested_at_ms: u64,
    /// The request that retried it.
    pub retried_by: Option<String>,
    /// The invoice its retries ended in.
    pub resolved_by_invoice: Option<String>,
}

impl From<&FailureRow> for FailureDto {
    fn from(f: &FailureRow) -> Self {
        let info = catalogue::info(f.reason);
        FailureDto {
            request_id: f.request_id.clone(),
            code: info.code.into(),
            retryable: info.retryable,
            remedy: info.remedy.into(),
            field: f.field.clone(),
            detail: f.detail.clone(),
            requested_at_ms: f.record.requested_at.0,
            retried_by: f.record.retried_by.clone(),
            resolved_by_invoice: f.resolved_by.as_ref().map(|(_, n)| n.to_string()),
        }
    }
}

/// Failed requests and their counts by code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FailureListDto {
    /// The failures.
    pub failures: Vec<FailureDto>,
    /// Count per code, over this page.
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One catalogue entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CatalogueEntryDto {
    /// Code.
    pub code: String,
    /// Retryable unchanged.
    pub retryable: bool,
    /// What went wrong.
    pub cause: String,
    /// Remedy.
    pub remedy: String,
}

/// The merchant's invoicing quota (授信额度) for the month.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuotaDto {
    /// Whether the merchant invoices under a quota (a tax office granted one once).
    pub under_quota: bool,
    /// The month of the quota on record, `YYYYMM` (UTC+8).
    pub month: Option<u32>,
    /// The month of the node's clock, `YYYYMM` (UTC+8).
    pub current_month: u32,
    /// Whether the quota on record is for the current month (otherwise invoicing fails
    /// with QUOTA_EXPIRED until it is granted or re-validated).
    pub valid: bool,
    /// Granted, tax included.
    pub granted_fen: i64,
    /// Used by blue invoices less what red invoices gave back.
    pub used_fen: i64,
    /// Left.
    pub left_fen: i64,
    /// Suspended by the tax office.
    pub suspended: bool,
    /// Requests waiting for quota, issued automatically when it makes room.
    pub waiting_requests: usize,
}

impl QuotaDto {
    /// From the record, the queue length and the month now.
    pub fn new(q: Option<&fapiao_domain::state::QuotaRecord>, waiting: usize, now: fapiao_core::Timestamp) -> Self {
        let current_month = now.utc8_month();
        QuotaDto {
            under_quota: q.is_some(),
            month: q.map(|q| q.month),
            current_month,
            valid: q.is_some_and(|q| q.month == current_month),
            granted_fen: q.map_or(0, |q| q.granted.fen()),
            used_fen: q.map_or(0, |q| q.used.fen()),
            left_fen: q.map_or(0, |q| q.left().fen()),
            suspended: q.is_some_and(|q| q.suspended),
            waiting_requests: waiting,
        }
    }
}

/// An invoice's history: every entry about it, in ledger order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvoiceHistoryDto {
    /// The invoice.
    pub number: String,
    /// The entries of this page.
    pub entries: Vec<HistoryEntryDto>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// One entry of an invoice's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntryDto {
    /// Block height.
    pub height: u64,
    /// Index in the block.
    pub index: u32,
    /// Block time.
    pub timestamp_ms: u64,
    /// Whether the block is certified.
    pub certified: bool,
    /// The entry (as in a block: `type` event or derived, `kind`, `data`).
    #[schema(value_type = Object)]
    pub entry: Value,
}

impl InvoiceHistoryDto {
    /// From the rows of one page of at most `limit`.
    pub fn new(number: InvoiceNumber, rows: &[fapiao_engine::HistoryEntry], limit: usize) -> Self {
        InvoiceHistoryDto {
            number: number.to_string(),
            entries: rows
                .iter()
                .map(|r| HistoryEntryDto {
                    height: r.height,
                    index: r.index,
                    timestamp_ms: r.timestamp.0,
                    certified: r.certified,
                    entry: entry_json(&r.entry),
                })
                .collect(),
            next: rows
                .last()
                .filter(|_| rows.len() >= limit)
                .map(|r| format!("{}.{}", r.height, r.index)),
        }
    }
}

/// A block header.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeaderDto {
    /// Chain.
    pub chain: String,
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: String,
    /// Parent hash.
    pub parent: String,
    /// Block time.
    pub timestamp_ms: u64,
    /// Events root.
    pub events_root: String,
    /// Entries.
    pub event_count: u32,
    /// State root.
    pub state_root: String,
    /// Whether certified.
    pub certified: bool,
}

impl HeaderDto {
    /// From a header.
    pub fn new(h: &Header, certified: bool) -> Self {
        let b = &h.body;
        HeaderDto {
            chain: b.chain.to_string(),
            height: b.height,
            hash: h.hash().to_string(),
            parent: b.parent.to_string(),
            timestamp_ms: b.timestamp.0,
            events_root: b.events_root.to_string(),
            event_count: b.event_count,
            state_root: b.state_root.to_string(),
            certified,
        }
    }
}

/// A block with its entries and certificate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BlockDto {
    /// Header.
    pub header: HeaderDto,
    /// Entries as JSON objects (see `entry_json`).
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<Value>,
    /// Witnesses that signed the certificate.
    pub certificate_witnesses: Vec<String>,
}

/// Node status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusDto {
    /// Network id.
    pub network_id: String,
    /// Network name.
    pub network_name: String,
    /// This node's chain.
    pub chain: String,
    /// Head height (0 before the first block).
    pub head_height: u64,
    /// Head hash.
    pub head_hash: Option<String>,
    /// Highest certified height.
    pub certified_height: u64,
    /// Events waiting for a block.
    pub pending: u64,
    /// Members in genesis.
    pub members: usize,
    /// Quorum.
    pub quorum: u32,
    /// Software version.
    pub version: String,
    /// Maintenance mode: writes answer 503 `MAINTENANCE`; reads and verification go on.
    pub maintenance: bool,
    /// Member nodes connected now (empty for a one-member network).
    pub peers: Vec<String>,
    /// Every merchant chain as this node holds it (replicating nodes only).
    pub chains: Vec<ChainStatusDto>,
}

/// One chain's replication state on this node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChainStatusDto {
    /// The chain (member code).
    pub chain: String,
    /// Stored head height.
    pub height: u64,
    /// Every block up to here is certified.
    pub certified: u64,
    /// Equivocation evidence is held: the chain is frozen here.
    pub frozen: bool,
    /// How far the highest head a connected peer reported is ahead of ours.
    pub lag: u64,
}

/// Equivocation evidence: two headers signed by one chain's owner for one height.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvidenceDto {
    /// The frozen chain.
    pub chain: String,
    /// The height signed twice.
    pub height: u64,
    /// The two block hashes.
    pub blocks: Vec<String>,
    /// The evidence in canonical bytes (hex), verifiable offline with the genesis.
    pub canonical_hex: String,
}

impl From<&NodeStatus> for StatusDto {
    fn from(s: &NodeStatus) -> Self {
        StatusDto {
            network_id: s.network.to_string(),
            network_name: s.network_name.clone(),
            chain: s.chain.to_string(),
            head_height: s.head.map(|h| h.height).unwrap_or(0),
            head_hash: s.head.map(|h| h.hash.to_string()),
            certified_height: s.certified_height,
            pending: s.pending,
            members: s.members,
            quorum: s.quorum,
            version: env!("CARGO_PKG_VERSION").into(),
            maintenance: s.maintenance,
            peers: s
                .replication
                .as_ref()
                .map(|r| r.peers.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            chains: s
                .replication
                .as_ref()
                .map(|r| {
                    r.chains
                        .iter()
                        .map(|c| ChainStatusDto {
                            chain: c.chain.to_string(),
                            height: c.height,
                            certified: c.certified,
                            frozen: c.frozen,
                            lag: c.peer_height.saturating_sub(c.height),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

fn line_json(l: &LineItem) -> Value {
    json!({
        "description": l.description,
        "quantity_thousandths": l.quantity.0,
        "unit_price_fen": l.unit_price.fen(),
        "tax_code": l.tax_code,
        "tax_rate_bp": l.tax_rate.bp(),
        "tax_flag": TaxFlagDto::of(l.tax_rate),
    })
}

fn buyer_json(b: &Buyer) -> Value {
    json!({"name": b.name, "tax_id": b.tax_id})
}

/// An entry as JSON, for blocks and exports: `{"id", "type": "event" | "derived", ...}`.
pub fn entry_json(e: &Entry) -> Value {
    match e {
        Entry::Event(ev) => {
            let b = &ev.body;
            let data = match &b.kind {
                EventKind::PaymentRecorded(p) => json!({
                    "payment_id": p.payment_id, "amount_fen": p.amount.fen(), "currency": "CNY",
                    "method": p.method.name(), "terminal_id": p.terminal_id, "external_ref": p.external_ref,
                }),
                EventKind::PaymentRefunded(r) => json!({
                    "payment_id": r.payment_id, "refund_id": r.refund_id, "amount_fen": r.amount.fen(), "reason": r.reason,
                }),
                EventKind::PaymentReversed(r) => json!({"payment_id": r.payment_id, "reason": r.reason}),
                EventKind::InvoiceRequested(r) => json!({
                    "request_id": r.request_id, "invoice_type": r.invoice_type.name(), "buyer": buyer_json(&r.buyer),
                    "lines": r.lines.iter().map(line_json).collect::<Vec<_>>(), "payment_ids": r.payment_ids,
                    "retry_of": r.retry_of,
                }),
                EventKind::InvoiceRedLetterRequested(r) => json!({
                    "request_id": r.request_id, "invoice_number": r.invoice_number.to_string(),
                    "reason": r.reason.name(),
                    "scope": scope_json(&r.scope),
                }),
                EventKind::InvoiceClaimRequested(c) => json!({
                    "invoice_number": c.invoice_number.to_string(), "claim_ref": c.claim_ref,
                }),
                EventKind::FeeDeposited(d) => json!({"deposit_id": d.deposit_id, "amount_fen": d.amount.fen()}),
                EventKind::MerchantPolicySet(p) => json!({
                    "permitted_types": p.permitted_types.iter().map(|t| t.name()).collect::<Vec<_>>(),
                    "max_invoice_total_fen": p.max_invoice_total.fen(),
                }),
                EventKind::ClientKeyAuthorized(a) => json!({
                    "key": a.key.to_hex(), "label": a.label,
                    "payments": a.permissions.payments, "invoices": a.permissions.invoices,
                }),
                EventKind::ClientKeyRevoked(r) => json!({"key": r.key.to_hex()}),
                EventKind::InvoiceClaimUnlocked(a) | EventKind::InvoiceClaimClosed(a) => json!({
                    "invoice_number": a.invoice_number.to_string(), "claim_ref": a.claim_ref,
                }),
                EventKind::InvoiceBookingSet(b) => json!({
                    "invoice_number": b.invoice_number.to_string(), "status": b.status.name(), "code": b.status.code(),
                }),
                EventKind::RedFormStarted(f) => json!({
                    "invoice_number": f.invoice_number.to_string(), "reason": f.reason.name(), "scope": scope_json(&f.scope),
                }),
                EventKind::RedFormAnswered(a) => json!({
                    "invoice_number": a.form.invoice_number.to_string(), "form": a.form.form, "confirm": a.confirm,
                }),
                EventKind::RedFormWithdrawn(f) => {
                    json!({"invoice_number": f.invoice_number.to_string(), "form": f.form})
                }
                EventKind::QuotaChanged(c) => json!({
                    "month": c.month, "action": c.action.name(),
                    "amount_fen": match c.action { QuotaAction::Grant(a) => Some(a.fen()), _ => None },
                }),
            };
            json!({
                "id": ev.id().to_string(), "type": "event", "kind": b.kind.name(), "chain": b.chain.to_string(),
                "author": b.author.to_hex(), "timestamp_ms": b.timestamp.0, "signature": hex::encode(ev.signature.to_bytes()),
                "data": data,
            })
        }
        Entry::Derived(d) => {
            let (kind, data) = match &d.kind {
                DerivedKind::InvoiceIssued(i) => (
                    "invoice_issued",
                    json!({
                        "request_id": i.request_id, "number": i.number.to_string(), "check_code": i.check_code.to_string(),
                        "invoice_type": i.invoice_type.name(), "buyer": buyer_json(&i.buyer),
                        "lines": i.lines.iter().map(|l| serde_json::to_value(LineDto::from(l)).unwrap_or(Value::Null)).collect::<Vec<_>>(),
                        "net_fen": i.net.fen(), "tax_fen": i.tax.fen(), "total_fen": i.total.fen(), "fee_fen": i.fee.fen(),
                        "allocations": i.allocations.iter().map(|a| json!({"payment_id": a.payment_id, "amount_fen": a.amount.fen()})).collect::<Vec<_>>(),
                        "issued_at_ms": i.issued_at.0, "replaces": i.replaces.map(|n| n.to_string()),
                    }),
                ),
                DerivedKind::InvoiceFailed(f) => {
                    let info = catalogue::info(f.reason);
                    (
                        "invoice_failed",
                        json!({"request_id": f.request_id, "reason": info.code, "retryable": info.retryable,
                               "remedy": info.remedy, "field": f.field, "detail": f.detail}),
                    )
                }
                DerivedKind::InvoiceReversed(r) => (
                    "invoice_reversed",
                    json!({
                        "request_id": r.request_id, "original": r.original.to_string(), "red_number": r.red_number.to_string(),
                        "red_check_code": r.red_check_code.to_string(), "reason": r.reason.name(),
                        "net_fen": r.net.fen(), "tax_fen": r.tax.fen(), "total_fen": r.total.fen(), "fully_reversed": r.fully_reversed,
                        "reversed_at_ms": r.reversed_at.0,
                    }),
                ),
                DerivedKind::ClaimRecorded(c) => (
                    "claim_recorded",
                    json!({"invoice_number": c.invoice_number.to_string(), "claimant": c.claimant.to_string(),
                           "claim_ref": c.claim_ref, "claimed_at_ms": c.claimed_at.0}),
                ),
                DerivedKind::ClaimRefused(c) => (
                    "claim_refused",
                    json!({"invoice_number": c.invoice_number.to_string(), "claimant": c.claimant.to_string(),
                    "refusal": match &c.refusal {
                        ClaimRefusal::AlreadyClaimed { claimant, claimed_at } => json!({
                            "reason": "already_claimed",
                            "first_claimant": claimant.to_string(),
                            "first_claimed_at_ms": claimed_at.0,
                        }),
                        ClaimRefusal::Reversed => json!({"reason": "reversed"}),
                        ClaimRefusal::NotFound => json!({"reason": "not_found"}),
                        ClaimRefusal::Closed { closed_at } => json!({"reason": "closed", "closed_at_ms": closed_at.0}),
                        ClaimRefusal::NotLocked => json!({"reason": "not_locked"}),
                        ClaimRefusal::NotLockHolder => json!({"reason": "not_lock_holder"}),
                    }}),
                ),
                DerivedKind::ClaimUnlocked(c) | DerivedKind::ClaimClosed(c) => (
                    if matches!(d.kind, DerivedKind::ClaimUnlocked(_)) {
                        "claim_unlocked"
                    } else {
                        "claim_closed"
                    },
                    json!({"invoice_number": c.invoice_number.to_string(), "claimant": c.claimant.to_string(),
                           "claim_ref": c.claim_ref, "at_ms": c.at.0}),
                ),
                DerivedKind::BookingRecorded(b) => (
                    "booking_recorded",
                    json!({"invoice_number": b.invoice_number.to_string(), "buyer": b.buyer.to_string(),
                           "status": b.status.name(), "code": b.status.code(), "at_ms": b.at.0}),
                ),
                DerivedKind::RedFormChanged(f) => (
                    "red_form_changed",
                    json!({"invoice_number": f.form.invoice_number.to_string(), "form": f.form.form,
                           "state": f.state.name(), "at_ms": f.at.0}),
                ),
                DerivedKind::RedFormRefused(f) => (
                    "red_form_refused",
                    json!({"invoice_number": f.invoice_number.to_string(), "form": f.form,
                    "refusal": match &f.refusal {
                        RedFormRefusal::NotFound => json!({"reason": "not_found"}),
                        RedFormRefusal::NotWaiting(state) => json!({"reason": "not_waiting", "state": state.name()}),
                        RedFormRefusal::WrongSide => json!({"reason": "wrong_side"}),
                        RedFormRefusal::Failed { reason, detail } => {
                            let info = catalogue::info(*reason);
                            json!({"reason": "failed", "code": info.code, "remedy": info.remedy, "detail": detail})
                        }
                    }}),
                ),
            };
            json!({"id": d.id().to_string(), "type": "derived", "kind": kind, "cause": d.cause.to_string(), "data": data})
        }
    }
}

/// A derived entry as the public outcome of its event shows it (`GET
/// /v1/events/{id}/outcome`): as in a block, except that a claim refused because the
/// invoice was claimed before says when, not by whom (the first claimant's identity is
/// that member's business, not the second claimant's).
pub fn outcome_json(d: &fapiao_core::Derived) -> Value {
    let mut v = entry_json(&Entry::Derived(d.clone()));
    if let Some(refusal) = v.pointer_mut("/data/refusal").and_then(Value::as_object_mut) {
        refusal.remove("first_claimant");
    }
    v
}

/// A proof bundle: its canonical bytes (what `fapiao verify` checks) and the same
/// structure as JSON, for reading.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProofDto {
    /// Bundle format version.
    pub version: u16,
    /// The canonical bytes, hex (docs/FORMAT.md §12).
    pub bundle_hex: String,
    /// Size of the canonical bytes.
    pub bundle_bytes: usize,
    /// The same bundle as JSON (the canonical structure, field for field).
    #[schema(value_type = Object)]
    pub bundle: Value,
    /// How many more times this node verifies this invoice today (UTC+8): each invoice
    /// may be checked a bounded number of times a day (5 by default), as on the national
    /// platform.
    pub checks_left_today: u32,
}

impl ProofDto {
    /// From a bundle, with the checks left today.
    pub fn new(b: &fapiao_proof::Bundle, checks_left_today: u32) -> Self {
        let bytes = b.to_bytes();
        ProofDto {
            version: b.version,
            bundle_bytes: bytes.len(),
            bundle_hex: hex::encode(&bytes),
            bundle: serde_json::to_value(b).unwrap_or(Value::Null),
            checks_left_today,
        }
    }
}

/// One reconciliation row: a business day (UTC+8) and a payment method. Amounts in fen.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ReconRowDto {
    /// `YYYY-MM-DD` (UTC+8), or `all` for the total.
    pub day: String,
    /// Payment method, or `all`.
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
