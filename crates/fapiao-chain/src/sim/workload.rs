//! The simulator's workload: what a merchant's back office, the consortium operator and a
//! verifier submit to one merchant's chain, drawn from a seeded generator.
//!
//! Every block carries a random mix of payments, refunds and reversals; invoice requests
//! that issue and that fail (bad buyer tax id, a tax rate genesis does not allow, an
//! unknown or reversed payment, a total above what the payments cover, ...); retries of
//! failed requests; requests that fail with `FEE_BALANCE_TOO_LOW` (the simulated
//! merchants start with a small fee balance) and the operator's fee deposits that issue
//! the waiting requests automatically; red-letter reversals, full and partial, and
//! corrected invoices that replace a reversed one; the verifier's claims (a first claim,
//! a second one that is refused, one with a wrong check code); and now and then an
//! operator policy change. Amounts are occasionally at or just below
//! [`AMOUNT_FEN_MAX`], and rarely above it (those are rejected at production and never
//! reach a witness).
//!
//! The client learns what its chain holds from the blocks its node stored
//! ([`Workload::observe`]) and reads amounts and statuses from the owner's state, so
//! most requests name real payments and invoices and a minority deliberately do not.
//! It never predicts an outcome: the domain decides, and every witness re-derives it.

use super::Rng;
use fapiao_core::event::{
    BookingSet, BookingStatus, Buyer, ClaimAction, ClaimRequested, Currency, FailureReason, FeeDeposited, FormState,
    InvoiceRequested, InvoiceType, LineItem, MerchantPolicy, PaymentMethod, PaymentRecorded, PaymentRefunded,
    PaymentVoided, QuotaAction, QuotaChange, RedFormAnswer, RedFormRef, RedFormStart, RedLetterReason,
    RedLetterRequested, RedLetterScope,
};
use fapiao_core::money::AMOUNT_FEN_MAX;
use fapiao_core::tax::{Classification, RateRule};
use fapiao_core::{
    Block, CheckCode, DerivedKind, Entry, Event, EventBody, EventKind, Fen, Hash32, InvoiceNumber, MemberCode,
    NetworkId, Quantity, SecretKey, TaxRate, Timestamp,
};
use fapiao_domain::state::{BlueInvoice, InvoiceRecord, MerchantMeta, PaymentRecord};
use fapiao_domain::{StateKey, StateRead, StateValue};
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

/// A buyer tax id (unified social credit code) with a valid check character.
pub(super) const VALID_TAX_ID: &str = "91110000600037341L";
/// The same code with a wrong check character.
const BAD_TAX_ID: &str = "91110000600037341M";
/// A rate no simulated policy has (the VAT rate before 2018).
const RATE_NOT_ALLOWED: TaxRate = TaxRate::Bp(1700);
/// A rate every simulated policy schedules from 2100-01-01, long after the simulated
/// clock: TAX_RATE_NOT_IN_FORCE.
const RATE_NOT_IN_FORCE: TaxRate = TaxRate::Bp(1600);
/// The rates and flags every simulated policy has, in force on every day.
const SIM_RATES: [TaxRate; 9] = fapiao_core::tax::CURRENT_RATES;

/// The rate rules of every simulated policy, in canonical order.
fn sim_rate_rules() -> Vec<RateRule> {
    let mut rules: Vec<RateRule> = SIM_RATES.into_iter().map(RateRule::always).collect();
    rules.push(RateRule {
        rate: RATE_NOT_IN_FORCE,
        from: Some(21000101),
        until: None,
    });
    rules.sort();
    rules
}
/// Most ids one list of the client's knowledge keeps (oldest dropped first).
const KNOWN_MAX: usize = 256;
/// Payments within this many fen of [`AMOUNT_FEN_MAX`] count as "at the bound".
const NEAR_BOUND_FEN: i64 = 10_000;

/// Who signs what on one merchant's chain.
pub(super) struct Signers<'a> {
    pub(super) network: NetworkId,
    pub(super) chain: MemberCode,
    /// The merchant's member key: payments, invoice and red-letter requests.
    pub(super) owner: &'a SecretKey,
    /// The operator member: fee deposits and policy.
    pub(super) operator: &'a SecretKey,
    /// The verifier member, also the tax office: claims and the monthly quota.
    pub(super) verifier: &'a SecretKey,
    /// The consortium's classification table.
    pub(super) codes: &'a [Classification],
}

/// The kinds of event the workload draws, with their weights.
#[derive(Clone, Copy, Debug)]
enum Pick {
    Payment,
    Refund,
    Reverse,
    Invoice,
    BadInvoice,
    Retry,
    RedLetter,
    Corrected,
    Claim,
    BuyerSide,
    Deposit,
    Policy,
    Quota,
}

/// One merchant's clients (back office, operator, verifier) and what they know.
#[derive(Debug, Clone)]
pub(super) struct Workload {
    rng: Rng,
    /// Makes every id unique on the chain.
    seq: u64,
    /// Payments recorded.
    payments: Vec<String>,
    /// Invoices issued, with their check codes (what a buyer holds).
    invoices: Vec<(InvoiceNumber, CheckCode)>,
    /// Invoice requests that failed (candidates for a retry).
    failed: Vec<String>,
    /// Invoices claimed once (candidates for a second claim).
    claimed: Vec<(InvoiceNumber, CheckCode)>,
    /// Invoices with a red-letter reversal (candidates for a corrected invoice).
    reversed: Vec<InvoiceNumber>,
}

fn remember<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if list.contains(&item) {
        return;
    }
    if list.len() >= KNOWN_MAX {
        list.remove(0);
    }
    list.push(item);
}

fn read<S: StateRead<Error = Infallible>>(state: &S, key: StateKey) -> Option<StateValue> {
    match state.get(&key) {
        Ok(v) => v,
        Err(e) => match e {},
    }
}

