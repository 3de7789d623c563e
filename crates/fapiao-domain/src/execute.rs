//! Deterministic execution of one event against one chain's state.
//!
//! [`execute`] first checks who may write what ([`Rejection`]s: the event must not enter
//! a block, nothing is written), then applies the business rules. Invoice, red-letter
//! and claim outcomes, good or bad, are recorded as derived events; payment events
//! either apply or are rejected. Signatures are checked by the caller (batched) before.
//!
//! Every input is explicit (genesis, block time, state), every collection is ordered,
//! so every validator derives the same events and writes.

use crate::amounts::{self, LineLeft, TakeError};
use crate::bounds::{self, invalid};
use crate::state::{
    alloc, AutoReissue, Blocked, BlueInvoice, ClaimInfo, ClientKeyRecord, DepositRecord, ExecError, InvoiceRecord,
    MerchantMeta, Overlay, PaymentRecord, PaymentReversal, QuotaRecord, RateAmounts, RefundRecord, ReissueTrigger,
    RequestBody, RequestOutcome, RequestRecord, StateKey, StateRead, StateValue,
};
use crate::uscc;
use fapiao_core::event::{
    Allocation, ClaimRecorded, ClaimRefusal, ClaimRefused, ClaimRequested, ClientKeyAuthorized, ClientKeyRevoked,
    FailureReason, FeeDeposited, InvoiceFailed, InvoiceIssued, InvoiceRequested, InvoiceReversed, InvoiceType,
    IssuedLine, LineItem, MerchantPolicy, PaymentRecorded, PaymentRefunded, PaymentReversed, QuotaAction, QuotaChange,
    RedLetterReason, RedLetterRequested, RedLetterScope,
};
use fapiao_core::genesis::Role;
use fapiao_core::hash::{hash, Domain};
use fapiao_core::tax::{self, RateRule, TaxRate};
use fapiao_core::{
    codec, CheckCode, Derived, DerivedKind, Entry, Event, EventId, EventKind, Fen, Genesis, InvoiceNumber, MemberCode,
    NetworkId, PublicKey, Quantity, Timestamp,
};
use std::collections::BTreeMap;

pub use crate::bounds::{
    ID_BYTES_MAX, INVOICES_PER_PAYMENT_MAX, LINES_MAX, PAYMENTS_PER_INVOICE_MAX, RED_LETTERS_PER_INVOICE_MAX,
    REFUNDS_PER_PAYMENT_MAX, TEXT_BYTES_MAX,
};
/// Most requests waiting for a fee deposit on one chain; later fee failures are recorded
/// but not queued for automatic re-issue.
pub const FEE_BLOCKED_MAX: usize = 1000;
/// Encoded bytes of automatic re-issues one block may carry; what is left waits for the
/// next deposit (or a manual retry).
pub const AUTO_REISSUE_BYTES_MAX: usize = 1024 * 1024;

/// The chain being executed and the rules it runs under.
#[derive(Debug, Clone, Copy)]
pub struct ChainContext<'g> {
    genesis: &'g Genesis,
    network: NetworkId,
    chain: MemberCode,
    owner: PublicKey,
}

impl<'g> ChainContext<'g> {
    /// The context of merchant `chain`'s chain, or `None` if it is not a merchant.
    pub fn new(genesis: &'g Genesis, chain: MemberCode) -> Option<Self> {
        let owner = genesis.merchant(chain)?.key;
        Some(ChainContext {
            genesis,
            network: genesis.network_id(),
            chain,
            owner,
        })
    }

    /// The chain.
    pub fn chain(&self) -> MemberCode {
        self.chain
    }

    /// The network id.
    pub fn network(&self) -> NetworkId {
        self.network
    }

    /// The chain owner's key.
    pub fn owner(&self) -> PublicKey {
        self.owner
    }

    /// The genesis.
    pub fn genesis(&self) -> &'g Genesis {
        self.genesis
    }

    /// The merchant meta implied by genesis, before any event changed it.
    pub fn genesis_meta(&self) -> MerchantMeta {
        let m = self.genesis.merchant(self.chain);
        MerchantMeta {
            fee_balance: m.map(|m| m.initial_fee_balance).unwrap_or(Fen::ZERO),
            policy: m.and_then(|m| m.policy.clone()).unwrap_or(MerchantPolicy {
                permitted_types: Vec::new(),
                max_invoice_total: Fen::ZERO,
                rates: Vec::new(),
            }),
            next_sequence: 1,
        }
    }
}

/// The block being built or validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockContext {
    /// Its height.
    pub height: u64,
    /// Its timestamp (the owner's clock; the year goes into invoice numbers).
    pub timestamp: Timestamp,
}

/// Why an event may not enter a block. Nothing is recorded for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Signed for another network.
    #[error("event is for another network")]
    WrongNetwork,
    /// Sent to the wrong chain.
    #[error("event is for chain {found}, this is chain {expected}")]
    WrongChain {
        /// This chain.
        expected: MemberCode,
        /// The event's chain.
        found: MemberCode,
    },
    /// The author may not sign this kind of event on this chain.
    #[error("key {author} is not authorised to sign {kind} on this chain")]
    Unauthorized {
        /// The author.
        author: PublicKey,
        /// The event kind.
        kind: &'static str,
    },
    /// A field is malformed or out of bounds.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The payment id is already used on this chain.
    #[error("payment id {0} is already recorded")]
    DuplicatePaymentId(String),
    /// The refund id is already used.
    #[error("refund id {0} is already recorded")]
    DuplicateRefundId(String),
    /// The request id is already used.
    #[error("request id {0} is already recorded")]
    DuplicateRequestId(String),
    /// The deposit id is already used.
    #[error("deposit id {0} is already recorded")]
    DuplicateDepositId(String),
    /// No such payment.
    #[error("payment {0} is not recorded on this chain")]
    PaymentUnknown(String),
    /// The payment was reversed.
    #[error("payment {0} was reversed")]
    PaymentAlreadyReversed(String),
    /// The refund is larger than what is left.
    #[error("refund exceeds what is left to refund of payment {payment_id} ({refundable})")]
    RefundExceedsRefundable {
        /// The payment.
        payment_id: String,
        /// What can still be refunded.
        refundable: Fen,
    },
    /// The payment is covered by issued, unreversed invoices.
    #[error("payment {payment_id} is covered by issued invoices; red-letter them first")]
    PaymentInvoiced {
        /// The payment.
        payment_id: String,
        /// Invoices still drawing on it.
        invoices: Vec<InvoiceNumber>,
    },
    /// The client key is not (or no longer) authorised.
    #[error("client key {0} is not authorised on this chain")]
    KeyNotAuthorized(PublicKey),
    /// An amount would overflow.
    #[error("{0} would overflow")]
    Overflow(&'static str),
    /// An amount is above the most any amount may be ([`fapiao_core::money::AMOUNT_FEN_MAX`]).
    #[error("{field}: above the most any amount may be ({max} yuan)")]
    AmountAboveMax {
        /// The field.
        field: String,
        /// The bound.
        max: Fen,
    },
    /// A record already holds the most entries of this kind it may hold.
    #[error("{field}: {detail}")]
    LimitReached {
        /// The field.
        field: String,
        /// Which bound, and where it was reached.
        detail: String,
    },
}

