//! A redb database opened read-only until its first write.
//!
//! A redb file opened for writing costs an `fdatasync` at open (the
//! header's recovery flag) and four at close (the allocator state's
//! commit and the clean-shutdown header), even when nothing is written.
//! The team store and the vault are read by every run and written rarely
//! (an administrative change, a token's or a secret's last use), so a
//! process that only reads them (an `orbit run` of a component that uses
//! no secret) should not pay those ten syncs. They open here: as a
//! [`redb::ReadOnlyDatabase`] when the file exists, was closed cleanly
//! and is set up, and as a writable [`redb::Database`] from the first
//! write on.
//!
//! Invariants:
//! - The two handles are never open at once. redb's file lock refuses a
//!   writable open while a read-only handle holds the file (in this
//!   process too), so the upgrade closes the read-only handle first.
//! - A read transaction of the read-only handle keeps its file open, so
//!   it holds a read guard on that handle, and the upgrade takes the
//!   write guard: it waits for the read transactions of other threads.
//! - A thread that holds such a read transaction and asks to write would
//!   wait for itself, so it gets an error instead
//!   ([`redb::Error::DatabaseAlreadyOpen`]), never a deadlock. One that
//!   begins a second read transaction takes its guard recursively, so a
//!   waiting upgrade does not make it wait for itself either.
//! - Once writable, always writable: reads then take no lock.

use std::cell::Cell;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::{RwLock, RwLockReadGuard};
use redb::{Database, DatabaseError, ReadOnlyDatabase, ReadTransaction, ReadableDatabase as _};

use crate::ALREADY_OPEN_WAIT;

thread_local! {
    /// How many read transactions of a read-only handle this thread holds.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// A redb database at a path, read through a [`redb::ReadOnlyDatabase`]
/// until [`writable`](Self::writable) is first called, and through a
/// writable [`redb::Database`] from then on.
///
/// `Send + Sync`. Read transactions come from [`read`](Self::read); a
/// write transaction from `writable()?.begin_write()`.
pub struct ReadMostlyDatabase {
    path: PathBuf,
    read_only: RwLock<Option<ReadOnlyDatabase>>,
    writable: OnceLock<Database>,
}

impl std::fmt::Debug for ReadMostlyDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadMostlyDatabase").field("path", &self.path).field("writable", &self.is_writable()).finish()
    }
}

/// A read transaction of a [`ReadMostlyDatabase`]; derefs to
/// [`redb::ReadTransaction`]. While the database is read-only it holds
/// the handle open, so drop it (and the tables opened from it) before
/// writing on the same thread.
pub struct ReadTxn<'a> {
    txn: ReadTransaction,
    /// Declared after `txn`, so dropped after it.
    guard: Option<RwLockReadGuard<'a, Option<ReadOnlyDatabase>>>,
}

impl Deref for ReadTxn<'_> {
    type Target = ReadTransaction;

    fn deref(&self) -> &ReadTransaction {
        &self.txn
    }
}

impl Drop for ReadTxn<'_> {
    fn drop(&mut self) {
        if self.guard.is_some() {
            HELD.with(|h| h.set(h.get().saturating_sub(1)));
        }
    }
}

