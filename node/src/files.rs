//! Files the binary reads and writes: key files (mode 0600), genesis files.

use anyhow::{bail, Context, Result};
use fapiao_core::{keyfile, Genesis, SecretKey};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes a key file readable only by its owner (mode 0600), atomically and synced.
pub(crate) fn write_key_file(path: &Path, key: &SecretKey, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", path.display());
    }
    write_private(path, &keyfile::to_key_file(key))
}

/// Writes a small secret file (a token, a client profile) with mode 0600, atomically.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<()> {
    write_with_mode(path, contents.as_bytes(), 0o600)
}

/// Writes `contents` to a temporary file created with `mode`, syncs it, and renames it
/// over `path`, so readers see the old file or the whole new one.
fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// Reads a key file, refusing files that others can read.
pub(crate) fn read_key_file(path: &Path) -> Result<SecretKey> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading key file {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "key file {} is readable by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading key file {}", path.display()))?;
    keyfile::from_key_file(&text).with_context(|| format!("parsing key file {}", path.display()))
}

/// Reads and validates a genesis TOML file.
pub(crate) fn read_genesis(path: &Path) -> Result<Genesis> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading genesis {}", path.display()))?;
    Genesis::from_toml(&text).with_context(|| format!("in genesis {}", path.display()))
}

/// Writes a file atomically (temporary file, fsync, rename), readable by everyone.
pub(crate) fn write_atomic(path: &Path, contents: &str) -> Result<()> {
    write_with_mode(path, contents.as_bytes(), 0o644)
}

/// As [`write_atomic`], for bytes.
pub(crate) fn write_atomic_bytes(path: &Path, contents: &[u8]) -> Result<()> {
    write_with_mode(path, contents, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_private_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/node.key");
        let key = SecretKey::from_seed(&[9; 32]);
        write_key_file(&path, &key, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key_file(&path).unwrap().public(), key.public());
        assert!(write_key_file(&path, &key, false).is_err(), "no silent overwrite");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("readable by other users"), "{err}");
    }
}
