//! Invoice failures end to end on a real node, through the CLI: each failure is recorded
//! with its reason, and a path leads back to an issued invoice without touching the
//! payment.

mod common;

use common::*;

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

/// The invoice number after `ISSUED` in a request's output.
fn issued_number(text: &str) -> String {
    text.split_whitespace()
        .skip_while(|w| *w != "ISSUED")
        .nth(1)
        .unwrap_or_else(|| panic!("no issued invoice in: {text}"))
        .to_string()
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

/// A payment entered wrongly can be reversed only after its invoice is red-letter
/// reversed; a refund after invoicing shows as needing a red letter; reconciliation
/// balances after all of it.
#[test]
fn a_wrong_payment_is_reversed_after_its_red_letter_and_reconciliation_balances() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    ok(node.cli(&["pay", "--amount", "60.00", "--method", "card", "--id", "P1"]));
    let text = request(&node, "R1", "P1", "91110000600037341L", "normal");
    let number = issued_number(&text);
    let o = node.cli(&["reverse", "--payment", "P1", "--reason", "entered twice"]);
    assert!(
        !o.status.success() && out(&o).contains("PAYMENT_INVOICED"),
        "{}",
        out(&o)
    );
    ok(node.cli(&["invoice", "red-letter", &number, "--reason", "issue_error"]));
    ok(node.cli(&["reverse", "--payment", "P1", "--reason", "entered twice"]));

    ok(node.cli(&["pay", "--amount", "100.00", "--method", "wechat", "--id", "P2"]));
    let text = request(&node, "R2", "P2", "91110000600037341L", "normal");
    let number2 = issued_number(&text);
    ok(node.cli(&["refund", "--payment", "P2", "--amount", "80.00", "--id", "RF1"]));
    ok(node.cli(&["pay", "--amount", "10.00", "--method", "cash", "--id", "P3"]));

    // Today in UTC+8, and the day before (a block near midnight may fall on either).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let today = fapiao_engine::format_day(fapiao_engine::business_day(now));
    let yesterday = fapiao_engine::format_day(fapiao_engine::business_day(now) - 1);
    let o = node.cli(&["reconcile", "--from", &yesterday, "--to", &today, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", out(&o)));
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(v["balanced"], true, "{v}");
    let t = &v["total"];
    assert_eq!(t["paid_fen"], 11_000, "{v}");
    assert_eq!(t["refunded_fen"], 8_000);
    assert_eq!(t["invoiced_fen"], 5_300);
    assert_eq!(t["reversed_fen"], 0);
    assert_eq!(t["not_invoiced_fen"], 1_000);
    assert_eq!(t["voided_fen"], 6_000);
    assert_eq!(v["uninvoiced"], serde_json::json!([["P3", 1000]]));
    assert_eq!(v["needs_red_letter"], serde_json::json!([["P2", number2]]));
    let table = ok(node.cli(&["reconcile", "--from", &yesterday, "--to", &today]));
    assert!(
        table.contains("balanced") && table.contains("needs red-letter: invoice"),
        "{table}"
    );
    let csv = ok(node.cli(&["reconcile", "--from", &yesterday, "--to", &today, "--format", "csv"]));
    assert!(
        csv.starts_with("day,method,payments,paid,refunded,invoiced,reversed,not_invoiced,voided"),
        "{csv}"
    );
    // After the red letter the payment's invoice is reversed: it no longer needs one.
    ok(node.cli(&["invoice", "red-letter", &number2, "--reason", "sales_return"]));
    let o = node.cli(&["reconcile", "--from", &yesterday, "--to", &today, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["balanced"], true, "{v}");
    assert_eq!(v["needs_red_letter"], serde_json::json!([]), "{v}");
    assert_eq!(v["total"]["reversed_fen"], 5_300);
}