fn payment<S: StateRead<Error = Infallible>>(state: &S, id: &str) -> Option<PaymentRecord> {
    match read(state, StateKey::Payment(id.to_owned())) {
        Some(StateValue::Payment(p)) => Some(p),
        _ => None,
    }
}

/// What is left to invoice of a live payment (paid − refunded − invoiced), if positive.
fn invoiceable<S: StateRead<Error = Infallible>>(state: &S, id: &str) -> Option<i64> {
    let p = payment(state, id)?;
    if p.voided.is_some() {
        return None;
    }
    let invoiced = match read(state, StateKey::PaymentInvoicing(id.to_owned())) {
        Some(StateValue::PaymentInvoicing(i)) => i.invoiced.fen(),
        _ => 0,
    };
    let left = p.recorded.amount.fen() - p.refunded.fen() - invoiced;
    (left > 0).then_some(left)
}

fn invoiced<S: StateRead<Error = Infallible>>(state: &S, id: &str) -> i64 {
    match read(state, StateKey::PaymentInvoicing(id.to_owned())) {
        Some(StateValue::PaymentInvoicing(i)) => i.invoiced.fen(),
        _ => 0,
    }
}

fn blue<S: StateRead<Error = Infallible>>(state: &S, n: InvoiceNumber) -> Option<BlueInvoice> {
    match read(state, StateKey::Invoice(n)) {
        Some(StateValue::Invoice(InvoiceRecord::Blue(b))) => Some(b),
        _ => None,
    }
}

fn meta<S: StateRead<Error = Infallible>>(state: &S) -> Option<MerchantMeta> {
    match read(state, StateKey::Meta) {
        Some(StateValue::Meta(m)) => Some(m),
        _ => None,
    }
}

fn quota_queue_len<S: StateRead<Error = Infallible>>(state: &S) -> usize {
    match read(state, StateKey::QuotaBlocked) {
        Some(StateValue::QuotaBlocked(q)) => q.requests.len(),
        _ => 0,
    }
}

fn fee_queue_len<S: StateRead<Error = Infallible>>(state: &S) -> usize {
    match read(state, StateKey::FeeBlocked) {
        Some(StateValue::FeeBlocked(q)) => q.requests.len(),
        _ => 0,
    }
}

impl Workload {
    /// A client drawing from `rng`.
    pub(super) fn new(rng: Rng) -> Workload {
        Workload {
            rng,
            seq: 0,
            payments: Vec::new(),
            invoices: Vec::new(),
            failed: Vec::new(),
            claimed: Vec::new(),
            reversed: Vec::new(),
        }
    }

