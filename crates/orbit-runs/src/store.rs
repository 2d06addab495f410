//! The redb-backed store and its group-commit writer thread.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use orbit_workspace::{DatabaseLock, Opened, ReadMostlyDatabase};
use redb::{Database, ReadTransaction, ReadableDatabase, TableDefinition};
use tokio::sync::oneshot;

use crate::error::RunStoreError;
use crate::frame::Entry;
use crate::inbox::Inbox;
use crate::logged::Logged;
use crate::spill::{DrainError, Spill};
use crate::types::{GroupCommit, MAX_LIST_LIMIT, RunId, RunPage, RunQuery, RunRecord};
use crate::wal::Wal;
use crate::writer::{Ack, Job, Outcome, Work, Writer, begin_durable_write, import};

/// Run id (as `u128`) -> serde_json of the [`RunRecord`].
pub(crate) const RUNS: TableDefinition<u128, &[u8]> = TableDefinition::new("runs");

/// (workspace, run id as `u128`) -> the run's status name.
///
/// UUID v7 ids sort by time, so a reverse range scan over one workspace's
/// keys lists its runs newest first. Keeping the status here lets `list`
/// filter by status without decoding records it will skip.
pub(crate) const BY_WORKSPACE: TableDefinition<(&str, u128), &str> = TableDefinition::new("runs_by_workspace");

/// State shared by every clone of a [`RunStore`].
struct Shared {
    /// Read-only until the first write to redb (an apply, a checkpoint, a
    /// durable commit, a removal): see [`RunStore::open_with`].
    db: Arc<ReadMostlyDatabase>,
    /// `None` only while [`Shared`] is being dropped.
    jobs: Option<mpsc::Sender<Job>>,
    /// `None` only while [`Shared`] is being dropped.
    writer: Option<JoinHandle<()>>,
    /// The writer's state, used by the writer thread and by a lone caller
    /// that commits its own record ([`RunStore::try_lead`]).
    state: Arc<Mutex<Writer>>,
    /// Jobs sent to the writer thread and not yet handled.
    queued: Arc<AtomicUsize>,
    /// Queued records ([`ExpectedRecord::queue`]) on their way to the
    /// writer thread without waking it ([`crate::inbox`]).
    inbox: Arc<Inbox>,
    /// Records of the synced log that redb does not have yet; reads look
    /// here first.
    logged: Arc<Logged>,
    /// [`GroupCommit::lone_caller_commits`].
    lead: bool,
    commits: Arc<AtomicU64>,
    /// Records announced with [`RunStore::expect_record`] and not yet queued.
    expected: Arc<AtomicUsize>,
    /// Records whose commit failed, kept on disk until redb takes them.
    spill: Arc<Spill>,
    /// Tests set this to make the write-ahead log's appends fail.
    #[cfg(test)]
    wal_fail: Arc<std::sync::atomic::AtomicBool>,
    /// Records a lone caller committed on its own thread.
    #[cfg(test)]
    led: AtomicU64,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the channel makes the writer finish its queue and exit;
        // joining it releases its handle on the database, so the file can be
        // reopened as soon as the last `RunStore` is gone.
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("run store writer thread panicked");
        }
    }
}

/// The durable store of run records, backed by one redb file and its
/// write-ahead log.
///
/// Writes go through one writer thread that groups concurrent
/// [`record`](Self::record) calls into one batch (see [`GroupCommit`]);
/// a lone caller, when the writer is idle, commits its own record as a
/// batch of one instead ([`GroupCommit::lone_caller_commits`]). Each batch
/// is appended to the write-ahead log `<store>.wal` and synced
/// (`fdatasync`); a call returns only once its record is in the synced
/// log. The writer thread then applies logged records to redb, a few
/// milliseconds' worth per commit, without durability. Reads
/// ([`get`](Self::get), [`list`](Self::list)) see every acknowledged
/// record: they look at the records still waiting to be applied, then at
/// redb's read transactions, and run concurrently with the writer.
///
/// A checkpoint, one durable redb commit with two-phase commit (because
/// records carry guest-controlled bytes), then empties the log: when it
/// passes [`GroupCommit::checkpoint_bytes`], after
/// [`GroupCommit::checkpoint_interval`], before a removal, on
/// [`checkpoint`](Self::checkpoint), and at close once redb is open for
/// writing. Once redb is open for writing, a checkpoint that falls due on
/// its own starts with a background flush ([`GroupCommit::background_flush`]):
/// the same durable commit on a thread of its own, while batches are still
/// acknowledged and nothing is applied; the checkpoint proper follows it
/// with little left to write. After a crash, the next open imports the log's intact records
/// into redb before anything else. With [`GroupCommit::write_ahead_log`]
/// off, or while the log cannot be written, each batch is one durable
/// two-phase redb commit instead.
///
/// **Read-only until needed.** A store that was closed cleanly reopens
/// with redb read-only ([`orbit_workspace::ReadMostlyDatabase`]): opening
/// redb for writing, and closing it, costs five syncs even when nothing is
/// written. The records earlier processes left in the log are read back
/// into the waiting records, new ones are appended after them, and
/// nothing is applied to redb until a checkpoint falls due: by the log's
/// size, by its age counted from this process's first record, before a
/// removal, or on demand; and at close once the log passes 64 KiB. A
/// short-lived process (an `orbit run`) thus syncs once, for its record,
/// and leaves a small log to a later process; a
/// long-lived one opens redb for writing at its first checkpoint and
/// applies records as above from then on. Either way an acknowledged run
/// is in the synced log or in a durable redb commit. To copy the store
/// alone, call [`checkpoint`](Self::checkpoint) first, or copy
/// `<store>.wal` with it.
///
/// `RunStore` is cheap to clone (an `Arc` inside) and is `Send + Sync`.
/// One store per file: the file's lock (`<store>.lock`) is held until the
/// last clone is dropped. The writer thread stops, and the file is
/// closed, then; dropping it waits for records already queued to be
/// committed, and for a last checkpoint when redb is open for writing.
///
/// # Example
///
/// ```
/// use orbit_runs::{ComponentKind, RunId, RunQuery, RunRecord, RunStatus, RunStore};
/// use orbit_workspace::WorkspaceId;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = RunStore::open(&dir.path().join("runs.redb"))?;
///
/// let workspace = WorkspaceId::new("docs")?;
/// let record = RunRecord {
///     id: RunId::new(),
///     workspace: workspace.clone(),
///     component_digest: "ab".repeat(32),
///     kind: ComponentKind::Agent,
///     started_at_ms: 1_700_000_000_000,
///     duration_us: 1_250,
///     status: RunStatus::Succeeded,
///     exit_code: None,
///     error: None,
///     fuel_consumed: 42_000,
///     memory_bytes: 1 << 20,
///     input_bytes: 5,
///     output_bytes: 7,
///     log_bytes: 0,
///     output: Some("\"hello\"".into()),
///     output_truncated: false,
///     logs: Vec::new(),
///     logs_truncated: false,
///     spans: Vec::new(),
///     spans_dropped: 0,
///     host_errors: Vec::new(),
///     parent: None,
///     principal: None,
/// };
///
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// runtime.block_on(store.record(record.clone()))?; // durable once this returns
///
/// assert_eq!(store.get(record.id)?, Some(record.clone()));
/// let page = store.list(&RunQuery::new(workspace))?;
/// assert_eq!(page.runs, vec![record]);
/// assert_eq!(page.next_cursor, None);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RunStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunStore").field("commits", &self.commits()).finish_non_exhaustive()
    }
}

