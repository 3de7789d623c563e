//! The replica's rules one at a time: member 1 (the node under test) receives member 2's
//! blocks and the others' attestations, and each case checks the verdict and the outputs
//! through one helper.

use fapiao_chain::sim::{genesis, genesis_of, MemChain, MemLedger};
use fapiao_chain::{Config, HeadSummary, Input, Invalid, Output, Persisted, Replica, Verdict};
use fapiao_core::block::BlockError;
use fapiao_core::event::{Currency, EventKind, FeeDeposited, PaymentMethod, PaymentRecorded};
use fapiao_core::genesis::{Member, Role, Roles};
use fapiao_core::{
    AttestationBody, Block, BlockHash, DerivedKind, Entry, EventBody, Fen, Genesis, Hash32, MemberCode, SecretKey,
    Timestamp,
};

const NOW: u64 = 1_000_000;

struct Setup {
    genesis: Genesis,
    keys: Vec<SecretKey>,
    replica: Replica,
    ledger: MemLedger,
    /// Member 2's chain as its owner builds it.
    owner: MemChain,
}

fn code(g: &Genesis, i: usize) -> MemberCode {
    g.config().members()[i].code
}

fn setup() -> Setup {
    let (genesis, keys) = genesis(42, 4);
    setup_with(genesis, keys)
}

fn setup_with(genesis: Genesis, keys: Vec<SecretKey>) -> Setup {
    let mut s = fresh(genesis, keys);
    // A replica with peers starts with its production held (see the own-chain tests).
    let first = s.replica.poll_output();
    assert!(
        matches!(
            first,
            Some(Output::HoldProduction {
                refuse_writes: false,
                ..
            })
        ),
        "{first:?}"
    );
    s
}

/// A replica as constructed, its first outputs not yet taken.
fn fresh(genesis: Genesis, keys: Vec<SecretKey>) -> Setup {
    let me = code(&genesis, 0);
    let replica = Replica::new(
        Config::default(),
        genesis.clone(),
        me,
        keys[0].clone(),
        Persisted::default(),
    );
    Setup {
        ledger: MemLedger::new(genesis.clone()),
        genesis,
        keys,
        replica,
        owner: MemChain::default(),
    }
}

impl Setup {
    /// Member 2's next block with `n` payments at `time`, applied to the owner's copy.
    fn next_block(&mut self, n: usize, time: u64) -> Block {
        let chain = code(&self.genesis, 1);
        let key = &self.keys[1];
        let start = self.owner.blocks().len() * 10;
        let events: Vec<_> = (0..n)
            .map(|k| {
                EventBody {
                    network: self.genesis.network_id(),
                    chain,
                    author: key.public(),
                    timestamp: Timestamp(time),
                    kind: EventKind::PaymentRecorded(PaymentRecorded {
                        payment_id: format!("p{}", start + k),
                        amount: Fen::from_fen(100),
                        currency: Currency::Cny,
                        method: PaymentMethod::Card,
                        terminal_id: "t".into(),
                        external_ref: "r".into(),
                    }),
                }
                .sign(key)
            })
            .collect();
        let b = self
            .owner
            .build_next(
                &self.genesis,
                self.genesis.config(),
                chain,
                key,
                Timestamp(time),
                &events,
            )
            .expect("payments are accepted");
        self.owner
            .apply(&self.genesis, self.genesis.config(), &b)
            .expect("own block applies");
        b
    }

    fn from(&self) -> MemberCode {
        code(&self.genesis, 1)
    }

    /// Feeds `input` and returns the verdict and every output.
    fn feed(&mut self, input: Input) -> (Verdict, Vec<Output>) {
        self.feed_at(NOW, input)
    }

    /// As [`Setup::feed`], at time `now`.
    fn feed_at(&mut self, now: u64, input: Input) -> (Verdict, Vec<Output>) {
        let v = self
            .replica
            .handle(Timestamp(now), input, &mut self.ledger)
            .expect("in-memory ledger");
        let mut out = Vec::new();
        while let Some(o) = self.replica.poll_output() {
            out.push(o);
        }
        (v, out)
    }

    fn block(&mut self, block: Block) -> (Verdict, Vec<Output>) {
        let from = self.from();
        self.feed(Input::Block { from, block })
    }
}

/// The one helper: a verdict, and a predicate over the outputs.
fn check(got: (Verdict, Vec<Output>), verdict: &Verdict, outputs: impl Fn(&[Output]) -> bool) {
    assert_eq!(&got.0, verdict, "verdict (outputs {:?})", got.1);
    assert!(outputs(&got.1), "unexpected outputs: {:?}", got.1);
}

