//! Example Orbit agent: CSV in, SQL summary out.
//!
//! The input is CSV text with a header row (RFC 4180: quoted fields,
//! `""` escapes); empty input uses the embedded `data/sales.csv`. The agent
//! loads it into the workspace's `csv` table through the `db` primitive
//! (replacing the table, in one transaction), types each column as
//! `INTEGER`, `REAL` or `TEXT` from its values (empty fields are `NULL`), and
//! returns:
//!
//! ```json
//! {"table":"csv","rows":60,
//!  "columns":[{"name":"units","type":"INTEGER"},...],
//!  "numeric":[{"column":"units","count":60,"sum":1234.0,"avg":20.5,"min":1.0,"max":40.0},...],
//!  "groups":{"by":"region","of":"units","totals":[["North",400.0],...]}}
//! ```
//!
//! `numeric` summarises every `INTEGER` or `REAL` column with SQL aggregates;
//! `groups` totals the first numeric column per value of the text column
//! with the fewest distinct values (at least two; the first such column on a
//! tie), largest first, at most 10; it is `null` when there is no such pair. The table stays in the workspace for later queries.

use orbit_guest::db::{self, Statement, Value};
use orbit_guest::{Error, log};
use serde_json::{Value as Json, json};

/// The sample used when the input is empty.
const SAMPLE: &str = include_str!("../data/sales.csv");
/// Rows per INSERT statement (each row binds one parameter per column).
const ROWS_PER_INSERT: usize = 50;
/// Statements per `db::batch` call (the host's default cap is 1,000).
const STATEMENTS_PER_BATCH: usize = 500;
/// Groups listed in the result.
const TOP_GROUPS: usize = 10;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Integer,
    Real,
    Text,
}

impl Kind {
    fn sql(self) -> &'static str {
        match self {
            Kind::Integer => "INTEGER",
            Kind::Real => "REAL",
            Kind::Text => "TEXT",
        }
    }
}

fn run(input: String) -> Result<String, Error> {
    let text = if input.trim().is_empty() { SAMPLE } else { input.as_str() };
    let (header, records) = parse(text)?;
    let kinds = infer(header.len(), &records);
    load(&header, &kinds, &records)?;
    log::info(&format!("loaded {} rows into csv", records.len()));
    Ok(summarise(&header, &kinds)?.to_string())
}

orbit_guest::export_agent!(run);

fn parse(text: &str) -> Result<(Vec<String>, Vec<Vec<String>>), Error> {
    let bad = |e: csv::Error| Error::invalid_input(format!("malformed CSV: {e}"));
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().map_err(bad)?.iter().map(|h| h.trim().to_owned()).collect();
    if header.is_empty() || header.iter().any(String::is_empty) {
        return Err(Error::invalid_input("the header row must name every column"));
    }
    let mut records = Vec::new();
    for record in reader.records() {
        records.push(record.map_err(bad)?.iter().map(str::to_owned).collect());
    }
    Ok((header, records))
}

/// A column is INTEGER if every non-empty field is one, else REAL if every
/// one is a number, else TEXT.
fn infer(columns: usize, records: &[Vec<String>]) -> Vec<Kind> {
    (0..columns)
        .map(|c| {
            let fields = records.iter().map(|r| r[c].trim()).filter(|f| !f.is_empty());
            let mut kind = Kind::Integer;
            for f in fields {
                if kind == Kind::Integer && f.parse::<i64>().is_err() {
                    kind = Kind::Real;
                }
                if kind == Kind::Real && f.parse::<f64>().map_or(true, |x| !x.is_finite()) {
                    return Kind::Text;
                }
            }
            kind
        })
        .collect()
}

fn value(field: &str, kind: Kind) -> Value {
    let f = field.trim();
    match kind {
        _ if f.is_empty() => Value::Null,
        Kind::Integer => f.parse::<i64>().map_or(Value::Null, Value::Integer),
        Kind::Real => f.parse::<f64>().map_or(Value::Null, Value::Real),
        Kind::Text => Value::Text(field.to_owned()),
    }
}

