//! A redb database opened read-only until its first write.
//!
//! A redb file opened for writing costs an `fdatasync` at open (the
//! header's recovery flag) and four at close (the allocator state's
//! commit and the clean-shutdown header), even when nothing is written.
//! The team store and the vault are read by every run and written rarely
//! (an administrative change, a token's or a secret's last use), and the
//! run store's records reach redb only at a checkpoint, so a process that
//! only reads them (an `orbit run` of a component that uses no secret)
//! should not pay those syncs. They open here: as a
//! [`redb::ReadOnlyDatabase`] when the file exists, was closed cleanly
//! and is set up, and as a writable [`redb::Database`] from the first
//! write on.
//!
//! Invariants:
//! - One handle per file, across processes and within one: redb's
//!   read-only handles share the file, so an exclusive lock on
//!   `<file>.lock` ([`DatabaseLock`]) is taken before the file is opened
//!   at all (read-only, or for writing, created or repaired) and held for
//!   the handle's life. A second open gets
//!   [`DatabaseError::DatabaseAlreadyOpen`] at once, as with a writable
//!   redb handle.
//! - The two handles are never open at once. redb's file lock refuses a
//!   writable open while a read-only handle holds the file, so the upgrade
//!   closes the read-only handle first.
//! - A read transaction of the read-only handle keeps its file open, so
//!   it holds a read guard on that handle, and the upgrade takes the
//!   write guard: it waits for the read transactions of other threads.
//! - A thread that holds such a read transaction and asks to write would
//!   wait for itself, so it gets an error instead
//!   ([`redb::Error::DatabaseAlreadyOpen`]) (reads are counted per thread
//!   and per database). One that begins a second read transaction takes
//!   its guard recursively, so a waiting upgrade does not make it wait for
//!   itself either. An upgrade waits at most a second for other threads'
//!   reads (two threads each reading one database and upgrading the other
//!   would wait for each other), then gets the same error: never a
//!   deadlock.
//! - Once writable, always writable: reads then take no lock.

use std::cell::RefCell;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::{RwLock, RwLockReadGuard};
use redb::{Database, DatabaseError, ReadOnlyDatabase, ReadTransaction, ReadableDatabase as _};

thread_local! {
    /// The read-only handles this thread holds a read transaction of, by
    /// address, once per transaction.
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// How long an upgrade waits for the read-only handle's file to be closed
/// (a table opened from a read transaction may outlive it for a moment on
/// another thread). Readers of the database wait meanwhile.
const UPGRADE_WAIT: Duration = Duration::from_secs(1);

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
    /// The exclusive lock on `<path>.lock`; `None` for a database on a
    /// custom backend ([`from_backend`](Self::from_backend)). Held, not
    /// read.
    lock: Option<DatabaseLock>,
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
    /// The database's key in [`HELD`], where it is counted while `guard`
    /// is held.
    db: usize,
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
            HELD.with_borrow_mut(|held| {
                if let Some(i) = held.iter().position(|&d| d == self.db) {
                    held.swap_remove(i);
                }
            });
        }
    }
}

