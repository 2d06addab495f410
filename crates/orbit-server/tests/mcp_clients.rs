//! Real MCP clients we did not write: the official MCP Inspector CLI against
//! `orbit mcp` (stdio, the token in the server's environment with `-e`), and
//! the official conformance suite against `orbit serve --mcp` (streamable
//! HTTP; the runner cannot send a header, so a loopback proxy in this test
//! adds `Authorization: Bearer`). Both are pinned npm packages installed by
//! scripts/install-mcp-client-deps.sh.

mod common;

use std::process::Output;

use base64::Engine as _;
use common::{HttpServer, Issued, master_key, node22, npm_client_dir, orbit_bin, redact};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs the inspector CLI against `orbit mcp` on `data_dir` with `token`
/// and `args`, asserting it succeeded.
fn inspector(data_dir: &std::path::Path, token: &Issued, args: &[&str]) -> Output {
    let out = inspector_output(data_dir, token, args);
    assert!(
        out.status.success(),
        "inspector {args:?} failed: {}\n{}",
        redact(&String::from_utf8_lossy(&out.stdout), &token.token),
        redact(&String::from_utf8_lossy(&out.stderr), &token.token)
    );
    out
}

fn inspector_output(data_dir: &std::path::Path, token: &Issued, args: &[&str]) -> Output {
    let dir = npm_client_dir();
    let launcher = dir.join("node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js");
    std::process::Command::new(node22())
        .arg(launcher)
        .arg("--cli")
        // The server's environment, as a client config gives it.
        .args(["-e", &format!("ORBIT_TOKEN={}", token.token)])
        .args(["-e", &format!("ORBIT_HOME={}", data_dir.display())])
        .args(["-e", &format!("ORBIT_MASTER_KEY={}", master_key())])
        .arg(orbit_bin())
        .arg("mcp")
        .args(args)
        // The inspector keeps a server catalog; keep it out of $HOME.
        .env("MCP_CATALOG_PATH", data_dir.join("inspector-catalog.json"))
        .env_remove("ORBIT_TOKEN")
        .env_remove("ORBIT_HOME")
        .output()
        .expect("running the MCP inspector CLI")
}

fn json_of(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The CLI prints the JSON-RPC result as JSON.
    let start = stdout.find('{').unwrap_or_else(|| panic!("no JSON in inspector output: {stdout}"));
    serde_json::from_str(&stdout[start..]).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn inspector_cli_lists_tools_and_runs_a_component() {
    let data = tempfile::tempdir().unwrap();
    let bob = common::team_with_member_token(data.path(), "team-a");
    let tools = json_of(&inspector(data.path(), &bob, &["--method", "tools/list"]));
    let names: Vec<&str> = tools["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for n in ["run_component", "list_runs", "get_run", "list_tools"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    for t in tools["tools"].as_array().unwrap() {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
    }

    let b64 = base64::engine::general_purpose::STANDARD.encode(orbit_test_guests::bytes("echo"));
    let input_arg = "input=docked through the inspector".to_string();
    let component_arg = format!("component_base64={b64}");
    let run = json_of(&inspector(
        data.path(),
        &bob,
        &["--method", "tools/call", "--tool-name", "run_component", "--tool-arg", &component_arg, &input_arg],
    ));
    assert_ne!(run["isError"], true, "{run}");
    assert_eq!(run["structuredContent"]["status"], "succeeded", "{run}");
    assert_eq!(run["structuredContent"]["output"], "docked through the inspector");
    let run_id = run["structuredContent"]["run_id"].as_str().unwrap().to_owned();

    let listed = json_of(&inspector(data.path(), &bob, &["--method", "tools/call", "--tool-name", "list_runs"]));
    assert_eq!(listed["structuredContent"]["runs"][0]["run_id"], run_id.as_str(), "{listed}");

    let run_id_arg = format!("run_id={run_id}");
    let got = json_of(&inspector(
        data.path(),
        &bob,
        &["--method", "tools/call", "--tool-name", "get_run", "--tool-arg", &run_id_arg],
    ));
    assert_eq!(got["structuredContent"]["output"], "docked through the inspector", "{got}");

    // A tool error: the CLI prints the result and exits non-zero.
    let bad = inspector_output(
        data.path(),
        &bob,
        &["--method", "tools/call", "--tool-name", "run_component", "--tool-arg", "digest=ffff"],
    );
    assert!(!bad.status.success());
    let bad = json_of(&bad);
    assert_eq!(bad["isError"], true, "{bad}");
    assert_eq!(bad["content"][0]["text"], "a digest is the sha256 of the component: 64 lowercase hex digits");

    inspector(data.path(), &bob, &["--method", "logging/setLevel", "--log-level", "debug"]);

    // A revoked token: the inspector cannot connect, and says nothing of the token.
    common::revoke_token(data.path(), &bob);
    let refused = inspector_output(data.path(), &bob, &["--method", "tools/list"]);
    assert!(!refused.status.success(), "a revoked token is refused");
    let all = format!("{}{}", String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr));
    assert!(!all.contains(&bob.token), "the inspector's output does not echo the token");
}

