//! One chain's state as typed key-value records: the keys and values the state tree
//! commits to (see `docs/FORMAT.md`). They live in core so that a verifier can read a
//! proven state entry with this crate alone; the rules that write them are in
//! `fapiao-domain`.

use crate::event::FailureReason;
use crate::event::{
    Allocation, BookingStatus, FormState, InvoiceIssued, InvoiceRequested, InvoiceReversed, MerchantPolicy, Party,
    PaymentRecorded, Permissions, RedLetterReason, RedLetterRequested, RedLetterScope, RED_FORM_WINDOW_MS,
};
use crate::sig::Cores;
use crate::smt::{self, Node, NodeKey, NodeStore, TreeError, TreeUpdate};
use crate::{codec, EventId, Fen, InvoiceNumber, MemberCode, PublicKey, TaxRate, Timestamp};
use serde::{Deserialize, Serialize};

/// A state key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum StateKey {
    /// Fee balance, policy, next invoice sequence.
    Meta,
    /// A payment, by payment id. Written only by payment events.
    Payment(String),
    /// How much of a payment is invoiced, by payment id. Written only by invoice events.
    PaymentInvoicing(String),
    /// A refund, by refund id (for uniqueness).
    Refund(String),
    /// An invoice or red-letter request, by request id.
    Request(String),
    /// An invoice (blue or red), by number.
    Invoice(InvoiceNumber),
    /// A fee deposit, by deposit id (for uniqueness).
    Deposit(String),
    /// An authorised (or revoked) client key.
    ClientKey(PublicKey),
    /// Invoice requests that failed only for the fee balance, waiting for a deposit.
    FeeBlocked,
    /// A red-letter confirmation form, by invoice and form number.
    RedForm(InvoiceNumber, u32),
    /// The merchant's invoicing quota for the current month (absent: not under quota).
    Quota,
    /// Invoice requests that failed only for the quota, waiting for a grant.
    QuotaBlocked,
    /// The quota of a month that has ended, by `YYYYMM`, kept for reconciliation.
    QuotaMonth(u32),
    /// On the admin chain only: the consortium's configuration as of the newest change
    /// (absent: genesis's, epoch 0).
    Config,
}

impl StateKey {
    /// Canonical bytes (what the state tree is keyed by).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::to_bytes(self)
    }

    /// The bytes every key of this variant starts with (the canonical variant tag, a
    /// fixed-width `u32`), whatever its fields: the prefix that scans one kind of record.
    pub fn variant_prefix(&self) -> Vec<u8> {
        let mut b = self.to_bytes();
        b.truncate(4);
        b
    }
}

/// A state value; the variant always matches the key's variant.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum StateValue {
    /// For [`StateKey::Meta`].
    Meta(MerchantMeta),
    /// For [`StateKey::Payment`].
    Payment(PaymentRecord),
    /// For [`StateKey::PaymentInvoicing`].
    PaymentInvoicing(PaymentInvoicing),
    /// For [`StateKey::Refund`].
    Refund(RefundRecord),
    /// For [`StateKey::Request`].
    Request(RequestRecord),
    /// For [`StateKey::Invoice`].
    Invoice(InvoiceRecord),
    /// For [`StateKey::Deposit`].
    Deposit(DepositRecord),
    /// For [`StateKey::ClientKey`].
    ClientKey(ClientKeyRecord),
    /// For [`StateKey::FeeBlocked`].
    FeeBlocked(FeeBlockedQueue),
    /// For [`StateKey::RedForm`].
    RedForm(RedForm),
    /// For [`StateKey::Quota`].
    Quota(QuotaRecord),
    /// For [`StateKey::QuotaBlocked`].
    QuotaBlocked(FeeBlockedQueue),
    /// For [`StateKey::QuotaMonth`].
    QuotaMonth(QuotaRecord),
    /// For [`StateKey::Config`].
    Config(crate::config::Config),
}

