//! `orbit run agent.py`: a Python agent built from source with the pinned
//! componentize-py (installed by scripts/install-test-deps.sh into
//! target/test-deps/python-sdk-venv) and the embedded `orbit` SDK, run by
//! the real binary, its build cached by content.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{orbit_cmd, text};

/// The smallest agent, exactly as the SDK issue gives it.
const SMALLEST: &str = r#"import orbit

@orbit.agent
def run(input: str) -> str:
    n = orbit.cache.increment("calls", 1)
    orbit.log.info(f"call {n}")
    if not input:
        raise orbit.Error("invalid-input", "empty input")
    return input.upper()
"#;

fn componentize_py() -> PathBuf {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-deps/python-sdk-venv/bin/componentize-py");
    assert!(tool.is_file(), "componentize-py is missing: run scripts/install-test-deps.sh");
    tool
}

/// `orbit ARGS` with the test toolchain.
fn orbit(data: &Path, args: &[&str]) -> Output {
    orbit_cmd(data, args).env("ORBIT_COMPONENTIZE_PY", componentize_py()).output().expect("orbit runs")
}

fn run_json(data: &Path, run_id: &str) -> serde_json::Value {
    let out = orbit(data, &["runs", "show", run_id, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("runs show --json")
}

#[test]
fn a_python_agent_runs_from_source_and_its_build_is_cached() {
    let data = tempfile::tempdir().unwrap();
    common::workspaces(data.path(), &["default"]);
    let src = tempfile::tempdir().unwrap();
    let agent = src.path().join("agent.py");
    std::fs::write(&agent, SMALLEST).unwrap();
    let agent = agent.to_str().unwrap();

    let first = orbit(data.path(), &["run", agent, "--input", "hello", "--json"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stderr).contains("built"), "the first run builds: {}", text(&first.stderr));
    let record: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(record["output"], "HELLO");
    assert_eq!(record["status"], "succeeded");
    let logs = run_json(data.path(), record["id"].as_str().unwrap())["logs"].to_string();
    assert!(logs.contains("call 1"), "{logs}");

    // Same sources: no build, and the cache counter goes on.
    let second = orbit(data.path(), &["run", agent, "--input", "again", "--json"]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(!text(&second.stderr).contains("built"), "the second run is not built again: {}", text(&second.stderr));
    let record: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(record["output"], "AGAIN");
    let logs = run_json(data.path(), record["id"].as_str().unwrap())["logs"].to_string();
    assert!(logs.contains("call 2"), "{logs}");

    // orbit.Error is the WIT error the run records.
    let empty = orbit(data.path(), &["run", agent, "--json"]);
    assert!(!empty.status.success());
    let record: serde_json::Value = serde_json::from_slice(&empty.stdout).unwrap();
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["error"]["code"], "invalid-input");
    assert_eq!(record["error"]["message"], "empty input");

    // A changed source is built again.
    std::fs::write(agent, SMALLEST.replace("input.upper()", "input.lower()")).unwrap();
    let changed = orbit(data.path(), &["run", agent, "--input", "MiXeD"]);
    assert!(changed.status.success(), "{}", text(&changed.stderr));
    assert!(text(&changed.stderr).contains("built"));
    assert_eq!(text(&changed.stdout).trim(), "mixed");
}

#[test]
fn a_python_agent_that_does_not_build_gets_the_error_with_its_line() {
    let data = tempfile::tempdir().unwrap();
    common::workspaces(data.path(), &["default"]);
    let src = tempfile::tempdir().unwrap();
    let agent = src.path().join("broken.py");
    std::fs::write(&agent, "import orbit\n\n@orbit.agent\ndef run(input: str) -> str:\n    return input.upper(\n")
        .unwrap();
    let out = orbit(data.path(), &["run", agent.to_str().unwrap(), "--input", "x"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("does not build") && stderr.contains("broken.py"), "{stderr}");
    assert!(stderr.contains("line 5"), "the error gives the line: {stderr}");
    assert!(!stderr.contains("orbit-build-"), "no build directory leaks: {stderr}");
}

#[test]
fn without_the_toolchain_the_error_says_how_to_install_it() {
    let data = tempfile::tempdir().unwrap();
    common::workspaces(data.path(), &["default"]);
    let src = tempfile::tempdir().unwrap();
    let agent = src.path().join("agent.py");
    std::fs::write(&agent, SMALLEST).unwrap();
    let out = orbit_cmd(data.path(), &["run", agent.to_str().unwrap(), "--input", "x"])
        .env("ORBIT_COMPONENTIZE_PY", src.path().join("no-such-tool"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("orbit sdk install python"), "{stderr}");
}

/// The SDK's own suites: its unit tests under CPython against the generated
/// bindings (host functions faked), and `e2e.py`, which builds agents the
/// way `orbit run` does and runs them with this binary: every module on the
/// real host (storage, cache, db, jobs, fetch through the egress policy with
/// a secret injected, errors with their codes), and the Python ports of the
/// markdown, wordfreq and mcp-tools examples compared with the Rust ones.
#[test]
fn the_python_sdk_suites_pass() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk/python");
    let unit = std::process::Command::new("python3")
        .args(["-m", "unittest", "discover", "-s"])
        .arg(sdk.join("tests"))
        .env("ORBIT_COMPONENTIZE_PY", componentize_py())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let report = format!("{}{}", text(&unit.stdout), text(&unit.stderr));
    assert!(unit.status.success() && report.contains("OK") && !report.contains("skipped"), "{report}");

    let e2e = std::process::Command::new("python3")
        .arg(sdk.join("tests/e2e.py"))
        .env("ORBIT", env!("CARGO_BIN_EXE_orbit"))
        .env("ORBIT_COMPONENTIZE_PY", componentize_py())
        .env_remove("ORBIT_HOME")
        .env_remove("ORBIT_MASTER_KEY")
        .output()
        .unwrap();
    let report = format!("{}{}", text(&e2e.stdout), text(&e2e.stderr));
    assert!(e2e.status.success() && report.contains(" 0 failed"), "{report}");
    // Nothing left out: the examples were built and compared.
    assert!(!report.contains("skipped") && !report.contains("is missing"), "{report}");
}
