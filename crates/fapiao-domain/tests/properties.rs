//! Property tests over random event sequences: execution is deterministic, money is
//! conserved per payment, fees are conserved, invoice numbers are gap-free, the quota's
//! use never exceeds its grant and red invoices give it back.
// Amounts are written yuan_fen (100_00 is 100.00 yuan), on purpose.
#![allow(clippy::inconsistent_digit_grouping)]

use fapiao_core::event::*;
use fapiao_core::*;
use fapiao_domain::state::{InvoiceRecord, StateKey, StateValue};
use fapiao_testkit::world::*;
use proptest::prelude::*;

/// The rates and flags lines use: every one the test merchant has, and 7%, which no
/// policy has.
fn rates() -> Vec<TaxRate> {
    let mut r = fapiao_core::tax::CURRENT_RATES.to_vec();
    r.push(TaxRate::Bp(700));
    r
}

#[derive(Debug, Clone)]
enum Op {
    Pay(u8, i64),
    Refund(u8, u8, i64),
    Reverse(u8),
    Request {
        id: u8,
        payments: Vec<u8>,
        lines: Vec<(i64, i64, usize)>,
        special: bool,
        tax_id: u8,
        retry_of: Option<u8>,
    },
    RedLetter {
        id: u8,
        seq: u64,
        partial: Option<(i64, i64, usize)>,
    },
    Deposit(u8, i64),
    Policy(bool, i64),
    Claim(u64, bool),
    /// A tax office's quota change this month: 0 grant (the amount), 1 suspend, 2 resume,
    /// 3 re-validate.
    Quota(u8, i64),
}

/// An amount in fen: mostly everyday sums, often near or at the bound
/// (`AMOUNT_FEN_MAX`), sometimes just past it or not positive (refused).
fn amount() -> impl Strategy<Value = i64> + Clone {
    const MAX: i64 = fapiao_core::money::AMOUNT_FEN_MAX;
    prop_oneof![
        6 => 1i64..20_000,
        2 => (MAX - 20_000)..=MAX,
        2 => 1i64..=MAX,
        1 => prop_oneof![Just(0i64), Just(-1i64), Just(MAX + 1), (MAX + 1)..=i64::MAX, Just(i64::MIN)],
    ]
}