impl StateValue {
    /// Canonical bytes (what the state tree commits to).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::to_bytes(self)
    }

    /// Whether this value's variant is the one `key`'s variant holds.
    pub fn matches(&self, key: &StateKey) -> bool {
        matches!(
            (key, self),
            (StateKey::Meta, StateValue::Meta(_))
                | (StateKey::Payment(_), StateValue::Payment(_))
                | (StateKey::PaymentInvoicing(_), StateValue::PaymentInvoicing(_))
                | (StateKey::Refund(_), StateValue::Refund(_))
                | (StateKey::Request(_), StateValue::Request(_))
                | (StateKey::Invoice(_), StateValue::Invoice(_))
                | (StateKey::Deposit(_), StateValue::Deposit(_))
                | (StateKey::ClientKey(_), StateValue::ClientKey(_))
                | (StateKey::FeeBlocked, StateValue::FeeBlocked(_))
                | (StateKey::RedForm(..), StateValue::RedForm(_))
                | (StateKey::Quota, StateValue::Quota(_))
                | (StateKey::QuotaBlocked, StateValue::QuotaBlocked(_))
                | (StateKey::QuotaMonth(_), StateValue::QuotaMonth(_))
                | (StateKey::Config, StateValue::Config(_))
        )
    }
}

/// Merchant-wide values.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MerchantMeta {
    /// What is left to pay invoice fees.
    pub fee_balance: Fen,
    /// The policy in force.
    pub policy: MerchantPolicy,
    /// The next invoice sequence number (starts at 1; blue and red share it).
    pub next_sequence: u64,
}

/// A recorded payment and what happened to it as a payment.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// The event as recorded.
    pub recorded: PaymentRecorded,
    /// Its event id.
    pub event: EventId,
    /// Block time when it was recorded.
    pub recorded_at: Timestamp,
    /// Sum of refunds.
    pub refunded: Fen,
    /// Refund ids, in order.
    pub refund_ids: Vec<String>,
    /// Set when the payment was voided as wrongly entered.
    pub voided: Option<PaymentVoid>,
}

impl PaymentRecord {
    /// `amount - refunded`: what the payer is still out of pocket. `None` only for a
    /// record no execution writes (amounts past the bounds), which callers treat as corrupt.
    pub fn net_paid(&self) -> Option<Fen> {
        self.recorded.amount.checked_sub(self.refunded)
    }

    /// `net_paid - invoiced`: what a new invoice may still draw on this payment. Below
    /// zero when a refund came after invoicing (an invoice must then be red-lettered);
    /// `None` only for a corrupt record, as for [`PaymentRecord::net_paid`].
    pub fn left_to_invoice(&self, invoicing: &PaymentInvoicing) -> Option<Fen> {
        self.net_paid()?.checked_sub(invoicing.invoiced)
    }
}

/// A payment's reversal.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PaymentVoid {
    /// The reversing event.
    pub event: EventId,
    /// Block time.
    pub at: Timestamp,
    /// Free text.
    pub reason: String,
}

/// How much of a payment is covered by issued, unreversed invoices.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, Default)]
pub struct PaymentInvoicing {
    /// Issued minus reversed, drawn from this payment.
    pub invoiced: Fen,
    /// Invoices that drew on this payment, in issue order.
    pub invoices: Vec<InvoiceNumber>,
}

/// A refund (kept for refund id uniqueness and audit).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RefundRecord {
    /// The payment refunded.
    pub payment_id: String,
    /// Amount.
    pub amount: Fen,
    /// The event.
    pub event: EventId,
}

/// A deposit (kept for deposit id uniqueness and audit).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DepositRecord {
    /// Amount credited.
    pub amount: Fen,
    /// The event.
    pub event: EventId,
}

/// What a request asked for.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum RequestBody {
    /// An invoice.
    Invoice(InvoiceRequested),
    /// A red-letter reversal.
    RedLetter(RedLetterRequested),
}

/// How a request ended.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum RequestOutcome {
    /// An invoice was issued.
    Issued(InvoiceNumber),
    /// A red-letter invoice was issued.
    Reversed(InvoiceNumber),
    /// It failed.
    Failed {
        /// Why.
        reason: FailureReason,
        /// The field at fault.
        field: String,
        /// Specifics.
        detail: String,
    },
    /// The invoice is booked or claimed: the request opened this confirmation form
    /// (numbered on the invoice) and waits for the buyer.
    AwaitingConfirmation(u32),
}

