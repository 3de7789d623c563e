//! Events: the signed envelope, every client-submitted kind, and the derived events
//! the chain owner writes during execution.

use crate::codec;
use crate::hash::{hash, Domain, Hash32};
use crate::ids::{CheckCode, EventId, InvoiceNumber, MemberCode, NetworkId, Timestamp};
use crate::money::{Fen, Quantity, TaxRate};
use crate::sig::{self, PublicKey, SecretKey, SigError, Signature};
use crate::tax::RateRule;
use serde::{Deserialize, Serialize};

/// What an author signs: which network and chain, who, when, and what.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct EventBody {
    /// The network this event belongs to (hash of genesis).
    pub network: NetworkId,
    /// The chain (owner's member code) the event is for.
    pub chain: MemberCode,
    /// The signing key: the chain owner, an authorised client key, the operator or a
    /// verifier member, depending on the kind.
    pub author: PublicKey,
    /// When the author created the event (author's clock; informational).
    pub timestamp: Timestamp,
    /// The business fact.
    pub kind: EventKind,
}

impl EventBody {
    /// The event id: `H_event(canonical(body))`. It is also the digest the author signs.
    pub fn id(&self) -> EventId {
        EventId(hash(Domain::EventBody, &codec::to_bytes(self)))
    }

    /// Signs the body with `key` (which must be the `author`).
    pub fn sign(self, key: &SecretKey) -> Event {
        debug_assert_eq!(key.public(), self.author, "signing key is not the event's author");
        let signature = key.sign(&self.id().0);
        Event { body: self, signature }
    }
}

/// A signed event.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Event {
    /// The signed body.
    pub body: EventBody,
    /// The author's signature on the event id.
    pub signature: Signature,
}

/// Why an event's envelope is not acceptable on a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Signed for another network.
    #[error("event is for network {found}, this network is {expected}")]
    WrongNetwork {
        /// This network.
        expected: NetworkId,
        /// The event's network.
        found: NetworkId,
    },
    /// The signature is invalid under the rule.
    #[error("event signature invalid: {0}")]
    Signature(#[from] SigError),
}

impl Event {
    /// The event id (hash of the signed body, not of the signature).
    pub fn id(&self) -> EventId {
        self.body.id()
    }

    /// Checks the network id and the signature.
    pub fn verify(&self, network: &NetworkId) -> Result<EventId, EnvelopeError> {
        if self.body.network != *network {
            return Err(EnvelopeError::WrongNetwork {
                expected: *network,
                found: self.body.network,
            });
        }
        let id = self.id();
        sig::verify(&self.body.author, &id.0, &self.signature)?;
        Ok(id)
    }
}

/// Every event a client, the chain owner, the operator or a verifier can submit.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum EventKind {
    /// A payment was taken.
    PaymentRecorded(PaymentRecorded),
    /// Part or all of a payment was returned to the payer.
    PaymentRefunded(PaymentRefunded),
    /// A payment was entered wrongly and is void.
    PaymentVoided(PaymentVoided),
    /// An invoice is requested for one or more payments.
    InvoiceRequested(InvoiceRequested),
    /// An issued invoice is to be reversed with a red-letter invoice.
    InvoiceRedLetterRequested(RedLetterRequested),
    /// A verifier registers a reimbursement claim of an invoice.
    InvoiceClaimRequested(ClaimRequested),
    /// The operator credits the merchant's fee balance.
    FeeDeposited(FeeDeposited),
    /// The operator replaces the merchant's invoicing policy.
    MerchantPolicySet(MerchantPolicy),
    /// The chain owner authorises a client key (a POS terminal, a back-office app).
    ClientKeyAuthorized(ClientKeyAuthorized),
    /// The chain owner revokes a client key.
    ClientKeyRevoked(ClientKeyRevoked),
    /// The lock holder releases its reimbursement lock (its flow failed).
    InvoiceClaimUnlocked(ClaimAction),
    /// The lock holder closes its claim: the invoice is reimbursed, for good.
    InvoiceClaimClosed(ClaimAction),
    /// The buyer records the invoice's booking status (入账状态).
    InvoiceBookingSet(BookingSet),
    /// The buyer starts a red-letter confirmation form (红字确认单); the seller's own
    /// start is [`EventKind::InvoiceRedLetterRequested`].
    RedFormStarted(RedFormStart),
    /// The side a form waits for confirms or rejects it.
    RedFormAnswered(RedFormAnswer),
    /// The side that started a form withdraws it while it waits.
    RedFormWithdrawn(RedFormRef),
    /// The tax office grants, adjusts, suspends, resumes or re-validates the merchant's
    /// invoicing quota (授信额度) for a month.
    QuotaChanged(QuotaChange),
    /// The admin changes the consortium's configuration, starting the next epoch; only
    /// on the admin chain, which carries nothing else.
    ConfigChanged(crate::config::Reconfiguration),
}

