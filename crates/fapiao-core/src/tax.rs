//! Tax rules as data: the rate or flag of a line, the dates a rate is in force for a
//! merchant, and the tax classification codes (税收分类编码) a line may carry.
//!
//! The platform prints a line's rate column as a percentage, or as 免税 (exempt) or
//! 不征税 (not taxable): the two flags are not 0% (0% is the export rate), so they are
//! values of their own here and sort after every percentage.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The rate column of a line: a VAT rate in basis points (1300 = 13%), or one of the
/// two flags under which no tax is charged.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub enum TaxRate {
    /// A rate in basis points, at most 10000.
    Bp(u16),
    /// 免税: the sale is exempt; the tax is 0 and the invoice prints 免税.
    Exempt,
    /// 不征税: the receipt is outside VAT (a prepaid card sold, a deposit); the tax is 0
    /// and the invoice prints 不征税.
    NotTaxable,
}

impl TaxRate {
    /// The rate the tax is computed with, in basis points (0 under a flag).
    pub const fn bp(self) -> u16 {
        match self {
            TaxRate::Bp(bp) => bp,
            TaxRate::Exempt | TaxRate::NotTaxable => 0,
        }
    }

    /// The flag's machine name (`exempt`, `not_taxable`), `None` for a rate.
    pub const fn flag_name(self) -> Option<&'static str> {
        match self {
            TaxRate::Bp(_) => None,
            TaxRate::Exempt => Some("exempt"),
            TaxRate::NotTaxable => Some("not_taxable"),
        }
    }
}

impl fmt::Display for TaxRate {
    /// As the platform prints the rate column: `13%`, `1.50%`, `免税`, `不征税`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TaxRate::Bp(bp) if bp % 100 == 0 => write!(f, "{}%", bp / 100),
            TaxRate::Bp(bp) => write!(f, "{}.{:02}%", bp / 100, bp % 100),
            TaxRate::Exempt => f.write_str("免税"),
            TaxRate::NotTaxable => f.write_str("不征税"),
        }
    }
}

impl std::str::FromStr for TaxRate {
    type Err = crate::ids::ParseError;

    /// A percentage with at most two decimals (`13`, `13%`, `1.5`), or a flag
    /// (`exempt` / `免税`, `not_taxable` / `不征税`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const MSG: &str = "a tax rate is a percentage (13, 1.5%) or exempt (免税) or not_taxable (不征税)";
        let s = s.trim();
        match s {
            "exempt" | "免税" => return Ok(TaxRate::Exempt),
            "not_taxable" | "不征税" => return Ok(TaxRate::NotTaxable),
            _ => {}
        }
        let bp = crate::money::parse_fixed(s.strip_suffix('%').unwrap_or(s), 2).ok_or(crate::ids::ParseError(MSG))?;
        match u16::try_from(bp) {
            Ok(bp) if bp <= RATE_BP_MAX => Ok(TaxRate::Bp(bp)),
            _ => Err(crate::ids::ParseError("a tax rate is at most 100%")),
        }
    }
}

/// The VAT rates (13%, 9%, 6%, 0% for exports, the levy rates 5%, 3%, 1%) and the two
/// flags in force since 2019-04-01, in canonical order.
pub const CURRENT_RATES: [TaxRate; 9] = [
    TaxRate::Bp(0),
    TaxRate::Bp(100),
    TaxRate::Bp(300),
    TaxRate::Bp(500),
    TaxRate::Bp(600),
    TaxRate::Bp(900),
    TaxRate::Bp(1300),
    TaxRate::Exempt,
    TaxRate::NotTaxable,
];

/// The largest rate, 100%.
pub const RATE_BP_MAX: u16 = 10_000;

/// The length of a tax classification code.
pub const CODE_LEN: usize = 19;

/// Whether `code` has the shape of a tax classification code: 19 ASCII digits, the
/// first one 1 to 9 (the national table's top-level categories start at 1).
pub fn code_is_well_formed(code: &str) -> bool {
    code.len() == CODE_LEN && code.bytes().all(|b| b.is_ascii_digit()) && !code.starts_with('0')
}

