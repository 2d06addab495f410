//! Orbit: a sandboxed code-execution engine for AI agents.
//!
//! This facade opens everything an Orbit deployment keeps in one data
//! directory (the storage index, the cache and the job store at their
//! first use, or at once with [`Orbit::open_stores`]) and composes the
//! orbit primitives into one [`Engine`](orbit_engine::Engine):
//!
//! | Path under the data dir | What |
//! |---|---|
//! | `runs.redb` | the run store (records and spans) |
//! | `runs.redb.wal` | the run store's write-ahead log (records since its last checkpoint) |
//! | `compiled/` | precompiled components, by sha256 + engine hash |
//! | `storage/` | blobs, one directory per workspace |
//! | `cache.redb` | the key-value cache |
//! | `db/` | SQL tables, one SQLite file per workspace (`<workspace>.sqlite3`) |
//! | `fetch.json` | optional egress policy for `fetch` ([`FetchConfig`] as JSON) |
//! | `ai.json` | optional model providers and limits for `ai` ([`AiConfig`] as JSON) |
//! | `vault.redb` | secrets, AES-256-GCM under per-workspace data keys |
//! | `master.key` | the master key, when `ORBIT_MASTER_KEY` is not set (mode 0600) |
//! | `jobs.redb` | registered jobs, their components (once per sha256), the job queue |
//! | `tools/` | installed MCP servers and tool policy, one JSON file per workspace |
//! | `team.redb` | workspaces, members, tokens (hashes only), notifications, the audit trail |
//! | `team.redb.audit-log` | audit events appended on their own since their last checkpoint into `team.redb` |
//!
//! Queued jobs run only while workers run: [`Orbit::open`] does not start
//! them (it may be called outside a tokio runtime, and a process that only
//! inspects runs should not take jobs); call [`Orbit::start_workers`] from
//! within a tokio runtime.
//!
//! # Example
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let data = tempfile::tempdir()?;
//! let orbit = orbit::Orbit::open(data.path())?;
//! // The Markdown example guest, built for wasm32-wasip2.
//! let wasm = std::fs::read(orbit_test_guests::path("markdown"))?;
//! let invocation = orbit::Invocation::new("# Hello").workspace(orbit::WorkspaceId::new("docs")?);
//! let outcome = orbit.engine().invoke_wasm(&wasm, invocation).await?;
//! assert!(outcome.status().is_success());
//! assert_eq!(outcome.output_text().trim(), "<h1>Hello</h1>");
//! // The guest stored its HTML in the workspace's blobs, and logged the key.
//! let (objects, _) = orbit.blobs().list(&orbit::WorkspaceId::new("docs")?, "html/", None, 10)?;
//! assert_eq!(objects.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::path::{Path, PathBuf};

mod audit;
pub mod metrics;
mod resources;
mod team;
pub use team::{CredentialListing, NewSecret, TeamActionError};

pub use orbit_ai::{Ai, AiConfig, AiLimits, ApiStyle, ProviderConfig};
pub use orbit_cache::{Cache, CacheLimits, KvCache};
pub use orbit_db::{Db, DbLimits, SqlStore};
pub use orbit_engine::{
    Budgets, Engine, EngineConfig, EngineError, InstanceAllocation, Invocation, Limits, LoadedComponent, Outcome,
    Primitive, RecordAck, Tier,
};
pub use orbit_fetch::{EgressPolicy, Fetch, FetchConfig};
pub use orbit_jobs::{
    JobBudget, JobDefaults, JobId, JobLimits, JobSpec, JobState, JobStore, JobWorkers, Jobs, QueuedJob,
};
pub use orbit_runs::{ComponentKind, RunId, RunPage, RunQuery, RunRecord, RunStatus, RunStore};
pub use orbit_storage::{BlobStore, Storage, StorageLimits};
pub use orbit_tools::{ToolRegistry, Tools, ToolsLimits};
pub use orbit_vault::{HostBinding, MasterKey, MasterKeySource, Placement, SecretMeta, SecretValue, Vault};
pub use orbit_workspace::{
    Action, AgentName, AuditEvent, AuditKind, AuditLog, AuditQuery, Principal, RedbTeamStore, Role, TeamError,
    TeamStore, TokenId, TokenRequest, UserId, WorkspaceId,
};
pub use {
    orbit_ai, orbit_cache, orbit_db, orbit_engine, orbit_fetch, orbit_jobs, orbit_runs, orbit_storage, orbit_tools,
    orbit_vault, orbit_workspace,
};