/// A tax office's change to a merchant's monthly invoicing quota.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct QuotaChange {
    /// The month it is for, `YYYYMM` in UTC+8; it must be the month of the block that
    /// records it (a quota is never carried from one month into another).
    pub month: u32,
    /// What changes.
    pub action: QuotaAction,
}

/// What a [`QuotaChange`] does.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum QuotaAction {
    /// Grant the month's quota, or adjust it: the amount including tax the merchant may
    /// invoice in the month (what is already used stays used).
    Grant(Fen),
    /// Suspend invoicing under the quota until resumed.
    Suspend,
    /// Lift a suspension.
    Resume,
    /// After the monthly filing: the new month gets the amount last granted, nothing
    /// carried over from the month before.
    Revalidate,
}

impl QuotaAction {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            QuotaAction::Grant(_) => "grant",
            QuotaAction::Suspend => "suspend",
            QuotaAction::Resume => "resume",
            QuotaAction::Revalidate => "revalidate",
        }
    }
}

impl EventKind {
    /// The invoice this event is about, if any: what a per-invoice history lists it under.
    pub fn invoice(&self) -> Option<InvoiceNumber> {
        match self {
            EventKind::InvoiceRedLetterRequested(r) => Some(r.invoice_number),
            EventKind::InvoiceClaimRequested(c) => Some(c.invoice_number),
            EventKind::InvoiceClaimUnlocked(a) | EventKind::InvoiceClaimClosed(a) => Some(a.invoice_number),
            EventKind::InvoiceBookingSet(b) => Some(b.invoice_number),
            EventKind::RedFormStarted(f) => Some(f.invoice_number),
            EventKind::RedFormAnswered(a) => Some(a.form.invoice_number),
            EventKind::RedFormWithdrawn(f) => Some(f.invoice_number),
            EventKind::PaymentRecorded(_)
            | EventKind::PaymentRefunded(_)
            | EventKind::PaymentVoided(_)
            | EventKind::QuotaChanged(_)
            | EventKind::InvoiceRequested(_)
            | EventKind::FeeDeposited(_)
            | EventKind::MerchantPolicySet(_)
            | EventKind::ClientKeyAuthorized(_)
            | EventKind::ClientKeyRevoked(_)
            | EventKind::ConfigChanged(_) => None,
        }
    }

    /// A stable snake_case name, used in APIs, metrics and exports.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::PaymentRecorded(_) => "payment_recorded",
            EventKind::PaymentRefunded(_) => "payment_refunded",
            EventKind::PaymentVoided(_) => "payment_voided",
            EventKind::InvoiceRequested(_) => "invoice_requested",
            EventKind::InvoiceRedLetterRequested(_) => "invoice_red_letter_requested",
            EventKind::InvoiceClaimRequested(_) => "invoice_claim_requested",
            EventKind::FeeDeposited(_) => "fee_deposited",
            EventKind::MerchantPolicySet(_) => "merchant_policy_set",
            EventKind::ClientKeyAuthorized(_) => "client_key_authorized",
            EventKind::ClientKeyRevoked(_) => "client_key_revoked",
            EventKind::InvoiceClaimUnlocked(_) => "invoice_claim_unlocked",
            EventKind::InvoiceClaimClosed(_) => "invoice_claim_closed",
            EventKind::InvoiceBookingSet(_) => "invoice_booking_set",
            EventKind::RedFormStarted(_) => "red_form_started",
            EventKind::RedFormAnswered(_) => "red_form_answered",
            EventKind::RedFormWithdrawn(_) => "red_form_withdrawn",
            EventKind::QuotaChanged(_) => "quota_changed",
            EventKind::ConfigChanged(_) => "config_changed",
        }
    }
}

/// How a payment was made.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum PaymentMethod {
    /// Bank card.
    Card,
    /// Alipay.
    Alipay,
    /// WeChat Pay.
    Wechat,
    /// Huabei (Alipay credit).
    Huabei,
    /// UnionPay QR code.
    UnionpayQr,
    /// Cash.
    Cash,
}

impl PaymentMethod {
    /// Every method, in canonical order.
    pub const ALL: [PaymentMethod; 6] = [
        PaymentMethod::Card,
        PaymentMethod::Alipay,
        PaymentMethod::Wechat,
        PaymentMethod::Huabei,
        PaymentMethod::UnionpayQr,
        PaymentMethod::Cash,
    ];

