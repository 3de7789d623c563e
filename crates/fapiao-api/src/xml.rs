//! An invoice in the field structure of the fully digitalised e-invoice (数电) XML, as
//! the national platform delivers it to finance departments. The mapping from ledger
//! fields is in docs/API.md ("The invoice as 数电 XML"), and `schema/einvoice.xsd`
//! states it as an XML schema that the tests validate every rendering against.
//!
//! Written with quick-xml's serde serialiser: the element tree is the structs below, so
//! escaping and nesting are the library's, not string concatenation.

use crate::dto::{InvoiceDto, InvoiceKindDto, LineDto};
use fapiao_core::Fen;
use serde::Serialize;

/// Why an invoice could not be written as XML.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// The serialiser refused a value.
    #[error("writing the invoice XML: {0}")]
    Write(#[from] quick_xml::SeError),
    /// A red invoice was given without its original, or with the wrong one.
    #[error("a red invoice's XML needs its original invoice {0}")]
    Original(String),
}

/// The XML schema the output follows.
pub const SCHEMA: &str = include_str!("../schema/einvoice.xsd");

#[derive(Serialize)]
#[serde(rename = "EInvoice")]
struct EInvoice {
    #[serde(rename = "Header")]
    header: Header,
    #[serde(rename = "EInvoiceData")]
    data: EInvoiceData,
    #[serde(rename = "TaxSupervisionInfo")]
    supervision: TaxSupervisionInfo,
}

#[derive(Serialize)]
struct Header {
    #[serde(rename = "EIid")]
    id: String,
    #[serde(rename = "InherentLabel")]
    labels: InherentLabel,
}

#[derive(Serialize)]
struct InherentLabel {
    #[serde(rename = "InIssuType")]
    issue_type: Label,
    #[serde(rename = "EInvoiceType")]
    invoice_type: Label,
    #[serde(rename = "GeneralOrSpecialVAT")]
    general_or_special: Label,
}

#[derive(Serialize)]
struct Label {
    #[serde(rename = "LabelCode")]
    code: &'static str,
    #[serde(rename = "LabelName")]
    name: &'static str,
}

#[derive(Serialize)]
struct EInvoiceData {
    #[serde(rename = "SellerInformation")]
    seller: Seller,
    #[serde(rename = "BuyerInformation")]
    buyer: Buyer,
    #[serde(rename = "BasicInformation")]
    basic: BasicInformation,
    #[serde(rename = "IssuItemInformation")]
    items: Vec<Item>,
    #[serde(rename = "SpecificInformation")]
    specific: SpecificInformation,
    #[serde(rename = "AdditionalInformation")]
    additional: AdditionalInformation,
}

#[derive(Serialize)]
struct Seller {
    #[serde(rename = "SellerIdNum", skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "SellerName")]
    name: String,
}

#[derive(Serialize)]
struct Buyer {
    #[serde(rename = "BuyerIdNum", skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "BuyerName")]
    name: String,
}

#[derive(Serialize)]
struct BasicInformation {
    #[serde(rename = "TotalAmWithoutTax")]
    net: String,
    #[serde(rename = "TotalTaxAm")]
    tax: String,
    #[serde(rename = "TotalTax-includedAmount")]
    total: String,
    #[serde(rename = "TotalTax-includedAmountInChinese")]
    total_in_chinese: String,
}

#[derive(Serialize)]
struct Item {
    #[serde(rename = "ItemName")]
    name: String,
    #[serde(rename = "Quantity")]
    quantity: String,
    #[serde(rename = "UnPrice")]
    unit_price: String,
    #[serde(rename = "Amount")]
    amount: String,
    #[serde(rename = "TaxRate")]
    rate: String,
    #[serde(rename = "ComTaxAm")]
    tax: String,
    #[serde(rename = "TotaltaxIncludedAmount")]
    total: String,
    #[serde(rename = "TaxClassificationCode")]
    code: String,
}

#[derive(Serialize)]
struct SpecificInformation {
    #[serde(rename = "RedEInvoice", skip_serializing_if = "Option::is_none")]
    red: Option<RedEInvoice>,
}

