//! An rmcp client against the real `orbit` binary: `orbit mcp` over stdio
//! and `orbit serve --mcp` over streamable HTTP on an ephemeral loopback port,
//! each with a real token issued by `orbit token issue`.

mod common;

use std::sync::Arc;

use base64::Engine as _;
use common::{Client, HttpServer, RecordingClient, call, orbit_tokio_cmd, structured, text};
use rmcp::ServiceExt;
use rmcp::model::{NumberOrString, ProgressToken, RequestMetaObject};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::json;

async fn stdio_client(data_dir: &std::path::Path, token: &str) -> Client {
    let mut cmd = orbit_tokio_cmd(data_dir);
    cmd.arg("mcp").env("ORBIT_TOKEN", token);
    let transport = TokioChildProcess::new(cmd).expect("spawning orbit mcp");
    Arc::new(RecordingClient::default()).serve(transport).await.expect("initialize over stdio")
}

async fn http_client(server: &HttpServer, token: &str) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = StreamableHttpClientTransportConfig::with_uri(server.url.as_str()).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    Arc::new(RecordingClient::default()).serve(transport).await.expect("initialize over HTTP")
}

/// Everything a docked agent does, over one transport.
async fn agent_session(client: &Client, data_dir: &std::path::Path) {
    // initialize: the server names itself and offers tools and logging.
    let info = client.peer_info().expect("server info after initialize");
    assert_eq!(info.server_info.as_ref().expect("server info").name, "orbit");
    assert!(info.capabilities.tools.is_some() && info.capabilities.logging.is_some());

    // tools/list: the four tools, each with an input schema of its own properties.
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(names, ["get_run", "list_runs", "list_tools", "run_component"]);
    let run_tool = tools.iter().find(|t| t.name == "run_component").unwrap();
    let props = run_tool.input_schema["properties"].as_object().expect("input schema properties");
    for p in ["component_base64", "digest", "input", "workspace", "fuel", "timeout_ms", "memory_bytes"] {
        assert!(props.contains_key(p), "run_component schema lacks {p}: {props:?}");
    }
    assert!(run_tool.output_schema.is_some(), "run_component has an output schema");
    for t in &tools {
        assert_eq!(t.input_schema["type"], "object", "{}", t.name);
        assert!(t.description.as_deref().is_some_and(|d| !d.is_empty()), "{} has a description", t.name);
    }

    // run_component with the echo guest as base64.
    let wasm = orbit_test_guests::bytes("echo");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&wasm);
    let first = client
        .call_tool(call(
            "run_component",
            json!({"component_base64": b64, "input": "hello orbit", "workspace": "team-a"}),
        ))
        .await
        .unwrap();
    assert_ne!(first.is_error, Some(true), "{first:?}");
    let first = structured(&first).clone();
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["output"], "hello orbit");
    assert_eq!(first["kind"], "agent");
    let digest = first["digest"].as_str().unwrap().to_owned();
    assert_eq!(digest, orbit::orbit_engine::digest(&wasm));
    // The component is kept content-addressed under the workspace's own
    // directory in the data dir.
    let kept = data_dir.join("components").join("team-a").join(format!("{digest}.wasm"));
    assert_eq!(std::fs::read(kept).unwrap(), wasm);

    // run_component again, by digest only, with explicit limits.
    let second = client
        .call_tool(call(
            "run_component",
            json!({"digest": digest, "input": "again", "workspace": "team-a", "fuel": 50_000_000u64,
                   "timeout_ms": 5000, "memory_bytes": 16u64 << 20}),
        ))
        .await
        .unwrap();
    assert_ne!(second.is_error, Some(true), "{second:?}");
    let second = structured(&second).clone();
    assert_eq!((second["status"].as_str(), second["output"].as_str()), (Some("succeeded"), Some("again")));

    // list_runs: newest first, in the workspace, paged with a cursor.
    let page = client.call_tool(call("list_runs", json!({"workspace": "team-a", "limit": 1}))).await.unwrap();
    let page = structured(&page).clone();
    assert_eq!(page["runs"].as_array().unwrap().len(), 1);
    assert_eq!(page["runs"][0]["run_id"], second["run_id"]);
    let cursor = page["next_cursor"].as_str().expect("a second page").to_owned();
    let page2 = client
        .call_tool(call("list_runs", json!({"workspace": "team-a", "limit": 10, "cursor": cursor})))
        .await
        .unwrap();
    let page2 = structured(&page2).clone();
    assert_eq!(page2["runs"][0]["run_id"], first["run_id"]);
    assert!(page2["next_cursor"].is_null());
    let ok_only =
        client.call_tool(call("list_runs", json!({"workspace": "team-a", "status": "trapped"}))).await.unwrap();
    assert_eq!(structured(&ok_only)["runs"].as_array().unwrap().len(), 0);
    // Another workspace (even one that exists, like team-b) is not the token's: not found.
    let other_ws = client.call_tool(call("list_runs", json!({"workspace": "team-b"}))).await.unwrap();
    assert_eq!(other_ws.is_error, Some(true), "{other_ws:?}");
    assert_eq!(text(&other_ws), r#"workspace "team-b" not found"#);
    // Without a workspace argument: the token's.
    let default_ws = client.call_tool(call("list_runs", json!({}))).await.unwrap();
    assert_eq!(structured(&default_ws)["runs"].as_array().unwrap().len(), 2);

    // get_run: the record, with its output and spans .
    let run =
        client.call_tool(call("get_run", json!({"run_id": first["run_id"], "workspace": "team-a"}))).await.unwrap();
    assert_ne!(run.is_error, Some(true), "{run:?}");
    let run = structured(&run).clone();
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["workspace"], "team-a");
    assert_eq!(run["output"], "hello orbit");
    assert_eq!(run["input_bytes"], 11);
    assert!(run["spans"].is_array(), "{run}");
    assert!(run.get("host_errors").is_none(), "operator-only detail never leaves the host");
    // Through another workspace it cannot be read: that workspace is not the token's.
    let hidden =
        client.call_tool(call("get_run", json!({"run_id": first["run_id"], "workspace": "team-b"}))).await.unwrap();
    assert_eq!(hidden.is_error, Some(true));
    assert_eq!(text(&hidden), r#"workspace "team-b" not found"#);
    // A run that does not exist.
    let missing =
        client.call_tool(call("get_run", json!({"run_id": "01890a5d-ac96-774b-bcce-b302099a8057"}))).await.unwrap();
    assert_eq!(missing.is_error, Some(true));
    assert!(text(&missing).starts_with("no run "), "{}", text(&missing));

    let data_dir_text = data_dir.display().to_string();
    let assert_sanitized_error = |label: &str, result: &rmcp::model::CallToolResult, expect: &str| {
        assert_eq!(result.is_error, Some(true), "{label}: {result:?}");
        let t = text(result);
        assert!(t.contains(expect), "{label}: {t:?} should contain {expect:?}");
        let all = format!("{t} {}", result.structured_content.as_ref().map(|v| v.to_string()).unwrap_or_default());
        for leak in [
            data_dir_text.as_str(),
            "/root",
            "/tmp",
            "/home",
            "panicked",
            "backtrace",
            ".rs:",
            "secret-host-path",
            "10.0.0.7",
        ] {
            assert!(!all.contains(leak), "{label}: {all:?} leaks {leak:?}");
        }
    };

    // Errors: bad base64, unknown digest, a bad digest, a non-component, a trapping guest.
    let bad = client.call_tool(call("run_component", json!({"component_base64": "***not base64***"}))).await.unwrap();
    assert_sanitized_error("bad base64", &bad, "not valid standard base64");
    let unknown = client.call_tool(call("run_component", json!({"digest": "0".repeat(64)}))).await.unwrap();
    assert_sanitized_error("unknown digest", &unknown, "no component with this digest");
    let traversal = client.call_tool(call("run_component", json!({"digest": "../../runs.redb"}))).await.unwrap();
    assert_sanitized_error("bad digest", &traversal, "64 lowercase hex digits");
    let not_wasm = base64::engine::general_purpose::STANDARD.encode(b"#!/bin/sh\necho hi\n");
    let not_wasm = client.call_tool(call("run_component", json!({"component_base64": not_wasm}))).await.unwrap();
    assert_sanitized_error("not a component", &not_wasm, "not a WebAssembly component");
    let both = client.call_tool(call("run_component", json!({}))).await.unwrap();
    assert_sanitized_error("neither", &both, "exactly one of");
    let trap_b64 = base64::engine::general_purpose::STANDARD.encode(orbit_test_guests::bytes("trap"));
    let trapped = client
        .call_tool(call("run_component", json!({"component_base64": trap_b64, "workspace": "team-a"})))
        .await
        .unwrap();
    assert_sanitized_error("trapping guest", &trapped, "trapped");
    let trapped = structured(&trapped).clone();
    assert_eq!(trapped["status"], "trapped");
    assert!(trapped["run_id"].is_string(), "a failed run still names its run");
    let bad_ws = client.call_tool(call("list_runs", json!({"workspace": "../etc"}))).await.unwrap();
    assert_sanitized_error("bad workspace", &bad_ws, "not found");
    let bad_args = client.call_tool(call("get_run", json!({"run_id": 42}))).await.unwrap();
    assert_sanitized_error("wrong argument type", &bad_args, "invalid type");
    let no_such = client.call_tool(call("no_such_tool", json!({}))).await.unwrap();
    assert_sanitized_error("unknown tool", &no_such, "unknown tool");
    // list_tools: a workspace with no MCP servers installed has no tools.
    let no_servers = client.call_tool(call("list_tools", json!({"workspace": "team-a"}))).await.unwrap();
    assert_ne!(no_servers.is_error, Some(true), "{no_servers:?}");
    assert_eq!(structured(&no_servers)["tools"], json!([]));
    assert_eq!(structured(&no_servers)["unavailable"], json!([]));

    // Progress: a spinning guest under a 1.6 s deadline, with a progressToken.
    let spin = base64::engine::general_purpose::STANDARD.encode(orbit_test_guests::bytes("spin"));
    let mut params = call(
        "run_component",
        json!({"component_base64": spin, "fuel": 10_000_000_000_000u64, "timeout_ms": 1600, "workspace": "team-a"}),
    );
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(NumberOrString::String("spin-1".into()))));
    let spun = client.call_tool(params).await.unwrap();
    assert_eq!(spun.is_error, Some(true));
    assert_eq!(structured(&spun)["status"], "deadline-exceeded");
    let progress = client.service().progress.lock().unwrap().clone();
    assert!(progress.len() >= 2, "expected periodic progress, got {progress:?}");
    // rmcp's client puts its own token on the request; all notifications carry that one.
    let token = progress[0].progress_token.clone();
    assert!(progress.iter().all(|p| p.progress_token == token && p.total == Some(1600.0)), "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0].progress < w[1].progress), "progress increases: {progress:?}");
    // Without a token, no progress is sent.
    let before = progress.len();
    let quick = client
        .call_tool(call("run_component", json!({"digest": digest, "input": "x", "workspace": "team-a"})))
        .await
        .unwrap();
    assert_ne!(quick.is_error, Some(true));
    assert_eq!(client.service().progress.lock().unwrap().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_agent_session() {
    let data = tempfile::tempdir().unwrap();
    let bob = common::team_with_member_token(data.path(), "team-a");
    common::create_workspace(data.path(), "team-b", "bea");
    let client = stdio_client(data.path(), &bob.token).await;
    agent_session(&client, data.path()).await;
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_agent_session() {
    let data = tempfile::tempdir().unwrap();
    let bob = common::team_with_member_token(data.path(), "team-a");
    common::create_workspace(data.path(), "team-b", "bea");
    let server = HttpServer::start(data.path()).await;
    let client = http_client(&server, &bob.token).await;
    agent_session(&client, data.path()).await;
    client.cancel().await.unwrap();
}

/// Host and Origin are checked against loopback (DNS-rebinding protection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_refuses_foreign_host_and_origin() {
    let data = tempfile::tempdir().unwrap();
    let bob = common::team_with_member_token(data.path(), "team-a");
    let server = HttpServer::start(data.path()).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let http = reqwest::Client::new();
    let post = |host: Option<String>, origin: Option<&str>| {
        let mut req = http
            .post(&server.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(&bob.token)
            .json(&init);
        if let Some(h) = host {
            req = req.header("host", h);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let port = server.port;
    let rebound = post(Some(format!("evil.example.com:{port}")), None).await.unwrap();
    assert_eq!(rebound.status(), 403);
    let foreign_origin = post(None, Some("http://evil.example.com")).await.unwrap();
    assert_eq!(foreign_origin.status(), 403);
    let both = post(Some("evil.example.com".into()), Some("http://evil.example.com")).await.unwrap();
    assert_eq!(both.status(), 403);
    for (host, origin) in [
        (format!("127.0.0.1:{port}"), format!("http://127.0.0.1:{port}")),
        (format!("localhost:{port}"), format!("http://localhost:{port}")),
    ] {
        let ok = post(Some(host.clone()), Some(&origin)).await.unwrap();
        assert_eq!(ok.status(), 200, "{host}");
    }
    // Without an Origin (a non-browser client), a loopback Host passes.
    assert_eq!(post(None, None).await.unwrap().status(), 200);
}

/// `orbit serve` refuses to listen beyond loopback without TLS or a proxy in
/// front, and without the host names clients use: bearer tokens must not
/// cross a network in clear.
#[test]
fn serve_refuses_non_loopback_listen() {
    let data = tempfile::tempdir().unwrap();
    let out = common::orbit_cmd(data.path()).args(["serve", "--mcp", "--listen", "0.0.0.0:0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    let out =
        common::orbit_cmd(data.path()).args(["serve", "--listen", "0.0.0.0:0", "--behind-proxy"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--public-host"), "{}", String::from_utf8_lossy(&out.stderr));
}
