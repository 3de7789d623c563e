//! Reconciliation of payments against invoices over a date range.
//!
//! Days are calendar days in China Standard Time (UTC+8), the merchants' business day.
//! Every figure is derived from the chain's committed state, and the balance checks
//! re-derive the same amounts two ways, so an imbalance means the state is inconsistent
//! (a bug or damage), never a business situation.

use crate::Engine;
use fapiao_core::state::{InvoiceRecord, PaymentInvoicing, StateKey, StateValue};
use fapiao_core::{tax, Fen, InvoiceNumber, TaxRate, Timestamp};
use fapiao_domain::StateRead;
use fapiao_store::StoreError;
use std::collections::BTreeMap;
use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

/// China Standard Time (UTC+8), for the time of day. The business day itself is
/// fapiao-core's UTC+8 date ([`Timestamp::utc8_date`]); a test checks the two agree.
const CST: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => panic!("UTC+8 is a valid offset"),
};

/// Day 0: 1970-01-01, as a Julian day number.
const EPOCH_JULIAN_DAY: i32 = OffsetDateTime::UNIX_EPOCH.to_julian_day();

/// Days since 1970-01-01 of a calendar date written `YYYYMMDD` (from 1970), if it is one.
fn day_of(date: u32) -> Option<u64> {
    let month = Month::try_from(u8::try_from(date / 100 % 100).ok()?).ok()?;
    let day = u8::try_from(date % 100).ok()?;
    let d = Date::from_calendar_date(i32::try_from(date / 10_000).ok()?, month, day).ok()?;
    u64::try_from(d.to_julian_day() - EPOCH_JULIAN_DAY).ok()
}

/// The calendar date, `YYYYMMDD`, of a day number; past 9999-12-31 it reads as that day,
/// as fapiao-core's dates do.
fn date_of(day: u64) -> u32 {
    let date = i32::try_from(day)
        .ok()
        .and_then(|d| d.checked_add(EPOCH_JULIAN_DAY))
        .and_then(|j| Date::from_julian_day(j).ok())
        .filter(|d| d.year() <= 9999);
    match date {
        Some(d) => d.year() as u32 * 10_000 + u32::from(u8::from(d.month())) * 100 + u32::from(d.day()),
        None => 99_991_231,
    }
}

/// Days since 1970-01-01 of a civil date `Y-M-D` (years 1970 to 9999), if valid.
pub fn parse_day(s: &str) -> Option<u64> {
    let mut it = s.trim().splitn(3, '-');
    let (y, m, d): (i64, i64, i64) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    day_of(u32::try_from(y * 10_000 + m * 100 + d).ok()?)
}

/// The civil date `YYYY-MM-DD` of a day number.
pub fn format_day(day: u64) -> String {
    tax::format_date(date_of(day))
}

/// Milliseconds since the start of the business day (UTC+8) of a block time. Instants
/// past the year 9999 read as its last millisecond.
pub fn business_ms_of_day(ms: u64) -> u64 {
    let clock = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.checked_to_offset(CST))
        .map_or(Time::MAX, |t| t.time());
    let (h, m, s, milli) = clock.as_hms_milli();
    ((u64::from(h) * 60 + u64::from(m)) * 60 + u64::from(s)) * 1000 + u64::from(milli)
}

/// The business day (days since 1970-01-01, UTC+8) of a block time.
pub fn business_day(ms: u64) -> u64 {
    day_of(Timestamp(ms).utc8_date()).unwrap_or_else(|| unreachable!("a date of the years 1970 to 9999"))
}