/// The scenarios that apply to a server without the suite's own fixture
/// tools (see crates/orbit-server/CONFORMANCE.md for the full suite).
const SCENARIOS: &[&str] = &[
    "server-initialize",
    "ping",
    "logging-set-level",
    "tools-list",
    "tools-call-error",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_scenarios_pass() {
    let dir = npm_client_dir();
    let data = tempfile::tempdir().unwrap();
    let bob = common::team_with_member_token(data.path(), "team-a");
    let server = HttpServer::start(data.path()).await;
    // The runner sends no header of ours: without one, everything is 401.
    let proxy = bearer_proxy(server.port, bob.token.clone()).await;
    // The suite's dns-rebinding scenario needs a localhost URL.
    let url = format!("http://localhost:{proxy}/ws/team-a/mcp");
    let results = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for scenario in SCENARIOS {
        let out = tokio::process::Command::new(node22())
            .arg(dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js"))
            .args(["server", "--url", &url, "--scenario", scenario, "--output-dir"])
            .arg(results.path())
            .current_dir(results.path())
            .output()
            .await
            .expect("running the conformance suite");
        let stdout = redact(&String::from_utf8_lossy(&out.stdout), &bob.token);
        if !out.status.success() || !stdout.contains(" 0 failed") {
            let stderr = redact(&String::from_utf8_lossy(&out.stderr), &bob.token);
            failures.push(format!("{scenario}:\n{stdout}\n{stderr}"));
        }
    }
    assert!(failures.is_empty(), "conformance scenarios failed:\n{}", failures.join("\n"));
}

/// The conformance runner (0.1.16) has no option to send a header, and
/// `orbit serve --mcp` refuses any request without `Authorization: Bearer`.
/// This loopback proxy plays the part of a configured client: on each
/// connection it reads the request head, adds `Authorization: Bearer TOKEN`
/// and `Connection: close` (so every request comes on a fresh connection and
/// gets the header), and passes everything else, in both directions,
/// unchanged: `Host` and `Origin` included, for the DNS-rebinding scenario.
/// Returns the proxy's port.
async fn bearer_proxy(upstream_port: u16, token: String) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let token = token.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let mut lines = head.trim_end().split("\r\n");
                let mut rewritten = format!("{}\r\n", lines.next().unwrap_or_default());
                for line in lines {
                    let name = line.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
                    if name != "connection" && name != "authorization" {
                        rewritten.push_str(line);
                        rewritten.push_str("\r\n");
                    }
                }
                rewritten.push_str(&format!("Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"));
                let Ok(mut upstream) = tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                    return;
                };
                if upstream.write_all(rewritten.as_bytes()).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    port
}

