//! The replica's rules one at a time: member 1 (the node under test) receives member 2's
//! blocks and the others' attestations, and each case checks the verdict and the outputs
//! through one helper.

use fapiao_chain::sim::{genesis, MemChain, MemLedger};
use fapiao_chain::{Config, Input, Invalid, Output, Persisted, Replica, Verdict};
use fapiao_core::block::BlockError;
use fapiao_core::event::{Currency, EventKind, PaymentMethod, PaymentRecorded};
use fapiao_core::{AttestationBody, Block, EventBody, Fen, Genesis, MemberCode, SecretKey, Timestamp};

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
    g.members()[i].code
}

fn setup() -> Setup {
    let (genesis, keys) = genesis(42, 4);
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
                        amount: Fen(100),
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
            .build_next(&self.genesis, chain, key, Timestamp(time), &events)
            .expect("payments are accepted");
        self.owner.apply(&self.genesis, &b).expect("own block applies");
        b
    }

    fn from(&self) -> MemberCode {
        code(&self.genesis, 1)
    }

    /// Feeds `input` and returns the verdict and every output.
    fn feed(&mut self, input: Input) -> (Verdict, Vec<Output>) {
        let v = self
            .replica
            .handle(Timestamp(NOW), input, &mut self.ledger)
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
