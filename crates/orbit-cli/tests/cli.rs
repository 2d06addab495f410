//! The `orbit` binary, end to end: run real components, then list and show
//! the recorded runs.

mod common;

use std::process::{Command, Output};

fn orbit(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orbit"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("ORBIT_HOME")
        .env_remove("ORBIT_MASTER_KEY")
        .output()
        .expect("orbit runs")
}

fn orbit_stdin(data: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    orbit_stdin_bytes(data, args, stdin.as_bytes())
}

fn orbit_stdin_bytes(data: &std::path::Path, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("ORBIT_HOME")
        .env_remove("ORBIT_MASTER_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn grep_dir(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            hits.extend(grep_dir(&p, needle));
        } else if std::fs::read(&p).unwrap().windows(needle.len()).any(|w| w == needle) {
            hits.push(p);
        }
    }
    hits
}

#[test]
fn secrets_are_stored_encrypted_listed_without_values_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    // First use generated a master key file, and said where.
    let first = orbit(dir.path(), &["workspace", "create", "default", "--owner", common::OWNER]);
    assert!(text(&first.stderr).contains("generated a new master key"), "{}", text(&first.stderr));
    common::workspaces(dir.path(), &["team-a", "w2"]);
    let value = "sk-live-7f3a9c2e4b1d";
    let out = orbit_stdin(
        dir.path(),
        &[
            "secret",
            "set",
            "API_TOKEN",
            "--workspace",
            "team-a",
            "--host",
            "https://api.example.com",
            "--header",
            "Authorization",
            "--template",
            "Bearer {}",
        ],
        &format!("{value}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = dir.path().join("master.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);

    let list = orbit(dir.path(), &["secret", "list", "--workspace", "team-a", "--json"]);
    assert!(list.status.success());
    let listed = text(&list.stdout);
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(v[0]["name"], "API_TOKEN");
    assert_eq!(v[0]["hosts"][0]["host"], "api.example.com");
    assert_eq!(v[0]["hosts"][0]["port"], 443);
    assert!(!listed.contains(value));
    let table = text(&orbit(dir.path(), &["secret", "list", "--workspace", "team-a"]).stdout);
    assert!(table.contains("API_TOKEN") && !table.contains(value));
    // Another workspace sees nothing.
    let other = orbit(dir.path(), &["secret", "list", "--json"]);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&other.stdout).unwrap(), serde_json::json!([]));
    // No file in the data directory holds the value.
    assert_eq!(grep_dir(dir.path(), value.as_bytes()), Vec::<std::path::PathBuf>::new());

    // Rotation keeps the secret; status shows the new key version.
    let rot = orbit(dir.path(), &["vault", "rotate"]);
    assert!(rot.status.success(), "{}", text(&rot.stderr));
    let st = text(&orbit(dir.path(), &["vault", "status"]).stdout);
    assert!(st.contains("version 2"), "{st}");
    let list = orbit(dir.path(), &["secret", "list", "--workspace", "team-a", "--json"]);
    assert!(text(&list.stdout).contains("API_TOKEN"));

    assert!(orbit(dir.path(), &["secret", "rm", "API_TOKEN", "--workspace", "team-a"]).status.success());
    let gone = orbit(dir.path(), &["secret", "rm", "API_TOKEN", "--workspace", "team-a"]);
    assert_eq!(gone.status.code(), Some(2));
}

