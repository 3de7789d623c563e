//! Invoices and their lines, forms, claims, history and proof; the monthly quota.

use super::*;
use fapiao_core::event::{BookingStatus, FormState, InvoiceType, Party, RedLetterReason};

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
    #[schema(schema_with = claim_states_schema)]
    pub state: String,
    /// When it was closed.
    pub closed_at_ms: Option<u64>,
}

/// The buyer's booking status (入账状态).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct BookingDto {
    /// `not_booked` (01), `booked_deducted` (02), `booked_not_deducted` (03), `withdrawn` (06).
    #[schema(schema_with = booking_statuses_schema)]
    pub status: String,
    /// The platform's two-digit code.
    #[schema(schema_with = booking_codes_schema)]
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
    #[schema(schema_with = parties_schema)]
    pub initiator: String,
    /// `no_confirmation_needed`, `waiting_for_buyer`, `waiting_for_seller`, `confirmed`,
    /// `rejected`, `withdrawn` or `void` (a waiting form past its deadline is shown void).
    #[schema(schema_with = form_states_schema)]
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
    #[schema(schema_with = parties_schema)]
    pub initiator: String,
    /// The buyer-side member that started it (a buyer's form).
    pub buyer: Option<String>,
    /// `issue_error` (01), `sales_return` (02), `service_termination` (03), `sales_discount` (04).
    #[schema(schema_with = red_letter_reasons_schema)]
    pub reason: String,
    /// `full`, or the partial lines.
    pub scope: ScopeDto,
    /// The request the red invoice answers (the seller's request id, or `{invoice}-F{form}`).
    pub request_id: String,
    /// The event that started it.
    pub event_id: String,
    /// As in [`FormSummaryDto`].
    #[schema(schema_with = form_states_schema)]
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
            scope: (&f.scope).into(),
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
    #[schema(schema_with = invoice_types_schema)]
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
    // Long: one field per DTO field, blue and red.
    pub fn new(r: &InvoiceRecord, epochs: &fapiao_core::Epochs, now: fapiao_core::Timestamp) -> Self {
        let number = match r {
            InvoiceRecord::Blue(b) => b.issued.number,
            InvoiceRecord::Red(r) => r.red_number,
        };
        let seller = number.member();
        let seller_code = seller.to_string();
        let seller_name = epochs.member_ever(seller).map(|m| m.name.clone()).unwrap_or_default();
        let seller_tax_id = epochs.member_ever(seller).and_then(|m| m.tax_id.clone());
        match r {
            InvoiceRecord::Blue(b) => {
                let i = &b.issued;
                let status = match b.status() {
                    InvoiceStatus::Issued => InvoiceStatusDto::Issued,
                    InvoiceStatus::PartiallyReversed => InvoiceStatusDto::PartiallyReversed,
                    InvoiceStatus::Reversed => InvoiceStatusDto::Reversed,
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
    /// The entry, as in a block.
    pub entry: EntryDto,
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
                    entry: EntryDto::new(&r.entry),
                })
                .collect(),
            next: rows
                .last()
                .filter(|_| rows.len() >= limit)
                .map(|r| format!("{}.{}", r.height, r.index)),
        }
    }
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

pub(super) fn claim_states_schema() -> utoipa::openapi::Object {
    closed_set(["locked", "closed"], false)
}

pub(super) fn booking_statuses_schema() -> utoipa::openapi::Object {
    closed_set(BookingStatus::ALL.map(BookingStatus::name), false)
}

pub(super) fn parties_schema() -> utoipa::openapi::Object {
    closed_set(Party::ALL.map(Party::name), false)
}

pub(super) fn form_states_schema() -> utoipa::openapi::Object {
    closed_set(FormState::ALL.map(FormState::name), false)
}

pub(super) fn red_letter_reasons_schema() -> utoipa::openapi::Object {
    closed_set(RedLetterReason::ALL.map(RedLetterReason::name), false)
}

pub(super) fn invoice_types_schema() -> utoipa::openapi::Object {
    closed_set(InvoiceType::ALL.map(InvoiceType::name), true)
}

pub(super) fn booking_codes_schema() -> utoipa::openapi::Object {
    closed_set(BookingStatus::ALL.map(BookingStatus::code), false)
}
