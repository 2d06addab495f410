//! Behaviour of `RunStore` against real redb files.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{record, ws};
use orbit_runs::{GroupCommit, MAX_LIST_LIMIT, RunId, RunQuery, RunRecord, RunStatus, RunStore, RunStoreError};

fn open(dir: &tempfile::TempDir) -> RunStore {
    RunStore::open(&dir.path().join("runs.redb")).expect("open run store")
}

/// Walks every page of `q` and returns the runs in order, checking that each
/// page is no bigger than the limit.
fn walk(store: &RunStore, mut q: RunQuery) -> Vec<RunRecord> {
    let mut all = Vec::new();
    loop {
        let page = store.list(&q).expect("list");
        assert!(page.runs.len() <= q.limit);
        all.extend(page.runs.iter().cloned());
        match page.next_cursor {
            Some(cursor) => {
                assert_eq!(Some(cursor), page.runs.last().map(|r| r.id));
                q.before = Some(cursor);
            }
            None => return all,
        }
    }
}

#[tokio::test]
async fn record_then_get_round_trips_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let workspace = ws("alpha");
    for (status, payload) in [
        (RunStatus::Succeeded, 0),
        (RunStatus::Failed, 100),
        (RunStatus::Exited, 5_000),
        (RunStatus::OutOfFuel, 300_000),
    ] {
        let rec = record(RunId::new(), &workspace, status, payload);
        store.record(rec.clone()).await.unwrap();
        let got = store.get(rec.id).unwrap().expect("recorded run is found");
        assert_eq!(got, rec);
    }
    assert_eq!(store.get(RunId::new()).unwrap(), None);
}

#[test]
fn record_blocking_works_outside_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let rec = record(RunId::new(), &ws("alpha"), RunStatus::Trapped, 10);
    store.record_blocking(rec.clone()).unwrap();
    assert_eq!(store.get(rec.id).unwrap(), Some(rec));
}

#[tokio::test]
async fn recording_the_same_id_twice_is_refused_and_keeps_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let first = record(RunId::new(), &ws("alpha"), RunStatus::Succeeded, 10);
    store.record(first.clone()).await.unwrap();

    // Same id, another workspace: must not move the run or leak it into beta.
    let mut second = first.clone();
    second.workspace = ws("beta");
    second.status = RunStatus::Failed;
    match store.record(second).await {
        Err(RunStoreError::AlreadyExists(id)) => assert_eq!(id, first.id),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(store.get(first.id).unwrap(), Some(first.clone()));
    assert!(store.list(&RunQuery::new(ws("beta"))).unwrap().runs.is_empty());
    assert_eq!(store.list(&RunQuery::new(ws("alpha"))).unwrap().runs, vec![first]);
}

