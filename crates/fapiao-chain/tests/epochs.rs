//! Epochs at the replica: member 1 (the node under test, a witness) holds the admin
//! chain, learns each certified configuration change, and from then on judges blocks,
//! attestations and certificates in their own epochs (PROTOCOL.md "Epochs").

use fapiao_chain::sim::{consortium, MemChain, MemLedger};
use fapiao_chain::{Config, Input, Invalid, Output, Persisted, Replica, Verdict};
use fapiao_core::block::BlockError;
use fapiao_core::event::{Currency, PaymentMethod, PaymentRecorded};
use fapiao_core::{
    AttestationBody, Block, ConfigChange, EventBody, EventKind, Fen, Genesis, MemberCode, Reconfiguration, SecretKey,
    Timestamp,
};

const NOW: u64 = 1_000_000;
const ADMIN: u32 = 900_001;

struct World {
    genesis: Genesis,
    merchants: Vec<SecretKey>,
    admin_key: SecretKey,
    replica: Replica,
    ledger: MemLedger,
    /// The admin chain as the admin builds it.
    admin_chain: MemChain,
    /// Member 2's chain as its owner builds it.
    owner: MemChain,
    /// The configuration the admin chain is at (what its next change applies to).
    config: fapiao_core::Config,
}

fn code(n: u32) -> MemberCode {
    MemberCode::new(n).unwrap()
}

fn world() -> World {
    let c = consortium(7, 4, 0);
    let genesis = c.genesis.with_admin(Some(code(ADMIN))).unwrap();
    let me = genesis.config().members()[0].code;
    let mut replica = Replica::new(
        Config::default(),
        genesis.clone(),
        me,
        c.merchants[0].clone(),
        Persisted::default(),
    );
    while replica.poll_output().is_some() {}
    World {
        ledger: MemLedger::new(genesis.clone()),
        config: genesis.config().clone(),
        genesis,
        merchants: c.merchants,
        admin_key: c.operator,
        replica,
        admin_chain: MemChain::default(),
        owner: MemChain::default(),
    }
}

impl World {
    fn member(&self, i: usize) -> MemberCode {
        self.genesis.config().members()[i].code
    }

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

    /// Witness `i`'s attestation for `block`, certified by `epoch`.
    fn attestation(&self, i: usize, block: &Block, epoch: u32) -> fapiao_core::Attestation {
        AttestationBody {
            network: self.genesis.network_id(),
            chain: block.header.body.chain,
            epoch,
            height: block.header.body.height,
            block: block.header.hash(),
            witness: self.member(i),
        }
        .sign(&self.merchants[i])
    }

    /// The admin proposes `change`; the block holding it reaches member 1, which attests
    /// it, and witnesses 2 and 3 attest it too: a certificate (quorum 3 of 4). Returns
    /// the outputs of the last attestation (the new epoch's announcement among them).
    fn certify_change(&mut self, change: ConfigChange) -> Vec<Output> {
        let r = Reconfiguration {
            epoch: self.config.epoch() + 1,
            change,
        };
        self.config = self.config.apply(&r.change).expect("a valid change");
        let admin = code(ADMIN);
        let event = EventBody {
            network: self.genesis.network_id(),
            chain: admin,
            author: self.admin_key.public(),
            timestamp: Timestamp(NOW - 1_000),
            kind: EventKind::ConfigChanged(r),
        }
        .sign(&self.admin_key);
        let latest = self.replica.epochs().latest().clone();
        let block = self
            .admin_chain
            .build_next(
                &self.genesis,
                &latest,
                admin,
                &self.admin_key,
                Timestamp(NOW - 1_000),
                &[event],
            )
            .expect("the admin's change executes");
        self.admin_chain
            .apply(&self.genesis, &latest, &block)
            .expect("the admin's own block applies");
        let (v, _) = self.feed(Input::Block {
            from: admin,
            block: block.clone(),
        });
        assert_eq!(v, Verdict::Accepted);
        let certifying = latest.epoch();
        let (v, _) = self.feed(Input::Attestation {
            from: self.member(1),
            attestation: self.attestation(1, &block, certifying),
        });
        assert_eq!(v, Verdict::Accepted);
        let (_, out) = self.feed(Input::Attestation {
            from: self.member(2),
            attestation: self.attestation(2, &block, certifying),
        });
        out
    }