impl Rejection {
    /// A stable code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::WrongNetwork => "WRONG_NETWORK",
            Rejection::WrongChain { .. } => "WRONG_CHAIN",
            Rejection::Unauthorized { .. } => "UNAUTHORIZED_KEY",
            Rejection::Invalid { .. } => "INVALID_FIELD",
            Rejection::DuplicatePaymentId(_) => "DUPLICATE_PAYMENT_ID",
            Rejection::DuplicateRefundId(_) => "DUPLICATE_REFUND_ID",
            Rejection::DuplicateRequestId(_) => "DUPLICATE_REQUEST_ID",
            Rejection::DuplicateDepositId(_) => "DUPLICATE_DEPOSIT_ID",
            Rejection::PaymentUnknown(_) => "PAYMENT_UNKNOWN",
            Rejection::PaymentAlreadyReversed(_) => "PAYMENT_ALREADY_REVERSED",
            Rejection::RefundExceedsRefundable { .. } => "REFUND_EXCEEDS_REFUNDABLE",
            Rejection::PaymentInvoiced { .. } => "PAYMENT_INVOICED",
            Rejection::KeyNotAuthorized(_) => "KEY_NOT_AUTHORIZED",
            Rejection::Overflow(_) => "AMOUNT_OVERFLOW",
            Rejection::AmountAboveMax { .. } => "AMOUNT_ABOVE_MAX",
            Rejection::LimitReached { .. } => "LIMIT_REACHED",
        }
    }

    /// The offending field, if one.
    pub fn field(&self) -> Option<String> {
        match self {
            Rejection::WrongNetwork => Some("network".into()),
            Rejection::WrongChain { .. } => Some("chain".into()),
            Rejection::Unauthorized { .. } => Some("author".into()),
            Rejection::Invalid { field, .. } => Some(field.clone()),
            Rejection::DuplicatePaymentId(_) | Rejection::PaymentUnknown(_) | Rejection::PaymentAlreadyReversed(_) => {
                Some("payment_id".into())
            }
            Rejection::PaymentInvoiced { .. } => Some("payment_id".into()),
            Rejection::DuplicateRefundId(_) => Some("refund_id".into()),
            Rejection::DuplicateRequestId(_) => Some("request_id".into()),
            Rejection::DuplicateDepositId(_) => Some("deposit_id".into()),
            Rejection::RefundExceedsRefundable { .. } => Some("amount".into()),
            Rejection::KeyNotAuthorized(_) => Some("key".into()),
            Rejection::Overflow(f) => Some((*f).into()),
            Rejection::AmountAboveMax { field, .. } | Rejection::LimitReached { field, .. } => Some(field.clone()),
        }
    }
}

/// Internal control flow: stop with a rejection or a state error.
enum Stop<E> {
    Reject(Rejection),
    Exec(ExecError<E>),
}

impl<E> From<ExecError<E>> for Stop<E> {
    fn from(e: ExecError<E>) -> Self {
        Stop::Exec(e)
    }
}

impl<E> From<Rejection> for Stop<E> {
    fn from(r: Rejection) -> Self {
        Stop::Reject(r)
    }
}

type Step<T, E> = Result<T, Stop<E>>;

/// Executes one event (whose signature the caller has verified). On `Ok(Ok(derived))`
/// the writes stay in `state`; on `Ok(Err(rejection))` nothing is written.
pub fn execute<S: StateRead>(
    ctx: &ChainContext<'_>,
    block: &BlockContext,
    state: &mut Overlay<'_, S>,
    event: &Event,
) -> Result<Result<Vec<Derived>, Rejection>, ExecError<S::Error>> {
    let id = event.id();
    let mut ex = Exec {
        ctx,
        block,
        state,
        id,
        author: event.body.author,
    };
    match ex.run(event) {
        Ok(derived) => {
            ex.state.commit_event();
            Ok(Ok(derived))
        }
        Err(Stop::Reject(r)) => {
            ex.state.discard_event();
            Ok(Err(r))
        }
        Err(Stop::Exec(e)) => {
            ex.state.discard_event();
            Err(e)
        }
    }
}

/// The result of executing a list of events as one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// Accepted input events, each followed by its derived events.
    pub entries: Vec<Entry>,
    /// Input events that were rejected, by their index in the input, with why.
    pub rejected: Vec<(usize, Rejection)>,
    /// The state writes of the whole block, sorted by key.
    pub writes: BTreeMap<StateKey, StateValue>,
}

/// Executes `events` in order as the block `block` on top of `base`.
pub fn execute_block<S: StateRead>(
    ctx: &ChainContext<'_>,
    block: &BlockContext,
    base: &S,
    events: &[Event],
) -> Result<Executed, ExecError<S::Error>> {
    let mut overlay = Overlay::new(base);
    let mut entries = Vec::with_capacity(events.len() * 2);
    let mut rejected = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match execute(ctx, block, &mut overlay, e)? {
            Ok(derived) => {
                entries.push(Entry::Event(e.clone()));
                entries.extend(derived.into_iter().map(Entry::Derived));
            }
            Err(r) => rejected.push((i, r)),
        }
    }
    Ok(Executed {
        entries,
        rejected,
        writes: overlay.into_writes(),
    })
}

/// A reversal checked against the invoice, not yet written.
struct RedPlan {
    blue: BlueInvoice,
    lines: Vec<IssuedLine>,
    reversing: Vec<RateAmounts>,
    remaining: Vec<RateAmounts>,
}

/// A business failure of an invoice or red-letter request.
struct Failure {
    reason: FailureReason,
    field: String,
    detail: String,
}

fn fail(reason: FailureReason, field: impl Into<String>, detail: impl Into<String>) -> Failure {
    Failure {
        reason,
        field: field.into(),
        detail: detail.into(),
    }
}

/// Who may sign which event on a chain, the one rule admission and execution share:
/// payments by the owner or a client key with the `payments` permission; invoice and
/// red-letter requests by the owner or a client key with `invoices`; claims by a verifier
/// member; fee deposits and policy by the operator member; client keys by the owner. A
/// client key counts only while authorised and not revoked in `state`. For a member's
/// event, the answer names the member.
pub fn authorize<S: StateRead>(
    ctx: &ChainContext<'_>,
    state: &Overlay<'_, S>,
    author: &PublicKey,
    kind: &EventKind,
) -> Result<Result<Option<MemberCode>, Rejection>, ExecError<S::Error>> {
    let name = kind.name();
    let unauthorized = || Rejection::Unauthorized {
        author: *author,
        kind: name,
    };
    let client = |allowed: fn(&fapiao_core::event::Permissions) -> bool| -> Result<Result<Option<MemberCode>, Rejection>, ExecError<S::Error>> {
        if *author == ctx.owner {
            return Ok(Ok(None));
        }
        Ok(match state.client_key(author)? {
            Some(k) if k.revoked_at.is_none() && allowed(&k.permissions) => Ok(None),
            _ => Err(unauthorized()),
        })
    };
    let member = |roles: &[Role]| match ctx.genesis.member_by_key(author) {
        Some(m) if roles.iter().any(|r| m.roles.has(*r)) => Ok(Some(m.code)),
        _ => Err(unauthorized()),
    };
    match kind {
        EventKind::PaymentRecorded(_) | EventKind::PaymentRefunded(_) | EventKind::PaymentReversed(_) => {
            client(|p| p.payments)
        }
        EventKind::InvoiceRequested(_) | EventKind::InvoiceRedLetterRequested(_) => client(|p| p.invoices),
        EventKind::InvoiceClaimRequested(_) => Ok(member(&[Role::Verifier, Role::TaxOffice])),
        EventKind::FeeDeposited(_) | EventKind::MerchantPolicySet(_) => Ok(member(&[Role::Operator])),
        EventKind::QuotaChanged(_) => Ok(member(&[Role::TaxOffice])),
        EventKind::ClientKeyAuthorized(_) | EventKind::ClientKeyRevoked(_) => Ok(if *author == ctx.owner {
            Ok(None)
        } else {
            Err(unauthorized())
        }),
        EventKind::InvoiceClaimUnlocked(_) | EventKind::InvoiceClaimClosed(_) => {
            Ok(member(&[Role::Verifier, Role::TaxOffice]))
        }
        // Any member may speak for a buyer; execution checks that it is this invoice's.
        EventKind::InvoiceBookingSet(_) | EventKind::RedFormStarted(_) => Ok(member(&Role::ALL)),
        // Either side: the seller (owner or invoicing client key, answering `None`) or a
        // member on the buyer's side.
        EventKind::RedFormAnswered(_) | EventKind::RedFormWithdrawn(_) => match client(|p| p.invoices)? {
            Ok(None) => Ok(Ok(None)),
            _ => Ok(member(&Role::ALL)),
        },
    }
}

