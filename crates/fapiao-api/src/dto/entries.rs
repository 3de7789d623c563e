//! Block entries as the API, the export and the CLI read them: a signed event, or an
//! entry its execution derived. One typed shape per kind, so the OpenAPI document lists
//! every field of every kind and a client deserialises an entry instead of indexing JSON.
//!
//! The JSON is `{"type": "event" | "derived", "id", "kind", "data", ...}`: `type` tags
//! the entry, `kind` tags its data.

use super::*;
use fapiao_core::event::{
    ClaimChanged, Derived, Event, FormState, InvoiceRequested, InvoiceType, QuotaChange, RedLetterReason,
    RedLetterRequested,
};

/// A block entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryDto {
    /// A signed input event.
    Event(EventEntryDto),
    /// An entry the execution of an event derived.
    Derived(DerivedEntryDto),
}

/// A signed input event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct EventEntryDto {
    /// Event id.
    pub id: String,
    /// The chain it was submitted to.
    pub chain: String,
    /// The signing key, hex.
    pub author: String,
    /// The client's time.
    pub timestamp_ms: u64,
    /// Ed25519 signature, hex.
    pub signature: String,
    /// Its kind and data.
    #[serde(flatten)]
    pub event: EventDataDto,
}

/// An event's kind and its data.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum EventDataDto {
    /// A payment was taken.
    PaymentRecorded(PaymentRecordedDto),
    /// Part of a payment was refunded.
    PaymentRefunded(PaymentRefundedDto),
    /// A wrongly entered payment was voided.
    PaymentVoided(PaymentVoidedDto),
    /// An invoice was requested.
    InvoiceRequested(InvoiceRequestedDto),
    /// A red-letter invoice was requested by the seller.
    InvoiceRedLetterRequested(RedLetterRequestedDto),
    /// A reimbursement lock was asked for (the check code proves holding the invoice).
    InvoiceClaimRequested(ClaimActionDto),
    /// A fee deposit.
    FeeDeposited(FeeDepositedDto),
    /// A merchant's policy was replaced.
    MerchantPolicySet(MerchantPolicyDto),
    /// A client key was authorised.
    ClientKeyAuthorized(ClientKeyAuthorizedDto),
    /// A client key was revoked.
    ClientKeyRevoked(ClientKeyRevokedDto),
    /// The lock holder released its lock.
    InvoiceClaimUnlocked(ClaimActionDto),
    /// The lock holder closed its claim (reimbursed).
    InvoiceClaimClosed(ClaimActionDto),
    /// The buyer set its booking status (入账).
    InvoiceBookingSet(BookingSetDto),
    /// The buyer started a red-letter confirmation form.
    RedFormStarted(RedFormStartedDto),
    /// A form was confirmed or rejected.
    RedFormAnswered(RedFormAnsweredDto),
    /// A form was withdrawn by the side that started it.
    RedFormWithdrawn(RedFormRefDto),
    /// The tax office changed a month's quota.
    QuotaChanged(QuotaChangedDto),
    /// The admin changed the consortium's configuration (on the admin chain).
    ConfigChanged(ConfigChangedDto),
}

/// A configuration change, starting an epoch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ConfigChangedDto {
    /// The epoch it starts.
    pub epoch: u32,
    /// `add_member`, `remove_member`, `rotate_key`, `set_roles`, `set_addresses`,
    /// `set_quorum` or `reset_chain`.
    #[schema(schema_with = config_changes_schema)]
    pub change: String,
    /// The member it is about (all but `set_quorum`).
    pub member: Option<String>,
    /// A member's name (`add_member`).
    pub name: Option<String>,
    /// A member's key, hex (`add_member`, `rotate_key`; the successor key of
    /// `reset_chain`).
    pub key: Option<String>,
    /// A member's roles (`add_member`, `set_roles`).
    pub roles: Option<Vec<String>>,
    /// A member's addresses (`add_member`, `set_addresses`).
    pub addresses: Option<Vec<String>>,
    /// The quorum set (`set_quorum`; absent: the default for the witnesses).
    pub quorum: Option<u32>,
    /// The last height a reset chain keeps (`reset_chain`): its blocks above it made
    /// before the new epoch are set aside.
    pub height: Option<u64>,
}

