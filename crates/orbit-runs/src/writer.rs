//! The run store's writer thread: the only thread that commits to redb.
//!
//! Each batch of records (group commit) is staged in one redb write
//! transaction, appended to the write-ahead log and synced, then committed
//! to redb without durability, and only then acknowledged (see
//! [`crate::wal`] for the invariants). A checkpoint (a durable two-phase
//! redb commit, then emptying the log) follows when the log passes
//! [`GroupCommit::checkpoint_bytes`], when it has held records for
//! [`GroupCommit::checkpoint_interval`], before every removal, and when
//! the store closes. A failed checkpoint is retried after another
//! interval, not at once.
//!
//! With the log off ([`GroupCommit::write_ahead_log`]), or when it cannot
//! be written, each batch is one durable two-phase redb commit instead.
//! When redb refuses a batch, its records go to the holding file
//! ([`crate::spill`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable};
use tokio::sync::oneshot;

use crate::error::RunStoreError;
use crate::frame::Entry;
use crate::spill::{DrainError, Spill};
use crate::store::{BY_WORKSPACE, RUNS, storage};
use crate::types::{GroupCommit, RunId};
use crate::wal::Wal;

/// The outcome of one record, as delivered to its caller.
pub(crate) type Outcome = Result<(), RunStoreError>;

/// Where the writer sends a job's outcome.
pub(crate) enum Ack {
    /// A caller awaiting in async code.
    Async(oneshot::Sender<Outcome>),
    /// A caller blocked in [`crate::RunStore::record_blocking`].
    Blocking(mpsc::SyncSender<Outcome>),
    /// Nobody waits ([`crate::ExpectedRecord::queue`]); a failure is only logged.
    None,
}

