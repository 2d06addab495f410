//! The team commands as an operator types them: workspaces, members,
//! tokens, audit and notifications, the bad input each refuses, and that
//! no token or credential value lands in any file under the data dir.
//! Also: a token revoked through the CLI while `orbit mcp` owns the data
//! directory stops that agent's next message and cancels its running run.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Output, Stdio};

use serde_json::{Value, json};

use common::{orbit, orbit_cmd, orbit_stdin, text};

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    out
}

fn fails(out: Output, needle: &str) {
    assert!(!out.status.success(), "should fail; stdout: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
}

fn json_of(out: Output) -> Value {
    serde_json::from_slice(&ok(out).stdout).unwrap()
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else if std::fs::read(&p).map(|b| b.windows(needle.len()).any(|w| w == needle)).unwrap_or(false) {
            hits.push(p);
        }
    }
    hits
}

#[test]
fn the_team_commands_as_the_issue_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let created = json_of(orbit(d, &["workspace", "create", "acme", "--owner", "ada", "--name", "Acme", "--json"]));
    assert_eq!(created["id"], "acme");
    assert_eq!(json_of(orbit(d, &["workspace", "list", "--json"]))[0]["id"], "acme");

    // The second member makes it a team workspace: a warning, and the
    // JSON result says so.
    let out = ok(orbit(d, &["member", "add", "bob", "--role", "member", "--workspace", "acme"]));
    assert!(text(&out.stderr).contains("team workspace"), "{}", text(&out.stderr));
    let added = json_of(orbit(d, &["member", "add", "eve", "--role", "read-only", "--workspace", "acme", "--json"]));
    assert_eq!(added["became_team"], false);
    assert_eq!(added["member"]["role"], "read-only");
    ok(orbit(d, &["member", "role", "eve", "member", "--workspace", "acme"]));
    let members = json_of(orbit(d, &["member", "list", "--workspace", "acme", "--json"]));
    let roles: Vec<(String, String)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user"].as_str().unwrap().to_owned(), m["role"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(roles, [("ada", "owner"), ("bob", "member"), ("eve", "member")].map(|(u, r)| (u.into(), r.into())));
    let shown = json_of(orbit(d, &["workspace", "show", "acme", "--json"]));
    assert_eq!(shown["team"], true);

    // A token is printed once on stdout (plain), or in `--json` with its id.
    let plain = ok(orbit(d, &["token", "issue", "--workspace", "acme", "--user", "bob", "--expires-in", "14d"]));
    let token_text = text(&plain.stdout).trim().to_owned();
    assert!(token_text.starts_with("orb_") && token_text.len() == 47, "{token_text}");
    let issued = json_of(orbit(
        d,
        &[
            "token",
            "issue",
            "--workspace",
            "acme",
            "--user",
            "bob",
            "--role",
            "read-only",
            "--agent",
            "claude",
            "--name",
            "ci",
            "--json",
        ],
    ));
    let (id, token2) = (issued["id"].as_str().unwrap().to_owned(), issued["token"].as_str().unwrap().to_owned());
    assert_eq!((issued["role"].as_str(), issued["agent"].as_str()), (Some("read-only"), Some("claude")));
    let list = json_of(orbit(d, &["token", "list", "--workspace", "acme", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(list.as_array().unwrap().iter().all(|t| t.get("token").is_none() && t.get("hash").is_none()));
    ok(orbit(d, &["token", "revoke", &id, "--workspace", "acme"]));
    let list = json_of(orbit(d, &["token", "list", "--workspace", "acme", "--json"]));
    let revoked = list.as_array().unwrap().iter().find(|t| t["id"] == id.as_str()).unwrap();
    assert!(revoked["revoked_at_ms"].is_u64());

    // A credential owned by bob; bob leaves: his tokens go, the credential
    // is orphaned and named in a notification with its host.
    let value = "cred-value-5a1f9e3c";
    ok(orbit_stdin(
        d,
        &[
            "secret",
            "set",
            "GH",
            "--workspace",
            "acme",
            "--host",
            "https://api.github.com",
            "--header",
            "Authorization",
            "--template",
            "Bearer {}",
            "--owner",
            "bob",
        ],
        value,
    ));
    let out = ok(orbit(d, &["member", "rm", "bob", "--workspace", "acme"]));
    assert!(text(&out.stderr).contains("orphaned"), "{}", text(&out.stderr));
    let secrets = json_of(orbit(d, &["secret", "list", "--workspace", "acme", "--json"]));
    assert_eq!((secrets[0]["name"].as_str(), secrets[0]["orphaned"].as_bool()), (Some("GH"), Some(true)));
    let notes = json_of(orbit(d, &["notifications", "--workspace", "acme", "--json"]));
    assert_eq!(notes[0]["items"][0]["name"], "GH");
    assert_eq!(notes[0]["items"][0]["hosts"][0], "https://api.github.com:443");
    ok(orbit(d, &["secret", "reassign", "GH", "--to", "eve", "--workspace", "acme"]));
    let secrets = json_of(orbit(d, &["secret", "list", "--workspace", "acme", "--json"]));
    assert_eq!((secrets[0]["owner"].as_str(), secrets[0]["orphaned"].as_bool()), (Some("eve"), Some(false)));

    // The audit holds every administrative action, as JSON lines too.
    let audit = ok(orbit(d, &["audit", "--workspace", "acme", "--json"]));
    let events: Vec<Value> = text(&audit.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
    for want in [
        "workspace.create",
        "member.add",
        "member.role",
        "token.issue",
        "token.revoke",
        "member.remove",
        "credential.create",
        "credential.orphaned",
        "credential.reassigned",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    assert!(events.iter().all(|e| e["actor"]["label"].as_str().unwrap().starts_with("local:")));
    let since = ok(orbit(d, &["audit", "--workspace", "acme", "--since", "1h", "--user", "bob"]));
    assert!(!text(&since.stdout).contains("token.issue"), "local actions are not bob's");

    // Neither token nor the credential's value is in any file.
    for needle in [&token_text, &token2, value] {
        assert_eq!(files_containing(d, needle.as_bytes()), Vec::<std::path::PathBuf>::new(), "found {needle:.8}…");
    }

    ok(orbit(d, &["workspace", "rm", "acme"]));
    fails(orbit(d, &["member", "list", "--workspace", "acme"]), "workspace acme not found");
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(orbit(d, &["workspace", "create", "acme", "--owner", "ada"]));
    fails(orbit(d, &["workspace", "create", "acme", "--owner", "ada"]), "already exists");
    fails(orbit(d, &["workspace", "create", "Bad Name", "--owner", "ada"]), "workspace");
    fails(orbit(d, &["member", "add", "bob", "--role", "root", "--workspace", "acme"]), "unknown role");
    fails(orbit(d, &["member", "add", "bob", "--role", "member", "--workspace", "nope"]), "workspace nope not found");
    fails(orbit(d, &["member", "role", "ghost", "admin", "--workspace", "acme"]), "ghost is not a member");
    fails(orbit(d, &["member", "rm", "ada", "--workspace", "acme"]), "last owner");
    fails(orbit(d, &["member", "role", "ada", "admin", "--workspace", "acme"]), "last owner");
    fails(orbit(d, &["token", "issue", "--workspace", "acme", "--user", "ghost"]), "not a member");
    fails(
        orbit(d, &["token", "issue", "--workspace", "acme", "--user", "ada", "--expires-in", "14"]),
        "invalid duration",
    );
    fails(
        orbit(d, &["token", "issue", "--workspace", "acme", "--user", "ada", "--expires-in=-1d"]),
        "invalid duration",
    );
    fails(orbit(d, &["token", "revoke", "not-an-id", "--workspace", "acme"]), "invalid token id");
    fails(orbit(d, &["token", "revoke", "01a22cfe-2e76-7604-a3bc-1fff0b3e8473", "--workspace", "acme"]), "not found");
    ok(orbit(d, &["member", "add", "bob", "--role", "read-only", "--workspace", "acme"]));
    fails(orbit(d, &["token", "issue", "--workspace", "acme", "--user", "bob", "--role", "admin"]), "cannot be above");
    fails(
        orbit(d, &["run", &orbit_test_guests::path("echo").to_string_lossy(), "--workspace", "nope"]),
        "workspace nope not found",
    );
    // Nothing changed: ada is the only owner, bob is read-only with no token.
    let members = json_of(orbit(d, &["member", "list", "--workspace", "acme", "--json"]));
    assert_eq!(members.as_array().unwrap().len(), 2);
    assert!(json_of(orbit(d, &["token", "list", "--workspace", "acme", "--json"])).as_array().unwrap().is_empty());
    // The refusals with a known actor are audited.
    let refused = ok(orbit(d, &["audit", "--workspace", "acme", "--outcome", "permission-denied", "--json"]));
    assert!(text(&refused.stdout).lines().count() >= 3, "{}", text(&refused.stdout));
}

/// An agent on `orbit mcp` (the data directory's owner) with its own token.
struct Agent {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
    next: u64,
}

impl Agent {
    fn start(d: &Path, token: &str) -> Self {
        let mut child = orbit_cmd(d, &["mcp"])
            .env("ORBIT_TOKEN", token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut agent = Self { child, stdin, stdout, next: 1 };
        let init = agent.send(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        );
        let id = init;
        assert!(agent.wait(id)["result"]["serverInfo"].is_object());
        let stdin = agent.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).unwrap();
        agent
    }

    fn send(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next;
        self.next += 1;
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).unwrap();
        stdin.flush().unwrap();
        id
    }

    fn wait_for_progress(&mut self) {
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "orbit mcp closed stdout");
            let msg: Value = serde_json::from_str(&line).unwrap();
            assert!(msg.get("id").is_none(), "a reply came before any progress: {msg}");
            if msg["method"] == "notifications/progress" {
                return;
            }
        }
    }

    fn wait(&mut self, id: u64) -> Value {
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "orbit mcp closed stdout");
            let msg: Value = serde_json::from_str(&line).unwrap();
            if msg["id"] == id {
                return msg;
            }
        }
    }
}

