//! The audit trail end to end: every MCP tool call a guest makes (refused
//! ones too) and every use of a credential is in `team.redb`, with who, the
//! run and the outcome, and never the arguments, results or values; a
//! queued job of a revoked token does not run. Real guests, real redb
//! files, a real MCP server (server-everything, installed by
//! `scripts/install-test-deps.sh`) and a real HTTP server on loopback.

mod common;

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use common::{files_containing, ws};
use orbit::orbit_tools::{ServerSpec, ServerTransport};
use orbit::orbit_workspace::{AgentName, AuditEvent, Principal, Role, TokenRecord, UserId};
use orbit::{
    AuditKind, AuditLog, AuditQuery, FetchConfig, HostBinding, Invocation, JobDefaults, JobState, Limits, Orbit,
    OrbitConfig, Outcome, Placement, RunQuery, RunStatus, SecretValue, TeamStore, TokenRequest,
};
use serde_json::{Value, json};

const WS: &str = "acme";

/// A string no run of this test could produce by chance.
fn sentinel(tag: &str) -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let a = h.finish();
    h.write_u64(a);
    format!("{tag}-{a:016x}{:016x}", h.finish())
}

/// An Orbit whose fetch policy lets guests reach loopback test servers.
fn open(dir: &std::path::Path) -> Orbit {
    let mut cfg = OrbitConfig::default();
    cfg.fetch = Some(FetchConfig { allow_ips: vec!["127.0.0.1/32".parse().unwrap()], ..FetchConfig::default() });
    cfg.master_key = Some(orbit::MasterKey::from_bytes([7; 32]));
    Orbit::open_with(dir, cfg).unwrap()
}

/// Workspace `acme` owned by ada, with bob (member) and rita (read-only).
fn team(orbit: &Orbit) {
    let op = Principal::local_operator();
    orbit.team().create_workspace(&op, &ws(WS), &UserId::new("ada").unwrap(), None).unwrap();
    orbit.team().add_member(&op, &ws(WS), &UserId::new("bob").unwrap(), Role::Member, None).unwrap();
    orbit.team().add_member(&op, &ws(WS), &UserId::new("rita").unwrap(), Role::ReadOnly, None).unwrap();
}

/// Issues a token to `user` for `agent` and authenticates with it, as a
/// front end would: the principal a run then acts for, the token's record,
/// and the token text.
fn login(orbit: &Orbit, user: &str, agent: &str) -> (Principal, TokenRecord, String) {
    let req = TokenRequest {
        user: UserId::new(user).unwrap(),
        role: None,
        agent: Some(AgentName::new(agent).unwrap()),
        name: None,
        expires_in_ms: None,
    };
    let issued = orbit.team().issue_token(&Principal::local_operator(), &ws(WS), req).unwrap();
    let text = issued.secret.expose().to_owned();
    let auth = orbit.team().authenticate(&text).unwrap();
    (auth.principal, issued.record, text)
}

async fn run_as(orbit: &Orbit, guest: &str, input: &str, principal: &Principal) -> Outcome {
    let wasm = orbit_test_guests::bytes(guest);
    let inv = Invocation::new(input).workspace(ws(WS)).principal(principal.clone()).limits(Limits::default());
    orbit.engine().invoke_wasm(&wasm, inv).await.unwrap()
}

fn add_everything(orbit: &Orbit) {
    let (command, args) = orbit_test_guests::mcp_servers::everything_stdio();
    let spec = ServerSpec::new(ServerTransport::Stdio { command, args });
    orbit.tools().registry().add_server(&ws(WS), "everything", spec).unwrap();
}