    /// The snake_case name (`unionpay_qr`).
    pub fn name(self) -> &'static str {
        match self {
            PaymentMethod::Card => "card",
            PaymentMethod::Alipay => "alipay",
            PaymentMethod::Wechat => "wechat",
            PaymentMethod::Huabei => "huabei",
            PaymentMethod::UnionpayQr => "unionpay_qr",
            PaymentMethod::Cash => "cash",
        }
    }

    /// Parses a snake_case name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// The currency of a payment. Fapiao are issued in renminbi; the enum leaves room.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Currency {
    /// Chinese yuan renminbi.
    Cny,
}

impl Currency {
    /// Every currency.
    pub const ALL: [Currency; 1] = [Currency::Cny];

    /// The ISO 4217 code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Cny => "CNY",
        }
    }
}

/// A payment was taken.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PaymentRecorded {
    /// The merchant's payment id, unique on its chain.
    pub payment_id: String,
    /// Amount paid, positive.
    pub amount: Fen,
    /// Currency.
    pub currency: Currency,
    /// How it was paid.
    pub method: PaymentMethod,
    /// The terminal (POS) or channel that took it.
    pub terminal_id: String,
    /// The payment processor's reference.
    pub external_ref: String,
}

/// Part or all of a payment was refunded.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PaymentRefunded {
    /// The payment.
    pub payment_id: String,
    /// The merchant's refund id, unique on its chain.
    pub refund_id: String,
    /// Amount returned, positive, at most what is left to refund.
    pub amount: Fen,
    /// Free text.
    pub reason: String,
}

/// A payment entered wrongly is void.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PaymentVoided {
    /// The payment.
    pub payment_id: String,
    /// Free text.
    pub reason: String,
}

/// The kinds of invoice.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum InvoiceType {
    /// Ordinary VAT invoice (普通发票); buyer tax id optional.
    Normal,
    /// Special VAT invoice (增值税专用发票); buyer tax id required, lets the buyer deduct
    /// input VAT.
    SpecialVat,
}

impl InvoiceType {
    /// Every type, in canonical order.
    pub const ALL: [InvoiceType; 2] = [InvoiceType::Normal, InvoiceType::SpecialVat];

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            InvoiceType::Normal => "normal",
            InvoiceType::SpecialVat => "special_vat",
        }
    }

    /// Parses a snake_case name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }
}

/// The buyer as printed on the invoice.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Buyer {
    /// Registered name (company or person).
    pub name: String,
    /// Unified social credit code, 18 characters; required for a special VAT invoice.
    pub tax_id: Option<String>,
}

/// One invoice line. Amounts are tax-exclusive; see `docs/FORMAT.md` for the rounding.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct LineItem {
    /// What was sold, as the line prints it after the classification's short name.
    pub description: String,
    /// The tax classification code (税收分类编码), 19 digits, from the consortium's
    /// table in genesis.
    pub tax_code: String,
    /// How many, in thousandths.
    pub quantity: Quantity,
    /// Tax-exclusive price of one unit.
    pub unit_price: Fen,
    /// The VAT rate, or the exempt or not-taxable flag.
    pub tax_rate: TaxRate,
}

/// An invoice is requested.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InvoiceRequested {
    /// The merchant's request id, unique on its chain.
    pub request_id: String,
    /// Which kind of invoice.
    pub invoice_type: InvoiceType,
    /// The buyer.
    pub buyer: Buyer,
    /// The lines.
    pub lines: Vec<LineItem>,
    /// The payments the invoice covers, in the order their amounts are used.
    pub payment_ids: Vec<String>,
    /// The earlier failed request this one corrects, if any.
    pub retry_of: Option<String>,
    /// The red-letter reversed invoice of this chain that this one replaces (a corrected
    /// invoice for the same payments), if any.
    pub replaces: Option<InvoiceNumber>,
}

/// Why an invoice is reversed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum RedLetterReason {
    /// The invoice was issued with wrong content.
    IssueError,
    /// The goods were returned.
    SalesReturn,
    /// The service was terminated.
    ServiceTermination,
    /// A discount was granted after issue.
    SalesDiscount,
}

impl RedLetterReason {
    /// Every reason, in canonical order.
    pub const ALL: [RedLetterReason; 4] = [
        RedLetterReason::IssueError,
        RedLetterReason::SalesReturn,
        RedLetterReason::ServiceTermination,
        RedLetterReason::SalesDiscount,
    ];

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            RedLetterReason::IssueError => "issue_error",
            RedLetterReason::SalesReturn => "sales_return",
            RedLetterReason::ServiceTermination => "service_termination",
            RedLetterReason::SalesDiscount => "sales_discount",
        }
    }

    /// Parses a snake_case name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// How much of an invoice a red-letter reverses.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum RedLetterScope {
    /// Everything not yet reversed.
    Full,
    /// These lines (positive quantities and prices; each rate must appear on the
    /// original, and per rate at most what is left).
    Partial(Vec<LineItem>),
}

