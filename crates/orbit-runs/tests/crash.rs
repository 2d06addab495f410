//! Crash test: every acknowledged run survives SIGKILL at a random moment,
//! intact, and the database still opens and lists cleanly.
//!
//! The parent test re-executes this test binary, selecting only
//! [`crash_child`], with `ORBIT_RUNS_CRASH_CHILD` set to the database path.
//! The child records runs from several tasks and prints one `ACK` line per
//! acknowledged run; the parent kills it with SIGKILL after a random delay,
//! reopens the database, and checks every acknowledged run. The same file is
//! reused across rounds, so later rounds also crash during or right after
//! recovery of the previous crash.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{record, ws};
use orbit_runs::{MAX_LIST_LIMIT, RunId, RunQuery, RunStatus, RunStore};
use orbit_workspace::WorkspaceId;

/// Set (to the database path) only in the child process.
const CHILD_ENV: &str = "ORBIT_RUNS_CRASH_CHILD";
/// Set (to a count of milliseconds) in the child of about half the rounds:
/// its store checkpoints that often, so the kill often falls during a
/// background flush or the checkpoint after it.
const CHECKPOINT_ENV: &str = "ORBIT_RUNS_CRASH_CHECKPOINT_MS";
/// How many times the parent starts and kills a child.
const ROUNDS: usize = 14;
/// Workspaces the child writes to.
const WORKSPACES: [&str; 2] = ["crash-a", "crash-b"];

/// Small xorshift64* generator; enough randomness for timings and sizes.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self((nanos ^ (u64::from(std::process::id()) << 32)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The intact frames' payloads in the log file at `path`, as an open reads them.
fn frames_in(path: &std::path::Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    orbit_workspace::frame::parse(&bytes).frames.iter().map(|(payload, _)| payload.to_vec()).collect()
}

