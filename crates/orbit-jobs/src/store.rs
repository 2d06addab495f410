//! The job store: registered jobs, their components (stored once per
//! sha256), and the durable queue, in one redb file.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use orbit_runs::{RunId, RunStore};
use orbit_workspace::{Principal, WorkspaceId};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::JobsError;

/// `(workspace, name)` → [`JobSpec`] as JSON.
const SPECS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("specs");
/// sha256 hex → component bytes, stored once however many jobs use them.
const COMPONENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("components");
/// sha256 hex → how many registered jobs use the component.
const REFS: TableDefinition<&str, u64> = TableDefinition::new("component_refs");
/// Job id → [`QueuedJob`] as JSON, in every state.
const QUEUE: TableDefinition<u128, &[u8]> = TableDefinition::new("queue");
/// `(workspace, job id)` → nothing: the jobs queued or running, per
/// workspace, in id (so enqueue-time) order.
const PENDING: TableDefinition<(&str, u128), ()> = TableDefinition::new("pending");
/// (workspace, job id) -> (): every job of the queue table, in any state,
/// so a workspace's listing reads only its own jobs.
const BY_WORKSPACE: TableDefinition<(&str, u128), ()> = TableDefinition::new("queue_by_workspace");

/// Longest job name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest job description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Checks a job name: 1 to 64 bytes of ASCII letters, digits, `-`, `_` and
/// `.`, starting with a letter or digit.
///
/// # Errors
/// [`JobsError::InvalidName`].
pub fn check_name(name: &str) -> Result<(), JobsError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(()) } else { Err(JobsError::InvalidName) }
}

/// The id of a queued job: a UUID version 7, so ids sort by enqueue time.
/// [`Display`](fmt::Display) and [`FromStr`] use the hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub uuid::Uuid);

impl JobId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for JobId {
    type Err = JobsError;

    /// Parses a UUID.
    fn from_str(s: &str) -> Result<Self, JobsError> {
        uuid::Uuid::parse_str(s).map(Self).map_err(|_| JobsError::InvalidId)
    }
}

/// The defaults a job is registered with. `None` means the engine's default
/// [`Limits`](orbit_engine::Limits).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobDefaults {
    /// What the job does, for people (at most 1,024 bytes).
    pub description: Option<String>,
    /// Fuel for one run, in wasmtime fuel units. A child started by
    /// `invoke` gets at most what its parent has left.
    pub fuel: Option<u64>,
    /// Wall-clock limit for one run, in milliseconds. A child started by
    /// `invoke` never runs past its parent's deadline.
    pub timeout_ms: Option<u64>,
    /// The member who registered the job (`None` when registered before
    /// owners existed, or by an embedding program). When the owner leaves
    /// the workspace the job keeps working and is reported orphaned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<orbit_workspace::UserId>,
}

impl JobDefaults {
    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Sets the member who owns the job.
    pub fn owner(mut self, user: orbit_workspace::UserId) -> Self {
        self.owner = Some(user);
        self
    }

    /// Sets the fuel per run (wasmtime fuel units).
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// Sets the wall-clock limit per run, in milliseconds.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }
}

/// A registered job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobSpec {
    /// The job's name, unique in its workspace.
    pub name: String,
    /// The sha256 of the component's bytes, as 64 lowercase hex digits.
    pub digest: String,
    /// Size of the component, in bytes.
    pub size_bytes: u64,
    /// Description and default limits.
    pub defaults: JobDefaults,
    /// When the job was (last) registered, in ms since the Unix epoch.
    pub created_at_ms: u64,
}

/// Where a queued job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker is running it.
    Running,
    /// Finished with a successful run.
    Succeeded,
    /// Finished without success.
    Failed,
}

impl JobState {
    /// The kebab-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        }
    }

    /// Whether the job has finished (succeeded or failed).
    pub fn is_finished(&self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// The WIT error code the guest sees, such as `"limit-exceeded"`.
    pub code: String,
    /// Internal detail for operators; never shown to guests.
    pub detail: Option<String>,
}

