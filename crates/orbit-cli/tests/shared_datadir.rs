//! One data directory, many processes: two agents docked through
//! `orbit mcp` at once, CLI commands while `orbit serve` owns the
//! directory, parallel `orbit run`s, and a command that waits its turn.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

mod common;

use base64::Engine as _;
use serde_json::{Value, json};

use common::{orbit, orbit_cmd, orbit_stdin, text};

fn guest(name: &str) -> String {
    orbit_test_guests::path(name).to_string_lossy().into_owned()
}

fn runs(data: &Path) -> Vec<Value> {
    let out = orbit(data, &["runs", "list", "--json"]);
    assert!(out.status.success(), "runs list: {}", text(&out.stderr));
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    page["runs"].as_array().unwrap().clone()
}

/// An agent speaking MCP (newline-delimited JSON-RPC) to `orbit mcp`.
struct Agent {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Agent {
    /// Starts `orbit mcp` with a token of its own for `user` in `default`.
    fn start(data: &Path, user: &str) -> Self {
        let (_, token) = common::token(data, "default", user, &[]);
        let mut child = orbit_cmd(data, &["mcp"])
            .env("ORBIT_TOKEN", token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self { child, stdin, stdout, next_id: 1 }
    }

    fn send(&mut self, msg: &Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "orbit mcp closed stdout during {method}");
            let msg: Value = serde_json::from_str(&line).unwrap();
            if msg["id"] == id {
                assert!(msg.get("error").is_none(), "{method}: {msg}");
                return msg["result"].clone();
            }
        }
    }

    fn initialize(&mut self, name: &str) {
        let init = self.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": name, "version": "1"}}),
        );
        assert!(init["serverInfo"]["name"].is_string(), "{init}");
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }

    fn tool_names(&mut self) -> Vec<String> {
        let list = self.request("tools/list", json!({}));
        list["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
    }

    fn run_echo(&mut self, input: &str) -> Value {
        let wasm = base64::engine::general_purpose::STANDARD.encode(orbit_test_guests::bytes("echo"));
        let result = self.request(
            "tools/call",
            json!({"name": "run_component", "arguments": {"component_base64": wasm, "input": input}}),
        );
        assert_ne!(result["isError"], true, "{result}");
        result["structuredContent"].clone()
    }

    /// Closes stdin: the agent leaves.
    fn leave(&mut self) {
        drop(self.stdin.take());
    }

    /// Leaves and waits for the process to end.
    fn finish(mut self) -> std::process::ExitStatus {
        self.leave();
        self.child.wait().unwrap()
    }
}

