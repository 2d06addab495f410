//! The holding file: where records go when their redb commit fails, so an
//! acknowledged run is never lost and a failed commit is never a silent
//! gap.
//!
//! Invariants:
//! - A record is acknowledged as stored only after it is committed to redb
//!   or appended here and the file synced (`fdatasync`), so "acknowledged
//!   means on disk" holds on both paths.
//! - The file uses the salted frame format of [`crate::frame`]: a torn
//!   tail is dropped on reading, never read as a record, and a guest
//!   cannot forge a frame.
//! - The file is emptied only after a redb commit holding every record in
//!   it has succeeded. Importing a record that is already stored (a crash
//!   between that commit and the truncation) is skipped, not an error.
//!
//! The writer retries the import with every later batch (at most once a
//! second) and at every open, so records held here reach redb as soon as
//! it accepts writes again. A redb database that failed an I/O operation
//! refuses writes until it is reopened, so in practice that is the next
//! open.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub(crate) use crate::frame::Entry;
use crate::frame::{SALT, frame, new_salt, parse, sync_dir};

/// The holding file of one run store.
pub(crate) struct Spill {
    path: PathBuf,
    /// Serializes appends, imports and truncation.
    state: Mutex<State>,
}

/// What [`Spill`] knows of its file, under its lock.
#[derive(Default)]
struct State {
    /// Ids of the records in the file, so a lookup of any other id reads
    /// nothing.
    ids: HashSet<u128>,
    /// Whether the file's directory entry is known to be durable.
    dir_synced: bool,
    /// An append failed and its partial frame could not be cut off: any
    /// frame after it would be unreadable, so nothing more is appended.
    poisoned: bool,
}

impl Spill {
    /// The holding file beside the store at `store`: `<store>.pending`.
    /// Counts the records already held there (by an earlier process).
    pub(crate) fn beside(store: &Path) -> Self {
        let mut name = store.as_os_str().to_owned();
        name.push(".pending");
        let spill = Self { path: PathBuf::from(name), state: Mutex::default() };
        let entries = spill.read().unwrap_or_default();
        let mut state = spill.lock();
        state.ids = entries.iter().map(|e| e.id).collect();
        // A file left by an earlier process was synced by it or held
        // nothing acknowledged.
        state.dir_synced = spill.path.exists();
        drop(state);
        spill
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// How many records wait in the file for redb.
    pub(crate) fn held(&self) -> usize {
        self.lock().ids.len()
    }

    /// Appends `entries` and syncs the file and its directory entry. Only
    /// once this returns `Ok` may they be acknowledged. On a failure the
    /// file is cut back to where it was, so later appends stay readable.
    pub(crate) fn append(&self, entries: &[&Entry]) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut state = self.lock();
        if state.poisoned {
            return Err(std::io::Error::other("the holding file is damaged by an earlier failed append"));
        }
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path)?;
        let before = file.metadata()?.len();
        let written = self.write_frames(&mut file, before, entries, &mut state);
        if written.is_err() {
            // Cut off the partial frame; if even that fails, stop appending.
            let cut = file.set_len(before).and_then(|()| file.sync_data());
            if cut.is_err() {
                state.poisoned = true;
            }
            return written;
        }
        state.ids.extend(entries.iter().map(|e| e.id));
        Ok(())
    }

    /// Writes `entries` as frames after the `len` bytes of `file` (a new
    /// salt first when it has none), then syncs.
    fn write_frames(&self, file: &mut File, len: u64, entries: &[&Entry], state: &mut State) -> std::io::Result<()> {
        let mut buf = Vec::new();
        // A file shorter than its salt is new, or its creation was torn
        // before anything in it was acknowledged: start it afresh.
        let salt = if len < SALT as u64 {
            file.set_len(0)?;
            let salt = new_salt()?;
            buf.extend_from_slice(&salt);
            salt
        } else {
            let mut salt = [0u8; SALT];
            std::io::Read::read_exact(&mut &*file, &mut salt)?;
            salt
        };
        for e in entries {
            frame(&salt, e, &mut buf)?;
        }
        file.write_all(&buf)?;
        file.sync_data()?;
        if !state.dir_synced {
            sync_dir(&self.path)?;
            state.dir_synced = true;
        }
        Ok(())
    }

    /// Every complete, intact record in the file, oldest first; an absent
    /// file holds none.
    pub(crate) fn read(&self) -> std::io::Result<Vec<Entry>> {
        let mut bytes = Vec::new();
        match File::open(&self.path) {
            Ok(mut f) => f.read_to_end(&mut bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let parsed = parse(&bytes);
        if parsed.ignored > 0 && parsed.salt.is_some() {
            tracing::warn!(path = %self.path.display(), bytes = parsed.ignored, "ignoring a torn tail in the run store's holding file");
        }
        Ok(parsed.entries)
    }

    /// The held record with id `id`, if any.
    pub(crate) fn find(&self, id: u128) -> std::io::Result<Option<Entry>> {
        let state = self.lock();
        if !state.ids.contains(&id) {
            return Ok(None);
        }
        Ok(self.read()?.into_iter().find(|e| e.id == id))
    }

    /// Runs `import` over the held records, and removes the file once it
    /// returns `Ok` (they are committed). Returns how many were imported.
    pub(crate) fn drain<E>(&self, import: impl FnOnce(&[Entry]) -> Result<(), E>) -> Result<usize, DrainError<E>> {
        let mut state = self.lock();
        let entries = self.read().map_err(DrainError::Io)?;
        if entries.is_empty() && !self.path.exists() {
            return Ok(0);
        }
        import(&entries).map_err(DrainError::Import)?;
        match std::fs::remove_file(&self.path) {
            Ok(()) => sync_dir(&self.path).map_err(DrainError::Io)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DrainError::Io(e)),
        }
        state.ids.clear();
        state.poisoned = false;
        state.dir_synced = false;
        Ok(entries.len())
    }
}

