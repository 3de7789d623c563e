//! Public verification of an invoice: the rule both doors share (the JSON endpoint
//! `GET /v1/verify/{number}` and the page for people, `GET /verify`), and the page.
//!
//! An invoice is found by its number and either its check code or, as the national
//! platform asks for a fully digitalised invoice, its issue date (UTC+8) and its total
//! including tax. Wrong factors, an unknown number and malformed input are one answer.
//! Each invoice verifies a bounded number of times a day on a node.

use crate::server::AppState;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use fapiao_core::{Fen, InvoiceNumber};
use fapiao_engine::{business_day, business_ms_of_day, format_day, format_time, AsOf, Factors, ProofError};
use fapiao_proof::{Bundle, Status};
use serde::Deserialize;

/// Invoices verified today on this node, with how often: each invoice may be checked a
/// bounded number of times a day, as on the national platform. Only successful checks
/// count (a wrong factor costs the invoice's holder nothing); once an invoice is used up,
/// every request for it is refused until midnight (UTC+8), whatever its factors, so the
/// refusal says nothing about them. In memory: a restart starts the day's counts again.
#[derive(Default)]
pub(crate) struct DailyChecks {
    day: u64,
    counts: std::collections::HashMap<InvoiceNumber, u32>,
}

/// Distinct invoices counted per day; past it, an invoice not counted yet is refused as
/// used up until the next day (bounds the memory a flood of genuine checks can take).
const CHECKED_INVOICES_PER_DAY_MAX: usize = 200_000;

impl DailyChecks {
    fn roll(&mut self, today: u64) {
        if self.day != today {
            self.day = today;
            self.counts.clear();
        }
    }

    fn used(&mut self, today: u64, number: &InvoiceNumber, limit: u32) -> u32 {
        self.roll(today);
        match self.counts.get(number) {
            Some(n) => *n,
            None if self.counts.len() >= CHECKED_INVOICES_PER_DAY_MAX => limit,
            None => 0,
        }
    }

    fn spend(&mut self, today: u64, number: InvoiceNumber, limit: u32) -> u32 {
        self.roll(today);
        let n = self.counts.entry(number).or_insert(0);
        *n += 1;
        limit.saturating_sub(*n)
    }
}

/// The factors of a verification, as a query string carries them.
#[derive(Deserialize, utoipa::IntoParams, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyQuery {
    /// The invoice's check code (20 digits); or give `issue_date` and `total`.
    pub(crate) check_code: Option<String>,
    /// The issue date printed on the invoice, `YYYY-MM-DD` (UTC+8), with `total`.
    pub(crate) issue_date: Option<String>,
    /// The total including tax (价税合计) in yuan, e.g. `53.00`, with `issue_date`.
    pub(crate) total: Option<String>,
    /// Prove the status as of this certified height of the invoice's chain (digits), or
    /// as of the end of this date (`YYYY-MM-DD`, UTC+8); by default as of the chain's
    /// newest certified block. Malformed, like the factors, it gets the same 404 as an
    /// unknown invoice.
    pub(crate) as_of: Option<String>,
}

impl VerifyQuery {
    /// The factors given, if they are one complete, well-formed set (an empty field is
    /// no field: that is what an HTML form sends).
    fn factors(&self) -> Option<Factors> {
        fn given(f: &Option<String>) -> Option<&str> {
            f.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        match (given(&self.check_code), given(&self.issue_date), given(&self.total)) {
            (Some(c), None, None) => c.parse().ok().map(Factors::CheckCode),
            (None, Some(d), Some(t)) => Some(Factors::IssueDateAndTotal {
                day: fapiao_engine::parse_day(d)?,
                total: t.parse().ok().filter(|f: &Fen| !f.is_negative())?,
            }),
            _ => None,
        }
    }

    /// The state asked for: `None` for a malformed `as_of`.
    fn as_of(&self) -> Option<AsOf> {
        match self.as_of.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => Some(AsOf::NewestCertified),
            Some(v) => AsOf::parse(v),
        }
    }
}