/// One job in the queue, in any state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueuedJob {
    /// The job's id.
    pub id: JobId,
    /// The workspace it runs in.
    pub workspace: WorkspaceId,
    /// The registered job's name (resolved when the job starts).
    pub name: String,
    /// The input.
    pub input: String,
    /// The run that enqueued it; `None` when a host enqueued it.
    pub parent: Option<RunId>,
    /// The slice of its parent's budget it runs on, taken from the parent
    /// at enqueue; `None` when a host enqueued it (or before budgets were
    /// handed down): it then runs on the job's own defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<JobBudget>,
    /// Nesting depth of its runs (the enqueuing run's depth + 1).
    pub depth: u32,
    /// Who its run acts for: the enqueuing run's principal, or the host's.
    /// Jobs queued before principals were stored run as
    /// [`Principal::embedded`], as they did then.
    #[serde(default = "Principal::embedded")]
    pub principal: Principal,
    /// Where it is.
    pub state: JobState,
    /// How many times a worker started it. More than 1 means a run was
    /// interrupted by a crash or restart and the job was retried.
    pub attempts: u32,
    /// The run of the current or last attempt (its id is chosen before the
    /// run starts); `None` before the first attempt, and for a job that
    /// failed before its run could start (for example an unknown name).
    pub run_id: Option<RunId>,
    /// The output, once succeeded.
    pub output: Option<String>,
    /// Why it failed, once failed.
    pub error: Option<JobFailure>,
    /// When it was queued, in ms since the Unix epoch.
    pub enqueued_at_ms: u64,
    /// When it finished, in ms since the Unix epoch.
    pub finished_at_ms: Option<u64>,
}

/// What a job queued by a run may spend: a slice of the run's budget, taken
/// from the run when the job is queued, so the run and every job it queues
/// together spend no more than the run was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobBudget {
    /// Fuel for the job's run, in wasmtime fuel units (each attempt gets
    /// all of it).
    pub fuel: u64,
    /// The named budgets of primitives (`ai.tokens`, `tools.calls`,
    /// `fetch.requests`) for the job's run, by name; see
    /// [`orbit_engine::Budgets`].
    pub budgets: BTreeMap<String, u64>,
}

impl JobBudget {
    /// A budget of `fuel` and `budgets`.
    pub fn new(fuel: u64, budgets: BTreeMap<String, u64>) -> Self {
        Self { fuel, budgets }
    }
}

/// What [`JobStore::recover`] did with jobs left running by a crash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Jobs put back in the queue, to be retried.
    pub requeued: usize,
    /// Jobs whose run had finished and been recorded before the crash: they
    /// take that run's result instead of running again.
    pub adopted: usize,
    /// Jobs failed because they had already been started
    /// `max_attempts` times.
    pub abandoned: usize,
}

/// The durable store behind the `jobs` primitive.
pub struct JobStore {
    /// Opened at the first use: a process that never touches jobs never
    /// opens (nor syncs) the file.
    db: orbit_workspace::LazyDatabase<JobsError>,
}

type WriteTx = redb::WriteTransaction;