#[test]
fn secret_set_refuses_bad_bindings() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default", "team-a", "w2"]);
    let out = orbit_stdin(
        dir.path(),
        &["secret", "set", "T", "--host", "ftp://example.com", "--header", "X-Key", "--template", "{}"],
        "v\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let out = orbit_stdin(
        dir.path(),
        &["secret", "set", "T", "--host", "https://example.com", "--header", "X-Key", "--template", "no placeholder"],
        "v\n",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn path(guest: &str) -> String {
    orbit_test_guests::path(guest).to_string_lossy().into_owned()
}

#[test]
fn run_list_and_show() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default", "team-a", "w2"]);
    let out = orbit(dir.path(), &["run", &path("markdown"), "--input", "# Title\n\nSome *text*."]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("<h1>Title</h1>"), "{stdout}");
    assert!(stdout.contains("<em>text</em>"));
    // One summary line on stderr: run id, status, fuel, duration.
    let stderr = text(&out.stderr);
    let summary = stderr.lines().last().unwrap();
    assert!(summary.starts_with("run ") && summary.contains(" succeeded fuel="), "{summary}");
    let run_id = summary.split_whitespace().nth(1).unwrap().to_owned();

    let list = orbit(dir.path(), &["runs", "list", "--json"]);
    assert!(list.status.success());
    let page: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(page["runs"][0]["id"], run_id.as_str());
    assert_eq!(page["runs"][0]["status"], "succeeded");

    let table = text(&orbit(dir.path(), &["runs", "list"]).stdout);
    assert!(table.contains(&run_id) && table.contains("succeeded"), "{table}");

    let show = orbit(dir.path(), &["runs", "show", &run_id]);
    assert!(show.status.success());
    let shown = text(&show.stdout);
    assert!(shown.contains("storage.put"), "spans are shown: {shown}");
    // Log lines are shown as lines (they are not spans).
    assert!(shown.contains("stored rendered HTML at html/"), "logs are shown: {shown}");
    assert!(!shown.contains("log.log"), "{shown}");

    let json = orbit(dir.path(), &["runs", "show", &run_id, "--json"]);
    let rec: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rec["kind"], "agent");
    assert!(rec["spans"].as_array().unwrap().iter().any(|s| s["primitive"] == "storage"));
}

/// A short-lived `orbit run` (its own settings: nothing kept resident, one
/// tokio worker) ends every limit with its typed status, on stderr and on
/// the durable record.
#[test]
fn a_short_lived_orbit_run_ends_each_limit_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default"]);
    let huge_fuel = (u64::MAX / 2).to_string();
    let cases: [(&str, &[&str], &str); 4] = [
        ("membomb", &["--memory-mib", "32"], "memory-limit"),
        ("spin", &["--timeout-ms", "200", "--fuel", &huge_fuel], "deadline-exceeded"),
        ("recursion", &[], "stack-overflow"),
        ("trap", &[], "trapped"),
    ];
    for (guest, flags, status) in cases {
        let component = path(guest);
        let mut args = vec!["run", component.as_str()];
        args.extend_from_slice(flags);
        let out = orbit(dir.path(), &args);
        assert!(!out.status.success(), "{guest}");
        assert!(text(&out.stderr).contains(&format!(" {status} ")), "{guest}: {}", text(&out.stderr));
        let list = orbit(dir.path(), &["runs", "list", "--status", status, "--json"]);
        let page: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        assert_eq!(page["runs"].as_array().unwrap().len(), 1, "{guest}: {page}");
        if guest == "membomb" {
            let held = page["runs"][0]["memory_bytes"].as_u64().unwrap();
            assert!(held <= 32 << 20, "held {held} bytes under a 32 MiB limit");
        }
    }
}