    /// Member 2's next block: one payment, made in `config`'s epoch and signed by `key`.
    fn owner_block(&mut self, config: &fapiao_core::Config, key: &SecretKey, id: &str) -> Block {
        let chain = self.member(1);
        let event = EventBody {
            network: self.genesis.network_id(),
            chain,
            author: key.public(),
            timestamp: Timestamp(NOW - 500),
            kind: EventKind::PaymentRecorded(PaymentRecorded {
                payment_id: id.into(),
                amount: Fen::from_fen(100),
                currency: Currency::Cny,
                method: PaymentMethod::Card,
                terminal_id: "t".into(),
                external_ref: "r".into(),
            }),
        }
        .sign(key);
        self.owner
            .build_next(&self.genesis, config, chain, key, Timestamp(NOW - 500), &[event])
            .expect("a payment is accepted")
    }
}

fn attested(out: &[Output]) -> Vec<(u64, u32)> {
    out.iter()
        .filter_map(|o| match o {
            Output::BroadcastAttestation(a) => Some((a.body.height, a.body.epoch)),
            _ => None,
        })
        .collect()
}

fn epoch_started(out: &[Output]) -> Option<u32> {
    out.iter().find_map(|o| match o {
        Output::EpochStarted(c) => Some(c.epoch()),
        _ => None,
    })
}

#[test]
fn a_certified_change_starts_an_epoch_and_an_uncertified_one_does_not() {
    let mut w = world();
    let new_key = SecretKey::from_seed(&[77; 32]);
    let member = w.member(1);
    // The admin's block is stored and attested, but one attestation more is not a quorum.
    let r = Reconfiguration {
        epoch: 1,
        change: ConfigChange::RotateKey {
            member,
            key: new_key.public(),
        },
    };
    let admin = code(ADMIN);
    let event = EventBody {
        network: w.genesis.network_id(),
        chain: admin,
        author: w.admin_key.public(),
        timestamp: Timestamp(NOW - 1_000),
        kind: EventKind::ConfigChanged(r.clone()),
    }
    .sign(&w.admin_key);
    let g = w.genesis.clone();
    let block = w
        .admin_chain
        .build_next(&g, g.config(), admin, &w.admin_key, Timestamp(NOW - 1_000), &[event])
        .unwrap();
    let (v, out) = w.feed(Input::Block {
        from: admin,
        block: block.clone(),
    });
    assert_eq!((v, attested(&out)), (Verdict::Accepted, vec![(1, 0)]));
    let (_, out) = w.feed(Input::Attestation {
        from: w.member(1),
        attestation: w.attestation(1, &block, 0),
    });
    assert_eq!(epoch_started(&out), None, "two of four attested: not certified yet");
    assert_eq!(w.replica.epochs().current(), 0);
    let (_, out) = w.feed(Input::Attestation {
        from: w.member(2),
        attestation: w.attestation(2, &block, 0),
    });
    assert_eq!(epoch_started(&out), Some(1), "{out:?}");
    let latest = w.replica.epochs().latest();
    assert_eq!(latest.member(member).unwrap().key, new_key.public());
}

#[test]
fn after_a_rotation_the_old_key_certifies_nothing_and_the_new_key_continues() {
    let mut w = world();
    let old_key = w.merchants[1].clone();
    let new_key = SecretKey::from_seed(&[77; 32]);
    let member = w.member(1);
    let out = w.certify_change(ConfigChange::RotateKey {
        member,
        key: new_key.public(),
    });
    assert_eq!(epoch_started(&out), Some(1));
    let epoch0 = w.genesis.config().clone();
    let epoch1 = w.replica.epochs().latest().clone();

    // A header made in epoch 1 but signed with the old key: invalid, the sender is at fault.
    let forged = w.owner_block(&epoch1, &new_key, "forged").header.body.sign(&old_key);
    let (v, _) = w.feed(Input::Header {
        from: member,
        header: forged,
    });
    assert!(
        matches!(v, Verdict::Invalid(Invalid::Block(BlockError::Signature { .. }))),
        "{v:?}"
    );
    // A block made in epoch 0 with the old key, after the change: stored (a quorum
    // that had not heard of the change could still certify it), never attested here.
    let stale = w.owner_block(&epoch0, &old_key, "stale");
    let (v, out) = w.feed(Input::Block {
        from: member,
        block: stale.clone(),
    });
    assert_eq!((v, attested(&out)), (Verdict::Accepted, vec![]), "{out:?}");

    // On a fresh replica that knows epoch 1, the chain goes on under the new key: its
    // first block (epoch 1) is certified by epoch 0, its chain's first epoch.
    let mut w = world();
    w.certify_change(ConfigChange::RotateKey {
        member,
        key: new_key.public(),
    });
    let first = w.owner_block(&epoch1, &new_key, "p1");
    w.owner.apply(&w.genesis.clone(), &epoch1, &first).unwrap();
    let (v, out) = w.feed(Input::Block {
        from: member,
        block: first.clone(),
    });
    assert_eq!((v, attested(&out)), (Verdict::Accepted, vec![(1, 0)]));
    // The second block waits for the first one's certificate before it is attested, and
    // is then attested in epoch 1, its parent's.
    let second = w.owner_block(&epoch1, &new_key, "p2");
    let (v, out) = w.feed(Input::Block {
        from: member,
        block: second,
    });
    assert_eq!(
        (v, attested(&out)),
        (Verdict::Accepted, vec![]),
        "parent not certified yet"
    );
    let (v, _) = w.feed(Input::Attestation {
        from: w.member(2),
        attestation: w.attestation(2, &first, 0),
    });
    assert_eq!(v, Verdict::Accepted);
    let (_, out) = w.feed(Input::Attestation {
        from: w.member(3),
        attestation: w.attestation(3, &first, 0),
    });
    assert_eq!(attested(&out), vec![(2, 1)], "{out:?}");
}

