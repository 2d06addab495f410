//! One workspace's SQLite connection: opened with the sandbox settings,
//! guarded by an authorizer and a progress handler, and the statement
//! runners behind `execute`, `query` and `batch`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orbit_engine::bindings::orbit::runtime::db::{Rows, Statement, Value};
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, config::DbConfig};

use crate::{Access, DbError, DbLimits};

/// SQLite virtual machine steps between two deadline checks. A check is one
/// `Instant::now()`, so this keeps the cost negligible while stopping a
/// runaway statement within microseconds of its deadline.
const PROGRESS_STEPS: i32 = 1000;

/// Pragmas that only report (their argument, if any, names a table, index
/// or schema), allowed with or without an argument.
const QUERY_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "collation_list",
    "function_list",
    "module_list",
];

/// Setting pragmas that may be read (without an argument) but not set.
const READ_PRAGMAS: &[&str] = &[
    "page_count",
    "page_size",
    "max_page_count",
    "freelist_count",
    "user_version",
    "application_id",
    "schema_version",
    "data_version",
    "foreign_keys",
    "encoding",
];

/// Virtual table modules a guest may create: they keep their data in
/// ordinary shadow tables of the same database file.
const VTAB_MODULES: &[&str] = &["fts5", "fts5vocab", "fts4", "fts4aux", "fts3", "rtree", "rtree_i32"];

/// SQL functions that reach outside the database.
const DENIED_FUNCTIONS: &[&str] = &["load_extension", "fts3_tokenizer"];

/// State shared between a connection and its callbacks.
struct Guard {
    /// Reference point for `deadline_ns`.
    base: Instant,
    /// Nanoseconds after `base` at which statements are interrupted;
    /// `u64::MAX` means no deadline.
    deadline_ns: AtomicU64,
    /// Set while the host itself runs a statement (`BEGIN`, `COMMIT`...),
    /// which the authorizer then allows.
    host: AtomicBool,
    /// Set for the length of a [`Access::ReadOnly`] call: the authorizer
    /// then denies every action that would change the database.
    read_only: AtomicBool,
    /// What the authorizer last denied, for the operator's error detail.
    denied: Mutex<Option<String>>,
}

impl Guard {
    fn set_deadline(&self, at: Instant) {
        let ns = at.saturating_duration_since(self.base).as_nanos().min(u128::from(u64::MAX - 1)) as u64;
        self.deadline_ns.store(ns, Ordering::Relaxed);
    }

    fn clear_deadline(&self) {
        self.deadline_ns.store(u64::MAX, Ordering::Relaxed);
    }

