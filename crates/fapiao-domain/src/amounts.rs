//! Line amounts: tax-exclusive net and tax, each rounded half up to the fen.
//!
//! `net = round_half_up(quantity_thousandths * unit_price / 1000)`,
//! `tax = round_half_up(net * rate_bp / 10000)` (0 under the exempt and not-taxable
//! flags), `total = sum(net) + sum(tax)`.
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
pub fn net_tax(item: &LineItem) -> Option<(Fen, Fen)> {
    debug_assert!(item.quantity.0 > 0 && item.unit_price.is_positive());
    let net = div_round_half_up(i128::from(item.quantity.0) * i128::from(item.unit_price.fen()), 1000)?;
    let tax = div_round_half_up(i128::from(net) * i128::from(item.tax_rate.bp()), 10_000)?;
    Some((Fen::from_fen(net), Fen::from_fen(tax)))
}

/// One line with its amounts and its classification's short name. `None` on overflow.
pub fn line(item: &LineItem, short_name: String) -> Option<IssuedLine> {
    let (net, tax) = net_tax(item)?;
    Some(IssuedLine {
        item: item.clone(),
        short_name,
        net,
        tax,
    })
}

/// Amounts of every line and the sums; `short_name` gives each line's short name.
/// `None` on overflow.
pub fn totals(items: &[LineItem], short_name: impl Fn(&LineItem) -> String) -> Option<Totals> {
    let mut lines = Vec::with_capacity(items.len());
    let (mut net, mut tax) = (Fen::ZERO, Fen::ZERO);
    for item in items {
        let l = line(item, short_name(item))?;
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

/// What is left of one line of a blue invoice: its amounts less every red line matched
/// to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineLeft {
    /// Net left.
    pub net: Fen,
    /// Tax left.
    pub tax: Fen,
}

impl LineLeft {
    /// A line's full amounts, before any reversal.
    pub fn of(l: &IssuedLine) -> Self {
        LineLeft { net: l.net, tax: l.tax }
    }

    /// Whether anything is left.
    pub fn any(&self) -> bool {
        !self.net.is_zero() || !self.tax.is_zero()
    }
}

/// Why red lines could not be taken off the original's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeError {
    /// Red line `.0` names no later original line with the same description and rate
    /// and something left.
    Unknown(usize),
    /// Red line `line` reverses more than is left of original line `original`.
    Exceeds {
        /// The red line.
        line: usize,
        /// The original line it names.
        original: usize,
        /// What was left of it.
        left: LineLeft,
    },
}

