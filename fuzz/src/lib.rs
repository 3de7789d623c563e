//! What the fuzz targets share: the fixed genesis and its keys, the canonical round-trip
//! property, the HTTP harness over a real engine (`http`), and the valid proof bundle
//! the structured targets start from (`fixture`).
//!
//! Everything here is deterministic except the HTTP harness's engine, which keeps the
//! state of every input it admitted for the life of the fuzzing process.

pub mod fixture;
pub mod http;

use fapiao_core::event::{InvoiceType, MerchantPolicy};
use fapiao_core::genesis::{Member, Role, Roles};
use fapiao_core::{codec, Fen, Genesis, MemberCode, NetworkId, SecretKey, Timestamp};
use serde::{de::DeserializeOwned, Serialize};
use std::sync::OnceLock;

/// The merchant (chain owner, key 1).
pub const MERCHANT: u32 = 110_001;
/// The operator (key 2): fee deposits and policy.
pub const OPERATOR: u32 = 900_001;
/// The verifier (key 3): claims.
pub const VERIFIER: u32 = 800_001;

/// Key `n`: the 32-byte seed `n` repeated, as in FORMAT.md's test vectors.
pub fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

/// The member code `c`, which is a valid six-digit code.
pub fn code(c: u32) -> MemberCode {
    MemberCode::new(c).unwrap_or_else(|| panic!("{c} is a member code"))
}

/// The fixed genesis every stateful target uses: one merchant (key 1), the operator
/// (key 2) and a verifier (key 3), like `fapiao dev`'s network but with fixed keys and
/// time, so the committed proof bundle stays valid against it.
pub fn genesis() -> Genesis {
    let member = |c: u32, name: &str, role: Role, k: u8| Member {
        code: code(c),
        name: name.into(),
        roles: if role == Role::Merchant {
            Roles::of(&[Role::Witness, Role::Merchant])
        } else {
            Roles::of(&[role])
        },
        key: key(k).public(),
        addresses: vec![],
        policy: (role == Role::Merchant).then(|| MerchantPolicy {
            permitted_types: vec![InvoiceType::Normal, InvoiceType::SpecialVat],
            max_invoice_total: Fen::from_fen(100_000_000),
            rates: [0, 100, 300, 500, 600, 900, 1300].map(|bp| fapiao_core::tax::RateRule::always(fapiao_core::TaxRate::Bp(bp))).to_vec(),
        }),
        initial_fee_balance: Fen::from_fen(if role == Role::Merchant { 100_000 } else { 0 }),
        tax_id: None,
    };
    let built = Genesis::new(
        "fapiao-fuzz".into(),
        Timestamp(1_767_225_600_000),
        None,
        Fen::from_fen(10),
        fapiao_core::tax::sample_classifications(),
        vec![
            member(MERCHANT, "Fuzz Merchant", Role::Merchant, 1),
            member(OPERATOR, "Fuzz Operator", Role::Operator, 2),
            member(VERIFIER, "Fuzz Tax Office", Role::Verifier, 3),
        ],
    );
    built.unwrap_or_else(|e| panic!("the fixed genesis is valid: {e}"))
}

/// [`genesis`] and its network id, computed once per process.
pub fn fixed() -> &'static (Genesis, NetworkId) {
    static FIXED: OnceLock<(Genesis, NetworkId)> = OnceLock::new();
    FIXED.get_or_init(|| {
        let g = genesis();
        let n = g.network_id();
        (g, n)
    })
}

/// The epochs of [`genesis`] (epoch 0 only), what headers, attestations, certificates
/// and evidence are checked against.
pub fn epochs() -> &'static fapiao_core::Epochs {
    static EPOCHS: OnceLock<fapiao_core::Epochs> = OnceLock::new();
    EPOCHS.get_or_init(|| fapiao_core::Epochs::new(&fixed().0))
}

/// Decodes `bytes` with the canonical decoder. The property every decoder target checks:
/// whatever decodes re-encodes to exactly the same bytes (one encoding per value,
/// FORMAT.md §1). A failure here means two byte strings for one value: a hash or a
/// signature over one of them would not match the other.
pub fn canonical<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let value: T = codec::decode(bytes).ok()?;
    assert_reencodes(&value, bytes);
    Some(value)
}

/// Asserts that `value` encodes to `bytes`.
pub fn assert_reencodes<T: Serialize>(value: &T, bytes: &[u8]) {
    let again = codec::to_bytes(value);
    assert!(
        again == bytes,
        "{}: {} bytes decoded but re-encode to other bytes ({} bytes)\n input: {}\n again: {}",
        std::any::type_name::<T>(),
        bytes.len(),
        again.len(),
        hex::encode(bytes),
        hex::encode(&again),
    );
}