impl ConfigChangedDto {
    /// The JSON shape of a change.
    pub fn new(r: &fapiao_core::Reconfiguration) -> Self {
        use fapiao_core::ConfigChange as C;
        let roles = |r: &fapiao_core::Roles| Some(r.iter().map(|x| x.name().to_string()).collect());
        let mut d = ConfigChangedDto {
            epoch: r.epoch,
            change: r.change.name().into(),
            member: None,
            name: None,
            key: None,
            roles: None,
            addresses: None,
            quorum: None,
            height: None,
        };
        match &r.change {
            C::AddMember(m) => {
                d.member = Some(m.code.to_string());
                d.name = Some(m.name.clone());
                d.key = Some(m.key.to_hex());
                d.roles = roles(&m.roles);
                d.addresses = Some(m.addresses.clone());
            }
            C::RemoveMember(m) => d.member = Some(m.to_string()),
            C::RotateKey { member, key } => {
                d.member = Some(member.to_string());
                d.key = Some(key.to_hex());
            }
            C::SetRoles { member, roles: r } => {
                d.member = Some(member.to_string());
                d.roles = roles(r);
            }
            C::SetAddresses { member, addresses } => {
                d.member = Some(member.to_string());
                d.addresses = Some(addresses.clone());
            }
            C::SetQuorum(q) => d.quorum = *q,
            C::ResetChain { chain, height, key } => {
                d.member = Some(chain.to_string());
                d.height = Some(*height);
                d.key = Some(key.to_hex());
            }
        }
        d
    }
}

/// A payment taken.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PaymentRecordedDto {
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
}

/// A refund.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PaymentRefundedDto {
    /// The payment.
    pub payment_id: String,
    /// Merchant's refund id.
    pub refund_id: String,
    /// Refunded, fen.
    pub amount_fen: i64,
    /// Why (free text).
    pub reason: String,
}

/// A voiding.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PaymentVoidedDto {
    /// The payment.
    pub payment_id: String,
    /// Why (free text).
    pub reason: String,
}

/// A buyer as the request names it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct BuyerDto {
    /// Name.
    pub name: String,
    /// Unified social credit code, for a business buyer.
    pub tax_id: Option<String>,
}

impl From<&Buyer> for BuyerDto {
    fn from(b: &Buyer) -> Self {
        BuyerDto {
            name: b.name.clone(),
            tax_id: b.tax_id.clone(),
        }
    }
}

/// A requested line, before its amounts are computed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RequestedLineDto {
    /// What.
    pub description: String,
    /// Quantity in thousandths.
    pub quantity_thousandths: i64,
    /// Tax-exclusive unit price, fen.
    pub unit_price_fen: i64,
    /// The tax classification code (税收分类编码).
    pub tax_code: String,
    /// Rate, basis points (0 under a flag).
    pub tax_rate_bp: u16,
    /// Set when the line is exempt or not taxable instead of taxed at a rate.
    pub tax_flag: Option<TaxFlagDto>,
}

impl From<&LineItem> for RequestedLineDto {
    fn from(l: &LineItem) -> Self {
        RequestedLineDto {
            description: l.description.clone(),
            quantity_thousandths: l.quantity.0,
            unit_price_fen: l.unit_price.fen(),
            tax_code: l.tax_code.clone(),
            tax_rate_bp: l.tax_rate.bp(),
            tax_flag: TaxFlagDto::of(l.tax_rate),
        }
    }
}

/// What a red-letter covers: `"full"`, or `{"partial": [lines]}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScopeDto {
    /// The whole invoice.
    Full,
    /// These lines, naming the original's lines in order.
    Partial(Vec<RequestedLineDto>),
}

impl From<&RedLetterScope> for ScopeDto {
    fn from(s: &RedLetterScope) -> Self {
        match s {
            RedLetterScope::Full => ScopeDto::Full,
            RedLetterScope::Partial(lines) => ScopeDto::Partial(lines.iter().map(Into::into).collect()),
        }
    }
}

