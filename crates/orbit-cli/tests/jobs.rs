//! `orbit jobs` end to end: register the fanout example as a job, run the
//! example (its queued chunks run during `orbit run`), inspect the queue,
//! remove jobs.

mod common;

use std::process::{Command, Output};

fn orbit(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orbit"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("ORBIT_HOME")
        .env_remove("ORBIT_MASTER_KEY")
        .output()
        .expect("orbit runs")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "orbit failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A short-lived `orbit run` has run slots for a run and its whole chain of
/// child runs down to the depth limit, which ends in `limit-exceeded`, not
/// in a child finding no slot (`unavailable`): a pool sized below five runs
/// fails this (BENCHMARKS.md, session 23).
#[test]
fn a_short_lived_orbit_run_nests_child_runs_down_to_the_depth_limit() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default"]);
    let d = dir.path();
    let wasm = orbit_test_guests::path("jobs-probe");
    let wasm = wasm.to_str().unwrap();
    ok(&orbit(d, &["jobs", "add", "bomb", wasm]));
    let out = orbit(d, &["run", wasm, "--input", "recurse:bomb"]);
    assert!(!out.status.success(), "the guest propagates the refusal");

    let page: serde_json::Value = serde_json::from_str(&ok(&orbit(d, &["runs", "list", "--json"]))).unwrap();
    let runs = page["runs"].as_array().unwrap();
    // One run per level, 0 ..= max_depth (4): every level got a slot.
    assert_eq!(runs.len(), 5, "{runs:#?}");
    assert!(runs.iter().all(|r| r["status"] == "failed"), "{runs:#?}");
    let refused: Vec<_> = runs.iter().filter(|r| r["error"]["code"] == "limit-exceeded").collect();
    assert_eq!(refused.len(), 5, "each level ends in limit-exceeded, none in unavailable: {runs:#?}");
}

#[test]
fn jobs_add_list_run_queue_and_rm() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default", "team", "team-a"]);
    let d = dir.path();
    let wasm = orbit_test_guests::path("fanout");
    let wasm = wasm.to_str().unwrap();
    ok(&orbit(
        d,
        &["jobs", "add", "wordcount", wasm, "--description", "word counts of a chunk", "--timeout-ms", "5000"],
    ));
    ok(&orbit(d, &["jobs", "add", "wc2", wasm, "--fuel", "1000000000"]));
    let refused = orbit(d, &["jobs", "add", "bad/name", wasm]);
    assert!(!refused.status.success());

    let list: serde_json::Value = serde_json::from_str(&ok(&orbit(d, &["jobs", "list", "--json"]))).unwrap();
    let specs = list.as_array().unwrap();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0]["digest"], specs[1]["digest"], "one component, content-addressed");
    assert_eq!(specs[0]["defaults"]["fuel"], 1_000_000_000u64);
    assert_eq!(specs[1]["name"], "wordcount");
    assert_eq!(specs[1]["defaults"]["description"], "word counts of a chunk");
    let table = ok(&orbit(d, &["jobs", "list"]));
    assert!(table.contains("wordcount") && table.contains("5000ms"), "{table}");

    let text = "one two three\ntwo three\nthree\n".repeat(20);
    let out = ok(&orbit(d, &["run", wasm, "--input", &text]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["total_words"], 120);
    assert_eq!(v["top"][0], serde_json::json!(["three", 60]));
    assert_eq!(v["chunks"], 4);

    let queue: serde_json::Value = serde_json::from_str(&ok(&orbit(d, &["jobs", "queue", "--json"]))).unwrap();
    let jobs = queue.as_array().unwrap();
    assert_eq!(jobs.len(), 4);
    assert!(jobs.iter().all(|j| j["state"] == "succeeded" && j["attempts"] == 1));
    // `orbit runs show` names the run that enqueued a job's run.
    let run_id = jobs[0]["run_id"].as_str().unwrap();
    let shown = ok(&orbit(d, &["runs", "show", run_id]));
    let parent = jobs[0]["parent"].as_str().unwrap();
    assert!(shown.contains(&format!("parent     {parent}")), "{shown}");
    ok(&orbit(d, &["jobs", "work"]));

    ok(&orbit(d, &["jobs", "rm", "wc2"]));
    assert!(!orbit(d, &["jobs", "rm", "wc2"]).status.success());
    let list: serde_json::Value = serde_json::from_str(&ok(&orbit(d, &["jobs", "list", "--json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
}
