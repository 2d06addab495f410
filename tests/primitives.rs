//! The `storage`, `cache` and `log` primitives, driven by a real guest
//! component, with workspace isolation, key validation and sanitized errors.

mod common;

use common::env;
use orbit::RunStatus;
use serde_json::{Value, json};

fn ok(v: &Value) -> &Value {
    v.get("ok").unwrap_or_else(|| panic!("expected ok, got {v}"))
}

fn err_code(v: &Value) -> &str {
    v["err"]["code"].as_str().unwrap_or_else(|| panic!("expected err, got {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_round_trip_with_content_type_and_ordered_pages() {
    let e = env();
    let (out, r) = e
        .ops(
            "default",
            json!([
                {"op": "put", "key": "notes/b", "value": "bee", "content_type": "text/plain"},
                {"op": "put", "key": "notes/a", "value": "ay", "content_type": "text/markdown"},
                {"op": "put", "key": "notes/c", "value": "sea", "content_type": ""},
                {"op": "put", "key": "other/x", "value": "x", "content_type": ""},
                {"op": "get", "key": "notes/a"},
                {"op": "head", "key": "notes/a"},
                {"op": "list", "prefix": "notes/", "cursor": null, "limit": 2},
                {"op": "list", "prefix": "notes/", "cursor": "notes/b", "limit": 2},
                {"op": "delete", "key": "notes/b"},
                {"op": "delete", "key": "notes/b"},
                {"op": "get", "key": "notes/b"},
            ]),
        )
        .await;
    assert_eq!(ok(&r[4]), "ay");
    assert_eq!(ok(&r[5])["content_type"], "text/markdown");
    assert_eq!(ok(&r[5])["size"], 2);
    assert_eq!(ok(&r[6])["keys"], json!(["notes/a", "notes/b"]));
    assert_eq!(ok(&r[6])["next_cursor"], "notes/b");
    assert_eq!(ok(&r[7])["keys"], json!(["notes/c"]));
    assert_eq!(ok(&r[7])["next_cursor"], Value::Null);
    assert_eq!(ok(&r[8]), true);
    assert_eq!(ok(&r[9]), false);
    assert_eq!(err_code(&r[10]), "not-found");
    // The blob is really on disk, readable by the host with its content type.
    let meta = e.orbit.blobs().head(&common::ws("default"), "notes/c").unwrap();
    assert_eq!(meta.content_type, "application/octet-stream");
    // One span per host call, with outcome codes and byte counts, no payload.
    let spans = &out.record.spans;
    let storage: Vec<_> = spans.iter().filter(|s| s.primitive == "storage").collect();
    assert_eq!(storage.len(), 11);
    assert_eq!((storage[0].operation.as_str(), storage[0].outcome.as_str()), ("put", "ok"));
    assert!(storage[0].bytes_in >= 3);
    assert_eq!(storage[4].bytes_out, 2);
    assert_eq!(storage[10].outcome, "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_ttl_increment_and_delete() {
    let e = env();
    // The TTL leaves the two operations before the first read 1.5 s, which
    // a loaded CI machine running the guest's first, baseline-compiled run
    // needs (100 ms did not always suffice); the sleep outlasts it.
    let (_, r) = e
        .ops(
            "default",
            json!([
                {"op": "cache_set", "key": "short", "value": "v1", "ttl_ms": 1500},
                {"op": "cache_set", "key": "long", "value": "v2", "ttl_ms": null},
                {"op": "cache_get", "key": "short"},
                {"op": "sleep_ms", "ms": 1700},
                {"op": "cache_get", "key": "short"},
                {"op": "cache_get", "key": "long"},
                {"op": "incr", "key": "n", "delta": 5},
                {"op": "incr", "key": "n", "delta": -7},
                {"op": "incr", "key": "long", "delta": 1},
                {"op": "cache_delete", "key": "long"},
                {"op": "cache_get", "key": "long"},
            ]),
        )
        .await;
    assert_eq!(ok(&r[2]), "v1");
    assert_eq!(ok(&r[4]), &Value::Null, "expired after its TTL");
    assert_eq!(ok(&r[5]), "v2");
    assert_eq!(ok(&r[6]), 5);
    assert_eq!(ok(&r[7]), -2);
    assert_eq!(err_code(&r[8]), "invalid-input");
    assert_eq!(ok(&r[9]), true);
    assert_eq!(ok(&r[10]), &Value::Null);
    // The cache outlives the run: the next run sees the counter.
    let (_, r) = e.ops("default", json!([{"op": "incr", "key": "n", "delta": 1}])).await;
    assert_eq!(ok(&r[0]), -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_are_kept_on_the_run_record_within_the_cap() {
    let e = env();
    let mut ops = vec![json!({"op": "log", "level": "warn", "message": "first line"})];
    ops.extend((0..200).map(|i| json!({"op": "log", "level": "info", "message": format!("{i:0>1000}")})));
    let (out, _) = e.ops("default", Value::Array(ops)).await;
    let rec = e.orbit.runs().get(out.run_id()).unwrap().unwrap();
    assert_eq!(rec.logs[0].message, "first line");
    assert_eq!(rec.logs[0].level, orbit::orbit_runs::LogLevel::Warn);
    // 200 KB of logs against a 64 KiB cap: kept up to the cap, marked truncated.
    assert!(rec.logs_truncated);
    assert_eq!(rec.log_bytes, 10 + 200 * 1000, "log_bytes counts everything the guest logged");
    let kept: usize = rec.logs.iter().map(|l| l.message.len()).sum();
    assert!(kept <= 64 << 10 && kept > 60 << 10, "kept {kept} bytes");
}

/// Empty lines are not free: each costs its record entry's overhead, so a
/// flood of them is cut at the same budget and the record stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_empty_log_lines_spends_the_log_budget() {
    let e = env();
    let ops: Vec<Value> = (0..5000).map(|_| json!({"op": "log", "level": "info", "message": ""})).collect();
    let (out, _) = e.ops("default", Value::Array(ops)).await;
    let rec = e.orbit.runs().get(out.run_id()).unwrap().unwrap();
    assert!(rec.logs_truncated, "5,000 lines pass a 64 KiB budget");
    assert_eq!(rec.logs.len(), (64 << 10) / orbit::orbit_engine::LOG_LINE_OVERHEAD);
    assert!(rec.logs.iter().all(|l| l.message.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_cannot_see_each_others_blobs_or_cache() {
    let e = env();
    let (_, r) = e
        .ops(
            "team-a",
            json!([
                {"op": "put", "key": "shared/name", "value": "a-secret", "content_type": ""},
                {"op": "cache_set", "key": "k", "value": "a-value", "ttl_ms": null},
            ]),
        )
        .await;
    assert!(r.iter().all(|v| v.get("ok").is_some()), "{r:?}");
    let (_, r) = e
        .ops(
            "team-b",
            json!([
                {"op": "get", "key": "shared/name"},
                {"op": "head", "key": "shared/name"},
                {"op": "list", "prefix": "", "cursor": null, "limit": 100},
                {"op": "delete", "key": "shared/name"},
                {"op": "cache_get", "key": "k"},
                {"op": "incr", "key": "k", "delta": 1},
            ]),
        )
        .await;
    assert_eq!(err_code(&r[0]), "not-found");
    assert_eq!(err_code(&r[1]), "not-found");
    assert_eq!(ok(&r[2])["keys"], json!([]));
    assert_eq!(ok(&r[3]), false);
    assert_eq!(ok(&r[4]), &Value::Null);
    assert_eq!(ok(&r[5]), 1, "b's counter starts from nothing");
    // And a's data is untouched by b's attempts.
    let (_, r) = e.ops("team-a", json!([{"op": "get", "key": "shared/name"}, {"op": "cache_get", "key": "k"}])).await;
    assert_eq!(ok(&r[0]), "a-secret");
    assert_eq!(ok(&r[1]), "a-value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_keys_are_invalid_input_and_touch_nothing() {
    let e = env();
    let out = e.run("badkeys", "").await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    let results: Vec<Value> = serde_json::from_slice(&out.output).unwrap();
    assert_eq!(results.len(), 9);
    for r in &results {
        assert_eq!(r["code"], "invalid-input", "{r}");
        assert_eq!(r["message"], "invalid input", "{r}");
    }
    // Nothing was stored: no index entry, no quota charged, no blob file,
    // and nothing outside the data directory.
    let ws = common::ws("default");
    assert_eq!(e.orbit.blobs().usage(&ws).unwrap().objects, 0);
    assert!(e.orbit.blobs().list(&ws, "", None, 100).unwrap().0.is_empty());
    let blobs = walk(&e.dir.path().join("storage/ws")).into_iter().filter(|p| p.is_file()).count();
    assert_eq!(blobs, 0);
    let parent = e.dir.path().parent().unwrap();
    assert!(!parent.join("escape").exists() && !parent.join("b").exists());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for entry in rd.flatten() {
            let p = entry.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_io_errors_reach_the_guest_sanitized_and_operators_in_full() {
    let e = env();
    // Make the workspace's blob directory unusable: a file where the
    // directory should be (root ignores permission bits, so use a type clash).
    let ws_dir = e.dir.path().join("storage/ws/broken");
    std::fs::write(&ws_dir, b"not a directory").unwrap();
    let (out, r) = e.ops("broken", json!([{"op": "put", "key": "k", "value": "v", "content_type": ""}])).await;
    assert_eq!(err_code(&r[0]), "internal");
    let message = r[0]["err"]["message"].as_str().unwrap();
    assert_eq!(message, "internal error");
    let host_path = e.dir.path().to_str().unwrap();
    let guest_text = String::from_utf8_lossy(&out.output);
    assert!(!guest_text.contains(host_path));
    assert!(!guest_text.contains("/storage"));
    assert!(!guest_text.to_lowercase().contains("os error"));
    assert!(!guest_text.contains("not a directory"));
    // The operator's record holds the detail, linked to the same run.
    let rec = e.orbit.runs().get(out.run_id()).unwrap().unwrap();
    assert_eq!(rec.host_errors.len(), 1, "{:?}", rec.host_errors);
    assert!(rec.host_errors[0].starts_with("storage.put: "), "{:?}", rec.host_errors);
    let span = rec.spans.iter().find(|s| s.primitive == "storage").unwrap();
    assert_eq!(span.outcome, "internal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_object_cap_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = orbit::OrbitConfig::default();
    cfg.storage.max_object_bytes = 1 << 20;
    let e = common::Env { orbit: orbit::Orbit::open_with(dir.path(), cfg).unwrap(), dir };
    let (_, r) = e
        .ops("default", json!([{"op": "put_bytes", "key": "big", "size": 2 << 20}, {"op": "head", "key": "big"}]))
        .await;
    assert_eq!(err_code(&r[0]), "too-large");
    assert_eq!(err_code(&r[1]), "not-found", "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_call_over_the_hostcall_byte_limit_ends_the_run() {
    let e = env();
    let mut l = common::limits();
    l.hostcall_bytes = 1 << 20;
    let ops = json!([{"op": "put_bytes", "key": "big", "size": 4 << 20}]).to_string();
    let out = e.run_in("ops", "default", &ops, l).await;
    assert_eq!(out.status(), RunStatus::TooLarge, "{:?}", out.record);
    assert!(e.orbit.blobs().head(&common::ws("default"), "big").is_err());
}