/// An invoice or red-letter request and its outcome.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The request event.
    pub event: EventId,
    /// Block time.
    pub requested_at: Timestamp,
    /// What was asked.
    pub body: RequestBody,
    /// What happened.
    pub outcome: RequestOutcome,
    /// The later request that retried this one, if any.
    pub retried_by: Option<String>,
    /// Set when the request first failed for the fee balance and a fee deposit later
    /// issued it automatically.
    pub auto_reissue: Option<AutoReissue>,
}

/// The event that issued a blocked request automatically.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AutoReissue {
    /// What made room.
    pub trigger: ReissueTrigger,
    /// That event (the derived issue sits right after it).
    pub event: EventId,
    /// Block time.
    pub at: Timestamp,
}

/// What made room for a blocked request.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ReissueTrigger {
    /// A fee deposit, by deposit id, for a request blocked by the fee balance.
    Deposit(String),
    /// A quota grant, resumption or re-validation for the month `YYYYMM`, for a request
    /// blocked by the quota.
    Quota(u32),
}

/// A merchant's invoicing quota (授信额度) for one month, granted by a tax office.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct QuotaRecord {
    /// The month, `YYYYMM` in UTC+8. A block of a later month finds it expired.
    pub month: u32,
    /// What may be invoiced in the month, tax included.
    pub granted: Fen,
    /// What blue invoices used in the month, less what red invoices gave back.
    pub used: Fen,
    /// Suspended by the tax office.
    pub suspended: bool,
    /// The tax office member that made the last change.
    pub by: MemberCode,
    /// Block time of the last change.
    pub changed_at: Timestamp,
}

impl QuotaRecord {
    /// What is left of the grant.
    pub fn left(&self) -> Fen {
        self.granted
            .checked_sub(self.used)
            .filter(|l| !l.is_negative())
            .unwrap_or(Fen::ZERO)
    }
}

/// Invoice requests that failed only because the fee balance was below the fee, in the
/// order they failed. A fee deposit re-runs them from the front (FORMAT.md §10).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, Default)]
pub struct FeeBlockedQueue {
    /// Request ids.
    pub requests: Vec<String>,
}

/// Tax-exclusive and tax amounts for one rate.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RateAmounts {
    /// The rate.
    pub rate: TaxRate,
    /// Net.
    pub net: Fen,
    /// Tax.
    pub tax: Fen,
}

/// A claim on an invoice.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ClaimInfo {
    /// The claimant member.
    pub claimant: MemberCode,
    /// Their reference.
    pub claim_ref: String,
    /// Block time.
    pub claimed_at: Timestamp,
    /// The claim event.
    pub event: EventId,
    /// Set when the claimant closed the claim (reimbursed): final.
    pub closed_at: Option<Timestamp>,
}

/// The buyer's booking status of an invoice.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Booking {
    /// The status.
    pub status: BookingStatus,
    /// The buyer member that recorded it.
    pub buyer: MemberCode,
    /// Block time.
    pub at: Timestamp,
}

/// A red-letter confirmation form (红字确认单) as a blue invoice lists it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct FormSummary {
    /// Its number on the invoice (from 1).
    pub form: u32,
    /// Who started it.
    pub initiator: Party,
    /// Its state as last written (a waiting form is void once its deadline has passed in
    /// block time: [`FormSummary::state_at`]).
    pub state: FormState,
    /// Block time it was started.
    pub opened_at: Timestamp,
    /// The red invoice it issued.
    pub red_number: Option<InvoiceNumber>,
}

impl FormSummary {
    /// The form's state at block time `t`: a form still waiting at its deadline is void.
    pub fn state_at(&self, t: Timestamp) -> FormState {
        void_after(self.state, self.opened_at, t)
    }
}