/// The child: records runs forever (until killed, or 30 s as a safety net),
/// printing `ACK <id> <workspace> <status> <payload>` after each success.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return; // Normal test runs: not the child, nothing to do.
    };
    let mut gc = orbit_runs::GroupCommit::default();
    if let Some(ms) = std::env::var(CHECKPOINT_ENV).ok().and_then(|ms| ms.parse().ok()) {
        gc.checkpoint_interval = Duration::from_millis(ms);
    }
    let store = RunStore::open_with(std::path::Path::new(&path), gc).expect("child opens store");
    // libtest has already printed "test crash_child ... " with no newline.
    println!("\nREADY");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).build().unwrap();
    let stop_at = Instant::now() + Duration::from_secs(30);
    runtime.block_on(async move {
        let mut tasks = Vec::new();
        for task in 0..8u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng(Rng::seeded().next() ^ task.wrapping_mul(0x9e37_79b9) | 1);
                let workspace = ws(WORKSPACES[(task % 2) as usize]);
                while Instant::now() < stop_at {
                    let status = RunStatus::ALL[rng.below(RunStatus::ALL.len() as u64) as usize];
                    // Mostly small records, sometimes multi-page ones.
                    let payload =
                        if rng.below(16) == 0 { rng.below(64 * 1024) as usize } else { rng.below(2_000) as usize };
                    let id = RunId::new();
                    let rec = record(id, &workspace, status, payload);
                    if store.record(rec).await.is_ok() {
                        let line = format!("ACK {id} {workspace} {status} {payload}\n");
                        // One write per line (stdout is locked per call); stop
                        // quietly if the parent has gone.
                        if std::io::stdout().write_all(line.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// One acknowledged run, as reported by the child.
struct Acked {
    id: RunId,
    workspace: WorkspaceId,
    status: RunStatus,
    payload: usize,
}

fn parse_ack(line: &str) -> Option<Acked> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    let acked = Acked {
        id: parts.next()?.parse().ok()?,
        workspace: WorkspaceId::new(parts.next()?).ok()?,
        status: parts.next()?.parse().ok()?,
        payload: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(acked)
}

#[test]
fn acknowledged_runs_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.redb");
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::seeded();
    eprintln!("crash test seed {:#x}", rng.0);
    let started = Instant::now();

    let mut acked: Vec<Acked> = Vec::new();
    let mut rounds_with_acks = 0;
    for round in 0..ROUNDS {
        let mut command = Command::new(&exe);
        if rng.below(2) == 0 {
            command.env(CHECKPOINT_ENV, (5 + rng.below(30)).to_string());
        }
        let mut child = command
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &db)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });

        // Every fourth round (on average) kills at a random moment after
        // spawn, possibly while the child is still opening or repairing the
        // file; the others kill at a random moment after it starts writing.
        let mut before_kill = Vec::new();
        if rng.below(4) != 0 {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(line) if line == "READY" => break,
                    Ok(line) => before_kill.push(line),
                    Err(_) => panic!("round {round}: child never became ready"),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1 + rng.below(300)));
        child.kill().expect("SIGKILL child"); // Child::kill sends SIGKILL on unix.
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: child exited on its own");
        reader.join().unwrap();
        before_kill.extend(lines.try_iter());

        let new: Vec<Acked> = before_kill.iter().filter_map(|l| parse_ack(l)).collect();
        if !new.is_empty() {
            rounds_with_acks += 1;
        }
        eprintln!("round {round}: {} runs acknowledged before SIGKILL", new.len());
        acked.extend(new);

        // Reopen: every run acknowledged in this or any earlier round is
        // present and exactly as written.
        let store = RunStore::open(&db).expect("reopen after SIGKILL");
        for a in &acked {
            let got = store
                .get(a.id)
                .unwrap_or_else(|e| panic!("round {round}: run {} unreadable: {e}", a.id))
                .unwrap_or_else(|| panic!("round {round}: acknowledged run {} lost", a.id));
            assert_eq!(got, record(a.id, &a.workspace, a.status, a.payload), "round {round}");
        }
        // No partial record anywhere: every indexed run in both workspaces
        // decodes and belongs to the workspace listed.
        for name in WORKSPACES {
            let workspace = ws(name);
            let mut q = RunQuery::new(workspace.clone());
            q.limit = MAX_LIST_LIMIT;
            let mut listed = 0;
            loop {
                let page = store.list(&q).unwrap_or_else(|e| panic!("round {round}: list {name}: {e}"));
                assert!(page.runs.iter().all(|r| r.workspace == workspace));
                listed += page.runs.len();
                match page.next_cursor {
                    Some(c) => q.before = Some(c),
                    None => break,
                }
            }
            let acked_here = acked.iter().filter(|a| a.workspace == workspace).count();
            assert!(listed >= acked_here, "round {round}: {name} lists {listed} < {acked_here} acked");
        }
        drop(store);
    }

    eprintln!(
        "{} acknowledged runs over {ROUNDS} rounds ({rounds_with_acks} with acks) in {:?}",
        acked.len(),
        started.elapsed()
    );
    assert!(rounds_with_acks >= ROUNDS / 3, "too few rounds got far enough to test anything");
}

