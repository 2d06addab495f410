//! The queue workers: one dispatcher task per [`Jobs`](crate::Jobs) that
//! claims queued jobs, a task per running job, on the caller's tokio runtime
//! (the one the engine's runs use).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use orbit_engine::{Budgets, ErrorCode, HostError, Invocation, code_name};
use orbit_runs::RunRecord;
use tokio::task::JoinSet;

use crate::host::{blocking, child_error_code};
use crate::store::{JobFailure, JobState, QueuedJob};
use crate::{Inner, JobsError};

/// Running queue workers, from [`Jobs::start_workers`](crate::Jobs::start_workers).
/// Dropping it (or [`JobWorkers::stop`]) stops them: no new job starts, and
/// jobs still running are abandoned mid-run and retried by the next start
/// (as after a crash).
pub struct JobWorkers {
    inner: Arc<Inner>,
    stop: tokio::sync::watch::Sender<bool>,
    dispatcher: Option<tokio::task::JoinHandle<()>>,
}

impl JobWorkers {
    /// Waits until no job is queued or running in any workspace.
    ///
    /// # Errors
    /// [`JobsError::Database`] when the queue cannot be read.
    pub async fn wait_idle(&self) -> Result<(), JobsError> {
        loop {
            let inner = self.inner.clone();
            let pending = tokio::task::spawn_blocking(move || inner.store.pending_count(None))
                .await
                .map_err(|e| JobsError::Database(e.to_string()))??;
            if pending == 0 {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl JobWorkers {
    /// Stops the workers and waits until every job task has ended, so new
    /// workers can start at once ([`Jobs::start_workers`](crate::Jobs::start_workers)
    /// refuses while old ones are still winding down).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(dispatcher) = self.dispatcher.take() {
            let _ = dispatcher.await;
        }
    }
}

impl Drop for JobWorkers {
    fn drop(&mut self) {
        // The dispatcher aborts its job tasks and clears `workers_started`
        // once they have ended.
        let _ = self.stop.send(true);
    }
}

/// Clears `workers_started` when the dispatcher ends, however it ends
/// (stopped, or dropped with its runtime).
struct Started(Arc<Inner>);

impl Drop for Started {
    fn drop(&mut self) {
        self.0.workers_started.store(false, Ordering::SeqCst);
    }
}

pub(crate) fn start(inner: Arc<Inner>) -> Result<JobWorkers, JobsError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| JobsError::Workers("no tokio runtime"))?;
    let engine = inner.engine()?;
    if inner.workers_started.swap(true, Ordering::SeqCst) {
        return Err(JobsError::Workers("already running"));
    }
    let recovery = match inner.store.recover(engine.runs(), inner.limits.max_attempts) {
        Ok(r) => r,
        Err(e) => {
            inner.workers_started.store(false, Ordering::SeqCst);
            return Err(e);
        }
    };
    if recovery != crate::Recovery::default() {
        tracing::info!(?recovery, "jobs: recovered jobs left running by a crash or restart");
    }
    prune(&inner);
    drop(engine);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let dispatcher = handle.spawn(dispatch(inner.clone(), stopped));
    Ok(JobWorkers { inner, stop, dispatcher: Some(dispatcher) })
}

/// How often running workers prune finished jobs past the retention.
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes finished jobs older than the retention period.
fn prune(inner: &Inner) {
    let cutoff = crate::store::now_ms().saturating_sub(inner.limits.keep_finished.as_millis() as u64);
    match inner.store.prune_finished(cutoff) {
        Ok(0) => {}
        Ok(n) => tracing::info!("jobs: deleted {n} finished jobs older than the retention period"),
        Err(e) => tracing::warn!("jobs: pruning finished jobs: {e}"),
    }
}

async fn dispatch(inner: Arc<Inner>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _started = Started(inner.clone());
    // Finished jobs are pruned while workers run, not only when they start.
    let mut next_prune = tokio::time::Instant::now()
        + PRUNE_INTERVAL.min(inner.limits.keep_finished.max(std::time::Duration::from_secs(1)));
    let cap = inner.limits.max_running_per_workspace.max(1);
    let mut running: HashMap<String, usize> = HashMap::new();
    let mut tasks: JoinSet<String> = JoinSet::new();
    loop {
        while let Some(done) = tasks.try_join_next() {
            finished(&mut running, done);
        }
        let claimed = {
            let (i, mut counts) = (inner.clone(), std::mem::take(&mut running));
            match tokio::task::spawn_blocking(move || {
                let r = i.store.claim(&mut counts, cap);
                (r, counts)
            })
            .await
            {
                Ok((r, counts)) => {
                    running = counts;
                    r.unwrap_or_else(|e| {
                        tracing::error!("jobs: claiming queued jobs: {e}");
                        Vec::new()
                    })
                }
                Err(e) => {
                    tracing::error!("jobs: claim task: {e}");
                    Vec::new()
                }
            }
        };
        for job in claimed {
            tasks.spawn(run_job(inner.clone(), job));
        }
        if tokio::time::Instant::now() >= next_prune {
            let i = inner.clone();
            let _ = tokio::task::spawn_blocking(move || prune(&i)).await;
            next_prune = tokio::time::Instant::now()
                + PRUNE_INTERVAL.min(inner.limits.keep_finished.max(std::time::Duration::from_secs(1)));
        }
        tokio::select! {
            _ = stopped.changed() => {
                tasks.shutdown().await;
                return;
            }
            () = inner.wake.notified() => {}
            Some(done) = tasks.join_next() => finished(&mut running, done),
            () = tokio::time::sleep(inner.limits.poll_interval) => {}
        }
    }
}