/// The member that signed an event [`authorize`] admits from members only.
fn member_signer(signer: Option<MemberCode>) -> MemberCode {
    signer.unwrap_or_else(|| unreachable!("authorize admits this kind from members only"))
}

mod buyer;

struct Exec<'c, 'g, 's, 'b, S> {
    ctx: &'c ChainContext<'g>,
    block: &'c BlockContext,
    state: &'s mut Overlay<'b, S>,
    id: EventId,
    author: PublicKey,
}

impl<S: StateRead> Exec<'_, '_, '_, '_, S> {
    /// The derived events of `event`: caused by it, except automatic re-issues, whose
    /// cause is the request they answer.
    fn run(&mut self, event: &Event) -> Step<Vec<Derived>, S::Error> {
        let me = self.id;
        let one = |kind| vec![Derived { cause: me, kind }];
        if event.body.network != self.ctx.network {
            return Err(Rejection::WrongNetwork.into());
        }
        if event.body.chain != self.ctx.chain {
            return Err(Rejection::WrongChain {
                expected: self.ctx.chain,
                found: event.body.chain,
            }
            .into());
        }
        let kind = &event.body.kind;
        // Who may sign comes first (an unauthorised author learns nothing more), then the
        // event's own bounds, then the rules against the state.
        let signer = self.authorize(kind)?;
        bounds::check_event(kind)?;
        match kind {
            EventKind::PaymentRecorded(p) => self.record_payment(p).map(|()| vec![]),
            EventKind::PaymentRefunded(r) => self.refund(r).map(|()| vec![]),
            EventKind::PaymentReversed(r) => self.reverse(r).map(|()| vec![]),
            EventKind::InvoiceRequested(r) => self.request_invoice(r).map(one),
            EventKind::InvoiceRedLetterRequested(r) => self.red_letter(r).map(one),
            EventKind::InvoiceClaimRequested(c) => self.claim(c, member_signer(signer)).map(one),
            EventKind::FeeDeposited(d) => {
                self.deposit(d)?;
                self.reissue_blocked(Blocked::Fee, ReissueTrigger::Deposit(d.deposit_id.clone()))
            }
            EventKind::QuotaChanged(c) => self.change_quota(c, member_signer(signer)),
            EventKind::MerchantPolicySet(p) => self.set_policy(p).map(|()| vec![]),
            EventKind::ClientKeyAuthorized(a) => self.authorize_key(a).map(|()| vec![]),
            EventKind::ClientKeyRevoked(r) => self.revoke_key(r).map(|()| vec![]),
            EventKind::InvoiceClaimUnlocked(a) => self.unlock_claim(a, member_signer(signer)).map(one),
            EventKind::InvoiceClaimClosed(a) => self.close_claim(a, member_signer(signer)).map(one),
            EventKind::InvoiceBookingSet(b) => self.set_booking(b, member_signer(signer)).map(one),
            EventKind::RedFormStarted(f) => self.start_buyer_form(f, member_signer(signer)).map(one),
            EventKind::RedFormAnswered(a) => self.answer_form(a, signer),
            EventKind::RedFormWithdrawn(f) => self.withdraw_form(f, signer).map(one),
        }
    }

    fn authorize(&self, kind: &EventKind) -> Step<Option<MemberCode>, S::Error> {
        Ok(authorize(self.ctx, self.state, &self.author, kind)??)
    }

    // ---- payments --------------------------------------------------------------------

    fn record_payment(&mut self, p: &PaymentRecorded) -> Step<(), S::Error> {
        if self.state.payment(&p.payment_id)?.is_some() {
            return Err(Rejection::DuplicatePaymentId(p.payment_id.clone()).into());
        }
        self.state.put(
            StateKey::Payment(p.payment_id.clone()),
            StateValue::Payment(PaymentRecord {
                recorded: p.clone(),
                event: self.id,
                recorded_at: self.block.timestamp,
                refunded: Fen::ZERO,
                refund_ids: Vec::new(),
                reversed: None,
            }),
        );
        Ok(())
    }

    fn live_payment(&self, payment_id: &str) -> Step<PaymentRecord, S::Error> {
        let p = self
            .state
            .payment(payment_id)?
            .ok_or_else(|| Rejection::PaymentUnknown(payment_id.to_owned()))?;
        if p.reversed.is_some() {
            return Err(Rejection::PaymentAlreadyReversed(payment_id.to_owned()).into());
        }
        Ok(p)
    }

    fn refund(&mut self, r: &PaymentRefunded) -> Step<(), S::Error> {
        if self.state.refund(&r.refund_id)?.is_some() {
            return Err(Rejection::DuplicateRefundId(r.refund_id.clone()).into());
        }
        let mut p = self.live_payment(&r.payment_id)?;
        // A refund is a payment fact: it is recorded even when the payment is invoiced
        // (the payment record never depends on invoicing). Reconciliation then shows
        // the invoice as needing a red-letter reversal.
        let refundable = p
            .net_paid()
            .ok_or_else(|| ExecError::Corrupt(StateKey::Payment(r.payment_id.clone())))?;
        if r.amount > refundable {
            return Err(Rejection::RefundExceedsRefundable {
                payment_id: r.payment_id.clone(),
                refundable,
            }
            .into());
        }
        if p.refund_ids.len() >= REFUNDS_PER_PAYMENT_MAX {
            return Err(Rejection::LimitReached {
                field: "payment_id".into(),
                detail: format!(
                    "payment {} already has {REFUNDS_PER_PAYMENT_MAX} refunds, the most one payment may have",
                    r.payment_id
                ),
            }
            .into());
        }
        // Within the refundable amount, so at most the payment's amount.
        p.refunded = p
            .refunded
            .checked_add(r.amount)
            .ok_or(Rejection::Overflow("refunded"))?;
        p.refund_ids.push(r.refund_id.clone());
        self.state
            .put(StateKey::Payment(r.payment_id.clone()), StateValue::Payment(p));
        self.state.put(
            StateKey::Refund(r.refund_id.clone()),
            StateValue::Refund(RefundRecord {
                payment_id: r.payment_id.clone(),
                amount: r.amount,
                event: self.id,
            }),
        );
        Ok(())
    }

    fn reverse(&mut self, r: &PaymentReversed) -> Step<(), S::Error> {
        let mut p = self.live_payment(&r.payment_id)?;
        if let Some(inv) = self.state.payment_invoicing(&r.payment_id)? {
            if inv.invoiced.is_positive() {
                let mut covering = Vec::new();
                for n in &inv.invoices {
                    if let Some(InvoiceRecord::Blue(b)) = self.state.invoice(n)? {
                        if b.standing
                            .iter()
                            .any(|a| a.payment_id == r.payment_id && a.amount.is_positive())
                        {
                            covering.push(*n);
                        }
                    }
                }
                return Err(Rejection::PaymentInvoiced {
                    payment_id: r.payment_id.clone(),
                    invoices: covering,
                }
                .into());
            }
        }
        p.reversed = Some(PaymentReversal {
            event: self.id,
            at: self.block.timestamp,
            reason: r.reason.clone(),
        });
        self.state
            .put(StateKey::Payment(r.payment_id.clone()), StateValue::Payment(p));
        Ok(())
    }

