//! Invoice failures end to end on a real node, through the CLI: each failure is recorded
//! with its reason, and a path leads back to an issued invoice without touching the
//! payment. One test per scenario on a fresh node, and one that runs every scenario on
//! one node and then reconciles.
//!
//! Each scenario returns what it adds to the reconciliation, so the run over all of them
//! checks the figures, not only the balance flag.

// Amounts are written yuan_fen (60_00 is 60.00 yuan), on purpose.
#![allow(clippy::inconsistent_digit_grouping)]

mod common;

use common::*;
use std::ops::AddAssign;
use std::path::Path;
use std::process::Command;

/// What a scenario adds to the reconciliation totals (fen).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sums {
    payments: u64,
    paid: i64,
    refunded: i64,
    invoiced: i64,
    reversed: i64,
    not_invoiced: i64,
    voided: i64,
    /// Payments with nothing invoiced and something left.
    uninvoiced: usize,
}

impl AddAssign for Sums {
    fn add_assign(&mut self, o: Sums) {
        self.payments += o.payments;
        self.paid += o.paid;
        self.refunded += o.refunded;
        self.invoiced += o.invoiced;
        self.reversed += o.reversed;
        self.not_invoiced += o.not_invoiced;
        self.voided += o.voided;
        self.uninvoiced += o.uninvoiced;
    }
}

impl Sums {
    /// `n` payments of 60.00, each with one standing invoice of 53.00.
    fn invoiced_once(n: u64) -> Sums {
        Sums {
            payments: n,
            paid: n as i64 * 60_00,
            invoiced: n as i64 * INVOICE,
            not_invoiced: n as i64 * (60_00 - INVOICE),
            ..Sums::default()
        }
    }
}

/// One line of 50.00 at 6%: every invoice here is 53.00 unless a scenario says otherwise.
const INVOICE: i64 = 53_00;
const TAX_ID: &str = "91110000600037341L";

fn pay(node: &DevNode, id: &str, amount: &str, method: &str) {
    ok(node.cli(&["pay", "--amount", amount, "--method", method, "--id", id]));
}

fn request(node: &DevNode, id: &str, payment: &str, tax_id: &str, kind: &str) -> String {
    request_with(node, id, payment, tax_id, kind, &[])
}

fn request_with(node: &DevNode, id: &str, payment: &str, tax_id: &str, kind: &str, extra: &[&str]) -> String {
    let mut args = invoice_request_args(id, payment);
    args.extend_from_slice(&["--type", kind, "--buyer-tax-id", tax_id]);
    args.extend_from_slice(extra);
    ok(node.cli(&args))
}

/// The invoice number after `ISSUED` in a request's output.
fn issued_number(text: &str) -> String {
    text.split_whitespace()
        .skip_while(|w| *w != "ISSUED")
        .nth(1)
        .unwrap_or_else(|| panic!("no issued invoice in: {text}"))
        .to_string()
}

fn invoice_json(node: &DevNode, number: &str) -> serde_json::Value {
    let o = node.cli(&["invoice", "show", number, "--json"]);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", out(&o)))
}

/// Fetches the invoice's proof bundle and checks it offline with the genesis file alone;
/// the verifier's output.
fn verify_offline(node: &DevNode, number: &str) -> String {
    let inv = invoice_json(node, number);
    let bundle = node.dir.join(format!("{number}.proof"));
    ok(node.cli(&[
        "proof",
        "get",
        number,
        "--check-code",
        inv["check_code"].as_str().unwrap(),
        "-o",
        bundle.to_str().unwrap(),
    ]));
    let genesis = node.dir.join("genesis.toml");
    let o = Command::new(bin())
        .args(["verify", bundle.to_str().unwrap(), "--genesis"])
        .arg(genesis)
        .output()
        .unwrap();
    ok(o)
}

/// Today in UTC+8 and the day before (a block near midnight may fall on either).
fn days() -> (String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let today = fapiao_engine::business_day(now);
    (fapiao_engine::format_day(today - 1), fapiao_engine::format_day(today))
}

