//! Compiles run under a concurrency cap (`max_concurrent_compiles`), tier-ups
//! included, and a compile whose caller gave up before it got a place never
//! runs. The cache tests compile with Cranelift up front (tiering off); the
//! tiered path is in `tiers.rs`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use orbit::{EngineError, Orbit, OrbitConfig};

fn orbit_with(max_compiles: usize, timeout: Duration, tiered: bool) -> (Orbit, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = OrbitConfig::default();
    config.engine.max_concurrent_compiles = max_compiles;
    config.engine.compile_timeout = timeout;
    config.engine.tiered_compilation = tiered;
    (Orbit::open_with(dir.path(), config).unwrap(), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiles_wait_for_a_place_under_the_cap() {
    for tiered in [false, true] {
        compiles_wait_under_the_cap(tiered).await;
    }
}

async fn compiles_wait_under_the_cap(tiered: bool) {
    let (orbit, _dir) = orbit_with(1, Duration::from_secs(600), tiered);
    let engine = orbit.engine().clone();
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (engine, most, done) = (engine.clone(), most.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                most.fetch_max(engine.compiles_in_flight(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let loads: Vec<_> = ["echo", "spin", "membomb", "recursion"]
        .into_iter()
        .map(|guest| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.load_async(&orbit_test_guests::bytes(guest), 64 << 20).await })
        })
        .collect();
    for load in loads {
        load.await.unwrap().expect("every component compiles, one after another");
    }
    // Cranelift's background compiles of the baseline code, under the same cap.
    assert!(engine.wait_for_tier_ups(Duration::from_secs(300)));
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    assert_eq!(most.load(Ordering::Relaxed), 1, "compiles ran one at a time, and were seen running (tiered: {tiered})");
    assert_eq!(engine.compiles_in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_given_up_before_its_turn_never_runs() {
    let (orbit, _dir) = orbit_with(1, Duration::from_millis(20), false);
    let engine = orbit.engine();
    let big = orbit_test_guests::bytes("bench");
    let small = orbit_test_guests::bytes("echo");
    // The 1.3 MiB component takes longer than 20 ms: its caller gives up,
    // and it goes on compiling in its place, then is cached.
    let first = engine.load_async(&big, 64 << 20).await;
    assert!(matches!(first, Err(EngineError::CompileTimeout(_))), "{:?}", first.err());
    // This one waits behind it, past its own timeout: given up unstarted.
    let second = engine.load_async(&small, 64 << 20).await;
    assert!(matches!(second, Err(EngineError::CompileTimeout(_))), "{:?}", second.err());
    while !engine.is_cached(&big) || engine.compiles_in_flight() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Give an abandoned compile every chance to show up: it must not.
    for _ in 0..100 {
        assert_eq!(engine.compiles_in_flight(), 0, "the abandoned compile started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!engine.is_cached(&small), "the abandoned compile never ran");
    // Asked again with time to spare, it compiles.
    engine.load(&small).expect("compiles when asked again");
    assert!(engine.is_cached(&small));
}

/// The artifacts in `dir` whose component has digest `d`.
fn cached(dir: &std::path::Path, d: &str) -> Option<u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(d) && e.file_name().to_string_lossy().ends_with(".cwasm"))
        .map(|e| e.metadata().unwrap().len())
}

/// The compile cache keeps within its byte cap by removing the artifacts
/// loaded least recently; a removed one compiles again when next needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compile_cache_keeps_to_its_cap_least_recently_used_first() {
    let [echo, spin, trap] = ["echo", "spin", "trap"].map(orbit_test_guests::bytes);
    let [d_echo, d_spin, d_trap] = [&echo, &spin, &trap].map(|w| orbit::orbit_engine::digest(w));
    let dir = tempfile::tempdir().unwrap();
    let compiled = dir.path().join("compiled");
    // Sizes, with room for all.
    let sizes = {
        let orbit = Orbit::open(dir.path()).unwrap();
        for w in [&echo, &spin, &trap] {
            orbit.engine().load(w).unwrap();
        }
        assert!(orbit.engine().wait_for_tier_ups(Duration::from_secs(300)));
        [&d_echo, &d_spin, &d_trap].map(|d| cached(&compiled, d).expect("cached"))
    };
    std::fs::remove_dir_all(&compiled).unwrap();
    let open = |cap: u64| {
        let mut config = OrbitConfig::default();
        config.engine.max_cache_bytes = cap;
        config.engine.tiered_compilation = false;
        Orbit::open_with(dir.path(), config).unwrap()
    };
    // Room for echo and trap, not for spin as well.
    let cap = sizes[0] + sizes[2] + sizes[1] / 2;
    {
        let orbit = open(cap);
        orbit.engine().load(&echo).unwrap();
        orbit.engine().load(&spin).unwrap();
    }
    // A new process loads echo from disk: it is now the most recently used.
    {
        let orbit = open(cap);
        orbit.engine().load(&echo).unwrap();
        orbit.engine().load(&trap).unwrap();
    }
    assert!(cached(&compiled, &d_echo).is_some(), "echo was used most recently but one");
    assert!(cached(&compiled, &d_trap).is_some(), "the newest is kept");
    assert!(cached(&compiled, &d_spin).is_none(), "spin was used least recently");
    let total: u64 = [&d_echo, &d_spin, &d_trap].iter().filter_map(|d| cached(&compiled, d)).sum();
    assert!(total <= cap, "{total} > {cap}");
    // Evicted is not lost: it compiles again, and is cached again.
    let orbit = open(cap);
    orbit.engine().load(&spin).unwrap();
    assert!(cached(&compiled, &d_spin).is_some());
}
