//! The engine: a wasmtime `Engine` and `Linker` per compiler (Cranelift,
//! and Winch for first runs; see `tier.rs`), a fresh `Store` per run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use orbit_runs::{ComponentKind, RunId, RunRecord, RunStatus, RunStore};
use orbit_workspace::{Principal, TokenId, WorkspaceId};
use wasmtime::component::{Component, types::ComponentItem};
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::bindings::AgentPre;
use crate::budget::Budgets;
use crate::compile::{CompileCache, CompileGate, digest};
use crate::config::{EngineConfig, RecordAck};
use crate::error::EngineError;
use crate::limits::Limits;
use crate::primitive::Primitive;
use crate::state::{Cancel, RunState};
use crate::tier::{Compiler, Tier, TierUpOver, TierUps};

/// Host resources (streams, pollables) a run may hold at once.
pub(crate) const MAX_HOST_RESOURCES: usize = 10_000;
/// Loaded components kept in memory; beyond this, one is evicted per load.
const MAX_LOADED_COMPONENTS: usize = 256;
/// Tier-ups waiting or compiling at most; a cache miss past it compiles
/// with Cranelift before it runs.
const MAX_PENDING_TIER_UPS: usize = 8;
/// Bytes of a guest-chosen error message kept on the run record.
pub(crate) const MAX_GUEST_ERROR_MESSAGE: usize = 1024;

/// Refuses a component over `max_bytes`, before any hashing or compiling.
fn check_size(wasm: &[u8], max_bytes: usize) -> Result<(), EngineError> {
    if wasm.len() > max_bytes {
        return Err(EngineError::ComponentTooLarge { size: wasm.len(), limit: max_bytes });
    }
    Ok(())
}

/// Builds an [`Engine`] from a configuration, a run store and primitives.
pub struct EngineBuilder {
    config: EngineConfig,
    runs: RunStore,
    primitives: Vec<Arc<dyn Primitive>>,
    on_finished: Option<RunObserver>,
}

/// Called with each run's record once it is recorded (for metrics). It runs
/// on the run's task: keep it short and never block.
pub type RunObserver = Arc<dyn Fn(&RunRecord) + Send + Sync>;

impl EngineBuilder {
    /// Adds a primitive. Its host functions become importable by guests.
    pub fn primitive(mut self, primitive: impl Primitive) -> Self {
        self.primitives.push(Arc::new(primitive));
        self
    }

    /// Calls `observer` with every run's record once it is recorded (by
    /// [`Engine::invoke`], including child runs and jobs).
    pub fn on_finished(mut self, observer: RunObserver) -> Self {
        self.on_finished = Some(observer);
        self
    }

    /// Builds the engine: configures wasmtime, links WASI p2, `log` and every
    /// primitive, and starts the epoch ticker thread. The baseline
    /// compiler's engine is built later, at the first component that is
    /// not in the compile cache.
    ///
    /// # Errors
    /// [`EngineError::Config`] when wasmtime rejects the configuration or two
    /// primitives define the same function; [`EngineError::Cache`] when the
    /// cache directory cannot be created.
    pub fn build(self) -> Result<Engine, EngineError> {
        let EngineBuilder { config, runs, primitives, on_finished } = self;
        let n = config.max_concurrent_runs.max(1);
        let optimized = Compiler::new(&config, Tier::Optimized, &primitives)?;
        let cache = CompileCache::new(&optimized.engine, config.cache_dir.clone(), config.max_cache_bytes)?;
        let stop = Arc::new(AtomicBool::new(false));
        // Built at the first cache miss: a process served from the compile
        // cache never pays for the second engine and linker.
        let baseline_epoch = Arc::new(OnceLock::new());
        spawn_epoch_ticker(optimized.engine.clone(), baseline_epoch.clone(), config.epoch_tick, stop.clone());
        let built = Engine {
            inner: Arc::new(Inner {
                permits: tokio::sync::Semaphore::new(n as usize),
                compiles: Arc::new(CompileGate::new(config.max_concurrent_compiles)),
                optimized,
                baseline: OnceLock::new(),
                baseline_epoch,
                tier_ups: Arc::default(),
                tier_up_gate: Arc::new(CompileGate::new(config.max_concurrent_compiles.saturating_sub(1))),
                primitives,
                cache: Arc::new(cache),
                runs,
                config,
                components: Mutex::new(HashMap::new()),
                in_flight: Mutex::new(HashMap::new()),
                cancelled_tokens: Mutex::new(std::collections::HashSet::new()),
                stop,
                on_finished,
            }),
        };
        for p in &built.inner.primitives {
            p.attach(&built);
        }
        Ok(built)
    }
}