/// One row of the consortium's classification table: a code a line may carry and the
/// short name (简称) the platform prints before the line's own description, as in
/// `*餐饮服务*午餐`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Classification {
    /// 19 digits.
    pub code: String,
    /// The short name, 1 to 32 characters.
    pub short_name: String,
}

/// The dates, `YYYYMMDD` in UTC+8 and inclusive, on which a merchant may invoice at a
/// rate. An open end is unbounded, so a change such as 16% becoming 13% on 2019-04-01
/// is two rules: 16% until 20190331 and 13% from 20190401.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct RateRule {
    /// The rate or flag.
    pub rate: TaxRate,
    /// First day in force.
    pub from: Option<u32>,
    /// Last day in force.
    pub until: Option<u32>,
}

impl RateRule {
    /// A rule in force on every day.
    pub const fn always(rate: TaxRate) -> RateRule {
        RateRule {
            rate,
            from: None,
            until: None,
        }
    }

    /// Whether the rule is in force on `date` (`YYYYMMDD`).
    pub fn in_force(&self, date: u32) -> bool {
        self.from.is_none_or(|f| f <= date) && self.until.is_none_or(|u| date <= u)
    }

    /// The rule as a person reads it: `13% from 2019-04-01`.
    pub fn describe(&self) -> String {
        let day = format_date;
        match (self.from, self.until) {
            (None, None) => self.rate.to_string(),
            (Some(f), None) => format!("{} from {}", self.rate, day(f)),
            (None, Some(u)) => format!("{} until {}", self.rate, day(u)),
            (Some(f), Some(u)) => format!("{} from {} until {}", self.rate, day(f), day(u)),
        }
    }
}

impl std::str::FromStr for RateRule {
    type Err = String;

    /// `RATE` (in force on every day) or `RATE:FROM..UNTIL` with either date left
    /// out: `13`, `exempt`, `16%:..2019-03-31`, `13%:2019-04-01..`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rate, range) = s.split_once(':').unwrap_or((s, ""));
        let rate: TaxRate = rate
            .parse()
            .map_err(|e: crate::ids::ParseError| format!("`{s}`: {}", e.0))?;
        if range.is_empty() {
            return Ok(RateRule::always(rate));
        }
        let (from, until) = range
            .split_once("..")
            .ok_or_else(|| format!("`{s}`: write the days as FROM..UNTIL (YYYY-MM-DD, either may be left out)"))?;
        let day = |d: &str| {
            (!d.is_empty())
                .then(|| parse_date(d).ok_or_else(|| format!("`{s}`: `{d}` is not a date written YYYY-MM-DD")))
                .transpose()
        };
        Ok(RateRule {
            rate,
            from: day(from)?,
            until: day(until)?,
        })
    }
}

/// At most this many rate rules in one merchant policy.
pub const RATE_RULES_MAX: usize = 32;

/// At most this many rows in a classification table.
pub const CLASSIFICATIONS_MAX: usize = 4096;

/// Whether `d` is a calendar date written `YYYYMMDD` (years 1970 to 9999).
pub fn date_is_valid(d: u32) -> bool {
    let (y, m, day) = (d / 10_000, d / 100 % 100, d % 100);
    (1970..=9999).contains(&y)
        && u8::try_from(m)
            .ok()
            .and_then(|m| time::Month::try_from(m).ok())
            .is_some_and(|m| time::Date::from_calendar_date(y as i32, m, day as u8).is_ok())
}

/// `YYYYMMDD` as `YYYY-MM-DD`.
pub fn format_date(d: u32) -> String {
    format!("{:04}-{:02}-{:02}", d / 10_000, d / 100 % 100, d % 100)
}

/// `YYYY-MM-DD` as `YYYYMMDD`, if it is a calendar date.
pub fn parse_date(text: &str) -> Option<u32> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    if digits.len() != 8 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|d| date_is_valid(*d))
}