    // ---- invoices --------------------------------------------------------------------

    fn meta(&self) -> Step<MerchantMeta, S::Error> {
        Ok(self.state.meta(|| self.ctx.genesis_meta())?)
    }

    fn request_invoice(&mut self, r: &InvoiceRequested) -> Step<DerivedKind, S::Error> {
        if self.state.request(&r.request_id)?.is_some() {
            return Err(Rejection::DuplicateRequestId(r.request_id.clone()).into());
        }

        let mut retried = None;
        let mut outcome = match self.check_retry(r)? {
            Err(f) => Err(f),
            Ok(prev) => {
                retried = prev;
                self.validate_and_issue(r, self.id)?
            }
        };
        if let Some(mut prev) = retried {
            if let RequestOutcome::Failed { reason, .. } = prev.1.outcome {
                if let Some(kind) = Blocked::of(reason) {
                    // The retry takes over: the original must not be issued automatically too.
                    let mut queue = self.state.blocked(kind)?;
                    queue.requests.retain(|id| *id != prev.0);
                    self.state.put(kind.key(), kind.value(queue));
                }
            }
            prev.1.retried_by = Some(r.request_id.clone());
            self.state.put(StateKey::Request(prev.0), StateValue::Request(prev.1));
        }
        if let Err(f) = &mut outcome {
            self.enqueue_blocked(&r.request_id, f)?;
        }
        let (record_outcome, derived) = match outcome {
            Ok(issued) => (
                RequestOutcome::Issued(issued.number),
                DerivedKind::InvoiceIssued(issued),
            ),
            Err(f) => (
                RequestOutcome::Failed {
                    reason: f.reason,
                    field: f.field.clone(),
                    detail: f.detail.clone(),
                },
                DerivedKind::InvoiceFailed(InvoiceFailed {
                    request_id: r.request_id.clone(),
                    reason: f.reason,
                    field: f.field,
                    detail: f.detail,
                }),
            ),
        };
        self.state.put(
            StateKey::Request(r.request_id.clone()),
            StateValue::Request(RequestRecord {
                event: self.id,
                requested_at: self.block.timestamp,
                body: RequestBody::Invoice(r.clone()),
                outcome: record_outcome,
                retried_by: None,
                auto_reissue: None,
            }),
        );
        Ok(derived)
    }

    /// `retry_of` must name an earlier failed invoice request not retried yet.
    #[allow(clippy::type_complexity)]
    fn check_retry(&self, r: &InvoiceRequested) -> Step<Result<Option<(String, RequestRecord)>, Failure>, S::Error> {
        let Some(prev_id) = &r.retry_of else {
            return Ok(Ok(None));
        };
        let f = |d: String| Ok(Err(fail(FailureReason::RetryOfInvalid, "retry_of", d)));
        let Some(prev) = self.state.request(prev_id)? else {
            return f(format!("no request {prev_id} on this chain"));
        };
        if !matches!(prev.body, RequestBody::Invoice(_)) {
            return f(format!("{prev_id} is a red-letter request"));
        }
        if !matches!(prev.outcome, RequestOutcome::Failed { .. }) {
            return f(format!("{prev_id} did not fail"));
        }
        if let Some(by) = &prev.retried_by {
            return f(format!("{prev_id} was already retried by {by}"));
        }
        Ok(Ok(Some((prev_id.clone(), prev))))
    }

    /// Checks the lines of an invoice (`issue` holds the merchant's policy and the
    /// invoice type) or of a partial red-letter (`None`: its lines must name the
    /// original's lines, which `amounts::take_lines` checks and which give their short
    /// names, whatever rates are in force today). Per line, in order: quantity, price,
    /// classification code, rate.
    fn validate_lines(
        &self,
        lines: &[LineItem],
        issue: Option<(&MerchantPolicy, InvoiceType)>,
    ) -> Result<amounts::Totals, Failure> {
        if lines.is_empty() {
            return Err(fail(FailureReason::NoLines, "lines", "the request has no lines"));
        }
        for (i, l) in lines.iter().enumerate() {
            if l.quantity.0 <= 0 {
                return Err(fail(
                    FailureReason::LineQuantityNotPositive,
                    format!("lines[{i}].quantity"),
                    format!("quantity is {}", l.quantity),
                ));
            }
            if !l.unit_price.is_positive() {
                return Err(fail(
                    FailureReason::LinePriceNotPositive,
                    format!("lines[{i}].unit_price"),
                    format!("unit price is {}", l.unit_price),
                ));
            }
            if let Some((policy, invoice_type)) = issue {
                self.check_line_tax(i, l, policy, invoice_type)?;
            }
        }
        let genesis = self.ctx.genesis;
        let short_name = |l: &LineItem| {
            genesis
                .classification(&l.tax_code)
                .map(|c| c.short_name.clone())
                .unwrap_or_default()
        };
        amounts::totals(lines, short_name)
            .ok_or_else(|| fail(FailureReason::AmountOverflow, "lines", "line amounts overflow"))
    }

    /// A line's classification code and rate against the consortium's table and the
    /// merchant's rate rules on the block's date (UTC+8).
    fn check_line_tax(
        &self,
        i: usize,
        l: &LineItem,
        policy: &MerchantPolicy,
        invoice_type: InvoiceType,
    ) -> Result<(), Failure> {
        let why = if !tax::code_is_well_formed(&l.tax_code) {
            Some("is not 19 digits starting 1 to 9")
        } else if self.ctx.genesis.classification(&l.tax_code).is_none() {
            Some("is not in the consortium's classification table")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(fail(
                FailureReason::TaxCodeUnknown,
                format!("lines[{i}].tax_code"),
                format!("`{}` {why}", l.tax_code),
            ));
        }
        let field = format!("lines[{i}].tax_rate");
        let rules: Vec<&RateRule> = policy.rates.iter().filter(|r| r.rate == l.tax_rate).collect();
        if rules.is_empty() {
            let list: Vec<String> = policy.rates.iter().map(RateRule::describe).collect();
            return Err(fail(
                FailureReason::TaxRateNotAllowed,
                field,
                format!(
                    "{} is not in this merchant's policy; it has: {}",
                    l.tax_rate,
                    list.join(", ")
                ),
            ));
        }
        let date = self.block.timestamp.utc8_date();
        if !rules.iter().any(|r| r.in_force(date)) {
            let list: Vec<String> = rules.iter().map(|r| r.describe()).collect();
            return Err(fail(
                FailureReason::TaxRateNotInForce,
                field,
                format!(
                    "{} is not in force on {}: {}",
                    l.tax_rate,
                    tax::format_date(date),
                    list.join(", ")
                ),
            ));
        }
        if l.tax_rate == TaxRate::Exempt && invoice_type == InvoiceType::SpecialVat {
            return Err(fail(
                FailureReason::TaxRateNotAllowed,
                field,
                "an exempt (免税) sale cannot go on a special VAT invoice: issue an ordinary invoice",
            ));
        }
        Ok(())
    }

    /// Queues a request that failed for the fee or the quota, to be issued
    /// automatically when room comes; says so (or why not) in the failure's detail.
    fn enqueue_blocked(&mut self, request_id: &str, f: &mut Failure) -> Step<(), S::Error> {
        let Some(kind) = Blocked::of(f.reason) else {
            return Ok(());
        };
        let mut queue = self.state.blocked(kind)?;
        if queue.requests.len() < FEE_BLOCKED_MAX {
            queue.requests.push(request_id.to_owned());
            self.state.put(kind.key(), kind.value(queue));
            f.detail.push_str(&format!("; {}", kind.waiting()));
        } else {
            f.detail.push_str(&format!(
                "; not queued for automatic re-issue ({FEE_BLOCKED_MAX} requests already wait): retry it later"
            ));
        }
        Ok(())
    }