/// A unit price: everyday, at the bound, or beyond it.
fn unit_price() -> impl Strategy<Value = i64> + Clone {
    const MAX: i64 = fapiao_core::money::AMOUNT_FEN_MAX;
    prop_oneof![
        6 => -100i64..8000,
        1 => (MAX - 1000)..=(MAX + 1),
        1 => 1i64..=MAX,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let line = (0i64..3000, unit_price(), 0usize..rates().len());
    prop_oneof![
        4 => (0u8..8, amount()).prop_map(|(p, a)| Op::Pay(p, a)),
        1 => (0u8..8, 0u8..8, amount()).prop_map(|(r, p, a)| Op::Refund(r, p, a)),
        1 => (0u8..8).prop_map(Op::Reverse),
        5 => (0u8..16, prop::collection::vec(0u8..8, 0..3), prop::collection::vec(line.clone(), 0..3), any::<bool>(), 0u8..3, prop::option::of(0u8..16))
            .prop_map(|(id, payments, lines, special, tax_id, retry_of)| Op::Request { id, payments, lines, special, tax_id, retry_of }),
        2 => (16u8..32, 1u64..8, prop::option::of(line)).prop_map(|(id, seq, partial)| Op::RedLetter { id, seq, partial }),
        1 => (0u8..4, prop_oneof![3 => 1i64..50, 1 => amount()]).prop_map(|(d, a)| Op::Deposit(d, a)),
        1 => (any::<bool>(), prop_oneof![3 => 0i64..30_000, 1 => amount()]).prop_map(|(s, m)| Op::Policy(s, m)),
        1 => (1u64..8, any::<bool>()).prop_map(|(s, ok)| Op::Claim(s, ok)),
        1 => (0u8..4, prop_oneof![3 => 0i64..30_000, 1 => amount()]).prop_map(|(a, m)| Op::Quota(a, m)),
    ]
}

fn to_line((q, p, r): (i64, i64, usize)) -> LineItem {
    let mut l = line(q, p, 0);
    l.tax_rate = rates()[r];
    l
}

/// The event an op stands for, and who signs it.
fn event(w: &World, op: &Op) -> Event {
    let owner = w.owner.clone();
    let (author, kind) = match op.clone() {
        Op::Pay(p, a) => (owner, EventKind::PaymentRecorded(payment(&format!("P{p}"), a))),
        Op::Refund(r, p, a) => (
            owner,
            EventKind::PaymentRefunded(PaymentRefunded {
                payment_id: format!("P{p}"),
                refund_id: format!("F{r}"),
                amount: Fen::from_fen(a),
                reason: String::new(),
            }),
        ),
        Op::Reverse(p) => (
            owner,
            EventKind::PaymentVoided(PaymentVoided {
                payment_id: format!("P{p}"),
                reason: String::new(),
            }),
        ),
        Op::Request {
            id,
            payments,
            lines,
            special,
            tax_id,
            retry_of,
        } => {
            let mut r = request(&format!("R{id}"), &[]);
            r.payment_ids = payments.iter().map(|p| format!("P{p}")).collect();
            r.lines = lines.into_iter().map(to_line).collect();
            r.invoice_type = if special {
                InvoiceType::SpecialVat
            } else {
                InvoiceType::Normal
            };
            r.buyer.tax_id = match tax_id {
                0 => None,
                1 => Some(VALID_TAX_ID.into()),
                _ => Some("91110000600037341X".into()),
            };
            r.retry_of = retry_of.map(|x| format!("R{x}"));
            (owner, EventKind::InvoiceRequested(r))
        }
        Op::RedLetter { id, seq, partial } => (
            owner,
            EventKind::InvoiceRedLetterRequested(RedLetterRequested {
                request_id: format!("R{id}"),
                invoice_number: InvoiceNumber::new(26, w.chain, seq).unwrap(),
                reason: RedLetterReason::SalesReturn,
                scope: match partial {
                    None => RedLetterScope::Full,
                    Some(l) => RedLetterScope::Partial(vec![to_line(l)]),
                },
            }),
        ),
        Op::Deposit(d, a) => (
            w.operator.clone(),
            EventKind::FeeDeposited(FeeDeposited {
                deposit_id: format!("D{d}"),
                amount: Fen::from_fen(a),
            }),
        ),
        Op::Policy(special, max) => (
            w.operator.clone(),
            EventKind::MerchantPolicySet(MerchantPolicy {
                permitted_types: if special {
                    vec![InvoiceType::Normal, InvoiceType::SpecialVat]
                } else {
                    vec![InvoiceType::Normal]
                },
                max_invoice_total: Fen::from_fen(max),
                rates: policy_rates(),
            }),
        ),
        Op::Quota(action, amount) => (
            w.tax_office.clone(),
            EventKind::QuotaChanged(QuotaChange {
                month: Timestamp(w.time + 1000).utc8_month(),
                action: match action {
                    0 => QuotaAction::Grant(Fen::from_fen(amount)),
                    1 => QuotaAction::Suspend,
                    2 => QuotaAction::Resume,
                    _ => QuotaAction::Revalidate,
                },
            }),
        ),
        Op::Claim(seq, ok) => {
            let n = InvoiceNumber::new(26, w.chain, seq).unwrap();
            let code = match w.invoice(n) {
                Some(InvoiceRecord::Blue(b)) if ok => b.issued.check_code,
                _ => "12345678901234567890".parse().unwrap(),
            };
            (
                w.verifier.clone(),
                EventKind::InvoiceClaimRequested(ClaimRequested {
                    invoice_number: n,
                    check_code: code,
                    claim_ref: "EXP".into(),
                }),
            )
        }
    };
    w.event(&author, kind)
}

/// Runs ops in blocks of the given sizes; returns every block's entries and the world.
fn run(ops: &[Op], chunks: &[usize]) -> (Vec<Vec<Entry>>, World) {
    let mut w = World::new();
    let mut out = Vec::new();
    let mut i = 0;
    let mut c = 0;
    while i < ops.len() {
        let n = chunks[c % chunks.len()].max(1).min(ops.len() - i);
        c += 1;
        let events: Vec<Event> = ops[i..i + n].iter().map(|o| event(&w, o)).collect();
        i += n;
        out.push(w.block(&events).entries);
    }
    (out, w)
}

/// Invariants over the whole state.
fn check_state(w: &World, deposits: i128) {
    // Sums in i128: amounts reach AMOUNT_FEN_MAX, and the test must not overflow first.
    let mut invoiced_by_payment = std::collections::BTreeMap::<String, i128>::new();
    let mut sequences = Vec::new();
    let mut blue_issued = 0i64;
    for (k, v) in &w.state.0 {
        match (k, v) {
            (StateKey::Invoice(n), StateValue::Invoice(rec)) => {
                sequences.push(n.sequence());
                if let InvoiceRecord::Blue(b) = rec {
                    blue_issued += 1;
                    let standing: i128 = b.standing.iter().map(|a| i128::from(a.amount.fen())).sum();
                    assert_eq!(
                        standing,
                        i128::from(b.remaining_total().expect("within the bounds").fen()),
                        "standing allocations cover what is left"
                    );
                    assert!(b.issued.total <= Fen::MAX, "no invoice is above the bound");
                    for a in &b.standing {
                        assert!(!a.amount.is_negative());
                        *invoiced_by_payment.entry(a.payment_id.clone()).or_default() += i128::from(a.amount.fen());
                    }
                    for r in &b.remaining {
                        assert!(
                            !r.net.is_negative() && !r.tax.is_negative(),
                            "never reverse more than issued"
                        );
                    }
                }
            }
            (StateKey::PaymentInvoicing(p), StateValue::PaymentInvoicing(inv)) => {
                let pay = w.payment(p).expect("invoicing only for recorded payments");
                assert!(!inv.invoiced.is_negative());
                assert!(inv.invoiced <= pay.recorded.amount, "never invoice more than was paid");
            }
            (StateKey::Payment(_), StateValue::Payment(p)) => {
                assert!(
                    !p.refunded.is_negative() && p.refunded <= p.recorded.amount && p.recorded.amount <= Fen::MAX,
                    "never refund more than paid"
                );
            }
            _ => {}
        }
    }
    for (p, sum) in invoiced_by_payment {
        assert_eq!(
            i128::from(w.invoicing(&p).invoiced.fen()),
            sum,
            "payment {p}: invoiced equals the invoices' standing allocations"
        );
    }
    sequences.sort();
    let expected: Vec<u64> = (1..=sequences.len() as u64).collect();
    assert_eq!(sequences, expected, "invoice numbers are gap-free");
    let initial = i128::from(w.genesis.config().merchant(w.chain).unwrap().initial_fee_balance.fen());
    assert_eq!(
        i128::from(w.fee_balance().fen()),
        initial + deposits - i128::from(blue_issued) * i128::from(w.genesis.fee_per_invoice().fen()),
        "fees are conserved"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn execution_is_deterministic(ops in prop::collection::vec(op(), 1..60), chunks in prop::collection::vec(1usize..6, 1..4)) {
        let (a, wa) = run(&ops, &chunks);
        let (b, wb) = run(&ops, &chunks);
        prop_assert_eq!(a, b);
        prop_assert_eq!(wa.state, wb.state);
    }

    #[test]
    fn money_is_conserved(ops in prop::collection::vec(op(), 1..80)) {
        let mut w = World::new();
        let mut deposits = 0;
        // What the quota has used by the ledger's own entries: blue invoices add their
        // total once the merchant is under quota, red ones give it back.
        let mut used: Option<i128> = None;
        for op in &ops {
            let e = event(&w, op);
            let before = w.state.clone();
            let ex = w.block(std::slice::from_ref(&e));
            if ex.rejected.is_empty() && matches!(op, Op::Quota(..)) && used.is_none() {
                used = Some(0);
            }
            for entry in &ex.entries {
                match (entry, used.as_mut()) {
                    (Entry::Derived(Derived { kind: DerivedKind::InvoiceIssued(i), .. }), Some(u)) => *u += i128::from(i.total.fen()),
                    (Entry::Derived(Derived { kind: DerivedKind::InvoiceReversed(r), .. }), Some(u)) => *u -= i128::from(r.total.fen()).min(*u),
                    _ => {}
                }
            }
            match (w.get(StateKey::Quota), used) {
                (Some(StateValue::Quota(q)), Some(u)) => {
                    prop_assert!(q.used <= q.granted, "quota used {} above the grant {}", q.used, q.granted);
                    prop_assert_eq!(i128::from(q.used.fen()), u, "used is what the month's blue invoices took less what red ones gave back");
                }
                (None, None) => {}
                (q, u) => prop_assert!(false, "quota record {:?} but model {:?}", q, u),
            }
            if ex.rejected.is_empty() {
                if let Op::Deposit(_, a) = op { deposits += i128::from(*a); }
            }
            for entry in &ex.entries {
                if let Entry::Derived(d) = entry {
                    match &d.kind {
                        // Issue never takes a payment above what is paid minus refunded.
                        DerivedKind::InvoiceIssued(i) => {
                            for a in &i.allocations {
                                let p = w.payment(&a.payment_id).unwrap();
                                prop_assert!(Some(w.invoicing(&a.payment_id).invoiced) <= p.net_paid());
                            }
                        }
                        // Reversal only returns money, and never more than was drawn.
                        DerivedKind::InvoiceReversed(r) => {
                            for a in &r.allocations {
                                let mut old = World::new();
                                old.state = before.clone();
                                prop_assert_eq!(Some(w.invoicing(&a.payment_id).invoiced), old.invoicing(&a.payment_id).invoiced.checked_sub(a.amount));
                            }
                        }
                        _ => {}
                    }
                    // Invoice outcomes never write a payment record.
                    prop_assert!(!ex.writes.keys().any(|k| matches!(k, StateKey::Payment(_))));
                }
            }
            check_state(&w, deposits);
        }
    }
}
