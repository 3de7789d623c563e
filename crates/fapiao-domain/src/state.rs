//! One chain's state as typed key-value records, and the overlay execution writes into.
//!
//! Keys and values have canonical encodings (they are what the state tree commits to;
//! see `docs/FORMAT.md`). The state starts empty: records that genesis implies (fee
//! balance, policy, next invoice sequence) are read through [`Overlay::meta`], which
//! falls back to genesis.

use fapiao_core::event::FailureReason;
use fapiao_core::event::{
    Allocation, InvoiceIssued, InvoiceRequested, InvoiceReversed, MerchantPolicy, PaymentRecorded, Permissions,
    RedLetterRequested,
};
use fapiao_core::{codec, EventId, Fen, InvoiceNumber, MemberCode, PublicKey, TaxRate, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
}

impl StateKey {
    /// Canonical bytes (what the state tree is keyed by).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::to_bytes(self)
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
}

impl StateValue {
    /// Canonical bytes (what the state tree commits to).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::to_bytes(self)
    }

    fn matches(&self, key: &StateKey) -> bool {
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
    /// Set when the payment was reversed as wrongly entered.
    pub reversed: Option<PaymentReversal>,
}

impl PaymentRecord {
    /// `amount - refunded`: what the payer is still out of pocket.
    pub fn net_paid(&self) -> Fen {
        Fen(self.recorded.amount.0 - self.refunded.0)
    }
}

/// A payment's reversal.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PaymentReversal {
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
}

impl BlueInvoice {
    /// Total still standing (net + tax over every rate).
    pub fn remaining_total(&self) -> Fen {
        Fen(self.remaining.iter().map(|r| r.net.0 + r.tax.0).sum())
    }

    /// Whether nothing is left.
    pub fn fully_reversed(&self) -> bool {
        self.remaining.iter().all(|r| r.net.0 == 0 && r.tax.0 == 0)
    }
}

/// An invoice record: blue (issued) or red (reversing).
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

/// Read access to a chain's committed state. The store implements it over RocksDB; tests
/// over a map.
pub trait StateRead {
    /// The read error (IO, corruption) of the implementation.
    type Error;
    /// The value at `key`, if any.
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, Self::Error>;
}

/// An in-memory state (tests, simulation, replay of small chains).
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct MemState(pub BTreeMap<StateKey, StateValue>);

impl StateRead for MemState {
    type Error = std::convert::Infallible;
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, Self::Error> {
        Ok(self.0.get(key).cloned())
    }
}

impl MemState {
    /// Applies writes produced by [`Overlay::into_writes`].
    pub fn apply(&mut self, writes: BTreeMap<StateKey, StateValue>) {
        self.0.extend(writes);
    }
}

/// A read or consistency failure while executing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError<E> {
    /// The state could not be read.
    #[error("state read failed: {0}")]
    Read(E),
    /// A stored value has the wrong type for its key: the state is corrupt.
    #[error("state value at {0:?} has the wrong type: state is corrupt")]
    Corrupt(StateKey),
}

/// Writes of one block's execution over a committed base, with a per-event layer that
/// is discarded when the event is rejected.
pub struct Overlay<'a, S> {
    base: &'a S,
    block: BTreeMap<StateKey, StateValue>,
    event: BTreeMap<StateKey, StateValue>,
}

macro_rules! typed_get {
    ($name:ident, $key:ident, $variant:ident, $ty:ty, $arg:ident : $argty:ty) => {
        /// The typed record, if present.
        pub fn $name(&self, $arg: $argty) -> Result<Option<$ty>, ExecError<S::Error>> {
            let key = StateKey::$key($arg.to_owned());
            match self.get(&key)? {
                None => Ok(None),
                Some(StateValue::$variant(v)) => Ok(Some(v)),
                Some(_) => Err(ExecError::Corrupt(key)),
            }
        }
    };
}

impl<'a, S: StateRead> Overlay<'a, S> {
    /// An empty overlay over `base`.
    pub fn new(base: &'a S) -> Self {
        Overlay {
            base,
            block: BTreeMap::new(),
            event: BTreeMap::new(),
        }
    }

    /// Reads through the event layer, the block layer, then the base.
    pub fn get(&self, key: &StateKey) -> Result<Option<StateValue>, ExecError<S::Error>> {
        if let Some(v) = self.event.get(key).or_else(|| self.block.get(key)) {
            return Ok(Some(v.clone()));
        }
        let v = self.base.get(key).map_err(ExecError::Read)?;
        match v {
            Some(v) if !v.matches(key) => Err(ExecError::Corrupt(key.clone())),
            v => Ok(v),
        }
    }

    /// Writes into the event layer.
    pub(crate) fn put(&mut self, key: StateKey, value: StateValue) {
        assert!(
            value.matches(&key),
            "state write with mismatched key and value: {key:?}"
        );
        self.event.insert(key, value);
    }

    /// Keeps the current event's writes.
    pub(crate) fn commit_event(&mut self) {
        let event = std::mem::take(&mut self.event);
        self.block.extend(event);
    }

    /// Drops the current event's writes.
    pub(crate) fn discard_event(&mut self) {
        self.event.clear();
    }

    /// The block's writes, sorted by key.
    pub fn into_writes(mut self) -> BTreeMap<StateKey, StateValue> {
        self.commit_event();
        self.block
    }

    /// The block's writes so far.
    pub fn writes(&self) -> &BTreeMap<StateKey, StateValue> {
        &self.block
    }

    typed_get!(payment, Payment, Payment, PaymentRecord, id: &str);
    typed_get!(payment_invoicing, PaymentInvoicing, PaymentInvoicing, PaymentInvoicing, id: &str);
    typed_get!(refund, Refund, Refund, RefundRecord, id: &str);
    typed_get!(request, Request, Request, RequestRecord, id: &str);
    typed_get!(deposit, Deposit, Deposit, DepositRecord, id: &str);

    /// The invoice record, if present.
    pub fn invoice(&self, number: &InvoiceNumber) -> Result<Option<InvoiceRecord>, ExecError<S::Error>> {
        let key = StateKey::Invoice(*number);
        match self.get(&key)? {
            None => Ok(None),
            Some(StateValue::Invoice(v)) => Ok(Some(v)),
            Some(_) => Err(ExecError::Corrupt(key)),
        }
    }

    /// The client key record, if present.
    pub fn client_key(&self, key: &PublicKey) -> Result<Option<ClientKeyRecord>, ExecError<S::Error>> {
        let k = StateKey::ClientKey(*key);
        match self.get(&k)? {
            None => Ok(None),
            Some(StateValue::ClientKey(v)) => Ok(Some(v)),
            Some(_) => Err(ExecError::Corrupt(k)),
        }
    }

    /// The merchant meta record, or its genesis default.
    pub fn meta(&self, default: impl FnOnce() -> MerchantMeta) -> Result<MerchantMeta, ExecError<S::Error>> {
        match self.get(&StateKey::Meta)? {
            None => Ok(default()),
            Some(StateValue::Meta(m)) => Ok(m),
            Some(_) => Err(ExecError::Corrupt(StateKey::Meta)),
        }
    }
}

/// Convenience for building allocations.
pub(crate) fn alloc(payment_id: &str, amount: Fen) -> Allocation {
    Allocation {
        payment_id: payment_id.to_owned(),
        amount,
    }
}
