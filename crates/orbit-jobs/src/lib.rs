//! The `jobs` orbit primitive (WIT `orbit:runtime/jobs`): reusable stored
//! jobs.
//!
//! A workspace registers a named job (a component, its default fuel and
//! timeout, a description) with [`Jobs::register`] or
//! `orbit jobs add NAME component.wasm`. Components are content-addressed:
//! the bytes are stored once per sha256 in the job database, however many
//! jobs use them.
//!
//! Guests then
//! - **`invoke`** a job: it runs at once as a child run, recorded with its
//!   parent's run id ([`RunRecord::parent`](orbit_runs::RunRecord::parent)),
//!   under the same [`Engine`]. The child gets at most the parent's remaining
//!   fuel and never runs past the parent's deadline; the fuel it used is
//!   taken from the parent's, so a child can never extend its parent's budget.
//!   It shares the parent's named budgets ([`orbit_engine::Budgets`]: `ai`
//!   tokens, `tools` calls, `fetch` requests).
//! - **`enqueue`** a job: it is written to a durable queue in redb and run in
//!   the background by the workers ([`Jobs::start_workers`]); **`status`**
//!   reports where it is. It runs on a [`JobBudget`] taken from the parent
//!   at enqueue: its fuel (never more than half of what the parent has
//!   left) and the same share of what is left of each named budget.
//!
//! # The queue, crashes and restarts
//! A worker marks a job `running`, counts the attempt and picks the run's id
//! in one durable commit before the run starts. After a crash,
//! [`JobStore::recover`] looks at each job left `running`: if its run was
//! recorded, the job takes that result (it ran to completion once and is not
//! run again); otherwise it is queued again and retried, its attempts
//! counted; after [`JobLimits::max_attempts`] interrupted attempts it fails.
//! Finishing a job is one commit too, and a finished job is never finished
//! again, so every job completes exactly once in effect.
//!
//! # Guards ([`JobLimits`])
//! A nesting depth limit (for `invoke` and `enqueue` alike), a per-workspace
//! quota of queued and running jobs, and a per-workspace cap on jobs running
//! at once. A guest that recurses through `invoke` or fork-bombs through
//! `enqueue` gets `limit-exceeded`; other workspaces' jobs keep running.

mod error;
mod host;
mod store;
mod worker;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use orbit_engine::wasmtime::component::Linker;
use orbit_engine::{
    Engine, EngineError, ErrorCode, Extensions, HostError, LoadedComponent, Primitive, RunInfo, RunState, WeakEngine,
};
use orbit_workspace::{Principal, WorkspaceId};

pub use error::JobsError;
pub use store::{
    JobBudget, JobDefaults, JobFailure, JobId, JobSpec, JobState, JobStore, MAX_DESCRIPTION_BYTES, MAX_NAME_BYTES,
    QueuedJob, Recovery, check_name,
};
pub use worker::JobWorkers;

/// Limits of the `jobs` primitive. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobLimits {
    /// How deeply runs may nest: a top-level run is at depth 0, a job it
    /// invokes or enqueues at depth 1, and so on. A call that would start a
    /// run deeper than this gets `limit-exceeded`. Default 4.
    pub max_depth: u32,
    /// Jobs a workspace may have queued or running at once; `enqueue` past
    /// it gets `limit-exceeded`. Default 1,000.
    pub max_queued_per_workspace: usize,
    /// Queued jobs of one workspace that run at the same time. Default 4.
    /// (All runs also share the engine's `max_concurrent_runs`.)
    pub max_running_per_workspace: usize,
    /// Largest job input, in bytes. Default 1 MiB.
    pub max_input_bytes: usize,
    /// Times a queued job is started before a crash-interrupted job is
    /// given up as `failed` (`internal`). Default 3.
    pub max_attempts: u32,
    /// How often idle workers look at the queue even without being woken
    /// (a guest's `enqueue` wakes them at once). Default 250 ms.
    pub poll_interval: Duration,
    /// How long finished jobs (and so their `status`) are kept; older ones
    /// are deleted when workers start. Default 7 days.
    pub keep_finished: Duration,
    /// Fuel a run's `enqueue` hands a job registered without its own fuel
    /// ([`JobDefaults::fuel`]), in wasmtime fuel units, taken from the run's
    /// fuel at once (never more than half of what the run has left).
    /// Default 100,000,000, a twentieth of a run's default fuel.
    pub queued_fuel: u64,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            max_depth: 4,
            max_queued_per_workspace: 1000,
            max_running_per_workspace: 4,
            max_input_bytes: 1 << 20,
            max_attempts: 3,
            poll_interval: Duration::from_millis(250),
            keep_finished: Duration::from_secs(7 * 24 * 3600),
            queued_fuel: 100_000_000,
        }
    }
}