    /// Re-runs the requests blocked by `kind`, oldest first, after `trigger` made room:
    /// each is issued (or fails for a reason that arose meanwhile, and waits in the other
    /// queue if that reason is the other kind of room) until one fails for `kind` again
    /// (it stays at the front) or the block's automatic re-issue budget is spent.
    /// Derived events name their request as the cause and sit right after the trigger.
    fn reissue_blocked(&mut self, kind: Blocked, trigger: ReissueTrigger) -> Step<Vec<Derived>, S::Error> {
        let queue = self.state.blocked(kind)?;
        let fee = self.ctx.genesis.fee_per_invoice();
        let mut derived = Vec::new();
        let mut done = 0;
        let by = match &trigger {
            ReissueTrigger::Deposit(d) => format!("deposit {d}"),
            ReissueTrigger::Quota(m) => format!("the quota change for {m}"),
        };
        for request_id in &queue.requests {
            if (kind == Blocked::Fee && self.meta()?.fee_balance < fee)
                || self.state.auto_bytes() >= AUTO_REISSUE_BYTES_MAX
            {
                break;
            }
            let Some(mut record) = self.state.request(request_id)? else {
                return Err(Stop::Exec(ExecError::Corrupt(StateKey::Request(request_id.clone()))));
            };
            let RequestBody::Invoice(r) = &record.body else {
                return Err(Stop::Exec(ExecError::Corrupt(StateKey::Request(request_id.clone()))));
            };
            let r = r.clone();
            let kind_of = |f: &Failure| Blocked::of(f.reason);
            let derived_kind = match self.validate_and_issue(&r, record.event)? {
                Err(f) if kind_of(&f) == Some(kind) => break,
                Ok(issued) => {
                    record.outcome = RequestOutcome::Issued(issued.number);
                    record.auto_reissue = Some(AutoReissue {
                        trigger: trigger.clone(),
                        event: self.id,
                        at: self.block.timestamp,
                    });
                    DerivedKind::InvoiceIssued(issued)
                }
                Err(mut f) => {
                    f.detail = format!("{}; found when {by} re-ran the request", f.detail);
                    self.enqueue_blocked(request_id, &mut f)?;
                    record.outcome = RequestOutcome::Failed {
                        reason: f.reason,
                        field: f.field.clone(),
                        detail: f.detail.clone(),
                    };
                    DerivedKind::InvoiceFailed(InvoiceFailed {
                        request_id: request_id.clone(),
                        reason: f.reason,
                        field: f.field,
                        detail: f.detail,
                    })
                }
            };
            let one = Derived {
                cause: record.event,
                kind: derived_kind,
            };
            self.state.add_auto_bytes(codec::to_bytes(&one).len());
            derived.push(one);
            self.state
                .put(StateKey::Request(request_id.clone()), StateValue::Request(record));
            done += 1;
        }
        if done > 0 {
            // Re-read: a request that failed for the other kind joined the other queue,
            // never this one.
            let mut now = self.state.blocked(kind)?;
            now.requests.drain(..done);
            self.state.put(kind.key(), kind.value(now));
        }
        Ok(derived)
    }

    /// The month's quota must be valid, not suspended and cover `total`; `Ok(None)` for
    /// a merchant not under quota (no grant ever recorded).
    fn check_quota(&self, total: Fen) -> Step<Result<Option<QuotaRecord>, Failure>, S::Error> {
        let Some(q) = self.state.quota()? else {
            return Ok(Ok(None));
        };
        let month = self.block.timestamp.utc8_month();
        if q.month != month {
            return Ok(Err(fail(
                FailureReason::QuotaExpired,
                "quota",
                format!(
                    "the quota of {} ended with its month; {month} has none yet (granted or re-validated)",
                    q.month
                ),
            )));
        }
        if q.suspended {
            return Ok(Err(fail(
                FailureReason::QuotaSuspended,
                "quota",
                format!("the quota of {month} is suspended by the tax office"),
            )));
        }
        if total > q.left() {
            return Ok(Err(fail(
                FailureReason::QuotaExceeded,
                "quota",
                format!(
                    "total {total} is above the {} left of the {} quota of {month} ({} used)",
                    q.left(),
                    q.granted,
                    q.used
                ),
            )));
        }
        Ok(Ok(Some(q)))
    }

    /// A tax office's quota change, for the block's month only; then the requests that
    /// wait for quota are re-run when it made room.
    fn change_quota(&mut self, c: &QuotaChange, by: MemberCode) -> Step<Vec<Derived>, S::Error> {
        let month = self.block.timestamp.utc8_month();
        if c.month != month {
            return Err(invalid(
                "month",
                format!("this block is in {month} (UTC+8): a quota is for the month it is recorded in, never carried"),
            )
            .into());
        }
        let at = self.block.timestamp;
        let current = self.state.quota()?;
        let this_month = current.clone().filter(|q| q.month == month);
        let refused = |detail: String| -> Step<Vec<Derived>, S::Error> { Err(invalid("action", detail).into()) };
        let record = match (c.action, this_month, current) {
            (QuotaAction::Grant(granted), Some(q), _) if granted < q.used => {
                return refused(format!(
                    "{} of the {month} quota is already used: grant at least that, or suspend the quota",
                    q.used
                ))
            }
            (QuotaAction::Grant(granted), Some(q), _) => QuotaRecord {
                granted,
                by,
                changed_at: at,
                ..q
            },
            // A new month starts from nothing used; a suspension stays until resumed.
            (QuotaAction::Grant(granted), None, previous) => QuotaRecord {
                month,
                granted,
                used: Fen::ZERO,
                suspended: previous.is_some_and(|p| p.suspended),
                by,
                changed_at: at,
            },
            (QuotaAction::Suspend | QuotaAction::Resume, Some(q), _) => QuotaRecord {
                suspended: c.action == QuotaAction::Suspend,
                by,
                changed_at: at,
                ..q
            },
            (QuotaAction::Suspend | QuotaAction::Resume, None, _) => {
                return refused(format!(
                    "{month} has no quota to suspend or resume: grant or re-validate it first"
                ))
            }
            (QuotaAction::Revalidate, Some(_), _) => return refused(format!("the quota of {month} is already valid")),
            (QuotaAction::Revalidate, None, Some(previous)) => QuotaRecord {
                month,
                granted: previous.granted,
                used: Fen::ZERO,
                suspended: previous.suspended,
                by,
                changed_at: at,
            },
            (QuotaAction::Revalidate, None, None) => {
                return refused("nothing to re-validate: this merchant was never granted a quota".into())
            }
        };
        // A month that ended keeps its final figures (red invoices of later months give
        // back to their own month), for reconciliation.
        if let Some(previous) = self.state.quota()?.filter(|q| q.month != month) {
            self.state
                .put(StateKey::QuotaMonth(previous.month), StateValue::QuotaMonth(previous));
        }
        let room = !record.suspended && record.left().is_positive();
        self.state.put(StateKey::Quota, StateValue::Quota(record));
        if room {
            self.reissue_blocked(Blocked::Quota, ReissueTrigger::Quota(month))
        } else {
            Ok(vec![])
        }
    }

    /// `replaces` must name a blue invoice of this chain with a red-letter reversal, not
    /// replaced yet, that drew on every payment listed.
    fn check_replaces(&self, r: &InvoiceRequested) -> Step<Result<Option<BlueInvoice>, Failure>, S::Error> {
        let Some(n) = r.replaces else {
            return Ok(Ok(None));
        };
        let f = |d: String| Ok(Err(fail(FailureReason::ReplacesInvalid, "replaces", d)));
        let blue = match self.state.invoice(&n)? {
            Some(InvoiceRecord::Blue(b)) if n.member() == self.ctx.chain => b,
            _ => return f(format!("{n} is not an issued invoice of this merchant")),
        };
        if blue.red_letters.is_empty() {
            return f(format!("{n} has no red-letter reversal: reverse it first"));
        }
        if let Some(by) = blue.replaced_by {
            return f(format!("{n} was already replaced by {by}"));
        }
        if let Some(p) = r
            .payment_ids
            .iter()
            .find(|p| !blue.issued.allocations.iter().any(|a| a.payment_id == **p))
        {
            return f(format!("{n} did not draw on payment {p}"));
        }
        Ok(Ok(Some(blue)))
    }