fn reconcile(node: &DevNode) -> serde_json::Value {
    let (from, to) = days();
    let o = node.cli(&["reconcile", "--from", &from, "--to", &to, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", out(&o)));
    assert!(o.status.success(), "{}", out(&o));
    v
}

// ---- scenarios ---------------------------------------------------------------------

/// Wrong buyer details → `invoice retry` with the correction → issued, the history
/// linking both ways; corrected lines from a file.
fn wrong_buyer_details(node: &DevNode, p: &str) -> Sums {
    let (p1, p2, r1, r2, r3) = (
        format!("{p}P1"),
        format!("{p}P2"),
        format!("{p}R1"),
        format!("{p}R2"),
        format!("{p}R3"),
    );
    pay(node, &p1, "60.00", "card");
    let text = request(node, &r1, &p1, "91110000600037341M", "normal");
    assert!(
        text.contains(&format!("{r1} invoice: FAILED BUYER_TAX_ID_INVALID")),
        "{text}"
    );
    let text = ok(node.cli(&["invoice", "retry", &r1, "--id", &r2, "--buyer-tax-id", TAX_ID]));
    assert!(
        text.contains(&format!("{r1} invoice: FAILED")) && text.contains(&format!("{r2} invoice: ISSUED")),
        "{text}"
    );
    // The history reads the same from either end.
    assert!(ok(node.cli(&["invoice", "history", &r1])).contains(&format!("{r2} invoice: ISSUED")));
    // Corrected lines can come from a file.
    pay(node, &p2, "30.00", "card");
    let text = request(node, &r3, &p2, TAX_ID, "normal");
    assert!(
        text.contains(&format!("{r3} invoice: FAILED")),
        "50.00 + tax is more than the 30.00 paid: {text}"
    );
    let lines = node.dir.join(format!("{p}lines.txt"));
    std::fs::write(&lines, "Oolong tea|1|20.00|6|3070401000000000000\n").unwrap();
    let text = ok(node.cli(&["invoice", "retry", &r3, "--lines-file", lines.to_str().unwrap()]));
    assert!(text.contains("invoice: ISSUED"), "{text}");
    Sums {
        payments: 2,
        paid: 90_00,
        invoiced: INVOICE + 21_20,
        not_invoiced: (60_00 - INVOICE) + (30_00 - 21_20),
        ..Sums::default()
    }
}

/// Type not permitted → the operator's policy event → bulk re-issue of the affected
/// requests.
fn type_not_permitted(node: &DevNode, p: &str) -> Sums {
    ok(node.cli(&[
        "policy",
        "set",
        "--type",
        "normal",
        "--max-total",
        "100000.00",
        "--rate",
        "6",
    ]));
    for i in 1..=3 {
        pay(node, &format!("{p}P{i}"), "60.00", "card");
        let text = request(node, &format!("{p}R{i}"), &format!("{p}P{i}"), TAX_ID, "special_vat");
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
        "--rate",
        "6",
    ]));
    let reissue = [
        "invoice",
        "reissue",
        "--failed",
        "--reason",
        "INVOICE_TYPE_NOT_PERMITTED",
    ];
    let text = ok(node.cli(&reissue));
    assert!(text.contains("re-issued 3 request(s): 3 issued"), "{text}");
    // Nothing is left open for that reason; the payments were never touched.
    let text = ok(node.cli(&reissue));
    assert!(text.contains("no open failed request"), "{text}");
    Sums::invoiced_once(3)
}

