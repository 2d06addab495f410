//! The write-ahead log in front of redb: what makes a run durable.
//!
//! Invariants:
//! - A record is acknowledged only after its frame is appended here and
//!   the file is synced (`fdatasync`), or, when the log cannot be written,
//!   after a durable two-phase redb commit, or after it is appended to the
//!   holding file and synced ([`crate::spill`]). So "acknowledged means on
//!   disk" holds without a redb commit being durable.
//! - A logged record is added to [`crate::logged::Logged`] before it is
//!   acknowledged, so reads see it at once, and stays there until a redb
//!   commit holds it. The writer thread applies it to redb without
//!   durability, after the acknowledgement, once redb is open for writing
//!   (see [`crate::RunStore`]: a store reopened read-only keeps its
//!   records in the log, and the next open reads them back into `Logged`).
//!   A crash loses the non-durable commits; the next open imports the log
//!   into redb (skipping ids already there) with a durable commit before
//!   anything else.
//! - Appends happen under the writer's lock: by the writer thread, or by a
//!   lone caller leading a batch of one (see [`crate::writer`]).
//! - The log is emptied only right after a durable redb commit
//!   (a checkpoint) that holds every record in it, under the same lock,
//!   so no append can slip in between. A removal of runs (retention)
//!   happens only once the log is empty, so a crash can never import a
//!   removed run again.
//! - After an append or a reset fails halfway, nothing is appended until a
//!   reset succeeds: each batch is a durable redb commit meanwhile.
//! - The file uses the salted frame format of [`crate::frame`], with a new
//!   salt at every reset, so a torn tail (or a stale block exposed by one)
//!   is dropped on recovery and never read as a record.
//! - A reset writes the new salt over the old one and keeps the file's
//!   length (up to a bound, past which it cuts the file back to the salt):
//!   appends then overwrite blocks the file already has, so their
//!   `fdatasync` flushes data only, not a new size and new extents, and
//!   on ext4 does not wait for a journal commit (which would also flush
//!   redb's pages written since). Frames left after the intact ones (from
//!   before the reset, or a torn append) do not check, or are whole
//!   records this store wrote under this salt; reading stops at the first
//!   that does not check, and the next append overwrites them. An open
//!   reads the file in chunks up to that point, not whole. A removal of
//!   runs cuts the file back to its salt first, so no removed run stays in
//!   it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::frame::{Entry, SALT, frame, new_salt, parse, read_intact, sync_dir};

/// The run store's write-ahead log: `<store>.wal`. Part of the writer's
/// state once the store is open.
pub(crate) struct Wal {
    path: PathBuf,
    file: File,
    salt: [u8; SALT],
    /// Bytes of intact frames (the salt included): where the next append goes.
    len: u64,
    /// Records appended since the last reset.
    records: usize,
    /// An append failed and could not be cut back, or a reset failed
    /// halfway: nothing more is appended until a reset succeeds.
    poisoned: bool,
    /// Reused for each append's frames.
    buf: Vec<u8>,
    /// The longest file a reset keeps rather than cuts back to the salt.
    keep_bytes: u64,
    /// Tests set this to make appends fail as a full disk would.
    #[cfg(test)]
    pub(crate) fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Wal {
    /// Opens (or creates) the log beside the store at `store`, and returns
    /// it with the intact records it holds from an earlier process, oldest
    /// first. Those must be imported into redb durably before
    /// [`reset`](Self::reset) is called; appends before that go after them.
    /// A reset keeps a file of up to `keep_bytes` at its length.
    ///
    /// # Errors
    /// When the file cannot be opened, read or (when new) created durably.
    pub(crate) fn open(store: &Path, keep_bytes: u64) -> std::io::Result<(Self, Vec<Entry>)> {
        let path = Self::beside(store);
        let existed = path.exists();
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path)?;
        let bytes = read_intact(&file)?;
        let parsed = parse(&bytes);
        let mut wal = Self {
            path,
            file,
            salt: parsed.salt.unwrap_or_default(),
            len: parsed.intact,
            records: parsed.entries.len(),
            poisoned: false,
            buf: Vec::new(),
            keep_bytes,
            #[cfg(test)]
            fail: Default::default(),
        };
        // What follows the intact frames (frames from before the last reset,
        // or a torn append) stays: the next append overwrites it.
        if parsed.salt.is_none() {
            wal.reset()?;
        }
        if !existed {
            sync_dir(&wal.path)?;
        }
        Ok((wal, parsed.entries))
    }