/// An invoice request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct InvoiceRequestedDto {
    /// Merchant's request id.
    pub request_id: String,
    /// Which invoice.
    #[schema(schema_with = invoice_types_schema)]
    pub invoice_type: String,
    /// The buyer.
    pub buyer: BuyerDto,
    /// The lines.
    pub lines: Vec<RequestedLineDto>,
    /// The payments it draws on.
    pub payment_ids: Vec<String>,
    /// The failed request it retries.
    pub retry_of: Option<String>,
    /// The invoice it re-issues after that one was red-lettered in full.
    pub replaces: Option<String>,
}

/// A seller's red-letter request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RedLetterRequestedDto {
    /// Merchant's request id.
    pub request_id: String,
    /// The blue invoice.
    pub invoice_number: String,
    /// Why.
    #[schema(schema_with = red_letter_reasons_schema)]
    pub reason: String,
    /// What it covers.
    pub scope: ScopeDto,
}

/// A claim action: the lock asked for, released or closed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ClaimActionDto {
    /// The invoice.
    pub invoice_number: String,
    /// The claimant's reference.
    pub claim_ref: String,
}

/// A fee deposit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FeeDepositedDto {
    /// Operator's deposit id.
    pub deposit_id: String,
    /// Deposited, fen.
    pub amount_fen: i64,
}

/// A merchant's policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct MerchantPolicyDto {
    /// Invoice types it may issue.
    pub permitted_types: Vec<String>,
    /// Largest invoice total, fen.
    pub max_invoice_total_fen: i64,
    /// Its rate rules as a person reads them (`13% from 2019-04-01`).
    pub rates: Vec<String>,
}

/// A client key authorised.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ClientKeyAuthorizedDto {
    /// The key, hex.
    pub key: String,
    /// Its label.
    pub label: String,
    /// May sign payment events.
    pub payments: bool,
    /// May sign invoice events.
    pub invoices: bool,
}

/// A client key revoked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ClientKeyRevokedDto {
    /// The key, hex.
    pub key: String,
}

/// A booking status set by the buyer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct BookingSetDto {
    /// The invoice.
    pub invoice_number: String,
    /// The status.
    #[schema(schema_with = booking_statuses_schema)]
    pub status: String,
    /// The platform's code for it (01, 02, 03, 06).
    #[schema(schema_with = booking_codes_schema)]
    pub code: String,
}

/// A form started by the buyer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RedFormStartedDto {
    /// The blue invoice.
    pub invoice_number: String,
    /// Why.
    #[schema(schema_with = red_letter_reasons_schema)]
    pub reason: String,
    /// What it covers.
    pub scope: ScopeDto,
}

/// A form's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RedFormAnsweredDto {
    /// The blue invoice.
    pub invoice_number: String,
    /// The form's number on it.
    pub form: u32,
    /// Confirmed (or rejected).
    pub confirm: bool,
}

/// A form on an invoice.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RedFormRefDto {
    /// The blue invoice.
    pub invoice_number: String,
    /// The form's number on it.
    pub form: u32,
}

/// A quota change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct QuotaChangedDto {
    /// The month, `YYYYMM`.
    pub month: u32,
    /// What changed.
    #[schema(schema_with = quota_actions_schema)]
    pub action: String,
    /// For a grant: the month's new quota, fen.
    pub amount_fen: Option<i64>,
}

/// An entry derived from an event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DerivedEntryDto {
    /// Its id.
    pub id: String,
    /// The event whose execution derived it.
    pub cause: String,
    /// Its kind and data.
    #[serde(flatten)]
    pub derived: DerivedDataDto,
}

/// A derived entry's kind and its data.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum DerivedDataDto {
    /// An invoice was issued.
    InvoiceIssued(InvoiceIssuedDto),
    /// An invoice or red-letter request failed.
    InvoiceFailed(InvoiceFailedDto),
    /// An invoice was (partially) reversed by a red-letter invoice.
    InvoiceReversed(InvoiceReversedDto),
    /// A reimbursement lock was recorded.
    ClaimRecorded(ClaimRecordedDto),
    /// A claim action was refused.
    ClaimRefused(ClaimRefusedDto),
    /// A lock was released by its holder.
    ClaimUnlocked(ClaimChangedDto),
    /// A claim was closed (reimbursed): final.
    ClaimClosed(ClaimChangedDto),
    /// The buyer's booking status was recorded.
    BookingRecorded(BookingRecordedDto),
    /// A form was opened or changed state.
    RedFormChanged(RedFormChangedDto),
    /// A form action was refused.
    RedFormRefused(RedFormRefusedDto),
}