/// Why [`Spill::drain`] left the file as it was.
#[derive(Debug)]
pub(crate) enum DrainError<E> {
    /// Reading or removing the file failed.
    Io(std::io::Error),
    /// The import failed.
    Import(E),
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    fn entry(id: u128) -> Entry {
        Entry { id, workspace: "acme".into(), status: "succeeded", bytes: format!("{{\"id\":{id}}}").into_bytes() }
    }

    #[test]
    fn a_torn_tail_is_dropped_at_every_offset() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::beside(&dir.path().join("runs.redb"));
        spill.append(&[&entry(1), &entry(2)]).unwrap();
        let whole = std::fs::read(spill.path()).unwrap();
        spill.append(&[&entry(3)]).unwrap();
        let full = std::fs::read(spill.path()).unwrap();
        assert_eq!(spill.read().unwrap(), vec![entry(1), entry(2), entry(3)]);
        // Every cut inside the last frame leaves the first two, never garbage.
        for cut in whole.len()..full.len() {
            std::fs::write(spill.path(), &full[..cut]).unwrap();
            assert_eq!(spill.read().unwrap(), vec![entry(1), entry(2)], "cut at {cut}");
        }
        // A frame checksummed without the file's salt (as a guest would
        // forge one) is not read.
        let mut forged = whole.clone();
        frame(&[0; SALT], &entry(4), &mut forged).unwrap();
        std::fs::write(spill.path(), &forged).unwrap();
        assert_eq!(spill.read().unwrap(), vec![entry(1), entry(2)]);
        // A flipped byte in the last frame is caught by its checksum.
        let mut bad = full.clone();
        *bad.last_mut().unwrap() ^= 1;
        std::fs::write(spill.path(), &bad).unwrap();
        assert_eq!(spill.read().unwrap(), vec![entry(1), entry(2)]);
    }

    #[test]
    fn drain_removes_the_file_only_after_the_import() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::beside(&dir.path().join("runs.redb"));
        spill.append(&[&entry(7)]).unwrap();
        assert_eq!(spill.held(), 1);
        assert_eq!(spill.find(7).unwrap(), Some(entry(7)));
        let failed = spill.drain(|_| Err("redb refused"));
        assert!(matches!(failed, Err(DrainError::Import("redb refused"))));
        assert!(spill.path().exists());
        assert_eq!(Spill::beside(&dir.path().join("runs.redb")).held(), 1);
        let mut seen = Vec::new();
        assert_eq!(
            spill
                .drain(|e| {
                    seen.extend_from_slice(e);
                    Ok::<(), ()>(())
                })
                .unwrap(),
            1
        );
        assert_eq!(seen, vec![entry(7)]);
        assert!(!spill.path().exists());
        assert_eq!(spill.held(), 0);
        assert_eq!(spill.find(7).unwrap(), None);
    }

    /// A file backend whose writes and syncs fail while `failing` is set,
    /// as a full or failing disk makes them.
    #[derive(Debug)]
    struct FailingDisk {
        inner: redb::backends::FileBackend,
        failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl FailingDisk {
        fn check(&self) -> std::io::Result<()> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            Ok(())
        }
    }

    impl redb::StorageBackend for FailingDisk {
        fn len(&self) -> std::io::Result<u64> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.check()?;
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.check()?;
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.check()?;
            self.inner.write(offset, data)
        }
    }

    /// A succeeded run of workspace `acme` with output `n`, and a new id.
    pub(crate) fn record(n: u8) -> crate::RunRecord {
        crate::RunRecord {
            id: crate::RunId::new(),
            workspace: orbit_workspace::WorkspaceId::new("acme").unwrap(),
            component_digest: "ab".repeat(32),
            kind: crate::ComponentKind::Agent,
            started_at_ms: 1_700_000_000_000,
            duration_us: 1,
            status: crate::RunStatus::Succeeded,
            exit_code: None,
            error: None,
            fuel_consumed: 1,
            memory_bytes: 0,
            input_bytes: 0,
            output_bytes: 1,
            log_bytes: 0,
            output: Some(n.to_string()),
            output_truncated: false,
            logs: Vec::new(),
            logs_truncated: false,
            spans: Vec::new(),
            spans_dropped: 0,
            host_errors: Vec::new(),
            parent: None,
            principal: None,
        }
    }

    /// A store at `path` whose redb writes fail while the flag is set,
    /// with or without the write-ahead log.
    fn store_on_failing_disk(
        path: &Path,
        wal: bool,
    ) -> (crate::RunStore, std::sync::Arc<std::sync::atomic::AtomicBool>) {
        let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).unwrap();
        let disk = FailingDisk { inner: redb::backends::FileBackend::new(file).unwrap(), failing: failing.clone() };
        let gc = crate::GroupCommit { write_ahead_log: wal, ..crate::GroupCommit::default() };
        (crate::RunStore::open_backend(disk, path, gc).unwrap(), failing)
    }

    fn listed_ids(store: &crate::RunStore) -> Vec<crate::RunId> {
        let listed = store.list(&crate::RunQuery::new(orbit_workspace::WorkspaceId::new("acme").unwrap())).unwrap();
        let mut ids: Vec<_> = listed.runs.iter().map(|r| r.id).collect();
        ids.sort();
        ids
    }

    /// A commit that fails on a failing disk does not lose the run: it is
    /// acknowledged only once on disk (held here, or in the write-ahead
    /// log), found by `get`, and in redb (listed too) after the next open.
    #[test]
    fn a_failed_commit_is_held_and_imported_at_the_next_open() {
        for wal in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("runs.redb");
            let (store, failing) = store_on_failing_disk(&path, wal);
            let before = record(1);
            store.record_blocking(before.clone()).unwrap();
            assert_eq!(store.held(), 0);

            failing.store(true, Ordering::SeqCst);
            let during: Vec<_> = (2..5).map(record).collect();
            for r in &during {
                store.record_blocking(r.clone()).unwrap();
            }
            if !wal {
                // Without the log, redb's durable commit fails at once.
                assert_eq!(store.held(), 3);
            }
            assert_eq!(store.get(during[1].id).unwrap().as_ref(), Some(&during[1]), "wal {wal}");
            // With the log, the checkpoint at close is what fails.
            drop(store);

            // The disk recovers; redb needs a reopen after an I/O failure.
            let store = crate::RunStore::open(&path).unwrap();
            assert_eq!(store.held(), 0);
            assert!(!dir.path().join("runs.redb.pending").exists());
            let mut want: Vec<_> = std::iter::once(&before).chain(&during).map(|r| r.id).collect();
            want.sort();
            assert_eq!(listed_ids(&store), want, "wal {wal}");
            for r in &during {
                assert_eq!(store.get(r.id).unwrap().as_ref(), Some(r));
            }
        }
    }

    /// While redb refuses writes, logged runs wait to be applied; `get` and
    /// `list` find them with the stored ones, newest first, each once,
    /// across pages and with a status filter.
    #[test]
    fn runs_waiting_to_be_applied_are_listed_with_the_stored_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.redb");
        let (store, failing) = store_on_failing_disk(&path, true);
        let mut runs: Vec<_> = (1..7).map(record).collect();
        runs[1].status = crate::RunStatus::Failed;
        runs[4].status = crate::RunStatus::Failed;
        for r in &runs[..3] {
            store.record_blocking(r.clone()).unwrap();
        }
        store.checkpoint_blocking().unwrap();
        assert_eq!(store.waiting(), 0);
        failing.store(true, Ordering::SeqCst);
        for r in &runs[3..] {
            store.record_blocking(r.clone()).unwrap();
        }
        assert_eq!(store.waiting(), 3, "redb refuses them, so they wait");
        assert_eq!(store.get(runs[4].id).unwrap().as_ref(), Some(&runs[4]));

        let walk = |status: Option<crate::RunStatus>| {
            let mut q = crate::RunQuery::new(orbit_workspace::WorkspaceId::new("acme").unwrap());
            q.limit = 2;
            q.status = status;
            let mut seen = Vec::new();
            loop {
                let page = store.list(&q).unwrap();
                assert!(page.runs.len() <= 2);
                seen.extend(page.runs);
                match page.next_cursor {
                    Some(c) => q.before = Some(c),
                    None => return seen,
                }
            }
        };
        let mut newest_first = runs.clone();
        newest_first.sort_by_key(|r| std::cmp::Reverse(r.id));
        assert_eq!(walk(None), newest_first);
        let failed: Vec<_> = newest_first.iter().filter(|r| r.status == crate::RunStatus::Failed).cloned().collect();
        assert_eq!(failed.len(), 2);
        assert_eq!(walk(Some(crate::RunStatus::Failed)), failed);
        // Another workspace sees none of them.
        let other = store.list(&crate::RunQuery::new(orbit_workspace::WorkspaceId::new("other").unwrap())).unwrap();
        assert!(other.runs.is_empty());
    }

    /// A repeat of a run that waits to be applied is refused even when its
    /// batch ends in the holding file: held records are imported first at
    /// the next open, and it would take the acknowledged original's place.
    #[test]
    fn a_repeat_of_a_waiting_run_is_refused_and_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.redb");
        let (store, failing) = store_on_failing_disk(&path, true);
        failing.store(true, Ordering::SeqCst);
        let original = record(1);
        store.record_blocking(original.clone()).unwrap();
        assert_eq!(store.waiting(), 1);
        // The log fails too: batches now try redb's durable commit, which
        // fails, and end in the holding file.
        store.wal_fail().store(true, Ordering::SeqCst);
        let mut forged = original.clone();
        forged.output = Some("forged".into());
        let refused = store.record_blocking(forged);
        assert!(matches!(refused, Err(crate::RunStoreError::AlreadyExists(id)) if id == original.id), "{refused:?}");
        assert_eq!(store.held(), 0);
        let other = record(2);
        store.record_blocking(other.clone()).unwrap();
        assert_eq!(store.held(), 1);
        drop(store);

        let store = crate::RunStore::open(&path).unwrap();
        assert_eq!(store.get(original.id).unwrap().as_ref(), Some(&original));
        assert_eq!(store.get(other.id).unwrap().as_ref(), Some(&other));
    }

    /// When the write-ahead log cannot be written, each batch is made
    /// durable by redb itself: acknowledged, found, and in a crash image of
    /// the redb file alone, taken before any checkpoint or close could have
    /// made it durable otherwise.
    #[test]
    fn a_failing_log_falls_back_to_durable_redb_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.redb");
        let (store, _) = store_on_failing_disk(&path, true);
        store.wal_fail().store(true, Ordering::SeqCst);
        let runs: Vec<_> = (1..4).map(record).collect();
        for r in &runs {
            store.record_blocking(r.clone()).unwrap();
        }
        assert_eq!(store.get(runs[0].id).unwrap().as_ref(), Some(&runs[0]));
        assert_eq!(store.held(), 0);
        // What the log holds is its salt only.
        let wal = dir.path().join("runs.redb.wal");
        assert_eq!(crate::wal::intact(&wal), (crate::frame::SALT as u64, vec![]));
        let crash = tempfile::tempdir().unwrap();
        let image = crash.path().join("runs.redb");
        std::fs::copy(&path, &image).unwrap();
        drop(store);
        let store = crate::RunStore::open(&image).unwrap();
        let mut want: Vec<_> = runs.iter().map(|r| r.id).collect();
        want.sort();
        assert_eq!(listed_ids(&store), want);
    }

    /// When neither the log, nor redb, nor the holding file can be
    /// written, the caller is told: the run is not acknowledged as stored.
    #[test]
    fn a_commit_that_cannot_be_held_is_an_error() {
        for wal in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("runs.redb");
            let (store, failing) = store_on_failing_disk(&path, wal);
            store.wal_fail().store(true, Ordering::SeqCst);
            // A directory where the holding file would go.
            std::fs::create_dir(dir.path().join("runs.redb.pending")).unwrap();
            failing.store(true, Ordering::SeqCst);
            let r = store.record_blocking(record(9));
            assert!(matches!(r, Err(crate::RunStoreError::Commit(_))), "wal {wal}: {r:?}");
        }
    }

    /// Runs are removed only once the write-ahead log is emptied: while it
    /// cannot be, a prune removes nothing and says why, and after it, a
    /// crash image of the store never brings a removed run back.
    #[test]
    fn a_prune_removes_nothing_while_the_log_cannot_be_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.redb");
        let gc = crate::GroupCommit { checkpoint_interval: std::time::Duration::from_secs(3600), ..Default::default() };
        let store = crate::RunStore::open_with(&path, gc).unwrap();
        let runs: Vec<_> = (1..4).map(record).collect();
        for r in &runs {
            store.record_blocking(r.clone()).unwrap();
        }
        let keep_one = crate::RetentionPolicy::new(crate::Retention::new(None, Some(1)));
        store.wal_fail().store(true, Ordering::SeqCst);
        let refused = store.prune(&keep_one, None, 0);
        assert!(matches!(refused, Err(crate::RunStoreError::LogNotEmptied { .. })), "{refused:?}");
        assert_eq!(listed_ids(&store).len(), 3);
        // Meanwhile records are made durable by redb itself.
        let during = record(4);
        store.record_blocking(during.clone()).unwrap();
        // The reset failed before the new salt: the log still holds what it
        // held (all in redb), and nothing since.
        let (_, in_log) = crate::wal::intact(&dir.path().join("runs.redb.wal"));
        assert_eq!(in_log, runs.iter().map(|r| r.id.as_u128()).collect::<Vec<_>>(), "the half-done reset");

        store.wal_fail().store(false, Ordering::SeqCst);
        let report = store.prune(&keep_one, None, 0).unwrap();
        assert_eq!(report.removed, 3);
        // The blocks the resets kept are gone too: no removed run's bytes.
        let wal_bytes = std::fs::read(dir.path().join("runs.redb.wal")).unwrap();
        assert_eq!(wal_bytes.len(), crate::frame::SALT, "the log is cut back to its salt before a removal");
        let kept = listed_ids(&store);
        assert_eq!(kept, vec![during.id]);
        // A crash now: the image of both files.
        let crash = tempfile::tempdir().unwrap();
        let cpath = crash.path().join("runs.redb");
        std::fs::copy(&path, &cpath).unwrap();
        std::fs::copy(dir.path().join("runs.redb.wal"), crash.path().join("runs.redb.wal")).unwrap();
        drop(store);
        let reopened = crate::RunStore::open(&cpath).unwrap();
        assert_eq!(listed_ids(&reopened), kept);
        for r in &runs {
            assert_eq!(reopened.get(r.id).unwrap(), None);
        }
    }
}