impl RunStore {
    /// Opens the run store at `path` with the default [`GroupCommit`],
    /// creating the file and its parent directories if needed.
    ///
    /// If the process that last had the file open crashed, redb repairs the
    /// file here first, which walks the whole file and can take a while for
    /// a large store, and the records in the write-ahead log are imported.
    ///
    /// # Errors
    /// [`RunStoreError::CreateDir`] when a parent directory cannot be made;
    /// [`RunStoreError::Open`] when redb cannot open or create the file
    /// (including [`redb::DatabaseError::DatabaseAlreadyOpen`] when another
    /// store, of this process or another, has it open);
    /// [`RunStoreError::Storage`] when the tables cannot be set up;
    /// [`RunStoreError::WriteAheadLog`] when the write-ahead log cannot be
    /// opened, or what it holds from a crash can be stored nowhere;
    /// [`RunStoreError::SpawnWriter`] when the writer thread cannot start.
    pub fn open(path: &Path) -> Result<Self, RunStoreError> {
        Self::open_with(path, GroupCommit::default())
    }

    /// Opens the run store at `path`, batching writes as `gc` says;
    /// otherwise the same as [`open`](Self::open).
    ///
    /// # Errors
    /// As for [`open`](Self::open).
    pub fn open_with(path: &Path, gc: GroupCommit) -> Result<Self, RunStoreError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|source| RunStoreError::CreateDir { path: parent.to_path_buf(), source })?;
        }
        // A file that exists, was closed cleanly and is set up opens
        // read-only: a process that only appends runs to the log (an
        // `orbit run`) never opens redb for writing, which costs five syncs.
        // The lock first: what follows, read-only or not (the file's
        // creation, its repair, the log's replay), is this store's alone.
        let open_err = |source| RunStoreError::Open { path: path.to_path_buf(), source };
        let lock = DatabaseLock::take(path).map_err(open_err)?;
        let lock = match ReadMostlyDatabase::open_read_only(path, lock).map_err(open_err)? {
            Opened::ReadOnly(db) if db.read().is_ok_and(|txn| tables_exist(&txn)) => {
                return Self::start(db, path, gc);
            }
            opened => opened.into_lock(),
        };
        if !path.exists() {
            create_atomically(path)?;
        }
        let db = Database::builder().create(path).map_err(open_err)?;
        create_tables(&db)?;
        Self::start(ReadMostlyDatabase::from_writable(path, db, lock), path, gc)
    }

    /// Opens the store kept in `backend`, with its holding file beside
    /// `path`: for tests that make redb's I/O fail.
    #[cfg(test)]
    pub(crate) fn open_backend(
        backend: impl redb::StorageBackend,
        path: &Path,
        gc: GroupCommit,
    ) -> Result<Self, RunStoreError> {
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|source| RunStoreError::Open { path: path.to_path_buf(), source })?;
        create_tables(&db)?;
        Self::start(ReadMostlyDatabase::from_backend(path, db), path, gc)
    }

    /// Imports what the holding file of the opened, set-up `db` (the file
    /// at `path`) keeps, reads back its log, and starts the writer.
    fn start(db: ReadMostlyDatabase, path: &Path, gc: GroupCommit) -> Result<Self, RunStoreError> {
        let spill = Arc::new(Spill::beside(path));
        match spill.drain(|entries| import(&db, entries)) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(records = n, path = %spill.path().display(), "imported the runs held after a failed commit")
            }
            // A held file that cannot be imported yet does not stop the
            // store from opening: its runs stay held (and found by `get`).
            Err(DrainError::Import(error)) => {
                tracing::error!(held = spill.held(), path = %spill.path().display(), %error, "held runs could not be imported; they stay held");
            }
            Err(DrainError::Io(error)) => {
                tracing::error!(held = spill.held(), path = %spill.path().display(), %error, "held runs could not be read; they stay held");
            }
        }

        let logged = Arc::new(Logged::default());
        #[allow(unused_mut)]
        let mut wal = replay(&db, path, &spill, &logged, gc)?;
        #[cfg(test)]
        let wal_fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        #[cfg(test)]
        if let Some(wal) = &mut wal {
            wal.fail = Arc::clone(&wal_fail);
        }

        let db = Arc::new(db);
        let commits = Arc::new(AtomicU64::new(0));
        let expected = Arc::new(AtomicUsize::new(0));
        let (jobs, queue) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(Mutex::new(Writer {
            db: Arc::clone(&db),
            gc,
            commits: Arc::clone(&commits),
            expected: Arc::clone(&expected),
            spill: Arc::clone(&spill),
            wal: wal.filter(|_| gc.write_ahead_log),
            last_checkpoint: Instant::now(),
            appended: false,
            logged: Arc::clone(&logged),
            checkpoint_retry_at: None,
            last_retry: None,
            queued: Arc::clone(&queued),
            flushing: None,
            #[cfg(test)]
            hold_flush: Default::default(),
        }));
        let thread_state = Arc::clone(&state);
        let inbox = Arc::new(Inbox::default());
        let thread_inbox = Arc::clone(&inbox);
        let writer = std::thread::Builder::new()
            .name("orbit-runs-writer".into())
            .spawn(move || crate::writer::run(&thread_state, &queue, &thread_inbox))
            .map_err(RunStoreError::SpawnWriter)?;
        tracing::debug!(path = %path.display(), ?gc, "run store opened");
        Ok(Self {
            shared: Arc::new(Shared {
                db,
                jobs: Some(jobs),
                writer: Some(writer),
                state,
                queued,
                inbox,
                logged,
                lead: gc.lone_caller_commits,
                commits,
                expected,
                spill,
                #[cfg(test)]
                wal_fail,
                #[cfg(test)]
                led: AtomicU64::new(0),
            }),
        })
    }

    /// Stores `rec`, returning only once it is on disk (in the synced
    /// write-ahead log, or durably committed to redb).
    ///
    /// The record waits up to [`GroupCommit::max_delay`] for other records
    /// to share its commit. If this future is dropped after it was first
    /// polled, the record may still be committed.
    ///
    /// # Errors
    /// [`RunStoreError::Encode`] when the record cannot be serialized;
    /// [`RunStoreError::AlreadyExists`] when a run with this id is stored;
    /// [`RunStoreError::Commit`] when the batch's transaction failed and
    /// its records could not be held on disk either (see
    /// [`held`](Self::held));
    /// [`RunStoreError::Closed`] when the writer thread has died.
    pub async fn record(&self, rec: RunRecord) -> Result<(), RunStoreError> {
        self.store_async(encode(&rec)?).await
    }

    /// Stores `entry`: on this thread when the caller is alone and the
    /// writer idle, otherwise through the writer thread.
    async fn store_async(&self, entry: Entry) -> Result<(), RunStoreError> {
        let entry = match self.lead_async(entry) {
            Ok(outcome) => return outcome,
            Err(entry) => entry,
        };
        let (tx, rx) = oneshot::channel();
        self.send(Job { work: Work::Record(entry), ack: Ack::Async(tx) })?;
        rx.await.unwrap_or(Err(RunStoreError::Closed))
    }

    /// [`try_lead`](Self::try_lead) from async code. Where tokio allows
    /// blocking on this thread ([`orbit_workspace::in_place`]) the commit
    /// runs in `block_in_place`, so the worker's other tasks move to
    /// another thread while this one syncs. Anywhere else (a current-thread
    /// runtime, another executor) the record goes to the writer thread,
    /// since blocking there could stall other tasks.
    fn lead_async(&self, entry: Entry) -> Result<Outcome, Entry> {
        if !self.may_lead() {
            return Err(entry);
        }
        orbit_workspace::in_place::in_place(entry, |entry| self.try_lead(entry))?
    }

    /// The cheap part of the lone-caller test: no other record announced or
    /// queued, and the store configured to let callers lead.
    fn may_lead(&self) -> bool {
        let s = &self.shared;
        s.lead && s.expected.load(Ordering::Acquire) == 0 && s.queued.load(Ordering::Acquire) == 0
    }

    /// Commits `entry` on this thread when this caller is alone (no other
    /// record announced or queued) and the writer thread is idle, and
    /// returns its outcome; gives `entry` back otherwise. Skipping the queue
    /// saves two cross-thread wake-ups per record; the commit itself (the
    /// write-once check, log append and `fdatasync`) is the writer's own
    /// ([`Writer::lead`]), under the same lock, so every invariant of the
    /// writer holds. A checkpoint that falls due is left to the writer
    /// thread, which this wakes.
    fn try_lead(&self, entry: Entry) -> Result<Outcome, Entry> {
        if !self.may_lead() {
            return Err(entry);
        }
        let Ok(mut writer) = self.shared.state.try_lock() else { return Err(entry) };
        if !writer.can_lead() {
            return Err(entry);
        }
        let (outcome, wake) = writer.lead(entry);
        drop(writer);
        #[cfg(test)]
        self.shared.led.fetch_add(1, Ordering::Relaxed);
        if wake && let Some(jobs) = &self.shared.jobs {
            // Not counted in `queued`: it carries no record, and counting it
            // would send the next lone caller to the queue. A send fails only
            // when the writer thread is gone; the record is on disk all the
            // same (the next open imports the log).
            let _ = jobs.send(Job { work: Work::Wake, ack: Ack::None });
        }
        Ok(outcome)
    }

    /// Announces that a record is on its way (a run has started), so that
    /// the writer can let a batch wait up to [`GroupCommit::max_linger`] for
    /// it rather than commit without it. Store the record with
    /// [`ExpectedRecord::record`]; dropping the guard withdraws the
    /// announcement.
    pub fn expect_record(&self) -> ExpectedRecord {
        self.shared.expected.fetch_add(1, Ordering::AcqRel);
        ExpectedRecord { store: self.clone(), withdrawn: false }
    }

    /// Stores `rec`, blocking the calling thread until it is durably
    /// committed; the same as [`record`](Self::record) for synchronous code.
    ///
    /// This blocks for a commit (typically 1 to 3 ms), so do not call it on
    /// a tokio runtime worker thread: use [`record`](Self::record) there, or
    /// call this from `spawn_blocking`.
    ///
    /// # Errors
    /// As for [`record`](Self::record).
    pub fn record_blocking(&self, rec: RunRecord) -> Result<(), RunStoreError> {
        let entry = match self.try_lead(encode(&rec)?) {
            Ok(outcome) => return outcome,
            Err(entry) => entry,
        };
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job { work: Work::Record(entry), ack: Ack::Blocking(tx) })?;
        rx.recv().unwrap_or(Err(RunStoreError::Closed))
    }

    /// Queues `job` for the writer thread, counted in `queued` until the
    /// writer has handled it.
    fn send(&self, job: Job) -> Result<(), RunStoreError> {
        let jobs = self.shared.jobs.as_ref().ok_or(RunStoreError::Closed)?;
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        jobs.send(job).map_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            RunStoreError::Closed
        })
    }

    /// Hands a queued record (nobody awaits it) to the writer thread
    /// through the inbox, waking the writer only when it sleeps.
    fn send_queued(&self, job: Job) -> Result<(), RunStoreError> {
        let jobs = self.shared.jobs.as_ref().ok_or(RunStoreError::Closed)?;
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        if self.shared.inbox.push(job) {
            // Not counted in `queued`: it carries no record.
            jobs.send(Job { work: Work::Wake, ack: Ack::None }).map_err(|_| RunStoreError::Closed)?;
        }
        Ok(())
    }

    /// Waits until every record queued before this call (including those
    /// queued with [`ExpectedRecord::queue`]) has been through a commit,
    /// or was held on disk after its commit failed (see
    /// [`held`](Self::held); [`list`](Self::list) does not see those yet).
    /// A queued record whose own commit failed is not reported here (nobody
    /// awaits it; the failure is logged); records stored with
    /// [`record`](Self::record) report their own failures.
    ///
    /// # Errors
    /// [`RunStoreError::Commit`] when the commit that carries the barrier
    /// failed and its batch could not be held either;
    /// [`RunStoreError::Closed`] when the writer thread has died.
    pub async fn flush(&self) -> Result<(), RunStoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job { work: Work::Barrier, ack: Ack::Async(tx) })?;
        rx.await.unwrap_or(Err(RunStoreError::Closed))
    }

    /// The run with this id, in any workspace, or `None` if none is stored.
    ///
    /// Callers serving a workspace must check the record's
    /// [`workspace`](RunRecord::workspace) themselves.
    ///
    /// # Errors
    /// [`RunStoreError::Storage`] when redb fails to read;
    /// [`RunStoreError::Corrupt`] when the stored record does not decode or
    /// carries a different id.
    pub fn get(&self, id: RunId) -> Result<Option<RunRecord>, RunStoreError> {
        // Logged and not yet in redb: it leaves `logged` only once redb
        // has it, so looking here first and in redb second misses nothing.
        if let Some(entry) = self.shared.logged.get(id.as_u128()) {
            return decode(id, &entry.bytes).map(Some);
        }
        let stored = self.shared.db.read().map_err(storage).and_then(|txn| {
            let runs = txn.open_table(RUNS).map_err(storage)?;
            let bytes = runs.get(id.as_u128()).map_err(storage)?;
            bytes.map(|b| decode(id, b.value())).transpose()
        });
        match stored {
            Ok(Some(rec)) => Ok(Some(rec)),
            // A run held after a failed commit is found even while redb is
            // unreadable.
            Ok(None) | Err(_) => match self.shared.spill.find(id.as_u128()) {
                Ok(Some(held)) => decode(id, &held.bytes).map(Some),
                Ok(None) => stored,
                Err(e) => stored.and(Err(storage(redb::StorageError::Io(e)))),
            },
        }
    }

    /// One page of one workspace's runs, newest first.
    ///
    /// Only runs of `q.workspace` are returned, only those with status
    /// `q.status` when it is set, only those of member `q.member` when it is
    /// set (this filter decodes each candidate record), only those older than `q.before` when it is
    /// set, and at most `q.limit` of them (capped at [`MAX_LIST_LIMIT`]).
    /// Following [`RunPage::next_cursor`] until it is `None` visits every
    /// matching run exactly once; runs recorded meanwhile with ids newer
    /// than the cursor are not visited.
    ///
    /// # Errors
    /// [`RunStoreError::Storage`] when redb fails to read;
    /// [`RunStoreError::Corrupt`] when a listed record does not decode,
    /// is missing, or does not match its index entry.
    pub fn list(&self, q: &RunQuery) -> Result<RunPage, RunStoreError> {
        let limit = q.limit.min(MAX_LIST_LIMIT);
        if limit == 0 {
            return Ok(RunPage { runs: Vec::new(), next_cursor: None });
        }
        let wanted = q.status.map(|s| s.as_str());
        // Taken before redb's read transaction: a record that leaves
        // `logged` meanwhile is in redb by then (and listed once).
        let mut waiting = self
            .shared
            .logged
            .of_workspace(q.workspace.as_str(), q.before.map(|b| b.as_u128()), wanted)
            .into_iter()
            .peekable();
        let txn = self.shared.db.read().map_err(storage)?;
        let index = txn.open_table(BY_WORKSPACE).map_err(storage)?;
        let runs = txn.open_table(RUNS).map_err(storage)?;

        let workspace = q.workspace.as_str();
        let entries = match q.before {
            Some(before) => index.range((workspace, 0u128)..(workspace, before.as_u128())).map_err(storage)?,
            None => index.range((workspace, 0u128)..=(workspace, u128::MAX)).map_err(storage)?,
        };
        let mut entries = entries.rev();
        let mut indexed = next_indexed(&mut entries, wanted)?;

        let mut page = Vec::new();
        let mut more = false;
        loop {
            // The newer of the next waiting record and the next indexed one;
            // a record in both (applied meanwhile) is taken once.
            let from_log = match (waiting.peek(), &indexed) {
                (None, None) => break,
                (Some(w), Some((id, _))) if w.id == *id => {
                    indexed = next_indexed(&mut entries, wanted)?;
                    true
                }
                (Some(w), Some((id, _))) => w.id > *id,
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            // Without a member filter the next candidate tells that more
            // runs match; with one, only its decoded record can.
            if page.len() == limit && q.member.is_none() {
                more = true;
                break;
            }
            let rec = if from_log {
                let Some(w) = waiting.next() else { break };
                decode(RunId::from_u128(w.id), &w.bytes)?
            } else {
                let Some((id, status)) = indexed.take() else { break };
                indexed = next_indexed(&mut entries, wanted)?;
                let id = RunId::from_u128(id);
                let Some(bytes) = runs.get(id.as_u128()).map_err(storage)? else {
                    return Err(RunStoreError::Corrupt { id, reason: "indexed but not stored".into() });
                };
                let rec = decode(id, bytes.value())?;
                if rec.workspace != q.workspace || rec.status.as_str() != status {
                    return Err(RunStoreError::Corrupt {
                        id,
                        reason: "record does not match its workspace index entry".into(),
                    });
                }
                rec
            };
            if let Some(member) = &q.member
                && rec.member() != Some(member)
            {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(rec);
        }
        let next_cursor = if more { page.last().map(|r| r.id) } else { None };
        Ok(RunPage { runs: page, next_cursor })
    }

    /// Makes every record acknowledged so far durable in redb itself (one
    /// durable, two-phase commit) and empties the write-ahead log
    /// (`<store>.wal`). The writer does this on its own when the log passes
    /// [`GroupCommit::checkpoint_bytes`] or has held records for
    /// [`GroupCommit::checkpoint_interval`], before removals, and at close
    /// once redb is open for writing (a store that never opened it for
    /// writing leaves its records in the log for the next open); call it
    /// before copying the redb file alone (a backup).
    ///
    /// When the commit succeeds but emptying the file fails, this still
    /// returns `Ok` (everything is in redb): the log then takes no append,
    /// and each batch commits durably, until a later checkpoint empties it.
    ///
    /// # Errors
    /// [`RunStoreError::Storage`] when the durable commit fails (the log
    /// keeps its records); [`RunStoreError::Closed`] when the writer thread
    /// has died.
    pub async fn checkpoint(&self) -> Result<(), RunStoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job { work: Work::Checkpoint, ack: Ack::Async(tx) })?;
        rx.await.unwrap_or(Err(RunStoreError::Closed))
    }

    /// [`checkpoint`](Self::checkpoint) for synchronous code: afterwards
    /// redb itself holds every record acknowledged before the call, so a
    /// walk of its tables (retention) sees them all.
    pub(crate) fn checkpoint_blocking(&self) -> Result<(), RunStoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job { work: Work::Checkpoint, ack: Ack::Blocking(tx) })?;
        rx.recv().unwrap_or(Err(RunStoreError::Closed))
    }

    /// Removes `ids` of workspace `ws` through the writer, in one durable
    /// commit; how many were there.
    pub(crate) fn remove(&self, ws: &str, ids: Vec<u128>) -> Result<u64, RunStoreError> {
        let (done, rx) = mpsc::sync_channel(1);
        self.send(Job { work: Work::Remove { workspace: ws.to_owned(), ids, done }, ack: Ack::None })?;
        rx.recv().unwrap_or(Err(RunStoreError::Closed))
    }

    /// How many batches have been made durable since [`open`](Self::open)
    /// (a count, shared by all clones): each is one append and `fdatasync`
    /// of the write-ahead log, or one durable redb commit when the log is
    /// off or failing. The transaction at open that creates the tables is
    /// not counted, nor are the writer's later non-durable redb commits.
    ///
    /// With concurrent callers this is well below the number of records,
    /// which is the point of group commit; useful for metrics and tests.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// How many acknowledged records wait in the holding file
    /// (`<store>.pending`) because their redb commit failed. Nonzero means
    /// redb is refusing writes: the writer retries with every later batch
    /// (at most once a second) and the next open imports them; until then
    /// [`get`](Self::get) finds them and [`list`](Self::list) does not.
    /// An operator alert belongs on this staying above zero.
    pub fn held(&self) -> usize {
        self.shared.spill.held()
    }

    /// How many acknowledged records are in the synced write-ahead log
    /// and not yet in redb (a count). Once redb is open for writing, the
    /// writer thread applies them a couple of milliseconds after they
    /// arrive, so this stays near zero, but for the records logged during a
    /// background flush ([`GroupCommit::background_flush`]: about the runs
    /// of its tens of milliseconds, once a second under load; before, it counts the records kept
    /// in the log, read back from earlier processes included);
    /// [`get`](Self::get) and [`list`](Self::list) find them meanwhile. A
    /// count that keeps growing means redb refuses writes: past 65,536
    /// records or 64 MiB, batches are committed durably by redb itself
    /// instead, and held when that fails ([`held`](Self::held)). An
    /// operator alert belongs on this staying above a few thousand.
    pub fn waiting(&self) -> usize {
        self.shared.logged.len()
    }

    /// Makes the write-ahead log's appends fail while set.
    #[cfg(test)]
    pub(crate) fn wal_fail(&self) -> &std::sync::atomic::AtomicBool {
        &self.shared.wal_fail
    }

    pub(crate) fn db(&self) -> &ReadMostlyDatabase {
        &self.shared.db
    }

    /// The records of the synced log that redb does not have yet.
    pub(crate) fn logged(&self) -> &Logged {
        &self.shared.logged
    }

    /// Shrinks the file to what its records need (redb's compaction), once
    /// the writer has committed everything queued. Takes the store: it must
    /// be the last handle, since compaction needs the file to itself.
    /// Returns whether anything was reclaimed.
    ///
    /// # Errors
    /// [`RunStoreError::InUse`] when another handle to the store is alive;
    /// [`RunStoreError::Compact`] when redb's compaction fails.
    pub fn compact(self) -> Result<bool, RunStoreError> {
        let mut shared = Arc::try_unwrap(self.shared).map_err(|_| RunStoreError::InUse)?;
        // Stop the writer (it commits its queue first) so the database has
        // one owner left.
        drop(shared.jobs.take());
        if let Some(writer) = shared.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("run store writer thread panicked");
        }
        let stand_in = ReadMostlyDatabase::from_backend(Path::new("(memory)"), placeholder()?);
        let db = std::mem::replace(&mut shared.db, Arc::new(stand_in));
        drop(shared);
        let mut db = Arc::try_unwrap(db).map_err(|_| RunStoreError::InUse)?.into_writable().map_err(storage)?;
        db.compact().map_err(|e| RunStoreError::Compact(Arc::new(e)))
    }
}

