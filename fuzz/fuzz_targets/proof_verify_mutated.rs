#![no_main]
//! The offline verifier on mutations of the committed valid bundle: the fuzzer picks a
//! list of structured mutations (fields changed, headers dropped or duplicated, proofs
//! shortened, entries and values replaced, bytes flipped) and the verifier judges the
//! result against the fixed genesis.
//!
//! Some mutations forge: they re-sign and re-certify a header with the merchant's key
//! (in the fixed genesis the merchant is also the quorum of one), after rebuilding its
//! events root or state root around mutated entries or a mutated status value, so that
//! the verifier's later steps see content the earlier ones accept.
//!
//! Property: never panics; without forgery, whatever verifies proves exactly what the
//! unmutated bundle proves; with forgery, what verifies is at least about the bundle's
//! own invoice and chain.

use arbitrary::Arbitrary;
use fapiao_core::block::{AttestationBody, WitnessSignature};
use fapiao_core::state::StateKey;
use fapiao_core::{codec, merkle, smt, Certificate, Entry, Hash32, InvoiceNumber, NetworkId};
use fapiao_fuzz::{code, fixed, fixture, key, MERCHANT};
use fapiao_proof::{verify, Bundle, EntryProof, Verified};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Which {
    Request,
    Issued,
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    Version(u16),
    Network([u8; 32]),
    /// Any 13 bytes as the invoice number, so ill-formed numbers too.
    Number([u8; 13]),
    DropHeader(u8),
    DuplicateHeader(u8),
    SwapHeaders(u8, u8),
    HeaderHeight { at: u8, height: u64 },
    HeaderEventCount { at: u8, count: u32 },
    HeaderTimestamp { at: u8, ms: u64 },
    HeaderChain { at: u8, chain: u32 },
    CertDropSignature(u8),
    CertDuplicateSignature(u8),
    CertWitness { at: u8, witness: u32 },
    CertHeight { at: u8, height: u64 },
    ProofHeader { which: Which, header: u32 },
    ProofIndex { which: Which, index: u64 },
    PathDrop { which: Which, at: u8 },
    PathPush { which: Which, hash: [u8; 32] },
    PathSet { which: Which, at: u8, hash: [u8; 32] },
    SwapEntries,
    /// The entry decoded from these bytes, if they decode.
    Entry { which: Which, bytes: Vec<u8> },
    StatusHeader(u32),
    SiblingDrop(u8),
    SiblingPush([u8; 32]),
    SiblingSet { at: u8, hash: [u8; 32] },
    Leaf(Option<([u8; 32], [u8; 32])>),
    /// The status value decoded from these bytes, if they decode.
    StatusValue(Vec<u8>),
    /// One byte of the canonical encoding flipped (if the result still decodes).
    FlipByte { at: u32, xor: u8 },
    /// Forge: rebuild header `at`'s events root over the request and issued entries
    /// (indexes 0 and 1), point both proofs at it, re-sign and re-certify it.
    ForgeEvents { at: u8 },
    /// Forge: rebuild the status header's state root as a tree of the status value alone,
    /// re-sign and re-certify it.
    ForgeState,
    /// Forge: re-sign and re-certify header `at` as it is now.
    Resign { at: u8 },
    /// Forge: re-sign the request event (with the merchant key) as it is now.
    ResignRequest,
}

fn reference() -> &'static (Bundle, u64, Verified) {
    static R: OnceLock<(Bundle, u64, Verified)> = OnceLock::new();
    R.get_or_init(fixture::bundle)
}

fn pick<T>(v: &mut [T], at: u8) -> Option<&mut T> {
    let n = v.len();
    (n > 0).then(|| &mut v[usize::from(at) % n])
}

fn proof(b: &mut Bundle, which: Which) -> &mut EntryProof {
    match which {
        Which::Request => &mut b.request,
        Which::Issued => &mut b.issued,
    }
}

