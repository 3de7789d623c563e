//! The OpenAPI document against the running server, so the two cannot drift: every
//! operation the document lists is routed, and every status the server answers to a
//! probe of it (no token, a wrong token, good and malformed path parameters, malformed
//! and out-of-range query parameters, an unknown parameter, a wrong or missing body) is
//! one the document lists for that operation, with the `{code, message, field}` body the
//! document promises for errors.

mod common;

use common::*;
use serde_json::Value;

/// A plausible value for a path parameter, by operation path and name: what a client
/// would send.
fn sample(path: &str, param: &str) -> &'static str {
    match param {
        "number" => "26110001000000000001",
        "form" => "1",
        "height" => "1",
        "chain" => "110001",
        "id" if path.starts_with("/v1/events/") => "abababababababababababababababababababababababababababababababab",
        "id" => "P1",
        _ => "1",
    }
}

/// Values that a server must refuse cleanly wherever a parameter is.
const BAD: [&str; 4] = ["x", "-1", "99999999999999999999999999", "%E2%80%AE"];

/// Whether `v` fits a path parameter's documented schema (its pattern or integer range):
/// the probes' good values must.
fn sample_fits(schema: &Value, v: &str) -> bool {
    match schema["pattern"].as_str() {
        Some(r"^[0-9]{20}$") => v.len() == 20 && v.bytes().all(|b| b.is_ascii_digit()),
        Some(r"^[0-9a-fA-F]{64}$") => v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()),
        Some(other) => panic!("no sample rule for the pattern {other}: add one"),
        None if schema["type"] == "integer" => v.parse::<u64>().is_ok_and(|n| {
            schema["minimum"].as_u64().is_none_or(|m| n >= m) && schema["maximum"].as_u64().is_none_or(|m| n <= m)
        }),
        None => true,
    }
}