fn void_after(state: FormState, opened_at: Timestamp, t: Timestamp) -> FormState {
    if state.waiting_for().is_some() && t.0 >= opened_at.0.saturating_add(RED_FORM_WINDOW_MS) {
        FormState::Void
    } else {
        state
    }
}

/// A red-letter confirmation form in full.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RedForm {
    /// Who started it.
    pub initiator: Party,
    /// The member on the buyer's side that started it (a buyer's form).
    pub buyer: Option<MemberCode>,
    /// Why.
    pub reason: RedLetterReason,
    /// How much.
    pub scope: RedLetterScope,
    /// The seller's red-letter request id, or `{invoice}-F{form}` for a buyer's form:
    /// the red invoice answers it.
    pub request_id: String,
    /// The event that started it.
    pub event: EventId,
    /// Block time it was started.
    pub opened_at: Timestamp,
    /// Its state as last written (see [`RedForm::state_at`]).
    pub state: FormState,
    /// Block time of the answer, withdrawal or voiding.
    pub decided_at: Option<Timestamp>,
    /// The red invoice it issued.
    pub red_number: Option<InvoiceNumber>,
}

impl RedForm {
    /// The form's state at block time `t` (see [`FormSummary::state_at`]).
    pub fn state_at(&self, t: Timestamp) -> FormState {
        void_after(self.state, self.opened_at, t)
    }

    /// Block time after which an unanswered form is void.
    pub fn deadline(&self) -> Timestamp {
        Timestamp(self.opened_at.0.saturating_add(RED_FORM_WINDOW_MS))
    }
}

/// An issued (blue) invoice and its current status.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BlueInvoice {
    /// The issue, as derived.
    pub issued: InvoiceIssued,
    /// Per rate, what is left (issued minus reversed).
    pub remaining: Vec<RateAmounts>,
    /// Per payment, how much of the remaining total it still covers (sums to
    /// [`BlueInvoice::remaining_total`]).
    pub standing: Vec<Allocation>,
    /// Red-letter invoices against it, in order.
    pub red_letters: Vec<InvoiceNumber>,
    /// The reimbursement claim, if any.
    pub claim: Option<ClaimInfo>,
    /// The corrected invoice that replaced this one after its red-letter reversal.
    pub replaced_by: Option<InvoiceNumber>,
    /// The buyer's booking status, once recorded.
    pub booking: Option<Booking>,
    /// Red-letter confirmation forms, in order.
    pub forms: Vec<FormSummary>,
}

/// Where a blue invoice stands against its red-letter invoices: the one status the
/// proof verifier, the API, replay and the reprint all read ([`BlueInvoice::status`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum InvoiceStatus {
    /// Issued and standing in full.
    Issued,
    /// Red-lettered in part: some of it still stands.
    PartiallyReversed,
    /// Red-lettered in full: nothing of it stands.
    Reversed,
}

impl InvoiceStatus {
    /// The stable name, as the API and reports print it.
    pub fn name(self) -> &'static str {
        match self {
            InvoiceStatus::Issued => "issued",
            InvoiceStatus::PartiallyReversed => "partially_reversed",
            InvoiceStatus::Reversed => "reversed",
        }
    }
}

impl BlueInvoice {
    /// Its status: reversed when every remaining amount is zero, partially reversed when
    /// it has red-letter invoices but something still stands, issued otherwise.
    pub fn status(&self) -> InvoiceStatus {
        if self.red_letters.is_empty() {
            InvoiceStatus::Issued
        } else if self.fully_reversed() {
            InvoiceStatus::Reversed
        } else {
            InvoiceStatus::PartiallyReversed
        }
    }

    /// Whether the buyer has booked or claimed it: then the seller cannot reverse it
    /// without the buyer's confirmation.
    pub fn held_by_buyer(&self) -> bool {
        self.claim.is_some() || self.booking.as_ref().is_some_and(|b| b.status.is_booked())
    }

    /// The form still waiting at block time `t`, if any (at most one waits at a time).
    pub fn waiting_form(&self, t: Timestamp) -> Option<&FormSummary> {
        self.forms.iter().find(|f| f.state_at(t).waiting_for().is_some())
    }
}