/// A block time as `YYYY-MM-DD HH:MM:SS (UTC+8)`, as reprints and pages show it.
pub fn format_time(ms: u64) -> String {
    let secs = business_ms_of_day(ms) / 1000;
    format!(
        "{} {:02}:{:02}:{:02} (UTC+8)",
        format_day(business_day(ms)),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// One row: a day and a payment method.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconRow {
    /// Business day (days since the epoch, UTC+8).
    pub day: u64,
    /// Payment method name.
    pub method: String,
    /// Payments recorded (not counting ones reversed as wrongly entered).
    pub payments: u64,
    /// Paid.
    pub paid: Fen,
    /// Refunded.
    pub refunded: Fen,
    /// Invoiced (issued, before red-letter reversals).
    pub invoiced: Fen,
    /// Red-letter reversed.
    pub reversed: Fen,
    /// Paid − refunded − (invoiced − reversed), floored at zero.
    pub not_invoiced: Fen,
    /// Payments reversed as wrongly entered (amount, not in `paid`).
    pub voided: Fen,
}

/// Invoice amounts at one tax rate over a range: blue invoices issued and red invoices
/// issued in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateRow {
    /// The rate.
    pub rate: TaxRate,
    /// Net of the blue invoices issued.
    pub issued_net: Fen,
    /// Their tax.
    pub issued_tax: Fen,
    /// Net of the red invoices issued (positive: what they reversed).
    pub reversed_net: Fen,
    /// Their tax.
    pub reversed_tax: Fen,
}

/// The invoicing quota of one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaMonthRow {
    /// `YYYYMM` (UTC+8).
    pub month: u32,
    /// Granted, tax included.
    pub granted: Fen,
    /// Used (blue invoices less red ones of the month).
    pub used: Fen,
    /// Left (nothing is carried into the next month).
    pub left: Fen,
    /// Suspended at the end of the month (or now, for the current one).
    pub suspended: bool,
}

/// The reconciliation of a range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Invoiced per tax rate (invoices issued on the range's days), by rate.
    pub by_rate: Vec<RateRow>,
    /// The quota of each month the range touches that had one, in order.
    pub quota: Vec<QuotaMonthRow>,
    /// Per day and method, in order.
    pub rows: Vec<ReconRow>,
    /// Totals over the rows.
    pub total: ReconRow,
    /// Payments with nothing invoiced yet (and something left to invoice), the first
    /// [`RECON_LIST_MAX`].
    pub uninvoiced: Vec<(String, Fen)>,
    /// Uninvoiced payments beyond the listed ones.
    pub uninvoiced_more: u64,
    /// Invoices whose payments were refunded afterwards: they need a red-letter reversal
    /// (the first [`RECON_LIST_MAX`]).
    pub needs_red_letter: Vec<(String, InvoiceNumber)>,
    /// Such invoices beyond the listed ones.
    pub needs_red_letter_more: u64,
    /// Balance errors; empty when everything reconciles.
    pub errors: Vec<String>,
}

/// Payments read per page while reconciling: memory stays flat however many payments
/// the chain holds.
const RECON_PAGE_ROWS: usize = 1024;
/// Most payments listed one by one as uninvoiced, and most invoices listed as needing a
/// red-letter reversal; the rest are counted (`uninvoiced_more`, `needs_red_letter_more`).
pub const RECON_LIST_MAX: usize = 1000;

/// `a += b`, or a balance error when the sum leaves the range of an amount (which
/// amounts within the bounds cannot reach over a reconciliation's days).
fn add(a: &mut Fen, b: Fen, errors: &mut Vec<String>, what: &str) {
    match a.checked_add(b) {
        Some(v) => *a = v,
        None => errors.push(format!("{what}: the sum leaves the range of an amount")),
    }
}

/// Hands every state record of the same kind as `kind` (its variant; the key's fields
/// do not matter) to `f`, a page at a time, so memory stays flat however many there are.
fn for_each_record(
    view: &fapiao_store::ChainView<'_>,
    kind: StateKey,
    mut f: impl FnMut(StateValue) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let prefix = kind.variant_prefix();
    let mut after: Option<StateKey> = None;
    loop {
        let page = view.scan(&prefix, after.as_ref(), RECON_PAGE_ROWS)?;
        let Some((last, _)) = page.last() else { return Ok(()) };
        after = Some(last.clone());
        for (_, v) in page {
            f(v)?;
        }
    }
}

