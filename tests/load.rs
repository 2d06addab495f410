//! Load: 10,000 concurrent invocations on one engine (issue 13). Each waits
//! for one of the engine's run slots, runs, and is recorded; the host's
//! memory stays bounded because a waiting invocation holds only its input
//! and its place in the queue, never a store or an instance.

use std::collections::HashSet;
use std::time::Duration;

use orbit::{Invocation, Orbit, RunId, RunQuery, RunStatus, WorkspaceId};

/// This process's resident set size (`VmRSS`) or its peak (`VmHWM`), in
/// bytes, from /proc/self/status.
fn rss_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in {status}"));
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The bound the test holds the host to: the peak resident set may grow by
/// at most this much per invocation over the warm engine's, a few times
/// what a waiting invocation needs (its future, input and slot waiter) and
/// far below one instance's memory, so a store or a buffer kept per
/// invocation would break it.
const MAX_BYTES_PER_INVOCATION: u64 = 24 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_invocations_are_all_recorded_in_bounded_memory() {
    const N: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let orbit = Orbit::open(dir.path()).unwrap();
    let engine = orbit.engine().clone();
    let echo = engine.load(&orbit_test_guests::bytes("echo")).unwrap();
    // A warm engine: the pool, the compile and the stores are set up before
    // the baseline is read.
    for _ in 0..64 {
        engine.invoke(&echo, Invocation::new("warm")).await.unwrap();
    }
    let base = rss_bytes("VmRSS");

    let until = tokio::time::Instant::now() + Duration::from_secs(1800);
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (engine, echo) = (engine.clone(), echo.clone());
            tokio::spawn(
                async move { engine.invoke(&echo, Invocation::new(format!("run-{i}")).slot_deadline(until)).await },
            )
        })
        .collect();
    let mut ids = HashSet::with_capacity(N);
    for (i, task) in tasks.into_iter().enumerate() {
        let out = task.await.unwrap().unwrap();
        assert_eq!((out.record.status, out.output_text()), (RunStatus::Succeeded, format!("run-{i}")));
        ids.insert(out.record.id);
    }
    let peak = rss_bytes("VmHWM");
    assert_eq!(ids.len(), N, "run ids are unique");

    // Every one is in the run store.
    orbit.runs().flush().await.unwrap();
    let mut q = RunQuery::new(WorkspaceId::default());
    q.limit = orbit::orbit_runs::MAX_LIST_LIMIT;
    let mut recorded: HashSet<RunId> = HashSet::new();
    loop {
        let page = orbit.runs().list(&q).unwrap();
        recorded.extend(page.runs.iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => q.before = Some(c),
            None => break,
        }
    }
    assert!(ids.is_subset(&recorded), "{} of {N} runs are not recorded", ids.difference(&recorded).count());
    assert_eq!(recorded.len(), N + 64);

    let growth = peak.saturating_sub(base);
    let per = growth / N as u64;
    eprintln!(
        "{N} concurrent invocations: peak RSS {:.1} MiB over a warm engine's {:.1} MiB, {per} bytes per invocation",
        growth as f64 / 1048576.0,
        base as f64 / 1048576.0
    );
    assert!(per <= MAX_BYTES_PER_INVOCATION, "{per} bytes per invocation");
}