/// An issued invoice.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct InvoiceIssuedDto {
    /// The request it answers.
    pub request_id: String,
    /// Invoice number.
    pub number: String,
    /// Check code.
    pub check_code: String,
    /// Which invoice.
    #[schema(schema_with = invoice_types_schema)]
    pub invoice_type: String,
    /// The buyer.
    pub buyer: BuyerDto,
    /// The lines with their amounts.
    pub lines: Vec<LineDto>,
    /// Net, fen.
    pub net_fen: i64,
    /// Tax, fen.
    pub tax_fen: i64,
    /// Total, fen.
    pub total_fen: i64,
    /// Fee charged, fen.
    pub fee_fen: i64,
    /// How the total is drawn from the payments.
    pub allocations: Vec<AllocationDto>,
    /// Block time of issue.
    pub issued_at_ms: u64,
    /// The invoice it re-issues.
    pub replaces: Option<String>,
}

/// A failed request, with its reason from the catalogue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct InvoiceFailedDto {
    /// The request.
    pub request_id: String,
    /// The failure reason's code.
    #[schema(schema_with = failure_codes_schema)]
    pub reason: String,
    /// Whether retrying may succeed.
    pub retryable: bool,
    /// What to do about it.
    pub remedy: String,
    /// The field at fault.
    pub field: String,
    /// The particulars.
    pub detail: String,
}

/// A red-letter invoice against a blue one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct InvoiceReversedDto {
    /// The request it answers.
    pub request_id: String,
    /// The blue invoice.
    pub original: String,
    /// The red invoice's number.
    pub red_number: String,
    /// The red invoice's check code.
    pub red_check_code: String,
    /// Why.
    #[schema(schema_with = red_letter_reasons_schema)]
    pub reason: String,
    /// Net reversed, fen.
    pub net_fen: i64,
    /// Tax reversed, fen.
    pub tax_fen: i64,
    /// Total reversed, fen.
    pub total_fen: i64,
    /// Whether nothing of the blue invoice is left.
    pub fully_reversed: bool,
    /// The red lines, negative.
    pub lines: Vec<LineDto>,
    /// What goes back to each payment, fen (negative).
    pub allocations: Vec<AllocationDto>,
    /// Block time.
    pub reversed_at_ms: u64,
}

/// A reimbursement lock.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ClaimRecordedDto {
    /// The invoice.
    pub invoice_number: String,
    /// The member holding the lock.
    pub claimant: String,
    /// Its reference.
    pub claim_ref: String,
    /// Block time.
    pub claimed_at_ms: u64,
}

/// A refused claim action.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ClaimRefusedDto {
    /// The invoice.
    pub invoice_number: String,
    /// The member refused.
    pub claimant: String,
    /// Why.
    pub refusal: ClaimRefusalDto,
}

/// Why a claim action was refused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ClaimRefusalDto {
    /// Locked by another claim since then.
    AlreadyClaimed {
        /// The lock holder: in a block only; the public outcome leaves it out (it is
        /// that member's business, not the second claimant's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_claimant: Option<String>,
        /// When it was locked.
        first_claimed_at_ms: u64,
    },
    /// Fully red-letter reversed.
    Reversed,
    /// No such invoice for this member.
    NotFound,
    /// Closed (reimbursed) then.
    Closed {
        /// When.
        closed_at_ms: u64,
    },
    /// Not locked.
    NotLocked,
    /// The lock is another member's or reference's.
    NotLockHolder,
}

/// A lock released, or a claim closed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ClaimChangedDto {
    /// The invoice.
    pub invoice_number: String,
    /// The lock holder.
    pub claimant: String,
    /// Its reference.
    pub claim_ref: String,
    /// Block time.
    pub at_ms: u64,
}

/// A booking status recorded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct BookingRecordedDto {
    /// The invoice.
    pub invoice_number: String,
    /// The buyer member.
    pub buyer: String,
    /// The status.
    #[schema(schema_with = booking_statuses_schema)]
    pub status: String,
    /// The platform's code for it.
    #[schema(schema_with = booking_codes_schema)]
    pub code: String,
    /// Block time.
    pub at_ms: u64,
}

