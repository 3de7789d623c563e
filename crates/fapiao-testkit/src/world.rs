//! A small test world: a genesis with two merchants, an operator, a verifier, a buyer and
//! a tax office, and one merchant's chain state executed one block at a time by the
//! domain. The domain's rule and property tests drive it, and the API's entry tests read
//! what it derives.
#![allow(missing_docs, clippy::new_without_default, clippy::inconsistent_digit_grouping)]

use fapiao_core::event::*;
use fapiao_core::genesis::Role;
use fapiao_core::*;
use fapiao_domain::state::{InvoiceRecord, PaymentInvoicing, PaymentRecord, RequestRecord};
use fapiao_domain::*;

pub const MERCHANT: u32 = 110_001;
pub const OTHER_MERCHANT: u32 = 110_002;
pub const OPERATOR: u32 = 900_001;
pub const VERIFIER: u32 = 800_001;
/// A buyer's finance department: its tax id is the test invoices' buyer tax id.
pub const BUYER: u32 = 700_001;
pub const TAX_OFFICE: u32 = 810_001;
pub const VALID_TAX_ID: &str = "91110000600037341L";
/// 2026-03-01T00:00:00Z.
pub const T0: u64 = 1_772_323_200_000;

pub fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

/// A merchant witnesses too, as in a consortium of merchants that trust each other.
pub fn roles_of(role: Role) -> Roles {
    if role == Role::Merchant {
        Roles::of(&[Role::Witness, Role::Merchant])
    } else {
        Roles::of(&[role])
    }
}

/// The test merchant's rates: the usual ones and both flags, in force on every day.
pub fn policy_rates() -> Vec<fapiao_core::tax::RateRule> {
    fapiao_core::tax::CURRENT_RATES
        .into_iter()
        .map(fapiao_core::tax::RateRule::always)
        .collect()
}

pub fn member(code: u32, name: &str, role: Role, k: &SecretKey) -> Member {
    let policy = (role == Role::Merchant).then(|| MerchantPolicy {
        permitted_types: vec![InvoiceType::Normal, InvoiceType::SpecialVat],
        max_invoice_total: Fen::from_fen(100_000_000),
        rates: policy_rates(),
    });
    Member {
        code: MemberCode::new(code).unwrap(),
        name: name.into(),
        roles: roles_of(role),
        key: k.public(),
        addresses: vec![],
        initial_fee_balance: if role == Role::Merchant {
            Fen::from_fen(100)
        } else {
            Fen::from_fen(0)
        },
        policy,
        tax_id: None,
    }
}

pub fn genesis() -> Genesis {
    Genesis::new(
        "test".into(),
        Timestamp(T0),
        None,
        Fen::from_fen(10),
        fapiao_core::tax::sample_classifications(),
        vec![
            member(MERCHANT, "Tea House", Role::Merchant, &key(1)),
            member(OTHER_MERCHANT, "Noodle Bar", Role::Merchant, &key(2)),
            member(OPERATOR, "Operator", Role::Operator, &key(3)),
            member(VERIFIER, "Tax Office", Role::Verifier, &key(4)),
            Member {
                tax_id: Some(VALID_TAX_ID.into()),
                ..member(BUYER, "Shanghai Trading Co", Role::Verifier, &key(5))
            },
            member(TAX_OFFICE, "Municipal Tax Bureau", Role::TaxOffice, &key(6)),
        ],
    )
    .unwrap()
}

pub struct World {
    pub genesis: Genesis,
    pub owner: SecretKey,
    pub operator: SecretKey,
    pub verifier: SecretKey,
    pub buyer: SecretKey,
    pub tax_office: SecretKey,
    pub state: MemState,
    pub height: u64,
    pub time: u64,
    pub chain: MemberCode,
    /// Every entry of every block executed so far, in ledger order.
    pub log: Vec<Entry>,
}

/// What one submitted event did.
pub type Outcome = Result<Vec<DerivedKind>, Rejection>;

impl World {
    pub fn new() -> World {
        World {
            genesis: genesis(),
            owner: key(1),
            operator: key(3),
            verifier: key(4),
            buyer: key(5),
            tax_office: key(6),
            state: MemState::default(),
            height: 0,
            time: T0,
            chain: MemberCode::new(MERCHANT).unwrap(),
            log: Vec::new(),
        }
    }

    pub fn event(&self, author: &SecretKey, kind: EventKind) -> Event {
        EventBody {
            network: self.genesis.network_id(),
            chain: self.chain,
            author: author.public(),
            timestamp: Timestamp(self.time),
            kind,
        }
        .sign(author)
    }