#[test]
fn a_removed_members_chain_is_closed_and_its_attestations_count_for_nothing() {
    let mut w = world();
    let member = w.member(1);
    w.certify_change(ConfigChange::RemoveMember(member));
    assert_eq!(w.replica.epochs().current(), 1);
    let epoch0 = w.genesis.config().clone();
    let key = w.merchants[1].clone();
    // Its block made in epoch 0 after it left is never attested.
    let late = w.owner_block(&epoch0, &key, "late");
    let (v, out) = w.feed(Input::Block {
        from: member,
        block: late.clone(),
    });
    assert_eq!((v, attested(&out)), (Verdict::Accepted, vec![]));
    // In epoch 1 it owns no chain.
    let mut header = late.header.body.clone();
    header.epoch = 1;
    header.height = 2;
    header.parent = late.header.hash();
    let (v, _) = w.feed(Input::Header {
        from: member,
        header: header.sign(&key),
    });
    assert_eq!(v, Verdict::Invalid(Invalid::Block(BlockError::UnknownChain(member))));
    // As a witness of epoch 1 it is nobody: its attestation of an epoch-1 certified
    // block is invalid.
    let other = w.member(2);
    let body = AttestationBody {
        network: w.genesis.network_id(),
        chain: other,
        epoch: 1,
        height: 1,
        block: late.header.hash(),
        witness: member,
    };
    let (v, _) = w.feed(Input::Attestation {
        from: member,
        attestation: body.sign(&key),
    });
    assert_eq!(v, Verdict::Invalid(Invalid::Block(BlockError::NotAWitness(member))));
}

#[test]
fn an_object_of_an_epoch_not_known_yet_is_ignored_not_penalised() {
    let mut w = world();
    let member = w.member(1);
    let key = w.merchants[1].clone();
    let block = w.owner_block(&w.genesis.config().clone(), &key, "p");
    let mut body = block.header.body.clone();
    body.epoch = 5;
    let (v, _) = w.feed(Input::Header {
        from: member,
        header: body.sign(&key),
    });
    assert!(matches!(v, Verdict::Ignored(_)), "{v:?}");
    let mut att = w.attestation(2, &block, 0);
    att.body.epoch = 5;
    let att = att.body.sign(&w.merchants[2]);
    let (v, _) = w.feed(Input::Attestation {
        from: w.member(2),
        attestation: att,
    });
    assert!(matches!(v, Verdict::Ignored(_)), "{v:?}");
}