/// A form's new state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RedFormChangedDto {
    /// The blue invoice.
    pub invoice_number: String,
    /// The form's number on it.
    pub form: u32,
    /// Its state.
    #[schema(schema_with = form_states_schema)]
    pub state: String,
    /// Block time.
    pub at_ms: u64,
}

/// A refused form action.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RedFormRefusedDto {
    /// The blue invoice.
    pub invoice_number: String,
    /// The form, when the action named one.
    pub form: Option<u32>,
    /// Why.
    pub refusal: RedFormRefusalDto,
}

/// Why a form action was refused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum RedFormRefusalDto {
    /// No such invoice or form for this member.
    NotFound,
    /// The form no longer waits.
    NotWaiting {
        /// Its state.
        #[schema(schema_with = form_states_schema)]
        state: String,
    },
    /// The form waits for, or was started by, the other side.
    WrongSide,
    /// The red-letter it would issue failed.
    Failed {
        /// The failure reason's code.
        #[schema(schema_with = failure_codes_schema)]
        code: String,
        /// What to do about it.
        remedy: String,
        /// The particulars.
        detail: String,
    },
}

fn config_changes_schema() -> utoipa::openapi::Object {
    closed_set(
        [
            "add_member",
            "remove_member",
            "rotate_key",
            "set_roles",
            "set_addresses",
            "set_quorum",
            "reset_chain",
        ],
        false,
    )
}

fn quota_actions_schema() -> utoipa::openapi::Object {
    closed_set(["grant", "suspend", "resume", "revalidate"], false)
}

/// The `kind` tag a value of an adjacently tagged enum serialises with.
fn tag_of(v: &impl Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v["kind"].as_str().map(str::to_string))
        .unwrap_or_default()
}

impl EntryDto {
    /// Its `type` and `kind`, as the JSON reads them: `("event", "payment_recorded")`.
    pub fn type_and_kind(&self) -> (&'static str, String) {
        match self {
            EntryDto::Event(e) => ("event", tag_of(&e.event)),
            EntryDto::Derived(d) => ("derived", tag_of(&d.derived)),
        }
    }

    /// Its `data`, as the JSON reads it.
    pub fn data(&self) -> Value {
        let v = match self {
            EntryDto::Event(e) => serde_json::to_value(&e.event),
            EntryDto::Derived(d) => serde_json::to_value(&d.derived),
        };
        v.map(|mut v| v["data"].take()).unwrap_or(Value::Null)
    }

    /// An entry as a block holds it.
    pub fn new(e: &Entry) -> Self {
        match e {
            Entry::Event(ev) => EntryDto::Event(EventEntryDto::new(ev)),
            Entry::Derived(d) => EntryDto::Derived(DerivedEntryDto::new(d)),
        }
    }
}

impl EventEntryDto {
    /// A signed event.
    pub fn new(ev: &Event) -> Self {
        let b = &ev.body;
        EventEntryDto {
            id: ev.id().to_string(),
            chain: b.chain.to_string(),
            author: b.author.to_hex(),
            timestamp_ms: b.timestamp.0,
            signature: hex::encode(ev.signature.to_bytes()),
            event: EventDataDto::new(&b.kind),
        }
    }
}

