//! Builds every guest component (test fixtures and examples) for
//! `wasm32-wasip2` with a nested `cargo build --profile guest` on this workspace,
//! into `<workspace>/target/guests`, and bakes each component's path into
//! the library with `cargo:rustc-env=ORBIT_GUEST_<NAME>=<path>`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// (name, cargo package, artifact file name)
const GUESTS: &[(&str, &str, &str)] = &[
    ("echo", "fixture-echo", "fixture_echo.wasm"),
    ("spin", "fixture-spin", "fixture_spin.wasm"),
    ("membomb", "fixture-membomb", "fixture_membomb.wasm"),
    ("residue", "fixture-residue", "fixture_residue.wasm"),
    ("recursion", "fixture-recursion", "fixture_recursion.wasm"),
    ("trap", "fixture-trap", "fixture_trap.wasm"),
    ("bigoutput", "fixture-bigoutput", "fixture_bigoutput.wasm"),
    ("flood", "fixture-flood", "fixture-flood.wasm"),
    ("exit-code", "fixture-exit-code", "fixture-exit-code.wasm"),
    ("probe", "fixture-probe", "fixture-probe.wasm"),
    ("fetch-client", "fixture-fetch-client", "fixture_fetch_client.wasm"),
    ("api-client", "api-client-guest", "api_client_guest.wasm"),
    ("ops", "fixture-ops", "fixture_ops.wasm"),
    ("badkeys", "fixture-badkeys", "fixture_badkeys.wasm"),
    ("cli-primitives", "fixture-cli-primitives", "fixture-cli-primitives.wasm"),
    ("markdown", "markdown-guest", "markdown_guest.wasm"),
    ("wordfreq", "wordfreq-guest", "wordfreq_guest.wasm"),
    ("hello-cli", "hello-cli", "hello-cli.wasm"),
    ("bench", "fixture-bench", "fixture_bench.wasm"),
    ("db-client", "fixture-db-client", "fixture_db_client.wasm"),
    ("csv-db", "csv-db-guest", "csv_db_guest.wasm"),
    ("ai-client", "fixture-ai-client", "fixture_ai_client.wasm"),
    ("summarize", "summarize-guest", "summarize_guest.wasm"),
    ("jobs-probe", "fixture-jobs-probe", "fixture_jobs_probe.wasm"),
    ("fanout", "fanout-guest", "fanout_guest.wasm"),
    ("tools-client", "fixture-tools-client", "fixture_tools_client.wasm"),
    ("mcp-tools", "mcp-tools-guest", "mcp_tools_guest.wasm"),
];

/// Environment variables set by the outer cargo (or by a user for the outer
/// build) that must not leak into the nested build.
const REMOVE_EXACT: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
    "NUM_JOBS",
    "RUSTC_LINKER",
    "RUSTDOC",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
];
const REMOVE_PREFIXES: &[&str] = &[
    "CARGO_ENCODED_",  // CARGO_ENCODED_RUSTFLAGS, CARGO_ENCODED_RUSTDOCFLAGS
    "CARGO_TARGET_",   // CARGO_TARGET_DIR, CARGO_TARGET_<TRIPLE>_*
    "CARGO_BUILD_",    // CARGO_BUILD_TARGET, CARGO_BUILD_RUSTFLAGS, ...
    "CARGO_PROFILE_",  // the outer profile's settings
    "CARGO_CFG_",      // the outer target's cfgs
    "CARGO_FEATURE_",  // the outer package's features
    "CARGO_PKG_",      // the outer package's metadata
    "CARGO_MANIFEST_", // the outer package's manifest
    "DEP_",            // `links` metadata of the outer build
    "__CARGO",         // cargo internals
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.join("../..").canonicalize().expect("workspace root of crates/orbit-test-guests");
    let target_dir = root.join("target").join("guests");

    for watched in [
        "wit",
        "guest-sdk",
        "examples/markdown",
        "examples/wordfreq",
        "examples/hello-cli",
        "examples/api-client",
        "examples/csv-db",
        "examples/summarize",
        "examples/fanout",
        "examples/mcp-tools",
        "tests/fixtures",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    check_target_installed();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--profile", "guest", "--target", TARGET])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for (_, package, _) in GUESTS {
        cmd.args(["-p", package]);
    }
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if REMOVE_EXACT.contains(&key) || REMOVE_PREFIXES.iter().any(|p| key.starts_with(p)) {
            cmd.env_remove(key);
        }
    }
    // The workspace's `guest` profile drops std's DWARF from components.
    cmd.env("CARGO_TERM_COLOR", "never");

    let output = cmd.output().unwrap_or_else(|e| panic!("failed to run the nested cargo build of the guests: {e}"));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        eprintln!("{}", String::from_utf8_lossy(&output.stdout));
        eprintln!("{stderr}");
        if stderr.contains("may not be installed") || stderr.contains("can't find crate for `std`") {
            panic!("the {TARGET} target is not installed: run `rustup target add {TARGET}`");
        }
        panic!("building the guest components failed ({}); see the cargo output above", output.status);
    }

    let out = target_dir.join(TARGET).join("guest");
    for (name, _, file) in GUESTS {
        let path = out.join(file);
        assert!(path.is_file(), "the nested build succeeded but {} is missing", path.display());
        println!("cargo:rustc-env={}={}", env_name(name), path.display());
    }
}

/// `ORBIT_GUEST_<NAME>` with `-` as `_`, upper-cased.
fn env_name(name: &str) -> String {
    format!("ORBIT_GUEST_{}", name.replace('-', "_").to_uppercase())
}

/// Fails with a clear message when the wasm32-wasip2 standard library is
/// missing from the toolchain.
fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(output) = Command::new(&rustc).args(["--print", "target-libdir", "--target", TARGET]).output() else {
        // Let the nested build report the problem.
        return;
    };
    if !output.status.success() {
        panic!("the {TARGET} target is not available to rustc: run `rustup target add {TARGET}`");
    }
    let libdir = String::from_utf8_lossy(&output.stdout);
    let libdir = Path::new(libdir.trim());
    let has_std = std::fs::read_dir(libdir)
        .map(|entries| entries.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
        .unwrap_or(false);
    if !has_std {
        panic!("the {TARGET} target is not installed: run `rustup target add {TARGET}`");
    }
}