    fn take_denied(&self) -> Option<String> {
        self.denied.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// An open workspace database.
pub(crate) struct WorkspaceDb {
    conn: Connection,
    guard: Arc<Guard>,
    limits: DbLimits,
}

impl WorkspaceDb {
    /// Opens (creating if needed) the database file at `path` and applies
    /// the sandbox settings. Settings the guest may not change are applied
    /// before the authorizer is installed.
    pub(crate) fn open(path: &Path, limits: &DbLimits) -> Result<Self, DbError> {
        let open_err = |e: rusqlite::Error| DbError::Open { path: path.to_owned(), detail: e.to_string() };
        // No URI names, no symlinked database file.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let mut conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(1)).map_err(open_err)?;
        conn.load_extension_disable().map_err(open_err)?;
        // https://sqlite.org/c3ref/c_dbconfig_defensive.html
        for (option, on) in [
            (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
            (DbConfig::SQLITE_DBCONFIG_ENABLE_ATTACH_CREATE, false),
            (DbConfig::SQLITE_DBCONFIG_ENABLE_ATTACH_WRITE, false),
            (DbConfig::SQLITE_DBCONFIG_DQS_DML, false),
            (DbConfig::SQLITE_DBCONFIG_DQS_DDL, false),
        ] {
            conn.set_db_config(option, on).map_err(open_err)?;
        }
        // https://sqlite.org/c3ref/c_limit_attached.html
        let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        for (limit, value) in [
            (Limit::SQLITE_LIMIT_ATTACHED, 0),
            (Limit::SQLITE_LIMIT_LENGTH, clamp(limits.max_value_bytes)),
            (Limit::SQLITE_LIMIT_SQL_LENGTH, clamp(limits.max_sql_bytes)),
            (Limit::SQLITE_LIMIT_WORKER_THREADS, 0),
        ] {
            conn.set_limit(limit, value).map_err(open_err)?;
        }
        // Temporary data stays in memory, under the heap cap: no temp file
        // outside the data directory grows without bound.
        conn.execute_batch("PRAGMA temp_store = MEMORY").map_err(open_err)?;
        let _: i64 = conn
            .query_row(&format!("PRAGMA hard_heap_limit = {}", limits.max_memory_bytes), [], |r| r.get(0))
            .map_err(open_err)?;
        let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(open_err)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL").map_err(open_err)?;
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).map_err(open_err)?;
        let max_pages = (limits.max_db_bytes / page_size.max(512) as u64).max(2);
        let _: i64 =
            conn.query_row(&format!("PRAGMA max_page_count = {max_pages}"), [], |r| r.get(0)).map_err(open_err)?;

        let guard = Arc::new(Guard {
            base: Instant::now(),
            deadline_ns: AtomicU64::new(u64::MAX),
            host: AtomicBool::new(false),
            read_only: AtomicBool::new(false),
            denied: Mutex::new(None),
        });
        let g = guard.clone();
        conn.progress_handler(
            PROGRESS_STEPS,
            Some(move || g.base.elapsed().as_nanos() >= u128::from(g.deadline_ns.load(Ordering::Relaxed))),
        )
        .map_err(open_err)?;
        let g = guard.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            if g.host.load(Ordering::Relaxed) {
                return Authorization::Allow;
            }
            let checked = if g.read_only.load(Ordering::Relaxed) {
                deny_writes(&ctx).and_then(|()| authorize(&ctx))
            } else {
                authorize(&ctx)
            };
            match checked {
                Ok(()) => Authorization::Allow,
                Err(what) => {
                    *g.denied.lock().unwrap_or_else(|e| e.into_inner()) = Some(what);
                    Authorization::Deny
                }
            }
        }))
        .map_err(open_err)?;
        Ok(Self { conn, guard, limits: limits.clone() })
    }

    /// Runs `f` with statements bounded by the earlier of `deadline` and
    /// the per-call cap, then leaves the connection clean: no deadline, no
    /// open transaction.
    fn call<T>(
        &mut self,
        access: Access,
        deadline: Option<Instant>,
        f: impl FnOnce(&mut Self) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let now = Instant::now();
        let cap = now + self.limits.max_call_time;
        let (until, run_deadline) = match deadline {
            Some(d) if d <= cap => (d, true),
            _ => (cap, false),
        };
        if until <= now {
            return Err(DbError::Interrupted { run_deadline });
        }
        self.guard.take_denied();
        self.guard.set_deadline(until);
        self.guard.read_only.store(access == Access::ReadOnly, Ordering::Relaxed);
        // The busy handler sleeps outside the progress handler's reach.
        let _ = self.conn.busy_timeout(until - now);
        let result = f(self);
        self.guard.read_only.store(false, Ordering::Relaxed);
        self.guard.clear_deadline();
        if !self.conn.is_autocommit() {
            let _ = self.host_sql("ROLLBACK");
        }
        result.map_err(|e| match e {
            DbError::Interrupted { .. } => DbError::Interrupted { run_deadline },
            other => other,
        })
    }

    /// Runs a statement of the host's own (transaction control), which the
    /// authorizer allows.
    fn host_sql(&self, sql: &str) -> Result<(), DbError> {
        self.guard.host.store(true, Ordering::Relaxed);
        let r = self.conn.execute_batch(sql);
        self.guard.host.store(false, Ordering::Relaxed);
        r.map_err(|e| self.classify(e))
    }

    /// Maps a SQLite failure to a [`DbError`], naming what the authorizer
    /// denied when it was the cause.
    fn classify(&self, e: rusqlite::Error) -> DbError {
        if let Some(what) = self.guard.take_denied() {
            return DbError::Denied(what);
        }
        classify(e, &self.limits)
    }

    pub(crate) fn execute(
        &mut self,
        access: Access,
        sql: &str,
        params: &[Value],
        deadline: Option<Instant>,
    ) -> Result<u64, DbError> {
        self.call(access, deadline, |db| db.run_one(sql, params))
    }

    pub(crate) fn query(
        &mut self,
        access: Access,
        sql: &str,
        params: &[Value],
        deadline: Option<Instant>,
    ) -> Result<Rows, DbError> {
        self.call(access, deadline, |db| {
            let mut stmt = db.conn.prepare(sql).map_err(|e| db.classify(e))?;
            let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
            let max_bytes = db.limits.max_result_bytes;
            let max_rows = db.limits.max_rows;
            let mut bytes = columns.iter().map(String::len).sum::<usize>();
            if bytes > max_bytes {
                return Err(DbError::ResultTooLarge { limit: max_bytes });
            }
            let ncols = columns.len();
            let mut out = Vec::new();
            let mut rows =
                stmt.query(rusqlite::params_from_iter(params.iter().map(to_sql))).map_err(|e| db.classify(e))?;
            while let Some(row) = rows.next().map_err(|e| db.classify(e))? {
                if out.len() == max_rows {
                    return Err(DbError::TooManyRows { limit: max_rows });
                }
                let mut values = Vec::with_capacity(ncols);
                for i in 0..ncols {
                    let v = from_sql(row.get_ref(i).map_err(|e| db.classify(e))?);
                    bytes = bytes.saturating_add(value_bytes(&v));
                    if bytes > max_bytes {
                        return Err(DbError::ResultTooLarge { limit: max_bytes });
                    }
                    values.push(v);
                }
                out.push(values);
            }
            Ok(Rows { columns, rows: out })
        })
    }

    pub(crate) fn batch(
        &mut self,
        access: Access,
        statements: &[Statement],
        deadline: Option<Instant>,
    ) -> Result<Vec<u64>, DbError> {
        if statements.len() > self.limits.max_batch_statements {
            return Err(DbError::BatchTooLarge { count: statements.len(), limit: self.limits.max_batch_statements });
        }
        self.call(access, deadline, |db| {
            // IMMEDIATE takes the write lock up front, so the batch cannot
            // fail half-way on a lock held by another process.
            db.host_sql("BEGIN IMMEDIATE")?;
            let mut changed = Vec::with_capacity(statements.len());
            for s in statements {
                // On error `call` rolls the transaction back.
                changed.push(db.run_one(&s.sql, &s.params)?);
            }
            db.host_sql("COMMIT")?;
            Ok(changed)
        })
    }

    /// Runs one statement that returns no rows; returns the rows it
    /// changed (0 for a statement that is not an INSERT, UPDATE or DELETE).
    fn run_one(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.classify(e))?;
        // Refused before it runs: stepping an `INSERT ... RETURNING` would
        // already write.
        if stmt.column_count() > 0 {
            return Err(DbError::InvalidSql("statement returns rows: use query".to_owned()));
        }
        // sqlite3_changes() keeps the count of the last INSERT, UPDATE or
        // DELETE, even across a later CREATE; the total tells whether this
        // statement changed anything.
        let before = self.conn.total_changes();
        stmt.execute(rusqlite::params_from_iter(params.iter().map(to_sql))).map_err(|e| self.classify(e))?;
        drop(stmt);
        Ok(if self.conn.total_changes() == before { 0 } else { self.conn.changes() })
    }
}