impl EventDataDto {
    // Long: one arm per event kind.
    fn new(kind: &EventKind) -> Self {
        let claim = |invoice_number: &InvoiceNumber, claim_ref: &str| ClaimActionDto {
            invoice_number: invoice_number.to_string(),
            claim_ref: claim_ref.to_string(),
        };
        match kind {
            EventKind::PaymentRecorded(p) => EventDataDto::PaymentRecorded(PaymentRecordedDto {
                payment_id: p.payment_id.clone(),
                amount_fen: p.amount.fen(),
                currency: p.currency.code().into(),
                method: p.method.name().into(),
                terminal_id: p.terminal_id.clone(),
                external_ref: p.external_ref.clone(),
            }),
            EventKind::PaymentRefunded(r) => EventDataDto::PaymentRefunded(PaymentRefundedDto {
                payment_id: r.payment_id.clone(),
                refund_id: r.refund_id.clone(),
                amount_fen: r.amount.fen(),
                reason: r.reason.clone(),
            }),
            EventKind::PaymentVoided(r) => EventDataDto::PaymentVoided(PaymentVoidedDto {
                payment_id: r.payment_id.clone(),
                reason: r.reason.clone(),
            }),
            EventKind::InvoiceRequested(r) => EventDataDto::InvoiceRequested(r.into()),
            EventKind::InvoiceRedLetterRequested(r) => EventDataDto::InvoiceRedLetterRequested(r.into()),
            EventKind::InvoiceClaimRequested(c) => {
                EventDataDto::InvoiceClaimRequested(claim(&c.invoice_number, &c.claim_ref))
            }
            EventKind::FeeDeposited(d) => EventDataDto::FeeDeposited(FeeDepositedDto {
                deposit_id: d.deposit_id.clone(),
                amount_fen: d.amount.fen(),
            }),
            EventKind::MerchantPolicySet(p) => EventDataDto::MerchantPolicySet(MerchantPolicyDto {
                permitted_types: p.permitted_types.iter().map(|t| t.name().to_string()).collect(),
                max_invoice_total_fen: p.max_invoice_total.fen(),
                rates: p.rates.iter().map(|r| r.describe()).collect(),
            }),
            EventKind::ClientKeyAuthorized(a) => EventDataDto::ClientKeyAuthorized(ClientKeyAuthorizedDto {
                key: a.key.to_hex(),
                label: a.label.clone(),
                payments: a.permissions.payments,
                invoices: a.permissions.invoices,
            }),
            EventKind::ClientKeyRevoked(r) => {
                EventDataDto::ClientKeyRevoked(ClientKeyRevokedDto { key: r.key.to_hex() })
            }
            EventKind::InvoiceClaimUnlocked(a) => {
                EventDataDto::InvoiceClaimUnlocked(claim(&a.invoice_number, &a.claim_ref))
            }
            EventKind::InvoiceClaimClosed(a) => {
                EventDataDto::InvoiceClaimClosed(claim(&a.invoice_number, &a.claim_ref))
            }
            EventKind::InvoiceBookingSet(b) => EventDataDto::InvoiceBookingSet(BookingSetDto {
                invoice_number: b.invoice_number.to_string(),
                status: b.status.name().into(),
                code: b.status.code().into(),
            }),
            EventKind::RedFormStarted(f) => EventDataDto::RedFormStarted(RedFormStartedDto {
                invoice_number: f.invoice_number.to_string(),
                reason: f.reason.name().into(),
                scope: (&f.scope).into(),
            }),
            EventKind::RedFormAnswered(a) => EventDataDto::RedFormAnswered(RedFormAnsweredDto {
                invoice_number: a.form.invoice_number.to_string(),
                form: a.form.form,
                confirm: a.confirm,
            }),
            EventKind::RedFormWithdrawn(f) => EventDataDto::RedFormWithdrawn(RedFormRefDto {
                invoice_number: f.invoice_number.to_string(),
                form: f.form,
            }),
            EventKind::QuotaChanged(c) => EventDataDto::QuotaChanged(quota_changed(c)),
            EventKind::ConfigChanged(r) => EventDataDto::ConfigChanged(ConfigChangedDto::new(r)),
        }
    }
}

impl From<&InvoiceRequested> for InvoiceRequestedDto {
    fn from(r: &InvoiceRequested) -> Self {
        InvoiceRequestedDto {
            request_id: r.request_id.clone(),
            invoice_type: r.invoice_type.name().into(),
            buyer: (&r.buyer).into(),
            lines: r.lines.iter().map(Into::into).collect(),
            payment_ids: r.payment_ids.clone(),
            retry_of: r.retry_of.clone(),
            replaces: r.replaces.map(|n| n.to_string()),
        }
    }
}

impl InvoiceRequestedDto {
    /// The request itself, to be signed again with corrections (a retry); an error names
    /// the field the node sent that this client cannot read.
    pub fn to_request(&self) -> Result<InvoiceRequested, String> {
        let invoice_type = InvoiceType::from_name(&self.invoice_type)
            .ok_or_else(|| format!("unknown invoice type {:?}", self.invoice_type))?;
        let replaces = self
            .replaces
            .as_deref()
            .map(|n| n.parse().map_err(|e| format!("replaces: {e}")))
            .transpose()?;
        Ok(InvoiceRequested {
            request_id: self.request_id.clone(),
            invoice_type,
            buyer: Buyer {
                name: self.buyer.name.clone(),
                tax_id: self.buyer.tax_id.clone(),
            },
            lines: self.lines.iter().map(RequestedLineDto::to_line).collect(),
            payment_ids: self.payment_ids.clone(),
            retry_of: self.retry_of.clone(),
            replaces,
        })
    }
}

