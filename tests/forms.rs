//! Red-letter confirmation forms and the reimbursement lifecycle on a real node, through
//! the CLI as the seller's finance staff, the buyer (the dev buyer member, whose tax id
//! the invoices carry) and the tax office's verifier key would use it, each state then
//! checked offline in a proof bundle with `fapiao verify`.

mod common;

use common::*;

const HOUR_MS: u64 = 3600 * 1000;

/// Runs the CLI and asserts it failed (a refusal exits 1); its output.
fn refused(o: std::process::Output) -> String {
    assert!(!o.status.success(), "expected a refusal: {}", out(&o));
    out(&o)
}

/// Fetches `number`'s bundle and verifies it offline; the verifier's report.
fn verified(node: &DevNode, dir: &std::path::Path, number: &str, code: &str) -> String {
    let file = dir.join(format!("{number}.bundle"));
    ok(get_bundle(node, number, code, &file));
    ok(verify(node, &file, &[]))
}

#[test]
fn red_letter_forms_between_seller_and_buyer() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(&dir.path().join("n"), free_port());

    // The buyer has not booked or claimed it: the seller's form issues the red invoice.
    let (a, _) = issue(&node, "A");
    let text = ok(node.cli(&["redform", "start", &a, "--reason", "02", "--id", "RL-A"]));
    assert!(text.contains("RL-A red_letter: REVERSED"), "{text}");
    let text = ok(node.cli(&["invoice", "show", &a]));
    assert!(
        text.contains("Red-letter form 1 by the seller: no_confirmation_needed"),
        "{text}"
    );

    // Booked by the buyer: the seller's form waits; only the buyer can confirm it.
    let (b, b_code) = issue(&node, "B");
    let text = ok(node.cli(&["claim", "book", &b, "--status", "02"]));
    assert!(text.contains("BOOKED") && text.contains("02 booked_deducted"), "{text}");
    let text = ok(node.cli(&["redform", "start", &b, "--reason", "01", "--id", "RL-B"]));
    assert!(
        text.contains("RL-B red_letter: AWAITING_CONFIRMATION by the buyer"),
        "{text}"
    );
    let text = refused(node.cli(&["redform", "confirm", &b, "1"]));
    assert!(
        text.contains("REFUSED: the form waits for (or was started by) the other side"),
        "{text}"
    );
    let text = ok(node.cli(&["redform", "confirm", &b, "1", "--as", "buyer"]));
    assert!(
        text.contains(&format!("FORM {b}/1: CONFIRMED")) && text.contains("RED INVOICE"),
        "{text}"
    );
    let text = ok(node.cli(&["invoice", "history", "RL-B"]));
    assert!(text.contains("RL-B red_letter: REVERSED"), "{text}");
    let report = verified(&node, dir.path(), &b, &b_code);
    assert!(report.contains("booking   02 booked_deducted"), "{report}");
    assert!(
        report.contains("red form  form 1 by the seller: confirmed, red invoice"),
        "{report}"
    );
    assert!(report.contains("reversed by"), "{report}");

    // The buyer rejects: the seller's request fails with its remedy.
    let (c, c_code) = issue(&node, "C");
    ok(node.cli(&["claim", "book", &c, "--status", "03"]));
    ok(node.cli(&["redform", "start", &c, "--reason", "02", "--id", "RL-C"]));
    let text = ok(node.cli(&["redform", "reject", &c, "1", "--as", "buyer"]));
    assert!(text.contains(&format!("FORM {c}/1: REJECTED")), "{text}");
    let text = ok(node.cli(&["invoice", "history", "RL-C"]));
    assert!(text.contains("FAILED RED_FORM_NOT_CONFIRMED"), "{text}");
    let report = verified(&node, dir.path(), &c, &c_code);
    assert!(report.contains("red form  form 1 by the seller: rejected"), "{report}");
    assert!(report.contains("status    issued"), "{report}");

    // The initiator withdraws; the other side cannot.
    let (d, _) = issue(&node, "D");
    ok(node.cli(&["claim", "book", &d, "--status", "02"]));
    ok(node.cli(&["redform", "start", &d, "--reason", "02"]));
    refused(node.cli(&["redform", "withdraw", &d, "1", "--as", "buyer"]));
    let text = ok(node.cli(&["redform", "withdraw", &d, "1"]));
    assert!(text.contains(&format!("FORM {d}/1: WITHDRAWN")), "{text}");

    // The buyer starts a partial form, line by line; the seller confirms it.
    let (e, e_code) = issue(&node, "E");
    let text = ok(node.cli(&[
        "redform",
        "start",
        &e,
        "--reason",
        "sales_discount",
        "--line",
        "Oolong tea|1|10.00|6|3070401000000000000",
        "--as",
        "buyer",
    ]));
    assert!(text.contains(&format!("FORM {e}/1: WAITING_FOR_SELLER")), "{text}");
    // More than is left is refused when the form opens, with the failure's remedy.
    let (e2, _) = issue(&node, "E2");
    let text = refused(node.cli(&[
        "redform",
        "start",
        &e2,
        "--reason",
        "04",
        "--line",
        "Oolong tea|2|50.00|6|3070401000000000000",
        "--as",
        "buyer",
    ]));
    assert!(text.contains("RED_LETTER_EXCEEDS_REMAINING"), "{text}");
    // A line the invoice does not have names nothing: each red line names an original
    // line, in the original's order.
    let text = refused(node.cli(&[
        "redform",
        "start",
        &e2,
        "--reason",
        "04",
        "--line",
        "Cup|1|1.00|6|3070401000000000000",
        "--as",
        "buyer",
    ]));
    assert!(text.contains("RED_LETTER_LINE_UNKNOWN"), "{text}");
    let text = ok(node.cli(&["redform", "show", &e, "1"]));
    assert!(
        text.contains("by the buyer: waiting_for_seller") && text.contains("Oolong tea"),
        "{text}"
    );
    let text = ok(node.cli(&["redform", "confirm", &e, "1"]));
    assert!(text.contains("CONFIRMED") && text.contains("RED INVOICE"), "{text}");
    let report = verified(&node, dir.path(), &e, &e_code);
    assert!(report.contains("partially reversed by"), "{report}");
    assert!(report.contains("red form  form 1 by the buyer: confirmed"), "{report}");

    // 72 hours of block time without an answer: the form is void. The node's block clock
    // is moved forward (a test clock), not slept through.
    let (g, g_code) = issue(&node, "G");
    ok(node.cli(&["claim", "book", &g, "--status", "02"]));
    ok(node.cli(&["redform", "start", &g, "--reason", "02", "--id", "RL-G"]));
    node.stop();
    set_engine(
        &node.dir.join("node.toml"),
        &format!("clock_offset_ms = {}", 72 * HOUR_MS + 60_000),
    );
    node.spawn();
    let text = refused(node.cli(&["redform", "confirm", &g, "1", "--as", "buyer"]));
    assert!(text.contains("the form no longer waits: it is void"), "{text}");
    let text = ok(node.cli(&["redform", "list", &g]));
    assert!(text.contains("form 1 by the seller: void"), "{text}");
    let text = ok(node.cli(&["invoice", "history", "RL-G"]));
    assert!(text.contains("FAILED RED_FORM_NOT_CONFIRMED"), "{text}");
    let report = verified(&node, dir.path(), &g, &g_code);
    assert!(report.contains("red form  form 1 by the seller: void"), "{report}");
    // Void, it no longer blocks a new form.
    let text = ok(node.cli(&["redform", "start", &g, "--reason", "02", "--id", "RL-G2"]));
    assert!(text.contains("AWAITING_CONFIRMATION"), "{text}");
}

