//! Unit tests against real SQLite files in a tempdir.

use super::*;

fn store(limits: DbLimits) -> (tempfile::TempDir, SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqlStore::open(&dir.path().join("db"), limits).unwrap();
    (dir, s)
}

fn ws(name: &str) -> WorkspaceId {
    WorkspaceId::new(name).unwrap()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn stmt(sql: &str, params: Vec<Value>) -> Statement {
    Statement { sql: sql.to_owned(), params }
}

const RUNAWAY: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

#[test]
fn crud_and_typed_values_round_trip() {
    let (_d, s) = store(DbLimits::default());
    let w = ws("w");
    assert_eq!(s.execute(&w, "CREATE TABLE t (id INTEGER PRIMARY KEY, i, r, s, b, n)", &[], None).unwrap(), 0);
    let blob: Vec<u8> = (0..=255).collect();
    let params = vec![
        Value::Integer(i64::MIN),
        Value::Real(-1.5e-300),
        text("héllo \0 'quoted'; DROP TABLE t; --"),
        Value::Blob(blob.clone()),
        Value::Null,
    ];
    assert_eq!(s.execute(&w, "INSERT INTO t (i, r, s, b, n) VALUES (?, ?, ?, ?, ?)", &params, None).unwrap(), 1);
    assert_eq!(
        s.execute(&w, "INSERT INTO t (i) VALUES (:a), (:b)", &[Value::Integer(2), Value::Integer(3)], None).unwrap(),
        2
    );
    // A CREATE after an INSERT changed nothing (sqlite3_changes() would say 2).
    assert_eq!(s.execute(&w, "CREATE INDEX t_i ON t (i)", &[], None).unwrap(), 0);

    let rows = s.query(&w, "SELECT i, r, s, b, n FROM t WHERE id = ?", &[Value::Integer(1)], None).unwrap();
    assert_eq!(rows.columns, ["i", "r", "s", "b", "n"]);
    assert_eq!(rows.rows.len(), 1);
    let r = &rows.rows[0];
    assert!(matches!(r[0], Value::Integer(i64::MIN)));
    assert!(matches!(r[1], Value::Real(f) if f == -1.5e-300));
    assert!(matches!(&r[2], Value::Text(t) if t == "héllo \0 'quoted'; DROP TABLE t; --"));
    assert!(matches!(&r[3], Value::Blob(b) if *b == blob));
    assert!(matches!(r[4], Value::Null));

    assert_eq!(s.execute(&w, "UPDATE t SET i = i * 10 WHERE i > ?", &[Value::Integer(1)], None).unwrap(), 2);
    assert_eq!(s.execute(&w, "DELETE FROM t WHERE i = 20", &[], None).unwrap(), 1);
    let rows = s.query(&w, "SELECT count(*) AS n, sum(i) FROM t WHERE i > 0", &[], None).unwrap();
    assert_eq!(rows.columns[0], "n");
    assert!(matches!(rows.rows[0][..], [Value::Integer(1), Value::Integer(30)]));
    // The data is in the workspace's file, readable by another connection.
    let other = rusqlite::Connection::open(s.path(&w)).unwrap();
    let n: i64 = other.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 2);
}