impl ReadMostlyDatabase {
    /// Opens the existing file at `path` read-only.
    ///
    /// Returns `Ok(None)` when there is nothing to read yet or redb must
    /// first write to the file: it is missing, or was not closed cleanly
    /// (a crash; a writable open repairs it), or is in an older format.
    /// The caller then opens it writable and uses
    /// [`from_writable`](Self::from_writable).
    ///
    /// # Errors
    /// redb's error for anything else, including
    /// [`DatabaseError::DatabaseAlreadyOpen`] when a writable handle (of
    /// this process or another) holds the file.
    pub fn open_read_only(path: &Path) -> Result<Option<Self>, DatabaseError> {
        match ReadOnlyDatabase::open(path) {
            Ok(db) => {
                Ok(Some(Self { path: path.to_owned(), read_only: RwLock::new(Some(db)), writable: OnceLock::new() }))
            }
            Err(DatabaseError::RepairAborted | DatabaseError::UpgradeRequired(_)) => Ok(None),
            Err(DatabaseError::Storage(redb::StorageError::Io(e))) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Wraps a database already open for writing at `path`.
    pub fn from_writable(path: &Path, db: Database) -> Self {
        let writable = OnceLock::new();
        let _ = writable.set(db);
        Self { path: path.to_owned(), read_only: RwLock::new(None), writable }
    }

    /// Begins a read transaction.
    ///
    /// # Errors
    /// redb's error when the transaction cannot begin, or when a failed
    /// upgrade left no handle and reopening fails.
    pub fn read(&self) -> Result<ReadTxn<'_>, redb::Error> {
        if let Some(db) = self.writable.get() {
            return Ok(ReadTxn { txn: db.begin_read()?, guard: None });
        }
        // A thread already reading must not queue behind a waiting upgrade,
        // which waits for that very read.
        let guard = if HELD.with(Cell::get) > 0 { self.read_only.read_recursive() } else { self.read_only.read() };
        if let Some(db) = guard.as_ref() {
            let txn = db.begin_read()?;
            HELD.with(|h| h.set(h.get() + 1));
            return Ok(ReadTxn { txn, guard: Some(guard) });
        }
        // Upgraded meanwhile, or an upgrade failed and left no handle.
        drop(guard);
        Ok(ReadTxn { txn: self.writable()?.begin_read()?, guard: None })
    }

    /// The writable database, opening it on the first call: the
    /// read-only handle is closed once no other thread reads through it,
    /// then the file is opened for writing (retried for up to
    /// [`ALREADY_OPEN_WAIT`] while something still holds it).
    ///
    /// # Errors
    /// [`redb::Error::DatabaseAlreadyOpen`] when this thread still holds
    /// a read transaction of the read-only handle (or the wait runs out);
    /// redb's error when the open fails. The read-only handle is then
    /// reopened, so reads go on.
    pub fn writable(&self) -> Result<&Database, redb::Error> {
        if let Some(db) = self.writable.get() {
            return Ok(db);
        }
        if HELD.with(Cell::get) > 0 {
            return Err(redb::Error::DatabaseAlreadyOpen);
        }
        let mut guard = self.read_only.write();
        if let Some(db) = self.writable.get() {
            return Ok(db);
        }
        drop(guard.take());
        let started = Instant::now();
        let opened = loop {
            match Database::create(&self.path) {
                // A table opened from a read transaction outlives it for
                // a moment on another thread.
                Err(DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < ALREADY_OPEN_WAIT => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => break other,
            }
        };
        match opened {
            Ok(db) => Ok(self.writable.get_or_init(|| db)),
            Err(e) => {
                *guard = ReadOnlyDatabase::open(&self.path).ok();
                Err(e.into())
            }
        }
    }

    /// The writable database itself, opened as by
    /// [`writable`](Self::writable): for what needs it by value (redb's
    /// compaction needs `&mut Database`).
    ///
    /// # Errors
    /// As [`writable`](Self::writable).
    pub fn into_writable(self) -> Result<Database, redb::Error> {
        self.writable()?;
        let Self { mut writable, .. } = self;
        writable.take().ok_or(redb::Error::DatabaseAlreadyOpen)
    }

    /// Whether the database has been opened for writing.
    pub fn is_writable(&self) -> bool {
        self.writable.get().is_some()
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::TableDefinition;

    const T: TableDefinition<&str, u64> = TableDefinition::new("t");

    fn make(path: &Path) {
        let db = Database::create(path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(T).unwrap().insert("a", 1).unwrap();
        tx.commit().unwrap();
    }

    fn get(db: &ReadMostlyDatabase, key: &str) -> Option<u64> {
        let txn = db.read().unwrap();
        let table = txn.open_table(T).unwrap();
        table.get(key).unwrap().map(|v| v.value())
    }

    #[test]
    fn a_clean_file_is_read_without_being_opened_for_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        make(&path);
        let before = std::fs::read(&path).unwrap();
        {
            let db = ReadMostlyDatabase::open_read_only(&path).unwrap().expect("clean file opens read-only");
            assert_eq!(get(&db, "a"), Some(1));
            assert!(!db.is_writable());
        }
        assert_eq!(std::fs::read(&path).unwrap(), before, "reading and closing wrote nothing");
    }

    #[test]
    fn the_first_write_upgrades_and_later_reads_see_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        make(&path);
        let db = ReadMostlyDatabase::open_read_only(&path).unwrap().unwrap();
        let tx = db.writable().unwrap().begin_write().unwrap();
        tx.open_table(T).unwrap().insert("b", 2).unwrap();
        tx.commit().unwrap();
        assert!(db.is_writable());
        assert_eq!((get(&db, "a"), get(&db, "b")), (Some(1), Some(2)));
        drop(db);
        let reopened = ReadMostlyDatabase::open_read_only(&path).unwrap().expect("closed cleanly");
        assert_eq!(get(&reopened, "b"), Some(2));
    }

    #[test]
    fn a_missing_file_is_none_and_a_held_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        assert!(ReadMostlyDatabase::open_read_only(&path).unwrap().is_none());
        let held = Database::create(&path).unwrap();
        assert!(matches!(ReadMostlyDatabase::open_read_only(&path), Err(DatabaseError::DatabaseAlreadyOpen)));
        drop(held);
    }

    #[test]
    fn writing_while_this_thread_reads_is_an_error_not_a_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        make(&path);
        let db = ReadMostlyDatabase::open_read_only(&path).unwrap().unwrap();
        let txn = db.read().unwrap();
        assert!(matches!(db.writable(), Err(redb::Error::DatabaseAlreadyOpen)));
        drop(txn);
        assert!(db.writable().is_ok(), "once the read is over, the upgrade goes through");
    }

