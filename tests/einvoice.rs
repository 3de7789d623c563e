//! Tax rules as data on a real node, through the CLI as a merchant's bookkeeper uses
//! them: an exempt (免税) line and a not-taxable (不征税) line printed as the platform
//! prints them in text, HTML and the 数电 XML; the XML of a blue and a red invoice
//! validated against the schema (with xmllint, which the test command installs); a
//! wrong classification code recorded with its remedy.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

const SCHEMA: &str = include_str!("../crates/fapiao-api/schema/einvoice.xsd");

/// Validates `xml` against the schema; the error text if it does not validate.
fn validate(dir: &Path, xml: &Path) -> Result<(), String> {
    let schema = dir.join("einvoice.xsd");
    std::fs::write(&schema, SCHEMA).unwrap();
    let o = Command::new("xmllint")
        .args(["--noout", "--schema", schema.to_str().unwrap(), xml.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("xmllint (Debian libxml2-utils; scripts/test.sh installs it): {e}"));
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

#[test]
fn exempt_and_not_taxable_lines_print_and_the_xml_follows_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = DevNode::start(&dir.path().join("n"), free_port());
    ok(node.cli(&["pay", "--amount", "100.00", "--method", "cash", "--id", "P1"]));
    let text = ok(node.cli(&[
        "invoice",
        "request",
        "--id",
        "R1",
        "--payment",
        "P1",
        "--buyer-name",
        "Zhang San",
        "--line",
        "Cabbage|2|10.00|exempt|1010112000000000000",
        "--line",
        "Gift card|1|30.00|不征税|6010-0000-0000-0000-000",
        "--line",
        "Oolong tea|1|10.00|6|3070401000000000000",
    ]));
    assert!(text.contains("R1 invoice: ISSUED"), "{text}");
    let v: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/v1/invoices?request_id=R1", node.url()))
        .bearer_auth(node.token())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let blue = v[0]["number"].as_str().unwrap().to_string();
    assert_eq!(v[0]["total_fen"], 6060, "20.00 + 30.00 untaxed, 10.00 + 0.60 tax");
    assert_eq!(v[0]["lines"][0]["tax_flag"], "exempt");
    assert_eq!(v[0]["lines"][1]["tax_flag"], "not_taxable");
    assert_eq!(
        v[0]["lines"][1]["tax_code"], "6010000000000000000",
        "the CLI normalised the dashes"
    );

    // Text and HTML: `*short name*description`, the flag in the rate column and `***`
    // for its tax, the code on every line.
    let text = ok(node.cli(&["invoice", "show", &blue, "--format", "text"]));
    for want in [
        "*蔬菜*Cabbage",
        "*预付卡销售*Gift card",
        "*餐饮服务*Oolong tea",
        "免税",
        "不征税",
        "***",
        "1010112000000000000",
    ] {
        assert!(text.contains(want), "{want} in:\n{text}");
    }
    let row = text.lines().find(|l| l.contains("Cabbage")).unwrap();
    assert!(
        row.contains("免税") && row.contains("20.00") && row.contains("***"),
        "{row}"
    );
    let html_file = dir.path().join("blue.html");
    ok(node.cli(&[
        "invoice",
        "show",
        &blue,
        "--format",
        "html",
        "-o",
        html_file.to_str().unwrap(),
    ]));
    let html = std::fs::read_to_string(&html_file).unwrap();
    assert!(
        html.contains("<td>*蔬菜*Cabbage</td>")
            && html.contains("<td class=\"num\">免税</td>")
            && html.contains("<td class=\"num\">不征税</td>")
            && html.contains("<td class=\"num\">***</td>"),
        "{html}"
    );

    // The XML: flags as the platform writes them, rates as fractions, the total in
    // capitals; valid against the schema, and the API serves the same bytes.
    let blue_xml = dir.path().join("blue.xml");
    ok(node.cli(&[
        "invoice",
        "show",
        &blue,
        "--format",
        "xml",
        "-o",
        blue_xml.to_str().unwrap(),
    ]));
    let xml = std::fs::read_to_string(&blue_xml).unwrap();
    for want in [
        "<TaxRate>免税</TaxRate>",
        "<TaxRate>不征税</TaxRate>",
        "<TaxRate>0.06</TaxRate>",
        "<ItemName>*蔬菜*Cabbage</ItemName>",
        "<TotalTax-includedAmount>60.60</TotalTax-includedAmount>",
        "<TotalTax-includedAmountInChinese>陆拾圆陆角整</TotalTax-includedAmountInChinese>",
        "<LabelCode>02</LabelCode>",
        "<BuyerName>Zhang San</BuyerName>",
    ] {
        assert!(xml.contains(want), "{want} in:\n{xml}");
    }
    assert!(!xml.contains("BuyerIdNum"), "an individual buyer has no tax id: {xml}");
    assert!(xml.contains("<SellerIdNum>91310000MA110001"), "{xml}");
    validate(dir.path(), &blue_xml).unwrap();
    let http = reqwest::blocking::Client::new();
    let r = http
        .get(format!("{}/v1/invoices/{blue}.xml", node.url()))
        .bearer_auth(node.token())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/xml"));
    assert_eq!(r.text().unwrap(), xml);
    let r = http
        .get(format!("{}/v1/invoices/{blue}.xml", node.url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "the XML is business data: it needs the read token");
    let r = http
        .get(format!("{}/v1/invoices/1234.xml", node.url()))
        .bearer_auth(node.token())
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let served = http
        .get(format!("{}/v1/einvoice.xsd", node.url()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(served, SCHEMA);

    // The schema check can fail: a mangled code, a lost element.
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        xml.replace(
            "<TaxClassificationCode>1010112000000000000",
            "<TaxClassificationCode>10101",
        ),
    )
    .unwrap();
    assert!(validate(dir.path(), &bad)
        .unwrap_err()
        .contains("TaxClassificationCode"));
    std::fs::write(&bad, xml.replace("<TotalTaxAm>0.60</TotalTaxAm>", "")).unwrap();
    assert!(validate(dir.path(), &bad).is_err());

    // A red invoice for the tea: negative amounts, the original's number and the form.
    let text = ok(node.cli(&[
        "redform",
        "start",
        &blue,
        "--reason",
        "04",
        "--id",
        "RL1",
        "--line",
        "Oolong tea|1|5.00|6|3070401000000000000",
    ]));
    assert!(text.contains("RL1 red_letter: REVERSED"), "{text}");
    let v: serde_json::Value = http
        .get(format!("{}/v1/invoices/{blue}", node.url()))
        .bearer_auth(node.token())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let red = v["red_letters"][0].as_str().unwrap().to_string();
    let red_xml = dir.path().join("red.xml");
    ok(node.cli(&[
        "invoice",
        "show",
        &red,
        "--format",
        "xml",
        "-o",
        red_xml.to_str().unwrap(),
    ]));
    let xml = std::fs::read_to_string(&red_xml).unwrap();
    for want in [
        "<LabelCode>N</LabelCode>".to_string(),
        format!("<OriginalInvoiceCode>{blue}</OriginalInvoiceCode>"),
        format!("<CreditNoteNumber>{blue}-001</CreditNoteNumber>"),
        "<Quantity>-1</Quantity>".to_string(),
        "<Amount>-5.00</Amount>".to_string(),
        "<TotalTax-includedAmountInChinese>（负数）伍圆叁角整</TotalTax-includedAmountInChinese>".to_string(),
        "<BuyerName>Zhang San</BuyerName>".to_string(),
        format!("被红冲蓝字数电票号码：{blue}"),
    ] {
        assert!(xml.contains(&want), "{want} in:\n{xml}");
    }
    validate(dir.path(), &red_xml).unwrap();

    // Reconciliation totals per rate and per flag: the flags are rows of their own,
    // after the rates, not 0%.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let day = fapiao_engine::format_day(fapiao_engine::business_day(now));
    let text = ok(node.cli(&["reconcile", "--from", &day, "--to", &day, "--format", "json"]));
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows: Vec<(String, i64, i64, i64)> = r["by_rate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["rate"].as_str().unwrap().to_string(),
                x["issued_net_fen"].as_i64().unwrap(),
                x["issued_tax_fen"].as_i64().unwrap(),
                x["reversed_net_fen"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("6%".to_string(), 10_00, 60, 5_00),
            ("免税".to_string(), 20_00, 0, 0),
            ("不征税".to_string(), 30_00, 0, 0)
        ]
    );
    assert_eq!(r["by_rate"][1]["flag"], "exempt");
    let text = ok(node.cli(&["reconcile", "--from", &day, "--to", &day]));
    assert!(text.contains("免税") && text.contains("不征税"), "{text}");

    // A classification code the consortium's table lacks is the invoice's failure,
    // with its remedy; the payment is untouched.
    ok(node.cli(&["pay", "--amount", "10.00", "--method", "cash", "--id", "P2"]));
    let text = out(&node.cli(&[
        "invoice",
        "request",
        "--id",
        "R2",
        "--payment",
        "P2",
        "--buyer-name",
        "Zhang San",
        "--line",
        "Tea|1|5.00|6|3070401000000000009",
    ]));
    assert!(
        text.contains("FAILED TAX_CODE_UNKNOWN") && text.contains("19-digit tax classification code"),
        "{text}"
    );
    node.stop();
}