/// An empty in-memory database, to stand in for the real one while it is
/// taken out of [`Shared`] for compaction.
fn placeholder() -> Result<Database, RunStoreError> {
    Database::builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .map_err(|source| RunStoreError::Open { path: std::path::PathBuf::from("(memory)"), source })
}

/// A record announced with [`RunStore::expect_record`] and not yet stored.
#[must_use = "dropping the guard withdraws the announcement; call `record`"]
pub struct ExpectedRecord {
    store: RunStore,
    /// The announcement has been taken back (the record is being sent).
    withdrawn: bool,
}

impl ExpectedRecord {
    /// Stores `rec` like [`RunStore::record`]; the announcement ends just
    /// before the record is queued, before its commit is awaited.
    ///
    /// # Errors
    /// As for [`RunStore::record`].
    pub async fn record(mut self, rec: RunRecord) -> Result<(), RunStoreError> {
        let entry = encode(&rec)?;
        self.withdraw();
        self.store.store_async(entry).await
    }

    /// Takes the announcement back just before the record is sent: a writer
    /// that is lingering for it then either finds it queued or stops
    /// waiting, and never waits out its poll interval for a record it
    /// already has.
    fn withdraw(&mut self) {
        if !std::mem::replace(&mut self.withdrawn, true) {
            self.store.shared.expected.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Queues `rec` for the next group commit and returns at once, without
    /// waiting for it to be durable or visible to [`RunStore::get`]. It is
    /// committed like any other record, in order, typically within one
    /// commit's time; [`RunStore::flush`] waits for it, and dropping the
    /// last `RunStore` commits it before the file closes. A crash before
    /// that commit loses it, and a failed commit is only logged.
    ///
    /// # Errors
    /// [`RunStoreError::Encode`] when the record cannot be serialized;
    /// [`RunStoreError::Closed`] when the writer thread has died.
    pub fn queue(mut self, rec: &RunRecord) -> Result<(), RunStoreError> {
        let entry = encode(rec)?;
        self.withdraw();
        self.store.send_queued(Job { work: Work::Record(entry), ack: Ack::None })
    }
}

impl Drop for ExpectedRecord {
    fn drop(&mut self) {
        self.withdraw();
    }
}

/// The next entry of a workspace's index range (walked newest first) whose
/// status is `wanted` (when set): its run id and status.
fn next_indexed<'a>(
    entries: &mut impl Iterator<
        Item = Result<
            (redb::AccessGuard<'a, (&'static str, u128)>, redb::AccessGuard<'a, &'static str>),
            redb::StorageError,
        >,
    >,
    wanted: Option<&str>,
) -> Result<Option<(u128, String)>, RunStoreError> {
    for entry in entries {
        let (key, status) = entry.map_err(storage)?;
        if wanted.is_none_or(|w| w == status.value()) {
            return Ok(Some((key.value().1, status.value().to_owned())));
        }
    }
    Ok(None)
}