#[derive(Serialize)]
struct RedEInvoice {
    #[serde(rename = "OriginalInvoiceCode")]
    original: String,
    #[serde(rename = "CreditNoteNumber", skip_serializing_if = "Option::is_none")]
    form: Option<String>,
}

#[derive(Serialize)]
struct AdditionalInformation {
    #[serde(rename = "Remark")]
    remark: String,
}

#[derive(Serialize)]
struct TaxSupervisionInfo {
    #[serde(rename = "InvoiceNumber")]
    number: String,
    #[serde(rename = "IssueTime")]
    issued_at: String,
}

/// The invoice as 数电 XML. A red invoice takes its buyer and invoice type from
/// `original`, the blue invoice it reverses, which must be given.
// Long: the 数电 XML's fields in the schema's order.
pub fn invoice_xml(inv: &InvoiceDto, original: Option<&InvoiceDto>) -> Result<String, XmlError> {
    let red = inv.kind == InvoiceKindDto::Red;
    let head = if red {
        original
            .filter(|o| Some(&o.number) == inv.original.as_ref())
            .ok_or_else(|| XmlError::Original(inv.original.clone().unwrap_or_default()))?
    } else {
        inv
    };
    let special = head.invoice_type.as_deref() == Some("special_vat");
    // A red invoice shows negative quantities and amounts; its record holds them
    // positive per line and negative in the totals.
    let sign = if red { -1 } else { 1 };
    let form = original.and_then(|o| {
        o.forms
            .iter()
            .find(|f| f.red_number.as_deref() == Some(inv.number.as_str()))
            .map(|f| format!("{}-{:03}", o.number, f.form))
    });
    let mut remark = String::new();
    if let Some(o) = &inv.original {
        remark = format!("被红冲蓝字数电票号码：{o}");
        if let Some(f) = &form {
            remark.push_str(&format!(" 红字发票信息确认单编号：{f}"));
        }
    }
    let doc = EInvoice {
        header: Header {
            id: inv.number.clone(),
            labels: InherentLabel {
                issue_type: if red {
                    Label {
                        code: "N",
                        name: "红字发票",
                    }
                } else {
                    Label {
                        code: "Y",
                        name: "蓝字发票",
                    }
                },
                invoice_type: Label {
                    code: "01",
                    name: "电子发票",
                },
                general_or_special: if special {
                    Label {
                        code: "01",
                        name: "增值税专用发票",
                    }
                } else {
                    Label {
                        code: "02",
                        name: "普通发票",
                    }
                },
            },
        },
        data: EInvoiceData {
            seller: Seller {
                id: inv.seller_tax_id.clone(),
                name: inv.seller_name.clone(),
            },
            buyer: Buyer {
                id: head.buyer_tax_id.clone(),
                name: head.buyer_name.clone().unwrap_or_default(),
            },
            basic: BasicInformation {
                net: Fen::from_fen(inv.net_fen).to_string(),
                tax: Fen::from_fen(inv.tax_fen).to_string(),
                total: Fen::from_fen(inv.total_fen).to_string(),
                total_in_chinese: capitals(inv.total_fen),
            },
            items: inv.lines.iter().map(|l| item(l, sign)).collect(),
            specific: SpecificInformation {
                red: inv.original.as_ref().map(|o| RedEInvoice {
                    original: o.clone(),
                    form,
                }),
            },
            additional: AdditionalInformation { remark },
        },
        supervision: TaxSupervisionInfo {
            number: inv.number.clone(),
            issued_at: issue_time(inv.issued_at_ms),
        },
    };
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let mut ser = quick_xml::se::Serializer::new(&mut out);
    ser.indent(' ', 2);
    doc.serialize(ser)?;
    out.push('\n');
    Ok(out)
}