/// What a verification found.
pub(crate) enum Checked {
    /// The invoice, with the checks of it left today.
    Found { bundle: Box<Bundle>, left: u32 },
    /// No invoice with this number and these factors (or malformed input).
    NotFound,
    /// Checked its daily number of times already.
    Exhausted { limit: u32, retry_secs: u64 },
    /// Its chain's newest block awaits its certificate, or the height asked for is not
    /// certified.
    NotCertified,
    /// The height asked for is older than the node keeps.
    NotKept { oldest: u64, days: u64 },
}

fn booking_words(b: fapiao_core::event::BookingStatus) -> &'static str {
    use fapiao_core::event::BookingStatus as B;
    match b {
        B::NotBooked => "not booked (未入账)",
        B::BookedDeducted => "booked, VAT deducted (已入账（扣除）)",
        B::BookedNotDeducted => "booked, not deducted (已入账（不扣除）)",
        B::Withdrawn => "booking withdrawn (入账撤销)",
    }
}

pub(crate) fn wall_ms() -> u64 {
    fapiao_engine::wall_clock().0
}

/// Why a verification could not be answered.
pub(crate) enum CheckFailed {
    /// Storage failed.
    Store(fapiao_store::StoreError),
    /// The proof task died.
    Task(String),
}

/// Verifies invoice `number` with the factors of `q`, spending one of its daily checks
/// when found.
pub(crate) async fn check(s: &AppState, number: &str, q: &VerifyQuery) -> Result<Checked, CheckFailed> {
    let (Ok(number), Some(factors), Some(as_of)) = (number.trim().parse::<InvoiceNumber>(), q.factors(), q.as_of())
    else {
        return Ok(Checked::NotFound);
    };
    let now = wall_ms();
    let today = business_day(now);
    let limit = s.config.verify_checks_per_day;
    let used = s
        .checks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .used(today, &number, limit);
    if used >= limit {
        return Ok(Checked::Exhausted {
            limit,
            retry_secs: (86_400_000 - business_ms_of_day(now)).div_ceil(1000),
        });
    }
    let engine = s.engine.clone();
    let built = tokio::task::spawn_blocking(move || engine.proof_bundle(&number, &factors, as_of))
        .await
        .map_err(|e| CheckFailed::Task(e.to_string()))?;
    match built {
        Ok(bundle) => {
            let left = s
                .checks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .spend(today, number, limit);
            Ok(Checked::Found {
                bundle: Box::new(bundle),
                left,
            })
        }
        Err(ProofError::NotFound) => Ok(Checked::NotFound),
        Err(ProofError::NotCertified) => Ok(Checked::NotCertified),
        Err(ProofError::NotKept { oldest, days }) => Ok(Checked::NotKept { oldest, days }),
        Err(ProofError::Store(e)) => Err(CheckFailed::Store(e)),
    }
}

/// The page's own query: the number and the factors, as its form sends them.
#[derive(Deserialize, Default)]
pub(crate) struct PageQuery {
    number: Option<String>,
    check_code: Option<String>,
    issue_date: Option<String>,
    total: Option<String>,
}

