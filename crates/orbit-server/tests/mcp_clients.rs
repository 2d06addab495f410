//! Real MCP clients we did not write: the official MCP Inspector CLI against
//! `orbit mcp` (stdio), and the official conformance suite against
//! `orbit serve --mcp` (streamable HTTP). Both are pinned npm packages
//! installed by scripts/install-mcp-client-deps.sh.

mod common;

use std::process::Output;

use base64::Engine as _;
use common::{HttpServer, node22, npm_client_dir, orbit_bin};

/// Runs the inspector CLI against `orbit --data-dir DIR mcp` with `args`,
/// asserting it succeeded.
fn inspector(data_dir: &std::path::Path, args: &[&str]) -> Output {
    let out = inspector_output(data_dir, args);
    assert!(
        out.status.success(),
        "inspector {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn inspector_output(data_dir: &std::path::Path, args: &[&str]) -> Output {
    let dir = npm_client_dir();
    let launcher = dir.join("node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js");
    std::process::Command::new(node22())
        .arg(launcher)
        .arg("--cli")
        .arg(orbit_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("mcp")
        .args(args)
        // The inspector keeps a server catalog; keep it out of $HOME.
        .env("MCP_CATALOG_PATH", data_dir.join("inspector-catalog.json"))
        .env("ORBIT_MASTER_KEY", "00".repeat(32))
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
    let tools = json_of(&inspector(data.path(), &["--method", "tools/list"]));
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
        &["--method", "tools/call", "--tool-name", "run_component", "--tool-arg", &component_arg, &input_arg],
    ));
    assert_ne!(run["isError"], true, "{run}");
    assert_eq!(run["structuredContent"]["status"], "succeeded", "{run}");
    assert_eq!(run["structuredContent"]["output"], "docked through the inspector");
    let run_id = run["structuredContent"]["run_id"].as_str().unwrap().to_owned();

    let listed = json_of(&inspector(data.path(), &["--method", "tools/call", "--tool-name", "list_runs"]));
    assert_eq!(listed["structuredContent"]["runs"][0]["run_id"], run_id.as_str(), "{listed}");

    let run_id_arg = format!("run_id={run_id}");
    let got = json_of(&inspector(
        data.path(),
        &["--method", "tools/call", "--tool-name", "get_run", "--tool-arg", &run_id_arg],
    ));
    assert_eq!(got["structuredContent"]["output"], "docked through the inspector", "{got}");

    // A tool error: the CLI prints the result and exits non-zero.
    let bad = inspector_output(
        data.path(),
        &["--method", "tools/call", "--tool-name", "run_component", "--tool-arg", "digest=ffff"],
    );
    assert!(!bad.status.success());
    let bad = json_of(&bad);
    assert_eq!(bad["isError"], true, "{bad}");
    assert_eq!(bad["content"][0]["text"], "a digest is the sha256 of the component: 64 lowercase hex digits");

    inspector(data.path(), &["--method", "logging/setLevel", "--log-level", "debug"]);
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
    let server = HttpServer::start(data.path()).await;
    // The suite's dns-rebinding scenario needs a localhost URL.
    let url = server.url.clone();
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
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains(" 0 failed") {
            failures.push(format!("{scenario}:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    assert!(failures.is_empty(), "conformance scenarios failed:\n{}", failures.join("\n"));
}
