//! The `db` orbit primitive (WIT `orbit:runtime/db`): SQL tables private to
//! each workspace, one SQLite database file per workspace
//! (`<dir>/<workspace>.sqlite3`).
//!
//! A guest reaches only its own workspace's file: the path comes from the
//! validated [`WorkspaceId`], and everything that could open, write or load
//! another file is refused.
//!
//! # Sandbox
//! - **Authorizer** (<https://sqlite.org/c3ref/set_authorizer.html>):
//!   `ATTACH`, `DETACH` (and so `VACUUM`, which attaches internally),
//!   `load_extension()`, temporary schema objects, transaction statements
//!   (a guest gets transactions through `batch`), virtual tables other than
//!   FTS and R*Tree, and every pragma outside a read-only allow-list are
//!   denied (`permission-denied`).
//! - **Connection settings**: extension loading off,
//!   `SQLITE_DBCONFIG_DEFENSIVE` on (no `writable_schema`, no writes to
//!   shadow tables), `ATTACH` may neither create nor write files,
//!   `SQLITE_LIMIT_ATTACHED` = 0, `SQLITE_LIMIT_LENGTH` and
//!   `SQLITE_LIMIT_SQL_LENGTH` from [`DbLimits`], no helper threads, and the
//!   double-quoted string literal misfeature off
//!   (<https://sqlite.org/quirks.html#dblquote>).
//! - **Time**: a progress handler stops a statement at the earlier of the
//!   run's deadline and [`DbLimits::max_call_time`]. Past the run's deadline
//!   the run ends as `deadline-exceeded`; past the per-call cap the guest gets
//!   `limit-exceeded` and the run goes on.
//! - **Size**: `PRAGMA max_page_count` caps each database at
//!   [`DbLimits::max_db_bytes`]; a write past it gives `limit-exceeded`.
//!   Query results are capped in rows and bytes (`too-large`).
//!
//! # Spans
//! Each call records a span `db.execute`, `db.query` or `db.batch` with the
//! statement kind (its first keyword, such as `insert`), the rows changed or
//! returned, and the bytes in and out. Neither the SQL text nor the
//! parameters are recorded: guests often inline data in SQL, and the run
//! record must not become a copy of workspace data.

mod connection;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orbit_engine::bindings::orbit::runtime::db;
use orbit_engine::wasmtime::component::{HasData, Linker};
use orbit_engine::{EngineError, ErrorCode, Extensions, GuestError, HostError, Primitive, RunInfo, RunState};
use orbit_workspace::WorkspaceId;
use orbit_workspace::permission::{Action, Target};

use connection::WorkspaceDb;
pub use db::{Rows, Statement, Value};

/// Limits of the `db` primitive.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DbLimits {
    /// Longest time one call (`execute`, `query`, or a whole `batch`) may
    /// run; the run's deadline stops it earlier. Default 5 s.
    pub max_call_time: Duration,
    /// Most rows one query returns. Default 10,000.
    pub max_rows: usize,
    /// Most bytes one query returns: 8 per value, plus the length of each
    /// text or blob, plus the column names. Default 4 MiB.
    pub max_result_bytes: usize,
    /// Size cap of each workspace's database file, in bytes (enforced in
    /// pages with `PRAGMA max_page_count`). Default 256 MiB.
    pub max_db_bytes: u64,
    /// Longest text or blob, and largest row, in bytes
    /// (`SQLITE_LIMIT_LENGTH`). Default 4 MiB.
    pub max_value_bytes: usize,
    /// Longest SQL statement, in bytes (`SQLITE_LIMIT_SQL_LENGTH`).
    /// Default 100,000.
    pub max_sql_bytes: usize,
    /// Most statements in one batch. Default 1,000.
    pub max_batch_statements: usize,
    /// Workspace databases kept open at once; idle ones beyond this are
    /// closed. Default 32.
    pub max_open_databases: usize,
    /// Heap SQLite may use, in bytes, for every workspace database of the
    /// process together (`PRAGMA hard_heap_limit`; SQLite's limit is
    /// process-wide). Temporary tables, sorts, `DISTINCT`, `GROUP BY` and
    /// recursive CTEs are kept in memory (`temp_store = MEMORY`), never in
    /// temporary files, so this also bounds what one statement can spill: a
    /// statement that would pass it fails with `limit-exceeded`
    /// ([`DbError::MemoryLimit`]) instead of growing until its time cap.
    /// Default 256 MiB.
    pub max_memory_bytes: u64,
}