fn spawn_epoch_ticker(
    engine: wasmtime::Engine,
    baseline: Arc<OnceLock<wasmtime::Engine>>,
    tick: Duration,
    stop: Arc<AtomicBool>,
) {
    let _ = std::thread::Builder::new().name("orbit-epoch".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(tick);
            engine.increment_epoch();
            // Only the engine: a linker holds primitives (and their
            // databases), which must close when the engine is dropped.
            if let Some(baseline) = baseline.get() {
                baseline.increment_epoch();
            }
        }
    });
}

/// The Orbit engine. Cheap to clone; share one per process.
///
/// # Example
/// ```
/// use orbit_engine::{Engine, EngineConfig, Invocation, Limits};
/// use orbit_runs::{RunStatus, RunStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let runs = RunStore::open(&dir.path().join("runs.redb"))?;
/// // Build once: wasmtime engine, linker, compile cache, epoch ticker.
/// let engine = Engine::builder(EngineConfig::with_cache_dir(dir.path().join("compiled")), runs).build()?;
///
/// // Any component built for wasm32-wasip2; here a fixture that echoes its input.
/// let wasm = std::fs::read(orbit_test_guests::path("echo"))?;
/// let component = engine.load(&wasm)?;
///
/// let mut limits = Limits::default();
/// limits.fuel = 10_000_000;
/// let outcome = engine.invoke(&component, Invocation::new("hello").limits(limits)).await?;
/// assert_eq!(outcome.status(), RunStatus::Succeeded);
/// assert_eq!(outcome.output_text(), "hello");
///
/// // The run is durable before `invoke` returns.
/// let stored = engine.runs().get(outcome.run_id())?.expect("recorded");
/// assert_eq!(stored.fuel_consumed, outcome.fuel_consumed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Cranelift's engine and linker: the compile cache's code.
    pub(crate) optimized: Compiler,
    /// Winch's, once a component missed the compile cache; `None` when
    /// Winch cannot run here (tiering is then off).
    pub(crate) baseline: OnceLock<Option<Compiler>>,
    /// Winch's wasmtime engine alone, for the epoch ticker.
    pub(crate) baseline_epoch: Arc<OnceLock<wasmtime::Engine>>,
    /// Cranelift compiles running in the background to replace Winch code.
    pub(crate) tier_ups: Arc<TierUps>,
    /// Tier-ups take at most `max_concurrent_compiles - 1` places of
    /// `compiles` (one with a cap of 1), so a load always has one.
    pub(crate) tier_up_gate: Arc<CompileGate>,
    pub(crate) primitives: Vec<Arc<dyn Primitive>>,
    pub(crate) cache: Arc<CompileCache>,
    pub(crate) runs: RunStore,
    pub(crate) config: EngineConfig,
    pub(crate) components: Mutex<HashMap<String, LoadedComponent>>,
    /// The runs executing now, with who they act for and how to stop them.
    pub(crate) in_flight: Mutex<HashMap<RunId, InFlight>>,
    /// Tokens cancelled with [`Engine::cancel_token`]: a run of one that
    /// registers later (it was waiting for a slot or compiling when the
    /// token was revoked) is cancelled as it starts. One entry per revoked
    /// token, kept for the engine's life. Locked after `in_flight`.
    pub(crate) cancelled_tokens: Mutex<std::collections::HashSet<TokenId>>,
    pub(crate) permits: tokio::sync::Semaphore,
    /// Caps the compiles running at once, tier-ups included.
    pub(crate) compiles: Arc<CompileGate>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) on_finished: Option<RunObserver>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A run in flight, as [`Engine::cancel_run`] and [`Engine::cancel_token`]
/// find it.
pub(crate) struct InFlight {
    pub(crate) workspace: WorkspaceId,
    pub(crate) principal: Principal,
    pub(crate) parent: Option<RunId>,
    pub(crate) cancel: Arc<Cancel>,
}

/// Removes a run from the in-flight map when its execution ends, however
/// it ends.
pub(crate) struct InFlightGuard<'a> {
    pub(crate) inner: &'a Inner,
    pub(crate) run_id: RunId,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.run_id);
    }
}

/// A non-owning handle to an [`Engine`], from [`Engine::downgrade`].
#[derive(Clone)]
pub struct WeakEngine(std::sync::Weak<Inner>);

impl WeakEngine {
    /// The engine, unless it has been dropped.
    pub fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
}

/// A compiled, linked component, ready to be instantiated for runs.
/// Cheap to clone.
#[derive(Clone)]
pub struct LoadedComponent {
    /// Identifies the engine that linked it: wasmtime refuses (by panicking)
    /// to instantiate a component in another engine's store.
    pub(crate) engine_id: usize,
    pub(crate) digest: Arc<str>,
    pub(crate) kind: ComponentKind,
    /// The interfaces it imports, without their versions
    /// (`orbit:runtime/jobs`, `wasi:cli/stdout`).
    pub(crate) imports: Arc<[String]>,
    pub(crate) tier: Tier,
    pub(crate) pre: Pre,
}

