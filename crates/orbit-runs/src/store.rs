//! The redb-backed store and its group-commit writer thread.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::error::RunStoreError;
use crate::spill::{DrainError, Entry, Spill};
use crate::types::{GroupCommit, MAX_LIST_LIMIT, RunId, RunPage, RunQuery, RunRecord};

/// Run id (as `u128`) -> serde_json of the [`RunRecord`].
pub(crate) const RUNS: TableDefinition<u128, &[u8]> = TableDefinition::new("runs");

/// (workspace, run id as `u128`) -> the run's status name.
///
/// UUID v7 ids sort by time, so a reverse range scan over one workspace's
/// keys lists its runs newest first. Keeping the status here lets `list`
/// filter by status without decoding records it will skip.
pub(crate) const BY_WORKSPACE: TableDefinition<(&str, u128), &str> = TableDefinition::new("runs_by_workspace");

/// The outcome of one record, as delivered to its caller.
type Outcome = Result<(), RunStoreError>;

/// Where the writer sends a record's outcome.
enum Ack {
    /// A caller awaiting in async code.
    Async(oneshot::Sender<Outcome>),
    /// A caller blocked in [`RunStore::record_blocking`].
    Blocking(mpsc::SyncSender<Outcome>),
    /// Nobody waits ([`ExpectedRecord::queue`]); a failure is only logged.
    None,
}

impl Ack {
    fn send(self, outcome: Outcome) {
        // A caller that stopped waiting no longer cares; ignore the failure.
        match self {
            Ack::Async(tx) => {
                let _ = tx.send(outcome);
            }
            Ack::Blocking(tx) => {
                let _ = tx.send(outcome);
            }
            Ack::None => {
                if let Err(error) = outcome {
                    tracing::error!(%error, "queued run record was not stored");
                }
            }
        }
    }
}

/// One record on its way to the writer, already encoded by the caller, or
/// (with no entry) a barrier that is acked once everything queued before it
/// is committed.
struct Job {
    entry: Option<Entry>,
    ack: Ack,
}

