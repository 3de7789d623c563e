//! Invoice failures end to end on a real node, through the CLI: each failure is recorded
//! with its reason, and a path leads back to an issued invoice without touching the
//! payment.

mod common;

use common::*;

fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: std::process::Output) -> String {
    assert!(o.status.success(), "{}", out(&o));
    out(&o)
}

fn request(node: &DevNode, id: &str, payment: &str, tax_id: &str, kind: &str) -> String {
    ok(node.cli(&[
        "invoice",
        "request",
        "--id",
        id,
        "--payment",
        payment,
        "--type",
        kind,
        "--buyer-name",
        "Shanghai Trading Co",
        "--buyer-tax-id",
        tax_id,
        "--line",
        "Oolong tea|1|50.00|6",
    ]))
}

/// Wrong buyer details → `invoice retry` with the correction → issued, the history
/// linking both ways.
#[test]
fn wrong_buyer_details_then_a_corrected_retry_is_issued() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    ok(node.cli(&["pay", "--amount", "60.00", "--method", "card", "--id", "P1"]));
    let text = request(&node, "R1", "P1", "91110000600037341M", "normal");
    assert!(text.contains("R1 invoice: FAILED BUYER_TAX_ID_INVALID"), "{text}");
    let text = ok(node.cli(&[
        "invoice",
        "retry",
        "R1",
        "--id",
        "R2",
        "--buyer-tax-id",
        "91110000600037341L",
    ]));
    assert!(
        text.contains("R1 invoice: FAILED") && text.contains("R2 invoice: ISSUED"),
        "{text}"
    );
    // The history reads the same from either end.
    assert!(ok(node.cli(&["invoice", "history", "R1"])).contains("R2 invoice: ISSUED"));
    // Corrected lines can come from a file.
    ok(node.cli(&["pay", "--amount", "30.00", "--method", "card", "--id", "P2"]));
    let text = request(&node, "R3", "P2", "91110000600037341L", "normal");
    assert!(
        text.contains("R3 invoice: FAILED"),
        "50.00 + tax is more than the 30.00 paid: {text}"
    );
    let lines = dir.path().join("lines.txt");
    std::fs::write(&lines, "Oolong tea|1|20.00|6\n").unwrap();
    let text = ok(node.cli(&["invoice", "retry", "R3", "--lines-file", lines.to_str().unwrap()]));
    assert!(text.contains("invoice: ISSUED"), "{text}");
}

/// Type not permitted → the operator's policy event → bulk re-issue of the affected
/// requests.
#[test]
fn a_type_not_permitted_then_an_operator_policy_event_then_bulk_reissue() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    ok(node.cli(&["policy", "set", "--type", "normal", "--max-total", "100000.00"]));
    for i in 1..=3 {
        ok(node.cli(&["pay", "--amount", "60.00", "--method", "card", "--id", &format!("P{i}")]));
        let text = request(
            &node,
            &format!("R{i}"),
            &format!("P{i}"),
            "91110000600037341L",
            "special_vat",
        );
        assert!(text.contains("FAILED INVOICE_TYPE_NOT_PERMITTED"), "{text}");
    }
    let listed = ok(node.cli(&["invoice", "list", "--failed"]));
    assert!(listed.contains("INVOICE_TYPE_NOT_PERMITTED: 3"), "{listed}");
    ok(node.cli(&[
        "policy",
        "set",
        "--type",
        "normal",
        "--type",
        "special_vat",
        "--max-total",
        "100000.00",
    ]));
    let text = ok(node.cli(&[
        "invoice",
        "reissue",
        "--failed",
        "--reason",
        "INVOICE_TYPE_NOT_PERMITTED",
    ]));
    assert!(text.contains("re-issued 3 request(s): 3 issued"), "{text}");
    // Nothing is left open for that reason; the payments were never touched.
    let text = ok(node.cli(&[
        "invoice",
        "reissue",
        "--failed",
        "--reason",
        "INVOICE_TYPE_NOT_PERMITTED",
    ]));
    assert!(text.contains("no open failed request"), "{text}");
}
