//! ed25519 keys and the one signature validity rule.
//!
//! # The rule (documented in `docs/FORMAT.md`, "Signatures")
//!
//! A signature `(R, S)` by public key `A` on message `M` is valid iff
//! 1. `A` and `R` are canonical encodings of curve points (decompressing and
//!    recompressing gives the same 32 bytes),
//! 2. neither `A` nor `R` is of small order (order dividing 8),
//! 3. `S` is a canonical scalar (`S < L`),
//! 4. the **cofactored** equation holds: `[8]([S]B - R - [k]A) = 0`, with
//!    `k = SHA-512(R || A || M) mod L`.
//!
//! Signatures made by any standard ed25519 signer satisfy this rule. The cofactored
//! equation is what makes batch verification exact: a random linear combination of
//! cofactored equations is zero (except with probability about 2^-128) iff every one of
//! them is, so [`verify_batch`] accepts precisely what [`verify`] accepts. (A
//! cofactorless single check with a batch check would disagree on points with a torsion
//! component, which an attacker can construct.)
//!
//! Every message signed in the ledger is a 32-byte domain-separated digest (an event
//! id, a header hash, an attestation digest), never raw bytes, so a signature for one
//! type can never be replayed as another.

use crate::hash::Hash32;
use curve25519_dalek::{
    constants::ED25519_BASEPOINT_POINT,
    edwards::{CompressedEdwardsY, EdwardsPoint},
    scalar::Scalar,
    traits::{IsIdentity, VartimeMultiscalarMul},
};
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha512};
use std::collections::HashMap;
use std::fmt;

/// An ed25519 public key: 32 bytes, as they appear on the wire. Validity is checked by
/// [`PublicKey::check`] and by every verification.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits and checks the key against the validity rule.
    pub fn from_hex(s: &str) -> Result<Self, SigError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| SigError::KeyEncoding)?;
        let key = PublicKey(out);
        key.check()?;
        Ok(key)
    }

    /// Checks that this is a canonical encoding of a point that is not of small order.
    pub fn check(&self) -> Result<(), SigError> {
        decode_point(&self.0, SigError::KeyEncoding, SigError::KeySmallOrder).map(|_| ())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An ed25519 signature: `R` (32 bytes) then `S` (32 bytes), 64 bytes on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature {
    /// The commitment point `R`.
    pub r: [u8; 32],
    /// The scalar `S`, little-endian.
    pub s: [u8; 32],
}

impl Signature {
    /// The 64 bytes `R || S`.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }

    /// From the 64 bytes `R || S` (no validity check; see [`verify`]).
    pub fn from_bytes(bytes: &[u8; 64]) -> Self {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        Signature { r, s }
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.to_bytes()))
    }
}

/// Why a key or signature is not valid under the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// The public key is not a canonical point encoding.
    #[error("public key is not a canonical ed25519 point encoding")]
    KeyEncoding,
    /// The public key is of small order (a weak key).
    #[error("public key is of small order")]
    KeySmallOrder,
    /// `R` is not a canonical point encoding.
    #[error("signature R is not a canonical point encoding")]
    REncoding,
    /// `R` is of small order.
    #[error("signature R is of small order")]
    RSmallOrder,
    /// `S` is not below the group order.
    #[error("signature S is not a canonical scalar")]
    SNonCanonical,
    /// The verification equation does not hold.
    #[error("signature does not verify")]
    Equation,
}

/// A secret signing key. Never serialised except through [`crate::keyfile`].
pub struct SecretKey(ed25519_dalek::SigningKey);

impl SecretKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        Self::from_seed(&seed)
    }

    /// The key whose 32-byte seed is `seed` (RFC 8032 secret key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SecretKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs a 32-byte digest.
    pub fn sign(&self, digest: &Hash32) -> Signature {
        Signature::from_bytes(&self.0.sign(digest.as_bytes()).to_bytes())
    }
}

impl Clone for SecretKey {
    fn clone(&self) -> Self {
        SecretKey::from_seed(&self.seed())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public())
    }
}

fn decode_point(bytes: &[u8; 32], encoding: SigError, small: SigError) -> Result<EdwardsPoint, SigError> {
    let compressed = CompressedEdwardsY(*bytes);
    let point = compressed.decompress().ok_or(encoding)?;
    if point.compress().as_bytes() != bytes {
        return Err(encoding);
    }
    if point.is_small_order() {
        return Err(small);
    }
    Ok(point)
}