    #[test]
    fn a_second_read_on_a_thread_does_not_wait_behind_a_waiting_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        make(&path);
        let db = ReadMostlyDatabase::open_read_only(&path).unwrap().unwrap();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            let db = &db;
            let reader = s.spawn(move || {
                let first = db.read().unwrap();
                held_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                // The upgrade is waiting for `first` now.
                let second = get(db, "a");
                drop(first);
                second
            });
            held_rx.recv().unwrap();
            let writer = s.spawn(|| db.writable().map(|_| ()));
            // Time for the upgrade to start waiting for `first` (it cannot
            // finish before `first` is dropped).
            std::thread::sleep(Duration::from_millis(50));
            assert!(!writer.is_finished());
            go_tx.send(()).unwrap();
            assert_eq!(reader.join().unwrap(), Some(1));
            writer.join().unwrap().unwrap();
        });
        assert!(db.is_writable());
    }

    #[test]
    fn an_upgrade_waits_for_another_threads_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        make(&path);
        let db = ReadMostlyDatabase::open_read_only(&path).unwrap().unwrap();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            let db = &db;
            s.spawn(move || {
                let txn = db.read().unwrap();
                held_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                assert_eq!(txn.open_table(T).unwrap().get("a").unwrap().map(|v| v.value()), Some(1));
            });
            held_rx.recv().unwrap();
            let writer = s.spawn(|| db.writable().map(|_| ()));
            std::thread::sleep(Duration::from_millis(50));
            assert!(!writer.is_finished() && !db.is_writable(), "the upgrade waits for the read");
            go_tx.send(()).unwrap();
            writer.join().unwrap().unwrap();
        });
        assert!(db.is_writable());
        assert_eq!(get(&db, "a"), Some(1));
    }
}