/// An SQL identifier for an untrusted name: double-quoted, quotes doubled
/// (<https://sqlite.org/lang_keywords.html>).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn load(header: &[String], kinds: &[Kind], records: &[Vec<String>]) -> Result<(), Error> {
    let defs: Vec<String> = header.iter().zip(kinds).map(|(h, k)| format!("{} {}", ident(h), k.sql())).collect();
    let mut statements = vec![
        Statement::new("DROP TABLE IF EXISTS csv", []),
        Statement::new(format!("CREATE TABLE csv ({})", defs.join(", ")), []),
    ];
    let row = format!("({})", vec!["?"; header.len()].join(", "));
    for chunk in records.chunks(ROWS_PER_INSERT) {
        let sql = format!("INSERT INTO csv VALUES {}", vec![row.as_str(); chunk.len()].join(", "));
        let params = chunk.iter().flat_map(|r| r.iter().zip(kinds).map(|(f, k)| value(f, *k)));
        statements.push(Statement::new(sql, params));
    }
    if statements.len() <= STATEMENTS_PER_BATCH {
        db::batch(&statements)?;
        return Ok(());
    }
    // Too many for one transaction: load in several, in order.
    for part in statements.chunks(STATEMENTS_PER_BATCH) {
        db::batch(part)?;
    }
    Ok(())
}

fn summarise(header: &[String], kinds: &[Kind]) -> Result<Json, Error> {
    let rows = db::query("SELECT count(*) FROM csv", &[])?.scalar().and_then(Value::as_i64).unwrap_or(0);
    let columns: Vec<Json> = header.iter().zip(kinds).map(|(h, k)| json!({"name": h, "type": k.sql()})).collect();
    let numeric_cols: Vec<&String> =
        header.iter().zip(kinds).filter(|(_, k)| **k != Kind::Text).map(|(h, _)| h).collect();
    let mut numeric = Vec::new();
    for name in &numeric_cols {
        let c = ident(name);
        let sql = format!(
            "SELECT count({c}) AS n, total({c}) AS sum, avg({c}) AS avg, min({c}) AS min, max({c}) AS max FROM csv"
        );
        let stats = db::query(&sql, &[])?;
        let row = stats.get(0).ok_or_else(|| Error::internal("aggregate returned no row"))?;
        let num = |k: &str| row.get(k).and_then(Value::as_f64);
        numeric.push(json!({
            "column": name,
            "count": row.get("n").and_then(Value::as_i64),
            "sum": num("sum"),
            "avg": num("avg"),
            "min": num("min"),
            "max": num("max"),
        }));
    }
    // Group by the text column with the fewest distinct values (at least
    // two): the one most likely to be a category.
    let mut by: Option<(&String, i64)> = None;
    for name in header.iter().zip(kinds).filter(|(_, k)| **k == Kind::Text).map(|(h, _)| h) {
        let sql = format!("SELECT count(DISTINCT {}) FROM csv", ident(name));
        let distinct = db::query(&sql, &[])?.scalar().and_then(Value::as_i64).unwrap_or(0);
        if distinct >= 2 && by.is_none_or(|(_, best)| distinct < best) {
            by = Some((name, distinct));
        }
    }
    let by = by.map(|(name, _)| name);
    let groups = match (by, numeric_cols.first()) {
        (Some(by), Some(of)) => {
            let sql = format!(
                "SELECT {b} AS key, total({o}) AS total FROM csv GROUP BY {b} ORDER BY total DESC, key LIMIT ?",
                b = ident(by),
                o = ident(of)
            );
            let totals: Vec<Json> = db::query(&sql, &[Value::from(TOP_GROUPS as i64)])?
                .iter()
                .map(|r| json!([r.get("key").and_then(Value::as_str), r.get("total").and_then(Value::as_f64)]))
                .collect();
            json!({"by": by, "of": of, "totals": totals})
        }
        _ => Json::Null,
    };
    Ok(json!({"table": "csv", "rows": rows, "columns": columns, "numeric": numeric, "groups": groups}))
}