/// `rec` as the writer stores it.
fn encode(rec: &RunRecord) -> Result<Entry, RunStoreError> {
    // serde_json starts at 128 bytes and doubles; a record with a short
    // output is about 550, so this saves three reallocations and copies.
    let mut bytes = Vec::with_capacity(ENCODED_CAPACITY);
    serde_json::to_writer(&mut bytes, rec).map_err(RunStoreError::Encode)?;
    Ok(Entry { id: rec.id.as_u128(), workspace: rec.workspace.as_str().to_owned(), status: rec.status.as_str(), bytes })
}

/// The buffer a record is encoded into, in bytes: room for a record with a
/// short output and a few spans without growing.
const ENCODED_CAPACITY: usize = 1024;

/// Wraps any redb error as [`RunStoreError::Storage`].
pub(crate) fn storage(error: impl Into<redb::Error>) -> RunStoreError {
    RunStoreError::Storage(error.into())
}

/// Decodes a stored record and checks it is stored under its own id.
fn decode(id: RunId, bytes: &[u8]) -> Result<RunRecord, RunStoreError> {
    let rec: RunRecord =
        serde_json::from_slice(bytes).map_err(|e| RunStoreError::Corrupt { id, reason: e.to_string() })?;
    if rec.id != id {
        return Err(RunStoreError::Corrupt { id, reason: format!("record carries id {}", rec.id) });
    }
    Ok(rec)
}