/// The MCP Inspector CLI through a workspace's gateway (`orbit serve`,
/// streamable HTTP, the token in an `Authorization` header): it calls
/// server-everything's `echo` and mcp-server-time's `get_current_time`,
/// and the audit then holds both calls, as bob's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_cli_through_the_gateway() {
    let data = tempfile::tempdir().unwrap();
    let bob = common::team_with_member_token(data.path(), "team-a");
    let (node, everything) = orbit_test_guests::mcp_servers::everything_stdio();
    let (time, _) = orbit_test_guests::mcp_servers::time_stdio();
    let line = format!("{node} {}", everything.join(" "));
    common::orbit_ok(data.path(), &["tools", "add", "everything", "--workspace", "team-a", "--command", &line]);
    common::orbit_ok(data.path(), &["tools", "add", "time", "--workspace", "team-a", "--command", &time]);
    let server = HttpServer::start(data.path()).await;
    let url = format!("http://127.0.0.1:{}/ws/team-a/mcp", server.port);
    let dir = npm_client_dir();
    let launcher = dir.join("node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js");
    let inspect = |args: &[&str]| {
        let out = std::process::Command::new(node22())
            .arg(&launcher)
            .args(["--cli", "--transport", "http", "--server-url", &url])
            .args(["--header", &format!("Authorization: Bearer {}", bob.token)])
            .args(args)
            .env("MCP_CATALOG_PATH", data.path().join("inspector-catalog.json"))
            .output()
            .expect("running the MCP inspector CLI");
        assert!(
            out.status.success(),
            "inspector {args:?}: {}\n{}",
            redact(&String::from_utf8_lossy(&out.stdout), &bob.token),
            redact(&String::from_utf8_lossy(&out.stderr), &bob.token)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = inspect(&["--method", "tools/list"]);
    assert!(listed.contains("everything__echo") && listed.contains("time__get_current_time"), "{listed}");
    let echoed =
        inspect(&["--method", "tools/call", "--tool-name", "everything__echo", "--tool-arg", "message=inspected"]);
    assert!(echoed.contains("inspected"), "{echoed}");
    let now =
        inspect(&["--method", "tools/call", "--tool-name", "time__get_current_time", "--tool-arg", "timezone=UTC"]);
    assert!(now.contains("UTC") && !now.contains("\"isError\": true"), "{now}");

    let audit = common::orbit_ok(data.path(), &["audit", "--workspace", "team-a", "--json"]);
    let calls: Vec<serde_json::Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "tool-call" && e["actor"]["user"] == "bob" && e["outcome"] == "ok")
        .collect();
    for (server, tool) in [("everything", "echo"), ("time", "get_current_time")] {
        assert!(calls.iter().any(|e| e["server"] == server && e["tool"] == tool), "{server}/{tool}: {audit}");
    }
}

/// The fixture MCP server (tests/fixtures/conformance-upstream.mjs, the
/// suite's fixture tools, resources and prompts) on a free loopback port;
/// killed on drop. Returns it and its `/mcp` URL's port.
async fn fixture_server() -> (tokio::process::Child, u16) {
    fixture_server_logging(None).await
}