/// A red-letter reversal is requested.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RedLetterRequested {
    /// The merchant's request id for the reversal, unique among request ids on its chain.
    pub request_id: String,
    /// The invoice to reverse.
    pub invoice_number: InvoiceNumber,
    /// Why.
    pub reason: RedLetterReason,
    /// How much.
    pub scope: RedLetterScope,
}

/// A verifier registers a reimbursement claim.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ClaimRequested {
    /// The invoice.
    pub invoice_number: InvoiceNumber,
    /// Its check code, which proves the claimant holds the invoice.
    pub check_code: CheckCode,
    /// The claimant's own reference (expense report number).
    pub claim_ref: String,
}

/// The lock holder's unlock or close of its claim.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ClaimAction {
    /// The invoice.
    pub invoice_number: InvoiceNumber,
    /// The reference the lock was taken with.
    pub claim_ref: String,
}

/// A buyer's booking status of an invoice (入账状态), with the platform's codes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum BookingStatus {
    /// 01 未入账: not booked.
    NotBooked,
    /// 02 已入账（扣除）: booked, input VAT deducted.
    BookedDeducted,
    /// 03 已入账（不扣除）: booked, not deducted.
    BookedNotDeducted,
    /// 06 入账撤销: booking withdrawn.
    Withdrawn,
}

impl BookingStatus {
    /// Every status, in canonical order.
    pub const ALL: [BookingStatus; 4] = [
        BookingStatus::NotBooked,
        BookingStatus::BookedDeducted,
        BookingStatus::BookedNotDeducted,
        BookingStatus::Withdrawn,
    ];

    /// The platform's two-digit code.
    pub fn code(self) -> &'static str {
        match self {
            BookingStatus::NotBooked => "01",
            BookingStatus::BookedDeducted => "02",
            BookingStatus::BookedNotDeducted => "03",
            BookingStatus::Withdrawn => "06",
        }
    }

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            BookingStatus::NotBooked => "not_booked",
            BookingStatus::BookedDeducted => "booked_deducted",
            BookingStatus::BookedNotDeducted => "booked_not_deducted",
            BookingStatus::Withdrawn => "withdrawn",
        }
    }

    /// Parses a name or a code (`booked_deducted` or `02`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == s || b.code() == s)
    }

    /// Whether the invoice counts as booked: the seller may then not reverse it alone.
    pub fn is_booked(self) -> bool {
        matches!(self, BookingStatus::BookedDeducted | BookingStatus::BookedNotDeducted)
    }
}

/// The buyer records an invoice's booking status.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BookingSet {
    /// The invoice.
    pub invoice_number: InvoiceNumber,
    /// The status.
    pub status: BookingStatus,
}

/// The buyer starts a red-letter confirmation form.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RedFormStart {
    /// The invoice to reverse.
    pub invoice_number: InvoiceNumber,
    /// Why.
    pub reason: RedLetterReason,
    /// How much.
    pub scope: RedLetterScope,
}

/// One form of an invoice: forms are numbered from 1 per invoice.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RedFormRef {
    /// The invoice.
    pub invoice_number: InvoiceNumber,
    /// The form's number on it.
    pub form: u32,
}

/// The waited-for side's answer to a form.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RedFormAnswer {
    /// The form.
    pub form: RedFormRef,
    /// Confirm (the red invoice is issued) or reject.
    pub confirm: bool,
}

/// Which side of an invoice.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Party {
    /// The merchant that issued it (its member key or a client key with `invoices`).
    Seller,
    /// The buyer: the member whose tax id is the invoice's buyer tax id, or the member
    /// holding its reimbursement claim.
    Buyer,
}

impl Party {
    /// Both sides.
    pub const ALL: [Party; 2] = [Party::Seller, Party::Buyer];

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Party::Seller => "seller",
            Party::Buyer => "buyer",
        }
    }

    /// The other side.
    pub fn other(self) -> Party {
        match self {
            Party::Seller => Party::Buyer,
            Party::Buyer => Party::Seller,
        }
    }
}

/// How long a form waits for the other side, in block time: 72 hours.
pub const RED_FORM_WINDOW_MS: u64 = 72 * 3600 * 1000;