impl Engine {
    /// Reconciles this chain's payments recorded on business days `from..=to`.
    pub fn reconcile(&self, from_day: u64, to_day: u64) -> Result<Reconciliation, StoreError> {
        let chain = self.chain();
        let view = self.store().state(chain);
        let mut rows: BTreeMap<(u64, String), ReconRow> = BTreeMap::new();
        let mut out = Reconciliation::default();
        for_each_record(&view, StateKey::Payment(String::new()), |v| {
            let StateValue::Payment(p) = v else { return Ok(()) };
            let day = business_day(p.recorded_at.0);
            if day < from_day || day > to_day {
                return Ok(());
            }
            self.reconcile_payment(&view, p, day, &mut rows, &mut out)
        })?;
        let mut total = ReconRow {
            method: "all".into(),
            ..ReconRow::default()
        };
        let errors = &mut out.errors;
        for r in rows.values() {
            total.payments += r.payments;
            add(&mut total.paid, r.paid, errors, "total paid");
            add(&mut total.refunded, r.refunded, errors, "total refunded");
            add(&mut total.invoiced, r.invoiced, errors, "total invoiced");
            add(&mut total.reversed, r.reversed, errors, "total reversed");
            add(&mut total.not_invoiced, r.not_invoiced, errors, "total not invoiced");
            add(&mut total.voided, r.voided, errors, "total voided");
        }
        out.rows = rows.into_values().collect();
        out.total = total;
        self.reconcile_rates(&view, from_day, to_day, &mut out)?;
        self.reconcile_quota(&view, from_day, to_day, &mut out)?;
        Ok(out)
    }

    /// Invoiced per tax rate: every invoice (blue or red) issued on the range's days,
    /// read page by page.
    fn reconcile_rates(
        &self,
        view: &fapiao_store::ChainView<'_>,
        from_day: u64,
        to_day: u64,
        out: &mut Reconciliation,
    ) -> Result<(), StoreError> {
        let mut rates: BTreeMap<TaxRate, RateRow> = BTreeMap::new();
        let in_range = |ms: u64| (from_day..=to_day).contains(&business_day(ms));
        let any_invoice = StateKey::Invoice(InvoiceNumber::new(0, self.chain(), 0).unwrap_or_else(|| unreachable!()));
        for_each_record(view, any_invoice, |v| {
            let (lines, red) = match &v {
                StateValue::Invoice(InvoiceRecord::Blue(b)) if in_range(b.issued.issued_at.0) => {
                    (&b.issued.lines, false)
                }
                StateValue::Invoice(InvoiceRecord::Red(r)) if in_range(r.reversed_at.0) => (&r.lines, true),
                _ => return Ok(()),
            };
            for l in lines {
                let row = rates.entry(l.item.tax_rate).or_insert_with(|| RateRow {
                    rate: l.item.tax_rate,
                    issued_net: Fen::ZERO,
                    issued_tax: Fen::ZERO,
                    reversed_net: Fen::ZERO,
                    reversed_tax: Fen::ZERO,
                });
                let errors = &mut out.errors;
                if red {
                    add(&mut row.reversed_net, l.net, errors, "reversed net per rate");
                    add(&mut row.reversed_tax, l.tax, errors, "reversed tax per rate");
                } else {
                    add(&mut row.issued_net, l.net, errors, "issued net per rate");
                    add(&mut row.issued_tax, l.tax, errors, "issued tax per rate");
                }
            }
            Ok(())
        })?;
        out.by_rate = rates.into_values().collect();
        Ok(())
    }