/// The workspace's tool-call events, newest first.
fn tool_calls(orbit: &Orbit) -> Vec<AuditEvent> {
    let page = orbit.team().query(&AuditQuery::new(ws(WS))).unwrap();
    page.events.into_iter().filter(|e| matches!(e.kind, AuditKind::ToolCall { .. })).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guests_tool_call_is_audited_with_who_and_the_run_and_its_arguments_are_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    team(&orbit);
    add_everything(&orbit);
    let (bob, token, token_text) = login(&orbit, "bob", "claude");
    let secret_arg = sentinel("argument");

    // The guest passes the sentinel only as the tool's argument and reports
    // only the result's size.
    let ops = json!([{"op": "quiet", "server": "everything", "tool": "echo", "args": {"message": secret_arg}}]);
    let out = run_as(&orbit, "tools-client", &ops.to_string(), &bob).await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    let results: Vec<Value> = serde_json::from_slice(&out.output).unwrap();
    assert_eq!(results[0]["ok"]["is_error"], false, "{}", results[0]);
    assert!(results[0]["ok"]["bytes"].as_u64().unwrap() > secret_arg.len() as u64, "the echo came back");

    let calls = tool_calls(&orbit);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let ev = &calls[0];
    assert_eq!(ev.workspace, ws(WS));
    assert_eq!(ev.actor.label, "bob");
    assert_eq!(ev.actor.user, Some(UserId::new("bob").unwrap()));
    assert_eq!(ev.actor.token, Some(token.id));
    assert_eq!(ev.actor.agent, Some(AgentName::new("claude").unwrap()));
    let AuditKind::ToolCall { server, tool, latency_us, outcome, run_id } = &ev.kind else { unreachable!() };
    assert_eq!((server.as_str(), tool.as_str(), outcome.as_str()), ("everything", "echo", "ok"));
    assert!(*latency_us > 0, "a real call takes time");
    assert_eq!(run_id.as_deref(), Some(out.run_id().to_string().as_str()));
    // The same filters `orbit audit` offers find it.
    let mut q = AuditQuery::new(ws(WS));
    q.user = Some(UserId::new("bob").unwrap());
    q.tool = Some("echo".into());
    q.outcome = Some("ok".into());
    assert_eq!(orbit.team().query(&q).unwrap().events.len(), 1);

    // Neither the argument nor the token is in any file Orbit wrote.
    orbit.tools().disconnect(&ws(WS), "everything");
    drop(orbit);
    for needle in [&secret_arg, &token_text] {
        assert_eq!(files_containing(dir.path(), needle.as_bytes()), Vec::<std::path::PathBuf>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_tool_call_is_audited_as_permission_denied() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    team(&orbit);
    add_everything(&orbit);
    let (rita, token, _) = login(&orbit, "rita", "cursor");
    assert_eq!(rita.role, Role::ReadOnly);

    // `toggle-simulated-logging` is not annotated read-only.
    let ops = json!([
        {"op": "call", "server": "everything", "tool": "toggle-simulated-logging", "args": {}},
        {"op": "call", "server": "everything", "tool": "get-sum", "args": {"a": 1, "b": 2}},
    ]);
    let out = run_as(&orbit, "tools-client", &ops.to_string(), &rita).await;
    let results: Vec<Value> = serde_json::from_slice(&out.output).unwrap();
    assert_eq!(results[0]["err"]["code"], "permission-denied", "{}", results[0]);
    assert!(results[1].get("ok").is_some(), "{}", results[1]);

    let run = out.run_id().to_string();
    let calls = tool_calls(&orbit);
    let found: Vec<(&str, &str, Option<&str>)> = calls
        .iter()
        .map(|e| match &e.kind {
            AuditKind::ToolCall { tool, outcome, run_id, .. } => (tool.as_str(), outcome.as_str(), run_id.as_deref()),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        found,
        [("get-sum", "ok", Some(run.as_str())), ("toggle-simulated-logging", "permission-denied", Some(run.as_str()))],
        "newest first"
    );
    assert!(calls.iter().all(|e| e.actor.token == Some(token.id) && e.actor.label == "rita"));

    // A host-side call for a principal is audited too, with no run.
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    let err =
        orbit.tools().call_as(&ws(WS), &rita, "everything", "toggle-simulated-logging", "{}", until).await.unwrap_err();
    assert_eq!(err.code(), orbit::orbit_engine::ErrorCode::PermissionDenied);
    let newest = &tool_calls(&orbit)[0];
    assert!(
        matches!(&newest.kind, AuditKind::ToolCall { outcome, run_id: None, .. } if outcome == "permission-denied"),
        "{newest:?}"
    );
    orbit.tools().disconnect(&ws(WS), "everything");
}

/// A host's tool call appends its audit event on the calling thread on a
/// multi-thread runtime, and on the blocking pool elsewhere, including the
/// case tokio refuses to block in that the runtime's flavor does not show
/// (a multi-thread handle entered inside a current-thread `block_on`).
#[test]
fn a_host_tool_call_is_audited_on_every_kind_of_runtime() {
    let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let current = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let orbit = {
        let _in = multi.enter();
        open(dir.path())
    };
    team(&orbit);
    let (bob, _, _) = login(&orbit, "bob", "claude");
    let call = || async {
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        let err = orbit.tools().call_as(&ws(WS), &bob, "absent", "tool", "{}", until).await.unwrap_err();
        assert_eq!(err.code(), orbit::orbit_engine::ErrorCode::NotFound, "{err}");
    };
    multi.block_on(call());
    current.block_on(call());
    current.block_on(async {
        let _in = multi.handle().enter();
        call().await
    });
    let calls = tool_calls(&orbit);
    assert_eq!(calls.len(), 3, "each call audited once: {calls:?}");
    assert!(calls.iter().all(|e| matches!(&e.kind, AuditKind::ToolCall { server, outcome, .. } if server == "absent" && outcome == "not-found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_with_a_secret_records_a_credential_use_and_the_value_is_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    team(&orbit);
    let (bob, token, _) = login(&orbit, "bob", "claude");
    let (base, _) = common::recording_server().await;
    let value = sentinel("secret-value");
    let placement = Placement::Header { name: "Authorization".into(), template: "Bearer {}".into() };
    let binding = HostBinding::parse(&base).unwrap();
    orbit
        .vault()
        .set(
            &ws(WS),
            "API_TOKEN",
            SecretValue::new(value.clone()),
            vec![binding],
            placement,
            &UserId::new("bob").unwrap(),
        )
        .unwrap();

    let spec = json!({"url": format!("{base}/v1/items"), "secrets": ["API_TOKEN"]});
    let out = run_as(&orbit, "fetch-client", &spec.to_string(), &bob).await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);

    // Recorded off the request's path: it may land just after the run.
    let until = Instant::now() + Duration::from_secs(10);
    let uses = loop {
        let page = orbit.team().query(&AuditQuery::new(ws(WS))).unwrap();
        let uses: Vec<AuditEvent> =
            page.events.into_iter().filter(|e| matches!(e.kind, AuditKind::CredentialUse { .. })).collect();
        if !uses.is_empty() || Instant::now() > until {
            break uses;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(uses.len(), 1, "{uses:?}");
    let port = base.rsplit(':').next().unwrap();
    assert_eq!(
        uses[0].kind,
        AuditKind::CredentialUse {
            secret: "API_TOKEN".into(),
            run_id: Some(out.run_id().to_string()),
            origin: format!("http://127.0.0.1:{port}"),
        }
    );
    assert_eq!((uses[0].actor.label.as_str(), uses[0].actor.token), ("bob", Some(token.id)));

    drop(orbit);
    assert_eq!(files_containing(dir.path(), value.as_bytes()), Vec::<std::path::PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_of_a_revoked_token_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    team(&orbit);
    let wasm = orbit_test_guests::bytes("jobs-probe");
    orbit.jobs().register(&ws(WS), "probe", &wasm, JobDefaults::default()).unwrap();
    let (bob, bob_token, _) = login(&orbit, "bob", "scheduler");
    let (ada, _, _) = login(&orbit, "ada", "scheduler");

    // Both enqueue while no worker runs; then bob's token is revoked.
    let mut jobs = Vec::new();
    for who in [&bob, &ada] {
        let out = run_as(&orbit, "jobs-probe", "enqueue:probe:1:echo:later", who).await;
        let result: Value = serde_json::from_slice(&out.output).unwrap();
        assert_eq!(result["error"], Value::Null, "{result}");
        let id: orbit::JobId = result["ids"][0].as_str().unwrap().parse().unwrap();
        jobs.push((id, out.run_id()));
    }
    orbit.revoke_token(&Principal::local_operator(), &ws(WS), bob_token.id).unwrap();

    let workers = orbit.start_workers().unwrap();
    tokio::time::timeout(Duration::from_secs(60), workers.wait_idle()).await.unwrap().unwrap();
    let job = |i: usize| orbit.jobs().store().job(jobs[i].0).unwrap().unwrap();

    let refused = job(0);
    assert_eq!(refused.state, JobState::Failed);
    let failure = refused.error.expect("a refusal reason");
    assert_eq!(failure.code, "permission-denied");
    assert_eq!(failure.detail.as_deref(), Some(orbit::orbit_jobs::PRINCIPAL_REFUSED));
    assert_eq!(refused.run_id, None, "it never ran");
    // No run was started for it: no child of bob's enqueuing run.
    let mut q = RunQuery::new(ws(WS));
    q.limit = 100;
    let runs = orbit.runs().list(&q).unwrap();
    assert!(runs.runs.iter().all(|r| r.parent != Some(jobs[0].1)), "a run of the refused job");

    // Ada's token is active: her job ran.
    let ran = job(1);
    assert_eq!(ran.state, JobState::Succeeded, "{ran:?}");
    assert!(runs.runs.iter().any(|r| r.parent == Some(jobs[1].1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_of_a_member_demoted_or_removed_since_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    team(&orbit);
    let wasm = orbit_test_guests::bytes("jobs-probe");
    orbit.jobs().register(&ws(WS), "probe", &wasm, JobDefaults::default()).unwrap();
    let op = Principal::local_operator();
    orbit.team().add_member(&op, &ws(WS), &UserId::new("cy").unwrap(), Role::Member, None).unwrap();
    let (bob, _, _) = login(&orbit, "bob", "scheduler");
    let (cy, _, _) = login(&orbit, "cy", "scheduler");
    let (ada, _, _) = login(&orbit, "ada", "scheduler");
    let mut jobs = Vec::new();
    for who in [&bob, &cy, &ada] {
        let out = run_as(&orbit, "jobs-probe", "enqueue:probe:1:echo:later", who).await;
        let result: Value = serde_json::from_slice(&out.output).unwrap();
        assert_eq!(result["error"], Value::Null, "{result}");
        jobs.push(result["ids"][0].as_str().unwrap().parse::<orbit::JobId>().unwrap());
    }
    // Bob is demoted to read-only (his token still works, capped); cy leaves.
    orbit.team().set_role(&op, &ws(WS), &UserId::new("bob").unwrap(), Role::ReadOnly).unwrap();
    orbit.remove_member(&op, &ws(WS), &UserId::new("cy").unwrap()).unwrap();

    let workers = orbit.start_workers().unwrap();
    tokio::time::timeout(Duration::from_secs(60), workers.wait_idle()).await.unwrap().unwrap();
    let state = |i: usize| orbit.jobs().store().job(jobs[i]).unwrap().unwrap();
    for i in [0, 1] {
        let refused = state(i);
        assert_eq!(refused.state, JobState::Failed, "{refused:?}");
        assert_eq!(refused.error.as_ref().map(|e| e.code.as_str()), Some("permission-denied"));
        assert_eq!(refused.run_id, None, "it never ran");
    }
    assert_eq!(state(2).state, JobState::Succeeded, "the owner's job ran");
}