/// A red-letter confirmation form's state.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum FormState {
    /// The buyer had neither booked nor claimed the invoice: the seller's form issued the
    /// red invoice at once.
    NoConfirmationNeeded,
    /// Started by the seller, waiting for the buyer.
    WaitingForBuyer,
    /// Started by the buyer, waiting for the seller.
    WaitingForSeller,
    /// Confirmed; the red invoice was issued.
    Confirmed,
    /// Rejected by the side it waited for.
    Rejected,
    /// Withdrawn by the side that started it.
    Withdrawn,
    /// Not answered within [`RED_FORM_WINDOW_MS`] of block time.
    Void,
}

impl FormState {
    /// Every state.
    pub const ALL: [FormState; 7] = [
        FormState::NoConfirmationNeeded,
        FormState::WaitingForBuyer,
        FormState::WaitingForSeller,
        FormState::Confirmed,
        FormState::Rejected,
        FormState::Withdrawn,
        FormState::Void,
    ];

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            FormState::NoConfirmationNeeded => "no_confirmation_needed",
            FormState::WaitingForBuyer => "waiting_for_buyer",
            FormState::WaitingForSeller => "waiting_for_seller",
            FormState::Confirmed => "confirmed",
            FormState::Rejected => "rejected",
            FormState::Withdrawn => "withdrawn",
            FormState::Void => "void",
        }
    }

    /// The side a waiting form waits for.
    pub fn waiting_for(self) -> Option<Party> {
        match self {
            FormState::WaitingForBuyer => Some(Party::Buyer),
            FormState::WaitingForSeller => Some(Party::Seller),
            _ => None,
        }
    }
}

/// The operator credits the merchant's fee balance.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct FeeDeposited {
    /// Unique per chain.
    pub deposit_id: String,
    /// Positive.
    pub amount: Fen,
}

/// A merchant's invoicing policy: in genesis, then replaced by operator events.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MerchantPolicy {
    /// Invoice types the merchant may issue (sorted, distinct).
    pub permitted_types: Vec<InvoiceType>,
    /// Largest total (tax included) of one invoice.
    pub max_invoice_total: Fen,
    /// The rates and flags the merchant may invoice at, each with the days it is in
    /// force (canonical order: `tax::canonical_rate_rules`).
    pub rates: Vec<RateRule>,
}

/// What a client key may sign.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Permissions {
    /// Payment events (record, refund, reverse).
    pub payments: bool,
    /// Invoice events (request, red-letter).
    pub invoices: bool,
}

/// The chain owner authorises a client key.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ClientKeyAuthorized {
    /// The key.
    pub key: PublicKey,
    /// A name for people ("POS 3, Nanjing Rd store").
    pub label: String,
    /// What it may sign.
    pub permissions: Permissions,
}

/// The chain owner revokes a client key.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ClientKeyRevoked {
    /// The key.
    pub key: PublicKey,
}

/// An event written by the chain owner while executing a block, re-derived by every
/// validator. It is not signed on its own: the owner's header signature covers it
/// through the block's events root.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Derived {
    /// The input event whose execution produced it.
    pub cause: EventId,
    /// What happened.
    pub kind: DerivedKind,
}

impl DerivedKind {
    /// The invoices this derived event changes or answers about (at most two: a red
    /// invoice and its original, a corrected invoice and the one it replaces).
    pub fn invoices(&self) -> Vec<InvoiceNumber> {
        match self {
            DerivedKind::InvoiceIssued(i) => std::iter::once(i.number).chain(i.replaces).collect(),
            DerivedKind::InvoiceReversed(r) => vec![r.original, r.red_number],
            DerivedKind::ClaimRecorded(c) => vec![c.invoice_number],
            DerivedKind::ClaimRefused(c) => vec![c.invoice_number],
            DerivedKind::ClaimUnlocked(c) | DerivedKind::ClaimClosed(c) => vec![c.invoice_number],
            DerivedKind::BookingRecorded(b) => vec![b.invoice_number],
            DerivedKind::RedFormChanged(f) => vec![f.form.invoice_number],
            DerivedKind::RedFormRefused(f) => vec![f.invoice_number],
            DerivedKind::InvoiceFailed(_) => vec![],
        }
    }
}

impl Derived {
    /// `H_derived(canonical(self))`.
    pub fn id(&self) -> EventId {
        EventId(hash(Domain::DerivedEvent, &codec::to_bytes(self)))
    }
}