/// Fee balance too low → the requests wait → a deposit re-issues them automatically, in
/// order, as derived events on the chain; the automatic issue proves offline. The node
/// must start with 0.10 (one invoice's fee) left.
fn fee_too_low(node: &DevNode, p: &str) -> Sums {
    for i in 1..=3 {
        pay(node, &format!("{p}P{i}"), "60.00", "card");
    }
    let first = request(node, &format!("{p}R1"), &format!("{p}P1"), TAX_ID, "normal");
    issued_number(&first);
    for i in 2..=3 {
        let text = request(node, &format!("{p}R{i}"), &format!("{p}P{i}"), TAX_ID, "normal");
        assert!(text.contains("FAILED FEE_BALANCE_TOO_LOW"), "{text}");
        assert!(
            text.contains("issued automatically once a fee deposit covers it"),
            "{text}"
        );
    }
    let listed = ok(node.cli(&["invoice", "list", "--failed"]));
    assert!(listed.contains("FEE_BALANCE_TOO_LOW: 2"), "{listed}");

    // 0.10 covers one fee: the older request is issued, the other still waits.
    let text = ok(node.cli(&["fee", "deposit", "--amount", "0.10", "--id", &format!("{p}D1")]));
    assert!(
        text.contains(&format!("re-issued automatically: request {p}R2 -> invoice")),
        "{text}"
    );
    assert!(!text.contains(&format!("{p}R3")), "{text}");
    let history = ok(node.cli(&["invoice", "history", &format!("{p}R2")]));
    assert!(
        history.contains(&format!("{p}R2 invoice: ISSUED"))
            && history.contains(&format!("issued automatically when fee deposit {p}D1 covered it")),
        "{history}"
    );
    let listed = ok(node.cli(&["invoice", "list", "--failed"]));
    assert!(listed.contains("FEE_BALANCE_TOO_LOW: 1"), "{listed}");
    // The full list keeps the failure, resolved by the automatic issue.
    let all = ok(node.cli(&["invoice", "list", "--failed", "--all"]));
    let r2_line = all
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{p}R2 ")))
        .unwrap_or_else(|| panic!("{p}R2 is listed: {all}"));
    assert!(
        r2_line.contains("-> issued") && all.contains("FEE_BALANCE_TOO_LOW: 2"),
        "{all}"
    );

    // Enough for everything after.
    let text = ok(node.cli(&["fee", "deposit", "--amount", "100.00", "--id", &format!("{p}D2")]));
    assert!(
        text.contains(&format!("re-issued automatically: request {p}R3 -> invoice")),
        "{text}"
    );
    let listed = ok(node.cli(&["invoice", "list", "--failed"]));
    assert!(!listed.contains("FEE_BALANCE_TOO_LOW"), "{listed}");

    // The automatically issued invoice proves offline like any other.
    let r2 = issued_number(&history);
    let text = verify_offline(node, &r2);
    assert!(text.starts_with("VALID") && text.contains(&r2), "{text}");
    Sums::invoiced_once(3)
}

/// A payment entered wrongly can be voided only after its invoice is red-letter
/// reversed; a refund after invoicing shows as needing a red letter until it has one.
fn wrong_payment(node: &DevNode, p: &str) -> Sums {
    let (p1, p2, p3) = (format!("{p}P1"), format!("{p}P2"), format!("{p}P3"));
    pay(node, &p1, "60.00", "card");
    let number = issued_number(&request(node, &format!("{p}R1"), &p1, TAX_ID, "normal"));
    let o = node.cli(&["reverse", "--payment", &p1, "--reason", "entered twice"]);
    assert!(
        !o.status.success() && out(&o).contains("PAYMENT_INVOICED"),
        "{}",
        out(&o)
    );
    ok(node.cli(&["redform", "start", &number, "--reason", "issue_error"]));
    ok(node.cli(&["void", "--payment", &p1, "--reason", "entered twice"]));

    pay(node, &p2, "100.00", "wechat");
    let number2 = issued_number(&request(node, &format!("{p}R2"), &p2, TAX_ID, "normal"));
    ok(node.cli(&[
        "refund",
        "--payment",
        &p2,
        "--amount",
        "80.00",
        "--id",
        &format!("{p}RF1"),
    ]));
    pay(node, &p3, "10.00", "cash");
    let v = reconcile(node);
    assert_eq!(v["balanced"], true, "{v}");
    let needs: Vec<&serde_json::Value> = v["needs_red_letter"].as_array().unwrap().iter().collect();
    assert!(
        needs.contains(&&serde_json::json!([p2, number2])),
        "{p2} was refunded below its invoice: {v}"
    );
    // After the red letter the payment's invoice is reversed: it no longer needs one.
    ok(node.cli(&["redform", "start", &number2, "--reason", "sales_return"]));
    let v = reconcile(node);
    assert!(
        !v["needs_red_letter"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n[0] == p2.as_str()),
        "{v}"
    );
    Sums {
        payments: 2,
        paid: 110_00,
        refunded: 80_00,
        invoiced: INVOICE,
        reversed: INVOICE,
        not_invoiced: (100_00 - 80_00) + 10_00,
        voided: 60_00,
        uninvoiced: 2,
    }
}

