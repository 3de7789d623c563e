//! Identifiers and small value types shared by every ledger object.

use crate::hash::Hash32;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The network id: the domain-separated hash of the canonical genesis. Every signed
/// message carries it, so nothing replays across networks.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct NetworkId(pub Hash32);

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A member's 6-digit code (`000000`..=`999999`). A merchant's chain is named by its
/// owner's code, and the code is part of every invoice number it issues.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct MemberCode(u32);

impl MemberCode {
    /// The largest code.
    pub const MAX: u32 = 999_999;

    /// A code, if `value` has at most six digits.
    pub fn new(value: u32) -> Option<Self> {
        (value <= Self::MAX).then_some(MemberCode(value))
    }

    /// The numeric value.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for MemberCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl FromStr for MemberCode {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError("a member code is exactly 6 digits"));
        }
        s.parse::<u32>()
            .ok()
            .and_then(MemberCode::new)
            .ok_or(ParseError("a member code is exactly 6 digits"))
    }
}

/// A text field did not parse; the message says what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub &'static str);

/// The id of an event: the domain-separated hash of its signed body.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct EventId(pub Hash32);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The hash of a block header, which names the block.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct BlockHash(pub Hash32);

impl fmt::Display for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct Timestamp(pub u64);

/// China Standard Time (UTC+8), the offset of the platform's business day, month and year.
const CST: time::UtcOffset = match time::UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => panic!("UTC+8 is a valid offset"),
};

impl Timestamp {
    /// This instant as a date and time in China Standard Time (UTC+8). Instants past
    /// the year 9999 read as its last second.
    fn utc8(self) -> time::OffsetDateTime {
        let secs = (self.0 / 1000).min(253_402_300_799 - 8 * 3600) as i64;
        match time::OffsetDateTime::from_unix_timestamp(secs) {
            Ok(t) => t.to_offset(CST),
            Err(_) => unreachable!("clamped to the years time represents"),
        }
    }

    /// The month of this instant in China Standard Time (UTC+8), as `YYYYMM`: the
    /// boundary of a merchant's invoicing quota.
    pub fn utc8_month(self) -> u32 {
        let t = self.utc8();
        t.year() as u32 * 100 + u32::from(u8::from(t.month()))
    }

    /// The calendar date of this instant in China Standard Time (UTC+8), as `YYYYMMDD`:
    /// the issue date, and the day a merchant's rate rules are judged on.
    pub fn utc8_date(self) -> u32 {
        let t = self.utc8().date();
        t.year() as u32 * 10_000 + u32::from(u8::from(t.month())) * 100 + u32::from(t.day())
    }

    /// The calendar year of this instant in China Standard Time (UTC+8): the year an
    /// invoice number carries, as on the reprint and for the quota.
    pub fn utc8_year(self) -> i64 {
        i64::from(self.utc8().year())
    }
}

/// A 20-digit invoice number: 2-digit year, 6-digit issuing member code, 12-digit
/// sequence (per chain, gap-free, starting at 1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct InvoiceNumber {
    year: u8,
    member: MemberCode,
    sequence: u64,
}

impl InvoiceNumber {
    /// The largest sequence number, 12 digits.
    pub const SEQUENCE_MAX: u64 = 999_999_999_999;

    /// A number, if `year < 100` and `sequence` has at most 12 digits.
    pub fn new(year: u8, member: MemberCode, sequence: u64) -> Option<Self> {
        (year < 100 && sequence <= Self::SEQUENCE_MAX).then_some(InvoiceNumber { year, member, sequence })
    }

    /// The two-digit year.
    pub fn year(&self) -> u8 {
        self.year
    }

    /// The issuing member.
    pub fn member(&self) -> MemberCode {
        self.member
    }

    /// The per-chain sequence.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Decoded values are checked here because the canonical decoder only checks types.
    pub fn is_well_formed(&self) -> bool {
        self.year < 100 && self.member.0 <= MemberCode::MAX && self.sequence <= Self::SEQUENCE_MAX
    }
}

impl fmt::Display for InvoiceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}{}{:012}", self.year, self.member, self.sequence)
    }
}