/// The derived event kinds.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum DerivedKind {
    /// An invoice was issued.
    InvoiceIssued(InvoiceIssued),
    /// An invoice (or red-letter) request failed.
    InvoiceFailed(InvoiceFailed),
    /// An invoice was (partly) reversed by a red-letter invoice.
    InvoiceReversed(InvoiceReversed),
    /// A reimbursement claim was recorded.
    ClaimRecorded(ClaimRecorded),
    /// A reimbursement claim was refused.
    ClaimRefused(ClaimRefused),
    /// A reimbursement lock was released by its holder.
    ClaimUnlocked(ClaimChanged),
    /// A reimbursement claim was closed (reimbursed): final.
    ClaimClosed(ClaimChanged),
    /// The buyer's booking status was recorded.
    BookingRecorded(BookingRecorded),
    /// A red-letter confirmation form was started or changed state.
    RedFormChanged(RedFormChanged),
    /// A form action was refused.
    RedFormRefused(RedFormRefused),
}

/// A line as issued, with its computed amounts.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct IssuedLine {
    /// The requested line.
    pub item: LineItem,
    /// The short name (简称) of the line's classification code when it was issued.
    pub short_name: String,
    /// `round_half_up(quantity * unit_price / 1000)`.
    pub net: Fen,
    /// `round_half_up(net * rate / 10000)`.
    pub tax: Fen,
}

/// How much of an invoice's total is drawn from one payment.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Allocation {
    /// The payment.
    pub payment_id: String,
    /// The amount of the invoice total covered by it.
    pub amount: Fen,
}

/// An invoice was issued.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InvoiceIssued {
    /// The request it answers.
    pub request_id: String,
    /// Its number.
    pub number: InvoiceNumber,
    /// Its check code.
    pub check_code: CheckCode,
    /// Its type.
    pub invoice_type: InvoiceType,
    /// The buyer.
    pub buyer: Buyer,
    /// Lines with amounts.
    pub lines: Vec<IssuedLine>,
    /// Sum of line nets.
    pub net: Fen,
    /// Sum of line taxes.
    pub tax: Fen,
    /// `net + tax`.
    pub total: Fen,
    /// The fee deducted from the merchant's balance.
    pub fee: Fen,
    /// How the total is drawn from the payments.
    pub allocations: Vec<Allocation>,
    /// The block time of issue.
    pub issued_at: Timestamp,
    /// The reversed invoice this one replaces, if any (from the request).
    pub replaces: Option<InvoiceNumber>,
}

/// A failure reason code. The catalogue (remedy text, retryable flag) lives in
/// `fapiao-domain`; the ledger records the code and the detail.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum FailureReason {
    /// No buyer name.
    BuyerNameMissing,
    /// The buyer tax id is not a valid unified social credit code.
    BuyerTaxIdInvalid,
    /// A special VAT invoice needs the buyer's tax id.
    BuyerTaxIdRequired,
    /// No lines.
    NoLines,
    /// A line's rate or flag is not in the merchant's policy, or a special VAT
    /// invoice carries an exempt line.
    TaxRateNotAllowed,
    /// A line's quantity is zero or negative.
    LineQuantityNotPositive,
    /// A line's unit price is zero or negative.
    LinePriceNotPositive,
    /// No payments referenced, or one referenced twice.
    PaymentsInvalid,
    /// A referenced payment is not on this chain.
    PaymentNotFound,
    /// A referenced payment was reversed.
    PaymentVoided,
    /// A referenced payment has nothing left to invoice.
    PaymentFullyInvoiced,
    /// The total is above what the payments can still cover.
    TotalAboveInvoiceable,
    /// The merchant's policy does not permit this invoice type.
    InvoiceTypeNotPermitted,
    /// The total is above the merchant's per-invoice limit.
    TotalAboveMerchantLimit,
    /// The fee balance is below the per-invoice fee.
    FeeBalanceTooLow,
    /// `retry_of` names a request that does not exist or did not fail.
    RetryOfInvalid,
    /// A line's amounts overflow.
    AmountOverflow,
    /// Red-letter: no such invoice on this chain.
    InvoiceNotFound,
    /// Red-letter: the invoice is already fully reversed.
    InvoiceAlreadyReversed,
    /// Red-letter: the partial lines exceed what is left, or use a rate not on the
    /// original.
    RedLetterExceedsRemaining,
    /// `replaces` names no reversed invoice of this chain, one already replaced, or one
    /// that did not draw on the listed payments.
    ReplacesInvalid,
    /// A listed payment is already drawn on by the most invoices one payment may carry.
    PaymentInvoicesLimit,
    /// Red-letter: the invoice already has the most red-letter invoices one may have.
    RedLettersLimit,
    /// Red-letter: a confirmation form on the invoice is still waiting for an answer.
    RedFormOpen,
    /// Red-letter: the confirmation form this request opened was rejected, withdrawn or
    /// left unanswered for 72 hours.
    RedFormNotConfirmed,
    /// Red-letter: a partial line names no line of the original invoice, or breaks the
    /// original's line order (each names, by description and rate, a later line than the
    /// one before it that still has something left).
    RedLetterLineUnknown,
    /// The invoice's total is more than is left of the month's invoicing quota.
    QuotaExceeded,
    /// The merchant is under quota and has no valid quota for the block's month (not
    /// granted or re-validated yet).
    QuotaExpired,
    /// The month's quota is suspended by the tax office.
    QuotaSuspended,
    /// A line's tax classification code is malformed or not in the consortium's table.
    TaxCodeUnknown,
    /// The merchant's policy has the line's rate, but not in force on the issue date.
    TaxRateNotInForce,
}