/// The write-ahead log torn at every byte offset of its last batch, as a
/// crash during that append leaves it, with nothing after the cut or with
/// older frames (another salt's, as a log that kept its length holds): the
/// store opens, every run of the earlier batches is there, exactly as
/// written, the torn run is either whole or absent, and nothing of the
/// older frames is read.
///
/// The crash image is a copy of the store's two files taken while the
/// store is open, before any checkpoint, so the runs are in the log and in
/// redb's non-durable commits only.
#[test]
fn a_log_torn_anywhere_in_its_last_batch_loses_no_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.redb");
    let wal = dir.path().join("runs.redb.wal");
    let gc = orbit_runs::GroupCommit { checkpoint_interval: Duration::from_secs(3600), ..Default::default() };
    let store = RunStore::open_with(&db, gc).unwrap();
    let workspace = ws("torn");
    let earlier: Vec<_> = (0..3).map(|i| record(RunId::new(), &workspace, RunStatus::Succeeded, 100 * i)).collect();
    for r in &earlier {
        store.record_blocking(r.clone()).unwrap();
    }
    let before = std::fs::metadata(&wal).unwrap().len() as usize;
    let last = record(RunId::new(), &workspace, RunStatus::Failed, 300);
    store.record_blocking(last.clone()).unwrap();
    let image_db = std::fs::read(&db).unwrap();
    let image_wal = std::fs::read(&wal).unwrap();
    assert!(image_wal.len() > before, "the last run is in the log");

    let crash = tempfile::tempdir().unwrap();
    let (cdb, cwal) = (crash.path().join("runs.redb"), crash.path().join("runs.redb.wal"));
    // Without the log, the crash image has none of the runs: what follows
    // tests the import of the log.
    std::fs::write(&cdb, &image_db).unwrap();
    let _ = std::fs::remove_file(&cwal);
    let alone = RunStore::open(&cdb).unwrap();
    for r in earlier.iter().chain([&last]) {
        assert_eq!(alone.get(r.id).unwrap(), None, "redb alone already held the run");
    }
    drop(alone);
    // A log keeps its length after a reset, so an append overwrites older
    // frames, and a torn one can leave them after its cut: frames of another
    // salt, here those of another store's log.
    let other = tempfile::tempdir().unwrap();
    let other_store = RunStore::open_with(&other.path().join("runs.redb"), gc).unwrap();
    for i in 0..4 {
        other_store.record_blocking(record(RunId::new(), &workspace, RunStatus::Succeeded, 90 * i)).unwrap();
    }
    let stale = std::fs::read(other.path().join("runs.redb.wal")).unwrap()[16..].to_vec();
    drop(other_store);
    let mut whole = 0;
    for (cut, tail) in (before..=image_wal.len()).flat_map(|cut| [(cut, &[][..]), (cut, &stale[..])]) {
        std::fs::write(&cdb, &image_db).unwrap();
        std::fs::write(&cwal, [&image_wal[..cut], tail].concat()).unwrap();
        let reopened = RunStore::open(&cdb).unwrap_or_else(|e| panic!("cut at {cut}: {e:?}"));
        for r in &earlier {
            assert_eq!(reopened.get(r.id).unwrap().as_ref(), Some(r), "cut at {cut}");
        }
        match reopened.get(last.id).unwrap() {
            Some(got) => {
                assert_eq!(got, last, "cut at {cut}");
                whole += 1;
            }
            None => assert!(cut < image_wal.len(), "the whole log keeps the last run"),
        }
        let page = reopened.list(&RunQuery::new(workspace.clone())).unwrap();
        assert!(page.runs.len() >= earlier.len() && page.runs.len() <= earlier.len() + 1, "cut at {cut}");
        drop(reopened);
        // The log was imported and emptied at open (a new salt: what the
        // file kept of it no longer checks).
        assert!(frames_in(&cwal).is_empty(), "cut at {cut}");
    }
    assert!(whole >= 1);
    drop(store);
}

/// A log left by a crash is imported at open even when the new process
/// runs with the log off.
#[test]
fn a_log_left_by_a_crash_is_imported_with_the_log_off() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.redb");
    let gc = orbit_runs::GroupCommit { checkpoint_interval: Duration::from_secs(3600), ..Default::default() };
    let store = RunStore::open_with(&db, gc).unwrap();
    let workspace = ws("off");
    let runs: Vec<_> = (0..4).map(|i| record(RunId::new(), &workspace, RunStatus::Exited, 50 * i)).collect();
    for r in &runs {
        store.record_blocking(r.clone()).unwrap();
    }
    let crash = tempfile::tempdir().unwrap();
    let cdb = crash.path().join("runs.redb");
    std::fs::copy(&db, &cdb).unwrap();
    std::fs::copy(dir.path().join("runs.redb.wal"), crash.path().join("runs.redb.wal")).unwrap();
    drop(store);
    let off = orbit_runs::GroupCommit { write_ahead_log: false, ..Default::default() };
    let reopened = RunStore::open_with(&cdb, off).unwrap();
    for r in &runs {
        assert_eq!(reopened.get(r.id).unwrap().as_ref(), Some(r));
    }
    let more = record(RunId::new(), &workspace, RunStatus::Succeeded, 1);
    reopened.record_blocking(more.clone()).unwrap();
    drop(reopened);
    // With the log off, a record is durable in redb itself.
    assert!(frames_in(&crash.path().join("runs.redb.wal")).is_empty());
    let again = RunStore::open(&cdb).unwrap();
    assert_eq!(again.get(more.id).unwrap(), Some(more));
}