    /// The log's path for the store at `store`: `<store>.wal`.
    pub(crate) fn beside(store: &Path) -> PathBuf {
        let mut name = store.as_os_str().to_owned();
        name.push(".wal");
        PathBuf::from(name)
    }

    /// Where the file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records appended since the last reset (or left by an earlier process).
    /// Nonzero means a checkpoint has work to do.
    pub(crate) fn records(&self) -> usize {
        self.records
    }

    /// Bytes of the intact frames, the salt included: where the next append
    /// goes. The file may be longer (see [`reset`](Self::reset)).
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends `entries` as frames and syncs the file's data. Only once this
    /// returns `Ok` may they be acknowledged. On a failure the file is cut
    /// back to where it was, so later appends stay readable.
    ///
    /// # Errors
    /// When writing or syncing fails, or an earlier failure could not be
    /// cut back.
    pub(crate) fn append(&mut self, entries: &[&Entry]) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.poisoned {
            return Err(std::io::Error::other(
                "the write-ahead log awaits a reset after an append or reset that failed halfway",
            ));
        }
        self.buf.clear();
        for e in entries {
            frame(&self.salt, e, &mut self.buf)?;
        }
        let written = self.write_at_end();
        if written.is_err() {
            if self.file.set_len(self.len).and_then(|()| self.file.sync_data()).is_err() {
                self.poisoned = true;
            }
            return written;
        }
        self.len += self.buf.len() as u64;
        self.records += entries.len();
        Ok(())
    }

    fn write_at_end(&mut self) -> std::io::Result<()> {
        #[cfg(test)]
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.file.write_all_at(&self.buf, self.len)?;
        self.file.sync_data()
    }

    /// Whether the log must be reset before it takes another append: an
    /// append or a reset failed halfway.
    pub(crate) fn poisoned(&self) -> bool {
        self.poisoned
    }

    /// Empties the log and gives it a new salt. Call only right after a
    /// durable redb commit that holds every record in it.
    ///
    /// The new salt is written over the old one, and the file keeps its
    /// length while it is at most the `keep_bytes` given to
    /// [`open`](Self::open); a longer one is cut back to the salt. Frames
    /// after a new salt do not check, so a crash halfway loses nothing that
    /// is not in redb.
    ///
    /// # Errors
    /// When the file cannot be cut back, written or synced. The log is
    /// then poisoned (no append until a reset succeeds), because appends
    /// after a half-done reset could follow bytes that do not parse, and be
    /// lost on replay. What it held is in redb already.
    pub(crate) fn reset(&mut self) -> std::io::Result<()> {
        let salt = new_salt()?;
        self.poisoned = true;
        if self.file.metadata()?.len() > self.keep_bytes {
            self.file.set_len(SALT as u64)?;
        }
        #[cfg(test)]
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(5)); // EIO
        }
        self.file.write_all_at(&salt, 0)?;
        self.file.sync_data()?;
        self.salt = salt;
        self.len = SALT as u64;
        self.records = 0;
        self.poisoned = false;
        Ok(())
    }

    /// Cuts the file back to the intact frames, dropping the blocks a reset
    /// kept (they hold records from before it, under an old salt): before
    /// runs are removed, so none stays in the file.
    ///
    /// # Errors
    /// When the file cannot be cut or synced; the log is then poisoned.
    pub(crate) fn cut_back(&mut self) -> std::io::Result<()> {
        if self.file.metadata()?.len() <= self.len {
            return Ok(());
        }
        let cut = self.file.set_len(self.len).and_then(|()| self.file.sync_data());
        if cut.is_err() {
            self.poisoned = true;
        }
        cut
    }
}