impl BlueInvoice {
    /// Total still standing (net + tax over every rate).
    /// `None` only for a record no execution writes (amounts past the bounds), which
    /// callers treat as corrupt.
    pub fn remaining_total(&self) -> Option<Fen> {
        Fen::checked_sum(self.remaining.iter().flat_map(|r| [r.net, r.tax]))
    }

    /// Whether nothing is left.
    pub fn fully_reversed(&self) -> bool {
        self.remaining.iter().all(|r| r.net.is_zero() && r.tax.is_zero())
    }
}

/// An invoice record: blue (issued) or red (reversing).
// Records are decoded one at a time and not kept in bulk, so the larger blue variant
// costs nothing worth a box (and the serde shape stays that of FORMAT.md).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum InvoiceRecord {
    /// An issued invoice.
    Blue(BlueInvoice),
    /// A red-letter invoice.
    Red(InvoiceReversed),
}

/// A client key's authorisation.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ClientKeyRecord {
    /// A name for people.
    pub label: String,
    /// What it may sign.
    pub permissions: Permissions,
    /// Block time of authorisation.
    pub authorized_at: Timestamp,
    /// Block time of revocation, if revoked.
    pub revoked_at: Option<Timestamp>,
}

/// Applies one block's state writes to the state tree over `nodes`: the tree nodes that
/// change (`None` = deleted) and the new state root. The one place that maps records to
/// tree paths and leaf values (FORMAT.md §10).
#[allow(clippy::type_complexity)]
pub fn tree_update<S: NodeStore>(
    nodes: &S,
    writes: &std::collections::BTreeMap<StateKey, StateValue>,
) -> Result<(std::collections::BTreeMap<NodeKey, Option<Node>>, crate::Hash32), TreeError<S::Error>> {
    let (changes, root) = tree_update_on(nodes, writes, Cores::One)?;
    Ok((changes.into_iter().collect(), root))
}

/// [`tree_update`], with the leaves (each record's key and canonical bytes, encoded and
/// hashed) computed on `cores` first; then one sorted pass down the tree places them all
/// ([`TreeUpdate::set_sorted`]), hashing each changed node once. The changes come
/// unordered, as the update kept them.
#[allow(clippy::type_complexity)]
pub fn tree_update_on<S: NodeStore>(
    nodes: &S,
    writes: &std::collections::BTreeMap<StateKey, StateValue>,
    cores: Cores,
) -> Result<(smt::NodeMap<Option<Node>>, crate::Hash32), TreeError<S::Error>> {
    let leaf = |(k, v): (&StateKey, &StateValue)| (smt::key_hash(&k.to_bytes()), smt::value_hash(&v.to_bytes()));
    let mut leaves: Vec<(crate::Hash32, crate::Hash32)> = match cores {
        Cores::One => writes.iter().map(leaf).collect(),
        #[cfg(feature = "parallel")]
        Cores::All => {
            use rayon::prelude::*;
            let records: Vec<(&StateKey, &StateValue)> = writes.iter().collect();
            records.par_iter().map(|&r| leaf(r)).collect()
        }
    };
    leaves.sort_unstable_by_key(|l| l.0);
    let ops: Vec<(crate::Hash32, Option<crate::Hash32>)> = leaves.into_iter().map(|(k, v)| (k, Some(v))).collect();
    let mut update = TreeUpdate::new(nodes);
    update.set_sorted(&ops)?;
    let root = update.root()?;
    Ok((update.into_map(), root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_prefix_starts_every_key_of_its_variant_and_no_other() {
        let a = StateKey::Payment("P1".into());
        let b = StateKey::Payment("a much longer payment id".into());
        let c = StateKey::Request("P1".into());
        assert_eq!(a.variant_prefix(), b.variant_prefix());
        assert!(b.to_bytes().starts_with(&a.variant_prefix()));
        assert_ne!(a.variant_prefix(), c.variant_prefix());
        assert!(!c.to_bytes().starts_with(&a.variant_prefix()));
        assert!(StateKey::Meta.to_bytes().starts_with(&StateKey::Meta.variant_prefix()));
    }
}
