//! End-to-end tests of the `tools` primitive: a real guest calls the tools
//! of real MCP servers (`@modelcontextprotocol/server-everything` over stdio
//! and streamable HTTP, `mcp-server-time` over stdio), installed by
//! `scripts/install-test-deps.sh`.

use std::path::Path;
use std::time::Duration;

use orbit::orbit_tools::{Rule, ServerSpec, ServerTransport, ValueSource};
use orbit::{Invocation, Limits, Orbit, OrbitConfig, Outcome, ToolsLimits, WorkspaceId};
use orbit_test_guests::mcp_servers;
use serde_json::{Value, json};

fn ws(name: &str) -> WorkspaceId {
    WorkspaceId::new(name).unwrap()
}

fn open(dir: &Path, tools: ToolsLimits) -> Orbit {
    let mut config = OrbitConfig::default();
    config.tools = tools;
    Orbit::open_with(dir, config).unwrap()
}

fn stdio((command, args): (String, Vec<String>)) -> ServerSpec {
    ServerSpec::new(ServerTransport::Stdio { command, args })
}

fn sh(script: String) -> ServerSpec {
    ServerSpec::new(ServerTransport::Stdio { command: "sh".into(), args: vec!["-c".into(), script] })
}

async fn run(orbit: &Orbit, workspace: &str, ops: Value, limits: Limits) -> (Outcome, Vec<Value>) {
    let wasm = orbit_test_guests::bytes("tools-client");
    let inv = Invocation::new(ops.to_string()).workspace(ws(workspace)).limits(limits);
    let out = orbit.engine().invoke_wasm(&wasm, inv).await.unwrap();
    assert!(out.status().is_success(), "run failed: {:?}", out.record);
    let results: Vec<Value> = serde_json::from_slice(&out.output).unwrap();
    (out, results)
}

fn call(server: &str, tool: &str, args: Value) -> Value {
    json!({"op": "call", "server": server, "tool": tool, "args": args})
}

fn text(r: &Value) -> &str {
    r["ok"]["text"].as_str().unwrap_or_else(|| panic!("not a tool result: {r}"))
}

fn err_code(r: &Value) -> &str {
    r["err"]["code"].as_str().unwrap_or_else(|| panic!("not an error: {r}"))
}

/// A `tools` span as (operation, outcome, attrs).
type ToolSpan = (String, String, Vec<(String, String)>);

/// The `tools` spans of a run.
fn spans(out: &Outcome) -> Vec<ToolSpan> {
    out.record
        .spans
        .iter()
        .filter(|s| s.primitive == "tools")
        .map(|s| (s.operation.clone(), s.outcome.clone(), s.attrs.clone()))
        .collect()
}

fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn assert_call_span(span: &ToolSpan, server: &str, tool: &str, outcome: &str) {
    assert_eq!(span.0, "call");
    assert_eq!(span.1, outcome, "span {span:?}");
    assert_eq!(attr(&span.2, "server"), Some(server));
    assert_eq!(attr(&span.2, "tool"), Some(tool));
}

