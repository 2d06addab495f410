//! The run store's writer: group commit, the write-ahead log, and redb.
//!
//! Each batch of records (group commit) is checked against what is stored
//! (records are write-once), appended to the write-ahead log and synced,
//! and then acknowledged; its records wait in [`Logged`], where reads find
//! them, until the writer thread has applied them to redb in a commit
//! without durability (see [`crate::wal`] and [`crate::logged`] for the
//! invariants). So a caller waits for one append and one `fdatasync`, not
//! for redb's commit. A checkpoint (applying what waits, in one durable
//! two-phase redb commit, then emptying the log) follows when the log passes
//! [`GroupCommit::checkpoint_bytes`], when it has held records for
//! [`GroupCommit::checkpoint_interval`], before every removal, and when
//! the store closes. A failed checkpoint is retried after another
//! interval, not at once. While redb is open for writing, a checkpoint
//! that falls due starts as a background flush
//! ([`GroupCommit::background_flush`]): one durable redb commit on a thread
//! of its own, without the writer's lock, while batches are still logged
//! and acknowledged (and wait in [`Logged`], unapplied, since redb takes one
//! write transaction at a time). The checkpoint proper follows under the
//! lock as before, with only the records logged meanwhile left to write.
//! While redb is read-only (a store reopened after a clean close), nothing
//! is applied, the log's age counts from this process's first record, and
//! the store closes without a checkpoint while the log is under
//! [`kept_log_bytes`] (see [`crate::RunStore`]).
//!
//! With the log off ([`GroupCommit::write_ahead_log`]), or when it cannot
//! be written, each batch is one durable two-phase redb commit instead.
//!
//! The writer's state sits behind a mutex. A lone caller (no other record
//! announced or queued) whose writer is idle commits its own record on its
//! own thread, as the leader of a batch of one ([`Writer::lead`]): the two
//! cross-thread wake-ups of the queue (caller to writer, writer to caller)
//! cost more than the commit's CPU on these machines. Everything else goes
//! through the queue to the writer thread, which batches; records that
//! nobody awaits ([`crate::ExpectedRecord::queue`]) through the inbox
//! ([`crate::inbox`]), which does not wake a writer that had work lately.
//! When the log cannot take a batch and redb refuses its durable commit
//! too, its records go to the holding file ([`crate::spill`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

use orbit_workspace::ReadMostlyDatabase;
use redb::{Database, Durability, ReadableTable};
use tokio::sync::oneshot;

use crate::error::RunStoreError;
use crate::frame::Entry;
use crate::inbox::Inbox;
use crate::logged::Logged;
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
    /// A leader's record is waiting in [`Logged`]: wake up, apply it to
    /// redb, and schedule the log's checkpoint (or run it, when the log
    /// has grown past its size). Not counted in [`Writer::queued`]; it
    /// carries no record.
    Wake,
}

/// One job on its way to the writer.
pub(crate) struct Job {
    pub(crate) work: Work,
    pub(crate) ack: Ack,
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub(crate) db: Arc<ReadMostlyDatabase>,
    pub(crate) gc: GroupCommit,
    pub(crate) commits: Arc<AtomicU64>,
    /// Records announced with [`crate::RunStore::expect_record`] and not yet queued.
    pub(crate) expected: Arc<AtomicUsize>,
    pub(crate) spill: Arc<Spill>,
    /// `None` when the log is off.
    pub(crate) wal: Option<Wal>,
    /// Records of the synced log that redb does not have yet.
    pub(crate) logged: Arc<Logged>,
    /// When a checkpoint was last tried (or the store opened, or, while
    /// redb is read-only, this process first appended to the log).
    pub(crate) last_checkpoint: Instant,
    /// Whether this process has appended to the log. While redb is
    /// read-only, the log's age counts only from then: records read back
    /// from earlier processes alone never make a process open redb for
    /// writing (they are checkpointed by size, or with this process's own).
    pub(crate) appended: bool,
    /// After a failed checkpoint: none falls due before this.
    pub(crate) checkpoint_retry_at: Option<Instant>,
    /// When the writer last tried to move held records into redb.
    pub(crate) last_retry: Option<Instant>,
    /// Jobs sent to the queue and not yet handled by the writer thread
    /// (shared with every sender). A leader only commits when it is zero,
    /// so a record never overtakes one queued before it.
    pub(crate) queued: Arc<AtomicUsize>,
    /// A durable redb commit running on a thread of its own ahead of a
    /// checkpoint ([`GroupCommit::background_flush`]), which returns the
    /// records of `logged` it committed. While it runs nothing is applied:
    /// redb takes one write transaction at a time, and the writer thread
    /// must not wait for this one.
    pub(crate) flushing: Option<Flush>,
    /// Holds background flushes before their commit, and counts them.
    #[cfg(test)]
    pub(crate) hold_flush: Arc<FlushHold>,
}

