//! One table-driven test per rule and per failure reason, all through [`check`].
// Amounts are written yuan_fen (100_00 is 100.00 yuan), on purpose.
#![allow(clippy::inconsistent_digit_grouping)]

use fapiao_core::event::*;
use fapiao_core::*;
use fapiao_domain::state::{
    BlueInvoice, InvoiceRecord, QuotaRecord, ReissueTrigger, RequestOutcome, StateKey, StateValue,
};
use fapiao_domain::Executed;
use fapiao_testkit::world::*;

fn with(f: impl FnOnce(&mut InvoiceRequested)) -> EventKind {
    let mut r = request("R1", &["P1"]);
    f(&mut r);
    invoice(r)
}

fn set_policy(w: &mut World, types: Vec<InvoiceType>, max: i64) {
    let op = w.operator.clone();
    w.submit_as(
        &op,
        EventKind::MerchantPolicySet(MerchantPolicy {
            permitted_types: types,
            max_invoice_total: Fen::from_fen(max),
            rates: [0, 100, 300, 500, 600, 900, 1300]
                .map(|bp| fapiao_core::tax::RateRule::always(fapiao_core::TaxRate::Bp(bp)))
                .to_vec(),
        }),
    )
    .unwrap();
}

#[test]
fn every_invoice_failure_reason() {
    use FailureReason as F;
    check(base, Who::Owner, with(|_| {}), Expect::Issued);
    check(
        base,
        Who::Owner,
        with(|r| r.buyer.name = "  ".into()),
        Expect::Failed(F::BuyerNameMissing),
    );
    check(
        base,
        Who::Owner,
        with(|r| r.buyer.tax_id = Some("91110000600037341M".into())),
        Expect::Failed(F::BuyerTaxIdInvalid),
    );
    check(
        base,
        Who::Owner,
        with(|r| {
            r.invoice_type = InvoiceType::SpecialVat;
            r.buyer.tax_id = None
        }),
        Expect::Failed(F::BuyerTaxIdRequired),
    );
    check(
        base,
        Who::Owner,
        with(|r| r.buyer.tax_id = None),
        Expect::Issued, // a normal invoice to a person needs no tax id
    );
    check(base, Who::Owner, with(|r| r.lines.clear()), Expect::Failed(F::NoLines));
    check(
        base,
        Who::Owner,
        with(|r| r.lines[0].tax_rate = TaxRate::Bp(700)),
        Expect::Failed(F::TaxRateNotAllowed),
    );
    check(
        base,
        Who::Owner,
        with(|r| r.lines[0].quantity = Quantity(0)),
        Expect::Failed(F::LineQuantityNotPositive),
    );
    check(
        base,
        Who::Owner,
        with(|r| r.lines[0].unit_price = Fen::from_fen(-5)),
        Expect::Failed(F::LinePriceNotPositive),
    );
    check(
        base,
        Who::Owner,
        with(|r| r.payment_ids.clear()),
        Expect::Failed(F::PaymentsInvalid),
    );
    check(
        base,
        Who::Owner,
        with(|r| r.payment_ids = vec!["P1".into(), "P1".into()]),
        Expect::Failed(F::PaymentsInvalid),
    );
    check(
        base,
        Who::Owner,
        with(|r| r.payment_ids = vec!["NOPE".into()]),
        Expect::Failed(F::PaymentNotFound),
    );
    check(
        |w| {
            base(w);
            w.submit(EventKind::PaymentVoided(PaymentVoided {
                payment_id: "P2".into(),
                reason: "typo".into(),
            }))
            .unwrap();
        },
        Who::Owner,
        with(|r| r.payment_ids = vec!["P2".into()]),
        Expect::Failed(F::PaymentVoided),
    );
    check(
        |w| {
            base(w);
            // 28.30 at 6% = 28.30 + 1.70 = 30.00: all of P2.
            let mut r = request("R0", &["P2"]);
            r.lines = vec![line(1000, 2830, 600)];
            issued(&w.submit(invoice(r)));
        },
        Who::Owner,
        with(|r| r.payment_ids = vec!["P2".into()]),
        Expect::Failed(F::PaymentFullyInvoiced),
    );
    check(
        base,
        Who::Owner,
        with(|r| r.lines = vec![line(1000, 100_00, 1300)]), // 113.00 > 100.00
        Expect::Failed(F::TotalAboveInvoiceable),
    );
    check(
        |w| {
            base(w);
            set_policy(w, vec![InvoiceType::Normal], 1_000_000_00);
        },
        Who::Owner,
        with(|r| r.invoice_type = InvoiceType::SpecialVat),
        Expect::Failed(F::InvoiceTypeNotPermitted),
    );
    check(
        |w| {
            base(w);
            set_policy(w, vec![InvoiceType::Normal, InvoiceType::SpecialVat], 10_00);
        },
        Who::Owner,
        with(|_| {}),
        Expect::Failed(F::TotalAboveMerchantLimit),
    );
    check(
        |w| {
            // The opening balance of 1.00 pays for ten invoices at 0.10.
            w.pay("BIG", 1000_00).unwrap();
            for i in 0..10 {
                issued(&w.submit(invoice(request(&format!("F{i}"), &["BIG"]))));
            }
            assert_eq!(w.fee_balance(), Fen::from_fen(0));
            base(w);
        },
        Who::Owner,
        with(|_| {}),
        Expect::Failed(F::FeeBalanceTooLow),
    );
    check(
        base,
        Who::Owner,
        with(|r| r.retry_of = Some("NOPE".into())),
        Expect::Failed(F::RetryOfInvalid),
    );
    // A line beyond the amount bound is no invoice at all: refused, nothing recorded
    // (AMOUNT_OVERFLOW is no longer reachable).
    check(
        base,
        Who::Owner,
        with(|r| r.lines = vec![line(i64::MAX / 2, i64::MAX / 2, 1300)]),
        Expect::Rejected("AMOUNT_ABOVE_MAX"),
    );
}

const MAX: i64 = fapiao_core::money::AMOUNT_FEN_MAX;

fn raise_policy(w: &mut World) {
    set_policy(w, vec![InvoiceType::Normal, InvoiceType::SpecialVat], MAX);
}

/// A request for `total` fen at 0% (one line, quantity 1) on `payments`.
fn request_total(id: &str, payments: &[&str], total: i64) -> EventKind {
    let mut r = request(id, payments);
    r.lines = vec![line(1000, total, 0)];
    invoice(r)
}

#[test]
fn amounts_at_every_edge() {
    let nothing = |_: &mut World| {};
    // Payments: zero and below are invalid, one fen and the bound are recorded, one fen
    // past the bound (and the old overflow amounts) are refused with their own code.
    for (fen, expected) in [
        (i64::MIN, Expect::Rejected("INVALID_FIELD")),
        (-1, Expect::Rejected("INVALID_FIELD")),
        (0, Expect::Rejected("INVALID_FIELD")),
        (1, Expect::Applied),
        (MAX, Expect::Applied),
        (MAX + 1, Expect::Rejected("AMOUNT_ABOVE_MAX")),
        (i64::MAX, Expect::Rejected("AMOUNT_ABOVE_MAX")),
    ] {
        check(nothing, Who::Owner, pay_event("P", fen), expected);
        check(
            nothing,
            Who::Client(9),
            pay_event("P", fen),
            Expect::Rejected("UNAUTHORIZED_KEY"),
        );
    }
    // Refunds: the same bound, and never more than is left of the payment.
    let big = |w: &mut World| {
        w.pay("P1", MAX).unwrap();
    };
    for (fen, expected) in [
        (0, Expect::Rejected("INVALID_FIELD")),
        (1, Expect::Applied),
        (MAX, Expect::Applied),
        (MAX + 1, Expect::Rejected("AMOUNT_ABOVE_MAX")),
    ] {
        check(big, Who::Owner, refund_event("P1", "F1", fen), expected);
    }
    check(
        |w| {
            big(w);
            w.submit(refund_event("P1", "F0", MAX - 1)).unwrap();
        },
        Who::Owner,
        refund_event("P1", "F1", 2),
        Expect::Rejected("REFUND_EXCEEDS_REFUNDABLE"),
    );
    // Deposits: the same bound, and the balance itself stays within it.
    for (fen, expected) in [
        (0, Expect::Rejected("INVALID_FIELD")),
        (1, Expect::Applied),
        (MAX - 100, Expect::Applied), // the opening balance is 1.00
        (MAX - 99, Expect::Rejected("LIMIT_REACHED")),
        (MAX, Expect::Rejected("LIMIT_REACHED")),
        (MAX + 1, Expect::Rejected("AMOUNT_ABOVE_MAX")),
    ] {
        check(nothing, Who::Operator, deposit_event("D1", fen), expected);
    }
    // Policy limit: up to the bound.
    for (fen, expected) in [
        (-1, Expect::Rejected("INVALID_FIELD")),
        (0, Expect::Applied),
        (MAX, Expect::Applied),
        (MAX + 1, Expect::Rejected("AMOUNT_ABOVE_MAX")),
    ] {
        check(
            nothing,
            Who::Operator,
            EventKind::MerchantPolicySet(MerchantPolicy {
                permitted_types: vec![InvoiceType::Normal],
                max_invoice_total: Fen::from_fen(fen),
                rates: [0, 100, 300, 500, 600, 900, 1300]
                    .map(|bp| fapiao_core::tax::RateRule::always(fapiao_core::TaxRate::Bp(bp)))
                    .to_vec(),
            }),
            expected,
        );
    }
}