fn votes(o: &[Output]) -> usize {
    o.iter().filter(|x| matches!(x, Output::PersistVote { .. })).count()
}

#[test]
fn a_valid_block_is_stored_voted_then_attested() {
    let mut s = setup();
    let b = s.next_block(3, NOW);
    let got = s.block(b);
    check(got, &Verdict::Accepted, |o| {
        let vote = o.iter().position(|x| matches!(x, Output::PersistVote { .. }));
        let att = o.iter().position(|x| matches!(x, Output::BroadcastAttestation(_)));
        matches!((vote, att), (Some(v), Some(a)) if v < a)
    });
    assert_eq!(s.ledger.chain(s.from()).map(|c| c.blocks().len()), Some(1));
}

#[test]
fn tampered_blocks_are_invalid_and_nothing_is_voted() {
    let mut s = setup();
    let good = s.next_block(2, NOW);

    let mut entries = good.clone();
    entries.entries.pop();
    check(
        s.block(entries),
        &Verdict::Invalid(BlockError::EntriesMismatch.into()),
        |o| votes(o) == 0,
    );

    let mut root = good.clone();
    root.header.body.state_root = fapiao_core::Hash32([7; 32]);
    root.header = root.header.body.clone().sign(&s.keys[1]);
    let got = s.block(root);
    assert!(
        matches!(got.0, Verdict::Invalid(Invalid::StateRoot { .. })),
        "{:?}",
        got.0
    );
    assert_eq!(votes(&got.1), 0);

    let mut forged = good.clone();
    forged.header = forged.header.body.clone().sign(&s.keys[2]);
    let got = s.block(forged);
    assert!(
        matches!(got.0, Verdict::Invalid(Invalid::Block(BlockError::Signature { .. }))),
        "{:?}",
        got.0
    );

    // The genuine block is still accepted afterwards.
    check(s.block(good), &Verdict::Accepted, |o| votes(o) == 1);
}

#[test]
fn a_block_too_far_in_the_future_waits() {
    let mut s = setup();
    let b = s.next_block(1, NOW + Config::default().skew_ms_max + 1);
    check(
        s.block(b),
        &Verdict::Ignored("block time is ahead of our clock by more than the skew"),
        |o| o.is_empty(),
    );
}

#[test]
fn a_gap_is_parked_and_requested_then_filled() {
    let mut s = setup();
    let b1 = s.next_block(1, NOW);
    let b2 = s.next_block(1, NOW);
    let from = s.from();
    check(
        s.block(b2),
        &Verdict::Accepted,
        |o| matches!(o, [Output::RequestBlocks { peer, from: 1, .. }] if *peer == from),
    );
    check(s.block(b1), &Verdict::Accepted, |o| votes(o) == 2);
    assert_eq!(s.ledger.chain(from).map(|c| c.blocks().len()), Some(2));
}

/// A member can sign blocks of its own chain at heights it never reaches: parked blocks
/// are bounded in bytes as well as in count, the highest going first.
#[test]
fn parked_blocks_are_bounded_in_bytes() {
    let mut s = setup();
    let b: Vec<Block> = (0..4).map(|_| s.next_block(3, NOW)).collect();
    let size = |b: &Block| fapiao_core::codec::to_bytes(b).len();
    assert!(
        b[1..].windows(2).all(|w| size(&w[0]) == size(&w[1])),
        "equal sizes above the gap"
    );
    // Room for two parked blocks.
    let config = Config {
        buffer_bytes_max: 2 * size(&b[1]),
        ..Config::default()
    };
    s.replica = Replica::new(
        config,
        s.genesis.clone(),
        code(&s.genesis, 0),
        s.keys[0].clone(),
        Persisted::default(),
    );
    check(s.block(b[3].clone()), &Verdict::Accepted, |_| true);
    check(s.block(b[2].clone()), &Verdict::Accepted, |_| true);
    // Full: height 2 pushes out height 4, the last to be needed ...
    check(s.block(b[1].clone()), &Verdict::Accepted, |_| true);
    // ... which now finds no room above the others.
    check(
        s.block(b[3].clone()),
        &Verdict::Ignored("parent missing and buffer full"),
        |o| matches!(o, [Output::RequestBlocks { from: 1, .. }] | []),
    );
    check(s.block(b[0].clone()), &Verdict::Accepted, |o| votes(o) == 3);
    check(s.block(b[3].clone()), &Verdict::Accepted, |o| votes(o) == 1);
}

