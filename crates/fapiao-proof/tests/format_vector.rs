//! The whole-bundle vector of `docs/FORMAT.md` §11 (`bundle`), built here from fixed
//! seeds, checked with [`fapiao_proof::verify`] as a verifier would, and compared with
//! the document. The other vectors are checked in `fapiao-core`'s `format_vectors` test;
//! this one needs the bundle's own types.
//!
//! To print it after a deliberate format change:
//! `FAPIAO_PRINT_VECTORS=1 cargo test -p fapiao-proof --test format_vector -- --nocapture`

use fapiao_core::block::{AttestationBody, WitnessSignature};
use fapiao_core::codec::to_bytes;
use fapiao_core::event::*;
use fapiao_core::hash::{hash, Domain};
use fapiao_core::smt::{self, MemNodes};
use fapiao_core::state::{tree_update, BlueInvoice, InvoiceRecord, RateAmounts, StateKey, StateValue};
use fapiao_core::*;
use fapiao_proof::{Bundle, CertifiedHeader, EntryProof, StatusProof, BUNDLE_VERSION};
use fapiao_testkit::{format_md_vector as documented, key, vector_genesis as genesis};

/// The §11 block (payment, request, issued invoice) with a real state root: the tree
/// holding the blue invoice as issued. Certified by the one witness; the status is
/// proven against the same header.
fn bundle() -> (Bundle, Genesis) {
    let g = genesis();
    let net = g.network_id();
    let chain = MemberCode::new(110_001).unwrap();
    let body = |ms: u64, kind| EventBody {
        network: net,
        chain,
        author: key(1).public(),
        timestamp: Timestamp(1_767_225_600_000 + ms),
        kind,
    };
    let tea = LineItem {
        description: "Tea".into(),
        tax_code: "3070401000000000000".into(),
        quantity: Quantity(1000),
        unit_price: Fen::from_fen(5000),
        tax_rate: TaxRate::Bp(600),
    };
    let buyer = Buyer {
        name: "B".into(),
        tax_id: Some("91110000600037341L".into()),
    };
    let pay = body(
        1000,
        EventKind::PaymentRecorded(PaymentRecorded {
            payment_id: "P1".into(),
            amount: Fen::from_fen(5300),
            currency: Currency::Cny,
            method: PaymentMethod::Wechat,
            terminal_id: "T".into(),
            external_ref: "".into(),
        }),
    );
    let req = body(
        2000,
        EventKind::InvoiceRequested(InvoiceRequested {
            request_id: "R1".into(),
            invoice_type: InvoiceType::Normal,
            buyer: buyer.clone(),
            lines: vec![tea.clone()],
            payment_ids: vec!["P1".into()],
            retry_of: None,
            replaces: None,
        }),
    );
    let number = InvoiceNumber::new(26, chain, 1).unwrap();
    let check = CheckCode::from_digest(&hash(Domain::CheckCode, &to_bytes(&(net, number, req.id()))));
    let allocation = Allocation {
        payment_id: "P1".into(),
        amount: Fen::from_fen(5300),
    };
    let issued = InvoiceIssued {
        request_id: "R1".into(),
        number,
        check_code: check,
        invoice_type: InvoiceType::Normal,
        buyer,
        lines: vec![IssuedLine {
            item: tea,
            short_name: "餐饮服务".into(),
            net: Fen::from_fen(5000),
            tax: Fen::from_fen(300),
        }],
        net: Fen::from_fen(5000),
        tax: Fen::from_fen(300),
        total: Fen::from_fen(5300),
        fee: Fen::from_fen(10),
        allocations: vec![allocation.clone()],
        issued_at: Timestamp(1_767_225_603_000),
        replaces: None,
    };
    let cause = req.id();
    let entries = vec![
        Entry::Event(pay.sign(&key(1))),
        Entry::Event(req.sign(&key(1))),
        Entry::Derived(Derived {
            cause,
            kind: DerivedKind::InvoiceIssued(issued.clone()),
        }),
    ];
    let record = StateValue::Invoice(InvoiceRecord::Blue(BlueInvoice {
        issued,
        remaining: vec![RateAmounts {
            rate: TaxRate::Bp(600),
            net: Fen::from_fen(5000),
            tax: Fen::from_fen(300),
        }],
        standing: vec![allocation],
        red_letters: vec![],
        claim: None,
        replaced_by: None,
        booking: None,
        forms: vec![],
    }));
    let writes = [(StateKey::Invoice(number), record.clone())].into_iter().collect();
    let mut nodes = MemNodes(Default::default());
    let (changes, state_root) = tree_update(&nodes, &writes).unwrap();
    nodes.apply(changes);
    let header = HeaderBody {
        network: net,
        chain,
        epoch: 0,
        height: 1,
        parent: BlockHash(Hash32::ZERO),
        timestamp: Timestamp(1_767_225_603_000),
        events_root: block::entries_root(&entries),
        event_count: 3,
        state_root,
    }
    .sign(&key(1));
    let attestation = AttestationBody {
        network: net,
        chain,
        epoch: 0,
        height: 1,
        block: header.hash(),
        witness: chain,
    }
    .sign(&key(1));
    let certificate = Certificate {
        network: net,
        chain,
        epoch: 0,
        height: 1,
        block: header.hash(),
        signatures: vec![WitnessSignature {
            witness: chain,
            signature: attestation.signature,
        }],
    };
    let leaves: Vec<Hash32> = entries.iter().map(Entry::leaf_hash).collect();
    let entry = |index: usize| EntryProof {
        header: 0,
        index: index as u64,
        entry: entries[index].clone(),
        path: merkle::inclusion_proof(&leaves, index).unwrap(),
    };
    let status = StatusProof {
        header: 0,
        value: record,
        proof: smt::prove(&nodes, &smt::key_hash(&StateKey::Invoice(number).to_bytes())).unwrap(),
    };
    let bundle = Bundle {
        version: BUNDLE_VERSION,
        network: net,
        configuration: Vec::new(),
        number,
        headers: vec![CertifiedHeader { header, certificate }],
        request: entry(1),
        issued: entry(2),
        status,
    };
    (bundle, g)
}

#[test]
fn the_documented_bundle_is_valid_and_matches_the_code() {
    let (bundle, g) = bundle();
    let v = fapiao_proof::verify(&bundle, &g, 1_767_225_604_000, None).unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(v.status, fapiao_proof::Status::Issued);
    assert_eq!((v.claim.clone(), v.booking, v.forms.len()), (None, None, 0));
    let hex = hex::encode(bundle.to_bytes());
    if std::env::var_os("FAPIAO_PRINT_VECTORS").is_some() {
        println!("<!-- vector: bundle -->\n```text");
        for chunk in hex.as_bytes().chunks(64) {
            println!("{}", std::str::from_utf8(chunk).unwrap());
        }
        println!("```");
    }
    assert_eq!(
        documented("bundle"),
        hex,
        "docs/FORMAT.md vector bundle differs from the code"
    );
    let decoded = Bundle::from_bytes(&hex::decode(documented("bundle")).unwrap()).unwrap();
    assert_eq!(decoded, bundle, "the documented bytes decode to the same bundle");
}