    /// Validates in the documented order; issues if everything passes. `cause` is the
    /// request's event id (the check code is derived from it).
    fn validate_and_issue(
        &mut self,
        r: &InvoiceRequested,
        cause: EventId,
    ) -> Step<Result<InvoiceIssued, Failure>, S::Error> {
        if r.buyer.name.trim().is_empty() {
            return Ok(Err(fail(
                FailureReason::BuyerNameMissing,
                "buyer.name",
                "the buyer name is empty",
            )));
        }
        let meta = self.meta()?;
        if !meta.policy.permitted_types.contains(&r.invoice_type) {
            return Ok(Err(fail(
                FailureReason::InvoiceTypeNotPermitted,
                "invoice_type",
                format!("{} invoices are not permitted for this merchant", r.invoice_type.name()),
            )));
        }
        match &r.buyer.tax_id {
            Some(t) => {
                if let Err(e) = uscc::validate(t) {
                    return Ok(Err(fail(
                        FailureReason::BuyerTaxIdInvalid,
                        "buyer.tax_id",
                        format!("{t}: {e}"),
                    )));
                }
            }
            None if r.invoice_type == InvoiceType::SpecialVat => {
                return Ok(Err(fail(
                    FailureReason::BuyerTaxIdRequired,
                    "buyer.tax_id",
                    "a special VAT invoice needs the buyer's tax id",
                )));
            }
            None => {}
        }
        let totals = match self.validate_lines(&r.lines, Some((&meta.policy, r.invoice_type))) {
            Ok(t) => t,
            Err(f) => return Ok(Err(f)),
        };
        let replaced = match self.check_replaces(r)? {
            Ok(b) => b,
            Err(f) => return Ok(Err(f)),
        };
        // Payments: present, listed once, live, with something left to invoice.
        let mut seen = std::collections::BTreeSet::new();
        if r.payment_ids.is_empty() || !r.payment_ids.iter().all(|p| seen.insert(p.as_str())) {
            return Ok(Err(fail(
                FailureReason::PaymentsInvalid,
                "payment_ids",
                "list at least one payment, each once",
            )));
        }
        let mut available = Vec::with_capacity(r.payment_ids.len());
        for (i, pid) in r.payment_ids.iter().enumerate() {
            let field = format!("payment_ids[{i}]");
            let Some(p) = self.state.payment(pid)? else {
                return Ok(Err(fail(
                    FailureReason::PaymentNotFound,
                    field,
                    format!("payment {pid} is not recorded"),
                )));
            };
            if p.reversed.is_some() {
                return Ok(Err(fail(
                    FailureReason::PaymentReversed,
                    field,
                    format!("payment {pid} was reversed"),
                )));
            }
            let invoiced = self.state.payment_invoicing(pid)?.unwrap_or_default();
            let corrupt = || ExecError::Corrupt(StateKey::PaymentInvoicing(pid.clone()));
            let left = p
                .net_paid()
                .and_then(|n| n.checked_sub(invoiced.invoiced))
                .ok_or_else(corrupt)?;
            if !left.is_positive() {
                return Ok(Err(fail(
                    FailureReason::PaymentFullyInvoiced,
                    field,
                    format!(
                        "payment {pid} has nothing left to invoice (paid {}, refunded {}, invoiced {})",
                        p.recorded.amount, p.refunded, invoiced.invoiced
                    ),
                )));
            }
            if invoiced.invoices.len() >= INVOICES_PER_PAYMENT_MAX {
                return Ok(Err(fail(
                    FailureReason::PaymentInvoicesLimit,
                    field,
                    format!(
                        "payment {pid} is already drawn on by {} invoices, the most one payment may be",
                        invoiced.invoices.len()
                    ),
                )));
            }
            available.push((pid.as_str(), left, invoiced));
        }
        // At most PAYMENTS_PER_INVOICE_MAX terms of at most AMOUNT_FEN_MAX each.
        let invoiceable = Fen::checked_sum(available.iter().map(|a| a.1)).ok_or(Rejection::Overflow("payments"))?;
        if totals.total > invoiceable {
            return Ok(Err(fail(
                FailureReason::TotalAboveInvoiceable,
                "lines",
                format!(
                    "total {} is above the {} the payments still cover",
                    totals.total, invoiceable
                ),
            )));
        }
        if totals.total > meta.policy.max_invoice_total {
            return Ok(Err(fail(
                FailureReason::TotalAboveMerchantLimit,
                "lines",
                format!(
                    "total {} is above this merchant's limit of {}",
                    totals.total, meta.policy.max_invoice_total
                ),
            )));
        }
        let quota = match self.check_quota(totals.total)? {
            Ok(q) => q,
            Err(f) => return Ok(Err(f)),
        };
        let fee = self.ctx.genesis.fee_per_invoice();
        if meta.fee_balance < fee {
            return Ok(Err(fail(
                FailureReason::FeeBalanceTooLow,
                "fee_balance",
                format!("fee balance {} is below the fee of {}", meta.fee_balance, fee),
            )));
        }

        // Issue.
        if let Some(mut q) = quota {
            // Within what is left of the grant (checked above).
            q.used = q.used.checked_add(totals.total).ok_or(Rejection::Overflow("quota"))?;
            self.state.put(StateKey::Quota, StateValue::Quota(q));
        }
        let mut meta = meta;
        let number = self.next_number(&mut meta)?;
        // The balance covers the fee (checked above).
        meta.fee_balance = meta
            .fee_balance
            .checked_sub(fee)
            .ok_or(Rejection::Overflow("fee_balance"))?;
        let remaining = amounts::by_rate(&totals.lines).ok_or(Rejection::Overflow("lines"))?;
        let mut allocations = Vec::new();
        let mut left = totals.total;
        for (pid, avail, mut inv) in available {
            if left.is_zero() {
                break;
            }
            // `take` is at most both `left` and `avail`, so neither subtraction nor the
            // addition (bounded by what the payment covers) can overflow.
            let take = avail.min(left);
            left = left.checked_sub(take).ok_or(Rejection::Overflow("allocation"))?;
            allocations.push(alloc(pid, take));
            inv.invoiced = inv.invoiced.checked_add(take).ok_or(Rejection::Overflow("invoiced"))?;
            inv.invoices.push(number);
            self.state.put(
                StateKey::PaymentInvoicing(pid.to_owned()),
                StateValue::PaymentInvoicing(inv),
            );
        }
        assert!(
            left.is_zero(),
            "allocation must cover the total: it was checked against the invoiceable amount"
        );
        let issued = InvoiceIssued {
            request_id: r.request_id.clone(),
            number,
            check_code: self.check_code(&number, cause),
            invoice_type: r.invoice_type,
            buyer: r.buyer.clone(),
            net: totals.net,
            tax: totals.tax,
            total: totals.total,
            fee,
            allocations: allocations.clone(),
            issued_at: self.block.timestamp,
            lines: totals.lines,
            replaces: r.replaces,
        };
        if let Some(mut old) = replaced {
            old.replaced_by = Some(number);
            self.state.put(
                StateKey::Invoice(old.issued.number),
                StateValue::Invoice(InvoiceRecord::Blue(old)),
            );
        }
        self.state.put(
            StateKey::Invoice(number),
            StateValue::Invoice(InvoiceRecord::Blue(BlueInvoice {
                remaining,
                standing: allocations,
                red_letters: Vec::new(),
                claim: None,
                replaced_by: None,
                booking: None,
                forms: Vec::new(),
                issued: issued.clone(),
            })),
        );
        self.state.put(StateKey::Meta, StateValue::Meta(meta));
        Ok(Ok(issued))
    }