#[test]
fn a_second_block_at_a_height_is_evidence_and_freezes_the_chain() {
    let mut s = setup();
    let b1 = s.next_block(1, NOW);
    check(s.block(b1.clone()), &Verdict::Accepted, |_| true);
    let mut twin = b1;
    twin.header.body.timestamp = Timestamp(NOW + 1);
    twin.header = twin.header.body.clone().sign(&s.keys[1]);
    check(s.block(twin), &Verdict::Accepted, |o| {
        o.iter().any(|x| matches!(x, Output::EvidenceFound(_))) && votes(o) == 0
    });
    let b2 = s.next_block(1, NOW);
    check(s.block(b2), &Verdict::Ignored("chain is frozen"), |o| o.is_empty());
    assert!(s.replica.heads().iter().any(|h| h.chain == s.from() && h.frozen));
}

#[test]
fn a_quorum_of_attestations_is_a_certificate() {
    let mut s = setup();
    let b = s.next_block(1, NOW);
    let hash = b.header.hash();
    check(s.block(b), &Verdict::Accepted, |_| true);
    let att = |s: &Setup, i: usize| {
        AttestationBody {
            network: s.genesis.network_id(),
            chain: s.from(),
            epoch: 0,
            height: 1,
            block: hash,
            witness: code(&s.genesis, i),
        }
        .sign(&s.keys[i])
    };
    // Ours is the first of three; the owner's is the second.
    let a1 = att(&s, 1);
    check(
        s.feed(Input::Attestation {
            from: s.from(),
            attestation: a1.clone(),
        }),
        &Verdict::Accepted,
        |o| o.is_empty(),
    );
    check(
        s.feed(Input::Attestation {
            from: s.from(),
            attestation: a1,
        }),
        &Verdict::Ignored("duplicate attestation"),
        |o| o.is_empty(),
    );
    // A stranger's signature does not count.
    let mut bad = att(&s, 2);
    bad.signature = att(&s, 3).signature;
    let got = s.feed(Input::Attestation {
        from: s.from(),
        attestation: bad,
    });
    assert!(matches!(got.0, Verdict::Invalid(_)), "{:?}", got.0);
    let a2 = att(&s, 2);
    check(
        s.feed(Input::Attestation {
            from: s.from(),
            attestation: a2,
        }),
        &Verdict::Accepted,
        |o| {
            o.iter()
                .any(|x| matches!(x, Output::PersistCertificate(c) if c.signatures.len() == 3))
                && o.iter().any(|x| matches!(x, Output::BlockCertified { height: 1, .. }))
        },
    );
    assert_eq!(
        s.replica
            .heads()
            .iter()
            .find(|h| h.chain == s.from())
            .map(|h| h.certified),
        Some(1)
    );
}

/// Attestations can outrun the blocks they attest (a busy witness stores blocks behind
/// its gossip). A quorum's attestations for a height two above our head cannot be judged
/// when they arrive; they stay pooled, and the block is certified the moment it is
/// stored, with no message more. Dropped, they came back only through sync, seconds
/// later, and this member could not attest the next height meanwhile.
#[test]
fn attestations_that_arrive_before_their_block_certify_it_once_stored() {
    let mut s = setup();
    let blocks: Vec<Block> = (0..3).map(|k| s.next_block(1, NOW + k)).collect();
    let att = |s: &Setup, i: usize, b: &Block| {
        AttestationBody {
            network: s.genesis.network_id(),
            chain: s.from(),
            epoch: 0,
            height: b.header.body.height,
            block: b.header.hash(),
            witness: code(&s.genesis, i),
        }
        .sign(&s.keys[i])
    };
    let certified = |s: &Setup| {
        s.replica
            .heads()
            .iter()
            .find(|h| h.chain == s.from())
            .map(|h| h.certified)
    };
    check(s.block(blocks[0].clone()), &Verdict::Accepted, |_| true);
    // Heights 1, 2 and 3 attested by the three others before 2 and 3 are delivered.
    for b in &blocks {
        for i in 1..4 {
            let attestation = att(&s, i, b);
            let got = s.feed(Input::Attestation {
                from: s.from(),
                attestation,
            });
            assert!(
                matches!(got.0, Verdict::Accepted | Verdict::Ignored("height already certified")),
                "{:?}",
                got.0
            );
        }
    }
    assert_eq!(certified(&s), Some(1));
    check(s.block(blocks[1].clone()), &Verdict::Accepted, |o| {
        o.iter().any(|x| matches!(x, Output::BlockCertified { height: 2, .. }))
    });
    check(s.block(blocks[2].clone()), &Verdict::Accepted, |o| {
        o.iter()
            .any(|x| matches!(x, Output::PersistCertificate(c) if c.height == 3 && c.signatures.len() >= 3))
            && o.iter().any(|x| matches!(x, Output::BlockCertified { height: 3, .. }))
    });
    assert_eq!(certified(&s), Some(3));
}