#[test]
fn a_change_that_breaks_a_rule_is_refused_by_execution_and_starts_no_epoch() {
    let w = world();
    // Removing the admin, or every witness but one with the quorum kept, is refused.
    let c = w.genesis.config();
    assert!(c.apply(&ConfigChange::RemoveMember(code(ADMIN))).is_err());
    assert!(
        c.apply(&ConfigChange::SetQuorum(Some(1))).is_err(),
        "1 of 4 is not above half"
    );
    assert!(
        c.apply(&ConfigChange::SetQuorum(Some(5))).is_err(),
        "more than the witnesses"
    );
    let removed = c.apply(&ConfigChange::RemoveMember(w.member(3))).unwrap();
    assert_eq!(
        (removed.quorum(), removed.retired().len()),
        (3, 1),
        "default quorum of 3 witnesses"
    );
    let back = w.genesis.config().members()[3].clone();
    assert!(
        removed.apply(&ConfigChange::AddMember(back)).is_err(),
        "a retired code never returns"
    );
    let merchant_role = ConfigChange::SetRoles {
        member: w.member(0),
        roles: fapiao_core::Roles::of(&[fapiao_core::Role::Witness]),
    };
    assert!(
        c.apply(&merchant_role).is_err(),
        "the merchant role goes only with the member"
    );
    // A reset needs a merchant's chain and a successor key: not the admin chain, not a
    // stranger, not the key that signed twice, not another member's key.
    let reset = |chain: MemberCode, key: fapiao_core::PublicKey| ConfigChange::ResetChain { chain, height: 3, key };
    let fresh = SecretKey::from_seed(&[91; 32]).public();
    assert!(c.apply(&reset(code(ADMIN), fresh)).is_err(), "the admin chain");
    assert!(c.apply(&reset(code(123_456), fresh)).is_err(), "no member");
    assert!(
        c.apply(&reset(w.member(1), w.merchants[1].public())).is_err(),
        "its current key"
    );
    assert!(
        c.apply(&reset(w.member(1), w.merchants[2].public())).is_err(),
        "another member's key"
    );
    let after = c.apply(&reset(w.member(1), fresh)).unwrap();
    assert_eq!(after.member(w.member(1)).unwrap().key, fresh);
}

#[test]
fn a_retired_committee_certifies_nothing_of_a_later_epoch() {
    let mut w = world();
    let removed = w.member(3);
    w.certify_change(ConfigChange::RemoveMember(removed));
    let epoch1 = w.replica.epochs().latest().clone();
    let key = w.merchants[1].clone();
    let chain = w.member(1);
    // Block 1 of member 2's chain, made in epoch 1, is certified by epoch 0 (its chain's
    // first); block 2 by epoch 1 (its parent's).
    let first = w.owner_block(&epoch1, &key, "p1");
    w.owner.apply(&w.genesis.clone(), &epoch1, &first).unwrap();
    let (v, _) = w.feed(Input::Block {
        from: chain,
        block: first.clone(),
    });
    assert_eq!(v, Verdict::Accepted);
    for i in [2, 3] {
        let (v, _) = w.feed(Input::Attestation {
            from: w.member(i),
            attestation: w.attestation(i, &first, 0),
        });
        assert_eq!(v, Verdict::Accepted);
    }
    let second = w.owner_block(&epoch1, &key, "p2");
    let (v, _) = w.feed(Input::Block {
        from: chain,
        block: second.clone(),
    });
    assert_eq!(v, Verdict::Accepted);
    let certified = |out: &[Output]| {
        out.iter().any(|o| {
            matches!(
                o,
                Output::BlockCertified { height: 2, .. } | Output::PersistCertificate(_)
            )
        })
    };
    // Members 2, 3 and the removed member 4 were epoch 0's witnesses: valid signatures
    // under epoch 0, a quorum of it, but not the committee that certifies height 2.
    let retired: Vec<_> = [1, 2, 3].iter().map(|&i| w.attestation(i, &second, 0)).collect();
    let cert = fapiao_core::Certificate::from_attestations(&retired).unwrap();
    cert.verify(w.replica.epochs(), &w.genesis.network_id())
        .expect("valid in its own epoch");
    let (_, out) = w.feed(Input::Certificates {
        from: w.member(1),
        chain,
        certificates: vec![cert],
    });
    assert!(
        !certified(&out),
        "an epoch-0 quorum certified an epoch-1 height: {out:?}"
    );
    // Epoch 1's committee (members 1 to 3, quorum 3) does.
    let (v, _) = w.feed(Input::Attestation {
        from: w.member(1),
        attestation: w.attestation(1, &second, 1),
    });
    assert_eq!(v, Verdict::Accepted);
    let (_, out) = w.feed(Input::Attestation {
        from: w.member(2),
        attestation: w.attestation(2, &second, 1),
    });
    assert!(certified(&out), "{out:?}");
}

/// The outputs' chain resets, performed on the test's ledger as the node's store does.
fn reset_on(w: &mut World, out: &[Output]) -> Vec<(u64, bool)> {
    let mut done = Vec::new();
    for o in out {
        if let Output::ChainReset {
            chain,
            height,
            set_aside,
            ..
        } = o
        {
            if *set_aside {
                let epochs = w.replica.epochs().clone();
                w.ledger.set_aside(&epochs, *chain, *height);
            }
            done.push((*height, *set_aside));
        }
    }
    done
}

