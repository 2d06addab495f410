//! The principal travels with the run: it is recorded on the run, inherited
//! by child runs and by queued jobs, filters `runs list`, and lets a run be
//! cancelled by id or by token. Real guests, real redb files.

mod common;

use std::time::{Duration, Instant};

use common::ws;
use orbit::orbit_workspace::{AgentName, Principal, Role, TokenId, UserId};
use orbit::{
    Invocation, JobDefaults, JobState, Limits, Orbit, Outcome, RunId, RunQuery, RunRecord, RunStatus, TeamStore,
    TokenRequest,
};

fn user(name: &str, role: Role) -> Principal {
    Principal::user(UserId::new(name).unwrap(), role)
}

/// `name`'s principal through a token of its own, for agent `agent`.
fn with_token(name: &str, agent: &str, token: TokenId) -> Principal {
    Principal { token: Some(token), agent: Some(AgentName::new(agent).unwrap()), ..user(name, Role::Member) }
}

/// Limits under which only cancellation ends a run: a long deadline and
/// more fuel than the run can burn before it.
fn long() -> Limits {
    let mut l = Limits::default();
    l.timeout = Duration::from_secs(300);
    l.fuel = u64::MAX / 4;
    l
}

fn invocation(input: &str, workspace: &str, principal: Principal, limits: Limits) -> Invocation {
    Invocation::new(input).workspace(ws(workspace)).principal(principal).limits(limits)
}

/// Starts `guest` in a task of its own.
fn spawn(orbit: &Orbit, guest: &str, inv: Invocation) -> tokio::task::JoinHandle<Outcome> {
    let (engine, wasm) = (orbit.engine().clone(), orbit_test_guests::bytes(guest));
    tokio::spawn(async move { engine.invoke_wasm(&wasm, inv).await.unwrap() })
}