fn item(l: &LineDto, sign: i64) -> Item {
    let rate = l.rate();
    Item {
        name: format!("*{}*{}", l.short_name, l.description),
        quantity: fapiao_core::Quantity(sign * l.quantity_thousandths).to_string(),
        unit_price: Fen::from_fen(l.unit_price_fen).to_string(),
        amount: Fen::from_fen(sign * l.net_fen).to_string(),
        // A rate as the decimal fraction the platform writes (0.13); a flag as its name.
        rate: match rate.flag_name() {
            Some(_) => rate.to_string(),
            None => format!("{}.{:04}", rate.bp() / 10_000, rate.bp() % 10_000)
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string(),
        },
        tax: Fen::from_fen(sign * l.tax_fen).to_string(),
        total: Fen::from_fen(sign * (l.net_fen + l.tax_fen)).to_string(),
        code: l.tax_code.clone(),
    }
}

/// Block time as the platform's issue time, `YYYY-MM-DD HH:MM:SS` in UTC+8.
fn issue_time(ms: u64) -> String {
    let shown = fapiao_engine::format_time(ms);
    shown.trim_end_matches(" (UTC+8)").to_owned()
}

/// An amount in Chinese capital numerals (大写) as invoices print the total:
/// `壹佰贰拾叁圆肆角伍分`, `伍拾圆整`, `壹万零叁佰圆整`; a negative (red) amount
/// starts `（负数）`.
pub fn capitals(fen: i64) -> String {
    const DIGITS: [char; 10] = ['零', '壹', '贰', '叁', '肆', '伍', '陆', '柒', '捌', '玖'];
    const UNITS: [&str; 4] = ["", "拾", "佰", "仟"];
    const SECTIONS: [&str; 5] = ["", "万", "亿", "万亿", "亿亿"];
    let mut out = String::new();
    if fen < 0 {
        out.push_str("（负数）");
    }
    let abs = fen.unsigned_abs();
    let (yuan, jiao, fen) = (abs / 100, (abs / 10 % 10) as usize, (abs % 10) as usize);
    if yuan > 0 {
        // Groups of four digits from the lowest; a zero run inside the number is read
        // as one 零, and a trailing one is not read at all.
        let mut groups = Vec::new();
        let mut y = yuan;
        while y > 0 {
            groups.push((y % 10_000) as usize);
            y /= 10_000;
        }
        let mut zero = false;
        for (s, &g) in groups.iter().enumerate().rev() {
            if g == 0 {
                zero = true;
                continue;
            }
            for p in (0..4).rev() {
                let d = g / 10usize.pow(p as u32) % 10;
                if d == 0 {
                    zero = true;
                    continue;
                }
                if zero && !out.is_empty() && !out.ends_with('）') {
                    out.push('零');
                }
                zero = false;
                out.push(DIGITS[d]);
                out.push_str(UNITS[p]);
            }
            out.push_str(SECTIONS[s]);
            // A group below 1000 after a higher group reads its leading zeros as 零.
        }
        out.push('圆');
    }
    match (jiao, fen) {
        (0, 0) if yuan == 0 => out.push_str("零圆整"),
        (0, 0) => out.push('整'),
        (j, 0) => {
            out.push(DIGITS[j]);
            out.push_str("角整");
        }
        (0, f) => {
            if yuan > 0 {
                out.push('零');
            }
            out.push(DIGITS[f]);
            out.push('分');
        }
        (j, f) => {
            out.push(DIGITS[j]);
            out.push('角');
            out.push(DIGITS[f]);
            out.push('分');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capital_numerals() {
        for (fen, text) in [
            (0, "零圆整"),
            (5, "伍分"),
            (50, "伍角整"),
            (100, "壹圆整"),
            (105, "壹圆零伍分"),
            (5000, "伍拾圆整"),
            (12345, "壹佰贰拾叁圆肆角伍分"),
            (100_500, "壹仟零伍圆整"),
            (1_030_000, "壹万零叁佰圆整"),
            (1_000_000, "壹万圆整"),
            (1_000_100, "壹万零壹圆整"),
            (10_000_000_000, "壹亿圆整"),
            (10_050_000_000, "壹亿零伍拾万圆整"),
            (10_005_000_000, "壹亿零伍万圆整"),
            (1_010_000_000_000, "壹佰零壹亿圆整"),
            (5300, "伍拾叁圆整"),
            (-5300, "（负数）伍拾叁圆整"),
            (-5, "（负数）伍分"),
        ] {
            assert_eq!(capitals(fen), text, "{fen}");
        }
    }
}
