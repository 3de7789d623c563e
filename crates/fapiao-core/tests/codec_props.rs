//! Canonical encoding properties for every hashed or signed type:
//! encode/decode round-trips, decoding arbitrary bytes never panics, and whatever
//! decodes re-encodes to exactly the same bytes (one encoding per value).

use fapiao_core::block::{AttestationBody, WitnessSignature};
use fapiao_core::codec::{decode, to_bytes};
use fapiao_core::event::*;
use fapiao_core::*;
use proptest::prelude::*;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;

fn h32() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>().prop_map(Hash32)
}
fn pk() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(PublicKey)
}
fn sig() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(r, s)| Signature { r, s })
}
fn code() -> impl Strategy<Value = MemberCode> {
    (0u32..=999_999).prop_map(|c| MemberCode::new(c).unwrap())
}
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 中文-]{0,12}"
}
fn fen() -> impl Strategy<Value = Fen> {
    any::<i64>().prop_map(Fen::from_fen)
}
fn number() -> impl Strategy<Value = InvoiceNumber> {
    (0u8..100, code(), 0u64..=999_999_999_999).prop_map(|(y, m, s)| InvoiceNumber::new(y, m, s).unwrap())
}
fn check_code() -> impl Strategy<Value = CheckCode> {
    h32().prop_map(|h| CheckCode::from_digest(&h))
}
fn line() -> impl Strategy<Value = LineItem> {
    let rate = prop_oneof![
        any::<u16>().prop_map(TaxRate::Bp),
        Just(TaxRate::Exempt),
        Just(TaxRate::NotTaxable)
    ];
    (text(), text(), any::<i64>(), fen(), rate).prop_map(|(description, tax_code, q, unit_price, tax_rate)| LineItem {
        description,
        tax_code,
        quantity: Quantity(q),
        unit_price,
        tax_rate,
    })
}
fn issued_line() -> impl Strategy<Value = IssuedLine> {
    (line(), text(), fen(), fen()).prop_map(|(item, short_name, net, tax)| IssuedLine {
        item,
        short_name,
        net,
        tax,
    })
}
fn buyer() -> impl Strategy<Value = Buyer> {
    (text(), prop::option::of(text())).prop_map(|(name, tax_id)| Buyer { name, tax_id })
}
fn inv_type() -> impl Strategy<Value = InvoiceType> {
    prop::sample::select(InvoiceType::ALL.to_vec())
}
fn allocation() -> impl Strategy<Value = Allocation> {
    (text(), fen()).prop_map(|(payment_id, amount)| Allocation { payment_id, amount })
}
fn red_reason() -> impl Strategy<Value = RedLetterReason> {
    prop::sample::select(RedLetterReason::ALL.to_vec())
}

