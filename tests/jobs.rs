//! The `jobs` primitive end to end: real guest components registered as
//! jobs, child runs on the parent's budget, the depth limit, the queue quota
//! with other workspaces unaffected, and a queue that survives SIGKILL.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::ws;
use orbit::{
    Invocation, JobDefaults, JobId, JobLimits, JobState, Limits, Orbit, OrbitConfig, Outcome, QueuedJob, RunId,
    RunQuery, RunRecord, RunStatus, WorkspaceId,
};

fn open(dir: &Path, limits: JobLimits) -> Orbit {
    let mut config = OrbitConfig::default();
    config.jobs = limits;
    Orbit::open_with(dir, config).unwrap()
}

fn register(orbit: &Orbit, workspace: &str, name: &str, guest: &str, defaults: JobDefaults) {
    let wasm = orbit_test_guests::bytes(guest);
    orbit.jobs().register(&ws(workspace), name, &wasm, defaults).unwrap();
}

async fn run(orbit: &Orbit, workspace: &str, input: &str, limits: Limits) -> Outcome {
    let wasm = orbit_test_guests::bytes("jobs-probe");
    let inv = Invocation::new(input).workspace(ws(workspace)).limits(limits);
    orbit.engine().invoke_wasm(&wasm, inv).await.unwrap()
}

fn all_runs(orbit: &Orbit, workspace: &str) -> Vec<RunRecord> {
    let mut q = RunQuery::new(ws(workspace));
    q.limit = 1000;
    orbit.runs().list(&q).unwrap().runs
}

fn span_attr<'a>(rec: &'a RunRecord, op: &str, key: &str) -> Option<&'a str> {
    let span = rec.spans.iter().find(|s| s.primitive == "jobs" && s.operation == op)?;
    span.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Waits (up to `secs`) until a child of `parent` is recorded.
