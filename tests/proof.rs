//! Invoice proof bundles end to end on a real node: fetched without a token, checked
//! offline with `fapiao verify` against the genesis file alone.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

#[test]
fn a_bundle_verifies_offline_and_every_flipped_byte_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("n"), free_port());
    let (number, code) = issue(&node, "1");
    let file = dir.path().join("b1.bundle");
    ok(get_bundle(&node, &number, &code, &file));
    let o = verify(&node, &file, &[]);
    let text = out(&o);
    assert!(o.status.success() && text.starts_with("VALID"), "{text}");
    assert!(text.contains("status    issued"), "{text}");
    assert!(text.contains(&number), "{text}");

    // Flip every single bit-pattern byte: each flipped copy must be INVALID.
    let bytes = std::fs::read(&file).unwrap();
    let genesis =
        fapiao_core::Genesis::from_toml(&std::fs::read_to_string(node.dir.join("genesis.toml")).unwrap()).unwrap();
    let now = u64::MAX / 2;
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        let verdict = fapiao_proof::Bundle::from_bytes(&b)
            .map_err(|p| vec![p])
            .and_then(|bundle| fapiao_proof::verify(&bundle, &genesis, now, None));
        assert!(verdict.is_err(), "flipping byte {i} of {} still verifies", bytes.len());
    }
    // And the CLI exits 1 with reasons for one of them.
    let mut b = bytes.clone();
    let last = b.len() - 1;
    b[last] ^= 0x80;
    let bad = dir.path().join("bad.bundle");
    std::fs::write(&bad, &b).unwrap();
    let o = verify(&node, &bad, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).starts_with("INVALID"), "{}", out(&o));
}

#[test]
fn a_reversed_invoice_says_so_and_an_old_status_fails_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("n"), free_port());
    let (number, code) = issue(&node, "1");
    let old = dir.path().join("old.bundle");
    ok(get_bundle(&node, &number, &code, &old));
    ok(node.cli(&["redform", "start", &number, "--reason", "sales_return"]));
    let new = dir.path().join("new.bundle");
    ok(get_bundle(&node, &number, &code, &new));
    let text = ok(verify(&node, &new, &[]));
    assert!(text.contains("status    reversed by "), "{text}");
    // The old bundle still proves the invoice was issued, as of its (older) header.
    assert!(ok(verify(&node, &old, &[])).contains("status    issued"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = verify(&node, &old, &["--max-age", "1s"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("more than the 1000 ms allowed"), "{}", out(&o));
    assert!(ok(verify(&node, &new, &["--max-age", "1h"])).starts_with("VALID"));
    // Asking a node for a second opinion exposes the old bundle's hidden reversal.
    let url = node.url();
    let o = verify(&node, &old, &["--compare", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("outdated: ") && out(&o).contains("proves a newer status"),
        "{}",
        out(&o)
    );
    assert!(ok(verify(&node, &new, &["--compare", &url])).contains("agrees as of block"));
}

#[test]
fn a_wrong_check_code_reveals_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("n"), free_port());
    let (number, code) = issue(&node, "1");
    let get = |n: &str, c: &str| {
        let r = reqwest::blocking::get(format!("{}/v1/verify/{n}?check_code={c}", node.url())).unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (status, body) = get(&number, &code);
    assert_eq!(status, 200, "{body}");
    // The JSON form is the same structure as the canonical bytes.
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["version"], fapiao_proof::BUNDLE_VERSION);
    assert!(!v["bundle"]["number"].is_null(), "{body}");
    assert!(
        v["bundle"]["headers"].as_array().is_some_and(|h| !h.is_empty()),
        "{body}"
    );
    assert!(v["bundle"]["status"]["proof"]["siblings"].is_array(), "{body}");
    assert_eq!(
        v["bundle_bytes"].as_u64().unwrap() * 2,
        v["bundle_hex"].as_str().unwrap().len() as u64
    );
    let mut wrong = code.clone().into_bytes();
    wrong[0] = if wrong[0] == b'1' { b'2' } else { b'1' };
    let wrong = String::from_utf8(wrong).unwrap();
    let unknown = {
        let mut n = number.clone().into_bytes();
        let l = n.len() - 1;
        n[l] = if n[l] == b'9' { b'8' } else { b'9' };
        String::from_utf8(n).unwrap()
    };
    let a = get(&number, &wrong);
    let b = get(&unknown, &code);
    let c = get("garbage", "garbage");
    assert_eq!(a.0, 404);
    assert_eq!(a, b, "a wrong check code must look exactly like an unknown invoice");
    assert_eq!(a, c);
}

#[test]
fn public_verification_is_rate_limited_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("n"), free_port());
    let http = reqwest::blocking::Client::new();
    let mut limited = 0;
    for _ in 0..60 {
        let r = http
            .get(format!("{}/v1/verify/26110001000000000001?check_code=1", node.url()))
            .send()
            .unwrap();
        if r.status().as_u16() == 429 {
            assert_eq!(r.headers()["retry-after"], "1");
            limited += 1;
        }
    }
    assert!(limited > 0, "60 requests at once were all served");
    // Other endpoints are not affected.
    assert!(http
        .get(format!("{}/v1/status", node.url()))
        .send()
        .unwrap()
        .status()
        .is_success());
}