impl Default for DbLimits {
    fn default() -> Self {
        Self {
            max_call_time: Duration::from_secs(5),
            max_rows: 10_000,
            max_result_bytes: 4 << 20,
            max_db_bytes: 256 << 20,
            max_value_bytes: 4 << 20,
            max_sql_bytes: 100_000,
            max_memory_bytes: 256 << 20,
            max_batch_statements: 1_000,
            max_open_databases: 32,
        }
    }
}

/// Errors of [`SqlStore`]. Each maps to a guest [`ErrorCode`]; the text is
/// operator detail and never reaches a guest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The sandbox refused the statement (`ATTACH`, a pragma that sets
    /// something, `load_extension`, a transaction statement...), or, in an
    /// [`Access::ReadOnly`] call, the statement would write. Guest code:
    /// `permission-denied`.
    #[error("denied: {0}")]
    Denied(String),
    /// The statement was stopped at its deadline: the run's deadline when
    /// `run_deadline`, else [`DbLimits::max_call_time`]. Guest code:
    /// `limit-exceeded`.
    #[error("statement interrupted at the {} deadline", if *run_deadline { "run's" } else { "per-call" })]
    Interrupted {
        /// Whether the run's deadline (rather than the per-call cap) passed.
        run_deadline: bool,
    },
    /// A write would grow the database past [`DbLimits::max_db_bytes`] (or
    /// the disk is full). Guest code: `limit-exceeded`.
    #[error("database full (cap {limit_bytes} bytes)")]
    DatabaseFull {
        /// The cap in bytes.
        limit_bytes: u64,
    },
    /// A statement needed more memory than [`DbLimits::max_memory_bytes`]
    /// allows (a sort, a temporary b-tree or a recursive CTE that grew).
    /// Guest code: `limit-exceeded`.
    #[error("statement needed more than the {limit_bytes}-byte memory cap")]
    MemoryLimit {
        /// The cap in bytes.
        limit_bytes: u64,
    },
    /// A query returned more than [`DbLimits::max_rows`] rows. Guest code:
    /// `too-large`.
    #[error("query returned more than {limit} rows")]
    TooManyRows {
        /// The cap in rows.
        limit: usize,
    },
    /// A query's result passed [`DbLimits::max_result_bytes`]. Guest code:
    /// `too-large`.
    #[error("query result larger than {limit} bytes")]
    ResultTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// A batch held more than [`DbLimits::max_batch_statements`]
    /// statements. Guest code: `too-large`.
    #[error("batch of {count} statements, over the cap of {limit}")]
    BatchTooLarge {
        /// Statements in the batch.
        count: usize,
        /// The cap.
        limit: usize,
    },
    /// A value, row or statement passed SQLite's length limits
    /// ([`DbLimits::max_value_bytes`], [`DbLimits::max_sql_bytes`]). Guest
    /// code: `too-large`.
    #[error("too big: {0}")]
    ValueTooLarge(String),
    /// The SQL failed: a syntax error, an unknown table or column, a
    /// constraint violation, a wrong number of parameters, more than one
    /// statement, or rows from a statement run with `execute`. Guest code:
    /// `invalid-input`.
    #[error("invalid SQL: {0}")]
    InvalidSql(String),
    /// Another connection (another process) holds a lock on the database
    /// past the busy timeout. Guest code: `unavailable`.
    #[error("database busy: {0}")]
    Busy(String),
    /// The database file could not be opened or set up. Guest code:
    /// `internal`.
    #[error("opening {path}: {detail}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Any other SQLite failure (I/O error, corruption, out of memory).
    /// Guest code: `internal`.
    #[error("sqlite: {0}")]
    Sqlite(String),
}

impl DbError {
    /// The code a guest receives for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DbError::Denied(_) => ErrorCode::PermissionDenied,
            DbError::Interrupted { .. } | DbError::DatabaseFull { .. } | DbError::MemoryLimit { .. } => {
                ErrorCode::LimitExceeded
            }
            DbError::TooManyRows { .. }
            | DbError::ResultTooLarge { .. }
            | DbError::BatchTooLarge { .. }
            | DbError::ValueTooLarge(_) => ErrorCode::TooLarge,
            DbError::InvalidSql(_) => ErrorCode::InvalidInput,
            DbError::Busy(_) => ErrorCode::Unavailable,
            DbError::Open { .. } | DbError::Sqlite(_) => ErrorCode::Internal,
        }
    }
}

