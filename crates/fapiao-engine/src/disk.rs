//! The storage-full guard: free disk on the ledger's file system against a reserve.
//!
//! RocksDB that runs out of space in the middle of a synced write stops accepting
//! writes until it is reopened. The node keeps it from getting there: admission refuses
//! new events with `STORAGE_FULL` while free space is below the reserve, and block
//! production (which only writes events already admitted) pauses below half of it. Both
//! resume by themselves once space is back, because the check is made again on every
//! call (at most every [`DISK_CHECK_MS`]).

use crate::Metrics;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one free-space reading is reused.
pub(crate) const DISK_CHECK_MS: u64 = 250;

pub(crate) struct DiskGuard {
    dir: PathBuf,
    reserve: u64,
    /// The last reading: when, and free bytes.
    last: Mutex<Option<(Instant, u64)>>,
}

impl DiskGuard {
    pub(crate) fn new(dir: PathBuf, reserve: u64) -> DiskGuard {
        DiskGuard {
            dir,
            reserve,
            last: Mutex::new(None),
        }
    }

    /// Free bytes for an unprivileged writer, read at most every [`DISK_CHECK_MS`]. A
    /// file system that cannot be asked counts as roomy: the guard then never refuses,
    /// and a real shortage still surfaces as a storage error.
    fn free(&self) -> u64 {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, free)) = *last {
            if at.elapsed() < Duration::from_millis(DISK_CHECK_MS) {
                return free;
            }
        }
        let free = match rustix::fs::statvfs(&self.dir) {
            Ok(s) => s.f_bavail.saturating_mul(s.f_frsize),
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "cannot read free disk space");
                u64::MAX
            }
        };
        *last = Some((Instant::now(), free));
        free
    }

    /// `Some((free, reserve))` while free space is below the reserve (admission refuses).
    pub(crate) fn full(&self, metrics: &Metrics) -> Option<(u64, u64)> {
        let free = self.free();
        let full = free < self.reserve;
        let was = metrics.storage_full.swap(u64::from(full), Ordering::Relaxed) == 1;
        if full != was {
            if full {
                tracing::error!(
                    free,
                    reserve = self.reserve,
                    "storage full: writes are refused until space is freed"
                );
            } else {
                tracing::warn!(
                    free,
                    reserve = self.reserve,
                    "storage has room again: writes are accepted"
                );
            }
        }
        full.then_some((free, self.reserve))
    }

    /// `Some(free)` while free space is below half the reserve (production pauses).
    pub(crate) fn too_low_to_produce(&self) -> Option<u64> {
        let free = self.free();
        (free < self.reserve / 2).then_some(free)
    }
}