/// The read-only policy, checked before the sandbox policy in a
/// [`Access::ReadOnly`] call: every action that changes the database (rows,
/// schema, statistics) is denied. `Err` names it. (Pragmas that set
/// something are denied to every call by [`authorize`].)
fn deny_writes(ctx: &AuthContext<'_>) -> Result<(), String> {
    use AuthAction as A;
    let what = match ctx.action {
        A::Insert { table_name } => format!("INSERT into {table_name}"),
        A::Update { table_name, .. } => format!("UPDATE of {table_name}"),
        A::Delete { table_name } => format!("DELETE from {table_name}"),
        A::CreateTable { .. }
        | A::CreateIndex { .. }
        | A::CreateView { .. }
        | A::CreateTrigger { .. }
        | A::CreateVtable { .. }
        | A::CreateTempTable { .. }
        | A::CreateTempIndex { .. }
        | A::CreateTempTrigger { .. }
        | A::CreateTempView { .. } => "CREATE".to_owned(),
        A::DropTable { .. }
        | A::DropIndex { .. }
        | A::DropView { .. }
        | A::DropTrigger { .. }
        | A::DropVtable { .. }
        | A::DropTempTable { .. }
        | A::DropTempIndex { .. }
        | A::DropTempTrigger { .. }
        | A::DropTempView { .. } => "DROP".to_owned(),
        A::AlterTable { .. } => "ALTER TABLE".to_owned(),
        A::Reindex { .. } => "REINDEX".to_owned(),
        A::Analyze { .. } => "ANALYZE".to_owned(),
        _ => return Ok(()),
    };
    Err(format!("read-only run: {what}"))
}