    /// The quota of each month from `from_day`'s to `to_day`'s: the archived record of a
    /// month that ended, or the current one.
    fn reconcile_quota(
        &self,
        view: &fapiao_store::ChainView<'_>,
        from_day: u64,
        to_day: u64,
        out: &mut Reconciliation,
    ) -> Result<(), StoreError> {
        let month_of = |day: u64| date_of(day) / 100;
        let current = match view.get(&StateKey::Quota)? {
            Some(StateValue::Quota(q)) => Some(q),
            _ => None,
        };
        let (mut m, last) = (month_of(from_day), month_of(to_day));
        while m <= last {
            let record = match view.get(&StateKey::QuotaMonth(m))? {
                Some(StateValue::QuotaMonth(q)) => Some(q),
                _ => current.clone().filter(|q| q.month == m),
            };
            if let Some(q) = record {
                out.quota.push(QuotaMonthRow {
                    month: q.month,
                    granted: q.granted,
                    used: q.used,
                    left: q.left(),
                    suspended: q.suspended,
                });
            }
            m = if m % 100 == 12 { (m / 100 + 1) * 100 + 1 } else { m + 1 };
        }
        Ok(())
    }

    fn reconcile_payment(
        &self,
        view: &fapiao_store::ChainView<'_>,
        p: fapiao_core::state::PaymentRecord,
        day: u64,
        rows: &mut BTreeMap<(u64, String), ReconRow>,
        out: &mut Reconciliation,
    ) -> Result<(), StoreError> {
        let id = p.recorded.payment_id.clone();
        let method = p.recorded.method.name().to_string();
        let invoicing = match view.get(&StateKey::PaymentInvoicing(id.clone()))? {
            Some(StateValue::PaymentInvoicing(i)) => i,
            _ => PaymentInvoicing::default(),
        };
        let errors = &mut out.errors;
        let (gross, standing) = invoiced_from_invoices(view, &id, &invoicing, errors)?;
        let row = rows.entry((day, method.clone())).or_insert_with(|| ReconRow {
            day,
            method,
            ..ReconRow::default()
        });
        if standing != invoicing.invoiced {
            errors.push(format!(
                "payment {id}: its invoices leave {standing} standing but the payment records {} invoiced",
                invoicing.invoiced
            ));
        }
        if p.voided.is_some() {
            add(&mut row.voided, p.recorded.amount, errors, "voided");
            if !invoicing.invoiced.is_zero() {
                errors.push(format!(
                    "payment {id} is voided but {} of invoices still stand on it",
                    invoicing.invoiced
                ));
            }
            return Ok(());
        }
        let paid = p.recorded.amount;
        let refunded = p.refunded;
        row.payments += 1;
        add(&mut row.paid, paid, errors, "paid");
        add(&mut row.refunded, refunded, errors, "refunded");
        add(&mut row.invoiced, gross, errors, "invoiced");
        add(
            &mut row.reversed,
            gross.checked_sub(standing).unwrap_or(Fen::ZERO),
            errors,
            "reversed",
        );
        // paid - refunded - standing, each within the bound: exact.
        let open = paid.checked_sub(refunded).and_then(|x| x.checked_sub(standing));
        let Some(open) = open else {
            errors.push(format!("payment {id}: its amounts leave the range of an amount"));
            return Ok(());
        };
        add(&mut row.not_invoiced, open.max(Fen::ZERO), errors, "not invoiced");
        if standing > paid {
            errors.push(format!(
                "payment {id}: {standing} invoiced is more than the {paid} paid"
            ));
        }
        if refunded > paid {
            errors.push(format!(
                "payment {id}: {refunded} refunded is more than the {paid} paid"
            ));
        }
        list_open(out, &id, open, standing, &invoicing);
        Ok(())
    }
}