/// Takes red-letter lines off the original invoice's lines, in order (the 数电 rule that
/// a partial reversal keeps the original's line order). Red line `i` names the first
/// original line after the one red line `i - 1` named that has the same description,
/// classification code and tax rate and something left; its net and tax must be within
/// what is left of that line, and it takes that line's short name.
/// A red line that takes all of a line's net takes exactly the tax left on it (its tax is
/// set to that), so per-line rounding can neither strand a fen nor overdraw one.
///
/// The same function checks a new reversal and replays the stored red invoices of an
/// invoice to find what is left of each line, so both read the lines the same way.
/// On error `left` and `red` may be partly updated: callers work on copies.
pub fn take_lines(original: &[IssuedLine], left: &mut [LineLeft], red: &mut [IssuedLine]) -> Result<(), TakeError> {
    debug_assert_eq!(original.len(), left.len());
    let mut from = 0;
    for (i, r) in red.iter_mut().enumerate() {
        let j = (from..original.len())
            .find(|&j| {
                let o = &original[j].item;
                o.description == r.item.description
                    && o.tax_code == r.item.tax_code
                    && o.tax_rate == r.item.tax_rate
                    && left[j].any()
            })
            .ok_or(TakeError::Unknown(i))?;
        let l = left[j];
        let exceeds = TakeError::Exceeds {
            line: i,
            original: j,
            left: l,
        };
        if r.net > l.net {
            return Err(exceeds);
        }
        if r.net == l.net {
            r.tax = l.tax;
        } else if r.tax > l.tax {
            return Err(exceeds);
        }
        left[j] = LineLeft {
            net: l.net.checked_sub(r.net).ok_or(exceeds.clone())?,
            tax: l.tax.checked_sub(r.tax).ok_or(exceeds)?,
        };
        r.short_name.clone_from(&original[j].short_name);
        from = j + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fapiao_core::Quantity;

    fn check(quantity: i64, unit_price: i64, rate: u16, expected: (i64, i64)) {
        let (net, tax) = net_tax(&LineItem {
            description: "x".into(),
            tax_code: CODE.into(),
            quantity: Quantity(quantity),
            unit_price: Fen::from_fen(unit_price),
            tax_rate: TaxRate::Bp(rate),
        })
        .unwrap();
        assert_eq!((net.fen(), tax.fen()), expected, "{quantity} x {unit_price} @ {rate}");
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
    fn flags_carry_no_tax() {
        for flag in [TaxRate::Exempt, TaxRate::NotTaxable] {
            let item = LineItem {
                description: "x".into(),
                tax_code: CODE.into(),
                quantity: Quantity(2000),
                unit_price: Fen::from_fen(1050),
                tax_rate: flag,
            };
            assert_eq!(net_tax(&item), Some((Fen::from_fen(2100), Fen::ZERO)));
        }
    }

    #[test]
    fn overflow_is_none() {
        let item = LineItem {
            description: "x".into(),
            tax_code: CODE.into(),
            quantity: Quantity(i64::MAX),
            unit_price: Fen::from_fen(i64::MAX),
            tax_rate: TaxRate::Bp(1300),
        };
        assert!(net_tax(&item).is_none());
    }

    const CODE: &str = "3070401000000000000";

    fn issued(description: &str, net: i64, tax: i64, rate: u16) -> IssuedLine {
        IssuedLine {
            item: LineItem {
                description: description.into(),
                tax_code: CODE.into(),
                quantity: Quantity::ONE,
                unit_price: Fen::from_fen(net),
                tax_rate: TaxRate::Bp(rate),
            },
            short_name: "餐饮服务".into(),
            net: Fen::from_fen(net),
            tax: Fen::from_fen(tax),
        }
    }

    #[test]
    fn red_lines_keep_the_original_order_and_stay_within_each_line() {
        let original = [
            issued("Tea", 1000, 130, 1300),
            issued("Pot", 3333, 200, 600),
            issued("Tea", 500, 65, 1300),
        ];
        let fresh = || original.iter().map(LineLeft::of).collect::<Vec<_>>();
        // Both "Tea" lines, in order: the second names the third original line.
        let mut left = fresh();
        let mut red = [issued("Tea", 1000, 130, 1300), issued("Tea", 200, 26, 1300)];
        take_lines(&original, &mut left, &mut red).unwrap();
        assert_eq!(
            left[0],
            LineLeft {
                net: Fen::ZERO,
                tax: Fen::ZERO
            }
        );
        assert_eq!(left[2].net, Fen::from_fen(300));
        // Order: "Pot" is line 2, so a "Tea" after it can only be line 3 (too small for
        // 10.00), and a second "Pot" names nothing.
        let mut red = [issued("Pot", 1, 0, 600), issued("Tea", 1000, 130, 1300)];
        assert!(matches!(
            take_lines(&original, &mut fresh(), &mut red),
            Err(TakeError::Exceeds {
                line: 1,
                original: 2,
                ..
            })
        ));
        let mut red = [issued("Pot", 1, 0, 600), issued("Pot", 1, 0, 600)];
        assert_eq!(
            take_lines(&original, &mut fresh(), &mut red),
            Err(TakeError::Unknown(1))
        );
        // A description or rate not on the invoice names nothing.
        let mut red = [issued("Cup", 1, 0, 1300)];
        assert_eq!(
            take_lines(&original, &mut fresh(), &mut red),
            Err(TakeError::Unknown(0))
        );
        let mut red = [issued("Tea", 1, 0, 900)];
        assert_eq!(
            take_lines(&original, &mut fresh(), &mut red),
            Err(TakeError::Unknown(0))
        );
        // More than the line: refused, even though the rate has room on another line.
        let mut red = [issued("Tea", 1001, 130, 1300)];
        assert!(matches!(
            take_lines(&original, &mut fresh(), &mut red),
            Err(TakeError::Exceeds {
                line: 0,
                original: 0,
                ..
            })
        ));
        // A line used up is skipped: the next "Tea" is the third line.
        let mut left = fresh();
        take_lines(&original, &mut left, &mut [issued("Tea", 1000, 130, 1300)]).unwrap();
        let mut red = [issued("Tea", 100, 13, 1300)];
        take_lines(&original, &mut left, &mut red).unwrap();
        assert_eq!(left[2].net, Fen::from_fen(400));
    }

    #[test]
    fn the_last_of_a_line_takes_exactly_its_tax() {
        let original = [issued("Pot", 3333, 200, 600)];
        let mut left = vec![LineLeft::of(&original[0])];
        // 3 x 11.11 at 6%: each part's tax rounds to 0.67, 2.01 in all, one fen over.
        for _ in 0..2 {
            let mut red = [issued("Pot", 1111, 67, 600)];
            take_lines(&original, &mut left, &mut red).unwrap();
            assert_eq!(red[0].tax, Fen::from_fen(67));
        }
        let mut last = [issued("Pot", 1111, 67, 600)];
        take_lines(&original, &mut left, &mut last).unwrap();
        assert_eq!(last[0].tax, Fen::from_fen(66));
        assert_eq!(
            left[0],
            LineLeft {
                net: Fen::ZERO,
                tax: Fen::ZERO
            }
        );
        assert!(!left[0].any());
    }
}