/// Checks a merchant's rate rules and puts them in canonical order (by rate, then
/// start): at least one rule, at most [`RATE_RULES_MAX`], rates at most 100%, real
/// dates with `from <= until`, and no two rules for one rate in force on the same day.
pub fn canonical_rate_rules(rules: &mut [RateRule]) -> Result<(), String> {
    if rules.is_empty() || rules.len() > RATE_RULES_MAX {
        return Err(format!("must list 1 to {RATE_RULES_MAX} rate rules"));
    }
    for r in rules.iter() {
        if r.rate.bp() > RATE_BP_MAX {
            return Err(format!("rate {} is above 100%", r.rate));
        }
        for d in [r.from, r.until].into_iter().flatten() {
            if !date_is_valid(d) {
                return Err(format!("{d} is not a date written YYYYMMDD"));
            }
        }
        if let (Some(f), Some(u)) = (r.from, r.until) {
            if f > u {
                return Err(format!("{}: starts after it ends", r.describe()));
            }
        }
    }
    rules.sort();
    for w in rules.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        // Sorted by start, an open start first: `b` overlaps `a` unless `a` ends first.
        if a.rate == b.rate && a.until.is_none_or(|u| b.from.is_none_or(|f| f <= u)) {
            return Err(format!("{} and {} overlap", a.describe(), b.describe()));
        }
    }
    Ok(())
}

/// Checks a classification table and sorts it by code: 1 to [`CLASSIFICATIONS_MAX`]
/// rows, well-formed distinct codes, short names of 1 to 32 characters.
pub fn canonical_classifications(rows: &mut [Classification]) -> Result<(), String> {
    if rows.is_empty() || rows.len() > CLASSIFICATIONS_MAX {
        return Err(format!("must list 1 to {CLASSIFICATIONS_MAX} codes"));
    }
    for r in rows.iter() {
        if !code_is_well_formed(&r.code) {
            return Err(format!("`{}` is not 19 digits starting 1 to 9", r.code));
        }
        let n = r.short_name.trim().chars().count();
        if n == 0 || r.short_name.chars().count() > 32 {
            return Err(format!("{}: the short name must be 1 to 32 characters", r.code));
        }
    }
    rows.sort_by(|a, b| a.code.cmp(&b.code));
    if let Some(w) = rows.windows(2).find(|w| w[0].code == w[1].code) {
        return Err(format!("{} is listed twice", w[0].code));
    }
    Ok(())
}

/// Looks a code up in a table sorted by code.
pub fn find_classification<'a>(rows: &'a [Classification], code: &str) -> Option<&'a Classification> {
    rows.binary_search_by(|r| r.code.as_str().cmp(code))
        .ok()
        .map(|i| &rows[i])
}

/// Rows of the national classification table (商品和服务税收分类编码表) that the
/// generated development genesis and the tests use; a real consortium lists the codes
/// its merchants sell under in its genesis.
pub fn sample_classifications() -> Vec<Classification> {
    SAMPLE
        .iter()
        .map(|(code, name)| Classification {
            code: (*code).to_owned(),
            short_name: (*name).to_owned(),
        })
        .collect()
}

