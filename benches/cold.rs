//! The cold path: the first load of a component (validate, compile with
//! Cranelift, write the artifact to the compile cache, link), against
//! loading the cached artifact (memory-map it and link), in one run.
//!
//! The component is the `bench` fixture (1.3 MiB: `sha2` and `regex` with
//! its Unicode tables). Each iteration uses a fresh engine, so neither path
//! is served from the engine's in-memory map of loaded components.
//!
//! - `cold/compile`: `Engine::load` with an empty compile cache;
//! - `cold/cached`: `Engine::load` with the artifact already on disk.
//!
//! Run with `cargo bench --bench cold`.

mod common;

use std::time::{Duration, Instant};

use common::{record, report_ratio};
use criterion::{Criterion, criterion_group, criterion_main};
use orbit::orbit_engine::{Engine, EngineConfig};
use orbit::orbit_runs::RunStore;

fn engine(dir: &std::path::Path) -> Engine {
    let runs = RunStore::open(&dir.join("runs.redb")).unwrap();
    Engine::builder(EngineConfig::with_cache_dir(dir.join("compiled")), runs).build().unwrap()
}

fn cold(c: &mut Criterion) {
    common::start();
    let wasm = orbit_test_guests::bytes("bench");
    record(&format!("cold: component of {} bytes", wasm.len()));
    let mut g = c.benchmark_group("cold");
    g.sample_size(10).measurement_time(Duration::from_secs(20));

    g.bench_function("compile", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let engine = engine(dir.path());
                assert!(!engine.is_cached(&wasm));
                let start = Instant::now();
                engine.load(&wasm).unwrap();
                total += start.elapsed();
                assert!(engine.is_cached(&wasm));
            }
            total
        })
    });

    let dir = tempfile::tempdir().unwrap();
    engine(dir.path()).load(&wasm).unwrap();
    g.bench_function("cached", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let engine = engine(dir.path());
                assert!(engine.is_cached(&wasm));
                let start = Instant::now();
                engine.load(&wasm).unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
    report_ratio("cold", "compile", "cached", "reported");
}

criterion_group!(benches, cold);
criterion_main!(benches);