impl From<DbError> for HostError {
    fn from(e: DbError) -> Self {
        HostError::with_detail(e.code(), e.to_string())
    }
}

/// Whether a call may change the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Access {
    /// Reads and writes, within the sandbox.
    #[default]
    ReadWrite,
    /// Reads only: SQLite's authorizer denies every statement that would
    /// insert, update or delete rows, or create, drop or alter a schema
    /// object (`permission-denied`), however the SQL is written.
    ReadOnly,
}

/// The SQL databases of all workspaces under one directory, usable directly
/// by a host as well as through the [`Db`] primitive.
///
/// Keeps one connection per workspace (at most
/// [`DbLimits::max_open_databases`] idle ones); calls on one workspace are
/// serialized. Every method blocks: call it off the async runtime.
pub struct SqlStore {
    dir: PathBuf,
    limits: DbLimits,
    open: Mutex<HashMap<WorkspaceId, Arc<Mutex<WorkspaceDb>>>>,
}

impl SqlStore {
    /// Opens (creating if needed) the directory that holds the databases.
    /// Database files are created on first use.
    ///
    /// # Errors
    /// [`DbError::Open`] when the directory cannot be created.
    pub fn open(dir: &Path, limits: DbLimits) -> Result<Self, DbError> {
        std::fs::create_dir_all(dir).map_err(|e| DbError::Open { path: dir.to_owned(), detail: e.to_string() })?;
        Ok(Self { dir: dir.to_owned(), limits, open: Mutex::new(HashMap::new()) })
    }

    /// The limits in force.
    pub fn limits(&self) -> &DbLimits {
        &self.limits
    }

    /// The database file of `ws`: `<dir>/<workspace>.sqlite3`.
    pub fn path(&self, ws: &WorkspaceId) -> PathBuf {
        self.dir.join(format!("{}.sqlite3", ws.as_str()))
    }

    fn connection(&self, ws: &WorkspaceId) -> Result<Arc<Mutex<WorkspaceDb>>, DbError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = open.get(ws) {
            return Ok(c.clone());
        }
        if open.len() >= self.limits.max_open_databases {
            // Close idle connections (held only by this map).
            open.retain(|_, c| Arc::strong_count(c) > 1);
        }
        let c = Arc::new(Mutex::new(WorkspaceDb::open(&self.path(ws), &self.limits)?));
        open.insert(ws.clone(), c.clone());
        Ok(c)
    }

    fn with<T>(&self, ws: &WorkspaceId, f: impl FnOnce(&mut WorkspaceDb) -> Result<T, DbError>) -> Result<T, DbError> {
        let c = self.connection(ws)?;
        let mut db = c.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut db)
    }

    /// Runs one statement that returns no rows in `ws`, with `params`
    /// bound in order, and returns the rows it changed (0 for a statement
    /// other than INSERT, UPDATE or DELETE). `deadline` (with
    /// [`DbLimits::max_call_time`]) bounds the time it may take.
    ///
    /// # Errors
    /// Any [`DbError`]; see its variants.
    pub fn execute(
        &self,
        ws: &WorkspaceId,
        sql: &str,
        params: &[Value],
        deadline: Option<Instant>,
    ) -> Result<u64, DbError> {
        self.execute_as(ws, Access::ReadWrite, sql, params, deadline)
    }

    /// As [`SqlStore::execute`], with `access`.
    ///
    /// # Errors
    /// As [`SqlStore::execute`]; [`DbError::Denied`] for a write in a
    /// [`Access::ReadOnly`] call.
    pub fn execute_as(
        &self,
        ws: &WorkspaceId,
        access: Access,
        sql: &str,
        params: &[Value],
        deadline: Option<Instant>,
    ) -> Result<u64, DbError> {
        self.with(ws, |db| db.execute(access, sql, params, deadline))
    }

    /// Runs one statement that returns rows in `ws` and returns them,
    /// within [`DbLimits::max_rows`] and [`DbLimits::max_result_bytes`].
    ///
    /// # Errors
    /// Any [`DbError`]; see its variants.
    pub fn query(
        &self,
        ws: &WorkspaceId,
        sql: &str,
        params: &[Value],
        deadline: Option<Instant>,
    ) -> Result<Rows, DbError> {
        self.query_as(ws, Access::ReadWrite, sql, params, deadline)
    }

    /// As [`SqlStore::query`], with `access` (a query can write too:
    /// `INSERT ... RETURNING`).
    ///
    /// # Errors
    /// As [`SqlStore::query`]; [`DbError::Denied`] for a write in a
    /// [`Access::ReadOnly`] call.
    pub fn query_as(
        &self,
        ws: &WorkspaceId,
        access: Access,
        sql: &str,
        params: &[Value],
        deadline: Option<Instant>,
    ) -> Result<Rows, DbError> {
        self.with(ws, |db| db.query(access, sql, params, deadline))
    }

    /// Runs `statements` in one transaction in `ws`, all or nothing, and
    /// returns the rows each changed. On error nothing of the batch is
    /// kept. The time cap covers the whole batch.
    ///
    /// # Errors
    /// Any [`DbError`]; see its variants.
    pub fn batch(
        &self,
        ws: &WorkspaceId,
        statements: &[Statement],
        deadline: Option<Instant>,
    ) -> Result<Vec<u64>, DbError> {
        self.batch_as(ws, Access::ReadWrite, statements, deadline)
    }

    /// As [`SqlStore::batch`], with `access`.
    ///
    /// # Errors
    /// As [`SqlStore::batch`]; [`DbError::Denied`] for a write in a
    /// [`Access::ReadOnly`] call (nothing of the batch is kept).
    pub fn batch_as(
        &self,
        ws: &WorkspaceId,
        access: Access,
        statements: &[Statement],
        deadline: Option<Instant>,
    ) -> Result<Vec<u64>, DbError> {
        self.with(ws, |db| db.batch(access, statements, deadline))
    }
}