/// Codes and short names as the national table and delivered 数电 invoices give them;
/// docs/FORMAT.md lists the rate each is normally invoiced at.
const SAMPLE: &[(&str, &str)] = &[
    ("1010101000000000000", "谷物"),
    ("1010112000000000000", "蔬菜"),
    ("1060301010100000000", "软件"),
    ("1070101010200000000", "汽油"),
    ("3040203000000000000", "信息技术服务"),
    ("3070202000000000000", "医疗服务"),
    ("3070401000000000000", "餐饮服务"),
    ("3070402000000000000", "住宿服务"),
    ("6010000000000000000", "预付卡销售"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_print_and_parse() {
        assert_eq!(TaxRate::Bp(1300).to_string(), "13%");
        assert_eq!(TaxRate::Bp(150).to_string(), "1.50%");
        assert_eq!(TaxRate::Exempt.to_string(), "免税");
        assert_eq!(TaxRate::NotTaxable.to_string(), "不征税");
        for (text, rate) in [
            ("13", TaxRate::Bp(1300)),
            ("13%", TaxRate::Bp(1300)),
            ("1.5", TaxRate::Bp(150)),
            ("0", TaxRate::Bp(0)),
            ("100", TaxRate::Bp(10_000)),
            ("exempt", TaxRate::Exempt),
            ("免税", TaxRate::Exempt),
            ("not_taxable", TaxRate::NotTaxable),
            ("不征税", TaxRate::NotTaxable),
        ] {
            assert_eq!(text.parse::<TaxRate>(), Ok(rate), "{text}");
        }
        for bad in ["", "%", "101", "1.234", "-1", "13 %", "free", "1e2"] {
            assert!(bad.parse::<TaxRate>().is_err(), "{bad}");
        }
        assert!(TaxRate::Bp(10_000) < TaxRate::Exempt && TaxRate::Exempt < TaxRate::NotTaxable);
        assert_eq!(TaxRate::Exempt.bp(), 0);
    }

    #[test]
    fn codes_have_nineteen_digits() {
        assert!(code_is_well_formed("3070401000000000000"));
        for bad in [
            "307040100000000000",
            "30704010000000000000",
            "307040100000000000x",
            "0070401000000000000",
            "",
        ] {
            assert!(!code_is_well_formed(bad), "{bad}");
        }
        let mut table = sample_classifications();
        canonical_classifications(&mut table).unwrap();
        assert_eq!(
            find_classification(&table, "3070401000000000000").unwrap().short_name,
            "餐饮服务"
        );
        assert!(find_classification(&table, "3070401000000000001").is_none());
        table.push(table[0].clone());
        assert!(canonical_classifications(&mut table).unwrap_err().contains("twice"));
    }

    #[test]
    fn rate_rules_schedule_a_change_and_refuse_overlaps() {
        let old = RateRule {
            rate: TaxRate::Bp(1600),
            from: None,
            until: Some(20190331),
        };
        let new = RateRule {
            rate: TaxRate::Bp(1300),
            from: Some(20190401),
            until: None,
        };
        let mut rules = vec![new, old];
        canonical_rate_rules(&mut rules).unwrap();
        assert_eq!(rules, vec![new, old]);
        assert!(old.in_force(20190331) && !old.in_force(20190401));
        assert!(!new.in_force(20190331) && new.in_force(20190401));
        assert_eq!(new.describe(), "13% from 2019-04-01");
        assert_eq!(parse_date("2019-04-01"), Some(20190401));
        assert_eq!("13%:2019-04-01..".parse::<RateRule>(), Ok(new));
        assert_eq!("16:..2019-03-31".parse::<RateRule>(), Ok(old));
        assert_eq!("exempt".parse::<RateRule>(), Ok(RateRule::always(TaxRate::Exempt)));
        for bad in ["13:2019-04-01", "13:x..", "x", "13:..2019-02-30"] {
            assert!(bad.parse::<RateRule>().is_err(), "{bad}");
        }
        for bad in ["2019-02-29", "20190401", "2019-4-01", "2019-04-0x", "2019/04/01"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }

        let twice = |a: RateRule, b: RateRule| canonical_rate_rules(&mut [a, b]);
        let open = RateRule::always(TaxRate::Bp(1300));
        assert!(twice(open, new).unwrap_err().contains("overlap"));
        let until = |d| RateRule { until: Some(d), ..new };
        let from = |d| RateRule { from: Some(d), ..new };
        assert!(
            twice(until(20190401), from(20190401)).is_err(),
            "one shared day overlaps"
        );
        let (first, second) = (
            RateRule {
                from: Some(20190101),
                until: Some(20190131),
                ..new
            },
            from(20190201),
        );
        assert!(twice(first, second).is_ok());
        for bad in [20190229, 20191301, 20190100, 19691231, 2019041] {
            assert!(canonical_rate_rules(&mut [from(bad)]).is_err(), "{bad}");
        }
        assert!(canonical_rate_rules(&mut [RateRule {
            from: Some(20190402),
            until: Some(20190401),
            ..new
        }])
        .is_err());
        assert!(canonical_rate_rules(&mut [RateRule::always(TaxRate::Bp(10_001))]).is_err());
        assert!(canonical_rate_rules(&mut []).is_err());
    }
}