#[derive(Clone)]
pub(crate) enum Pre {
    Agent(AgentPre<RunState>),
    Command(CommandPre<RunState>),
}

impl LoadedComponent {
    /// Hex sha256 of the component's bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether the component is an agent (exports `run`) or a `wasi:cli`
    /// command.
    pub fn kind(&self) -> ComponentKind {
        self.kind
    }

    /// Which compiler's code it runs: [`Tier::Baseline`] from a load that
    /// missed the compile cache (with tiered compilation on), else
    /// [`Tier::Optimized`]. A value keeps its tier; loading the same bytes
    /// again after the tier-up gives the optimized one.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Whether it imports `interface`, named without a version (for
    /// example `orbit:runtime/jobs`): `orbit run` starts job workers only
    /// for a component that can wait for jobs.
    pub fn imports(&self, interface: &str) -> bool {
        self.imports.iter().any(|i| i == interface)
    }

    /// The wasmtime engine its code belongs to: a run's store must be of
    /// this engine (wasmtime panics otherwise).
    pub(crate) fn wasmtime_engine(&self) -> &wasmtime::Engine {
        match &self.pre {
            Pre::Agent(pre) => pre.instance_pre().engine(),
            Pre::Command(pre) => pre.instance_pre().engine(),
        }
    }
}

/// One request to run a component.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Invocation {
    /// The workspace the run belongs to. Default `default`.
    pub workspace: WorkspaceId,
    /// The input: the `run` argument of an agent, or a command's stdin.
    pub input: String,
    /// A command's arguments after its name (`argv[1..]`; `argv[0]` is
    /// `component`). Agents do not see them. Default none.
    pub args: Vec<String>,
    /// Per-run limits; `None` uses the engine's defaults.
    pub limits: Option<Limits>,
    /// The run that started this one, for child runs (the `jobs`
    /// primitive); recorded as [`RunRecord::parent`]. Default `None`.
    pub parent: Option<RunId>,
    /// How deeply this run is nested under top-level runs: 0 for a top-level
    /// run, the parent's depth + 1 for a child. Exposed to primitives as
    /// [`RunInfo::depth`](crate::RunInfo::depth). Default 0.
    pub depth: u32,
    /// An absolute deadline that caps `limits.timeout`: the run ends at
    /// whichever comes first, so a child can never outlive its parent's
    /// deadline. Default `None`.
    pub deadline: Option<tokio::time::Instant>,
    /// The id to record the run under, chosen in advance so a caller can
    /// note it durably before the run starts (the `jobs` queue does, to
    /// recognise after a crash a run that finished). Must be fresh: the run
    /// store refuses a second record with the same id. Default `None`, a new
    /// [`RunId`].
    pub run_id: Option<RunId>,
    /// Fail with [`EngineError::Busy`] instead of waiting when all
    /// [`max_concurrent_runs`](EngineConfig::max_concurrent_runs) slots are
    /// taken. Child runs set it: a parent waiting for a slot while holding
    /// its own could otherwise deadlock with other parents. Default `false`.
    pub no_wait: bool,
    /// Wait for a run slot only until this instant, then fail with
    /// [`EngineError::Busy`] (the run never started, so trying again is
    /// safe). Default `None`: wait as long as it takes (or not at all with
    /// `no_wait`).
    pub slot_deadline: Option<tokio::time::Instant>,
    /// Who the run acts for: recorded on the run, asked by every primitive
    /// before it writes, inherited by child runs and by jobs the run
    /// enqueues, and matched by [`Engine::cancel_token`]. Default
    /// [`Principal::embedded`], so a program embedding the engine keeps its
    /// own tenancy.
    pub principal: Principal,
    /// The named budgets of primitives (ai tokens, tools calls, fetch
    /// requests) the run spends: a parent's, shared by a child run so the
    /// two spend one budget, or a queued job's slice. `None` gives the run
    /// a fresh ledger, which each primitive opens at its per-run default.
    /// See [`Budgets`].
    pub budgets: Option<Budgets>,
}

impl Invocation {
    /// An invocation in the default workspace with default limits.
    pub fn new(input: impl Into<String>) -> Self {
        Self {
            workspace: WorkspaceId::default(),
            input: input.into(),
            args: Vec::new(),
            limits: None,
            parent: None,
            depth: 0,
            deadline: None,
            run_id: None,
            no_wait: false,
            slot_deadline: None,
            principal: Principal::embedded(),
            budgets: None,
        }
    }

    /// Sets the named budgets the run spends (see the `budgets` field).
    pub fn budgets(mut self, budgets: Budgets) -> Self {
        self.budgets = Some(budgets);
        self
    }

