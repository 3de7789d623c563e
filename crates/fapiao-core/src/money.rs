//! Money in integer fen, tax rates in basis points, quantities in thousandths.
//! Never floating point.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The largest amount any one payment, refund, fee deposit, invoice line, invoice total or
/// policy limit may carry: 10^12 fen (10 billion yuan). A format constant: every node and
/// verifier refuses larger amounts, so every sum the ledger forms (at most
/// [`SUM_TERMS_MAX`] bounded terms) stays far inside `i64`.
pub const AMOUNT_FEN_MAX: i64 = 1_000_000_000_000;

/// The most bounded amounts any one sum in the ledger adds up (payments per invoice, lines
/// per invoice, refunds per payment, ...). `AMOUNT_FEN_MAX * SUM_TERMS_MAX` fits in `i64`
/// with room to spare (asserted below), so sums at the bound cannot overflow.
pub const SUM_TERMS_MAX: i64 = 10_000;

const _: () = assert!(AMOUNT_FEN_MAX.checked_mul(SUM_TERMS_MAX).is_some());

/// An amount of money in fen (1 yuan = 100 fen).
///
/// The field is private: amounts are built with [`Fen::from_fen`], read with
/// [`Fen::fen`], and added only with the checked operations, so no sum can silently wrap
/// (a release build wraps where a debug build panics, and two nodes built differently
/// must never disagree).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug, Default)]
pub struct Fen(i64);

impl Fen {
    /// Zero.
    pub const ZERO: Fen = Fen(0);
    /// [`AMOUNT_FEN_MAX`] as an amount.
    pub const MAX: Fen = Fen(AMOUNT_FEN_MAX);

    /// `fen` fen.
    pub const fn from_fen(fen: i64) -> Fen {
        Fen(fen)
    }

    /// The amount in fen.
    pub const fn fen(self) -> i64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }

    /// `self - other`, or `None` on overflow.
    pub fn checked_sub(self, other: Fen) -> Option<Fen> {
        self.0.checked_sub(other.0).map(Fen)
    }

    /// `-self`, or `None` on overflow.
    pub fn checked_neg(self) -> Option<Fen> {
        self.0.checked_neg().map(Fen)
    }

    /// The sum of `amounts`, or `None` on overflow.
    pub fn checked_sum(amounts: impl IntoIterator<Item = Fen>) -> Option<Fen> {
        amounts.into_iter().try_fold(Fen::ZERO, Fen::checked_add)
    }

    /// Strictly above zero.
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// Exactly zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Strictly below zero.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Above zero and at most [`AMOUNT_FEN_MAX`]: what a payment, refund, deposit or unit
    /// price must be.
    pub fn is_valid_amount(self) -> bool {
        self.0 > 0 && self.0 <= AMOUNT_FEN_MAX
    }
}

impl fmt::Display for Fen {
    /// Yuan with two decimals, e.g. `-12.05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl FromStr for Fen {
    type Err = crate::ids::ParseError;
    /// Parses yuan with at most two decimals (`12`, `12.5`, `12.05`, `-3.10`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const MSG: &str = "an amount is yuan with at most two decimals, e.g. 12.50";
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let fen = parse_fixed(body, 2).ok_or(crate::ids::ParseError(MSG))?;
        Ok(Fen(if neg { -fen } else { fen }))
    }
}

/// A non-negative decimal with at most `decimals` places (`12`, `12.5`, `0.05`), as an
/// integer in units of 10^-decimals: `parse_fixed("12.5", 2) == Some(1250)`. `None` for
/// anything else (a sign, spaces, an empty whole part, too many places, overflow).
pub fn parse_fixed(s: &str, decimals: u32) -> Option<i64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || frac.len() > decimals as usize
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().ok()? * 10i64.pow(decimals - frac.len() as u32)
    };
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(10i64.pow(decimals))?
        .checked_add(frac)
}

pub use crate::tax::TaxRate;

/// A quantity in thousandths of a unit (1500 = 1.5 units).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct Quantity(pub i64);

impl Quantity {
    /// One whole unit.
    pub const ONE: Quantity = Quantity(1000);
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        if abs % 1000 == 0 {
            write!(f, "{sign}{}", abs / 1000)
        } else {
            let frac = format!("{:03}", abs % 1000);
            write!(f, "{sign}{}.{}", abs / 1000, frac.trim_end_matches('0'))
        }
    }
}

/// `round_half_up(numerator / denominator)` for a non-negative numerator and positive
/// denominator, computed in `i128` so no intermediate overflows. `None` if the result
/// does not fit in `i64`.
pub fn div_round_half_up(numerator: i128, denominator: i128) -> Option<i64> {
    debug_assert!(numerator >= 0 && denominator > 0);
    let q = (numerator + denominator / 2) / denominator;
    i64::try_from(q).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fen_text() {
        assert_eq!(Fen(1205).to_string(), "12.05");
        assert_eq!(Fen(-5).to_string(), "-0.05");
        assert_eq!("12.5".parse::<Fen>().unwrap(), Fen(1250));
        assert_eq!("12".parse::<Fen>().unwrap(), Fen(1200));
        assert_eq!("-3.10".parse::<Fen>().unwrap(), Fen(-310));
        for bad in ["", "1.234", "1e3", "abc", ".5", "1.-5"] {
            assert!(bad.parse::<Fen>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rounding_half_up() {
        assert_eq!(div_round_half_up(5, 10), Some(1));
        assert_eq!(div_round_half_up(4, 10), Some(0));
        assert_eq!(div_round_half_up(15, 10), Some(2));
        assert_eq!(div_round_half_up(i128::from(i64::MAX) * 3, 1), None);
    }

    #[test]
    fn display_rates_and_quantities() {
        assert_eq!(Quantity(1500).to_string(), "1.5");
        assert_eq!(Quantity(2000).to_string(), "2");
    }
}