/// The `db` primitive: links `orbit:runtime/db` to a [`SqlStore`].
#[derive(Clone)]
pub struct Db {
    store: Arc<SqlStore>,
}

impl Db {
    /// Opens the databases under `dir` with `limits`.
    ///
    /// # Errors
    /// As [`SqlStore::open`].
    pub fn open(dir: &Path, limits: DbLimits) -> Result<Self, DbError> {
        Ok(Self { store: Arc::new(SqlStore::open(dir, limits)?) })
    }

    /// The underlying store, for host-side access.
    pub fn store(&self) -> &Arc<SqlStore> {
        &self.store
    }
}

struct RunDb {
    store: Arc<SqlStore>,
    workspace: WorkspaceId,
    deadline: Instant,
}

/// What `db` host functions operate on during a call.
pub struct DbView<'a> {
    run: &'a mut RunInfo,
    state: &'a mut RunDb,
}

struct DbData;
impl HasData for DbData {
    type Data<'a> = DbView<'a>;
}

impl Primitive for Db {
    fn name(&self) -> &'static str {
        "db"
    }

    fn add_to_linker(&self, linker: &mut Linker<RunState>) -> Result<(), EngineError> {
        db::add_to_linker::<RunState, DbData>(linker, |s| {
            let (run, state) = s.parts::<RunDb>();
            DbView { run, state }
        })
        .map_err(|e| EngineError::Config(format!("{e:#}")))
    }

    fn prepare(&self, run: &RunInfo, extensions: &mut Extensions) -> Result<(), EngineError> {
        // Nothing can read the state of an interface the component does not import.
        if !run.imports("orbit:runtime/db") {
            return Ok(());
        }
        extensions.insert(RunDb {
            store: self.store.clone(),
            workspace: run.workspace().clone(),
            deadline: run.deadline().into_std(),
        });
        Ok(())
    }
}

/// Runs SQLite work on the blocking pool. A statement stopped by the run's
/// deadline never answers, so that `host_call`'s own deadline ends the run
/// as `deadline-exceeded` rather than handing the guest an error.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, DbError> + Send + 'static) -> Result<T, HostError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Err(DbError::Interrupted { run_deadline: true })) => std::future::pending().await,
        Ok(r) => r.map_err(HostError::from),
        Err(e) => Err(HostError::with_detail(ErrorCode::Internal, format!("db task failed: {e}"))),
    }
}

