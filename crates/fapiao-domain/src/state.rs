//! The state records (defined in `fapiao_core::state`), and the overlay execution
//! writes into.
//!
//! The state starts empty: records that genesis implies (fee balance, policy, next
//! invoice sequence) are read through [`Overlay::meta`], which falls back to genesis.

use fapiao_core::event::{Allocation, FailureReason};
pub use fapiao_core::state::*;
use fapiao_core::{Fen, InvoiceNumber, PublicKey};
use std::collections::BTreeMap;

/// Read access to a chain's committed state. The store implements it over RocksDB; tests
/// over a map.
pub trait StateRead {
    /// The read error (IO, corruption) of the implementation.
    type Error;
    /// The value at `key`, if any.
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, Self::Error>;

    /// Whether `error` is damage to the one record read (undecodable, or failing its
    /// integrity check), so only the event that read it is at fault, rather than storage
    /// that cannot be used now. A block builder refuses the event for the first and
    /// stops for the second. Memory never fails, so the default is never.
    fn is_damage(error: &Self::Error) -> bool {
        let _ = error;
        false
    }
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
    /// Bytes of automatic re-issues in this block (committed events) and in the current
    /// event: the block-wide budget of [`crate::execute::AUTO_REISSUE_BYTES_MAX`].
    auto_bytes_block: usize,
    auto_bytes_event: usize,
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
            auto_bytes_block: 0,
            auto_bytes_event: 0,
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
        self.auto_bytes_block += std::mem::take(&mut self.auto_bytes_event);
    }

    /// Drops the current event's writes. [`crate::execute`] does this itself for a
    /// rejected event; a host that catches a panic inside `execute` calls it before
    /// going on with the next event, so nothing of the failed event is kept.
    pub fn discard_event(&mut self) {
        self.event.clear();
        self.auto_bytes_event = 0;
    }

    /// Bytes of automatic re-issues so far in this block, the current event included.
    pub(crate) fn auto_bytes(&self) -> usize {
        self.auto_bytes_block + self.auto_bytes_event
    }

    /// Counts `n` bytes of automatic re-issues against the current event.
    pub(crate) fn add_auto_bytes(&mut self, n: usize) {
        self.auto_bytes_event += n;
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

    /// A red-letter confirmation form, if present.
    pub fn red_form(&self, number: &InvoiceNumber, form: u32) -> Result<Option<RedForm>, ExecError<S::Error>> {
        let key = StateKey::RedForm(*number, form);
        match self.get(&key)? {
            None => Ok(None),
            Some(StateValue::RedForm(v)) => Ok(Some(v)),
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

    /// The queue of requests blocked by `kind` (empty when absent).
    pub fn blocked(&self, kind: Blocked) -> Result<FeeBlockedQueue, ExecError<S::Error>> {
        let key = kind.key();
        match (kind, self.get(&key)?) {
            (_, None) => Ok(FeeBlockedQueue::default()),
            (Blocked::Fee, Some(StateValue::FeeBlocked(q))) | (Blocked::Quota, Some(StateValue::QuotaBlocked(q))) => {
                Ok(q)
            }
            _ => Err(ExecError::Corrupt(key)),
        }
    }

    /// The merchant's quota record: `None` while it is not under quota.
    pub fn quota(&self) -> Result<Option<QuotaRecord>, ExecError<S::Error>> {
        match self.get(&StateKey::Quota)? {
            None => Ok(None),
            Some(StateValue::Quota(q)) => Ok(Some(q)),
            Some(_) => Err(ExecError::Corrupt(StateKey::Quota)),
        }
    }

    /// The admin chain's configuration record (`None`: still genesis's).
    pub fn config(&self) -> Result<Option<fapiao_core::Config>, ExecError<S::Error>> {
        match self.get(&StateKey::Config)? {
            None => Ok(None),
            Some(StateValue::Config(c)) => Ok(Some(c)),
            Some(_) => Err(ExecError::Corrupt(StateKey::Config)),
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

/// What a request can wait for, to be issued automatically when it comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// A fee deposit (FEE_BALANCE_TOO_LOW).
    Fee,
    /// Quota from the tax office (QUOTA_EXCEEDED, QUOTA_EXPIRED, QUOTA_SUSPENDED).
    Quota,
}

impl Blocked {
    /// What a failure for `reason` waits for, if anything.
    pub fn of(reason: FailureReason) -> Option<Blocked> {
        match reason {
            FailureReason::FeeBalanceTooLow => Some(Blocked::Fee),
            FailureReason::QuotaExceeded | FailureReason::QuotaExpired | FailureReason::QuotaSuspended => {
                Some(Blocked::Quota)
            }
            _ => None,
        }
    }

    /// The state key of its queue.
    pub fn key(self) -> StateKey {
        match self {
            Blocked::Fee => StateKey::FeeBlocked,
            Blocked::Quota => StateKey::QuotaBlocked,
        }
    }

    /// The state value of its queue.
    pub fn value(self, q: FeeBlockedQueue) -> StateValue {
        match self {
            Blocked::Fee => StateValue::FeeBlocked(q),
            Blocked::Quota => StateValue::QuotaBlocked(q),
        }
    }

    /// What the failure's detail adds once it waits.
    pub fn waiting(self) -> &'static str {
        match self {
            Blocked::Fee => "it is issued automatically once a fee deposit covers it",
            Blocked::Quota => {
                "it is issued automatically once the tax office grants, resumes or re-validates quota that covers it"
            }
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