    /// Learns what `block`, now stored by the merchant's node, recorded.
    pub(super) fn observe(&mut self, block: &Block) {
        let mut red_letter = false;
        for e in &block.entries {
            match e {
                Entry::Event(ev) => {
                    red_letter = matches!(ev.body.kind, EventKind::InvoiceRedLetterRequested(_));
                    if let EventKind::PaymentRecorded(p) = &ev.body.kind {
                        remember(&mut self.payments, p.payment_id.clone());
                    }
                }
                Entry::Derived(d) => match &d.kind {
                    DerivedKind::InvoiceIssued(i) => remember(&mut self.invoices, (i.number, i.check_code)),
                    DerivedKind::InvoiceFailed(f) if !red_letter => remember(&mut self.failed, f.request_id.clone()),
                    DerivedKind::InvoiceFailed(_) => {}
                    DerivedKind::InvoiceReversed(r) => remember(&mut self.reversed, r.original),
                    DerivedKind::ClaimRecorded(c) => {
                        if let Some(known) = self.invoices.iter().find(|(n, _)| *n == c.invoice_number) {
                            remember(&mut self.claimed, *known);
                        }
                    }
                    DerivedKind::ClaimRefused(_)
                    | DerivedKind::ClaimUnlocked(_)
                    | DerivedKind::ClaimClosed(_)
                    | DerivedKind::BookingRecorded(_)
                    | DerivedKind::RedFormChanged(_)
                    | DerivedKind::RedFormRefused(_) => {}
                },
            }
        }
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}{}", self.seq)
    }

    fn pick<T: Clone>(&mut self, list: &[T]) -> Option<T> {
        if list.is_empty() {
            return None;
        }
        Some(list[self.rng.range(0, list.len() as u64 - 1) as usize].clone())
    }

    /// A partial reversal of `b`: mostly some lines of the original, in its order, each
    /// for part of its amount; now and then more than a line holds
    /// (RED_LETTER_EXCEEDS_REMAINING), lines out of order or a line the invoice does not
    /// have (RED_LETTER_LINE_UNKNOWN). Line amounts already reversed are not tracked here:
    /// the executor decides, as it does for a client.
    fn partial_of(&mut self, b: &BlueInvoice) -> RedLetterScope {
        let issued = &b.issued.lines;
        let first = self.rng.range(0, issued.len() as u64 - 1) as usize;
        let mut lines = Vec::new();
        for (i, l) in issued.iter().enumerate() {
            if i != first && !self.rng.chance(30) {
                continue;
            }
            let net = l.net.fen().max(1);
            let net = if self.rng.chance(10) {
                net + self.rng.range(1, 100) as i64
            } else {
                self.rng.range(1, net as u64) as i64
            };
            lines.push(LineItem {
                quantity: Quantity::ONE,
                unit_price: Fen::from_fen(net),
                ..l.item.clone()
            });
        }
        if self.rng.chance(5) {
            let rate = b.issued.lines[0].item.tax_rate;
            lines.push(LineItem {
                description: "returned".into(),
                tax_code: b.issued.lines[0].item.tax_code.clone(),
                quantity: Quantity::ONE,
                unit_price: Fen::from_fen(1),
                tax_rate: rate,
            });
        }
        if self.rng.chance(5) {
            lines.reverse();
        }
        RedLetterScope::Partial(lines)
    }

    /// The next block's input events, `n` of them (fewer when nothing fits).
    pub(super) fn events<S: StateRead<Error = Infallible>>(
        &mut self,
        who: &Signers<'_>,
        state: &S,
        now: u64,
        n: usize,
    ) -> Vec<Event> {
        let mut used = BTreeSet::new();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let deposit_weight = if fee_queue_len(state) > 0 { 12 } else { 3 };
            let table = [
                (Pick::Payment, 24),
                (Pick::Refund, 5),
                (Pick::Reverse, 2),
                (Pick::Invoice, 22),
                (Pick::BadInvoice, 10),
                (Pick::Retry, 7),
                (Pick::RedLetter, 9),
                (Pick::Corrected, 3),
                (Pick::Claim, 9),
                (Pick::BuyerSide, 8),
                (Pick::Deposit, deposit_weight),
                (Pick::Policy, 2),
                (Pick::Quota, if quota_queue_len(state) > 0 { 12 } else { 2 }),
            ];
            let total: u64 = table.iter().map(|(_, w)| w).sum();
            let mut roll = self.rng.range(0, total - 1);
            let mut pick = Pick::Payment;
            for (p, w) in table {
                if roll < w {
                    pick = p;
                    break;
                }
                roll -= w;
            }
            let event = match pick {
                Pick::Payment => None,
                Pick::Refund => self.refund(who, state, now),
                Pick::Reverse => self.reverse(who, state, now),
                Pick::Invoice => self.invoice(who, state, now, &mut used, None, None),
                Pick::BadInvoice => self.bad_invoice(who, state, now),
                Pick::Retry => self.retry(who, state, now, &mut used),
                Pick::RedLetter => self.red_letter(who, state, now),
                Pick::Corrected => self.corrected(who, state, now, &mut used),
                Pick::Claim => self.claim(who, state, now),
                Pick::BuyerSide => self.buyer_side(who, state, now),
                Pick::Deposit => Some(self.deposit(who, state, now)),
                Pick::Policy => Some(self.policy(who, now)),
                Pick::Quota => Some(self.quota(who, state, now)),
            };
            // With nothing to refer to yet, the client takes a payment instead.
            out.push(event.unwrap_or_else(|| self.payment(who, now)));
        }
        out
    }

    fn sign(&self, who: &Signers<'_>, key: &SecretKey, now: u64, kind: EventKind) -> Event {
        EventBody {
            network: who.network,
            chain: who.chain,
            author: key.public(),
            timestamp: Timestamp(now),
            kind,
        }
        .sign(key)
    }

    /// A payment; now and then at or just below the amount bound, rarely above it.
    pub(super) fn payment(&mut self, who: &Signers<'_>, now: u64) -> Event {
        let amount = match self.rng.range(0, 399) {
            0..=3 => AMOUNT_FEN_MAX,
            4..=7 => AMOUNT_FEN_MAX - self.rng.range(1, NEAR_BOUND_FEN as u64) as i64,
            // Rejected at production (AMOUNT_ABOVE_MAX): it never enters a block.
            8 => AMOUNT_FEN_MAX + 1,
            _ => self.rng.range(1, 200_000) as i64,
        };
        let id = self.next_id("p");
        let method = PaymentMethod::ALL[self.rng.range(0, PaymentMethod::ALL.len() as u64 - 1) as usize];
        let kind = EventKind::PaymentRecorded(PaymentRecorded {
            external_ref: format!("x-{id}"),
            payment_id: id,
            amount: Fen::from_fen(amount),
            currency: Currency::Cny,
            method,
            terminal_id: "pos-1".into(),
        });
        self.sign(who, who.owner, now, kind)
    }

    fn refund<S: StateRead<Error = Infallible>>(&mut self, who: &Signers<'_>, state: &S, now: u64) -> Option<Event> {
        let id = self.pick(&self.payments.clone())?;
        let p = payment(state, &id)?;
        let refundable = p.recorded.amount.fen() - p.refunded.fen();
        if refundable <= 0 || p.voided.is_some() {
            return None;
        }
        let amount = if self.rng.chance(20) {
            refundable
        } else {
            self.rng.range(1, refundable as u64) as i64
        };
        let refund_id = self.next_id("f");
        let kind = EventKind::PaymentRefunded(PaymentRefunded {
            payment_id: id,
            refund_id,
            amount: Fen::from_fen(amount),
            reason: "goods returned".into(),
        });
        Some(self.sign(who, who.owner, now, kind))
    }

    /// Reverses a payment, preferring one no invoice draws on (one that is invoiced is
    /// rejected, which is also worth producing now and then).
    fn reverse<S: StateRead<Error = Infallible>>(&mut self, who: &Signers<'_>, state: &S, now: u64) -> Option<Event> {
        let payments = self.payments.clone();
        let mut id = self.pick(&payments)?;
        for _ in 0..3 {
            if invoiced(state, &id) == 0 {
                break;
            }
            id = self.pick(&payments)?;
        }
        let kind = EventKind::PaymentVoided(PaymentVoided {
            payment_id: id,
            reason: "entered twice".into(),
        });
        Some(self.sign(who, who.owner, now, kind))
    }

    /// Up to two known payments with something left to invoice, not used by another
    /// request of this block, and what they still cover.
    fn payments_with_left<S: StateRead<Error = Infallible>>(
        &mut self,
        state: &S,
        used: &BTreeSet<String>,
        among: &[String],
    ) -> Option<(Vec<String>, i64)> {
        let want = if self.rng.chance(25) { 2 } else { 1 };
        let mut ids = Vec::new();
        let mut left = 0i64;
        for _ in 0..6 {
            if ids.len() == want {
                break;
            }
            let Some(id) = self.pick(among) else { break };
            if used.contains(&id) || ids.contains(&id) {
                continue;
            }
            if let Some(l) = invoiceable(state, &id) {
                left += l;
                ids.push(id);
            }
        }
        (!ids.is_empty()).then_some((ids, left))
    }

    /// Lines whose total (tax included) is at most `max` fen (`max` ≥ 1), over the
    /// rates and flags every policy has (no exempt line on a special VAT invoice), the
    /// table's codes and a few quantities, so rounding is exercised.
    fn lines_within(&mut self, codes: &[Classification], special: bool, max: i64) -> Vec<LineItem> {
        let rates: Vec<TaxRate> = SIM_RATES
            .into_iter()
            .filter(|r| !(special && *r == TaxRate::Exempt))
            .collect();
        let code = |rng: &mut Rng| codes[rng.range(0, codes.len() as u64 - 1) as usize].code.clone();
        let count = self.rng.range(1, 3) as i64;
        let budget = max / count;
        let mut lines = Vec::new();
        for k in 0..count {
            if budget < 2 {
                break;
            }
            let mut rate = rates[self.rng.range(0, rates.len() as u64 - 1) as usize];
            let mut net = (i128::from(budget) * 10_000 / (10_000 + i128::from(rate.bp()))) as i64 - 1;
            if net < 1 {
                rate = TaxRate::Bp(0);
                net = budget - 1;
            }
            let net = if self.rng.chance(30) {
                net
            } else {
                self.rng.range(1, net as u64) as i64
            };
            let quantity = [1000, 2000, 500, 3000, 1500][self.rng.range(0, 4) as usize];
            let mut unit = (i128::from(net) * 1000 / i128::from(quantity)) as i64;
            let mut quantity = quantity;
            if !(1..=AMOUNT_FEN_MAX).contains(&unit) {
                quantity = 1000;
                unit = net;
            }
            lines.push(LineItem {
                description: format!("item {k}"),
                tax_code: code(&mut self.rng),
                quantity: Quantity(quantity),
                unit_price: Fen::from_fen(unit),
                tax_rate: rate,
            });
        }
        match fapiao_domain::amounts::totals(&lines, |_| String::new()) {
            Some(t) if !lines.is_empty() && t.total.fen() <= max => lines,
            _ => vec![LineItem {
                description: "item".into(),
                tax_code: code(&mut self.rng),
                quantity: Quantity::ONE,
                unit_price: Fen::from_fen(1),
                tax_rate: TaxRate::Bp(0),
            }],
        }
    }

    fn buyer(&mut self, invoice_type: InvoiceType) -> Buyer {
        let tax_id = (invoice_type == InvoiceType::SpecialVat || self.rng.chance(50)).then(|| VALID_TAX_ID.to_owned());
        Buyer {
            name: "Shanghai Trading Co".into(),
            tax_id,
        }
    }

    /// A request that should issue: known payments with something left, lines within
    /// what they cover and the merchant's limit, a valid buyer. It still fails when the
    /// fee balance is low (and waits for a deposit), or when an earlier event of the
    /// same block changed the picture.
    fn invoice<S: StateRead<Error = Infallible>>(
        &mut self,
        who: &Signers<'_>,
        state: &S,
        now: u64,
        used: &mut BTreeSet<String>,
        retry_of: Option<String>,
        replaces: Option<(InvoiceNumber, Vec<String>)>,
    ) -> Option<Event> {
        let among = match &replaces {
            Some((_, ids)) => ids.clone(),
            None => self.payments.clone(),
        };
        let (payment_ids, left) = self.payments_with_left(state, used, &among)?;
        let policy = meta(state).map(|m| m.policy);
        let limit = policy.as_ref().map_or(AMOUNT_FEN_MAX, |p| p.max_invoice_total.fen());
        let cap = left.min(limit).min(AMOUNT_FEN_MAX);
        if cap < 1 {
            return None;
        }
        let max = if self.rng.chance(20) {
            cap
        } else {
            self.rng.range(1, cap as u64) as i64
        };
        let special_ok = policy.is_none_or(|p| p.permitted_types.contains(&InvoiceType::SpecialVat));
        let invoice_type = if special_ok && self.rng.chance(30) {
            InvoiceType::SpecialVat
        } else {
            InvoiceType::Normal
        };
        let lines = self.lines_within(who.codes, invoice_type == InvoiceType::SpecialVat, max);
        used.extend(payment_ids.iter().cloned());
        let request = InvoiceRequested {
            request_id: self.next_id("r"),
            invoice_type,
            buyer: self.buyer(invoice_type),
            lines,
            payment_ids,
            retry_of,
            replaces: replaces.map(|(n, _)| n),
        };
        Some(self.sign(who, who.owner, now, EventKind::InvoiceRequested(request)))
    }

    /// A request with one deliberate defect (the failure reason it should record is in
    /// the comment; an earlier check may of course catch something first).
    fn bad_invoice<S: StateRead<Error = Infallible>>(
        &mut self,
        who: &Signers<'_>,
        state: &S,
        now: u64,
    ) -> Option<Event> {
        let pid = self.pick(&self.payments.clone())?;
        let left = invoiceable(state, &pid).unwrap_or(0);
        let mut r = InvoiceRequested {
            request_id: self.next_id("r"),
            invoice_type: InvoiceType::Normal,
            buyer: self.buyer(InvoiceType::Normal),
            lines: self.lines_within(who.codes, false, left.max(1)),
            payment_ids: vec![pid.clone()],
            retry_of: None,
            replaces: None,
        };
        match self.rng.range(0, 8) {
            // BUYER_TAX_ID_INVALID
            0 | 1 => r.buyer.tax_id = Some(BAD_TAX_ID.into()),
            // TAX_RATE_NOT_ALLOWED
            2 => r.lines[0].tax_rate = RATE_NOT_ALLOWED,
            // TAX_RATE_NOT_IN_FORCE, or TAX_CODE_UNKNOWN (a code not in the table, or
            // a mistyped one)
            3 => match self.rng.range(0, 2) {
                0 => r.lines[0].tax_rate = RATE_NOT_IN_FORCE,
                1 => r.lines[0].tax_code = "3070401000000000009".into(),
                _ => r.lines[0].tax_code = "307040100000000000".into(),
            },
            // PAYMENT_NOT_FOUND
            4 => r.payment_ids = vec![format!("nope-{}", self.seq)],
            // TOTAL_ABOVE_INVOICEABLE (rejected as above the bound when the payment is
            // itself at the bound)
            5 => {
                r.lines = vec![LineItem {
                    description: "too much".into(),
                    tax_code: r.lines[0].tax_code.clone(),
                    quantity: Quantity::ONE,
                    unit_price: Fen::from_fen(left + self.rng.range(1, 1_000) as i64),
                    tax_rate: TaxRate::Bp(0),
                }]
            }
            // BUYER_TAX_ID_REQUIRED
            6 => {
                r.invoice_type = InvoiceType::SpecialVat;
                r.buyer.tax_id = None;
            }
            // LINE_QUANTITY_NOT_POSITIVE
            7 => r.lines[0].quantity = Quantity(0),
            // PAYMENTS_INVALID
            _ => r.payment_ids = vec![pid.clone(), pid],
        }
        Some(self.sign(who, who.owner, now, EventKind::InvoiceRequested(r)))
    }

    /// A corrected request for a failed one; now and then one that names a request
    /// already retried or issued since (RETRY_OF_INVALID).
    fn retry<S: StateRead<Error = Infallible>>(
        &mut self,
        who: &Signers<'_>,
        state: &S,
        now: u64,
        used: &mut BTreeSet<String>,
    ) -> Option<Event> {
        let failed = self.failed.clone();
        let mut id = self.pick(&failed)?;
        for _ in 0..4 {
            let open = match read(state, StateKey::Request(id.clone())) {
                Some(StateValue::Request(r)) => {
                    r.retried_by.is_none() && matches!(r.outcome, fapiao_domain::state::RequestOutcome::Failed { .. })
                }
                _ => false,
            };
            if open || self.rng.chance(15) {
                break;
            }
            id = self.pick(&failed)?;
        }
        self.invoice(who, state, now, used, Some(id), None)
    }

    fn red_letter<S: StateRead<Error = Infallible>>(
        &mut self,
        who: &Signers<'_>,
        state: &S,
        now: u64,
    ) -> Option<Event> {
        let reason = RedLetterReason::ALL[self.rng.range(0, 3) as usize];
        let request_id = self.next_id("rl");
        if self.rng.chance(4) {
            // INVOICE_NOT_FOUND
            let invoice_number = InvoiceNumber::new(70, who.chain, 999_999)?;
            let kind = EventKind::InvoiceRedLetterRequested(RedLetterRequested {
                request_id,
                invoice_number,
                reason,
                scope: RedLetterScope::Full,
            });
            return Some(self.sign(who, who.owner, now, kind));
        }
        let invoices = self.invoices.clone();
        let (mut n, _) = self.pick(&invoices)?;
        let mut b = blue(state, n)?;
        for _ in 0..3 {
            // A fully reversed one now and then: INVOICE_ALREADY_REVERSED.
            if !b.fully_reversed() || self.rng.chance(20) {
                break;
            }
            n = self.pick(&invoices)?.0;
            b = blue(state, n)?;
        }
        let scope = if b.fully_reversed() || self.rng.chance(45) {
            RedLetterScope::Full
        } else {
            self.partial_of(&b)
        };
        let kind = EventKind::InvoiceRedLetterRequested(RedLetterRequested {
            request_id,
            invoice_number: n,
            reason,
            scope,
        });
        Some(self.sign(who, who.owner, now, kind))
    }

    /// A corrected invoice replacing a reversed one, over the payments it drew on.
    fn corrected<S: StateRead<Error = Infallible>>(
        &mut self,
        who: &Signers<'_>,
        state: &S,
        now: u64,
        used: &mut BTreeSet<String>,
    ) -> Option<Event> {
        let n = self.pick(&self.reversed.clone())?;
        let b = blue(state, n)?;
        if b.replaced_by.is_some() && !self.rng.chance(20) {
            return None;
        }
        let drew_on: Vec<String> = b.issued.allocations.iter().map(|a| a.payment_id.clone()).collect();
        self.invoice(who, state, now, used, None, Some((n, drew_on)))
    }

    /// The verifier's claims: mostly a first claim, then a second claim of an invoice
    /// already claimed (refused), now and then a wrong check code (refused as unknown).
    fn claim<S: StateRead<Error = Infallible>>(&mut self, who: &Signers<'_>, state: &S, now: u64) -> Option<Event> {
        let roll = self.rng.range(0, 99);
        let (invoice_number, check_code) = if roll < 25 && !self.claimed.is_empty() {
            self.pick(&self.claimed.clone())?
        } else if roll < 35 {
            let (n, _) = self.pick(&self.invoices.clone())?;
            let mut wrong = [0u8; 32];
            wrong[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
            (n, CheckCode::from_digest(&Hash32(wrong)))
        } else {
            let invoices = self.invoices.clone();
            let mut pick = self.pick(&invoices)?;
            for _ in 0..3 {
                if blue(state, pick.0).is_some_and(|b| b.claim.is_none()) {
                    break;
                }
                pick = self.pick(&invoices)?;
            }
            pick
        };
        let kind = EventKind::InvoiceClaimRequested(ClaimRequested {
            invoice_number,
            check_code,
            claim_ref: self.next_id("c"),
        });
        Some(self.sign(who, who.verifier, now, kind))
    }

    /// The lock holder's (the verifier's) and the seller's moves on a claimed invoice:
    /// unlock, close, booking, red-letter confirmation forms started by the buyer's side,
    /// answered by whichever side a form waits for (now and then by the wrong one), and
    /// withdrawn. Forms the seller opens come from [`Workload::red_letter`] on invoices
    /// the buyer holds.
    fn buyer_side<S: StateRead<Error = Infallible>>(
        &mut self,
        who: &Signers<'_>,
        state: &S,
        now: u64,
    ) -> Option<Event> {
        let claimed = self.claimed.clone();
        let (invoice_number, _) = self.pick(&claimed)?;
        let b = blue(state, invoice_number)?;
        let claim_ref = b
            .claim
            .as_ref()
            .map_or_else(|| "c0".to_owned(), |c| c.claim_ref.clone());
        let action = ClaimAction {
            invoice_number,
            claim_ref,
        };
        let waiting = b.waiting_form(Timestamp(now)).cloned();
        let roll = self.rng.range(0, 99);
        let (key, kind) = match (roll, waiting) {
            (0..=69, Some(f)) => {
                let form = RedFormRef {
                    invoice_number,
                    form: f.form,
                };
                let confirm = self.rng.chance(60);
                // Mostly the side it waits for; sometimes the other (refused: wrong side).
                let seller = (f.state == FormState::WaitingForSeller) != self.rng.chance(10);
                let key = if seller { who.owner } else { who.verifier };
                if self.rng.chance(15) {
                    (key, EventKind::RedFormWithdrawn(form))
                } else {
                    (key, EventKind::RedFormAnswered(RedFormAnswer { form, confirm }))
                }
            }
            (0..=14, None) => (who.verifier, EventKind::InvoiceClaimUnlocked(action)),
            (15..=29, None) | (70..=79, _) => (who.verifier, EventKind::InvoiceClaimClosed(action)),
            (30..=49, None) | (80..=89, _) => {
                let status = BookingStatus::ALL[self.rng.range(0, 3) as usize];
                let kind = EventKind::InvoiceBookingSet(BookingSet { invoice_number, status });
                (who.verifier, kind)
            }
            _ => {
                let scope = if !b.fully_reversed() && self.rng.chance(50) {
                    self.partial_of(&b)
                } else {
                    RedLetterScope::Full
                };
                let kind = EventKind::RedFormStarted(RedFormStart {
                    invoice_number,
                    reason: RedLetterReason::ALL[self.rng.range(0, 3) as usize],
                    scope,
                });
                (who.verifier, kind)
            }
        };
        Some(self.sign(who, key, now, kind))
    }

    /// The operator credits a few invoices' worth of fees; rarely exactly up to the
    /// amount bound.
    fn deposit<S: StateRead<Error = Infallible>>(&mut self, who: &Signers<'_>, state: &S, now: u64) -> Event {
        let balance = meta(state).map_or(0, |m| m.fee_balance.fen());
        let amount = if self.rng.chance(1) && balance < AMOUNT_FEN_MAX {
            AMOUNT_FEN_MAX - balance
        } else {
            self.rng.range(10, 60) as i64
        };
        let kind = EventKind::FeeDeposited(FeeDeposited {
            deposit_id: self.next_id("d"),
            amount: Fen::from_fen(amount),
        });
        self.sign(who, who.operator, now, kind)
    }

    /// The tax office changes the month's quota: mostly a generous grant or a raise over
    /// what is used (re-running the waiting requests), sometimes a tight one
    /// (QUOTA_EXCEEDED), a suspension and its lifting, a re-validation; now and then for
    /// another month or below what is used (refused). The simulated clock spans seconds,
    /// so no month ends in a run: QUOTA_EXPIRED is left to the domain and process tests.
    fn quota<S: StateRead<Error = Infallible>>(&mut self, who: &Signers<'_>, state: &S, now: u64) -> Event {
        let used = match read(state, StateKey::Quota) {
            Some(StateValue::Quota(q)) => q.used.fen(),
            _ => 0,
        };
        let mut month = fapiao_core::Timestamp(now).utc8_month();
        // Requests wait for a grant: half the time the tax office answers them with one
        // for this month (what re-runs the queue).
        if quota_queue_len(state) > 0 && self.rng.chance(50) {
            let action = QuotaAction::Grant(Fen::from_fen((used + 5_000_000).min(AMOUNT_FEN_MAX)));
            return self.sign(
                who,
                who.verifier,
                now,
                EventKind::QuotaChanged(QuotaChange { month, action }),
            );
        }
        if self.rng.chance(3) {
            month += 1;
        }
        let action = match self.rng.range(0, 19) {
            0..=8 => QuotaAction::Grant(Fen::from_fen(
                (used + self.rng.range(1, 5_000_000) as i64).min(AMOUNT_FEN_MAX),
            )),
            9..=10 => QuotaAction::Grant(Fen::from_fen(used + self.rng.range(0, 10_000) as i64)),
            11 => QuotaAction::Grant(Fen::from_fen((used - 1).max(0))),
            12..=14 => QuotaAction::Suspend,
            15..=17 => QuotaAction::Resume,
            _ => QuotaAction::Revalidate,
        };
        self.sign(
            who,
            who.verifier,
            now,
            EventKind::QuotaChanged(QuotaChange { month, action }),
        )
    }

    /// The operator changes the merchant's policy: back to the default, a low limit
    /// (TOTAL_ABOVE_MERCHANT_LIMIT), or ordinary invoices only (INVOICE_TYPE_NOT_PERMITTED).
    fn policy(&mut self, who: &Signers<'_>, now: u64) -> Event {
        let p = match self.rng.range(0, 3) {
            0 | 1 => default_policy(),
            2 => MerchantPolicy {
                permitted_types: vec![InvoiceType::Normal, InvoiceType::SpecialVat],
                max_invoice_total: Fen::from_fen(50_000),
                rates: sim_rate_rules(),
            },
            _ => MerchantPolicy {
                permitted_types: vec![InvoiceType::Normal],
                max_invoice_total: Fen::MAX,
                rates: sim_rate_rules(),
            },
        };
        self.sign(who, who.operator, now, EventKind::MerchantPolicySet(p))
    }
}

