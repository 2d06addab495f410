//! The `db` primitive end to end: real guest components (`db-client`,
//! `csv-db`) against real SQLite files in an Orbit data directory.

mod common;

use std::time::Duration;

use common::{Env, env, with_timeout, ws};
use orbit::{DbLimits, Orbit, OrbitConfig, RunStatus};
use serde_json::{Value, json};

fn ok(v: &Value) -> &Value {
    v.get("ok").unwrap_or_else(|| panic!("expected ok, got {v}"))
}

fn err_code(v: &Value) -> &str {
    v["err"]["code"].as_str().unwrap_or_else(|| panic!("expected err, got {v}"))
}

fn env_with(limits: DbLimits) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = OrbitConfig::default();
    cfg.db = limits;
    Env { orbit: Orbit::open_with(dir.path(), cfg).unwrap(), dir }
}

/// Runs the `db-client` fixture in `workspace` and returns its per-op
/// results; the run itself must succeed.
async fn sql(e: &Env, workspace: &str, ops: Value) -> (orbit::Outcome, Vec<Value>) {
    let out = e.run_in("db-client", workspace, &ops.to_string(), common::limits()).await;
    assert!(out.status().is_success(), "db-client run failed: {:?}", out.record);
    let results: Vec<Value> = serde_json::from_slice(&out.output).unwrap();
    (out, results)
}

fn q(sql: &str, params: Value) -> Value {
    json!({"op": "query", "sql": sql, "params": params})
}

fn x(sql: &str, params: Value) -> Value {
    json!({"op": "execute", "sql": sql, "params": params})
}

