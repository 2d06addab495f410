//! A CPU-bound guest with Orbit's limits on, against the same guest with no
//! limits and against the same code compiled natively, in one run.
//!
//! The work: generate 1 MiB of deterministic bytes and SHA-256 them (the
//! `bench` fixture's `sha256:1`, built from the same `sha2` crate as the
//! native baseline).
//!
//! - `cpu/native`: the same Rust code compiled for the host;
//! - `cpu/bare-unlimited`: bare wasmtime, Orbit's `Config` with fuel and
//!   epoch interruption off (the baseline of the target);
//! - `cpu/bare-limited`: bare wasmtime with fuel and epochs on (the cost of
//!   the limits alone);
//! - `cpu/orbit`: a full Orbit run with its default fuel budget and
//!   deadline, run record committed to a run store on tmpfs.
//!
//! Run with `cargo bench --bench cpu`.

mod common;

use std::time::Duration;

use common::{BareLimits, bare, bare_run, report_ratio};
use criterion::{Criterion, criterion_group, criterion_main};
use orbit::{Invocation, Orbit};
use sha2::{Digest, Sha256};

/// The fixture's input, computed natively (see `tests/fixtures/bench`).
fn native() -> String {
    let data: Vec<u8> = (0..1usize << 20).map(|i| ((i * 31 + 7) % 251) as u8).collect();
    hex::encode(Sha256::digest(&data))
}

fn cpu(c: &mut Criterion) {
    common::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let wasm = orbit_test_guests::bytes("bench");
    let expected = native();
    let mut g = c.benchmark_group("cpu");
    g.measurement_time(Duration::from_secs(8)).sample_size(30);

    g.bench_function("native", |b| b.iter(|| assert_eq!(native(), expected)));
    for (name, limits) in [("bare-unlimited", BareLimits::Unlimited), ("bare-limited", BareLimits::Same)] {
        let (engine, pre) = bare(&wasm, limits);
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async { assert_eq!(bare_run(&engine, &pre, limits, "sha256:1").await, expected) })
        });
    }
    let dir = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let orbit = Orbit::open(dir.path()).unwrap();
    let component = orbit.engine().load(&wasm).unwrap();
    g.bench_function("orbit", |b| {
        b.to_async(&rt).iter(|| async {
            let out = orbit.engine().invoke(&component, Invocation::new("sha256:1")).await.unwrap();
            assert_eq!(out.output_text(), expected);
        })
    });
    g.finish();
    report_ratio("cpu", "orbit", "bare-unlimited", "<= 1.3x");
    report_ratio("cpu", "bare-limited", "bare-unlimited", "the limits alone");
    report_ratio("cpu", "orbit", "native", "reported");
}

criterion_group!(benches, cpu);
criterion_main!(benches);