/// The verification page for people: a form for the invoice's number and its factors
/// and, when they are given, the verified result. Server-rendered HTML embedded in the
/// binary; the reprint's QR code opens it with the factors filled in.
// Long: one arm per verification outcome, each rendering its own answer.
pub(crate) async fn page(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let Some(number) = q.number.clone().filter(|n| !n.trim().is_empty()) else {
        return render(StatusCode::OK, &q, "");
    };
    if !s.limiter.allow(peer.ip()) {
        let body = "<p class=\"refused\" id=\"result\">Too many checks from this address in one second: wait a moment and try again.</p>";
        let mut r = render(StatusCode::TOO_MANY_REQUESTS, &q, body);
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return r;
    }
    let vq = VerifyQuery {
        check_code: q.check_code.clone(),
        issue_date: q.issue_date.clone(),
        total: q.total.clone(),
        as_of: None,
    };
    match check(&s, &number, &vq).await {
        Ok(Checked::Found { bundle, left }) => match fapiao_proof::verify(&bundle, s.engine.genesis(), wall_ms(), None)
        {
            Ok(v) => render(StatusCode::OK, &q, &genuine(&s, &bundle, &v, left)),
            Err(problems) => {
                // The node's own bundle does not verify: say so, never "genuine".
                tracing::error!(?problems, "a bundle built by this node does not verify");
                let body = "<p class=\"refused\" id=\"result\">This node could not prove the invoice. Verify it at another member's node.</p>";
                render(StatusCode::INTERNAL_SERVER_ERROR, &q, body)
            }
        },
        Ok(Checked::NotFound) => render(
            StatusCode::NOT_FOUND,
            &q,
            "<p class=\"refused\" id=\"result\">No invoice matches this number and these factors. \
             Check them against the invoice: the date is the issue date printed on it, the total includes tax.</p>",
        ),
        Ok(Checked::Exhausted { limit, retry_secs }) => {
            let body = format!(
                "<p class=\"refused\" id=\"result\">This invoice was checked {limit} times today, the most a day. \
                 Check it again after midnight (China time), or verify a bundle you downloaded before with \
                 <code>fapiao verify</code>.</p>"
            );
            let mut r = render(StatusCode::TOO_MANY_REQUESTS, &q, &body);
            if let Ok(v) = header::HeaderValue::from_str(&retry_secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        // The page always asks as of the newest certified block, which is always kept.
        Ok(Checked::NotCertified | Checked::NotKept { .. }) => {
            let body = "<p class=\"refused\" id=\"result\">The invoice's block is not certified yet: try again in a few seconds.</p>";
            let mut r = render(StatusCode::SERVICE_UNAVAILABLE, &q, body);
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            r
        }
        Err(e) => {
            if let CheckFailed::Store(e) = &e {
                tracing::error!(error = %e, "verification page failed");
            }
            render(
                StatusCode::INTERNAL_SERVER_ERROR,
                &q,
                "<p class=\"refused\" id=\"result\">This node cannot read its ledger now. Verify the invoice at another member's node.</p>",
            )
        }
    }
}

/// The verified result: what the bundle proves, checked by the offline verifier.
// Long: the verification page's HTML for a genuine invoice, top to bottom.
fn genuine(s: &AppState, bundle: &Bundle, v: &fapiao_proof::Verified, left: u32) -> String {
    let i = &v.issued;
    let seller = s
        .engine
        .epochs()
        .member_ever(v.chain)
        .map_or_else(|| v.chain.to_string(), |m| format!("{} ({})", m.name, m.code));
    let numbers = |ns: &[InvoiceNumber]| ns.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ");
    let status = match &v.status {
        Status::Issued => "Issued, standing in full (正常)".to_string(),
        Status::PartiallyReversed(r) => format!("Partially reversed by red invoice(s) {} (部分红冲)", numbers(r)),
        Status::Reversed(r) => format!("Reversed by red invoice(s) {} (已红冲)", numbers(r)),
    };
    let claim = v.claim.as_ref().map_or_else(
        || "Not claimed for reimbursement".to_string(),
        |c| match c.closed_at_ms {
            None => format!("Locked for reimbursement since {} (报销中)", format_time(c.at_ms)),
            Some(t) => format!("Reimbursed: claim closed at {} (已报销)", format_time(t)),
        },
    );
    let booking = v.booking.map_or_else(
        || "Not recorded by the buyer".to_string(),
        |(b, at)| format!("{} {} since {}", b.code(), booking_words(b), format_time(at)),
    );
    let forms = if v.forms.is_empty() {
        "None".to_string()
    } else {
        v.forms
            .iter()
            .map(|f| {
                let red = f.red_number.map(|n| format!(", red invoice {n}")).unwrap_or_default();
                format!(
                    "Form {} by the {}: {}{red}",
                    f.form,
                    f.initiator.name(),
                    f.state.name().replace('_', " ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let now = wall_ms();
    let ago = now.saturating_sub(v.as_of_ms) / 1000;
    let ago = match ago {
        0..=59 => format!("{ago} s ago"),
        60..=3599 => format!("{} min ago", ago / 60),
        _ => format!("{} h {} min ago", ago / 3600, ago / 60 % 60),
    };
    let file = base64::engine::general_purpose::STANDARD.encode(bundle.to_bytes());
    let mut rows = vec![
        ("number", "Invoice number (发票号码)", i.number.to_string()),
        ("seller", "Seller (销售方)", seller),
        ("buyer", "Buyer (购买方)", i.buyer.name.clone()),
        (
            "issue-date",
            "Issue date (开票日期)",
            format_day(business_day(i.issued_at.0)),
        ),
        ("total", "Total including tax (价税合计)", format!("CNY {}", i.total)),
        ("status", "Status (状态)", status),
        ("claim", "Reimbursement (报销)", claim),
        ("booking", "Booking by the buyer (入账状态)", booking),
        ("forms", "Red-letter confirmation forms (红字确认单)", forms),
    ];
    if let Some(n) = &v.replaced_by {
        rows.push(("replaced-by", "Replaced by (更正发票)", n.to_string()));
    }
    rows.push((
        "as-of",
        "Proven as of (截至)",
        format!(
            "certified block {} of chain {}, {}, {ago}",
            v.as_of_height,
            v.chain,
            format_time(v.as_of_ms)
        ),
    ));
    rows.push(("checks-left", "Checks left today (今日剩余查验次数)", left.to_string()));
    let table: String = rows
        .iter()
        .map(|(id, label, value)| format!("<tr><th>{}</th><td id=\"{id}\">{}</td></tr>\n", esc(label), esc(value)))
        .collect();
    format!(
        "<p class=\"genuine\" id=\"result\">Genuine: this invoice is on the consortium's ledger (查验结果：真)</p>\n\
         <table>\n{table}</table>\n\
         <p><a id=\"bundle\" download=\"{number}.bundle\" href=\"data:application/octet-stream;base64,{file}\">Download the proof bundle</a> \
         and check it offline, with the consortium's genesis file alone: <code>fapiao verify {number}.bundle --genesis genesis.toml</code></p>",
        number = i.number,
    )
}

/// The whole page: the form (with what was given) and `result`.
fn render(status: StatusCode, q: &PageQuery, result: &str) -> Response {
    let v = |f: &Option<String>| esc(f.as_deref().unwrap_or(""));
    let body = format!(
        r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Invoice verification · 发票查验</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
h1 {{ font-size: 1.4rem; }}
form {{ display: grid; grid-template-columns: 14rem 1fr; gap: .5rem 1rem; margin-bottom: 1.5rem; }}
input {{ font: inherit; padding: .3rem; }}
button {{ grid-column: 2; font: inherit; padding: .4rem; }}
.genuine {{ color: #0a6b2b; font-weight: bold; }}
.refused {{ color: #a4161a; font-weight: bold; }}
table {{ border-collapse: collapse; }}
th, td {{ text-align: left; padding: .3rem .8rem .3rem 0; vertical-align: top; }}
th {{ font-weight: normal; color: #555; }}
</style></head>
<body>
<h1>Invoice verification · 发票查验</h1>
<form method="get" action="/verify">
<label for="f-number">Invoice number (发票号码)</label><input id="f-number" name="number" value="{number}" required>
<label for="f-date">Issue date (开票日期), YYYY-MM-DD</label><input id="f-date" name="issue_date" value="{date}">
<label for="f-total">Total including tax (价税合计), yuan</label><input id="f-total" name="total" value="{total}">
<label for="f-code">or the check code (校验码)</label><input id="f-code" name="check_code" value="{code}">
<button type="submit">Verify · 查验</button>
</form>
{result}
</body></html>
"#,
        number = v(&q.number),
        date = v(&q.issue_date),
        total = v(&q.total),
        code = v(&q.check_code),
    );
    (status, Html(body)).into_response()
}

/// Escapes text for HTML content and attribute values (buyer names, descriptions and
/// every factor typed into the page come from outside).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
