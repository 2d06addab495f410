//! SQL tables (SQLite), private to the run's workspace.
//!
//! Each call runs exactly one statement. Parameters (`?`, `?NNN`, `:name`,
//! `@name`, `$name`) are bound from the slice in order, never interpolated
//! into the SQL text, so values need no escaping.
//!
//! ```no_run
//! use orbit_guest::db::{self, Statement, Value};
//!
//! # fn demo() -> orbit_guest::Result<()> {
//! db::execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT, score REAL)", &[])?;
//! db::execute("INSERT INTO notes (body, score) VALUES (?, ?)", &["hello".into(), 0.5.into()])?;
//! let rows = db::query("SELECT id, body FROM notes WHERE score > ?", &[Value::from(0.1)])?;
//! for row in &rows {
//!     let id = row.get("id").and_then(Value::as_i64);
//!     let body = row.get("body").and_then(Value::as_str).unwrap_or("");
//! }
//! // Several statements in one transaction: all or nothing.
//! db::batch(&[
//!     Statement::new("UPDATE notes SET score = score + 1 WHERE id = ?", [1.into()]),
//!     Statement::new("DELETE FROM notes WHERE score < ?", [0.into()]),
//! ])?;
//! # Ok(()) }
//! ```
//!
//! The host denies `ATTACH`, `load_extension`, temporary tables, transaction
//! statements (use [`batch`]) and pragmas that set anything
//! ([`ErrorCode::PermissionDenied`](crate::ErrorCode::PermissionDenied)); a
//! statement running past the host's time cap gives
//! [`ErrorCode::LimitExceeded`](crate::ErrorCode::LimitExceeded), as does a
//! write past the workspace's database size cap; a result over the host's
//! row or byte cap gives [`ErrorCode::TooLarge`](crate::ErrorCode::TooLarge);
//! SQL errors (syntax, unknown table, constraint violation, wrong number of
//! parameters) give [`ErrorCode::InvalidInput`](crate::ErrorCode::InvalidInput).

use crate::__bindings::orbit::runtime::db as wit;
use crate::Result;

/// A SQLite value (<https://sqlite.org/datatype3.html>).
///
/// Build one with `From`: integers, `f64`, `bool` (as 0 or 1), strings,
/// byte vectors, and `Option` (`None` is [`Value::Null`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A signed 64-bit integer.
    Integer(i64),
    /// An IEEE 754 double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// Whether this is `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as a double: a real, or an integer converted.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Real(f) => Some(*f),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if this is a blob.
    pub fn as_blob(&self) -> Option<&[u8]> {
        match self {
            Value::Blob(b) => Some(b),
            _ => None,
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::Integer(i64::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32, bool);

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Real(f64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// The rows a query returned, with their column names.
///
/// Iterate with `for row in &rows`; look a column up by name with
/// [`Row::get`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<Value>>,
}

impl Rows {
    /// Column names, in result order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The position of the column named `name` (ASCII case-insensitive, as
    /// in SQL).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.eq_ignore_ascii_case(name))
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the query returned no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row at `index`.
    pub fn get(&self, index: usize) -> Option<Row<'_>> {
        self.rows.get(index).map(|values| Row { columns: &self.columns, values })
    }

    /// The rows in order.
    pub fn iter(&self) -> RowsIter<'_> {
        RowsIter { columns: &self.columns, rows: self.rows.iter() }
    }

    /// The first column of the first row: handy for `SELECT count(*)`.
    pub fn scalar(&self) -> Option<&Value> {
        self.rows.first().and_then(|r| r.first())
    }

    /// The values, one `Vec` per row.
    pub fn into_values(self) -> Vec<Vec<Value>> {
        self.rows
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = Row<'a>;
    type IntoIter = RowsIter<'a>;

    fn into_iter(self) -> RowsIter<'a> {
        self.iter()
    }
}

/// Iterator over the rows of [`Rows`].
#[derive(Debug, Clone)]
pub struct RowsIter<'a> {
    columns: &'a [String],
    rows: std::slice::Iter<'a, Vec<Value>>,
}

impl<'a> Iterator for RowsIter<'a> {
    type Item = Row<'a>;

    fn next(&mut self) -> Option<Row<'a>> {
        let columns = self.columns;
        self.rows.next().map(|values| Row { columns, values })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.rows.size_hint()
    }
}

impl ExactSizeIterator for RowsIter<'_> {}

/// One row of [`Rows`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// The value of the column named `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        let i = self.columns.iter().position(|c| c.eq_ignore_ascii_case(name))?;
        self.values.get(i)
    }

    /// The value at column position `index`.
    pub fn at(&self, index: usize) -> Option<&'a Value> {
        self.values.get(index)
    }

    /// All values, in column order.
    pub fn values(&self) -> &'a [Value] {
        self.values
    }
}

/// One statement of a [`batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub(crate) sql: String,
    pub(crate) params: Vec<Value>,
}

impl Statement {
    /// A statement with its parameters.
    pub fn new(sql: impl Into<String>, params: impl IntoIterator<Item = Value>) -> Self {
        Self { sql: sql.into(), params: params.into_iter().collect() }
    }
}

/// Run one statement that returns no rows (`CREATE`, `INSERT`, `UPDATE`,
/// `DELETE`...) and return the number of rows it changed.
///
/// # Errors
/// `invalid-input` for a SQL error or a statement that returns rows,
/// including `... RETURNING`, which is refused before it runs (use
/// [`query`]); `permission-denied`, `limit-exceeded`, `too-large` as
/// described in the [module documentation](self); `unavailable` when the
/// database is locked; `internal`.
pub fn execute(sql: &str, params: &[Value]) -> Result<u64> {
    wit::execute(sql, params)
}

/// Run one statement that returns rows (`SELECT`, `... RETURNING`, a
/// read-only pragma such as `table_info`) and return them.
///
/// # Errors
/// As [`execute`], and `too-large` for a result over the host's row or byte
/// cap.
pub fn query(sql: &str, params: &[Value]) -> Result<Rows> {
    wit::query(sql, params)
}

/// Run `statements` in one transaction, all or nothing: on the first error
/// every change of the batch is rolled back and that error returned.
/// Returns the rows each statement changed. Statements may not return rows.
///
/// # Errors
/// As [`execute`], and `too-large` for more statements than the host allows
/// in one batch.
pub fn batch(statements: &[Statement]) -> Result<Vec<u64>> {
    wit::batch(statements)
}