/// The simulated merchants' policy in genesis: both invoice types, no limit below the
/// amount bound.
pub(super) fn default_policy() -> MerchantPolicy {
    MerchantPolicy {
        permitted_types: vec![InvoiceType::Normal, InvoiceType::SpecialVat],
        max_invoice_total: Fen::MAX,
        rates: sim_rate_rules(),
    }
}

/// What the workload made the ledger do, counted from stored blocks (input events and
/// the entries every witness re-derived from them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadCounts {
    /// Payments recorded.
    pub payments: u64,
    /// Of those, within 10,000 fen of the amount bound.
    pub payments_near_bound: u64,
    /// Refunds recorded.
    pub refunds: u64,
    /// Payments reversed.
    pub payment_reversals: u64,
    /// Invoices issued in answer to their request.
    pub invoices_issued: u64,
    /// Invoice requests that failed (including a re-run that failed for a new reason).
    pub invoices_failed: u64,
    /// Of those, for a fee balance below the fee.
    pub fee_failures: u64,
    /// Requests naming a failed request in `retry_of` (any outcome).
    pub retries: u64,
    /// Of those, issued.
    pub retries_issued: u64,
    /// Corrected invoices issued to replace a reversed one.
    pub corrected_issued: u64,
    /// Fee deposits by the operator.
    pub fee_deposits: u64,
    /// Invoices a deposit issued automatically from the fee queue.
    pub auto_reissued: u64,
    /// Full red-letter reversals.
    pub red_letters_full: u64,
    /// Partial red-letter reversals.
    pub red_letters_partial: u64,
    /// Red-letter requests that failed.
    pub red_letters_failed: u64,
    /// Claims recorded.
    pub claims_recorded: u64,
    /// Claims refused.
    pub claims_refused: u64,
    /// Locks released by their holder.
    pub claims_unlocked: u64,
    /// Claims closed (reimbursed).
    pub claims_closed: u64,
    /// Booking statuses recorded.
    pub bookings: u64,
    /// Confirmation forms that started waiting.
    pub forms_opened: u64,
    /// Forms confirmed (a red invoice issued).
    pub forms_confirmed: u64,
    /// Forms rejected, withdrawn or void.
    pub forms_closed_unconfirmed: u64,
    /// Form actions refused (wrong side, not waiting, ...).
    pub form_refusals: u64,
    /// Policy changes by the operator.
    pub policy_changes: u64,
    /// Quota changes by the tax office.
    pub quota_changes: u64,
    /// Invoices a quota change issued automatically from the quota queue.
    pub quota_reissued: u64,
    /// Events the producing member's execution rejected (they never entered a block).
    pub rejected: u64,
    /// Every failure reason recorded, with how often.
    pub failure_reasons: BTreeMap<FailureReason, u64>,
}