fn check_everything_and_time(results: &[Value]) {
    let list = results[0]["ok"].as_array().expect("list result");
    let has = |server: &str, name: &str| {
        list.iter().any(|t| t["server"] == server && t["name"] == name && t["schema_type"] == "object")
    };
    assert!(has("everything", "echo") && has("everything", "get-sum"), "{list:?}");
    assert!(has("time", "get_current_time"), "{list:?}");
    assert_eq!(text(&results[1]), "Echo: hello orbit");
    assert_eq!(results[1]["ok"]["is_error"], false);
    assert_eq!(results[1]["ok"]["content"][0]["type"], "text");
    assert!(text(&results[2]).contains("42"), "{}", results[2]);
    let time: Value = serde_json::from_str(text(&results[3])).unwrap();
    assert_eq!(time["timezone"], "UTC");
    assert!(time["datetime"].as_str().unwrap().starts_with("20"), "{time}");
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_lists_and_calls_tools_over_stdio_and_connections_are_reused() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), ToolsLimits::default());
    let reg = orbit.tools().registry();
    reg.add_server(&ws("team"), "everything", stdio(mcp_servers::everything_stdio())).unwrap();
    reg.add_server(&ws("team"), "time", stdio(mcp_servers::time_stdio())).unwrap();

    let ops = json!([
        {"op": "list"},
        call("everything", "echo", json!({"message": "hello orbit"})),
        call("everything", "get-sum", json!({"a": 19, "b": 23})),
        call("time", "get_current_time", json!({"timezone": "UTC"})),
    ]);
    let (out, results) = run(&orbit, "team", ops.clone(), Limits::default()).await;
    check_everything_and_time(&results);
    let s = spans(&out);
    assert_eq!(s.len(), 4, "{s:?}");
    assert_eq!((s[0].0.as_str(), s[0].1.as_str()), ("list", "ok"));
    assert_call_span(&s[1], "everything", "echo", "ok");
    assert_call_span(&s[2], "everything", "get-sum", "ok");
    assert_call_span(&s[3], "time", "get_current_time", "ok");
    assert_eq!(attr(&s[1].2, "is_error"), Some("false"));
    // Bytes are counted, payloads are not stored.
    let echo_span = out.record.spans.iter().find(|sp| attr(&sp.attrs, "tool") == Some("echo")).unwrap();
    assert!(echo_span.bytes_in > 0 && echo_span.bytes_out > 0);
    let stored = serde_json::to_string(&out.record.spans).unwrap();
    assert!(!stored.contains("hello orbit"), "span holds a payload: {stored}");

    // The registry kept both tool lists.
    let tools = reg.list_tools(&ws("team")).unwrap();
    assert!(tools.iter().any(|t| t.server == "time" && t.name == "get_current_time"));

    // Connections stay open and are reused by the next run.
    assert!(orbit.tools().is_connected(&ws("team"), "everything"));
    let (_, again) = run(&orbit, "team", ops, Limits::default()).await;
    check_everything_and_time(&again);

    // Another workspace sees none of these servers.
    let (_, other) =
        run(&orbit, "other", json!([{"op": "list"}, call("everything", "echo", json!({}))]), Limits::default()).await;
    assert_eq!(other[0]["ok"], json!([]));
    assert_eq!(err_code(&other[1]), "not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_calls_tools_over_streamable_http() {
    let server = mcp_servers::EverythingHttp::start();
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), ToolsLimits::default());
    let spec = ServerSpec::new(ServerTransport::Http { url: server.url.clone() });
    orbit.tools().registry().add_server(&ws("default"), "everything", spec).unwrap();
    let ops = json!([
        {"op": "list"},
        call("everything", "echo", json!({"message": "over http"})),
        call("everything", "get-sum", json!({"a": 2, "b": 3})),
    ]);
    let (out, results) = run(&orbit, "default", ops, Limits::default()).await;
    let list = results[0]["ok"].as_array().unwrap();
    assert!(list.iter().any(|t| t["name"] == "echo"), "{list:?}");
    assert_eq!(text(&results[1]), "Echo: over http");
    assert!(text(&results[2]).contains('5'), "{}", results[2]);
    let s = spans(&out);
    assert_call_span(&s[1], "everything", "echo", "ok");
    assert_call_span(&s[2], "everything", "get-sum", "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_secret_goes_only_to_the_server_it_is_bound_to() {
    let server = mcp_servers::EverythingHttp::start();
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), ToolsLimits::default());
    let w = ws("default");
    let placement = orbit::Placement::Header { name: "X-Api-Key".into(), template: "{}".into() };
    let elsewhere = orbit::HostBinding::parse("https://api.example.com").unwrap();
    let here = orbit::HostBinding::parse(&server.url).unwrap();
    let vault = orbit.vault();
    vault
        .set(
            &w,
            "OTHER",
            orbit::SecretValue::new("key-other-0001".into()),
            vec![elsewhere],
            placement.clone(),
            &orbit::UserId::new("t").unwrap(),
        )
        .unwrap();
    vault
        .set(
            &w,
            "MINE",
            orbit::SecretValue::new("key-mine-0002".into()),
            vec![here],
            placement,
            &orbit::UserId::new("t").unwrap(),
        )
        .unwrap();
    let http = |secret: &str| {
        ServerSpec::new(ServerTransport::Http { url: server.url.clone() })
            .header("X-Api-Key", ValueSource::parse(&format!("secret:{secret}")))
    };
    orbit.tools().registry().add_server(&w, "wrong", http("OTHER")).unwrap();
    orbit.tools().registry().add_server(&w, "right", http("MINE")).unwrap();
    let ops =
        json!([call("wrong", "echo", json!({"message": "x"})), call("right", "echo", json!({"message": "bound"})),]);
    let (_, r) = run(&orbit, "default", ops, Limits::default()).await;
    // Bound to another host: never sent, so the server is not even connected.
    assert_eq!(err_code(&r[0]), "unavailable", "{r:?}");
    assert_eq!(text(&r[1]), "Echo: bound");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tools_malformed_arguments_and_policy_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), ToolsLimits::default());
    let reg = orbit.tools().registry();
    let w = ws("default");
    reg.add_server(&w, "everything", stdio(mcp_servers::everything_stdio())).unwrap();
    reg.add_server(&w, "off", stdio(mcp_servers::time_stdio())).unwrap();
    reg.set_enabled(&w, "off", false).unwrap();
    reg.set_rule(&w, "everything/get-sum", Some(Rule::Deny)).unwrap();

    let big = "x".repeat(300 * 1024);
    let ops = json!([
        call("everything", "no-such-tool", json!({})),
        call("nowhere", "echo", json!({})),
        call("off", "get_current_time", json!({"timezone": "UTC"})),
        {"op": "raw", "server": "everything", "tool": "echo", "json": "{not json"},
        {"op": "raw", "server": "everything", "tool": "echo", "json": "[1, 2]"},
        call("everything", "get-sum", json!({"a": 1, "b": 2})),
        call("everything", "echo", json!({"message": big})),
        // A tool's own error is a result with is_error, not an error.
        call("everything", "echo", json!({"message": 5})),
        {"op": "list"},
        call("everything", "echo", json!({"message": "still fine"})),
    ]);
    let (out, r) = run(&orbit, "default", ops, Limits::default()).await;
    assert_eq!(err_code(&r[0]), "not-found");
    assert_eq!(err_code(&r[1]), "not-found");
    assert_eq!(err_code(&r[2]), "not-found");
    assert_eq!(err_code(&r[3]), "invalid-input");
    assert_eq!(err_code(&r[4]), "invalid-input");
    assert_eq!(err_code(&r[5]), "permission-denied");
    assert_eq!(err_code(&r[6]), "too-large");
    assert_eq!(r[7]["ok"]["is_error"], true, "{}", r[7]);
    let listed = r[8]["ok"].as_array().unwrap();
    assert!(listed.iter().all(|t| t["name"] != "get-sum" && t["server"] != "off"), "denied tools listed: {listed:?}");
    assert_eq!(text(&r[9]), "Echo: still fine");
    // The guest sees only the fixed message of each code.
    for e in r.iter().filter_map(|x| x.get("err")) {
        let code = e["code"].as_str().unwrap();
        let message = e["message"].as_str().unwrap();
        assert!(!message.contains("everything") && !message.contains("no-such-tool"), "{code}: {message}");
    }

    let s = spans(&out);
    assert_call_span(&s[0], "everything", "no-such-tool", "not-found");
    assert_call_span(&s[1], "nowhere", "echo", "not-found");
    assert_call_span(&s[2], "off", "get_current_time", "not-found");
    assert_call_span(&s[3], "everything", "echo", "invalid-input");
    assert_call_span(&s[4], "everything", "echo", "invalid-input");
    assert_call_span(&s[5], "everything", "get-sum", "permission-denied");
    assert_call_span(&s[6], "everything", "echo", "too-large");
    assert_call_span(&s[7], "everything", "echo", "ok");
    assert_eq!(attr(&s[7].2, "is_error"), Some("true"));
    // Operators get the detail on the run record.
    assert!(
        out.record.host_errors.iter().any(|e| e.contains("policy denies everything/get-sum")),
        "{:?}",
        out.record.host_errors
    );
    // The disabled server was never started.
    assert!(!orbit.tools().is_connected(&w, "off"));
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; its state is `Z`.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

async fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_killed_mid_run_gives_unavailable_and_is_restarted_on_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), ToolsLimits::default());
    let pidfile = dir.path().join("server.pid");
    let js = mcp_servers::everything_js();
    let script = format!("echo $$ > '{}'; exec node '{}' stdio", pidfile.display(), js.display());
    orbit.tools().registry().add_server(&ws("default"), "everything", sh(script)).unwrap();

    let ops = json!([
        call("everything", "echo", json!({"message": "before"})),
        call("everything", "trigger-long-running-operation", json!({"duration": 60, "steps": 60})),
        call("everything", "echo", json!({"message": "after"})),
    ]);
    let orbit2 = orbit.clone();
    let running = tokio::spawn(async move { run(&orbit2, "default", ops, Limits::default()).await });
    wait_for(|| read_pid(&pidfile).is_some(), "the server to start").await;
    let first = read_pid(&pidfile).unwrap();
    // Let the first echo finish and the long operation start, then kill it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::process::Command::new("kill").arg("-9").arg(first.to_string()).status().unwrap();

    let (out, r) = running.await.unwrap();
    assert_eq!(text(&r[0]), "Echo: before");
    assert_eq!(err_code(&r[1]), "unavailable");
    assert_eq!(text(&r[2]), "Echo: after", "not restarted: {}", r[2]);
    let second = read_pid(&pidfile).unwrap();
    assert_ne!(first, second, "the server was restarted as a new process");
    let s = spans(&out);
    assert_call_span(&s[0], "everything", "echo", "ok");
    assert_call_span(&s[1], "everything", "trigger-long-running-operation", "unavailable");
    assert_call_span(&s[2], "everything", "echo", "ok");

    // Killed between runs: the next run's call restarts it.
    std::process::Command::new("kill").arg("-9").arg(second.to_string()).status().unwrap();
    wait_for(|| !alive(second), "the server to die").await;
    // The pool notices the end of the server's stdout; a call racing the
    // crash itself would get `unavailable` (and the one after it a restart).
    wait_for(|| !orbit.tools().is_connected(&ws("default"), "everything"), "the pool to notice").await;
    let (out, r) =
        run(&orbit, "default", json!([call("everything", "echo", json!({"message": "next run"}))]), Limits::default())
            .await;
    assert!(r[0].get("ok").is_some(), "{r:?} {:?}", out.record.host_errors);
    assert_eq!(text(&r[0]), "Echo: next run");
    let third = read_pid(&pidfile).unwrap();
    assert_ne!(third, second);

    // Removing the server shuts its process down.
    orbit.tools().registry().remove_server(&ws("default"), "everything").unwrap();
    orbit.tools().disconnect(&ws("default"), "everything");
    wait_for(|| !alive(third), "the removed server to exit").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hanging_servers_give_unavailable_never_a_hung_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut limits = ToolsLimits::default();
    limits.call_timeout = Duration::from_secs(3);
    limits.connect_timeout = Duration::from_secs(2);
    let orbit = open(dir.path(), limits);
    let reg = orbit.tools().registry();
    let w = ws("default");
    let pidfile = dir.path().join("sleep.pid");
    // A stdio "server" that never answers `initialize`.
    reg.add_server(&w, "mute", sh(format!("echo $$ > '{}'; exec sleep 1000", pidfile.display()))).unwrap();
    reg.add_server(&w, "everything", stdio(mcp_servers::everything_stdio())).unwrap();

    let ops = json!([
        call("mute", "anything", json!({})),
        {"op": "list"},
        // A tool that takes longer than the call timeout.
        call("everything", "trigger-long-running-operation", json!({"duration": 60, "steps": 6})),
        call("everything", "echo", json!({"message": "after the timeout"})),
    ]);
    let (out, r) = run(&orbit, "default", ops, Limits::default()).await;
    assert_eq!(err_code(&r[0]), "unavailable");
    let listed = r[1]["ok"].as_array().unwrap();
    assert!(listed.iter().any(|t| t["name"] == "echo") && listed.iter().all(|t| t["server"] != "mute"));
    assert_eq!(err_code(&r[2]), "unavailable");
    assert_eq!(text(&r[3]), "Echo: after the timeout");
    let s = spans(&out);
    assert_call_span(&s[0], "mute", "anything", "unavailable");
    assert_eq!(s[1].0, "list");
    assert_eq!(attr(&s[1].2, "unavailable"), Some("mute"));
    assert_call_span(&s[2], "everything", "trigger-long-running-operation", "unavailable");
    assert_call_span(&s[3], "everything", "echo", "ok");
    let slow =
        out.record.spans.iter().find(|sp| attr(&sp.attrs, "tool") == Some("trigger-long-running-operation")).unwrap();
    assert!(slow.duration_us >= 2_000_000, "gave up before the call timeout: {slow:?}");
    // The hung child was killed, not leaked.
    let pid = read_pid(&pidfile).expect("the mute server was started");
    wait_for(|| !alive(pid), "the hung server to be killed").await;

    // A run deadline shorter than the call timeout: the guest still gets
    // `unavailable` before the deadline, and the run succeeds.
    let mut short = Limits::default();
    short.timeout = Duration::from_millis(1500);
    let ops = json!([call("everything", "trigger-long-running-operation", json!({"duration": 60, "steps": 6}))]);
    let (out, r) = run(&orbit, "default", ops, short).await;
    assert_eq!(err_code(&r[0]), "unavailable");
    assert_call_span(&spans(&out)[0], "everything", "trigger-long-running-operation", "unavailable");
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_reach_the_server_by_reference_and_never_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), ToolsLimits::default());
    let w = ws("default");
    let value = "mcp-secret-value-6b1f0c";
    let binding = orbit::HostBinding::parse("https://api.example.com").unwrap();
    let placement = orbit::Placement::Header { name: "Authorization".into(), template: "Bearer {}".into() };
    orbit
        .vault()
        .set(
            &w,
            "API_TOKEN",
            orbit::SecretValue::new(value.into()),
            vec![binding],
            placement,
            &orbit::UserId::new("test").unwrap(),
        )
        .unwrap();
    let spec = stdio(mcp_servers::everything_stdio()).env("API_TOKEN", ValueSource::parse("secret:API_TOKEN"));
    orbit.tools().registry().add_server(&w, "everything", spec).unwrap();

    // server-everything's get-env returns its whole environment.
    let (out, r) = run(&orbit, "default", json!([call("everything", "get-env", json!({}))]), Limits::default()).await;
    let env = text(&r[0]);
    assert!(env.contains("API_TOKEN"), "the server did not get the variable: {env}");
    assert!(env.contains(orbit::orbit_tools::REDACTED), "{env}");
    assert!(!env.contains(value), "the secret reached the guest");
    assert!(!String::from_utf8_lossy(&out.output).contains(value));
    // Orbit's own environment is not passed on.
    assert!(!env.contains("ORBIT_") && !env.contains("CARGO_"), "{env}");
    // The registry keeps the reference only.
    let registry_file = std::fs::read_to_string(dir.path().join("tools/default.json")).unwrap();
    assert!(registry_file.contains("API_TOKEN") && !registry_file.contains(value));

    // A missing secret: the server cannot start, the guest gets `unavailable`.
    let spec = stdio(mcp_servers::everything_stdio()).env("X", ValueSource::parse("secret:MISSING"));
    orbit.tools().registry().add_server(&w, "broken", spec).unwrap();
    let (_, r) =
        run(&orbit, "default", json!([call("broken", "echo", json!({"message": "x"}))]), Limits::default()).await;
    assert_eq!(err_code(&r[0]), "unavailable");
}