#[test]
fn the_first_claim_is_recorded_and_shows_in_the_proof_later_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("n"), free_port());
    let (number, code) = issue(&node, "1");
    // The tax office claims with a profile of its own: its key and the node's address, no
    // read token of the merchant's node (the claim's outcome is public to its author).
    let tax_office = dir.path().join("tax-office");
    std::fs::create_dir_all(&tax_office).unwrap();
    std::fs::copy(node.dir.join("verifier.key"), tax_office.join("member.key")).unwrap();
    let profile = format!(
        "node_url = \"{}\"\nkey = \"member.key\"\nverifier_key = \"member.key\"\n",
        node.url()
    );
    std::fs::write(tax_office.join("client.toml"), profile).unwrap();
    let claim = Command::new(bin())
        .args(["claim", "lock", &number, "--check-code", &code, "--ref", "EXP-1"])
        .env("FAPIAO_CLIENT", tax_office.join("client.toml"))
        .output()
        .unwrap();
    let text = ok(claim);
    assert!(
        text.contains("LOCKED: invoice") && text.contains("member 800001"),
        "{text}"
    );
    // That profile reads nothing else of the merchant's.
    let r = reqwest::blocking::get(format!("{}/v1/payments", node.url())).unwrap();
    assert_eq!(r.status(), 401);

    // Any later claim, whatever its reference, is refused: told when, not by whom.
    let o = node.cli(&["claim", "lock", &number, "--check-code", &code, "--ref", "EXP-2"]);
    assert!(!o.status.success());
    let text = out(&o);
    assert!(
        text.contains("REFUSED: already locked for reimbursement since ") && text.contains("(UTC+8)"),
        "{text}"
    );
    let o = node.cli(&[
        "claim",
        "lock",
        &number,
        "--check-code",
        &code,
        "--ref",
        "EXP-2B",
        "--json",
    ]);
    let outcome: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", out(&o)));
    let outcome = &outcome["derived"][0];
    assert_eq!(outcome["data"]["refusal"]["reason"], "already_claimed", "{outcome}");
    assert!(outcome["data"]["refusal"]["first_claimed_at_ms"].is_u64(), "{outcome}");
    assert!(outcome["data"]["refusal"].get("first_claimant").is_none(), "{outcome}");

    // The claim is in the status proof.
    let file = dir.path().join("claimed.bundle");
    ok(get_bundle(&node, &number, &code, &file));
    let text = ok(verify(&node, &file, &[]));
    assert!(
        text.contains("claim     locked for reimbursement by member 800001 (EXP-1)"),
        "{text}"
    );

    // A reversed invoice cannot be claimed; a wrong check code reveals nothing.
    let (number2, code2) = issue(&node, "2");
    ok(node.cli(&["redform", "start", &number2, "--reason", "issue_error"]));
    let o = node.cli(&["claim", "lock", &number2, "--check-code", &code2, "--ref", "EXP-3"]);
    assert!(
        out(&o).contains("REFUSED: the invoice is fully red-letter reversed"),
        "{}",
        out(&o)
    );
    let o = node.cli(&["claim", "lock", &number2, "--check-code", &code, "--ref", "EXP-4"]);
    assert!(
        out(&o).contains("REFUSED: no such invoice or form for this member"),
        "{}",
        out(&o)
    );
}

