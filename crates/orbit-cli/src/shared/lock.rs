//! `<data dir>/orbit.lock`: an exclusive advisory lock (flock(2), through
//! std's [`File::try_lock`]) held by the one process that may open the data
//! directory's databases. The file holds the holder's pid.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, Result};

/// The lock file's name in the data directory.
pub(crate) const LOCK_FILE: &str = "orbit.lock";

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock if no other process holds it, and writes this
    /// process's pid into the file. `None` when another process holds it.
    pub(crate) fn try_acquire(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(LOCK_FILE);
        // Never truncate on open: the file is the holder's, pid included.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
        // Written over the previous holder's pid at a fixed width, never
        // truncated first: on ext4, a file truncated to zero and written
        // again is flushed to disk when closed (`auto_da_alloc`), which
        // cost every short-lived `orbit` up to a millisecond. A pid has at
        // most 7 digits (Linux's `pid_max` is at most 2^22).
        let pid = format!("{:<15}\n", std::process::id());
        file.write_all_at(pid.as_bytes(), 0)?;
        if file.metadata()?.len() > pid.len() as u64 {
            file.set_len(pid.len() as u64)?;
        }
        Ok(Some(Self { _file: file }))
    }
}

/// The pid the lock's holder wrote, if any (it may have ended since).
pub(crate) fn holder_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join(LOCK_FILE)).ok()?.trim().parse().ok()
}
