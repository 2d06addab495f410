//! Queued records on their way to the writer thread, without waking it.
//!
//! A record queued with [`crate::ExpectedRecord::queue`] has nobody waiting
//! for its commit. Sent through the writer's channel, each one woke the
//! sleeping writer thread: a `futex` wake-up, on a VM an inter-processor
//! interrupt, which cost the queuing caller about 8% of its CPU in
//! `invoke/orbit-queued-disk` (BENCHMARKS.md, session 21). Queued records
//! go here instead. While it has had work lately, the writer thread naps
//! (a short timed wait on its channel) rather than sleeps, and takes
//! what waits here after each nap or batch; only a writer that has gone
//! to sleep is woken, by a [`Work::Wake`](crate::writer::Work::Wake) on
//! the channel. Records that a caller awaits still go through the
//! channel, whose send wakes a napping writer at once.
//!
//! Invariants:
//! - A job here is counted in the store's `queued` like one on the
//!   channel, so a lone caller never commits ahead of it.
//! - No job is left here unseen: the writer announces its sleep
//!   ([`sleep`](Inbox::sleep)) and then looks here again before it blocks,
//!   and a caller pushes here and then asks whether the writer sleeps
//!   ([`push`](Inbox::push)); with both orders sequentially consistent,
//!   at least one of them sees the other. The writer also empties this
//!   before it exits.
//! - Jobs leave in the order they came; the writer takes them into the same
//!   batch as the channel's jobs it gathers, and a batch's records are all
//!   committed before any of its jobs is acknowledged, so a barrier
//!   ([`crate::RunStore::flush`]) sent after a queued record is
//!   acknowledged only after that record's commit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::writer::Job;

/// Queued records waiting for the writer thread (see the module).
#[derive(Default)]
pub(crate) struct Inbox {
    jobs: Mutex<Vec<Job>>,
    /// The writer thread sleeps (or is about to): a push must wake it.
    sleeping: AtomicBool,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Vec<Job>> {
        // Nothing panics while holding it; the list stays whole.
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `job`; returns whether the writer thread sleeps and must be
    /// woken for it.
    pub(crate) fn push(&self, job: Job) -> bool {
        self.lock().push(job);
        self.sleeping.load(Ordering::SeqCst)
    }

    /// Moves the waiting jobs, oldest first, to the end of `batch` until it
    /// holds `max` jobs; returns how many it moved.
    pub(crate) fn take_into(&self, batch: &mut Vec<Job>, max: usize) -> usize {
        let mut jobs = self.lock();
        let n = jobs.len().min(max.saturating_sub(batch.len()));
        batch.extend(jobs.drain(..n));
        n
    }

    /// Whether no job waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The writer thread is about to block until woken: from now on, a push
    /// asks for a wake-up. Returns whether it may block, that is, whether
    /// nothing waits here; when something does, it stays awake (call
    /// [`awake`](Self::awake) either way once it is done waiting).
    pub(crate) fn sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        self.is_empty()
    }

    /// The writer thread is awake again: pushes need not wake it.
    pub(crate) fn awake(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::spill::tests::record;
    use crate::{GroupCommit, RunStore};

    /// Waits (at most 10 s) until the store has the run: committed without
    /// a flush, so the writer thread took it by itself.
    fn committed(store: &RunStore, rec: &crate::RunRecord) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if store.get(rec.id).unwrap().as_ref() == Some(rec) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    /// A store whose idle writer sleeps without a deadline (no checkpoint
    /// falls due for an hour), so only a wake-up makes it take a record.
    fn sleepy(dir: &std::path::Path) -> RunStore {
        let gc = GroupCommit { checkpoint_interval: Duration::from_secs(3600), ..GroupCommit::default() };
        RunStore::open_with(&dir.join("runs.redb"), gc).unwrap()
    }

    /// A record queued to a writer that sleeps wakes it; one queued while it
    /// naps after another is taken without a wake-up. Either way it is
    /// committed without a flush.
    #[test]
    fn a_queued_record_reaches_a_sleeping_writer_and_a_napping_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = sleepy(dir.path());
        for round in 0..5u8 {
            // Past its naps: asleep.
            std::thread::sleep(Duration::from_millis(30));
            let first = record(round);
            store.expect_record().queue(&first).unwrap();
            assert!(committed(&store, &first), "round {round}: a sleeping writer never took the record");
            // Within its naps.
            let second = record(round);
            store.expect_record().queue(&second).unwrap();
            assert!(committed(&store, &second), "round {round}: a napping writer never took the record");
        }
    }

    /// Threads queue records with pauses around the writer's switch from
    /// napping to sleeping (about 1 ms), and each queues a last one after
    /// the writer has gone to sleep; every record is committed without a
    /// flush (none is left in the inbox unseen).
    #[test]
    fn no_queued_record_is_left_behind_across_naps_and_sleeps() {
        let dir = tempfile::tempdir().unwrap();
        let store = sleepy(dir.path());
        let records: Vec<_> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4u8)
                .map(|t| {
                    let store = &store;
                    s.spawn(move || {
                        (0..=60u32)
                            .map(|n| {
                                // 0.2 to 2.6 ms, varied per thread and
                                // step; 30 ms (asleep) before the last.
                                let pause = match n {
                                    60 => 30_000,
                                    n => 200 + (u64::from(t) * 397 + u64::from(n) * 211) % 2_400,
                                };
                                std::thread::sleep(Duration::from_micros(pause));
                                let rec = record(t);
                                store.expect_record().queue(&rec).unwrap();
                                rec
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
        });
        for rec in &records {
            assert!(committed(&store, rec), "{} was never committed", rec.id);
        }
    }
}