#[test]
fn the_reimbursement_lock_is_taken_released_taken_again_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("n"), free_port());
    let (f, code) = issue(&node, "F");
    let lock = |side: &str, r: &str| node.cli(&["claim", "lock", &f, "--check-code", &code, "--ref", r, "--as", side]);
    // The tax office's verifier locks it; the buyer, a second claimant, is refused: told
    // since when, not by whom.
    let text = ok(lock("verifier", "EXP-1"));
    assert!(text.contains("LOCKED") && text.contains("member 800001"), "{text}");
    let text = refused(lock("buyer", "B-1"));
    assert!(
        text.contains("already locked for reimbursement since") && !text.contains("800001"),
        "{text}"
    );
    let report = verified(&node, dir.path(), &f, &code);
    assert!(
        report.contains("claim     locked for reimbursement by member 800001 (EXP-1)"),
        "{report}"
    );
    // Only the holder, with its reference, unlocks.
    let text = refused(node.cli(&["claim", "unlock", &f, "--ref", "EXP-1", "--as", "buyer"]));
    assert!(text.contains("the lock is not yours"), "{text}");
    refused(node.cli(&["claim", "unlock", &f, "--ref", "EXP-9"]));
    let text = ok(node.cli(&["claim", "unlock", &f, "--ref", "EXP-1"]));
    assert!(text.contains("UNLOCKED"), "{text}");
    // Another claimant locks it, and closes it: reimbursed, for good.
    ok(lock("buyer", "B-1"));
    let text = ok(node.cli(&["claim", "close", &f, "--ref", "B-1", "--as", "buyer"]));
    assert!(text.contains("CLOSED"), "{text}");
    for (side, r) in [("verifier", "EXP-2"), ("buyer", "B-2")] {
        let text = refused(lock(side, r));
        assert!(text.contains("the claim was closed (reimbursed) at"), "{text}");
    }
    refused(node.cli(&["claim", "unlock", &f, "--ref", "B-1", "--as", "buyer"]));
    let report = verified(&node, dir.path(), &f, &code);
    assert!(
        report.contains("claim     reimbursed (closed) by member 700001 (B-1)"),
        "{report}"
    );
    // A locked (here closed) invoice is the buyer's: the seller's form waits for it.
    let text = ok(node.cli(&["redform", "start", &f, "--reason", "02", "--id", "RL-F"]));
    assert!(text.contains("AWAITING_CONFIRMATION"), "{text}");
    let text = ok(node.cli(&["invoice", "show", &f]));
    assert!(
        text.contains("Reimbursed: claim of member 700001 (ref B-1)")
            && text.contains("Red-letter form 1 by the seller: waiting_for_buyer"),
        "{text}"
    );
    // Every state it went through, in ledger order, from one command: the unlock cycle
    // is not in the invoice's current state, only in its history.
    let text = ok(node.cli(&["invoice", "history", &f]));
    let expected = [
        "ISSUED",
        "lock requested (ref EXP-1)",
        "LOCKED",
        "lock requested (ref B-1)",
        "REFUSED: already locked",
        "unlock requested (ref EXP-1)",
        "REFUSED: the lock is not yours",
        "unlock requested (ref EXP-9)",
        "REFUSED: the lock is not yours",
        "unlock requested (ref EXP-1)",
        "UNLOCKED",
        "lock requested (ref B-1)",
        "LOCKED",
        "closing requested (ref B-1)",
        "CLOSED",
        "REFUSED: the claim was closed",
        "REFUSED: the claim was closed",
        "unlock requested (ref B-1)",
        "REFUSED",
        "red-letter requested (sales_return, request RL-F)",
        "WAITING_FOR_BUYER",
    ];
    let mut rest = text.as_str();
    for e in expected {
        let at = rest
            .find(e)
            .unwrap_or_else(|| panic!("{e:?} missing or out of order in\n{text}"));
        rest = &rest[at + e.len()..];
    }
    // Page by page, the API gives the same entries in the same order.
    let page = |after: Option<&str>| -> serde_json::Value {
        let mut url = format!("{}/v1/invoices/{f}/history?limit=4", node.url());
        if let Some(a) = after {
            url.push_str(&format!("&after={a}"));
        }
        reqwest::blocking::Client::new()
            .get(url)
            .bearer_auth(node.token())
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let (mut paged, mut after) = (Vec::new(), None::<String>);
    loop {
        let p = page(after.as_deref());
        let entries = p["entries"].as_array().unwrap();
        assert!(entries.len() <= 4);
        paged.extend(
            entries
                .iter()
                .map(|e| (e["height"].as_u64().unwrap(), e["index"].as_u64().unwrap())),
        );
        match p["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    let whole: serde_json::Value = serde_json::from_str(&ok(node.cli(&["invoice", "history", &f, "--json"]))).unwrap();
    let whole: Vec<_> = whole
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["height"].as_u64().unwrap(), e["index"].as_u64().unwrap()))
        .collect();
    assert!(whole.len() > 20 && whole.windows(2).all(|w| w[0] < w[1]), "{whole:?}");
    assert_eq!(paged, whole);
    // The request's own history still answers by request id.
    let text = ok(node.cli(&["invoice", "history", "RL-F"]));
    assert!(text.contains("AWAITING_CONFIRMATION"), "{text}");
}