/// What the log at `path` holds, as an open would read it: the bytes of its
/// intact frames (the salt included) and their records' ids. For tests, which
/// check that a log was emptied: the file itself keeps its length.
#[cfg(test)]
pub(crate) fn intact(path: &Path) -> (u64, Vec<u128>) {
    let bytes = std::fs::read(path).unwrap();
    let parsed = parse(&bytes);
    (parsed.intact, parsed.entries.iter().map(|e| e.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the tests' logs keep at a reset.
    const KEEP: u64 = 1 << 20;

    fn entry(id: u128, size: usize) -> Entry {
        Entry { id, workspace: "acme".into(), status: "failed", bytes: vec![b'x'; size] }
    }

    /// A log cut at every byte offset of its last append reopens with every
    /// earlier record and nothing of the cut one; appends then follow.
    #[test]
    fn a_log_cut_anywhere_in_its_last_append_keeps_every_earlier_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("runs.redb");
        let (mut wal, held) = Wal::open(&store, KEEP).unwrap();
        assert!(held.is_empty());
        let first = [entry(1, 10), entry(2, 300)];
        wal.append(&first.iter().collect::<Vec<_>>()).unwrap();
        let before = wal.len();
        let last = [entry(3, 40), entry(4, 5)];
        wal.append(&last.iter().collect::<Vec<_>>()).unwrap();
        let full = std::fs::read(wal.path()).unwrap();
        assert_eq!(full.len() as u64, wal.len());
        drop(wal);
        for cut in before as usize..full.len() {
            std::fs::write(dir.path().join("runs.redb.wal"), &full[..cut]).unwrap();
            let (mut wal, held) = Wal::open(&store, KEEP).unwrap();
            // Frames of the last append that were whole before the cut are
            // intact records: the first of the two survives a cut after it.
            let whole_third = before as usize + HEADER_OF_3;
            let want: Vec<Entry> =
                if cut >= whole_third { vec![entry(1, 10), entry(2, 300), entry(3, 40)] } else { first.to_vec() };
            assert_eq!(held, want, "cut at {cut}");
            let intact = if cut >= whole_third { whole_third } else { before as usize };
            assert_eq!(wal.len(), intact as u64, "the next append goes after the intact frames; cut at {cut}");
            wal.append(&[&entry(9, 1)]).unwrap();
            drop(wal);
            let (_, again) = Wal::open(&store, KEEP).unwrap();
            assert_eq!(again.last(), Some(&entry(9, 1)), "cut at {cut}");
            assert_eq!(again.len(), want.len() + 1);
        }
    }

    /// Bytes of the frame of `entry(3, 40)`.
    const HEADER_OF_3: usize = crate::frame::HEADER + 16 + 2 + 4 + 1 + 6 + 40;

    #[test]
    fn reset_empties_the_log_and_old_frames_do_not_check_under_the_new_salt() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("runs.redb");
        let (mut wal, _) = Wal::open(&store, KEEP).unwrap();
        wal.append(&[&entry(1, 50), &entry(2, 50)]).unwrap();
        let old = std::fs::read(wal.path()).unwrap();
        wal.reset().unwrap();
        assert_eq!((wal.records(), wal.len()), (0, SALT as u64));
        // A torn write after the reset exposing the old frames' bytes.
        let mut stale = std::fs::read(wal.path()).unwrap();
        stale.extend_from_slice(&old[SALT..]);
        std::fs::write(wal.path(), &stale).unwrap();
        drop(wal);
        let (_, held) = Wal::open(&store, KEEP).unwrap();
        assert!(held.is_empty());
    }

    #[test]
    fn a_failed_append_leaves_the_log_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("runs.redb");
        let (mut wal, _) = Wal::open(&store, KEEP).unwrap();
        wal.append(&[&entry(1, 5)]).unwrap();
        wal.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(wal.append(&[&entry(2, 5)]).is_err());
        wal.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        wal.append(&[&entry(3, 5)]).unwrap();
        drop(wal);
        let (_, held) = Wal::open(&store, KEEP).unwrap();
        assert_eq!(held, vec![entry(1, 5), entry(3, 5)]);
    }

    /// A reset that fails after truncating poisons the log: nothing is
    /// appended after the half-done reset (it could not be read back),
    /// until a reset succeeds.
    #[test]
    fn a_reset_failing_halfway_refuses_appends_until_a_reset_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("runs.redb");
        let (mut wal, _) = Wal::open(&store, KEEP).unwrap();
        wal.append(&[&entry(1, 5)]).unwrap();
        wal.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(wal.reset().is_err());
        wal.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(wal.poisoned());
        assert!(wal.append(&[&entry(2, 5)]).is_err());
        wal.reset().unwrap();
        assert!(!wal.poisoned());
        wal.append(&[&entry(3, 5)]).unwrap();
        drop(wal);
        let (_, held) = Wal::open(&store, KEEP).unwrap();
        assert_eq!(held, vec![entry(3, 5)]);
    }

    /// A reset keeps the file's length: the old frames stay, under the old
    /// salt, and never come back; appends overwrite them. A file past its
    /// bound is cut back to the salt instead, and `cut_back` drops what a
    /// reset kept.
    #[test]
    fn a_reset_keeps_the_length_and_old_frames_never_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("runs.redb");
        let (mut wal, _) = Wal::open(&store, 4096).unwrap();
        wal.append(&[&entry(1, 500), &entry(2, 500), &entry(3, 500)]).unwrap();
        let grown = std::fs::metadata(wal.path()).unwrap().len();
        wal.reset().unwrap();
        assert_eq!((wal.records(), wal.len()), (0, SALT as u64));
        assert_eq!(std::fs::metadata(wal.path()).unwrap().len(), grown, "kept its length");
        assert!(Wal::open(&store, 4096).unwrap().1.is_empty(), "old frames do not check");
        // An append shorter than what it overwrites: what follows it is old.
        wal.append(&[&entry(4, 10)]).unwrap();
        assert_eq!(std::fs::metadata(wal.path()).unwrap().len(), grown, "overwritten in place");
        drop(wal);
        let (mut wal, held) = Wal::open(&store, 4096).unwrap();
        assert_eq!(held, vec![entry(4, 10)]);
        wal.append(&[&entry(5, 20)]).unwrap();
        drop(wal);
        let (mut wal, held) = Wal::open(&store, 4096).unwrap();
        assert_eq!(held, vec![entry(4, 10), entry(5, 20)]);

        // Past the bound: cut back at the reset.
        wal.append(&[&entry(6, 5000)]).unwrap();
        wal.reset().unwrap();
        assert_eq!(std::fs::metadata(wal.path()).unwrap().len(), SALT as u64, "cut back past its bound");
        // Under it: kept by the reset, dropped by `cut_back`.
        wal.append(&[&entry(7, 1000)]).unwrap();
        wal.reset().unwrap();
        assert!(std::fs::metadata(wal.path()).unwrap().len() > SALT as u64);
        wal.cut_back().unwrap();
        assert_eq!(std::fs::metadata(wal.path()).unwrap().len(), SALT as u64, "cut back before a removal");
        wal.append(&[&entry(8, 1)]).unwrap();
        drop(wal);
        assert_eq!(Wal::open(&store, 4096).unwrap().1, vec![entry(8, 1)]);
    }

    /// An open reads a log that kept its length up to the frame after the
    /// intact ones, not whole; a frame larger than the first read is read
    /// whole.
    #[test]
    fn an_open_reads_the_intact_frames_not_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("runs.redb");
        let (mut wal, _) = Wal::open(&store, 8 << 20).unwrap();
        let big = entry(1, 300 << 10);
        wal.append(&[&big]).unwrap();
        let stale: Vec<Entry> = (2..2000).map(|id| entry(id, 1000)).collect();
        wal.append(&stale.iter().collect::<Vec<_>>()).unwrap();
        wal.reset().unwrap();
        wal.append(&[&big, &entry(9, 3)]).unwrap();
        let size = std::fs::metadata(wal.path()).unwrap().len();
        assert!(size > 2 << 20, "{size}");
        let read = crate::frame::read_intact(&File::open(wal.path()).unwrap()).unwrap();
        assert!(read.len() >= wal.len() as usize, "every intact frame read");
        assert!(read.len() < (wal.len() as usize) * 2 + (64 << 10), "read {} of {size} bytes", read.len());
        drop(wal);
        assert_eq!(Wal::open(&store, 8 << 20).unwrap().1, vec![big, entry(9, 3)]);
    }
}