/// A fee deposit that covers a fee-blocked request issues it in the deposit's block, as a
/// derived entry every witness re-derives: the honest block is voted, and the same block
/// with the automatic issue left out is invalid.
#[test]
fn an_automatic_reissue_after_a_fee_deposit_is_re_derived_by_witnesses() {
    let (sim, mut keys) = genesis(42, 4);
    let operator = SecretKey::from_seed(&[9; 32]);
    let mut members: Vec<Member> = sim
        .config()
        .members()
        .iter()
        .map(|m| Member {
            initial_fee_balance: Fen::from_fen(0),
            tax_id: None,
            ..m.clone()
        })
        .collect();
    members.push(Member {
        code: MemberCode::new(900_001).unwrap(),
        name: "Operator".into(),
        roles: Roles::of(&[Role::Operator]),
        key: operator.public(),
        addresses: vec![],
        initial_fee_balance: Fen::from_fen(0),
        tax_id: None,
        policy: None,
    });
    let genesis = Genesis::new(
        "sim".into(),
        Timestamp(0),
        None,
        Fen::from_fen(10),
        fapiao_core::tax::sample_classifications(),
        members,
    )
    .unwrap();
    keys.push(operator.clone());
    let mut s = setup_with(genesis, keys);
    let chain = s.from();
    let owner = s.keys[1].clone();
    let event = |key: &SecretKey, kind: EventKind| {
        EventBody {
            network: s.genesis.network_id(),
            chain,
            author: key.public(),
            timestamp: Timestamp(NOW),
            kind,
        }
        .sign(key)
    };
    let pay = event(
        &owner,
        EventKind::PaymentRecorded(PaymentRecorded {
            payment_id: "p1".into(),
            amount: Fen::from_fen(10_000),
            currency: Currency::Cny,
            method: PaymentMethod::Card,
            terminal_id: "t".into(),
            external_ref: "r".into(),
        }),
    );
    let request = event(
        &owner,
        fapiao_testkit::invoice_request("r1", "Buyer", vec![fapiao_testkit::line("tea", 5_000, 600)], &["p1"]),
    );
    let deposit = event(
        &operator,
        EventKind::FeeDeposited(FeeDeposited {
            deposit_id: "d1".into(),
            amount: Fen::from_fen(10),
        }),
    );
    let mut build = |events: &[fapiao_core::Event]| {
        let b = s
            .owner
            .build_next(&s.genesis, s.genesis.config(), chain, &owner, Timestamp(NOW), events)
            .expect("accepted");
        s.owner
            .apply(&s.genesis, s.genesis.config(), &b)
            .expect("own block applies");
        b
    };
    let first = build(&[pay, request.clone()]);
    assert!(matches!(
        &first.entries[2],
        Entry::Derived(d) if matches!(&d.kind, DerivedKind::InvoiceFailed(_))
    ));
    let second = build(&[deposit]);
    match &second.entries[..] {
        [Entry::Event(_), Entry::Derived(d)] => {
            assert_eq!(d.cause, request.id(), "the automatic issue answers the request");
            assert!(matches!(&d.kind, DerivedKind::InvoiceIssued(i) if i.request_id == "r1"));
        }
        other => panic!("expected the deposit and its automatic issue, got {other:?}"),
    }
    check(s.block(first), &Verdict::Accepted, |o| votes(o) == 1);

    // The owner leaves the automatic issue out (and signs a header that matches).
    let mut short = second.clone();
    short.entries.truncate(1);
    let leaves: Vec<_> = short.entries.iter().map(Entry::leaf_hash).collect();
    short.header.body.events_root = fapiao_core::merkle::root(&leaves);
    short.header.body.event_count = 1;
    short.header = short.header.body.clone().sign(&owner);
    check(
        s.block(short),
        &Verdict::Invalid(Invalid::Entries { ours: 2, theirs: 1 }),
        |o| votes(o) == 0,
    );
    check(s.block(second), &Verdict::Accepted, |o| votes(o) == 1);
}

