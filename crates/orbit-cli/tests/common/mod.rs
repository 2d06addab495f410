//! Set-up shared by the CLI tests: workspaces and tokens made through the
//! real `orbit` binary, as an operator would.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The test user who owns the workspaces made here.
pub const OWNER: &str = "tester";

fn orbit(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orbit"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("ORBIT_HOME")
        .env_remove("ORBIT_MASTER_KEY")
        .env_remove("ORBIT_TOKEN")
        .output()
        .expect("orbit runs")
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
