//! `orbit tools`, end to end: install real MCP servers in a workspace, list
//! their tools, set policy, disable and remove them, then run the example
//! guest against them through `orbit run`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use orbit_test_guests::mcp_servers;

fn orbit(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orbit"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("ORBIT_HOME")
        .env_remove("ORBIT_MASTER_KEY")
        .output()
        .expect("orbit runs")
}

fn ok(out: Output) -> (String, String) {
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "failed: {stdout}\n{stderr}");
    (stdout, stderr)
}

fn quoted(command: &(String, Vec<String>)) -> String {
    std::iter::once(&command.0).chain(&command.1).map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ")
}

#[test]
fn tools_add_list_policy_disable_rm_and_run_the_example() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default", "team", "team-a"]);
    let d = dir.path();
    let everything = quoted(&mcp_servers::everything_stdio());
    let time = quoted(&mcp_servers::time_stdio());

    let (_, err) = ok(orbit(d, &["tools", "add", "everything", "--command", &everything, "--workspace", "team"]));
    assert!(err.contains("installed MCP server everything") && err.contains("echo"), "{err}");
    ok(orbit(d, &["tools", "add", "time", "--command", &time, "--workspace", "team", "--env", "TZ=UTC"]));
    let again = orbit(d, &["tools", "add", "time", "--command", &time, "--workspace", "team"]);
    assert!(!again.status.success());

    ok(orbit(d, &["tools", "deny", "everything/get-env", "--workspace", "team"]));
    let (list, _) = ok(orbit(d, &["tools", "list", "--workspace", "team"]));
    assert!(list.contains("everything  enabled  stdio: node"), "{list}");
    assert!(list.contains("get_current_time"), "{list}");
    assert!(list.contains("env TZ=UTC"), "{list}");
    let get_env = list.lines().find(|l| l.trim_start().starts_with("get-env")).unwrap();
    assert!(get_env.ends_with("[denied]"), "{get_env}");
    assert!(list.contains("deny  everything/get-env"), "{list}");

    let example = orbit_test_guests::path("mcp-tools");
    let (out, _) = ok(orbit(d, &["run", example.to_str().unwrap(), "--input", "from the cli", "--workspace", "team"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["echo"], "Echo: from the cli");
    assert_eq!(v["time"]["timezone"], "UTC");

    let (json, _) = ok(orbit(d, &["tools", "list", "--workspace", "team", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["servers"].as_array().unwrap().len(), 2);
    assert_eq!(v["policy"]["rules"]["everything/get-env"], "deny");

    ok(orbit(d, &["tools", "disable", "time", "--workspace", "team"]));
    let (list, _) = ok(orbit(d, &["tools", "list", "--workspace", "team"]));
    assert!(list.contains("time  disabled"), "{list}");
    let failed = orbit(d, &["run", example.to_str().unwrap(), "--workspace", "team"]);
    assert!(!failed.status.success(), "the example needs the time server");
    ok(orbit(d, &["tools", "enable", "time", "--workspace", "team"]));

    ok(orbit(d, &["tools", "rm", "everything", "--workspace", "team"]));
    let (list, _) = ok(orbit(d, &["tools", "list", "--workspace", "team"]));
    assert!(!list.contains("everything"), "{list}");
    assert!(!orbit(d, &["tools", "rm", "everything", "--workspace", "team"]).status.success());
}
