//! A redb database opened at its first use.
//!
//! Opening a redb file writes its header, and closing it writes the
//! allocator state: about five `fdatasync` calls per database even when
//! nothing else is written. A process that never touches a store (an
//! `orbit run` of a component that imports no storage, cache or jobs)
//! should not pay them, so the primitives' stores open here, lazily. It
//! lives in this crate because every store already depends on it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use redb::Database;

/// How long [`LazyDatabase::get`] waits for another process to close the
/// file: as long as `orbit` waits to open a data directory its previous
/// owner is leaving.
pub const ALREADY_OPEN_WAIT: Duration = Duration::from_secs(5);

/// A redb database at a path, opened (created if needed) and set up by
/// the first [`get`](Self::get), then kept open until dropped.
///
/// `E` is the owning store's error type; `setup` creates the store's
/// tables when they are missing (it runs once per open, before any other
/// use).
pub struct LazyDatabase<E> {
    path: PathBuf,
    setup: fn(&Database) -> Result<(), E>,
    db: OnceLock<Database>,
    /// Held while opening, so that two first uses open the file once.
    opening: Mutex<()>,
}

impl<E: From<redb::DatabaseError>> LazyDatabase<E> {
    /// A database at `path`, not opened yet.
    pub fn new(path: impl Into<PathBuf>, setup: fn(&Database) -> Result<(), E>) -> Self {
        Self { path: path.into(), setup, db: OnceLock::new(), opening: Mutex::new(()) }
    }

    /// The open database, opening and setting it up on the first call.
    /// A file another process still holds (a previous owner of the data
    /// directory closing its files as it exits) is retried for up to
    /// [`ALREADY_OPEN_WAIT`], every 50 ms.
    ///
    /// # Errors
    /// The store's error, from redb's open (for example when another
    /// process still holds the file after that wait) or from `setup`.
    /// Nothing is kept then: the next call tries again.
    pub fn get(&self) -> Result<&Database, E> {
        if let Some(db) = self.db.get() {
            return Ok(db);
        }
        let _one = self.opening.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(db) = self.db.get() {
            return Ok(db);
        }
        let started = Instant::now();
        let db = loop {
            match Database::create(&self.path) {
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < ALREADY_OPEN_WAIT => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => break other?,
            }
        };
        (self.setup)(&db)?;
        Ok(self.db.get_or_init(|| db))
    }

    /// Whether the database has been opened.
    pub fn is_open(&self) -> bool {
        self.db.get().is_some()
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase as _;

    const T: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("t");

    fn setup(db: &Database) -> Result<(), redb::Error> {
        let tx = db.begin_write()?;
        tx.open_table(T)?;
        tx.commit()?;
        Ok(())
    }

    #[test]
    fn the_file_is_created_at_the_first_use_and_set_up_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        let lazy = LazyDatabase::<redb::Error>::new(&path, setup);
        assert!(!path.exists() && !lazy.is_open(), "nothing is opened before the first use");
        let tx = lazy.get().unwrap().begin_read().unwrap();
        assert!(tx.open_table(T).is_ok(), "setup ran");
        assert!(path.exists() && lazy.is_open());
        assert!(std::ptr::eq(lazy.get().unwrap(), lazy.get().unwrap()), "one database");
    }

    #[test]
    fn a_failed_open_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("x.redb");
        let lazy = LazyDatabase::<redb::Error>::new(&path, setup);
        assert!(lazy.get().is_err());
        std::fs::create_dir(dir.path().join("missing-dir")).unwrap();
        assert!(lazy.get().is_ok());
    }
}
