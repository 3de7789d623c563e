//! Shared test fixtures, so each test crate builds the same ledger the same way instead
//! of keeping its own copy: fixed keys, the genesis of `docs/FORMAT.md`'s vectors, event
//! builders, and the reader of the vectors the document holds.
//!
//! Architecture invariant: a dev-dependency only; it depends on `fapiao-core` and the pure
//! `fapiao-domain` (for [`world`]), and on `rustix` for [`disk`]'s free space, so every
//! crate's tests can use it, and nothing outside tests ever links it.

pub mod disk;
pub mod world;

use fapiao_core::event::{
    Buyer, InvoiceRequested, InvoiceType, LineItem, MerchantPolicy, PaymentMethod, PaymentRecorded,
};
use fapiao_core::genesis::{Role, Roles};
use fapiao_core::tax::RateRule;
use fapiao_core::{EventKind, Fen, Genesis, Member, MemberCode, Quantity, SecretKey, TaxRate, Timestamp};

/// The key derived from the seed `[n; 32]`: the same key in every test and vector.
pub fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

/// The merchant of the vectors, `110001`.
pub fn vector_chain() -> MemberCode {
    MemberCode::new(110_001).expect("a valid member code")
}

/// The genesis of `docs/FORMAT.md`'s vectors (§5, §11): one merchant `110001` ("Tea")
/// that witnesses, key `key(1)`, normal invoices only, the usual rates in force always.
pub fn vector_genesis() -> Genesis {
    Genesis::new(
        "vectors".into(),
        Timestamp(1_767_225_600_000),
        None,
        Fen::from_fen(10),
        fapiao_core::tax::sample_classifications(),
        vec![Member {
            code: vector_chain(),
            name: "Tea".into(),
            roles: Roles::of(&[Role::Witness, Role::Merchant]),
            key: key(1).public(),
            addresses: vec!["/ip4/127.0.0.1/tcp/7001".into()],
            policy: Some(MerchantPolicy {
                permitted_types: vec![InvoiceType::Normal],
                max_invoice_total: Fen::from_fen(100_000),
                rates: [0, 100, 300, 500, 600, 900, 1300]
                    .map(|bp| RateRule::always(TaxRate::Bp(bp)))
                    .to_vec(),
            }),
            initial_fee_balance: Fen::from_fen(500),
            tax_id: None,
        }],
    )
    .expect("the vector genesis is valid")
}

/// A cash payment of `fen` with no terminal or reference.
pub fn payment(id: &str, fen: i64) -> EventKind {
    EventKind::PaymentRecorded(PaymentRecorded {
        payment_id: id.into(),
        amount: Fen::from_fen(fen),
        currency: fapiao_core::event::Currency::Cny,
        method: PaymentMethod::Cash,
        terminal_id: String::new(),
        external_ref: String::new(),
    })
}

/// One catering line (`3070401000000000000`, 餐饮服务) of one unit at `unit_fen`, taxed
/// at `rate_bp` basis points.
pub fn line(description: &str, unit_fen: i64, rate_bp: u16) -> LineItem {
    LineItem {
        description: description.into(),
        tax_code: "3070401000000000000".into(),
        quantity: Quantity(1000),
        unit_price: Fen::from_fen(unit_fen),
        tax_rate: TaxRate::Bp(rate_bp),
    }
}

/// A normal invoice request for the buyer `buyer` (no tax id) drawing on `payments`.
pub fn invoice_request(id: &str, buyer: &str, lines: Vec<LineItem>, payments: &[&str]) -> EventKind {
    EventKind::InvoiceRequested(InvoiceRequested {
        request_id: id.into(),
        invoice_type: InvoiceType::Normal,
        buyer: Buyer {
            name: buyer.into(),
            tax_id: None,
        },
        lines,
        payment_ids: payments.iter().map(|p| (*p).into()).collect(),
        retry_of: None,
        replaces: None,
    })
}

/// Every vector in `docs/FORMAT.md`, as (name, hex without whitespace), in document
/// order: each is a `<!-- vector: NAME -->` line followed by a ```text block.
///
/// The document is found from the test process's `CARGO_MANIFEST_DIR` at run time (a
/// crate under `crates/`), not from this crate's path at compile time, which could name
/// another clone that shared the build cache.
pub fn format_md_vectors() -> Vec<(String, String)> {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for tests");
    let path = std::path::Path::new(&dir).join("../../docs/FORMAT.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} is readable: {e}", path.display()));
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if let Some(name) = l
            .trim()
            .strip_prefix("<!-- vector: ")
            .and_then(|s| s.strip_suffix(" -->"))
        {
            assert_eq!(
                lines.next().map(str::trim),
                Some("```text"),
                "vector {name}: a ```text block must follow"
            );
            let mut value = String::new();
            for l in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                value.push_str(l.trim());
            }
            out.push((name.to_string(), value));
        }
    }
    out
}

/// The hex of the vector `name` in `docs/FORMAT.md`.
pub fn format_md_vector(name: &str) -> String {
    format_md_vectors()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("docs/FORMAT.md has no vector {name}"))
        .1
}
