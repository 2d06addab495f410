//! Isolation overhead: Orbit against bare wasmtime, measured in one run.
//!
//! - `invoke/bare-wasmtime`: the same wasmtime `Config` as Orbit (pooling,
//!   fuel, epochs), `InstancePre` instantiate + call `run` + drop the store.
//! - `invoke/orbit-tmpfs`: `Engine::invoke` of the same component, run
//!   record committed to a run store on tmpfs (engine cost without fsync).
//! - `invoke/orbit-disk`: the same with the run store on disk: every
//!   acknowledged run is durable, so one caller pays one fsync per run.
//! - `invoke/orbit-queued-disk`: on disk with `RecordAck::Queued`: `invoke`
//!   returns once the record is queued for the next group commit.
//! - `invoke/*-no-wal`: the same as `orbit-tmpfs` and `orbit-disk` with the
//!   run store's write-ahead log off (`GroupCommit::write_ahead_log`): each
//!   batch is a durable two-phase redb commit instead.
//! - `invoke/*-writer-thread`: the same as `orbit-tmpfs` and `orbit-disk`
//!   with `GroupCommit::lone_caller_commits` off: the lone caller hands its
//!   record to the writer thread and waits to be woken, instead of
//!   committing it on its own thread.
//! - `invoke/bare-wasmtime-fdatasync-disk` (and `-tmpfs`): bare wasmtime
//!   plus one append of a record-sized buffer to a file on the same file
//!   system and one `fdatasync`: the floor of a durable run.
//! - `invoke/bare-wasmtime-fdatasync-kept-disk`: the same floor with the
//!   record overwriting blocks of a file that keeps its length (8 MiB,
//!   written and synced first), as the run store's log does after its
//!   first checkpoint: no new size or extents to sync.
//! - `invoke/*-released`: bare wasmtime and `orbit-queued-disk` with the
//!   pooling allocator keeping nothing resident
//!   (`EngineConfig::keep_resident_bytes` = 0; the default keeps 2 MiB of
//!   each memory and table and resets it with `memset`): every page a run
//!   touched is handed back with `madvise`. Each against its own baseline.
//! - `durable/*`: runs per second with durable records for 1, 2, 16 and 64
//!   concurrent callers (group commit), and for 16 with the write-ahead log
//!   off, against one durable redb commit per run; `*-released` for 16 and
//!   64 with nothing kept resident (as `invoke/*-released`). Each iteration
//!   is 64 runs spread over the callers, and all 64 end before the next
//!   iteration starts; `*-sustained` for 16 and 64 has no such barrier:
//!   each caller starts its next run as soon as its last is acknowledged,
//!   as a service's callers do. `*-sustained-linger-1ms` lets each batch
//!   wait up to 1 ms for runs still executing (`GroupCommit::max_linger`,
//!   the default until session 23), and `*-sustained-inline-checkpoint`
//!   turns `GroupCommit::background_flush` off.
//!
//! Run with `cargo bench --bench invoke`; ratios are printed at the end
//! and appended to `target/criterion/orbit-ratios.txt`. Whether `RUST_BACKTRACE` was set
//! is printed first: it slows trap paths, not these.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{BareLimits, bare, bare_run, bare_with, median_ns, record, report_ratio};
use criterion::{Criterion, criterion_group, criterion_main};
use orbit::{Invocation, Orbit, OrbitConfig, RecordAck};

fn orbit_at(dir: &Path) -> Orbit {
    Orbit::open(dir).unwrap()
}

