//! The dashboard of `orbit serve` in a real browser: Debian's chromium,
//! driven by playwright-core from `tests/browser/dashboard.spec.mjs` (Node 22
//! from target/test-deps/npm-client), every page scanned by axe-core.
//!
//! This test sets the stage, the script plays it: a workspace `team-a`
//! owned by olivia with an owner token (the CLI), `orbit serve` on loopback,
//! server-everything over streamable HTTP, the fixture MCP server whose tool
//! description is HTML (tests/fixtures/evil-description-server.mjs), and a
//! guest component that makes host calls. The script signs in as olivia,
//! installs both servers, sets a credential, invites rita as read-only,
//! issues her a token, signs her in in a second browser context, checks what
//! she can and cannot do, revokes her token, reads the audit, runs a
//! component through the API and checks its span waterfall, scans every
//! page with axe-core, checks the security headers, the session cookie and
//! CSRF refusals, and takes a screenshot of every page into
//! target/dashboard-screenshots/.
//!
//! Chromium and the script's npm packages come from
//! scripts/install-test-deps.sh; when either is missing this test fails
//! (it is never skipped).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{HttpServer, create_workspace, issue_token, node22, redact, repo_root};
use tokio::io::AsyncBufReadExt as _;

const INSTALL: &str = "scripts/install-test-deps.sh";

/// tests/browser: the script, its package.json and package-lock.json.
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Chromium: `$CHROMIUM`, else `chromium` on the PATH, else
/// /usr/bin/chromium (Debian's package).
fn chromium() -> PathBuf {
    let found = std::env::var_os("CHROMIUM")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH")
                .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("chromium")).find(|p| p.is_file()))
        })
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")));
    match found {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "chromium is not installed (looked at $CHROMIUM, `chromium` on the PATH and /usr/bin/chromium): \
             run {INSTALL} (as root it runs `apt-get install -y --no-install-recommends chromium`)"
        ),
    }
}

/// Fails, naming the install script, when `npm ci` has not been run in
/// tests/browser (or its lockfile changed since).
fn require_browser_packages() {
    let dir = browser_dir();
    for package in ["playwright-core", "axe-core", "@axe-core/playwright"] {
        assert!(
            dir.join("node_modules").join(package).join("package.json").is_file(),
            "the browser test's npm package {package} is missing from {}: run {INSTALL} (it runs `npm ci` there)",
            dir.join("node_modules").display()
        );
    }
    let lock = std::fs::read(dir.join("package-lock.json")).expect("tests/browser/package-lock.json");
    let installed = std::fs::read(dir.join("node_modules/.orbit-installed-lock")).unwrap_or_default();
    assert!(
        lock == installed,
        "tests/browser/node_modules is stale (package-lock.json changed since it was installed): run {INSTALL}"
    );
}

/// The fixture MCP server with the HTML tool description, on a free
/// loopback port; killed on drop. Returns it and its `/mcp` URL.
async fn evil_server() -> (tokio::process::Child, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/evil-description-server.mjs");
    let mut child = tokio::process::Command::new(node22())
        .arg(script)
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the evil-description fixture MCP server");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().expect("the fixture prints its address");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .filter(|u| u.starts_with("http://127.0.0.1:") && u.ends_with("/mcp"))
        .unwrap_or_else(|| panic!("unexpected fixture output {line:?}"))
        .to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    // What the test cannot do without: fail at once, naming the install script.
    let chromium = chromium();
    require_browser_packages();
    let node = node22();

    let data = tempfile::tempdir().unwrap();
    create_workspace(data.path(), "team-a", "olivia");
    let owner = issue_token(data.path(), "team-a", "olivia", None, None);
    // A second workspace of olivia's, for the workspace switcher.
    create_workspace(data.path(), "team-b", "olivia");
    let second = issue_token(data.path(), "team-b", "olivia", None, None);

    let server = HttpServer::start(data.path()).await;
    let base = format!("http://127.0.0.1:{}", server.port);
    let everything = tokio::task::spawn_blocking(orbit_test_guests::mcp_servers::EverythingHttp::start).await.unwrap();
    let (_evil, evil_url) = evil_server().await;
    // The `ops` guest runs the script the browser test gives it as input:
    // storage put/get, cache set/increment, a log line, a missing key.
    let component = orbit_test_guests::path("ops");

    let screenshots = repo_root().join("target/dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    std::fs::create_dir_all(&screenshots).unwrap();

    let mut cmd = tokio::process::Command::new(&node);
    cmd.arg("dashboard.spec.mjs")
        .current_dir(browser_dir())
        .env("ORBIT_URL", &base)
        .env("OWNER_TOKEN", &owner.token)
        .env("WORKSPACE", "team-a")
        .env("SECOND_WORKSPACE", "team-b")
        .env("SECOND_TOKEN", &second.token)
        .env("EVERYTHING_URL", &everything.url)
        .env("EVIL_URL", &evil_url)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT_DIR", &screenshots)
        .env("COMPONENT_PATH", &component)
        .env_remove("COMPONENT_INPUT")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    // The script stops itself after 8 minutes; this is the backstop.
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .expect("the browser test did not finish in 10 minutes")
        .expect("running node dashboard.spec.mjs");
    let clean = |bytes: &[u8]| redact(&redact(&String::from_utf8_lossy(bytes), &owner.token), &second.token);
    let stdout = clean(&out.stdout);
    let stderr = clean(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success() && stdout.lines().any(|l| l.ends_with(" passed, 0 failed")),
        "the browser test failed ({}); screenshots in {}:\n{stdout}\n{stderr}",
        out.status,
        screenshots.display()
    );
    // A full-page screenshot of every page at 1280x800, and the overview on a phone.
    for page in [
        "signin",
        "overview",
        "servers",
        "credentials",
        "members",
        "tokens",
        "runs",
        "run",
        "audit",
        "jobs",
        "member-remove",
        "signin-ended",
        "overview-phone",
    ] {
        let png = screenshots.join(format!("{page}.png"));
        assert!(png.is_file(), "no screenshot of the {page} page at {}", png.display());
    }
    drop(server);
}
