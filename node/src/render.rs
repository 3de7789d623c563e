//! The invoice as a document a person reads (`fapiao invoice show --format text|html`):
//! seller, buyer, lines, tax, totals, status, red-letter and replacement links, and a QR
//! code a phone or a finance department's scanner reads.
//!
//! QR payload (one line, comma-separated, documented in `docs/API.md`):
//! `FAPIAO1,<number>,<check code>,<total yuan>,<issue date YYYYMMDD, UTC+8>,<verify URL>`,
//! where the verify URL is `<base>/verify?number=<number>&issue_date=<YYYY-MM-DD>&total=<yuan>`,
//! the public verification page of a member node, which shows the verified result.

use anyhow::{anyhow, Result};
use fapiao_api::dto::{InvoiceDto, InvoiceKindDto, InvoiceStatusDto, LineDto};
use fapiao_api::escape_html as esc;
use fapiao_core::{Fen, Quantity};
use fapiao_engine::{business_day, format_day, format_time};
use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};

/// What a reprint shows besides the invoice itself.
pub(crate) struct Document<'a> {
    /// The invoice.
    pub(crate) invoice: &'a InvoiceDto,
    /// For a red-letter invoice: the invoice it reverses (its buyer is the buyer).
    pub(crate) original: Option<&'a InvoiceDto>,
    /// The base URL of the node whose verification page the QR code points at.
    pub(crate) verify_base: &'a str,
}