    fn next_number(&self, meta: &mut MerchantMeta) -> Step<InvoiceNumber, S::Error> {
        let year = self.block.timestamp.utc8_year().rem_euclid(100) as u8;
        let number = InvoiceNumber::new(year, self.ctx.chain, meta.next_sequence)
            .ok_or(Rejection::Overflow("invoice sequence"))?;
        meta.next_sequence += 1;
        Ok(number)
    }

    /// `H_check(canonical((network, number, request event id)))`, see `docs/FORMAT.md`.
    fn check_code(&self, number: &InvoiceNumber, cause: EventId) -> CheckCode {
        let d = hash(Domain::CheckCode, &codec::to_bytes(&(self.ctx.network, number, cause)));
        CheckCode::from_digest(&d)
    }

    fn red_letter(&mut self, r: &RedLetterRequested) -> Step<DerivedKind, S::Error> {
        if self.state.request(&r.request_id)?.is_some() {
            return Err(Rejection::DuplicateRequestId(r.request_id.clone()).into());
        }
        let outcome = self.seller_red_letter(r)?;
        let (record_outcome, derived) = match outcome {
            Ok(buyer::SellerRed::Issued(rev)) => (
                RequestOutcome::Reversed(rev.red_number),
                DerivedKind::InvoiceReversed(rev),
            ),
            Ok(buyer::SellerRed::Waiting(changed)) => (
                RequestOutcome::AwaitingConfirmation(changed.form.form),
                DerivedKind::RedFormChanged(changed),
            ),
            Err(f) => (
                RequestOutcome::Failed {
                    reason: f.reason,
                    field: f.field.clone(),
                    detail: f.detail.clone(),
                },
                DerivedKind::InvoiceFailed(InvoiceFailed {
                    request_id: r.request_id.clone(),
                    reason: f.reason,
                    field: f.field,
                    detail: f.detail,
                }),
            ),
        };
        self.state.put(
            StateKey::Request(r.request_id.clone()),
            StateValue::Request(RequestRecord {
                event: self.id,
                requested_at: self.block.timestamp,
                body: RequestBody::RedLetter(r.clone()),
                outcome: record_outcome,
                retried_by: None,
                auto_reissue: None,
            }),
        );
        Ok(derived)
    }

    /// Checks a reversal of `scope` of invoice `n` against what is left of it, writing
    /// nothing: what a form is checked with when it opens and when it is confirmed.
    fn plan_red_letter(&self, n: InvoiceNumber, scope: &RedLetterScope) -> Step<Result<RedPlan, Failure>, S::Error> {
        let blue = match self.state.invoice(&n)? {
            Some(InvoiceRecord::Blue(b)) if n.member() == self.ctx.chain => b,
            _ => {
                return Ok(Err(fail(
                    FailureReason::InvoiceNotFound,
                    "invoice_number",
                    format!("{n} is not an issued invoice of this merchant"),
                )))
            }
        };
        if blue.fully_reversed() {
            return Ok(Err(fail(
                FailureReason::InvoiceAlreadyReversed,
                "invoice_number",
                format!("{n} is already fully reversed"),
            )));
        }
        if blue.red_letters.len() >= RED_LETTERS_PER_INVOICE_MAX {
            return Ok(Err(fail(
                FailureReason::RedLettersLimit,
                "invoice_number",
                format!(
                    "{n} already has {} red-letter invoices, the most one invoice may have",
                    blue.red_letters.len()
                ),
            )));
        }
        let corrupt = || ExecError::Corrupt(StateKey::Invoice(n));
        let original = &blue.issued.lines;
        let mut left = self.lines_left(n, &blue)?;
        let lines: Vec<IssuedLine> = match scope {
            // Whatever is left of each line, under the line's own description.
            RedLetterScope::Full => original
                .iter()
                .zip(&left)
                .filter(|(_, l)| l.any())
                .map(|(o, l)| {
                    if *l == LineLeft::of(o) {
                        o.clone()
                    } else {
                        IssuedLine {
                            item: LineItem {
                                quantity: Quantity::ONE,
                                unit_price: l.net,
                                ..o.item.clone()
                            },
                            short_name: o.short_name.clone(),
                            net: l.net,
                            tax: l.tax,
                        }
                    }
                })
                .collect(),
            RedLetterScope::Partial(items) => {
                let mut lines = match self.validate_lines(items, None) {
                    Ok(t) => t.lines,
                    Err(f) => return Ok(Err(f)),
                };
                match amounts::take_lines(original, &mut left, &mut lines) {
                    Ok(()) => lines,
                    Err(TakeError::Unknown(i)) => {
                        return Ok(Err(fail(
                            FailureReason::RedLetterLineUnknown,
                            format!("scope.lines[{i}]"),
                            format!(
                                "\"{}\" at {} is not a line of {n} with something left after the lines before it \
                                 (partial lines keep the original's order)",
                                items[i].description, items[i].tax_rate
                            ),
                        )))
                    }
                    Err(TakeError::Exceeds { line, original, left }) => {
                        return Ok(Err(fail(
                            FailureReason::RedLetterExceedsRemaining,
                            format!("scope.lines[{line}]"),
                            format!(
                                "reversing net {} tax {} of line {} of {n}, but only net {} tax {} is left of it",
                                lines[line].net,
                                lines[line].tax,
                                original + 1,
                                left.net,
                                left.tax
                            ),
                        )))
                    }
                }
            }
        };
        let reversing = amounts::by_rate(&lines).ok_or(Rejection::Overflow("lines"))?;
        let mut remaining: Vec<RateAmounts> = blue.remaining.clone();
        for rv in &reversing {
            match remaining.iter_mut().find(|x| x.rate == rv.rate) {
                Some(x) if rv.net <= x.net && rv.tax <= x.tax => {
                    x.net = x.net.checked_sub(rv.net).ok_or_else(corrupt)?;
                    x.tax = x.tax.checked_sub(rv.tax).ok_or_else(corrupt)?;
                }
                Some(x) => {
                    return Ok(Err(fail(
                        FailureReason::RedLetterExceedsRemaining,
                        "scope",
                        format!(
                            "at {}: reversing net {} tax {}, but only net {} tax {} is left",
                            rv.rate, rv.net, rv.tax, x.net, x.tax
                        ),
                    )))
                }
                None => {
                    return Ok(Err(fail(
                        FailureReason::RedLetterExceedsRemaining,
                        "scope",
                        format!("rate {} does not appear on invoice {n}", rv.rate),
                    )))
                }
            }
        }
        Ok(Ok(RedPlan {
            blue,
            lines,
            reversing,
            remaining,
        }))
    }

    /// What is left of each line of blue invoice `n`: its red invoices' lines taken off
    /// in order, as they were when each was checked. A stored red line that no longer
    /// fits is a corrupt record.
    fn lines_left(&self, n: InvoiceNumber, blue: &BlueInvoice) -> Step<Vec<LineLeft>, S::Error> {
        let original = &blue.issued.lines;
        let mut left: Vec<LineLeft> = original.iter().map(LineLeft::of).collect();
        for red in &blue.red_letters {
            let Some(InvoiceRecord::Red(r)) = self.state.invoice(red)? else {
                return Err(ExecError::Corrupt(StateKey::Invoice(*red)).into());
            };
            let mut lines = r.lines.clone();
            if amounts::take_lines(original, &mut left, &mut lines).is_err() || lines != r.lines {
                return Err(ExecError::Corrupt(StateKey::Invoice(n)).into());
            }
        }
        Ok(left)
    }