/// An invoice issued with the wrong buyer is red-letter reversed and a corrected invoice
/// is issued for the same payment, linked both ways: in the state, the API, the reprint
/// and the offline proof. Returns the sums and the two invoice numbers.
fn red_letter_then_corrected(node: &DevNode, p: &str) -> (Sums, String, String) {
    let p1 = format!("{p}P1");
    pay(node, &p1, "60.00", "alipay");
    let wrong = issued_number(&request(node, &format!("{p}R1"), &p1, TAX_ID, "normal"));
    let red = ok(node.cli(&["redform", "start", &wrong, "--reason", "issue_error"]));
    assert!(red.contains("REVERSED"), "{red}");
    let corrected = issued_number(&request_with(
        node,
        &format!("{p}R2"),
        &p1,
        TAX_ID,
        "normal",
        &["--replaces", &wrong],
    ));
    let old = invoice_json(node, &wrong);
    let new = invoice_json(node, &corrected);
    assert_eq!(old["status"], "reversed", "{old}");
    assert_eq!(old["replaced_by"], corrected.as_str(), "{old}");
    assert_eq!(new["replaces"], wrong.as_str(), "{new}");
    assert_eq!(new["status"], "issued", "{new}");
    assert!(ok(node.cli(&["invoice", "show", &wrong])).contains(&format!("replaced by corrected invoice {corrected}")));
    assert!(ok(node.cli(&["invoice", "show", &corrected])).contains(&format!("corrects (replaces) {wrong}")));
    // A second correction of the same invoice is refused with its reason.
    let again = request_with(node, &format!("{p}R3"), &p1, TAX_ID, "normal", &["--replaces", &wrong]);
    assert!(
        again.contains("FAILED REPLACES_INVALID") && again.contains(&format!("already replaced by {corrected}")),
        "{again}"
    );
    // The offline proof of the reversed invoice names its replacement.
    let text = verify_offline(node, &wrong);
    assert!(
        text.contains("reversed by") && text.contains(&format!("replaced by corrected invoice {corrected}")),
        "{text}"
    );
    (
        Sums {
            payments: 1,
            paid: 60_00,
            invoiced: 2 * INVOICE,
            reversed: INVOICE,
            not_invoiced: 60_00 - INVOICE,
            ..Sums::default()
        },
        wrong,
        corrected,
    )
}

/// Maintenance: the CLI's payment waits in the outbox with the node's reason, reads keep
/// working, and it is delivered once maintenance is off.
fn maintenance(node: &DevNode, p: &str) -> Sums {
    let id = format!("{p}Q1");
    node.maintenance("on");
    let o = node.cli(&["pay", "--amount", "9.00", "--method", "cash", "--id", &id]);
    assert!(
        o.status.success() && out(&o).contains("queued") && out(&o).contains("MAINTENANCE"),
        "{}",
        out(&o)
    );
    assert!(ok(node.cli(&["status"])).contains("MAINTENANCE"));
    node.maintenance("off");
    let o = node.cli(&["outbox", "flush", "--wait", "20"]);
    assert!(out(&o).contains("delivered 1"), "{}", out(&o));
    Sums {
        payments: 1,
        paid: 9_00,
        not_invoiced: 9_00,
        uninvoiced: 1,
        ..Sums::default()
    }
}

/// The node dies twice in the middle of a POS stream: the outbox resends, and every
/// payment is recorded exactly once.
fn pos_stream_through_crashes(node: &mut DevNode, p: &str, count: usize) -> Sums {
    let outbox = node.dir.join(format!("{p}pos-outbox"));
    pos_stream(node, &outbox, &format!("{p}POS"), count, 2);
    let client = fapiao_api::Client::new(&node.url(), Some(node.token()));
    let start = std::time::Instant::now();
    loop {
        let last = client.payment(&format!("{p}POS-{:05}", count - 1));
        if last.is_ok() || start.elapsed() > std::time::Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let paid: i64 = (0..count as i64).map(|i| 100 + i).sum();
    Sums {
        payments: count as u64,
        paid,
        not_invoiced: paid,
        uninvoiced: count,
        ..Sums::default()
    }
}

// ---- reprint -----------------------------------------------------------------------

/// Headless Chromium with the flags this machine's closed network needs.
fn chromium(profile: &Path, args: &[&str]) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(args)
        .output()
        .expect("chromium runs (the README's test command installs it)")
}