fn kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        (
            text(),
            fen(),
            prop::sample::select(PaymentMethod::ALL.to_vec()),
            text(),
            text()
        )
            .prop_map(
                |(payment_id, amount, method, terminal_id, external_ref)| EventKind::PaymentRecorded(PaymentRecorded {
                    payment_id,
                    amount,
                    currency: Currency::Cny,
                    method,
                    terminal_id,
                    external_ref
                })
            ),
        (text(), text(), fen(), text()).prop_map(|(payment_id, refund_id, amount, reason)| EventKind::PaymentRefunded(
            PaymentRefunded {
                payment_id,
                refund_id,
                amount,
                reason
            }
        )),
        (text(), text())
            .prop_map(|(payment_id, reason)| EventKind::PaymentVoided(PaymentVoided { payment_id, reason })),
        (
            text(),
            inv_type(),
            buyer(),
            prop::collection::vec(line(), 0..3),
            prop::collection::vec(text(), 0..3),
            prop::option::of(text()),
            prop::option::of(number())
        )
            .prop_map(
                |(request_id, invoice_type, buyer, lines, payment_ids, retry_of, replaces)| {
                    EventKind::InvoiceRequested(InvoiceRequested {
                        request_id,
                        invoice_type,
                        buyer,
                        lines,
                        payment_ids,
                        retry_of,
                        replaces,
                    })
                }
            ),
        (
            text(),
            number(),
            red_reason(),
            prop::option::of(prop::collection::vec(line(), 0..3))
        )
            .prop_map(
                |(request_id, invoice_number, reason, partial)| EventKind::InvoiceRedLetterRequested(
                    RedLetterRequested {
                        request_id,
                        invoice_number,
                        reason,
                        scope: partial.map(RedLetterScope::Partial).unwrap_or(RedLetterScope::Full)
                    }
                )
            ),
        (number(), check_code(), text()).prop_map(|(invoice_number, check_code, claim_ref)| {
            EventKind::InvoiceClaimRequested(ClaimRequested {
                invoice_number,
                check_code,
                claim_ref,
            })
        }),
        (text(), fen()).prop_map(|(deposit_id, amount)| EventKind::FeeDeposited(FeeDeposited { deposit_id, amount })),
        (prop::collection::vec(inv_type(), 0..3), fen()).prop_map(|(permitted_types, max_invoice_total)| {
            EventKind::MerchantPolicySet(MerchantPolicy {
                permitted_types,
                max_invoice_total,
                rates: [0, 100, 300, 500, 600, 900, 1300]
                    .map(|bp| fapiao_core::tax::RateRule::always(fapiao_core::TaxRate::Bp(bp)))
                    .to_vec(),
            })
        }),
        (pk(), text(), any::<bool>(), any::<bool>()).prop_map(|(key, label, payments, invoices)| {
            EventKind::ClientKeyAuthorized(ClientKeyAuthorized {
                key,
                label,
                permissions: Permissions { payments, invoices },
            })
        }),
        pk().prop_map(|key| EventKind::ClientKeyRevoked(ClientKeyRevoked { key })),
        (number(), text(), any::<bool>()).prop_map(|(invoice_number, claim_ref, close)| {
            let a = ClaimAction {
                invoice_number,
                claim_ref,
            };
            if close {
                EventKind::InvoiceClaimClosed(a)
            } else {
                EventKind::InvoiceClaimUnlocked(a)
            }
        }),
        (number(), 0usize..4).prop_map(|(invoice_number, s)| EventKind::InvoiceBookingSet(BookingSet {
            invoice_number,
            status: BookingStatus::ALL[s],
        })),
        (
            number(),
            red_reason(),
            prop::option::of(prop::collection::vec(line(), 0..3))
        )
            .prop_map(
                |(invoice_number, reason, partial)| EventKind::RedFormStarted(RedFormStart {
                    invoice_number,
                    reason,
                    scope: partial.map(RedLetterScope::Partial).unwrap_or(RedLetterScope::Full),
                })
            ),
        (number(), any::<u32>(), prop::option::of(any::<bool>())).prop_map(|(invoice_number, form, answer)| {
            let form = RedFormRef { invoice_number, form };
            match answer {
                Some(confirm) => EventKind::RedFormAnswered(RedFormAnswer { form, confirm }),
                None => EventKind::RedFormWithdrawn(form),
            }
        }),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (h32(), code(), pk(), any::<u64>(), kind(), sig()).prop_map(|(n, chain, author, t, kind, signature)| Event {
        body: EventBody {
            network: NetworkId(n),
            chain,
            author,
            timestamp: Timestamp(t),
            kind,
        },
        signature,
    })
}