impl WorkloadCounts {
    /// Counts what `blocks` hold.
    pub fn of_blocks(blocks: &[Block]) -> WorkloadCounts {
        let mut c = WorkloadCounts::default();
        for b in blocks {
            c.count_block(b);
        }
        c
    }

    fn count_block(&mut self, block: &Block) {
        let mut last: Option<&EventKind> = None;
        for e in &block.entries {
            match e {
                Entry::Event(ev) => {
                    let kind = &ev.body.kind;
                    match kind {
                        EventKind::PaymentRecorded(p) => {
                            self.payments += 1;
                            if p.amount.fen() > AMOUNT_FEN_MAX - NEAR_BOUND_FEN {
                                self.payments_near_bound += 1;
                            }
                        }
                        EventKind::PaymentRefunded(_) => self.refunds += 1,
                        EventKind::PaymentVoided(_) => self.payment_reversals += 1,
                        EventKind::InvoiceRequested(r) if r.retry_of.is_some() => self.retries += 1,
                        EventKind::FeeDeposited(_) => self.fee_deposits += 1,
                        EventKind::MerchantPolicySet(_) => self.policy_changes += 1,
                        EventKind::QuotaChanged(_) => self.quota_changes += 1,
                        _ => {}
                    }
                    last = Some(kind);
                }
                Entry::Derived(d) => match (&d.kind, last) {
                    (DerivedKind::InvoiceIssued(_), Some(EventKind::FeeDeposited(_))) => self.auto_reissued += 1,
                    (DerivedKind::InvoiceIssued(_), Some(EventKind::QuotaChanged(_))) => self.quota_reissued += 1,
                    (DerivedKind::InvoiceIssued(_), Some(EventKind::InvoiceRequested(r))) => {
                        self.invoices_issued += 1;
                        if r.retry_of.is_some() {
                            self.retries_issued += 1;
                        }
                        if r.replaces.is_some() {
                            self.corrected_issued += 1;
                        }
                    }
                    (DerivedKind::InvoiceIssued(_), _) => {}
                    (DerivedKind::InvoiceFailed(f), Some(EventKind::InvoiceRedLetterRequested(_))) => {
                        self.red_letters_failed += 1;
                        *self.failure_reasons.entry(f.reason).or_default() += 1;
                    }
                    (DerivedKind::InvoiceFailed(f), _) => {
                        self.invoices_failed += 1;
                        if f.reason == FailureReason::FeeBalanceTooLow {
                            self.fee_failures += 1;
                        }
                        *self.failure_reasons.entry(f.reason).or_default() += 1;
                    }
                    (DerivedKind::InvoiceReversed(_), Some(EventKind::InvoiceRedLetterRequested(r))) => match r.scope {
                        RedLetterScope::Full => self.red_letters_full += 1,
                        RedLetterScope::Partial(_) => self.red_letters_partial += 1,
                    },
                    (DerivedKind::InvoiceReversed(_), _) => {}
                    (DerivedKind::ClaimRecorded(_), _) => self.claims_recorded += 1,
                    (DerivedKind::ClaimRefused(_), _) => self.claims_refused += 1,
                    (DerivedKind::ClaimUnlocked(_), _) => self.claims_unlocked += 1,
                    (DerivedKind::ClaimClosed(_), _) => self.claims_closed += 1,
                    (DerivedKind::BookingRecorded(_), _) => self.bookings += 1,
                    (DerivedKind::RedFormChanged(f), _) => match f.state {
                        FormState::Confirmed => self.forms_confirmed += 1,
                        FormState::WaitingForBuyer | FormState::WaitingForSeller => self.forms_opened += 1,
                        _ => self.forms_closed_unconfirmed += 1,
                    },
                    (DerivedKind::RedFormRefused(_), _) => self.form_refusals += 1,
                },
            }
        }
    }