/// State shared by every clone of a [`RunStore`].
struct Shared {
    db: Arc<Database>,
    /// `None` only while [`Shared`] is being dropped.
    jobs: Option<mpsc::Sender<Job>>,
    /// `None` only while [`Shared`] is being dropped.
    writer: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
    /// Records announced with [`RunStore::expect_record`] and not yet queued.
    expected: Arc<AtomicUsize>,
    /// Records whose commit failed, kept on disk until redb takes them.
    spill: Arc<Spill>,
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

/// The durable store of run records, backed by one redb file.
///
/// Writes go through one writer thread that groups concurrent
/// [`record`](Self::record) calls into a single write transaction (see
/// [`GroupCommit`]). Each transaction commits with
/// [`Durability::Immediate`] and redb's two-phase commit, because records
/// carry guest-controlled bytes; a call returns only once its record is on
/// disk. Reads ([`get`](Self::get), [`list`](Self::list)) use redb read
/// transactions and run concurrently with the writer.
///
/// `RunStore` is cheap to clone (an `Arc` inside) and is `Send + Sync`.
/// The writer thread stops, and the file is closed, when the last clone is
/// dropped; dropping it waits for records already queued to be committed.
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
    /// a large store.
    ///
    /// # Errors
    /// [`RunStoreError::CreateDir`] when a parent directory cannot be made;
    /// [`RunStoreError::Open`] when redb cannot open or create the file
    /// (including when it is already open elsewhere);
    /// [`RunStoreError::Storage`] when the tables cannot be set up;
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
        if !path.exists() {
            create_atomically(path)?;
        }
        let db = Database::builder()
            .create(path)
            .map_err(|source| RunStoreError::Open { path: path.to_path_buf(), source })?;
        Self::start(db, path, gc)
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
        Self::start(db, path, gc)
    }

    /// Sets up the tables of the opened `db` (the file at `path`), imports
    /// what its holding file keeps, and starts the writer.
    fn start(db: Database, path: &Path, gc: GroupCommit) -> Result<Self, RunStoreError> {
        create_tables(&db)?;
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

        let db = Arc::new(db);
        let commits = Arc::new(AtomicU64::new(0));
        let expected = Arc::new(AtomicUsize::new(0));
        let (jobs, queue) = mpsc::channel();
        let writer = {
            let db = Arc::clone(&db);
            let commits = Arc::clone(&commits);
            let expected = Arc::clone(&expected);
            let spill = Arc::clone(&spill);
            std::thread::Builder::new()
                .name("orbit-runs-writer".into())
                .spawn(move || writer_loop(&db, &queue, gc, &commits, &expected, &spill))
                .map_err(RunStoreError::SpawnWriter)?
        };
        tracing::debug!(path = %path.display(), ?gc, "run store opened");
        Ok(Self { shared: Arc::new(Shared { db, jobs: Some(jobs), writer: Some(writer), commits, expected, spill }) })
    }

    /// Stores `rec`, returning only once it is durably committed.
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
        let (tx, rx) = oneshot::channel();
        self.submit(&rec, Ack::Async(tx))?;
        rx.await.unwrap_or(Err(RunStoreError::Closed))
    }

    /// Announces that a record is on its way (a run has started), so that
    /// the writer can let a batch wait up to [`GroupCommit::max_linger`] for
    /// it rather than commit without it. Store the record with
    /// [`ExpectedRecord::record`]; dropping the guard withdraws the
    /// announcement.
    pub fn expect_record(&self) -> ExpectedRecord {
        self.shared.expected.fetch_add(1, Ordering::AcqRel);
        ExpectedRecord { store: self.clone() }
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
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(&rec, Ack::Blocking(tx))?;
        rx.recv().unwrap_or(Err(RunStoreError::Closed))
    }

    /// Encodes `rec` on the caller's thread and queues it for the writer.
    fn submit(&self, rec: &RunRecord, ack: Ack) -> Result<(), RunStoreError> {
        let bytes = serde_json::to_vec(rec).map_err(RunStoreError::Encode)?;
        let entry = Entry {
            id: rec.id.as_u128(),
            workspace: rec.workspace.as_str().to_owned(),
            status: rec.status.as_str(),
            bytes,
        };
        self.send(Job { entry: Some(entry), ack })
    }

    fn send(&self, job: Job) -> Result<(), RunStoreError> {
        let jobs = self.shared.jobs.as_ref().ok_or(RunStoreError::Closed)?;
        jobs.send(job).map_err(|_| RunStoreError::Closed)
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
        self.send(Job { entry: None, ack: Ack::Async(tx) })?;
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
        let stored = self.shared.db.begin_read().map_err(storage).and_then(|txn| {
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
        let txn = self.shared.db.begin_read().map_err(storage)?;
        let index = txn.open_table(BY_WORKSPACE).map_err(storage)?;
        let runs = txn.open_table(RUNS).map_err(storage)?;

        let workspace = q.workspace.as_str();
        let entries = match q.before {
            Some(before) => index.range((workspace, 0u128)..(workspace, before.as_u128())).map_err(storage)?,
            None => index.range((workspace, 0u128)..=(workspace, u128::MAX)).map_err(storage)?,
        };
        let wanted = q.status.map(|s| s.as_str());

        let mut page = Vec::new();
        let mut more = false;
        for entry in entries.rev() {
            let (key, status) = entry.map_err(storage)?;
            if wanted.is_some_and(|w| w != status.value()) {
                continue;
            }
            // Without a member filter the next index entry tells that more
            // runs match; with one, only its decoded record can.
            if page.len() == limit && q.member.is_none() {
                more = true;
                break;
            }
            let id = RunId::from_u128(key.value().1);
            let Some(bytes) = runs.get(id.as_u128()).map_err(storage)? else {
                return Err(RunStoreError::Corrupt { id, reason: "indexed but not stored".into() });
            };
            let rec = decode(id, bytes.value())?;
            if rec.workspace != q.workspace || rec.status.as_str() != status.value() {
                return Err(RunStoreError::Corrupt {
                    id,
                    reason: "record does not match its workspace index entry".into(),
                });
            }
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

    /// How many batch write transactions this store's writer has committed
    /// since [`open`](Self::open) (a count, shared by all clones; the
    /// transaction at open that creates the tables is not counted).
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

    pub(crate) fn db(&self) -> &Database {
        &self.shared.db
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
        let db = std::mem::replace(&mut shared.db, Arc::new(placeholder()?));
        drop(shared);
        let mut db = Arc::try_unwrap(db).map_err(|_| RunStoreError::InUse)?;
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
}

impl ExpectedRecord {
    /// Stores `rec` like [`RunStore::record`]; the announcement ends as soon
    /// as the record is queued, before its commit is awaited.
    ///
    /// # Errors
    /// As for [`RunStore::record`].
    pub async fn record(self, rec: RunRecord) -> Result<(), RunStoreError> {
        let (tx, rx) = oneshot::channel();
        let queued = self.store.submit(&rec, Ack::Async(tx));
        drop(self);
        queued?;
        rx.await.unwrap_or(Err(RunStoreError::Closed))
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
    pub fn queue(self, rec: &RunRecord) -> Result<(), RunStoreError> {
        let queued = self.store.submit(rec, Ack::None);
        drop(self);
        queued
    }
}

impl Drop for ExpectedRecord {
    fn drop(&mut self) {
        self.store.shared.expected.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Wraps any redb error as [`RunStoreError::Storage`].
fn storage(error: impl Into<redb::Error>) -> RunStoreError {
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

/// Makes a write transaction that is durable when `commit` returns and that
/// uses two-phase commit, so a crash cannot leave a partial commit whose
/// checksum was forged by guest-controlled bytes (see redb's design notes).
fn begin_durable_write(db: &Database) -> Result<redb::WriteTransaction, redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.set_two_phase_commit(true);
    Ok(txn)
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
    let txn = begin_durable_write(db)?;
    txn.open_table(RUNS).map_err(storage)?;
    txn.open_table(BY_WORKSPACE).map_err(storage)?;
    txn.commit().map_err(storage)?;
    Ok(())
}

/// The writer thread: gathers batches and commits each in one transaction.
///
/// Returns when every sender is gone and the queue is drained.
fn writer_loop(
    db: &Database,
    queue: &mpsc::Receiver<Job>,
    gc: GroupCommit,
    commits: &AtomicU64,
    expected: &AtomicUsize,
    spill: &Spill,
) {
    let mut retry = Retry::default();
    let max_batch = gc.max_batch.max(1);
    let mut batch = Vec::with_capacity(max_batch.min(4096));
    // Blocks for the first record of each batch; ends when the channel closes.
    while let Ok(first) = queue.recv() {
        batch.push(first);
        let started = Instant::now();
        // `None` when `max_delay` is too large to add: wait without a deadline.
        let deadline = started.checked_add(gc.max_delay);
        while batch.len() < max_batch {
            let next = match deadline {
                None => queue.recv().ok(),
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => queue.recv_timeout(left).ok(),
                    _ => queue.try_recv().ok(),
                },
            };
            match next {
                Some(job) => batch.push(job),
                None => break,
            }
        }
        // Runs still executing will send their records soon: a short wait
        // lets them share this commit instead of paying for the next one.
        // `None` when `max_linger` is too large to add: linger without a deadline.
        let linger_end = started.checked_add(gc.max_linger);
        while batch.len() < max_batch && expected.load(Ordering::Acquire) > 0 {
            let left = match linger_end {
                None => std::time::Duration::MAX,
                Some(end) => match end.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
                    Some(left) => left,
                    None => break,
                },
            };
            // Wake now and then: an announcement may be withdrawn without a record.
            match queue.recv_timeout(left.min(std::time::Duration::from_micros(100))) {
                Ok(job) => batch.push(job),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        retry.held(db, spill);
        commit_batch(db, &mut batch, commits, spill);
    }
    tracing::debug!("run store writer stopped");
}

/// When the writer last tried to move held records into redb.
#[derive(Default)]
struct Retry {
    last: Option<Instant>,
}

impl Retry {
    /// At most once a second while records are held: commits them to redb
    /// and empties the holding file. A failure leaves them held.
    fn held(&mut self, db: &Database, spill: &Spill) {
        if spill.held() == 0 || self.last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
            return;
        }
        self.last = Some(Instant::now());
        match spill.drain(|entries| import(db, entries)) {
            Ok(n) => tracing::info!(records = n, "held runs committed to the run store"),
            Err(DrainError::Import(error)) => {
                tracing::warn!(held = spill.held(), %error, "held runs still cannot be committed");
            }
            Err(DrainError::Io(error)) => tracing::warn!(held = spill.held(), %error, "reading the held runs failed"),
        }
    }
}

/// Stores `e` and its index entry unless a record with its id is stored;
/// returns whether it did (records are write-once).
fn insert_new(
    runs: &mut redb::Table<'_, u128, &[u8]>,
    index: &mut redb::Table<'_, (&str, u128), &str>,
    e: &Entry,
) -> Result<bool, redb::Error> {
    if runs.get(e.id)?.is_some() {
        return Ok(false);
    }
    runs.insert(e.id, e.bytes.as_slice())?;
    index.insert((e.workspace.as_str(), e.id), e.status)?;
    Ok(true)
}

/// Commits `entries` in one durable transaction, skipping ids already
/// stored (an earlier import that was not followed by the truncation).
fn import(db: &Database, entries: &[Entry]) -> Result<(), RunStoreError> {
    let txn = begin_durable_write(db).map_err(storage)?;
    {
        let mut runs = txn.open_table(RUNS).map_err(storage)?;
        let mut index = txn.open_table(BY_WORKSPACE).map_err(storage)?;
        for e in entries {
            insert_new(&mut runs, &mut index, e).map_err(storage)?;
        }
    }
    txn.commit().map_err(storage)
}

/// Writes `batch` in one transaction, commits, then acks every caller, and
/// leaves `batch` empty. Never panics on a redb error.
///
/// When the commit fails, the batch's records go to the holding file
/// ([`Spill`]) and are acknowledged once it is synced: they are on disk,
/// and reach redb later. Only when that fails too does each caller get
/// [`RunStoreError::Commit`].
fn commit_batch(db: &Database, batch: &mut Vec<Job>, commits: &AtomicU64, spill: &Spill) {
    let started = Instant::now();
    let size = batch.len();
    match write_batch(db, batch) {
        Ok(outcomes) => {
            commits.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(records = size, elapsed_us = started.elapsed().as_micros() as u64, "run batch committed");
            for (job, outcome) in batch.drain(..).zip(outcomes) {
                job.ack.send(outcome);
            }
        }
        Err(error) => {
            let entries: Vec<&Entry> = batch.iter().filter_map(|j| j.entry.as_ref()).collect();
            match spill.append(&entries) {
                Ok(()) => {
                    tracing::error!(
                        records = entries.len(),
                        held = spill.held(),
                        path = %spill.path().display(),
                        %error,
                        "run batch commit failed; its records are held on disk and committed when the run store accepts writes again"
                    );
                    for job in batch.drain(..) {
                        job.ack.send(Ok(()));
                    }
                }
                Err(spill_error) => {
                    tracing::error!(records = size, %error, %spill_error, "run batch commit failed and its records could not be held; they are not recorded");
                    let error = Arc::new(error);
                    for job in batch.drain(..) {
                        job.ack.send(Err(RunStoreError::Commit(Arc::clone(&error))));
                    }
                }
            }
        }
    }
}

/// The transaction itself: one outcome per job, in order, valid only if the
/// whole function returns `Ok` (the commit succeeded).
fn write_batch(db: &Database, batch: &[Job]) -> Result<Vec<Outcome>, redb::Error> {
    let txn = begin_durable_write(db)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    {
        let mut runs = txn.open_table(RUNS)?;
        let mut index = txn.open_table(BY_WORKSPACE)?;
        for job in batch {
            let Some(entry) = &job.entry else {
                outcomes.push(Ok(()));
                continue;
            };
            // Records are write-once; this also catches a repeat within the batch.
            if insert_new(&mut runs, &mut index, entry)? {
                outcomes.push(Ok(()));
            } else {
                outcomes.push(Err(RunStoreError::AlreadyExists(RunId::from_u128(entry.id))));
            }
        }
    }
    txn.commit()?;
    Ok(outcomes)
}