/// The statement's first keyword, lower-cased (`select`, `insert`...), for
/// spans; `other` when there is none.
pub fn statement_kind(sql: &str) -> &'static str {
    const KINDS: &[&str] = &[
        "select",
        "insert",
        "update",
        "delete",
        "replace",
        "with",
        "values",
        "create",
        "drop",
        "alter",
        "pragma",
        "explain",
        "analyze",
        "reindex",
        "vacuum",
        "attach",
        "detach",
        "begin",
        "commit",
        "end",
        "rollback",
        "savepoint",
        "release",
    ];
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    let word: String = rest.chars().take_while(char::is_ascii_alphabetic).take(16).collect();
    let word = word.to_ascii_lowercase();
    KINDS.iter().find(|k| **k == word).copied().unwrap_or("other")
}

fn params_bytes(params: &[Value]) -> usize {
    params.iter().map(connection::value_bytes).sum()
}

fn rows_bytes(rows: &Rows) -> usize {
    rows.columns.iter().map(String::len).sum::<usize>()
        + rows.rows.iter().flatten().map(connection::value_bytes).sum::<usize>()
}

type HostResult<T> = orbit_engine::wasmtime::Result<Result<T, GuestError>>;

impl DbView<'_> {
    /// The one permission check of `db`: a run whose principal may not
    /// write ([`Action::WriteData`]) gets [`Access::ReadOnly`] calls, in
    /// which SQLite's authorizer refuses every write.
    fn access(&self) -> Access {
        match self.run.permit(Action::WriteData, &Target::default()) {
            Ok(()) => Access::ReadWrite,
            Err(_) => Access::ReadOnly,
        }
    }
}

impl db::Host for DbView<'_> {
    async fn execute(&mut self, sql: String, params: Vec<Value>) -> HostResult<u64> {
        let (store, ws, deadline) = (self.state.store.clone(), self.state.workspace.clone(), self.state.deadline);
        let kind = statement_kind(&sql);
        let n = sql.len() + params_bytes(&params);
        let access = self.access();
        let call = blocking(move || store.execute_as(&ws, access, &sql, &params, Some(deadline)));
        let r = self.run.host_call("db", "execute", n, |_| 8, call).await?;
        let mut attrs = vec![("kind".to_owned(), kind.to_owned())];
        if let Ok(changed) = &r {
            attrs.push(("rows_changed".to_owned(), changed.to_string()));
        }
        self.run.annotate_last_span(attrs);
        Ok(r)
    }

    async fn query(&mut self, sql: String, params: Vec<Value>) -> HostResult<Rows> {
        let (store, ws, deadline) = (self.state.store.clone(), self.state.workspace.clone(), self.state.deadline);
        let kind = statement_kind(&sql);
        let n = sql.len() + params_bytes(&params);
        let access = self.access();
        let call = blocking(move || store.query_as(&ws, access, &sql, &params, Some(deadline)));
        let r = self.run.host_call("db", "query", n, rows_bytes, call).await?;
        let mut attrs = vec![("kind".to_owned(), kind.to_owned())];
        if let Ok(rows) = &r {
            attrs.push(("rows".to_owned(), rows.rows.len().to_string()));
        }
        self.run.annotate_last_span(attrs);
        Ok(r)
    }

    async fn batch(&mut self, statements: Vec<Statement>) -> HostResult<Vec<u64>> {
        let (store, ws, deadline) = (self.state.store.clone(), self.state.workspace.clone(), self.state.deadline);
        let count = statements.len();
        let n = statements.iter().map(|s| s.sql.len() + params_bytes(&s.params)).sum();
        let access = self.access();
        let call = blocking(move || store.batch_as(&ws, access, &statements, Some(deadline)));
        let r = self.run.host_call("db", "batch", n, |v: &Vec<u64>| v.len() * 8, call).await?;
        let mut attrs = vec![("statements".to_owned(), count.to_string())];
        if let Ok(changed) = &r {
            attrs.push(("rows_changed".to_owned(), changed.iter().sum::<u64>().to_string()));
        }
        self.run.annotate_last_span(attrs);
        Ok(r)
    }
}

#[cfg(test)]
mod tests;
