//! Line amounts: tax-exclusive net and tax, each rounded half up to the fen.
//!
//! `net = round_half_up(quantity_thousandths * unit_price / 1000)`,
//! `tax = round_half_up(net * rate_bp / 10000)`, `total = sum(net) + sum(tax)`.
//! Computed in `i128`; a result that does not fit in `i64` is an overflow.

use crate::state::RateAmounts;
use fapiao_core::event::{IssuedLine, LineItem};
use fapiao_core::money::div_round_half_up;
use fapiao_core::{Fen, TaxRate};

/// Amounts of a list of lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Lines with amounts.
    pub lines: Vec<IssuedLine>,
    /// Sum of nets.
    pub net: Fen,
    /// Sum of taxes.
    pub tax: Fen,
    /// `net + tax`.
    pub total: Fen,
}

/// Net and tax of one line (quantity and price must be positive). `None` on overflow.
pub fn line(item: &LineItem) -> Option<IssuedLine> {
    debug_assert!(item.quantity.0 > 0 && item.unit_price.is_positive());
    let net = div_round_half_up(i128::from(item.quantity.0) * i128::from(item.unit_price.fen()), 1000)?;
    let tax = div_round_half_up(i128::from(net) * i128::from(item.tax_rate.0), 10_000)?;
    Some(IssuedLine {
        item: item.clone(),
        net: Fen::from_fen(net),
        tax: Fen::from_fen(tax),
    })
}

/// Amounts of every line and the sums. `None` on overflow.
pub fn totals(items: &[LineItem]) -> Option<Totals> {
    let mut lines = Vec::with_capacity(items.len());
    let (mut net, mut tax) = (Fen::ZERO, Fen::ZERO);
    for item in items {
        let l = line(item)?;
        net = net.checked_add(l.net)?;
        tax = tax.checked_add(l.tax)?;
        lines.push(l);
    }
    let total = net.checked_add(tax)?;
    Some(Totals { lines, net, tax, total })
}

/// Net and tax per rate, sorted by rate. `None` on overflow, which lines within the
/// bounds (at most `LINES_MAX` lines of at most `AMOUNT_FEN_MAX` each) cannot reach.
pub fn by_rate(lines: &[IssuedLine]) -> Option<Vec<RateAmounts>> {
    let mut out: Vec<RateAmounts> = Vec::new();
    for l in lines {
        match out.iter_mut().find(|r| r.rate == l.item.tax_rate) {
            Some(r) => {
                r.net = r.net.checked_add(l.net)?;
                r.tax = r.tax.checked_add(l.tax)?;
            }
            None => out.push(RateAmounts {
                rate: l.item.tax_rate,
                net: l.net,
                tax: l.tax,
            }),
        }
    }
    out.sort_by_key(|r| r.rate);
    Some(out)
}

/// Rate lookup helper.
pub fn find_rate(rates: &[RateAmounts], rate: TaxRate) -> Option<&RateAmounts> {
    rates.iter().find(|r| r.rate == rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fapiao_core::Quantity;

    fn check(quantity: i64, unit_price: i64, rate: u16, expected: (i64, i64)) {
        let l = line(&LineItem {
            description: "x".into(),
            quantity: Quantity(quantity),
            unit_price: Fen::from_fen(unit_price),
            tax_rate: TaxRate(rate),
        })
        .unwrap();
        assert_eq!(
            (l.net.fen(), l.tax.fen()),
            expected,
            "{quantity} x {unit_price} @ {rate}"
        );
    }

    #[test]
    fn rounding_table() {
        check(1000, 10000, 1300, (10000, 1300)); // 1 x 100.00 at 13%
        check(1500, 333, 600, (500, 30)); // 1.5 x 3.33 = 4.995 -> 5.00; 6% = 0.30
        check(1000, 1, 600, (1, 0)); // 0.06 fen rounds down
        check(1000, 9, 600, (9, 1)); // 0.54 fen rounds up
        check(333, 1, 0, (0, 0)); // 0.333 fen rounds down to 0
        check(500, 1, 1300, (1, 0)); // 0.5 fen rounds half up to 1
        check(1000, 50, 1000, (50, 5)); // exactly half: 5.0
        check(1000, 25, 1000, (25, 3)); // 2.5 -> 3
    }

    #[test]
    fn overflow_is_none() {
        let item = LineItem {
            description: "x".into(),
            quantity: Quantity(i64::MAX),
            unit_price: Fen::from_fen(i64::MAX),
            tax_rate: TaxRate(1300),
        };
        assert!(line(&item).is_none());
    }
}