/// The checked parts of one signature, ready for the equation.
struct Prepared {
    a: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// The checked parts of a signature that do not depend on decoding the key: `R`, `S`
/// and `k`.
struct SigParts {
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

fn prepare(key: &PublicKey, message: &[u8], sig: &Signature) -> Result<Prepared, SigError> {
    let a = decode_point(&key.0, SigError::KeyEncoding, SigError::KeySmallOrder)?;
    let SigParts { r, s, k } = sig_parts(key, message, sig)?;
    Ok(Prepared { a, r, s, k })
}

fn sig_parts(key: &PublicKey, message: &[u8], sig: &Signature) -> Result<SigParts, SigError> {
    let r = decode_point(&sig.r, SigError::REncoding, SigError::RSmallOrder)?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(sig.s)).ok_or(SigError::SNonCanonical)?;
    let mut h = Sha512::new();
    h.update(sig.r);
    h.update(key.0);
    h.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    Ok(SigParts { r, s, k })
}

/// Verifies one signature on a digest under the rule in the module documentation.
pub fn verify(key: &PublicKey, digest: &Hash32, sig: &Signature) -> Result<(), SigError> {
    verify_message(key, digest.as_bytes(), sig)
}

/// Verifies one signature on arbitrary message bytes (used for RFC 8032 test vectors;
/// ledger messages are always digests, see [`verify`]).
pub fn verify_message(key: &PublicKey, message: &[u8], sig: &Signature) -> Result<(), SigError> {
    let p = prepare(key, message, sig)?;
    // [S]B - [k]A - R, times the cofactor.
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &(-p.a), &p.s);
    if (sb_minus_ka - p.r).mul_by_cofactor().is_identity() {
        Ok(())
    } else {
        Err(SigError::Equation)
    }
}

/// The batch size admission, witnesses and replay use: large enough that batching pays
/// (about twice single verification), small enough that one bad signature costs only a
/// short re-check, and that batches spread over every core.
pub const BATCH_ITEMS: usize = 64;

/// Where [`verify_batches`] runs its batches. The crate starts no threads of its own:
/// the caller (a node, replay) chooses; a library that must stay single-threaded (the
/// simulator, the offline verifier) uses [`Cores::One`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cores {
    /// One batch after the other on the calling thread.
    One,
    /// The batches spread over every core (rayon's global pool).
    #[cfg(feature = "parallel")]
    All,
}