async fn child_of(orbit: &Orbit, workspace: &str, parent: RunId, secs: u64) -> RunRecord {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(c) = all_runs(orbit, workspace).into_iter().find(|r| r.parent == Some(parent)) {
            return c;
        }
        assert!(Instant::now() < until, "no child run of {parent} recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The fuel a run used itself: what it consumed less what it handed to the
/// jobs it queued (`job_fuel` of its `enqueue` spans).
fn own_fuel(rec: &RunRecord) -> u64 {
    let handed: u64 = rec
        .spans
        .iter()
        .filter(|s| s.operation == "enqueue")
        .filter_map(|s| s.attrs.iter().find(|(k, _)| k == "job_fuel"))
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum();
    rec.fuel_consumed - handed
}

fn fuel(n: u64) -> Limits {
    let mut l = Limits::default();
    l.fuel = n;
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_runs_a_linked_child_whose_fuel_counts_against_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), JobLimits::default());
    register(&orbit, "team", "probe", "jobs-probe", JobDefaults::default().description("test probe"));

    let parent = run(&orbit, "team", "spin-invoke:100000:probe:spin:2000000", fuel(200_000_000)).await;
    assert_eq!(parent.status(), RunStatus::Succeeded, "{:?}", parent.record);
    assert_eq!(parent.output_text(), "spun 2000000");

    // The span names the job and the child run; the child links back.
    let child_id: RunId = span_attr(&parent.record, "invoke", "child_run").expect("child_run attr").parse().unwrap();
    assert_eq!(span_attr(&parent.record, "invoke", "job"), Some("probe"));
    let child = orbit.runs().get(child_id).unwrap().expect("child recorded");
    assert_eq!(child.parent, Some(parent.run_id()));
    assert_eq!(child.workspace, ws("team"));
    assert_eq!(child.status, RunStatus::Succeeded);
    assert_eq!(child.output.as_deref(), Some("spun 2000000"));
    assert_eq!(parent.record.parent, None);
    // One budget: the child's fuel is part of what the parent consumed, on
    // top of the parent's own spinning.
    assert!(child.fuel_consumed > 2_000_000, "child used {}", child.fuel_consumed);
    let child_fuel: u64 = span_attr(&parent.record, "invoke", "child_fuel").unwrap().parse().unwrap();
    assert_eq!(child_fuel, child.fuel_consumed);
    assert!(
        parent.fuel_consumed() > child.fuel_consumed + 100_000,
        "parent {} vs child {}",
        parent.fuel_consumed(),
        child.fuel_consumed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_can_never_extend_the_parents_fuel_or_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), JobLimits::default());
    // The job's own defaults are generous; the parent's budget is not.
    register(&orbit, "team", "probe", "jobs-probe", JobDefaults::default().fuel(5_000_000_000).timeout_ms(60_000));

    // Fuel: the child gets only what the parent has left, and uses it all.
    let parent = run(&orbit, "team", "invoke:probe:spin:1000000000", fuel(20_000_000)).await;
    let child = child_of(&orbit, "team", parent.run_id(), 10).await;
    assert_eq!(child.status, RunStatus::OutOfFuel);
    assert!(child.fuel_consumed <= 20_000_000, "child used {}", child.fuel_consumed);
    // The parent is left with nothing: it ends out of fuel too, having
    // consumed exactly its own budget.
    assert_eq!(parent.status(), RunStatus::OutOfFuel, "{:?}", parent.record);
    assert_eq!(parent.fuel_consumed(), 20_000_000);

    // Time: a child that would sleep 3 s is stopped at the parent's 300 ms
    // deadline, although its own limit is 60 s.
    let mut limits = Limits::default();
    limits.timeout = Duration::from_millis(300);
    let parent = run(&orbit, "team", "invoke:probe:sleep:3000:x", limits).await;
    assert_eq!(parent.status(), RunStatus::DeadlineExceeded);
    let child = child_of(&orbit, "team", parent.run_id(), 10).await;
    assert_eq!(child.status, RunStatus::DeadlineExceeded, "{child:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_invoke_stops_at_the_depth_limit_and_ends_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let limits = JobLimits::default();
    let max_depth = limits.max_depth;
    let orbit = open(dir.path(), limits);
    register(&orbit, "bomb", "bomb", "jobs-probe", JobDefaults::default());

    let top = run(&orbit, "bomb", "recurse:bomb", Limits::default()).await;
    // The guest propagates the error: a clean failure, not a trap.
    assert_eq!(top.status(), RunStatus::Failed, "{:?}", top.record);
    let err = top.record.error.as_ref().unwrap();
    assert_eq!(err.code, "limit-exceeded");
    assert_eq!(err.message, "limit exceeded", "only the fixed message reaches the guest");

    // One run per level, 0 ..= max_depth, each linked to the one above.
    let runs = all_runs(&orbit, "bomb");
    assert_eq!(runs.len(), max_depth as usize + 1, "{:#?}", runs.iter().map(|r| (r.id, r.parent)).collect::<Vec<_>>());
    let mut at = top.run_id();
    for level in 1..=max_depth {
        let child = runs.iter().find(|r| r.parent == Some(at)).unwrap_or_else(|| panic!("no run at depth {level}"));
        assert_eq!(child.status, RunStatus::Failed);
        at = child.id;
    }
    // The deepest run was refused its invoke with limit-exceeded; the
    // detail stays with operators.
    let deepest = runs.iter().find(|r| r.id == at).unwrap();
    let span = deepest.spans.iter().find(|s| s.operation == "invoke").unwrap();
    assert_eq!(span.outcome, "limit-exceeded");
    assert!(deepest.host_errors.iter().any(|e| e.contains("nesting depth limit")), "{:?}", deepest.host_errors);
    assert!(runs.iter().all(|r| r.status != RunStatus::Trapped && r.status != RunStatus::Internal));
}