impl Ack {
    pub(crate) fn send(self, outcome: Outcome) {
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

/// What a job asks of the writer.
pub(crate) enum Work {
    /// Store this record (already encoded by the caller).
    Record(Entry),
    /// Ack once everything queued before is committed.
    Barrier,
    /// Make everything committed so far durable in redb itself and empty
    /// the write-ahead log, then ack.
    Checkpoint,
    /// Remove these runs of one workspace in one durable commit
    /// (retention), and send how many were there on `done` (the job's
    /// `ack` is unused).
    Remove { workspace: String, ids: Vec<u128>, done: mpsc::SyncSender<Result<u64, RunStoreError>> },
}

/// One job on its way to the writer.
pub(crate) struct Job {
    pub(crate) work: Work,
    pub(crate) ack: Ack,
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub(crate) db: Arc<Database>,
    pub(crate) gc: GroupCommit,
    pub(crate) commits: Arc<AtomicU64>,
    /// Records announced with [`crate::RunStore::expect_record`] and not yet queued.
    pub(crate) expected: Arc<AtomicUsize>,
    pub(crate) spill: Arc<Spill>,
    /// `None` when the log is off.
    pub(crate) wal: Option<Wal>,
    /// When a checkpoint was last tried (or the store opened).
    pub(crate) last_checkpoint: Instant,
    /// The log holds records whose redb commit failed and that the holding
    /// file did not take either (their callers got an error). Nothing more
    /// is appended to it and no run is removed until a checkpoint has read
    /// them back from the log and imported them (or the next open has).
    pub(crate) keep_log: bool,
    /// After a failed checkpoint: none falls due before this.
    pub(crate) checkpoint_retry_at: Option<Instant>,
    /// When the writer last tried to move held records into redb.
    pub(crate) last_retry: Option<Instant>,
}

impl Writer {
    /// Gathers batches and commits each; returns when every sender is gone
    /// and the queue is drained, after a last checkpoint.
    pub(crate) fn run(mut self, queue: &mpsc::Receiver<Job>) {
        let max_batch = self.gc.max_batch.max(1);
        let mut batch = Vec::with_capacity(max_batch.min(4096));
        loop {
            // While the log holds records, wake for a checkpoint when idle.
            let first = match self.wal.as_ref().filter(|w| w.records() > 0 || w.poisoned()) {
                Some(_) => match queue.recv_timeout(self.until_checkpoint()) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.checkpoint_if_due();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match queue.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            batch.push(first);
            self.gather(queue, &mut batch, max_batch);
            self.retry_held();
            self.commit_batch(&mut batch);
            self.checkpoint_if_due();
        }
        if let Err(error) = self.checkpoint() {
            tracing::error!(%error, "run store checkpoint at close failed; the write-ahead log keeps its records for the next open");
        }
        tracing::debug!("run store writer stopped");
    }

    /// Adds to `batch` what arrives within [`GroupCommit::max_delay`], then
    /// lingers up to [`GroupCommit::max_linger`] for announced records.
    fn gather(&self, queue: &mpsc::Receiver<Job>, batch: &mut Vec<Job>, max_batch: usize) {
        let gc = self.gc;
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
        while batch.len() < max_batch && self.expected.load(Ordering::Acquire) > 0 {
            let left = match linger_end {
                None => Duration::MAX,
                Some(end) => match end.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
                    Some(left) => left,
                    None => break,
                },
            };
            // Wake now and then: an announcement may be withdrawn without a record.
            match queue.recv_timeout(left.min(Duration::from_micros(100))) {
                Ok(job) => batch.push(job),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    /// At most once a second while records are held: commits them to redb
    /// and empties the holding file. A failure leaves them held.
    fn retry_held(&mut self) {
        if self.spill.held() == 0 || self.last_retry.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        self.last_retry = Some(Instant::now());
        match self.spill.drain(|entries| import(&self.db, entries)) {
            Ok(n) => tracing::info!(records = n, "held runs committed to the run store"),
            Err(DrainError::Import(error)) => {
                tracing::warn!(held = self.spill.held(), %error, "held runs still cannot be committed");
            }
            Err(DrainError::Io(error)) => {
                tracing::warn!(held = self.spill.held(), %error, "reading the held runs failed")
            }
        }
    }

    /// Commits the records of `batch`, acks every job in order (running
    /// checkpoints and removals where they stand), and leaves `batch`
    /// empty. Never panics on a redb error.
    ///
    /// When redb refuses the batch, its records go to the holding file and
    /// are acknowledged once it is synced; only when that fails too does
    /// each caller get [`RunStoreError::Commit`].
    fn commit_batch(&mut self, batch: &mut Vec<Job>) {
        let started = Instant::now();
        let size = batch.len();
        let outcomes = match self.write_batch(batch) {
            Ok((outcomes, committed)) => {
                if committed {
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        records = size,
                        elapsed_us = started.elapsed().as_micros() as u64,
                        "run batch committed"
                    );
                }
                outcomes
            }
            Err(error) => {
                let entries: Vec<&Entry> = records(batch).collect();
                match self.spill.append(&entries) {
                    Ok(()) => {
                        tracing::error!(
                            records = entries.len(),
                            held = self.spill.held(),
                            path = %self.spill.path().display(),
                            %error,
                            "run batch commit failed; its records are held on disk and committed when the run store accepts writes again"
                        );
                        batch.iter().map(|_| Ok(())).collect()
                    }
                    Err(spill_error) => {
                        tracing::error!(records = size, %error, %spill_error, "run batch commit failed and its records could not be held; they are not recorded");
                        let error = Arc::new(error);
                        batch.iter().map(|_| Err(RunStoreError::Commit(Arc::clone(&error)))).collect()
                    }
                }
            }
        };
        for (job, outcome) in batch.drain(..).zip(outcomes) {
            match job.work {
                Work::Record(_) | Work::Barrier => job.ack.send(outcome),
                Work::Checkpoint => job.ack.send(self.checkpoint()),
                // Its caller waits on `done`, for the removal's own result.
                Work::Remove { workspace, ids, done } => {
                    let _ = done.send(self.remove(&workspace, &ids));
                }
            }
        }
    }

    /// Stages the batch's records in one transaction, logs the new ones,
    /// and commits: one outcome per job, in order, and whether redb
    /// committed. `Err` only when nothing of the batch is on disk.
    fn write_batch(&mut self, batch: &[Job]) -> Result<(Vec<Outcome>, bool), redb::Error> {
        let mut txn = self.db.begin_write()?;
        let logging = !self.keep_log && self.wal.as_ref().is_some_and(|w| !w.poisoned());
        if logging {
            txn.set_durability(Durability::None)?;
        } else {
            txn.set_durability(Durability::Immediate)?;
            txn.set_two_phase_commit(true);
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut accepted: Vec<&Entry> = Vec::with_capacity(batch.len());
        {
            let mut runs = txn.open_table(RUNS)?;
            let mut index = txn.open_table(BY_WORKSPACE)?;
            for job in batch {
                let Work::Record(entry) = &job.work else {
                    outcomes.push(Ok(()));
                    continue;
                };
                // Records are write-once; this also catches a repeat within the batch.
                if insert_new(&mut runs, &mut index, entry)? {
                    accepted.push(entry);
                    outcomes.push(Ok(()));
                } else {
                    outcomes.push(Err(RunStoreError::AlreadyExists(RunId::from_u128(entry.id))));
                }
            }
        }
        let mut logged = false;
        if let Some(wal) = self.wal.as_mut().filter(|_| logging && !accepted.is_empty()) {
            match wal.append(&accepted) {
                Ok(()) => logged = true,
                Err(error) => {
                    // The batch is still made durable, by redb itself.
                    tracing::warn!(path = %wal.path().display(), %error, "appending to the run store's write-ahead log failed; committing durably instead");
                    txn.set_durability(Durability::Immediate)?;
                    txn.set_two_phase_commit(true);
                }
            }
        }
        match txn.commit() {
            Ok(()) => Ok((outcomes, true)),
            Err(error) if logged => {
                // The records are on disk in the log. They are acknowledged
                // once held too, so that `get` finds them before the next
                // open imports them.
                if let Err(spill_error) = self.spill.append(&accepted) {
                    // Not acknowledged: reads would not find them. The log
                    // keeps them, so the next open may still import them.
                    self.keep_log = true;
                    tracing::error!(%error, %spill_error, "run batch commit failed after its records were logged, and they could not be held");
                    let error = Arc::new(redb::Error::from(error));
                    let failed = outcomes
                        .into_iter()
                        .map(|o| o.and_then(|()| Err(RunStoreError::Commit(Arc::clone(&error)))))
                        .collect();
                    return Ok((failed, false));
                }
                tracing::error!(%error, held = self.spill.held(), "run batch commit failed after its records were logged; they are held");
                Ok((outcomes, false))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// When a failed checkpoint is tried again: after an interval, and at
    /// least a second, so a failing disk never makes the writer spin.
    fn retry_at(&self) -> Instant {
        let wait = self.gc.checkpoint_interval.max(Duration::from_secs(1));
        self.last_checkpoint.checked_add(wait).unwrap_or(self.last_checkpoint)
    }

    /// How long until the log is due for a checkpoint by age, or for the
    /// retry of a failed one.
    fn until_checkpoint(&self) -> Duration {
        let next = match self.checkpoint_retry_at {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => self.gc.checkpoint_interval.saturating_sub(self.last_checkpoint.elapsed()),
        };
        next.max(Duration::from_millis(1))
    }

    /// A checkpoint when the log is over its size or age, unless one failed
    /// less than an interval ago.
    fn checkpoint_if_due(&mut self) {
        let Some(wal) = &self.wal else { return };
        let due = (wal.records() > 0 || wal.poisoned())
            && (wal.len() >= self.gc.checkpoint_bytes || self.last_checkpoint.elapsed() >= self.gc.checkpoint_interval)
            && self.checkpoint_retry_at.is_none_or(|at| Instant::now() >= at);
        if due && let Err(error) = self.checkpoint() {
            tracing::warn!(%error, "run store checkpoint failed; the write-ahead log keeps its records");
        }
    }

    /// Makes every commit so far durable with one durable, two-phase redb
    /// commit, then empties the log. After a failure, no checkpoint that
    /// falls due is tried for an interval.
    fn checkpoint(&mut self) -> Result<(), RunStoreError> {
        if self.wal.as_ref().is_none_or(|w| w.records() == 0 && !w.poisoned()) {
            return Ok(());
        }
        let done = match (self.wal.as_mut(), self.keep_log) {
            // What redb does not have is read back from the log.
            (Some(wal), true) => wal
                .read_back()
                .map_err(|e| storage(redb::StorageError::Io(e)))
                .and_then(|entries| import(&self.db, &entries)),
            _ => begin_durable_write(&self.db).and_then(|txn| Ok(txn.commit()?)).map_err(storage),
        };
        self.last_checkpoint = Instant::now();
        if let Err(error) = done {
            self.checkpoint_retry_at = Some(self.retry_at());
            return Err(error);
        }
        self.keep_log = false;
        self.checkpoint_retry_at = None;
        self.empty_log();
        Ok(())
    }

    /// After a durable redb commit, which holds every record in the log:
    /// empties the log.
    fn empty_log(&mut self) {
        let retry_at = self.retry_at();
        if let Some(wal) = &mut self.wal
            && (wal.records() > 0 || wal.poisoned())
            && let Err(error) = wal.reset()
        {
            // Its records are in redb; the log takes no append until a
            // later reset succeeds, so batches commit durably meanwhile.
            self.checkpoint_retry_at = Some(retry_at);
            tracing::warn!(path = %wal.path().display(), %error, "emptying the run store's write-ahead log failed");
        }
    }

    /// Removes `ids` of `ws` in one durable transaction; how many were
    /// there. The log is emptied by a checkpoint first, and nothing is
    /// removed unless that succeeded: a run removed while the log still
    /// held it would be imported again by the open after a crash.
    ///
    /// Runs waiting in the holding file stop a removal too: they are in
    /// redb already when its removal after an import failed, and would come
    /// back from it.
    fn remove(&mut self, ws: &str, ids: &[u128]) -> Result<u64, RunStoreError> {
        self.checkpoint()?;
        if let Some(wal) = &self.wal
            && (wal.records() > 0 || wal.poisoned() || self.keep_log)
        {
            return Err(RunStoreError::LogNotEmptied { path: wal.path().to_path_buf() });
        }
        if self.spill.held() > 0 {
            return Err(RunStoreError::LogNotEmptied { path: self.spill.path().to_path_buf() });
        }
        let txn = begin_durable_write(&self.db).map_err(storage)?;
        let mut removed = 0;
        {
            let mut runs = txn.open_table(RUNS).map_err(storage)?;
            let mut index = txn.open_table(BY_WORKSPACE).map_err(storage)?;
            for &id in ids {
                index.remove((ws, id)).map_err(storage)?;
                if runs.remove(id).map_err(storage)?.is_some() {
                    removed += 1;
                }
            }
        }
        txn.commit().map_err(storage)?;
        Ok(removed)
    }
}

/// The records of `batch`.
fn records(batch: &[Job]) -> impl Iterator<Item = &Entry> {
    batch.iter().filter_map(|j| match &j.work {
        Work::Record(e) => Some(e),
        _ => None,
    })
}

/// Makes a write transaction that is durable when `commit` returns and that
/// uses two-phase commit, so a crash cannot leave a partial commit whose
/// checksum was forged by guest-controlled bytes (see redb's design notes).
pub(crate) fn begin_durable_write(db: &Database) -> Result<redb::WriteTransaction, redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.set_two_phase_commit(true);
    Ok(txn)
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
/// stored (an earlier import that was not followed by emptying its log).
pub(crate) fn import(db: &Database, entries: &[Entry]) -> Result<(), RunStoreError> {
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