const RUNAWAY: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_and_typed_values_round_trip_through_a_guest() {
    let e = env();
    let blob = "00ff7f80deadbeef";
    let secret_param = "param-value-that-must-not-be-recorded";
    let (out, r) = sql(
        &e,
        "default",
        json!([
            x(
                "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, data BLOB, note TEXT)",
                json!([])
            ),
            x(
                "INSERT INTO items (name, price, data, note) VALUES (?, ?, ?, ?)",
                json!(["apple", {"real": 1.25}, {"blob": blob}, null])
            ),
            x(
                "INSERT INTO items (name, price, data, note) VALUES (?, ?, ?, ?), (?, ?, ?, ?)",
                json!(["pear", {"real": 2.0}, null, secret_param, "fig", {"real": -0.5}, {"blob": ""}, "x"])
            ),
            q("SELECT id, name, price, data, note FROM items ORDER BY id", json!([])),
            x("UPDATE items SET price = price * 2 WHERE price > ?", json!([0])),
            x("DELETE FROM items WHERE name = ?", json!(["fig"])),
            q("SELECT count(*) AS n, sum(price) AS total, max(id) FROM items", json!([])),
            q("SELECT ? AS big, ? AS small, ? AS pi", json!([i64::MAX, i64::MIN, {"real": std::f64::consts::PI}])),
        ]),
    )
    .await;
    assert_eq!(ok(&r[0]), 0);
    assert_eq!(ok(&r[1]), 1);
    assert_eq!(ok(&r[2]), 2);
    let rows = ok(&r[3]);
    assert_eq!(rows["columns"], json!(["id", "name", "price", "data", "note"]));
    assert_eq!(rows["rows"][0], json!([1, "apple", {"real": 1.25}, {"blob": blob}, null]));
    assert_eq!(rows["rows"][1], json!([2, "pear", {"real": 2.0}, null, secret_param]));
    assert_eq!(rows["rows"][2], json!([3, "fig", {"real": -0.5}, {"blob": ""}, "x"]));
    assert_eq!(ok(&r[4]), 2);
    assert_eq!(ok(&r[5]), 1);
    assert_eq!(ok(&r[6])["rows"][0], json!([2, {"real": 6.5}, 2]));
    assert_eq!(ok(&r[7])["rows"][0], json!([i64::MAX, i64::MIN, {"real": std::f64::consts::PI}]));

    // One span per call with its kind and counts, and no SQL text or values.
    let spans: Vec<_> = out.record.spans.iter().filter(|s| s.primitive == "db").collect();
    assert_eq!(spans.len(), 8);
    let attr = |i: usize, k: &str| spans[i].attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!((spans[0].operation.as_str(), attr(0, "kind").as_deref()), ("execute", Some("create")));
    assert_eq!(attr(2, "rows_changed").as_deref(), Some("2"));
    assert_eq!((spans[3].operation.as_str(), attr(3, "kind").as_deref()), ("query", Some("select")));
    assert_eq!(attr(3, "rows").as_deref(), Some("3"));
    assert!(spans[3].bytes_out > 0);
    let recorded = serde_json::to_string(&out.record.spans).unwrap();
    assert!(!recorded.contains(secret_param) && !recorded.contains("INSERT INTO"), "{recorded}");

    // The table lives on in the workspace's SQLite file.
    let rows = e.orbit.sql().query(&ws("default"), "SELECT name FROM items ORDER BY id", &[], None).unwrap();
    assert_eq!(rows.rows.len(), 2);
    assert!(e.dir.path().join("db/default.sqlite3").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_changes_nothing() {
    let e = env();
    let (_, r) = sql(
        &e,
        "default",
        json!([
            {"op": "batch", "statements": [
                {"sql": "CREATE TABLE acct (name TEXT PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))"},
                {"sql": "INSERT INTO acct VALUES (?, ?), (?, ?)", "params": ["a", 10, "b", 0]},
            ]},
            {"op": "batch", "statements": [
                {"sql": "UPDATE acct SET balance = balance - 5 WHERE name = 'a'"},
                {"sql": "UPDATE acct SET balance = balance + 5 WHERE name = 'b'"},
                {"sql": "INSERT INTO acct VALUES ('c', -1)"},
            ]},
            q("SELECT name, balance FROM acct ORDER BY name", json!([])),
            {"op": "batch", "statements": [{"sql": "UPDATE acct SET balance = 3 WHERE name = 'b'"}, {"sql": "SELEC"}]},
            q("SELECT balance FROM acct WHERE name = 'b'", json!([])),
            x("BEGIN", json!([])),
            x("COMMIT", json!([])),
        ]),
    )
    .await;
    assert_eq!(ok(&r[0]), &json!([0, 2]));
    assert_eq!(err_code(&r[1]), "invalid-input");
    assert_eq!(ok(&r[2])["rows"], json!([["a", 10], ["b", 0]]), "the first two updates were rolled back");
    assert_eq!(err_code(&r[3]), "invalid-input");
    assert_eq!(ok(&r[4])["rows"], json!([[0]]));
    // Transactions only come from batch.
    assert_eq!(err_code(&r[5]), "permission-denied");
    assert_eq!(err_code(&r[6]), "permission-denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_query_is_stopped_with_a_typed_error_and_the_run_goes_on() {
    let mut limits = DbLimits::default();
    limits.max_call_time = Duration::from_millis(300);
    let e = env_with(limits);
    let (out, r) = sql(
        &e,
        "default",
        json!([
            q(RUNAWAY, json!([])),
            x("CREATE TABLE after (x)", json!([])),
            q("SELECT count(*) FROM after", json!([])),
        ]),
    )
    .await;
    assert_eq!(err_code(&r[0]), "limit-exceeded");
    assert_eq!(r[0]["err"]["message"], "limit exceeded");
    assert_eq!(ok(&r[1]), 0);
    assert_eq!(ok(&r[2])["rows"], json!([[0]]));
    let span = out.record.spans.iter().find(|s| s.primitive == "db").unwrap();
    assert_eq!(span.outcome, "limit-exceeded");
    assert!(span.duration_us >= 300_000);
    assert_eq!(out.record.status, RunStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_query_past_the_run_deadline_ends_the_run() {
    let e = env();
    let ops = json!([q(RUNAWAY, json!([]))]).to_string();
    let out = e.run_in("db-client", "default", &ops, with_timeout(700)).await;
    assert_eq!(out.status(), RunStatus::DeadlineExceeded, "{:?}", out.record);
    let span = out.record.spans.iter().find(|s| s.primitive == "db").unwrap();
    assert_eq!(span.outcome, "deadline-exceeded");
    // SQLite itself stopped at the deadline: had the statement gone on to
    // the 5 s per-call cap, it would hold the workspace's connection and this
    // 2 s run would end `deadline-exceeded` waiting for it.
    let ops = json!([q("SELECT 42", json!([]))]).to_string();
    let out = e.run_in("db-client", "default", &ops, with_timeout(2000)).await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    let r: Vec<Value> = serde_json::from_slice(&out.output).unwrap();
    assert_eq!(ok(&r[0])["rows"], json!([[42]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_results_are_too_large() {
    let mut limits = DbLimits::default();
    limits.max_rows = 1000;
    limits.max_result_bytes = 64 << 10;
    let e = env_with(limits);
    let series = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT x FROM c";
    let (_, r) = sql(
        &e,
        "default",
        json!([
            q(series, json!([1000])),
            q(series, json!([1001])),
            q("SELECT zeroblob(1024) FROM (SELECT 1 UNION ALL SELECT 2) a, (SELECT value FROM json_each('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34]')) b", json!([])),
        ]),
    )
    .await;
    assert_eq!(ok(&r[0])["rows"].as_array().unwrap().len(), 1000);
    assert_eq!(err_code(&r[1]), "too-large");
    assert_eq!(err_code(&r[2]), "too-large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_and_settings_are_denied_and_other_workspaces_stay_out_of_reach() {
    let e = env();
    let (_, r) = sql(
        &e,
        "team-a",
        json!([x("CREATE TABLE secrets (v TEXT)", json!([])), x("INSERT INTO secrets VALUES ('a-only')", json!([]))]),
    )
    .await;
    assert!(r.iter().all(|v| v.get("ok").is_some()), "{r:?}");
    let a_file = e.dir.path().join("db/team-a.sqlite3");
    assert!(a_file.is_file());
    let a_path = a_file.display().to_string();
    let outside = e.dir.path().join("stolen.db").display().to_string();
    let (out, r) = sql(
        &e,
        "team-b",
        json!([
            x(&format!("ATTACH '{a_path}' AS a"), json!([])),
            x("ATTACH ? AS a", json!([a_path])),
            q("SELECT * FROM a.secrets", json!([])),
            x(&format!("VACUUM INTO '{outside}'"), json!([])),
            q("SELECT load_extension('libevil')", json!([])),
            x("PRAGMA journal_mode = OFF", json!([])),
            x("PRAGMA writable_schema = 1", json!([])),
            x("CREATE TEMP TABLE t (x)", json!([])),
            q("SELECT * FROM secrets", json!([])),
        ]),
    )
    .await;
    for (i, code) in [
        "permission-denied",
        "permission-denied",
        "invalid-input",
        "permission-denied",
        "permission-denied",
        "permission-denied",
        "permission-denied",
        "permission-denied",
        "invalid-input",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(err_code(&r[i]), *code, "op {i}: {}", r[i]);
    }
    assert!(!std::path::Path::new(&outside).exists());
    let guest_text = String::from_utf8_lossy(&out.output);
    assert!(!guest_text.contains(e.dir.path().to_str().unwrap()), "{guest_text}");
    // Operators see what was denied.
    assert!(
        out.record.host_errors.iter().any(|h| h.starts_with("db.execute: denied: ATTACH")),
        "{:?}",
        out.record.host_errors
    );
    // team-a's data is untouched and still its own.
    let (_, r) = sql(&e, "team-a", json!([q("SELECT v FROM secrets", json!([]))])).await;
    assert_eq!(ok(&r[0])["rows"], json!([["a-only"]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_errors_reach_the_guest_without_host_detail() {
    let e = env();
    let (out, r) = sql(
        &e,
        "default",
        json!([
            x("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)", json!([])),
            x("INSERT INTO t (name) VALUES ('dup')", json!([])),
            x("INSERT INTO t (name) VALUES ('dup')", json!([])),
            q("SELECT * FROM no_such_table", json!([])),
            q("SELEKT 1", json!([])),
            q("SELECT ?", json!([])),
            x("SELECT 1", json!([])),
        ]),
    )
    .await;
    for v in &r[2..] {
        assert_eq!(err_code(v), "invalid-input", "{v}");
        assert_eq!(v["err"]["message"], "invalid input", "{v}");
    }
    let guest_text = String::from_utf8_lossy(&out.output);
    let data_dir = e.dir.path().to_str().unwrap();
    for leak in [data_dir, ".sqlite3", "no_such_table", "UNIQUE constraint", "syntax error"] {
        assert!(!guest_text.contains(leak), "{leak} reached the guest: {guest_text}");
    }
    // The operator's record has SQLite's own words.
    let rec = e.orbit.runs().get(out.run_id()).unwrap().unwrap();
    let errors = rec.host_errors.join("\n");
    assert!(errors.contains("UNIQUE constraint failed"), "{errors}");
    assert!(errors.contains("no such table: no_such_table"), "{errors}");
    assert!(!errors.contains(data_dir), "{errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_have_their_own_tables() {
    let e = env();
    for (w, v) in [("team-a", "alpha"), ("team-b", "beta")] {
        let (_, r) = sql(
            &e,
            w,
            json!([
                x("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)", json!([])),
                x("INSERT INTO kv VALUES ('k', ?)", json!([v]))
            ]),
        )
        .await;
        assert!(r.iter().all(|v| v.get("ok").is_some()), "{r:?}");
    }
    let (_, r) = sql(&e, "team-a", json!([q("SELECT v FROM kv", json!([])), x("DELETE FROM kv", json!([]))])).await;
    assert_eq!(ok(&r[0])["rows"], json!([["alpha"]]));
    let (_, r) = sql(&e, "team-b", json!([q("SELECT v FROM kv", json!([]))])).await;
    assert_eq!(ok(&r[0])["rows"], json!([["beta"]]), "team-a's delete did not reach team-b");
    let (_, r) = sql(&e, "team-c", json!([q("SELECT v FROM kv", json!([]))])).await;
    assert_eq!(err_code(&r[0]), "invalid-input", "team-c has no such table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_size_cap_is_limit_exceeded() {
    let mut limits = DbLimits::default();
    limits.max_db_bytes = 256 << 10;
    let e = env_with(limits);
    let fill = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) INSERT INTO b SELECT randomblob(1000) FROM c";
    let (_, r) = sql(
        &e,
        "default",
        json!([
            x("CREATE TABLE b (data BLOB)", json!([])),
            x(fill, json!([100])),
            x(fill, json!([1000])),
            q("SELECT count(*) FROM b", json!([])),
            x("DELETE FROM b", json!([])),
            x(fill, json!([100])),
        ]),
    )
    .await;
    assert_eq!(ok(&r[1]), 100);
    assert_eq!(err_code(&r[2]), "limit-exceeded");
    assert_eq!(ok(&r[3])["rows"], json!([[100]]), "the failed insert left nothing behind");
    assert_eq!(ok(&r[5]), 100);
    let size = std::fs::metadata(e.dir.path().join("db/default.sqlite3")).unwrap().len();
    assert!(size <= 256 << 10, "database file is {size} bytes");
}

/// Sums the `units` column of the sample per region, independently of SQL.
fn sample_totals() -> (usize, i64, Vec<(String, f64)>) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/csv-db/data/sales.csv")).unwrap();
    let mut per_region = std::collections::BTreeMap::<String, i64>::new();
    let (mut rows, mut units) = (0, 0);
    for line in text.lines().skip(1) {
        // The sample quotes only product names; region and units come first
        // and last but one.
        let fields: Vec<&str> = line.split(',').collect();
        let u: i64 = fields[fields.len() - 2].parse().unwrap();
        *per_region.entry(fields[1].to_owned()).or_default() += u;
        rows += 1;
        units += u;
    }
    let mut totals: Vec<(String, f64)> = per_region.into_iter().map(|(k, v)| (k, v as f64)).collect();
    totals.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    (rows, units, totals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_example_loads_and_summarises_the_sample() {
    let e = env();
    let out = e.run_in("csv-db", "sales", "", common::limits()).await;
    assert!(out.status().is_success(), "{:?}", out.record);
    let v: Value = serde_json::from_slice(&out.output).unwrap();
    let (rows, units, totals) = sample_totals();
    assert_eq!(v["rows"], rows);
    assert_eq!(
        v["columns"],
        json!([
            {"name": "date", "type": "TEXT"}, {"name": "region", "type": "TEXT"}, {"name": "product", "type": "TEXT"},
            {"name": "units", "type": "INTEGER"}, {"name": "unit_price", "type": "REAL"},
        ])
    );
    let u = &v["numeric"][0];
    assert_eq!(
        (u["column"].as_str(), u["count"].as_u64(), u["sum"].as_f64()),
        (Some("units"), Some(rows as u64), Some(units as f64))
    );
    assert_eq!(v["groups"]["by"], "region");
    let got: Vec<(String, f64)> = v["groups"]["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_f64().unwrap()))
        .collect();
    assert_eq!(got, totals);
    // The table stays for later queries, quoted product names intact.
    let store = e.orbit.sql();
    let r = store
        .query(
            &ws("sales"),
            "SELECT count(*) FROM csv WHERE product = ?",
            &[orbit::orbit_db::Value::Text("Doohickey, large".into())],
            None,
        )
        .unwrap();
    assert!(matches!(r.rows[0][..], [orbit::orbit_db::Value::Integer(n)] if n > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_example_takes_csv_input_with_quotes_and_gaps() {
    let e = env();
    let csv = "name,\"score \"\"raw\"\"\",weight\n\"Smith, J\",10,1.5\nLee,,2\n\"O'Neil\",7,\nLee,3,0.5\n";
    let out = e.run_in("csv-db", "default", csv, common::limits()).await;
    assert!(out.status().is_success(), "{:?}", out.record);
    let v: Value = serde_json::from_slice(&out.output).unwrap();
    assert_eq!(v["rows"], 4);
    assert_eq!(v["columns"][1], json!({"name": "score \"raw\"", "type": "INTEGER"}));
    assert_eq!(v["columns"][2], json!({"name": "weight", "type": "REAL"}));
    let score = &v["numeric"][0];
    assert_eq!(
        (score["count"].as_u64(), score["sum"].as_f64(), score["max"].as_f64()),
        (Some(3), Some(20.0), Some(10.0))
    );
    assert_eq!(v["groups"]["totals"], json!([["Smith, J", 10.0], ["O'Neil", 7.0], ["Lee", 3.0]]));
    // A second run replaces the table rather than appending.
    let out = e.run_in("csv-db", "default", csv, common::limits()).await;
    let v: Value = serde_json::from_slice(&out.output).unwrap();
    assert_eq!(v["rows"], 4);
}