    /// Executes `events` as one block and applies its writes.
    pub fn block(&mut self, events: &[Event]) -> Executed {
        self.height += 1;
        self.time += 1000;
        let ctx = ChainContext::new(&self.genesis, self.genesis.config(), self.chain).unwrap();
        let bc = BlockContext {
            height: self.height,
            timestamp: Timestamp(self.time),
        };
        let ex = execute_block(&ctx, &bc, &self.state, events).unwrap();
        self.state.apply(ex.writes.clone());
        self.log.extend(ex.entries.iter().cloned());
        ex
    }

    /// Submits one event by `author` in its own block.
    pub fn submit_as(&mut self, author: &SecretKey, kind: EventKind) -> Outcome {
        let e = self.event(author, kind);
        let ex = self.block(std::slice::from_ref(&e));
        if let Some((_, r)) = ex.rejected.into_iter().next() {
            return Err(r);
        }
        Ok(ex
            .entries
            .into_iter()
            .filter_map(|en| match en {
                Entry::Derived(d) => Some(d.kind),
                Entry::Event(_) => None,
            })
            .collect())
    }

    pub fn submit(&mut self, kind: EventKind) -> Outcome {
        let owner = self.owner.clone();
        self.submit_as(&owner, kind)
    }

    pub fn pay(&mut self, id: &str, fen: i64) -> Outcome {
        self.submit(EventKind::PaymentRecorded(payment(id, fen)))
    }

    pub fn get(&self, key: StateKey) -> Option<StateValue> {
        self.state.0.get(&key).cloned()
    }

    pub fn payment(&self, id: &str) -> Option<PaymentRecord> {
        match self.get(StateKey::Payment(id.into())) {
            Some(StateValue::Payment(p)) => Some(p),
            _ => None,
        }
    }

    pub fn invoicing(&self, id: &str) -> PaymentInvoicing {
        match self.get(StateKey::PaymentInvoicing(id.into())) {
            Some(StateValue::PaymentInvoicing(p)) => p,
            _ => PaymentInvoicing::default(),
        }
    }

    pub fn request(&self, id: &str) -> Option<RequestRecord> {
        match self.get(StateKey::Request(id.into())) {
            Some(StateValue::Request(r)) => Some(r),
            _ => None,
        }
    }

    pub fn invoice(&self, n: InvoiceNumber) -> Option<InvoiceRecord> {
        match self.get(StateKey::Invoice(n)) {
            Some(StateValue::Invoice(i)) => Some(i),
            _ => None,
        }
    }

    pub fn fee_balance(&self) -> Fen {
        match self.get(StateKey::Meta) {
            Some(StateValue::Meta(m)) => m.fee_balance,
            _ => self.genesis.config().merchant(self.chain).unwrap().initial_fee_balance,
        }
    }
}

pub fn payment(id: &str, fen: i64) -> PaymentRecorded {
    PaymentRecorded {
        payment_id: id.into(),
        amount: Fen::from_fen(fen),
        currency: Currency::Cny,
        method: PaymentMethod::Wechat,
        terminal_id: "POS-1".into(),
        external_ref: format!("wx-{id}"),
    }
}

pub fn line(qty_thousandths: i64, unit_price: i64, rate: u16) -> LineItem {
    LineItem {
        description: "Oolong tea".into(),
        tax_code: "3070401000000000000".into(),
        quantity: Quantity(qty_thousandths),
        unit_price: Fen::from_fen(unit_price),
        tax_rate: TaxRate::Bp(rate),
    }
}

/// A valid request for 88.50 net + 11.50 tax ... on payment `p`: one line of 1 x 88.50
/// at 13% = 88.50 + 11.51 (rounded half up) = 100.01; tests use round figures below.
pub fn request(id: &str, payments: &[&str]) -> InvoiceRequested {
    InvoiceRequested {
        request_id: id.into(),
        invoice_type: InvoiceType::Normal,
        buyer: Buyer {
            name: "Shanghai Trading Co".into(),
            tax_id: Some(VALID_TAX_ID.into()),
        },
        // 1 x 50.00 at 6% = 50.00 + 3.00 = 53.00
        lines: vec![line(1000, 5000, 600)],
        payment_ids: payments.iter().map(|p| p.to_string()).collect(),
        retry_of: None,
        replaces: None,
    }
}