/// Member `from`'s heads answer claiming our (member 1's) chain at `height`.
fn own_claim(s: &mut Setup, from: usize, height: u64) -> (Verdict, Vec<Output>) {
    let from = code(&s.genesis, from);
    let me = code(&s.genesis, 0);
    let heads = vec![HeadSummary {
        chain: me,
        height,
        hash: BlockHash(Hash32::ZERO),
        certified: 0,
        frozen: false,
    }];
    // Answers count once they are a heads poll younger than the start or the last block
    // of ours taken back (both at NOW here).
    s.feed_at(
        NOW + 2 * Config::default().sync_interval_ms,
        Input::Heads { from, heads },
    )
}

fn released(o: &[Output]) -> bool {
    o.iter().any(|x| matches!(x, Output::ReleaseProduction { .. }))
}

fn connect_all(s: &mut Setup) {
    for i in 1..s.keys.len() {
        let peer = code(&s.genesis, i);
        let _ = s.feed(Input::PeerConnected(peer));
    }
}

/// Production starts only once quorum - 1 peers (2 of 4 members here) and every
/// connected peer have said how far they hold our chain: the first peer to answer may lag.
#[test]
fn production_waits_for_enough_peers_before_the_first_block() {
    let mut s = setup();
    connect_all(&mut s);
    assert!(!released(&own_claim(&mut s, 1, 0).1), "one lagging peer is not enough");
    assert!(
        !released(&own_claim(&mut s, 2, 0).1),
        "member 4 is connected and has not answered"
    );
    check(own_claim(&mut s, 3, 0), &Verdict::Accepted, released);
    // Nothing is released twice.
    assert!(!released(&own_claim(&mut s, 1, 0).1));
}

/// A peer that claims our chain above our head is asked for the block; without it the
/// claim is refused (the host penalises the peer), and its later claims are ignored, so a
/// liar cannot hold production again and again.
#[test]
fn a_claim_on_our_chain_without_the_block_is_refused_and_the_liar_ignored() {
    let mut s = setup();
    connect_all(&mut s);
    let me = code(&s.genesis, 0);
    let liar = code(&s.genesis, 1);
    check(own_claim(&mut s, 1, 7), &Verdict::Accepted, |o| {
        o.iter().any(|x| {
            matches!(
                x,
                Output::HoldProduction {
                    refuse_writes: false,
                    ..
                }
            )
        }) && o.contains(&Output::RequestBlocks {
            peer: liar,
            chain: me,
            from: 1,
            to: 1,
        })
    });
    let answer = s.feed(Input::Blocks {
        from: liar,
        chain: me,
        blocks: vec![],
    });
    assert!(matches!(answer.0, Verdict::Invalid(Invalid::Link(_))), "{answer:?}");
    let again = own_claim(&mut s, 1, 9);
    assert!(
        !again.1.iter().any(|x| matches!(x, Output::RequestBlocks { .. })),
        "{again:?}"
    );
    assert!(!released(&own_claim(&mut s, 2, 0).1));
    check(own_claim(&mut s, 3, 0), &Verdict::Accepted, released);
}