#[test]
fn invoice_sums_at_the_bound() {
    // The attack that stopped a node: two payments at the bound and one request naming
    // both. The open amounts add up to twice the bound without overflow; an invoice of
    // exactly the bound issues, one fen more is refused before it reaches the state.
    let two_big = |w: &mut World| {
        raise_policy(w);
        w.pay("A", MAX).unwrap();
        w.pay("B", MAX).unwrap();
    };
    let w = check(
        two_big,
        Who::Owner,
        request_total("R1", &["A", "B"], MAX),
        Expect::Issued,
    );
    let i = match w.request("R1").unwrap().outcome {
        RequestOutcome::Issued(n) => match w.invoice(n).unwrap() {
            InvoiceRecord::Blue(b) => b.issued,
            red => panic!("{red:?}"),
        },
        other => panic!("{other:?}"),
    };
    assert_eq!(i.total, Fen::MAX);
    assert_eq!(i.allocations.len(), 1, "the first payment covers it all");
    check(
        two_big,
        Who::Owner,
        request_total("R1", &["A", "B"], MAX + 1),
        Expect::Rejected("AMOUNT_ABOVE_MAX"),
    );
    // The bound is on the total with tax: a net at the bound with 13% tax is refused.
    check(
        two_big,
        Who::Owner,
        with(|r| {
            r.lines = vec![line(1000, MAX, 1300)];
            r.payment_ids = vec!["A".into(), "B".into()];
        }),
        Expect::Rejected("AMOUNT_ABOVE_MAX"),
    );
    // Lines at the bound each, summing past it: refused as a whole ("lines").
    check(
        two_big,
        Who::Owner,
        with(|r| {
            r.lines = vec![line(1000, MAX / 2 + 1, 0), line(1000, MAX / 2, 0)];
            r.payment_ids = vec!["A".into(), "B".into()];
        }),
        Expect::Rejected("AMOUNT_ABOVE_MAX"),
    );
    // A hundred payments at the bound (the most one invoice may name): their open
    // amounts sum to a hundred times the bound, still exact.
    check(
        |w| {
            raise_policy(w);
            for i in 0..100 {
                w.pay(&format!("P{i}"), MAX).unwrap();
            }
        },
        Who::Owner,
        invoice({
            let mut r = request("R1", &[]);
            r.payment_ids = (0..100).map(|i| format!("P{i}")).collect();
            r.lines = vec![line(1000, MAX, 0)];
            r
        }),
        Expect::Issued,
    );
    // Red-letter lines obey the same bound.
    check(
        |w| {
            two_big(w);
            w.submit(request_total("R1", &["A"], MAX)).unwrap();
        },
        Who::Owner,
        EventKind::InvoiceRedLetterRequested(RedLetterRequested {
            request_id: "RL1".into(),
            invoice_number: InvoiceNumber::new(26, MemberCode::new(MERCHANT).unwrap(), 1).unwrap(),
            reason: RedLetterReason::IssueError,
            scope: RedLetterScope::Partial(vec![line(1000, MAX + 1, 0)]),
        }),
        Expect::Rejected("AMOUNT_ABOVE_MAX"),
    );
}

#[test]
fn records_stop_growing_at_their_bounds() {
    use fapiao_domain::bounds::{INVOICES_PER_PAYMENT_MAX, RED_LETTERS_PER_INVOICE_MAX, REFUNDS_PER_PAYMENT_MAX};
    // Refunds per payment.
    let refunded = |w: &mut World| {
        w.pay("P1", 1_000_00).unwrap();
        for i in 0..REFUNDS_PER_PAYMENT_MAX {
            assert_eq!(w.submit(refund_event("P1", &format!("F{i}"), 1)), Ok(vec![]));
        }
    };
    check(
        refunded,
        Who::Owner,
        refund_event("P1", "LAST", 1),
        Expect::Rejected("LIMIT_REACHED"),
    );
    // Invoices per payment: each one-fen invoice costs a 0.10 fee, so deposit first.
    let invoiced = |w: &mut World| {
        let op = w.operator.clone();
        w.submit_as(&op, deposit_event("D1", 100_00)).unwrap();
        w.pay("P1", 1_000_00).unwrap();
        for i in 0..INVOICES_PER_PAYMENT_MAX {
            issued(&w.submit(request_total(&format!("R{i}"), &["P1"], 1)));
        }
    };
    check(
        invoiced,
        Who::Owner,
        request_total("LAST", &["P1"], 1),
        Expect::Failed(FailureReason::PaymentInvoicesLimit),
    );
    // Red-letters per invoice: one fen at a time.
    let first = || InvoiceNumber::new(26, MemberCode::new(MERCHANT).unwrap(), 1).unwrap();
    let red = |id: &str| {
        EventKind::InvoiceRedLetterRequested(RedLetterRequested {
            request_id: id.into(),
            invoice_number: first(),
            reason: RedLetterReason::SalesDiscount,
            scope: RedLetterScope::Partial(vec![line(1000, 1, 0)]),
        })
    };
    let reversed_often = |w: &mut World| {
        w.pay("P1", 1_000_00).unwrap();
        assert_eq!(issued(&w.submit(request_total("R1", &["P1"], 500_00))).number, first());
        for i in 0..RED_LETTERS_PER_INVOICE_MAX {
            reversed(&w.submit(red(&format!("RL{i}"))));
        }
    };
    check(
        reversed_often,
        Who::Owner,
        red("LAST"),
        Expect::Failed(FailureReason::RedLettersLimit),
    );
}

#[test]
fn validation_order_is_documented_order() {
    // Several faults at once: the first in the documented order is reported.
    let w = check(
        base,
        Who::Owner,
        with(|r| {
            r.buyer.name = String::new();
            r.lines.clear();
            r.payment_ids.clear();
        }),
        Expect::Failed(FailureReason::BuyerNameMissing),
    );
    let rec = w.request("R1").unwrap();
    assert!(matches!(
        rec.outcome,
        RequestOutcome::Failed {
            reason: FailureReason::BuyerNameMissing,
            ..
        }
    ));
}

#[test]
fn issuance_numbers_amounts_fee_and_allocation() {
    let mut w = World::new();
    base(&mut w);
    // A failure consumes no number: numbers stay gap-free.
    failed(&w.submit(with(|r| r.buyer.name = String::new())));
    // 2 lines: 1.5 x 33.33 at 6% and 1 x 60.00 at 13%, over P2 (30.00) then P1.
    let mut r = request("R2", &["P2", "P1"]);
    r.lines = vec![line(1500, 3333, 600), line(1000, 6000, 1300)];
    let inv = issued(&w.submit(invoice(r)));
    // 1.5 x 33.33 = 49.995 -> 50.00 (half up); tax 3.00. 60.00 + 7.80.
    assert_eq!(inv.lines[0].net, Fen::from_fen(5000));
    assert_eq!(inv.lines[0].tax, Fen::from_fen(300));
    assert_eq!(
        (inv.net, inv.tax, inv.total),
        (Fen::from_fen(11000), Fen::from_fen(1080), Fen::from_fen(12080))
    );
    assert_eq!(inv.number.to_string(), "26110001000000000001");
    assert_eq!(inv.check_code.to_string().len(), 20);
    assert_eq!(inv.fee, Fen::from_fen(10));
    assert_eq!(w.fee_balance(), Fen::from_fen(90));
    assert_eq!(
        inv.allocations
            .iter()
            .map(|a| (a.payment_id.as_str(), a.amount))
            .collect::<Vec<_>>(),
        vec![("P2", Fen::from_fen(3000)), ("P1", Fen::from_fen(9080))]
    );
    assert_eq!(w.invoicing("P1").invoiced, Fen::from_fen(9080));
    // P1 has 9.20 left: 53.00 is too much, 8.68 + 0.52 fits exactly.
    let too_much = failed(&w.submit(invoice(request("R3", &["P1"]))));
    assert_eq!(too_much.reason, FailureReason::TotalAboveInvoiceable);
    let mut exact = request("R4", &["P1"]);
    exact.lines = vec![line(1000, 868, 600)];
    let inv2 = issued(&w.submit(invoice(exact)));
    assert_eq!(inv2.total, Fen::from_fen(920));
    assert_eq!(inv2.number.sequence(), 2, "failures consume no invoice number");
    assert_eq!(
        failed(&w.submit(invoice(request("R5", &["P1"])))).reason,
        FailureReason::PaymentFullyInvoiced
    );
}

#[test]
fn second_invoice_on_exhausted_payment_fails_then_red_letter_frees_it() {
    let mut w = World::new();
    w.pay("P", 53_00).unwrap();
    let first = issued(&w.submit(invoice(request("A", &["P"]))));
    assert_eq!(
        failed(&w.submit(invoice(request("B", &["P"])))).reason,
        FailureReason::PaymentFullyInvoiced
    );
    // Partial red-letter of 10.00 net at 6% (0.60 tax) frees 10.60.
    let rev = reversed(&w.submit(EventKind::InvoiceRedLetterRequested(RedLetterRequested {
        request_id: "RL1".into(),
        invoice_number: first.number,
        reason: RedLetterReason::SalesDiscount,
        scope: RedLetterScope::Partial(vec![line(1000, 1000, 600)]),
    })));
    assert_eq!(
        (rev.net, rev.tax, rev.total, rev.fully_reversed),
        (Fen::from_fen(1000), Fen::from_fen(60), Fen::from_fen(1060), false)
    );
    assert_eq!(rev.red_number.sequence(), 2);
    assert_eq!(w.invoicing("P").invoiced, Fen::from_fen(53_00 - 10_60));
    let mut r = request("C", &["P"]);
    r.lines = vec![line(1000, 1000, 600)];
    issued(&w.submit(invoice(r)));
    // The red invoice is recorded and linked both ways.
    match w.invoice(first.number).unwrap() {
        InvoiceRecord::Blue(b) => assert_eq!(b.red_letters, vec![rev.red_number]),
        other => panic!("{other:?}"),
    }
    match w.invoice(rev.red_number).unwrap() {
        InvoiceRecord::Red(r) => assert_eq!(r.original, first.number),
        other => panic!("{other:?}"),
    }
}

#[test]
fn red_letter_rules() {
    use FailureReason as F;
    let setup = |w: &mut World| {
        base(w);
        issued(&w.submit(invoice(request("R1", &["P1"]))));
    };
    let number = {
        let mut w = World::new();
        setup(&mut w);
        InvoiceNumber::new(26, w.chain, 1).unwrap()
    };
    let red = |id: &str, n: InvoiceNumber, scope: RedLetterScope| {
        EventKind::InvoiceRedLetterRequested(RedLetterRequested {
            request_id: id.into(),
            invoice_number: n,
            reason: RedLetterReason::IssueError,
            scope,
        })
    };
    for reason in RedLetterReason::ALL {
        check(
            setup,
            Who::Owner,
            EventKind::InvoiceRedLetterRequested(RedLetterRequested {
                request_id: "X".into(),
                invoice_number: number,
                reason,
                scope: RedLetterScope::Full,
            }),
            Expect::Reversed,
        );
    }
    let unknown = InvoiceNumber::new(26, number.member(), 99).unwrap();
    check(
        setup,
        Who::Owner,
        red("X", unknown, RedLetterScope::Full),
        Expect::Failed(F::InvoiceNotFound),
    );
    let foreign = InvoiceNumber::new(26, MemberCode::new(OTHER_MERCHANT).unwrap(), 1).unwrap();
    check(
        setup,
        Who::Owner,
        red("X", foreign, RedLetterScope::Full),
        Expect::Failed(F::InvoiceNotFound),
    );
    check(
        |w| {
            setup(w);
            reversed(&w.submit(red(
                "X0",
                InvoiceNumber::new(26, w.chain, 1).unwrap(),
                RedLetterScope::Full,
            )));
        },
        Who::Owner,
        red("X", number, RedLetterScope::Full),
        Expect::Failed(F::InvoiceAlreadyReversed),
    );
    // Red invoices cannot themselves be reversed.
    check(
        |w| {
            setup(w);
            reversed(&w.submit(red(
                "X0",
                InvoiceNumber::new(26, w.chain, 1).unwrap(),
                RedLetterScope::Full,
            )));
        },
        Who::Owner,
        red(
            "X",
            InvoiceNumber::new(26, number.member(), 2).unwrap(),
            RedLetterScope::Full,
        ),
        Expect::Failed(F::InvoiceNotFound),
    );
    check(
        setup,
        Who::Owner,
        red("X", number, RedLetterScope::Partial(vec![line(1000, 6000, 600)])),
        Expect::Failed(F::RedLetterExceedsRemaining),
    );
    check(
        setup,
        Who::Owner,
        red("X", number, RedLetterScope::Partial(vec![line(1000, 100, 1300)])),
        Expect::Failed(F::RedLetterLineUnknown),
    );
    check(
        setup,
        Who::Owner,
        red("X", number, RedLetterScope::Partial(vec![])),
        Expect::Failed(F::NoLines),
    );
    // Request ids are shared between invoice and red-letter requests.
    check(
        setup,
        Who::Owner,
        red("R1", number, RedLetterScope::Full),
        Expect::Rejected("DUPLICATE_REQUEST_ID"),
    );
    // A partial then a full reversal reverses exactly the rest.
    let mut w = World::new();
    setup(&mut w);
    reversed(&w.submit(red("A", number, RedLetterScope::Partial(vec![line(1000, 2000, 600)]))));
    let rest = reversed(&w.submit(red("B", number, RedLetterScope::Full)));
    assert_eq!(
        (rest.net, rest.tax, rest.fully_reversed),
        (Fen::from_fen(3000), Fen::from_fen(180), true)
    );
    assert_eq!(w.invoicing("P1").invoiced, Fen::from_fen(0));
}

