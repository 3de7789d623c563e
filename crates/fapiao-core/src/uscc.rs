//! The unified social credit code (统一社会信用代码, GB 32100-2015): the buyer tax id.
//!
//! 18 characters over `0123456789ABCDEFGHJKLMNPQRTUWXY` (values 0..30), in five parts:
//!
//! | positions | part | rule |
//! |---|---|---|
//! | 1 | registration authority (登记管理部门代码) | 1 to 9, A, N or Y |
//! | 2 | entity category (机构类别代码) | one of the categories of that authority ([`CATEGORIES`]) |
//! | 3-8 | administrative region of the registering office (GB/T 2260) | digits |
//! | 9-17 | organisation code (主体标识码, GB 11714) | 8 characters and their check character |
//! | 18 | check character (GB/T 17710) | see below |
//!
//! The organisation code's check character (position 17): with weights
//! 3,7,9,10,5,8,4,2 over its first eight characters (digits 0-9, letters A-Z as 10-35),
//! `c = 11 - sum mod 11`, written `X` for 10 and `0` for 11.
//!
//! The code's check character: with weights 1,3,9,27,19,26,16,17,20,29,25,13,8,24,10,30,28
//! for the first 17, `check = (31 - sum(value * weight) mod 31) mod 31`.
//!
//! [`validate`] is the ledger's rule and takes the code exactly as stored; [`normalise`]
//! is what a form or the CLI applies to what a person typed before it is signed.

const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
const ORGANISATION_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// Each registration authority (position 1) with the entity categories (position 2) it
/// assigns, as GB 32100-2015 and its amendments list them: 1 机构编制, 2 外交, 3 司法行政,
/// 4 文化, 5 民政, 6 旅游, 7 宗教, 8 工会, 9 工商 (market regulation), A 中央军委改革和编制
/// 办公室, N 农业, Y 其他.
pub const CATEGORIES: [(u8, &[u8]); 12] = [
    (b'1', b"1239"),
    (b'2', b"19"),
    (b'3', b"123459"),
    (b'4', b"19"),
    (b'5', b"1239"),
    (b'6', b"129"),
    (b'7', b"129"),
    (b'8', b"19"),
    (b'9', b"123"),
    (b'A', b"19"),
    (b'N', b"1239"),
    (b'Y', b"1"),
];

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
    /// Position 1 is not a registration authority.
    #[error("character 1 ({0:?}) is not a registration authority (1-9, A, N or Y)")]
    Authority(char),
    /// Position 2 is not an entity category of that authority.
    #[error("character 2 ({found:?}) is not an entity category of authority {authority} ({allowed})")]
    Category {
        /// Position 1.
        authority: char,
        /// Position 2.
        found: char,
        /// The categories that authority assigns.
        allowed: &'static str,
    },
    /// Positions 3-8 (the region) hold a letter.
    #[error("character {position} ({found:?}) must be a digit: positions 3-8 are the region code")]
    Region {
        /// 1-based position.
        position: usize,
        /// The character.
        found: char,
    },
    /// The organisation code's check character (position 17) is wrong.
    #[error("organisation code check character (17) is {found}, expected {expected}")]
    OrganisationCheck {
        /// Found.
        found: char,
        /// Expected.
        expected: char,
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

/// The organisation code check character for its first eight characters (GB 11714).
fn organisation_check(body: &[u8]) -> char {
    let sum: u32 = body
        .iter()
        .zip(ORGANISATION_WEIGHTS)
        .map(|(c, w)| {
            let v = match c {
                b'0'..=b'9' => u32::from(c - b'0'),
                _ => u32::from(c - b'A') + 10,
            };
            v * w
        })
        .sum();
    match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        d => char::from(b'0' + d as u8),
    }
}