#[tokio::test]
async fn list_is_per_workspace_newest_first_filtered_and_paginated() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (alpha, beta) = (ws("alpha"), ws("beta"));
    let statuses = [RunStatus::Succeeded, RunStatus::Failed, RunStatus::OutOfFuel, RunStatus::Succeeded];

    // Interleave the two workspaces so their ids are mixed in time.
    let mut written_alpha = Vec::new();
    let mut written_beta = Vec::new();
    for i in 0..157 {
        let a = record(RunId::new(), &alpha, statuses[i % 4], i);
        store.record(a.clone()).await.unwrap();
        written_alpha.push(a);
        if i % 3 == 0 {
            let b = record(RunId::new(), &beta, statuses[(i + 1) % 4], i);
            store.record(b.clone()).await.unwrap();
            written_beta.push(b);
        }
    }
    let newest_first = |v: &[RunRecord]| v.iter().rev().cloned().collect::<Vec<_>>();

    // One big page: all of alpha, newest first, nothing from beta.
    let mut q = RunQuery::new(alpha.clone());
    q.limit = MAX_LIST_LIMIT;
    let page = store.list(&q).unwrap();
    assert_eq!(page.runs, newest_first(&written_alpha));
    assert_eq!(page.next_cursor, None);

    // Limits above the cap are reduced to it; 0 gives an empty page.
    q.limit = usize::MAX;
    assert_eq!(store.list(&q).unwrap().runs.len(), written_alpha.len());
    q.limit = 0;
    assert_eq!(store.list(&q).unwrap().runs, Vec::new());

    // Pagination with several page sizes visits every run exactly once, in order.
    for limit in [1, 7, 10, 156, 157, 158] {
        let mut q = RunQuery::new(alpha.clone());
        q.limit = limit;
        let all = walk(&store, q);
        assert_eq!(all, newest_first(&written_alpha), "limit {limit}");
        let ids: HashSet<RunId> = all.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), written_alpha.len());
    }

    // A page that ends exactly on the last run has no cursor.
    let mut q = RunQuery::new(alpha.clone());
    q.limit = 157;
    assert_eq!(store.list(&q).unwrap().next_cursor, None);
    q.limit = 156;
    assert!(store.list(&q).unwrap().next_cursor.is_some());

    // Status filter, with and without pagination.
    for status in [RunStatus::Succeeded, RunStatus::Failed, RunStatus::OutOfFuel, RunStatus::Internal] {
        let expected: Vec<RunRecord> =
            newest_first(&written_alpha).into_iter().filter(|r| r.status == status).collect();
        for limit in [3, MAX_LIST_LIMIT] {
            let mut q = RunQuery::new(alpha.clone());
            q.status = Some(status);
            q.limit = limit;
            assert_eq!(walk(&store, q), expected, "{status} limit {limit}");
        }
    }

    // Beta sees only beta, and alpha's runs never appear in any beta page.
    let mut q = RunQuery::new(beta.clone());
    q.limit = 4;
    let all_beta = walk(&store, q);
    assert_eq!(all_beta, newest_first(&written_beta));
    assert!(all_beta.iter().all(|r| r.workspace == beta));

    // A cursor taken from alpha does not let beta see alpha's runs.
    let mut q = RunQuery::new(beta.clone());
    q.before = Some(written_alpha.last().unwrap().id);
    assert!(store.list(&q).unwrap().runs.iter().all(|r| r.workspace == beta));

    // A workspace with no runs gets an empty last page.
    let page = store.list(&RunQuery::new(ws("gamma"))).unwrap();
    assert!(page.runs.is_empty());
    assert_eq!(page.next_cursor, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_records_are_group_committed() {
    const TASKS: usize = 16;
    const PER_TASK: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let workspace = ws("busy");

    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let workspace = workspace.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..PER_TASK {
                let status = if (task + i) % 5 == 0 { RunStatus::Failed } else { RunStatus::Succeeded };
                let rec = record(RunId::new(), &workspace, status, 200);
                store.record(rec.clone()).await.unwrap();
                ids.push(rec);
            }
            ids
        }));
    }
    let mut written = Vec::new();
    for handle in handles {
        written.extend(handle.await.unwrap());
    }
    let runs = TASKS * PER_TASK;
    assert_eq!(written.len(), runs);

    for rec in &written {
        assert_eq!(store.get(rec.id).unwrap().as_ref(), Some(rec));
    }
    let mut q = RunQuery::new(workspace);
    q.limit = MAX_LIST_LIMIT;
    let listed = walk(&store, q);
    assert_eq!(listed.len(), runs);
    assert!(listed.windows(2).all(|w| w[0].id > w[1].id), "newest first");

    let commits = store.commits();
    eprintln!("{runs} runs in {commits} commits");
    assert!(commits >= 1);
    assert!(commits * 4 < runs as u64, "{commits} commits for {runs} runs: no group commit");
}

/// Records `n` runs from `n` concurrent tasks and returns the commit count.
async fn concurrent_commits(gc: GroupCommit, n: usize) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::open_with(&dir.path().join("runs.redb"), gc).unwrap();
    let workspace = ws("alpha");
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let store = store.clone();
            let rec = record(RunId::new(), &workspace, RunStatus::Succeeded, 1);
            tokio::spawn(async move { store.record(rec).await })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    let mut q = RunQuery::new(workspace);
    q.limit = MAX_LIST_LIMIT;
    assert_eq!(store.list(&q).unwrap().runs.len(), n);
    store.commits()
}