fn derived() -> impl Strategy<Value = Derived> {
    let issued = (
        text(),
        number(),
        check_code(),
        inv_type(),
        buyer(),
        prop::collection::vec(issued_line(), 0..3),
        (fen(), fen(), fen(), fen()),
        prop::collection::vec(allocation(), 0..3),
        any::<u64>(),
    )
        .prop_map(
            |(request_id, number, check_code, invoice_type, buyer, lines, (net, tax, total, fee), allocations, t)| {
                DerivedKind::InvoiceIssued(InvoiceIssued {
                    request_id,
                    number,
                    check_code,
                    invoice_type,
                    buyer,
                    lines,
                    net,
                    tax,
                    total,
                    fee,
                    allocations,
                    issued_at: Timestamp(t),
                    replaces: None,
                })
            },
        );
    let failed = (text(), 0usize..21, text(), text()).prop_map(|(request_id, r, field, detail)| {
        DerivedKind::InvoiceFailed(InvoiceFailed {
            request_id,
            reason: ALL_REASONS[r],
            field,
            detail,
        })
    });
    let reversed = (
        text(),
        number(),
        number(),
        check_code(),
        red_reason(),
        prop::collection::vec(issued_line(), 0..3),
        (fen(), fen(), fen(), any::<bool>()),
        prop::collection::vec(allocation(), 0..3),
        any::<u64>(),
    )
        .prop_map(
            |(
                request_id,
                original,
                red_number,
                red_check_code,
                reason,
                lines,
                (net, tax, total, fully_reversed),
                allocations,
                t,
            )| {
                DerivedKind::InvoiceReversed(InvoiceReversed {
                    request_id,
                    original,
                    red_number,
                    red_check_code,
                    reason,
                    lines,
                    net,
                    tax,
                    total,
                    fully_reversed,
                    allocations,
                    reversed_at: Timestamp(t),
                })
            },
        );
    let claimed = (number(), code(), text(), any::<u64>()).prop_map(|(invoice_number, claimant, claim_ref, t)| {
        DerivedKind::ClaimRecorded(ClaimRecorded {
            invoice_number,
            claimant,
            claim_ref,
            claimed_at: Timestamp(t),
        })
    });
    let refused =
        (number(), code(), 0u8..6, code(), any::<u64>()).prop_map(|(invoice_number, claimant, r, first, t)| {
            DerivedKind::ClaimRefused(ClaimRefused {
                invoice_number,
                claimant,
                refusal: match r {
                    0 => ClaimRefusal::AlreadyClaimed {
                        claimant: first,
                        claimed_at: Timestamp(t),
                    },
                    1 => ClaimRefusal::Reversed,
                    2 => ClaimRefusal::Closed {
                        closed_at: Timestamp(t),
                    },
                    3 => ClaimRefusal::NotLocked,
                    4 => ClaimRefusal::NotLockHolder,
                    _ => ClaimRefusal::NotFound,
                },
            })
        });
    const STATES: [FormState; 7] = FormState::ALL;
    let buyer_side = (number(), code(), text(), any::<u64>(), 0u8..9, any::<u32>()).prop_map(
        |(invoice_number, member, claim_ref, t, k, form)| {
            let changed = ClaimChanged {
                invoice_number,
                claimant: member,
                claim_ref: claim_ref.clone(),
                at: Timestamp(t),
            };
            let form_ref = RedFormRef { invoice_number, form };
            match k {
                0 => DerivedKind::ClaimUnlocked(changed),
                1 => DerivedKind::ClaimClosed(changed),
                2 => DerivedKind::BookingRecorded(BookingRecorded {
                    invoice_number,
                    buyer: member,
                    status: BookingStatus::ALL[(t % 4) as usize],
                    at: Timestamp(t),
                }),
                3 => DerivedKind::RedFormChanged(RedFormChanged {
                    form: form_ref,
                    state: STATES[(t % 7) as usize],
                    at: Timestamp(t),
                }),
                _ => DerivedKind::RedFormRefused(RedFormRefused {
                    invoice_number,
                    form: (k % 2 == 0).then_some(form),
                    refusal: match k {
                        4 => RedFormRefusal::NotFound,
                        5 => RedFormRefusal::NotWaiting(STATES[(t % 7) as usize]),
                        6 => RedFormRefusal::WrongSide,
                        _ => RedFormRefusal::Failed {
                            reason: FailureReason::ALL[(t % FailureReason::ALL.len() as u64) as usize],
                            detail: claim_ref,
                        },
                    },
                }),
            }
        },
    );
    (
        h32(),
        prop_oneof![issued, failed, reversed, claimed, refused, buyer_side],
    )
        .prop_map(|(c, kind)| Derived {
            cause: EventId(c),
            kind,
        })
}

const ALL_REASONS: [FailureReason; FailureReason::ALL.len()] = FailureReason::ALL;

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![event().prop_map(Entry::Event), derived().prop_map(Entry::Derived)]
}

fn header() -> impl Strategy<Value = Header> {
    (
        h32(),
        code(),
        any::<u64>(),
        h32(),
        any::<u64>(),
        h32(),
        any::<u32>(),
        h32(),
        sig(),
    )
        .prop_map(
            |(n, chain, height, parent, t, events_root, event_count, state_root, signature)| Header {
                body: HeaderBody {
                    network: NetworkId(n),
                    chain,
                    epoch: 0,
                    height,
                    parent: BlockHash(parent),
                    timestamp: Timestamp(t),
                    events_root,
                    event_count,
                    state_root,
                },
                signature,
            },
        )
}