pub fn issued(outcome: &Outcome) -> InvoiceIssued {
    match outcome {
        Ok(d) => match d.as_slice() {
            [DerivedKind::InvoiceIssued(i)] => i.clone(),
            other => panic!("expected one InvoiceIssued, got {other:?}"),
        },
        Err(r) => panic!("expected an issued invoice, got rejection {r}"),
    }
}

pub fn failed(outcome: &Outcome) -> InvoiceFailed {
    match outcome {
        Ok(d) => match d.as_slice() {
            [DerivedKind::InvoiceFailed(f)] => f.clone(),
            other => panic!("expected one InvoiceFailed, got {other:?}"),
        },
        Err(r) => panic!("expected a failure, got rejection {r}"),
    }
}

pub fn reversed(outcome: &Outcome) -> InvoiceReversed {
    match outcome {
        Ok(d) => match d.as_slice() {
            [DerivedKind::InvoiceReversed(r)] => r.clone(),
            other => panic!("expected one InvoiceReversed, got {other:?}"),
        },
        Err(r) => panic!("expected a reversal, got rejection {r}"),
    }
}

/// Who signs the event under test.
#[derive(Clone, Copy, Debug)]
pub enum Who {
    Owner,
    Operator,
    Verifier,
    /// Client key `key(n)` (authorised or not, depending on the setup).
    Client(u8),
    /// Another merchant's member key.
    OtherMerchant,
    /// The buyer member (its tax id is the test invoices' buyer tax id).
    Buyer,
    /// The tax office member (grants quota).
    TaxOffice,
}