#[test]
fn payment_rules() {
    let pay = |id: &str, fen: i64| EventKind::PaymentRecorded(payment(id, fen));
    let refund = |rid: &str, pid: &str, fen: i64| {
        EventKind::PaymentRefunded(PaymentRefunded {
            payment_id: pid.into(),
            refund_id: rid.into(),
            amount: Fen::from_fen(fen),
            reason: "customer".into(),
        })
    };
    let reverse = |pid: &str| {
        EventKind::PaymentVoided(PaymentVoided {
            payment_id: pid.into(),
            reason: "entered twice".into(),
        })
    };
    check(|_| {}, Who::Owner, pay("P1", 1), Expect::Applied);
    check(|_| {}, Who::Owner, pay("P1", 0), Expect::Rejected("INVALID_FIELD"));
    check(|_| {}, Who::Owner, pay("P1", -5), Expect::Rejected("INVALID_FIELD"));
    check(
        |_| {},
        Who::Owner,
        pay("has space", 5),
        Expect::Rejected("INVALID_FIELD"),
    );
    check(|_| {}, Who::Owner, pay("", 5), Expect::Rejected("INVALID_FIELD"));
    check(
        |_| {},
        Who::Owner,
        pay(&"x".repeat(65), 5),
        Expect::Rejected("INVALID_FIELD"),
    );
    check(
        base,
        Who::Owner,
        pay("P1", 100_00),
        Expect::Rejected("DUPLICATE_PAYMENT_ID"),
    );
    check(base, Who::Owner, refund("F1", "P1", 40_00), Expect::Applied);
    check(
        base,
        Who::Owner,
        refund("F1", "P1", 100_01),
        Expect::Rejected("REFUND_EXCEEDS_REFUNDABLE"),
    );
    check(
        base,
        Who::Owner,
        refund("F1", "NOPE", 1),
        Expect::Rejected("PAYMENT_UNKNOWN"),
    );
    check(
        |w| {
            base(w);
            w.submit(refund("F1", "P1", 60_00)).unwrap();
        },
        Who::Owner,
        refund("F2", "P1", 40_01),
        Expect::Rejected("REFUND_EXCEEDS_REFUNDABLE"),
    );
    check(
        |w| {
            base(w);
            w.submit(refund("F1", "P1", 1_00)).unwrap();
        },
        Who::Owner,
        refund("F1", "P2", 1_00),
        Expect::Rejected("DUPLICATE_REFUND_ID"),
    );
    check(base, Who::Owner, reverse("P1"), Expect::Applied);
    check(base, Who::Owner, reverse("NOPE"), Expect::Rejected("PAYMENT_UNKNOWN"));
    check(
        |w| {
            base(w);
            w.submit(reverse("P1")).unwrap();
        },
        Who::Owner,
        refund("F1", "P1", 1),
        Expect::Rejected("PAYMENT_ALREADY_VOIDED"),
    );
    check(
        |w| {
            base(w);
            w.submit(reverse("P1")).unwrap();
        },
        Who::Owner,
        reverse("P1"),
        Expect::Rejected("PAYMENT_ALREADY_VOIDED"),
    );
    // A refund is a payment fact: recorded even after the payment is invoiced.
    check(
        |w| {
            base(w);
            issued(&w.submit(invoice(request("R1", &["P1"]))));
        },
        Who::Owner,
        refund("F1", "P1", 100_00),
        Expect::Applied,
    );
}

#[test]
fn a_payment_is_reversed_only_after_its_invoice_is_red_lettered() {
    let mut w = World::new();
    base(&mut w);
    let inv = issued(&w.submit(invoice(request("R1", &["P1"]))));
    let reverse = || {
        EventKind::PaymentVoided(PaymentVoided {
            payment_id: "P1".into(),
            reason: "wrong terminal".into(),
        })
    };
    match w.submit(reverse()) {
        Err(fapiao_domain::Rejection::PaymentInvoiced { invoices, .. }) => assert_eq!(invoices, vec![inv.number]),
        other => panic!("{other:?}"),
    }
    // Partially red-lettered is still covered.
    reversed(&w.submit(EventKind::InvoiceRedLetterRequested(RedLetterRequested {
        request_id: "RL1".into(),
        invoice_number: inv.number,
        reason: RedLetterReason::IssueError,
        scope: RedLetterScope::Partial(vec![line(1000, 100, 600)]),
    })));
    assert_eq!(w.submit(reverse()).unwrap_err().code(), "PAYMENT_INVOICED");
    reversed(&w.submit(EventKind::InvoiceRedLetterRequested(RedLetterRequested {
        request_id: "RL2".into(),
        invoice_number: inv.number,
        reason: RedLetterReason::IssueError,
        scope: RedLetterScope::Full,
    })));
    assert_eq!(w.submit(reverse()), Ok(vec![]));
    assert!(w.payment("P1").unwrap().voided.is_some());
}

#[test]
fn an_invoice_outcome_never_changes_a_payment() {
    let mut w = World::new();
    base(&mut w);
    let before = (w.payment("P1").unwrap(), w.payment("P2").unwrap());
    let kinds = vec![
        with(|r| r.buyer.tax_id = Some("BAD".into())),
        with(|r| r.lines[0].tax_rate = TaxRate::Bp(700)),
        invoice(request("OK", &["P1", "P2"])),
        with(|r| r.request_id = "R9".into()),
    ];
    for (i, mut kind) in kinds.into_iter().enumerate() {
        if let EventKind::InvoiceRequested(r) = &mut kind {
            r.request_id = format!("{}-{i}", r.request_id);
        }
        let e = w.event(&w.owner.clone(), kind);
        let ex = w.block(&[e]);
        assert!(
            !ex.writes
                .keys()
                .any(|k| matches!(k, fapiao_domain::StateKey::Payment(_))),
            "an invoice event wrote a payment record"
        );
    }
    let number = InvoiceNumber::new(26, w.chain, 1).unwrap();
    let e = w.event(
        &w.owner.clone(),
        EventKind::InvoiceRedLetterRequested(RedLetterRequested {
            request_id: "RL".into(),
            invoice_number: number,
            reason: RedLetterReason::SalesReturn,
            scope: RedLetterScope::Full,
        }),
    );
    let ex = w.block(&[e]);
    assert!(!ex
        .writes
        .keys()
        .any(|k| matches!(k, fapiao_domain::StateKey::Payment(_))));
    assert_eq!((w.payment("P1").unwrap(), w.payment("P2").unwrap()), before);
}

#[test]
fn retries() {
    let mut w = World::new();
    base(&mut w);
    let f = failed(&w.submit(with(|r| r.buyer.tax_id = Some("91110000600037341M".into()))));
    assert_eq!(f.reason, FailureReason::BuyerTaxIdInvalid);
    assert_eq!(f.field, "buyer.tax_id");
    // Retrying an issued request, or the same failed one twice, is refused.
    let mut fix = request("R2", &["P1"]);
    fix.retry_of = Some("R1".into());
    let inv = issued(&w.submit(invoice(fix.clone())));
    assert_eq!(w.request("R1").unwrap().retried_by.as_deref(), Some("R2"));
    fix.request_id = "R3".into();
    assert_eq!(
        failed(&w.submit(invoice(fix.clone()))).reason,
        FailureReason::RetryOfInvalid
    );
    fix.request_id = "R4".into();
    fix.retry_of = Some("R2".into());
    assert_eq!(failed(&w.submit(invoice(fix))).reason, FailureReason::RetryOfInvalid);
    assert_eq!(inv.number.sequence(), 1);
}

#[test]
fn fee_deposits_are_checked_and_credited() {
    let deposit = |id: &str, fen: i64| {
        EventKind::FeeDeposited(FeeDeposited {
            deposit_id: id.into(),
            amount: Fen::from_fen(fen),
        })
    };
    check(
        |_| {},
        Who::Owner,
        deposit("D1", 500),
        Expect::Rejected("UNAUTHORIZED_KEY"),
    );
    check(
        |_| {},
        Who::Operator,
        deposit("D1", 0),
        Expect::Rejected("INVALID_FIELD"),
    );
    let mut w = World::new();
    let op = w.operator.clone();
    let before = w.fee_balance();
    w.submit_as(&op, deposit("D1", 5_00)).unwrap();
    assert_eq!(
        w.submit_as(&op, deposit("D1", 5_00)).unwrap_err().code(),
        "DUPLICATE_DEPOSIT_ID"
    );
    assert_eq!(w.fee_balance(), Fen::from_fen(before.fen() + 500));
}

fn deposit(w: &mut World, id: &str, fen: i64) -> Executed {
    let op = w.operator.clone();
    let e = w.event(
        &op,
        EventKind::FeeDeposited(FeeDeposited {
            deposit_id: id.into(),
            amount: Fen::from_fen(fen),
        }),
    );
    let ex = w.block(&[e]);
    assert!(ex.rejected.is_empty(), "{:?}", ex.rejected);
    ex
}

fn fee_queue(w: &World) -> Vec<String> {
    match w.get(StateKey::FeeBlocked) {
        Some(StateValue::FeeBlocked(q)) => q.requests,
        None => vec![],
        other => panic!("FeeBlocked holds {other:?}"),
    }
}