struct Probe {
    /// The operation: its path as documented and its method.
    op: (String, String),
    what: String,
    url: String,
    token: Option<String>,
    body: Option<(&'static str, Vec<u8>)>,
    /// The one status the document's schema for the parameter promises.
    must_be: Option<u16>,
    /// A status the schema rules out (a value inside its bounds is not refused).
    must_not: Option<u16>,
}

/// Whether a schema is an integer's (utoipa may write `["integer", "null"]` for an
/// optional one).
fn is_integer(schema: &Value) -> bool {
    schema["type"] == "integer" || schema["type"].as_array().is_some_and(|t| t.contains(&"integer".into()))
}

#[test]
fn every_status_the_server_answers_is_in_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("n"), free_port());
    // Something to read: a payment and an invoice.
    issue(&node, "A");
    let http = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let doc: Value = http
        .get(format!("{}/openapi.json", node.url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let codes: Vec<String> = doc["components"]["schemas"]["ApiError"]["properties"]["code"]["enum"]
        .as_array()
        .expect("ApiError.code lists its values")
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let token = node.token();
    let mut probes = Vec::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let in_path: Vec<String> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
            let in_query: Vec<String> = params
                .iter()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
            let fill = |bad: Option<(&str, &str)>| {
                let mut url = path.clone();
                for p in &in_path {
                    let v = match bad {
                        Some((name, v)) if name == p => v,
                        _ => sample(path, p),
                    };
                    url = url.replace(&format!("{{{p}}}"), v);
                }
                url
            };
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let probe =
                |what: String, url: String, token: Option<String>, body: Option<(&'static str, Vec<u8>)>| Probe {
                    op: (path.clone(), method.clone()),
                    what,
                    url: format!("{}{}", node.url(), url),
                    token,
                    body,
                    must_be: None,
                    must_not: None,
                };
            let good = fill(None);
            probes.push(probe("as documented".into(), good.clone(), Some(token.clone()), None));
            if secured {
                probes.push(probe("no token".into(), good.clone(), None, None));
                probes.push(probe("wrong token".into(), good.clone(), Some("x".repeat(40)), None));
            }
            for p in &in_path {
                // A parameter the document types as an integer or constrains by a
                // pattern must be refused with 400 for each bad value (none of which is
                // an integer in range or matches such a pattern); the good sample must
                // fit the schema.
                let schema = &params.iter().find(|x| x["name"] == p.as_str()).unwrap()["schema"];
                assert!(
                    sample_fits(schema, sample(path, p)),
                    "{method} {path}: sample {p} does not fit {schema}"
                );
                let constrained = schema["type"] == "integer" || schema["pattern"].is_string();
                for v in BAD {
                    let mut pr = probe(format!("path {p}={v}"), fill(Some((p, v))), Some(token.clone()), None);
                    pr.must_be = constrained.then_some(400);
                    probes.push(pr);
                }
            }
            for q in &in_query {
                // An integer query parameter states both bounds, and the server holds to
                // them: one past either is refused with 400, the bounds themselves are not.
                let schema = &params.iter().find(|x| x["name"] == q.as_str()).unwrap()["schema"];
                if is_integer(schema) {
                    let (Some(min), Some(max)) = (schema["minimum"].as_f64(), schema["maximum"].as_f64()) else {
                        panic!("{method} {path}: the integer query parameter {q} states no bounds: {schema}")
                    };
                    let (min, max) = (min as u64, max as u64);
                    let edges = [
                        (min.checked_sub(1), true),
                        (Some(min), false),
                        (Some(max), false),
                        (max.checked_add(1), true),
                    ];
                    for (v, refused) in edges {
                        let Some(v) = v else { continue };
                        let mut pr = probe(
                            format!("query {q}={v} (a bound)"),
                            format!("{good}?{q}={v}"),
                            Some(token.clone()),
                            None,
                        );
                        if refused {
                            pr.must_be = Some(400);
                        } else {
                            pr.must_not = Some(400);
                        }
                        probes.push(pr);
                    }
                }
                for v in BAD {
                    probes.push(probe(
                        format!("query {q}={v}"),
                        format!("{good}?{q}={v}"),
                        Some(token.clone()),
                        None,
                    ));
                }
            }
            probes.push(probe(
                "unknown query".into(),
                format!("{good}?bogus=1"),
                Some(token.clone()),
                None,
            ));
            if method == "post" {
                probes.push(probe(
                    "empty JSON".into(),
                    good.clone(),
                    Some(token.clone()),
                    Some(("application/json", b"{}".to_vec())),
                ));
                probes.push(probe(
                    "not JSON".into(),
                    good.clone(),
                    Some(token.clone()),
                    Some(("application/json", b"{".to_vec())),
                ));
                probes.push(probe(
                    "wrong type".into(),
                    good.clone(),
                    Some(token.clone()),
                    Some(("text/plain", b"hi".to_vec())),
                ));
                // An oversized body (413) is tested in tests/api.rs: the server may close the
                // connection before the client has written it all, which this loop would
                // read as a transport error.
                // The body's documented bounds: at each bound the size is not refused, one
                // past it is (413).
                let schemas = &doc["components"]["schemas"];
                let hex_max = schemas["SubmitRequest"]["properties"]["event"]["maxLength"]
                    .as_u64()
                    .expect("the event's hex states its maxLength") as usize;
                let items_max = schemas["SubmitBatchRequest"]["properties"]["events"]["maxItems"]
                    .as_u64()
                    .expect("a batch states its maxItems") as usize;
                let body = |len: usize, items: usize| {
                    let one = serde_json::Value::from("0".repeat(len));
                    let v = if path == "/v1/events" {
                        serde_json::json!({ "event": one })
                    } else {
                        serde_json::json!({ "events": vec![one; items] })
                    };
                    Some(("application/json", serde_json::to_vec(&v).unwrap()))
                };
                let mut bound = |what: String, b, refused: bool| {
                    let mut pr = probe(what, good.clone(), Some(token.clone()), b);
                    if refused {
                        pr.must_be = Some(413);
                    } else {
                        pr.must_not = Some(413);
                    }
                    probes.push(pr);
                };
                if path == "/v1/events" {
                    bound(format!("event of {hex_max} hex digits"), body(hex_max, 1), false);
                    bound(
                        format!("event of {} hex digits", hex_max + 2),
                        body(hex_max + 2, 1),
                        true,
                    );
                } else {
                    // An item over its length is refused alone, inside a 200 answer.
                    bound(format!("{items_max} events"), body(2, items_max), false);
                    bound(format!("{} events", items_max + 1), body(2, items_max + 1), true);
                }
            }
        }
    }
    assert!(operations >= 20, "the document lists {operations} operations");
    let mut mismatches = Vec::new();
    for p in &probes {
        let mut r = match p.op.1.as_str() {
            "post" => http.post(&p.url),
            _ => http.get(&p.url),
        };
        if let Some(t) = &p.token {
            r = r.bearer_auth(t);
        }
        if let Some((ct, body)) = &p.body {
            r = r.header("content-type", *ct).body(body.clone());
        }
        let resp = r.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let (path, method) = &p.op;
        let what = format!("{} {path}, {}", method.to_uppercase(), p.what);
        if p.must_not == Some(status) {
            mismatches.push(format!(
                "{what}: {status}, but the value is within the documented bounds ({text:.120})"
            ));
            continue;
        }
        if p.must_be.is_some_and(|m| m != status) {
            mismatches.push(format!(
                "{what}: {status}, but the parameter's schema refuses it ({text:.120})"
            ));
            continue;
        }
        if doc["paths"][path][method]["responses"]
            .get(status.to_string())
            .is_none()
        {
            mismatches.push(format!("{what}: {status} is not documented ({text:.120})"));
            continue;
        }
        if status >= 400 {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if !(body["code"].is_string() && body["message"].is_string()) {
                mismatches.push(format!("{what}: {status} without an error body ({text:.120})"));
                continue;
            }
            // The code is one the document lists, served with the status that code
            // always has.
            let code = body["code"].as_str().unwrap_or_default();
            if !codes.iter().any(|c| c == code) {
                mismatches.push(format!("{what}: code {code} is not in the document's list"));
            }
            match code.parse::<fapiao_domain::ErrorCode>() {
                Ok(c) if c.http_status() == status => {}
                Ok(c) => mismatches.push(format!(
                    "{what}: {code} answered {status}, but it is a {}",
                    c.http_status()
                )),
                Err(e) => mismatches.push(format!("{what}: {e}")),
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} probes disagree with /openapi.json:\n{}",
        mismatches.len(),
        probes.len(),
        mismatches.join("\n")
    );
}