#[test]
fn a_frozen_chain_reset_under_a_successor_key_sets_aside_its_uncertified_block_and_certifies_again() {
    let mut w = world();
    let chain = w.member(1);
    let old_key = w.merchants[1].clone();
    let new_key = SecretKey::from_seed(&[78; 32]);
    let epoch0 = w.genesis.config().clone();
    // Block 1 is certified (our vote and witnesses 2 and 3).
    let first = w.owner_block(&epoch0, &old_key, "p1");
    w.owner.apply(&w.genesis.clone(), &epoch0, &first).unwrap();
    let (_, out) = w.feed(Input::Block {
        from: chain,
        block: first.clone(),
    });
    assert_eq!(attested(&out), vec![(1, 0)]);
    for i in [2, 3] {
        let attestation = w.attestation(i, &first, 0);
        let _ = w.feed(Input::Attestation {
            from: w.member(i),
            attestation,
        });
    }
    assert_eq!(
        w.replica.heads().iter().find(|h| h.chain == chain).unwrap().certified,
        1
    );
    // The owner signs two blocks at height 2: we store and attest one, the other's header
    // is evidence, and the chain freezes with block 2 uncertified.
    let second = w.owner_block(&epoch0, &old_key, "p2");
    let twin = w.owner_block(&epoch0, &old_key, "p2-twin");
    let (v, out) = w.feed(Input::Block {
        from: chain,
        block: second.clone(),
    });
    assert_eq!((v, attested(&out)), (Verdict::Accepted, vec![(2, 0)]));
    let (v, _) = w.feed(Input::Header {
        from: chain,
        header: twin.header.clone(),
    });
    assert_eq!(v, Verdict::Accepted);
    let evidence = w.replica.evidence();
    assert_eq!(evidence.len(), 1);
    assert!(w.replica.heads().iter().any(|h| h.chain == chain && h.frozen));

    // The admin resets the chain to its certified prefix, height 1, under a new key.
    let out = w.certify_change(ConfigChange::ResetChain {
        chain,
        height: 1,
        key: new_key.public(),
    });
    assert_eq!(epoch_started(&out), Some(1));
    // A member stopped before acting on it finds at its start what is due.
    let due = fapiao_chain::disk::set_aside_due(&w.ledger, w.replica.epochs()).unwrap();
    assert_eq!(due, vec![(chain, 1, 1)]);
    assert_eq!(reset_on(&mut w, &out), vec![(1, true)], "{out:?}");
    let due = fapiao_chain::disk::set_aside_due(&w.ledger, w.replica.epochs()).unwrap();
    assert!(due.is_empty(), "done once");
    let head = *w.replica.heads().iter().find(|h| h.chain == chain).unwrap();
    assert_eq!((head.height, head.certified, head.frozen), (1, 1, false));
    // The epochs' rules, which replay and the verifier apply too: above height 1, a
    // block made before epoch 1 is set aside, one made in it is not; height 2 is
    // certified by epoch 1 whatever its parent's epoch; other chains are untouched.
    let epochs = w.replica.epochs().clone();
    assert!(epochs.set_aside(chain, 2, 0).is_some() && epochs.set_aside(chain, 5, 0).is_some());
    assert!(epochs.set_aside(chain, 1, 0).is_none() && epochs.set_aside(chain, 2, 1).is_none());
    assert!(epochs.set_aside(w.member(2), 2, 0).is_none());
    assert_eq!(epochs.certifying(chain, Some((1, 0))), 1);
    assert_eq!(epochs.certifying(chain, Some((2, 1))), 1);
    assert_eq!(epochs.certifying(w.member(2), Some((1, 0))), 0);
    assert!(epochs.superseded(&evidence[0]));
    assert_eq!(w.ledger.chain(chain).unwrap().blocks().len(), 1, "block 2 set aside");
    // The evidence stays valid but no longer freezes; the old block is nobody's now.
    let (v, _) = w.feed(Input::Evidence {
        from: w.member(2),
        evidence: evidence[0].clone(),
    });
    assert_eq!(v, Verdict::Ignored("superseded by a chain reset"));
    let (v, _) = w.feed(Input::Block {
        from: w.member(2),
        block: second.clone(),
    });
    assert_eq!(v, Verdict::Ignored("set aside by a chain reset"));

    // The successor key's block 2, made in epoch 1: we voted at height 2 before, and we
    // attest again, in epoch 1, whose committee certifies the reset chain's next block.
    let epoch1 = w.replica.epochs().latest().clone();
    let resumed = w.owner_block(&epoch1, &new_key, "p2-again");
    let (v, out) = w.feed(Input::Block {
        from: chain,
        block: resumed.clone(),
    });
    assert_eq!((v, attested(&out)), (Verdict::Accepted, vec![(2, 1)]), "{out:?}");
    // An attestation for it in epoch 0 (the parent's epoch) certifies nothing, and a
    // witness that has not learned the reset yet and re-sends its vote for the set-aside
    // block loses nothing by it: ignored, it does not shadow its vote in epoch 1.
    let (v, out) = w.feed(Input::Attestation {
        from: w.member(2),
        attestation: w.attestation(2, &resumed, 0),
    });
    assert_eq!(v, Verdict::Ignored("set aside by a chain reset"));
    assert!(!out.iter().any(|o| matches!(o, Output::BlockCertified { .. })));
    let (v, _) = w.feed(Input::Attestation {
        from: w.member(2),
        attestation: w.attestation(2, &second, 0),
    });
    assert_eq!(v, Verdict::Ignored("set aside by a chain reset"));
    let mut certified = false;
    for i in [2, 3] {
        let attestation = w.attestation(i, &resumed, 1);
        let (_, out) = w.feed(Input::Attestation {
            from: w.member(i),
            attestation,
        });
        certified |= out
            .iter()
            .any(|o| matches!(o, Output::BlockCertified { height: 2, block, .. } if *block == resumed.header.hash()));
    }
    assert!(certified, "the reset chain certifies again");
    // Evidence that pairs the set-aside block with the new one is no evidence.
    let ev = fapiao_core::Equivocation::new(second.header.clone(), resumed.header.clone());
    let (v, _) = w.feed(Input::Evidence {
        from: w.member(2),
        evidence: ev,
    });
    assert_eq!(v, Verdict::Ignored("superseded by a chain reset"));
    // A restart loads the same: the chain unfrozen, the stale vote gone; and a
    // certificate for the set-aside block stored before the reset was learned (one can
    // arrive before its block) counts for nothing, so height 2 is the new block's.
    let mut persisted = w.ledger.persisted();
    assert!(persisted
        .votes
        .iter()
        .all(|v| v.0 != chain || v.2 != second.header.hash()));
    let old_votes: Vec<_> = [0, 2, 3].iter().map(|i| w.attestation(*i, &second, 0)).collect();
    let stale = fapiao_core::Certificate::from_attestations(old_votes.iter()).unwrap();
    persisted.certificates.push(stale);
    // What this test's ledger does not keep (it performs no PersistCertificate): the
    // admin chain's certified change and the chain's certified block 1.
    persisted.reconfigurations = vec![Reconfiguration {
        epoch: 1,
        change: ConfigChange::ResetChain {
            chain,
            height: 1,
            key: new_key.public(),
        },
    }];
    persisted.admin_applied = 1;
    persisted.certified.insert(code(ADMIN), 1);
    persisted.certified.insert(chain, 1);
    for v in persisted.votes.iter_mut().filter(|v| v.0 == chain && v.1 == 2) {
        v.3 = 1; // the loader, knowing the reset, places the vote in epoch 1
    }
    let me = w.member(0);
    let mut restarted = Replica::new(
        Config::default(),
        w.genesis.clone(),
        me,
        w.merchants[0].clone(),
        persisted,
    );
    let h = *restarted.heads().iter().find(|h| h.chain == chain).unwrap();
    assert_eq!((h.height, h.certified, h.frozen), (2, 1, false), "{h:?}");
    for i in [2, 3] {
        let attestation = w.attestation(i, &resumed, 1);
        let v = restarted
            .handle(
                Timestamp(NOW),
                Input::Attestation {
                    from: w.member(i),
                    attestation,
                },
                &mut w.ledger,
            )
            .unwrap();
        assert_eq!(
            v,
            Verdict::Accepted,
            "witness {i}: not shadowed by the stale certificate"
        );
        while restarted.poll_output().is_some() {}
    }
    let h = *restarted.heads().iter().find(|h| h.chain == chain).unwrap();
    assert_eq!(h.certified, 2, "the new block certifies after the restart: {h:?}");
}