/// Verifies `items` in batches of [`BATCH_ITEMS`] and names every invalid signature by
/// its index in `items`, in index order (the same answer on one core or on all). The
/// one batching rule of admission, witnesses' re-execution and replay.
pub fn verify_batches(items: &[BatchItem<'_>], cores: Cores) -> Vec<(usize, SigError)> {
    let one = |(k, batch): (usize, &[BatchItem<'_>])| match verify_batch(batch) {
        Ok(()) => Vec::new(),
        Err(e) => e.bad.into_iter().map(|(i, err)| (k * BATCH_ITEMS + i, err)).collect(),
    };
    let in_turn = || items.chunks(BATCH_ITEMS).enumerate().flat_map(one).collect();
    match cores {
        Cores::One => in_turn(),
        // One batch gains nothing from the pool.
        #[cfg(feature = "parallel")]
        Cores::All if items.len() <= BATCH_ITEMS => in_turn(),
        #[cfg(feature = "parallel")]
        Cores::All => {
            use rayon::prelude::*;
            items.par_chunks(BATCH_ITEMS).enumerate().flat_map_iter(one).collect()
        }
    }
}

/// One item of a batch: key, signed digest, signature.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The signer's public key.
    pub key: &'a PublicKey,
    /// The signed digest.
    pub digest: &'a Hash32,
    /// The signature.
    pub signature: &'a Signature,
}

/// A batch that did not verify, naming every invalid signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} of the batch's signatures are invalid (first at index {})", bad.len(), bad.first().map(|b| b.0).unwrap_or(0))]
pub struct BatchError {
    /// Index in the batch and reason, for every invalid signature, in index order.
    pub bad: Vec<(usize, SigError)>,
}

/// Verifies many signatures at once: about twice as fast as one by one for batches of
/// tens of signatures. Accepts exactly what [`verify`] accepts (see the module
/// documentation); when the batch fails it verifies each item singly to name the bad
/// ones.
///
/// The work is batched by signer: each distinct key is decoded and checked once, and
/// contributes one point to the sum, with the coefficients of all its signatures added
/// up (`sum_i [z_i k_i]A = [sum_i z_i k_i]A`). A batch from one POS terminal's key costs
/// one key decoding and `n + 2` points instead of `n` decodings and `2n + 1` points.
pub fn verify_batch(items: &[BatchItem<'_>]) -> Result<(), BatchError> {
    if items.is_empty() {
        return Ok(());
    }
    // Each distinct key once: its point, and the sum of its signatures' coefficients.
    let mut signers: Vec<(EdwardsPoint, Scalar)> = Vec::new();
    let mut signer_of: HashMap<[u8; 32], usize> = HashMap::new();
    let mut parts = Vec::with_capacity(items.len());
    for it in items {
        let signer = match signer_of.get(&it.key.0) {
            Some(i) => *i,
            None => {
                // A key that fails its checks fails every signature it made: name them.
                let Ok(a) = decode_point(&it.key.0, SigError::KeyEncoding, SigError::KeySmallOrder) else {
                    return Err(name_bad(items));
                };
                signers.push((a, Scalar::ZERO));
                signer_of.insert(it.key.0, signers.len() - 1);
                signers.len() - 1
            }
        };
        match sig_parts(it.key, it.digest.as_bytes(), it.signature) {
            Ok(p) => parts.push((signer, p)),
            Err(_) => return Err(name_bad(items)),
        }
    }
    // Random coefficients z_i, derived from the whole batch so they cannot be chosen by
    // any one signer (Fiat-Shamir); 128 bits each.
    let mut seed = Sha512::new();
    seed.update(b"fapiao/v1/batch-verify\0");
    for it in items {
        seed.update(it.key.0);
        seed.update(it.digest.as_bytes());
        seed.update(it.signature.to_bytes());
    }
    let seed = seed.finalize();
    let zs: Vec<Scalar> = (0..items.len() as u64)
        .map(|i| {
            let mut h = Sha512::new();
            h.update(seed);
            h.update(i.to_le_bytes());
            let wide = h.finalize();
            let mut z = [0u8; 32];
            z[..16].copy_from_slice(&wide[..16]);
            Scalar::from_bytes_mod_order(z)
        })
        .collect();
    // sum z_i ([S_i]B - R_i - [k_i]A_i)
    //   = [sum z_i S_i]B - sum [z_i]R_i - sum over signers j of [sum_{i by j} z_i k_i]A_j
    let mut b_coeff = Scalar::ZERO;
    for ((signer, p), z) in parts.iter().zip(&zs) {
        b_coeff += z * p.s;
        signers[*signer].1 -= z * p.k;
    }
    let scalars = std::iter::once(b_coeff)
        .chain(zs.iter().map(|z| -z))
        .chain(signers.iter().map(|(_, c)| *c));
    let points = std::iter::once(ED25519_BASEPOINT_POINT)
        .chain(parts.iter().map(|(_, p)| p.r))
        .chain(signers.iter().map(|(a, _)| *a));
    let sum = EdwardsPoint::vartime_multiscalar_mul(scalars, points);
    if sum.mul_by_cofactor().is_identity() {
        Ok(())
    } else {
        Err(name_bad(items))
    }
}

fn name_bad(items: &[BatchItem<'_>]) -> BatchError {
    let bad = items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| verify(it.key, it.digest, it.signature).err().map(|e| (i, e)))
        .collect();
    BatchError { bad }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{hash, Domain};

    fn digest(n: u8) -> Hash32 {
        hash(Domain::EventBody, &[n])
    }

    #[test]
    fn sign_and_verify() {
        let sk = SecretKey::from_seed(&[7; 32]);
        let d = digest(1);
        let sig = sk.sign(&d);
        assert_eq!(verify(&sk.public(), &d, &sig), Ok(()));
        assert_eq!(verify(&sk.public(), &digest(2), &sig), Err(SigError::Equation));
        let other = SecretKey::from_seed(&[8; 32]).public();
        assert_eq!(verify(&other, &d, &sig), Err(SigError::Equation));
    }

    /// RFC 8032 section 7.1, test 2 (one-byte message 0x72).
    #[test]
    fn rfc8032_vector() {
        let seed: [u8; 32] = hex::decode("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
            .unwrap()
            .try_into()
            .unwrap();
        let sk = SecretKey::from_seed(&seed);
        assert_eq!(
            sk.public().to_hex(),
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
        );
        let sig: [u8; 64] = hex::decode(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        )
        .unwrap()
        .try_into()
        .unwrap();
        assert_eq!(
            verify_message(&sk.public(), &[0x72], &Signature::from_bytes(&sig)),
            Ok(())
        );
    }

    /// The eight small-order points, in their canonical encodings.
    pub(crate) fn small_order_encodings() -> Vec<[u8; 32]> {
        use curve25519_dalek::constants::EIGHT_TORSION;
        EIGHT_TORSION.iter().map(|p| p.compress().to_bytes()).collect()
    }

    #[test]
    fn small_order_public_keys_are_rejected() {
        let sk = SecretKey::from_seed(&[3; 32]);
        let d = digest(9);
        for enc in small_order_encodings() {
            let key = PublicKey(enc);
            assert_eq!(key.check(), Err(SigError::KeySmallOrder));
            assert_eq!(verify(&key, &d, &sk.sign(&d)), Err(SigError::KeySmallOrder));
        }
        // The classic forgery against weak keys: identity key, identity R, S = 0
        // satisfies the equation for every message, and must still be rejected.
        let identity = PublicKey(small_order_encodings()[0]);
        let forged = Signature {
            r: identity.0,
            s: [0; 32],
        };
        assert_eq!(verify(&identity, &d, &forged), Err(SigError::KeySmallOrder));
    }

    #[test]
    fn small_order_r_is_rejected() {
        let sk = SecretKey::from_seed(&[3; 32]);
        let d = digest(9);
        let mut sig = sk.sign(&d);
        sig.r = small_order_encodings()[1];
        assert_eq!(verify(&sk.public(), &d, &sig), Err(SigError::RSmallOrder));
    }

    #[test]
    fn non_canonical_s_is_rejected() {
        // S + L verifies under a permissive rule (same value mod L); strict rejects it.
        let sk = SecretKey::from_seed(&[5; 32]);
        let d = digest(4);
        let sig = sk.sign(&d);
        let s = Scalar::from_canonical_bytes(sig.s).unwrap();
        // L = 2^252 + 27742317777372353535851937790883648493, little-endian.
        let l_bytes: [u8; 32] = hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
            .unwrap()
            .try_into()
            .unwrap();
        // s + L as a 256-bit integer (fits: L < 2^253).
        let mut sum = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = s.to_bytes()[i] as u16 + l_bytes[i] as u16 + carry;
            sum[i] = v as u8;
            carry = v >> 8;
        }
        let bad = Signature { r: sig.r, s: sum };
        assert_eq!(verify(&sk.public(), &d, &bad), Err(SigError::SNonCanonical));
    }

    #[test]
    fn non_canonical_point_encodings_are_rejected() {
        // y = p + 1 encodes the same point as y = 1 (a small-order point) non-canonically;
        // y = 2^255 - 19 + 2 likewise aliases y = 2. Build "p + y" for a valid key's y.
        let sk = SecretKey::from_seed(&[11; 32]);
        let mut bytes = sk.public().0;
        // Setting the sign bit on a point with x = 0 is non-canonical ("negative zero").
        let mut neg_zero = small_order_encodings()[0];
        neg_zero[31] |= 0x80;
        assert!(matches!(
            PublicKey(neg_zero).check(),
            Err(SigError::KeyEncoding) | Err(SigError::KeySmallOrder)
        ));
        // Values of y at or above p are non-canonical: p = 2^255 - 19.
        let mut y_p = [0xffu8; 32];
        y_p[0] = 0xed;
        y_p[31] = 0x7f;
        assert!(PublicKey(y_p).check().is_err());
        // Flipping a bit of a valid key gives either a non-point or another point; both fail
        // to verify the original signature.
        bytes[0] ^= 1;
        let d = digest(0);
        assert!(verify(&PublicKey(bytes), &d, &sk.sign(&d)).is_err());
    }

    #[test]
    fn batch_accepts_valid_and_names_every_bad_signature() {
        let keys: Vec<SecretKey> = (0..64u8).map(|i| SecretKey::from_seed(&[i; 32])).collect();
        let pubs: Vec<PublicKey> = keys.iter().map(|k| k.public()).collect();
        let digests: Vec<Hash32> = (0..64u8).map(digest).collect();
        let mut sigs: Vec<Signature> = keys.iter().zip(&digests).map(|(k, d)| k.sign(d)).collect();
        let items = |sigs: &[Signature]| -> Vec<(usize, Signature)> { sigs.iter().copied().enumerate().collect() };
        let run = |sigs: &[Signature]| {
            let batch: Vec<BatchItem<'_>> = items(sigs)
                .into_iter()
                .map(|(i, _)| BatchItem {
                    key: &pubs[i],
                    digest: &digests[i],
                    signature: &sigs[i],
                })
                .collect();
            verify_batch(&batch)
        };
        assert_eq!(run(&sigs), Ok(()));
        sigs[17] = keys[17].sign(&digest(200));
        sigs[40].s[0] ^= 1;
        let err = run(&sigs).unwrap_err();
        let idx: Vec<usize> = err.bad.iter().map(|b| b.0).collect();
        assert_eq!(idx, vec![17, 40]);
    }

    /// Batches where keys repeat (one POS terminal, or a few) accept and refuse exactly
    /// what single verification does, and name the same bad signatures.
    #[test]
    fn a_batch_by_few_signers_agrees_with_single_verification() {
        let keys: Vec<SecretKey> = (1..=3u8).map(|i| SecretKey::from_seed(&[i; 32])).collect();
        let other = SecretKey::from_seed(&[9; 32]);
        for signers in 1..=3usize {
            let pubs: Vec<PublicKey> = (0..64).map(|i| keys[i % signers].public()).collect();
            let digests: Vec<Hash32> = (0..64u8).map(digest).collect();
            let good: Vec<Signature> = (0..64).map(|i| keys[i % signers].sign(&digests[i])).collect();
            let run = |sigs: &[Signature], pubs: &[PublicKey]| {
                let batch: Vec<BatchItem<'_>> = (0..64)
                    .map(|i| BatchItem {
                        key: &pubs[i],
                        digest: &digests[i],
                        signature: &sigs[i],
                    })
                    .collect();
                verify_batch(&batch)
            };
            assert_eq!(run(&good, &pubs), Ok(()), "{signers} signers");
            // A signature over another digest, one by another key, one with a bad scalar,
            // and a torsion-free swap of two signatures by the same key.
            let mut bad = good.clone();
            bad[5] = keys[5 % signers].sign(&digest(250));
            bad[30] = other.sign(&digests[30]);
            bad[41].s[3] ^= 4;
            bad.swap(60, 60 - signers);
            let err = run(&bad, &pubs).unwrap_err();
            let named: Vec<usize> = err.bad.iter().map(|b| b.0).collect();
            let single: Vec<usize> = (0..64)
                .filter(|&i| verify(&pubs[i], &digests[i], &bad[i]).is_err())
                .collect();
            assert_eq!(named, single, "{signers} signers");
            assert_eq!(named, vec![5, 30, 41, 60 - signers, 60], "{signers} signers");
            // A batch whose shared key is not a valid point fails on every item it signed.
            let mut broken = pubs.clone();
            for p in broken.iter_mut().step_by(signers) {
                *p = PublicKey(small_order_encodings()[1]);
            }
            let err = run(&good, &broken).unwrap_err();
            assert_eq!(err.bad.len(), 64usize.div_ceil(signers), "{signers} signers");
        }
    }

    /// Many batches name their bad signatures by index in the whole list, in order, and
    /// the same ones on one core or on all.
    #[test]
    fn batches_name_bad_signatures_by_their_index_in_the_whole_list() {
        let key = SecretKey::from_seed(&[4; 32]);
        let n = 3 * BATCH_ITEMS + 5;
        let pk = key.public();
        let digests: Vec<Hash32> = (0..n).map(|i| digest(i as u8)).collect();
        let mut sigs: Vec<Signature> = digests.iter().map(|d| key.sign(d)).collect();
        let bad_at = [0, BATCH_ITEMS - 1, BATCH_ITEMS, 2 * BATCH_ITEMS + 7, n - 1];
        for &i in &bad_at {
            sigs[i].s[0] ^= 1;
        }
        let items: Vec<BatchItem<'_>> = (0..n)
            .map(|i| BatchItem {
                key: &pk,
                digest: &digests[i],
                signature: &sigs[i],
            })
            .collect();
        let named = |cores| {
            verify_batches(&items, cores)
                .into_iter()
                .map(|b| b.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(named(Cores::One), bad_at);
        #[cfg(feature = "parallel")]
        assert_eq!(named(Cores::All), bad_at);
        assert!(verify_batches(&items[1..BATCH_ITEMS - 1], Cores::One).is_empty());
    }

    #[test]
    fn batch_rejects_a_torsion_tweaked_signature_that_single_rejects() {
        // Add a small-order point T to R: R' = R + T. The cofactorless equation fails,
        // the cofactored one holds, so the single rule accepts (R' is not small order)...
        // The rule is cofactored, so both must agree, whatever they decide.
        use curve25519_dalek::constants::EIGHT_TORSION;
        let sk = SecretKey::from_seed(&[21; 32]);
        let d = digest(21);
        let sig = sk.sign(&d);
        let r = CompressedEdwardsY(sig.r).decompress().unwrap();
        let tweaked = Signature {
            r: (r + EIGHT_TORSION[1]).compress().to_bytes(),
            s: sig.s,
        };
        let single = verify(&sk.public(), &d, &tweaked);
        let pk = sk.public();
        let batch = verify_batch(&[BatchItem {
            key: &pk,
            digest: &d,
            signature: &tweaked,
        }]);
        assert_eq!(single.is_ok(), batch.is_ok());
    }
}
