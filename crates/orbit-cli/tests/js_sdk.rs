//! `orbit run agent.ts`: JavaScript and TypeScript agents built from source
//! with the pinned jco (installed by scripts/install-test-deps.sh into
//! target/test-deps/js-sdk from guest-sdk/js/toolchain's lockfile) and the
//! embedded `orbit` SDK, run by the real binary, their builds cached by
//! content.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{orbit_cmd, text};

/// The smallest agent, exactly as the SDK issue gives it.
const SMALLEST: &str = r#"import { cache, log, OrbitError } from "orbit";

export function run(input: string): string {
  const n = cache.increment("calls", 1);
  log.info(`call ${n}`);
  if (!input) throw new OrbitError("invalid-input", "empty input");
  return input.toUpperCase();
}
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn jco() -> PathBuf {
    let tool = repo().join("target/test-deps/js-sdk/node_modules/.bin/jco");
    assert!(tool.is_file(), "jco is missing: run scripts/install-test-deps.sh");
    tool
}

/// `orbit ARGS` with the test toolchain.
fn orbit(data: &Path, args: &[&str]) -> Output {
    orbit_cmd(data, args).env("ORBIT_JCO", jco()).output().expect("orbit runs")
}

fn run_json(data: &Path, run_id: &str) -> serde_json::Value {
    let out = orbit(data, &["runs", "show", run_id, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("runs show --json")
}

#[test]
fn a_typescript_agent_runs_from_source_and_its_build_is_cached() {
    let data = tempfile::tempdir().unwrap();
    common::workspaces(data.path(), &["default"]);
    let src = tempfile::tempdir().unwrap();
    let agent = src.path().join("agent.ts");
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

    // OrbitError is the WIT error the run records.
    let empty = orbit(data.path(), &["run", agent, "--json"]);
    assert!(!empty.status.success());
    let record: serde_json::Value = serde_json::from_slice(&empty.stdout).unwrap();
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["error"]["code"], "invalid-input");
    assert_eq!(record["error"]["message"], "empty input");

    // A changed sibling module is built again: the agent imports it.
    std::fs::write(src.path().join("shout.ts"), "export const shout = (s: string): string => s.toLowerCase();\n")
        .unwrap();
    std::fs::write(
        agent,
        SMALLEST
            .replace("import { cache", "import { shout } from \"./shout.ts\";\nimport { cache")
            .replace("input.toUpperCase()", "shout(input)"),
    )
    .unwrap();
    let changed = orbit(data.path(), &["run", agent, "--input", "MiXeD"]);
    assert!(changed.status.success(), "{}", text(&changed.stderr));
    assert!(text(&changed.stderr).contains("built"));
    assert_eq!(text(&changed.stdout).trim(), "mixed");
    std::fs::write(src.path().join("shout.ts"), "export const shout = (s: string): string => `${s}!`;\n").unwrap();
    let sibling = orbit(data.path(), &["run", agent, "--input", "MiXeD"]);
    assert!(text(&sibling.stderr).contains("built"), "a changed sibling is a new build: {}", text(&sibling.stderr));
    assert_eq!(text(&sibling.stdout).trim(), "MiXeD!");
}

#[test]
fn a_javascript_agent_runs_from_source() {
    let data = tempfile::tempdir().unwrap();
    common::workspaces(data.path(), &["default"]);
    let src = tempfile::tempdir().unwrap();
    let agent = src.path().join("agent.js");
    std::fs::write(
        &agent,
        "import { storage } from \"orbit\";\n\nexport function run(input) {\n  storage.putText(\"last\", input);\n  \
         return `${storage.getText(\"last\")} from js`;\n}\n",
    )
    .unwrap();
    let out = orbit(data.path(), &["run", agent.to_str().unwrap(), "--input", "hi"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "hi from js");
}

#[test]
fn a_typescript_agent_that_does_not_build_gets_the_error_with_its_line() {
    let data = tempfile::tempdir().unwrap();
    common::workspaces(data.path(), &["default"]);
    let src = tempfile::tempdir().unwrap();
    let agent = src.path().join("broken.ts");
    std::fs::write(&agent, "import { log } from \"orbit\";\n\nexport function run(input: string): string {\n  return input.toUpperCase(;\n}\n")
        .unwrap();
    let out = orbit(data.path(), &["run", agent.to_str().unwrap(), "--input", "x"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("does not build") && stderr.contains("broken.ts"), "{stderr}");
    assert!(stderr.contains("broken.ts:4:"), "the error gives the line: {stderr}");
    assert!(!stderr.contains("orbit-build-"), "no build directory leaks: {stderr}");

    // An agent without `run` says so.
    let agent = src.path().join("norun.ts");
    std::fs::write(&agent, "export function walk(input: string): string { return input; }\n").unwrap();
    let out = orbit(data.path(), &["run", agent.to_str().unwrap(), "--input", "x"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("must export a function run"), "{stderr}");
}

#[test]
fn without_the_toolchain_the_error_says_how_to_install_it() {
    let data = tempfile::tempdir().unwrap();
    common::workspaces(data.path(), &["default"]);
    let src = tempfile::tempdir().unwrap();
    let agent = src.path().join("agent.ts");
    std::fs::write(&agent, SMALLEST).unwrap();
    let out = orbit_cmd(data.path(), &["run", agent.to_str().unwrap(), "--input", "x"])
        .env("ORBIT_JCO", src.path().join("no-such-tool"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("orbit sdk install js"), "{stderr}");
}

/// The SDK's own checks: `tsc --noEmit` over the SDK, its test agents and
/// its examples (strict), and `e2e.mjs`, which builds agents the way
/// `orbit run` does and runs them with this binary: every module on the
/// real host and the TypeScript ports of the markdown, wordfreq and
/// mcp-tools examples compared with the Rust ones.
#[test]
fn the_js_sdk_suites_pass() {
    let sdk = repo().join("guest-sdk/js");
    let bin = repo().join("target/test-deps/js-sdk/node_modules/.bin");
    let types = std::process::Command::new(bin.join("jco"))
        .args(["guest-types", "../../wit", "-n", "agent", "-o", "types"])
        .current_dir(&sdk)
        .output()
        .unwrap();
    assert!(types.status.success(), "{}{}", text(&types.stdout), text(&types.stderr));
    let tsc =
        std::process::Command::new(bin.join("tsc")).args(["--noEmit", "-p", "."]).current_dir(&sdk).output().unwrap();
    assert!(tsc.status.success(), "tsc: {}{}", text(&tsc.stdout), text(&tsc.stderr));

    // The SDK's pure parts (errors, number conversions, the run wrapper)
    // under Node's own test runner.
    let unit = std::process::Command::new("node")
        .args(["--test", "tests/"])
        .env("ORBIT_JCO", jco())
        .current_dir(&sdk)
        .output()
        .unwrap();
    let report = format!("{}{}", text(&unit.stdout), text(&unit.stderr));
    let ran = unit.status.success() && report.contains("# fail 0") && report.contains("# skipped 0");
    assert!(ran && !report.contains("# pass 0"), "every unit test ran and passed: {report}");

    let e2e = std::process::Command::new("node")
        .arg(sdk.join("tests/e2e.mjs"))
        .env("ORBIT", env!("CARGO_BIN_EXE_orbit"))
        .env("ORBIT_JCO", jco())
        .env_remove("ORBIT_HOME")
        .env_remove("ORBIT_MASTER_KEY")
        .output()
        .unwrap();
    let report = format!("{}{}", text(&e2e.stdout), text(&e2e.stderr));
    assert!(e2e.status.success() && report.contains(" 0 failed"), "{report}");
    // Nothing left out: the examples were built and compared.
    assert!(!report.contains("skipped") && !report.contains("is missing"), "{report}");
}
