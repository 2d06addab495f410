//! Waiting for a run slot: an invocation with a slot deadline waits until a
//! slot frees (woken, not polling) or its deadline passes (`Busy`, never
//! started).

use std::time::Duration;

use orbit::{EngineError, Invocation, Orbit, OrbitConfig, RunStatus};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waits_for_a_slot_until_its_slot_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = OrbitConfig::default();
    config.engine.max_concurrent_runs = 1;
    let orbit = Orbit::open_with(dir.path(), config).unwrap();
    let engine = orbit.engine().clone();
    let ops = engine.load(&orbit_test_guests::bytes("ops")).unwrap();
    let echo = engine.load(&orbit_test_guests::bytes("echo")).unwrap();

    // One run holds the only slot for a while.
    let sleeper = {
        let (engine, ops) = (engine.clone(), ops.clone());
        let script = json!([{"op": "sleep_ms", "ms": 1500}]).to_string();
        tokio::spawn(async move { engine.invoke(&ops, Invocation::new(script)).await })
    };
    while engine.runs_in_flight() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A short deadline passes first: Busy, and the run never started.
    let soon = tokio::time::Instant::now() + Duration::from_millis(50);
    let refused = engine.invoke(&echo, Invocation::new("early").slot_deadline(soon)).await;
    assert!(matches!(refused, Err(EngineError::Busy)), "{:?}", refused.map(|o| o.record.status));
    // A long one waits for the slot and runs.
    let later = tokio::time::Instant::now() + Duration::from_secs(60);
    let done = engine.invoke(&echo, Invocation::new("waited").slot_deadline(later)).await.unwrap();
    assert_eq!((done.record.status, done.output_text()), (RunStatus::Succeeded, "waited".to_owned()));
    assert_eq!(sleeper.await.unwrap().unwrap().record.status, RunStatus::Succeeded);
    // The refused one left no record: only the sleeper and the waiter ran.
    let mut q = orbit::RunQuery::new(orbit::WorkspaceId::default());
    q.limit = 10;
    assert_eq!(orbit.runs().list(&q).unwrap().runs.len(), 2);
}

/// A slot reserved ahead of its run counts against the cap from the moment
/// it is taken, runs the invocation given to `invoke_in`, and is freed when
/// that run is recorded; another engine's slot is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_slot_holds_its_place_until_its_run_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = OrbitConfig::default();
    config.engine.max_concurrent_runs = 1;
    let orbit = Orbit::open_with(dir.path(), config).unwrap();
    let engine = orbit.engine().clone();
    let echo = engine.load(&orbit_test_guests::bytes("echo")).unwrap();

    let slot = engine.reserve(&Invocation::new("ignored")).await.unwrap();
    assert_eq!(engine.runs_in_flight(), 1);
    let soon = tokio::time::Instant::now() + Duration::from_millis(50);
    let refused = engine.invoke(&echo, Invocation::new("early").slot_deadline(soon)).await;
    assert!(matches!(refused, Err(EngineError::Busy)), "{:?}", refused.map(|o| o.record.status));
    let done = engine.invoke_in(slot, &echo, Invocation::new("reserved")).await.unwrap();
    assert_eq!((done.record.status, done.output_text()), (RunStatus::Succeeded, "reserved".to_owned()));
    assert_eq!(engine.runs_in_flight(), 0);

    let other_dir = tempfile::tempdir().unwrap();
    let other = Orbit::open(other_dir.path()).unwrap();
    let foreign = other.engine().reserve(&Invocation::new("x")).await.unwrap();
    let r = engine.invoke_in(foreign, &echo, Invocation::new("x")).await;
    assert!(matches!(r, Err(EngineError::ForeignComponent)), "{:?}", r.map(|o| o.record.status));
}