/// Lists payment `id` where it needs attention: refunded after invoicing (`open` below
/// zero: its invoices need a red letter), or with nothing invoiced yet. Each list keeps at
/// most RECON_LIST_MAX rows and counts the rest.
fn list_open(out: &mut Reconciliation, id: &str, open: Fen, standing: Fen, invoicing: &PaymentInvoicing) {
    if open.is_negative() {
        for n in &invoicing.invoices {
            if out.needs_red_letter.len() < RECON_LIST_MAX {
                out.needs_red_letter.push((id.to_string(), *n));
            } else {
                out.needs_red_letter_more += 1;
            }
        }
    } else if standing.is_zero() && open.is_positive() {
        if out.uninvoiced.len() < RECON_LIST_MAX {
            out.uninvoiced.push((id.to_string(), open));
        } else {
            out.uninvoiced_more += 1;
        }
    }
}

/// What the invoices on payment `id` drew from it in all (gross) and what of that still
/// stands, read from the invoices themselves. At most INVOICES_PER_PAYMENT_MAX invoices
/// of amounts within the bound: no overflow.
fn invoiced_from_invoices(
    view: &fapiao_store::ChainView<'_>,
    id: &str,
    invoicing: &PaymentInvoicing,
    errors: &mut Vec<String>,
) -> Result<(Fen, Fen), StoreError> {
    let (mut gross, mut standing) = (Fen::ZERO, Fen::ZERO);
    for n in &invoicing.invoices {
        if let Some(StateValue::Invoice(InvoiceRecord::Blue(b))) = view.get(&StateKey::Invoice(*n))? {
            for a in b.issued.allocations.iter().filter(|a| a.payment_id == id) {
                add(&mut gross, a.amount, errors, &format!("payment {id}"));
            }
            for a in b.standing.iter().filter(|a| a.payment_id == id) {
                add(&mut standing, a.amount, errors, &format!("payment {id}"));
            }
        }
    }
    Ok((gross, standing))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 86_400_000;

    #[test]
    fn times_are_utc_plus_8() {
        // 2026-01-01T00:00:03Z is 08:00:03 in Beijing.
        assert_eq!(format_time(1_767_225_603_000), "2026-01-01 08:00:03 (UTC+8)");
        // 2025-12-31T16:00:00Z is already 2026-01-01 there.
        assert_eq!(format_time(1_767_196_800_000), "2026-01-01 00:00:00 (UTC+8)");
    }

    #[test]
    fn days_round_trip_and_bad_dates_are_refused() {
        for (s, d) in [("1970-01-01", 0), ("2000-03-01", 11_017), ("2026-11-22", 20_779)] {
            assert_eq!(parse_day(s), Some(d), "{s}");
            assert_eq!(format_day(d), s);
        }
        for d in 0..30_000 {
            assert_eq!(parse_day(&format_day(d)), Some(d));
        }
        for bad in ["2026-02-29", "2026-13-01", "2026-00-10", "1969-12-31", "x", "2026-1"] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
        // 2026-11-22 00:30 in Beijing is still 2026-11-21 in UTC.
        assert_eq!(business_day(20_778 * DAY_MS + 16 * 3_600_000 + 1_800_000), 20_779);
    }

    #[test]
    fn the_clock_and_the_day_share_one_offset() {
        // Around midnight in Beijing, across a leap day, a year's end and the epoch: the day
        // (fapiao-core's UTC+8 date) and the time of day (this file's offset) add up.
        for midnight_utc in [
            16 * 3_600_000,
            11_016 * DAY_MS + 16 * 3_600_000,
            20_453 * DAY_MS + 16 * 3_600_000,
        ] {
            for ms in (midnight_utc - 3 * 3_600_000..midnight_utc + 3 * 3_600_000).step_by(599_999) {
                assert_eq!(
                    business_day(ms) * DAY_MS + business_ms_of_day(ms),
                    ms + 8 * 3_600_000,
                    "{ms}"
                );
            }
        }
        // Instants past the year 9999 read as its last millisecond.
        assert_eq!(format_time(u64::MAX), "9999-12-31 23:59:59 (UTC+8)");
        assert_eq!(business_ms_of_day(u64::MAX), DAY_MS - 1);
    }
}