#[tokio::test]
async fn group_commit_settings_bound_the_batch() {
    // One record per transaction.
    let gc = GroupCommit { max_batch: 1, max_delay: Duration::from_millis(50), ..GroupCommit::default() };
    assert_eq!(concurrent_commits(gc, 8).await, 8);
    // A long delay lets all eight concurrent records share a commit or two.
    let gc = GroupCommit { max_batch: 512, max_delay: Duration::from_millis(200), ..GroupCommit::default() };
    assert!(concurrent_commits(gc, 8).await <= 2);
    // max_batch caps the batch even when the delay has not run out.
    let gc = GroupCommit { max_batch: 3, max_delay: Duration::from_secs(5), ..GroupCommit::default() };
    assert_eq!(concurrent_commits(gc, 9).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_waits_for_announced_records_and_not_for_withdrawn_ones() {
    let gc = GroupCommit { max_linger: Duration::from_secs(600), ..GroupCommit::default() };
    let workspace = ws("alpha");

    // A record arrives while another run is still executing: its commit
    // waits for that run's record, and both share one transaction. The
    // announcement is taken back just before its record is sent, so a
    // writer that looks in between (the sender preempted on a loaded
    // machine) rightly commits the first alone; some attempt of five must
    // share the commit.
    let mut shared_commit = None;
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::open_with(&dir.path().join("runs.redb"), gc).unwrap();
        let announced = store.expect_record();
        let first = record(RunId::new(), &workspace, RunStatus::Succeeded, 1);
        let lone = tokio::spawn({
            let store = store.clone();
            async move { store.record(first).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!lone.is_finished(), "the batch did not wait for the announced record");
        announced.record(record(RunId::new(), &workspace, RunStatus::Failed, 2)).await.unwrap();
        lone.await.unwrap().unwrap();
        if store.commits() == 1 {
            shared_commit = Some((dir, store));
            break;
        }
    }
    let Some((_dir, store)) = shared_commit else { panic!("both records in one commit: never, in five attempts") };

    // A withdrawn announcement (a run that ended without a record) stops the
    // wait: otherwise this would wait out the 600 s linger.
    let withdrawn = store.expect_record();
    let second = record(RunId::new(), &workspace, RunStatus::Succeeded, 3);
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.record(second).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(withdrawn);
    tokio::time::timeout(Duration::from_secs(60), waiting).await.expect("commit after withdrawal").unwrap().unwrap();
    assert_eq!(store.commits(), 2);
    let mut q = RunQuery::new(workspace);
    q.limit = 10;
    assert_eq!(store.list(&q).unwrap().runs.len(), 3);
}

#[tokio::test]
async fn queued_records_are_committed_by_flush_and_by_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.redb");
    let workspace = ws("alpha");
    let mut q = RunQuery::new(workspace.clone());
    q.limit = MAX_LIST_LIMIT;
    {
        let store = RunStore::open(&path).unwrap();
        for i in 0..50 {
            store.expect_record().queue(&record(RunId::new(), &workspace, RunStatus::Succeeded, i)).unwrap();
        }
        store.flush().await.unwrap();
        assert_eq!(store.list(&q).unwrap().runs.len(), 50, "flush waits for every queued record");
        for i in 0..30 {
            store.expect_record().queue(&record(RunId::new(), &workspace, RunStatus::Failed, i)).unwrap();
        }
        // Dropped without a flush: closing the store commits the queue.
    }
    let store = RunStore::open(&path).unwrap();
    let runs = store.list(&q).unwrap().runs;
    assert_eq!(runs.len(), 80);
    assert_eq!(runs.iter().filter(|r| r.status == RunStatus::Failed).count(), 30);
}

#[tokio::test]
async fn records_survive_drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/runs.redb");
    let workspace = ws("alpha");
    let mut written = Vec::new();
    {
        let store = RunStore::open(&path).unwrap();
        let clone = store.clone();
        for i in 0..20 {
            let rec = record(RunId::new(), &workspace, RunStatus::Succeeded, i * 10);
            clone.record(rec.clone()).await.unwrap();
            written.push(rec);
        }
        // While open, a second store on the same file is refused.
        assert!(matches!(RunStore::open(&path), Err(RunStoreError::Open { .. })));
    }
    let store = RunStore::open(&path).unwrap();
    for rec in &written {
        assert_eq!(store.get(rec.id).unwrap().as_ref(), Some(rec));
    }
    let mut q = RunQuery::new(workspace);
    q.limit = 100;
    assert_eq!(store.list(&q).unwrap().runs.len(), written.len());
    assert_eq!(store.commits(), 0, "commit counter is per open store");
}

#[test]
fn open_refuses_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.redb");
    std::fs::write(&path, vec![0x5a; 10_000]).unwrap();
    assert!(matches!(RunStore::open(&path), Err(RunStoreError::Open { .. })));
}

#[test]
fn records_written_before_the_parent_field_read_as_top_level() {
    // A record as an older Orbit stored it: no `parent` key at all.
    let mut rec = record(RunId::new(), &ws("old"), RunStatus::Succeeded, 10);
    rec.parent = None;
    let mut json = serde_json::to_value(&rec).unwrap();
    assert!(json.get("parent").is_none(), "a top-level run stores no parent key");
    json.as_object_mut().unwrap().remove("parent");
    let back: RunRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back, rec);
    // A child run keeps its link.
    rec.parent = Some(RunId::new());
    let back: RunRecord = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
    assert_eq!(back.parent, rec.parent);
}

#[test]
fn records_written_before_the_principal_field_read_as_none() {
    let mut rec = record(RunId::new(), &ws("old"), RunStatus::Succeeded, 10);
    let mut json = serde_json::to_value(&rec).unwrap();
    json.as_object_mut().unwrap().remove("principal");
    let back: RunRecord = serde_json::from_value(json).unwrap();
    rec.principal = None;
    assert_eq!(back, rec);
    assert_eq!(back.member(), None);
}

#[tokio::test]
async fn list_filters_by_member_across_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let workspace = ws("team");
    let mut written = Vec::new();
    for _ in 0..40 {
        let rec = record(RunId::new(), &workspace, RunStatus::Succeeded, 1);
        store.record(rec.clone()).await.unwrap();
        written.push(rec);
    }
    // Another workspace's runs of the same member are never listed.
    store.record(record(RunId::new(), &ws("other"), RunStatus::Succeeded, 1)).await.unwrap();
    written.reverse();
    for member in ["ada", "bob", "cy", "nobody"] {
        let user = orbit_workspace::UserId::new(member).unwrap();
        let expected: Vec<RunId> = written.iter().filter(|r| r.member() == Some(&user)).map(|r| r.id).collect();
        let mut q = RunQuery::new(workspace.clone());
        q.member = Some(user.clone());
        q.limit = 3;
        let got: Vec<RunId> = walk(&store, q).iter().map(|r| r.id).collect();
        assert_eq!(got, expected, "member {member}");
        if member == "nobody" {
            assert!(got.is_empty());
        } else {
            assert!(!got.is_empty(), "the helper spreads runs over members");
        }
    }
}