/// Creates a new store file under a temporary name and links it into place
/// only once it is complete, so a crash during the very first open never
/// leaves a half-written file at `path` that later opens would refuse.
fn create_atomically(path: &Path) -> Result<(), RunStoreError> {
    let tmp = path.with_extension(format!("creating-{}", std::process::id()));
    let open_err = |source| RunStoreError::Open { path: path.to_path_buf(), source };
    let io_err = |e: std::io::Error| open_err(redb::DatabaseError::Storage(redb::StorageError::Io(e)));
    let _ = std::fs::remove_file(&tmp);
    {
        let db = Database::builder().create(&tmp).map_err(open_err)?;
        create_tables(&db)?;
    }
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_err)?;
    // A link never replaces an existing file: if another process created
    // the store meanwhile, keep its file.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err(e)),
    }
}

/// Creates both tables if they do not exist yet, so read transactions can
/// always open them.
fn create_tables(db: &Database) -> Result<(), RunStoreError> {
    // A store opened before has them: no write, and no fsync, at each open.
    if db.begin_read().is_ok_and(|txn| tables_exist(&txn)) {
        return Ok(());
    }
    let txn = begin_durable_write(db)?;
    txn.open_table(RUNS).map_err(storage)?;
    txn.open_table(BY_WORKSPACE).map_err(storage)?;
    txn.commit().map_err(storage)?;
    Ok(())
}