impl JobStore {
    /// The job database at `path` (created if needed), opened at its
    /// first use. redb locks the file from then on, so one process at a
    /// time owns the queue.
    ///
    /// # Errors
    /// [`JobsError::Database`] when the parent directory cannot be
    /// created. A file that cannot be opened fails the first operation
    /// with [`JobsError::Database`] (and the next one tries again).
    pub fn open(path: &Path) -> Result<Self, JobsError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| JobsError::Database(e.to_string()))?;
        }
        Ok(Self { db: orbit_workspace::LazyDatabase::new(path, create_tables) })
    }

    /// Opens the database now instead of at its first use (a long-lived
    /// process checks its files at startup).
    ///
    /// # Errors
    /// [`JobsError::Database`] when the file cannot be opened.
    pub fn open_now(&self) -> Result<(), JobsError> {
        self.db.get().map(|_| ())
    }

    fn write<T>(&self, f: impl FnOnce(&WriteTx) -> Result<T, JobsError>) -> Result<T, JobsError> {
        let mut tx = self.db.get()?.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?;
        // Inputs and outputs are guest-controlled: redb advises two-phase commit.
        tx.set_two_phase_commit(true);
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Registers (or replaces) the job `name` in `ws`. The component is
    /// stored under its sha256 `digest`; bytes already stored for another
    /// job are not stored again. The caller checks that `wasm` is a
    /// component (see [`Jobs::register`](crate::Jobs::register)).
    ///
    /// # Errors
    /// `InvalidName`, `DescriptionTooLong` or `Database`.
    pub fn add(
        &self,
        ws: &WorkspaceId,
        name: &str,
        wasm: &[u8],
        digest: &str,
        defaults: JobDefaults,
    ) -> Result<JobSpec, JobsError> {
        check_name(name)?;
        if defaults.description.as_ref().is_some_and(|d| d.len() > MAX_DESCRIPTION_BYTES) {
            return Err(JobsError::DescriptionTooLong);
        }
        let spec = JobSpec {
            name: name.to_owned(),
            digest: digest.to_owned(),
            size_bytes: wasm.len() as u64,
            defaults,
            created_at_ms: now_ms(),
        };
        let bytes = serde_json::to_vec(&spec)?;
        self.write(|tx| {
            let old = {
                let mut specs = tx.open_table(SPECS)?;
                let old = specs.insert((ws.as_str(), name), bytes.as_slice())?;
                old.map(|v| serde_json::from_slice::<JobSpec>(v.value())).transpose()?
            };
            if let Some(old) = old {
                release(tx, &old.digest)?;
            }
            let mut refs = tx.open_table(REFS)?;
            let n = refs.get(digest)?.map(|v| v.value()).unwrap_or(0);
            refs.insert(digest, n + 1)?;
            if n == 0 {
                tx.open_table(COMPONENTS)?.insert(digest, wasm)?;
            }
            Ok(())
        })?;
        Ok(spec)
    }

    /// The job `name` in `ws`, if registered.
    ///
    /// # Errors
    /// `Database`.
    pub fn get(&self, ws: &WorkspaceId, name: &str) -> Result<Option<JobSpec>, JobsError> {
        let tx = self.db.get()?.begin_read()?;
        let specs = tx.open_table(SPECS)?;
        specs.get((ws.as_str(), name))?.map(|v| serde_json::from_slice(v.value()).map_err(JobsError::from)).transpose()
    }

    /// Every job registered in `ws`, by name.
    ///
    /// # Errors
    /// `Database`.
    pub fn list(&self, ws: &WorkspaceId) -> Result<Vec<JobSpec>, JobsError> {
        let tx = self.db.get()?.begin_read()?;
        let specs = tx.open_table(SPECS)?;
        let mut out = Vec::new();
        for entry in specs.range((ws.as_str(), "")..)? {
            let (k, v) = entry?;
            if k.value().0 != ws.as_str() {
                break;
            }
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }

    /// Removes the job `name` from `ws`; its component is deleted when no
    /// other job uses it. Returns whether the job existed. Jobs already
    /// queued under this name fail with `not-found` when they start.
    ///
    /// # Errors
    /// `Database`.
    pub fn remove(&self, ws: &WorkspaceId, name: &str) -> Result<bool, JobsError> {
        self.write(|tx| {
            let old = {
                let mut specs = tx.open_table(SPECS)?;
                let old = specs.remove((ws.as_str(), name))?;
                old.map(|v| serde_json::from_slice::<JobSpec>(v.value())).transpose()?
            };
            match old {
                Some(old) => {
                    release(tx, &old.digest)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    /// The component stored under `digest`.
    ///
    /// # Errors
    /// `Database`.
    pub fn component(&self, digest: &str) -> Result<Option<Vec<u8>>, JobsError> {
        let tx = self.db.get()?.begin_read()?;
        let t = tx.open_table(COMPONENTS)?;
        Ok(t.get(digest)?.map(|v| v.value().to_vec()))
    }

    /// How many distinct components are stored (each once, by sha256).
    ///
    /// # Errors
    /// `Database`.
    pub fn component_count(&self) -> Result<u64, JobsError> {
        let tx = self.db.get()?.begin_read()?;
        Ok(tx.open_table(COMPONENTS)?.len()?)
    }

    /// Queues the job `name` of `ws` with `input`, to run for `principal`,
    /// unless the workspace already has `quota` jobs queued or running.
    /// `parent` is the run that enqueues it and the budget it hands down
    /// (`None` for a host).
    ///
    /// # Errors
    /// `NotFound` when no such job is registered; `QueueFull`; `Database`.
    pub fn enqueue(
        &self,
        ws: &WorkspaceId,
        name: &str,
        input: String,
        parent: Option<(RunId, JobBudget)>,
        depth: u32,
        principal: Principal,
        quota: usize,
    ) -> Result<JobId, JobsError> {
        let id = JobId::new();
        let (parent, budget) = parent.unzip();
        let job = QueuedJob {
            id,
            workspace: ws.clone(),
            name: name.to_owned(),
            input,
            parent,
            budget,
            depth,
            principal,
            state: JobState::Queued,
            attempts: 0,
            run_id: None,
            output: None,
            error: None,
            enqueued_at_ms: now_ms(),
            finished_at_ms: None,
        };
        let bytes = serde_json::to_vec(&job)?;
        self.write(|tx| {
            if tx.open_table(SPECS)?.get((ws.as_str(), name))?.is_none() {
                return Err(JobsError::NotFound(name.to_owned()));
            }
            let mut pending = tx.open_table(PENDING)?;
            let active = pending.range((ws.as_str(), 0u128)..=(ws.as_str(), u128::MAX))?.take(quota).count();
            if active >= quota {
                return Err(JobsError::QueueFull { limit: quota });
            }
            pending.insert((ws.as_str(), id.0.as_u128()), ())?;
            tx.open_table(QUEUE)?.insert(id.0.as_u128(), bytes.as_slice())?;
            tx.open_table(BY_WORKSPACE)?.insert((ws.as_str(), id.0.as_u128()), ())?;
            Ok(())
        })?;
        Ok(id)
    }

    /// The queued job `id`, in whatever state.
    ///
    /// # Errors
    /// `Database`.
    pub fn job(&self, id: JobId) -> Result<Option<QueuedJob>, JobsError> {
        let tx = self.db.get()?.begin_read()?;
        let t = tx.open_table(QUEUE)?;
        t.get(id.0.as_u128())?.map(|v| serde_json::from_slice(v.value()).map_err(JobsError::from)).transpose()
    }

    /// Jobs of `ws` in any state, oldest first, at most `limit`. Reads
    /// only `ws`'s jobs (through the workspace index), never the others'.
    ///
    /// # Errors
    /// `Database`.
    pub fn jobs(&self, ws: &WorkspaceId, limit: usize) -> Result<Vec<QueuedJob>, JobsError> {
        let tx = self.db.get()?.begin_read()?;
        let index = tx.open_table(BY_WORKSPACE)?;
        let queue = tx.open_table(QUEUE)?;
        let mut out = Vec::new();
        for entry in index.range((ws.as_str(), 0u128)..=(ws.as_str(), u128::MAX))?.take(limit) {
            let (key, _) = entry?;
            if let Some(v) = queue.get(key.value().1)? {
                out.push(serde_json::from_slice(v.value())?);
            }
        }
        Ok(out)
    }

    /// Jobs queued or running, in `ws` or (with `None`) in all workspaces.
    ///
    /// # Errors
    /// `Database`.
    pub fn pending_count(&self, ws: Option<&WorkspaceId>) -> Result<usize, JobsError> {
        let tx = self.db.get()?.begin_read()?;
        let t = tx.open_table(PENDING)?;
        Ok(match ws {
            Some(ws) => t.range((ws.as_str(), 0u128)..=(ws.as_str(), u128::MAX))?.count(),
            None => t.len()? as usize,
        })
    }

    /// Marks queued jobs as running, oldest first, while their workspace
    /// runs fewer than `cap` jobs (`running` counts the jobs each workspace
    /// runs now, and is updated). Each claimed job gets its attempt counted
    /// and a fresh run id before it starts, durably.
    pub(crate) fn claim(&self, running: &mut HashMap<String, usize>, cap: usize) -> Result<Vec<QueuedJob>, JobsError> {
        let mut tx = self.db.get()?.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?;
        tx.set_two_phase_commit(true);
        // Counted on a copy, applied only once the claim is committed.
        let mut counts = running.clone();
        let claimed = {
            let pending = tx.open_table(PENDING)?;
            let mut queue = tx.open_table(QUEUE)?;
            let mut claimed = Vec::new();
            let mut skip_ws: Option<String> = None;
            for entry in pending.iter()? {
                let (k, _) = entry?;
                let (ws, id) = k.value();
                if skip_ws.as_deref() == Some(ws) {
                    continue;
                }
                if counts.get(ws).copied().unwrap_or(0) >= cap {
                    skip_ws = Some(ws.to_owned());
                    continue;
                }
                let Some(raw) = queue.get(id)?.map(|v| v.value().to_vec()) else { continue };
                let mut job: QueuedJob = serde_json::from_slice(&raw)?;
                if job.state != JobState::Queued {
                    continue;
                }
                job.state = JobState::Running;
                job.attempts += 1;
                job.run_id = Some(RunId::new());
                queue.insert(id, serde_json::to_vec(&job)?.as_slice())?;
                *counts.entry(ws.to_owned()).or_default() += 1;
                claimed.push(job);
            }
            claimed
        };
        if claimed.is_empty() {
            // Nothing changed: no commit, so an idle queue costs no fsync.
            tx.abort()?;
        } else {
            tx.commit()?;
            *running = counts;
        }
        Ok(claimed)
    }

    /// Records how a running job ended and takes it off the pending list.
    /// `ran` is false when the job failed before its run started (its run
    /// id is then cleared).
    pub(crate) fn finish(
        &self,
        id: JobId,
        state: JobState,
        output: Option<String>,
        error: Option<JobFailure>,
        ran: bool,
    ) -> Result<(), JobsError> {
        self.write(|tx| {
            let mut queue = tx.open_table(QUEUE)?;
            let Some(raw) = queue.get(id.0.as_u128())?.map(|v| v.value().to_vec()) else {
                return Ok(());
            };
            let mut job: QueuedJob = serde_json::from_slice(&raw)?;
            if job.state.is_finished() {
                return Ok(()); // Never finish a job twice.
            }
            job.state = state;
            if !ran {
                job.run_id = None;
            }
            job.output = output;
            job.error = error;
            job.finished_at_ms = Some(now_ms());
            queue.insert(id.0.as_u128(), serde_json::to_vec(&job)?.as_slice())?;
            tx.open_table(PENDING)?.remove((job.workspace.as_str(), id.0.as_u128()))?;
            Ok(())
        })
    }

    /// Deletes finished jobs that finished before `before_ms` (ms since the
    /// Unix epoch); returns how many.
    ///
    /// # Errors
    /// `Database`.
    pub fn prune_finished(&self, before_ms: u64) -> Result<usize, JobsError> {
        let old: Vec<(String, u128)> = {
            let tx = self.db.get()?.begin_read()?;
            let t = tx.open_table(QUEUE)?;
            let mut old = Vec::new();
            for entry in t.iter()? {
                let (k, v) = entry?;
                let job: QueuedJob = serde_json::from_slice(v.value())?;
                if job.state.is_finished() && job.finished_at_ms.is_some_and(|t| t < before_ms) {
                    old.push((job.workspace.as_str().to_owned(), k.value()));
                }
            }
            old
        };
        if old.is_empty() {
            return Ok(0);
        }
        self.write(|tx| {
            let mut t = tx.open_table(QUEUE)?;
            let mut index = tx.open_table(BY_WORKSPACE)?;
            for (ws, id) in &old {
                t.remove(*id)?;
                index.remove((ws.as_str(), *id))?;
            }
            Ok(old.len())
        })
    }

    /// Deals with jobs a crash or restart left `running`: a job whose run
    /// was recorded in `runs` takes that run's result (it ran to completion
    /// once, and must not run again); a job started `max_attempts` times
    /// fails; any other is queued again, keeping its attempt count. Call it
    /// before workers start.
    ///
    /// # Errors
    /// `Database`, or a run store read failure.
    pub fn recover(&self, runs: &RunStore, max_attempts: u32) -> Result<Recovery, JobsError> {
        let mut report = Recovery::default();
        self.write(|tx| {
            let pending: Vec<u128> = {
                let t = tx.open_table(PENDING)?;
                let mut ids = Vec::new();
                for e in t.iter()? {
                    ids.push(e?.0.value().1);
                }
                ids
            };
            let mut queue = tx.open_table(QUEUE)?;
            let mut done = Vec::new();
            for id in pending {
                let Some(raw) = queue.get(id)?.map(|v| v.value().to_vec()) else { continue };
                let mut job: QueuedJob = serde_json::from_slice(&raw)?;
                if job.state != JobState::Running {
                    continue;
                }
                let recorded = match job.run_id {
                    Some(run) => runs.get(run).map_err(|e| JobsError::Database(format!("run store: {e}")))?,
                    None => None,
                };
                if let Some(rec) = recorded {
                    let (state, output, error) = crate::worker::result_of(&rec, rec.output.clone());
                    (job.state, job.output, job.error) = (state, output, error);
                    job.finished_at_ms = Some(now_ms());
                    done.push((job.workspace.as_str().to_owned(), id));
                    report.adopted += 1;
                } else if job.attempts >= max_attempts {
                    job.state = JobState::Failed;
                    job.error = Some(JobFailure {
                        code: "internal".into(),
                        detail: Some(format!("interrupted {} times; not retried", job.attempts)),
                    });
                    job.finished_at_ms = Some(now_ms());
                    done.push((job.workspace.as_str().to_owned(), id));
                    report.abandoned += 1;
                } else {
                    job.state = JobState::Queued;
                    report.requeued += 1;
                }
                queue.insert(id, serde_json::to_vec(&job)?.as_slice())?;
            }
            let mut pending = tx.open_table(PENDING)?;
            for (ws, id) in done {
                pending.remove((ws.as_str(), id))?;
            }
            Ok(())
        })?;
        Ok(report)
    }
}

/// Drops one job's reference to a component, deleting its bytes with the
/// last reference.
fn release(tx: &WriteTx, digest: &str) -> Result<(), JobsError> {
    let mut refs = tx.open_table(REFS)?;
    let n = refs.get(digest)?.map(|v| v.value()).unwrap_or(0);
    if n <= 1 {
        refs.remove(digest)?;
        tx.open_table(COMPONENTS)?.remove(digest)?;
    } else {
        refs.insert(digest, n - 1)?;
    }
    Ok(())
}

/// Creates the job database's tables when missing, and indexes a queue
/// from before the index.
fn create_tables(db: &Database) -> Result<(), JobsError> {
    // A store opened before has every table, and its queue is indexed
    // (the index is made in the transaction that creates it): no write,
    // and no fsync, at each open.
    let exist = db.begin_read().is_ok_and(|r| {
        r.open_table(SPECS).is_ok()
            && r.open_table(COMPONENTS).is_ok()
            && r.open_table(REFS).is_ok()
            && r.open_table(QUEUE).is_ok()
            && r.open_table(PENDING).is_ok()
            && r.open_table(BY_WORKSPACE).is_ok()
    });
    if exist {
        return Ok(());
    }
    let tx = db.begin_write()?;
    tx.open_table(SPECS)?;
    tx.open_table(COMPONENTS)?;
    tx.open_table(REFS)?;
    tx.open_table(QUEUE)?;
    tx.open_table(PENDING)?;
    {
        // A queue from before the index: index it once.
        let mut index = tx.open_table(BY_WORKSPACE)?;
        let queue = tx.open_table(QUEUE)?;
        if index.is_empty()? && !queue.is_empty()? {
            for entry in queue.iter()? {
                let (k, v) = entry?;
                let job: QueuedJob = serde_json::from_slice(v.value())?;
                index.insert((job.workspace.as_str(), k.value()), ())?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbit_runs::{ComponentKind, RunRecord, RunStatus};

    fn ws(name: &str) -> WorkspaceId {
        WorkspaceId::new(name).unwrap()
    }

    #[test]
    fn a_job_queued_before_budgets_decodes_and_runs_on_its_defaults() {
        // A queued job as stored before `budget` existed.
        let old = r#"{"id":"0193a3f0-0000-7000-8000-000000000001","workspace":"w","name":"job","input":"x",
            "parent":null,"depth":0,"state":"queued","attempts":0,"run_id":null,"output":null,"error":null,
            "enqueued_at_ms":1,"finished_at_ms":null}"#;
        let job: QueuedJob = serde_json::from_str(old).unwrap();
        assert_eq!(job.budget, None);
        // A job with a budget keeps it across a store round trip.
        let mut job = job;
        job.budget = Some(JobBudget::new(7, BTreeMap::from([("fetch.requests".to_owned(), 2)])));
        let back: QueuedJob = serde_json::from_slice(&serde_json::to_vec(&job).unwrap()).unwrap();
        assert_eq!(back.budget, job.budget);
    }

    fn record(id: RunId, output: &str) -> RunRecord {
        RunRecord {
            id,
            workspace: ws("w"),
            component_digest: "00".repeat(32),
            kind: ComponentKind::Agent,
            started_at_ms: 0,
            duration_us: 1,
            status: RunStatus::Succeeded,
            exit_code: None,
            error: None,
            fuel_consumed: 1,
            memory_bytes: 0,
            input_bytes: 0,
            output_bytes: output.len() as u64,
            log_bytes: 0,
            output: Some(output.to_owned()),
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

    #[test]
    fn claims_respect_the_per_workspace_cap_and_finishing_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let s = JobStore::open(&dir.path().join("jobs.redb")).unwrap();
        for w in ["a", "b"] {
            s.add(&ws(w), "job", b"c", "cc", JobDefaults::default()).unwrap();
        }
        let ids: Vec<JobId> = (0..3)
            .map(|_| s.enqueue(&ws("a"), "job", "x".into(), None, 0, Principal::embedded(), 10).unwrap())
            .collect();
        s.enqueue(&ws("b"), "job", "y".into(), None, 0, Principal::embedded(), 10).unwrap();
        let mut running = HashMap::new();
        let claimed = s.claim(&mut running, 2).unwrap();
        // Oldest first, two of a's, and b's one.
        let claimed_a: Vec<JobId> = claimed.iter().filter(|j| j.workspace == ws("a")).map(|j| j.id).collect();
        assert_eq!(claimed_a, ids[..2]);
        assert_eq!(claimed.len(), 3);
        assert!(claimed.iter().all(|j| j.state == JobState::Running && j.attempts == 1 && j.run_id.is_some()));
        assert_eq!(running["a"], 2);
        assert!(s.claim(&mut running, 2).unwrap().is_empty(), "a is at its cap, b has nothing queued");

        s.finish(ids[0], JobState::Succeeded, Some("out".into()), None, true).unwrap();
        // A second finish (say, a late duplicate) changes nothing.
        s.finish(ids[0], JobState::Failed, None, None, true).unwrap();
        let done = s.job(ids[0]).unwrap().unwrap();
        assert_eq!((done.state, done.output.as_deref()), (JobState::Succeeded, Some("out")));
        assert_eq!(s.pending_count(Some(&ws("a"))).unwrap(), 2);
        // A job that failed before its run started names no run.
        s.finish(ids[1], JobState::Failed, None, Some(JobFailure { code: "not-found".into(), detail: None }), false)
            .unwrap();
        assert_eq!(s.job(ids[1]).unwrap().unwrap().run_id, None);

        // Pruning drops only finished jobs, finished before the cutoff.
        assert_eq!(s.prune_finished(0).unwrap(), 0);
        assert_eq!(s.prune_finished(now_ms() + 1).unwrap(), 2);
        assert!(s.job(ids[0]).unwrap().is_none());
        assert!(s.job(ids[2]).unwrap().is_some(), "still running");
    }

    #[test]
    fn recovery_adopts_recorded_runs_retries_the_rest_and_gives_up_after_max_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let s = JobStore::open(&dir.path().join("jobs.redb")).unwrap();
        let runs = RunStore::open(&dir.path().join("runs.redb")).unwrap();
        s.add(&ws("w"), "job", b"c", "cc", JobDefaults::default()).unwrap();
        let mut running = HashMap::new();

        // "poison" is interrupted once already.
        let poison = s.enqueue(&ws("w"), "job", "poison".into(), None, 0, Principal::embedded(), 10).unwrap();
        s.claim(&mut running, 10).unwrap();
        assert_eq!(s.recover(&runs, 3).unwrap(), Recovery { requeued: 1, adopted: 0, abandoned: 0 });
        let recorded = s.enqueue(&ws("w"), "job", "recorded".into(), None, 0, Principal::embedded(), 10).unwrap();
        let lost = s.enqueue(&ws("w"), "job", "lost".into(), None, 0, Principal::embedded(), 10).unwrap();
        running.clear();
        let claimed = s.claim(&mut running, 10).unwrap();
        assert_eq!(claimed.len(), 3);
        // The crash hits after "recorded"'s run was recorded but before the
        // job was marked finished.
        let run_id = s.job(recorded).unwrap().unwrap().run_id.unwrap();
        runs.record_blocking(record(run_id, "result")).unwrap();

        let report = s.recover(&runs, 2).unwrap();
        assert_eq!(report, Recovery { requeued: 1, adopted: 1, abandoned: 1 });
        let adopted = s.job(recorded).unwrap().unwrap();
        assert_eq!(
            (adopted.state, adopted.output.as_deref(), adopted.attempts),
            (JobState::Succeeded, Some("result"), 1)
        );
        let requeued = s.job(lost).unwrap().unwrap();
        assert_eq!((requeued.state, requeued.attempts), (JobState::Queued, 1));
        let abandoned = s.job(poison).unwrap().unwrap();
        assert_eq!((abandoned.state, abandoned.attempts), (JobState::Failed, 2));
        assert_eq!(abandoned.error.unwrap().code, "internal");
        assert_eq!(s.pending_count(None).unwrap(), 1, "only the requeued job is pending");
        // The requeued job is claimed again, as attempt 2.
        running.clear();
        let again = s.claim(&mut running, 10).unwrap();
        assert_eq!((again.len(), again[0].id, again[0].attempts), (1, lost, 2));
    }
}