/// Re-signs header `at` with the merchant key and gives it a fresh certificate of one
/// (the fixed genesis's quorum).
fn resign(b: &mut Bundle, at: usize, network: &NetworkId) {
    let Some(ch) = b.headers.get_mut(at) else { return };
    let merchant = key(1);
    ch.header = ch.header.body.clone().sign(&merchant);
    let body = AttestationBody {
        network: *network,
        chain: ch.header.body.chain,
        epoch: 0,
        height: ch.header.body.height,
        block: ch.header.hash(),
        witness: code(MERCHANT),
    };
    let att = body.sign(&merchant);
    ch.certificate = Certificate {
        network: *network,
        chain: ch.header.body.chain,
        epoch: 0,
        height: ch.header.body.height,
        block: ch.header.hash(),
        signatures: vec![WitnessSignature {
            witness: code(MERCHANT),
            signature: att.signature,
        }],
    };
}

/// Applies `m`; returns whether it forged (signed something with the merchant's key).
fn apply(b: &mut Bundle, m: Mutation, network: &NetworkId) -> bool {
    match m {
        Mutation::Version(v) => b.version = v,
        Mutation::Network(n) => b.network = NetworkId(Hash32(n)),
        Mutation::Number(bytes) => {
            if let Ok(n) = codec::decode::<InvoiceNumber>(&bytes) {
                b.number = n;
            }
        }
        Mutation::DropHeader(at) => {
            if !b.headers.is_empty() {
                let n = b.headers.len();
                b.headers.remove(usize::from(at) % n);
            }
        }
        Mutation::DuplicateHeader(at) => {
            if let Some(h) = pick(&mut b.headers, at).cloned() {
                let i = usize::from(at) % b.headers.len();
                b.headers.insert(i, h);
            }
        }
        Mutation::SwapHeaders(x, y) => {
            let n = b.headers.len();
            if n > 0 {
                b.headers.swap(usize::from(x) % n, usize::from(y) % n);
            }
        }
        Mutation::HeaderHeight { at, height } => {
            if let Some(h) = pick(&mut b.headers, at) {
                h.header.body.height = height;
            }
        }
        Mutation::HeaderEventCount { at, count } => {
            if let Some(h) = pick(&mut b.headers, at) {
                h.header.body.event_count = count;
            }
        }
        Mutation::HeaderTimestamp { at, ms } => {
            if let Some(h) = pick(&mut b.headers, at) {
                h.header.body.timestamp.0 = ms;
            }
        }
        Mutation::HeaderChain { at, chain } => {
            if let (Some(h), Ok(c)) = (pick(&mut b.headers, at), codec::decode(&chain.to_le_bytes())) {
                h.header.body.chain = c;
            }
        }
        Mutation::CertDropSignature(at) => {
            if let Some(h) = pick(&mut b.headers, at) {
                h.certificate.signatures.pop();
            }
        }
        Mutation::CertDuplicateSignature(at) => {
            if let Some(h) = pick(&mut b.headers, at) {
                if let Some(s) = h.certificate.signatures.first().cloned() {
                    h.certificate.signatures.push(s);
                }
            }
        }
        Mutation::CertWitness { at, witness } => {
            if let (Some(h), Ok(w)) = (pick(&mut b.headers, at), codec::decode(&witness.to_le_bytes())) {
                if let Some(s) = h.certificate.signatures.first_mut() {
                    s.witness = w;
                }
            }
        }
        Mutation::CertHeight { at, height } => {
            if let Some(h) = pick(&mut b.headers, at) {
                h.certificate.height = height;
            }
        }
        Mutation::ProofHeader { which, header } => proof(b, which).header = header,
        Mutation::ProofIndex { which, index } => proof(b, which).index = index,
        Mutation::PathDrop { which, at } => {
            let p = proof(b, which);
            if !p.path.is_empty() {
                let n = p.path.len();
                p.path.remove(usize::from(at) % n);
            }
        }
        Mutation::PathPush { which, hash } => proof(b, which).path.push(Hash32(hash)),
        Mutation::PathSet { which, at, hash } => {
            if let Some(h) = pick(&mut proof(b, which).path, at) {
                *h = Hash32(hash);
            }
        }
        Mutation::SwapEntries => std::mem::swap(&mut b.request.entry, &mut b.issued.entry),
        Mutation::Entry { which, bytes } => {
            if let Ok(e) = codec::decode::<Entry>(&bytes) {
                proof(b, which).entry = e;
            }
        }
        Mutation::StatusHeader(h) => b.status.header = h,
        Mutation::SiblingDrop(at) => {
            let s = &mut b.status.proof.siblings;
            if !s.is_empty() {
                let n = s.len();
                s.remove(usize::from(at) % n);
            }
        }
        Mutation::SiblingPush(h) => b.status.proof.siblings.push(Hash32(h)),
        Mutation::SiblingSet { at, hash } => {
            if let Some(h) = pick(&mut b.status.proof.siblings, at) {
                *h = Hash32(hash);
            }
        }
        Mutation::Leaf(l) => b.status.proof.leaf = l.map(|(k, v)| (Hash32(k), Hash32(v))),
        Mutation::StatusValue(bytes) => {
            if let Ok(v) = codec::decode(&bytes) {
                b.status.value = v;
            }
        }
        Mutation::FlipByte { at, xor } => {
            let mut bytes = b.to_bytes();
            let n = bytes.len();
            bytes[at as usize % n] ^= xor;
            if let Ok(again) = Bundle::from_bytes(&bytes) {
                *b = again;
            }
        }
        Mutation::ForgeEvents { at } => {
            let n = b.headers.len();
            if n == 0 {
                return false;
            }
            let at = usize::from(at) % n;
            let leaves = [b.request.entry.leaf_hash(), b.issued.entry.leaf_hash()];
            let paths = [merkle::inclusion_proof(&leaves, 0), merkle::inclusion_proof(&leaves, 1)];
            let [Ok(request_path), Ok(issued_path)] = paths else { return false };
            let h = &mut b.headers[at].header.body;
            h.events_root = merkle::root(&leaves);
            h.event_count = 2;
            for (p, (index, path)) in [(&mut b.request, (0, request_path)), (&mut b.issued, (1, issued_path))] {
                p.header = at as u32;
                p.index = index;
                p.path = path;
            }
            resign(b, at, network);
            return true;
        }
        Mutation::ForgeState => {
            let at = b.status.header as usize;
            let Some(ch) = b.headers.get_mut(at) else { return false };
            // A tree of one record: its leaf is the root, and the proof has no siblings.
            let key_hash = smt::key_hash(&StateKey::Invoice(b.number).to_bytes());
            let value_hash = smt::value_hash(&b.status.value.to_bytes());
            ch.header.body.state_root = smt::leaf_hash(&key_hash, &value_hash);
            b.status.proof = smt::StateProof {
                siblings: vec![],
                leaf: Some((key_hash, value_hash)),
            };
            resign(b, at, network);
            return true;
        }
        Mutation::Resign { at } => {
            let n = b.headers.len();
            if n == 0 {
                return false;
            }
            resign(b, usize::from(at) % n, network);
            return true;
        }
        Mutation::ResignRequest => {
            if let Entry::Event(e) = &mut b.request.entry {
                let merchant = key(1);
                let mut body = e.body.clone();
                body.author = merchant.public();
                *e = body.sign(&merchant);
                return true;
            }
        }
    }
    false
}

fuzz_target!(|mutations: Vec<Mutation>| {
    let (pristine, now_ms, expected) = reference();
    let (genesis, network) = fixed();
    let mut bundle = pristine.clone();
    let mut forged = false;
    for m in mutations.into_iter().take(16) {
        forged |= apply(&mut bundle, m, network);
    }
    let Ok(v) = verify(&bundle, genesis, *now_ms, Some(fixture::MAX_AGE_MS)) else { return };
    if forged {
        assert_eq!(v.issued.number, bundle.number, "verified an issue of another number");
        assert_eq!(v.chain, bundle.number.member(), "verified another chain");
    } else {
        assert_eq!(&v, expected, "a mutated bundle verifies and proves something else");
    }
});