#[test]
fn a_deposit_issues_fee_blocked_requests_in_order() {
    let mut w = World::new();
    w.pay("BIG", 1000_00).unwrap();
    for i in 0..10 {
        issued(&w.submit(invoice(request(&format!("F{i}"), &["BIG"]))));
    }
    assert_eq!(w.fee_balance(), Fen::from_fen(0));
    for id in ["LOW1", "LOW2", "LOW3"] {
        let f = failed(&w.submit(invoice(request(id, &["BIG"]))));
        assert_eq!(f.reason, FailureReason::FeeBalanceTooLow);
        assert!(f.detail.contains("issued automatically"), "{}", f.detail);
    }
    assert!(fapiao_domain::catalogue::info(FailureReason::FeeBalanceTooLow).retryable);
    // A manual retry takes its original out of the queue (never issued twice); the retry,
    // failing for the fee too, queues itself.
    let mut again = request("LOW3R", &["BIG"]);
    again.retry_of = Some("LOW3".into());
    assert_eq!(
        failed(&w.submit(invoice(again))).reason,
        FailureReason::FeeBalanceTooLow
    );
    assert_eq!(fee_queue(&w), ["LOW1", "LOW2", "LOW3R"]);

    // 20 fen covers two fees of 10: the two oldest are issued, in order, after the deposit.
    let ex = deposit(&mut w, "D1", 20);
    let derived: Vec<&Derived> = ex
        .entries
        .iter()
        .skip(1)
        .map(|e| match e {
            Entry::Derived(d) => d,
            Entry::Event(_) => panic!("only derived entries follow the deposit"),
        })
        .collect();
    assert_eq!(derived.len(), 2);
    for (d, id) in derived.iter().zip(["LOW1", "LOW2"]) {
        let rec = w.request(id).unwrap();
        assert_eq!(d.cause, rec.event, "an automatic re-issue names its request as cause");
        match &d.kind {
            DerivedKind::InvoiceIssued(i) => {
                assert_eq!(i.request_id, id);
                assert_eq!(rec.outcome, RequestOutcome::Issued(i.number));
            }
            other => panic!("expected an issue, got {other:?}"),
        }
        let auto = rec.auto_reissue.expect("recorded as an automatic re-issue");
        assert_eq!(auto.trigger, ReissueTrigger::Deposit("D1".into()));
        assert_eq!(auto.event, ex.entries[0].id());
    }
    assert_eq!(w.fee_balance(), Fen::from_fen(0));
    assert_eq!(fee_queue(&w), ["LOW3R"]);
    assert!(matches!(
        w.request("LOW3").unwrap().outcome,
        RequestOutcome::Failed { .. }
    ));

    // A queued request that no longer passes (the policy changed meanwhile) fails for the
    // new reason when a deposit re-runs it, and leaves the queue.
    set_policy(&mut w, vec![InvoiceType::SpecialVat], 10_000_00);
    let ex = deposit(&mut w, "D2", 1_00);
    match &ex.entries[1] {
        Entry::Derived(Derived {
            kind: DerivedKind::InvoiceFailed(f),
            ..
        }) => {
            assert_eq!(f.request_id, "LOW3R");
            assert_eq!(f.reason, FailureReason::InvoiceTypeNotPermitted);
            assert!(f.detail.contains("deposit D2"), "{}", f.detail);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(fee_queue(&w).is_empty());
    assert_eq!(w.fee_balance(), Fen::from_fen(1_00));
    // A deposit with nothing queued derives nothing.
    assert_eq!(deposit(&mut w, "D3", 1_00).entries.len(), 1);
}

/// The queue's two bounds: at most `FEE_BLOCKED_MAX` requests wait (a later one is
/// recorded as failed, saying it was not queued), and one block carries at most
/// `AUTO_REISSUE_BYTES_MAX` of automatic issues (the rest wait for the next deposit).
#[test]
fn the_fee_queue_and_automatic_issues_are_bounded() {
    use fapiao_domain::execute::{AUTO_REISSUE_BYTES_MAX, FEE_BLOCKED_MAX, LINES_MAX, TEXT_BYTES_MAX};
    let mut w = World::new();
    let pays: Vec<Event> = (0..FEE_BLOCKED_MAX + 11)
        .map(|i| {
            w.event(
                &w.owner,
                EventKind::PaymentRecorded(payment(&format!("P{i}"), 1_000_000_00)),
            )
        })
        .collect();
    w.block(&pays);
    // Big requests: 100 lines with 256-byte descriptions, about 30 KB issued.
    let big = |i: usize| {
        let mut r = request(&format!("R{i}"), &[&format!("P{i}")]);
        r.lines = (0..LINES_MAX)
            .map(|_| LineItem {
                description: "x".repeat(TEXT_BYTES_MAX),
                tax_code: "3070401000000000000".into(),
                ..line(1000, 100, 600)
            })
            .collect();
        w.event(&w.owner, EventKind::InvoiceRequested(r))
    };
    let requests: Vec<Event> = (0..FEE_BLOCKED_MAX + 11).map(big).collect();
    let ex = w.block(&requests);
    assert!(ex.rejected.is_empty());
    // 10 issued on the genesis balance, then FEE_BLOCKED_MAX queued, then one not.
    assert_eq!(fee_queue(&w).len(), FEE_BLOCKED_MAX);
    let last = w.request(&format!("R{}", FEE_BLOCKED_MAX + 10)).unwrap();
    match last.outcome {
        RequestOutcome::Failed { reason, detail, .. } => {
            assert_eq!(reason, FailureReason::FeeBalanceTooLow);
            assert!(detail.contains("not queued for automatic re-issue"), "{detail}");
        }
        other => panic!("{other:?}"),
    }

    // Enough balance for all: the block stops at the byte budget.
    let ex = deposit(&mut w, "D1", 1_000_000);
    let issued = ex.entries.len() - 1;
    let bytes: usize = ex.entries[1..].iter().map(|e| codec::to_bytes(e).len()).sum();
    assert!(issued > 0 && issued < FEE_BLOCKED_MAX, "{issued}");
    assert!(
        (AUTO_REISSUE_BYTES_MAX..AUTO_REISSUE_BYTES_MAX + 64 * 1024).contains(&bytes),
        "{bytes} bytes of automatic issues in one block"
    );
    assert_eq!(fee_queue(&w).len(), FEE_BLOCKED_MAX - issued);
    // The next deposit goes on where the last stopped.
    let ex = deposit(&mut w, "D2", 1);
    assert_eq!(ex.entries.len() - 1, issued, "the same budget again");
    match &ex.entries[1] {
        Entry::Derived(Derived {
            kind: DerivedKind::InvoiceIssued(i),
            ..
        }) => assert_eq!(i.request_id, format!("R{}", 10 + issued)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_corrected_invoice_replaces_a_reversed_one_both_ways() {
    use FailureReason as F;
    let mut w = World::new();
    base(&mut w);
    let first = issued(&w.submit(invoice(request("R1", &["P1"]))));
    let mut fix = request("R2", &["P1"]);
    fix.buyer.name = "Shanghai Trading Company Ltd".into();
    fix.replaces = Some(first.number);
    // Not reversed yet: the payment is still invoiced, and the link is refused.
    let f = failed(&w.submit(invoice(fix.clone())));
    assert_eq!((f.reason, f.field.as_str()), (F::ReplacesInvalid, "replaces"));
    reversed(&w.submit(EventKind::InvoiceRedLetterRequested(RedLetterRequested {
        request_id: "RL1".into(),
        invoice_number: first.number,
        reason: RedLetterReason::IssueError,
        scope: RedLetterScope::Full,
    })));
    // Only payments the reversed invoice drew on.
    let mut other = fix.clone();
    other.request_id = "R3".into();
    other.payment_ids = vec!["P2".into()];
    assert_eq!(failed(&w.submit(invoice(other))).reason, F::ReplacesInvalid);
    fix.request_id = "R4".into();
    let corrected = issued(&w.submit(invoice(fix.clone())));
    assert_eq!(corrected.replaces, Some(first.number));
    match w.invoice(first.number) {
        Some(InvoiceRecord::Blue(b)) => assert_eq!(b.replaced_by, Some(corrected.number)),
        other => panic!("{other:?}"),
    }
    match w.invoice(corrected.number) {
        Some(InvoiceRecord::Blue(b)) => assert_eq!(b.issued.replaces, Some(first.number)),
        other => panic!("{other:?}"),
    }
    // Once only; and an invoice that was never reversed cannot be replaced.
    fix.request_id = "R5".into();
    let f = failed(&w.submit(invoice(fix.clone())));
    assert!(f.detail.contains("already replaced"), "{}", f.detail);
    fix.request_id = "R6".into();
    fix.replaces = Some(corrected.number);
    assert_eq!(failed(&w.submit(invoice(fix))).reason, F::ReplacesInvalid);
}

#[test]
fn policy_changes_override_genesis_and_need_the_operator() {
    let policy = |types: Vec<InvoiceType>| {
        EventKind::MerchantPolicySet(MerchantPolicy {
            permitted_types: types,
            max_invoice_total: Fen::from_fen(500_00),
            rates: [0, 100, 300, 500, 600, 900, 1300]
                .map(|bp| fapiao_core::tax::RateRule::always(fapiao_core::TaxRate::Bp(bp)))
                .to_vec(),
        })
    };
    check(
        |_| {},
        Who::Owner,
        policy(vec![InvoiceType::Normal]),
        Expect::Rejected("UNAUTHORIZED_KEY"),
    );
    check(
        |_| {},
        Who::Verifier,
        policy(vec![InvoiceType::Normal]),
        Expect::Rejected("UNAUTHORIZED_KEY"),
    );
    check(
        |_| {},
        Who::Operator,
        policy(vec![InvoiceType::Normal]),
        Expect::Applied,
    );
    check(
        |_| {},
        Who::Operator,
        policy(vec![InvoiceType::SpecialVat, InvoiceType::Normal]),
        Expect::Rejected("INVALID_FIELD"),
    );
    // Type not permitted, then permitted after a policy event; the failed request is
    // re-issued unchanged through retry_of.
    let mut w = World::new();
    base(&mut w);
    set_policy(&mut w, vec![InvoiceType::Normal], 1_000_00);
    let mut r = request("R1", &["P1"]);
    r.invoice_type = InvoiceType::SpecialVat;
    assert_eq!(
        failed(&w.submit(invoice(r.clone()))).reason,
        FailureReason::InvoiceTypeNotPermitted
    );
    set_policy(&mut w, vec![InvoiceType::Normal, InvoiceType::SpecialVat], 1_000_00);
    r.request_id = "R2".into();
    r.retry_of = Some("R1".into());
    issued(&w.submit(invoice(r)));
}

#[test]
fn client_keys() {
    let authorize = |n: u8, payments: bool, invoices: bool| {
        EventKind::ClientKeyAuthorized(ClientKeyAuthorized {
            key: key(n).public(),
            label: format!("POS {n}"),
            permissions: Permissions { payments, invoices },
        })
    };
    let pay = EventKind::PaymentRecorded(payment("C1", 5_00));
    check(
        |_| {},
        Who::Client(50),
        pay.clone(),
        Expect::Rejected("UNAUTHORIZED_KEY"),
    );
    check(
        |w| w.submit(authorize(50, true, false)).map(drop).unwrap(),
        Who::Client(50),
        pay.clone(),
        Expect::Applied,
    );
    check(
        |w| {
            base(w);
            w.submit(authorize(50, true, false)).unwrap();
        },
        Who::Client(50),
        invoice(request("R1", &["P1"])),
        Expect::Rejected("UNAUTHORIZED_KEY"),
    );
    check(
        |w| {
            base(w);
            w.submit(authorize(50, false, true)).unwrap();
        },
        Who::Client(50),
        invoice(request("R1", &["P1"])),
        Expect::Issued,
    );
    check(
        |w| {
            w.submit(authorize(50, true, true)).unwrap();
            w.submit(EventKind::ClientKeyRevoked(ClientKeyRevoked { key: key(50).public() }))
                .unwrap();
        },
        Who::Client(50),
        pay.clone(),
        Expect::Rejected("UNAUTHORIZED_KEY"),
    );
    // Only the owner manages keys; member keys and weak keys cannot be client keys.
    check(
        |_| {},
        Who::Operator,
        authorize(50, true, true),
        Expect::Rejected("UNAUTHORIZED_KEY"),
    );
    check(
        |w| w.submit(authorize(50, true, true)).map(drop).unwrap(),
        Who::Client(50),
        authorize(51, true, true),
        Expect::Rejected("UNAUTHORIZED_KEY"),
    );
    check(
        |_| {},
        Who::Owner,
        authorize(3, true, true),
        Expect::Rejected("INVALID_FIELD"),
    );
    check(
        |_| {},
        Who::Owner,
        authorize(50, false, false),
        Expect::Rejected("INVALID_FIELD"),
    );
    let mut weak = [0u8; 32];
    weak[0] = 1; // the identity point: small order
    check(
        |_| {},
        Who::Owner,
        EventKind::ClientKeyAuthorized(ClientKeyAuthorized {
            key: PublicKey(weak),
            label: "weak".into(),
            permissions: Permissions {
                payments: true,
                invoices: true,
            },
        }),
        Expect::Rejected("INVALID_FIELD"),
    );
    check(
        |_| {},
        Who::Owner,
        EventKind::ClientKeyRevoked(ClientKeyRevoked { key: key(50).public() }),
        Expect::Rejected("KEY_NOT_AUTHORIZED"),
    );
    // Another merchant's member key cannot write on this chain, nor can the operator
    // or a verifier record payments.
    check(
        |_| {},
        Who::OtherMerchant,
        pay.clone(),
        Expect::Rejected("UNAUTHORIZED_KEY"),
    );
    check(|_| {}, Who::Operator, pay.clone(), Expect::Rejected("UNAUTHORIZED_KEY"));
    check(|_| {}, Who::Verifier, pay, Expect::Rejected("UNAUTHORIZED_KEY"));
}

#[test]
fn claims() {
    let mut w = World::new();
    base(&mut w);
    let inv = issued(&w.submit(invoice(request("R1", &["P1"]))));
    let claim = |code: CheckCode, r: &str| {
        EventKind::InvoiceClaimRequested(ClaimRequested {
            invoice_number: inv.number,
            check_code: code,
            claim_ref: r.into(),
        })
    };
    let owner = w.owner.clone();
    assert_eq!(
        w.submit_as(&owner, claim(inv.check_code, "x")).unwrap_err().code(),
        "UNAUTHORIZED_KEY"
    );
    let v = w.verifier.clone();
    let wrong: CheckCode = "00000000000000000000".parse().unwrap();
    let refused_wrong = w.submit_as(&v, claim(wrong, "EXP-1")).unwrap();
    let first = w.submit_as(&v, claim(inv.check_code, "EXP-1")).unwrap();
    let at = match first.as_slice() {
        [DerivedKind::ClaimRecorded(c)] => c.claimed_at,
        other => panic!("{other:?}"),
    };
    let second = w.submit_as(&v, claim(inv.check_code, "EXP-2")).unwrap();
    match second.as_slice() {
        [DerivedKind::ClaimRefused(r)] => assert_eq!(
            r.refusal,
            ClaimRefusal::AlreadyClaimed {
                claimant: MemberCode::new(VERIFIER).unwrap(),
                claimed_at: at
            }
        ),
        other => panic!("{other:?}"),
    }
    // A wrong check code is answered exactly like an unknown invoice.
    let unknown = w
        .submit_as(
            &v,
            EventKind::InvoiceClaimRequested(ClaimRequested {
                invoice_number: InvoiceNumber::new(26, w.chain, 999).unwrap(),
                check_code: wrong,
                claim_ref: "EXP-1".into(),
            }),
        )
        .unwrap();
    match (refused_wrong.as_slice(), unknown.as_slice()) {
        ([DerivedKind::ClaimRefused(a)], [DerivedKind::ClaimRefused(b)]) => {
            assert_eq!(a.refusal, ClaimRefusal::NotFound);
            assert_eq!(b.refusal, ClaimRefusal::NotFound);
        }
        other => panic!("{other:?}"),
    }
    // A fully reversed invoice cannot be claimed.
    let mut w = World::new();
    base(&mut w);
    let inv = issued(&w.submit(invoice(request("R1", &["P1"]))));
    reversed(&w.submit(EventKind::InvoiceRedLetterRequested(RedLetterRequested {
        request_id: "RL".into(),
        invoice_number: inv.number,
        reason: RedLetterReason::SalesReturn,
        scope: RedLetterScope::Full,
    })));
    let v = w.verifier.clone();
    let out = w
        .submit_as(
            &v,
            EventKind::InvoiceClaimRequested(ClaimRequested {
                invoice_number: inv.number,
                check_code: inv.check_code,
                claim_ref: "EXP".into(),
            }),
        )
        .unwrap();
    assert!(matches!(
        out.as_slice(),
        [DerivedKind::ClaimRefused(ClaimRefused {
            refusal: ClaimRefusal::Reversed,
            ..
        })]
    ));
}

#[test]
fn envelope_network_and_chain() {
    let mut w = World::new();
    let mut e = w.event(&w.owner.clone(), EventKind::PaymentRecorded(payment("P", 1)));
    e.body.network = NetworkId(Hash32([7; 32]));
    let e = e.body.sign(&w.owner.clone());
    assert_eq!(w.block(&[e]).rejected[0].1.code(), "WRONG_NETWORK");
    let mut e = w.event(&w.owner.clone(), EventKind::PaymentRecorded(payment("P", 1)));
    e.body.chain = MemberCode::new(OTHER_MERCHANT).unwrap();
    let e = e.body.sign(&w.owner.clone());
    assert_eq!(w.block(&[e]).rejected[0].1.code(), "WRONG_CHAIN");
}

#[test]
fn a_rejected_event_in_a_block_does_not_affect_the_others() {
    let mut w = World::new();
    let owner = w.owner.clone();
    let events = vec![
        w.event(&owner, EventKind::PaymentRecorded(payment("A", 5))),
        w.event(&owner, EventKind::PaymentRecorded(payment("A", 6))),
        w.event(&owner, EventKind::PaymentRecorded(payment("B", 7))),
    ];
    let ex = w.block(&events);
    assert_eq!(ex.rejected.len(), 1);
    assert_eq!(ex.rejected[0].0, 1);
    assert_eq!(ex.entries.len(), 2);
    assert_eq!(w.payment("A").unwrap().recorded.amount, Fen::from_fen(5));
    assert!(w.payment("B").is_some());
}

// ---- the buyer's side: reimbursement lock, booking, red-letter confirmation forms ----

fn blue_of(w: &World, inv: &InvoiceIssued) -> BlueInvoice {
    match w.invoice(inv.number) {
        Some(InvoiceRecord::Blue(b)) => b,
        other => panic!("{other:?}"),
    }
}

const HOURS_72: u64 = 72 * 3600 * 1000;

#[test]
fn the_reimbursement_lock_is_held_released_and_closed_by_its_holder_only() {
    let inv = r1();
    let locked = |w: &mut World| {
        issue_r1(w);
        as_who(w, Who::Verifier, lock(&r1(), "EXP-1")).unwrap();
    };
    // Anyone else is refused while it is locked, and told when, not by whom.
    let w = check(
        locked,
        Who::Buyer,
        lock(&inv, "B-9"),
        Expect::ClaimRefused(ClaimRefusal::AlreadyClaimed {
            claimant: MemberCode::new(VERIFIER).unwrap(),
            claimed_at: Timestamp(T0 + 4000),
        }),
    );
    assert!(blue_of(&w, &inv)
        .claim
        .is_some_and(|c| c.claim_ref == "EXP-1" && c.closed_at.is_none()));
    // Only the holder, with its reference, unlocks or closes.
    check(
        locked,
        Who::Buyer,
        unlock(&inv, "EXP-1"),
        Expect::ClaimRefused(ClaimRefusal::NotLockHolder),
    );
    check(
        locked,
        Who::Verifier,
        unlock(&inv, "EXP-2"),
        Expect::ClaimRefused(ClaimRefusal::NotLockHolder),
    );
    check(
        locked,
        Who::Verifier,
        close(&inv, "EXP-2"),
        Expect::ClaimRefused(ClaimRefusal::NotLockHolder),
    );
    check(
        locked,
        Who::Owner,
        unlock(&inv, "EXP-1"),
        Expect::Rejected("UNAUTHORIZED_KEY"),
    );
    check(
        locked,
        Who::Client(9),
        close(&inv, "EXP-1"),
        Expect::Rejected("UNAUTHORIZED_KEY"),
    );
    // Unlocked, another claimant may lock it.
    let unlocked = |w: &mut World| {
        locked(w);
        as_who(w, Who::Verifier, unlock(&r1(), "EXP-1")).unwrap();
    };
    let w = check(locked, Who::Verifier, unlock(&inv, "EXP-1"), Expect::Unlocked);
    assert_eq!(blue_of(&w, &inv).claim, None);
    check(unlocked, Who::Buyer, lock(&inv, "B-1"), Expect::Claimed);
    check(
        unlocked,
        Who::Verifier,
        unlock(&inv, "EXP-1"),
        Expect::ClaimRefused(ClaimRefusal::NotLocked),
    );
    check(
        issue_r1,
        Who::Verifier,
        close(&inv, "EXP-1"),
        Expect::ClaimRefused(ClaimRefusal::NotLocked),
    );
    // Closed is final: every later claim is refused with the time of closing.
    let buyer_locked = |w: &mut World| {
        unlocked(w);
        as_who(w, Who::Buyer, lock(&r1(), "B-1")).unwrap();
    };
    let closed = |w: &mut World| {
        buyer_locked(w);
        as_who(w, Who::Buyer, close(&r1(), "B-1")).unwrap();
    };
    let w = check(buyer_locked, Who::Buyer, close(&inv, "B-1"), Expect::Closed);
    let closed_at = blue_of(&w, &inv).claim.and_then(|c| c.closed_at).unwrap();
    for (who, kind) in [
        (Who::Verifier, lock(&inv, "EXP-3")),
        (Who::Buyer, lock(&inv, "B-2")),
        (Who::Buyer, unlock(&inv, "B-1")),
        (Who::Buyer, close(&inv, "B-1")),
    ] {
        check(
            closed,
            who,
            kind,
            Expect::ClaimRefused(ClaimRefusal::Closed { closed_at }),
        );
    }
    // An unknown invoice is not found.
    let mut other = inv.clone();
    other.number = InvoiceNumber::new(26, MemberCode::new(MERCHANT).unwrap(), 999).unwrap();
    check(
        locked,
        Who::Verifier,
        unlock(&other, "EXP-1"),
        Expect::ClaimRefused(ClaimRefusal::NotFound),
    );
}

#[test]
fn the_booking_status_is_the_buyers_to_record() {
    let inv = r1();
    for status in BookingStatus::ALL {
        let w = check(issue_r1, Who::Buyer, book(&inv, status), Expect::Booked(status));
        assert_eq!(blue_of(&w, &inv).booking.map(|b| b.status), Some(status));
    }
    // Not the buyer: answered as an unknown invoice.
    for who in [Who::Verifier, Who::OtherMerchant, Who::Operator, Who::Owner] {
        check(
            issue_r1,
            who,
            book(&inv, BookingStatus::BookedDeducted),
            Expect::ClaimRefused(ClaimRefusal::NotFound),
        );
    }
    check(
        issue_r1,
        Who::Client(9),
        book(&inv, BookingStatus::BookedDeducted),
        Expect::Rejected("UNAUTHORIZED_KEY"),
    );
    // The claim holder speaks for the buyer too.
    let locked = |w: &mut World| {
        issue_r1(w);
        as_who(w, Who::Verifier, lock(&r1(), "EXP-1")).unwrap();
    };
    check(
        locked,
        Who::Verifier,
        book(&inv, BookingStatus::BookedNotDeducted),
        Expect::Booked(BookingStatus::BookedNotDeducted),
    );
    // A fully reversed invoice cannot be booked (withdrawing a booking stays possible).
    let reversed_r1 = |w: &mut World| {
        issue_r1(w);
        w.submit(seller_red(&r1(), "RL", RedLetterScope::Full)).unwrap();
    };
    check(
        reversed_r1,
        Who::Buyer,
        book(&inv, BookingStatus::BookedDeducted),
        Expect::ClaimRefused(ClaimRefusal::Reversed),
    );
    check(
        reversed_r1,
        Who::Buyer,
        book(&inv, BookingStatus::Withdrawn),
        Expect::Booked(BookingStatus::Withdrawn),
    );
}

#[test]
fn a_seller_form_on_an_invoice_the_buyer_does_not_hold_issues_at_once() {
    let inv = r1();
    for hold in [None, Some(BookingStatus::NotBooked), Some(BookingStatus::Withdrawn)] {
        let setup = move |w: &mut World| {
            issue_r1(w);
            if let Some(s) = hold {
                as_who(w, Who::Buyer, book(&r1(), s)).unwrap();
            }
        };
        let w = check(
            setup,
            Who::Owner,
            seller_red(&inv, "RL", RedLetterScope::Full),
            Expect::Reversed,
        );
        let form = &blue_of(&w, &inv).forms[0];
        assert_eq!(
            (form.form, form.initiator, form.state),
            (1, Party::Seller, FormState::NoConfirmationNeeded)
        );
        assert!(form.red_number.is_some());
    }
}

#[test]
fn a_seller_form_on_a_booked_or_locked_invoice_waits_for_the_buyer() {
    let inv = r1();
    let booked = |w: &mut World| {
        issue_r1(w);
        as_who(w, Who::Buyer, book(&r1(), BookingStatus::BookedDeducted)).unwrap();
    };
    let w = check(
        booked,
        Who::Owner,
        seller_red(&inv, "RL", RedLetterScope::Full),
        Expect::Form(FormState::WaitingForBuyer),
    );
    assert_eq!(
        w.request("RL").unwrap().outcome,
        RequestOutcome::AwaitingConfirmation(1)
    );
    assert!(!blue_of(&w, &inv).fully_reversed());
    let waiting = |w: &mut World| {
        booked(w);
        w.submit(seller_red(&r1(), "RL", RedLetterScope::Full)).unwrap();
    };
    // The buyer confirms: the red invoice is issued and answers the seller's request.
    let w = check(waiting, Who::Buyer, answer(&inv, 1, true), Expect::FormConfirmed);
    let b = blue_of(&w, &inv);
    assert!(b.fully_reversed());
    assert_eq!(b.forms[0].state, FormState::Confirmed);
    assert_eq!(
        w.request("RL").unwrap().outcome,
        RequestOutcome::Reversed(b.red_letters[0])
    );
    // The seller cannot answer its own form, nor may anyone but the buyer.
    check(
        waiting,
        Who::Owner,
        answer(&inv, 1, true),
        Expect::FormRefused(RedFormRefusal::WrongSide),
    );
    check(
        waiting,
        Who::Verifier,
        answer(&inv, 1, true),
        Expect::FormRefused(RedFormRefusal::NotFound),
    );
    check(
        waiting,
        Who::OtherMerchant,
        answer(&inv, 1, true),
        Expect::FormRefused(RedFormRefusal::NotFound),
    );
    check(
        waiting,
        Who::Buyer,
        answer(&inv, 2, true),
        Expect::FormRefused(RedFormRefusal::NotFound),
    );
    // The buyer rejects: the seller's request fails, with its remedy.
    let w = check(
        waiting,
        Who::Buyer,
        answer(&inv, 1, false),
        Expect::Form(FormState::Rejected),
    );
    assert!(matches!(
        w.request("RL").unwrap().outcome,
        RequestOutcome::Failed {
            reason: FailureReason::RedFormNotConfirmed,
            ..
        }
    ));
    assert!(!blue_of(&w, &inv).fully_reversed());
    // The seller withdraws; the buyer cannot withdraw the seller's form.
    check(
        waiting,
        Who::Owner,
        withdraw(&inv, 1),
        Expect::Form(FormState::Withdrawn),
    );
    check(
        waiting,
        Who::Buyer,
        withdraw(&inv, 1),
        Expect::FormRefused(RedFormRefusal::WrongSide),
    );
    // One form waits at a time: the seller's second request fails until it is answered.
    check(
        waiting,
        Who::Owner,
        seller_red(&inv, "RL2", RedLetterScope::Full),
        Expect::Failed(FailureReason::RedFormOpen),
    );
    check(
        waiting,
        Who::Buyer,
        buyer_form(&inv, RedLetterScope::Full),
        Expect::FormRefused(RedFormRefusal::Failed {
            reason: FailureReason::RedFormOpen,
            detail: String::new(),
        }),
    );
    // Answered once, a form takes no second answer.
    let confirmed = |w: &mut World| {
        waiting(w);
        as_who(w, Who::Buyer, answer(&r1(), 1, true)).unwrap();
    };
    check(
        confirmed,
        Who::Buyer,
        answer(&inv, 1, false),
        Expect::FormRefused(RedFormRefusal::NotWaiting(FormState::Confirmed)),
    );
    // On a locked invoice the lock holder is the buyer's side.
    let locked = |w: &mut World| {
        issue_r1(w);
        as_who(w, Who::Verifier, lock(&r1(), "EXP-1")).unwrap();
        w.submit(seller_red(&r1(), "RL", RedLetterScope::Full)).unwrap();
    };
    check(locked, Who::Verifier, answer(&inv, 1, true), Expect::FormConfirmed);
}

#[test]
fn a_form_unanswered_for_72_hours_of_block_time_is_void() {
    let inv = r1();
    let waiting = |w: &mut World| {
        issue_r1(w);
        as_who(w, Who::Buyer, book(&r1(), BookingStatus::BookedDeducted)).unwrap();
        w.submit(seller_red(&r1(), "RL", RedLetterScope::Full)).unwrap();
    };
    // One block before the deadline it still waits (each block adds a second).
    let just_before = move |w: &mut World| {
        waiting(w);
        w.time += HOURS_72 - 2000;
    };
    check(just_before, Who::Buyer, answer(&inv, 1, true), Expect::FormConfirmed);
    let late = move |w: &mut World| {
        waiting(w);
        w.time += HOURS_72;
    };
    let w = check(
        late,
        Who::Buyer,
        answer(&inv, 1, true),
        Expect::FormRefused(RedFormRefusal::NotWaiting(FormState::Void)),
    );
    assert_eq!(blue_of(&w, &inv).forms[0].state, FormState::Void);
    assert!(matches!(
        w.request("RL").unwrap().outcome,
        RequestOutcome::Failed {
            reason: FailureReason::RedFormNotConfirmed,
            ..
        }
    ));
    // Void, it no longer blocks a new form.
    check(
        late,
        Who::Owner,
        seller_red(&inv, "RL2", RedLetterScope::Full),
        Expect::Form(FormState::WaitingForBuyer),
    );
    check(
        late,
        Who::Owner,
        withdraw(&inv, 1),
        Expect::FormRefused(RedFormRefusal::NotWaiting(FormState::Void)),
    );
}

#[test]
fn a_buyer_form_waits_for_the_seller() {
    let inv = r1();
    let w = check(
        issue_r1,
        Who::Buyer,
        buyer_form(&inv, RedLetterScope::Full),
        Expect::Form(FormState::WaitingForSeller),
    );
    assert_eq!(blue_of(&w, &inv).forms[0].initiator, Party::Buyer);
    // Only the buyer's side may start one.
    for who in [Who::Verifier, Who::OtherMerchant, Who::Operator] {
        check(
            issue_r1,
            who,
            buyer_form(&inv, RedLetterScope::Full),
            Expect::FormRefused(RedFormRefusal::NotFound),
        );
    }
    let waiting = |w: &mut World| {
        issue_r1(w);
        as_who(w, Who::Buyer, buyer_form(&r1(), RedLetterScope::Full)).unwrap();
    };
    // The seller confirms: with its member key or an invoicing client key.
    let w = check(waiting, Who::Owner, answer(&inv, 1, true), Expect::FormConfirmed);
    let b = blue_of(&w, &inv);
    let red = match w.invoice(b.red_letters[0]) {
        Some(InvoiceRecord::Red(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(red.request_id, format!("{}-F1", inv.number));
    assert_eq!(red.reason, RedLetterReason::SalesDiscount);
    let with_client = |invoices: bool| {
        move |w: &mut World| {
            waiting(w);
            w.submit(EventKind::ClientKeyAuthorized(ClientKeyAuthorized {
                key: key(9).public(),
                label: "back office".into(),
                permissions: Permissions {
                    payments: true,
                    invoices,
                },
            }))
            .unwrap();
        }
    };
    check(
        with_client(true),
        Who::Client(9),
        answer(&inv, 1, false),
        Expect::Form(FormState::Rejected),
    );
    check(
        with_client(false),
        Who::Client(9),
        answer(&inv, 1, true),
        Expect::Rejected("UNAUTHORIZED_KEY"),
    );
    // The buyer cannot confirm its own form; it may withdraw it.
    check(
        waiting,
        Who::Buyer,
        answer(&inv, 1, true),
        Expect::FormRefused(RedFormRefusal::WrongSide),
    );
    check(
        waiting,
        Who::Buyer,
        withdraw(&inv, 1),
        Expect::Form(FormState::Withdrawn),
    );
    check(
        waiting,
        Who::Owner,
        withdraw(&inv, 1),
        Expect::FormRefused(RedFormRefusal::WrongSide),
    );
}

#[test]
fn a_partial_form_reverses_line_by_line_within_what_is_left() {
    let inv = r1();
    // R1 is 1 x 50.00 at 6%: reverse 0.4 of it, then more than is left.
    let part = RedLetterScope::Partial(vec![line(400, 5000, 600)]);
    let waiting = move |w: &mut World| {
        issue_r1(w);
        as_who(
            w,
            Who::Buyer,
            buyer_form(&r1(), RedLetterScope::Partial(vec![line(400, 5000, 600)])),
        )
        .unwrap();
    };
    check(
        issue_r1,
        Who::Buyer,
        buyer_form(&inv, part),
        Expect::Form(FormState::WaitingForSeller),
    );
    let w = check(waiting, Who::Owner, answer(&inv, 1, true), Expect::FormConfirmed);
    let b = blue_of(&w, &inv);
    assert_eq!(b.remaining[0].net, Fen::from_fen(30_00));
    assert!(!b.fully_reversed());
    let after = move |w: &mut World| {
        waiting(w);
        w.submit(answer(&r1(), 1, true)).unwrap();
    };
    let too_much = RedLetterScope::Partial(vec![line(700, 5000, 600)]);
    let refused = |reason| {
        Expect::FormRefused(RedFormRefusal::Failed {
            reason,
            detail: String::new(),
        })
    };
    check(
        after,
        Who::Buyer,
        buyer_form(&inv, too_much.clone()),
        refused(FailureReason::RedLetterExceedsRemaining),
    );
    // The seller's partial request is held to the same bound.
    check(
        after,
        Who::Owner,
        seller_red(&inv, "RL", too_much),
        Expect::Failed(FailureReason::RedLetterExceedsRemaining),
    );
    let other_rate = RedLetterScope::Partial(vec![line(100, 5000, 900)]);
    check(
        issue_r1,
        Who::Buyer,
        buyer_form(&inv, other_rate),
        refused(FailureReason::RedLetterLineUnknown),
    );
}

#[test]
fn a_malformed_invoice_number_on_the_buyers_side_is_rejected_before_anything_is_read() {
    // Year 200: the canonical decoder accepts the bytes, the bounds do not.
    let bad: InvoiceNumber = codec::decode(&[200, 0xb1, 0xad, 0x01, 0x00, 1, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    assert!(!bad.is_well_formed());
    let mut inv = r1();
    inv.number = bad;
    for (who, kind) in [
        (Who::Verifier, unlock(&inv, "EXP-1")),
        (Who::Verifier, close(&inv, "EXP-1")),
        (Who::Buyer, book(&inv, BookingStatus::BookedDeducted)),
        (Who::Buyer, buyer_form(&inv, RedLetterScope::Full)),
        (Who::Buyer, answer(&inv, 1, true)),
        (Who::Owner, withdraw(&inv, 1)),
    ] {
        check(issue_r1, who, kind, Expect::Rejected("INVALID_FIELD"));
    }
}

#[test]
fn a_partial_reversal_names_original_lines_in_their_order() {
    use FailureReason as F;
    let item = |d: &str, qty: i64, price: i64, rate: u16| LineItem {
        description: d.into(),
        tax_code: "3070401000000000000".into(),
        ..line(qty, price, rate)
    };
    // Tea 20.00 at 13%, Pot 30.00 at 6%, Tea 10.00 at 13%: 66.70 with tax, on P1.
    let setup = |w: &mut World| {
        base(w);
        let mut r = request("R1", &["P1"]);
        r.lines = vec![
            item("Tea", 2000, 1000, 1300),
            item("Pot", 1000, 3000, 600),
            item("Tea", 1000, 1000, 1300),
        ];
        issued(&w.submit(invoice(r)));
    };
    let number = {
        let mut w = World::new();
        setup(&mut w);
        InvoiceNumber::new(26, w.chain, 1).unwrap()
    };
    let red = |id: &str, lines: Vec<LineItem>| {
        EventKind::InvoiceRedLetterRequested(RedLetterRequested {
            request_id: id.into(),
            invoice_number: number,
            reason: RedLetterReason::SalesReturn,
            scope: RedLetterScope::Partial(lines),
        })
    };
    // In order, both Tea lines at once.
    let w = check(
        setup,
        Who::Owner,
        red(
            "X",
            vec![
                item("Tea", 1000, 1000, 1300),
                item("Pot", 500, 3000, 600),
                item("Tea", 1000, 1000, 1300),
            ],
        ),
        Expect::Reversed,
    );
    match w.invoice(number).unwrap() {
        InvoiceRecord::Blue(b) => {
            assert_eq!(b.remaining_total(), Some(Fen::from_fen(10_00 + 1_30 + 15_00 + 90)));
        }
        other => panic!("{other:?}"),
    }
    // Out of the original's order: after the Pot line only the second Tea line is left,
    // and it is too small for 20.00.
    check(
        setup,
        Who::Owner,
        red("X", vec![item("Pot", 1000, 3000, 600), item("Tea", 2000, 1000, 1300)]),
        Expect::Failed(F::RedLetterExceedsRemaining),
    );
    // The same line twice, or a line not on the invoice: nothing to name.
    check(
        setup,
        Who::Owner,
        red("X", vec![item("Pot", 100, 3000, 600), item("Pot", 100, 3000, 600)]),
        Expect::Failed(F::RedLetterLineUnknown),
    );
    check(
        setup,
        Who::Owner,
        red("X", vec![item("Cup", 1000, 100, 1300)]),
        Expect::Failed(F::RedLetterLineUnknown),
    );
    // Per line, not per rate: the first Tea line cannot take the second one's room.
    check(
        setup,
        Who::Owner,
        red("X", vec![item("Tea", 2500, 1000, 1300)]),
        Expect::Failed(F::RedLetterExceedsRemaining),
    );
    // A used-up line is skipped: the next Tea names the third line; then a full reversal
    // takes exactly the rest, line by line, under the original descriptions.
    let mut w = World::new();
    setup(&mut w);
    reversed(&w.submit(red("A", vec![item("Tea", 2000, 1000, 1300)])));
    let second = reversed(&w.submit(red("B", vec![item("Tea", 400, 1000, 1300)])));
    assert_eq!((second.net, second.tax), (Fen::from_fen(4_00), Fen::from_fen(52)));
    let rest = reversed(&w.submit(EventKind::InvoiceRedLetterRequested(RedLetterRequested {
        request_id: "C".into(),
        invoice_number: number,
        reason: RedLetterReason::SalesReturn,
        scope: RedLetterScope::Full,
    })));
    let described: Vec<_> = rest
        .lines
        .iter()
        .map(|l| (l.item.description.as_str(), l.net.fen(), l.tax.fen()))
        .collect();
    assert_eq!(described, vec![("Pot", 30_00, 1_80), ("Tea", 6_00, 78)]);
    assert!(rest.fully_reversed);
    assert_eq!(w.invoicing("P1").invoiced, Fen::ZERO);
}

// ---- the invoicing quota (授信额度) -----------------------------------------------------

/// T0 is 2026-03-01 08:00 in UTC+8.
const MARCH: u32 = 202603;
/// 2026-04-01 00:00 UTC+8 (2026-03-31T16:00:00Z).
const APRIL_1: u64 = 1_774_972_800_000;

fn grant(fen: i64) -> EventKind {
    quota(MARCH, QuotaAction::Grant(Fen::from_fen(fen)))
}

fn quota_of(w: &World) -> QuotaRecord {
    match w.get(StateKey::Quota) {
        Some(StateValue::Quota(q)) => q,
        other => panic!("Quota holds {other:?}"),
    }
}

fn quota_queue(w: &World) -> Vec<String> {
    match w.get(StateKey::QuotaBlocked) {
        Some(StateValue::QuotaBlocked(q)) => q.requests,
        None => vec![],
        other => panic!("QuotaBlocked holds {other:?}"),
    }
}

/// A request for 10.00 + 0.60 tax on a fresh payment of 100.00.
fn small(w: &mut World, id: &str) -> EventKind {
    let p = format!("P-{id}");
    w.pay(&p, 100_00).unwrap();
    let mut r = request(id, &[p.as_str()]);
    r.lines = vec![line(1000, 10_00, 600)];
    invoice(r)
}

#[test]
fn quota_rules() {
    use FailureReason as F;
    use QuotaAction as A;
    // Only a tax office changes a quota, and only for the block's month (UTC+8).
    for who in [Who::Owner, Who::Operator, Who::Verifier, Who::Client(7)] {
        check(base, who, grant(100_00), Expect::Rejected("UNAUTHORIZED_KEY"));
    }
    for month in [202604, 202602, 202613, 202600, 199912] {
        check(
            base,
            Who::TaxOffice,
            quota(month, A::Grant(Fen::from_fen(1))),
            Expect::Rejected("INVALID_FIELD"),
        );
    }
    check(
        base,
        Who::TaxOffice,
        quota(MARCH, A::Grant(Fen::from_fen(-1))),
        Expect::Rejected("INVALID_FIELD"),
    );
    // Nothing to suspend, resume or re-validate before a grant.
    for a in [A::Suspend, A::Resume, A::Revalidate] {
        check(base, Who::TaxOffice, quota(MARCH, a), Expect::Rejected("INVALID_FIELD"));
    }
    let granted = |fen: i64| {
        move |w: &mut World| {
            base(w);
            let tax = w.tax_office.clone();
            w.submit_as(&tax, grant(fen)).unwrap();
        }
    };
    let w = check(base, Who::TaxOffice, grant(100_00), Expect::Applied);
    assert_eq!(
        (quota_of(&w).month, quota_of(&w).granted, quota_of(&w).used),
        (MARCH, Fen::from_fen(100_00), Fen::ZERO)
    );
    // A merchant never granted a quota is not under quota; one granted is, within it.
    check(base, Who::Owner, invoice(request("R1", &["P1"])), Expect::Issued);
    let w = check(
        granted(53_00),
        Who::Owner,
        invoice(request("R1", &["P1"])),
        Expect::Issued,
    );
    assert_eq!(quota_of(&w).used, Fen::from_fen(53_00));
    assert_eq!(quota_of(&w).left(), Fen::ZERO);
    check(
        granted(52_99),
        Who::Owner,
        invoice(request("R1", &["P1"])),
        Expect::Failed(F::QuotaExceeded),
    );
    // A grant below what the month already used is refused: used never exceeds it.
    check(
        |w: &mut World| {
            granted(53_00)(w);
            issued(&w.submit(invoice(request("R1", &["P1"]))));
        },
        Who::TaxOffice,
        grant(52_99),
        Expect::Rejected("INVALID_FIELD"),
    );
    // Re-validating a month that is valid is refused.
    check(
        granted(1),
        Who::TaxOffice,
        quota(MARCH, A::Revalidate),
        Expect::Rejected("INVALID_FIELD"),
    );
    // Suspended: refused whatever is left.
    let suspended = move |w: &mut World| {
        granted(100_00)(w);
        let tax = w.tax_office.clone();
        w.submit_as(&tax, quota(MARCH, A::Suspend)).unwrap();
    };
    check(
        suspended,
        Who::Owner,
        invoice(request("R1", &["P1"])),
        Expect::Failed(F::QuotaSuspended),
    );
    // A new month without re-validation: expired, whatever was left of March.
    let april = move |w: &mut World| {
        granted(100_00)(w);
        w.time = APRIL_1;
    };
    check(
        april,
        Who::Owner,
        invoice(request("R1", &["P1"])),
        Expect::Failed(F::QuotaExpired),
    );
    // ... and March's quota can no longer be changed in April.
    check(april, Who::TaxOffice, grant(1), Expect::Rejected("INVALID_FIELD"));
    // The fee is checked after the quota: a request short of both waits for quota first.
    check(
        |w: &mut World| {
            base(w);
            drain_fee(w);
            let tax = w.tax_office.clone();
            w.submit_as(&tax, grant(1)).unwrap();
        },
        Who::Owner,
        invoice(request("R1", &["P1"])),
        Expect::Failed(F::QuotaExceeded),
    );
}

fn drain_fee(w: &mut World) {
    // The genesis balance (1.00) covers ten fees of 0.10: spend them.
    for i in 0..10 {
        let id = format!("DRAIN{i}");
        let k = small(w, &id);
        issued(&w.submit(k));
    }
}

#[test]
fn quota_blocked_requests_are_issued_in_order_when_the_tax_office_makes_room() {
    let mut w = World::new();
    base(&mut w);
    let tax = w.tax_office.clone();
    w.submit_as(&tax, grant(60_00)).unwrap();
    issued(&w.submit(invoice(request("R1", &["P1"])))); // 53.00 of 60.00
    let r2 = small(&mut w, "R2");
    assert_eq!(failed(&w.submit(r2)).reason, FailureReason::QuotaExceeded);
    let r3 = small(&mut w, "R3");
    let f = failed(&w.submit(r3));
    assert!(
        f.detail.contains("issued automatically once the tax office"),
        "{}",
        f.detail
    );
    assert_eq!(quota_queue(&w), ["R2", "R3"]);

    // Raised to 70.00: 17.00 left, room for R2 (10.60) only; R3 waits, first in line.
    let ex = w.submit_as(&tax, grant(70_00)).unwrap();
    match ex.as_slice() {
        [DerivedKind::InvoiceIssued(i)] => assert_eq!(i.request_id, "R2"),
        other => panic!("{other:?}"),
    }
    assert_eq!(quota_queue(&w), ["R3"]);
    let auto = w.request("R2").unwrap().auto_reissue.unwrap();
    assert_eq!(auto.trigger, ReissueTrigger::Quota(MARCH));
    assert_eq!(quota_of(&w).used, Fen::from_fen(63_60));

    // A red invoice gives its total back (not re-running anything by itself).
    reversed(&w.submit(EventKind::InvoiceRedLetterRequested(RedLetterRequested {
        request_id: "X1".into(),
        invoice_number: InvoiceNumber::new(26, w.chain, 1).unwrap(),
        reason: RedLetterReason::SalesReturn,
        scope: RedLetterScope::Full,
    })));
    assert_eq!(quota_of(&w).used, Fen::from_fen(10_60));
    assert_eq!(quota_queue(&w), ["R3"]);
    let ex = w.submit_as(&tax, grant(70_00)).unwrap();
    assert!(matches!(ex.as_slice(), [DerivedKind::InvoiceIssued(i)] if i.request_id == "R3"));
    assert!(quota_queue(&w).is_empty());

    // April: nothing carried over; a request waits until the quota is re-validated, and
    // the re-validated quota is the amount last granted, from nothing used.
    w.time = APRIL_1;
    let r4 = small(&mut w, "R4");
    assert_eq!(failed(&w.submit(r4)).reason, FailureReason::QuotaExpired);
    let ex = w.submit_as(&tax, quota(202604, QuotaAction::Revalidate)).unwrap();
    assert!(matches!(ex.as_slice(), [DerivedKind::InvoiceIssued(i)] if i.request_id == "R4"));
    let q = quota_of(&w);
    assert_eq!(
        (q.month, q.granted, q.used),
        (202604, Fen::from_fen(70_00), Fen::from_fen(10_60))
    );
    // March keeps its final figures.
    match w.get(StateKey::QuotaMonth(MARCH)) {
        Some(StateValue::QuotaMonth(m)) => {
            assert_eq!((m.granted, m.used), (Fen::from_fen(70_00), Fen::from_fen(21_20)))
        }
        other => panic!("{other:?}"),
    }

    // Suspended, then resumed: the waiting request is issued on resumption.
    w.submit_as(&tax, quota(202604, QuotaAction::Suspend)).unwrap();
    let r5 = small(&mut w, "R5");
    assert_eq!(failed(&w.submit(r5)).reason, FailureReason::QuotaSuspended);
    let ex = w.submit_as(&tax, quota(202604, QuotaAction::Resume)).unwrap();
    assert!(matches!(ex.as_slice(), [DerivedKind::InvoiceIssued(i)] if i.request_id == "R5"));

    // A retry takes a waiting request out of the queue: it is not issued twice.
    let r6 = small(&mut w, "R6");
    w.submit_as(&tax, quota(202604, QuotaAction::Suspend)).unwrap();
    failed(&w.submit(r6));
    assert_eq!(quota_queue(&w), ["R6"]);
    let mut retry = request("R6B", &["P-R6"]);
    retry.lines = vec![line(1000, 10_00, 600)];
    retry.retry_of = Some("R6".into());
    failed(&w.submit(invoice(retry)));
    assert_eq!(quota_queue(&w), ["R6B"]);
}

/// Tax rules as data: the merchant's dated rate rules, the two flags, the
/// classification table, and the special VAT invoice's rules.
#[test]
fn tax_rates_flags_and_classification_codes() {
    use fapiao_core::tax::RateRule;
    use FailureReason as F;
    fn dated(w: &mut World) {
        base(w);
        let rules = [
            "16:..2019-03-31",
            "13:2019-04-01..",
            "6",
            "exempt",
            "not_taxable",
            "20:2100-01-01..",
        ];
        let mut rates: Vec<RateRule> = rules.iter().map(|r| r.parse().unwrap()).collect();
        fapiao_core::tax::canonical_rate_rules(&mut rates).unwrap();
        let op = w.operator.clone();
        w.submit_as(
            &op,
            EventKind::MerchantPolicySet(MerchantPolicy {
                permitted_types: vec![InvoiceType::Normal, InvoiceType::SpecialVat],
                max_invoice_total: Fen::from_fen(100_000_00),
                rates,
            }),
        )
        .unwrap();
    }
    let rate = |t: TaxRate| with(move |r| r.lines[0].tax_rate = t);
    // In force on the block's date (2026): 13%, 6% and both flags.
    for t in [
        TaxRate::Bp(1300),
        TaxRate::Bp(600),
        TaxRate::Exempt,
        TaxRate::NotTaxable,
    ] {
        check(dated, Who::Owner, rate(t), Expect::Issued);
    }
    // 16% ended on 2019-03-31; 20% is scheduled for 2100; 9% is not the merchant's.
    check(
        dated,
        Who::Owner,
        rate(TaxRate::Bp(1600)),
        Expect::Failed(F::TaxRateNotInForce),
    );
    check(
        dated,
        Who::Owner,
        rate(TaxRate::Bp(2000)),
        Expect::Failed(F::TaxRateNotInForce),
    );
    check(
        dated,
        Who::Owner,
        rate(TaxRate::Bp(900)),
        Expect::Failed(F::TaxRateNotAllowed),
    );
    // An exempt sale cannot go on a special VAT invoice; a not-taxable one can.
    let special = |t: TaxRate| {
        with(move |r| {
            r.invoice_type = InvoiceType::SpecialVat;
            r.lines[0].tax_rate = t;
        })
    };
    check(
        dated,
        Who::Owner,
        special(TaxRate::Exempt),
        Expect::Failed(F::TaxRateNotAllowed),
    );
    check(dated, Who::Owner, special(TaxRate::NotTaxable), Expect::Issued);
    // A code not in the table, a mistyped one, an empty one.
    for code in ["3070401000000000009", "307040100000000000", "30704010000000000x", ""] {
        check(
            dated,
            Who::Owner,
            with(move |r| r.lines[0].tax_code = code.into()),
            Expect::Failed(F::TaxCodeUnknown),
        );
    }
    // A code longer than any a person could mistype is not an invoice at all.
    check(
        dated,
        Who::Owner,
        with(|r| r.lines[0].tax_code = "3".repeat(33)),
        Expect::Rejected("INVALID_FIELD"),
    );
    // Exempt and not-taxable lines carry no tax, and the issued lines keep the
    // classification's short name.
    let w = check(
        dated,
        Who::Owner,
        with(|r| {
            let mut second = r.lines[0].clone();
            second.tax_code = "6010000000000000000".into();
            second.tax_rate = TaxRate::NotTaxable;
            r.lines[0].tax_rate = TaxRate::Exempt;
            r.lines.push(second);
        }),
        Expect::Issued,
    );
    let Some(RequestOutcome::Issued(n)) = w.request("R1").map(|r| r.outcome) else {
        panic!("issued")
    };
    let Some(InvoiceRecord::Blue(b)) = w.invoice(n) else {
        panic!("a blue invoice")
    };
    let names: Vec<&str> = b.issued.lines.iter().map(|l| l.short_name.as_str()).collect();
    assert_eq!(names, ["餐饮服务", "预付卡销售"]);
    assert!(b.issued.lines.iter().all(|l| l.tax.is_zero()));
    assert!(b.issued.tax.is_zero() && b.issued.total == b.issued.net);
    // A rule set out of canonical order, or overlapping, is not a policy.
    let unsorted = EventKind::MerchantPolicySet(MerchantPolicy {
        permitted_types: vec![InvoiceType::Normal],
        max_invoice_total: Fen::from_fen(100_00),
        rates: vec![RateRule::always(TaxRate::Bp(1300)), RateRule::always(TaxRate::Bp(600))],
    });
    check(base, Who::Operator, unsorted, Expect::Rejected("INVALID_FIELD"));
    let overlapping = EventKind::MerchantPolicySet(MerchantPolicy {
        permitted_types: vec![InvoiceType::Normal],
        max_invoice_total: Fen::from_fen(100_00),
        rates: vec!["13:..2020-01-01".parse().unwrap(), "13:2019-06-01..".parse().unwrap()],
    });
    check(base, Who::Operator, overlapping, Expect::Rejected("INVALID_FIELD"));
}