/// Validates a unified social credit code, exactly as given (see [`normalise`]).
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
    // Every character is now ASCII.
    let bytes = code.as_bytes();
    let Some((_, allowed)) = CATEGORIES.iter().find(|(a, _)| *a == bytes[0]) else {
        return Err(UsccError::Authority(chars[0]));
    };
    if !allowed.contains(&bytes[1]) {
        return Err(UsccError::Category {
            authority: chars[0],
            found: chars[1],
            allowed: std::str::from_utf8(allowed).unwrap_or(""),
        });
    }
    if let Some(i) = (2..8).find(|&i| !bytes[i].is_ascii_digit()) {
        return Err(UsccError::Region {
            position: i + 1,
            found: chars[i],
        });
    }
    let expected = organisation_check(&bytes[8..16]);
    if chars[16] != expected {
        return Err(UsccError::OrganisationCheck {
            found: chars[16],
            expected,
        });
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

/// What a person typed, as the code is written: spaces and dashes (ASCII, full-width and
/// the Chinese dash) removed, full-width letters and digits made ASCII, letters upper
/// case. It checks nothing: [`validate`] the result.
pub fn normalise(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '－' | '—' | '–' | '‐'))
        .map(|c| match c {
            '０'..='９' | 'Ａ'..='Ｚ' | 'ａ'..='ｚ' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .map(|c| c.to_ascii_uppercase())
        .collect()
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

/// A code from its first 16 characters (authority, entity type, region, and the
/// organisation code's 8-character body), with both check characters computed; `None`
/// unless the result validates (for tools that build codes, like the dev network).
pub fn complete(first16: &str) -> Option<String> {
    if first16.len() != 16 || !first16.is_ascii() {
        return None;
    }
    let org = organisation_check(&first16.as_bytes()[8..]);
    let prefix = format!("{first16}{org}");
    let code = format!("{prefix}{}", check_character(&prefix)?);
    validate(&code).is_ok().then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_builds_valid_codes_only() {
        assert_eq!(complete("9111000060003734").as_deref(), Some("91110000600037341L"));
        assert_eq!(complete("9131000MA1110001"), None, "letters in the region");
        assert_eq!(complete("911100006000373"), None);
    }

    fn check(input: &str, expected: Result<(), UsccError>) {
        assert_eq!(validate(input), expected, "{input}");
    }

    /// A valid code with `authority`, `category`, `region` and organisation code body
    /// `body` (8 characters): its two check characters computed.
    fn code(authority: char, category: char, region: &str, body: &str) -> String {
        let org = format!("{body}{}", organisation_check(body.as_bytes()));
        let prefix = format!("{authority}{category}{region}{org}");
        let c = check_character(&prefix).unwrap();
        format!("{prefix}{c}")
    }

    #[test]
    fn table() {
        check("91110000600037341L", Ok(()));
        // Published codes of well-known companies.
        check("91330100799655058B", Ok(()));
        check("9144030071526726XG", Ok(()));
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
    fn each_part_is_checked() {
        // A letter in the region, with both check characters right.
        let c = code('9', '1', "11A000", "60003734");
        assert_eq!(
            validate(&c),
            Err(UsccError::Region {
                position: 5,
                found: 'A'
            })
        );
        // An authority the standard does not have, and a category its authority lacks.
        let c = code('B', '1', "110000", "60003734");
        assert_eq!(validate(&c), Err(UsccError::Authority('B')));
        let c = code('9', '4', "110000", "60003734");
        assert!(matches!(validate(&c), Err(UsccError::Category { found: '4', .. })));
        let c = code('Y', '2', "110000", "60003734");
        assert!(matches!(validate(&c), Err(UsccError::Category { found: '2', .. })));
        // A wrong organisation check character, with the code's own check right.
        let prefix = "91110000600037342";
        let wrong = format!("{prefix}{}", check_character(prefix).unwrap());
        assert_eq!(
            validate(&wrong),
            Err(UsccError::OrganisationCheck {
                found: '2',
                expected: '1'
            })
        );
        // Every authority with each of its categories, and letters in the organisation code.
        for (authority, categories) in CATEGORIES {
            for category in categories {
                let c = code(char::from(authority), char::from(*category), "310115", "MA1FL0AB");
                assert_eq!(validate(&c), Ok(()), "{c}");
            }
        }
    }

    /// Codes with a letter in the region digits were accepted before this rule: none is now.
    #[test]
    fn letters_in_the_region_never_pass() {
        let letters = b"ABCDEFGHJKLMNPQRTUWXY";
        let mut n = 0;
        for (k, l) in letters.iter().enumerate() {
            for position in 0..6 {
                let mut region = *b"110000";
                region[position] = *l;
                let body = format!("{:08}", 60_000_000 + k * 7 + position);
                let c = code('9', '1', std::str::from_utf8(&region).unwrap(), &body);
                assert!(matches!(validate(&c), Err(UsccError::Region { .. })), "{c}");
                n += 1;
            }
        }
        assert_eq!(n, 126);
    }

    #[test]
    fn what_a_person_types_is_normalised() {
        for typed in [
            "91110000600037341l",
            " 9111 0000 6000 3734 1L ",
            "911100-006000-37341-L",
            "９１１１００００６０００３７３４１Ｌ",
            "91110000600037341ｌ",
        ] {
            let n = normalise(typed);
            assert_eq!(n, "91110000600037341L", "{typed}");
            assert_eq!(validate(&n), Ok(()));
        }
        // Normalising does not make a wrong code right.
        assert!(validate(&normalise("91110000600037341m")).is_err());
    }

    #[test]
    fn check_character_matches_validate() {
        assert_eq!(check_character("91110000600037341"), Some('L'));
        for prefix in ["91310000MA1FL0000", "12100000400000000", "00000000000000000"] {
            let c = check_character(prefix).unwrap();
            // The code's own check is right; the other parts are judged on their own.
            assert!(!matches!(
                validate(&format!("{prefix}{c}")),
                Err(UsccError::Check { .. })
            ));
        }
    }
}