    fn try_red_letter(
        &mut self,
        n: InvoiceNumber,
        request_id: &str,
        reason: RedLetterReason,
        scope: &RedLetterScope,
    ) -> Step<Result<InvoiceReversed, Failure>, S::Error> {
        let RedPlan {
            blue,
            lines,
            reversing,
            remaining,
        } = match self.plan_red_letter(n, scope)? {
            Ok(p) => p,
            Err(f) => return Ok(Err(f)),
        };
        let corrupt = || ExecError::Corrupt(StateKey::Invoice(n));
        // Each amount is within what is left of the invoice, itself within the bound.
        let net = Fen::checked_sum(reversing.iter().map(|x| x.net)).ok_or_else(corrupt)?;
        let tax = Fen::checked_sum(reversing.iter().map(|x| x.tax)).ok_or_else(corrupt)?;
        let total = net.checked_add(tax).ok_or_else(corrupt)?;

        // Return the reversed total to the payments, last allocated first. The invoice's
        // standing allocations sum to what is left of it, and each payment's invoiced
        // amount includes its allocation; a record that breaks either is corrupt.
        let mut standing = blue.standing.clone();
        let mut to_return = total;
        let mut returned: Vec<Allocation> = Vec::new();
        for a in standing.iter_mut().rev() {
            if to_return.is_zero() {
                break;
            }
            let take = a.amount.min(to_return);
            if take.is_zero() {
                continue;
            }
            a.amount = a.amount.checked_sub(take).ok_or_else(corrupt)?;
            to_return = to_return.checked_sub(take).ok_or_else(corrupt)?;
            returned.push(alloc(&a.payment_id, take));
            let mut inv = self.state.payment_invoicing(&a.payment_id)?.unwrap_or_default();
            inv.invoiced = inv
                .invoiced
                .checked_sub(take)
                .filter(|v| !v.is_negative())
                .ok_or_else(|| ExecError::Corrupt(StateKey::PaymentInvoicing(a.payment_id.clone())))?;
            self.state.put(
                StateKey::PaymentInvoicing(a.payment_id.clone()),
                StateValue::PaymentInvoicing(inv),
            );
        }
        if !to_return.is_zero() {
            return Err(corrupt().into());
        }

        // A red invoice gives its total back to the quota of the month it is issued in.
        if let Some(mut q) = self.state.quota()? {
            if q.month == self.block.timestamp.utc8_month() {
                q.used = q.used.checked_sub(total.min(q.used)).ok_or_else(corrupt)?;
                self.state.put(StateKey::Quota, StateValue::Quota(q));
            }
        }
        let mut meta = self.meta()?;
        let red_number = self.next_number(&mut meta)?;
        let fully_reversed = remaining.iter().all(|x| x.net.is_zero() && x.tax.is_zero());
        let rev = InvoiceReversed {
            request_id: request_id.to_owned(),
            original: n,
            red_number,
            red_check_code: self.check_code(&red_number, self.id),
            reason,
            lines,
            net,
            tax,
            total,
            fully_reversed,
            allocations: returned,
            reversed_at: self.block.timestamp,
        };
        let mut blue = blue;
        blue.remaining = remaining;
        blue.standing = standing;
        blue.red_letters.push(red_number);
        self.state
            .put(StateKey::Invoice(n), StateValue::Invoice(InvoiceRecord::Blue(blue)));
        self.state.put(
            StateKey::Invoice(red_number),
            StateValue::Invoice(InvoiceRecord::Red(rev.clone())),
        );
        self.state.put(StateKey::Meta, StateValue::Meta(meta));
        Ok(Ok(rev))
    }

    fn claim(&mut self, c: &ClaimRequested, claimant: MemberCode) -> Step<DerivedKind, S::Error> {
        let refused = |refusal| {
            Ok(DerivedKind::ClaimRefused(ClaimRefused {
                invoice_number: c.invoice_number,
                claimant,
                refusal,
            }))
        };
        let mut blue = match self.state.invoice(&c.invoice_number)? {
            Some(InvoiceRecord::Blue(b)) if b.issued.check_code == c.check_code => b,
            // A wrong check code looks exactly like an unknown invoice.
            _ => return refused(ClaimRefusal::NotFound),
        };
        if let Some(closed_at) = blue.claim.as_ref().and_then(|c| c.closed_at) {
            return refused(ClaimRefusal::Closed { closed_at });
        }
        if let Some(first) = &blue.claim {
            return refused(ClaimRefusal::AlreadyClaimed {
                claimant: first.claimant,
                claimed_at: first.claimed_at,
            });
        }
        if blue.fully_reversed() {
            return refused(ClaimRefusal::Reversed);
        }
        blue.claim = Some(ClaimInfo {
            claimant,
            claim_ref: c.claim_ref.clone(),
            claimed_at: self.block.timestamp,
            event: self.id,
            closed_at: None,
        });
        self.state.put(
            StateKey::Invoice(c.invoice_number),
            StateValue::Invoice(InvoiceRecord::Blue(blue)),
        );
        Ok(DerivedKind::ClaimRecorded(ClaimRecorded {
            invoice_number: c.invoice_number,
            claimant,
            claim_ref: c.claim_ref.clone(),
            claimed_at: self.block.timestamp,
        }))
    }

    // ---- fees, policy, keys ----------------------------------------------------------

    fn deposit(&mut self, d: &FeeDeposited) -> Step<(), S::Error> {
        if self.state.deposit(&d.deposit_id)?.is_some() {
            return Err(Rejection::DuplicateDepositId(d.deposit_id.clone()).into());
        }
        let mut meta = self.meta()?;
        // The balance stays within the amount bound like every other amount.
        meta.fee_balance = match meta.fee_balance.checked_add(d.amount) {
            Some(b) if b <= Fen::MAX => b,
            _ => {
                return Err(Rejection::LimitReached {
                    field: "amount".into(),
                    detail: format!(
                        "the fee balance {} plus {} would be above the most any amount may be ({})",
                        meta.fee_balance,
                        d.amount,
                        Fen::MAX
                    ),
                }
                .into())
            }
        };
        self.state.put(StateKey::Meta, StateValue::Meta(meta));
        self.state.put(
            StateKey::Deposit(d.deposit_id.clone()),
            StateValue::Deposit(DepositRecord {
                amount: d.amount,
                event: self.id,
            }),
        );
        Ok(())
    }

    fn set_policy(&mut self, p: &MerchantPolicy) -> Step<(), S::Error> {
        let mut meta = self.meta()?;
        meta.policy = p.clone();
        self.state.put(StateKey::Meta, StateValue::Meta(meta));
        Ok(())
    }

    fn authorize_key(&mut self, a: &ClientKeyAuthorized) -> Step<(), S::Error> {
        if self.ctx.genesis.member_by_key(&a.key).is_some() {
            return Err(invalid("key", "a member key cannot be a client key").into());
        }
        self.state.put(
            StateKey::ClientKey(a.key),
            StateValue::ClientKey(ClientKeyRecord {
                label: a.label.clone(),
                permissions: a.permissions,
                authorized_at: self.block.timestamp,
                revoked_at: None,
            }),
        );
        Ok(())
    }

    fn revoke_key(&mut self, r: &ClientKeyRevoked) -> Step<(), S::Error> {
        let mut k = match self.state.client_key(&r.key)? {
            Some(k) if k.revoked_at.is_none() => k,
            _ => return Err(Rejection::KeyNotAuthorized(r.key).into()),
        };
        k.revoked_at = Some(self.block.timestamp);
        self.state.put(StateKey::ClientKey(r.key), StateValue::ClientKey(k));
        Ok(())
    }
}
