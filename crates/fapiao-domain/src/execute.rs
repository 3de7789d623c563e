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
    alloc, AutoReissue, Blocked, BlueInvoice, ClientKeyRecord, DepositRecord, ExecError, InvoiceRecord, MerchantMeta,
    Overlay, PaymentRecord, PaymentVoid, QuotaRecord, RateAmounts, RefundRecord, ReissueTrigger, RequestBody,
    RequestOutcome, RequestRecord, StateKey, StateRead, StateValue,
};
use crate::uscc;
use fapiao_core::event::{
    Allocation, ClientKeyAuthorized, ClientKeyRevoked, FailureReason, FeeDeposited, InvoiceFailed, InvoiceIssued,
    InvoiceRequested, InvoiceReversed, InvoiceType, IssuedLine, LineItem, MerchantPolicy, PaymentRecorded,
    PaymentRefunded, PaymentVoided, QuotaAction, QuotaChange, RedLetterReason, RedLetterRequested, RedLetterScope,
};
use fapiao_core::genesis::Role;
use fapiao_core::hash::{hash, Domain};
use fapiao_core::tax::{self, RateRule, TaxRate};
use fapiao_core::{
    codec, CheckCode, Config, Derived, DerivedKind, Entry, Event, EventBody, EventId, EventKind, Fen, Genesis,
    InvoiceNumber, MemberCode, NetworkId, PublicKey, Quantity, Timestamp,
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

/// The chain being executed and the rules it runs under: the network's (genesis) and
/// those of the block's epoch (members, roles, keys).
#[derive(Debug, Clone, Copy)]
pub struct ChainContext<'g> {
    genesis: &'g Genesis,
    config: &'g Config,
    network: NetworkId,
    chain: MemberCode,
    owner: PublicKey,
}

impl<'g> ChainContext<'g> {
    /// The context of chain `chain` in the epoch of `config`, or `None` if the chain has
    /// no owner in that epoch (not a merchant, not the admin chain).
    pub fn new(genesis: &'g Genesis, config: &'g Config, chain: MemberCode) -> Option<Self> {
        let owner = config.chain_owner(chain)?.key;
        Some(ChainContext {
            genesis,
            config,
            network: genesis.network_id(),
            chain,
            owner,
        })
    }

    /// The configuration of the block's epoch.
    pub fn config(&self) -> &'g Config {
        self.config
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

    /// The merchant meta implied by the merchant's entry (in genesis, or in the
    /// configuration change that added it), before any event changed it.
    pub fn genesis_meta(&self) -> MerchantMeta {
        let m = self.config.merchant(self.chain);
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

pub use rejection::Rejection;

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

/// A business failure of an invoice or red-letter request.
struct Failure {
    reason: FailureReason,
    field: String,
    detail: String,
}

impl Failure {
    /// How a failed request is recorded: the request's outcome and the derived entry
    /// that says so, for request `request_id`.
    fn recorded(self, request_id: &str) -> (RequestOutcome, DerivedKind) {
        (
            RequestOutcome::Failed {
                reason: self.reason,
                field: self.field.clone(),
                detail: self.detail.clone(),
            },
            DerivedKind::InvoiceFailed(InvoiceFailed {
                request_id: request_id.to_owned(),
                reason: self.reason,
                field: self.field,
                detail: self.detail,
            }),
        )
    }
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
    // The admin chain carries configuration changes by its owner and nothing else; no
    // other chain carries one.
    if ctx.config.is_admin_chain(ctx.chain) != matches!(kind, EventKind::ConfigChanged(_)) {
        return Ok(Err(unauthorized()));
    }
    let member = |roles: &[Role]| match ctx.config.member_by_key(author) {
        Some(m) if roles.iter().any(|r| m.roles.has(*r)) => Ok(Some(m.code)),
        _ => Err(unauthorized()),
    };
    match kind {
        EventKind::PaymentRecorded(_) | EventKind::PaymentRefunded(_) | EventKind::PaymentVoided(_) => {
            client(|p| p.payments)
        }
        EventKind::InvoiceRequested(_) | EventKind::InvoiceRedLetterRequested(_) => client(|p| p.invoices),
        EventKind::InvoiceClaimRequested(_) => Ok(member(&[Role::Verifier, Role::TaxOffice])),
        EventKind::FeeDeposited(_) | EventKind::MerchantPolicySet(_) => Ok(member(&[Role::Operator])),
        EventKind::QuotaChanged(_) => Ok(member(&[Role::TaxOffice])),
        EventKind::ClientKeyAuthorized(_) | EventKind::ClientKeyRevoked(_) | EventKind::ConfigChanged(_) => {
            Ok(if *author == ctx.owner {
                Ok(None)
            } else {
                Err(unauthorized())
            })
        }
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

/// The envelope rule admission and execution share: an event is for this network and
/// this chain.
pub fn check_envelope(network: NetworkId, chain: MemberCode, body: &EventBody) -> Result<(), Rejection> {
    if body.network != network {
        return Err(Rejection::WrongNetwork {
            expected: network,
            found: body.network,
        });
    }
    if body.chain != chain {
        return Err(Rejection::WrongChain {
            expected: chain,
            found: body.chain,
        });
    }
    Ok(())
}

/// The member that signed an event [`authorize`] admits from members only.
fn member_signer(signer: Option<MemberCode>) -> MemberCode {
    signer.unwrap_or_else(|| unreachable!("authorize admits this kind from members only"))
}

mod admin;
mod buyer;
mod fees;
mod invoice;
mod payment;
mod red_letter;
mod rejection;

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
        check_envelope(self.ctx.network, self.ctx.chain, &event.body)?;
        let kind = &event.body.kind;
        // Who may sign comes first (an unauthorised author learns nothing more), then the
        // event's own bounds, then the rules against the state.
        let signer = self.authorize(kind)?;
        bounds::check_event(kind)?;
        match kind {
            EventKind::PaymentRecorded(p) => self.record_payment(p).map(|()| vec![]),
            EventKind::PaymentRefunded(r) => self.refund(r).map(|()| vec![]),
            EventKind::PaymentVoided(r) => self.void(r).map(|()| vec![]),
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
            EventKind::ConfigChanged(r) => self.reconfigure(r).map(|()| vec![]),
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

    /// Records a new request (invoice or red-letter) made by this event, with its outcome.
    fn record_request(&mut self, request_id: &str, body: RequestBody, outcome: RequestOutcome) {
        self.state.put(
            StateKey::Request(request_id.to_owned()),
            StateValue::Request(RequestRecord {
                event: self.id,
                requested_at: self.block.timestamp,
                body,
                outcome,
                retried_by: None,
                auto_reissue: None,
            }),
        );
    }

    fn meta(&self) -> Step<MerchantMeta, S::Error> {
        Ok(self.state.meta(|| self.ctx.genesis_meta())?)
    }
}
