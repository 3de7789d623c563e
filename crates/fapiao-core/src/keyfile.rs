//! The key file format: a small TOML document holding one ed25519 seed.
//!
//! ```toml
//! # Fapiao ed25519 key. Anyone holding this file can sign as this key.
//! format = "fapiao-ed25519-v1"
//! public_key = "<64 hex digits>"
//! secret_seed = "<64 hex digits>"
//! ```
//!
//! The seed is the RFC 8032 secret key; the public key is stored too so a file can be
//! checked (it must match the seed). Writers create the file with mode 0600; this
//! module only formats and parses (no IO).

use crate::sig::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};

/// The only key file format this build reads and writes.
pub const KEY_FILE_FORMAT: &str = "fapiao-ed25519-v1";

/// Why a key file does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// Not TOML of the expected shape.
    #[error("key file is not valid: {0}")]
    Toml(String),
    /// Unknown format line.
    #[error("key file format `{0}` is not {KEY_FILE_FORMAT}")]
    Format(String),
    /// The seed is not 64 hex digits.
    #[error("secret_seed must be 64 hex digits")]
    Seed,
    /// The public key does not belong to the seed.
    #[error("public_key does not match secret_seed")]
    Mismatch,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    public_key: String,
    secret_seed: String,
}

/// Formats a key file.
pub fn to_key_file(key: &SecretKey) -> String {
    format!(
        "# Fapiao ed25519 key. Anyone holding this file can sign as this key.\n\
         format = \"{KEY_FILE_FORMAT}\"\npublic_key = \"{}\"\nsecret_seed = \"{}\"\n",
        key.public().to_hex(),
        hex::encode(key.seed())
    )
}

/// Parses a key file and checks the public key against the seed.
pub fn from_key_file(text: &str) -> Result<SecretKey, KeyFileError> {
    let f: KeyFile = toml::from_str(text).map_err(|e| KeyFileError::Toml(e.to_string()))?;
    if f.format != KEY_FILE_FORMAT {
        return Err(KeyFileError::Format(f.format));
    }
    let mut seed = [0u8; 32];
    hex::decode_to_slice(f.secret_seed.trim(), &mut seed).map_err(|_| KeyFileError::Seed)?;
    let key = SecretKey::from_seed(&seed);
    let public: Result<PublicKey, _> = PublicKey::from_hex(&f.public_key);
    if public.ok() != Some(key.public()) {
        return Err(KeyFileError::Mismatch);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_mismatch() {
        let k = SecretKey::from_seed(&[1; 32]);
        let text = to_key_file(&k);
        assert_eq!(from_key_file(&text).unwrap().public(), k.public());
        let other = SecretKey::from_seed(&[2; 32]).public().to_hex();
        let bad = text.replace(&k.public().to_hex(), &other);
        assert_eq!(from_key_file(&bad).unwrap_err(), KeyFileError::Mismatch);
        assert!(matches!(
            from_key_file("format = 1").unwrap_err(),
            KeyFileError::Toml(_)
        ));
        let wrong_format = text.replace(KEY_FILE_FORMAT, "other");
        assert!(matches!(
            from_key_file(&wrong_format).unwrap_err(),
            KeyFileError::Format(_)
        ));
    }
}
