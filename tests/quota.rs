//! The monthly invoicing quota (授信额度) on a real node, through the CLI as the
//! merchant's bookkeeper and the tax office (the dev tax office's key) would use it:
//! exhausted, granted more and the waiting requests issued automatically in order;
//! suspended and resumed; a new month without re-validation.

mod common;

use common::*;
use std::time::{SystemTime, UNIX_EPOCH};

const DAY_MS: u64 = 24 * 3600 * 1000;

/// Pays 100.00 as `P{tag}` and requests a 53.00 invoice for it as `R{tag}`; the output.
fn request(node: &DevNode, tag: &str) -> String {
    out(&pay_and_request(node, tag))
}

#[test]
fn quota_exhausted_granted_suspended_and_expired() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(&dir.path().join("n"), free_port());
    let text = ok(node.cli(&["quota", "show"]));
    assert!(text.contains("not under quota"), "{text}");

    // Granted 60.00: one 53.00 invoice fits, the next two do not.
    ok(node.cli(&["quota", "grant", "60.00"]));
    let text = request(&node, "A");
    assert!(text.contains("ISSUED"), "{text}");
    let text = request(&node, "B");
    assert!(
        text.contains("FAILED QUOTA_EXCEEDED")
            && text.contains("above the 7.00 left of the 60.00 quota")
            && text.contains("remedy: Ask the tax office to raise this month's quota")
            && text.contains("[retryable unchanged]"),
        "{text}"
    );
    let text = request(&node, "C");
    assert!(text.contains("FAILED QUOTA_EXCEEDED"), "{text}");
    let text = ok(node.cli(&["quota", "show"]));
    assert!(
        text.contains("granted 60.00  used 53.00  left 7.00") && text.contains("2 request(s) wait"),
        "{text}"
    );

    // The tax office raises it: both waiting requests are issued, in the order they failed.
    let text = ok(node.cli(&["quota", "grant", "200.00"]));
    let (b, c) = (
        text.find("request RB -> invoice").unwrap_or_else(|| panic!("{text}")),
        text.find("request RC -> invoice").unwrap_or_else(|| panic!("{text}")),
    );
    assert!(b < c, "{text}");
    let text = ok(node.cli(&["invoice", "history", "RB"]));
    assert!(
        text.contains("ISSUED") && text.contains("failed first for the quota; issued automatically"),
        "{text}"
    );
    // A red invoice gives its total back.
    ok(node.cli(&["redform", "start", "26110001000000000001", "--reason", "01"]));
    let text = ok(node.cli(&["quota", "show"]));
    assert!(text.contains("used 106.00  left 94.00"), "{text}");

    // Suspended: refused until resumed, then issued automatically.
    ok(node.cli(&["quota", "suspend"]));
    let text = request(&node, "D");
    assert!(text.contains("FAILED QUOTA_SUSPENDED"), "{text}");
    let text = ok(node.cli(&["quota", "resume"]));
    assert!(text.contains("request RD -> invoice"), "{text}");

    // A quota is for the month it is recorded in: one for another month is refused.
    let o = node.cli(&["quota", "grant", "1000000.00", "--month", "203001"]);
    assert!(!o.status.success(), "{}", out(&o));

    // A new month (the node's block clock moved forward, not slept through): March's
    // quota is not carried over.
    node.stop();
    let offset = 32 * DAY_MS;
    set_engine(&node.dir.join("node.toml"), &format!("clock_offset_ms = {offset}"));
    node.spawn();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let next = fapiao_core::Timestamp(now + offset).utc8_month().to_string();
    let text = request(&node, "E");
    assert!(text.contains("FAILED QUOTA_EXPIRED"), "{text}");
    let text = ok(node.cli(&["quota", "revalidate", "--month", &next]));
    assert!(text.contains("request RE -> invoice"), "{text}");
    let text = ok(node.cli(&["quota", "show", "--json"]));
    let q: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(q["granted_fen"], 20_000);
    assert_eq!(q["used_fen"], 5_300);
    assert_eq!(q["month"].to_string(), next);

    // Reconciliation over both months: the quota of each (the ended one with its final
    // figures), and what was invoiced per tax rate.
    let (from, to) = (
        fapiao_engine::format_day(fapiao_engine::business_day(now)),
        fapiao_engine::format_day(fapiao_engine::business_day(now + offset)),
    );
    let text = ok(node.cli(&["reconcile", "--from", &from, "--to", &to, "--format", "json"]));
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    let quota = r["quota"].as_array().unwrap();
    let months: Vec<String> = quota.iter().map(|m| m["month"].to_string()).collect();
    assert_eq!(months.last(), Some(&next), "{r}");
    let ended = &quota[quota.len() - 2];
    assert_eq!(
        (&ended["granted_fen"], &ended["used_fen"], &ended["left_fen"]),
        (&20_000.into(), &15_900.into(), &4_100.into()),
        "{r}"
    );
    let six = r["by_rate"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["rate_bp"] == 600)
        .unwrap();
    assert_eq!(
        (
            &six["issued_net_fen"],
            &six["issued_tax_fen"],
            &six["reversed_net_fen"],
            &six["reversed_tax_fen"]
        ),
        (&25_000.into(), &1_500.into(), &5_000.into(), &300.into()),
        "{r}"
    );
    let text = ok(node.cli(&["reconcile", "--from", &from, "--to", &to]));
    assert!(
        text.contains(&format!("quota {next}: granted 200.00  used 53.00  left 147.00")),
        "{text}"
    );
}