fn invoke(c: &mut Criterion) {
    common::start();
    eprintln!("RUST_BACKTRACE={:?}", std::env::var("RUST_BACKTRACE").ok());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let wasm = orbit_test_guests::bytes("echo");
    let mut g = c.benchmark_group("invoke");
    g.measurement_time(Duration::from_secs(5));

    let (engine, pre) = bare(&wasm, BareLimits::Same);
    g.bench_function("bare-wasmtime", |b| {
        b.to_async(&rt).iter(|| async {
            assert_eq!(bare_run(&engine, &pre, BareLimits::Same, "hello").await, "hello");
        })
    });

    let shm = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let disk = tempfile::tempdir().unwrap();
    let queued_dir = tempfile::tempdir().unwrap();
    let shm_nowal = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let disk_nowal = tempfile::tempdir().unwrap();
    let shm_thread = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let disk_thread = tempfile::tempdir().unwrap();
    let mut record_bytes = 0usize;
    // (name, data directory, ack, write-ahead log, lone caller commits)
    for (name, dir, ack, wal, lead) in [
        ("orbit-tmpfs", shm.path(), RecordAck::Durable, true, true),
        ("orbit-disk", disk.path(), RecordAck::Durable, true, true),
        ("orbit-tmpfs-writer-thread", shm_thread.path(), RecordAck::Durable, true, false),
        ("orbit-disk-writer-thread", disk_thread.path(), RecordAck::Durable, true, false),
        ("orbit-tmpfs-no-wal", shm_nowal.path(), RecordAck::Durable, false, true),
        ("orbit-disk-no-wal", disk_nowal.path(), RecordAck::Durable, false, true),
        ("orbit-queued-disk", queued_dir.path(), RecordAck::Queued, true, true),
    ] {
        let mut config = OrbitConfig::default();
        config.engine.record_ack = ack;
        config.run_commit.write_ahead_log = wal;
        config.run_commit.lone_caller_commits = lead;
        let orbit = Orbit::open_with(dir, config).unwrap();
        let component = orbit.engine().load(&wasm).unwrap();
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let out = orbit.engine().invoke(&component, Invocation::new("hello")).await.unwrap();
                assert!(out.status().is_success());
            })
        });
        // Every queued run reaches the store.
        rt.block_on(orbit.runs().flush()).unwrap();
        if record_bytes == 0 {
            let out = rt.block_on(orbit.engine().invoke(&component, Invocation::new("hello"))).unwrap();
            let rec = orbit.runs().get(out.run_id()).unwrap().unwrap();
            record_bytes = serde_json::to_vec(&rec).unwrap().len();
        }
    }

    // The floor of a durable run: the run itself, then one record-sized
    // append and one fdatasync on the same file system.
    for (name, dir) in [("bare-wasmtime-fdatasync-tmpfs", shm.path()), ("bare-wasmtime-fdatasync-disk", disk.path())] {
        use std::io::Write;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("floor.log")).unwrap();
        let (log, row) = (&log, &vec![7u8; record_bytes]);
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                assert_eq!(bare_run(&engine, &pre, BareLimits::Same, "hello").await, "hello");
                let mut file: &std::fs::File = log;
                file.write_all(row).unwrap();
                file.sync_data().unwrap();
            })
        });
    }
    // The same floor for a log that keeps its file's length (as the run
    // store's does after each checkpoint): the record overwrites blocks the
    // file already has, in turn through 8 MiB written and synced beforehand,
    // so the fdatasync has data to flush but no new size or extents.
    {
        use std::os::unix::fs::FileExt;
        const REGION: u64 = 8 << 20;
        let log =
            std::fs::OpenOptions::new().create(true).write(true).open(disk.path().join("floor-kept.log")).unwrap();
        log.write_all_at(&vec![0u8; REGION as usize], 0).unwrap();
        log.sync_all().unwrap();
        let (log, row) = (&log, &vec![7u8; record_bytes]);
        let at = std::cell::Cell::new(0u64);
        g.bench_function("bare-wasmtime-fdatasync-kept-disk", |b| {
            b.to_async(&rt).iter(|| async {
                assert_eq!(bare_run(&engine, &pre, BareLimits::Same, "hello").await, "hello");
                let offset = at.get();
                at.set((offset + row.len() as u64) % (REGION - row.len() as u64));
                log.write_all_at(row, offset).unwrap();
                log.sync_data().unwrap();
            })
        });
    }
    if common::full_mode() {
        record(&format!("invoke: a run record is {record_bytes} bytes of JSON"));
    }

    // The pooling allocator handing every page of a run's memory and tables
    // back to the kernel (madvise) instead of keeping the default 2 MiB
    // resident and resetting it with memset, on both sides of the ratio.
    let mut released = orbit::EngineConfig::default();
    released.keep_resident_bytes = 0;
    let (engine_r, pre_r) = bare_with(&wasm, BareLimits::Same, &released);
    g.bench_function("bare-wasmtime-released", |b| {
        b.to_async(&rt).iter(|| async {
            assert_eq!(bare_run(&engine_r, &pre_r, BareLimits::Same, "hello").await, "hello");
        })
    });
    let released_dir = tempfile::tempdir().unwrap();
    let mut config = OrbitConfig::default();
    config.engine.record_ack = RecordAck::Queued;
    config.engine.keep_resident_bytes = released.keep_resident_bytes;
    let orbit = Orbit::open_with(released_dir.path(), config).unwrap();
    let component = orbit.engine().load(&wasm).unwrap();
    g.bench_function("orbit-queued-disk-released", |b| {
        b.to_async(&rt).iter(|| async {
            let out = orbit.engine().invoke(&component, Invocation::new("hello")).await.unwrap();
            assert!(out.status().is_success());
        })
    });
    rt.block_on(orbit.runs().flush()).unwrap();
    g.finish();
    report_ratio("invoke", "orbit-tmpfs", "bare-wasmtime", "<= 1.5x");
    report_ratio("invoke", "orbit-disk", "bare-wasmtime", "<= 1.5x");
    report_ratio("invoke", "orbit-disk", "bare-wasmtime-fdatasync-disk", "<= 1.3x (P1b)");
    report_ratio(
        "invoke",
        "orbit-disk",
        "bare-wasmtime-fdatasync-kept-disk",
        "the floor with an overwrite, as the run store's log does",
    );
    report_ratio("invoke", "orbit-tmpfs", "bare-wasmtime-fdatasync-tmpfs", "<= 1.3x");
    report_ratio(
        "invoke",
        "orbit-disk-writer-thread",
        "bare-wasmtime-fdatasync-disk",
        "every record through the writer thread",
    );
    report_ratio(
        "invoke",
        "orbit-tmpfs-writer-thread",
        "bare-wasmtime-fdatasync-tmpfs",
        "every record through the writer thread",
    );
    report_ratio("invoke", "orbit-disk-no-wal", "bare-wasmtime-fdatasync-disk", "write-ahead log off");
    report_ratio("invoke", "orbit-tmpfs-no-wal", "bare-wasmtime-fdatasync-tmpfs", "write-ahead log off");
    report_ratio("invoke", "orbit-queued-disk", "bare-wasmtime", "<= 1.5x");
    report_ratio("invoke", "bare-wasmtime", "bare-wasmtime-released", "lower is better");
    report_ratio("invoke", "orbit-queued-disk-released", "bare-wasmtime-released", "<= 1.5x");
    report_ratio("invoke", "orbit-queued-disk", "orbit-queued-disk-released", "lower is better");

    let mut g = c.benchmark_group("durable");
    g.measurement_time(Duration::from_secs(5)).sample_size(10);
    let orbit_wal = orbit_at(disk.path());
    let mut config = OrbitConfig::default();
    config.run_commit.write_ahead_log = false;
    let orbit_nowal = Orbit::open_with(disk_nowal.path(), config).unwrap();
    let disk_released = tempfile::tempdir().unwrap();
    let mut config = OrbitConfig::default();
    config.engine.keep_resident_bytes = released.keep_resident_bytes;
    let orbit_released = Orbit::open_with(disk_released.path(), config).unwrap();
    let disk_linger = tempfile::tempdir().unwrap();
    let mut config = OrbitConfig::default();
    config.run_commit.max_linger = Duration::from_millis(1);
    let orbit_linger = Orbit::open_with(disk_linger.path(), config).unwrap();
    let disk_inline = tempfile::tempdir().unwrap();
    let mut config = OrbitConfig::default();
    config.run_commit.background_flush = false;
    let orbit_inline = Orbit::open_with(disk_inline.path(), config).unwrap();
    let runs_done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // `sustained`: each caller runs its share of all the iterations' runs
    // back to back, with no barrier until the end; otherwise every 64 runs
    // end together before the next 64 start.
    for (callers, orbit, suffix, sustained) in [
        (1usize, &orbit_wal, "", false),
        (2, &orbit_wal, "", false),
        (16, &orbit_wal, "", false),
        (64, &orbit_wal, "", false),
        (16, &orbit_wal, "-sustained", true),
        (64, &orbit_wal, "-sustained", true),
        (16, &orbit_linger, "-sustained-linger-1ms", true),
        (64, &orbit_linger, "-sustained-linger-1ms", true),
        (16, &orbit_inline, "-sustained-inline-checkpoint", true),
        (64, &orbit_inline, "-sustained-inline-checkpoint", true),
        (16, &orbit_nowal, "-no-wal", false),
        (16, &orbit_released, "-released", false),
        (64, &orbit_released, "-released", false),
    ] {
        let component = orbit.engine().load(&wasm).unwrap();
        // One "iteration" = 64 runs spread over `callers` tasks.
        g.throughput(criterion::Throughput::Elements(64));
        let commits_before = orbit.runs().commits();
        let runs_before = runs_done.load(std::sync::atomic::Ordering::Relaxed);
        g.bench_function(format!("runs-{callers}-callers{suffix}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let orbit = orbit.clone();
                let component = component.clone();
                let runs_done = runs_done.clone();
                async move {
                    let start = Instant::now();
                    let (rounds, each) =
                        if sustained { (1, iters as usize * 64 / callers) } else { (iters, 64 / callers) };
                    for _ in 0..rounds {
                        let tasks: Vec<_> = (0..callers)
                            .map(|_| {
                                let (orbit, component, runs_done) =
                                    (orbit.clone(), component.clone(), runs_done.clone());
                                tokio::spawn(async move {
                                    for _ in 0..each {
                                        orbit.engine().invoke(&component, Invocation::new("x")).await.unwrap();
                                    }
                                    runs_done.fetch_add(each, std::sync::atomic::Ordering::Relaxed);
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                    }
                    start.elapsed()
                }
            })
        });
        let runs = runs_done.load(std::sync::atomic::Ordering::Relaxed) - runs_before;
        let commits = orbit.runs().commits() - commits_before;
        if common::full_mode() {
            record(&format!(
                "durable/runs-{callers}-callers{suffix}: {:.1} records per commit",
                runs as f64 / commits.max(1) as f64
            ));
        }
    }
    // Baseline: one durable redb commit per run record.
    let db = Arc::new(redb::Database::create(disk.path().join("baseline.redb")).unwrap());
    const T: redb::TableDefinition<u128, &[u8]> = redb::TableDefinition::new("runs");
    let row = vec![7u8; 600];
    let mut n = 0u128;
    g.throughput(criterion::Throughput::Elements(1));
    g.bench_function("one-commit-per-run", |b| {
        b.iter(|| {
            let mut tx = db.begin_write().unwrap();
            tx.set_durability(redb::Durability::Immediate).unwrap();
            tx.open_table(T).unwrap().insert(n, row.as_slice()).unwrap();
            tx.commit().unwrap();
            n += 1;
        })
    });
    g.finish();
    if common::full_mode() {
        let Some(one) = median_ns("durable", "one-commit-per-run") else { return };
        for name in [
            "runs-1-callers",
            "runs-2-callers",
            "runs-16-callers",
            "runs-64-callers",
            "runs-16-callers-sustained",
            "runs-64-callers-sustained",
            "runs-16-callers-sustained-linger-1ms",
            "runs-64-callers-sustained-linger-1ms",
            "runs-16-callers-sustained-inline-checkpoint",
            "runs-64-callers-sustained-inline-checkpoint",
            "runs-16-callers-no-wal",
            "runs-16-callers-released",
            "runs-64-callers-released",
        ] {
            if let Some(ns) = median_ns("durable", name) {
                let per_s = 64.0 / (ns / 1e9);
                record(&format!(
                    "durable/{name} = {per_s:.0} runs/s vs one-commit-per-run = {:.0} commits/s: ratio {:.2}x (target >= 20000 runs/s at 16 callers, >= 40000 at 64)",
                    1e9 / one,
                    per_s / (1e9 / one)
                ));
            }
        }
    }
    for callers in [16, 64] {
        report_ratio(
            "durable",
            &format!("runs-{callers}-callers"),
            &format!("runs-{callers}-callers-released"),
            "lower is better: time per 64 runs, memory kept resident against not",
        );
    }
}

criterion_group!(benches, invoke);
criterion_main!(benches);
