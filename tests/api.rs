//! The HTTP API against a real node process on loopback: every endpoint with bad input
//! gets a clear JSON error, nothing is stored, and the node keeps serving; the README's
//! quick start works with the CLI.

mod common;

use common::*;
use fapiao_api::dto::ApiError;
use fapiao_core::{codec, Hash32, MemberCode, NetworkId, SecretKey};
use serde_json::{json, Value};
use std::time::Duration;

struct Api {
    url: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Api {
    fn of(node: &DevNode) -> Api {
        Api {
            url: node.url(),
            token: node.token(),
            // A fresh connection per request: after answering a body it did not read
            // (too large, wrong type) the server closes the connection, and a pooled
            // client could race that close with its next request.
            http: reqwest::blocking::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    fn post_raw(&self, path: &str, body: Vec<u8>, content_type: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{}", self.url, path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_raw(path, serde_json::to_vec(&body).unwrap(), "application/json")
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut r = self.http.get(format!("{}{}", self.url, path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn authed(&self, path: &str) -> (u16, Value) {
        self.get(path, Some(&self.token))
    }
}

/// `check(response, status, code, field)`: the one assertion for error answers.
fn check(got: (u16, Value), status: u16, code: &str, field: Option<&str>) {
    let (s, body) = got;
    assert_eq!(s, status, "body: {body}");
    let err: ApiError = serde_json::from_value(body.clone()).unwrap_or_else(|_| panic!("not an ApiError: {body}"));
    assert_eq!(err.code, code, "{body}");
    assert!(!err.message.is_empty());
    if let Some(f) = field {
        assert_eq!(err.field.as_deref(), Some(f), "{body}");
    }
}

fn hexed(e: &fapiao_core::Event) -> String {
    hex::encode(codec::to_bytes(e))
}

#[test]
fn every_endpoint_refuses_bad_input_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    let api = Api::of(&node);
    let g = node.genesis();
    let net = g.network_id();
    let client = node.client_key();
    let client_api = fapiao_api::Client::new(&node.url(), Some(node.token()));

    // A good payment first (the bootstrap authorised the client key).
    let good = payment(net, dev_chain(), &client, "P1", 10_000);
    let (s, body) = api.post("/v1/events", json!({"event": hexed(&good)}));
    assert_eq!(s, 202, "{body}");
    client_api.wait_committed(&good.id(), Duration::from_secs(10)).unwrap();
    let payments_before = client_api.payments(None, 100).unwrap();
    assert_eq!(payments_before.len(), 1);

    // Malformed JSON, unknown keys, wrong types, wrong content type.
    check(
        api.post_raw("/v1/events", b"{not json".to_vec(), "application/json"),
        400,
        "MALFORMED_JSON",
        None,
    );
    check(
        api.post("/v1/events", json!({"event": "00", "extra": 1})),
        400,
        "MALFORMED_JSON",
        Some("extra"),
    );
    check(api.post("/v1/events", json!({"event": 5})), 400, "MALFORMED_JSON", None);
    check(
        api.post_raw("/v1/events", b"{}".to_vec(), "text/plain"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        None,
    );
    // Not hex, not an event, trailing bytes.
    check(
        api.post("/v1/events", json!({"event": "zz"})),
        400,
        "MALFORMED_EVENT",
        Some("event"),
    );
    check(
        api.post("/v1/events", json!({"event": "0102030405"})),
        400,
        "MALFORMED_EVENT",
        None,
    );
    let mut trailing = codec::to_bytes(&good);
    trailing.push(0);
    check(
        api.post("/v1/events", json!({"event": hex::encode(trailing)})),
        400,
        "MALFORMED_EVENT",
        None,
    );
    // Bad signature.
    let mut bad_sig = payment(net, dev_chain(), &client, "P2", 5_00);
    bad_sig.signature.s[0] ^= 1;
    check(
        api.post("/v1/events", json!({"event": hexed(&bad_sig)})),
        401,
        "BAD_SIGNATURE",
        Some("signature"),
    );
    // Unknown key (valid signature, not authorised).
    let stranger = SecretKey::from_seed(&[77; 32]);
    check(
        api.post(
            "/v1/events",
            json!({"event": hexed(&payment(net, dev_chain(), &stranger, "P3", 5_00))}),
        ),
        403,
        "UNAUTHORIZED_KEY",
        Some("author"),
    );
    // Wrong network id.
    check(
        api.post(
            "/v1/events",
            json!({"event": hexed(&payment(NetworkId(Hash32([9; 32])), dev_chain(), &client, "P4", 5_00))}),
        ),
        400,
        "WRONG_NETWORK",
        Some("network"),
    );
    // Wrong chain.
    let mut other_chain = payment(net, dev_chain(), &client, "P5", 5_00).body;
    other_chain.chain = MemberCode::new(110_002).unwrap();
    check(
        api.post("/v1/events", json!({"event": hexed(&other_chain.sign(&client))})),
        400,
        "WRONG_CHAIN",
        Some("chain"),
    );
    // Oversized body.
    let huge = json!({"event": "00".repeat(3 * 1024 * 1024)});
    check(api.post("/v1/events", huge), 413, "BODY_TOO_LARGE", None);
    // An event over the per-event limit inside an acceptable body.
    check(
        api.post("/v1/events", json!({"event": "00".repeat(70 * 1024)})),
        413,
        "EVENT_TOO_LARGE",
        Some("event"),
    );
    // Duplicate event: its original outcome, nothing new stored.
    let (s, body) = api.post("/v1/events", json!({"event": hexed(&good)}));
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["duplicate"], true);
    assert_eq!(body["status"], "committed");
    // Reused payment id with different content: refused, naming the original.
    let reuse = payment(net, dev_chain(), &client, "P1", 99_00);
    let (s, body) = api.post("/v1/events", json!({"event": hexed(&reuse)}));
    check((s, body.clone()), 409, "DUPLICATE_PAYMENT_ID", Some("payment_id"));
    assert!(
        body["message"].as_str().unwrap().contains(&good.id().to_string()),
        "{body}"
    );

    // Batch: per-event answers, in order.
    let ok2 = payment(net, dev_chain(), &client, "P6", 1_00);
    let (s, body) = api.post(
        "/v1/events/batch",
        json!({"events": [hexed(&ok2), "zz", hexed(&bad_sig), hexed(&good), hexed(&reuse)]}),
    );
    assert_eq!(s, 200, "{body}");
    let r = body["results"].as_array().unwrap();
    assert_eq!(r[0]["ok"]["status"], "pending");
    assert_eq!(r[1]["error"]["code"], "MALFORMED_EVENT");
    assert_eq!(r[1]["error"]["field"], "events[1]");
    assert_eq!(r[2]["error"]["code"], "BAD_SIGNATURE");
    assert_eq!(r[3]["ok"]["duplicate"], true);
    assert_eq!(r[4]["error"]["code"], "DUPLICATE_PAYMENT_ID");
    assert_eq!(
        (body["accepted"].as_u64(), body["refused"].as_u64()),
        (Some(2), Some(3))
    );
    check(
        api.post("/v1/events/batch", json!({"events": vec!["00"; 2001]})),
        413,
        "BATCH_TOO_LARGE",
        None,
    );
    check(
        api.post("/v1/events/batch", json!({"evts": []})),
        400,
        "MALFORMED_JSON",
        None,
    );
    client_api.wait_committed(&ok2.id(), Duration::from_secs(10)).unwrap();

    // Nothing bad was stored: exactly P1 and P6.
    let ids: Vec<String> = client_api
        .payments(None, 100)
        .unwrap()
        .into_iter()
        .map(|p| p.payment_id)
        .collect();
    assert_eq!(ids, vec!["P1", "P6"]);
    assert_eq!(client_api.payment("P1").unwrap().amount_fen, 10_000);

    // Reads: token required; bad parameters are 400; unknown things are 404.
    for path in [
        "/v1/payments",
        "/v1/payments/P1",
        "/v1/invoices/26110001000000000001",
        "/v1/failures",
        "/v1/blocks",
        "/v1/blocks/1",
        "/v1/requests/R1",
    ] {
        check(api.get(path, None), 401, "UNAUTHORIZED", Some("authorization"));
        check(
            api.get(path, Some("wrong-token-wrong-token-wrong")),
            401,
            "UNAUTHORIZED",
            Some("authorization"),
        );
    }
    check(api.authed("/v1/payments?limit=x"), 400, "MALFORMED_QUERY", None);
    check(api.authed("/v1/payments?bogus=1"), 400, "MALFORMED_QUERY", None);
    check(api.authed("/v1/payments/NOPE"), 404, "NOT_FOUND", Some("id"));
    check(api.authed("/v1/invoices/123"), 400, "MALFORMED_NUMBER", Some("number"));
    check(
        api.authed("/v1/invoices/26110001000000000099"),
        404,
        "NOT_FOUND",
        Some("number"),
    );
    check(api.authed("/v1/invoices"), 400, "MALFORMED_QUERY", None);
    // A red-letter form: the same answers for a bad number, a bad or absent form.
    check(
        api.get("/v1/invoices/26110001000000000001/forms/1", None),
        401,
        "UNAUTHORIZED",
        Some("authorization"),
    );
    check(
        api.authed("/v1/invoices/123/forms/1"),
        400,
        "MALFORMED_NUMBER",
        Some("number"),
    );
    check(
        api.authed("/v1/invoices/26110001000000000001/forms/x"),
        400,
        "MALFORMED_PATH",
        None,
    );
    check(
        api.authed("/v1/invoices/26110001000000000001/forms/4294967296"),
        400,
        "MALFORMED_PATH",
        None,
    );
    check(
        api.authed("/v1/invoices/26110001000000000099/forms/1"),
        404,
        "NOT_FOUND",
        Some("form"),
    );
    // An invoice's history: the same answers, and a bad page position is refused.
    check(
        api.get("/v1/invoices/26110001000000000001/history", None),
        401,
        "UNAUTHORIZED",
        Some("authorization"),
    );
    check(
        api.authed("/v1/invoices/123/history"),
        400,
        "MALFORMED_NUMBER",
        Some("number"),
    );
    for q in ["after=1", "after=x.1", "after=1.99999999999", "limit=0"] {
        let field = q.split('=').next();
        check(
            api.authed(&format!("/v1/invoices/26110001000000000001/history?{q}")),
            400,
            "INVALID_FIELD",
            field,
        );
    }
    check(
        api.authed("/v1/invoices/26110001000000000001/history?limit=-1"),
        400,
        "MALFORMED_QUERY",
        None,
    );
    check(
        api.authed("/v1/invoices/26110001000000000099/history"),
        404,
        "NOT_FOUND",
        Some("number"),
    );
    check(
        api.authed("/v1/failures?reason=NOPE"),
        400,
        "UNKNOWN_REASON",
        Some("reason"),
    );
    check(api.authed("/v1/blocks/abc"), 400, "MALFORMED_PATH", None);
    check(api.authed("/v1/blocks/999"), 404, "NOT_FOUND", Some("height"));
    check(api.authed("/v1/requests/NOPE"), 404, "NOT_FOUND", Some("id"));
    check(api.get("/v1/events/xyz", None), 400, "MALFORMED_ID", Some("id"));
    check(
        api.get(&format!("/v1/events/{}", "ab".repeat(32)), None),
        404,
        "NOT_FOUND",
        Some("id"),
    );
    check(api.get("/v1/events/xyz/outcome", None), 400, "MALFORMED_ID", Some("id"));
    check(
        api.get(&format!("/v1/events/{}/outcome", "ab".repeat(32)), None),
        404,
        "NOT_RECORDED",
        Some("id"),
    );
    // A recorded event's outcome is public; a payment derives nothing.
    let (status, body) = api.get(&format!("/v1/events/{}/outcome", good.id()), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["derived"], json!([]), "{body}");
    check(api.get("/v2/nothing", None), 404, "NOT_FOUND", None);

    // Good reads.
    let (s, st) = api.get(&format!("/v1/events/{}", good.id()), None);
    assert_eq!((s, st["status"].as_str()), (200, Some("certified")), "{st}");
    let (s, blocks) = api.authed("/v1/blocks");
    assert_eq!(s, 200);
    assert!(blocks.as_array().unwrap().iter().all(|b| b["certified"] == true));
    let (s, block) = api.authed("/v1/blocks/1");
    assert_eq!(s, 200, "{block}");
    let (s, doc) = api.get("/openapi.json", None);
    assert_eq!(s, 200);
    for p in [
        "/v1/events",
        "/v1/events/batch",
        "/v1/payments",
        "/v1/invoices/{number}",
        "/v1/failures",
        "/v1/blocks/{height}",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }
    let m = api
        .http
        .get(format!("{}/metrics", api.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(m.contains("fapiao_events_admitted_total 3"), "{m}");
    assert!(m.contains("fapiao_events_duplicate_total"), "{m}");
    // Every refused request above is counted.
    let errors: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("fapiao_http_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no fapiao_http_errors_total in {m}"));
    assert!(errors >= 10, "only {errors} error answers counted");

    // Still serving after all of it.
    assert!(client_api.status().is_ok());
}

#[test]
fn quick_start_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    let o = node.cli(&["pay", "--amount", "100.00", "--method", "wechat", "--id", "P1"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("certified"), "{}", out(&o));

    // Wrong buyer tax id: recorded as a failure with its remedy; the payment stays.
    let mut args = invoice_request_args("R1", "P1");
    args.extend_from_slice(&["--buyer-tax-id", "91110000600037341M"]);
    let o = node.cli(&args);
    let text = out(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("FAILED BUYER_TAX_ID_INVALID"), "{text}");
    assert!(
        text.contains("remedy: Ask the buyer for their 18-character unified social credit code"),
        "{text}"
    );

    // The corrected request is issued, linked to the failed one. The code is typed as a
    // person copies it (groups, dashes, lower case); the ledger stores its written form.
    let mut args = invoice_request_args("R2", "P1");
    args.extend_from_slice(&["--retry-of", "R1", "--buyer-tax-id", "9111 0000-6000 3734 1l"]);
    let o = node.cli(&args);
    let text = out(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("R1 invoice: FAILED"), "{text}");
    assert!(text.contains("R2 invoice: ISSUED"), "{text}");
    assert!(text.contains("net 50.00  tax 3.00  total 53.00"), "{text}");
    let stored = reqwest::blocking::Client::new()
        .get(format!("{}/v1/invoices?request_id=R2", node.url()))
        .bearer_auth(node.token())
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(stored.contains("\"91110000600037341L\""), "{stored}");

    let o = node.cli(&["invoice", "list", "--failed", "--all"]);
    let text = out(&o);
    assert!(
        text.contains("BUYER_TAX_ID_INVALID: 1") && text.contains("-> issued"),
        "{text}"
    );
    let o = node.cli(&["invoice", "list", "--failed"]);
    assert!(out(&o).contains("no failed requests"), "{}", out(&o));

    // Errors are clear and non-zero.
    let o = node.cli(&["pay", "--amount", "1.00", "--method", "wechat", "--id", "P1"]);
    assert!(!o.status.success());
    assert!(out(&o).contains("DUPLICATE_PAYMENT_ID"), "{}", out(&o));
    let o = node.cli(&["pay", "--amount", "1.005", "--method", "wechat"]);
    assert!(!o.status.success() && out(&o).contains("--amount"), "{}", out(&o));
    let o = node.cli(&["status", "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["chain"], "110001");

    // What the API offers, the CLI reads too: payments, blocks, evidence, with times as
    // dates in UTC+8.
    let text = ok(node.cli(&["payment", "show", "P1"]));
    assert!(
        text.contains("PAYMENT P1: 100.00 CNY by wechat")
            && text.contains("(UTC+8)")
            && text.contains("invoiced     53.00")
            && text.contains("invoiceable  47.00"),
        "{text}"
    );
    let text = out(&node.cli(&["payment", "show", "NOPE"]));
    assert!(text.contains("NOT_FOUND"), "{text}");
    ok(node.cli(&["pay", "--amount", "2.00", "--method", "cash", "--id", "P2"]));
    let text = ok(node.cli(&["payment", "list", "--limit", "1"]));
    assert!(
        text.contains("P1") && !text.contains("P2 ") && text.contains("more: fapiao payment list --after P1"),
        "{text}"
    );
    let text = ok(node.cli(&["payment", "list", "--after", "P1"]));
    assert!(text.contains("P2") && !text.contains("\nP1 "), "{text}");
    let o = node.cli(&["payment", "list", "--limit", "0"]);
    assert!(!o.status.success(), "a page of nothing is refused: {}", out(&o));
    let text = ok(node.cli(&["block", "list"]));
    assert!(text.contains("certified") && text.contains("(UTC+8)"), "{text}");
    let text = ok(node.cli(&["block", "show", "1"]));
    assert!(
        text.contains("BLOCK 1 of chain 110001") && text.contains("[0] event ") && text.contains("time         "),
        "{text}"
    );
    let o = node.cli(&["block", "show", "0"]);
    assert!(!o.status.success(), "{}", out(&o));
    let text = ok(node.cli(&["evidence"]));
    assert!(text.contains("no equivocation evidence"), "{text}");
}

/// Maintenance: writes answer 503 MAINTENANCE with a long Retry-After, reads keep
/// working, what was admitted before still goes into blocks, and switching off resumes.
#[test]
fn maintenance_pauses_writes_only_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    let api = Api::of(&node);
    let net = node.genesis().network_id();
    let client = node.client_key();
    let client_api = fapiao_api::Client::new(&node.url(), Some(node.token()));
    let before = payment(net, dev_chain(), &client, "M1", 5_000);
    let (s, body) = api.post("/v1/events", json!({"event": hexed(&before)}));
    assert_eq!(s, 202, "{body}");

    node.maintenance("on");
    let during = payment(net, dev_chain(), &client, "M2", 5_000);
    let start = std::time::Instant::now();
    let refused = loop {
        let r = api
            .http
            .post(format!("{}/v1/events", api.url))
            .json(&json!({"event": hexed(&during)}))
            .send()
            .unwrap();
        if r.status().as_u16() == 503 {
            break r;
        }
        assert!(start.elapsed() < SETTLE, "maintenance did not take effect");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refused.headers()["retry-after"], "30");
    let body: Value = refused.json().unwrap();
    check((503, body), 503, "MAINTENANCE", None);
    // Reads and status go on; the status says so.
    assert_eq!(api.authed("/v1/payments").0, 200);
    let st = client_api.status().unwrap();
    assert!(st.maintenance);
    // What was admitted before maintenance is committed during it.
    client_api
        .wait_committed(&before.id(), Duration::from_secs(10))
        .unwrap();

    node.maintenance("off");
    let start = std::time::Instant::now();
    loop {
        let (s, _) = api.post("/v1/events", json!({"event": hexed(&during)}));
        if s == 202 || s == 200 {
            break;
        }
        assert!(start.elapsed() < SETTLE, "writes did not resume");
        std::thread::sleep(Duration::from_millis(50));
    }
    client_api
        .wait_committed(&during.id(), Duration::from_secs(10))
        .unwrap();
    assert_eq!(client_api.payments(None, 100).unwrap().len(), 2);
}