/// Errors opening an Orbit data directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The run store could not be opened.
    #[error(transparent)]
    Runs(#[from] orbit_runs::RunStoreError),
    /// The blob store's directory could not be created (or, from
    /// [`Orbit::open_stores`], its index opened).
    #[error(transparent)]
    Storage(#[from] orbit_storage::StorageError),
    /// The cache's directory could not be created (or, from
    /// [`Orbit::open_stores`], its database opened).
    #[error(transparent)]
    Cache(#[from] orbit_cache::CacheError),
    /// The SQL databases' directory could not be created.
    #[error(transparent)]
    Db(#[from] orbit_db::DbError),
    /// The master key could not be loaded or the vault could not be opened
    /// (for example with the wrong master key).
    #[error(transparent)]
    Vault(#[from] orbit_vault::VaultError),
    /// `fetch.json` could not be read or parsed.
    #[error("fetch policy {path}: {detail}")]
    FetchPolicy {
        /// The policy file.
        path: PathBuf,
        /// What was wrong with it.
        detail: String,
    },
    /// The `fetch` primitive could not be built.
    #[error(transparent)]
    Fetch(#[from] orbit_fetch::FetchError),
    /// The OTLP trace exporter could not start
    /// ([`OrbitConfig::otlp_endpoint`], [`Orbit::export_traces`]).
    #[error(transparent)]
    Otel(#[from] orbit_otel::OtelError),
    /// `ai.json` could not be read or parsed.
    #[error("ai providers {path}: {detail}")]
    AiConfig {
        /// The configuration file.
        path: PathBuf,
        /// What was wrong with it.
        detail: String,
    },
    /// The `ai` primitive could not be built (for example a provider with
    /// a bad base URL).
    #[error(transparent)]
    Ai(#[from] orbit_ai::AiError),
    /// The MCP tools registry could not be opened.
    #[error(transparent)]
    Tools(#[from] orbit_tools::ToolsError),
    /// The engine could not be built.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The job database's directory could not be created (or, from
    /// [`Orbit::open_stores`], the database opened).
    #[error(transparent)]
    Jobs(#[from] orbit_jobs::JobsError),
    /// The team store (`team.redb`) could not be opened.
    #[error(transparent)]
    Team(#[from] orbit_workspace::TeamError),
}

/// Settings for [`Orbit::open_with`].
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct OrbitConfig {
    /// Engine settings; `cache_dir` is set to `<data dir>/compiled` when
    /// left `None`.
    pub engine: EngineConfig,
    /// Limits of the `storage` primitive.
    pub storage: StorageLimits,
    /// Limits of the `cache` primitive.
    pub cache: CacheLimits,
    /// Limits of the `db` primitive.
    pub db: DbLimits,
    /// Egress policy and caps of the `fetch` primitive; `None` reads
    /// `<data dir>/fetch.json` when it exists, else the defaults (any public
    /// host; private and special addresses denied).
    pub fetch: Option<FetchConfig>,
    /// Model providers and limits of the `ai` primitive; `None` reads
    /// `<data dir>/ai.json` when it exists, else no providers.
    pub ai: Option<AiConfig>,
    /// The master key; `None` takes `ORBIT_MASTER_KEY`, then
    /// `<data dir>/master.key`, generating that file on first use.
    pub master_key: Option<MasterKey>,
    /// Limits of the `jobs` primitive.
    pub jobs: JobLimits,
    /// Caps and timeouts of the `tools` primitive (MCP tool calls).
    pub tools: ToolsLimits,
    /// How long audit events are kept, in ms; `None` is
    /// [`orbit_workspace::audit::DEFAULT_AUDIT_RETENTION_MS`] (90 days).
    /// Older events are pruned when the data directory is opened.
    pub audit_retention_ms: Option<u64>,
    /// Which runs are kept: by default 30 days and the newest 100,000 per
    /// workspace ([`orbit_runs::Retention`]), with per-workspace overrides.
    /// Runs past it are pruned when the data directory is opened, by
    /// [`Orbit::prune_runs`] (`orbit serve` calls it hourly) and by
    /// `orbit runs prune`.
    pub run_retention: orbit_runs::RetentionPolicy,
    /// How the run store batches and logs records
    /// ([`orbit_runs::GroupCommit`]: group commit, the write-ahead log and
    /// its checkpoints). Every setting keeps a run durable once
    /// acknowledged.
    pub run_commit: orbit_runs::GroupCommit,
    /// An OTLP/HTTP collector's base URL (`http://127.0.0.1:4318`): every
    /// finished run is exported to it as a trace ([`Orbit::export_traces`]).
    /// `None` exports nothing.
    pub otlp_endpoint: Option<String>,
}

/// An Orbit deployment rooted at one data directory.
#[derive(Clone)]
pub struct Orbit {
    engine: Engine,
    storage: Storage,
    cache: Cache,
    db: Db,
    ai: Ai,
    jobs: Jobs,
    vault: std::sync::Arc<Vault>,
    resolver: std::sync::Arc<dyn orbit_vault::SecretResolver>,
    tools: Tools,
    team: std::sync::Arc<RedbTeamStore>,
    master_key_source: Option<MasterKeySource>,
    metrics: std::sync::Arc<metrics::Metrics>,
    traces: std::sync::Arc<std::sync::OnceLock<orbit_otel::RunTraces>>,
    fetch: Fetch,
    data_dir: PathBuf,
    run_retention: std::sync::Arc<orbit_runs::RetentionPolicy>,
}

/// Now, in ms since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Orbit {
    /// Opens (creating if needed) the data directory with default settings.
    ///
    /// # Errors
    /// [`OpenError`] when any part cannot be opened.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(data_dir, OrbitConfig::default())
    }

    /// Opens the data directory with explicit settings.
    ///
    /// # Errors
    /// [`OpenError`] when any part cannot be opened.
    pub fn open_with(data_dir: impl AsRef<Path>, mut config: OrbitConfig) -> Result<Self, OpenError> {
        let dir = data_dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(|source| OpenError::DataDir { path: dir.clone(), source })?;
        // Private to this user: nothing under it (secrets' ciphertext, run
        // records, compiled machine code) is for anyone else to read or write.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let meta = std::fs::metadata(&dir).map_err(|source| OpenError::DataDir { path: dir.clone(), source })?;
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|source| OpenError::DataDir { path: dir.clone(), source })?;
            }
        }
        if config.engine.cache_dir.is_none() {
            config.engine.cache_dir = Some(dir.join("compiled"));
        }
        let (master, master_key_source) = match config.master_key.take() {
            Some(key) => (key, None),
            None => {
                let (key, source) = MasterKey::from_env_or_file(&dir)?;
                (key, Some(source))
            }
        };
        let vault = std::sync::Arc::new(Vault::open(&dir.join("vault.redb"), master)?);
        let retention = config.audit_retention_ms.unwrap_or(orbit_workspace::audit::DEFAULT_AUDIT_RETENTION_MS);
        let clock: std::sync::Arc<dyn orbit_workspace::Clock> = std::sync::Arc::new(orbit_workspace::SystemClock);
        let team = std::sync::Arc::new(RedbTeamStore::open_with(&dir.join("team.redb"), clock, retention)?);
        let fetch_config = match config.fetch.take() {
            Some(c) => c,
            None => read_fetch_policy(&dir.join("fetch.json"))?,
        };
        // Every placement of a secret by fetch, wasi:http, ai and tools is
        // recorded in the vault (last use) and the audit trail.
        let resolver: std::sync::Arc<dyn orbit_vault::SecretResolver> =
            std::sync::Arc::new(audit::AuditingResolver { vault: vault.clone(), audit: team.clone() });
        let fetch = Fetch::new(fetch_config, resolver.clone())?;
        let own_fetch = fetch.clone();
        let ai_config = match config.ai.take() {
            Some(c) => c,
            None => read_ai_config(&dir.join("ai.json"))?,
        };
        let ai = Ai::new(ai_config, resolver.clone())?;
        let metrics = std::sync::Arc::new(metrics::Metrics::new());
        let counted = metrics::CountingAudit { inner: team.clone(), metrics: metrics.clone() };
        let tools = Tools::new(std::sync::Arc::new(ToolRegistry::open(&dir)?), resolver.clone(), config.tools)
            .with_audit(std::sync::Arc::new(counted));
        let runs = RunStore::open_with(&dir.join("runs.redb"), config.run_commit)?;
        let run_retention = std::mem::take(&mut config.run_retention);
        // Looked at first, so that an open with nothing to prune writes
        // nothing (a prune checkpoints the log first).
        let now = now_ms();
        if let Err(e) = runs.prune_due(&run_retention, now).and_then(|due| {
            if due {
                runs.prune(&run_retention, None, now)?;
            }
            Ok(())
        }) {
            // Old runs stay until the next prune; nothing is lost.
            tracing::error!(error = %e, "pruning runs at open");
        }
        let storage = Storage::open(&dir.join("storage"), config.storage)?;
        let cache = Cache::open(&dir.join("cache.redb"), config.cache)?;
        let db = Db::open(&dir.join("db"), config.db)?;
        let jobs = Jobs::open(&dir.join("jobs.redb"), config.jobs)?;
        // A queued job of a token revoked (or expired, or of a removed
        // member) since it was enqueued does not start.
        let check_team = team.clone();
        jobs.set_principal_check(std::sync::Arc::new(move |ws: &WorkspaceId, p: &Principal| {
            audit::principal_still_valid(&check_team, ws, p)
        }));
        // The one place primitives are composed: a new primitive is one line.
        let observed = metrics.clone();
        let traces = std::sync::Arc::new(std::sync::OnceLock::<orbit_otel::RunTraces>::new());
        let traced = traces.clone();
        let engine = Engine::builder(config.engine, runs)
            .on_finished(std::sync::Arc::new(move |record: &RunRecord| {
                observed.run_finished(record);
                if let Some(traces) = traced.get() {
                    traces.export(record);
                }
            }))
            .primitive(storage.clone())
            .primitive(cache.clone())
            .primitive(fetch)
            .primitive(db.clone())
            .primitive(ai.clone())
            .primitive(jobs.clone())
            .primitive(tools.clone())
            .build()?;
        Ok(Self {
            engine,
            storage,
            cache,
            db,
            ai,
            jobs,
            tools,
            team,
            vault,
            resolver,
            master_key_source,
            metrics,
            traces,
            fetch: own_fetch,
            data_dir: dir,
            run_retention: std::sync::Arc::new(run_retention),
        })
        .and_then(|orbit| {
            if let Some(endpoint) = &config.otlp_endpoint {
                orbit.export_traces(endpoint)?;
            }
            Ok(orbit)
        })
    }

    /// Exports every run that finishes from now on as an OpenTelemetry
    /// trace to the OTLP/HTTP collector at `endpoint` (its base URL, as in
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`): the run as the root span, one child
    /// span per host call, the run record's attributes and never a payload
    /// (see [`orbit_otel`]). Spans are sent in the background about once a
    /// second; call [`flush_traces`](Self::flush_traces) before exiting.
    ///
    /// # Errors
    /// [`OpenError::Otel`] for an endpoint that is not an `http(s)://` URL,
    /// an exporter that cannot start, or a second call (one collector per
    /// `Orbit`).
    pub fn export_traces(&self, endpoint: &str) -> Result<(), OpenError> {
        let traces = orbit_otel::RunTraces::otlp_http(endpoint)?;
        self.traces
            .set(traces)
            .map_err(|_| OpenError::Otel(orbit_otel::OtelError::Exporter("traces are already exported".into())))
    }

    /// Sends the traces queued so far and waits for the collector (at most
    /// [`orbit_otel::EXPORT_TIMEOUT_MS`]); does nothing when traces are not
    /// exported.
    ///
    /// # Errors
    /// [`orbit_otel::OtelError::Flush`] when the collector did not take them.
    pub fn flush_traces(&self) -> Result<(), orbit_otel::OtelError> {
        self.traces.get().map_or(Ok(()), orbit_otel::RunTraces::flush)
    }

    /// The process's counters (runs by status, tool calls by outcome), in
    /// the Prometheus text format with [`metrics::Metrics::encode`].
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// Marks `addr` as a listen address of a server in front of this Orbit
    /// (`orbit serve` calls it for its own): `fetch` and `wasi:http` refuse
    /// it to every run, even when the operator's `allow_ips` covers it.
    pub fn protect_own_address(&self, addr: std::net::SocketAddr) {
        self.fetch.protect(addr);
    }

    /// The engine, with every primitive linked.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The run store.
    pub fn runs(&self) -> &RunStore {
        self.engine.runs()
    }

    /// Prunes the runs this deployment's
    /// [`run_retention`](OrbitConfig::run_retention) does not keep, in
    /// `only` or every workspace. Blocks for the deletes (call it from
    /// `spawn_blocking` in async code).
    ///
    /// # Errors
    /// [`orbit_runs::RunStoreError`] when redb fails (what was removed
    /// before stays removed).
    pub fn prune_runs(&self, only: Option<&WorkspaceId>) -> Result<orbit_runs::PruneReport, orbit_runs::RunStoreError> {
        self.runs().prune(&self.run_retention, only, now_ms())
    }

    /// The retention of runs this deployment applies.
    pub fn run_retention(&self) -> &orbit_runs::RetentionPolicy {
        &self.run_retention
    }

    /// Opens the storage index, the cache and the job store now; each
    /// otherwise opens at its first use, so that a process that never
    /// touches one (an `orbit run` of a component that imports none of
    /// them) does not pay redb's open and close. A long-lived process
    /// (`orbit serve`, `orbit mcp`) calls it at startup, so a file it
    /// cannot open stops it there.
    ///
    /// # Errors
    /// [`OpenError::Storage`], [`OpenError::Cache`] or [`OpenError::Jobs`].
    pub fn open_stores(&self) -> Result<(), OpenError> {
        self.blobs().open_now()?;
        self.cache().open_now()?;
        self.jobs.store().open_now()?;
        Ok(())
    }

    /// The blob store behind the `storage` primitive.
    pub fn blobs(&self) -> &BlobStore {
        self.storage.blobs()
    }

    /// The cache behind the `cache` primitive.
    pub fn cache(&self) -> &KvCache {
        self.cache.kv()
    }

    /// The SQL databases behind the `db` primitive.
    pub fn sql(&self) -> &SqlStore {
        self.db.store()
    }

    /// The `ai` primitive, for host-side model calls ([`Ai::chat`]).
    pub fn ai(&self) -> &Ai {
        &self.ai
    }

    /// The `jobs` primitive: register jobs, queue them, read the queue.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// Starts the job queue's workers on the current tokio runtime (see
    /// [`Jobs::start_workers`]); they stop when the handle is dropped.
    ///
    /// # Errors
    /// [`orbit_jobs::JobsError`] outside a tokio runtime, when workers are
    /// already running, or when the queue cannot be read.
    pub fn start_workers(&self) -> Result<JobWorkers, orbit_jobs::JobsError> {
        self.jobs.start_workers()
    }

    /// The MCP tools of the workspaces: registry, pool and host-side calls.
    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    /// The team store: workspaces, members, tokens, notifications and the
    /// audit trail. Its methods check the permission table themselves.
    pub fn team(&self) -> &RedbTeamStore {
        &self.team
    }

    /// The secrets vault.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// The secret resolver the primitives use, for host-side callers of
    /// [`Fetch::send`]: the vault, recording each use of a secret also as a
    /// `CredentialUse` event in the team store's audit trail.
    pub fn secret_resolver(&self) -> std::sync::Arc<dyn orbit_vault::SecretResolver> {
        self.resolver.clone()
    }

    /// Where the master key came from, when Orbit loaded it
    /// (`MasterKeySource::Generated` means a new key file was just written).
    pub fn master_key_source(&self) -> Option<&MasterKeySource> {
        self.master_key_source.as_ref()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

fn read_fetch_policy(path: &Path) -> Result<FetchConfig, OpenError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| OpenError::FetchPolicy { path: path.to_owned(), detail: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FetchConfig::default()),
        Err(e) => Err(OpenError::FetchPolicy { path: path.to_owned(), detail: e.to_string() }),
    }
}

fn read_ai_config(path: &Path) -> Result<AiConfig, OpenError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| OpenError::AiConfig { path: path.to_owned(), detail: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AiConfig::default()),
        Err(e) => Err(OpenError::AiConfig { path: path.to_owned(), detail: e.to_string() }),
    }
}