async fn wait_finished(orbit: &Orbit, id: JobId, secs: u64) -> QueuedJob {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let job = orbit.jobs().store().job(id).unwrap().expect("job exists");
        if job.state.is_finished() {
            return job;
        }
        assert!(Instant::now() < until, "job {id} still {} after {secs} s", job.state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_bomb_hits_the_quota_while_other_workspaces_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut limits = JobLimits::default();
    limits.max_queued_per_workspace = 12;
    limits.max_running_per_workspace = 2;
    let orbit = open(dir.path(), limits.clone());
    register(&orbit, "bomber", "fork", "jobs-probe", JobDefaults::default());
    register(&orbit, "quiet", "echo", "jobs-probe", JobDefaults::default());

    // Every job enqueues copies of itself until refused. The first run fills
    // the queue before workers start, so it meets the quota exactly.
    let top = run(&orbit, "bomber", "forkbomb:fork", Limits::default()).await;
    assert_eq!(top.status(), RunStatus::Succeeded, "{:?}", top.record);
    assert_eq!(top.output_text(), "queued 12 then limit-exceeded");
    let refused = top.record.spans.iter().filter(|s| s.operation == "enqueue" && s.outcome == "limit-exceeded");
    assert_eq!(refused.count(), 1);
    let workers = orbit.start_workers().unwrap();

    // Meanwhile another workspace's jobs run to completion.
    let quiet: Vec<JobId> =
        (0..3).map(|i| orbit.jobs().enqueue(&ws("quiet"), "echo", format!("echo:hello {i}")).unwrap()).collect();
    let mut max_running = 0;
    for (i, id) in quiet.iter().enumerate() {
        let job = wait_finished(&orbit, *id, 60).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert_eq!(job.output.as_deref(), Some(format!("hello {i}").as_str()));
        let running = orbit.jobs().store().jobs(&ws("bomber"), 10_000).unwrap();
        max_running = max_running.max(running.iter().filter(|j| j.state == JobState::Running).count());
    }
    // The bomb dies out at the depth limit; the queue drains.
    tokio::time::timeout(Duration::from_secs(120), workers.wait_idle()).await.expect("queue drains").unwrap();
    let jobs = orbit.jobs().store().jobs(&ws("bomber"), 100_000).unwrap();
    assert!(max_running <= limits.max_running_per_workspace, "{max_running} running at once");
    assert!(jobs.iter().all(|j| j.state == JobState::Succeeded), "every bomb job ended cleanly");
    assert!(jobs.iter().all(|j| j.depth >= 1 && j.depth <= limits.max_depth));
    assert!(jobs.iter().any(|j| j.depth == limits.max_depth), "the bomb reached the depth limit");
    let deepest: Vec<&QueuedJob> = jobs.iter().filter(|j| j.depth == limits.max_depth).collect();
    assert!(deepest.iter().all(|j| j.output.as_deref() == Some("queued 0 then limit-exceeded")));
    // Each job's run is linked to the run that enqueued it, and the whole
    // bomb spent no more fuel than the first run was given.
    let mut total = own_fuel(&top.record);
    for job in &jobs {
        let run = orbit.runs().get(job.run_id.unwrap()).unwrap().expect("job run recorded");
        assert_eq!(run.parent, job.parent);
        assert!(job.parent.is_some());
        assert!(run.fuel_consumed <= job.budget.as_ref().unwrap().fuel);
        total += own_fuel(&run);
    }
    assert!(total <= Limits::default().fuel, "the bomb used {total} fuel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_status_and_errors_from_a_guest() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), JobLimits::default());
    register(&orbit, "w", "probe", "jobs-probe", JobDefaults::default());
    register(&orbit, "other", "probe", "jobs-probe", JobDefaults::default());
    let workers = orbit.start_workers().unwrap();

    let out = run(&orbit, "w", "enqueue:probe:2:echo:hi", Limits::default()).await;
    let v: serde_json::Value = serde_json::from_slice(&out.output).unwrap();
    let ids: Vec<String> = v["ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 2);
    assert!(v["error"].is_null());
    let failing = run(&orbit, "w", "enqueue:probe:1:fail:permission-denied", Limits::default()).await;
    let v: serde_json::Value = serde_json::from_slice(&failing.output).unwrap();
    let failing_id = v["ids"][0].as_str().unwrap().to_owned();
    workers.wait_idle().await.unwrap();

    let status = run(&orbit, "w", &format!("status:{}", ids[0]), Limits::default()).await;
    let text = status.output_text();
    let job = orbit.jobs().store().job(ids[0].parse().unwrap()).unwrap().unwrap();
    assert_eq!(text, format!("succeeded {} hi", job.run_id.unwrap()));
    assert_eq!(job.attempts, 1);
    let status = run(&orbit, "w", &format!("status:{failing_id}"), Limits::default()).await;
    assert!(status.output_text().ends_with(" permission-denied"), "{}", status.output_text());
    // Another workspace cannot see the job; bad ids and names are refused.
    let other = run(&orbit, "other", &format!("status:{}", ids[0]), Limits::default()).await;
    assert_eq!(other.record.error.as_ref().unwrap().code, "not-found");
    let bad = run(&orbit, "w", "status:not-a-uuid", Limits::default()).await;
    assert_eq!(bad.record.error.as_ref().unwrap().code, "invalid-input");
    let missing = run(&orbit, "w", "invoke:nope:x", Limits::default()).await;
    assert_eq!(missing.record.error.as_ref().unwrap().code, "not-found");
    // Jobs belong to their workspace: one registered elsewhere is unknown here.
    let elsewhere = run(&orbit, "third", "invoke:probe:echo:x", Limits::default()).await;
    assert_eq!(elsewhere.record.error.as_ref().unwrap().code, "not-found");
    assert_eq!(elsewhere.record.error.as_ref().unwrap().message, "not found");
    let bad_name = run(&orbit, "w", "invoke:../etc/passwd:x", Limits::default()).await;
    assert_eq!(bad_name.record.error.as_ref().unwrap().code, "invalid-input");
    // A child's own error code reaches the parent, with the fixed message.
    let child_err = run(&orbit, "w", "invoke:probe:fail:unavailable", Limits::default()).await;
    let e = child_err.record.error.as_ref().unwrap();
    assert_eq!((e.code.as_str(), e.message.as_str()), ("unavailable", "service unavailable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_example_counts_words_over_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), JobLimits::default());
    register(&orbit, "docs", "wordcount", "fanout", JobDefaults::default().description("word counts of a chunk"));
    let workers = orbit.start_workers().unwrap();
    let text = "the quick brown fox\njumps over the lazy dog\nThe dog sleeps\nand the fox runs\n".repeat(50);
    let wasm = orbit_test_guests::bytes("fanout");
    for mode in ["enqueue", "invoke"] {
        let input = serde_json::json!({"text": text, "chunks": 4, "mode": mode}).to_string();
        let out = orbit.engine().invoke_wasm(&wasm, Invocation::new(input).workspace(ws("docs"))).await.unwrap();
        assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
        let v: serde_json::Value = serde_json::from_slice(&out.output).unwrap();
        assert_eq!(v["chunks"], 4);
        assert_eq!(v["total_words"], 16 * 50);
        assert_eq!(v["distinct_words"], 11);
        assert_eq!(v["top"][0], serde_json::json!(["the", 4 * 50]));
        assert_eq!(v["top"][1], serde_json::json!(["dog", 2 * 50]));
        // Four map runs, each linked to this run.
        let children = all_runs(&orbit, "docs").into_iter().filter(|r| r.parent == Some(out.run_id())).count();
        assert_eq!(children, 4, "{mode}");
    }
    drop(workers);
}

// ---- One budget: what a run hands down to the runs it starts ----

/// A loopback HTTP server that answers every request `ok`; its URL and a
/// count of the requests it saw.
async fn counting_server() -> (String, impl Fn() -> usize) {
    let (base, seen) = common::recording_server().await;
    (format!("{base}/"), move || seen.lock().unwrap().len())
}

/// An Orbit whose runs may make `requests` fetch requests each, to loopback.
fn open_with_fetch(dir: &Path, requests: u32) -> Orbit {
    let mut fetch = orbit::FetchConfig { allow_ips: vec!["127.0.0.1/32".parse().unwrap()], ..Default::default() };
    fetch.max_requests_per_run = requests;
    let mut config = OrbitConfig::default();
    config.fetch = Some(fetch);
    Orbit::open_with(dir, config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_run_spends_its_parents_fetch_requests() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open_with_fetch(dir.path(), 10);
    register(&orbit, "team", "probe", "jobs-probe", JobDefaults::default());
    let (url, count) = counting_server().await;

    let input = format!("fetch:6 {url} && invoke:probe:fetch:10 {url} && fetch:1 {url}");
    let parent = run(&orbit, "team", &input, Limits::default()).await;
    assert_eq!(parent.status(), RunStatus::Succeeded, "{:?}", parent.record);
    // The child had what the parent had left (4), not a fresh 10; after it
    // the parent has none.
    assert_eq!(parent.output_text(), "fetched 6 && fetched 4 then limit-exceeded && fetched 0 then limit-exceeded");
    assert_eq!(count(), 10, "the server saw one budget's worth of requests");
    let child = child_of(&orbit, "team", parent.run_id(), 5).await;
    let refused = child.spans.iter().filter(|s| s.primitive == "fetch" && s.outcome == "limit-exceeded").count();
    assert_eq!(refused, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_runs_on_a_slice_taken_from_its_parent() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open_with_fetch(dir.path(), 10);
    register(&orbit, "team", "probe", "jobs-probe", JobDefaults::default().fuel(500_000_000));
    let (url, count) = counting_server().await;

    // Each job's fuel is a quarter of the parent's 2,000,000,000, so it is
    // handed a quarter of the parent's 10 requests.
    let input = format!("enqueue:probe:2:fetch:10 {url} && fetch:10 {url}");
    let parent = run(&orbit, "team", &input, Limits::default()).await;
    assert_eq!(parent.status(), RunStatus::Succeeded, "{:?}", parent.record);
    let (queued, rest) = parent.output_text().split_once(" && ").map(|(a, b)| (a.to_owned(), b.to_owned())).unwrap();
    assert_eq!(rest, "fetched 6 then limit-exceeded", "the parent kept 10 - 2 x 2 requests");
    let v: serde_json::Value = serde_json::from_str(&queued).unwrap();
    assert!(v["error"].is_null(), "{v}");
    // The fuel handed down was taken from the parent at once.
    assert!(parent.fuel_consumed() >= 1_000_000_000, "parent consumed {}", parent.fuel_consumed());
    let handed: Vec<&str> = parent
        .record
        .spans
        .iter()
        .filter(|s| s.operation == "enqueue")
        .filter_map(|s| s.attrs.iter().find(|(k, _)| k == "job_fuel").map(|(_, v)| v.as_str()))
        .collect();
    assert_eq!(handed, ["500000000", "500000000"]);

    let workers = orbit.start_workers().unwrap();
    for id in v["ids"].as_array().unwrap() {
        let job = wait_finished(&orbit, id.as_str().unwrap().parse().unwrap(), 60).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert_eq!(job.output.as_deref(), Some("fetched 2 then limit-exceeded"));
        let budget = job.budget.as_ref().expect("a job queued by a run carries its budget");
        assert_eq!(budget.fuel, 500_000_000);
        assert_eq!(budget.budgets.get("fetch.requests"), Some(&2));
        // The parent imports neither `tools` nor `ai`, and has no per-run
        // state of them, but their budgets were opened all the same and
        // sliced for the job: a job does not start on a fresh full budget.
        let calls = budget.budgets.get("tools.calls").copied();
        assert!(calls.is_some_and(|c| c > 0 && c < 256), "a slice of the 256 tool calls: {calls:?}");
        let tokens = budget.budgets.get("ai.tokens").copied();
        assert!(tokens.is_some_and(|t| t > 0 && t < 100_000), "a slice of the 100,000 tokens: {tokens:?}");
        let run = orbit.runs().get(job.run_id.unwrap()).unwrap().unwrap();
        assert!(run.fuel_consumed <= budget.fuel);
    }
    drop(workers);
    assert_eq!(count(), 10, "parent and jobs together made the parent's 10 requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_queued_by_an_invoked_child_draws_on_the_whole_runs_budget() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open_with_fetch(dir.path(), 10);
    register(&orbit, "team", "probe", "jobs-probe", JobDefaults::default().fuel(500_000_000));
    let (url, count) = counting_server().await;

    // The child runs on the job's 500,000,000 fuel, so the job it queues is
    // handed half of what it has left of that (about 250,000,000) and half of the requests the run
    // and its child have left (5 of 10): the child keeps half of
    // everything, as any enqueuing run does.
    let input = format!("invoke:probe:enqueue:probe:1:fetch:10 {url} && fetch:10 {url}");
    let parent = run(&orbit, "team", &input, Limits::default()).await;
    assert_eq!(parent.status(), RunStatus::Succeeded, "{:?}", parent.record);
    let (queued, rest) = parent.output_text().split_once(" && ").map(|(a, b)| (a.to_owned(), b.to_owned())).unwrap();
    assert_eq!(rest, "fetched 5 then limit-exceeded");
    let v: serde_json::Value = serde_json::from_str(&queued).unwrap();
    let id: JobId = v["ids"][0].as_str().unwrap().parse().unwrap();
    // A refused enqueue hands nothing down: the child could not queue a
    // job it could not pay for.
    let child = child_of(&orbit, "team", parent.run_id(), 5).await;
    assert_eq!(child.spans.iter().filter(|s| s.operation == "enqueue").count(), 1);

    let workers = orbit.start_workers().unwrap();
    let job = wait_finished(&orbit, id, 60).await;
    drop(workers);
    assert_eq!(job.output.as_deref(), Some("fetched 5 then limit-exceeded"));
    let budget = job.budget.as_ref().unwrap();
    assert!((249_000_000..=250_000_000).contains(&budget.fuel), "half of what the child had left: {}", budget.fuel);
    assert_eq!(budget.budgets.get("fetch.requests"), Some(&5));
    assert_eq!(count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_a_thousand_jobs_cannot_multiply_a_runs_fuel() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), JobLimits::default());
    // Registered without fuel: each job is handed `queued_fuel` (or half of
    // what the parent has left), and spins until it has used all of it.
    register(&orbit, "team", "spinner", "jobs-probe", JobDefaults::default());
    let limit = 400_000_000;
    let parent = run(&orbit, "team", "enqueue:spinner:1000:spin:100000000000", fuel(limit)).await;
    assert_eq!(parent.status(), RunStatus::Succeeded, "{:?}", parent.record);
    let v: serde_json::Value = serde_json::from_slice(&parent.output).unwrap();
    assert_eq!(v["error"], "limit-exceeded", "enqueue is refused once there is too little left to hand down");
    let queued = v["ids"].as_array().unwrap().len();
    // 100M, 100M, 100M, then halves of what is left down to a sixteenth.
    assert!((5..=10).contains(&queued), "{queued} jobs queued");
    // Each job was handed its full fuel or at least a sixteenth of it, and
    // the parent kept half of what it had at each enqueue.
    let handed: Vec<u64> = parent
        .record
        .spans
        .iter()
        .filter_map(|s| s.attrs.iter().find(|(k, _)| k == "job_fuel"))
        .map(|(_, v)| v.parse().unwrap())
        .collect();
    assert_eq!(handed.len(), queued, "the refused enqueue handed nothing down");
    let last = parent.record.spans.iter().rfind(|s| s.operation == "enqueue").unwrap();
    assert_eq!(last.outcome, "limit-exceeded");
    assert!(handed.iter().all(|f| (100_000_000 / 16..=100_000_000).contains(f)), "{handed:?}");

    let workers = orbit.start_workers().unwrap();
    tokio::time::timeout(Duration::from_secs(120), workers.wait_idle()).await.expect("queue drains").unwrap();
    let jobs = orbit.jobs().store().jobs(&ws("team"), 10_000).unwrap();
    assert_eq!(jobs.len(), queued);
    // The fuel handed to jobs is counted as the parent's (it was taken
    // from it), so the work done is the parent's own plus the jobs'.
    let mut total = own_fuel(&parent.record);
    for job in &jobs {
        let run = orbit.runs().get(job.run_id.unwrap()).unwrap().expect("job run recorded");
        assert_eq!(run.status, RunStatus::OutOfFuel, "every job spins until its slice is spent");
        assert_eq!(Some(run.fuel_consumed), job.budget.as_ref().map(|b| b.fuel));
        total += run.fuel_consumed;
    }
    assert!(total <= limit, "the run and its {queued} jobs used {total} fuel, over the run's {limit}");
    // Most of the budget did go to the jobs: it was handed down, not lost.
    assert!(total > limit / 2, "only {total} used");
}

// ---- The queue across SIGKILL ----

/// Set (to the data directory) only in the child process.
const CHILD_ENV: &str = "ORBIT_JOBS_CRASH_CHILD";
const JOBS: usize = 12;
const CRASH_WS: &str = "crash";

/// The child: opens the data directory, starts the workers and runs the
/// queue until killed (or 60 s as a safety net), printing `RUNNING n` each
/// time it sees `n` > 0 jobs running.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return; // Normal test runs: not the child.
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let orbit = Orbit::open(Path::new(&dir)).unwrap();
        let _workers = orbit.start_workers().unwrap();
        println!("\nREADY");
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            let running = crash_jobs(&orbit).iter().filter(|j| j.state == JobState::Running).count();
            if running > 0 {
                println!("RUNNING {running}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

/// Runs a child on `dir` and kills it `after_running` after it first
/// reports a running job.
fn crash_round(dir: &Path, after_running: Duration) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        match lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(line) if line.starts_with("RUNNING ") => break,
            Ok(_) => {}
            Err(_) => panic!("child never ran a job"),
        }
    }
    std::thread::sleep(after_running);
    child.kill().expect("SIGKILL child"); // Child::kill sends SIGKILL on unix.
    assert!(!child.wait().unwrap().success(), "child exited on its own");
    reader.join().unwrap();
}

fn crash_jobs(orbit: &Orbit) -> Vec<QueuedJob> {
    orbit.jobs().store().jobs(&WorkspaceId::new(CRASH_WS).unwrap(), 1000).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_run_exactly_once_across_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let orbit = Orbit::open(dir.path()).unwrap();
        register(&orbit, CRASH_WS, "sleeper", "jobs-probe", JobDefaults::default());
        for i in 0..JOBS {
            orbit.jobs().enqueue(&ws(CRASH_WS), "sleeper", format!("sleep:400:{i}")).unwrap();
        }
    } // Closes the databases: the child process takes them over.

    // Two crashes, each while jobs are running (4 at a time, 400 ms each).
    let mut interrupted = 0;
    for round in 0..2 {
        // Jobs take 400 ms, four at a time: 500 ms after the first starts,
        // the first four have finished and the next four are running; 100 ms
        // after, the first ones still run.
        crash_round(dir.path(), Duration::from_millis(if round == 0 { 500 } else { 100 }));
        let orbit = Orbit::open(dir.path()).unwrap();
        let jobs = crash_jobs(&orbit);
        let running = jobs.iter().filter(|j| j.state == JobState::Running).count();
        let finished = jobs.iter().filter(|j| j.state.is_finished()).count();
        eprintln!("round {round}: {finished} finished, {running} running at SIGKILL");
        interrupted += running;
    }
    assert!(interrupted > 0, "the kills never hit a running job");

    // Restart in this process and let the queue drain.
    let orbit = Orbit::open(dir.path()).unwrap();
    let workers = orbit.start_workers().unwrap();
    tokio::time::timeout(Duration::from_secs(120), workers.wait_idle()).await.expect("queue drains").unwrap();
    drop(workers);

    let jobs = crash_jobs(&orbit);
    assert_eq!(jobs.len(), JOBS);
    let runs = all_runs(&orbit, CRASH_WS);
    let mut retried = 0;
    for job in &jobs {
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        let i = job.input.strip_prefix("sleep:400:").unwrap();
        let expected = format!("done:{i}");
        assert_eq!(job.output.as_deref(), Some(expected.as_str()));
        assert!(job.attempts >= 1);
        if job.attempts > 1 {
            retried += 1;
        }
        // Its recorded run is the one that completed...
        let run = runs.iter().find(|r| Some(r.id) == job.run_id).expect("the job's run is recorded");
        assert_eq!(run.status, RunStatus::Succeeded);
        // ...and no other run of this job ran to completion.
        let completions = runs
            .iter()
            .filter(|r| r.status == RunStatus::Succeeded && r.output.as_deref() == Some(expected.as_str()))
            .count();
        assert_eq!(completions, 1, "job {i} ran to completion {completions} times");
    }
    assert!(retried > 0, "some job was retried after a crash, with its attempts counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_never_gets_more_memory_than_its_parent() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), JobLimits::default());
    // membomb allocates 1 MiB blocks until allocation fails, and says how far it got.
    register(&orbit, "team", "bomb", "membomb", JobDefaults::default());
    let allocated = |rec: &RunRecord| -> u64 {
        // stderr is kept as one log entry: the last "allocated N MiB" line counts.
        let text = rec.logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>().join("\n");
        let line = text.lines().rev().find(|l| l.starts_with("allocated")).expect("membomb logged");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };

    let mut limits = Limits::default();
    limits.memory_bytes = 16 << 20;
    let parent = run(&orbit, "team", "invoke:bomb:", limits).await;
    assert_eq!(parent.status(), RunStatus::Failed, "{:?}", parent.record);
    let child = child_of(&orbit, "team", parent.run_id(), 30).await;
    assert_eq!(child.status, RunStatus::MemoryLimit);
    let small = allocated(&child);
    assert!(small < 16, "child allocated {small} MiB under a 16 MiB parent");

    // The same job under a parent with the default 64 MiB gets further.
    let parent = run(&orbit, "team", "invoke:bomb:", Limits::default()).await;
    let child = child_of(&orbit, "team", parent.run_id(), 30).await;
    assert!(allocated(&child) > small + 16, "{} vs {small}", allocated(&child));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_fails_fast_when_every_run_slot_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = OrbitConfig::default();
    config.engine.max_concurrent_runs = 1;
    let orbit = Orbit::open_with(dir.path(), config).unwrap();
    register(&orbit, "team", "probe", "jobs-probe", JobDefaults::default());
    // The parent holds the only slot; its child must not wait for it.
    let out = run(&orbit, "team", "invoke:probe:echo:hi", Limits::default()).await;
    assert_eq!(out.status(), RunStatus::Failed, "{:?}", out.record);
    assert_eq!(out.record.error.as_ref().unwrap().code, "unavailable", "{:?}", out.record);
}

/// Finished jobs past the retention are pruned while the workers run, not
/// only when they start; a workspace's listing holds only its own jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_pruned_while_workers_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut limits = JobLimits::default();
    limits.keep_finished = Duration::from_secs(1);
    limits.poll_interval = Duration::from_millis(50);
    let orbit = open(dir.path(), limits);
    register(&orbit, "a", "echo", "jobs-probe", JobDefaults::default());
    register(&orbit, "b", "echo", "jobs-probe", JobDefaults::default());
    let workers = orbit.start_workers().unwrap();
    let a = orbit.jobs().enqueue(&ws("a"), "echo", "echo:one").unwrap();
    let b = orbit.jobs().enqueue(&ws("b"), "echo", "echo:two").unwrap();
    wait_finished(&orbit, a, 60).await;
    wait_finished(&orbit, b, 60).await;
    let listed = orbit.jobs().store().jobs(&ws("a"), 100).unwrap();
    assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a], "only a's job");
    // Past the 1 s retention, the running workers prune both.
    let until = Instant::now() + Duration::from_secs(30);
    while orbit.jobs().store().job(a).unwrap().is_some() || orbit.jobs().store().job(b).unwrap().is_some() {
        assert!(Instant::now() < until, "finished jobs were not pruned while workers ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(orbit.jobs().store().jobs(&ws("a"), 100).unwrap().is_empty());
    assert!(orbit.jobs().store().jobs(&ws("b"), 100).unwrap().is_empty());
    drop(workers);
}
