//! A small disk to fill: a tmpfs of a few MiB mounted at a test's directory, for the
//! full-disk cases (a node that must refuse writes and resume, a replay that must stop
//! with the error). Mounting needs root; the README's test command runs as root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a given size mounted at `dir`, unmounted (lazily) on drop.
pub struct SmallDisk {
    /// Where it is mounted.
    pub dir: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `mb` MiB at `dir` (created if missing). Panics, naming why,
    /// when it cannot (not root).
    pub fn mount(dir: &Path, mb: u64) -> SmallDisk {
        std::fs::create_dir_all(dir).expect("the mount point");
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("running mount");
        assert!(
            o.status.success(),
            "mounting a small tmpfs for a full-disk test needs root: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        SmallDisk { dir: dir.to_path_buf() }
    }

    /// The MiB still free.
    pub fn free_mb(&self) -> u64 {
        let s = rustix::fs::statvfs(&self.dir).expect("statvfs of the small disk");
        s.f_bavail * s.f_frsize / (1024 * 1024)
    }

    /// Fills the disk until `leave_mb` MiB are left, with a file `name`.
    pub fn fill(&self, name: &str, leave_mb: u64) {
        let size = self.free_mb().saturating_sub(leave_mb) * 1024 * 1024;
        let f = std::fs::File::create(self.dir.join(name)).expect("the filler file");
        std::io::Write::write_all(&mut &f, &vec![0u8; size as usize]).expect("filling the disk");
        f.sync_all().expect("syncing the filler");
    }

    /// Removes the file `name` that [`SmallDisk::fill`] wrote.
    pub fn free(&self, name: &str) {
        std::fs::remove_file(self.dir.join(name)).expect("removing the filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