impl FromStr for InvoiceNumber {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        const MSG: &str = "an invoice number is exactly 20 digits";
        if s.len() != 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError(MSG));
        }
        let year = s[..2].parse().map_err(|_| ParseError(MSG))?;
        let member = s[2..8].parse()?;
        let sequence = s[8..].parse().map_err(|_| ParseError(MSG))?;
        InvoiceNumber::new(year, member, sequence).ok_or(ParseError(MSG))
    }
}

/// A 20-digit check code printed on an invoice; a verifier needs it with the number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct CheckCode(u64, u64);

impl CheckCode {
    const HALF: u64 = 10_000_000_000;

    /// Derives the check code from a digest: its first 16 bytes as two little-endian
    /// `u64`, each reduced modulo 10^10, printed as 10 digits each.
    pub fn from_digest(d: &Hash32) -> Self {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&d.0[..8]);
        b.copy_from_slice(&d.0[8..16]);
        CheckCode(u64::from_le_bytes(a) % Self::HALF, u64::from_le_bytes(b) % Self::HALF)
    }

    /// Decoded values are checked here because the canonical decoder only checks types.
    pub fn is_well_formed(&self) -> bool {
        self.0 < Self::HALF && self.1 < Self::HALF
    }
}

impl fmt::Display for CheckCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:010}{:010}", self.0, self.1)
    }
}

impl FromStr for CheckCode {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        const MSG: &str = "a check code is exactly 20 digits";
        if s.len() != 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError(MSG));
        }
        let a = s[..10].parse().map_err(|_| ParseError(MSG))?;
        let b = s[10..].parse().map_err(|_| ParseError(MSG))?;
        Ok(CheckCode(a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years() {
        assert_eq!(Timestamp(0).utc8_year(), 1970);
        // 2026-01-01T00:00:00 in Beijing is 2025-12-31T16:00:00Z; one millisecond before.
        assert_eq!(Timestamp(1_767_196_800_000).utc8_year(), 2026);
        assert_eq!(Timestamp(1_767_196_799_999).utc8_year(), 2025);
        // 2000-02-29T12:00:00Z (leap day).
        assert_eq!(Timestamp(951_825_600_000).utc8_year(), 2000);
        // UTC+8 months: 2026-11-30T16:00:00Z is 2026-12-01 00:00 in Beijing.
        assert_eq!(Timestamp(1_796_054_400_000).utc8_month(), 202612);
        assert_eq!(Timestamp(1_796_054_399_999).utc8_month(), 202611);
        assert_eq!(Timestamp(0).utc8_month(), 197001);
        assert_eq!(Timestamp(1_796_054_400_000).utc8_date(), 20261201);
        assert_eq!(Timestamp(1_796_054_399_999).utc8_date(), 20261130);
        assert_eq!(Timestamp(u64::MAX).utc8_month(), 999912);
    }

    #[test]
    fn invoice_numbers_round_trip_through_text() {
        let n = InvoiceNumber::new(26, MemberCode::new(110_001).unwrap(), 42).unwrap();
        assert_eq!(n.to_string(), "26110001000000000042");
        assert_eq!("26110001000000000042".parse::<InvoiceNumber>().unwrap(), n);
        assert!("2611000100000000004".parse::<InvoiceNumber>().is_err());
        assert!("2611000100000000004x".parse::<InvoiceNumber>().is_err());
        assert!(InvoiceNumber::new(100, n.member(), 1).is_none());
    }

    #[test]
    fn member_codes() {
        assert_eq!("000042".parse::<MemberCode>().unwrap().to_string(), "000042");
        assert!("42".parse::<MemberCode>().is_err());
        assert!("1234567".parse::<MemberCode>().is_err());
        assert!(MemberCode::new(1_000_000).is_none());
    }

    #[test]
    fn check_codes() {
        let c = CheckCode::from_digest(&Hash32([0xff; 32]));
        assert_eq!(c.to_string().len(), 20);
        assert_eq!(c.to_string().parse::<CheckCode>().unwrap(), c);
    }
}