#[test]
fn batch_is_all_or_nothing() {
    let (_d, s) = store(DbLimits::default());
    let w = ws("w");
    let changed = s
        .batch(
            &w,
            &[
                stmt(
                    "CREATE TABLE acct (name TEXT PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))",
                    vec![],
                ),
                stmt(
                    "INSERT INTO acct VALUES (?, ?), (?, ?)",
                    vec![text("a"), Value::Integer(10), text("b"), Value::Integer(0)],
                ),
            ],
            None,
        )
        .unwrap();
    assert_eq!(changed, [0, 2]);
    // The second transfer overdraws: the first must be undone too.
    let err = s
        .batch(
            &w,
            &[
                stmt("UPDATE acct SET balance = balance - 5 WHERE name = 'a'", vec![]),
                stmt("UPDATE acct SET balance = balance + 5 WHERE name = 'b'", vec![]),
                stmt("UPDATE acct SET balance = balance - 50 WHERE name = 'a'", vec![]),
            ],
            None,
        )
        .unwrap_err();
    assert!(matches!(err, DbError::InvalidSql(_)), "{err:?}");
    let rows = s.query(&w, "SELECT balance FROM acct ORDER BY name", &[], None).unwrap();
    assert!(
        matches!(rows.rows[..], [ref a, ref b] if matches!(a[..], [Value::Integer(10)]) && matches!(b[..], [Value::Integer(0)]))
    );
    // A guest cannot open its own transaction; the batch left none open.
    assert!(matches!(s.execute(&w, "BEGIN", &[], None), Err(DbError::Denied(_))));
    assert!(matches!(s.execute(&w, "SAVEPOINT x", &[], None), Err(DbError::Denied(_))));
    let big = vec![stmt("SELECT 1", vec![]); 1001];
    assert!(matches!(s.batch(&w, &big, None), Err(DbError::BatchTooLarge { count: 1001, limit: 1000 })));
}

#[test]
fn runaway_query_stops_at_the_call_cap_and_the_run_deadline() {
    let limits = DbLimits { max_call_time: Duration::from_millis(200), ..DbLimits::default() };
    let (_d, s) = store(limits);
    let w = ws("w");
    let start = Instant::now();
    let err = s.query(&w, RUNAWAY, &[], None).unwrap_err();
    assert!(matches!(err, DbError::Interrupted { run_deadline: false }), "{err:?}");
    assert_eq!(err.code(), ErrorCode::LimitExceeded);
    assert!(start.elapsed() >= Duration::from_millis(200));
    // An earlier run deadline wins over the cap.
    let err = s.query(&w, RUNAWAY, &[], Some(Instant::now() + Duration::from_millis(50))).unwrap_err();
    assert!(matches!(err, DbError::Interrupted { run_deadline: true }), "{err:?}");
    // A deadline already past refuses to start.
    let err = s.execute(&w, "CREATE TABLE t (x)", &[], Some(Instant::now())).unwrap_err();
    assert!(matches!(err, DbError::Interrupted { run_deadline: true }), "{err:?}");
    // The connection is usable afterwards, with no deadline left behind.
    s.execute(&w, "CREATE TABLE t (x)", &[], None).unwrap();
    let rows = s.query(&w, "SELECT count(*) FROM t", &[], None).unwrap();
    assert!(matches!(rows.rows[0][..], [Value::Integer(0)]));
}

#[test]
fn results_are_capped_in_rows_and_bytes() {
    let limits = DbLimits { max_rows: 100, max_result_bytes: 10_000, ..DbLimits::default() };
    let (_d, s) = store(limits);
    let w = ws("w");
    let series = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT x FROM c";
    assert_eq!(s.query(&w, series, &[Value::Integer(100)], None).unwrap().rows.len(), 100);
    let err = s.query(&w, series, &[Value::Integer(101)], None).unwrap_err();
    assert!(matches!(err, DbError::TooManyRows { limit: 100 }), "{err:?}");
    assert_eq!(err.code(), ErrorCode::TooLarge);
    let err = s.query(&w, "SELECT zeroblob(20000)", &[], None).unwrap_err();
    assert!(matches!(err, DbError::ResultTooLarge { limit: 10_000 }), "{err:?}");
}