    /// Sets who the run acts for (see the `principal` field).
    pub fn principal(mut self, principal: Principal) -> Self {
        self.principal = principal;
        self
    }

    /// Sets the workspace.
    pub fn workspace(mut self, workspace: WorkspaceId) -> Self {
        self.workspace = workspace;
        self
    }

    /// Sets a command's arguments (see the `args` field).
    pub fn args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets per-run limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Makes this a child run of `parent`, nested at `depth` (the parent's
    /// depth + 1).
    pub fn child_of(mut self, parent: RunId, depth: u32) -> Self {
        self.parent = Some(parent);
        self.depth = depth;
        self
    }

    /// Caps the run's deadline at `deadline` (see the `deadline` field).
    pub fn deadline(mut self, deadline: tokio::time::Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Records the run under `id` (see the `run_id` field).
    pub fn run_id(mut self, id: RunId) -> Self {
        self.run_id = Some(id);
        self
    }

    /// Waits for a run slot until `until` at most (see the
    /// `slot_deadline` field).
    pub fn slot_deadline(mut self, until: tokio::time::Instant) -> Self {
        self.slot_deadline = Some(until);
        self
    }

    /// Fails at once when no run slot is free (see the `no_wait` field).
    pub fn no_wait(mut self) -> Self {
        self.no_wait = true;
        self
    }
}

/// One of an engine's run slots, taken with [`Engine::reserve`] before the
/// run starts; [`Engine::invoke_in`] runs in it. Dropping it frees the slot.
/// It borrows the engine it came from, so it cannot outlive it.
#[must_use = "a reserved slot is freed when dropped; run in it with Engine::invoke_in"]
pub struct RunSlot<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
    engine_id: usize,
}

impl std::fmt::Debug for RunSlot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunSlot")
    }
}

/// The result of a run: its durable record, plus the full output.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Outcome {
    /// The record as committed to the run store.
    pub record: RunRecord,
    /// The output: an agent's `run` result, or a command's stdout. Empty
    /// when the run failed before producing output or exceeded the output
    /// limit.
    pub output: Vec<u8>,
}

impl Outcome {
    /// The run's id.
    pub fn run_id(&self) -> RunId {
        self.record.id
    }
    /// How the run ended.
    pub fn status(&self) -> RunStatus {
        self.record.status
    }
    /// The output as UTF-8, lossily.
    pub fn output_text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
    /// Fuel consumed, in wasmtime fuel units.
    pub fn fuel_consumed(&self) -> u64 {
        self.record.fuel_consumed
    }
    /// Wall-clock duration of the run.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.record.duration_us)
    }
}

impl Engine {
    fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Starts building an engine that records runs in `runs`.
    pub fn builder(config: EngineConfig, runs: RunStore) -> EngineBuilder {
        EngineBuilder { config, runs, primitives: Vec::new(), on_finished: None }
    }