/// As [`fixture_server`]; with `log`, the fixture appends the method of each
/// `resources/list` and `resources/read` it answers to that file.
async fn fixture_server_logging(log: Option<&std::path::Path>) -> (tokio::process::Child, u16) {
    use tokio::io::AsyncBufReadExt as _;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformance-upstream.mjs");
    let mut cmd = tokio::process::Command::new(node22());
    if let Some(log) = log {
        cmd.env("CONFORMANCE_UPSTREAM_LOG", log);
    }
    let mut child = cmd
        .arg(script)
        .args(["--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the fixture MCP server");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().expect("the fixture prints its address");
    let port = line
        .trim()
        .strip_prefix("listening on http://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix("/mcp"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected fixture output {line:?}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

/// Runs `--suite all` against `url`; returns each scenario's (checks
/// passed, checks failed), read from the runner's `checks.json` files.
async fn run_suite(url: &str) -> std::collections::BTreeMap<String, (usize, usize, String)> {
    let results = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(node22())
        .arg(npm_client_dir().join("node_modules/@modelcontextprotocol/conformance/dist/index.js"))
        .args(["server", "--url", url, "--suite", "all", "--output-dir"])
        .arg(results.path())
        .current_dir(results.path())
        .output()
        .await
        .expect("running the conformance suite");
    let mut scenarios = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(results.path()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        // server-<scenario>-<24-character timestamp>
        let Some(scenario) = name.strip_prefix("server-").and_then(|n| n.get(..n.len().saturating_sub(25))) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("checks.json")) else { continue };
        let checks: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
        let count = |status: &str| checks.iter().filter(|c| c["status"] == status).count();
        let failed: Vec<String> = checks.iter().filter(|c| c["status"] == "FAILURE").map(|c| c.to_string()).collect();
        scenarios.insert(scenario.to_owned(), (count("SUCCESS"), count("FAILURE"), failed.join("\n")));
    }
    assert!(
        scenarios.len() >= 30,
        "the suite ran {} scenarios against {url}: {}",
        scenarios.len(),
        String::from_utf8_lossy(&out.stdout)
    );
    scenarios
}

/// Pass-through fidelity: the fixture server as the workspace's only
/// upstream, installed unprefixed, and the **full** suite (`--suite all`)
/// through the gateway. Every scenario that passes against the fixture
/// directly passes through the gateway: its tools (images, audio, embedded
/// resources, structured results, JSON Schema 2020-12), prompts, resources,
/// templates, subscriptions and completions are relayed, and so are the
/// upstream's log messages, progress notifications, sampling and
/// elicitation requests during a call. The table goes to CONFORMANCE.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_full_suite_through_the_gateway() {
    let (_fixture, fixture_port) = fixture_server().await;
    let direct = run_suite(&format!("http://localhost:{fixture_port}/mcp")).await;

    let data = tempfile::tempdir().unwrap();
    let bob = common::team_with_member_token(data.path(), "team-a");
    let fixture_url = format!("http://127.0.0.1:{fixture_port}/mcp");
    common::orbit_ok(
        data.path(),
        &["tools", "add", "fixture", "--workspace", "team-a", "--url", &fixture_url, "--unprefixed"],
    );
    let server = HttpServer::start(data.path()).await;
    let proxy = bearer_proxy(server.port, bob.token.clone()).await;
    let gateway = run_suite(&format!("http://localhost:{proxy}/ws/team-a/mcp")).await;

    let mut table = String::from("| Scenario | Direct (passed / failed) | Through the gateway |\n|---|---|---|\n");
    let mut lost = Vec::new();
    for (scenario, (ok, failed, _)) in &direct {
        let through = gateway.get(scenario);
        let shown = through.map_or("not run".to_owned(), |(o, f, _)| format!("{o} / {f}"));
        table.push_str(&format!("| `{scenario}` | {ok} / {failed} | {shown} |\n"));
        if *failed == 0 && through.is_none_or(|(_, f, _)| *f > 0) {
            lost.push(format!("{scenario}: {}", through.map_or("", |t| t.2.as_str())));
        }
    }
    eprintln!("{table}");
    assert!(lost.is_empty(), "pass directly but not through the gateway: {lost:?}\n{table}");
}

/// A session's `resources/read` goes straight to the server that listed
/// the URI: after one `resources/list`, reads reach the upstream as reads
/// only, not as a listing of every server's resources each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_reads_go_straight_to_the_server_that_listed_them() {
    use rmcp::ServiceExt;
    use rmcp::model::ReadResourceRequestParams;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("requests.log");
    let (_fixture, fixture_port) = fixture_server_logging(Some(&log)).await;
    let data = tempfile::tempdir().unwrap();
    let bob = common::team_with_member_token(data.path(), "team-a");
    let fixture_url = format!("http://127.0.0.1:{fixture_port}/mcp");
    common::orbit_ok(data.path(), &["tools", "add", "fixture", "--workspace", "team-a", "--url", &fixture_url]);
    let server = HttpServer::start(data.path()).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("http://127.0.0.1:{}/ws/team-a/mcp", server.port))
            .auth_header(bob.token.clone());
    let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.expect("initialize");
    let count =
        |method: &str| std::fs::read_to_string(&log).unwrap_or_default().lines().filter(|l| *l == method).count();

    let resources = client.list_all_resources().await.unwrap();
    assert!(resources.iter().any(|r| r.uri == "test://static-text"), "{resources:?}");
    let lists = count("resources/list");
    for _ in 0..3 {
        let read = client.read_resource(ReadResourceRequestParams::new("test://static-text")).await.unwrap();
        assert!(!read.contents.is_empty());
    }
    assert_eq!(count("resources/read"), 3);
    assert_eq!(count("resources/list"), lists, "a read listed the upstream's resources again");

    // A new session knows nothing yet: its first read looks the URI up once.
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("http://127.0.0.1:{}/ws/team-a/mcp", server.port))
            .auth_header(bob.token.clone());
    let other = ().serve(StreamableHttpClientTransport::from_config(config)).await.expect("initialize");
    for _ in 0..2 {
        other.read_resource(ReadResourceRequestParams::new("test://static-text")).await.unwrap();
    }
    assert_eq!(count("resources/list"), lists + 1);
    // An unknown URI is still not found.
    assert!(other.read_resource(ReadResourceRequestParams::new("test://nothing-here")).await.is_err());
}