#[test]
fn values_and_statements_over_sqlite_limits_are_too_large() {
    let limits = DbLimits { max_value_bytes: 1000, max_sql_bytes: 200, ..DbLimits::default() };
    let (_d, s) = store(limits);
    let w = ws("w");
    let err = s.query(&w, "SELECT randomblob(2000)", &[], None).unwrap_err();
    assert!(matches!(err, DbError::ValueTooLarge(_)), "{err:?}");
    let long = format!("SELECT '{}'", "x".repeat(300));
    let err = s.query(&w, &long, &[], None).unwrap_err();
    assert!(matches!(err, DbError::ValueTooLarge(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::TooLarge);
}

#[test]
fn sandbox_denies_files_extensions_and_settings() {
    let (d, s) = store(DbLimits::default());
    let w = ws("w");
    s.execute(&w, "CREATE TABLE t (x)", &[], None).unwrap();
    let elsewhere = d.path().join("elsewhere.db");
    let quoted = elsewhere.display().to_string().replace('\'', "''");
    let denied = [
        format!("ATTACH '{quoted}' AS other"),
        "ATTACH ':memory:' AS m".to_owned(),
        "DETACH main".to_owned(),
        format!("VACUUM INTO '{quoted}'"),
        "VACUUM".to_owned(),
        "SELECT load_extension('/tmp/evil.so')".to_owned(),
        "PRAGMA journal_mode = DELETE".to_owned(),
        "PRAGMA writable_schema = ON".to_owned(),
        "PRAGMA max_page_count = 100000000".to_owned(),
        "PRAGMA user_version = 7".to_owned(),
        "PRAGMA temp_store_directory = '/tmp'".to_owned(),
        "PRAGMA foreign_keys = OFF".to_owned(),
        "PRAGMA cache_size".to_owned(),
        "CREATE TEMP TABLE tt (x)".to_owned(),
        "CREATE VIRTUAL TABLE v USING dbstat".to_owned(),
    ];
    for sql in &denied {
        let err = s.execute(&w, sql, &[], None).unwrap_err();
        assert!(matches!(err, DbError::Denied(_)), "{sql}: {err:?}");
        assert_eq!(err.code(), ErrorCode::PermissionDenied);
        let err = s.query(&w, sql, &[], None).unwrap_err();
        assert!(matches!(err, DbError::Denied(_)), "{sql}: {err:?}");
    }
    assert!(!elsewhere.exists(), "no file may be created outside the workspace database");
    // The settings did not change.
    let rows = s.query(&w, "PRAGMA max_page_count", &[], None).unwrap();
    assert!(matches!(rows.rows[0][..], [Value::Integer(n)] if n < 100_000_000));
    let rows = s.query(&w, "PRAGMA foreign_keys", &[], None).unwrap();
    assert!(matches!(rows.rows[0][..], [Value::Integer(1)]));
    // Read-only pragmas and their table-valued forms are allowed.
    let rows = s.query(&w, "PRAGMA table_info(t)", &[], None).unwrap();
    assert_eq!(rows.rows.len(), 1);
    let rows = s.query(&w, "SELECT name FROM pragma_table_info('t')", &[], None).unwrap();
    assert!(matches!(&rows.rows[0][..], [Value::Text(n)] if n == "x"));
    s.query(&w, "PRAGMA user_version", &[], None).unwrap();
    // Full-text search keeps its data in the same file.
    s.execute(&w, "CREATE VIRTUAL TABLE docs USING fts5(body)", &[], None).unwrap();
    s.execute(&w, "INSERT INTO docs VALUES (?)", &[text("the quick brown fox")], None).unwrap();
    let rows = s.query(&w, "SELECT body FROM docs WHERE docs MATCH ?", &[text("quick")], None).unwrap();
    assert_eq!(rows.rows.len(), 1);
}

#[test]
fn sql_errors_are_invalid_input_without_host_paths() {
    let (d, s) = store(DbLimits::default());
    let w = ws("w");
    s.execute(&w, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)", &[], None).unwrap();
    s.execute(&w, "INSERT INTO t (name) VALUES ('a')", &[], None).unwrap();
    let cases: &[(&str, Vec<Value>)] = &[
        ("SELEC 1", vec![]),
        ("SELECT * FROM missing", vec![]),
        ("SELECT nope FROM t", vec![]),
        ("INSERT INTO t (name) VALUES ('a')", vec![]),
        ("INSERT INTO t (name) VALUES (NULL)", vec![]),
        ("INSERT INTO t (name) VALUES (?)", vec![]),
        ("INSERT INTO t (name) VALUES (?)", vec![text("x"), text("y")]),
        ("SELECT 1; SELECT 2", vec![]),
        ("SELECT \"not a string\"", vec![]),
    ];
    let dir = d.path().display().to_string();
    for (sql, params) in cases {
        let err = s.query(&w, sql, params, None).unwrap_err();
        assert!(matches!(err, DbError::InvalidSql(_)), "{sql}: {err:?}");
        assert_eq!(err.code(), ErrorCode::InvalidInput);
        assert!(!err.to_string().contains(&dir), "{err}");
        let guest = HostError::from(err).to_guest();
        assert_eq!(guest.message, "invalid input");
    }
    let err = s.execute(&w, "SELECT * FROM t", &[], None).unwrap_err();
    assert!(matches!(err, DbError::InvalidSql(_)), "{err:?}");
    // `RETURNING` through execute is refused before it writes; query runs it.
    let err = s.execute(&w, "INSERT INTO t (name) VALUES ('r') RETURNING id", &[], None).unwrap_err();
    assert!(matches!(err, DbError::InvalidSql(_)), "{err:?}");
    let rows = s.query(&w, "SELECT count(*) FROM t WHERE name = 'r'", &[], None).unwrap();
    assert!(matches!(rows.rows[0][..], [Value::Integer(0)]));
    let rows = s.query(&w, "INSERT INTO t (name) VALUES ('r') RETURNING id", &[], None).unwrap();
    assert!(matches!(rows.rows[..], [ref r] if matches!(r[..], [Value::Integer(2)])));
}

#[test]
fn database_size_is_capped_per_workspace() {
    let limits = DbLimits { max_db_bytes: 256 << 10, ..DbLimits::default() };
    let (_d, s) = store(limits);
    let w = ws("w");
    s.execute(&w, "CREATE TABLE b (data BLOB)", &[], None).unwrap();
    let chunk = Value::Blob(vec![7; 16 << 10]);
    let mut inserted = 0;
    let err = loop {
        match s.execute(&w, "INSERT INTO b VALUES (?)", std::slice::from_ref(&chunk), None) {
            Ok(_) => inserted += 1,
            Err(e) => break e,
        }
        assert!(inserted < 100, "the cap never applied");
    };
    assert!(matches!(err, DbError::DatabaseFull { limit_bytes } if limit_bytes == 256 << 10), "{err:?}");
    assert_eq!(err.code(), ErrorCode::LimitExceeded);
    assert!(inserted >= 10, "only {inserted} rows fit");
    // Deleting makes room again, and another workspace has its own cap.
    s.execute(&w, "DELETE FROM b", &[], None).unwrap();
    s.execute(&w, "INSERT INTO b VALUES (?)", std::slice::from_ref(&chunk), None).unwrap();
    let v = ws("v");
    s.execute(&v, "CREATE TABLE b (data BLOB)", &[], None).unwrap();
    s.execute(&v, "INSERT INTO b VALUES (?)", std::slice::from_ref(&chunk), None).unwrap();
}

#[test]
fn workspaces_have_separate_files() {
    let limits = DbLimits { max_open_databases: 1, ..DbLimits::default() };
    let (_d, s) = store(limits);
    let (a, b, c) = (ws("team-a"), ws("team-b"), ws("team-c"));
    for (w, v) in [(&a, "a-secret"), (&b, "b-data")] {
        s.execute(w, "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)", &[], None).unwrap();
        s.execute(w, "INSERT INTO kv VALUES ('k', ?)", &[text(v)], None).unwrap();
    }
    let err = s.query(&c, "SELECT * FROM kv", &[], None).unwrap_err();
    assert!(matches!(err, DbError::InvalidSql(_)), "{err:?}");
    // With one open database at a time, connections were closed and
    // reopened; the data is still each workspace's own.
    for (w, v) in [(&a, "a-secret"), (&b, "b-data")] {
        let rows = s.query(w, "SELECT v FROM kv", &[], None).unwrap();
        assert!(matches!(&rows.rows[0][..], [Value::Text(t)] if t == v));
    }
    assert_ne!(s.path(&a), s.path(&b));
    assert!(s.path(&a).is_file() && s.path(&b).is_file());
}

#[test]
fn statement_kinds_skip_comments() {
    assert_eq!(statement_kind("  select 1"), "select");
    assert_eq!(statement_kind("-- note\n/* x */ INSERT INTO t VALUES (1)"), "insert");
    assert_eq!(statement_kind("WITH x AS (SELECT 1) SELECT * FROM x"), "with");
    assert_eq!(statement_kind("frobnicate"), "other");
    assert_eq!(statement_kind(""), "other");
}

#[test]
fn a_call_waiting_for_a_busy_workspace_keeps_its_own_deadline() {
    let limits = DbLimits { max_call_time: Duration::from_millis(500), ..DbLimits::default() };
    let (_d, s) = store(limits);
    let s = Arc::new(s);
    let w = ws("w");
    let (s2, w2) = (s.clone(), w.clone());
    let long = std::thread::spawn(move || s2.query(&w2, RUNAWAY, &[], None));
    std::thread::sleep(Duration::from_millis(100));
    // Queued behind the runaway query; its deadline passes while it waits,
    // so it must not start afterwards.
    let err =
        s.execute(&w, "CREATE TABLE late (x)", &[], Some(Instant::now() + Duration::from_millis(50))).unwrap_err();
    assert!(matches!(err, DbError::Interrupted { run_deadline: true }), "{err:?}");
    assert!(matches!(long.join().unwrap(), Err(DbError::Interrupted { run_deadline: false })));
    let err = s.query(&w, "SELECT * FROM late", &[], None).unwrap_err();
    assert!(matches!(err, DbError::InvalidSql(_)), "the late statement never ran: {err:?}");
    // Another workspace was never blocked by this one's lock.
    s.execute(&ws("v"), "CREATE TABLE t (x)", &[], None).unwrap();
}

#[test]
fn a_read_only_call_may_read_but_no_statement_may_write_and_the_connection_stays_writable() {
    let (_d, s) = store(DbLimits::default());
    let w = ws("w");
    s.execute(&w, "CREATE TABLE t (x INTEGER)", &[], None).unwrap();
    s.execute(&w, "CREATE TRIGGER tr AFTER UPDATE ON t BEGIN SELECT 1; END", &[], None).unwrap();
    // So that REINDEX has an index to rebuild.
    s.execute(&w, "CREATE INDEX ix ON t (x)", &[], None).unwrap();
    s.execute(&w, "INSERT INTO t VALUES (1)", &[], None).unwrap();
    let ro = Access::ReadOnly;
    for sql in [
        "INSERT INTO t VALUES (2)",
        "insert into t select x + 1 from t",
        "UPDATE t SET x = 3",
        "DELETE FROM t",
        "REPLACE INTO t VALUES (4)",
        "CREATE TABLE u (y)",
        "CREATE INDEX i ON t (x)",
        "CREATE VIEW v AS SELECT 1",
        "CREATE TRIGGER tr2 AFTER INSERT ON t BEGIN SELECT 1; END",
        "CREATE VIRTUAL TABLE f USING fts5(body)",
        "DROP TRIGGER tr",
        "DROP INDEX ix",
        "DROP TABLE t",
        "ALTER TABLE t RENAME TO t2",
        "ALTER TABLE t ADD COLUMN y",
        "ANALYZE",
        "REINDEX",
        "PRAGMA user_version = 7",
    ] {
        assert!(matches!(s.execute_as(&w, ro, sql, &[], None), Err(DbError::Denied(_))), "{sql}");
    }
    let batch = [stmt("INSERT INTO t VALUES (5)", vec![])];
    assert!(matches!(s.batch_as(&w, ro, &batch, None), Err(DbError::Denied(_))));
    assert!(matches!(s.query_as(&w, ro, "INSERT INTO t VALUES (6) RETURNING x", &[], None), Err(DbError::Denied(_))));
    let rows = s.query_as(&w, ro, "WITH c AS (SELECT x FROM t) SELECT count(*), max(x) FROM c", &[], None).unwrap();
    assert!(matches!(rows.rows.as_slice(), [r] if matches!(r.as_slice(), [Value::Integer(1), Value::Integer(1)])));
    assert!(s.query_as(&w, ro, "PRAGMA table_info(t)", &[], None).is_ok());
    // The next read-write call on the same connection may write again.
    assert_eq!(s.execute(&w, "INSERT INTO t VALUES (2)", &[], None).unwrap(), 1);
    let names = s.query(&w, "SELECT name FROM sqlite_schema ORDER BY name", &[], None).unwrap();
    let names: Vec<String> = names
        .rows
        .iter()
        .map(|r| match r.as_slice() {
            [Value::Text(n)] => n.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["ix", "t", "tr"]);
}

mod properties {
    //! Property tests: values of every type round-trip as parameters, and
    //! statements built from the sandbox's hostile vocabulary never write
    //! in a read-only call nor reach a file outside the workspace's.

    use proptest::prelude::*;

    use super::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            // SQLite stores NaN as NULL: every other double round-trips.
            any::<f64>().prop_filter("not NaN", |f| !f.is_nan()).prop_map(Value::Real),
            any::<String>().prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Blob),
        ]
    }

    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Null, Value::Null) => true,
            (Value::Integer(x), Value::Integer(y)) => x == y,
            (Value::Real(x), Value::Real(y)) => x == y,
            (Value::Text(x), Value::Text(y)) => x == y,
            (Value::Blob(x), Value::Blob(y)) => x == y,
            _ => false,
        }
    }

    /// Statements from the vocabulary an attacker reaches for: writes,
    /// schema changes, attachments, file-writing functions and pragmas,
    /// with names and paths drawn at random.
    fn hostile(path: String) -> impl Strategy<Value = String> {
        let name = "[a-z_]{1,8}";
        let quoted = path.replace('\'', "''");
        prop_oneof![
            name.prop_map(|n| format!("INSERT INTO t VALUES ('{n}')")),
            Just("UPDATE t SET x = x || 'z'".to_owned()),
            Just("DELETE FROM t".to_owned()),
            name.prop_map(|n| format!("CREATE TABLE {n} (y)")),
            name.prop_map(|n| format!("CREATE TEMP TABLE {n} (y)")),
            Just("DROP TABLE t".to_owned()),
            name.prop_map(|n| format!("ALTER TABLE t RENAME TO {n}")),
            name.prop_map(move |n| format!("ATTACH '{quoted}{n}' AS {n}")),
            Just(format!("VACUUM INTO '{}'", path.replace('\'', "''"))),
            Just(format!("SELECT writefile('{}', 'x')", path.replace('\'', "''"))),
            Just(format!("SELECT load_extension('{}')", path.replace('\'', "''"))),
            (name, 0..100_000_000i64).prop_map(|(n, v)| format!("PRAGMA {n} = {v}")),
            prop::sample::select(vec![
                "journal_mode = OFF",
                "writable_schema = ON",
                "max_page_count = 99999999",
                "temp_store_directory = '/tmp'",
                "query_only = OFF",
                "trusted_schema = ON",
                "cell_size_check = OFF",
                "mmap_size = 1000000000",
                "locking_mode = EXCLUSIVE",
            ])
            .prop_map(|p| format!("PRAGMA {p}")),
            Just("CREATE VIRTUAL TABLE v USING dbstat".to_owned()),
            Just("SELECT * FROM sqlite_dbpage".to_owned()),
            Just("INSERT INTO t VALUES (1) RETURNING x".to_owned()),
            Just("WITH c AS (SELECT 1) INSERT INTO t SELECT * FROM c".to_owned()),
            Just("REINDEX".to_owned()),
            Just("ANALYZE".to_owned()),
        ]
    }

    /// Everything a reader could tell about the database: schema and rows.
    fn fingerprint(s: &SqlStore, w: &WorkspaceId) -> String {
        let schema = s.query(w, "SELECT type, name, sql FROM sqlite_schema ORDER BY name", &[], None).unwrap();
        let rows = s.query(w, "SELECT * FROM t ORDER BY rowid", &[], None).map(|r| r.rows);
        format!("{:?}{:?}", schema.rows, rows.map_err(|e| e.to_string()))
    }

    /// Files under `dir` (recursively) that are not the workspace `w`'s
    /// database and its journal.
    fn strays(dir: &std::path::Path, db_dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path == db_dir {
                for f in std::fs::read_dir(&path).unwrap() {
                    let name = f.unwrap().file_name().to_string_lossy().into_owned();
                    if !name.starts_with("w.") {
                        out.push(format!("db/{name}"));
                    }
                }
            } else {
                out.push(path.display().to_string());
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn values_round_trip_as_parameters(values in proptest::collection::vec(value(), 1..8)) {
            let (_d, s) = store(DbLimits::default());
            let w = ws("w");
            s.execute(&w, "CREATE TABLE t (v)", &[], None).unwrap();
            for v in &values {
                s.execute(&w, "INSERT INTO t (v) VALUES (?)", std::slice::from_ref(v), None).unwrap();
            }
            let rows = s.query(&w, "SELECT v FROM t ORDER BY rowid", &[], None).unwrap();
            prop_assert_eq!(rows.rows.len(), values.len());
            for (row, v) in rows.rows.iter().zip(&values) {
                prop_assert!(same(&row[0], v), "{:?} came back as {:?}", v, row[0]);
            }
            // And as a parameter of a query: the value finds its own row.
            for v in values.iter().filter(|v| !matches!(v, Value::Null)) {
                let found = s.query(&w, "SELECT count(*) FROM t WHERE v IS ?", std::slice::from_ref(v), None).unwrap();
                prop_assert!(matches!(found.rows[0][..], [Value::Integer(n)] if n >= 1), "{:?}", v);
            }
        }

        #[test]
        fn hostile_statements_never_write_read_only_nor_reach_other_files(
            sqls in proptest::collection::vec(hostile("PLACEHOLDER".into()), 1..12),
        ) {
            let (d, s) = store(DbLimits::default());
            let w = ws("w");
            s.execute(&w, "CREATE TABLE t (x)", &[], None).unwrap();
            s.execute(&w, "INSERT INTO t VALUES ('a')", &[], None).unwrap();
            let outside = d.path().join("outside");
            let outside_text = outside.display().to_string();
            let db_dir = d.path().join("db");
            for sql in &sqls {
                let sql = sql.replace("PLACEHOLDER", &outside_text);
                let before = fingerprint(&s, &w);
                let ro = Access::ReadOnly;
                let _ = s.execute_as(&w, ro, &sql, &[], None);
                let _ = s.query_as(&w, ro, &sql, &[], None);
                prop_assert_eq!(&fingerprint(&s, &w), &before, "a read-only call changed the database: {}", sql);
                // Read-write calls may change the workspace's own tables,
                // but no setting and nothing outside its database file.
                let _ = s.execute(&w, &sql, &[], None);
                let _ = s.query(&w, &sql, &[], None);
                let strays = strays(d.path(), &db_dir);
                prop_assert!(strays.is_empty(), "{} left {:?}", sql, strays);
                let settings = s.query(&w, "PRAGMA max_page_count", &[], None).unwrap();
                prop_assert!(matches!(settings.rows[0][..], [Value::Integer(n)] if n < 99_999_999), "{}", sql);
            }
        }
    }
}