/// Reads the one QR code in a greyscale image.
fn read_qr(w: usize, h: usize, grey: impl Fn(usize, usize) -> u8) -> String {
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, grey);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("the QR code decodes").1
}

/// The QR code drawn in block characters in the text reprint, read back.
fn read_text_qr(text: &str) -> String {
    let rows: Vec<Vec<char>> = text
        .lines()
        .filter(|l| !l.is_empty() && l.chars().all(|c| matches!(c, ' ' | '▀' | '▄' | '█')))
        .map(|l| l.chars().collect())
        .collect();
    let width = rows.iter().map(Vec::len).max().unwrap();
    // Two module rows per character row; 4x4 pixels per module for the detector.
    let module = |x: usize, y: usize| -> bool {
        let c = rows[y / 2].get(x).copied().unwrap_or(' ');
        match c {
            '█' => true,
            '▀' => y % 2 == 0,
            '▄' => y % 2 == 1,
            _ => false,
        }
    };
    let scale = 4;
    read_qr(width * scale, rows.len() * 2 * scale, |x, y| {
        if module(x / scale, y / scale) {
            0
        } else {
            255
        }
    })
}

/// The text of a rendered page's body: tags and styles dropped, entities decoded,
/// whitespace collapsed.
fn page_text(dom: &str) -> String {
    let body = dom.split("<body>").nth(1).unwrap_or(dom);
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Renders `invoice` as text and HTML, checks the text's QR code, renders the HTML in
/// headless Chromium and checks what it shows: the document's fields and links, and the
/// QR code read from a screenshot, whose address opens the verification page, which
/// Chromium renders with the verified result and a bundle that verifies offline.
fn reprint(node: &DevNode, invoice: &str, must_show: &[&str]) {
    let inv = invoice_json(node, invoice);
    let check_code = inv["check_code"].as_str().unwrap();
    let total = fapiao_core::Fen::from_fen(inv["total_fen"].as_i64().unwrap()).to_string();
    let date = fapiao_engine::format_day(fapiao_engine::business_day(inv["issued_at_ms"].as_u64().unwrap()));
    let verify = format!("{}/verify?number={invoice}&issue_date={date}&total={total}", node.url());
    let day = date.replace('-', "");
    let payload = format!("FAPIAO1,{invoice},{check_code},{total},{day},{verify}");

    let text = ok(node.cli(&["invoice", "show", invoice, "--format", "text"]));
    for s in must_show
        .iter()
        .chain(&[invoice, check_code, "Shanghai Trading Co", "Oolong tea"])
    {
        assert!(text.contains(s), "the text reprint shows {s:?}:\n{text}");
    }
    assert_eq!(read_text_qr(&text), payload, "the text reprint's QR code");

    let html = node.dir.join(format!("{invoice}.html"));
    ok(node.cli(&[
        "invoice",
        "show",
        invoice,
        "--format",
        "html",
        "-o",
        html.to_str().unwrap(),
    ]));
    let url = format!("file://{}", html.display());
    let profile = tempfile::tempdir().unwrap();
    let o = chromium(profile.path(), &["--dump-dom", &url]);
    assert!(o.status.success(), "{}", out(&o));
    let dom = String::from_utf8_lossy(&o.stdout).into_owned();
    for (id, value) in [
        ("number", invoice),
        ("check-code", check_code),
        ("total", &format!("Total (tax included): CNY {total}")),
    ] {
        assert!(
            dom.contains(&format!("id=\"{id}\">{value}")),
            "the rendered page shows {id} {value}:\n{dom}"
        );
    }
    assert!(dom.contains("<svg"), "the QR code is drawn inline:\n{dom}");
    let shown = page_text(&dom);
    for s in must_show.iter().chain(&["Shanghai Trading Co", "Oolong tea"]) {
        assert!(shown.contains(s), "the rendered page shows {s:?}:\n{shown}");
    }

    let shot = profile.path().join("shot.png");
    let o = chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,1300",
            &url,
        ],
    );
    assert!(o.status.success(), "{}", out(&o));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(std::fs::read(&shot).unwrap()));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let decoded = read_qr(w, h, |x, y| {
        let i = (y * w + x) * channels;
        let px = &buf[i..i + channels.min(3)];
        (px.iter().map(|v| u32::from(*v)).sum::<u32>() / px.len() as u32) as u8
    });
    assert_eq!(decoded, payload, "the QR code Chromium shows");
    verification_page(
        node,
        &verify,
        invoice,
        must_show.iter().any(|s| s.starts_with("REVERSED")),
    );
}