/// A test's hold on background flushes.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct FlushHold {
    /// While `true`, a flush waits before its commit.
    pub(crate) held: Mutex<bool>,
    pub(crate) released: std::sync::Condvar,
    /// Flushes started (counted before the wait).
    pub(crate) started: AtomicU64,
}

#[cfg(test)]
impl FlushHold {
    /// Lets waiting and later flushes commit.
    pub(crate) fn release(&self) {
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.released.notify_all();
    }
}

/// A background flush: its thread returns the waiting records it committed
/// durably.
pub(crate) type Flush = std::thread::JoinHandle<Result<Vec<Arc<Entry>>, RunStoreError>>;

/// Locks the writer's state. A panic while it was held (there is none on
/// any error path) leaves at worst an aborted transaction and unacknowledged
/// records in the log, which the next open imports; the state stays usable.
pub(crate) fn lock(state: &Mutex<Writer>) -> MutexGuard<'_, Writer> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writer thread: gathers batches from `queue` and `inbox` and commits
/// each; returns when every sender is gone and both are drained, after a
/// last checkpoint. It holds the state's lock while it gathers and
/// handles a batch, never while it waits for the first job or applies
/// logged records, so an idle writer can be led past. For [`NAPS`] waits
/// after its last job it naps ([`NAP`]) rather than sleeps, so records
/// queued meanwhile reach it through `inbox` without a wake-up (see
/// [`crate::inbox`]).
pub(crate) fn run(state: &Mutex<Writer>, queue: &mpsc::Receiver<Job>, inbox: &Inbox) {
    let (max_batch, queued, db, logged) = {
        let w = lock(state);
        (w.gc.max_batch.max(1), Arc::clone(&w.queued), Arc::clone(&w.db), Arc::clone(&w.logged))
    };
    let mut batch = Vec::with_capacity(max_batch.min(4096));
    // When what waits in `logged` is applied next: `APPLY_DELAY` after the
    // writer first saw it waiting, or `APPLY_RETRY` after a failed apply (a
    // failing disk must not make the writer spin; the records stay in the
    // log and in `logged` meanwhile).
    let mut apply_at: Option<Instant> = None;
    // Waits since the last job; past `NAPS`, the writer sleeps. A new
    // writer sleeps until its first job: naps pay off only while jobs come,
    // and ten timed wake-ups at start cost a short-lived process (an
    // `orbit run`) CPU it needs for the run.
    let mut naps = NAPS;
    loop {
        // Nothing is applied while a flush holds redb's write transaction
        // (tens of milliseconds once a second under load); the records
        // wait in `logged` meanwhile.
        let (flushing, idle_wait) = {
            let w = lock(state);
            (w.flushing.is_some(), w.idle_wait())
        };
        // Without the state's lock, so a lone caller can log its next
        // record meanwhile.
        if !flushing && apply_at.is_some_and(|at| Instant::now() >= at) {
            apply_at = apply_logged(&db, &logged).err().map(|error| {
                tracing::warn!(waiting = logged.len(), %error, "applying logged runs to the run store failed; they stay in the write-ahead log");
                Instant::now() + APPLY_RETRY
            });
        }
        // Records that arrived since (a lone caller sends no wake-up while
        // the map is not empty) are due like any others. While redb is
        // read-only, they wait for the next checkpoint instead: opening it
        // for writing costs five syncs, which a short-lived process (an
        // `orbit run`) need not pay at all.
        if logged.is_empty() || !db.is_writable() {
            apply_at = None;
        } else if apply_at.is_none() {
            apply_at = Some(Instant::now() + APPLY_DELAY);
        }
        // While the log holds records, wake for a checkpoint when idle; while
        // records wait to be applied, wake when they are due.
        let mut wait = idle_wait;
        if let Some(at) = apply_at.filter(|_| !flushing) {
            let due = at.saturating_duration_since(Instant::now());
            wait = Some(wait.map_or(due, |w| w.min(due)));
        }
        // Queued records waiting in the inbox need no wait at all. Otherwise
        // nap while jobs came lately; then announce the sleep, so that the
        // next queued record wakes the writer, and look once more.
        let napping = naps < NAPS;
        if napping {
            wait = Some(wait.map_or(NAP, |w| w.min(NAP)));
        }
        if !inbox.is_empty() || (!napping && !inbox.sleep()) {
            wait = Some(Duration::ZERO);
        }
        let first = match wait {
            Some(wait) if wait.is_zero() => match queue.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => break,
            },
            Some(wait) => match queue.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match queue.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            },
        };
        if !napping {
            inbox.awake();
        }
        let mut writer = lock(state);
        batch.extend(first);
        inbox.take_into(&mut batch, max_batch);
        if batch.iter().any(|job| !matches!(job.work, Work::Wake)) {
            naps = 0;
            writer.gather(queue, inbox, &mut batch, max_batch);
            writer.retry_held();
            writer.commit_batch(&mut batch, &queued);
        } else {
            // Wake-ups alone (nobody awaits them).
            batch.clear();
            naps = naps.saturating_add(1);
        }
        writer.checkpoint_if_due();
    }
    let mut writer = lock(state);
    // Queued records pushed before the last sender went.
    while inbox.take_into(&mut batch, max_batch) > 0 {
        writer.commit_batch(&mut batch, &queued);
    }
    if writer.keeps_log_at_close() {
        tracing::debug!(records = writer.logged.len(), "the write-ahead log keeps its runs for the next open");
    } else if let Err(error) = writer.checkpoint() {
        tracing::error!(%error, "run store checkpoint at close failed; the write-ahead log keeps its records for the next open");
    }
    tracing::debug!("run store writer stopped");
}

