//! Tiered compilation: the first load of a component that is not in the
//! compile cache runs Winch's baseline code at once, Cranelift compiles it
//! in the background into the cache, and later loads (in this process or
//! the next) get Cranelift's code. Every limit ends a real guest with the
//! same typed status under both compilers.

mod common;

use std::time::Duration;

use common::cases::{Ending, cancel_a_spinning_run, cases, command_wat};
use orbit::{Invocation, LoadedComponent, Orbit, OrbitConfig, RunStatus, Tier};

fn open(dir: &std::path::Path, tiered: bool) -> Orbit {
    let mut config = OrbitConfig::default();
    config.engine.tiered_compilation = tiered;
    Orbit::open_with(dir, config).unwrap()
}

fn load(orbit: &Orbit, guest: &str, tier: Tier) -> LoadedComponent {
    let component = orbit.engine().load(&orbit_test_guests::bytes(guest)).unwrap();
    assert_eq!(component.tier(), tier, "{guest}");
    component
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_uses_baseline_code_and_later_runs_cranelifts_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = orbit_test_guests::bytes("echo");
    let orbit = open(dir.path(), true);
    let engine = orbit.engine();
    assert!(!engine.is_cached(&wasm));

    let baseline = load(&orbit, "echo", Tier::Baseline);
    let first = engine.invoke(&baseline, Invocation::new("first")).await.unwrap();
    assert_eq!((first.status(), first.output_text().as_str()), (RunStatus::Succeeded, "first"));

    // The optimizing compile ends in the cache, and replaces the code that
    // later loads get.
    assert!(engine.wait_for_tier_ups(Duration::from_secs(120)), "the tier-up finished");
    assert_eq!(engine.tier_ups_in_flight(), 0);
    assert!(engine.is_cached(&wasm), "Cranelift's artifact is in the compile cache");
    let optimized = load(&orbit, "echo", Tier::Optimized);
    let later = engine.invoke(&optimized, Invocation::new("later")).await.unwrap();
    assert_eq!((later.status(), later.output_text().as_str()), (RunStatus::Succeeded, "later"));
    // A value keeps its tier: the baseline component still runs.
    let again = engine.invoke(&baseline, Invocation::new("again")).await.unwrap();
    assert_eq!(again.output_text(), "again");
    // Both runs are recorded as runs of the same component.
    let digest = orbit::orbit_engine::digest(&wasm);
    for out in [&first, &later, &again] {
        assert_eq!(engine.runs().get(out.run_id()).unwrap().unwrap().component_digest, digest);
    }
    drop(orbit);

    // The next process loads the cached artifact: no baseline compile.
    let orbit = open(dir.path(), true);
    let cached = load(&orbit, "echo", Tier::Optimized);
    assert_eq!(orbit.engine().tier_ups_in_flight(), 0);
    let out = orbit.engine().invoke(&cached, Invocation::new("next")).await.unwrap();
    assert_eq!(out.output_text(), "next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tiering_off_the_first_load_is_cranelifts_and_cached() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), false);
    load(&orbit, "echo", Tier::Optimized);
    assert_eq!(orbit.engine().tier_ups_in_flight(), 0);
    assert!(orbit.engine().is_cached(&orbit_test_guests::bytes("echo")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_a_component_get_the_same_error_with_tiering_on() {
    let dir = tempfile::tempdir().unwrap();
    for tiered in [true, false] {
        let orbit = open(&dir.path().join(tiered.to_string()), tiered);
        let mut garbage = b"\0asm\x0d\0\x01\0".to_vec();
        garbage.extend_from_slice(&[0xff; 64]);
        let err = orbit.engine().load(&garbage).err().expect("refused");
        assert!(matches!(err, orbit::EngineError::NotAComponent(_)), "{err}");
        assert_eq!(orbit.engine().tier_ups_in_flight(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_ends_a_run_the_same_way_under_both_compilers() {
    let mut seen: Vec<Vec<Ending>> = Vec::new();
    for tier in [Tier::Baseline, Tier::Optimized] {
        let dir = tempfile::tempdir().unwrap();
        let orbit = open(dir.path(), tier == Tier::Baseline);
        let engine = orbit.engine();
        // Loaded once per fixture, before any run: each keeps its tier.
        // The cases use 9 fixtures, and past 8 tier-ups waiting a load
        // compiles with Cranelift (`MAX_PENDING_TIER_UPS`), so each tier-up
        // ends before the next load; on a loaded machine none had ended by
        // the ninth (seen in CI).
        let mut loaded = std::collections::HashMap::new();
        for case in cases() {
            loaded.entry(case.guest).or_insert_with(|| {
                let component = load(&orbit, case.guest, tier);
                assert!(engine.wait_for_tier_ups(Duration::from_secs(120)), "{}: the tier-up ended", case.guest);
                component
            });
        }
        let mut outcomes = Vec::new();
        for case in cases() {
            let inv = Invocation::new(case.input.clone()).limits(case.limits.clone());
            let out = engine.invoke(&loaded[case.guest], inv).await.unwrap();
            assert_eq!(out.status(), case.status, "{:?} {}: {:?}", tier, case.guest, out.record.error);
            let stored = engine.runs().get(out.run_id()).unwrap().expect("recorded");
            assert_eq!(stored.status, case.status);
            if case.status == RunStatus::OutOfFuel {
                assert!(out.fuel_consumed() >= 4_900_000, "{tier:?}: fuel consumed {}", out.fuel_consumed());
            }
            let code = stored.error.map(|e| e.code);
            // Both compilers meter the same operators, so a run that returns
            // costs the same fuel. One stopped midway (a trap, `exit`) may
            // differ slightly (5,257 and 5,334 for `exit-code`): the two
            // account the fuel of the code around the stop differently.
            let fuel = if case.status == RunStatus::Succeeded { out.fuel_consumed() } else { 0 };
            outcomes.push((out.status(), code, out.output_text(), out.record.exit_code, fuel));
        }

        // Cancellation stops a running guest under either compiler.
        assert_eq!(cancel_a_spinning_run(engine, &loaded["spin"]).await, RunStatus::Cancelled, "{tier:?}");
        engine.wait_for_tier_ups(Duration::from_secs(120));
        seen.push(outcomes);
    }
    // The same statuses, error codes, outputs, exit codes and fuel, case by case.
    assert_eq!(seen[0], seen[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_optimized_compiles_with_cranelift_into_the_cache_even_after_a_baseline_load() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = orbit_test_guests::bytes("echo");
    let orbit = open(dir.path(), true);
    load(&orbit, "echo", Tier::Baseline);
    // Without waiting for the tier-up: what `orbit compile` calls.
    let optimized = orbit.engine().load_optimized(&wasm).unwrap();
    assert_eq!(optimized.tier(), Tier::Optimized);
    assert!(orbit.engine().is_cached(&wasm));
    // Later loads get it, before and after the tier-up ends.
    assert_eq!(orbit.engine().load(&wasm).unwrap().tier(), Tier::Optimized);
    assert!(orbit.engine().wait_for_tier_ups(Duration::from_secs(120)));
    assert_eq!(orbit.engine().load(&wasm).unwrap().tier(), Tier::Optimized);
    let out = orbit.engine().invoke(&optimized, Invocation::new("ok")).await.unwrap();
    assert_eq!(out.output_text(), "ok");
}

/// The core module of a `wasi:cli` command that uses a tail call (`return_call`),
/// which Winch does not support: the load falls back to Cranelift at once,
/// and the command runs.
const TAIL_CALL_COMMAND: &str = r#"
    (func $ok (result i32) i32.const 0)
    (func (export "run") (result i32) return_call $ok)"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_winch_cannot_compile_falls_back_to_cranelift_at_once() {
    let wasm = command_wat(TAIL_CALL_COMMAND);
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), true);
    let component = orbit.engine().load(&wasm).unwrap();
    assert_eq!(component.tier(), Tier::Optimized, "Winch refused it; Cranelift compiled it");
    assert_eq!(orbit.engine().tier_ups_in_flight(), 0, "nothing is left to tier up");
    assert!(orbit.engine().is_cached(&wasm));
    let out = orbit.engine().invoke(&component, Invocation::new("")).await.unwrap();
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    assert_eq!(out.record.exit_code, Some(0));
}