/// The verification page at `url` (the reprint's QR address), rendered by Chromium as a
/// person's browser shows it: genuine, with the invoice's status and the block it is
/// proven as of, and a bundle to download that `fapiao verify` accepts; wrong factors
/// give the one refusal.
fn verification_page(node: &DevNode, url: &str, invoice: &str, reversed: bool) {
    let profile = tempfile::tempdir().unwrap();
    let o = chromium(profile.path(), &["--dump-dom", url]);
    assert!(o.status.success(), "{}", out(&o));
    let dom = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(dom.contains("id=\"result\">Genuine"), "{dom}");
    assert!(dom.contains(&format!("id=\"number\">{invoice}<")), "{dom}");
    let shown = page_text(&dom);
    let status = if reversed {
        "Reversed by red invoice(s)"
    } else {
        "Issued, standing in full"
    };
    for s in [
        status,
        "Proven as of",
        "certified block",
        "Checks left today",
        "Dev Merchant",
    ] {
        assert!(shown.contains(s), "the verification page shows {s:?}:\n{shown}");
    }
    let href = dom
        .split("id=\"bundle\"")
        .nth(1)
        .and_then(|rest| rest.split("base64,").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("the page links the bundle");
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, href).unwrap();
    let file = profile.path().join("page.bundle");
    std::fs::write(&file, bytes).unwrap();
    let genesis = node.dir.join("genesis.toml");
    let text = ok(Command::new(bin())
        .args(["verify", file.to_str().unwrap(), "--genesis", genesis.to_str().unwrap()])
        .output()
        .unwrap());
    assert!(text.contains("VALID") && text.contains(invoice), "{text}");
    // A wrong total: the one refusal, with the form to try again.
    let wrong = url.replace("&total=", "&total=1");
    let o = chromium(profile.path(), &["--dump-dom", &wrong]);
    let dom = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(dom.contains("id=\"result\">No invoice matches"), "{dom}");
    assert!(dom.contains("<form"), "{dom}");
}

// ---- tests -------------------------------------------------------------------------

/// The catalogue: the CLI (without a node) and the API serve the same entries, every
/// reason with its cause and remedy.
#[test]
fn the_failure_catalogue_is_served_by_the_cli_and_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    let o = Command::new(bin())
        .args(["invoice", "catalogue", "--json"])
        .output()
        .unwrap();
    let cli: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", out(&o)));
    let api: serde_json::Value = reqwest::blocking::get(format!("{}/v1/failure-catalogue", node.url()))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(cli, api);
    let entries = cli.as_array().unwrap();
    assert_eq!(entries.len(), fapiao_core::event::FailureReason::ALL.len());
    assert_eq!(entries.len(), 31);
    for e in entries {
        assert!(
            !e["cause"].as_str().unwrap().is_empty() && !e["remedy"].as_str().unwrap().is_empty(),
            "{e}"
        );
    }
    let fee = entries.iter().find(|e| e["code"] == "FEE_BALANCE_TOO_LOW").unwrap();
    assert_eq!(fee["retryable"], true);
    let text = ok(Command::new(bin()).args(["invoice", "catalogue"]).output().unwrap());
    assert!(text.contains("REPLACES_INVALID") && text.contains("cause:"), "{text}");
}

