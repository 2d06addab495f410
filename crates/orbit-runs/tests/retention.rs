//! Retention on a real redb file: runs pruned by age and by count per
//! workspace (with overrides), in chunks, and the file compacted.

mod common;

use common::{record, ws};
use orbit_runs::{PRUNE_CHUNK, Retention, RetentionPolicy, RunId, RunQuery, RunStatus, RunStore, RunStoreError};

const DAY_MS: u64 = 24 * 3600 * 1000;
const NOW_MS: u64 = 1_800_000_000_000;

/// A v7 run id created at `ms`, distinct by `n`.
fn id_at(ms: u64, n: u32) -> RunId {
    let mut rand = [0u8; 10];
    rand[..4].copy_from_slice(&n.to_be_bytes());
    RunId(uuid::Builder::from_unix_timestamp_millis(ms, &rand).into_uuid())
}

/// Records every run, 500 at a time concurrently (so they share commits).
async fn store_all(store: &RunStore, ids: &[(RunId, &str)]) {
    for chunk in ids.chunks(500) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|(id, w)| {
                let (store, rec) = (store.clone(), record(*id, &ws(w), RunStatus::Succeeded, 10));
                tokio::spawn(async move { store.record(rec).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }
}

fn listed(store: &RunStore, w: &str) -> Vec<RunId> {
    let mut q = RunQuery::new(ws(w));
    q.limit = 1000;
    store.list(&q).unwrap().runs.into_iter().map(|r| r.id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_past_the_age_or_the_count_are_pruned_per_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::open(&dir.path().join("runs.redb")).unwrap();
    // "a": 20 runs a day apart, the newest today; "b": 5 old runs;
    // "c": 30 recent runs under an override.
    let mut ids = Vec::new();
    let a: Vec<RunId> = (0..20).map(|d| id_at(NOW_MS - d * DAY_MS, d as u32)).collect();
    let b: Vec<RunId> = (0..5).map(|n| id_at(NOW_MS - 100 * DAY_MS, 100 + n)).collect();
    let c: Vec<RunId> = (0..30).map(|n| id_at(NOW_MS - 1000 * u64::from(n), 200 + n)).collect();
    ids.extend(a.iter().map(|id| (*id, "a")));
    ids.extend(b.iter().map(|id| (*id, "b")));
    ids.extend(c.iter().map(|id| (*id, "c")));
    store_all(&store, &ids).await;

    let mut policy = RetentionPolicy::new(Retention::new(Some(15 * DAY_MS), Some(10)));
    policy.workspaces.insert(ws("c"), Retention::new(None, Some(25)));
    let report = store.prune(&policy, None, NOW_MS).unwrap();

    // a: the 10 newest are younger than 15 days: the count decides.
    assert_eq!(listed(&store, "a"), a[..10].to_vec());
    // b: all older than 15 days.
    assert!(listed(&store, "b").is_empty());
    // c: no age limit, 25 newest.
    assert_eq!(listed(&store, "c"), c[..25].to_vec());
    assert_eq!((report.removed, report.kept, report.workspaces), (10 + 5 + 5, 10 + 25, 3));
    // Pruned records are gone by id too, kept ones still read.
    assert_eq!(store.get(a[10]).unwrap(), None);
    assert!(store.get(a[9]).unwrap().is_some());
    // Nothing more to do the second time.
    assert_eq!(store.prune(&policy, None, NOW_MS).unwrap().removed, 0);

    // The age alone, 10 days later: what is more than 15 days old goes (a
    // run exactly 15 days old stays).
    let age_only = RetentionPolicy::new(Retention::new(Some(15 * DAY_MS), None));
    store.prune(&age_only, Some(&ws("a")), NOW_MS + 10 * DAY_MS).unwrap();
    assert_eq!(listed(&store, "a"), a[..6].to_vec());
}

#[tokio::test(flavor = "multi_thread")]
async fn pruning_past_one_chunk_removes_everything_due_and_compaction_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.redb");
    let store = RunStore::open(&path).unwrap();
    let n = PRUNE_CHUNK + 500;
    let ids: Vec<(RunId, &str)> = (0..n as u32).map(|i| (id_at(NOW_MS - u64::from(i), i), "w")).collect();
    store_all(&store, &ids).await;
    let big = std::fs::metadata(&path).unwrap().len();

    let report = store.prune(&RetentionPolicy::new(Retention::new(None, Some(100))), None, NOW_MS).unwrap();
    assert_eq!((report.removed, report.kept), (n as u64 - 100, 100));
    assert_eq!(listed(&store, "w").len(), 100);

    // Compaction needs the file to itself.
    let other = store.clone();
    assert!(matches!(other.compact(), Err(RunStoreError::InUse)));
    assert!(store.compact().unwrap(), "something was reclaimed");
    let small = std::fs::metadata(&path).unwrap().len();
    assert!(small < big / 2, "{big} -> {small} bytes");
    // Reopened, the kept runs are all there.
    let store = RunStore::open(&path).unwrap();
    assert_eq!(listed(&store, "w"), ids[..100].iter().map(|(id, _)| *id).collect::<Vec<_>>());
}

/// `prune_due` is what `Orbit::open` asks before pruning: `false` only
/// when a prune would remove nothing, whether the runs are in redb or
/// still in the write-ahead log. It is conservative on counts (it compares
/// the store's total with the smallest cap).
#[tokio::test(flavor = "multi_thread")]
async fn prune_is_due_when_a_run_may_be_past_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.redb");
    let policy = RetentionPolicy::new(Retention::new(Some(15 * DAY_MS), Some(10)));
    {
        let store = RunStore::open(&path).unwrap();
        let recent: Vec<_> = (0..10).map(|n| (id_at(NOW_MS - u64::from(n) * DAY_MS, n), "a")).collect();
        store_all(&store, &recent).await;
        store.checkpoint().await.unwrap();
        assert!(!store.prune_due(&policy, NOW_MS).unwrap(), "10 recent runs are kept");
        assert_eq!(store.prune(&policy, None, NOW_MS).unwrap().removed, 0);
    }
    // Reopened, the next runs wait in the log: they count too.
    let store = RunStore::open(&path).unwrap();
    store_all(&store, &[(id_at(NOW_MS, 50), "b")]).await;
    assert_eq!(store.waiting(), 1);
    assert!(store.prune_due(&policy, NOW_MS).unwrap(), "11 runs in all against a cap of 10");
    let wider = RetentionPolicy::new(Retention::new(Some(15 * DAY_MS), Some(11)));
    assert!(!store.prune_due(&wider, NOW_MS).unwrap());
    store_all(&store, &[(id_at(NOW_MS - 20 * DAY_MS, 51), "c")]).await;
    assert!(
        store.prune_due(&RetentionPolicy::new(Retention::new(Some(15 * DAY_MS), None)), NOW_MS).unwrap(),
        "an old run in the log"
    );
    store.checkpoint().await.unwrap();
    let policy = RetentionPolicy::new(Retention::new(Some(15 * DAY_MS), None));
    assert!(store.prune_due(&policy, NOW_MS).unwrap(), "an old run in redb");
    assert_eq!(store.prune(&policy, None, NOW_MS).unwrap().removed, 1);
    assert!(!store.prune_due(&policy, NOW_MS).unwrap());
}