#[test]
fn a_token_revoked_through_the_cli_stops_its_agent_and_cancels_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(orbit(d, &["workspace", "create", "acme", "--owner", "ada"]));
    ok(orbit(d, &["member", "add", "bob", "--role", "member", "--workspace", "acme"]));
    let (id, token) = common::token(d, "acme", "bob", &["--agent", "claude"]);
    let mut agent = Agent::start(d, &token);

    // A run that spins until something stops it (a long deadline).
    let spin = orbit_test_guests::path("spin").to_string_lossy().into_owned();
    use base64::Engine as _;
    let wasm = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&spin).unwrap());
    let call = agent.send(
        "tools/call",
        json!({"name": "run_component", "_meta": {"progressToken": "p1"},
               "arguments": {"component_base64": wasm, "input": "x", "timeout_ms": 600000, "fuel": 10000000000000u64}}),
    );
    // The first progress notification says the run is executing.
    agent.wait_for_progress();
    // The CLI goes through the owner (`orbit mcp`), whose engine runs it.
    ok(orbit(d, &["token", "revoke", &id, "--workspace", "acme"]));

    let result = agent.wait(call);
    assert_eq!(result["result"]["structuredContent"]["status"], "cancelled", "{result}");
    // The next message with the revoked token fails, and nothing runs.
    let list = agent.send("tools/list", json!({}));
    let refused = agent.wait(list);
    assert!(refused["error"]["message"].as_str().unwrap_or("").starts_with("unauthorized"), "{refused}");
    let runs = json_of(orbit(d, &["runs", "list", "--workspace", "acme", "--json"]));
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "cancelled");
    assert_eq!(runs[0]["principal"]["token"], id.as_str());
    drop(agent.stdin.take());
    let _ = agent.child.wait();
}