#[test]
fn wrong_buyer_details_then_a_corrected_retry_is_issued() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    wrong_buyer_details(&node, "");
}

#[test]
fn a_type_not_permitted_then_an_operator_policy_event_then_bulk_reissue() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    type_not_permitted(&node, "");
}

#[test]
fn fee_too_low_then_a_deposit_reissues_automatically() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start_with(dir.path(), free_port(), &["--fee-balance", "0.10"]);
    fee_too_low(&node, "");
}

#[test]
fn a_wrong_payment_is_reversed_after_its_red_letter_and_reconciliation_balances() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    let sums = wrong_payment(&node, "");
    let v = reconcile(&node);
    assert_eq!(v["balanced"], true, "{v}");
    let t = &v["total"];
    assert_eq!(t["paid_fen"], sums.paid, "{v}");
    assert_eq!(t["refunded_fen"], sums.refunded);
    assert_eq!(t["invoiced_fen"], sums.invoiced);
    assert_eq!(t["reversed_fen"], sums.reversed);
    assert_eq!(t["not_invoiced_fen"], sums.not_invoiced);
    assert_eq!(t["voided_fen"], sums.voided);
    assert_eq!(v["uninvoiced"], serde_json::json!([["P2", 2000], ["P3", 1000]]));
    let (from, to) = days();
    let table = ok(node.cli(&["reconcile", "--from", &from, "--to", &to]));
    assert!(table.contains("balanced"), "{table}");
    let csv = ok(node.cli(&["reconcile", "--from", &from, "--to", &to, "--format", "csv"]));
    assert!(
        csv.starts_with("day,method,payments,paid,refunded,invoiced,reversed,not_invoiced,voided"),
        "{csv}"
    );
}

#[test]
fn a_red_letter_then_a_corrected_invoice_linked_both_ways_and_reprinted() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path(), free_port());
    let (_, wrong, corrected) = red_letter_then_corrected(&node, "");
    reprint(
        &node,
        &corrected,
        &[
            "Electronic invoice",
            "ISSUED",
            &format!("Corrects (replaces): {wrong}"),
            "Dev Merchant",
        ],
    );
    reprint(
        &node,
        &wrong,
        &["REVERSED by red-letter", &format!("Replaced by: {corrected}")],
    );
}

/// Every scenario on one node, one after the other, then the reconciliation: it balances,
/// and its totals are the sum of what each scenario did.
#[test]
fn every_failure_scenario_on_one_node_then_reconciliation_balances() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start_with(dir.path(), free_port(), &["--fee-balance", "0.10"]);
    let mut sums = Sums::default();
    sums += fee_too_low(&node, "F-");
    sums += wrong_buyer_details(&node, "B-");
    sums += type_not_permitted(&node, "T-");
    sums += pos_stream_through_crashes(&mut node, "S-", 400);
    sums += maintenance(&node, "M-");
    sums += wrong_payment(&node, "W-");
    sums += red_letter_then_corrected(&node, "C-").0;

    let v = reconcile(&node);
    assert_eq!(v["balanced"], true, "{v}");
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    let t = &v["total"];
    let got = Sums {
        payments: t["payments"].as_u64().unwrap(),
        paid: t["paid_fen"].as_i64().unwrap(),
        refunded: t["refunded_fen"].as_i64().unwrap(),
        invoiced: t["invoiced_fen"].as_i64().unwrap(),
        reversed: t["reversed_fen"].as_i64().unwrap(),
        not_invoiced: t["not_invoiced_fen"].as_i64().unwrap(),
        voided: t["voided_fen"].as_i64().unwrap(),
        uninvoiced: v["uninvoiced"].as_array().unwrap().len(),
    };
    assert_eq!(got, sums, "{v}");
    assert_eq!(v["needs_red_letter"], serde_json::json!([]), "{v}");
    // Every failure found its way to an issued invoice, except the refused second
    // correction, which stays open on purpose.
    let o = node.cli(&["invoice", "list", "--failed", "--json"]);
    let failed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", out(&o)));
    assert_eq!(failed["counts"], serde_json::json!({"REPLACES_INVALID": 1}), "{failed}");
}
