//! The cost of one primitive call with no I/O, looped in the guest.
//!
//! The `bench` fixture's `log:N` makes `N` calls of the `log` host function
//! (`orbit:runtime/log`) with a 4-byte line. Each function runs `log:0` and
//! `log:10000`; the per-call cost is the difference divided by 10,000, so
//! instantiation and the run record's fixed part cancel out.
//!
//! - `hostcall/bare-noop-*`: bare wasmtime with Orbit's `Config`, where `log`
//!   is a no-op host function of the same generated binding (the baseline);
//! - `hostcall/orbit-log-*`: a full Orbit run, where every line is kept on
//!   the run record (committed to a run store on tmpfs).
//!
//! Run with `cargo bench --bench hostcall`.

mod common;

use std::time::Duration;

use common::{BareLimits, bare, bare_run, median_ns, record};
use criterion::{Criterion, criterion_group, criterion_main};
use orbit::{Invocation, Orbit};

const CALLS: u64 = 10_000;

fn hostcall(c: &mut Criterion) {
    common::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let wasm = orbit_test_guests::bytes("bench");
    let mut g = c.benchmark_group("hostcall");
    g.measurement_time(Duration::from_secs(5));

    let (engine, pre) = bare(&wasm, BareLimits::Same);
    for n in [0, CALLS] {
        let input = format!("log:{n}");
        g.bench_function(format!("bare-noop-{n}"), |b| {
            b.to_async(&rt)
                .iter(|| async { assert_eq!(bare_run(&engine, &pre, BareLimits::Same, &input).await, n.to_string()) })
        });
    }

    let dir = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let orbit = Orbit::open(dir.path()).unwrap();
    let component = orbit.engine().load(&wasm).unwrap();
    for n in [0, CALLS] {
        let input = format!("log:{n}");
        g.bench_function(format!("orbit-log-{n}"), |b| {
            b.to_async(&rt).iter(|| async {
                let out = orbit.engine().invoke(&component, Invocation::new(input.clone())).await.unwrap();
                assert_eq!(out.output_text(), n.to_string());
            })
        });
    }
    g.finish();

    // Every call reaches the host; the record keeps lines up to the run's
    // log budget, each 4-byte line costing its text plus the per-line
    // overhead, and says the rest were dropped.
    let out = rt.block_on(orbit.engine().invoke(&component, Invocation::new(format!("log:{CALLS}")))).unwrap();
    assert_eq!(out.output_text(), CALLS.to_string());
    let per_line = 4 + orbit::orbit_engine::LOG_LINE_OVERHEAD;
    let kept = (orbit::Limits::default().log_bytes / per_line).min(CALLS as usize);
    assert_eq!(out.record.logs.len(), kept);
    assert_eq!(out.record.logs_truncated, kept < CALLS as usize);

    if common::full_mode() {
        let per_call = |who: &str| -> Option<f64> {
            Some(
                (median_ns("hostcall", &format!("{who}-{CALLS}"))? - median_ns("hostcall", &format!("{who}-0"))?)
                    / CALLS as f64,
            )
        };
        if let (Some(orbit), Some(bare)) = (per_call("orbit-log"), per_call("bare-noop")) {
            record(&format!(
                "hostcall/orbit-log = {orbit:.0} ns per call vs hostcall/bare-noop = {bare:.0} ns per call: ratio {:.2}x (target <= 1 µs and <= 10x)",
                orbit / bare
            ));
        }
    }
}

criterion_group!(benches, hostcall);
criterion_main!(benches);