/// Member 1 lost its ledger (an empty one): a peer shows block 1 of its chain, signed by
/// its own key. It takes its blocks back, re-executed and voted for as they were, refuses
/// writes meanwhile, and produces only once it holds every height the peers claim.
#[test]
fn a_member_that_lost_its_blocks_recovers_them_before_producing() {
    let mut s = setup();
    connect_all(&mut s);
    let me = code(&s.genesis, 0);
    // Member 1's chain as it was before the loss: three blocks.
    let mut mine = MemChain::default();
    let key = s.keys[0].clone();
    let blocks: Vec<Block> = (0..3u64)
        .map(|k| {
            let e = EventBody {
                network: s.genesis.network_id(),
                chain: me,
                author: key.public(),
                timestamp: Timestamp(NOW - 100),
                kind: EventKind::PaymentRecorded(PaymentRecorded {
                    payment_id: format!("own{k}"),
                    amount: Fen::from_fen(100),
                    currency: Currency::Cny,
                    method: PaymentMethod::Card,
                    terminal_id: "t".into(),
                    external_ref: "r".into(),
                }),
            }
            .sign(&key);
            let b = mine
                .build_next(&s.genesis, s.genesis.config(), me, &key, Timestamp(NOW - 100 + k), &[e])
                .expect("accepted");
            mine.apply(&s.genesis, s.genesis.config(), &b).expect("applies");
            b
        })
        .collect();
    let peer = code(&s.genesis, 1);
    let _ = own_claim(&mut s, 1, 3);
    let shown = s.feed(Input::Blocks {
        from: peer,
        chain: me,
        blocks: vec![(blocks[0].clone(), None)],
    });
    check(shown, &Verdict::Accepted, |o| {
        o.iter().any(|x| {
            matches!(
                x,
                Output::HoldProduction {
                    refuse_writes: true,
                    ..
                }
            )
        }) && votes(o) == 1
            && !released(o)
    });
    assert!(!released(&own_claim(&mut s, 2, 3).1));
    let rest = s.feed(Input::Blocks {
        from: peer,
        chain: me,
        blocks: blocks[1..].iter().map(|b| (b.clone(), None)).collect(),
    });
    // Held until every connected peer has answered; member 4 holds only two of them.
    assert_eq!(rest.0, Verdict::Accepted);
    assert!(!released(&rest.1), "{:?}", rest.1);
    check(own_claim(&mut s, 3, 2), &Verdict::Accepted, released);
    assert_eq!(
        s.replica.heads().iter().find(|h| h.chain == me).map(|h| h.height),
        Some(3)
    );
    // A peer's gossip of our own block, outside recovery, is ignored.
    let late = s.feed(Input::Block {
        from: peer,
        block: blocks[2].clone(),
    });
    assert!(matches!(late.0, Verdict::Ignored(_)), "{late:?}");
}

/// With one merchant nobody else can hold its chain: nothing is held.
#[test]
fn a_lone_merchant_is_never_held() {
    let (g, keys) = genesis(42, 1);
    let mut s = fresh(g, keys);
    assert_eq!(s.replica.poll_output(), None);
}

/// A member that holds a chain's blocks but not their certificates (its votes and the
/// attestations were lost) asks a peer that is certified further for the certificates
/// only, not for the blocks again; then for the blocks above its head.
#[test]
fn missing_certificates_of_held_blocks_are_asked_for_alone() {
    let mut s = setup();
    let b1 = s.next_block(1, NOW - 10);
    let b2 = s.next_block(1, NOW - 5);
    let _ = s.block(b1);
    let _ = s.block(b2);
    let peer = s.from();
    let chain = peer;
    let heads = |certified, height| {
        vec![HeadSummary {
            chain,
            height,
            hash: BlockHash(Hash32::ZERO),
            certified,
            frozen: false,
        }]
    };
    let _ = s.feed_at(
        NOW,
        Input::Heads {
            from: peer,
            heads: heads(3, 4),
        },
    );
    let later = NOW + Config::default().sync_interval_ms;
    check(
        s.feed_at(
            later,
            Input::Heads {
                from: peer,
                heads: heads(3, 4),
            },
        ),
        &Verdict::Accepted,
        |o| {
            o.contains(&Output::RequestCertificates {
                peer,
                chain,
                from: 1,
                to: 2,
            }) && !o.iter().any(|x| matches!(x, Output::RequestBlocks { .. }))
        },
    );
    // The answer: attestations of a quorum for both blocks make their certificates.
    let certificates = [&s.owner.blocks()[0], &s.owner.blocks()[1]]
        .iter()
        .map(|b| {
            let atts: Vec<_> = (1..4)
                .map(|w| {
                    AttestationBody {
                        network: s.genesis.network_id(),
                        chain,
                        epoch: 0,
                        height: b.header.body.height,
                        block: b.header.hash(),
                        witness: code(&s.genesis, w),
                    }
                    .sign(&s.keys[w])
                })
                .collect();
            fapiao_core::Certificate::from_attestations(atts.iter()).expect("a quorum")
        })
        .collect();
    check(
        s.feed_at(
            later,
            Input::Certificates {
                from: peer,
                chain,
                certificates,
            },
        ),
        &Verdict::Accepted,
        |o| {
            o.iter().filter(|x| matches!(x, Output::BlockCertified { .. })).count() == 2
                && o.contains(&Output::RequestBlocks {
                    peer,
                    chain,
                    from: 3,
                    to: 4,
                })
        },
    );
}

