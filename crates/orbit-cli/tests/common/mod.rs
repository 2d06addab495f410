//! Set-up shared by the CLI tests: workspaces and tokens made through the
//! real `orbit` binary, as an operator would.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The test user who owns the workspaces made here.
pub const OWNER: &str = "tester";

/// `orbit --data-dir DATA ARGS`, with none of the caller's `ORBIT_*`.
pub fn orbit_cmd(data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orbit"));
    cmd.arg("--data-dir").arg(data).args(args);
    cmd.env_remove("ORBIT_HOME").env_remove("ORBIT_MASTER_KEY").env_remove("ORBIT_TOKEN");
    cmd
}

/// Runs `orbit` to completion.
pub fn orbit(data: &Path, args: &[&str]) -> Output {
    orbit_cmd(data, args).output().expect("orbit runs")
}

/// Runs `orbit` with `stdin` as its standard input.
pub fn orbit_stdin(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child =
        orbit_cmd(data, args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Lossy UTF-8 of a process's output.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Creates each workspace, owned by [`OWNER`] (nothing creates one
/// implicitly any more).
pub fn workspaces(data: &Path, names: &[&str]) {
    for name in names {
        let out = orbit(data, &["workspace", "create", name, "--owner", OWNER]);
        assert!(out.status.success(), "workspace create {name}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Issues a token for `user` in `workspace` (extra flags such as
/// `--role read-only`) and returns `(id, token)`.
pub fn token(data: &Path, workspace: &str, user: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["token", "issue", "--workspace", workspace, "--user", user, "--json"];
    args.extend_from_slice(extra);
    let out = orbit(data, &args);
    assert!(out.status.success(), "token issue: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["id"].as_str().unwrap().to_owned(), v["token"].as_str().unwrap().to_owned())
}