impl Writer {
    /// Whether the store closes without a checkpoint: redb was never opened
    /// for writing, and the log is healthy and under [`kept_log_bytes`]
    /// (64 KiB). Its records are on disk already;
    /// the next open reads them back (see [`crate::store`]'s `replay`).
    fn keeps_log_at_close(&self) -> bool {
        !self.db.is_writable()
            && self.spill.held() == 0
            && self.wal.as_ref().is_some_and(|w| !w.poisoned() && w.len() < kept_log_bytes(self.gc))
    }

    /// How long the idle writer thread may sleep: until the log's next
    /// checkpoint while it holds records, otherwise until a job arrives
    /// (`None`).
    fn idle_wait(&self) -> Option<Duration> {
        if self.flushing.is_some() {
            // To see the flush end, and follow it with the checkpoint.
            return Some(FLUSH_POLL);
        }
        self.wal
            .as_ref()
            .filter(|w| w.poisoned() || (w.records() > 0 && self.log_ages()))
            .map(|_| self.until_checkpoint())
    }

    /// Whether the log's age makes a checkpoint due (see
    /// [`appended`](Self::appended)).
    fn log_ages(&self) -> bool {
        self.appended || self.db.is_writable()
    }

    /// Whether a lone caller may commit its own record: the log is taking
    /// appends, and nothing waits for the writer thread's care (held
    /// records, a failed checkpoint, jobs in the queue).
    pub(crate) fn can_lead(&self) -> bool {
        self.queued.load(Ordering::Acquire) == 0
            && self.checkpoint_retry_at.is_none()
            && self.spill.held() == 0
            && self.logging()
    }

