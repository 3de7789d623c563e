//! Writes the seed corpora (`corpus/<target>/`) and the valid proof bundle
//! (`fixtures/bundle.bin`) from a real run: the events are posted as JSON bodies to the
//! HTTP harness's router, the engine cuts and certifies the blocks, and every seed is a
//! canonical encoding read back from its store. Run from `fuzz/`:
//!
//! `cargo run --example seeds -- .`
//!
//! The bundle changes with every run (block times are the wall clock): commit it with
//! the corpora it was generated with.

use fapiao_core::block::{AttestationBody, Equivocation};
use fapiao_core::event::*;
use fapiao_core::state::StateKey;
use fapiao_core::{codec, Block, CheckCode, EventBody, Fen, Hash32, InvoiceNumber, Quantity, TaxRate, Timestamp};
use fapiao_domain::StateRead;
use fapiao_engine::EventStatus;
use fapiao_fuzz::http::harness;
use fapiao_fuzz::{fixed, key, MERCHANT};
use fapiao_net::wire::{encode_frame, encode_gossip, Gossip, Request, Response, HeadSummary};
use std::path::PathBuf;
use std::time::Duration;

struct Out(PathBuf);

impl Out {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.0.join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn body(kind: EventKind, signer: u8) -> EventBody {
    EventBody {
        network: fixed().1,
        chain: fapiao_fuzz::code(MERCHANT),
        author: key(signer).public(),
        timestamp: Timestamp(now_ms()),
        kind,
    }
}

fn json_single(event: &[u8]) -> Vec<u8> {
    serde_json::json!({ "event": hex::encode(event) }).to_string().into_bytes()
}

/// Posts the signed event and waits until it is in a certified block.
fn submit(b: &EventBody, signer: u8) -> fapiao_core::Event {
    let h = harness();
    let event = b.clone().sign(&key(signer));
    let (status, answer) = h.post("/v1/events", json_single(&codec::to_bytes(&event)));
    assert!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&answer));
    for _ in 0..500 {
        match h.engine.event_status(&event.id()) {
            Ok(EventStatus::Committed { certified: true, .. }) => return event,
            Ok(EventStatus::Rejected { code, message, .. }) => panic!("{code}: {message}"),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    panic!("event not committed in time");
}

fn line(description: &str, quantity: i64, unit_price: i64, rate: u16) -> LineItem {
    LineItem {
        description: description.into(),
        tax_code: "3070401000000000000".into(),
        quantity: Quantity(quantity),
        unit_price: Fen::from_fen(unit_price),
        tax_rate: TaxRate::Bp(rate),
    }
}

fn main() {
    let out = Out(PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into())));
    let h = harness();
    let chain = h.engine.chain();
    let mut events = Vec::new();

    // Payments, a refund, a reversal; a client key; the operator's deposit and policy.
    let client = key(5);
    let authorize = body(
        EventKind::ClientKeyAuthorized(ClientKeyAuthorized {
            key: client.public(),
            label: "POS 1".into(),
            permissions: Permissions {
                payments: true,
                invoices: true,
            },
        }),
        1,
    );
    events.push(("client_key_authorized", submit(&authorize, 1)));
    let pay = |id: &str, amount: i64, method: PaymentMethod| {
        body(
            EventKind::PaymentRecorded(PaymentRecorded {
                payment_id: id.into(),
                amount: Fen::from_fen(amount),
                currency: Currency::Cny,
                method,
                terminal_id: "T1".into(),
                external_ref: "".into(),
            }),
            5,
        )
    };
    events.push(("payment_recorded", submit(&pay("P1", 5300, PaymentMethod::Wechat), 5)));
    submit(&pay("P2", 1000, PaymentMethod::Card), 5);
    submit(&pay("P3", 700, PaymentMethod::Cash), 5);
    let refund = body(
        EventKind::PaymentRefunded(PaymentRefunded {
            payment_id: "P2".into(),
            refund_id: "RF1".into(),
            amount: Fen::from_fen(200),
            reason: "broken cup".into(),
        }),
        5,
    );
    events.push(("payment_refunded", submit(&refund, 5)));
    let reverse = body(
        EventKind::PaymentVoided(PaymentVoided {
            payment_id: "P3".into(),
            reason: "entered twice".into(),
        }),
        5,
    );
    events.push(("payment_voided", submit(&reverse, 5)));
    let deposit = body(
        EventKind::FeeDeposited(FeeDeposited {
            deposit_id: "D1".into(),
            amount: Fen::from_fen(1000),
        }),
        2,
    );
    events.push(("fee_deposited", submit(&deposit, 2)));
    let policy = body(
        EventKind::MerchantPolicySet(MerchantPolicy {
            permitted_types: vec![InvoiceType::Normal, InvoiceType::SpecialVat],
            max_invoice_total: Fen::from_fen(50_000_000),
            rates: [0, 100, 300, 500, 600, 900, 1300].map(|bp| fapiao_core::tax::RateRule::always(fapiao_core::TaxRate::Bp(bp))).to_vec(),
        }),
        2,
    );
    events.push(("merchant_policy_set", submit(&policy, 2)));

    // Two invoices; the second is partly reversed; a claim on the first.
    let request = |id: &str, payment: &str, lines: Vec<LineItem>| {
        body(
            EventKind::InvoiceRequested(InvoiceRequested {
                request_id: id.into(),
                invoice_type: InvoiceType::Normal,
                buyer: Buyer {
                    name: "Buyer Co".into(),
                    tax_id: Some("91110000600037341L".into()),
                },
                lines,
                payment_ids: vec![payment.into()],
                retry_of: None,
                replaces: None,
            }),
            5,
        )
    };
    let r1 = submit(&request("R1", "P1", vec![line("Tea", 1000, 5000, 600)]), 5);
    events.push(("invoice_requested", r1.clone()));
    submit(
        &request("R2", "P2", vec![line("Cup", 1000, 400, 600), line("Pot", 1000, 355, 600)]),
        5,
    );
    // One that fails (its payment is unknown): a derived InvoiceFailed.
    submit(&request("R3", "P9", vec![line("Tea", 1000, 5000, 600)]), 5);
    let state = h.engine.store().state(chain);
    let invoice = |request_id: &str| -> (InvoiceNumber, CheckCode) {
        match state.get(&StateKey::Request(request_id.into())) {
            Ok(Some(fapiao_core::state::StateValue::Request(r))) => match r.outcome {
                fapiao_core::state::RequestOutcome::Issued(n) => match state.get(&StateKey::Invoice(n)) {
                    Ok(Some(fapiao_core::state::StateValue::Invoice(fapiao_core::state::InvoiceRecord::Blue(b)))) => {
                        (n, b.issued.check_code)
                    }
                    other => panic!("invoice {n}: {other:?}"),
                },
                other => panic!("{request_id}: {other:?}"),
            },
            other => panic!("{request_id}: {other:?}"),
        }
    };
    let (n1, c1) = invoice("R1");
    let (n2, _) = invoice("R2");
    let red = body(
        EventKind::InvoiceRedLetterRequested(RedLetterRequested {
            request_id: "RL1".into(),
            invoice_number: n2,
            reason: RedLetterReason::SalesReturn,
            scope: RedLetterScope::Partial(vec![line("Pot", 1000, 355, 600)]),
        }),
        5,
    );
    events.push(("invoice_red_letter_requested", submit(&red, 5)));
    let claim = body(
        EventKind::InvoiceClaimRequested(ClaimRequested {
            invoice_number: n1,
            check_code: c1,
            claim_ref: "EXP-1".into(),
        }),
        3,
    );
    events.push(("invoice_claim_requested", submit(&claim, 3)));
    // The buyer's side, by the claim's holder (the verifier): booking, a seller's form
    // that waits for it and its confirmation, a form it starts and withdraws, closing.
    let booking = body(
        EventKind::InvoiceBookingSet(BookingSet {
            invoice_number: n1,
            status: BookingStatus::BookedDeducted,
        }),
        3,
    );
    events.push(("invoice_booking_set", submit(&booking, 3)));
    let held = body(
        EventKind::InvoiceRedLetterRequested(RedLetterRequested {
            request_id: "RL2".into(),
            invoice_number: n1,
            reason: RedLetterReason::SalesDiscount,
            scope: RedLetterScope::Partial(vec![line("Tea", 1000, 100, 600)]),
        }),
        5,
    );
    submit(&held, 5);
    let form = |n| RedFormRef { invoice_number: n1, form: n };
    let answer = body(EventKind::RedFormAnswered(RedFormAnswer { form: form(1), confirm: true }), 3);
    events.push(("red_form_answered", submit(&answer, 3)));
    let start = body(
        EventKind::RedFormStarted(RedFormStart {
            invoice_number: n1,
            reason: RedLetterReason::IssueError,
            scope: RedLetterScope::Full,
        }),
        3,
    );
    events.push(("red_form_started", submit(&start, 3)));
    let withdraw = body(EventKind::RedFormWithdrawn(form(2)), 3);
    events.push(("red_form_withdrawn", submit(&withdraw, 3)));
    let close = body(
        EventKind::InvoiceClaimClosed(ClaimAction {
            invoice_number: n1,
            claim_ref: "EXP-1".into(),
        }),
        3,
    );
    events.push(("invoice_claim_closed", submit(&close, 3)));
    let revoke = body(EventKind::ClientKeyRevoked(ClientKeyRevoked { key: key(6).public() }), 1);
    let revoke = revoke.sign(&key(1));
    events.push(("client_key_revoked", revoke.clone()));

    // Events, the JSON bodies that carry them, and the structured HTTP seeds.
    for (name, e) in &events {
        let bytes = codec::to_bytes(e);
        out.put("codec_event", name, &bytes);
        if matches!(*name, "payment_recorded" | "invoice_requested") {
            out.put("http_event", name, &[&[0u8][..], &bytes].concat());
        }
        // Mode 2, signer from the author (1 merchant, 2 operator, 3 verifier).
        let signer = (1..=4).find(|k| key(*k).public() == e.body.author).unwrap_or(1);
        out.put(
            "http_event",
            &format!("{name}.signed"),
            &[&[2 | ((signer - 1) << 2)][..], &codec::to_bytes(&e.body)].concat(),
        );
    }
    let (_, first) = &events[0];
    let (_, second) = &events[1];
    out.put("http_body", "single", &[&[0u8][..], &json_single(&codec::to_bytes(first))].concat());
    let batch = serde_json::json!({
        "events": [hex::encode(codec::to_bytes(first)), hex::encode(codec::to_bytes(second))]
    });
    out.put("http_body", "batch", &[&[1u8][..], batch.to_string().as_bytes()].concat());
    out.put(
        "http_event",
        "batch",
        &[&[1u8][..], &codec::to_bytes(first), &[0xff], &codec::to_bytes(second)].concat(),
    );

    // Blocks, headers, entries and certificates from the store.
    let store = h.engine.store();
    let head = store.head(chain).ok().flatten().unwrap_or_else(|| panic!("a head"));
    let blocks: Vec<Block> = (1..=head.height)
        .map(|height| store.block(chain, height).ok().flatten().unwrap_or_else(|| panic!("block {height}")))
        .collect();
    // The first block, and the first block holding each kind of derived entry.
    let mut chosen: Vec<&Block> = vec![&blocks[0]];
    let mut kinds_seen = Vec::new();
    for b in &blocks {
        for e in &b.entries {
            if let fapiao_core::Entry::Derived(d) = e {
                let kind = codec::to_bytes(&d.kind)[0];
                if !kinds_seen.contains(&kind) {
                    kinds_seen.push(kind);
                    if !chosen.iter().any(|c| std::ptr::eq(*c, b)) {
                        chosen.push(b);
                    }
                }
            }
        }
    }
    for b in &chosen {
        let height = b.header.body.height;
        out.put("codec_block", &format!("height-{height}"), &codec::to_bytes(*b));
        out.put("codec_header", &format!("height-{height}"), &codec::to_bytes(&b.header));
        let cert = store.certificate(chain, height).ok().flatten().unwrap_or_else(|| panic!("certificate {height}"));
        out.put("codec_certificate", &format!("height-{height}"), &codec::to_bytes(&cert));
        for (i, e) in b.entries.iter().enumerate() {
            let kind = match e {
                fapiao_core::Entry::Event(e) => e.body.kind.name().to_string(),
                fapiao_core::Entry::Derived(d) => format!("derived-{}", codec::to_bytes(&d.kind)[0]),
            };
            out.put("codec_entry", &format!("height-{height}-{i}-{kind}"), &codec::to_bytes(e));
        }
    }
    let block = chosen[1];
    let cert = store
        .certificate(chain, block.header.body.height)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("certificate"));
    let attestation = AttestationBody {
        network: fixed().1,
        chain,
        epoch: 0,
        height: block.header.body.height,
        block: block.header.hash(),
        witness: chain,
    }
    .sign(&key(1));
    out.put("codec_attestation", "witness", &codec::to_bytes(&attestation));
    let mut other = block.header.body.clone();
    other.state_root = Hash32([0x5a; 32]);
    let evidence = Equivocation::new(block.header.clone(), other.sign(&key(1)));
    out.put("codec_equivocation", "two-headers", &codec::to_bytes(&evidence));

    // Gossip on each topic, and sync frames.
    for (topic, g) in [
        (0u8, Gossip::Header(block.header.clone())),
        (1, Gossip::Attestation(attestation)),
        (2, Gossip::Evidence(evidence)),
    ] {
        out.put("gossip", &format!("topic-{topic}"), &[&[topic][..], &encode_gossip(&g)].concat());
    }
    for (name, r) in [
        ("heads", Request::Heads),
        (
            "blocks",
            Request::Blocks {
                chain,
                from: 1,
                to: 3,
            },
        ),
        (
            "certificates",
            Request::Certificates {
                chain,
                from: 2,
                to: 9,
            },
        ),
    ] {
        out.put("sync_request", name, &frame(&r));
    }
    let heads = Response::Heads(vec![HeadSummary {
        chain,
        height: head.height,
        hash: head.hash,
        certified: head.height,
        frozen: false,
    }]);
    for (name, r) in [
        ("heads", heads),
        ("blocks", Response::Blocks(vec![(block.clone(), Some(cert.clone()))])),
        ("certificates", Response::Certificates(vec![cert])),
        ("unavailable", Response::Unavailable),
        ("not-entitled", Response::NotEntitled),
    ] {
        out.put("sync_response", name, &frame(&r));
    }

    // State records of every kind the run wrote.
    let keys = [
        ("meta", StateKey::Meta),
        ("payment", StateKey::Payment("P1".into())),
        ("payment_invoicing", StateKey::PaymentInvoicing("P2".into())),
        ("refund", StateKey::Refund("RF1".into())),
        ("request", StateKey::Request("RL1".into())),
        ("invoice_blue", StateKey::Invoice(n1)),
        ("invoice_blue_reversed", StateKey::Invoice(n2)),
        ("deposit", StateKey::Deposit("D1".into())),
        ("client_key", StateKey::ClientKey(client.public())),
        ("fee_blocked", StateKey::FeeBlocked),
    ];
    for (name, k) in &keys {
        out.put("codec_state_key", name, &k.to_bytes());
        if let Ok(Some(v)) = state.get(k) {
            out.put("codec_state_value", name, &v.to_bytes());
        }
    }

    // The proof bundle of the claimed invoice: the fixture and the verifier seeds.
    let bundle = h
        .engine
        .proof_bundle(&n1, &fapiao_engine::Factors::CheckCode(c1), fapiao_engine::AsOf::NewestCertified)
        .unwrap_or_else(|e| panic!("proof bundle of {n1}: {e}"));
    let bytes = bundle.to_bytes();
    std::fs::create_dir_all(out.0.join("fixtures")).unwrap_or_else(|e| panic!("fixtures: {e}"));
    std::fs::write(out.0.join("fixtures/bundle.bin"), &bytes).unwrap_or_else(|e| panic!("bundle.bin: {e}"));
    out.put("codec_bundle", "claimed-invoice", &bytes);
    out.put("proof_verify", "claimed-invoice", &bytes);

    // The genesis, in its TOML form.
    out.put("genesis_toml", "fixed.toml", fixed().0.to_toml().as_bytes());
    println!("seeds written under {}", out.0.display());
}

/// One sync frame of either direction.
fn frame<T: serde::Serialize>(value: &T) -> Vec<u8> {
    encode_frame(value).unwrap_or_else(|e| panic!("frame: {e}"))
}
