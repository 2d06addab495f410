//! Isolation overhead: Orbit against bare wasmtime, measured in one run.
//!
//! - `invoke/bare-wasmtime`: the same wasmtime `Config` as Orbit (pooling,
//!   fuel, epochs), `InstancePre` instantiate + call `run` + drop the store.
//! - `invoke/orbit-tmpfs`: `Engine::invoke` of the same component, run
//!   record committed to a run store on tmpfs (engine cost without fsync).
//! - `invoke/orbit-disk`: the same with the run store on disk: every
//!   acknowledged run is durable, so one caller pays one fsync per run.
//! - `durable/*`: runs per second with durable records for 1 and 16
//!   concurrent callers (group commit), against one redb commit per run.
//!
//! Run with `cargo bench --bench invoke`. Whether `RUST_BACKTRACE` was set
//! is printed first: it slows trap paths, not these.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use orbit::orbit_engine::bindings::AgentPre;
use orbit::orbit_engine::wasmtime::component::{Component, Linker, ResourceTable};
use orbit::orbit_engine::wasmtime::{self, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use orbit::{Invocation, Orbit};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

fn bare_pre(wasm: &[u8]) -> (wasmtime::Engine, AgentPre<Bare>) {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(64)
        .total_core_instances(1024)
        .total_memories(128)
        .total_tables(1024)
        .total_stacks(64);
    pool.max_core_instances_per_component(64).max_memories_per_component(4).max_tables_per_component(64);
    pool.max_memory_size(1 << 30);
    let mut cfg = wasmtime::Config::new();
    cfg.consume_fuel(true).epoch_interruption(true).memory_init_cow(true);
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = wasmtime::Engine::new(&cfg).unwrap();
    let component = Component::new(&engine, wasm).unwrap();
    let mut linker = Linker::<Bare>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    linker.define_unknown_imports_as_traps(&component).unwrap();
    let pre = AgentPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    (engine, pre)
}

fn orbit_at(dir: &Path) -> Orbit {
    Orbit::open(dir).unwrap()
}

fn invoke(c: &mut Criterion) {
    eprintln!("RUST_BACKTRACE={:?}", std::env::var("RUST_BACKTRACE").ok());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let wasm = orbit_test_guests::bytes("echo");
    let mut g = c.benchmark_group("invoke");
    g.measurement_time(Duration::from_secs(5));

    let (engine, pre) = bare_pre(&wasm);
    g.bench_function("bare-wasmtime", |b| {
        b.to_async(&rt).iter(|| async {
            let mut store = Store::new(&engine, Bare { wasi: WasiCtx::builder().build(), table: ResourceTable::new() });
            store.set_fuel(2_000_000_000).unwrap();
            store.set_epoch_deadline(2000);
            let agent = pre.instantiate_async(&mut store).await.unwrap();
            let out = agent.call_run(&mut store, "hello").await.unwrap().unwrap();
            assert_eq!(out, "hello");
        })
    });

    let shm = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let disk = tempfile::tempdir().unwrap();
    for (name, dir) in [("orbit-tmpfs", shm.path()), ("orbit-disk", disk.path())] {
        let orbit = orbit_at(dir);
        let component = orbit.engine().load(&wasm).unwrap();
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let out = orbit.engine().invoke(&component, Invocation::new("hello")).await.unwrap();
                assert!(out.status().is_success());
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("durable");
    g.measurement_time(Duration::from_secs(5)).sample_size(10);
    let orbit = orbit_at(disk.path());
    let component = orbit.engine().load(&wasm).unwrap();
    for callers in [1usize, 16] {
        // One "iteration" = 64 runs spread over `callers` tasks.
        g.throughput(criterion::Throughput::Elements(64));
        g.bench_function(format!("runs-{callers}-callers"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let orbit = orbit.clone();
                let component = component.clone();
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let tasks: Vec<_> = (0..callers)
                            .map(|_| {
                                let (orbit, component) = (orbit.clone(), component.clone());
                                tokio::spawn(async move {
                                    for _ in 0..64 / callers {
                                        orbit.engine().invoke(&component, Invocation::new("x")).await.unwrap();
                                    }
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
    }
    // Baseline: one durable redb commit per run record.
    let db = Arc::new(redb::Database::create(disk.path().join("baseline.redb")).unwrap());
    const T: redb::TableDefinition<u128, &[u8]> = redb::TableDefinition::new("runs");
    let record = vec![7u8; 600];
    let mut n = 0u128;
    g.throughput(criterion::Throughput::Elements(1));
    g.bench_function("one-commit-per-run", |b| {
        b.iter(|| {
            let mut tx = db.begin_write().unwrap();
            tx.set_durability(redb::Durability::Immediate).unwrap();
            tx.open_table(T).unwrap().insert(n, record.as_slice()).unwrap();
            tx.commit().unwrap();
            n += 1;
        })
    });
    g.finish();
}

criterion_group!(benches, invoke);
criterion_main!(benches);
