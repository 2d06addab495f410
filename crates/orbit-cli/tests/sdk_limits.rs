//! A Python and a TypeScript agent that break each limit (fuel, deadline,
//! memory) end with the same typed status as a Rust guest doing the same:
//! `out-of-fuel`, `deadline-exceeded`, `memory-limit`. The agents are built
//! from source by `orbit run` with the pinned toolchains
//! (scripts/install-test-deps.sh); the Rust guests are `spin` and `membomb`
//! of orbit-test-guests.

mod common;

use std::path::{Path, PathBuf};

use common::{orbit_cmd, text};

const PYTHON: &str = r#"import orbit

@orbit.agent
def run(input: str) -> str:
    if input == "spin":
        n = 0
        while True:
            n += 1
    if input == "grow":
        hoard = []
        while True:
            hoard.append(bytearray(1 << 20))
    return "ok"
"#;

const TYPESCRIPT: &str = r#"export function run(input: string): string {
  if (input === "spin") {
    let n = 0;
    for (;;) n++;
  }
  if (input === "grow") {
    const hoard: Uint8Array[] = [];
    for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
  }
  return "ok";
}
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `(status, error code)` of `orbit run COMPONENT --input INPUT LIMITS --json`.
fn status(data: &Path, component: &str, input: &str, limits: &[&str]) -> (String, String) {
    let mut args = vec!["run", component, "--input", input, "--json"];
    args.extend_from_slice(limits);
    let out = orbit_cmd(data, &args)
        .env("ORBIT_COMPONENTIZE_PY", repo().join("target/test-deps/python-sdk-venv/bin/componentize-py"))
        .env("ORBIT_JCO", repo().join("target/test-deps/js-sdk/node_modules/.bin/jco"))
        .output()
        .expect("orbit runs");
    let record: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{component} {input}: no record: {}", text(&out.stderr)));
    (
        record["status"].as_str().unwrap_or_default().to_owned(),
        record["error"]["code"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Every limit, on the Rust guest and on `agent` (a source file).
fn every_limit_as_rust(agent: &Path) {
    let data = tempfile::tempdir().unwrap();
    common::workspaces(data.path(), &["default"]);
    let agent = agent.to_str().unwrap();
    let spin = orbit_test_guests::path("spin").to_string_lossy().into_owned();
    let membomb = orbit_test_guests::path("membomb").to_string_lossy().into_owned();

    // The agent works under the default limits first: the limits below,
    // not a broken build, are what stop it.
    let ok = status(data.path(), agent, "", &[]);
    assert_eq!(ok.0, "succeeded", "{agent}: {ok:?}");

    let cases: [(&str, &str, &str, &[&str]); 3] = [
        ("out-of-fuel", &spin, "spin", &["--fuel", "200000000"]),
        ("deadline-exceeded", &spin, "spin", &["--fuel", "1000000000000000", "--timeout-ms", "500"]),
        ("memory-limit", &membomb, "grow", &["--memory-mib", "64"]),
    ];
    for (want, rust, input, limits) in cases {
        let rust = status(data.path(), rust, "", limits);
        assert_eq!(rust, (want.to_owned(), want.to_owned()), "the Rust guest under {limits:?}");
        let guest = status(data.path(), agent, input, limits);
        assert_eq!(guest, rust, "{agent} {input} under {limits:?} ends as the Rust guest does");
    }
}

#[test]
fn a_python_agent_breaks_each_limit_with_the_rust_status() {
    let src = tempfile::tempdir().unwrap();
    let agent = src.path().join("limits.py");
    std::fs::write(&agent, PYTHON).unwrap();
    every_limit_as_rust(&agent);
}

#[test]
fn a_typescript_agent_breaks_each_limit_with_the_rust_status() {
    let src = tempfile::tempdir().unwrap();
    let agent = src.path().join("limits.ts");
    std::fs::write(&agent, TYPESCRIPT).unwrap();
    every_limit_as_rust(&agent);
}