/// Member `i`'s next block on `chain` (its own copy), with one payment at `time`.
fn block_of(s: &Setup, chain: &mut MemChain, i: usize, time: u64) -> Block {
    let code = code(&s.genesis, i);
    let key = &s.keys[i];
    let event = EventBody {
        network: s.genesis.network_id(),
        chain: code,
        author: key.public(),
        timestamp: Timestamp(time),
        kind: EventKind::PaymentRecorded(PaymentRecorded {
            payment_id: format!("own{}-{time}", chain.blocks().len()),
            amount: Fen::from_fen(100),
            currency: Currency::Cny,
            method: PaymentMethod::Card,
            terminal_id: "t".into(),
            external_ref: "r".into(),
        }),
    }
    .sign(key);
    let b = chain
        .build_next(&s.genesis, s.genesis.config(), code, key, Timestamp(time), &[event])
        .expect("a payment is accepted");
    chain
        .apply(&s.genesis, s.genesis.config(), &b)
        .expect("own block applies");
    b
}

/// Member 2's header with `body`, signed by its key, gossiped by `from`.
fn twin_header(s: &mut Setup, from: MemberCode, body: fapiao_core::HeaderBody) -> (Verdict, Vec<Output>) {
    let header = body.sign(&s.keys[1]);
    s.feed(Input::Header { from, header })
}

fn evidence_found(o: &[Output]) -> bool {
    o.iter().any(|x| matches!(x, Output::EvidenceFound(_)))
        && o.iter().any(|x| matches!(x, Output::BroadcastEvidence(_)))
}

/// A merchant that is not a witness (member 0 of four; the other three witness) holds
/// its own chain only: another chain's block is not kept even when sent to it, its
/// headers are watched for equivocation, its attestations are not pooled, and its own
/// blocks go, as headers, to everyone and, whole, to the witnesses only, with no
/// attestation of its own.
#[test]
fn a_merchant_that_is_not_a_witness_holds_only_its_own_chain_and_never_attests() {
    let (g, keys) = genesis_of(42, &[false, true, true, true]);
    let mut s = setup_with(g, keys);
    let me = code(&s.genesis, 0);
    let heads: Vec<MemberCode> = s.replica.heads().iter().map(|h| h.chain).collect();
    assert_eq!(heads, vec![me], "it holds and reports its own chain only");

    let b1 = s.next_block(1, NOW);
    check(
        s.block(b1.clone()),
        &Verdict::Ignored("a chain this member does not hold"),
        |o| o.is_empty(),
    );
    assert!(s.ledger.chain(s.from()).is_none_or(|c| c.blocks().is_empty()));

    // Its header is taken (and forwarded) without fetching the block.
    let from = code(&s.genesis, 2);
    check(
        s.feed(Input::Header {
            from,
            header: b1.header.clone(),
        }),
        &Verdict::Accepted,
        |o| o.is_empty(),
    );
    let att = AttestationBody {
        network: s.genesis.network_id(),
        chain: s.from(),
        epoch: 0,
        height: 1,
        block: b1.header.hash(),
        witness: code(&s.genesis, 2),
    }
    .sign(&s.keys[2]);
    check(
        s.feed(Input::Attestation { from, attestation: att }),
        &Verdict::Ignored("a chain this member does not hold"),
        |o| o.is_empty(),
    );
    // A second header at that height: its owner signed two blocks.
    let mut twin = b1.header.body.clone();
    twin.timestamp = Timestamp(NOW + 1);
    check(twin_header(&mut s, from, twin), &Verdict::Accepted, evidence_found);
    assert_eq!(s.replica.evidence().len(), 1);

    // Its own block: a header for all, the block for each connected witness, no vote.
    connect_all(&mut s);
    let mut mine = MemChain::default();
    let own = block_of(&s, &mut mine, 0, NOW);
    let got = s.feed(Input::OwnBlock(own.clone()));
    check(got, &Verdict::Accepted, |o| {
        let sent: Vec<MemberCode> = o
            .iter()
            .filter_map(|x| match x {
                Output::SendBlock { peer, block } if *block == own => Some(*peer),
                _ => None,
            })
            .collect();
        o.contains(&Output::AnnounceHeader(own.header.clone()))
            && sent == vec![code(&s.genesis, 1), code(&s.genesis, 2), code(&s.genesis, 3)]
            && !o.iter().any(|x| matches!(x, Output::BroadcastAttestation(_)))
    });
}