/// Waits (up to a minute, a guard against hanging) until `n` runs of
/// `token` are executing, and returns their ids.
async fn executing(orbit: &Orbit, token: TokenId, n: usize) -> Vec<RunId> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let ids: Vec<RunId> = orbit
            .engine()
            .runs_executing()
            .into_iter()
            .filter(|(_, p)| p.token == Some(token))
            .map(|(id, _)| id)
            .collect();
        if ids.len() >= n {
            return ids;
        }
        assert!(Instant::now() < until, "{n} runs of the token never started executing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The outcome, guarded against a run that never ends.
async fn finished(task: tokio::task::JoinHandle<Outcome>) -> Outcome {
    tokio::time::timeout(Duration::from_secs(60), task).await.expect("the cancelled run did not end").unwrap()
}

/// Waits (up to a minute) for the record of a run that ends in a task of
/// its own, such as a child run.
async fn recorded(orbit: &Orbit, id: RunId) -> RunRecord {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(rec) = orbit.runs().get(id).unwrap() {
            return rec;
        }
        assert!(Instant::now() < until, "run {id} was never recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn stored(orbit: &Orbit, id: RunId) -> RunRecord {
    orbit.runs().get(id).unwrap().expect("the run is recorded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_token_stops_its_spinning_run_which_is_recorded_cancelled() {
    let env = common::env();
    let token = TokenId::new();
    let other = TokenId::new();
    let spinning = spawn(&env.orbit, "spin", invocation("x", "team", with_token("ada", "bot", token), long()));
    let bystander = spawn(&env.orbit, "spin", invocation("y", "team", with_token("bob", "bot", other), long()));
    executing(&env.orbit, token, 1).await;
    executing(&env.orbit, other, 1).await;

    assert_eq!(env.orbit.engine().cancel_token(token), 1);
    let out = finished(spinning).await;
    assert_eq!(out.status(), RunStatus::Cancelled, "{:?}", out.record);
    let error = out.record.error.as_ref().expect("a cancelled run has an error");
    assert_eq!((error.code.as_str(), error.message.as_str()), ("cancelled", "the run was cancelled"));

    // The record is durable, with its status and who it ran for.
    let rec = stored(&env.orbit, out.run_id());
    assert_eq!(rec.status, RunStatus::Cancelled);
    assert_eq!(rec.principal, Some(with_token("ada", "bot", token)));
    assert!(rec.fuel_consumed > 0);

    // A token no run holds any more tells nobody; the other token's run
    // was not touched and still runs until it is cancelled in turn.
    assert_eq!(env.orbit.engine().cancel_token(token), 0);
    assert!(!bystander.is_finished());
    let bystander_id = executing(&env.orbit, other, 1).await[0];
    assert!(env.orbit.engine().cancel_run(bystander_id));
    assert_eq!(finished(bystander).await.status(), RunStatus::Cancelled);
    assert!(!env.orbit.engine().cancel_run(bystander_id), "a finished run is not in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_blocked_in_a_wasi_sleep_ends_it() {
    let env = common::env();
    let token = TokenId::new();
    let ops = serde_json::json!([{"op": "sleep_ms", "ms": 200_000}, {"op": "put", "key": "after", "value": "x"}]);
    let task = spawn(&env.orbit, "ops", invocation(&ops.to_string(), "team", with_token("ada", "bot", token), long()));
    let id = executing(&env.orbit, token, 1).await[0];
    assert!(env.orbit.engine().cancel_run(id));
    let out = finished(task).await;
    assert_eq!(out.status(), RunStatus::Cancelled, "{:?}", out.record);
    assert_eq!(stored(&env.orbit, id).status, RunStatus::Cancelled);
    // It stopped before its next operation.
    assert!(env.orbit.blobs().get(&ws("team"), "after").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_run_inherits_the_principal_and_a_token_cancel_stops_parent_and_child() {
    let env = common::env();
    let wasm = orbit_test_guests::bytes("jobs-probe");
    // Children get up to 300 s too (still capped by their parent's deadline).
    let defaults = JobDefaults::default().timeout_ms(300_000);
    env.orbit.jobs().register(&ws("team"), "probe", &wasm, defaults).unwrap();
    let token = TokenId::new();
    let principal = with_token("ada", "planner", token);

    // Invoke, synchronously: the child acts for the parent's principal.
    let parent = env
        .orbit
        .engine()
        .invoke_wasm(&wasm, invocation("invoke:probe:echo:hi", "team", principal.clone(), Limits::default()))
        .await
        .unwrap();
    assert_eq!(parent.output_text(), "hi", "{:?}", parent.record);
    let child = env.orbit.runs().list(&RunQuery::new(ws("team"))).unwrap().runs;
    let child = child.iter().find(|r| r.parent == Some(parent.run_id())).expect("child recorded");
    assert_eq!(child.principal, Some(principal.clone()));
    assert_eq!(parent.record.principal, Some(principal.clone()));

    // A parent waiting on a sleeping child: both hold the token.
    let task = spawn(&env.orbit, "jobs-probe", invocation("invoke:probe:sleep:200000:z", "team", principal, long()));
    let ids = executing(&env.orbit, token, 2).await;
    assert_eq!(env.orbit.engine().cancel_token(token), 2);
    let out = finished(task).await;
    assert_eq!(out.status(), RunStatus::Cancelled, "{:?}", out.record);
    // The parent was stopped in its `jobs.invoke` host call.
    let invoke = out.record.spans.iter().find(|s| s.primitive == "jobs" && s.operation == "invoke").unwrap();
    assert_eq!(invoke.outcome, "cancelled");
    let child_id = *ids.iter().find(|id| **id != out.run_id()).unwrap();
    let child = recorded(&env.orbit, child_id).await;
    assert_eq!(child.status, RunStatus::Cancelled);
    assert_eq!(child.parent, Some(out.run_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_runs_for_the_principal_that_enqueued_it() {
    let env = common::env();
    let wasm = orbit_test_guests::bytes("jobs-probe");
    env.orbit.jobs().register(&ws("team"), "probe", &wasm, JobDefaults::default()).unwrap();
    // A queued job starts only while its token is active in the team store
    // (a revoked one's does not: tests/audit.rs), so this one is issued.
    let op = Principal::local_operator();
    let ada = UserId::new("ada").unwrap();
    env.orbit.team().create_workspace(&op, &ws("team"), &ada, None).unwrap();
    let req = TokenRequest {
        user: ada,
        role: Some(Role::Member),
        agent: Some(AgentName::new("scheduler").unwrap()),
        name: None,
        expires_in_ms: None,
    };
    let token = env.orbit.team().issue_token(&op, &ws("team"), req).unwrap().record.id;
    let principal = with_token("ada", "scheduler", token);
    let out = env
        .orbit
        .engine()
        .invoke_wasm(&wasm, invocation("enqueue:probe:1:echo:later", "team", principal.clone(), Limits::default()))
        .await
        .unwrap();
    let result: serde_json::Value = serde_json::from_slice(&out.output).unwrap();
    assert_eq!(result["error"], serde_json::Value::Null, "{result}");
    let id: orbit::JobId = result["ids"][0].as_str().unwrap().parse().unwrap();
    assert_eq!(env.orbit.jobs().store().job(id).unwrap().unwrap().principal, principal);

    let _workers = env.orbit.start_workers().unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let job = env.orbit.jobs().store().job(id).unwrap().unwrap();
        if job.state.is_finished() {
            break job;
        }
        assert!(Instant::now() < until, "the job never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(job.state, JobState::Succeeded);
    let run = stored(&env.orbit, job.run_id.unwrap());
    assert_eq!(run.principal, Some(principal));
    assert_eq!(run.parent, Some(out.run_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_list_filters_by_member() {
    let env = common::env();
    let wasm = orbit_test_guests::bytes("echo");
    let mut ids = Vec::new();
    for (i, p) in [
        user("ada", Role::Member),
        user("bob", Role::ReadOnly),
        with_token("ada", "bot", TokenId::new()),
        Principal::embedded(),
    ]
    .into_iter()
    .enumerate()
    {
        let out = env
            .orbit
            .engine()
            .invoke_wasm(&wasm, invocation(&format!("run {i}"), "team", p, Limits::default()))
            .await
            .unwrap();
        ids.push(out.run_id());
    }
    let list = |member: Option<&str>| {
        let mut q = RunQuery::new(ws("team"));
        q.member = member.map(|m| UserId::new(m).unwrap());
        env.orbit.runs().list(&q).unwrap().runs.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(list(Some("ada")), vec![ids[2], ids[0]]);
    assert_eq!(list(Some("bob")), vec![ids[1]]);
    assert!(list(Some("cy")).is_empty());
    assert_eq!(list(None).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_by_id_also_stops_the_child_it_waits_for() {
    let env = common::env();
    let wasm = orbit_test_guests::bytes("jobs-probe");
    let defaults = JobDefaults::default().timeout_ms(300_000);
    env.orbit.jobs().register(&ws("team"), "probe", &wasm, defaults).unwrap();
    let token = TokenId::new();
    let parent_id = RunId::new();
    let inv = invocation("invoke:probe:sleep:200000:z", "team", with_token("ada", "bot", token), long());
    let task = spawn(&env.orbit, "jobs-probe", inv.run_id(parent_id));
    let ids = executing(&env.orbit, token, 2).await;
    let child_id = *ids.iter().find(|id| **id != parent_id).expect("a child run");
    assert!(env.orbit.engine().cancel_run(parent_id));
    assert_eq!(finished(task).await.status(), RunStatus::Cancelled);
    let child = recorded(&env.orbit, child_id).await;
    assert_eq!(child.status, RunStatus::Cancelled);
    assert_eq!(stored(&env.orbit, parent_id).status, RunStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_a_cancelled_token_that_starts_later_is_cancelled_before_any_guest_code() {
    let env = common::env();
    let token = TokenId::new();
    // The token is cancelled (revoked) while no run of it executes yet...
    assert_eq!(env.orbit.engine().cancel_token(token), 0);
    // ...so a run of it that starts afterwards (one that was waiting for a
    // slot or compiling) never runs, even a guest too quick to reach a tick.
    let out = env
        .orbit
        .engine()
        .invoke_wasm(
            &orbit_test_guests::bytes("echo"),
            invocation("hi", "team", with_token("ada", "bot", token), long()),
        )
        .await
        .unwrap();
    assert_eq!(out.status(), RunStatus::Cancelled, "{:?}", out.record);
    assert!(out.output.is_empty());
    // Another token is untouched.
    let other = env
        .orbit
        .engine()
        .invoke_wasm(
            &orbit_test_guests::bytes("echo"),
            invocation("hi", "team", with_token("ada", "bot", TokenId::new()), long()),
        )
        .await
        .unwrap();
    assert!(other.status().is_success());
}