impl Document<'_> {
    /// The public verification page of this invoice, with the factors a person would
    /// type: its number, issue date (UTC+8) and total including tax.
    pub(crate) fn verify_url(&self) -> String {
        let i = self.invoice;
        format!(
            "{}/verify?number={}&issue_date={}&total={}",
            self.verify_base.trim_end_matches('/'),
            i.number,
            format_day(business_day(i.issued_at_ms)),
            Fen::from_fen(i.total_fen)
        )
    }

    /// What the QR code holds.
    pub(crate) fn qr_payload(&self) -> String {
        let i = self.invoice;
        format!(
            "FAPIAO1,{},{},{},{},{}",
            i.number,
            i.check_code,
            Fen::from_fen(i.total_fen),
            format_day(business_day(i.issued_at_ms)).replace('-', ""),
            self.verify_url()
        )
    }

    fn qr(&self) -> Result<QrCode> {
        QrCode::with_error_correction_level(self.qr_payload().as_bytes(), EcLevel::M)
            .map_err(|e| anyhow!("the QR code does not fit: {e}"))
    }

    fn is_red(&self) -> bool {
        self.invoice.kind == InvoiceKindDto::Red
    }

    fn title(&self) -> &'static str {
        if self.is_red() {
            "Red-letter electronic invoice"
        } else {
            "Electronic invoice"
        }
    }

    fn buyer(&self) -> (String, Option<String>) {
        let from = if self.is_red() {
            self.original.unwrap_or(self.invoice)
        } else {
            self.invoice
        };
        (
            from.buyer_name
                .clone()
                .unwrap_or_else(|| "(see the original invoice)".into()),
            from.buyer_tax_id.clone(),
        )
    }

    /// Blue: what each payment still stands for; red: what returns to each payment.
    fn payments_label(&self) -> &'static str {
        if self.is_red() {
            "Returned to"
        } else {
            "Payments"
        }
    }

    /// The status line, in words.
    fn status(&self) -> String {
        let i = self.invoice;
        let mut s = match i.status {
            InvoiceStatusDto::Issued => "ISSUED".to_string(),
            InvoiceStatusDto::PartiallyReversed => {
                format!("PARTIALLY REVERSED by red-letter {}", i.red_letters.join(", "))
            }
            InvoiceStatusDto::Reversed => format!("REVERSED by red-letter {}", i.red_letters.join(", ")),
            InvoiceStatusDto::RedLetter => format!(
                "RED-LETTER: reverses {} ({})",
                i.original.as_deref().unwrap_or("?"),
                i.red_letter_reason.as_deref().unwrap_or("?").replace('_', " ")
            ),
        };
        if let Some(r) = &i.replaced_by {
            s.push_str(&format!("; replaced by corrected invoice {r}"));
        }
        s
    }

    /// The links to other invoices, as (label, number) pairs.
    fn links(&self) -> Vec<(&'static str, String)> {
        let i = self.invoice;
        let mut out = Vec::new();
        if let Some(o) = &i.original {
            out.push(("Reverses", o.clone()));
        }
        for r in &i.red_letters {
            out.push(("Red-letter invoice", r.clone()));
        }
        if let Some(r) = &i.replaces {
            out.push(("Corrects (replaces)", r.clone()));
        }
        if let Some(r) = &i.replaced_by {
            out.push(("Replaced by", r.clone()));
        }
        out
    }

    /// A line's shown amounts: a red-letter invoice shows negative quantities and amounts.
    /// As the platform prints them, the rate column of an exempt or not-taxable line
    /// reads 免税 or 不征税 and its tax column `***`.
    fn line_cells(&self, l: &LineDto) -> [String; 5] {
        let sign = if self.is_red() { -1 } else { 1 };
        [
            Quantity(sign * l.quantity_thousandths).to_string(),
            Fen::from_fen(l.unit_price_fen).to_string(),
            l.rate().to_string(),
            Fen::from_fen(sign * l.net_fen).to_string(),
            match l.tax_flag {
                Some(_) => "***".to_string(),
                None => Fen::from_fen(sign * l.tax_fen).to_string(),
            },
        ]
    }

    /// A line's name as printed: `*short name*description`.
    fn line_name(l: &LineDto) -> String {
        format!("*{}*{}", l.short_name, l.description)
    }

    /// Plain text, with the QR code drawn in block characters (dark modules are ink).
    // Long: the reprint's text template, top to bottom.
    pub(crate) fn text(&self) -> Result<String> {
        let i = self.invoice;
        let (buyer, buyer_tax_id) = self.buyer();
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(self.title().to_string());
        line("=".repeat(self.title().len()));
        line(format!("Number      {}", i.number));
        line(format!("Check code  {}", i.check_code));
        line(format!("Issued      {}", format_time(i.issued_at_ms)));
        if let Some(t) = &i.invoice_type {
            line(format!("Type        {}", t.replace('_', " ")));
        }
        line(format!("Status      {}", self.status()));
        line(String::new());
        line(format!("Seller      {} (member {})", i.seller_name, i.seller_code));
        line(format!(
            "Buyer       {}{}",
            buyer,
            buyer_tax_id.map(|t| format!(" (tax id {t})")).unwrap_or_default()
        ));
        line(String::new());
        line(format!(
            "{:>3}  {:<32} {:>10} {:>12} {:>6} {:>12} {:>10}  {}",
            "#", "Description", "Quantity", "Unit price", "Rate", "Net", "Tax", "Tax code"
        ));
        for (n, l) in i.lines.iter().enumerate() {
            let [q, p, r, net, tax] = self.line_cells(l);
            line(format!(
                "{:>3}  {:<32} {q:>10} {p:>12} {r:>6} {net:>12} {tax:>10}  {}",
                n + 1,
                Self::line_name(l),
                l.tax_code
            ));
        }
        line(format!(
            "{:>3}  {:<32} {:>10} {:>12} {:>6} {:>12} {:>10}",
            "",
            "Total",
            "",
            "",
            "",
            Fen::from_fen(i.net_fen).to_string(),
            Fen::from_fen(i.tax_fen).to_string()
        ));
        line(format!("Total (tax included): CNY {}", Fen::from_fen(i.total_fen)));
        if !i.allocations.is_empty() {
            let pays: Vec<String> = i
                .allocations
                .iter()
                .map(|a| format!("{} {}", a.payment_id, Fen::from_fen(a.amount_fen)))
                .collect();
            line(format!("{:<11} {}", self.payments_label(), pays.join(", ")));
        }
        for (label, n) in self.links() {
            line(format!("{label}: {n}"));
        }
        for l in buyer_side_lines(i) {
            line(l);
        }
        line(String::new());
        line(format!("Verify: {}", self.verify_url()));
        let qr = self
            .qr()?
            .render::<unicode::Dense1x2>()
            .dark_color(unicode::Dense1x2::Dark)
            .light_color(unicode::Dense1x2::Light)
            .quiet_zone(true)
            .build();
        out.push_str(&qr);
        out.push('\n');
        Ok(out)
    }

    /// A self-contained HTML page (inline CSS and SVG, nothing fetched), for screens and
    /// printing.
    // Long: the reprint's HTML template, top to bottom.
    pub(crate) fn html(&self) -> Result<String> {
        let i = self.invoice;
        let (buyer, buyer_tax_id) = self.buyer();
        let qr = self
            .qr()?
            .render::<svg::Color>()
            .min_dimensions(200, 200)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .quiet_zone(true)
            .build();
        let mut rows = String::new();
        for (n, l) in i.lines.iter().enumerate() {
            let [q, p, r, net, tax] = self.line_cells(l);
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{q}</td><td class=\"num\">{p}</td>\
                 <td class=\"num\">{r}</td><td class=\"num\">{net}</td><td class=\"num\">{tax}</td>\
                 <td class=\"code\">{}</td></tr>\n",
                n + 1,
                esc(&Self::line_name(l)),
                esc(&l.tax_code)
            ));
        }
        let mut links = String::new();
        for (label, n) in self.links() {
            links.push_str(&format!(
                "<li>{label}: <span class=\"link-number\">{}</span></li>\n",
                esc(&n)
            ));
        }
        let payments: Vec<String> = i
            .allocations
            .iter()
            .map(|a| format!("{} {}", esc(&a.payment_id), Fen::from_fen(a.amount_fen)))
            .collect();
        let claim: String = buyer_side_lines(i)
            .iter()
            .map(|l| format!("<p class=\"buyer-side\">{}</p>", esc(l)))
            .collect();
        let verify = self.verify_url();
        let kind_class = if self.is_red() { "red" } else { "blue" };
        Ok(format!(
            r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} {number}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #111; background: #fff; }}
main {{ max-width: 900px; border: 2px solid #8a4b08; padding: 16px 24px; }}
main.red {{ border-color: #b00020; }}
header {{ display: flex; justify-content: space-between; align-items: flex-start; }}
h1 {{ font-size: 22px; margin: 0 0 8px 0; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 0; }}
dt {{ font-weight: bold; }}
dd {{ margin: 0; font-family: monospace; }}
#status {{ font-weight: bold; padding: 6px 0; }}
main.red #status {{ color: #b00020; }}
.parties {{ display: flex; gap: 48px; margin: 12px 0; }}
.parties h2 {{ font-size: 15px; margin: 0; }}
.parties p {{ margin: 2px 0; }}
table {{ border-collapse: collapse; width: 100%; margin: 12px 0; }}
th, td {{ border: 1px solid #999; padding: 4px 6px; text-align: left; }}
td.num, th.num {{ text-align: right; font-family: monospace; }}
tfoot td {{ font-weight: bold; }}
#total {{ font-size: 18px; font-weight: bold; }}
.qr svg {{ display: block; }}
footer {{ margin-top: 12px; font-size: 13px; }}
</style>
</head>
<body>
<main class="invoice {kind_class}">
<header>
<div>
<h1 id="title">{title}</h1>
<dl>
<dt>Number</dt><dd id="number">{number}</dd>
<dt>Check code</dt><dd id="check-code">{check_code}</dd>
<dt>Issued</dt><dd id="issued-at">{issued}</dd>
<dt>Type</dt><dd id="type">{kind}</dd>
</dl>
</div>
<div class="qr" id="qr" title="{qr_title}">{qr}</div>
</header>
<p id="status">Status: {status}</p>
<section class="parties">
<div id="seller"><h2>Seller</h2><p>{seller}</p><p>Member {seller_code}</p></div>
<div id="buyer"><h2>Buyer</h2><p>{buyer}</p><p>{buyer_tax}</p></div>
</section>
<table id="lines">
<thead><tr><th>#</th><th>Description</th><th class="num">Quantity</th><th class="num">Unit price</th><th class="num">Tax rate</th><th class="num">Net</th><th class="num">Tax</th><th>Tax code</th></tr></thead>
<tbody>
{rows}</tbody>
<tfoot><tr><td colspan="5">Total</td><td class="num" id="net">{net}</td><td class="num" id="tax">{tax}</td></tr></tfoot>
</table>
<p id="total">Total (tax included): CNY {total}</p>
<p id="payments">{payments_label}: {payments}</p>
<ul id="links">
{links}</ul>
{claim}
<footer>Verify this invoice at <a id="verify-url" href="{verify}">{verify}</a>: the node answers with a proof that checks offline against the consortium's genesis (<code>fapiao verify</code>).</footer>
</main>
</body>
</html>
"#,
            title = self.title(),
            number = esc(&i.number),
            check_code = esc(&i.check_code),
            issued = format_time(i.issued_at_ms),
            kind = esc(&i
                .invoice_type
                .clone()
                .unwrap_or_else(|| "red-letter".into())
                .replace('_', " ")),
            qr_title = esc(&self.qr_payload()),
            status = esc(&self.status()),
            seller = esc(&i.seller_name),
            seller_code = esc(&i.seller_code),
            buyer = esc(&buyer),
            buyer_tax = buyer_tax_id.map(|t| format!("Tax id {}", esc(&t))).unwrap_or_default(),
            net = Fen::from_fen(i.net_fen),
            tax = Fen::from_fen(i.tax_fen),
            total = Fen::from_fen(i.total_fen),
            payments_label = self.payments_label(),
            payments = payments.join(", "),
            verify = esc(&verify),
        ))
    }
}

/// One red-letter confirmation form for people: `form 1 by the seller: waiting_for_buyer
/// (opened ..., void if unanswered by ...)`, with its red invoice once issued.
pub(crate) fn form_line(f: &fapiao_api::dto::FormSummaryDto) -> String {
    let red = f
        .red_number
        .as_ref()
        .map(|n| format!(", red invoice {n}"))
        .unwrap_or_default();
    let deadline = if f.state.starts_with("waiting") {
        format!(", void if unanswered by {}", format_time(f.deadline_ms))
    } else {
        String::new()
    };
    format!(
        "form {} by the {}: {} (opened {}{deadline}){red}",
        f.form,
        f.initiator,
        f.state,
        format_time(f.opened_at_ms)
    )
}

/// The buyer's side of a blue invoice for people, one line each: the reimbursement claim
/// (locked or closed), the booking status, and every red-letter confirmation form.
pub(crate) fn buyer_side_lines(i: &InvoiceDto) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = &i.claim {
        out.push(match c.closed_at_ms {
            None => format!(
                "Locked for reimbursement by member {} (ref {}) on {}",
                c.claimant,
                c.claim_ref,
                format_time(c.claimed_at_ms)
            ),
            Some(t) => format!(
                "Reimbursed: claim of member {} (ref {}) closed on {}",
                c.claimant,
                c.claim_ref,
                format_time(t)
            ),
        });
    }
    if let Some(b) = &i.booking {
        out.push(format!(
            "Booking by the buyer: {} {} on {}",
            b.code,
            b.status,
            format_time(b.at_ms)
        ));
    }
    out.extend(i.forms.iter().map(|f| format!("Red-letter {}", form_line(f))));
    out
}

/// What a red-letter covers, for people: `full`, or each partial line.
pub(crate) fn scope(s: &fapiao_api::dto::ScopeDto) -> String {
    use fapiao_api::dto::{ScopeDto, TaxFlagDto};
    match s {
        ScopeDto::Full => "full".into(),
        ScopeDto::Partial(lines) => {
            let each = lines.iter().map(|l| {
                format!(
                    "{} x {} at {} ({})",
                    l.description,
                    Quantity(l.quantity_thousandths),
                    Fen::from_fen(l.unit_price_fen),
                    TaxFlagDto::rate(l.tax_rate_bp, l.tax_flag)
                )
            });
            format!("partial: {}", each.collect::<Vec<_>>().join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_clients_is_escaped() {
        assert_eq!(esc("<b>\"A&B\"</b>'"), "&lt;b&gt;&quot;A&amp;B&quot;&lt;/b&gt;&#39;");
    }
}