/// A witness that sees a header above its head fetches the block from the chain's owner
/// (which always holds it), not from whoever forwarded the header; and when the block it
/// gets is another one at that height, the two are evidence.
#[test]
fn an_announced_block_is_fetched_from_its_owner_and_a_different_one_is_evidence() {
    let mut s = setup();
    let owner = s.from();
    let relay = code(&s.genesis, 2);
    let _ = s.feed(Input::PeerConnected(owner));
    let _ = s.feed(Input::PeerConnected(relay));
    let b1 = s.next_block(1, NOW);
    check(
        s.feed(Input::Header {
            from: relay,
            header: b1.header.clone(),
        }),
        &Verdict::Accepted,
        |o| {
            o.iter().any(
                |x| matches!(x, Output::RequestBlocks { peer, chain, from: 1, .. } if *peer == owner && *chain == owner),
            )
        },
    );
    // The owner answers with another block at height 1.
    let mut other = b1.clone();
    other.header.body.timestamp = Timestamp(NOW + 1);
    other.header = other.header.body.clone().sign(&s.keys[1]);
    check(
        s.feed(Input::Blocks {
            from: owner,
            chain: owner,
            blocks: vec![(other, None)],
        }),
        &Verdict::Accepted,
        |o| evidence_found(o) && votes(o) == 0,
    );
}

/// A header that differs from the block held at its height is evidence at once.
#[test]
fn a_header_conflicting_with_a_held_block_is_evidence() {
    let mut s = setup();
    let b1 = s.next_block(1, NOW);
    check(s.block(b1.clone()), &Verdict::Accepted, |_| true);
    let from = code(&s.genesis, 3);
    check(
        s.feed(Input::Header {
            from,
            header: b1.header.clone(),
        }),
        &Verdict::Ignored("duplicate header"),
        |o| o.is_empty(),
    );
    let mut twin = b1.header.body.clone();
    twin.state_root = Hash32([9; 32]);
    check(twin_header(&mut s, from, twin), &Verdict::Accepted, evidence_found);
}

/// A merchant that is not a witness waits for `w - q + 1` witnesses (two of four here,
/// quorum three): a peer that is not a witness does not hold its chain, so its answer
/// does not count.
#[test]
fn a_member_that_is_not_a_witness_waits_for_enough_witnesses() {
    let (g, keys) = genesis_of(42, &[false, true, true, true, true, false]);
    let mut s = setup_with(g, keys);
    connect_all(&mut s);
    let at = NOW + 2 * Config::default().sync_interval_ms;
    let other_merchant = code(&s.genesis, 5);
    let own_only = vec![HeadSummary {
        chain: other_merchant,
        height: 3,
        hash: BlockHash(Hash32::ZERO),
        certified: 3,
        frozen: false,
    }];
    let got = s.feed_at(
        at,
        Input::Heads {
            from: other_merchant,
            heads: own_only,
        },
    );
    assert!(
        !released(&got.1),
        "a merchant that does not witness holds nothing of ours"
    );
    assert!(!released(&own_claim(&mut s, 1, 0).1), "one witness of the two needed");
    // Every connected witness must answer (or the wait must end) as well.
    for w in 2..4 {
        assert!(!released(&own_claim(&mut s, w, 0).1), "witness {w} of four");
    }
    assert!(released(&own_claim(&mut s, 4, 0).1), "every witness answered");
}

/// A witness that owns no chain (member 0, which only witnesses) holds every merchant's
/// chain, validates and attests it, and has no production to hold.
#[test]
fn a_witness_that_owns_no_chain_attests_every_chain_and_is_never_held() {
    let (g, keys) = genesis(42, 4);
    let mut members = g.config().members().to_vec();
    members[0].roles = Roles::of(&[Role::Witness]);
    members[0].policy = None;
    members[0].initial_fee_balance = Fen::ZERO;
    let g = Genesis::new(
        g.network_name().into(),
        g.created_at(),
        None,
        g.fee_per_invoice(),
        g.classifications().to_vec(),
        members,
    )
    .expect("a witness that owns no chain is a valid member");
    let mut s = fresh(g, keys);
    assert_eq!(s.replica.poll_output(), None, "nothing of its own to hold");
    let held: Vec<MemberCode> = s.replica.heads().iter().map(|h| h.chain).collect();
    assert_eq!(held, (1..4).map(|i| code(&s.genesis, i)).collect::<Vec<_>>());
    let b = s.next_block(2, NOW);
    check(s.block(b), &Verdict::Accepted, |o| {
        votes(o) == 1 && o.iter().any(|x| matches!(x, Output::BroadcastAttestation(_)))
    });
}