    /// Whether batches go to the log: it is on and taking appends, and
    /// the records waiting to be applied are under their caps
    /// ([`Logged::full`]).
    fn logging(&self) -> bool {
        self.wal.as_ref().is_some_and(|w| !w.poisoned()) && !self.logged.full()
    }

    /// Commits `entry` on the caller's thread, as a batch of one, exactly as
    /// the writer thread would; call only when [`can_lead`](Self::can_lead).
    /// Returns its outcome, and whether the writer thread must be woken
    /// ([`Work::Wake`]): it sleeps while nothing waits to be applied, and
    /// this record ends that; or the log is due for a checkpoint, which the
    /// caller does not wait for.
    pub(crate) fn lead(&mut self, entry: Entry) -> (Outcome, bool) {
        let was_empty = self.logged.is_empty();
        let aged = self.log_ages();
        let batch = [Job { work: Work::Record(entry), ack: Ack::None }];
        let outcome = self.commit_records(&batch).pop().unwrap_or(Ok(()));
        // The writer thread applies what a leader logged; it sleeps while
        // nothing waits, so the record that ends the wait wakes it. It also
        // sleeps without a deadline while only records read back from
        // earlier processes wait, so this process's first starts the clock.
        let wake = (was_empty && !self.logged.is_empty())
            || (!aged && self.log_ages())
            || self.wal.as_ref().is_some_and(|w| w.len() >= self.gc.checkpoint_bytes || w.poisoned())
            || self.spill.held() > 0;
        (outcome, wake)
    }