#[test]
fn failed_runs_exit_non_zero_and_filter_by_status() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default", "team-a", "w2"]);
    let out = orbit(dir.path(), &["run", &path("spin"), "--fuel", "1000000"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("out-of-fuel"), "{}", text(&out.stderr));
    let out = orbit(dir.path(), &["run", &path("exit-code"), "--input", "4", "--workspace", "w2"]);
    assert_eq!(out.status.code(), Some(4));
    let out = orbit(dir.path(), &["run", &path("echo"), "--input", "hi", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["output"], "hi");

    let list = orbit(dir.path(), &["runs", "list", "--status", "out-of-fuel", "--json"]);
    let page: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let runs = page["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "out-of-fuel");
    // Workspaces are separate: w2's run is not listed under default.
    let list = orbit(dir.path(), &["runs", "list", "--workspace", "w2", "--json"]);
    let page: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(page["runs"].as_array().unwrap().len(), 1);
    assert_eq!(page["runs"][0]["exit_code"], 4);
}

#[test]
fn clear_errors_for_files_that_are_not_runnable_components() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default", "team-a", "w2"]);
    let not_wasm = dir.path().join("notes.txt");
    std::fs::write(&not_wasm, "hello").unwrap();
    let out = orbit(dir.path(), &["run", not_wasm.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a WebAssembly component"), "{}", text(&out.stderr));

    // A core module (what wasm32-unknown-unknown or `wat` produce).
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = orbit(dir.path(), &["run", core.to_str().unwrap()]);
    assert!(text(&out.stderr).contains("core wasm module"), "{}", text(&out.stderr));

    // A valid component with no exports at all: nothing to run.
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x0d\0\x01\0").unwrap();
    let out = orbit(dir.path(), &["run", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("exports neither `run`"), "{}", text(&out.stderr));
}

/// A run opens only the stores it uses: echo imports no storage, cache or
/// jobs, so their files are never created (nor synced); markdown uses
/// storage, so its index is. The first run leaves Cranelift's artifact in
/// the compile cache before the process exits.
#[test]
fn a_run_opens_only_the_stores_it_uses_and_leaves_its_artifact_cached() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default", "team-a", "w2"]);
    let out = orbit(dir.path(), &["run", &path("echo"), "--input", "hi"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");
    for unused in ["jobs.redb", "cache.redb", "storage/index.redb"] {
        assert!(!dir.path().join(unused).exists(), "{unused} was opened");
    }
    let digest = orbit::orbit_engine::digest(&std::fs::read(path("echo")).unwrap());
    let cached = std::fs::read_dir(dir.path().join("compiled")).unwrap().flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.starts_with(&digest) && name.ends_with(".cwasm")
    });
    assert!(cached, "the tier-up wrote the artifact before the process exited");

    let out = orbit(dir.path(), &["run", &path("markdown"), "--input", "# T"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("storage/index.redb").exists(), "markdown stores its HTML");
    assert!(!dir.path().join("jobs.redb").exists());
}

#[test]
fn compile_caches_the_artifact() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default", "team-a", "w2"]);
    let out = orbit(dir.path(), &["compile", &path("wordfreq")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("agent"));
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("compiled")).unwrap().flatten().collect();
    assert_eq!(cached.len(), 1);
    let name = cached[0].file_name().to_string_lossy().into_owned();
    let digest = orbit::orbit_engine::digest(&std::fs::read(path("wordfreq")).unwrap());
    assert!(name.starts_with(&digest) && name.ends_with(".cwasm"), "{name}");
}

/// As with `wasmtime run`: without `--input`, piped stdin is the input, and
/// the arguments after `--` are the command's argv.
#[test]
fn stdin_is_the_input_and_arguments_after_a_double_dash_are_argv() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default"]);
    let cli = path("hello-cli");
    let out = orbit_stdin(dir.path(), &["run", &cli], "one two\nthree\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("lines: 2") && stdout.contains("words: 3") && stdout.contains("bytes: 14"), "{stdout}");
    assert!(!stdout.contains("args:"), "no arguments: {stdout}");

    let out = orbit_stdin(dir.path(), &["run", &cli, "--", "-n", "3", "a file"], "x");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("args: -n 3 a file"), "{}", text(&out.stdout));

    // An agent's `run` argument, too; and `--input` wins over stdin.
    let echo = path("echo");
    assert_eq!(text(&orbit_stdin(dir.path(), &["run", &echo], "piped").stdout).trim(), "piped");
    let out = orbit_stdin(dir.path(), &["run", &echo, "--input", "given"], "piped");
    assert_eq!(text(&out.stdout).trim(), "given");

    // Not text: a clear refusal, no run.
    let out = orbit_stdin_bytes(dir.path(), &["run", &cli], &[0xff, 0xfe, 0x00]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("stdin is not UTF-8 text"), "{}", text(&out.stderr));
}