/// Loaded components kept per [`Jobs`], by digest.
const MAX_LOADED: usize = 64;

/// The `jobs` primitive: the job store plus the engine it runs jobs on.
/// Cheap to clone.
///
/// Compose it into an engine with `.primitive(jobs.clone())`; the engine
/// hands itself to the primitive when built ([`Primitive::attach`]).
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

/// Asked by the queue workers before a queued job starts: whether the
/// principal the job acts for (and so the token it was enqueued with) may
/// still act in the workspace. `false` refuses the job. Called on the
/// blocking pool; see [`Jobs::set_principal_check`].
pub type PrincipalCheck = Arc<dyn Fn(&WorkspaceId, &Principal) -> bool + Send + Sync>;

/// The failure detail of a queued job refused by the [`PrincipalCheck`].
pub const PRINCIPAL_REFUSED: &str = "not started: the principal that enqueued it may no longer act (its token was revoked or expired, or its member was removed)";

pub(crate) struct Inner {
    pub(crate) store: JobStore,
    pub(crate) limits: JobLimits,
    pub(crate) principal_check: OnceLock<PrincipalCheck>,
    engine: OnceLock<WeakEngine>,
    loaded: Mutex<HashMap<String, LoadedComponent>>,
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) workers_started: AtomicBool,
}

impl Jobs {
    /// The job database at `path` (created if needed), opened at its
    /// first use ([`JobStore::open`]).
    ///
    /// # Errors
    /// As [`JobStore::open`].
    pub fn open(path: &Path, limits: JobLimits) -> Result<Self, JobsError> {
        let store = JobStore::open(path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                limits,
                principal_check: OnceLock::new(),
                engine: OnceLock::new(),
                loaded: Mutex::new(HashMap::new()),
                wake: tokio::sync::Notify::new(),
                workers_started: AtomicBool::new(false),
            }),
        })
    }

    /// The job store.
    pub fn store(&self) -> &JobStore {
        &self.inner.store
    }

    /// The limits.
    pub fn limits(&self) -> &JobLimits {
        &self.inner.limits
    }

    /// Registers (or replaces) the job `name` in `ws`, after checking with
    /// the engine that `wasm` is a component Orbit can run (this compiles it
    /// into the compile cache).
    ///
    /// # Errors
    /// [`JobsError::InvalidName`], [`JobsError::DescriptionTooLong`],
    /// [`JobsError::Component`] for bytes the engine refuses,
    /// [`JobsError::NoEngine`] before the engine is built, or
    /// [`JobsError::Database`].
    pub fn register(
        &self,
        ws: &WorkspaceId,
        name: &str,
        wasm: &[u8],
        defaults: JobDefaults,
    ) -> Result<JobSpec, JobsError> {
        check_name(name)?;
        let engine = self.inner.engine()?;
        let component = engine.load(wasm)?;
        self.inner.store.add(ws, name, wasm, component.digest(), defaults)
    }

    /// Queues the job `name` of `ws` from the host (not from a run: the
    /// job's run has no parent and depth 0). Its run acts for
    /// [`Principal::embedded`]; see [`Jobs::enqueue_as`].
    ///
    /// # Errors
    /// [`JobsError::InvalidName`], [`JobsError::InputTooLarge`],
    /// [`JobsError::NotFound`], [`JobsError::QueueFull`] or
    /// [`JobsError::Database`].
    pub fn enqueue(&self, ws: &WorkspaceId, name: &str, input: impl Into<String>) -> Result<JobId, JobsError> {
        self.enqueue_as(ws, name, input, Principal::embedded())
    }

    /// As [`Jobs::enqueue`], for `principal`: the job's run acts for it.
    /// The caller has decided that `principal` may enqueue jobs
    /// ([`Action::EnqueueJob`](orbit_workspace::Action::EnqueueJob)).
    ///
    /// # Errors
    /// As [`Jobs::enqueue`].
    pub fn enqueue_as(
        &self,
        ws: &WorkspaceId,
        name: &str,
        input: impl Into<String>,
        principal: Principal,
    ) -> Result<JobId, JobsError> {
        self.inner.enqueue(ws, name, input.into(), None, 0, principal)
    }

    /// Sets the check the queue workers ask before starting each queued job
    /// (the `orbit` facade asks its team store whether the job's token is
    /// still active). A job it refuses is not run: it ends `failed` with
    /// code `permission-denied` and detail [`PRINCIPAL_REFUSED`], recorded in
    /// the job store. Without a check every queued job runs. Set it before
    /// starting workers; returns `false` (and changes nothing) when a check
    /// was already set.
    pub fn set_principal_check(&self, check: PrincipalCheck) -> bool {
        self.inner.principal_check.set(check).is_ok()
    }

    /// Starts the queue workers on the current tokio runtime: first
    /// [`JobStore::recover`] deals with jobs a crash left running, then a
    /// dispatcher runs queued jobs, at most
    /// [`JobLimits::max_running_per_workspace`] at once per workspace. The
    /// workers stop when the returned handle is dropped; jobs still running
    /// then are retried by the next start.
    ///
    /// # Errors
    /// [`JobsError::Workers`] outside a tokio runtime or when workers are
    /// already running; [`JobsError::NoEngine`]; [`JobsError::Database`].
    pub fn start_workers(&self) -> Result<JobWorkers, JobsError> {
        worker::start(self.inner.clone())
    }
}