    /// A handle that does not keep the engine alive, for primitives that
    /// start runs themselves (see [`Primitive::attach`]): a primitive is
    /// owned by the engine, so holding an [`Engine`] would be a cycle.
    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }

    /// The run store runs are recorded in.
    pub fn runs(&self) -> &RunStore {
        &self.inner.runs
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// How many run slots are taken right now: runs executing, and slots
    /// [`reserve`](Self::reserve)d for runs about to start (a count, at
    /// most [`max_concurrent_runs`](EngineConfig::max_concurrent_runs);
    /// runs waiting for a slot are not counted).
    pub fn runs_in_flight(&self) -> usize {
        (self.inner.config.max_concurrent_runs.max(1) as usize).saturating_sub(self.inner.permits.available_permits())
    }

    /// Cancels run `run_id` if it is executing, together with the child
    /// runs it started (`jobs.invoke`). The run stops at its next host call
    /// or epoch tick and is recorded with status
    /// [`cancelled`](RunStatus::Cancelled). Returns whether the run was in
    /// flight (and not already cancelled).
    pub fn cancel_run(&self, run_id: RunId) -> bool {
        let map = self.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let Some(run) = map.get(&run_id) else {
            return false;
        };
        let told = run.cancel.cancel();
        // Children, grandchildren...: each generation's parent is in the set.
        let mut stopped = vec![run_id];
        let mut i = 0;
        while i < stopped.len() {
            let parent = stopped[i];
            for (id, r) in map.iter().filter(|(_, r)| r.parent == Some(parent)) {
                r.cancel.cancel();
                stopped.push(*id);
            }
            i += 1;
        }
        told
    }

    /// Cancels every executing run whose principal authenticated with
    /// `token` (for example because the token was revoked), child runs
    /// included: they inherit the principal. Each stops at its next host
    /// call or epoch tick and is recorded as
    /// [`cancelled`](RunStatus::Cancelled). Returns how many runs were told
    /// (runs cancelled before are not counted again).
    ///
    /// The token stays cancelled for the engine's life: a run of it that
    /// had not started executing yet (waiting for a run slot, compiling) is
    /// cancelled as soon as it starts, so none can finish after this returns.
    pub fn cancel_token(&self, token: TokenId) -> usize {
        // Registration takes `in_flight` then reads `cancelled_tokens`: with
        // both held here, a run either is in the map or sees the token.
        let map = self.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.cancelled_tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(token);
        map.values().filter(|r| r.principal.token == Some(token)).filter(|r| r.cancel.cancel()).count()
    }

    /// The ids of the runs executing now, with the principal each acts for.
    pub fn runs_executing(&self) -> Vec<(RunId, Principal)> {
        let map = self.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(id, r)| (*id, r.principal.clone())).collect()
    }

    /// The workspace and principal of run `run_id` while it executes;
    /// `None` once it has finished (then its record says).
    pub fn executing(&self, run_id: RunId) -> Option<(WorkspaceId, Principal)> {
        let map = self.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&run_id).map(|r| (r.workspace.clone(), r.principal.clone()))
    }

    /// The underlying wasmtime engine (Cranelift's, which the compile
    /// cache's artifacts belong to).
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.optimized.engine
    }

    /// The engine and linker that link `tier`'s code.
    fn compiler(&self, tier: Tier) -> &Compiler {
        match (tier, self.inner.baseline.get()) {
            (Tier::Baseline, Some(Some(baseline))) => baseline,
            _ => &self.inner.optimized,
        }
    }

    /// Winch's engine and linker, built at the first call; `None` when
    /// tiered compilation is off or Winch cannot run here.
    pub(crate) fn baseline(&self) -> Option<&Compiler> {
        // Winch is a supported compiler (wasmtime's tier 1) on x86-64 only.
        if !self.inner.config.tiered_compilation || !cfg!(target_arch = "x86_64") {
            return None;
        }
        self.inner
            .baseline
            .get_or_init(|| match Compiler::new(&self.inner.config, Tier::Baseline, &self.inner.primitives) {
                Ok(c) => {
                    let _ = self.inner.baseline_epoch.set(c.engine.clone());
                    Some(c)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "baseline compiler unavailable; compiling with Cranelift only");
                    None
                }
            })
            .as_ref()
    }

    /// Background compiles with Cranelift that will replace baseline code
    /// (see [`EngineConfig::tiered_compilation`]), running now.
    pub fn tier_ups_in_flight(&self) -> usize {
        self.inner.tier_ups.count()
    }

    /// Waits until every background compile with Cranelift has finished
    /// (its artifact is in the compile cache, or it failed and was logged),
    /// for at most `timeout`. A process that runs one component and exits
    /// (`orbit run`) calls it after answering, so that the next process
    /// loads the optimized code from the cache. Returns whether none is
    /// left.
    pub fn wait_for_tier_ups(&self, timeout: Duration) -> bool {
        self.inner.tier_ups.wait(timeout)
    }

    /// Whether a compiled artifact for `wasm` is already in the disk cache.
    pub fn is_cached(&self, wasm: &[u8]) -> bool {
        self.inner.cache.contains(&digest(wasm))
    }

    /// [`Engine::load`] where it needs no compile: the component for `wasm`
    /// when this engine has it loaded or its artifact is in the compile
    /// cache, `None` otherwise (a caller can then show progress around
    /// [`Engine::load`]). Hashes `wasm` once, where [`Engine::is_cached`]
    /// and then [`Engine::load`] hash it twice (SHA-256, about 80 µs for
    /// 100 KiB).
    ///
    /// # Errors
    /// As [`Engine::load`].
    pub fn load_if_cached(&self, wasm: &[u8]) -> Result<Option<LoadedComponent>, EngineError> {
        let max_bytes = self.inner.config.default_limits.component_bytes;
        check_size(wasm, max_bytes)?;
        let digest = digest(wasm);
        let loaded = self.inner.components.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&digest);
        if !loaded && !self.inner.cache.contains(&digest) {
            return Ok(None);
        }
        self.load_digested(wasm, digest, None).map(Some)
    }

    /// Validates, compiles (or loads from the compile cache) and links a
    /// component, capping its size at the default `component_bytes` limit.
    /// Loaded components are kept in memory by digest, so loading the same
    /// bytes again is a hash and a map lookup.
    ///
    /// # Errors
    /// [`EngineError::ComponentTooLarge`], [`EngineError::NotAComponent`],
    /// [`EngineError::NoEntryPoint`], [`EngineError::Link`] or
    /// [`EngineError::Cache`].
    pub fn load(&self, wasm: &[u8]) -> Result<LoadedComponent, EngineError> {
        self.load_with_limit(wasm, self.inner.config.default_limits.component_bytes)
    }

    /// As [`Engine::load`], with an explicit size cap in bytes.
    ///
    /// # Errors
    /// As [`Engine::load`].
    pub fn load_with_limit(&self, wasm: &[u8], max_bytes: usize) -> Result<LoadedComponent, EngineError> {
        self.load_gated(wasm, max_bytes, None)
    }

    /// [`Engine::load_with_limit`], where the compile (or the read of the
    /// cached artifact) waits for a place under `max_concurrent_compiles`
    /// and is skipped when `abandoned` is set by then.
    fn load_gated(
        &self,
        wasm: &[u8],
        max_bytes: usize,
        abandoned: Option<&AtomicBool>,
    ) -> Result<LoadedComponent, EngineError> {
        check_size(wasm, max_bytes)?;
        self.load_digested(wasm, digest(wasm), abandoned)
    }

    /// [`Engine::load_gated`] once the size is checked and `digest` is
    /// [`digest`]`(wasm)`.
    fn load_digested(
        &self,
        wasm: &[u8],
        digest: String,
        abandoned: Option<&AtomicBool>,
    ) -> Result<LoadedComponent, EngineError> {
        if let Some(c) = self.inner.components.lock().unwrap_or_else(|e| e.into_inner()).get(&digest) {
            return Ok(c.clone());
        }
        let (component, tier) = {
            let _slot = self.inner.compiles.enter();
            if abandoned.is_some_and(|a| a.load(Ordering::Acquire)) {
                return Err(EngineError::CompileTimeout(self.inner.config.compile_timeout));
            }
            self.compile_or_load(wasm, &digest)?
        };
        let loaded = self.keep_loaded(digest.clone(), self.link(component, digest.clone(), tier)?);
        if loaded.tier == Tier::Baseline {
            self.tier_up(wasm, digest);
        }
        Ok(loaded)
    }

    /// As [`Engine::load`], but always with Cranelift's code: from the
    /// compile cache, or compiled now (and cached) however
    /// [`tiered_compilation`](EngineConfig::tiered_compilation) is set.
    /// What `orbit compile` uses: afterwards the artifact is in the cache
    /// (when the engine has a trusted cache directory).
    ///
    /// # Errors
    /// As [`Engine::load`].
    pub fn load_optimized(&self, wasm: &[u8]) -> Result<LoadedComponent, EngineError> {
        let max_bytes = self.inner.config.default_limits.component_bytes;
        check_size(wasm, max_bytes)?;
        let digest = digest(wasm);
        if let Some(c) = self.inner.components.lock().unwrap_or_else(|e| e.into_inner()).get(&digest)
            && c.tier == Tier::Optimized
            && self.inner.cache.contains(&digest)
        {
            return Ok(c.clone());
        }
        let component = {
            let _slot = self.inner.compiles.enter();
            self.inner.cache.load(&self.inner.optimized.engine, wasm, &digest)?
        };
        Ok(self.keep_loaded(digest.clone(), self.link(component, digest, Tier::Optimized)?))
    }

    /// The component for `wasm`: Winch's code when tiering is on and the
    /// compile cache misses (Cranelift then compiles it in the
    /// background), else the cached artifact or Cranelift's code, cached.
    fn compile_or_load(&self, wasm: &[u8], digest: &str) -> Result<(Component, Tier), EngineError> {
        if self.inner.config.tiered_compilation
            && !self.inner.cache.contains(digest)
            // Past this many tier-ups waiting, the caller waits for
            // Cranelift as without tiering: background work stays bounded.
            && self.inner.tier_ups.count() < MAX_PENDING_TIER_UPS
            && let Some(baseline) = self.baseline()
        {
            let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::compile::compile(&baseline.engine, wasm)
            }));
            match compiled {
                Ok(Ok(component)) => return Ok((component, Tier::Baseline)),
                // Invalid bytes fail Cranelift's compile too, with its error.
                Ok(Err(e)) => tracing::debug!(error = %e, "baseline compile failed; compiling with Cranelift"),
                Err(_) => tracing::warn!("baseline compiler panicked; compiling with Cranelift"),
            }
        }
        Ok((self.inner.cache.load(&self.inner.optimized.engine, wasm, digest)?, Tier::Optimized))
    }

    /// Keeps `loaded` for later loads of `digest` and returns it, evicting
    /// one component when the map is full; never replaces optimized code
    /// with baseline code (a slower load racing a tier-up), returning the
    /// optimized one instead.
    fn keep_loaded(&self, digest: String, loaded: LoadedComponent) -> LoadedComponent {
        let mut map = self.inner.components.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kept) = map.get(&digest)
            && kept.tier == Tier::Optimized
            && loaded.tier == Tier::Baseline
        {
            return kept.clone();
        }
        if map.len() >= MAX_LOADED_COMPONENTS
            && !map.contains_key(&digest)
            && let Some(victim) = map.keys().next().cloned()
        {
            map.remove(&victim);
        }
        map.insert(digest, loaded.clone());
        loaded
    }

    /// Compiles `wasm` with Cranelift on a background thread (under the
    /// compile cap, leaving loads a place), writes the artifact to the
    /// compile cache (or keeps the code in memory when it cannot be
    /// written), and replaces the baseline component kept for `digest`.
    /// Runs already holding the baseline component finish on it. The
    /// thread holds no strong handle to the engine while it waits and
    /// compiles; it skips the compile when the engine was dropped before
    /// it got its place.
    fn tier_up(&self, wasm: &[u8], digest: String) {
        let tier_ups = self.inner.tier_ups.clone();
        if !tier_ups.start(&digest) {
            return;
        }
        let weak = self.downgrade();
        let (engine, cache) = (self.inner.optimized.engine.clone(), self.inner.cache.clone());
        let (tier_gate, gate) = (self.inner.tier_up_gate.clone(), self.inner.compiles.clone());
        let (wasm, name) = (wasm.to_vec(), digest.clone());
        let spawned = std::thread::Builder::new().name("orbit-tier-up".into()).spawn(move || {
            // Marks the tier-up over however the thread ends, a panic included.
            let _over = TierUpOver(&tier_ups, &name);
            let compiled = {
                let _tier_slot = tier_gate.enter();
                let _slot = gate.enter();
                if weak.upgrade().is_none() {
                    return;
                }
                cache.load(&engine, &wasm, &name).or_else(|e| {
                    tracing::warn!(digest = %name, error = %e, "caching the optimized code failed; keeping it in memory");
                    crate::compile::compile(&engine, &wasm)
                })
            };
            let linked = compiled.and_then(|component| match weak.upgrade() {
                Some(engine) => engine.link(component, name.clone(), Tier::Optimized).map(|l| {
                    engine.keep_loaded(name.clone(), l);
                }),
                None => Ok(()),
            });
            if let Err(e) = linked {
                tracing::warn!(digest = %name, error = %e, "optimizing compile failed; the component keeps its baseline code");
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the optimizing compile; the component keeps its baseline code");
            self.inner.tier_ups.finish(&digest);
        }
    }

    /// As [`Engine::load_with_limit`], compiling on a blocking thread so the
    /// async runtime keeps serving other runs, and giving up after the
    /// engine's `compile_timeout`. A compile given up on before it got a
    /// place under `max_concurrent_compiles` never starts; one that started
    /// finishes in the background within that cap, and is cached.
    ///
    /// # Errors
    /// As [`Engine::load`], and [`EngineError::CompileTimeout`].
    pub async fn load_async(&self, wasm: &[u8], max_bytes: usize) -> Result<LoadedComponent, EngineError> {
        check_size(wasm, max_bytes)?;
        if let Some(c) = self.inner.components.lock().unwrap_or_else(|e| e.into_inner()).get(&digest(wasm)) {
            return Ok(c.clone());
        }
        let (engine, wasm) = (self.clone(), wasm.to_vec());
        let abandoned = Arc::new(AtomicBool::new(false));
        let given_up = abandoned.clone();
        let task = tokio::task::spawn_blocking(move || engine.load_gated(&wasm, max_bytes, Some(&given_up)));
        match tokio::time::timeout(self.inner.config.compile_timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(EngineError::Config(format!("compile task failed: {join}"))),
            Err(_) => {
                abandoned.store(true, Ordering::Release);
                Err(EngineError::CompileTimeout(self.inner.config.compile_timeout))
            }
        }
    }

    /// Compiles running now (at most `max_concurrent_compiles`), including
    /// ones whose caller stopped waiting.
    pub fn compiles_in_flight(&self) -> usize {
        self.inner.compiles.busy()
    }

    fn link(&self, component: Component, digest: String, tier: Tier) -> Result<LoadedComponent, EngineError> {
        let Compiler { engine, linker } = self.compiler(tier);
        let mut kind = None;
        for (name, item) in component.component_type().exports(engine) {
            match (name, item.ty) {
                ("run", ComponentItem::ComponentFunc(_)) => kind = Some(ComponentKind::Agent),
                (n, ComponentItem::ComponentInstance(_)) if n.starts_with("wasi:cli/run@0.2") && kind.is_none() => {
                    kind = Some(ComponentKind::Command)
                }
                _ => {}
            }
        }
        let kind = kind.ok_or(EngineError::NoEntryPoint)?;
        let imports = component
            .component_type()
            .imports(engine)
            .map(|(name, _)| name.split('@').next().unwrap_or(name).to_owned())
            .collect();
        let pre = linker.instantiate_pre(&component).map_err(|e| EngineError::Link(format!("{e:#}")))?;
        let pre = match kind {
            ComponentKind::Agent => Pre::Agent(AgentPre::new(pre).map_err(|e| EngineError::Link(format!("{e:#}")))?),
            ComponentKind::Command => {
                Pre::Command(CommandPre::new(pre).map_err(|e| EngineError::Link(format!("{e:#}")))?)
            }
        };
        Ok(LoadedComponent { engine_id: self.id(), digest: digest.into(), kind, imports, tier, pre })
    }

    /// Runs `component` once in a fresh store under the invocation's limits,
    /// records the run (durably before returning, unless the engine's
    /// [`record_ack`](EngineConfig::record_ack) is [`RecordAck::Queued`]),
    /// and returns its outcome. A run that traps or
    /// hits a limit is still `Ok`: its status says how it ended.
    ///
    /// A failure of the host itself (a primitive that cannot prepare the
    /// run, a store that cannot be set up) is recorded as an `internal` run.
    ///
    /// # Errors
    /// [`EngineError::RunStore`] when the run record could not be committed
    /// (the outcome is then not durable) or, when queued, not encoded, or [`EngineError::ForeignComponent`]
    /// when `component` was loaded by another engine.
    pub async fn invoke(&self, component: &LoadedComponent, invocation: Invocation) -> Result<Outcome, EngineError> {
        if component.engine_id != self.id() {
            return Err(EngineError::ForeignComponent);
        }
        let slot = self.reserve(&invocation).await?;
        self.invoke_in(slot, component, invocation).await
    }

    /// Takes one of the [`max_concurrent_runs`](EngineConfig::max_concurrent_runs)
    /// run slots for `invocation`, waiting as its `no_wait` and
    /// `slot_deadline` say, without starting the run: a caller that must
    /// answer once a run has started (and not when it ends) reserves, answers,
    /// then runs it with [`invoke_in`](Self::invoke_in). Dropping the slot
    /// frees it.
    ///
    /// # Errors
    /// [`EngineError::Busy`] when no slot freed in time (the run never
    /// started); [`EngineError::Config`] when the engine is shutting down.
    pub async fn reserve(&self, invocation: &Invocation) -> Result<RunSlot<'_>, EngineError> {
        let shut_down = |_| EngineError::Config("engine shut down".into());
        let permit = if invocation.no_wait {
            self.inner.permits.try_acquire().map_err(|_| EngineError::Busy)?
        } else if let Some(until) = invocation.slot_deadline {
            match tokio::time::timeout_at(until, self.inner.permits.acquire()).await {
                Ok(permit) => permit.map_err(shut_down)?,
                Err(_) => return Err(EngineError::Busy),
            }
        } else {
            self.inner.permits.acquire().await.map_err(shut_down)?
        };
        Ok(RunSlot { _permit: permit, engine_id: self.id() })
    }

    /// Runs `component` in `slot` (from [`reserve`](Self::reserve)), as
    /// [`invoke`](Self::invoke) does once it has a slot; the slot is freed
    /// when the run is recorded.
    ///
    /// # Errors
    /// As [`invoke`](Self::invoke), except [`EngineError::Busy`];
    /// [`EngineError::ForeignComponent`] also when `slot` is another
    /// engine's.
    pub async fn invoke_in(
        &self,
        slot: RunSlot<'_>,
        component: &LoadedComponent,
        invocation: Invocation,
    ) -> Result<Outcome, EngineError> {
        if component.engine_id != self.id() || slot.engine_id != self.id() {
            return Err(EngineError::ForeignComponent);
        }
        let _slot = slot;
        let expected = self.inner.runs.expect_record();
        let (record, output) = self.execute(component, invocation).await;
        match self.inner.config.record_ack {
            RecordAck::Durable => expected.record(record.clone()).await?,
            RecordAck::Queued => expected.queue(&record)?,
        }
        if let Some(observe) = &self.inner.on_finished {
            observe(&record);
        }
        Ok(Outcome { record, output })
    }

    /// Loads `wasm` (capped at the invocation's `component_bytes`) and
    /// invokes it.
    ///
    /// # Errors
    /// As [`Engine::load`] and [`Engine::invoke`].
    pub async fn invoke_wasm(&self, wasm: &[u8], invocation: Invocation) -> Result<Outcome, EngineError> {
        let max = invocation.limits.as_ref().unwrap_or(&self.inner.config.default_limits).component_bytes;
        let component = self.load_async(wasm, max).await?;
        self.invoke(&component, invocation).await
    }
}