/// What the event under test must do.
#[derive(Debug, PartialEq)]
pub enum Expect {
    /// Applied with no derived events.
    Applied,
    /// Issued an invoice.
    Issued,
    /// Recorded an invoice failure with this reason.
    Failed(FailureReason),
    /// Recorded a red-letter reversal.
    Reversed,
    /// Recorded a claim.
    Claimed,
    /// Recorded a claim refusal (lock, unlock, close or booking).
    ClaimRefused(ClaimRefusal),
    /// Released a lock.
    Unlocked,
    /// Closed a claim.
    Closed,
    /// Recorded a booking status.
    Booked(BookingStatus),
    /// A form was started or changed to this state.
    Form(FormState),
    /// A form was confirmed and its red invoice issued.
    FormConfirmed,
    /// A form action was refused.
    FormRefused(RedFormRefusal),
    /// Rejected with this code; nothing is recorded.
    Rejected(&'static str),
}

pub fn signer(w: &World, who: Who) -> SecretKey {
    match who {
        Who::Owner => w.owner.clone(),
        Who::Operator => w.operator.clone(),
        Who::Verifier => w.verifier.clone(),
        Who::Client(n) => key(n),
        Who::OtherMerchant => key(2),
        Who::Buyer => w.buyer.clone(),
        Who::TaxOffice => w.tax_office.clone(),
    }
}

/// Runs `setup`, then submits `kind` signed by `who`, and compares the outcome with
/// `expected`. A rejection must leave the state exactly as it was.
pub fn check(setup: impl FnOnce(&mut World), who: Who, kind: EventKind, expected: Expect) -> World {
    let mut w = World::new();
    setup(&mut w);
    let before = w.state.clone();
    let author = signer(&w, who);
    let outcome = w.submit_as(&author, kind.clone());
    let got = match &outcome {
        Err(r) => Expect::Rejected(r.code().as_str()),
        Ok(d) => match d.as_slice() {
            [] => Expect::Applied,
            [DerivedKind::InvoiceIssued(_)] => Expect::Issued,
            [DerivedKind::InvoiceFailed(f)] => Expect::Failed(f.reason),
            [DerivedKind::InvoiceReversed(_)] => Expect::Reversed,
            [DerivedKind::ClaimRecorded(_)] => Expect::Claimed,
            [DerivedKind::ClaimRefused(r)] => Expect::ClaimRefused(r.refusal.clone()),
            [DerivedKind::ClaimUnlocked(_)] => Expect::Unlocked,
            [DerivedKind::ClaimClosed(_)] => Expect::Closed,
            [DerivedKind::BookingRecorded(b)] => Expect::Booked(b.status),
            [DerivedKind::RedFormChanged(c)] => Expect::Form(c.state),
            [DerivedKind::RedFormChanged(c), DerivedKind::InvoiceReversed(_)] if c.state == FormState::Confirmed => {
                Expect::FormConfirmed
            }
            // A failure's detail is for people; the test compares its reason.
            [DerivedKind::RedFormRefused(r)] => Expect::FormRefused(match &r.refusal {
                RedFormRefusal::Failed { reason, .. } => RedFormRefusal::Failed {
                    reason: *reason,
                    detail: String::new(),
                },
                other => other.clone(),
            }),
            other => panic!("unexpected derived events {other:?}"),
        },
    };
    assert_eq!(got, expected, "event {kind:?} by {who:?}: outcome {outcome:?}");
    if matches!(got, Expect::Rejected(_)) {
        assert_eq!(w.state, before, "a rejected event must not change the state");
    }
    w
}

// Event builders the rule tests and the API entry tests share.

pub fn invoice(r: InvoiceRequested) -> EventKind {
    EventKind::InvoiceRequested(r)
}

pub fn base(w: &mut World) {
    w.pay("P1", 100_00).unwrap();
    w.pay("P2", 30_00).unwrap();
}

pub fn pay_event(id: &str, fen: i64) -> EventKind {
    EventKind::PaymentRecorded(payment(id, fen))
}

pub fn refund_event(payment_id: &str, refund_id: &str, fen: i64) -> EventKind {
    EventKind::PaymentRefunded(PaymentRefunded {
        payment_id: payment_id.into(),
        refund_id: refund_id.into(),
        amount: Fen::from_fen(fen),
        reason: String::new(),
    })
}

pub fn deposit_event(id: &str, fen: i64) -> EventKind {
    EventKind::FeeDeposited(FeeDeposited {
        deposit_id: id.into(),
        amount: Fen::from_fen(fen),
    })
}

/// The test invoice R1 (53.00 on P1), the same in every fresh world.
pub fn issue_r1(w: &mut World) {
    base(w);
    issued(&w.submit(invoice(request("R1", &["P1"]))));
}

pub fn r1() -> InvoiceIssued {
    let mut w = World::new();
    base(&mut w);
    issued(&w.submit(invoice(request("R1", &["P1"]))))
}

pub fn lock(inv: &InvoiceIssued, claim_ref: &str) -> EventKind {
    EventKind::InvoiceClaimRequested(ClaimRequested {
        invoice_number: inv.number,
        check_code: inv.check_code,
        claim_ref: claim_ref.into(),
    })
}

pub fn unlock(inv: &InvoiceIssued, claim_ref: &str) -> EventKind {
    EventKind::InvoiceClaimUnlocked(ClaimAction {
        invoice_number: inv.number,
        claim_ref: claim_ref.into(),
    })
}

pub fn close(inv: &InvoiceIssued, claim_ref: &str) -> EventKind {
    EventKind::InvoiceClaimClosed(ClaimAction {
        invoice_number: inv.number,
        claim_ref: claim_ref.into(),
    })
}

pub fn book(inv: &InvoiceIssued, status: BookingStatus) -> EventKind {
    EventKind::InvoiceBookingSet(BookingSet {
        invoice_number: inv.number,
        status,
    })
}

pub fn seller_red(inv: &InvoiceIssued, id: &str, scope: RedLetterScope) -> EventKind {
    EventKind::InvoiceRedLetterRequested(RedLetterRequested {
        request_id: id.into(),
        invoice_number: inv.number,
        reason: RedLetterReason::SalesReturn,
        scope,
    })
}

pub fn buyer_form(inv: &InvoiceIssued, scope: RedLetterScope) -> EventKind {
    EventKind::RedFormStarted(RedFormStart {
        invoice_number: inv.number,
        reason: RedLetterReason::SalesDiscount,
        scope,
    })
}

pub fn form_ref(inv: &InvoiceIssued, form: u32) -> RedFormRef {
    RedFormRef {
        invoice_number: inv.number,
        form,
    }
}

pub fn answer(inv: &InvoiceIssued, form: u32, confirm: bool) -> EventKind {
    EventKind::RedFormAnswered(RedFormAnswer {
        form: form_ref(inv, form),
        confirm,
    })
}

pub fn withdraw(inv: &InvoiceIssued, form: u32) -> EventKind {
    EventKind::RedFormWithdrawn(form_ref(inv, form))
}

pub fn as_who(w: &mut World, who: Who, kind: EventKind) -> Outcome {
    let k = signer(w, who);
    w.submit_as(&k, kind)
}

pub fn quota(month: u32, action: QuotaAction) -> EventKind {
    EventKind::QuotaChanged(QuotaChange { month, action })
}