impl RequestedLineDto {
    /// The line as the ledger holds it.
    pub fn to_line(&self) -> LineItem {
        LineItem {
            description: self.description.clone(),
            tax_code: self.tax_code.clone(),
            quantity: fapiao_core::Quantity(self.quantity_thousandths),
            unit_price: fapiao_core::Fen::from_fen(self.unit_price_fen),
            tax_rate: TaxFlagDto::rate(self.tax_rate_bp, self.tax_flag),
        }
    }
}

impl From<&RedLetterRequested> for RedLetterRequestedDto {
    fn from(r: &RedLetterRequested) -> Self {
        RedLetterRequestedDto {
            request_id: r.request_id.clone(),
            invoice_number: r.invoice_number.to_string(),
            reason: r.reason.name().into(),
            scope: (&r.scope).into(),
        }
    }
}

/// What a request asked for: `{"invoice": {...}}` or `{"red_letter": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RequestBodyDto {
    /// An invoice request, as its event holds it.
    Invoice(InvoiceRequestedDto),
    /// A red-letter request, as its event holds it.
    RedLetter(RedLetterRequestedDto),
}

impl From<&RequestBody> for RequestBodyDto {
    fn from(b: &RequestBody) -> Self {
        match b {
            RequestBody::Invoice(r) => RequestBodyDto::Invoice(r.into()),
            RequestBody::RedLetter(r) => RequestBodyDto::RedLetter(r.into()),
        }
    }
}

fn allocations(a: &[fapiao_core::event::Allocation]) -> Vec<AllocationDto> {
    a.iter()
        .map(|a| AllocationDto {
            payment_id: a.payment_id.clone(),
            amount_fen: a.amount.fen(),
        })
        .collect()
}

fn quota_changed(c: &QuotaChange) -> QuotaChangedDto {
    QuotaChangedDto {
        month: c.month,
        action: c.action.name().into(),
        amount_fen: match c.action {
            QuotaAction::Grant(a) => Some(a.fen()),
            _ => None,
        },
    }
}

impl DerivedEntryDto {
    /// A derived entry as a block holds it.
    pub fn new(d: &Derived) -> Self {
        DerivedEntryDto {
            id: d.id().to_string(),
            cause: d.cause.to_string(),
            derived: DerivedDataDto::new(&d.kind),
        }
    }

    /// A derived entry as the public outcome of its event shows it (`GET
    /// /v1/events/{id}/outcome`): as in a block, except that a claim refused because
    /// the invoice was claimed before says when, not by whom.
    pub fn outcome(d: &Derived) -> Self {
        let mut dto = DerivedEntryDto::new(d);
        if let DerivedDataDto::ClaimRefused(ClaimRefusedDto {
            refusal: ClaimRefusalDto::AlreadyClaimed { first_claimant, .. },
            ..
        }) = &mut dto.derived
        {
            *first_claimant = None;
        }
        dto
    }
}

