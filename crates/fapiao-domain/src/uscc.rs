//! The unified social credit code (统一社会信用代码, GB 32100-2015): the buyer tax id.
//!
//! 18 characters over `0123456789ABCDEFGHJKLMNPQRTUWXY` (values 0..30); the last is a
//! check character: with weights 1,3,9,27,19,26,16,17,20,29,25,13,8,24,10,30,28 for the
//! first 17, `check = (31 - sum(value * weight) mod 31) mod 31`.

const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// Why a code is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsccError {
    /// Not 18 characters.
    #[error("must be 18 characters, found {0}")]
    Length(usize),
    /// A character outside the alphabet (I, O, S, V, Z and lower case are not used).
    #[error("character {position} ({found:?}) is not in 0-9 A-H J-N P-R T U W-Y")]
    Character {
        /// 1-based position.
        position: usize,
        /// The character.
        found: char,
    },
    /// The check character is wrong.
    #[error("check character is {found}, expected {expected}")]
    Check {
        /// Found.
        found: char,
        /// Expected.
        expected: char,
    },
}

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// Validates a unified social credit code.
pub fn validate(code: &str) -> Result<(), UsccError> {
    let chars: Vec<char> = code.chars().collect();
    if chars.len() != 18 {
        return Err(UsccError::Length(chars.len()));
    }
    let mut values = [0u32; 18];
    for (i, &c) in chars.iter().enumerate() {
        values[i] = u8::try_from(c).ok().and_then(value).ok_or(UsccError::Character {
            position: i + 1,
            found: c,
        })?;
    }
    let sum: u32 = values[..17].iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
    let expected = (31 - sum % 31) % 31;
    if values[17] != expected {
        return Err(UsccError::Check {
            found: chars[17],
            expected: ALPHABET[expected as usize] as char,
        });
    }
    Ok(())
}

/// The check character for a 17-character prefix (for tools that build test codes).
pub fn check_character(prefix: &str) -> Option<char> {
    let bytes = prefix.as_bytes();
    if bytes.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (b, w) in bytes.iter().zip(WEIGHTS) {
        sum += value(*b)? * w;
    }
    Some(ALPHABET[((31 - sum % 31) % 31) as usize] as char)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(), UsccError>) {
        assert_eq!(validate(input), expected, "{input}");
    }

    #[test]
    fn table() {
        check("91110000600037341L", Ok(()));
        check(
            "91110000600037341M",
            Err(UsccError::Check {
                found: 'M',
                expected: 'L',
            }),
        );
        check("91110000600037341", Err(UsccError::Length(17)));
        check("91110000600037341LL", Err(UsccError::Length(19)));
        check(
            "9111000060003734IL",
            Err(UsccError::Character {
                position: 17,
                found: 'I',
            }),
        );
        check(
            "91110000600037341l",
            Err(UsccError::Character {
                position: 18,
                found: 'l',
            }),
        );
        check("", Err(UsccError::Length(0)));
        check(
            "９1110000600037341L",
            Err(UsccError::Character {
                position: 1,
                found: '９',
            }),
        );
    }

    #[test]
    fn check_character_matches_validate() {
        assert_eq!(check_character("91110000600037341"), Some('L'));
        for prefix in ["91310000MA1FL0000", "12100000400000000", "00000000000000000"] {
            let c = check_character(prefix).unwrap();
            assert_eq!(validate(&format!("{prefix}{c}")), Ok(()));
        }
    }
}
