//! Authentication, workspaces and the permission table through the real
//! `orbit` binary, with real tokens issued, revoked and expired by its CLI:
//! `orbit mcp` over stdio and `orbit serve --mcp` over streamable HTTP.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{
    Client, HttpServer, Issued, RecordingClient, add_member, call, create_workspace, issue_token, orbit_cmd,
    orbit_tokio_cmd, redact, revoke_token, run_ids, structured, text, wait_exit,
};
use orbit::orbit_workspace::{Grant, PERMISSIONS, Role};
use rmcp::ServiceExt;
use rmcp::model::CallToolResult;
use rmcp::service::ServiceError;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Value, json};

async fn stdio_client(data_dir: &Path, token: &str) -> Client {
    let mut cmd = orbit_tokio_cmd(data_dir);
    cmd.arg("mcp").env("ORBIT_TOKEN", token);
    let transport = TokioChildProcess::new(cmd).expect("spawning orbit mcp");
    Arc::new(RecordingClient::default()).serve(transport).await.expect("initialize over stdio")
}

async fn http_client(url: &str, token: &str) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    Arc::new(RecordingClient::default()).serve(transport).await.expect("initialize over HTTP")
}

fn echo_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(orbit_test_guests::bytes("echo"))
}

fn ops_b64() -> String {
    let wasm = std::fs::read(orbit_test_guests::path("ops")).expect("the ops guest");
    base64::engine::general_purpose::STANDARD.encode(wasm)
}

