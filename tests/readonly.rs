//! Read-only means read-only on every primitive: a run whose principal may
//! not write gets `permission-denied` for each write on storage, cache, db,
//! jobs, fetch and tools, changes nothing, and can still read; a member's
//! same writes succeed. Real guests, real redb and SQLite files, a real HTTP
//! server on loopback and a real MCP server (server-everything, installed by
//! `scripts/install-test-deps.sh`).

mod common;

use common::ws;
use orbit::orbit_tools::{ServerSpec, ServerTransport};
use orbit::orbit_workspace::{Principal, Role, UserId};
use orbit::{FetchConfig, Invocation, JobDefaults, Limits, Orbit, OrbitConfig, Outcome, RunStatus};
use serde_json::{Value, json};

const WS: &str = "team";

fn reader() -> Principal {
    Principal::user(UserId::new("rita").unwrap(), Role::ReadOnly)
}

fn member() -> Principal {
    Principal::user(UserId::new("max").unwrap(), Role::Member)
}

/// An Orbit whose fetch policy lets guests reach loopback test servers.
fn open(dir: &std::path::Path) -> Orbit {
    let mut cfg = OrbitConfig::default();
    cfg.fetch = Some(FetchConfig { allow_ips: vec!["127.0.0.1/32".parse().unwrap()], ..FetchConfig::default() });
    cfg.master_key = Some(orbit::MasterKey::from_bytes([7; 32]));
    Orbit::open_with(dir, cfg).unwrap()
}

async fn run_as(orbit: &Orbit, guest: &str, input: &str, principal: Principal) -> Outcome {
    let wasm = orbit_test_guests::bytes(guest);
    let inv = Invocation::new(input).workspace(ws(WS)).principal(principal.clone()).limits(Limits::default());
    let out = orbit.engine().invoke_wasm(&wasm, inv).await.unwrap();
    assert_eq!(out.record.principal, Some(principal), "the run records who it ran for");
    out
}

/// Runs a script fixture (`ops`, `db-client`, `tools-client`) and returns
/// its per-operation results.
async fn script(orbit: &Orbit, guest: &str, ops: Value, principal: Principal) -> (Outcome, Vec<Value>) {
    let out = run_as(orbit, guest, &ops.to_string(), principal).await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    let results: Vec<Value> = serde_json::from_slice(&out.output).unwrap();
    (out, results)
}

fn denied(r: &Value) -> bool {
    r["err"]["code"] == "permission-denied" && r["err"]["message"] == "permission denied"
}

fn ok(r: &Value) -> &Value {
    assert!(r.get("ok").is_some(), "expected success, got {r}");
    &r["ok"]
}