impl Inner {
    pub(crate) fn engine(&self) -> Result<Engine, JobsError> {
        self.engine.get().and_then(WeakEngine::upgrade).ok_or(JobsError::NoEngine)
    }

    pub(crate) fn enqueue(
        &self,
        ws: &WorkspaceId,
        name: &str,
        input: String,
        parent: Option<(orbit_runs::RunId, JobBudget)>,
        depth: u32,
        principal: Principal,
    ) -> Result<JobId, JobsError> {
        check_name(name)?;
        self.check_input(&input)?;
        if depth > self.limits.max_depth {
            return Err(JobsError::DepthExceeded { limit: self.limits.max_depth });
        }
        let id = self.store.enqueue(ws, name, input, parent, depth, principal, self.limits.max_queued_per_workspace)?;
        self.wake.notify_one();
        Ok(id)
    }

    pub(crate) fn check_input(&self, input: &str) -> Result<(), JobsError> {
        if input.len() > self.limits.max_input_bytes {
            return Err(JobsError::InputTooLarge { size: input.len(), limit: self.limits.max_input_bytes });
        }
        Ok(())
    }

    /// The registered job's component, loaded (compiled or from the compile
    /// cache) and kept by digest.
    pub(crate) async fn load(&self, engine: &Engine, spec: &JobSpec) -> Result<LoadedComponent, HostError> {
        if let Some(c) = self.loaded.lock().unwrap_or_else(|e| e.into_inner()).get(&spec.digest) {
            return Ok(c.clone());
        }
        let wasm = self
            .store
            .component(&spec.digest)?
            .ok_or_else(|| HostError::with_detail(ErrorCode::Internal, format!("component {} missing", spec.digest)))?;
        let component = engine
            .load_async(&wasm, engine.config().default_limits.component_bytes)
            .await
            .map_err(|e| HostError::with_detail(ErrorCode::Internal, format!("loading job {}: {e}", spec.name)))?;
        // Baseline code is not kept: the engine's tier-up replaces it, and
        // the next load gets Cranelift's.
        if component.tier() != orbit_engine::Tier::Optimized {
            return Ok(component);
        }
        let mut map = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_LOADED
            && let Some(victim) = map.keys().next().cloned()
        {
            map.remove(&victim);
        }
        map.insert(spec.digest.clone(), component.clone());
        Ok(component)
    }
}

impl Primitive for Jobs {
    fn name(&self) -> &'static str {
        "jobs"
    }

    fn add_to_linker(&self, linker: &mut Linker<RunState>) -> Result<(), EngineError> {
        host::add_to_linker(linker, self.inner.clone()).map_err(|e| EngineError::Config(format!("{e:#}")))
    }

    fn prepare(&self, _run: &RunInfo, _extensions: &mut Extensions) -> Result<(), EngineError> {
        // No per-run state: the host functions read the run's id, depth,
        // deadline and fuel from the store itself.
        Ok(())
    }

    fn attach(&self, engine: &Engine) {
        let _ = self.inner.engine.set(engine.downgrade());
    }
}