/// As on the national platform, an invoice verifies by its number, issue date and total
/// including tax as well as by its check code; wrong factors get the answer an unknown
/// number gets and cost nothing; each invoice verifies at most 5 times a day, the answer
/// says how many checks are left, and once they are used up every request for that
/// invoice is refused the same way, whatever its factors.
#[test]
fn an_invoice_verifies_by_date_and_total_a_bounded_number_of_times_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("n"), free_port());
    let (number, code) = issue(&node, "1");
    let (other, other_code) = issue(&node, "2");
    let inv: Value = reqwest::blocking::Client::new()
        .get(format!("{}/v1/invoices/{number}", node.url()))
        .bearer_auth(node.token())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let date = fapiao_engine::format_day(fapiao_engine::business_day(inv["issued_at_ms"].as_u64().unwrap()));
    let fen = inv["total_fen"].as_i64().unwrap();
    let total = format!("{}.{:02}", fen / 100, fen % 100);
    let file = dir.path().join("b.bundle");
    let by_factors = |date: &str, total: &str| {
        node.cli(&[
            "proof",
            "get",
            &number,
            "--issue-date",
            date,
            "--total",
            total,
            "-o",
            file.to_str().unwrap(),
        ])
    };
    let text = ok(by_factors(&date, &total));
    assert!(text.contains("4 more time(s) today"), "{text}");
    let text = ok(verify(&node, &file, &[]));
    assert!(text.contains(&number), "{text}");

    // Wrong factors: the answer an unknown number gets, and no check is spent.
    let get = |query: &str| {
        let r = reqwest::blocking::get(format!("{}/v1/verify/{number}?{query}", node.url())).unwrap();
        let status = r.status().as_u16();
        let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        let body: Value = r.json().unwrap();
        (status, body["code"].as_str().unwrap_or("").to_string(), body, retry)
    };
    let wrong_total = format!("{}.{:02}", fen / 100 + 1, fen % 100);
    for query in [
        format!("issue_date={date}&total={wrong_total}"),
        format!("issue_date=2020-01-01&total={total}"),
        format!("issue_date={date}"),
        format!("issue_date={date}&total=-1.00"),
        format!("check_code={code}&total={total}"),
    ] {
        let (status, c, body, _) = get(&query);
        assert_eq!((status, c.as_str()), (404, "NOT_FOUND"), "{query}: {body}");
    }
    for left in [3, 2, 1, 0] {
        let (status, _, body, _) = get(&format!("check_code={code}"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["checks_left_today"], left, "{body}");
    }
    // Used up: refused whatever the factors, so the refusal tells nothing about them.
    for query in [
        format!("check_code={code}"),
        format!("issue_date=2020-01-01&total={wrong_total}"),
    ] {
        let (status, c, body, retry) = get(&query);
        assert_eq!((status, c.as_str()), (429, "CHECKS_EXHAUSTED"), "{body}");
        let retry: u64 = retry.unwrap().parse().unwrap();
        assert!((1..=86_400).contains(&retry), "Retry-After {retry}");
    }
    let o = by_factors(&date, &total);
    assert!(
        !o.status.success() && out(&o).contains("CHECKS_EXHAUSTED"),
        "{}",
        out(&o)
    );
    // Another invoice is not affected.
    let r = reqwest::blocking::get(format!("{}/v1/verify/{other}?check_code={other_code}", node.url())).unwrap();
    assert_eq!(r.status(), 200);
}

/// `fapiao proof get` of the status as of `as_of` (a height or a date), into `file`.
fn get_bundle_as_of(
    node: &DevNode,
    number: &str,
    code: &str,
    as_of: &str,
    file: &std::path::Path,
) -> std::process::Output {
    node.cli(&[
        "proof",
        "get",
        number,
        "--check-code",
        code,
        "--as-of",
        as_of,
        "-o",
        file.to_str().unwrap(),
    ])
}