/// The sandbox policy: `Err` names what is denied.
fn authorize(ctx: &AuthContext<'_>) -> Result<(), String> {
    use AuthAction as A;
    let lower = |s: &str| s.to_ascii_lowercase();
    match ctx.action {
        A::Select
        | A::Read { .. }
        | A::Insert { .. }
        | A::Update { .. }
        | A::Delete { .. }
        | A::Recursive
        | A::CreateTable { .. }
        | A::CreateIndex { .. }
        | A::CreateView { .. }
        | A::CreateTrigger { .. }
        | A::DropTable { .. }
        | A::DropIndex { .. }
        | A::DropView { .. }
        | A::DropTrigger { .. }
        | A::DropVtable { .. }
        | A::Reindex { .. }
        | A::Analyze { .. } => Ok(()),
        A::AlterTable { database_name, .. } if database_name.eq_ignore_ascii_case("main") => Ok(()),
        A::Function { function_name } => {
            if DENIED_FUNCTIONS.contains(&lower(function_name).as_str()) {
                Err(format!("function {function_name}"))
            } else {
                Ok(())
            }
        }
        A::CreateVtable { module_name, .. } => {
            if VTAB_MODULES.contains(&lower(module_name).as_str()) {
                Ok(())
            } else {
                Err(format!("virtual table module {module_name}"))
            }
        }
        A::Pragma { pragma_name, pragma_value } => {
            let name = lower(pragma_name);
            let allowed = QUERY_PRAGMAS.contains(&name.as_str())
                || (pragma_value.is_none() && READ_PRAGMAS.contains(&name.as_str()));
            if allowed { Ok(()) } else { Err(format!("pragma {name}")) }
        }
        A::Attach { .. } => Err("ATTACH".to_owned()),
        A::Detach { .. } => Err("DETACH".to_owned()),
        A::Transaction { .. } | A::Savepoint { .. } => Err("transaction control (use batch)".to_owned()),
        A::CreateTempTable { .. }
        | A::CreateTempIndex { .. }
        | A::CreateTempTrigger { .. }
        | A::CreateTempView { .. }
        | A::DropTempTable { .. }
        | A::DropTempIndex { .. }
        | A::DropTempTrigger { .. }
        | A::DropTempView { .. } => Err("temporary schema objects".to_owned()),
        other => Err(format!("{other:?}")),
    }
}

fn classify(e: rusqlite::Error, limits: &DbLimits) -> DbError {
    use rusqlite::ErrorCode as C;
    let (code, detail) = match &e {
        // Its text would repeat the whole statement: keep the message.
        rusqlite::Error::SqlInputError { error, msg, offset, .. } => {
            (Some(error.code), truncate(&format!("{msg} (at byte {offset})")))
        }
        _ => (e.sqlite_error_code(), truncate(&e.to_string())),
    };
    match &e {
        rusqlite::Error::MultipleStatement => return DbError::InvalidSql("more than one statement".to_owned()),
        rusqlite::Error::ExecuteReturnedResults => {
            return DbError::InvalidSql("statement returns rows: use query".to_owned());
        }
        rusqlite::Error::InvalidParameterCount(..)
        | rusqlite::Error::InvalidParameterName(_)
        | rusqlite::Error::NulError(_) => return DbError::InvalidSql(detail),
        _ => {}
    }
    match code {
        Some(C::OperationInterrupted) => DbError::Interrupted { run_deadline: false },
        Some(C::DiskFull) => DbError::DatabaseFull { limit_bytes: limits.max_db_bytes },
        Some(C::OutOfMemory) => DbError::MemoryLimit { limit_bytes: limits.max_memory_bytes },
        Some(C::TooBig) => DbError::ValueTooLarge(detail),
        Some(C::AuthorizationForStatementDenied) => DbError::Denied(detail),
        Some(C::DatabaseBusy | C::DatabaseLocked) => DbError::Busy(detail),
        Some(C::Unknown | C::ConstraintViolation | C::TypeMismatch | C::ParameterOutOfRange) => {
            DbError::InvalidSql(detail)
        }
        _ => DbError::Sqlite(detail),
    }
}

/// SQLite's messages can quote part of the statement; keep operator detail
/// short.
fn truncate(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn to_sql(v: &Value) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(match v {
        Value::Null => ValueRef::Null,
        Value::Integer(i) => ValueRef::Integer(*i),
        Value::Real(f) => ValueRef::Real(*f),
        Value::Text(s) => ValueRef::Text(s.as_bytes()),
        Value::Blob(b) => ValueRef::Blob(b),
    })
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// The size a value counts for against `max_result_bytes`: 8 bytes, plus
/// the length of a text or blob.
pub(crate) fn value_bytes(v: &Value) -> usize {
    8 + match v {
        Value::Text(s) => s.len(),
        Value::Blob(b) => b.len(),
        _ => 0,
    }
}