    /// Adds `other` into `self` (totals over chains or seeds).
    pub fn add(&mut self, other: &WorkloadCounts) {
        self.payments += other.payments;
        self.payments_near_bound += other.payments_near_bound;
        self.refunds += other.refunds;
        self.payment_reversals += other.payment_reversals;
        self.invoices_issued += other.invoices_issued;
        self.invoices_failed += other.invoices_failed;
        self.fee_failures += other.fee_failures;
        self.retries += other.retries;
        self.retries_issued += other.retries_issued;
        self.corrected_issued += other.corrected_issued;
        self.fee_deposits += other.fee_deposits;
        self.auto_reissued += other.auto_reissued;
        self.quota_changes += other.quota_changes;
        self.quota_reissued += other.quota_reissued;
        self.red_letters_full += other.red_letters_full;
        self.red_letters_partial += other.red_letters_partial;
        self.red_letters_failed += other.red_letters_failed;
        self.claims_recorded += other.claims_recorded;
        self.claims_refused += other.claims_refused;
        self.claims_unlocked += other.claims_unlocked;
        self.claims_closed += other.claims_closed;
        self.bookings += other.bookings;
        self.forms_opened += other.forms_opened;
        self.forms_confirmed += other.forms_confirmed;
        self.forms_closed_unconfirmed += other.forms_closed_unconfirmed;
        self.form_refusals += other.form_refusals;
        self.policy_changes += other.policy_changes;
        self.rejected += other.rejected;
        for (r, n) in &other.failure_reasons {
            *self.failure_reasons.entry(*r).or_default() += n;
        }
    }

