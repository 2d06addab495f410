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

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::frame::{Entry, SALT, frame, new_salt, parse, sync_dir};

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
    /// Tests set this to make appends fail as a full disk would.
    #[cfg(test)]
    pub(crate) fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Wal {
    /// Opens (or creates) the log beside the store at `store`, and returns
    /// it with the intact records it holds from an earlier process, oldest
    /// first. Those must be imported into redb durably before
    /// [`reset`](Self::reset) is called; appends before that go after them.
    ///
    /// # Errors
    /// When the file cannot be opened, read or (when new) created durably.
    pub(crate) fn open(store: &Path) -> std::io::Result<(Self, Vec<Entry>)> {
        let path = Self::beside(store);
        let existed = path.exists();
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let parsed = parse(&bytes);
        if parsed.ignored > 0 && parsed.salt.is_some() {
            tracing::warn!(path = %path.display(), bytes = parsed.ignored, "ignoring a torn tail in the run store's write-ahead log");
        }
        let mut wal = Self {
            path,
            file,
            salt: parsed.salt.unwrap_or_default(),
            len: parsed.intact,
            records: parsed.entries.len(),
            poisoned: false,
            buf: Vec::new(),
            #[cfg(test)]
            fail: Default::default(),
        };
        if parsed.salt.is_none() {
            wal.reset()?;
        } else if parsed.ignored > 0 {
            // Cut the torn tail, so appends follow the last intact frame.
            wal.file.set_len(wal.len)?;
            wal.file.sync_data()?;
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

    /// Bytes in the file.
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
        self.file.seek(SeekFrom::Start(self.len))?;
        self.file.write_all(&self.buf)?;
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
    /// # Errors
    /// When the file cannot be truncated, written or synced. The log is
    /// then poisoned (no append until a reset succeeds), because appends
    /// after a half-done reset could follow bytes that do not parse, and be
    /// lost on replay. What it held is in redb already.
    pub(crate) fn reset(&mut self) -> std::io::Result<()> {
        let salt = new_salt()?;
        self.poisoned = true;
        self.file.set_len(0)?;
        #[cfg(test)]
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(5)); // EIO
        }
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&salt)?;
        self.file.sync_data()?;
        self.salt = salt;
        self.len = SALT as u64;
        self.records = 0;
        self.poisoned = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u128, size: usize) -> Entry {
        Entry { id, workspace: "acme".into(), status: "failed", bytes: vec![b'x'; size] }
    }

    /// A log cut at every byte offset of its last append reopens with every
    /// earlier record and nothing of the cut one; appends then follow.
    #[test]
    fn a_log_cut_anywhere_in_its_last_append_keeps_every_earlier_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("runs.redb");
        let (mut wal, held) = Wal::open(&store).unwrap();
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
            let (mut wal, held) = Wal::open(&store).unwrap();
            // Frames of the last append that were whole before the cut are
            // intact records: the first of the two survives a cut after it.
            let whole_third = before as usize + HEADER_OF_3;
            let want: Vec<Entry> =
                if cut >= whole_third { vec![entry(1, 10), entry(2, 300), entry(3, 40)] } else { first.to_vec() };
            assert_eq!(held, want, "cut at {cut}");
            assert_eq!(std::fs::metadata(wal.path()).unwrap().len(), wal.len(), "torn tail cut off");
            wal.append(&[&entry(9, 1)]).unwrap();
            drop(wal);
            let (_, again) = Wal::open(&store).unwrap();
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
        let (mut wal, _) = Wal::open(&store).unwrap();
        wal.append(&[&entry(1, 50), &entry(2, 50)]).unwrap();
        let old = std::fs::read(wal.path()).unwrap();
        wal.reset().unwrap();
        assert_eq!((wal.records(), wal.len()), (0, SALT as u64));
        // A torn write after the reset exposing the old frames' bytes.
        let mut stale = std::fs::read(wal.path()).unwrap();
        stale.extend_from_slice(&old[SALT..]);
        std::fs::write(wal.path(), &stale).unwrap();
        drop(wal);
        let (_, held) = Wal::open(&store).unwrap();
        assert!(held.is_empty());
    }

    #[test]
    fn a_failed_append_leaves_the_log_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("runs.redb");
        let (mut wal, _) = Wal::open(&store).unwrap();
        wal.append(&[&entry(1, 5)]).unwrap();
        wal.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(wal.append(&[&entry(2, 5)]).is_err());
        wal.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        wal.append(&[&entry(3, 5)]).unwrap();
        drop(wal);
        let (_, held) = Wal::open(&store).unwrap();
        assert_eq!(held, vec![entry(1, 5), entry(3, 5)]);
    }

    /// A reset that fails after truncating poisons the log: nothing is
    /// appended after the half-done reset (it could not be read back),
    /// until a reset succeeds.
    #[test]
    fn a_reset_failing_halfway_refuses_appends_until_a_reset_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("runs.redb");
        let (mut wal, _) = Wal::open(&store).unwrap();
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
        let (_, held) = Wal::open(&store).unwrap();
        assert_eq!(held, vec![entry(3, 5)]);
    }
}
