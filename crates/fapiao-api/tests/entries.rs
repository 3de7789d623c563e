//! Every kind of block entry the domain derives has a typed DTO that serialises to the
//! documented shape and reads back to itself, and the OpenAPI document names every kind.
#![allow(clippy::inconsistent_digit_grouping)] // Amounts in fen read as yuan_fen.

use fapiao_api::dto::{ClaimRefusalDto, DerivedDataDto, DerivedEntryDto, EntryDto};
use fapiao_core::event::*;
use fapiao_core::{Entry, Fen};
use fapiao_testkit::world::*;
use serde_json::Value;
use std::collections::BTreeSet;

/// A ledger holding every kind of event and every kind of derived entry.
// Long: one step per kind, in an order that makes each possible.
fn every_kind() -> World {
    let mut w = World::new();
    base(&mut w);
    w.submit(refund_event("P2", "F1", 5_00)).unwrap();
    w.pay("P3", 10_00).unwrap();
    w.submit(EventKind::PaymentVoided(PaymentVoided {
        payment_id: "P3".into(),
        reason: "typo".into(),
    }))
    .unwrap();
    let blue = issued(&w.submit(invoice(request("R1", &["P1"]))));
    failed(&w.submit(invoice(request("R-unknown", &["P-none"]))));
    // The lock, a second claimant refused, unlocking, and closing.
    as_who(&mut w, Who::Verifier, lock(&blue, "EXP-1")).unwrap();
    as_who(&mut w, Who::TaxOffice, lock(&blue, "TAX-1")).unwrap();
    as_who(&mut w, Who::Verifier, unlock(&blue, "EXP-1")).unwrap();
    as_who(&mut w, Who::Verifier, lock(&blue, "EXP-2")).unwrap();
    as_who(&mut w, Who::Verifier, close(&blue, "EXP-2")).unwrap();
    // A booked invoice's red-letter waits for the buyer, who confirms it.
    w.pay("P4", 100_00).unwrap();
    let booked = issued(&w.submit(invoice(request("R2", &["P4"]))));
    as_who(&mut w, Who::Buyer, book(&booked, BookingStatus::BookedDeducted)).unwrap();
    w.submit(seller_red(&booked, "RED-1", RedLetterScope::Full)).unwrap();
    as_who(&mut w, Who::Buyer, answer(&booked, 1, true)).unwrap();
    // A buyer's form, withdrawn, then withdrawn again (refused).
    w.pay("P5", 100_00).unwrap();
    let third = issued(&w.submit(invoice(request("R3", &["P5"]))));
    let full_line = RedLetterScope::Partial(third.lines.iter().map(|l| l.item.clone()).collect());
    as_who(&mut w, Who::Buyer, buyer_form(&third, full_line)).unwrap();
    as_who(&mut w, Who::Buyer, withdraw(&third, 1)).unwrap();
    as_who(&mut w, Who::Buyer, withdraw(&third, 1)).unwrap();
    // The operator's, the owner's and the tax office's events.
    as_who(&mut w, Who::Operator, deposit_event("D1", 50_00)).unwrap();
    as_who(
        &mut w,
        Who::Operator,
        EventKind::MerchantPolicySet(MerchantPolicy {
            permitted_types: vec![InvoiceType::Normal],
            max_invoice_total: Fen::from_fen(1_000_00),
            rates: policy_rates(),
        }),
    )
    .unwrap();
    let client = key(9).public();
    w.submit(EventKind::ClientKeyAuthorized(ClientKeyAuthorized {
        key: client,
        label: "till 1".into(),
        permissions: Permissions {
            payments: true,
            invoices: false,
        },
    }))
    .unwrap();
    w.submit(EventKind::ClientKeyRevoked(ClientKeyRevoked { key: client }))
        .unwrap();
    as_who(
        &mut w,
        Who::TaxOffice,
        quota(202603, QuotaAction::Grant(Fen::from_fen(10_000_00))),
    )
    .unwrap();
    w
}

#[test]
fn every_entry_kind_has_a_typed_shape_that_reads_back() {
    let w = every_kind();
    let mut events = BTreeSet::new();
    let mut derived = BTreeSet::new();
    for e in &w.log {
        let dto = EntryDto::new(e);
        let v = serde_json::to_value(&dto).unwrap();
        assert_eq!(v["id"], e.id().to_string(), "{v}");
        assert!(v["data"].is_object(), "an entry's data is an object: {v}");
        let back: EntryDto = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, dto, "{v}");
        assert_eq!(dto.type_and_kind().1, v["kind"].as_str().unwrap());
        match e {
            Entry::Event(ev) => {
                assert_eq!(v["type"], "event");
                assert_eq!(v["kind"], ev.body.kind.name(), "the kind is the ledger's own name");
                assert_eq!(v["author"], ev.body.author.to_hex());
                events.insert(ev.body.kind.name());
            }
            Entry::Derived(d) => {
                assert_eq!(v["type"], "derived");
                assert_eq!(v["cause"], d.cause.to_string());
                derived.insert(v["kind"].as_str().unwrap().to_string());
            }
        }
    }
    // Every variant of the ledger's two enums appears (17 event kinds, 10 derived).
    assert_eq!(events.len(), 17, "event kinds covered: {events:?}");
    assert_eq!(derived.len(), 10, "derived kinds covered: {derived:?}");

    let doc = serde_json::to_string(&<fapiao_api::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
    for kind in events.iter().map(|k| k.to_string()).chain(derived) {
        assert!(
            doc.contains(&format!("\"{kind}\"")),
            "the OpenAPI document does not name {kind}"
        );
    }
}

#[test]
fn the_public_outcome_of_a_refused_claim_does_not_name_the_first_claimant() {
    let w = every_kind();
    let refused = w
        .log
        .iter()
        .find_map(|e| match e {
            Entry::Derived(d) if matches!(d.kind, DerivedKind::ClaimRefused(_)) => Some(d.clone()),
            _ => None,
        })
        .expect("the scenario refuses a second claimant");
    let in_block = DerivedEntryDto::new(&refused);
    let public = DerivedEntryDto::outcome(&refused);
    let first = |d: &DerivedEntryDto| match &d.derived {
        DerivedDataDto::ClaimRefused(c) => match &c.refusal {
            ClaimRefusalDto::AlreadyClaimed {
                first_claimant,
                first_claimed_at_ms,
            } => (first_claimant.clone(), *first_claimed_at_ms),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let (holder, at) = first(&in_block);
    assert_eq!(holder.as_deref(), Some(VERIFIER.to_string().as_str()));
    assert_eq!(first(&public), (None, at), "the outcome says when, not by whom");
    let v: Value = serde_json::to_value(&public).unwrap();
    assert!(v["data"]["refusal"].get("first_claimant").is_none(), "{v}");
    assert_eq!(v["data"]["refusal"]["reason"], "already_claimed");
}
