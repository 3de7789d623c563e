//! The one canonical binary encoding of everything that is hashed or signed.
//!
//! This module is the only place in the workspace that names `bincode`; every other
//! crate calls [`encode`] and [`decode`], so the encoding can be replaced in one place.
//!
//! The configuration is fixed and documented byte by byte in `docs/FORMAT.md`:
//! little-endian, fixed-width integers (no varints), sequence and string lengths as
//! `u64`, enum variants as `u32`, `Option` as a `0x00`/`0x01` tag. Decoding enforces a
//! size limit and rejects trailing bytes, so every accepted byte string has exactly one
//! decoded value and re-encodes to itself.

use serde::{de::DeserializeOwned, Serialize};

/// The largest encoded value [`decode`] accepts, in bytes. A block (the largest
/// ledger object) must fit in it; see `docs/FORMAT.md`.
pub const DECODE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Why bytes could not be decoded (or, never for ledger types, a value encoded).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// The input is longer than the limit for this decode.
    #[error("encoded value is {len} bytes, above the limit of {limit} bytes")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit applied.
        limit: usize,
    },
    /// The input does not decode as the expected type.
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// The input decodes, but bytes are left over.
    #[error("{trailing} trailing bytes after the encoded value")]
    TrailingBytes {
        /// How many bytes were not consumed.
        trailing: usize,
    },
    /// The value could not be encoded (only possible for non-ledger types such as maps
    /// with unknown length).
    #[error("cannot encode value: {0}")]
    Encode(String),
}

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::Limit<DECODE_BYTES_MAX>,
>;

fn config() -> Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<DECODE_BYTES_MAX>()
}

/// Encodes `value` canonically.
///
/// Ledger types never fail to encode; the `Result` is for values that bincode cannot
/// represent, such as iterators of unknown length.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Encodes a ledger value whose encoding cannot fail (plain structs, enums, vectors,
/// strings and integers). A failure here is a programming error, so it panics.
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    match encode(value) {
        Ok(bytes) => bytes,
        Err(e) => panic!("ledger value failed to encode canonically: {e}"),
    }
}

/// Decodes exactly one value from `bytes`, with the default limit of
/// [`DECODE_BYTES_MAX`] bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_limited(bytes, DECODE_BYTES_MAX)
}

/// Decodes exactly one value from `bytes`, refusing inputs longer than `limit` bytes
/// (which may be smaller than [`DECODE_BYTES_MAX`], never larger).
pub fn decode_limited<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, CodecError> {
    let limit = limit.min(DECODE_BYTES_MAX);
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let (value, read) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes {
            trailing: bytes.len() - read,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_fixed_width_little_endian() {
        assert_eq!(to_bytes(&1u32), vec![1, 0, 0, 0]);
        assert_eq!(to_bytes(&-2i64), (-2i64).to_le_bytes().to_vec());
        assert_eq!(to_bytes(&"ab"), vec![2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b']);
        assert_eq!(to_bytes(&Some(7u8)), vec![1, 7]);
        assert_eq!(to_bytes(&None::<u8>), vec![0]);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        assert_eq!(
            decode::<u32>(&[1, 0, 0, 0, 9]),
            Err(CodecError::TrailingBytes { trailing: 1 })
        );
    }

    #[test]
    fn oversized_input_is_rejected_before_decoding() {
        let bytes = vec![0u8; 100];
        assert!(matches!(
            decode_limited::<Vec<u8>>(&bytes, 10),
            Err(CodecError::TooLarge { len: 100, limit: 10 })
        ));
    }

    #[test]
    fn huge_length_prefix_does_not_allocate_or_panic() {
        // A vector claiming u64::MAX elements must fail cleanly.
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[1, 2, 3]);
        assert!(decode::<Vec<u8>>(&bytes).is_err());
        assert!(decode::<String>(&bytes).is_err());
    }

    #[test]
    fn non_canonical_bool_and_option_tags_are_rejected() {
        assert!(decode::<bool>(&[2]).is_err());
        assert!(decode::<Option<u8>>(&[2, 0]).is_err());
    }
}