    /// Adds to `batch` what arrives within [`GroupCommit::max_delay`], then
    /// lingers up to [`GroupCommit::max_linger`] for announced records;
    /// queued records in `inbox` join it too.
    fn gather(&self, queue: &mpsc::Receiver<Job>, inbox: &Inbox, batch: &mut Vec<Job>, max_batch: usize) {
        let gc = self.gc;
        let started = Instant::now();
        // `None` when `max_delay` is too large to add: wait without a deadline.
        let deadline = started.checked_add(gc.max_delay);
        while batch.len() < max_batch {
            inbox.take_into(batch, max_batch);
            if batch.len() >= max_batch {
                break;
            }
            let next = match deadline.map(|d| d.saturating_duration_since(Instant::now())) {
                Some(left) if left.is_zero() => queue.try_recv().ok(),
                // In naps, so that queued records, which arrive in `inbox`
                // without a wake-up, join the batch while it waits.
                left => match queue.recv_timeout(left.map_or(NAP, |l| l.min(NAP))) {
                    Ok(job) => Some(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
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
            // Wake now and then: an announcement may be withdrawn without a
            // record, and a queued record arrives in `inbox` unannounced.
            match queue.recv_timeout(left.min(Duration::from_micros(100))) {
                Ok(job) => batch.push(job),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            inbox.take_into(batch, max_batch);
        }
        inbox.take_into(batch, max_batch);
    }

    /// At most once a second while records are held: commits them to redb
    /// and empties the holding file. A failure leaves them held.
    fn retry_held(&mut self) {
        // Its durable commit would wait for the flush's with the lock held.
        if self.spill.held() == 0
            || self.flushing.is_some()
            || self.last_retry.is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
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
    /// When the batch cannot be logged and redb refuses its durable commit,
    /// its records go to the holding file and are acknowledged once it is
    /// synced; only when that fails too does each caller get
    /// [`RunStoreError::Commit`].
    fn commit_batch(&mut self, batch: &mut Vec<Job>, queued: &AtomicUsize) {
        let outcomes = self.commit_records(batch);
        // Before the acknowledgements, so a caller acknowledged here that
        // calls again at once may lead (this lock is still held, so none
        // can lead before everything above is committed).
        queued.fetch_sub(batch.iter().filter(|j| !matches!(j.work, Work::Wake)).count(), Ordering::AcqRel);
        for (job, outcome) in batch.drain(..).zip(outcomes) {
            match job.work {
                Work::Record(_) | Work::Barrier | Work::Wake => job.ack.send(outcome),
                Work::Checkpoint => job.ack.send(self.checkpoint()),
                // Its caller waits on `done`, for the removal's own result.
                Work::Remove { workspace, ids, done } => {
                    let _ = done.send(self.remove(&workspace, &ids));
                }
            }
        }
    }

    /// Commits the records of `batch`: one outcome per job, in order.
    fn commit_records(&mut self, batch: &[Job]) -> Vec<Outcome> {
        let started = Instant::now();
        let size = batch.len();
        match self.write_batch(batch) {
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
                // A repeat of a record waiting in `logged` is refused, not
                // held: held records are imported first at the next open,
                // and it would take the place of the acknowledged original.
                let repeat = |job: &Job| matches!(&job.work, Work::Record(e) if self.logged.contains(e.id));
                let entries: Vec<&Entry> = records(batch).filter(|e| !self.logged.contains(e.id)).collect();
                match self.spill.append(&entries) {
                    Ok(()) => {
                        tracing::error!(
                            records = entries.len(),
                            held = self.spill.held(),
                            path = %self.spill.path().display(),
                            %error,
                            "run batch commit failed; its records are held on disk and committed when the run store accepts writes again"
                        );
                        batch
                            .iter()
                            .map(|job| match &job.work {
                                Work::Record(e) if repeat(job) => {
                                    Err(RunStoreError::AlreadyExists(RunId::from_u128(e.id)))
                                }
                                _ => Ok(()),
                            })
                            .collect()
                    }
                    Err(spill_error) => {
                        tracing::error!(records = size, %error, %spill_error, "run batch commit failed and its records could not be held; they are not recorded");
                        let error = Arc::new(error);
                        batch.iter().map(|_| Err(RunStoreError::Commit(Arc::clone(&error)))).collect()
                    }
                }
            }
        }
    }

    /// Makes the batch's new records durable: one outcome per job, in
    /// order, and whether a commit happened. `Err` only when nothing of the
    /// batch is on disk.
    ///
    /// While [`logging`](Self::logging), the records are appended to the
    /// log and synced, and wait in [`Logged`] to be applied to redb. When
    /// the append fails, or the log is off or full, the batch is one
    /// durable two-phase redb commit instead.
    fn write_batch(&mut self, batch: &[Job]) -> Result<(Vec<Outcome>, bool), redb::Error> {
        if self.logging() {
            match self.log_batch(batch) {
                Ok(Some(logged)) => return Ok(logged),
                Ok(None) => {}
                // redb cannot even be read; its own commit says what is wrong.
                Err(error) => {
                    tracing::warn!(%error, "checking a run batch against the run store failed; committing durably instead")
                }
            }
        }
        let txn = begin_durable_write(self.db.writable()?)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let mut runs = txn.open_table(RUNS)?;
            let mut index = txn.open_table(BY_WORKSPACE)?;
            for job in batch {
                let Work::Record(entry) = &job.work else {
                    outcomes.push(Ok(()));
                    continue;
                };
                // Records are write-once; this also catches a repeat within the batch.
                if !self.logged.contains(entry.id) && insert_new(&mut runs, &mut index, entry)? {
                    outcomes.push(Ok(()));
                } else {
                    outcomes.push(Err(RunStoreError::AlreadyExists(RunId::from_u128(entry.id))));
                }
            }
        }
        txn.commit()?;
        Ok((outcomes, true))
    }

    /// Appends the batch's new records to the log, syncs it, and adds them
    /// to [`Logged`]. `None` when the append failed (nothing is
    /// acknowledged; the caller commits durably instead).
    fn log_batch(&mut self, batch: &[Job]) -> Result<Option<(Vec<Outcome>, bool)>, redb::Error> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut accepted: Vec<&Entry> = Vec::with_capacity(batch.len());
        {
            // Records are write-once: stored, waiting to be applied, or
            // earlier in this batch. `logged` is asked before redb's
            // snapshot is taken: the writer thread's apply, which runs
            // without this lock, drops a record from `logged` only after
            // its commit, so a record missed there is in the snapshot.
            let mut ids = std::collections::HashSet::with_capacity(batch.len());
            let fresh: Vec<bool> = batch
                .iter()
                .map(|job| match &job.work {
                    Work::Record(entry) => !self.logged.contains(entry.id) && ids.insert(entry.id),
                    _ => false,
                })
                .collect();
            let txn = self.db.read()?;
            let runs = txn.open_table(RUNS)?;
            for (job, fresh) in batch.iter().zip(fresh) {
                let Work::Record(entry) = &job.work else {
                    outcomes.push(Ok(()));
                    continue;
                };
                let new = fresh && runs.get(entry.id)?.is_none();
                if new {
                    accepted.push(entry);
                    outcomes.push(Ok(()));
                } else {
                    outcomes.push(Err(RunStoreError::AlreadyExists(RunId::from_u128(entry.id))));
                }
            }
        }
        if accepted.is_empty() {
            return Ok(Some((outcomes, false)));
        }
        let Some(wal) = self.wal.as_mut() else { return Ok(None) };
        if let Err(error) = wal.append(&accepted) {
            tracing::warn!(path = %wal.path().display(), %error, "appending to the run store's write-ahead log failed; committing durably instead");
            return Ok(None);
        }
        if !self.appended {
            self.appended = true;
            if !self.db.is_writable() {
                self.last_checkpoint = Instant::now();
            }
        }
        self.logged.insert(accepted.into_iter().cloned());
        Ok(Some((outcomes, true)))
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
    /// less than an interval ago. While redb is open for writing, it starts
    /// as a background flush ([`GroupCommit::background_flush`]), and the
    /// checkpoint proper follows once that has ended.
    fn checkpoint_if_due(&mut self) {
        if let Some(flush) = self.flushing.take_if(|f| f.is_finished()) {
            // Most of what the non-durable commits wrote is durable now.
            let done = self.end_flush(flush).and_then(|()| self.checkpoint_after(true));
            if let Err(error) = done {
                tracing::warn!(%error, "run store checkpoint failed; the write-ahead log keeps its records");
            }
            return;
        }
        let Some(wal) = &self.wal else { return };
        let due = self.flushing.is_none()
            && (wal.records() > 0 || wal.poisoned())
            && (wal.len() >= self.gc.checkpoint_bytes
                || wal.poisoned()
                || (self.log_ages() && self.last_checkpoint.elapsed() >= self.gc.checkpoint_interval))
            && self.checkpoint_retry_at.is_none_or(|at| Instant::now() >= at);
        if !due {
            return;
        }
        // A log that failed halfway takes no append until the checkpoint
        // empties it: flushing first would only keep batches waiting longer.
        if self.gc.background_flush && self.db.is_writable() && !wal.poisoned() {
            let (db, logged) = (Arc::clone(&self.db), Arc::clone(&self.logged));
            #[cfg(test)]
            let hold = Arc::clone(&self.hold_flush);
            let spawned = std::thread::Builder::new().name("orbit-runs-flush".into()).spawn(move || {
                let waiting = logged.snapshot();
                // After the snapshot, so records logged during the hold are
                // left to the checkpoint proper.
                #[cfg(test)]
                {
                    hold.started.fetch_add(1, Ordering::SeqCst);
                    let held = hold.held.lock().unwrap_or_else(PoisonError::into_inner);
                    drop(hold.released.wait_while(held, |held| *held).unwrap_or_else(PoisonError::into_inner));
                }
                import(&db, waiting.iter().map(|e| &**e))?;
                Ok(waiting)
            });
            match spawned {
                Ok(flush) => {
                    self.flushing = Some(flush);
                    return;
                }
                Err(error) => {
                    tracing::debug!(%error, "no thread for a background flush; checkpointing on the writer's")
                }
            }
        }
        if let Err(error) = self.checkpoint() {
            tracing::warn!(%error, "run store checkpoint failed; the write-ahead log keeps its records");
        }
    }

    /// Waits for a background flush to end, and drops the records it
    /// committed from `logged`. A failed flush counts as a failed
    /// checkpoint: none falls due for an interval.
    fn end_flush(&mut self, flush: Flush) -> Result<(), RunStoreError> {
        let done = flush.join().unwrap_or_else(|_| {
            Err(storage(redb::Error::Io(std::io::Error::other("the run store's flush thread panicked"))))
        });
        match done {
            Ok(committed) => {
                self.logged.remove(&committed);
                Ok(())
            }
            Err(error) => {
                self.last_checkpoint = Instant::now();
                self.checkpoint_retry_at = Some(self.retry_at());
                Err(error)
            }
        }
    }

    /// Makes every commit so far durable with one durable, two-phase redb
    /// commit (after waiting for a background flush in flight, itself one),
    /// then empties the log. After a failure, no checkpoint that
    /// falls due is tried for an interval.
    fn checkpoint(&mut self) -> Result<(), RunStoreError> {
        // Only one write transaction at a time; whatever the flush's outcome,
        // this commit decides the checkpoint's.
        let flushed = self.flushing.take().is_some_and(|flush| {
            self.end_flush(flush)
                .inspect_err(
                    |error| tracing::debug!(%error, "background flush failed; checkpointing on the writer's thread"),
                )
                .is_ok()
        });
        self.checkpoint_after(flushed)
    }

    /// The checkpoint proper, `flushed` when a background flush has just
    /// succeeded (and been ended).
    fn checkpoint_after(&mut self, flushed: bool) -> Result<(), RunStoreError> {
        if self.wal.as_ref().is_none_or(|w| w.records() == 0 && !w.poisoned()) {
            return Ok(());
        }
        // Every record of the log is in redb or waits here (appends hold
        // this lock too): applying these durably makes the log redundant.
        // Right after a flush, with nothing waiting, every record of the log
        // is durable already (applies wait for a flush, and every other
        // commit is durable), so a second durable commit would add nothing.
        let waiting = self.logged.snapshot();
        let done = if flushed && waiting.is_empty() { Ok(()) } else { import(&self.db, waiting.iter().map(|e| &**e)) };
        self.last_checkpoint = Instant::now();
        if let Err(error) = done {
            self.checkpoint_retry_at = Some(self.retry_at());
            return Err(error);
        }
        self.logged.remove(&waiting);
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
        if let Some(wal) = &mut self.wal {
            // The blocks a reset kept hold earlier records; the removed runs
            // must not stay in them.
            let cut = wal.cut_back();
            if cut.is_err() || wal.records() > 0 || wal.poisoned() || !self.logged.is_empty() {
                return Err(RunStoreError::LogNotEmptied { path: wal.path().to_path_buf() });
            }
        }
        if self.spill.held() > 0 {
            return Err(RunStoreError::LogNotEmptied { path: self.spill.path().to_path_buf() });
        }
        let txn = begin_durable_write(self.db.writable().map_err(storage)?).map_err(storage)?;
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
pub(crate) fn import<'a>(
    db: &ReadMostlyDatabase,
    entries: impl IntoIterator<Item = &'a Entry>,
) -> Result<(), RunStoreError> {
    let txn = begin_durable_write(db.writable().map_err(storage)?).map_err(storage)?;
    {
        let mut runs = txn.open_table(RUNS).map_err(storage)?;
        let mut index = txn.open_table(BY_WORKSPACE).map_err(storage)?;
        for e in entries {
            insert_new(&mut runs, &mut index, e).map_err(storage)?;
        }
    }
    txn.commit().map_err(storage)
}

/// The most a log may hold, in bytes, for a store that never opened redb
/// for writing to close without a checkpoint, and for an open to read it
/// back instead of importing it: 64 KiB (about a hundred records), or
/// [`GroupCommit::checkpoint_bytes`] when smaller.
///
/// Every open reads the kept log back, at about 1 µs a record, and the
/// checkpoint that ends it costs about 9 `fdatasync` calls (redb opened
/// for writing, a durable commit, emptying the log, redb closed), some
/// 2.5 ms. Keeping N records costs a short-lived process 2.5 ms / N plus
/// N / 2 µs on average, least near N = 70; measured, a log of 2,500
/// records made each `orbit run` 2.7 ms slower.
pub(crate) fn kept_log_bytes(gc: GroupCommit) -> u64 {
    gc.checkpoint_bytes.min(64 << 10)
}

/// The longest write-ahead log file a reset keeps at its length rather than
/// cutting it back to its salt, in bytes: twice
/// [`GroupCommit::checkpoint_bytes`] (16 MiB by default), room for what the
/// log holds between two checkpoints while they succeed. Appends then
/// overwrite blocks the file has (see [`crate::wal`]).
pub(crate) fn kept_file_bytes(gc: GroupCommit) -> u64 {
    gc.checkpoint_bytes.saturating_mul(2)
}

/// How long the writer thread naps (a timed wait on its channel, during
/// which queued records reach it through the inbox without waking it)
/// while it has had jobs lately. A queued record waits at most this long
/// for its commit to begin; a record someone awaits wakes it at once.
const NAP: Duration = Duration::from_micros(100);

/// Naps with no job in between, about a millisecond, after which the writer
/// thread sleeps until a job wakes it.
const NAPS: u32 = 10;

/// How often the writer thread looks whether a background flush has ended,
/// while it has no other job.
const FLUSH_POLL: Duration = Duration::from_millis(1);

/// How long after a failed apply the writer thread tries again.
const APPLY_RETRY: Duration = Duration::from_secs(1);

/// How long logged records wait before the writer thread applies them to
/// redb: long enough that one redb commit carries several batches, and
/// that it seldom runs while a caller's `fdatasync` is in flight (on ext4
/// the two contend for the journal, which slowed every durable run by a
/// third when each record was applied at once), short enough that the
/// map stays small (a few hundred records at 100,000 runs/s).
const APPLY_DELAY: Duration = Duration::from_millis(2);

/// Applies what waits in `logged` to redb in one commit without
/// durability (the log holds every record until a checkpoint), then drops
/// it from `logged`. Records redb already holds are skipped.
fn apply_logged(db: &ReadMostlyDatabase, logged: &Logged) -> Result<(), RunStoreError> {
    let waiting = logged.snapshot();
    let mut txn = db.writable().map_err(storage)?.begin_write().map_err(storage)?;
    txn.set_durability(Durability::None).map_err(storage)?;
    {
        let mut runs = txn.open_table(RUNS).map_err(storage)?;
        let mut index = txn.open_table(BY_WORKSPACE).map_err(storage)?;
        for e in &waiting {
            insert_new(&mut runs, &mut index, e).map_err(storage)?;
        }
    }
    txn.commit().map_err(storage)?;
    logged.remove(&waiting);
    Ok(())
}