/// The height a `fapiao proof get` output says the status is proven as of.
fn proven_as_of(text: &str) -> u64 {
    let rest = text
        .split("status as of block ")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn a_status_is_proven_as_of_an_earlier_height_or_date() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("n"), free_port());
    let (number, code) = issue(&node, "1");
    let issued_at = proven_as_of(&ok(get_bundle(&node, &number, &code, &dir.path().join("a.bundle"))));
    ok(node.cli(&["redform", "start", &number, "--reason", "sales_return"]));
    let get = |as_of: &str, file: &str| {
        let path = dir.path().join(file);
        (get_bundle_as_of(&node, &number, &code, as_of, &path), path)
    };
    // As of the height it was issued at: the status then, verified offline.
    let (o, then) = get(&issued_at.to_string(), "then.bundle");
    assert_eq!(proven_as_of(&ok(o)), issued_at);
    let text = ok(verify(&node, &then, &[]));
    assert!(text.starts_with("VALID") && text.contains("status    issued"), "{text}");
    // As of the end of today (UTC+8): the newest certified state, which has the reversal.
    let today = fapiao_engine::format_day(fapiao_engine::business_day(fapiao_engine::wall_clock().0));
    let (o, now) = get(&today, "today.bundle");
    assert!(proven_as_of(&ok(o)) > issued_at);
    let text = ok(verify(&node, &now, &[]));
    assert!(
        text.starts_with("VALID") && text.contains("status    reversed by "),
        "{text}"
    );
    // Before the invoice existed it is unknown; above the head nothing is certified yet;
    // a malformed `as_of` is answered like an unknown invoice.
    let (o, _) = get(&(issued_at - 1).to_string(), "before.bundle");
    assert!(!o.status.success() && out(&o).contains("NOT_FOUND"), "{}", out(&o));
    let (o, _) = get("999999", "above.bundle");
    assert!(!o.status.success() && out(&o).contains("NOT_CERTIFIED"), "{}", out(&o));
    let (o, _) = get("2026-13-01", "bad.bundle");
    assert!(!o.status.success() && out(&o).contains("NOT_FOUND"), "{}", out(&o));
    let (o, _) = get("1970-01-01", "early.bundle");
    assert!(!o.status.success() && out(&o).contains("NOT_FOUND"), "{}", out(&o));
}

/// A kept earlier state changed on disk is never proven: the node answers that its
/// store is damaged instead of serving a bundle no verifier would accept.
#[test]
fn a_changed_kept_state_is_never_proven() {
    use fapiao_core::codec;
    use fapiao_domain::{state::InvoiceRecord, StateKey, StateValue};
    use fapiao_store::tables::{StateVersions, Table};
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(&dir.path().join("n"), free_port());
    let (number, code) = issue(&node, "1");
    let issued_at = proven_as_of(&ok(get_bundle(&node, &number, &code, &dir.path().join("a.bundle"))));
    ok(node.cli(&["redform", "start", &number, "--reason", "sales_return"]));
    node.stop();
    // The red-letter's block kept the invoice's record as it was before: change that copy.
    let key = StateKey::Invoice(number.parse().unwrap());
    let ledger = node.dir.join("ledger");
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(false);
    let db = rocksdb::DB::open_cf(&opts, &ledger, fapiao_store::tables::ALL).unwrap();
    let cf = db.cf_handle(StateVersions::NAME).unwrap();
    let mut changed = false;
    for row in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
        let (k, v) = row.unwrap();
        let (_, record, height) = StateVersions::decode(&k).unwrap();
        let old: Option<Vec<u8>> = codec::decode(&v).unwrap();
        let (true, Some(bytes)) = (record == key && height > issued_at, old) else {
            continue;
        };
        let mut value: StateValue = codec::decode(&bytes).unwrap();
        match &mut value {
            StateValue::Invoice(InvoiceRecord::Blue(b)) => b.issued.buyer.name = "Someone Else".into(),
            other => panic!("{other:?}"),
        }
        db.put_cf(cf, &k, codec::to_bytes(&Some(codec::to_bytes(&value))))
            .unwrap();
        changed = true;
    }
    drop(db);
    assert!(changed, "the red-letter's block keeps the invoice as it was before");
    node.spawn();
    let file = dir.path().join("then.bundle");
    let o = get_bundle_as_of(&node, &number, &code, &issued_at.to_string(), &file);
    assert!(!o.status.success() && out(&o).contains("STORE_DAMAGED"), "{}", out(&o));
    assert!(!file.exists(), "no bundle written");
    // The current status is unaffected.
    let text = ok(get_bundle(&node, &number, &code, &dir.path().join("now.bundle")));
    assert!(proven_as_of(&text) > issued_at, "{text}");
}
