//! The HTTP face of `orbit serve` over real HTTP on loopback: the REST API
//! (`/api/v1`), the per-workspace MCP gateway (`/ws/{slug}/mcp`), Protected
//! Resource Metadata, Host/Origin checks and per-token rate limits, served
//! in-process over a real data directory with real tokens.

mod common;

use common::inproc::*;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use orbit::orbit_workspace::permission::Target;
use orbit::orbit_workspace::{Action, Role};
use orbit::{Orbit, Principal, TeamStore};
use orbit_server::api::RateLimit;
use orbit_server::{HttpConfig, OrbitMcp};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A problem document of `code`, with the status that goes with it.
fn assert_problem(label: &str, (status, body): &(StatusCode, Value), expect: StatusCode, code: &str) {
    assert_eq!(*status, expect, "{label}: {body}");
    assert_eq!(body["type"], format!("urn:orbit:problem:{code}"), "{label}: {body}");
    assert_eq!(body["status"], expect.as_u16(), "{label}: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn me_and_bad_tokens() {
    let t = team(generous()).await;
    let (status, me) = t.send("GET", "/api/v1/me", Some(t.token(Role::Member)), None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (me["user"].as_str(), me["workspace"].as_str(), me["role"].as_str()),
        (Some("bob"), Some("acme"), Some("member"))
    );

    // Missing, malformed, unknown: 401 problems with a Bearer challenge, never echoing the token.
    let unknown = format!("orb_{}", "A".repeat(43));
    for (label, token) in [("missing", None), ("malformed", Some("hello")), ("unknown", Some(unknown.as_str()))] {
        let resp = t.http.get(format!("{}/api/v1/me", t.base));
        let resp = match token {
            Some(tok) => resp.bearer_auth(tok),
            None => resp,
        };
        let resp = resp.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{label}");
        assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"), "{label}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json", "{label}");
        let body = resp.text().await.unwrap();
        assert!(!body.contains(&unknown), "{label}: the token is not echoed");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["type"], "urn:orbit:problem:unauthenticated", "{label}");
    }
    // A token in the query string is not a credential.
    let (status, _) = t.send("GET", &format!("/api/v1/me?access_token={}", t.token(Role::Owner)), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Every route that maps to a row of the permission table, for every role:
/// refused with 403 exactly when the table says no.
#[tokio::test(flavor = "multi_thread")]
async fn permission_table_over_http() {
    let t = team(generous()).await;
    // A component to run and register as a job.
    let digest = t.upload(t.token(Role::Member), "echo").await;

    // (action, method, path, body): each request asks that one row, about
    // nobody's item, except issuing a token, which is for oneself.
    let cases: Vec<(Action, &str, String, Option<Value>)> = vec![
        (Action::ViewWorkspace, "GET", "/api/v1/workspaces/acme".into(), None),
        (Action::ViewWorkspace, "GET", "/api/v1/workspaces/acme/members".into(), None),
        (Action::ViewWorkspace, "GET", "/api/v1/workspaces/acme/servers".into(), None),
        (Action::ViewWorkspace, "GET", "/api/v1/workspaces/acme/jobs".into(), None),
        (Action::ViewWorkspace, "GET", "/api/v1/workspaces/acme/secrets".into(), None),
        (Action::ViewAudit, "GET", "/api/v1/workspaces/acme/audit".into(), None),
        (Action::ManageMembers, "GET", "/api/v1/workspaces/acme/notifications".into(), None),
        (
            Action::RunComponent,
            "POST",
            "/api/v1/workspaces/acme/runs".into(),
            Some(json!({"digest": digest, "input": "hi"})),
        ),
        (Action::IssueToken, "POST", "/api/v1/workspaces/acme/tokens".into(), Some(json!({"name": "t"}))),
        (
            Action::CreateResource,
            "POST",
            "/api/v1/workspaces/acme/jobs".into(),
            Some(json!({"name": "job-{who}", "digest": digest})),
        ),
        (
            Action::CreateResource,
            "PUT",
            "/api/v1/workspaces/acme/secrets/key-{who}".into(),
            Some(
                json!({"value": "sk-test-value-123", "hosts": ["https://api.example.com"], "header": "x-key", "template": "{}"}),
            ),
        ),
    ];
    for (action, method, path, body) in &cases {
        for (role, token) in &t.tokens {
            let me = user(&t.user_of(*role));
            let target = if *action == Action::IssueToken { Target::owned_by(&me) } else { Target::default() };
            let allowed = Principal::user(me.clone(), *role).check(*action, &target).is_ok();
            // Each member creates its own item (a second one would be an edit).
            let path = path.replace("{who}", me.as_str());
            let body =
                body.as_ref().map(|b| serde_json::from_str(&b.to_string().replace("{who}", me.as_str())).unwrap());
            let got = t.send(method, &path, Some(token), body).await;
            let label = format!("{role} {method} {path}");
            if allowed {
                assert!(got.0.is_success(), "{label}: the table allows it: {:?}", got);
            } else {
                assert_problem(&label, &got, StatusCode::FORBIDDEN, "permission-denied");
            }
        }
    }
    // Member management: a target member with a role (NotOwners for admins).
    for (role, token) in &t.tokens {
        let who = format!("new-{role}");
        let target_user = user(&who);
        let allowed = Principal::user(user("probe"), *role)
            .check(Action::ManageMembers, &Target::member(&target_user, Role::ReadOnly))
            .is_ok();
        let got = t
            .send(
                "POST",
                "/api/v1/workspaces/acme/members",
                Some(token),
                Some(json!({"user": who, "role": "read-only"})),
            )
            .await;
        if allowed {
            assert_eq!(got.0, StatusCode::CREATED, "{role}: {:?}", got);
        } else {
            assert_problem(&format!("{role} add member"), &got, StatusCode::FORBIDDEN, "permission-denied");
        }
    }
}

/// A token acts only in its own workspace: another workspace's path is the
/// same 404 as one that does not exist, on every route and the gateway.
#[tokio::test(flavor = "multi_thread")]
async fn workspaces_do_not_cross() {
    let t = team(generous()).await;
    let bob_acme = t.token(Role::Member).to_owned();
    for path in ["", "/members", "/runs", "/secrets", "/servers", "/tokens", "/audit", "/jobs", "/queue"] {
        let other = t.send("GET", &format!("/api/v1/workspaces/zeta{path}"), Some(&bob_acme), None).await;
        let none = t.send("GET", &format!("/api/v1/workspaces/nowhere{path}"), Some(&bob_acme), None).await;
        assert_problem(path, &other, StatusCode::NOT_FOUND, "not-found");
        assert_eq!(other.1["title"], none.1["title"], "{path}");
        let own = t.send("GET", &format!("/api/v1/workspaces/zeta{path}"), Some(&t.zeta_bob), None).await;
        assert_ne!(own.0, StatusCode::NOT_FOUND, "{path}: bob's zeta token works in zeta: {:?}", own);
    }
    // A run in acme is invisible from zeta, even by id.
    let digest = t.upload(&bob_acme, "echo").await;
    let (_, run) = t
        .send("POST", "/api/v1/workspaces/acme/runs", Some(&bob_acme), Some(json!({"digest": digest, "input": "x"})))
        .await;
    let id = run["run_id"].as_str().unwrap();
    let cross = t.send("GET", &format!("/api/v1/workspaces/zeta/runs/{id}"), Some(&t.zeta_bob), None).await;
    assert_problem("acme run from zeta", &cross, StatusCode::NOT_FOUND, "not-found");
    let (_, list) = t.send("GET", "/api/v1/workspaces/zeta/runs", Some(&t.zeta_bob), None).await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 0, "{list}");
    // The gateway: acme's token on zeta's endpoint is 404.
    let resp = t
        .http
        .post(format!("{}/ws/zeta/mcp", t.base))
        .bearer_auth(&bob_acme)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_over_rest() {
    let t = team(generous()).await;
    let bob = t.token(Role::Member);
    let carol = t.token(Role::ReadOnly);
    // Not a component: 400 with a caller-safe detail.
    let bad = t
        .http
        .post(format!("{}/api/v1/workspaces/acme/components", t.base))
        .bearer_auth(bob)
        .body(b"\0asm garbage".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let digest = t.upload(bob, "echo").await;

    let path = "/api/v1/workspaces/acme/runs";
    let (status, done) = t.send("POST", path, Some(bob), Some(json!({"digest": digest, "input": "héllo"}))).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!((done["status"].as_str(), done["output"].as_str()), (Some("succeeded"), Some("héllo")));

    // Caps: a request above them is refused, not lowered.
    let over = t.send("POST", path, Some(bob), Some(json!({"digest": digest, "memory_bytes": 1u64 << 40}))).await;
    assert_problem("memory cap", &over, StatusCode::BAD_REQUEST, "invalid-input");
    let unknown = t.send("POST", path, Some(bob), Some(json!({"digest": "ab".repeat(32)}))).await;
    assert_problem("unknown digest", &unknown, StatusCode::NOT_FOUND, "not-found");
    let malformed = t.send("POST", path, Some(bob), Some(json!({"digest": 5}))).await;
    assert_problem("malformed body", &malformed, StatusCode::BAD_REQUEST, "invalid-input");

    // Without waiting: 202 and the id, then the record.
    let (status, started) = t
        .send("POST", &format!("{path}?wait=false"), Some(carol), Some(json!({"digest": digest, "input": "ro"})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["run_id"].as_str().unwrap();
    let rec = loop {
        let got = t.send("GET", &format!("{path}/{id}"), Some(carol), None).await;
        if got.0 == StatusCode::OK {
            break got.1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((rec["status"].as_str(), rec["output"].as_str()), (Some("succeeded"), Some("ro")), "{rec}");
    assert_eq!(rec["started_by"], "carol");

    // Read-only carol lists only her own run; bob sees both, and filters.
    let (_, mine) = t.send("GET", path, Some(carol), None).await;
    let ids: Vec<&str> = mine["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![id]);
    let (_, all) = t.send("GET", path, Some(bob), None).await;
    assert_eq!(all["runs"].as_array().unwrap().len(), 2, "{all}");
    let (_, by_carol) = t.send("GET", &format!("{path}?user=carol"), Some(bob), None).await;
    assert_eq!(by_carol["runs"].as_array().unwrap().len(), 1, "{by_carol}");
    let (_, later) = t.send("GET", &format!("{path}?since_ms=99999999999999"), Some(bob), None).await;
    assert_eq!(later["runs"].as_array().unwrap().len(), 0, "{later}");
    let forbidden = t.send("GET", &format!("{path}?user=bob"), Some(carol), None).await;
    assert_problem("read-only filters another's runs", &forbidden, StatusCode::FORBIDDEN, "permission-denied");
    let bob_run = done["run_id"].as_str().unwrap();
    let hidden = t.send("GET", &format!("{path}/{bob_run}"), Some(carol), None).await;
    assert_problem("read-only reads another's run", &hidden, StatusCode::NOT_FOUND, "not-found");
}

/// `POST /runs` with an agent's `source`: built by the server with its
/// toolchain (here the pinned ones of scripts/install-test-deps.sh, placed
/// where `orbit sdk install` puts them), run, and kept under its digest; a
/// source that does not build is 400 with the toolchain's message and the
/// line, and no host path; a language without a toolchain is 503.
#[tokio::test(flavor = "multi_thread")]
async fn agents_built_from_source_over_rest() {
    let t = team(generous()).await;
    let bob = t.token(Role::Member);
    let path = "/api/v1/workspaces/acme/runs";
    let data = t.orbit.data_dir().to_owned();
    let smallest = "import { cache, log, OrbitError } from \"orbit\";\n\nexport function run(input: string): string {\n  \
                    const n = cache.increment(\"calls\", 1);\n  log.info(`call ${n}`);\n  if (!input) throw new \
                    OrbitError(\"invalid-input\", \"empty input\");\n  return input.toUpperCase();\n}\n";
    let python = "import orbit\n\n@orbit.agent\ndef run(input: str) -> str:\n    return input[::-1]\n";

    // No toolchain installed on this server yet.
    let none = t.send("POST", path, Some(bob), Some(json!({"source": {"language": "python", "code": python}}))).await;
    assert_problem("no toolchain", &none, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let detail = none.1["detail"].as_str().unwrap();
    assert!(detail.contains("orbit sdk install python"), "{detail}");
    assert!(!detail.contains(data.to_str().unwrap()), "no host path: {detail}");

    let deps = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-deps");
    std::fs::create_dir_all(data.join("sdk")).unwrap();
    std::os::unix::fs::symlink(deps.join("js-sdk").canonicalize().unwrap(), data.join("sdk/js")).unwrap();

    let body = json!({"source": {"language": "typescript", "code": smallest}, "input": "hi"});
    let (status, done) = t.send("POST", path, Some(bob), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!((done["status"].as_str(), done["output"].as_str()), (Some("succeeded"), Some("HI")), "{done}");
    // Kept: the digest runs it again without a build.
    let digest = done["digest"].as_str().unwrap();
    let (status, again) = t.send("POST", path, Some(bob), Some(json!({"digest": digest, "input": ""}))).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["error"]["code"], "invalid-input", "{again}");
    assert_eq!(again["error"]["message"], "empty input", "{again}");

    let broken = smallest.replace("input.toUpperCase();", "input.toUpperCase(;");
    let bad =
        t.send("POST", path, Some(bob), Some(json!({"source": {"language": "typescript", "code": broken}}))).await;
    assert_problem("broken source", &bad, StatusCode::BAD_REQUEST, "invalid-input");
    let detail = bad.1["detail"].as_str().unwrap();
    assert!(detail.contains("agent.ts does not build") && detail.contains("agent.ts:7:"), "{detail}");
    assert!(!detail.contains(data.to_str().unwrap()) && !detail.contains("orbit-build-"), "no host path: {detail}");
    // The sources sent are not kept on the server.
    let left: Vec<_> = std::fs::read_dir(data.join("builds"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("src-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let both = t
        .send(
            "POST",
            path,
            Some(bob),
            Some(json!({"digest": digest, "source": {"language": "typescript", "code": smallest}})),
        )
        .await;
    assert_problem("digest and source", &both, StatusCode::BAD_REQUEST, "invalid-input");
    let neither = t.send("POST", path, Some(bob), Some(json!({"input": "x"}))).await;
    assert_problem("no component", &neither, StatusCode::BAD_REQUEST, "invalid-input");
    let ruby = t.send("POST", path, Some(bob), Some(json!({"source": {"language": "ruby", "code": "puts 1"}}))).await;
    assert_problem("unknown language", &ruby, StatusCode::BAD_REQUEST, "invalid-input");
}

/// A run cancelled over the API stops and is recorded as cancelled; a
/// member cannot cancel another member's run.
#[tokio::test(flavor = "multi_thread")]
async fn cancel_a_run() {
    let t = team(generous()).await;
    let bob = t.token(Role::Member);
    let digest = t.upload(bob, "spin").await;
    let path = "/api/v1/workspaces/acme/runs";
    let body = json!({"digest": digest, "timeout_ms": 60000, "fuel": 20_000_000_000u64});
    let (_, started) = t.send("POST", &format!("{path}?wait=false"), Some(bob), Some(body)).await;
    let id = started["run_id"].as_str().unwrap().to_owned();
    while t.orbit.engine().executing(id.parse().unwrap()).is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let carol = t.send("POST", &format!("{path}/{id}/cancel"), Some(t.token(Role::ReadOnly)), None).await;
    assert_problem("read-only cancels bob's run", &carol, StatusCode::NOT_FOUND, "not-found");
    let (status, told) = t.send("POST", &format!("{path}/{id}/cancel"), Some(t.token(Role::Admin)), None).await;
    assert_eq!((status, told["cancelled"].as_bool()), (StatusCode::OK, Some(true)), "{told}");
    let rec = loop {
        let got = t.send("GET", &format!("{path}/{id}"), Some(bob), None).await;
        if got.0 == StatusCode::OK {
            break got.1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(rec["status"], "cancelled", "{rec}");
}

/// Revocation takes effect on the very next request: a client looping on
/// the API gets no success once the revoke has returned.
#[tokio::test(flavor = "multi_thread")]
async fn revocation_stops_a_rest_loop() {
    let t = Arc::new(team(generous()).await);
    let (_, issued) = t
        .send("POST", "/api/v1/workspaces/acme/tokens", Some(t.token(Role::Member)), Some(json!({"agent": "looper"})))
        .await;
    let token = issued["token"].as_str().unwrap().to_owned();
    let id = issued["record"]["id"].as_str().unwrap().to_owned();
    let revoked = Arc::new(AtomicBool::new(false));
    let (ok_before, ok_after) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let looper = {
        let (t, token, revoked, ok_before, ok_after) =
            (t.clone(), token.clone(), revoked.clone(), ok_before.clone(), ok_after.clone());
        tokio::spawn(async move {
            for _ in 0..400 {
                // Read the flag before sending: a success after it was set is a failure.
                let after = revoked.load(Ordering::SeqCst);
                let (status, _) = t.send("GET", "/api/v1/me", Some(&token), None).await;
                match (status, after) {
                    (StatusCode::OK, false) => ok_before.fetch_add(1, Ordering::SeqCst),
                    (StatusCode::OK, true) => ok_after.fetch_add(1, Ordering::SeqCst),
                    _ => 0,
                };
            }
        })
    };
    while ok_before.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (status, body) =
        t.send("DELETE", &format!("/api/v1/workspaces/acme/tokens/{id}"), Some(t.token(Role::Admin)), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    revoked.store(true, Ordering::SeqCst);
    looper.await.unwrap();
    assert_eq!(ok_after.load(Ordering::SeqCst), 0, "no request succeeds after the revoke returned");
    let after = t.send("GET", "/api/v1/me", Some(&token), None).await;
    assert_problem("revoked", &after, StatusCode::UNAUTHORIZED, "unauthenticated");
    // The audit trail holds the issue and the revoke.
    let (_, audit) = t.send("GET", "/api/v1/workspaces/acme/audit", Some(t.token(Role::Owner)), None).await;
    let actions: Vec<&str> = audit["events"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"token.revoke") && actions.contains(&"token.issue"), "{actions:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_per_token() {
    let t = team(RateLimit::new(NonZeroU32::new(1).unwrap(), NonZeroU32::new(3).unwrap())).await;
    let bob = t.token(Role::Member);
    for i in 0..3 {
        assert_eq!(t.send("GET", "/api/v1/me", Some(bob), None).await.0, StatusCode::OK, "request {i}");
    }
    let resp = t.http.get(format!("{}/api/v1/me", t.base)).bearer_auth(bob).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // Another token has its own budget.
    assert_eq!(t.send("GET", "/api/v1/me", Some(t.token(Role::Admin)), None).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn host_origin_and_protected_resource_metadata() {
    let t = team(generous()).await;
    let bob = t.token(Role::Member);
    // DNS rebinding: a foreign Host or Origin is refused before anything else.
    let evil_host = t.http.get(format!("{}/api/v1/me", t.base)).bearer_auth(bob).header("host", "evil.example").send();
    assert_eq!(evil_host.await.unwrap().status(), StatusCode::FORBIDDEN);
    let evil_origin =
        t.http.get(format!("{}/api/v1/me", t.base)).bearer_auth(bob).header("origin", "http://evil.example").send();
    assert_eq!(evil_origin.await.unwrap().status(), StatusCode::FORBIDDEN);
    let local_origin =
        t.http.get(format!("{}/api/v1/me", t.base)).bearer_auth(bob).header("origin", "http://localhost:3000").send();
    assert_eq!(local_origin.await.unwrap().status(), StatusCode::OK);

    // MCP authorization: 401 names the resource metadata, which names the endpoint.
    let resp = t
        .http
        .post(format!("{}/ws/acme/mcp", t.base))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let meta_url = format!("{}/.well-known/oauth-protected-resource/ws/acme/mcp", t.base);
    assert_eq!(challenge, format!("Bearer resource_metadata=\"{meta_url}\""));
    let meta: Value = t.http.get(&meta_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["resource"], format!("{}/ws/acme/mcp", t.base));
    assert_eq!(meta["bearer_methods_supported"], json!(["header"]));

    assert_eq!(t.http.get(format!("{}/healthz", t.base)).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(t.http.get(format!("{}/readyz", t.base)).send().await.unwrap().status(), StatusCode::OK);
}

/// The OpenAPI document is 3.1, describes every route with its bearer
/// security and problem responses.
#[tokio::test(flavor = "multi_thread")]
async fn openapi_document() {
    let t = team(generous()).await;
    let doc: Value = t.http.get(format!("{}/api/v1/openapi.json", t.base)).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/me", &["get"][..]),
        ("/workspaces/{slug}", &["get"]),
        ("/workspaces/{slug}/members", &["get", "post"]),
        ("/workspaces/{slug}/members/{user}", &["patch", "delete"]),
        ("/workspaces/{slug}/tokens", &["get", "post"]),
        ("/workspaces/{slug}/tokens/{id}", &["delete"]),
        ("/workspaces/{slug}/secrets", &["get"]),
        ("/workspaces/{slug}/secrets/{name}", &["put", "delete"]),
        ("/workspaces/{slug}/secrets/{name}/reassign", &["post"]),
        ("/workspaces/{slug}/servers", &["get", "post"]),
        ("/workspaces/{slug}/servers/{name}", &["patch", "delete"]),
        ("/workspaces/{slug}/servers/{name}/refresh", &["post"]),
        ("/workspaces/{slug}/tools", &["get"]),
        ("/workspaces/{slug}/components", &["post"]),
        ("/workspaces/{slug}/runs", &["get", "post"]),
        ("/workspaces/{slug}/runs/{id}", &["get"]),
        ("/workspaces/{slug}/runs/{id}/cancel", &["post"]),
        ("/workspaces/{slug}/jobs", &["get", "post"]),
        ("/workspaces/{slug}/jobs/{name}", &["delete"]),
        ("/workspaces/{slug}/queue", &["get"]),
        ("/workspaces/{slug}/audit", &["get"]),
        ("/workspaces/{slug}/notifications", &["get"]),
    ] {
        for m in methods {
            let op = &paths.get(path).unwrap_or_else(|| panic!("{path} is documented"))[m];
            assert!(op.is_object(), "{m} {path} is documented");
            for status in ["401", "403", "404", "429"] {
                let content = &op["responses"][status]["content"]["application/problem+json"];
                assert!(content.is_object(), "{m} {path} documents {status} as a problem");
            }
        }
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
}

// ---- The MCP gateway: /ws/{slug}/mcp ----

/// One endpoint, every tool: Orbit's own and the upstream server's under
/// `<server>__<tool>`, each call checked against role and policy and audited.
#[tokio::test(flavor = "multi_thread")]
async fn gateway_aggregates_upstream_tools() {
    let t = team(generous()).await;
    install_everything(&t);
    let url = format!("{}/ws/acme/mcp", t.base);
    let bob = mcp_client(&url, t.token(Role::Member)).await;
    let tools = bob.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for own in ["run_component", "list_runs", "get_run", "list_tools"] {
        assert!(names.contains(&own), "{names:?}");
    }
    assert!(names.contains(&"everything__echo"), "{names:?}");
    let echo = tools.iter().find(|t| t.name == "everything__echo").unwrap();
    assert!(echo.input_schema.get("properties").is_some(), "the upstream schema is passed through");

    let r = call_tool(&bob, "everything__echo", json!({"message": "through the gateway"})).await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert!(text_of(&r).contains("through the gateway"), "{r:?}");
    // A bad call is a tool error; the session goes on.
    let unknown = call_tool(&bob, "everything__no_such_tool", json!({})).await;
    assert_eq!(unknown.is_error, Some(true));
    let again = call_tool(&bob, "everything__echo", json!({"message": "still here"})).await;
    assert!(text_of(&again).contains("still here"));

    // Read-only carol is offered only the upstream tools that say they change nothing.
    let carol = mcp_client(&url, t.token(Role::ReadOnly)).await;
    let carol_tools = carol.list_all_tools().await.unwrap();
    for tool in carol_tools.iter().filter(|t| t.name.starts_with("everything__")) {
        let ro = tool.annotations.as_ref().and_then(|a| a.read_only_hint);
        assert_eq!(ro, Some(true), "{} offered to a read-only member", tool.name);
    }
    let echo_ro = echo.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true);
    let r = call_tool(&carol, "everything__echo", json!({"message": "ro"})).await;
    assert_eq!(r.is_error == Some(true), !echo_ro, "{r:?}");

    // Policy: denying the tool hides it and refuses it, for everyone.
    let (status, body) = t
        .send(
            "PATCH",
            "/api/v1/workspaces/acme/servers/everything",
            Some(t.token(Role::Admin)),
            Some(json!({"tool": "echo", "rule": "deny"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<String> = bob.list_all_tools().await.unwrap().into_iter().map(|t| t.name.to_string()).collect();
    assert!(!names.iter().any(|n| n == "everything__echo"), "{names:?}");
    let denied = call_tool(&bob, "everything__echo", json!({"message": "x"})).await;
    assert_eq!(denied.is_error, Some(true));
    assert!(text_of(&denied).contains("permission denied"), "{denied:?}");

    // The audit trail holds bob's calls, with his token, and the refusal.
    let (_, audit) = t
        .send("GET", "/api/v1/workspaces/acme/audit?server=everything&tool=echo", Some(t.token(Role::Owner)), None)
        .await;
    let events = audit["events"].as_array().unwrap();
    let by_bob: Vec<&Value> = events.iter().filter(|e| e["user"] == "bob").collect();
    assert!(by_bob.iter().filter(|e| e["outcome"] == "ok").count() >= 2, "{audit}");
    assert!(by_bob.iter().any(|e| e["outcome"] == "permission-denied"), "{audit}");
    assert!(by_bob.iter().all(|e| e["token_id"].is_string() && e["type"] == "tool-call"), "{audit}");
    bob.cancel().await.ok();
    carol.cancel().await.ok();
}

/// Revoking a token ends its open MCP session at the next message; a
/// session id is bound to the token that opened it.
#[tokio::test(flavor = "multi_thread")]
async fn gateway_revocation_and_session_binding() {
    let t = team(generous()).await;
    let url = format!("{}/ws/acme/mcp", t.base);
    let (_, issued) = t
        .send("POST", "/api/v1/workspaces/acme/tokens", Some(t.token(Role::Member)), Some(json!({"agent": "a1"})))
        .await;
    let token = issued["token"].as_str().unwrap().to_owned();
    let client = mcp_client(&url, &token).await;
    assert!(!client.list_all_tools().await.unwrap().is_empty());
    let id = issued["record"]["id"].as_str().unwrap();
    let (status, _) =
        t.send("DELETE", &format!("/api/v1/workspaces/acme/tokens/{id}"), Some(t.token(Role::Member)), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(client.list_all_tools().await.is_err(), "the next message after the revoke fails");

    // Session binding: open a session with bob's token, present its id with dave's.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}});
    let resp = t
        .http
        .post(&url)
        .bearer_auth(t.token(Role::Member))
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let session = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let post = |token: &str| {
        t.http
            .post(&url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&ping)
            .send()
    };
    assert_eq!(post(t.token(Role::Admin)).await.unwrap().status(), StatusCode::NOT_FOUND, "another token");
    assert_ne!(post(t.token(Role::Member)).await.unwrap().status(), StatusCode::NOT_FOUND, "the opener");
}

/// An upstream that dies fails its calls as tool errors while the other
/// upstream's calls go on; once it is back, a later call reconnects.
#[tokio::test(flavor = "multi_thread")]
async fn gateway_survives_a_dead_upstream() {
    // A dead HTTP upstream shows as a call that runs its whole timeout: keep it short.
    let mut config = orbit::OrbitConfig::default();
    config.tools.call_timeout = Duration::from_secs(2);
    let t = team_with(generous(), config).await;
    install_everything(&t);
    let remote = orbit_test_guests::mcp_servers::EverythingHttp::start();
    let port: u16 = remote.url.trim_start_matches("http://127.0.0.1:").trim_end_matches("/mcp").parse().unwrap();
    let (status, body) = t
        .send(
            "POST",
            "/api/v1/workspaces/acme/servers",
            Some(t.token(Role::Member)),
            Some(json!({"name": "remote", "url": remote.url})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client = mcp_client(&format!("{}/ws/acme/mcp", t.base), t.token(Role::Member)).await;
    let names: Vec<String> = client.list_all_tools().await.unwrap().into_iter().map(|t| t.name.to_string()).collect();
    assert!(names.contains(&"remote__echo".to_owned()) && names.contains(&"everything__echo".to_owned()), "{names:?}");
    let ok = call_tool(&client, "remote__echo", json!({"message": "one"})).await;
    assert!(text_of(&ok).contains("one"), "{ok:?}");

    drop(remote);
    let dead = call_tool(&client, "remote__echo", json!({"message": "two"})).await;
    assert_eq!(dead.is_error, Some(true), "{dead:?}");
    assert!(!text_of(&dead).contains("127.0.0.1"), "no internal address: {dead:?}");
    let other = call_tool(&client, "everything__echo", json!({"message": "other"})).await;
    assert!(text_of(&other).contains("other"), "{other:?}");

    let _back = orbit_test_guests::mcp_servers::EverythingHttp::start_on(port);
    let mut recovered = false;
    for _ in 0..20 {
        let r = call_tool(&client, "remote__echo", json!({"message": "three"})).await;
        if r.is_error != Some(true) {
            assert!(text_of(&r).contains("three"));
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "a call after the server is back succeeds");
    client.cancel().await.ok();
}

/// `orbit mcp --remote URL`: a stdio client reaches the gateway through the
/// relay, with the token from `ORBIT_TOKEN`; a revoked token ends it.
#[tokio::test(flavor = "multi_thread")]
async fn stdio_relay_to_the_gateway() {
    use rmcp::ServiceExt;
    let t = team(generous()).await;
    install_everything(&t);
    let (_, issued) = t
        .send("POST", "/api/v1/workspaces/acme/tokens", Some(t.token(Role::Member)), Some(json!({"agent": "desktop"})))
        .await;
    let token = issued["token"].as_str().unwrap().to_owned();
    let mut cmd = tokio::process::Command::new(common::orbit_bin());
    cmd.args(["mcp", "--remote", &format!("{}/ws/acme/mcp", t.base)])
        .env("ORBIT_TOKEN", &token)
        .env_remove("ORBIT_HOME")
        .env("ORBIT_MASTER_KEY", common::master_key());
    let transport = rmcp::transport::TokioChildProcess::new(cmd).expect("spawning orbit mcp --remote");
    let client = ().serve(transport).await.expect("initialize through the relay");
    let names: Vec<String> = client.list_all_tools().await.unwrap().into_iter().map(|t| t.name.to_string()).collect();
    assert!(names.contains(&"run_component".to_owned()) && names.contains(&"everything__echo".to_owned()), "{names:?}");
    let mut params = rmcp::model::CallToolRequestParams::new("everything__echo");
    params.arguments = json!({"message": "relayed"}).as_object().cloned();
    let r = client.call_tool(params).await.unwrap();
    assert!(text_of(&r).contains("relayed"), "{r:?}");
    // The audit names the agent the token was issued to.
    let (_, audit) = t.send("GET", "/api/v1/workspaces/acme/audit?tool=echo", Some(t.token(Role::Owner)), None).await;
    assert!(audit["events"].as_array().unwrap().iter().any(|e| e["agent"] == "desktop"), "{audit}");

    let id = issued["record"]["id"].as_str().unwrap();
    t.send("DELETE", &format!("/api/v1/workspaces/acme/tokens/{id}"), Some(t.token(Role::Member)), None).await;
    assert!(client.list_all_tools().await.is_err(), "a revoked token's next message fails");
}

/// `orbit serve --tls-cert --tls-key`: the same app over HTTPS (rustls),
/// with a certificate made for the test.
#[tokio::test(flavor = "multi_thread")]
async fn serves_https() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = Orbit::open(dir.path()).unwrap();
    let op = Principal::local_operator();
    orbit.team().create_workspace(&op, &ws("acme"), &user("alice"), None).unwrap();
    let token = issue(&orbit, "acme", "alice");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = made.cert.pem();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = HttpConfig::default();
    config.scheme = "https";
    let stop = config.cancellation.clone();
    let server = OrbitMcp::new(orbit.clone()).unwrap();
    tokio::spawn(async move { orbit_server::serve_https(server, listener, &cert, &key, config).await });
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/api/v1/me", addr.port());
    let mut me = None;
    for _ in 0..100 {
        match client.get(&url).bearer_auth(&token).send().await {
            Ok(r) => {
                me = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let me = me.expect("the HTTPS server answers");
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<Value>().await.unwrap()["user"], "alice");
    // The PRM of a TLS endpoint names an https resource.
    let meta: Value = client
        .get(format!("https://localhost:{}/.well-known/oauth-protected-resource/ws/acme/mcp", addr.port()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], format!("https://localhost:{}/ws/acme/mcp", addr.port()));
    // Plain HTTP to the TLS port gets no API answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/api/v1/me", addr.port()))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(plain.map(|r| r.status() != StatusCode::OK).unwrap_or(true));
    stop.cancel();
}

/// Counts `notifications/tools/list_changed`.
#[derive(Default, Clone)]
struct ListChanges(Arc<AtomicUsize>);

impl rmcp::ClientHandler for ListChanges {
    async fn on_tool_list_changed(&self, _: rmcp::service::NotificationContext<rmcp::RoleClient>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Installing, disabling or a policy change tells the workspace's open
/// sessions that the tool list changed; another workspace's sessions hear
/// nothing.
#[tokio::test(flavor = "multi_thread")]
async fn gateway_tells_sessions_when_tools_change() {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let t = team(generous()).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connect = |slug: &str, token: &str| {
        let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/ws/{slug}/mcp", t.base))
            .auth_header(token.to_owned());
        let counter = ListChanges::default();
        let seen = counter.0.clone();
        async move { (counter.serve(StreamableHttpClientTransport::from_config(config)).await.unwrap(), seen) }
    };
    let (acme, acme_seen) = connect("acme", t.token(Role::Member)).await;
    let (zeta, zeta_seen) = connect("zeta", &t.zeta_bob).await;
    let caps = acme.peer_info().unwrap().capabilities.tools.clone().unwrap();
    assert_eq!(caps.list_changed, Some(true));

    let wait_for = |seen: Arc<AtomicUsize>, at_least: usize| async move {
        for _ in 0..500 {
            if seen.load(Ordering::SeqCst) >= at_least {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    let remote = orbit_test_guests::mcp_servers::EverythingHttp::start();
    let admin = t.token(Role::Admin);
    let (status, _) = t
        .send(
            "POST",
            "/api/v1/workspaces/acme/servers",
            Some(admin),
            Some(json!({"name": "remote", "url": remote.url})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(wait_for(acme_seen.clone(), 1).await, "installing a server is announced");
    let before = acme_seen.load(Ordering::SeqCst);
    let (status, _) =
        t.send("PATCH", "/api/v1/workspaces/acme/servers/remote", Some(admin), Some(json!({"enabled": false}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(wait_for(acme_seen.clone(), before + 1).await, "disabling a server is announced");
    assert_eq!(zeta_seen.load(Ordering::SeqCst), 0, "another workspace hears nothing");
    let _ = acme.cancel().await;
    let _ = zeta.cancel().await;
}

/// `/metrics`: runs by status and tool calls by outcome, as counts only.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_runs_and_tool_calls() {
    let t = team(generous()).await;
    install_everything(&t);
    let bob = t.token(Role::Member);
    let digest = t.upload(bob, "echo").await;
    for i in 0..3 {
        let (status, _) = t
            .send(
                "POST",
                "/api/v1/workspaces/acme/runs",
                Some(bob),
                Some(json!({"digest": digest, "input": i.to_string()})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let client = mcp_client(&format!("{}/ws/acme/mcp", t.base), bob).await;
    call_tool(&client, "everything__echo", json!({"message": "counted"})).await;
    let text = t.http.get(format!("{}/metrics", t.base)).send().await.unwrap().text().await.unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} in:\n{text}"))
    };
    assert_eq!(value("orbit_runs_total{status=\"succeeded\"}"), 3.0);
    assert_eq!(value("orbit_tool_calls_total{outcome=\"ok\"}"), 1.0);
    assert_eq!(value("orbit_runs_in_flight"), 0.0);
    assert!(value("orbit_run_duration_seconds_count") >= 3.0);
    assert!(!text.contains("acme") && !text.contains("bob") && !text.contains("everything"), "{text}");
    let _ = client.cancel().await;
}

/// A guest cannot reach the server it runs under: `fetch` refuses the
/// server's own listen address by IP and by name, even with loopback
/// allowed by the operator, while another loopback server stays reachable.
#[tokio::test(flavor = "multi_thread")]
async fn guests_cannot_reach_the_server_itself() {
    let mut config = orbit::OrbitConfig::default();
    let mut fetch = orbit::FetchConfig::default();
    fetch.allow_ips = vec!["127.0.0.0/8".parse().unwrap()];
    config.fetch = Some(fetch);
    let t = team_with(generous(), config).await;
    // Another local HTTP server, which the operator's policy lets guests reach.
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_port = other.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = other.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
        }
    });
    let bob = t.token(Role::Member);
    let digest = t.upload(bob, "fetch-client").await;
    let port = t.base.rsplit(':').next().unwrap().to_owned();
    let fetch = |url: String| {
        let input = json!({"method": "GET", "url": url}).to_string();
        t.send("POST", "/api/v1/workspaces/acme/runs", Some(bob), Some(json!({"digest": digest, "input": input})))
    };
    for url in [format!("http://127.0.0.1:{port}/healthz"), format!("http://localhost:{port}/api/v1/me")] {
        let (status, run) = fetch(url.clone()).await;
        assert_eq!(status, StatusCode::OK, "{run}");
        assert_ne!(run["status"], "succeeded", "{url}: {run}");
        assert_eq!(run["error"]["code"], "permission-denied", "{url}: {run}");
    }
    let (_, run) = fetch(format!("http://127.0.0.1:{other_port}/")).await;
    assert_eq!(run["status"], "succeeded", "another loopback server stays reachable: {run}");
}

/// When every run slot stays busy, a run request waits a bounded time and
/// then gets 503 with `Retry-After`; nothing queues without bound.
#[tokio::test(flavor = "multi_thread")]
async fn busy_slots_get_503() {
    let mut config = orbit::OrbitConfig::default();
    config.engine.max_concurrent_runs = 1;
    let mut caps = orbit_server::RunCaps::default();
    caps.slot_wait_ms = 300;
    let t = team_with_caps(generous(), config, caps).await;
    let bob = t.token(Role::Member);
    let digests = [t.upload(bob, "spin").await, t.upload(bob, "echo").await];
    let path = "/api/v1/workspaces/acme/runs";
    let (status, spin) = t
        .send(
            "POST",
            &format!("{path}?wait=false"),
            Some(bob),
            // The most fuel a caller may ask for (about an hour): only the
            // cancel below may free the slot (the default 2e9 units last
            // well under a second on a fast machine).
            Some(json!({"digest": digests[0], "timeout_ms": 60000, "fuel": orbit_server::RunCaps::default().max_fuel})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{spin}");
    let echo = json!({"digest": digests[1], "input": "x"});
    let resp = t.http.post(format!("{}{path}", t.base)).bearer_auth(bob).json(&echo).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "urn:orbit:problem:unavailable", "{body}");
    let later = t.send("POST", &format!("{path}?wait=false"), Some(bob), Some(echo.clone())).await;
    assert_problem("no slot for a run without waiting", &later, StatusCode::SERVICE_UNAVAILABLE, "unavailable");

    let id = spin["run_id"].as_str().unwrap();
    let (status, _) = t.send("POST", &format!("{path}/{id}/cancel"), Some(bob), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, done) = t.send("POST", path, Some(bob), Some(echo)).await;
    assert_eq!((status, done["status"].as_str()), (StatusCode::OK, Some("succeeded")), "{done}");
}

/// One workspace cannot take every run slot: with one slot per workspace,
/// a second run of acme gets 503 while zeta's run goes through.
#[tokio::test(flavor = "multi_thread")]
async fn runs_per_workspace_are_capped() {
    let mut caps = orbit_server::RunCaps::default();
    (caps.max_runs_per_workspace, caps.slot_wait_ms) = (1, 300);
    let t = team_with_caps(generous(), orbit::OrbitConfig::default(), caps).await;
    let bob = t.token(Role::Member);
    let (spin, echo) = (t.upload(bob, "spin").await, t.upload(bob, "echo").await);
    let acme = "/api/v1/workspaces/acme/runs";
    let (status, started) = t
        .send(
            "POST",
            &format!("{acme}?wait=false"),
            Some(bob),
            // As in `busy_slots_get_503`: only the cancel ends it.
            Some(json!({"digest": spin, "timeout_ms": 60000, "fuel": orbit_server::RunCaps::default().max_fuel})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let second = t.send("POST", acme, Some(bob), Some(json!({"digest": echo, "input": "x"}))).await;
    assert_problem("acme's second run", &second, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    // zeta has its own slot.
    t.upload_to("zeta", &t.zeta_bob, "echo").await;
    let (status, other) = t
        .send("POST", "/api/v1/workspaces/zeta/runs", Some(&t.zeta_bob), Some(json!({"digest": echo, "input": "z"})))
        .await;
    assert_eq!((status, other["status"].as_str()), (StatusCode::OK, Some("succeeded")), "{other}");
    let id = started["run_id"].as_str().unwrap();
    t.send("POST", &format!("{acme}/{id}/cancel"), Some(bob), None).await;
    let mut after = (StatusCode::SERVICE_UNAVAILABLE, Value::Null);
    for _ in 0..100 {
        after = t.send("POST", acme, Some(bob), Some(json!({"digest": echo, "input": "y"}))).await;
        if after.0 == StatusCode::OK {
            break;
        }
    }
    assert_eq!(after.1["status"], "succeeded", "acme's slot is free again once its run ends: {:?}", after);
}

#[tokio::test(flavor = "multi_thread")]
async fn components_are_kept_per_workspace_within_a_byte_cap() {
    let (ops, trap) = (orbit_test_guests::bytes("ops").len() as u64, orbit_test_guests::bytes("trap").len() as u64);
    let mut caps = orbit_server::ComponentCaps::default();
    caps.max_bytes_per_workspace = ops + trap - 1;
    let t = team_built(generous(), orbit::OrbitConfig::default(), orbit_server::RunCaps::default(), caps).await;
    let bob = t.token(Role::Member);
    let digest = t.upload(bob, "ops").await;
    // Both do not fit, and ops was used just now: refused, ops kept.
    let resp = t
        .http
        .post(format!("{}/api/v1/workspaces/acme/components", t.base))
        .bearer_auth(bob)
        .body(orbit_test_guests::bytes("trap"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_problem(
        "over the workspace's cap",
        &(status, body.clone()),
        StatusCode::PAYLOAD_TOO_LARGE,
        "quota-exceeded",
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(&caps.max_bytes_per_workspace.to_string()) && !detail.contains('/'), "{detail}");
    // Sending the kept one again is fine, and it still runs.
    assert_eq!(t.upload(bob, "ops").await, digest);
    let (status, run) =
        t.send("POST", "/api/v1/workspaces/acme/runs", Some(bob), Some(json!({"digest": digest, "input": "[]"}))).await;
    assert_eq!((status, run["status"].as_str()), (StatusCode::OK, Some("succeeded")), "{run}");
    // Another workspace has its own cap, and does not see acme's components:
    // a digest of acme's is "not found" there until zeta submits it itself.
    let zeta_run = json!({"digest": digest, "input": "[]"});
    let cross = t.send("POST", "/api/v1/workspaces/zeta/runs", Some(&t.zeta_bob), Some(zeta_run.clone())).await;
    assert_problem("acme's component from zeta", &cross, StatusCode::NOT_FOUND, "not-found");
    // trap fits in zeta (acme's bytes do not count there); then ops does not.
    t.upload_to("zeta", &t.zeta_bob, "trap").await;
    let resp = t
        .http
        .post(format!("{}/api/v1/workspaces/zeta/components", t.base))
        .bearer_auth(&t.zeta_bob)
        .body(orbit_test_guests::bytes("ops"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "zeta's own cap applies too");
}
