//! The cold path: the first result of a component that is not in the
//! compile cache, with and without tiered compilation, against a run of
//! the cached artifact, in one run.
//!
//! The component is the `bench` fixture (1.3 MiB: `sha2` and `regex` with
//! its Unicode tables). Each iteration uses a fresh engine and an empty
//! compile cache, so nothing is served from the engine's in-memory map of
//! loaded components or from an earlier iteration's artifact. Each times
//! `Engine::load` plus the first run (`log:0`, a call that returns at once).
//!
//! - `cold/cranelift-first-result`: tiered compilation off, so the first
//!   run waits for Cranelift's compile (which is cached);
//! - `cold/tiered-first-result`: the default: Winch compiles, the run
//!   starts at once, and Cranelift compiles in the background (awaited
//!   after the timed part, so iterations do not overlap);
//! - `cold/cached`: a fresh engine whose compile cache already holds the
//!   artifact (a memory-mapped `.cwasm`).
//!
//! Run with `cargo bench --bench cold`.

mod common;

use std::time::{Duration, Instant};

use common::{record, report_ratio};
use criterion::{Criterion, criterion_group, criterion_main};
use orbit::orbit_engine::{Engine, EngineConfig, Invocation, Tier};
use orbit::orbit_runs::RunStore;

fn engine(dir: &std::path::Path, tiered: bool) -> Engine {
    let runs = RunStore::open(&dir.join("runs.redb")).unwrap();
    let mut config = EngineConfig::with_cache_dir(dir.join("compiled"));
    config.tiered_compilation = tiered;
    Engine::builder(config, runs).build().unwrap()
}

/// Loads `wasm` and runs it once; the time to the first result.
fn first_result(rt: &tokio::runtime::Runtime, engine: &Engine, wasm: &[u8], tier: Tier) -> Duration {
    let start = Instant::now();
    let component = engine.load(wasm).unwrap();
    let out = rt.block_on(engine.invoke(&component, Invocation::new("log:0"))).unwrap();
    let took = start.elapsed();
    assert!(out.status().is_success(), "{:?}", out.record);
    assert_eq!(component.tier(), tier);
    took
}

fn cold(c: &mut Criterion) {
    common::start();
    let wasm = orbit_test_guests::bytes("bench");
    let rt = tokio::runtime::Runtime::new().unwrap();
    record(&format!("cold: component of {} bytes", wasm.len()));
    let mut g = c.benchmark_group("cold");
    g.sample_size(10).measurement_time(Duration::from_secs(20));

    for (id, tiered, tier) in
        [("cranelift-first-result", false, Tier::Optimized), ("tiered-first-result", true, Tier::Baseline)]
    {
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let engine = engine(dir.path(), tiered);
                    assert!(!engine.is_cached(&wasm));
                    total += first_result(&rt, &engine, &wasm, tier);
                    // Not timed: the background compile, so that the next
                    // iteration has both cores.
                    assert!(engine.wait_for_tier_ups(Duration::from_secs(120)));
                    assert!(engine.is_cached(&wasm));
                }
                total
            })
        });
    }

    // The first result's parts: the baseline compile alone (validation,
    // Winch, link, and building Winch's engine at the first cache miss).
    g.bench_function("tiered-load", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let engine = engine(dir.path(), true);
                let start = Instant::now();
                let component = engine.load(&wasm).unwrap();
                total += start.elapsed();
                assert_eq!(component.tier(), Tier::Baseline);
                assert!(engine.wait_for_tier_ups(Duration::from_secs(120)));
            }
            total
        })
    });

    let dir = tempfile::tempdir().unwrap();
    engine(dir.path(), false).load(&wasm).unwrap();
    g.bench_function("cached", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let engine = engine(dir.path(), true);
                assert!(engine.is_cached(&wasm));
                total += first_result(&rt, &engine, &wasm, Tier::Optimized);
            }
            total
        })
    });
    g.finish();
    report_ratio("cold", "tiered-first-result", "cranelift-first-result", "P7: tiered ≤ 150 ms absolute");
    report_ratio("cold", "cached", "tiered-first-result", "reported");
}

criterion_group!(benches, cold);
criterion_main!(benches);
