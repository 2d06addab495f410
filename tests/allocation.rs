//! The instance allocator (`EngineConfig::instance_allocation`): every limit
//! ends a real guest the same way in a pooled slot and in memory allocated
//! for the run alone, an artifact compiled under one is a compile-cache hit
//! under the other, and only the pool refuses at load a component that
//! would not fit its slots (what Orbit's front ends rely on).

mod common;

use std::os::unix::fs::MetadataExt;

use common::cases::{cancel_a_spinning_run, cases, command_wat};
use orbit::{InstanceAllocation, Invocation, Orbit, OrbitConfig, RunStatus, Tier};

fn open(dir: &std::path::Path, allocation: InstanceAllocation) -> Orbit {
    let mut config = OrbitConfig::default();
    config.engine.instance_allocation = allocation;
    // Cranelift's code both times, so the second open finds the first's
    // artifacts in the compile cache.
    config.engine.tiered_compilation = false;
    Orbit::open_with(dir, config).unwrap()
}

/// The compiled artifacts in `dir`'s compile cache, by name, with inodes
/// (an artifact compiled again is renamed into place: a new inode).
fn artifacts(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut found: Vec<_> = std::fs::read_dir(dir.join("compiled"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().ino())
        })
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_ends_a_run_the_same_way_under_both_instance_allocators() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    let mut compiled = Vec::new();
    for allocation in [InstanceAllocation::Pooling, InstanceAllocation::OnDemand] {
        let orbit = open(dir.path(), allocation);
        let engine = orbit.engine();
        let pooled = engine.wasmtime().pooling_allocator_metrics().is_some();
        assert_eq!(pooled, allocation == InstanceAllocation::Pooling, "{allocation:?}");
        let mut loaded = std::collections::HashMap::new();
        for case in cases() {
            let wasm = orbit_test_guests::bytes(case.guest);
            if allocation == InstanceAllocation::OnDemand {
                assert!(engine.is_cached(&wasm), "{}: the pooled engine's artifact is a hit", case.guest);
            }
            loaded.entry(case.guest).or_insert_with(|| engine.load(&wasm).unwrap());
            assert_eq!(loaded[case.guest].tier(), Tier::Optimized);
        }
        let mut outcomes = Vec::new();
        for case in cases() {
            let inv = Invocation::new(case.input.clone()).limits(case.limits.clone());
            let out = engine.invoke(&loaded[case.guest], inv).await.unwrap();
            assert_eq!(out.status(), case.status, "{allocation:?} {}: {:?}", case.guest, out.record.error);
            let stored = engine.runs().get(out.run_id()).unwrap().expect("recorded");
            assert_eq!(stored.status, case.status);
            if case.status == RunStatus::OutOfFuel {
                assert!(out.fuel_consumed() >= 4_900_000, "{allocation:?}: fuel consumed {}", out.fuel_consumed());
            }
            if case.status == RunStatus::MemoryLimit {
                assert!(out.record.memory_bytes <= 32 << 20, "{allocation:?}: held {}", out.record.memory_bytes);
            }
            // The same code meters the same fuel whatever holds its memory;
            // a run stopped by a deadline spends what the time allowed.
            let fuel = if case.status == RunStatus::DeadlineExceeded { 0 } else { out.fuel_consumed() };
            let code = stored.error.map(|e| e.code);
            outcomes.push((out.status(), code, out.output_text(), out.record.exit_code, fuel));
        }

        // Cancellation stops a running guest under either allocator.
        assert_eq!(cancel_a_spinning_run(engine, &loaded["spin"]).await, RunStatus::Cancelled, "{allocation:?}");
        seen.push(outcomes);
        drop(orbit);
        compiled.push(artifacts(dir.path()));
    }
    // The same statuses, error codes, outputs, exit codes and fuel, case by case.
    assert_eq!(seen[0], seen[1]);
    // Nothing was compiled again: the same artifacts, the same files.
    assert!(!compiled[0].is_empty());
    assert_eq!(compiled[0], compiled[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_runs_at_once_under_the_on_demand_allocator_each_answer_their_own_input() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = open(dir.path(), InstanceAllocation::OnDemand);
    let engine = orbit.engine();
    let echo = engine.load(&orbit_test_guests::bytes("echo")).unwrap();
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (engine, echo) = (engine.clone(), echo.clone());
        runs.spawn(async move { (i, engine.invoke(&echo, Invocation::new(format!("run {i}"))).await.unwrap()) });
    }
    let mut answered = 0;
    while let Some(done) = runs.join_next().await {
        let (i, out) = done.unwrap();
        assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
        assert_eq!(out.output_text(), format!("run {i}"));
        answered += 1;
    }
    assert_eq!(answered, 16);
}

