//! How runs reach the run store: durable acknowledgement (the default),
//! queued acknowledgement, and group commit under concurrency.

mod common;

use std::collections::HashSet;

use orbit::{Invocation, Orbit, OrbitConfig, RecordAck, RunQuery, RunStatus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_invoke_is_readable_as_soon_as_it_returns() {
    let e = common::env();
    let out = e.run("echo", "hello").await;
    let stored = e.orbit.runs().get(out.run_id()).unwrap().expect("recorded before invoke returned");
    assert_eq!(stored, out.record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_invokes_are_all_recorded_once_flushed_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = OrbitConfig::default();
    config.engine.record_ack = RecordAck::Queued;
    let orbit = Orbit::open_with(dir.path(), config).unwrap();
    let component = orbit.engine().load(&orbit_test_guests::bytes("echo")).unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        let out = orbit.engine().invoke(&component, Invocation::new(format!("run {i}"))).await.unwrap();
        assert_eq!(out.output_text(), format!("run {i}"));
        ids.push(out.run_id());
    }
    orbit.runs().flush().await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        let rec = orbit.runs().get(*id).unwrap().expect("flushed");
        assert_eq!(rec.output.as_deref(), Some(format!("run {i}").as_str()));
    }
    // Queued once more, then the deployment is closed without a flush.
    let last = orbit.engine().invoke(&component, Invocation::new("last")).await.unwrap().run_id();
    drop((orbit, component));
    let orbit = Orbit::open(dir.path()).unwrap();
    assert_eq!(orbit.runs().get(last).unwrap().unwrap().status, RunStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_share_commits_and_each_is_recorded_once() {
    let e = common::env();
    let component = e.orbit.engine().load(&orbit_test_guests::bytes("echo")).unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (orbit, component) = (e.orbit.clone(), component.clone());
            tokio::spawn(
                async move { orbit.engine().invoke(&component, Invocation::new(format!("{i}"))).await.unwrap() },
            )
        })
        .collect();
    let mut ids = HashSet::new();
    for t in tasks {
        let out = t.await.unwrap();
        assert!(out.status().is_success());
        ids.insert(out.run_id());
    }
    let mut q = RunQuery::new(common::ws("default"));
    q.limit = 100;
    let listed: HashSet<_> = e.orbit.runs().list(&q).unwrap().runs.into_iter().map(|r| r.id).collect();
    assert_eq!(listed, ids);
    assert!(e.orbit.runs().commits() < 64, "{} commits for 64 concurrent runs", e.orbit.runs().commits());
}
