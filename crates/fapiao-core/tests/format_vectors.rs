//! The hex test vectors in `docs/FORMAT.md` are computed here from fixed seeds and
//! compared with the document, so the document cannot drift from the code.
//!
//! To print the current vectors (after a deliberate format change):
//! `FAPIAO_PRINT_VECTORS=1 cargo test -p fapiao-core --test format_vectors -- --nocapture`

use fapiao_core::block::{AttestationBody, WitnessSignature};
use fapiao_core::codec::to_bytes;
use fapiao_core::event::*;
use fapiao_core::hash::{hash, Domain};
use fapiao_core::*;
use fapiao_testkit::{format_md_vectors as doc_vectors, key, vector_genesis as genesis};

fn vectors() -> Vec<(&'static str, String)> {
    let g = genesis();
    let net = g.network_id();
    let chain = MemberCode::new(110_001).unwrap();
    let mut v: Vec<(&'static str, String)> = Vec::new();
    v.push(("genesis.canonical", hex::encode(to_bytes(&g))));
    v.push(("genesis.network_id", net.0.to_hex()));
    v.push(("key.public", key(1).public().to_hex()));
    // A configuration change on the admin chain (§5.1): a second merchant joins.
    let first = &g.config().members()[0];
    let joining = Member {
        code: MemberCode::new(110_002).unwrap(),
        name: "Tea 2".into(),
        key: key(2).public(),
        addresses: vec!["/ip4/127.0.0.1/tcp/7002".into()],
        roles: Roles::of(&[Role::Merchant]),
        ..first.clone()
    };
    let change = Reconfiguration {
        epoch: 1,
        change: ConfigChange::AddMember(joining),
    };
    let next = g.config().apply(&change.change).unwrap();
    assert_eq!(
        (next.epoch(), next.members().len()),
        (1, 2),
        "the change applies to genesis"
    );
    v.push(("config.change", hex::encode(to_bytes(&change))));
    // A chain reset (§5.1): the merchant's chain resumes after height 7 under key 3.
    let reset = Reconfiguration {
        epoch: 2,
        change: ConfigChange::ResetChain {
            chain,
            height: 7,
            key: key(3).public(),
        },
    };
    let after = next.apply(&reset.change).unwrap();
    assert_eq!(
        after.member(chain).unwrap().key,
        key(3).public(),
        "the reset rotates the key"
    );
    v.push(("config.reset", hex::encode(to_bytes(&reset))));

    let pay = EventBody {
        network: net,
        chain,
        author: key(1).public(),
        timestamp: Timestamp(1_767_225_601_000),
        kind: EventKind::PaymentRecorded(PaymentRecorded {
            payment_id: "P1".into(),
            amount: Fen::from_fen(5300),
            currency: Currency::Cny,
            method: PaymentMethod::Wechat,
            terminal_id: "T".into(),
            external_ref: "".into(),
        }),
    };
    v.push(("payment.body", hex::encode(to_bytes(&pay))));
    v.push(("payment.event_id", pay.id().0.to_hex()));
    let pay_event = pay.clone().sign(&key(1));
    v.push(("payment.signature", hex::encode(pay_event.signature.to_bytes())));
    v.push(("payment.event", hex::encode(to_bytes(&pay_event))));

    let req = EventBody {
        network: net,
        chain,
        author: key(1).public(),
        timestamp: Timestamp(1_767_225_602_000),
        kind: EventKind::InvoiceRequested(InvoiceRequested {
            request_id: "R1".into(),
            invoice_type: InvoiceType::Normal,
            buyer: Buyer {
                name: "B".into(),
                tax_id: Some("91110000600037341L".into()),
            },
            lines: vec![LineItem {
                description: "Tea".into(),
                tax_code: "3070401000000000000".into(),
                quantity: Quantity(1000),
                unit_price: Fen::from_fen(5000),
                tax_rate: TaxRate::Bp(600),
            }],
            payment_ids: vec!["P1".into()],
            retry_of: None,
            replaces: None,
        }),
    };
    v.push(("request.body", hex::encode(to_bytes(&req))));
    v.push(("request.event_id", req.id().0.to_hex()));
    let req_event = req.clone().sign(&key(1));

    let number = InvoiceNumber::new(26, chain, 1).unwrap();
    let check = CheckCode::from_digest(&hash(Domain::CheckCode, &to_bytes(&(net, number, req.id()))));
    v.push(("check_code.input", hex::encode(to_bytes(&(net, number, req.id())))));
    v.push(("check_code", check.to_string()));
    // The flags and a dated rate rule, as a line and a policy carry them.
    let exempt = LineItem {
        description: "Cabbage".into(),
        tax_code: "1010112000000000000".into(),
        quantity: Quantity(2000),
        unit_price: Fen::from_fen(1000),
        tax_rate: TaxRate::Exempt,
    };
    v.push(("line.exempt", hex::encode(to_bytes(&exempt))));
    let rule = fapiao_core::tax::RateRule {
        rate: TaxRate::Bp(1300),
        from: Some(20190401),
        until: None,
    };
    v.push(("rate_rule", hex::encode(to_bytes(&rule))));
    let issued = Derived {
        cause: req.id(),
        kind: DerivedKind::InvoiceIssued(InvoiceIssued {
            request_id: "R1".into(),
            number,
            check_code: check,
            invoice_type: InvoiceType::Normal,
            buyer: Buyer {
                name: "B".into(),
                tax_id: Some("91110000600037341L".into()),
            },
            lines: vec![IssuedLine {
                item: LineItem {
                    description: "Tea".into(),
                    tax_code: "3070401000000000000".into(),
                    quantity: Quantity(1000),
                    unit_price: Fen::from_fen(5000),
                    tax_rate: TaxRate::Bp(600),
                },
                short_name: "餐饮服务".into(),
                net: Fen::from_fen(5000),
                tax: Fen::from_fen(300),
            }],
            net: Fen::from_fen(5000),
            tax: Fen::from_fen(300),
            total: Fen::from_fen(5300),
            fee: Fen::from_fen(10),
            allocations: vec![Allocation {
                payment_id: "P1".into(),
                amount: Fen::from_fen(5300),
            }],
            issued_at: Timestamp(1_767_225_603_000),
            replaces: None,
        }),
    };
    v.push(("issued.derived", hex::encode(to_bytes(&issued))));
    v.push(("issued.id", issued.id().0.to_hex()));

    let entries = vec![Entry::Event(pay_event), Entry::Event(req_event), Entry::Derived(issued)];
    let leaves: Vec<Hash32> = entries.iter().map(Entry::leaf_hash).collect();
    v.push(("entries.leaf0", leaves[0].to_hex()));
    let root = block::entries_root(&entries);
    v.push(("entries.root", root.to_hex()));
    let proof = merkle::inclusion_proof(&leaves, 2).unwrap();
    v.push((
        "entries.proof2",
        proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>().join(""),
    ));

    let header = HeaderBody {
        network: net,
        chain,
        epoch: 0,
        height: 1,
        parent: BlockHash(Hash32::ZERO),
        timestamp: Timestamp(1_767_225_603_000),
        events_root: root,
        event_count: 3,
        state_root: Hash32([0x11; 32]),
    };
    v.push(("header.body", hex::encode(to_bytes(&header))));
    v.push(("header.hash", header.hash().0.to_hex()));
    let signed = header.clone().sign(&key(1));
    v.push(("header.signature", hex::encode(signed.signature.to_bytes())));

    let att = AttestationBody {
        network: net,
        chain,
        epoch: 0,
        height: 1,
        block: header.hash(),
        witness: chain,
    };
    v.push(("attestation.body", hex::encode(to_bytes(&att))));
    v.push(("attestation.digest", att.digest().to_hex()));
    let att = att.sign(&key(1));
    let cert = Certificate {
        network: net,
        chain,
        epoch: 0,
        height: 1,
        block: header.hash(),
        signatures: vec![WitnessSignature {
            witness: chain,
            signature: att.signature,
        }],
    };
    cert.verify(&Epochs::new(&g), &net).unwrap();
    v.push(("certificate", hex::encode(to_bytes(&cert))));
    state_vectors(&mut v, number, check, req.id());
    v
}

/// One value of every state record type, the state root over all of them, and a
/// presence and an absence proof (FORMAT.md §10), each proof checked here as a verifier
/// would.
fn state_vectors(v: &mut Vec<(&'static str, String)>, number: InvoiceNumber, check: CheckCode, req: EventId) {
    use fapiao_core::smt::{self, MemNodes};
    use fapiao_core::state::*;
    let t = |ms: u64| Timestamp(1_767_225_600_000 + ms);
    let chain = number.member();
    let line = IssuedLine {
        item: LineItem {
            description: "Tea".into(),
            tax_code: "3070401000000000000".into(),
            quantity: Quantity(1000),
            unit_price: Fen::from_fen(5000),
            tax_rate: TaxRate::Bp(600),
        },
        short_name: "餐饮服务".into(),
        net: Fen::from_fen(5000),
        tax: Fen::from_fen(300),
    };
    let red_number = InvoiceNumber::new(26, chain, 2).unwrap();
    let records: Vec<(&'static str, StateKey, StateValue)> = vec![
        (
            "state.value.meta",
            StateKey::Meta,
            StateValue::Meta(MerchantMeta {
                fee_balance: Fen::from_fen(490),
                policy: MerchantPolicy {
                    permitted_types: vec![InvoiceType::Normal],
                    max_invoice_total: Fen::from_fen(100_000),
                    rates: [0, 100, 300, 500, 600, 900, 1300]
                        .map(|bp| fapiao_core::tax::RateRule::always(fapiao_core::TaxRate::Bp(bp)))
                        .to_vec(),
                },
                next_sequence: 3,
            }),
        ),
        (
            "state.value.payment",
            StateKey::Payment("P1".into()),
            StateValue::Payment(PaymentRecord {
                recorded: PaymentRecorded {
                    payment_id: "P1".into(),
                    amount: Fen::from_fen(5300),
                    currency: Currency::Cny,
                    method: PaymentMethod::Wechat,
                    terminal_id: "T".into(),
                    external_ref: "".into(),
                },
                event: EventId(Hash32([1; 32])),
                recorded_at: t(1000),
                refunded: Fen::from_fen(100),
                refund_ids: vec!["F1".into()],
                voided: None,
            }),
        ),
        (
            "state.value.payment_invoicing",
            StateKey::PaymentInvoicing("P1".into()),
            StateValue::PaymentInvoicing(PaymentInvoicing {
                invoiced: Fen::from_fen(5300),
                invoices: vec![number],
            }),
        ),
        (
            "state.value.refund",
            StateKey::Refund("F1".into()),
            StateValue::Refund(RefundRecord {
                payment_id: "P1".into(),
                amount: Fen::from_fen(100),
                event: EventId(Hash32([2; 32])),
            }),
        ),
        (
            "state.value.request",
            StateKey::Request("RL1".into()),
            StateValue::Request(RequestRecord {
                event: EventId(Hash32([3; 32])),
                requested_at: t(4000),
                body: RequestBody::RedLetter(RedLetterRequested {
                    request_id: "RL1".into(),
                    invoice_number: number,
                    reason: RedLetterReason::SalesReturn,
                    scope: RedLetterScope::Full,
                }),
                outcome: RequestOutcome::AwaitingConfirmation(1),
                retried_by: None,
                auto_reissue: None,
            }),
        ),
        (
            "state.value.invoice_blue",
            StateKey::Invoice(number),
            StateValue::Invoice(InvoiceRecord::Blue(BlueInvoice {
                issued: InvoiceIssued {
                    request_id: "R1".into(),
                    number,
                    check_code: check,
                    invoice_type: InvoiceType::Normal,
                    buyer: Buyer {
                        name: "B".into(),
                        tax_id: Some("91110000600037341L".into()),
                    },
                    lines: vec![line.clone()],
                    net: Fen::from_fen(5000),
                    tax: Fen::from_fen(300),
                    total: Fen::from_fen(5300),
                    fee: Fen::from_fen(10),
                    allocations: vec![Allocation {
                        payment_id: "P1".into(),
                        amount: Fen::from_fen(5300),
                    }],
                    issued_at: t(3000),
                    replaces: None,
                },
                remaining: vec![RateAmounts {
                    rate: TaxRate::Bp(600),
                    net: Fen::from_fen(5000),
                    tax: Fen::from_fen(300),
                }],
                standing: vec![Allocation {
                    payment_id: "P1".into(),
                    amount: Fen::from_fen(5300),
                }],
                red_letters: vec![],
                claim: Some(ClaimInfo {
                    claimant: MemberCode::new(800_001).unwrap(),
                    claim_ref: "EXP-1".into(),
                    claimed_at: t(3500),
                    event: req,
                    closed_at: None,
                }),
                replaced_by: None,
                booking: Some(Booking {
                    status: BookingStatus::BookedDeducted,
                    buyer: MemberCode::new(800_001).unwrap(),
                    at: t(3600),
                }),
                forms: vec![FormSummary {
                    form: 1,
                    initiator: Party::Seller,
                    state: FormState::WaitingForBuyer,
                    opened_at: t(4000),
                    red_number: None,
                }],
            })),
        ),
        (
            "state.value.invoice_red",
            StateKey::Invoice(red_number),
            StateValue::Invoice(InvoiceRecord::Red(InvoiceReversed {
                request_id: "RL0".into(),
                original: number,
                red_number,
                red_check_code: check,
                reason: RedLetterReason::IssueError,
                lines: vec![line],
                net: Fen::from_fen(5000),
                tax: Fen::from_fen(300),
                total: Fen::from_fen(5300),
                fully_reversed: true,
                allocations: vec![],
                reversed_at: t(3900),
            })),
        ),
        (
            "state.value.deposit",
            StateKey::Deposit("D1".into()),
            StateValue::Deposit(DepositRecord {
                amount: Fen::from_fen(1000),
                event: EventId(Hash32([4; 32])),
            }),
        ),
        (
            "state.value.client_key",
            StateKey::ClientKey(key(5).public()),
            StateValue::ClientKey(ClientKeyRecord {
                label: "POS".into(),
                permissions: Permissions {
                    payments: true,
                    invoices: false,
                },
                authorized_at: t(500),
                revoked_at: None,
            }),
        ),
        (
            "state.value.fee_blocked",
            StateKey::FeeBlocked,
            StateValue::FeeBlocked(FeeBlockedQueue {
                requests: vec!["R7".into()],
            }),
        ),
        (
            "state.value.quota",
            StateKey::Quota,
            StateValue::Quota(QuotaRecord {
                month: 202603,
                granted: Fen::from_fen(10_000_000),
                used: Fen::from_fen(53_00),
                suspended: false,
                by: MemberCode::new(810_001).unwrap(),
                changed_at: t(1000),
            }),
        ),
        (
            "state.value.quota_month",
            StateKey::QuotaMonth(202602),
            StateValue::QuotaMonth(QuotaRecord {
                month: 202602,
                granted: Fen::from_fen(50_000),
                used: Fen::from_fen(50_000),
                suspended: true,
                by: MemberCode::new(810_001).unwrap(),
                changed_at: t(500),
            }),
        ),
        (
            "state.value.quota_blocked",
            StateKey::QuotaBlocked,
            StateValue::QuotaBlocked(FeeBlockedQueue {
                requests: vec!["R8".into()],
            }),
        ),
        (
            "state.value.red_form",
            StateKey::RedForm(number, 1),
            StateValue::RedForm(RedForm {
                initiator: Party::Seller,
                buyer: None,
                reason: RedLetterReason::SalesReturn,
                scope: RedLetterScope::Full,
                request_id: "RL1".into(),
                event: EventId(Hash32([3; 32])),
                opened_at: t(4000),
                state: FormState::WaitingForBuyer,
                decided_at: None,
                red_number: None,
            }),
        ),
    ];
    let mut writes = std::collections::BTreeMap::new();
    for (name, key, value) in &records {
        assert!(value.matches(key), "{name}");
        v.push((name, hex::encode(value.to_bytes())));
        writes.insert(key.clone(), value.clone());
    }
    v.push(("state.key.invoice", hex::encode(StateKey::Invoice(number).to_bytes())));
    let mut nodes = MemNodes(Default::default());
    let (changes, root) = tree_update(&nodes, &writes).unwrap();
    nodes.apply(changes);
    v.push(("state.root", root.to_hex()));
    // Presence: the blue invoice's record.
    let path = smt::key_hash(&StateKey::Invoice(number).to_bytes());
    let present = smt::prove(&nodes, &path).unwrap();
    let value = writes[&StateKey::Invoice(number)].to_bytes();
    smt::verify(&root, &path, Some(&smt::value_hash(&value)), &present).unwrap();
    v.push(("state.proof.present", hex::encode(to_bytes(&present))));
    // Absence: a payment that was never recorded.
    let missing = smt::key_hash(&StateKey::Payment("P9".into()).to_bytes());
    let absent = smt::prove(&nodes, &missing).unwrap();
    smt::verify(&root, &missing, None, &absent).unwrap();
    assert!(
        smt::verify(&root, &path, None, &present).is_err(),
        "a presence proof does not prove absence"
    );
    v.push(("state.proof.absent_key", missing.to_hex()));
    v.push(("state.proof.absent", hex::encode(to_bytes(&absent))));
}

#[test]
fn format_md_vectors_match_the_code() {
    let computed = vectors();
    if std::env::var_os("FAPIAO_PRINT_VECTORS").is_some() {
        for (name, value) in &computed {
            println!("<!-- vector: {name} -->\n```text");
            for chunk in value.as_bytes().chunks(64) {
                println!("{}", std::str::from_utf8(chunk).unwrap());
            }
            println!("```\n");
        }
    }
    let documented = doc_vectors();
    for (name, value) in &computed {
        let doc = documented
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("docs/FORMAT.md has no vector {name}"));
        assert_eq!(&doc.1, value, "docs/FORMAT.md vector {name} differs from the code");
    }
    // `bundle` is checked by fapiao-proof's `format_vector` test (it needs the bundle's types).
    let here = documented.iter().filter(|(n, _)| n != "bundle").count();
    assert_eq!(
        here,
        computed.len(),
        "docs/FORMAT.md has vectors the tests do not check"
    );
}

#[test]
fn signatures_in_vectors_verify() {
    let g = genesis();
    let body = HeaderBody {
        network: g.network_id(),
        chain: MemberCode::new(110_001).unwrap(),
        epoch: 0,
        height: 1,
        parent: BlockHash(Hash32::ZERO),
        timestamp: Timestamp(0),
        events_root: merkle::empty_root(),
        event_count: 0,
        state_root: Hash32::ZERO,
    };
    let h = body.sign(&key(1));
    assert_eq!(h.verify(&Epochs::new(&g), &g.network_id()).unwrap(), h.hash());
    let other = Genesis::new(
        "other".into(),
        Timestamp(0),
        None,
        Fen::from_fen(0),
        fapiao_core::tax::sample_classifications(),
        g.config().members().to_vec(),
    )
    .unwrap();
    assert!(
        h.verify(&Epochs::new(&other), &other.network_id()).is_err(),
        "a header of another network is refused"
    );
}