    /// The event families a run of many seeds must have exercised, by name, with their
    /// counts: a zero means the workload (or the ledger) stopped doing something.
    pub fn families(&self) -> Vec<(&'static str, u64)> {
        let reason = |r: FailureReason| self.failure_reasons.get(&r).copied().unwrap_or(0);
        vec![
            ("payments", self.payments),
            ("payments near the amount bound", self.payments_near_bound),
            ("refunds", self.refunds),
            ("payments voided", self.payment_reversals),
            ("invoices issued", self.invoices_issued),
            ("invoices failed", self.invoices_failed),
            ("failed: buyer tax id invalid", reason(FailureReason::BuyerTaxIdInvalid)),
            ("failed: tax rate not allowed", reason(FailureReason::TaxRateNotAllowed)),
            (
                "failed: tax rate not in force",
                reason(FailureReason::TaxRateNotInForce),
            ),
            ("failed: tax code unknown", reason(FailureReason::TaxCodeUnknown)),
            ("failed: payment not found", reason(FailureReason::PaymentNotFound)),
            (
                "failed: total above invoiceable",
                reason(FailureReason::TotalAboveInvoiceable),
            ),
            ("failed: fee balance too low", self.fee_failures),
            ("retries issued", self.retries_issued),
            ("failed: retry_of invalid", reason(FailureReason::RetryOfInvalid)),
            ("fee deposits", self.fee_deposits),
            ("auto re-issued by a deposit", self.auto_reissued),
            ("red-letters full", self.red_letters_full),
            ("red-letters partial", self.red_letters_partial),
            ("corrected invoices", self.corrected_issued),
            ("claims recorded", self.claims_recorded),
            ("claims refused", self.claims_refused),
            ("claims unlocked", self.claims_unlocked),
            ("claims closed", self.claims_closed),
            ("bookings", self.bookings),
            ("forms opened (waiting)", self.forms_opened),
            ("forms confirmed", self.forms_confirmed),
            ("forms rejected or withdrawn", self.forms_closed_unconfirmed),
            ("form actions refused", self.form_refusals),
            ("policy changes", self.policy_changes),
            ("quota changes", self.quota_changes),
            ("failed: quota exceeded", reason(FailureReason::QuotaExceeded)),
            ("failed: quota suspended", reason(FailureReason::QuotaSuspended)),
            ("auto re-issued by a quota change", self.quota_reissued),
        ]
    }
}
