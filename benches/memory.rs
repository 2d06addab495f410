//! Resident memory per concurrent idle invocation.
//!
//! Starts `N` runs of the `bench` fixture's `sleep:MS` at once (each is
//! instantiated, then blocks in `wasi:clocks`), waits until all `N` are in
//! flight, and divides the growth of the process's resident set (`VmRSS`)
//! by `N`. The engine is built for `N` concurrent runs, and one run is made
//! first so that one-time costs (the compiled code, the first pool slots,
//! the run store) are not counted. Once all have ended, it reports the
//! resident memory the pool keeps (wasmtime's pool metrics), then measures
//! both again with nothing kept resident (`-released`,
//! `EngineConfig::keep_resident_bytes = 0`), second in the same process.
//!
//! `cargo bench --bench memory` runs 1,000 invocations (the target is at
//! most 200 KiB each); `cargo test --benches` runs 50 as a quick check.
//! Not a criterion bench: it measures bytes, not time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use orbit::{Invocation, Orbit, OrbitConfig, RunStatus};

/// The resident set of this process in bytes, from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn main() {
    let full = common::full_mode();
    let (n, sleep_ms) = if full { (1000usize, 4000u64) } else { (50, 1000) };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // The default keeps 2 MiB of each pooled memory resident after a run;
    // `-released` hands it all back.
    for (suffix, keep) in [("", OrbitConfig::default().engine.keep_resident_bytes), ("-released", 0)] {
        idle_invocations(&rt, full, n, sleep_ms, suffix, keep);
    }
}

fn idle_invocations(rt: &tokio::runtime::Runtime, full: bool, n: usize, sleep_ms: u64, suffix: &str, keep: usize) {
    let dir = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let mut config = OrbitConfig::default();
    config.engine.max_concurrent_runs = n as u32;
    config.engine.keep_resident_bytes = keep;
    let orbit = Orbit::open_with(dir.path(), config).unwrap();
    let wasm = orbit_test_guests::bytes("bench");
    // Loaded again after the tier-up, so the runs use Cranelift's code and
    // pool, the one whose metrics `Engine::wasmtime` gives (the baseline
    // compiler has a pool of its own).
    orbit.engine().load(&wasm).unwrap();
    assert!(orbit.engine().wait_for_tier_ups(Duration::from_secs(120)), "tier-up did not finish");
    let component = orbit.engine().load(&wasm).unwrap();
    assert_eq!(component.tier(), orbit::Tier::Optimized);

    rt.block_on(async {
        let warm = orbit.engine().invoke(&component, Invocation::new("sleep:1")).await.unwrap();
        assert_eq!(warm.status(), RunStatus::Succeeded);
        let before = rss_bytes();
        let done = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (orbit, component, done) = (orbit.clone(), component.clone(), done.clone());
                tokio::spawn(async move {
                    let out = orbit.engine().invoke(&component, Invocation::new(format!("sleep:{sleep_ms}"))).await;
                    done.fetch_add(1, Ordering::SeqCst);
                    out.unwrap()
                })
            })
            .collect();
        let start = Instant::now();
        while orbit.engine().runs_in_flight() < n && start.elapsed() < Duration::from_millis(sleep_ms / 2) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Let the last ones reach their sleep.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let during = rss_bytes();
        let in_flight = orbit.engine().runs_in_flight();
        // A machine too loaded to start them all in time gives no figure
        // rather than a wrong one.
        let valid = in_flight == n && done.load(Ordering::SeqCst) == 0;
        for t in tasks {
            assert_eq!(t.await.unwrap().status(), RunStatus::Succeeded);
        }
        // What the pool keeps once every run has ended, by its own count.
        let after = rss_bytes();
        let pool = orbit.engine().wasmtime().pooling_allocator_metrics().expect("the pooling allocator");
        let (warm, kept) = (pool.unused_warm_memories(), pool.unused_memory_bytes_resident());
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let per = during.saturating_sub(before) as f64 / n as f64;
        let line = format!(
            "memory/idle-invocations{suffix}: {n} at once, RSS {:.1} MiB -> {:.1} MiB: {:.1} KiB per idle invocation (target <= 200 KiB); once all ended, RSS {:.1} MiB, the pool keeping {:.1} MiB of memory resident in {warm} warm memory slots ({:.1} KiB each; keep_resident_bytes {keep})",
            mib(before),
            mib(during),
            per / 1024.0,
            mib(after),
            mib(kept as u64),
            kept as f64 / f64::from(warm.max(1)) / 1024.0
        );
        if !valid {
            println!("memory/idle-invocations{suffix}: only {in_flight} of {n} runs were in flight together; no figure");
        } else if full {
            common::record(&line);
        } else {
            println!("{line}");
        }
    });
}