async fn tool(client: &Client, name: &'static str, args: Value) -> CallToolResult {
    client.call_tool(call(name, args)).await.unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Runs the echo guest; returns the run id.
async fn run_echo(client: &Client, input: &str) -> String {
    let r = tool(client, "run_component", json!({"component_base64": echo_b64(), "input": input})).await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert_eq!(structured(&r)["output"], input);
    structured(&r)["run_id"].as_str().unwrap().to_owned()
}

/// The JSON-RPC error of a refused token: code -32001, `unauthorized: ...`.
fn assert_unauthorized<T: std::fmt::Debug>(label: &str, result: Result<T, ServiceError>, token: &str) {
    match result {
        Err(ServiceError::McpError(e)) => {
            assert_eq!(e.code.0, -32001, "{label}: {}", redact(&e.message, token));
            assert!(e.message.starts_with("unauthorized:"), "{label}: {}", redact(&e.message, token));
            assert!(!e.message.contains(token), "{label}: the error does not echo the token");
        }
        other => panic!("{label}: expected an unauthorized error, got {}", redact(&format!("{other:?}"), token)),
    }
}

/// `orbit mcp` with `token` (or none) and stdin closed: it must refuse to
/// start, exit non-zero, say why on stderr, and write nothing on stdout.
fn assert_mcp_refuses(data_dir: &Path, label: &str, token: Option<&str>, expect: &str) {
    let mut cmd = orbit_cmd(data_dir);
    cmd.arg("mcp").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.env("ORBIT_TOKEN", t);
    }
    // stdin stays open (an agent waiting to talk): the refusal must not need EOF.
    let child = cmd.spawn().expect("spawning orbit mcp");
    let out = wait_exit(child);
    let secret = token.unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{label}: orbit mcp exits non-zero");
    assert!(out.stdout.is_empty(), "{label}: nothing on stdout, which belongs to the protocol");
    assert!(stderr.contains(expect), "{label}: stderr {:?} should say {expect:?}", redact(&stderr, secret));
    if !secret.is_empty() {
        assert!(!stderr.contains(secret), "{label}: stderr does not echo the token");
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn stdio_refuses_to_start_without_a_valid_token() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let bob = common::team_with_member_token(dir, "team-a");

    assert_mcp_refuses(dir, "no token", None, "orbit mcp needs a token: set ORBIT_TOKEN");
    assert_mcp_refuses(dir, "malformed", Some("not-a-token"), "unauthorized: the token is malformed");
    let unknown = format!("orb_{}", "A".repeat(43));
    assert_mcp_refuses(dir, "unknown", Some(&unknown), "unauthorized: the token is unknown");

    let revoked = issue_token(dir, "team-a", "bob", None, None);
    revoke_token(dir, &revoked);
    assert_mcp_refuses(dir, "revoked", Some(&revoked.token), "unauthorized: the token was revoked");

    let expiring = issue_token(dir, "team-a", "bob", None, Some("1s"));
    let expires_at = expiring.expires_at_ms.expect("a token issued with --expires-in has an expiry");
    while now_ms() <= expires_at {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_mcp_refuses(dir, "expired", Some(&expiring.token), "unauthorized: the token has expired");

    // An empty --token-file is no token either.
    let empty = dir.join("empty-token");
    std::fs::write(&empty, "").unwrap();
    let out = wait_exit(
        orbit_cmd(dir)
            .arg("mcp")
            .arg("--token-file")
            .arg(&empty)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(!out.status.success() && out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized"), "an empty token file is refused");

    // The valid token is not affected by the others.
    assert!(bob.token.starts_with("orb_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_valid_token_works_from_env_and_from_token_file() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let bob = common::team_with_member_token(dir, "team-a");

    let client = stdio_client(dir, &bob.token).await;
    let run = run_echo(&client, "by env").await;
    client.cancel().await.unwrap();

    let file = dir.join("bob.token");
    std::fs::write(&file, format!("{}\n", bob.token)).unwrap();
    let mut cmd = orbit_tokio_cmd(dir);
    cmd.arg("mcp").arg("--token-file").arg(&file);
    let client = Arc::new(RecordingClient::default())
        .serve(TokioChildProcess::new(cmd).unwrap())
        .await
        .expect("initialize with --token-file");
    let listed = tool(&client, "list_runs", json!({})).await;
    assert_eq!(structured(&listed)["runs"][0]["run_id"], run.as_str());
    // Members see who started each run.
    assert_eq!(structured(&listed)["runs"][0]["started_by"], "bob/tests", "member bob through agent tests");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_token_revoked_mid_session_fails_the_next_message_and_runs_nothing() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let bob = common::team_with_member_token(&dir, "team-a");
    let client = stdio_client(&dir, &bob.token).await;
    run_echo(&client, "before").await;
    assert_eq!(client.list_all_tools().await.unwrap().len(), 4);

    // The CLI goes through the session's `orbit mcp`, the directory's owner.
    let before = tokio::task::block_in_place(|| run_ids(&dir, "team-a"));
    assert_eq!(before.len(), 1);
    tokio::task::block_in_place(|| revoke_token(&dir, &bob));

    let call_after = client.call_tool(call("run_component", json!({"component_base64": echo_b64(), "input": "after"})));
    assert_unauthorized("tools/call after revoke", call_after.await, &bob.token);
    assert_unauthorized("tools/list after revoke", client.list_all_tools().await, &bob.token);
    assert_unauthorized("list_runs after revoke", client.call_tool(call("list_runs", json!({}))).await, &bob.token);

    // Nothing ran after the revocation.
    let after = tokio::task::block_in_place(|| run_ids(&dir, "team-a"));
    assert_eq!(after, before, "no run was recorded after the revocation");
    client.cancel().await.unwrap();
    assert_eq!(run_ids(&dir, "team-a"), before);
}

async fn post_initialize(url: &str, token: Option<&str>) -> reqwest::Response {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&init);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

fn assert_401(label: &str, response: &reqwest::Response) {
    assert_eq!(response.status(), 401, "{label}");
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    assert!(challenge.as_deref().is_some_and(|c| c.starts_with("Bearer")), "{label}: WWW-Authenticate {challenge:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requires_a_valid_bearer_token_on_every_request() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let bob = common::team_with_member_token(&dir, "team-a");
    let revoked = issue_token(&dir, "team-a", "bob", None, None);
    revoke_token(&dir, &revoked);
    let server = HttpServer::start(&dir).await;

    assert_401("no token", &post_initialize(&server.url, None).await);
    assert_401("malformed token", &post_initialize(&server.url, Some("not-a-token")).await);
    assert_401("unknown token", &post_initialize(&server.url, Some(&format!("orb_{}", "A".repeat(43)))).await);
    assert_401("revoked token", &post_initialize(&server.url, Some(&revoked.token)).await);
    // A token in another scheme is no bearer token.
    let basic = reqwest::Client::new()
        .post(&server.url)
        .header("authorization", format!("Basic {}", bob.token))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_401("Basic scheme", &basic);
    // A GET (the SSE stream) without a token is refused before MCP too.
    let get = reqwest::Client::new().get(&server.url).header("accept", "text/event-stream").send().await.unwrap();
    assert_401("GET without token", &get);
    // No run was recorded by any of that.
    assert!(tokio::task::block_in_place(|| run_ids(&dir, "team-a")).is_empty());

    let ok = post_initialize(&server.url, Some(&bob.token)).await;
    assert_eq!(ok.status(), 200);
    let client = http_client(&server.url, &bob.token).await;
    run_echo(&client, "over http").await;
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_token_revoked_mid_session_gets_401() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let bob = common::team_with_member_token(&dir, "team-a");
    let server = HttpServer::start(&dir).await;
    let http = reqwest::Client::new();

    // A raw session: initialize, initialized, tools/list.
    let init = post_initialize(&server.url, Some(&bob.token)).await;
    assert_eq!(init.status(), 200);
    let session = init.headers().get("mcp-session-id").expect("a session id").to_str().unwrap().to_owned();
    let _ = init.text().await;
    let post = |body: Value| {
        http.post(&server.url)
            .bearer_auth(&bob.token)
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(&body)
            .send()
    };
    let initialized = post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await.unwrap();
    assert_eq!(initialized.status(), 202);
    let list = post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await.unwrap();
    assert_eq!(list.status(), 200);
    assert!(list.text().await.unwrap().contains("run_component"));

    // And an rmcp client session with the same token.
    let client = http_client(&server.url, &bob.token).await;
    run_echo(&client, "before").await;
    let before = tokio::task::block_in_place(|| run_ids(&dir, "team-a"));

    tokio::task::block_in_place(|| revoke_token(&dir, &bob));

    let call_body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "run_component", "arguments": {"component_base64": echo_b64(), "input": "after"}}});
    assert_401("tools/call after revoke", &post(call_body).await.unwrap());
    assert_401(
        "tools/list after revoke",
        &post(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"})).await.unwrap(),
    );
    let rmcp_after = client.call_tool(call("run_component", json!({"component_base64": echo_b64(), "input": "x"})));
    assert!(rmcp_after.await.is_err(), "the rmcp session's next call fails");
    assert_eq!(tokio::task::block_in_place(|| run_ids(&dir, "team-a")), before, "nothing ran after the revocation");
    let _ = client.cancel().await;
}

/// `text` with the one name it quotes replaced, to compare two answers
/// that differ only in the name asked for.
fn unnamed(text: &str, name: &str) -> String {
    text.replace(name, "<NAME>")
}

/// Two workspaces with a shared member; each token sees only its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_acts_only_in_its_own_workspace() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    create_workspace(dir, "a", "ada");
    create_workspace(dir, "b", "bea");
    add_member(dir, "a", "sam", "member");
    add_member(dir, "b", "sam", "admin");
    let sam_a = issue_token(dir, "a", "sam", None, None);
    let sam_b = issue_token(dir, "b", "sam", None, None);

    // B's run, by the shared member through B's token.
    let client_b = stdio_client(dir, &sam_b.token).await;
    let run_b = run_echo(&client_b, "in b").await;
    client_b.cancel().await.unwrap();

    let client = stdio_client(dir, &sam_a.token).await;
    let run_a = run_echo(&client, "in a").await;

    // Every tool: `workspace: "b"` gets the answer `workspace: "nope"` gets.
    let echo = echo_b64();
    for (tool_name, args) in [
        ("run_component", json!({"component_base64": echo, "input": "x"})),
        ("list_runs", json!({})),
        ("get_run", json!({"run_id": run_b})),
        ("list_tools", json!({})),
    ] {
        let with = |ws: &str| {
            let mut a = args.clone();
            a["workspace"] = ws.into();
            a
        };
        let b = tool(&client, tool_name, with("b")).await;
        let nope = tool(&client, tool_name, with("nope")).await;
        assert_eq!(b.is_error, Some(true), "{tool_name} in b: {b:?}");
        assert_eq!(nope.is_error, Some(true), "{tool_name} in nope: {nope:?}");
        assert_eq!(unnamed(&text(&b), "\"b\""), unnamed(&text(&nope), "\"nope\""), "{tool_name}");
        assert_eq!(b.structured_content, nope.structured_content, "{tool_name}");
        // The token's own workspace, named, is fine.
        if matches!(tool_name, "list_runs" | "list_tools") {
            let own = tool(&client, tool_name, with("a")).await;
            assert_ne!(own.is_error, Some(true), "{tool_name} in a: {own:?}");
        }
    }

    // list_runs never shows B's run.
    let listed = tool(&client, "list_runs", json!({"limit": 1000})).await;
    let ids: Vec<&str> =
        structured(&listed)["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [run_a.as_str()], "only A's runs");

    // get_run of B's run id answers like a run that does not exist.
    let hidden = tool(&client, "get_run", json!({"run_id": run_b})).await;
    let never = "01890a5d-ac96-774b-bcce-b302099a8057";
    let missing = tool(&client, "get_run", json!({"run_id": never})).await;
    assert_eq!(hidden.is_error, Some(true), "{hidden:?}");
    assert_eq!(unnamed(&text(&hidden), &run_b), unnamed(&text(&missing), never));
    assert_eq!(hidden.structured_content, missing.structured_content);

    // Only B's runs were recorded in B: nothing A's token did landed there.
    assert_eq!(run_ids(dir, "b"), [run_b.clone()]);
    client.cancel().await.unwrap();
}

/// The roles the MCP tools exercise, with their users in workspace `perm`.
const USERS: [(Role, &str); 4] =
    [(Role::ReadOnly, "rory"), (Role::Member, "mia"), (Role::Admin, "adam"), (Role::Owner, "olive")];

/// The table's rows for `run-component`, `view-runs`, `view-workspace` and
/// `write-data`, checked through `orbit mcp` for each role with its own
/// token: what the cell says is what the caller gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_permission_table_holds_through_orbit_mcp() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    create_workspace(dir, "perm", "olive");
    for (role, user) in USERS {
        if role != Role::Owner {
            add_member(dir, "perm", user, role.as_str());
        }
    }
    // Someone else's run, before anyone looks: the owner's, through a second owner token.
    let seeder = issue_token(dir, "perm", "olive", None, None);
    let client = stdio_client(dir, &seeder.token).await;
    let others_run = run_echo(&client, "someone else's").await;
    client.cancel().await.unwrap();

    let rows: Vec<_> = PERMISSIONS
        .iter()
        .filter(|r| ["run-component", "view-runs", "view-workspace", "write-data"].contains(&r.name))
        .collect();
    assert_eq!(rows.len(), 4, "the table has the four rows the MCP tools exercise");
    let ops = ops_b64();
    let mut keys_written = Vec::new();

    for (index, (role, user)) in USERS.into_iter().enumerate() {
        assert_eq!(Role::ALL[index], role, "the table's columns are read-only, member, admin, owner");
        let token: Issued = issue_token(dir, "perm", user, Some(role.as_str()), None);
        let client = stdio_client(dir, &token.token).await;
        let mut own_runs = BTreeSet::new();
        for rule in &rows {
            let grant = rule.grants[index];
            let cell = format!("{} / {role}: {grant:?}", rule.name);
            match (rule.name, grant) {
                ("run-component", Grant::Yes) => {
                    own_runs.insert(run_echo(&client, &format!("run by {user}")).await);
                }
                ("run-component", Grant::No) => {
                    let r = tool(&client, "run_component", json!({"component_base64": echo_b64()})).await;
                    assert_eq!(r.is_error, Some(true), "{cell}");
                    assert!(text(&r).starts_with("permission denied"), "{cell}: {}", text(&r));
                }
                ("write-data", grant @ (Grant::Yes | Grant::No)) => {
                    let key = format!("k-{user}");
                    let script = json!([{"op": "put", "key": key, "value": "v"}]).to_string();
                    let r = tool(&client, "run_component", json!({"component_base64": ops, "input": script})).await;
                    if let Some(id) = r.structured_content.as_ref().and_then(|s| s["run_id"].as_str()) {
                        own_runs.insert(id.to_owned());
                    }
                    if grant == Grant::Yes {
                        assert_ne!(r.is_error, Some(true), "{cell}: {r:?}");
                        assert_eq!(structured(&r)["output"], r#"[{"ok":null}]"#, "{cell}");
                        keys_written.push(key);
                    } else {
                        // The run itself is allowed (run-component); its write is not.
                        let output: Value = serde_json::from_str(structured(&r)["output"].as_str().unwrap()).unwrap();
                        assert_eq!(output[0]["err"]["code"], "permission-denied", "{cell}: {output}");
                    }
                }
                ("view-runs", Grant::Yes) => {
                    let listed = listed_runs(&client).await;
                    assert!(listed.contains(&others_run), "{cell}: sees someone else's run");
                    let got = tool(&client, "get_run", json!({"run_id": others_run})).await;
                    assert_ne!(got.is_error, Some(true), "{cell}: {got:?}");
                    assert_eq!(structured(&got)["output"], "someone else's");
                }
                ("view-runs", Grant::OwnOnly) => {
                    // Done after the other rows, once this caller has runs of its own.
                }
                ("view-runs", Grant::No) => {
                    assert!(listed_runs(&client).await.is_empty(), "{cell}");
                }
                ("view-workspace", Grant::Yes) => {
                    let r = tool(&client, "list_tools", json!({})).await;
                    assert_ne!(r.is_error, Some(true), "{cell}: {r:?}");
                    assert_eq!(structured(&r)["tools"], json!([]), "{cell}");
                }
                ("view-workspace", Grant::No) => {
                    let r = tool(&client, "list_tools", json!({})).await;
                    assert!(text(&r).starts_with("permission denied"), "{cell}: {}", text(&r));
                }
                (name, grant) => panic!("no MCP check for {name} / {role}: {grant:?}; add one"),
            }
        }
        let view_runs = rows.iter().find(|r| r.name == "view-runs").unwrap().grants[index];
        if view_runs == Grant::OwnOnly {
            let cell = format!("view-runs / {role}: OwnOnly");
            assert!(!own_runs.is_empty(), "{cell}: the caller started runs");
            assert_eq!(listed_runs(&client).await, own_runs, "{cell}: exactly its own runs");
            for id in &own_runs {
                let got = tool(&client, "get_run", json!({"run_id": id})).await;
                assert_ne!(got.is_error, Some(true), "{cell}: its own run {got:?}");
            }
            // Someone else's run answers like a missing one.
            let hidden = tool(&client, "get_run", json!({"run_id": others_run})).await;
            let never = "01890a5d-ac96-774b-bcce-b302099a8057";
            let missing = tool(&client, "get_run", json!({"run_id": never})).await;
            assert_eq!(hidden.is_error, Some(true), "{cell}");
            assert_eq!(unnamed(&text(&hidden), &others_run), unnamed(&text(&missing), never), "{cell}");
        }
        client.cancel().await.unwrap();
    }

    // What was written is there; what was refused is not.
    let client = stdio_client(dir, &seeder.token).await;
    for (_, user) in USERS {
        let key = format!("k-{user}");
        let script = json!([{"op": "get", "key": key}]).to_string();
        let r = tool(&client, "run_component", json!({"component_base64": ops, "input": script})).await;
        let output: Value = serde_json::from_str(structured(&r)["output"].as_str().unwrap()).unwrap();
        if keys_written.contains(&key) {
            assert_eq!(output[0]["ok"], "v", "{key}: {output}");
        } else {
            assert_eq!(output[0]["err"]["code"], "not-found", "{key} was never written: {output}");
        }
    }
    client.cancel().await.unwrap();
}

async fn listed_runs(client: &Client) -> BTreeSet<String> {
    let r = tool(client, "list_runs", json!({"limit": 1000})).await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    structured(&r)["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap().to_owned()).collect()
}

/// A second `orbit mcp` docks through the data directory's owner (here
/// `orbit serve --mcp`): it too refuses to start with a token that cannot
/// work, and works with a valid one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orbit_mcp_through_a_running_owner_checks_the_token_too() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let bob = common::team_with_member_token(&dir, "team-a");
    let revoked = issue_token(&dir, "team-a", "bob", None, None);
    revoke_token(&dir, &revoked);
    let _owner = HttpServer::start(&dir).await;

    tokio::task::block_in_place(|| {
        assert_mcp_refuses(&dir, "no token, owner running", None, "orbit mcp needs a token");
        assert_mcp_refuses(
            &dir,
            "malformed, owner running",
            Some("not-a-token"),
            "unauthorized: the token is malformed",
        );
        assert_mcp_refuses(&dir, "revoked, owner running", Some(&revoked.token), "unauthorized: the token was revoked");
    });

    let client = stdio_client(&dir, &bob.token).await;
    run_echo(&client, "through the owner").await;
    client.cancel().await.unwrap();
}