impl FailureReason {
    /// Every reason, in canonical (variant index) order. The `match` in
    /// [`FailureReason::index`] has no wildcard, so a new variant does not compile until
    /// it is given an index; a test checks that this list holds every index once.
    pub const ALL: [FailureReason; 31] = [
        FailureReason::BuyerNameMissing,
        FailureReason::BuyerTaxIdInvalid,
        FailureReason::BuyerTaxIdRequired,
        FailureReason::NoLines,
        FailureReason::TaxRateNotAllowed,
        FailureReason::LineQuantityNotPositive,
        FailureReason::LinePriceNotPositive,
        FailureReason::PaymentsInvalid,
        FailureReason::PaymentNotFound,
        FailureReason::PaymentVoided,
        FailureReason::PaymentFullyInvoiced,
        FailureReason::TotalAboveInvoiceable,
        FailureReason::InvoiceTypeNotPermitted,
        FailureReason::TotalAboveMerchantLimit,
        FailureReason::FeeBalanceTooLow,
        FailureReason::RetryOfInvalid,
        FailureReason::AmountOverflow,
        FailureReason::InvoiceNotFound,
        FailureReason::InvoiceAlreadyReversed,
        FailureReason::RedLetterExceedsRemaining,
        FailureReason::ReplacesInvalid,
        FailureReason::PaymentInvoicesLimit,
        FailureReason::RedLettersLimit,
        FailureReason::RedFormOpen,
        FailureReason::RedFormNotConfirmed,
        FailureReason::RedLetterLineUnknown,
        FailureReason::QuotaExceeded,
        FailureReason::QuotaExpired,
        FailureReason::QuotaSuspended,
        FailureReason::TaxCodeUnknown,
        FailureReason::TaxRateNotInForce,
    ];

    /// The variant index: the number the canonical encoding writes for it.
    pub fn index(self) -> u32 {
        match self {
            FailureReason::BuyerNameMissing => 0,
            FailureReason::BuyerTaxIdInvalid => 1,
            FailureReason::BuyerTaxIdRequired => 2,
            FailureReason::NoLines => 3,
            FailureReason::TaxRateNotAllowed => 4,
            FailureReason::LineQuantityNotPositive => 5,
            FailureReason::LinePriceNotPositive => 6,
            FailureReason::PaymentsInvalid => 7,
            FailureReason::PaymentNotFound => 8,
            FailureReason::PaymentVoided => 9,
            FailureReason::PaymentFullyInvoiced => 10,
            FailureReason::TotalAboveInvoiceable => 11,
            FailureReason::InvoiceTypeNotPermitted => 12,
            FailureReason::TotalAboveMerchantLimit => 13,
            FailureReason::FeeBalanceTooLow => 14,
            FailureReason::RetryOfInvalid => 15,
            FailureReason::AmountOverflow => 16,
            FailureReason::InvoiceNotFound => 17,
            FailureReason::InvoiceAlreadyReversed => 18,
            FailureReason::RedLetterExceedsRemaining => 19,
            FailureReason::ReplacesInvalid => 20,
            FailureReason::PaymentInvoicesLimit => 21,
            FailureReason::RedLettersLimit => 22,
            FailureReason::RedFormOpen => 23,
            FailureReason::RedFormNotConfirmed => 24,
            FailureReason::RedLetterLineUnknown => 25,
            FailureReason::QuotaExceeded => 26,
            FailureReason::QuotaExpired => 27,
            FailureReason::QuotaSuspended => 28,
            FailureReason::TaxCodeUnknown => 29,
            FailureReason::TaxRateNotInForce => 30,
        }
    }
}

/// An invoice or red-letter request failed. The payment record is untouched.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InvoiceFailed {
    /// The failed request.
    pub request_id: String,
    /// Why.
    pub reason: FailureReason,
    /// The request field at fault (`buyer.tax_id`, `lines[2].tax_rate`, ...).
    pub field: String,
    /// The specifics, for people.
    pub detail: String,
}