#[test]
fn two_agents_dock_through_orbit_mcp_at_once() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default"]);
    let mut a = Agent::start(dir.path(), common::OWNER);
    a.initialize("agent-a");
    // A owns the directory now; B docks through A's socket.
    let mut b = Agent::start(dir.path(), common::OWNER);
    b.initialize("agent-b");

    for agent in [&mut a, &mut b] {
        let names = agent.tool_names();
        assert!(names.iter().any(|n| n == "run_component"), "{names:?}");
    }
    let ra = a.run_echo("from agent a");
    let rb = b.run_echo("from agent b");
    assert_eq!((ra["status"].as_str(), ra["output"].as_str()), (Some("succeeded"), Some("from agent a")), "{ra}");
    assert_eq!((rb["status"].as_str(), rb["output"].as_str()), (Some("succeeded"), Some("from agent b")), "{rb}");

    // The operator's CLI works meanwhile, and sees both runs.
    let ids: Vec<Value> = runs(dir.path()).iter().map(|r| r["id"].clone()).collect();
    assert!(ids.contains(&ra["run_id"]) && ids.contains(&rb["run_id"]), "{ids:?} {ra} {rb}");

    // A leaves first; B's session goes on (A's process serves it until
    // B leaves too).
    a.leave();
    assert!(b.tool_names().iter().any(|n| n == "list_runs"));
    let rb2 = b.run_echo("after a left");
    assert_eq!(rb2["output"], "after a left", "{rb2}");
    let b_status = b.finish();
    assert!(b_status.success(), "{b_status}");
    let a_status = a.finish();
    assert!(a_status.success(), "{a_status}");

    // Everyone is gone: a plain command opens the directory itself.
    assert_eq!(runs(dir.path()).len(), 3);
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cli_commands_go_through_a_running_orbit_serve() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default"]);
    let mut child = orbit_cmd(dir.path(), &["serve", "--mcp", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let server = Server(child);
    let mut line = String::new();
    while !line.contains("listening on http://") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "orbit serve ended before listening");
    }
    // Keep draining the server's stderr.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));

    let list = orbit(dir.path(), &["runs", "list"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert!(text(&list.stdout).starts_with("RUN "), "{}", text(&list.stdout));

    let value = "sk-shared-5d1e0c";
    let set = orbit_stdin(
        dir.path(),
        &[
            "secret",
            "set",
            "API_TOKEN",
            "--host",
            "https://api.example.com",
            "--header",
            "Authorization",
            "--template",
            "Bearer {}",
        ],
        &format!("{value}\n"),
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    assert!(text(&set.stderr).contains("stored secret API_TOKEN"), "{}", text(&set.stderr));
    let listed = orbit(dir.path(), &["secret", "list", "--json"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let secrets: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(secrets[0]["name"], "API_TOKEN");
    assert!(!text(&listed.stdout).contains(value) && !text(&set.stderr).contains(value));

    // A relative component path is the client's, not the server's.
    let echo = std::path::PathBuf::from(guest("echo"));
    let run = orbit_cmd(dir.path(), &["run", echo.file_name().unwrap().to_str().unwrap(), "--input", "via the owner"])
        .current_dir(echo.parent().unwrap())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(text(&run.stdout), "via the owner\n");
    let summary = text(&run.stderr);
    let run_id = summary.lines().last().unwrap().split_whitespace().nth(1).unwrap().to_owned();
    // A failing command keeps its exit code and error through the owner.
    let missing = orbit(dir.path(), &["runs", "show", "not-a-run-id"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).starts_with("error: "), "{}", text(&missing.stderr));

    // The owner has the run.
    assert!(runs(dir.path()).iter().any(|r| r["id"] == run_id.as_str()));
    // A second server refuses, naming the owner.
    let second = orbit(dir.path(), &["serve", "--mcp", "--listen", "127.0.0.1:0"]);
    assert_eq!(second.status.code(), Some(2));
    let pid = server.0.id().to_string();
    assert!(text(&second.stderr).contains(&pid), "{}", text(&second.stderr));

    // Once the server is killed (its socket left behind), commands open
    // the directory themselves and find the same run.
    drop(server);
    assert!(runs(dir.path()).iter().any(|r| r["id"] == run_id.as_str()));
}

#[test]
fn parallel_runs_without_an_owner_all_succeed_and_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default"]);
    let echo = guest("echo");
    let children: Vec<Child> = (0..4)
        .map(|i| {
            orbit_cmd(dir.path(), &["run", &echo, "--input", &format!("run {i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "run {i}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("run {i}\n"));
    }
    let recorded = runs(dir.path());
    assert_eq!(recorded.len(), 4);
    assert!(recorded.iter().all(|r| r["status"] == "succeeded"));
}

#[test]
fn a_command_waits_for_the_lock_and_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default"]);
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.path().join("orbit.lock"))
        .unwrap();
    lock.lock().unwrap();
    let child = orbit_cmd(dir.path(), &["runs", "list", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("waiting for another orbit process to release"), "{}", text(&out.stderr));
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["runs"], json!([]));
}

#[test]
fn an_owner_speaking_another_protocol_version_is_a_clear_error() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    // A stand-in owner: holds the lock, serves the socket, speaks version 99.
    let lock = std::fs::File::create(dir.path().join("orbit.lock")).unwrap();
    lock.lock().unwrap();
    let listener = std::os::unix::net::UnixListener::bind(dir.path().join("orbit.sock")).unwrap();
    let owner = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(b"orbit\0\x00\x63").unwrap();
        let mut preamble = [0u8; 8];
        conn.read_exact(&mut preamble).unwrap();
        preamble
    });
    let out = orbit(dir.path(), &["runs", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("speaks socket protocol 99") && stderr.contains("this orbit speaks 1"), "{stderr}");
    assert_eq!(&owner.join().unwrap()[..6], b"orbit\0");
}

/// `orbit runs prune` keeps the newest runs (through a running server as
/// without one); `orbit runs compact` needs the directory to itself and
/// says so while `orbit serve` holds it.
#[test]
fn runs_are_pruned_and_the_store_compacted() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default", "w2"]);
    let echo = orbit_test_guests::path("echo").to_str().unwrap().to_owned();
    for i in 0..5 {
        let out = orbit(dir.path(), &["run", &echo, "--input", &format!("run {i}")]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = orbit(dir.path(), &["run", &echo, "--input", "other", "--workspace", "w2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ids = |ws: &str| -> Vec<String> {
        let list = orbit(dir.path(), &["runs", "list", "--workspace", ws, "--json"]);
        let page: Value = serde_json::from_slice(&list.stdout).unwrap();
        page["runs"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
    };
    let before = ids("default");
    assert_eq!(before.len(), 5);

    let pruned = orbit(dir.path(), &["runs", "prune", "--workspace", "default", "--keep", "2", "--json"]);
    assert!(pruned.status.success(), "{}", text(&pruned.stderr));
    let report: Value = serde_json::from_slice(&pruned.stdout).unwrap();
    assert_eq!((report["removed"].as_u64(), report["kept"].as_u64()), (Some(3), Some(2)), "{report}");
    assert_eq!(ids("default"), before[..2].to_vec(), "the newest two stay");
    assert_eq!(ids("w2").len(), 1, "another workspace is untouched");
    let unknown = orbit(dir.path(), &["runs", "prune", "--workspace", "nope", "--keep", "0"]);
    assert!(!unknown.status.success());
    let bad = orbit(dir.path(), &["runs", "prune", "--older-than", "soon"]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("--older-than"), "{}", text(&bad.stderr));

    // While `orbit serve` owns the directory: prune goes through it, compact refuses.
    let mut child = orbit_cmd(dir.path(), &["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let server = Server(child);
    let mut line = String::new();
    while !line.contains("listening on http://") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "orbit serve ended before listening");
    }
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let pruned = orbit(dir.path(), &["runs", "prune", "--keep", "1"]);
    assert!(pruned.status.success(), "{}", text(&pruned.stderr));
    assert!(text(&pruned.stdout).contains("removed 1 runs, kept 2 in 2 workspace(s)"), "{}", text(&pruned.stdout));
    let refused = orbit(dir.path(), &["runs", "compact"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("stop `orbit serve`"), "{}", text(&refused.stderr));
    drop(server);

    let compacted = orbit(dir.path(), &["runs", "compact"]);
    assert!(compacted.status.success(), "{}", text(&compacted.stderr));
    assert!(text(&compacted.stderr).contains("compacted"), "{}", text(&compacted.stderr));
    assert_eq!(ids("default"), before[..1].to_vec());
    assert_eq!(ids("w2").len(), 1);
}