impl ReadMostlyDatabase {
    /// Opens the existing file at `path` read-only, under `lock` (taken
    /// first, so that whatever follows, a read-only open or the caller's
    /// writable one, happens under it).
    ///
    /// Returns [`Opened::NeedsWrite`] with the lock when there is nothing
    /// to read yet or redb must first write to the file: it is missing, or
    /// was not closed cleanly (a crash; a writable open repairs it), or is
    /// in an older format. The caller then opens it writable and uses
    /// [`from_writable`](Self::from_writable).
    ///
    /// # Errors
    /// [`DatabaseError::DatabaseAlreadyOpen`] when a writable redb handle
    /// without our lock holds the file; redb's error for anything else.
    pub fn open_read_only(path: &Path, lock: DatabaseLock) -> Result<Opened, DatabaseError> {
        match ReadOnlyDatabase::open(path) {
            Ok(db) => Ok(Opened::ReadOnly(Self {
                path: path.to_owned(),
                read_only: RwLock::new(Some(db)),
                writable: OnceLock::new(),
                lock: Some(lock),
            })),
            Err(DatabaseError::RepairAborted | DatabaseError::UpgradeRequired(_)) => Ok(Opened::NeedsWrite(lock)),
            Err(DatabaseError::Storage(redb::StorageError::Io(e))) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Opened::NeedsWrite(lock))
            }
            Err(e) => Err(e),
        }
    }

    /// Wraps a database opened for writing at `path` under `lock`.
    pub fn from_writable(path: &Path, db: Database, lock: DatabaseLock) -> Self {
        let writable = OnceLock::new();
        let _ = writable.set(db);
        Self { path: path.to_owned(), read_only: RwLock::new(None), writable, lock: Some(lock) }
    }

    /// Closes the database and gives back its lock, for a caller that
    /// found it read-only but not set up, and opens it for writing next.
    ///
    /// # Panics
    /// Never; a database from [`from_backend`](Self::from_backend) has no
    /// lock and gives back an empty one.
    pub fn into_lock(self) -> DatabaseLock {
        let Self { lock, .. } = self;
        lock.unwrap_or(DatabaseLock { _file: None })
    }

    /// Wraps a writable database on a custom redb backend (an in-memory
    /// one, a test's failing disk): there is no file to lock. `path` only
    /// names it.
    pub fn from_backend(path: &Path, db: Database) -> Self {
        let writable = OnceLock::new();
        let _ = writable.set(db);
        Self { path: path.to_owned(), read_only: RwLock::new(None), writable, lock: None }
    }

    /// This database's key in [`HELD`].
    fn key(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Whether this thread holds a read transaction of the read-only handle.
    fn held_here(&self) -> bool {
        HELD.with_borrow(|held| held.contains(&self.key()))
    }

    /// Begins a read transaction.
    ///
    /// # Errors
    /// redb's error when the transaction cannot begin, or when a failed
    /// upgrade left no handle and reopening fails.
    pub fn read(&self) -> Result<ReadTxn<'_>, redb::Error> {
        if let Some(db) = self.writable.get() {
            return Ok(ReadTxn { txn: db.begin_read()?, guard: None, db: self.key() });
        }
        // A thread already reading must not queue behind a waiting upgrade,
        // which waits for that very read.
        let guard = if self.held_here() { self.read_only.read_recursive() } else { self.read_only.read() };
        if let Some(db) = guard.as_ref() {
            let txn = db.begin_read()?;
            HELD.with_borrow_mut(|held| held.push(self.key()));
            return Ok(ReadTxn { txn, guard: Some(guard), db: self.key() });
        }
        // Upgraded meanwhile, or an upgrade failed and left no handle.
        drop(guard);
        Ok(ReadTxn { txn: self.writable()?.begin_read()?, guard: None, db: self.key() })
    }

    /// The writable database, opening it on the first call: the
    /// read-only handle is closed once no other thread reads through it,
    /// then the file is opened for writing (retried for up to a second
    /// while a table of an earlier read still holds it).
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
        if self.held_here() {
            return Err(redb::Error::DatabaseAlreadyOpen);
        }
        // Bounded: two threads each reading one database and upgrading the
        // other would otherwise wait for each other for ever.
        let Some(mut guard) = self.read_only.try_write_for(UPGRADE_WAIT) else {
            return Err(redb::Error::DatabaseAlreadyOpen);
        };
        if let Some(db) = self.writable.get() {
            return Ok(db);
        }
        drop(guard.take());
        let started = Instant::now();
        let opened = loop {
            match Database::create(&self.path) {
                Err(DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < UPGRADE_WAIT => {
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
    /// compaction needs `&mut Database`). The lock on `<path>.lock` goes;
    /// redb's own lock on the writable file remains.
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

/// What [`ReadMostlyDatabase::open_read_only`] found.
#[derive(Debug)]
pub enum Opened {
    /// The file is open read-only.
    ReadOnly(ReadMostlyDatabase),
    /// The file must be opened for writing (created, repaired or
    /// upgraded); the lock is still held, for
    /// [`ReadMostlyDatabase::from_writable`].
    NeedsWrite(DatabaseLock),
}

impl Opened {
    /// The lock, for a caller that opens the file for writing next (a
    /// read-only database found not set up is closed first).
    pub fn into_lock(self) -> DatabaseLock {
        match self {
            Self::ReadOnly(db) => db.into_lock(),
            Self::NeedsWrite(lock) => lock,
        }
    }
}

/// The exclusive lock on `<database>.lock` (flock(2) through
/// [`File::try_lock`]) that makes a [`ReadMostlyDatabase`] the one
/// handle on its file. Released when dropped.
#[derive(Debug)]
pub struct DatabaseLock {
    /// Held, never read: dropping it releases the lock.
    _file: Option<File>,
}

impl DatabaseLock {
    /// Takes the lock for the database at `path`, creating `<path>.lock`
    /// (mode 0600) if missing. On a file system this process cannot write
    /// (a read-only mount, another user's directory), an existing lock file
    /// is locked through a read-only descriptor, and a missing one is
    /// skipped: nothing can write the database there either.
    ///
    /// # Errors
    /// [`DatabaseError::DatabaseAlreadyOpen`] when another handle, of this
    /// process or another, holds it; the lock file's I/O error otherwise.
    pub fn take(path: &Path) -> Result<Self, DatabaseError> {
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        let name = PathBuf::from(name);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = match options.open(&name) {
            Ok(file) => file,
            Err(e) if matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem) => {
                match File::open(&name) {
                    Ok(file) => file,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Self { _file: None }),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: Some(file) }),
            Err(TryLockError::WouldBlock) => Err(DatabaseError::DatabaseAlreadyOpen),
            Err(TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

impl Drop for DatabaseLock {
    /// Releases the lock explicitly: flock(2) locks belong to the open file
    /// description, which a child process shares from its fork until its
    /// exec closes the copy, so closing the descriptor alone would leave
    /// the file looking open for that long to anyone starting a child
    /// meanwhile (an MCP server, a toolchain). redb releases its own lock
    /// the same way.
    fn drop(&mut self) {
        if let Some(file) = &self._file {
            let _ = file.unlock();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::TableDefinition;

    const T: TableDefinition<&str, u64> = TableDefinition::new("t");

    /// Opens `path` as the stores do: the lock, then read-only; `None`
    /// when it must be opened for writing.
    fn open(path: &Path) -> Result<Option<ReadMostlyDatabase>, DatabaseError> {
        Ok(match ReadMostlyDatabase::open_read_only(path, DatabaseLock::take(path)?)? {
            Opened::ReadOnly(db) => Some(db),
            Opened::NeedsWrite(_) => None,
        })
    }

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
            let db = open(&path).unwrap().expect("clean file opens read-only");
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
        let db = open(&path).unwrap().unwrap();
        let tx = db.writable().unwrap().begin_write().unwrap();
        tx.open_table(T).unwrap().insert("b", 2).unwrap();
        tx.commit().unwrap();
        assert!(db.is_writable());
        assert_eq!((get(&db, "a"), get(&db, "b")), (Some(1), Some(2)));
        drop(db);
        let reopened = open(&path).unwrap().expect("closed cleanly");
        assert_eq!(get(&reopened, "b"), Some(2));
    }

    #[test]
    fn a_missing_file_is_none_and_a_held_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        assert!(open(&path).unwrap().is_none());
        let held = Database::create(&path).unwrap();
        assert!(matches!(open(&path), Err(DatabaseError::DatabaseAlreadyOpen)));
        drop(held);
    }

    /// redb's read-only handles share a file; ours do not, read-only or
    /// upgraded, so two stores never write one file.
    #[test]
    fn a_second_handle_on_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        make(&path);
        let first = open(&path).unwrap().unwrap();
        assert!(matches!(open(&path), Err(DatabaseError::DatabaseAlreadyOpen)));
        first.writable().unwrap();
        assert!(matches!(open(&path), Err(DatabaseError::DatabaseAlreadyOpen)));
        drop(first);
        assert!(open(&path).unwrap().is_some(), "free once the first is gone");
    }

    /// A lock is free once its handle is dropped, even while a copy of its
    /// descriptor lives on (as a child process keeps one between its fork
    /// and its exec).
    #[test]
    fn a_dropped_lock_is_free_while_a_copy_of_its_descriptor_lives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        let lock = DatabaseLock::take(&path).unwrap();
        // The same open file description, as fork(2) shares it.
        let inherited = lock._file.as_ref().unwrap().try_clone().unwrap();
        assert!(matches!(DatabaseLock::take(&path), Err(DatabaseError::DatabaseAlreadyOpen)), "held: refused");
        drop(lock);
        let again = DatabaseLock::take(&path);
        assert!(again.is_ok(), "{again:?}");
        drop(inherited);
    }

    /// Two threads, each reading one database and upgrading the other,
    /// do not wait for each other for ever: an upgrade gives up after a
    /// second, and the other then goes through.
    #[test]
    fn crossed_upgrades_do_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
        make(&a);
        make(&b);
        let a = std::sync::Arc::new(open(&a).unwrap().unwrap());
        let b = std::sync::Arc::new(open(&b).unwrap().unwrap());
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let (done, finished) = std::sync::mpsc::channel();
        for (read, write) in [(a.clone(), b.clone()), (b.clone(), a.clone())] {
            let (barrier, done) = (barrier.clone(), done.clone());
            std::thread::spawn(move || {
                let reading = read.read().unwrap();
                barrier.wait();
                let upgraded = write.writable().is_ok();
                drop(reading);
                done.send(upgraded).unwrap();
            });
        }
        // A deadlock never sends; 30 s only guards against a hang.
        let wait = Duration::from_secs(30);
        let outcomes = [finished.recv_timeout(wait), finished.recv_timeout(wait)];
        assert!(outcomes.iter().all(Result::is_ok), "an upgrade never returned: {outcomes:?}");
        assert!(a.writable().is_ok() && b.writable().is_ok(), "free once the reads are over");
    }

    /// A read of one database does not stop the same thread from writing
    /// another.
    #[test]
    fn a_read_of_one_database_does_not_block_writing_another() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
        make(&a);
        make(&b);
        let a = open(&a).unwrap().unwrap();
        let b = open(&b).unwrap().unwrap();
        let reading = a.read().unwrap();
        assert!(b.writable().is_ok());
        assert!(matches!(a.writable(), Err(redb::Error::DatabaseAlreadyOpen)));
        drop(reading);
        assert!(a.writable().is_ok());
    }

    #[test]
    fn writing_while_this_thread_reads_is_an_error_not_a_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        make(&path);
        let db = open(&path).unwrap().unwrap();
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
        let db = open(&path).unwrap().unwrap();
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
        let db = open(&path).unwrap().unwrap();
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