impl DerivedDataDto {
    // Long: one arm per derived kind.
    fn new(kind: &DerivedKind) -> Self {
        let changed = |c: &ClaimChanged| ClaimChangedDto {
            invoice_number: c.invoice_number.to_string(),
            claimant: c.claimant.to_string(),
            claim_ref: c.claim_ref.clone(),
            at_ms: c.at.0,
        };
        match kind {
            DerivedKind::InvoiceIssued(i) => DerivedDataDto::InvoiceIssued(InvoiceIssuedDto {
                request_id: i.request_id.clone(),
                number: i.number.to_string(),
                check_code: i.check_code.to_string(),
                invoice_type: i.invoice_type.name().into(),
                buyer: (&i.buyer).into(),
                lines: i.lines.iter().map(LineDto::from).collect(),
                net_fen: i.net.fen(),
                tax_fen: i.tax.fen(),
                total_fen: i.total.fen(),
                fee_fen: i.fee.fen(),
                allocations: allocations(&i.allocations),
                issued_at_ms: i.issued_at.0,
                replaces: i.replaces.map(|n| n.to_string()),
            }),
            DerivedKind::InvoiceFailed(f) => {
                let info = catalogue::info(f.reason);
                DerivedDataDto::InvoiceFailed(InvoiceFailedDto {
                    request_id: f.request_id.clone(),
                    reason: info.code.into(),
                    retryable: info.retryable,
                    remedy: info.remedy.into(),
                    field: f.field.clone(),
                    detail: f.detail.clone(),
                })
            }
            DerivedKind::InvoiceReversed(r) => DerivedDataDto::InvoiceReversed(InvoiceReversedDto {
                request_id: r.request_id.clone(),
                original: r.original.to_string(),
                red_number: r.red_number.to_string(),
                red_check_code: r.red_check_code.to_string(),
                reason: RedLetterReason::name(r.reason).into(),
                net_fen: r.net.fen(),
                tax_fen: r.tax.fen(),
                total_fen: r.total.fen(),
                fully_reversed: r.fully_reversed,
                lines: r.lines.iter().map(LineDto::from).collect(),
                allocations: allocations(&r.allocations),
                reversed_at_ms: r.reversed_at.0,
            }),
            DerivedKind::ClaimRecorded(c) => DerivedDataDto::ClaimRecorded(ClaimRecordedDto {
                invoice_number: c.invoice_number.to_string(),
                claimant: c.claimant.to_string(),
                claim_ref: c.claim_ref.clone(),
                claimed_at_ms: c.claimed_at.0,
            }),
            DerivedKind::ClaimRefused(c) => DerivedDataDto::ClaimRefused(ClaimRefusedDto {
                invoice_number: c.invoice_number.to_string(),
                claimant: c.claimant.to_string(),
                refusal: match &c.refusal {
                    ClaimRefusal::AlreadyClaimed { claimant, claimed_at } => ClaimRefusalDto::AlreadyClaimed {
                        first_claimant: Some(claimant.to_string()),
                        first_claimed_at_ms: claimed_at.0,
                    },
                    ClaimRefusal::Reversed => ClaimRefusalDto::Reversed,
                    ClaimRefusal::NotFound => ClaimRefusalDto::NotFound,
                    ClaimRefusal::Closed { closed_at } => ClaimRefusalDto::Closed {
                        closed_at_ms: closed_at.0,
                    },
                    ClaimRefusal::NotLocked => ClaimRefusalDto::NotLocked,
                    ClaimRefusal::NotLockHolder => ClaimRefusalDto::NotLockHolder,
                },
            }),
            DerivedKind::ClaimUnlocked(c) => DerivedDataDto::ClaimUnlocked(changed(c)),
            DerivedKind::ClaimClosed(c) => DerivedDataDto::ClaimClosed(changed(c)),
            DerivedKind::BookingRecorded(b) => DerivedDataDto::BookingRecorded(BookingRecordedDto {
                invoice_number: b.invoice_number.to_string(),
                buyer: b.buyer.to_string(),
                status: b.status.name().into(),
                code: b.status.code().into(),
                at_ms: b.at.0,
            }),
            DerivedKind::RedFormChanged(f) => DerivedDataDto::RedFormChanged(RedFormChangedDto {
                invoice_number: f.form.invoice_number.to_string(),
                form: f.form.form,
                state: FormState::name(f.state).into(),
                at_ms: f.at.0,
            }),
            DerivedKind::RedFormRefused(f) => DerivedDataDto::RedFormRefused(RedFormRefusedDto {
                invoice_number: f.invoice_number.to_string(),
                form: f.form,
                refusal: match &f.refusal {
                    RedFormRefusal::NotFound => RedFormRefusalDto::NotFound,
                    RedFormRefusal::NotWaiting(state) => RedFormRefusalDto::NotWaiting {
                        state: state.name().into(),
                    },
                    RedFormRefusal::WrongSide => RedFormRefusalDto::WrongSide,
                    RedFormRefusal::Failed { reason, detail } => {
                        let info = catalogue::info(*reason);
                        RedFormRefusalDto::Failed {
                            code: info.code.into(),
                            remedy: info.remedy.into(),
                            detail: detail.clone(),
                        }
                    }
                },
            }),
        }
    }
}