/// Whether both tables exist in `txn`'s snapshot.
fn tables_exist(txn: &ReadTransaction) -> bool {
    txn.open_table(RUNS).is_ok() && txn.open_table(BY_WORKSPACE).is_ok()
}

/// Opens the write-ahead log beside `path` and reads back what earlier
/// processes left in it.
///
/// While `db` is read-only (it was closed cleanly) and the records fit
/// under the caps of [`Logged`] and the log under
/// [`kept_log_bytes`](crate::writer::kept_log_bytes) (64 KiB), they stay in the log and wait in
/// `logged`, as if just appended: a short-lived process that records a
/// run appends after them and leaves them for a later checkpoint, without
/// ever opening redb for writing. Otherwise (after a crash, or a log grown
/// past its size) they are imported into `db`, durably, before the store
/// takes any new record, and the log is emptied. Records redb cannot take
/// go to the holding file instead, so they stay found and are retried.
///
/// # Errors
/// [`RunStoreError::WriteAheadLog`] when the log cannot be opened, or its
/// records can be put neither into redb nor into the holding file (the log
/// is then left as it is, so nothing acknowledged is lost).
fn replay(
    db: &ReadMostlyDatabase,
    path: &Path,
    spill: &Spill,
    waiting: &Logged,
    gc: GroupCommit,
) -> Result<Option<Wal>, RunStoreError> {
    let log_err = |source| RunStoreError::WriteAheadLog { path: Wal::beside(path), source };
    let (mut wal, logged) = Wal::open(path, crate::writer::kept_file_bytes(gc)).map_err(log_err)?;
    if logged.is_empty() {
        return Ok(Some(wal));
    }
    let bytes: usize = logged.iter().map(|e| e.bytes.len()).sum();
    if !db.is_writable()
        && gc.write_ahead_log
        && logged.len() < crate::logged::MAX_LOGGED
        && bytes < crate::logged::MAX_LOGGED_BYTES
        && wal.len() < crate::writer::kept_log_bytes(gc)
    {
        tracing::debug!(records = logged.len(), path = %wal.path().display(), "the write-ahead log keeps the runs of earlier processes");
        waiting.insert(logged);
        return Ok(Some(wal));
    }
    match import(db, &logged) {
        Ok(()) => tracing::info!(records = logged.len(), path = %wal.path().display(), "imported the write-ahead log"),
        Err(error) => {
            let entries: Vec<&Entry> = logged.iter().collect();
            spill.append(&entries).map_err(log_err)?;
            tracing::error!(records = logged.len(), %error, "the write-ahead log could not be imported; its records are held");
        }
    }
    if let Err(error) = wal.reset() {
        // Imported already: the writer empties the poisoned log later, and
        // commits durably until then.
        tracing::warn!(path = %wal.path().display(), %error, "emptying the imported write-ahead log failed");
    }
    Ok(Some(wal))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::types::RunStatus;
    use crate::writer::lock;

    fn record(status: RunStatus) -> RunRecord {
        RunRecord { status, ..crate::spill::tests::record(0) }
    }

    /// Waits (at most 30 s, against a hang) until `done` holds.
    fn eventually(what: &str, done: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < until, "never happened: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn led(store: &RunStore) -> u64 {
        store.shared.led.load(Ordering::Relaxed)
    }

    /// Records runs until one is led: a lone caller may still find the
    /// writer thread holding its lock for an instant (at start, or after a
    /// wake-up), and then goes through the queue. Returns the led one.
    fn record_until_led(store: &RunStore) -> RunRecord {
        for _ in 0..1000 {
            let before = led(store);
            let rec = record(RunStatus::Succeeded);
            store.record_blocking(rec.clone()).unwrap();
            if led(store) > before {
                return rec;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("a lone caller never led");
    }

    /// A lone caller commits on its own thread, and the writer thread,
    /// asleep until then, still applies the record to redb and empties the
    /// log on its own: nothing else calls the store after the record.
    #[test]
    fn a_lone_callers_record_is_applied_and_checkpointed_by_the_idle_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.redb");
        let gc = GroupCommit { checkpoint_interval: Duration::from_millis(100), ..GroupCommit::default() };
        let store = RunStore::open_with(&path, gc).unwrap();
        let rec = record_until_led(&store);
        assert_eq!(store.get(rec.id).unwrap().as_ref(), Some(&rec));

        eventually("the writer applied the record", || store.shared.logged.is_empty());
        let in_redb = store.db().read().unwrap().open_table(RUNS).unwrap().get(rec.id.as_u128()).unwrap().is_some();
        assert!(in_redb);
        let wal = Wal::beside(&path);
        eventually("the writer emptied the log", || crate::wal::intact(&wal) == (crate::frame::SALT as u64, vec![]));
        // Durable in redb alone now: a copy of the redb file has it.
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(&path, copy.path().join("runs.redb")).unwrap();
        let copied = RunStore::open(&copy.path().join("runs.redb")).unwrap();
        assert_eq!(copied.get(rec.id).unwrap().as_ref(), Some(&rec));
    }

    /// While a background flush is under way, batches are still logged and
    /// acknowledged, readable at once, and not applied; once it ends, the
    /// checkpoint proper follows and commits what was logged meanwhile: the
    /// log is emptied and every record is durable in redb alone. With the
    /// flush off, the checkpoint runs on the writer and does the same.
    #[test]
    fn a_background_flush_lets_batches_through_and_the_checkpoint_follows() {
        for background in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("runs.redb");
            let gc = GroupCommit {
                checkpoint_interval: Duration::from_millis(20),
                background_flush: background,
                ..GroupCommit::default()
            };
            let store = RunStore::open_with(&path, gc).unwrap();
            let wal = Wal::beside(&path);
            let emptied = || {
                lock(&store.shared.state).flushing.is_none()
                    && crate::wal::intact(&wal) == (crate::frame::SALT as u64, vec![])
            };
            let first = record(RunStatus::Succeeded);
            store.record_blocking(first.clone()).unwrap();
            eventually("the first checkpoint", emptied);
            assert!(store.db().is_writable());
            let hold = Arc::clone(&lock(&store.shared.state).hold_flush);
            let flushes = hold.started.load(Ordering::SeqCst);
            assert_eq!(flushes > 0, background, "the first checkpoint began with a flush when they are on");
            *hold.held.lock().unwrap() = true;
            // Released however the test ends, so that a failure does not
            // leave the writer waiting for the flush for ever.
            struct Release(Arc<crate::writer::FlushHold>);
            impl Drop for Release {
                fn drop(&mut self) {
                    self.0.release();
                }
            }
            let _release = Release(Arc::clone(&hold));
            let before = record(RunStatus::Failed);
            store.record_blocking(before.clone()).unwrap();
            let ws = &first.workspace;
            let durable = || in_redb_alone(&path, ws).into_iter().map(|r| r.id).collect::<Vec<RunId>>();
            if !background {
                eventually("the checkpoint on the writer", emptied);
                assert_eq!(hold.started.load(Ordering::SeqCst), 0, "no flush when they are off");
                let durable = durable();
                assert!(durable.contains(&first.id) && durable.contains(&before.id));
                continue;
            }
            // Held after taking what waits, before its commit.
            eventually("a flush started", || hold.started.load(Ordering::SeqCst) == flushes + 1);
            let (acked, acks) = std::sync::mpsc::channel();
            let writer = store.clone();
            let during: Vec<RunRecord> = (0..5).map(|_| record(RunStatus::Succeeded)).collect();
            let sent = during.clone();
            std::thread::spawn(move || {
                for rec in sent {
                    acked.send(writer.record_blocking(rec)).unwrap();
                }
            });
            for rec in &during {
                let ack = acks.recv_timeout(Duration::from_secs(10)).expect("acknowledged while the flush is held");
                ack.unwrap();
                assert_eq!(store.get(rec.id).unwrap().as_ref(), Some(rec));
            }
            assert!(during.iter().all(|r| store.shared.logged.contains(r.id.as_u128())), "none applied meanwhile");
            let (_, in_log) = crate::wal::intact(&wal);
            assert!(during.iter().all(|r| in_log.contains(&r.id.as_u128())), "in the log until the checkpoint");

            hold.release();
            eventually("the checkpoint emptied the log", emptied);
            // The flush's snapshot was taken before these were logged: only
            // the checkpoint proper can have made them durable.
            let durable = durable();
            for rec in during.iter().chain([&first, &before]) {
                assert!(durable.contains(&rec.id), "{} durable in redb alone", rec.id);
            }
        }
    }

    /// Reads `path`'s runs of `ws` from a copy of the redb file alone,
    /// without its log: what redb holds durably.
    fn in_redb_alone(path: &Path, ws: &orbit_workspace::WorkspaceId) -> Vec<RunRecord> {
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(path, copy.path().join("runs.redb")).unwrap();
        RunStore::open(&copy.path().join("runs.redb")).unwrap().list(&RunQuery::new(ws.clone())).unwrap().runs
    }

    /// A store closed cleanly reopens with redb read-only: runs recorded
    /// then are acknowledged from the synced log alone (redb's file is not
    /// written at all, not even at close), the next open reads them back
    /// (listed, and refused as repeats), and a checkpoint puts them in redb.
    #[test]
    fn a_reopened_store_keeps_new_runs_in_the_log_until_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.redb");
        let first = record(RunStatus::Succeeded);
        let ws = first.workspace.clone();
        RunStore::open(&path).unwrap().record_blocking(first.clone()).unwrap();
        let redb_before = std::fs::read(&path).unwrap();

        let later: Vec<_> = (0..3).map(|_| record(RunStatus::Failed)).collect();
        {
            let store = RunStore::open(&path).unwrap();
            assert!(!store.db().is_writable());
            for r in &later {
                store.record_blocking(r.clone()).unwrap();
            }
            assert_eq!(store.get(later[0].id).unwrap().as_ref(), Some(&later[0]));
        }
        assert_eq!(std::fs::read(&path).unwrap(), redb_before, "redb's file was not written");
        assert_eq!(in_redb_alone(&path, &ws), vec![first.clone()]);

        let store = RunStore::open(&path).unwrap();
        let mut want = later.clone();
        want.push(first.clone());
        want.sort_by_key(|r| std::cmp::Reverse(r.id));
        assert_eq!(store.list(&RunQuery::new(ws.clone())).unwrap().runs, want);
        assert_eq!(store.waiting(), 3);
        let again = store.record_blocking(later[1].clone());
        assert!(matches!(again, Err(RunStoreError::AlreadyExists(id)) if id == later[1].id), "{again:?}");
        store.checkpoint_blocking().unwrap();
        assert!(store.db().is_writable() && store.waiting() == 0);
        drop(store);
        assert_eq!(in_redb_alone(&path, &ws), want);
    }

    /// One store per file: a second open is refused whether the first
    /// holds redb read-only or writable, so two logs never write one file.
    #[test]
    fn a_second_open_of_a_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.redb");
        let refused = |path: &Path| {
            matches!(
                RunStore::open(path),
                Err(RunStoreError::Open { source: redb::DatabaseError::DatabaseAlreadyOpen, .. })
            )
        };
        let created = RunStore::open(&path).unwrap();
        assert!(created.db().is_writable() && refused(&path));
        drop(created);
        let reopened = RunStore::open(&path).unwrap();
        assert!(!reopened.db().is_writable() && refused(&path));
        reopened.record_blocking(record(RunStatus::Succeeded)).unwrap();
        assert!(refused(&path));
    }

    /// Two threads opening a store that does not exist yet: one creates
    /// it, the other is refused with a typed error (never a stray I/O
    /// error from the first one's half-made file).
    #[test]
    fn concurrent_first_opens_are_one_store_and_one_refusal() {
        for _ in 0..30 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("runs.redb");
            let results: Vec<_> = std::thread::scope(|s| {
                let opens: Vec<_> = (0..2).map(|_| s.spawn(|| RunStore::open(&path))).collect();
                opens.into_iter().map(|o| o.join().unwrap()).collect()
            });
            assert!(results.iter().any(Result::is_ok), "{results:?}");
            for r in &results {
                assert!(
                    matches!(
                        r,
                        Ok(_) | Err(RunStoreError::Open { source: redb::DatabaseError::DatabaseAlreadyOpen, .. })
                    ),
                    "{r:?}"
                );
            }
        }
    }

    /// Records read back from earlier processes' log do not make a
    /// process open redb for writing by their age; its own first record
    /// starts the clock.
    #[test]
    fn the_log_ages_from_this_processs_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.redb");
        drop(RunStore::open(&path).unwrap());
        let earlier = record(RunStatus::Succeeded);
        RunStore::open(&path).unwrap().record_blocking(earlier.clone()).unwrap();

        let gc = GroupCommit { checkpoint_interval: Duration::from_millis(20), ..GroupCommit::default() };
        let store = RunStore::open_with(&path, gc).unwrap();
        assert_eq!(store.waiting(), 1);
        std::thread::sleep(Duration::from_millis(200));
        assert!(!store.db().is_writable(), "no checkpoint for the earlier process's record alone");
        store.record_blocking(record(RunStatus::Succeeded)).unwrap();
        eventually("a checkpoint by age", || store.waiting() == 0);
        assert!(store.db().is_writable());
        assert_eq!(store.get(earlier.id).unwrap().as_ref(), Some(&earlier));
    }

    /// A read-only store whose log has grown past what later opens should
    /// read back (64 KiB) checkpoints as it closes.
    #[test]
    fn a_read_only_store_checkpoints_at_close_past_64_kib() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.redb");
        drop(RunStore::open(&path).unwrap());
        let wal = Wal::beside(&path);
        let mut runs = Vec::new();
        {
            // No checkpoint by age, however slow the disk's syncs.
            let gc = GroupCommit { checkpoint_interval: Duration::from_secs(3600), ..GroupCommit::default() };
            let store = RunStore::open_with(&path, gc).unwrap();
            while crate::wal::intact(&wal).0 <= crate::writer::kept_log_bytes(GroupCommit::default()) {
                let r = record(RunStatus::Succeeded);
                store.record_blocking(r.clone()).unwrap();
                runs.push(r);
            }
            assert!(!store.db().is_writable(), "still read-only while open");
        }
        assert_eq!(crate::wal::intact(&wal), (crate::frame::SALT as u64, vec![]), "log emptied at close");
        let mut q = RunQuery::new(runs[0].workspace.clone());
        q.limit = MAX_LIST_LIMIT;
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(&path, copy.path().join("runs.redb")).unwrap();
        let stored = RunStore::open(&copy.path().join("runs.redb")).unwrap().list(&q).unwrap().runs;
        assert_eq!(stored.len(), runs.len());
    }

    /// A log grown past [`GroupCommit::checkpoint_bytes`] by earlier
    /// processes is imported into redb when the store opens.
    #[test]
    fn a_log_past_its_size_is_imported_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.redb");
        drop(RunStore::open(&path).unwrap());
        let runs: Vec<_> = (0..3).map(|_| record(RunStatus::Succeeded)).collect();
        {
            let store = RunStore::open(&path).unwrap();
            for r in &runs {
                store.record_blocking(r.clone()).unwrap();
            }
        }
        let ws = runs[0].workspace.clone();
        assert!(in_redb_alone(&path, &ws).is_empty(), "the runs are in the log only");

        let gc = GroupCommit { checkpoint_bytes: 1, ..GroupCommit::default() };
        let store = RunStore::open_with(&path, gc).unwrap();
        assert!(store.db().is_writable() && store.waiting() == 0);
        assert_eq!(crate::wal::intact(&Wal::beside(&path)), (crate::frame::SALT as u64, vec![]), "log emptied");
        drop(store);
        let mut want = runs.clone();
        want.sort_by_key(|r| std::cmp::Reverse(r.id));
        assert_eq!(in_redb_alone(&path, &ws), want);
    }

    /// A caller is not alone while another run has announced its record,
    /// and never leads when leading is off: its record goes through the
    /// writer thread, which batches.
    #[test]
    fn only_a_lone_caller_leads() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::open(&dir.path().join("runs.redb")).unwrap();
        let other = store.expect_record();
        for _ in 0..20 {
            let rec = record(RunStatus::Failed);
            store.record_blocking(rec.clone()).unwrap();
            assert_eq!(store.get(rec.id).unwrap().as_ref(), Some(&rec));
        }
        assert_eq!(led(&store), 0);
        drop(other);
        record_until_led(&store);

        let dir = tempfile::tempdir().unwrap();
        let gc = GroupCommit { lone_caller_commits: false, ..GroupCommit::default() };
        let store = RunStore::open_with(&dir.path().join("runs.redb"), gc).unwrap();
        for _ in 0..20 {
            let rec = record(RunStatus::Succeeded);
            store.record_blocking(rec.clone()).unwrap();
            assert_eq!(store.get(rec.id).unwrap().as_ref(), Some(&rec));
        }
        assert_eq!(led(&store), 0);
        assert_eq!(store.commits(), 20);
    }

    /// An async lone caller leads on tokio's multi-thread runtime (in
    /// `block_in_place`), and never on a current-thread runtime, where
    /// blocking would stall the other tasks.
    #[test]
    fn an_async_caller_leads_only_on_the_multi_thread_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::open(&dir.path().join("runs.redb")).unwrap();
        let current = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for _ in 0..20 {
            let rec = record(RunStatus::Succeeded);
            current.block_on(store.record(rec.clone())).unwrap();
            assert_eq!(store.get(rec.id).unwrap().as_ref(), Some(&rec));
        }
        assert_eq!(led(&store), 0);

        let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
        let led_one = multi.block_on(async {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..1000 {
                    let before = led(&store);
                    let rec = record(RunStatus::Succeeded);
                    store.record(rec.clone()).await.unwrap();
                    assert_eq!(store.get(rec.id).unwrap().as_ref(), Some(&rec));
                    if led(&store) > before {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                false
            })
            .await
            .unwrap()
        });
        assert!(led_one, "an async lone caller never led");
    }

    /// A record in both places (applied, and not yet dropped from the map)
    /// is listed once.
    #[test]
    fn a_record_both_waiting_and_applied_is_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::open(&dir.path().join("runs.redb")).unwrap();
        let runs: Vec<_> = (0..3).map(|_| record(RunStatus::Succeeded)).collect();
        for r in &runs {
            store.record_blocking(r.clone()).unwrap();
        }
        store.checkpoint_blocking().unwrap();
        assert_eq!(store.waiting(), 0);
        // The instant between the writer's apply and its removal from the map.
        store.shared.logged.insert([encode(&runs[1]).unwrap()]);
        let listed = store.list(&RunQuery::new(runs[0].workspace.clone())).unwrap();
        let mut want = runs.clone();
        want.sort_by_key(|r| std::cmp::Reverse(r.id));
        assert_eq!(listed.runs, want);
        assert_eq!(store.get(runs[1].id).unwrap().as_ref(), Some(&runs[1]));
    }

    /// A lone caller's record with an id already stored (applied to redb,
    /// or still waiting to be) is refused, as through the writer thread.
    #[test]
    fn a_leader_refuses_a_stored_id_applied_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::open(&dir.path().join("runs.redb")).unwrap();
        let rec = record_until_led(&store);
        // Until a repeat is refused by a leader, and not by the writer thread.
        let refused = |store: &RunStore| {
            for _ in 0..1000 {
                let before = led(store);
                let again = store.record_blocking(rec.clone());
                assert!(matches!(again, Err(RunStoreError::AlreadyExists(id)) if id == rec.id), "{again:?}");
                if led(store) > before {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            false
        };
        // Waiting to be applied (the writer waits 2 ms before it applies;
        // the map is checked, so the refusal holds either way).
        assert!(refused(&store));
        eventually("the writer applied the record", || store.shared.logged.is_empty());
        assert!(refused(&store));
        assert_eq!(store.get(rec.id).unwrap().as_ref(), Some(&rec));
    }
}