/// A server that gives its secret back in every form a careless one might
/// (tests/fixtures/leaky-mcp-server.mjs): raw, base64 in both alphabets,
/// percent-encoded, inside a base64 debug dump, in a Basic credential in its
/// tool descriptions, as a JSON key, and in its JSON-RPC error texts. None
/// of it reaches the guest, the run record or a gateway caller.
#[tokio::test(flavor = "multi_thread")]
async fn every_form_of_a_secret_a_server_gives_back_is_scrubbed() {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), ToolsLimits::default());
    let w = ws("default");
    let value = "leaky/t0ken+value=0a7c";
    let binding = orbit::HostBinding::parse("https://api.example.com").unwrap();
    let placement = orbit::Placement::Header { name: "Authorization".into(), template: "Bearer {}".into() };
    let user = orbit::UserId::new("test").unwrap();
    orbit.vault().set(&w, "LEAKY", orbit::SecretValue::new(value.into()), vec![binding], placement, &user).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/leaky-mcp-server.mjs");
    let spec = stdio(("node".into(), vec![script.display().to_string()]))
        .env("LEAKY_TOKEN", ValueSource::parse("secret:LEAKY"))
        .env("ORBIT_TEST_DEPS", ValueSource::parse(&mcp_servers::deps_dir().display().to_string()));
    orbit.tools().registry().add_server(&w, "leaky", spec).unwrap();

    let ops = json!([
        call("leaky", "leak-result", json!({})),
        call("leaky", "leak-error", json!({})),
        {"op": "list"},
    ]);
    let (out, r) = run(&orbit, "default", ops, Limits::default()).await;
    // The server did leak: what it said arrives, with the secret replaced.
    let leaked: Value = serde_json::from_str(text(&r[0])).unwrap();
    for key in ["raw", "b64", "pct", "debug"] {
        assert!(leaked[key].as_str().unwrap().contains(orbit::orbit_tools::REDACTED), "{key}: {leaked}");
    }
    assert_eq!(err_code(&r[1]), "invalid-input", "{}", r[1]);
    let descriptions: Vec<&str> =
        r[2]["ok"].as_array().unwrap().iter().filter_map(|t| t["description"].as_str()).collect();
    assert_eq!(descriptions.len(), 2, "{}", r[2]);
    assert!(descriptions.iter().all(|d| d.starts_with("Calls the API with Basic ")), "{descriptions:?}");

    // The gateway's view of the tools, refreshed from the server.
    let refreshed = orbit.tools().refresh(&w, "leaky").await.unwrap();
    let refreshed = serde_json::to_string(&refreshed).unwrap();
    // The record keeps the server's error text (for the operator), scrubbed.
    let record = serde_json::to_string(&out.record).unwrap();
    assert!(record.contains(orbit::orbit_tools::REDACTED), "{record}");

    // The characters of base64(prefix + value + ...) that encode the value.
    let core = |prefix: &str| {
        let enc = STANDARD_NO_PAD.encode(format!("{prefix}{value}"));
        enc[(8 * prefix.len()).div_ceil(6)..8 * (prefix.len() + value.len()) / 6].to_owned()
    };
    let forms = [
        value.to_owned(),
        STANDARD.encode(value),
        URL_SAFE_NO_PAD.encode(value),
        percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string(),
        core("user:"),
        core(r#"{"headers":{"authorization":"Bearer "#),
    ];
    let output = String::from_utf8_lossy(&out.output);
    for form in &forms {
        for (what, text) in [("output", &*output), ("record", &record), ("gateway tools", &refreshed)] {
            assert!(!text.contains(form.as_str()), "{form} reached the {what}: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut limits = ToolsLimits::default();
    limits.idle_timeout = Duration::from_millis(300);
    let orbit = open(dir.path(), limits);
    let w = ws("default");
    let pidfile = dir.path().join("server.pid");
    let js = mcp_servers::everything_js();
    let script = format!("echo $$ > '{}'; exec node '{}' stdio", pidfile.display(), js.display());
    orbit.tools().registry().add_server(&w, "everything", sh(script)).unwrap();
    let (_, r) =
        run(&orbit, "default", json!([call("everything", "echo", json!({"message": "x"}))]), Limits::default()).await;
    assert_eq!(text(&r[0]), "Echo: x");
    let pid = read_pid(&pidfile).unwrap();
    wait_for(|| !orbit.tools().is_connected(&w, "everything"), "the idle connection to close").await;
    wait_for(|| !alive(pid), "the idle server to exit").await;
    // The next call starts it again.
    let (_, r) =
        run(&orbit, "default", json!([call("everything", "echo", json!({"message": "y"}))]), Limits::default()).await;
    assert_eq!(text(&r[0]), "Echo: y");
}

#[tokio::test(flavor = "multi_thread")]
async fn example_guest_calls_server_everything_and_mcp_server_time() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), ToolsLimits::default());
    let w = ws("default");
    orbit.tools().registry().add_server(&w, "everything", stdio(mcp_servers::everything_stdio())).unwrap();
    orbit.tools().registry().add_server(&w, "time", stdio(mcp_servers::time_stdio())).unwrap();
    let wasm = orbit_test_guests::bytes("mcp-tools");
    let out = orbit.engine().invoke_wasm(&wasm, Invocation::new("ping").workspace(w)).await.unwrap();
    assert!(out.status().is_success(), "{:?}", out.record);
    let v: Value = serde_json::from_slice(&out.output).unwrap();
    assert_eq!(v["echo"], "Echo: ping");
    assert!(v["sum"].as_str().unwrap().contains("42"), "{v}");
    assert_eq!(v["time"]["timezone"], "UTC");
    assert!(v["tools"].as_array().unwrap().iter().any(|t| t == "time/get_current_time"));
}