/// Routes that are deliberately not part of the JSON API, each with why.
const NOT_API: [(&str, &str); 4] = [
    ("/verify", "the verification page for people (HTML)"),
    ("/metrics", "Prometheus text for the operator's scraper"),
    ("/health", "a liveness probe answering `ok`"),
    ("/openapi.json", "the document itself"),
];

/// Every route the server defines is in the document or deliberately left out of it
/// (`NOT_API`), and the document names no route the server lacks. The routes are read
/// from the router's source, so a new route cannot be added without deciding.
#[test]
fn every_route_is_documented_or_deliberately_not_api() {
    let source = include_str!("../crates/fapiao-api/src/server.rs");
    let routed: std::collections::BTreeSet<String> = source
        .split(".route(\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect();
    assert!(routed.len() >= 20, "read {} routes from the router", routed.len());
    let doc: Value = serde_json::to_value(<fapiao_api::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
    // `GET /v1/invoices/{number}.xml` is served by the `/v1/invoices/{number}` route.
    let documented: std::collections::BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|p| p.trim_end_matches(".xml").to_string())
        .collect();
    let mut problems = Vec::new();
    for r in &routed {
        let excused = NOT_API.iter().any(|(p, _)| p == r);
        match (documented.contains(r), excused) {
            (false, false) => problems.push(format!("{r} is routed but not in the document")),
            (true, true) => problems.push(format!("{r} is documented but listed as not API")),
            _ => {}
        }
    }
    for d in &documented {
        if !routed.contains(d) {
            problems.push(format!("{d} is in the document but not routed"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Properties that hold free text although their name is one closed sets use.
const FREE_TEXT: [(&str, &str); 4] = [
    ("VoidDto", "reason"),
    ("PaymentRefundedDto", "reason"),
    ("PaymentVoidedDto", "reason"),
    // A member's six-digit code, not an error code.
    ("MemberDto", "code"),
];

/// Closed sets are enums in the document: every property named like one (a status, a
/// state, a kind, ...) lists its values, directly or through a referenced enum schema, so
/// a generated client cannot be handed a value it does not know.
#[test]
fn closed_sets_are_enums_in_the_document() {
    let doc: Value = serde_json::to_value(<fapiao_api::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
    let closed = [
        "status",
        "state",
        "kind",
        "outcome",
        "initiator",
        "trigger",
        "invoice_type",
        "code",
        "reason",
        "flag",
        "tax_flag",
        "method",
        "currency",
    ];
    let lists_values = |p: &Value| {
        let s = p.to_string();
        p.get("enum").is_some() || s.contains("\"$ref\"")
    };
    let mut problems = Vec::new();
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let Some(props) = schema["properties"].as_object() else {
            continue;
        };
        for (prop, p) in props {
            if closed.contains(&prop.as_str())
                && !FREE_TEXT.contains(&(name.as_str(), prop.as_str()))
                && !lists_values(p)
            {
                problems.push(format!("{name}.{prop} is a closed set without an enum"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
