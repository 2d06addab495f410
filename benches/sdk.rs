//! The word-frequency example as a Python and as a TypeScript agent against
//! the Rust one, each a warm invoke in the same run, and the linear memory
//! each instance holds.
//!
//! - `sdk/rust`: `examples/wordfreq` (Rust, `orbit-guest`);
//! - `sdk/python`: `guest-sdk/python/examples/wordfreq/agent.py`, built with
//!   componentize-py (its own pre-initialization snapshot);
//! - `sdk/typescript`: `guest-sdk/js/examples/wordfreq/agent.ts`, built with
//!   jco (StarlingMonkey, pre-initialized with Wizer).
//!
//! All three run in one Orbit with its default limits and the compile
//! cache warm (each component is loaded once, before measuring). Every
//! iteration's input is new (a counter before the same 4 KiB of English
//! text), so the examples' result cache never answers and every run counts
//! the words. The Python and TypeScript components are built from source
//! by `orbit-sdk` with the toolchains of `scripts/install-test-deps.sh`
//! (kept under `target/sdk-bench/`, so a second run does not build again).
//!
//! Run with `cargo bench --bench sdk`.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::report_ratio;
use criterion::{Criterion, criterion_group, criterion_main};
use orbit::{Invocation, Orbit, RunStatus, WorkspaceId};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The component built from `source` with the test toolchains.
fn build(source: &str) -> Vec<u8> {
    let deps = repo().join("target/test-deps");
    let work = repo().join("target/sdk-bench");
    let builder = orbit_sdk::Builder::new(work.join("builds"), work.join("sdk"))
        .toolchain(orbit_sdk::Language::Python, deps.join("python-sdk-venv/bin/componentize-py"))
        .toolchain(orbit_sdk::Language::JavaScript, deps.join("js-sdk/node_modules/.bin/jco"));
    let built = builder
        .build(&repo().join(source), |msg| eprintln!("sdk bench: {msg}"))
        .unwrap_or_else(|e| panic!("{source}: {e} (run scripts/install-test-deps.sh)"));
    std::fs::read(built.wasm).unwrap()
}

fn sdk(c: &mut Criterion) {
    common::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let text: String = std::fs::read_to_string(repo().join("examples/wordfreq/data/GPL-3.txt")).unwrap();
    let text: String = text.chars().take(4096).collect();
    let dir = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let orbit = Orbit::open(dir.path()).unwrap();
    let components = [
        ("rust", orbit_test_guests::bytes("wordfreq")),
        ("python", build("guest-sdk/python/examples/wordfreq/agent.py")),
        ("typescript", build("guest-sdk/js/examples/wordfreq/agent.ts")),
    ];
    let counter = AtomicU64::new(0);
    let mut g = c.benchmark_group("sdk");
    g.measurement_time(Duration::from_secs(10)).sample_size(30);
    let mut outputs = Vec::new();
    for (name, wasm) in &components {
        let component = orbit.engine().load(wasm).unwrap();
        let run = |inv: Invocation| {
            let out = rt.block_on(orbit.engine().invoke(&component, inv)).unwrap();
            assert_eq!(out.status(), RunStatus::Succeeded, "{name}: {:?}", out.record.error);
            out
        };
        // Warm, and the figures that are not times: the same answer from
        // every language, and the memory and fuel of one run.
        // Each language's first run in a workspace of its own, so that no
        // one answers from another's cache entry.
        let first = run(Invocation::new(text.clone()).workspace(WorkspaceId::new(*name).unwrap()));
        outputs.push((name, first.output_text()));
        common::record(&format!(
            "sdk/{name}: component {:.1} MiB, linear memory per instance {:.1} MiB, fuel per run {}",
            wasm.len() as f64 / f64::from(1 << 20),
            first.record.memory_bytes as f64 / f64::from(1 << 20),
            first.fuel_consumed()
        ));
        g.bench_function(*name, |b| {
            b.iter(|| run(Invocation::new(format!("{} {text}", counter.fetch_add(1, Ordering::Relaxed)))));
        });
    }
    g.finish();
    for (name, output) in &outputs[1..] {
        assert_eq!(output, &outputs[0].1, "{name}'s wordfreq answers as the Rust one does");
    }
    report_ratio("sdk", "python", "rust", "reported");
    report_ratio("sdk", "typescript", "rust", "reported");
}

criterion_group!(benches, sdk);
criterion_main!(benches);