/// The core module of a `wasi:cli` command that defines two linear memories: more
/// than a pooled slot holds (one per module), so the pool refuses it when it
/// loads, and the on-demand allocator lets it run.
const TWO_MEMORIES_COMMAND: &str = r#"
    (memory 1)
    (memory 1)
    (func (export "run") (result i32) i32.const 0)"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_pool_refuses_a_component_that_does_not_fit_its_slots() {
    let wasm = command_wat(TWO_MEMORIES_COMMAND);
    let dir = tempfile::tempdir().unwrap();
    let pooled = open(&dir.path().join("pooled"), InstanceAllocation::Pooling);
    let err = pooled.engine().load(&wasm).err().expect("the pool refuses two memories in one module");
    assert!(err.to_string().contains("memor"), "{err}");
    let on_demand = open(&dir.path().join("on-demand"), InstanceAllocation::OnDemand);
    let component = on_demand.engine().load(&wasm).unwrap();
    let out = on_demand.engine().invoke(&component, Invocation::new("")).await.unwrap();
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
}

/// A `wasi:cli` command whose one table (of one element) grows to
/// `elements` in all: it succeeds when the growth is granted and exits
/// with 1 when it is refused.
fn table_to(elements: u32) -> Vec<u8> {
    command_wat(&format!(
        r#"
    (table $t 1 funcref)
    (func (export "run") (result i32)
      (i32.eq (table.grow $t (ref.null func) (i32.const {more})) (i32.const -1)))"#,
        more = elements - 1
    ))
}

/// A run's `Limits::table_elements` is what its tables may grow to, up to
/// `POOL_TABLE_ELEMENTS` (100,000), whatever the engine's default limits
/// and under both allocators: the pool's slots hold that many elements,
/// and a larger limit is lowered to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_grows_to_its_runs_limit_under_both_instance_allocators() {
    let dir = tempfile::tempdir().unwrap();
    for allocation in [InstanceAllocation::Pooling, InstanceAllocation::OnDemand] {
        // The engine's default limits: 20,000 elements.
        let orbit = open(&dir.path().join(format!("{allocation:?}")), allocation);
        let engine = orbit.engine();
        for (limit, reached) in [(20_000, 20_000), (50_000, 50_000), (100_000, 100_000), (250_000, 100_000)] {
            let mut limits = orbit::Limits::default();
            limits.table_elements = limit;
            let within = engine.load(&table_to(reached)).unwrap();
            let out = engine.invoke(&within, Invocation::new("").limits(limits.clone())).await.unwrap();
            assert_eq!(out.status(), RunStatus::Succeeded, "{allocation:?}, limit {limit}: {:?}", out.record);
            // One element more is refused: the guest sees `table.grow` fail.
            let past = engine.load(&table_to(reached + 1)).unwrap();
            let out = engine.invoke(&past, Invocation::new("").limits(limits)).await.unwrap();
            assert_eq!(out.status(), RunStatus::Exited, "{allocation:?}, limit {limit}: {:?}", out.record);
            assert_eq!(out.record.exit_code, Some(1), "{allocation:?}, limit {limit}");
        }
    }
}