fn finished(running: &mut HashMap<String, usize>, done: Result<String, tokio::task::JoinError>) {
    if let Ok(ws) = done
        && let Some(n) = running.get_mut(&ws)
    {
        *n = n.saturating_sub(1);
        if *n == 0 {
            running.remove(&ws);
        }
    }
}

/// Runs one claimed job and records how it ended. Returns its workspace.
async fn run_job(inner: Arc<Inner>, job: QueuedJob) -> String {
    let ws = job.workspace.as_str().to_owned();
    let (state, output, error, ran) = match execute(&inner, &job).await {
        Ok(outcome) => {
            let (state, output, error) = result_of(&outcome.record, Some(outcome.output_text()));
            (state, output, error, true)
        }
        Err(e) => {
            let failure = JobFailure { code: code_name(e.code).to_owned(), detail: e.detail };
            (JobState::Failed, None, Some(failure), false)
        }
    };
    let id = job.id;
    let i = inner.clone();
    if let Err(e) = blocking(move || i.store.finish(id, state, output, error, ran)).await {
        tracing::error!("jobs: recording the end of job {id}: {:?}", e.detail);
    }
    ws
}

async fn execute(inner: &Arc<Inner>, job: &QueuedJob) -> Result<orbit_engine::Outcome, HostError> {
    if let Some(check) = inner.principal_check.get() {
        let (check, ws, principal) = (check.clone(), job.workspace.clone(), job.principal.clone());
        // A check that cannot finish refuses: never run a job for a
        // principal nobody vouched for.
        let allowed = tokio::task::spawn_blocking(move || check(&ws, &principal)).await.unwrap_or(false);
        if !allowed {
            return Err(HostError::with_detail(ErrorCode::PermissionDenied, crate::PRINCIPAL_REFUSED));
        }
    }
    let engine = inner.engine()?;
    let spec = {
        let (i, ws, name) = (inner.clone(), job.workspace.clone(), job.name.clone());
        blocking(move || i.store.get(&ws, &name)).await?
    };
    let spec = spec.ok_or_else(|| JobsError::NotFound(job.name.clone()))?;
    let component = inner.load(&engine, &spec).await?;
    let mut limits = engine.config().default_limits.clone();
    if let Some(fuel) = spec.defaults.fuel {
        limits.fuel = fuel;
    }
    if let Some(ms) = spec.defaults.timeout_ms {
        limits.timeout = std::time::Duration::from_millis(ms);
    }
    let mut invocation = Invocation::new(job.input.clone()).workspace(job.workspace.clone());
    // A job queued by a run runs on the slice of budget it was handed.
    if let Some(budget) = &job.budget {
        limits.fuel = budget.fuel;
        invocation = invocation.budgets(Budgets::with_limits(budget.budgets.clone()));
    }
    let mut invocation = invocation.limits(limits);
    invocation.parent = job.parent;
    invocation.depth = job.depth;
    invocation.run_id = job.run_id;
    invocation.principal = job.principal.clone();
    engine
        .invoke(&component, invocation)
        .await
        .map_err(|e| HostError::with_detail(ErrorCode::Internal, format!("job run: {e}")))
}

/// The job's end state from its run's record. `output` is the run's full
/// output (or, after a crash, the copy kept on the record).
pub(crate) fn result_of(rec: &RunRecord, output: Option<String>) -> (JobState, Option<String>, Option<JobFailure>) {
    if rec.status.is_success() {
        (JobState::Succeeded, Some(output.unwrap_or_default()), None)
    } else {
        let code = code_name(child_error_code(rec)).to_owned();
        (
            JobState::Failed,
            None,
            Some(JobFailure { code, detail: Some(format!("run {} ended {}", rec.id, rec.status)) }),
        )
    }
}
