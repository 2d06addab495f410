//! The job store and the primitive's registration against real redb files
//! and a real engine.

use orbit_engine::{Engine, EngineConfig};
use orbit_jobs::{JobDefaults, JobLimits, JobStore, Jobs, JobsError};
use orbit_runs::RunStore;
use orbit_workspace::{Principal, WorkspaceId};

fn ws(name: &str) -> WorkspaceId {
    WorkspaceId::new(name).unwrap()
}

fn store(dir: &tempfile::TempDir) -> JobStore {
    JobStore::open(&dir.path().join("jobs.redb")).unwrap()
}

#[test]
fn a_component_is_stored_once_and_dropped_with_its_last_job() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let (a, b) = (b"component a".as_slice(), b"component b".as_slice());
    s.add(&ws("w"), "one", a, "aa", JobDefaults::default()).unwrap();
    s.add(&ws("w"), "two", a, "aa", JobDefaults::default().fuel(10)).unwrap();
    s.add(&ws("v"), "one", a, "aa", JobDefaults::default()).unwrap();
    assert_eq!(s.component_count().unwrap(), 1, "same digest, stored once");
    s.add(&ws("w"), "three", b, "bb", JobDefaults::default()).unwrap();
    assert_eq!(s.component_count().unwrap(), 2);

    let names: Vec<String> = s.list(&ws("w")).unwrap().into_iter().map(|j| j.name).collect();
    assert_eq!(names, ["one", "three", "two"]);
    assert_eq!(s.get(&ws("w"), "two").unwrap().unwrap().defaults.fuel, Some(10));
    assert!(s.get(&ws("x"), "two").unwrap().is_none(), "jobs are per workspace");

    // Replacing "three" with component a releases b.
    s.add(&ws("w"), "three", a, "aa", JobDefaults::default()).unwrap();
    assert_eq!(s.component_count().unwrap(), 1);
    assert!(s.component("bb").unwrap().is_none());
    for (w, n) in [("w", "one"), ("w", "two"), ("w", "three")] {
        assert!(s.remove(&ws(w), n).unwrap());
    }
    assert_eq!(s.component("aa").unwrap().as_deref(), Some(a), "still used by v/one");
    assert!(!s.remove(&ws("w"), "one").unwrap());
    assert!(s.remove(&ws("v"), "one").unwrap());
    assert_eq!(s.component_count().unwrap(), 0);
}

#[test]
fn names_and_descriptions_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    for bad in ["", "-x", ".hidden", "a/b", "../x", "white space", &"n".repeat(65)] {
        assert!(
            matches!(s.add(&ws("w"), bad, b"c", "cc", JobDefaults::default()), Err(JobsError::InvalidName)),
            "{bad:?}"
        );
    }
    s.add(&ws("w"), "Good-name_1.2", b"c", "cc", JobDefaults::default()).unwrap();
    let long = JobDefaults::default().description("d".repeat(1025));
    assert!(matches!(s.add(&ws("w"), "x", b"c", "cc", long), Err(JobsError::DescriptionTooLong)));
}

#[test]
fn the_queue_quota_is_per_workspace_and_needs_a_registered_job() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    s.add(&ws("a"), "job", b"c", "cc", JobDefaults::default()).unwrap();
    s.add(&ws("b"), "job", b"c", "cc", JobDefaults::default()).unwrap();
    assert!(matches!(
        s.enqueue(&ws("a"), "nope", "x".into(), None, 0, Principal::embedded(), 3),
        Err(JobsError::NotFound(_))
    ));
    for _ in 0..3 {
        s.enqueue(&ws("a"), "job", "x".into(), None, 0, Principal::embedded(), 3).unwrap();
    }
    assert!(matches!(
        s.enqueue(&ws("a"), "job", "x".into(), None, 0, Principal::embedded(), 3),
        Err(JobsError::QueueFull { limit: 3 })
    ));
    s.enqueue(&ws("b"), "job", "x".into(), None, 0, Principal::embedded(), 3).unwrap();
    assert_eq!(s.pending_count(Some(&ws("a"))).unwrap(), 3);
    assert_eq!(s.pending_count(None).unwrap(), 4);
}

#[test]
fn registration_checks_the_component_with_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = Jobs::open(&dir.path().join("jobs.redb"), JobLimits::default()).unwrap();
    let wasm = orbit_test_guests::bytes("echo");
    assert!(matches!(jobs.register(&ws("w"), "echo", &wasm, JobDefaults::default()), Err(JobsError::NoEngine)));
    let runs = RunStore::open(&dir.path().join("runs.redb")).unwrap();
    let engine = Engine::builder(EngineConfig::default(), runs).primitive(jobs.clone()).build().unwrap();
    assert!(matches!(
        jobs.register(&ws("w"), "junk", b"not wasm", JobDefaults::default()),
        Err(JobsError::Component(_))
    ));
    let spec = jobs.register(&ws("w"), "echo", &wasm, JobDefaults::default()).unwrap();
    assert_eq!(spec.digest, orbit_engine::digest(&wasm));
    assert_eq!(spec.size_bytes, wasm.len() as u64);
    drop(engine);
    assert!(matches!(jobs.register(&ws("w"), "echo", &wasm, JobDefaults::default()), Err(JobsError::NoEngine)));
}

#[test]
fn workers_start_once_per_jobs_and_again_after_stop() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = Jobs::open(&dir.path().join("jobs.redb"), JobLimits::default()).unwrap();
    let runs = RunStore::open(&dir.path().join("runs.redb")).unwrap();
    let _engine = Engine::builder(EngineConfig::default(), runs).primitive(jobs.clone()).build().unwrap();
    assert!(matches!(jobs.start_workers(), Err(JobsError::Workers(_))), "outside a tokio runtime");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let workers = jobs.start_workers().unwrap();
        assert!(matches!(jobs.start_workers(), Err(JobsError::Workers(_))), "already running");
        workers.stop().await;
        let again = jobs.start_workers().unwrap();
        again.wait_idle().await.unwrap();
    });
}