fn block() -> impl Strategy<Value = Block> {
    (header(), prop::collection::vec(entry(), 0..4)).prop_map(|(header, entries)| Block { header, entries })
}

fn attestation() -> impl Strategy<Value = Attestation> {
    (h32(), code(), any::<u64>(), h32(), code(), sig()).prop_map(|(n, chain, height, b, witness, signature)| {
        Attestation {
            body: AttestationBody {
                network: NetworkId(n),
                chain,
                epoch: 0,
                height,
                block: BlockHash(b),
                witness,
            },
            signature,
        }
    })
}

fn certificate() -> impl Strategy<Value = Certificate> {
    (
        h32(),
        code(),
        any::<u64>(),
        h32(),
        prop::collection::vec((code(), sig()), 0..4),
    )
        .prop_map(|(n, chain, height, b, s)| Certificate {
            network: NetworkId(n),
            chain,
            epoch: 0,
            height,
            block: BlockHash(b),
            signatures: s
                .into_iter()
                .map(|(witness, signature)| WitnessSignature { witness, signature })
                .collect(),
        })
}

fn evidence() -> impl Strategy<Value = Equivocation> {
    (header(), header()).prop_map(|(first, second)| Equivocation { first, second })
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: &T) -> Result<(), TestCaseError> {
    let bytes = to_bytes(v);
    let back: T = decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(&back, v);
    // Any strict prefix fails, and one extra byte fails.
    if !bytes.is_empty() {
        prop_assert!(decode::<T>(&bytes[..bytes.len() - 1]).is_err());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    prop_assert!(decode::<T>(&longer).is_err());
    Ok(())
}

/// Arbitrary bytes: decoding never panics, and if it succeeds the bytes are canonical.
fn arbitrary<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(v) = decode::<T>(bytes) {
        prop_assert_eq!(to_bytes(&v), bytes.to_vec());
    }
    Ok(())
}

/// Mutations of a valid encoding: never panic, and if they decode they are canonical.
fn mutated<T: Serialize + DeserializeOwned>(valid: &[u8], at: usize, byte: u8) -> Result<(), TestCaseError> {
    if valid.is_empty() {
        return Ok(());
    }
    let mut b = valid.to_vec();
    let i = at % b.len();
    b[i] = byte;
    arbitrary::<T>(&b)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test] fn event_round_trips(v in event()) { round_trip(&v)?; round_trip(&v.body)?; }
    #[test] fn derived_round_trips(v in derived()) { round_trip(&v)?; }
    #[test] fn entry_round_trips(v in entry()) { round_trip(&v)?; }
    #[test] fn header_round_trips(v in header()) { round_trip(&v)?; round_trip(&v.body)?; }
    #[test] fn block_round_trips(v in block()) { round_trip(&v)?; }
    #[test] fn attestation_round_trips(v in attestation()) { round_trip(&v)?; round_trip(&v.body)?; }
    #[test] fn certificate_round_trips(v in certificate()) { round_trip(&v)?; }
    #[test] fn evidence_round_trips(v in evidence()) { round_trip(&v)?; }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        arbitrary::<Event>(&bytes)?;
        arbitrary::<Derived>(&bytes)?;
        arbitrary::<Entry>(&bytes)?;
        arbitrary::<Header>(&bytes)?;
        arbitrary::<Block>(&bytes)?;
        arbitrary::<Attestation>(&bytes)?;
        arbitrary::<Certificate>(&bytes)?;
        arbitrary::<Equivocation>(&bytes)?;
        arbitrary::<Genesis>(&bytes)?;
    }

    #[test]
    fn mutated_encodings_never_panic(v in block(), at in any::<usize>(), byte in any::<u8>()) {
        let bytes = to_bytes(&v);
        mutated::<Block>(&bytes, at, byte)?;
        mutated::<Entry>(&to_bytes(&v.entries.first().cloned().unwrap_or(Entry::Derived(Derived {
            cause: EventId(Hash32::ZERO),
            kind: DerivedKind::ClaimRefused(ClaimRefused {
                invoice_number: InvoiceNumber::new(0, MemberCode::new(0).unwrap(), 0).unwrap(),
                claimant: MemberCode::new(0).unwrap(),
                refusal: ClaimRefusal::NotFound,
            }),
        }))), at, byte)?;
    }
}