/// The outcomes of the spans of `primitive.operation`, in order.
fn outcomes(out: &Outcome, primitive: &str, operation: &str) -> Vec<String> {
    out.record
        .spans
        .iter()
        .filter(|s| s.primitive == primitive && s.operation == operation)
        .map(|s| s.outcome.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_and_cache_refuse_every_write_of_a_read_only_run() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    let seed = json!([
        {"op": "put", "key": "doc", "value": "v1"},
        {"op": "cache_set", "key": "k", "value": "1", "ttl_ms": null},
        {"op": "incr", "key": "n", "delta": 5},
    ]);
    script(&orbit, "ops", seed, member()).await;

    let writes = json!([
        {"op": "put", "key": "doc", "value": "v2"},
        {"op": "put", "key": "new", "value": "x"},
        {"op": "delete", "key": "doc"},
        {"op": "cache_set", "key": "k", "value": "2", "ttl_ms": null},
        {"op": "cache_delete", "key": "k"},
        {"op": "incr", "key": "n", "delta": 1},
        {"op": "get", "key": "doc"},
        {"op": "head", "key": "doc"},
        {"op": "list", "prefix": "", "cursor": null},
        {"op": "cache_get", "key": "k"},
        {"op": "cache_get", "key": "n"},
    ]);
    let (out, r) = script(&orbit, "ops", writes.clone(), reader()).await;
    for (i, what) in ["put", "put new", "delete", "cache set", "cache delete", "increment"].iter().enumerate() {
        assert!(denied(&r[i]), "{what}: {}", r[i]);
    }
    // Reads work and see the data unchanged.
    assert_eq!(ok(&r[6]), "v1");
    assert_eq!(ok(&r[7])["size"], 2);
    assert_eq!(ok(&r[8])["keys"], json!(["doc"]));
    assert_eq!(ok(&r[9]), "1");
    assert_eq!(ok(&r[10]), "5");
    // Each refusal is a span with outcome permission-denied.
    assert_eq!(outcomes(&out, "storage", "put"), ["permission-denied", "permission-denied"]);
    assert_eq!(outcomes(&out, "storage", "delete"), ["permission-denied"]);
    assert_eq!(outcomes(&out, "storage", "get"), ["ok"]);
    for op in ["set", "delete", "increment"] {
        assert_eq!(outcomes(&out, "cache", op), ["permission-denied"], "cache.{op}");
    }
    // The host sees nothing changed.
    let team = ws(WS);
    assert_eq!(orbit.blobs().get(&team, "doc").unwrap(), b"v1");
    assert!(orbit.blobs().get(&team, "new").is_err());
    assert_eq!(orbit.cache().get(&team, "k").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(orbit.cache().get(&team, "n").unwrap().as_deref(), Some(&b"5"[..]));

    // A member's same writes succeed.
    let (_, r) = script(&orbit, "ops", writes, member()).await;
    for (i, r) in r.iter().take(6).enumerate() {
        assert!(r.get("ok").is_some(), "op {i}: {r}");
    }
    assert_eq!(r[6]["err"]["code"], "not-found", "the member's own delete went through");
    assert!(orbit.blobs().get(&team, "doc").is_err(), "the member deleted doc");
    assert_eq!(orbit.blobs().get(&team, "new").unwrap(), b"x");
    assert_eq!(orbit.cache().get(&team, "k").unwrap(), None);
    assert_eq!(orbit.cache().get(&team, "n").unwrap().as_deref(), Some(&b"6"[..]));
}

fn exec(sql: &str) -> Value {
    json!({"op": "execute", "sql": sql})
}

fn query(sql: &str) -> Value {
    json!({"op": "query", "sql": sql})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_refuses_every_write_of_a_read_only_run_however_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    let seed = json!([
        exec("CREATE TABLE t (x INTEGER)"),
        exec("INSERT INTO t VALUES (1)"),
        exec("CREATE VIEW v AS SELECT x FROM t"),
    ]);
    let (_, r) = script(&orbit, "db-client", seed, member()).await;
    assert!(r.iter().all(|r| r.get("ok").is_some()), "{r:?}");

    let writes = json!([
        exec("INSERT INTO t VALUES (2)"),
        exec("UPDATE t SET x = 10"),
        exec("DELETE FROM t"),
        exec("CREATE TABLE u (y)"),
        exec("CREATE INDEX i ON t (x)"),
        exec("DROP TABLE t"),
        exec("DROP VIEW v"),
        exec("ALTER TABLE t ADD COLUMN y"),
        exec("REPLACE INTO t VALUES (3)"),
        {"op": "batch", "statements": [{"sql": "INSERT INTO t VALUES (4)"}]},
        query("INSERT INTO t VALUES (5) RETURNING x"),
        query("WITH w AS (SELECT 6) INSERT INTO t SELECT * FROM w RETURNING x"),
        query("SELECT x FROM t"),
        query("SELECT x FROM v"),
        query("SELECT count(*) FROM sqlite_schema"),
    ]);
    let (out, r) = script(&orbit, "db-client", writes.clone(), reader()).await;
    for (i, r) in r.iter().take(12).enumerate() {
        assert!(denied(r), "statement {i}: {r}");
    }
    assert_eq!(ok(&r[12])["rows"], json!([[1]]));
    assert_eq!(ok(&r[13])["rows"], json!([[1]]));
    assert_eq!(ok(&r[14])["rows"], json!([[2]]), "table t and view v only");
    let mut refused = outcomes(&out, "db", "execute");
    refused.extend(outcomes(&out, "db", "batch"));
    assert_eq!(refused, vec!["permission-denied"; 10]);
    assert_eq!(outcomes(&out, "db", "query"), ["permission-denied", "permission-denied", "ok", "ok", "ok"]);

    // The database file is as the member left it, read from the host.
    let team = ws(WS);
    let rows = orbit.sql().query(&team, "SELECT x FROM t", &[], None).unwrap();
    assert_eq!(rows.rows.len(), 1);
    let schema = orbit.sql().query(&team, "SELECT name FROM sqlite_schema ORDER BY name", &[], None).unwrap();
    assert_eq!(schema.rows.len(), 2, "no table, index or view was added or dropped");

    // A member's writes go through (the drops last, so each statement has
    // something to act on).
    let member_writes = json!([
        exec("INSERT INTO t VALUES (2)"),
        exec("UPDATE t SET x = x + 10"),
        exec("CREATE TABLE u (y)"),
        exec("CREATE INDEX i ON t (x)"),
        exec("ALTER TABLE t ADD COLUMN y"),
        {"op": "batch", "statements": [{"sql": "INSERT INTO t (x) VALUES (4)"}]},
        query("INSERT INTO t (x) VALUES (5) RETURNING x"),
        exec("DELETE FROM t WHERE x = 4"),
        exec("DROP VIEW v"),
        query("SELECT x FROM t ORDER BY x"),
    ]);
    let (_, r) = script(&orbit, "db-client", member_writes, member()).await;
    for (i, r) in r.iter().enumerate() {
        assert!(r.get("ok").is_some(), "statement {i}: {r}");
    }
    assert_eq!(ok(&r[9])["rows"], json!([[5], [11], [12]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_enqueue_is_refused_to_a_read_only_run_invoke_works_and_status_shows_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    let wasm = orbit_test_guests::bytes("jobs-probe");
    orbit.jobs().register(&ws(WS), "probe", &wasm, JobDefaults::default()).unwrap();

    let out = run_as(&orbit, "jobs-probe", "enqueue:probe:1:echo:x", reader()).await;
    let result: Value = serde_json::from_slice(&out.output).unwrap();
    assert_eq!(result, json!({"ids": [], "error": "permission-denied"}));
    assert_eq!(outcomes(&out, "jobs", "enqueue"), ["permission-denied"]);
    assert!(orbit.jobs().store().jobs(&ws(WS), 100).unwrap().is_empty(), "nothing was queued");

    // Invoke is a read: the child runs, read-only too.
    let out = run_as(&orbit, "jobs-probe", "invoke:probe:echo:hello", reader()).await;
    assert_eq!(out.output_text(), "hello", "{:?}", out.record);

    // A member enqueues. A read-only reader sees only its own runs, so the
    // member's job answers like a missing one; the member reads its status.
    let out = run_as(&orbit, "jobs-probe", "enqueue:probe:1:echo:x", member()).await;
    let result: Value = serde_json::from_slice(&out.output).unwrap();
    assert_eq!(result["error"], Value::Null, "{result}");
    let id = result["ids"][0].as_str().unwrap().to_owned();
    let out = run_as(&orbit, "jobs-probe", &format!("status:{id}"), reader()).await;
    assert_eq!(out.status(), RunStatus::Failed, "{:?}", out.record);
    assert_eq!(out.record.error.as_ref().map(|e| e.code.as_str()), Some("not-found"), "{:?}", out.record);
    let out = run_as(&orbit, "jobs-probe", &format!("status:{id}"), member()).await;
    assert_eq!(out.output_text(), "queued", "{:?}", out.record);
    assert_eq!(orbit.jobs().store().jobs(&ws(WS), 100).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_sends_only_get_and_head_for_a_read_only_run() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    let (base, seen) = common::recording_server().await;
    let req = |method: &str| json!({"method": method, "url": format!("{base}/{method}")}).to_string();

    for method in ["GET", "HEAD"] {
        let out = run_as(&orbit, "fetch-client", &req(method), reader()).await;
        assert_eq!(out.status(), RunStatus::Succeeded, "{method}: {:?}", out.record);
        assert_eq!(outcomes(&out, "fetch", "fetch"), ["ok"]);
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "get"] {
        let out = run_as(&orbit, "fetch-client", &req(method), reader()).await;
        assert_eq!(out.status(), RunStatus::Failed, "{method}: {:?}", out.record);
        assert_eq!(out.record.error.as_ref().unwrap().code, "permission-denied", "{method}");
        assert_eq!(outcomes(&out, "fetch", "fetch"), ["permission-denied"], "{method}");
    }
    // Only the safe requests reached the server.
    let lines =
        |seen: &[common::SeenRequest]| seen.iter().map(|r| format!("{} {}", r.method, r.path)).collect::<Vec<_>>();
    assert_eq!(lines(&seen.lock().unwrap()), ["GET /GET", "HEAD /HEAD"]);

    let out = run_as(&orbit, "fetch-client", &req("POST"), member()).await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    assert_eq!(lines(&seen.lock().unwrap()).last().map(String::as_str), Some("POST /POST"));
}

fn call(tool: &str, args: Value) -> Value {
    json!({"op": "call", "server": "everything", "tool": tool, "args": args})
}

fn tool_text(r: &Value) -> String {
    ok(r)["text"].as_str().unwrap_or_else(|| panic!("not a tool result: {r}")).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_a_read_only_run_calls_only_read_only_tools_unless_the_policy_opens_one() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    let (command, args) = orbit_test_guests::mcp_servers::everything_stdio();
    let reg = orbit.tools().registry();
    reg.add_server(&ws(WS), "everything", ServerSpec::new(ServerTransport::Stdio { command, args })).unwrap();
    // What the server annotates, as Orbit stored it on listing.
    let listed = orbit.tools().refresh(&ws(WS), "everything").await.unwrap();
    let hint = |name: &str| listed.iter().find(|t| t.name == name).map(|t| t.read_only_hint);
    assert_eq!(hint("get-sum"), Some(Some(true)));
    assert_eq!(hint("toggle-simulated-logging"), Some(Some(false)));

    // `toggle-simulated-logging` (readOnlyHint: false) changes the
    // server's state: each call flips it, and says which way.
    let toggle = call("toggle-simulated-logging", json!({}));
    let ops = json!([{"op": "list"}, call("get-sum", json!({"a": 19, "b": 23})), toggle.clone()]);
    let (out, r) = script(&orbit, "tools-client", ops, reader()).await;
    assert!(ok(&r[0]).as_array().unwrap().iter().any(|t| t["name"] == "toggle-simulated-logging"));
    assert!(tool_text(&r[1]).contains("42"), "{}", r[1]);
    assert!(denied(&r[2]), "{}", r[2]);
    assert_eq!(outcomes(&out, "tools", "call"), ["ok", "permission-denied"]);

    // The refused call never reached the server: the member's first toggle
    // starts the logging, the second stops it.
    let (_, r) = script(&orbit, "tools-client", json!([toggle.clone(), toggle.clone()]), member()).await;
    assert!(tool_text(&r[0]).starts_with("Started"), "{}", r[0]);
    assert!(tool_text(&r[1]).starts_with("Stopped"), "{}", r[1]);

    // The workspace opens the tool to read-only members.
    reg.set_read_only_allow(&ws(WS), "everything/toggle-simulated-logging", true).unwrap();
    let (_, r) = script(&orbit, "tools-client", json!([toggle.clone(), toggle.clone()]), reader()).await;
    assert!(tool_text(&r[0]).starts_with("Started"), "{}", r[0]);
    assert!(tool_text(&r[1]).starts_with("Stopped"), "{}", r[1]);
    // And closes it again.
    reg.set_read_only_allow(&ws(WS), "everything/toggle-simulated-logging", false).unwrap();
    let (_, r) = script(&orbit, "tools-client", json!([toggle]), reader()).await;
    assert!(denied(&r[0]), "{}", r[0]);
    orbit.tools().disconnect(&ws(WS), "everything");
}