/// An invoice was reversed, in full or in part, by a red-letter invoice.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InvoiceReversed {
    /// The red-letter request.
    pub request_id: String,
    /// The invoice reversed.
    pub original: InvoiceNumber,
    /// The red-letter invoice's number.
    pub red_number: InvoiceNumber,
    /// The red-letter invoice's check code.
    pub red_check_code: CheckCode,
    /// Why.
    pub reason: RedLetterReason,
    /// Reversed lines with their (positive) amounts.
    pub lines: Vec<IssuedLine>,
    /// Net reversed.
    pub net: Fen,
    /// Tax reversed.
    pub tax: Fen,
    /// Total reversed.
    pub total: Fen,
    /// Whether the original is now fully reversed.
    pub fully_reversed: bool,
    /// How the reversed total returns to the payments.
    pub allocations: Vec<Allocation>,
    /// The block time.
    pub reversed_at: Timestamp,
}

/// A reimbursement claim was recorded.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ClaimRecorded {
    /// The invoice.
    pub invoice_number: InvoiceNumber,
    /// The claiming member.
    pub claimant: MemberCode,
    /// Their reference.
    pub claim_ref: String,
    /// The block time.
    pub claimed_at: Timestamp,
}

/// Why a claim was refused.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ClaimRefusal {
    /// Already claimed, by this member at this time.
    AlreadyClaimed {
        /// The first claimant.
        claimant: MemberCode,
        /// When.
        claimed_at: Timestamp,
    },
    /// The invoice is fully reversed.
    Reversed,
    /// No such invoice, or the check code is wrong, or (for a booking) the member is not
    /// the invoice's buyer (deliberately indistinguishable).
    NotFound,
    /// The invoice's claim was closed (reimbursed) at this time.
    Closed {
        /// When.
        closed_at: Timestamp,
    },
    /// Unlock or close of an invoice that is not locked.
    NotLocked,
    /// Unlock or close by a member, or with a reference, other than the lock's.
    NotLockHolder,
}

/// A reimbursement claim was refused.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ClaimRefused {
    /// The invoice named in the claim.
    pub invoice_number: InvoiceNumber,
    /// The member that asked.
    pub claimant: MemberCode,
    /// Why.
    pub refusal: ClaimRefusal,
}

/// A lock holder's unlock or close.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ClaimChanged {
    /// The invoice.
    pub invoice_number: InvoiceNumber,
    /// The lock holder.
    pub claimant: MemberCode,
    /// Its reference.
    pub claim_ref: String,
    /// The block time.
    pub at: Timestamp,
}

/// A booking status was recorded.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BookingRecorded {
    /// The invoice.
    pub invoice_number: InvoiceNumber,
    /// The buyer member.
    pub buyer: MemberCode,
    /// The status.
    pub status: BookingStatus,
    /// The block time.
    pub at: Timestamp,
}

/// A form was started or changed state.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RedFormChanged {
    /// The form.
    pub form: RedFormRef,
    /// Its new state.
    pub state: FormState,
    /// The block time.
    pub at: Timestamp,
}

/// Why a form action was refused.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum RedFormRefusal {
    /// No such invoice or form, or the signer is not a side of it (indistinguishable).
    NotFound,
    /// The form no longer waits: it is in this state.
    NotWaiting(FormState),
    /// The form waits for the other side (an answer), or was started by the other side
    /// (a withdrawal).
    WrongSide,
    /// The reversal the form asks for cannot be made (the same reasons as a red-letter
    /// request's failure).
    Failed {
        /// Why.
        reason: FailureReason,
        /// Specifics.
        detail: String,
    },
}

/// A form action was refused; nothing changed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RedFormRefused {
    /// The invoice.
    pub invoice_number: InvoiceNumber,
    /// The form, when the action named one.
    pub form: Option<u32>,
    /// Why.
    pub refusal: RedFormRefusal,
}

/// One entry of a block: an input event, or an event derived from executing it.
/// Derived entries follow the input that caused them.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Entry {
    /// A signed input event.
    Event(Event),
    /// A derived event.
    Derived(Derived),
}

impl Entry {
    /// The entry's id: the event id, or the derived event's id.
    pub fn id(&self) -> EventId {
        match self {
            Entry::Event(e) => e.id(),
            Entry::Derived(d) => d.id(),
        }
    }

    /// The RFC 6962 leaf hash of the entry's canonical bytes.
    pub fn leaf_hash(&self) -> Hash32 {
        crate::merkle::leaf_hash(&codec::to_bytes(self))
    }
}
