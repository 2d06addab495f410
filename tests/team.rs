//! Team workspaces through the `Orbit` facade, with real tokens from the
//! team store, real guests and a real loopback HTTP server: revocation ends
//! a token's runs, a removed member's credentials are orphaned yet keep
//! working, reassignment, credential ownership, and isolation between two
//! workspaces that share a member.

mod common;

use std::time::{Duration, Instant};

use orbit::orbit_workspace::{Authenticated, ItemKind};
use orbit::{
    AuditLog, FetchConfig, HostBinding, Invocation, Limits, NewSecret, Orbit, OrbitConfig, Placement, Principal, Role,
    RunStatus, SecretValue, TeamActionError, TeamError, TeamStore, TokenRequest, UserId, WorkspaceId,
};
use serde_json::json;

fn u(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn w(s: &str) -> WorkspaceId {
    WorkspaceId::new(s).unwrap()
}

/// An Orbit whose fetch policy lets guests reach this machine's loopback
/// test server (denied by default).
fn open(dir: &std::path::Path) -> Orbit {
    let mut cfg = OrbitConfig::default();
    cfg.fetch = Some(FetchConfig { allow_ips: vec!["127.0.0.1/32".parse().unwrap()], ..FetchConfig::default() });
    cfg.master_key = Some(orbit::MasterKey::from_bytes([9; 32]));
    Orbit::open_with(dir, cfg).unwrap()
}

/// `acme`, owned by ada, with bob (member) and eve (read-only).
fn acme(orbit: &Orbit) -> WorkspaceId {
    let op = Principal::local_operator();
    let ws = w("acme");
    orbit.team().create_workspace(&op, &ws, &u("ada"), None).unwrap();
    orbit.team().add_member(&op, &ws, &u("bob"), Role::Member, None).unwrap();
    orbit.team().add_member(&op, &ws, &u("eve"), Role::ReadOnly, None).unwrap();
    ws
}

/// Issues a token for `user` and authenticates it, as a front end would.
fn login(orbit: &Orbit, ws: &WorkspaceId, user: &str) -> (String, Authenticated) {
    let req = TokenRequest { user: u(user), role: None, agent: None, name: None, expires_in_ms: None };
    let issued = orbit.team().issue_token(&Principal::local_operator(), ws, req).unwrap();
    let text = issued.secret.expose().to_owned();
    let auth = orbit.team().authenticate(&text).unwrap();
    (text, auth)
}

fn bearer_secret(name: &str, value: &str, base: &str) -> NewSecret {
    NewSecret {
        name: name.into(),
        value: SecretValue::new(value.into()),
        hosts: vec![HostBinding::parse(base).unwrap()],
        placement: Placement::Header { name: "Authorization".into(), template: "Bearer {}".into() },
        owner: None,
    }
}

async fn fetch_with_secret(
    orbit: &Orbit,
    ws: &WorkspaceId,
    principal: Principal,
    url: &str,
    secret: &str,
) -> orbit::Outcome {
    let spec = json!({ "method": "GET", "url": url, "secrets": [secret] });
    let inv = Invocation::new(spec.to_string()).workspace(ws.clone()).principal(principal);
    orbit.engine().invoke_wasm(&orbit_test_guests::bytes("fetch-client"), inv).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_ends_its_running_run_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    let ws = acme(&orbit);
    let (text, auth) = login(&orbit, &ws, "bob");
    let mut limits = Limits::default();
    limits.timeout = Duration::from_secs(300);
    limits.fuel = u64::MAX / 4;
    let inv = Invocation::new("x").workspace(ws.clone()).principal(auth.principal.clone()).limits(limits);
    let (engine, wasm) = (orbit.engine().clone(), orbit_test_guests::bytes("spin"));
    let run = tokio::spawn(async move { engine.invoke_wasm(&wasm, inv).await.unwrap() });
    let until = Instant::now() + Duration::from_secs(60);
    while !orbit.engine().runs_executing().iter().any(|(_, p)| p.token == auth.principal.token) {
        assert!(Instant::now() < until, "the run never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    orbit.revoke_token(&Principal::user(u("bob"), Role::Member), &ws, auth.token.id).unwrap();
    // Once revoke returns the token authenticates nowhere...
    assert_eq!(
        orbit.team().authenticate(&text).unwrap_err(),
        TeamError::Unauthenticated(orbit::orbit_workspace::AuthFailure::Revoked)
    );
    // ...and its run ends cancelled, recorded with its principal.
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("cancelled run ends").unwrap();
    assert_eq!(out.status(), RunStatus::Cancelled);
    let rec = orbit.runs().get(out.run_id()).unwrap().unwrap();
    assert_eq!(rec.status, RunStatus::Cancelled);
    assert_eq!(rec.principal.as_ref().and_then(|p| p.token), Some(auth.token.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_members_credential_is_orphaned_keeps_working_and_can_be_reassigned() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    let ws = acme(&orbit);
    let (base, seen) = common::recording_server().await;
    let bob = Principal::user(u("bob"), Role::Member);
    let meta = orbit.set_credential(&bob, &ws, bearer_secret("API", "bob-secret-value-1", &base)).unwrap();
    assert_eq!(meta.owner, Some(u("bob")));

    // Another member may neither change nor delete it; eve (read-only) may
    // not add one; nobody may read it back (there is no API for that).
    let eve = Principal::user(u("eve"), Role::ReadOnly);
    let other = Principal::user(u("ada"), Role::Member);
    for (who, result) in [
        (&other, orbit.set_credential(&other, &ws, bearer_secret("API", "stolen-value-123", &base)).map(|_| ())),
        (&other, orbit.delete_credential(&other, &ws, "API")),
        (&eve, orbit.set_credential(&eve, &ws, bearer_secret("EVE", "eve-value-12345", &base)).map(|_| ())),
    ] {
        assert!(matches!(result, Err(TeamActionError::Team(TeamError::Denied(_)))), "{who}: {result:?}");
    }

    let admin = Principal::user(u("ada"), Role::Owner);
    // While bob is a member his credential is his: not even an owner takes it.
    assert!(matches!(
        orbit.reassign_credential(&admin, &ws, "API", &u("ada"), None),
        Err(TeamActionError::NotOrphaned(_))
    ));
    let removed = orbit.remove_member(&admin, &ws, &u("bob")).unwrap();
    assert_eq!(removed.orphaned.len(), 1);
    assert_eq!((removed.orphaned[0].kind, removed.orphaned[0].name.as_str()), (ItemKind::Credential, "API"));
    assert_eq!(removed.orphaned[0].hosts, vec![format!("{base}")]);
    let listing = orbit.credentials(&admin, &ws).unwrap();
    assert!(listing.iter().any(|c| c.meta.name == "API" && c.orphaned));
    let notes = orbit.team().notifications(&admin, &ws).unwrap();
    assert_eq!(notes[0].items, removed.orphaned);

    // Still working in a run (ada's, since bob is gone).
    let out = fetch_with_secret(&orbit, &ws, admin.clone(), &format!("{base}/x"), "API").await;
    assert!(out.status().is_success(), "{:?}", out.record);
    assert_eq!(seen.lock().unwrap().last().and_then(|r| r.authorization.as_deref()), Some("Bearer bob-secret-value-1"));

    // Reassigned to ada with a new value: no longer orphaned, new value sent.
    let new = Some(SecretValue::new("ada-secret-value-2".into()));
    let meta = orbit.reassign_credential(&admin, &ws, "API", &u("ada"), new).unwrap();
    assert_eq!(meta.owner, Some(u("ada")));
    assert!(orbit.credentials(&admin, &ws).unwrap().iter().all(|c| !c.orphaned));
    let out = fetch_with_secret(&orbit, &ws, admin.clone(), &format!("{base}/y"), "API").await;
    assert!(out.status().is_success());
    assert_eq!(seen.lock().unwrap().last().and_then(|r| r.authorization.as_deref()), Some("Bearer ada-secret-value-2"));
    // Reassigning to someone who is not a member is refused.
    assert!(matches!(
        orbit.reassign_credential(&admin, &ws, "API", &u("bob"), None),
        Err(TeamActionError::Team(TeamError::NotAMember(_)))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workspaces_with_a_shared_member_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    let a = acme(&orbit);
    let b = w("beta");
    orbit.team().create_workspace(&Principal::local_operator(), &b, &u("bob"), None).unwrap();
    let (_, in_a) = login(&orbit, &a, "bob");
    let (_, in_b) = login(&orbit, &b, "bob");
    assert_eq!((in_a.workspace.clone(), in_a.principal.role), (a.clone(), Role::Member));
    assert_eq!((in_b.workspace.clone(), in_b.principal.role), (b.clone(), Role::Owner));

    // Data written in A through A's token is not in B.
    let ops = json!([{"op": "put", "key": "k", "value": "in-a"}, {"op": "cache_set", "key": "c", "value": "in-a"}]);
    let inv = Invocation::new(ops.to_string()).workspace(in_a.workspace.clone()).principal(in_a.principal.clone());
    let out = orbit.engine().invoke_wasm(&orbit_test_guests::bytes("ops"), inv).await.unwrap();
    assert!(out.status().is_success());
    let reads = json!([{"op": "get", "key": "k"}, {"op": "cache_get", "key": "c"}]);
    let inv = Invocation::new(reads.to_string()).workspace(in_b.workspace.clone()).principal(in_b.principal.clone());
    let out = orbit.engine().invoke_wasm(&orbit_test_guests::bytes("ops"), inv).await.unwrap();
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.output).unwrap();
    assert_eq!(results[0]["err"]["code"], "not-found", "{results:?}");
    assert_eq!(results[1]["ok"], serde_json::Value::Null, "{results:?}");

    // B's owner is nobody in A: A's team actions refuse bob as an admin of A.
    let err = orbit.team().add_member(&in_a.principal, &a, &u("mallory"), Role::Member, None).unwrap_err();
    assert!(matches!(err, TeamError::Denied(_)));
    // A token of A cannot revoke or list B's tokens: B's token is not found in A.
    assert_eq!(
        orbit.revoke_token(&Principal::local_operator(), &a, in_b.token.id).unwrap_err(),
        TeamError::TokenNotFound(in_b.token.id)
    );
    // An unknown workspace is not-found for the facade.
    assert_eq!(orbit.require_workspace(&w("nope")).unwrap_err(), TeamError::WorkspaceNotFound(w("nope")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_and_jobs_follow_the_table_and_are_orphaned_with_their_owner() {
    use orbit::orbit_tools::{Rule, ServerSpec, ServerTransport};
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path());
    let ws = acme(&orbit);
    let (ada, bob, eve) = (
        Principal::user(u("ada"), Role::Owner),
        Principal::user(u("bob"), Role::Member),
        Principal::user(u("eve"), Role::ReadOnly),
    );
    let spec = || ServerSpec::new(ServerTransport::Http { url: "http://127.0.0.1:9/mcp".into() });
    let denied = |r: Result<(), TeamActionError>| matches!(r, Err(TeamActionError::Team(TeamError::Denied(_))));

    // Read-only may not install; a member installs and owns its server.
    assert!(denied(orbit.install_server(&eve, &ws, "eves", spec(), None).map(|_| ())));
    // A command server runs as the host's user: no member installs one,
    // whatever its role; the operator does.
    let command = || ServerSpec::new(ServerTransport::Stdio { command: "true".into(), args: vec![] });
    assert!(denied(orbit.install_server(&ada, &ws, "cmd", command(), None).map(|_| ())));
    orbit.install_server(&Principal::local_operator(), &ws, "cmd", command(), None).unwrap();
    let entry = orbit.install_server(&bob, &ws, "bobs", spec(), Some(u("ada"))).unwrap();
    assert_eq!(entry.spec.owner, Some(u("bob")), "a member always owns what it adds");
    // Another member may not remove or reinstall it; nor disable any
    // server, nor change the policy; admins and owners may.
    let carol = Principal::user(u("carol"), Role::Member);
    orbit.team().add_member(&Principal::local_operator(), &ws, &u("carol"), Role::Member, None).unwrap();
    assert!(denied(orbit.remove_server(&carol, &ws, "bobs")));
    assert!(denied(orbit.install_server(&carol, &ws, "bobs", spec(), None).map(|_| ())));
    assert!(denied(orbit.set_server_enabled(&bob, &ws, "bobs", false)));
    assert!(denied(orbit.set_tool_rule(&bob, &ws, "bobs", Some(Rule::Deny))));
    orbit.set_server_enabled(&ada, &ws, "bobs", false).unwrap();
    orbit.set_server_enabled(&bob, &ws, "bobs", true).unwrap();
    orbit.set_tool_rule(&ada, &ws, "bobs/echo", Some(Rule::Deny)).unwrap();
    assert_eq!(orbit.tools().registry().policy(&ws).unwrap().rules.len(), 1);

    // Jobs: the same rules.
    let wasm = orbit_test_guests::bytes("echo");
    assert!(denied(orbit.register_job(&eve, &ws, "j", &wasm, Default::default(), None).map(|_| ())));
    orbit.register_job(&bob, &ws, "j", &wasm, Default::default(), None).unwrap();
    assert!(denied(orbit.remove_job(&carol, &ws, "j")));

    // Bob leaves: his server and job are orphaned, named, and still there.
    let removed = orbit.remove_member(&ada, &ws, &u("bob")).unwrap();
    let mut kinds: Vec<(ItemKind, String)> = removed.orphaned.iter().map(|i| (i.kind, i.name.clone())).collect();
    kinds.sort_by_key(|(_, n)| n.clone());
    assert_eq!(kinds, vec![(ItemKind::Server, "bobs".to_owned()), (ItemKind::Job, "j".to_owned())]);
    assert!(orbit.tools().registry().server(&ws, "bobs").unwrap().is_some());
    // An admin removes them.
    orbit.remove_server(&ada, &ws, "bobs").unwrap();
    orbit.remove_job(&ada, &ws, "j").unwrap();
    assert!(matches!(orbit.remove_job(&ada, &ws, "j"), Err(TeamActionError::NotFound { .. })));

    // Every change and refusal is in the audit trail.
    let events = orbit.team().query(&orbit::AuditQuery { limit: 1000, ..orbit::AuditQuery::new(ws) }).unwrap().events;
    let seen = |action: &str, outcome: &str| {
        events.iter().any(
            |e| matches!(&e.kind, orbit::AuditKind::Admin { action: a, outcome: o, .. } if a == action && o == outcome),
        )
    };
    for (action, outcome) in [
        ("server.install", "ok"),
        ("server.install", "permission-denied"),
        ("server.remove", "permission-denied"),
        ("server.disable", "ok"),
        ("server.enable", "ok"),
        ("policy.rule", "ok"),
        ("job.register", "ok"),
        ("job.remove", "ok"),
        ("server.orphaned", "ok"),
        ("job.orphaned", "ok"),
    ] {
        assert!(seen(action, outcome), "{action} {outcome} missing");
    }
}
