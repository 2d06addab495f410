//! schemathesis (pinned from PyPI by scripts/install-test-deps.sh) against
//! the OpenAPI document of a real `orbit serve`, with a valid owner token:
//! every route is fuzzed from its schema, and every response must be a
//! documented status with a body and content type matching the document,
//! no 5xx, schema-violating input refused, authentication enforced.
//!
//! Two exclusions, each for a reason: the check that every
//! *schema-valid* request is accepted (`positive_data_acceptance`) is off,
//! because what makes a body acceptable is partly beyond JSON Schema (the
//! bytes must be a WebAssembly component, a URL must be http(s), a name is
//! capped in bytes, a placement needs a matching pair of fields); and
//! `DELETE /tokens/{id}` is left out, because its stateful test revokes the
//! very token the run authenticates with.

mod common;

use std::process::Stdio;

use common::{HttpServer, redact};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing() {
    let st = orbit_test_guests::mcp_servers::deps_dir().join("schemathesis-venv/bin/st");
    assert!(st.exists(), "schemathesis is not installed at {}: run scripts/install-test-deps.sh", st.display());
    let data = tempfile::tempdir().unwrap();
    common::create_workspace(data.path(), "acme", "ada");
    let owner = common::issue_token(data.path(), "acme", "ada", None, None);
    let server = HttpServer::start_with(data.path(), &["--rate-limit", "100000"]).await;
    let base = format!("http://127.0.0.1:{}", server.port);
    let config = data.path().join("schemathesis.toml");
    // Every route is under the token's own workspace.
    std::fs::write(&config, "[parameters]\n\"path.slug\" = \"acme\"\n").unwrap();
    let out = tokio::process::Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{base}/api/v1/openapi.json"), "--url", &format!("{base}/api/v1")])
        .args(["-H", &format!("Authorization: Bearer {}", owner.token)])
        .args(["--max-examples", "10", "--seed", "20261130", "--exclude-checks", "positive_data_acceptance"])
        .args(["--exclude-path-regex", r"tokens/\{id\}", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        // Its cache goes in the temporary directory, not the source tree.
        .current_dir(data.path())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running schemathesis");
    let stdout = redact(&String::from_utf8_lossy(&out.stdout), &owner.token);
    let stderr = redact(&String::from_utf8_lossy(&out.stderr), &owner.token);
    assert!(out.status.success(), "schemathesis found failures:\n{stdout}\n{stderr}");
    assert!(stdout.contains("passed"), "{stdout}");
}
