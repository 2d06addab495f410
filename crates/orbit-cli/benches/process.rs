//! The whole process: `orbit run x.wasm` with a warm compile cache, against
//! `wasmtime run x.wasm` (from the `wasmtime-cli` crate, 48.x) with its
//! warm compile cache, measured in one run.
//!
//! `x.wasm` is the `hello-cli` example, a `wasi:cli` command that counts
//! the lines, words and bytes of a one-line input and hashes it. Orbit's
//! figure includes what `orbit run` always does: open the data directory
//! (run store, cache, vault, databases), load the cached artifact, run the
//! component, and commit the run record durably.
//!
//! `wasmtime` is taken from `ORBIT_BENCH_WASMTIME`, else from `PATH`; when
//! there is none, only Orbit is measured and the ratio is not reported.
//! (`cargo install wasmtime-cli --version 48.0.8 --locked` builds it; it is
//! too slow to build inside CI.)
//!
//! Both read the input on stdin. Criterion measures each command in turn,
//! and a machine's speed drifts between the two (on these VMs, `wasmtime
//! run` alone moved from 6.2 to 8.0 ms between runs of this bench), so the
//! ratio is also taken from alternating pairs measured after it: the
//! median of 100 `orbit run`s against the median of the 100 `wasmtime
//! run`s between them, the order swapped every pair (the method).
//!
//! Run with `cargo bench -p orbit-cli --bench process`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

/// Alternating pairs measured for the ratio.
const PAIRS: usize = 100;

fn run(cmd: &mut Command) {
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "{cmd:?} failed: {status}");
}

fn wasmtime() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ORBIT_BENCH_WASMTIME") {
        return Some(path.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join("wasmtime")).find(|p| p.is_file())
}

fn median_ns(group: &str, id: &str, since: std::time::SystemTime) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let path = target.join("criterion").join(group).join(id).join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn process(c: &mut Criterion) {
    let since = std::time::SystemTime::now();
    let wasm = orbit_test_guests::path("hello-cli");
    let home = tempfile::tempdir().unwrap();
    let input = home.path().join("input.txt");
    std::fs::write(&input, "hello from the process bench\n").unwrap();
    let orbit = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orbit"));
        cmd.arg("run").arg(&wasm);
        cmd.env("ORBIT_HOME", home.path()).env_remove("ORBIT_MASTER_KEY").stdin(std::fs::File::open(&input).unwrap());
        cmd
    };
    // Workspaces are created explicitly; `orbit run` acts in `default`.
    let mut create = Command::new(env!("CARGO_BIN_EXE_orbit"));
    create.args(["workspace", "create", "default", "--owner", "bench"]);
    create.env("ORBIT_HOME", home.path()).env_remove("ORBIT_MASTER_KEY").stdin(Stdio::null());
    run(&mut create);
    run(&mut orbit()); // compiles once and caches the artifact

    let mut g = c.benchmark_group("process");
    g.measurement_time(Duration::from_secs(10)).sample_size(50);
    g.bench_function("orbit-run", |b| b.iter(|| run(&mut orbit())));
    let wasmtime = wasmtime();
    let (wasm, input) = (&wasm, &input);
    let wasmtime_run = wasmtime.as_ref().map(|wasmtime| {
        move || {
            let mut cmd = Command::new(wasmtime);
            cmd.arg("run").arg(wasm).stdin(std::fs::File::open(input).unwrap());
            cmd
        }
    });
    if let Some(cmd) = &wasmtime_run {
        run(&mut cmd()); // fills wasmtime's own compile cache
        g.bench_function("wasmtime-run", |b| b.iter(|| run(&mut cmd())));
    } else {
        eprintln!("process: no wasmtime CLI (set ORBIT_BENCH_WASMTIME); measuring Orbit only");
    }
    g.finish();
    if let Some(cmd) = &wasmtime_run {
        let timed = |mut cmd: Command| {
            let started = Instant::now();
            run(&mut cmd);
            started.elapsed()
        };
        let (mut ours, mut theirs) = (Vec::with_capacity(PAIRS), Vec::with_capacity(PAIRS));
        for pair in 0..PAIRS {
            if pair % 2 == 0 {
                ours.push(timed(orbit()));
                theirs.push(timed(cmd()));
            } else {
                theirs.push(timed(cmd()));
                ours.push(timed(orbit()));
            }
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2].as_secs_f64() * 1e3
        };
        let (a, b) = (median(&mut ours), median(&mut theirs));
        println!(
            "process: {PAIRS} alternating pairs: orbit run {a:.2} ms vs wasmtime run {b:.2} ms (medians): ratio {:.2}x (target <= 1.2x)",
            a / b
        );
    }
    if let (Some(a), Some(b)) = (median_ns("process", "orbit-run", since), median_ns("process", "wasmtime-run", since))
    {
        println!(
            "process/orbit-run = {:.2} ms vs process/wasmtime-run = {:.2} ms: ratio {:.2}x (target <= 1.2x)",
            a / 1e6,
            b / 1e6,
            a / b
        );
    }
}

criterion_group!(benches, process);
criterion_main!(benches);
