//! What an engine is built with: [`EngineConfig`], the per-run caps of
//! the pool's slots (`POOL_*`), and the wasmtime configuration both make
//! ([`wasmtime_config`]): the instance allocator's shape in one place.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::{InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::limits::Limits;
// For the docs' links only.
#[cfg(doc)]
use crate::{Engine, Tier};

/// Core instances each run may create at most (the pool's per-component cap;
/// per-run `Limits::instances` is lowered to it).
pub const POOL_INSTANCES_PER_RUN: u32 = 64;
/// Linear memories each run may create at most.
pub const POOL_MEMORIES_PER_RUN: u32 = 4;
/// Tables each run may create at most.
pub const POOL_TABLES_PER_RUN: u32 = 64;
/// Elements each table may hold at most: a pooled table slot's size, and the
/// cap on every run's [`Limits::table_elements`].
pub const POOL_TABLE_ELEMENTS: usize = 100_000;

/// Engine-wide settings, fixed when the engine is built.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Directory for precompiled components. `None` keeps compiled code in
    /// memory only. Default `None`.
    pub cache_dir: Option<PathBuf>,
    /// Bytes of compiled artifacts `cache_dir` may hold; past it, the
    /// artifacts loaded least recently are removed when a new one is
    /// written (they are compiled again when next needed). The newest is
    /// always kept. Default 2 GiB.
    pub max_cache_bytes: u64,
    /// Runs that may execute at once; further invocations wait for a slot.
    /// Also sizes the pooling allocator. Default 64.
    pub max_concurrent_runs: u32,
    /// Upper bound on any run's linear memory, in bytes (the pooling
    /// allocator's `max_memory_size`). Default 1 GiB.
    pub max_memory_bytes: usize,
    /// Bytes at the start of each pooled linear memory and table that stay
    /// mapped when a run ends and are reset in place (copied back from the
    /// component's memory image where it has one, zeroed with `memset`
    /// elsewhere) instead of being handed back to the kernel with `madvise`
    /// (wasmtime's `linear_memory_keep_resident` and `table_keep_resident`;
    /// Linux only). Either way the next run in the slot sees only the image
    /// and zeroes (tests/isolation.rs checks it for linear memory). Keeping
    /// them avoids a TLB shootdown per run (an inter-processor interrupt to
    /// every core running another of the process's threads) and the page
    /// faults of refilling them.
    ///
    /// It costs a reset of up to this many bytes per run, and resident
    /// memory that stays after runs end: each pooled memory slot that has
    /// held a run keeps `min(this, its last memory size)`, and the pool has
    /// `2 × max_concurrent_runs` memory slots, so at most 256 MiB at the
    /// defaults; tables likewise, with `16 × max_concurrent_runs` table
    /// slots that each keep at most their table's size (8 bytes an element:
    /// 160 KiB at the default 20,000 elements, about 800 KiB at the cap of
    /// 100,000 for runs given that limit). Measured with
    /// wasmtime's pool metrics: 1,000 concurrent runs of a Rust component
    /// with 1.44 MiB of linear memory left 1,000 warm slots keeping 1,472 KiB
    /// each (1.4 GiB), and none with 0.
    ///
    /// Default 2 MiB, which covers a small Rust component's whole memory
    /// (1 MiB of stack plus its data and heap); measured against 0 in
    /// BENCHMARKS.md. 0 hands everything back, for hosts that value
    /// resident memory over per-run time, and for a process that runs once
    /// and exits (the `orbit` CLI's short-lived process): its slots are not
    /// reused, and the reset would write every kept page, faulting in those
    /// the run never touched.
    pub keep_resident_bytes: usize,
    /// Period of the epoch ticker that enforces deadlines. Default 5 ms.
    pub epoch_tick: Duration,
    /// How long [`Engine::load_async`] waits for a compile (including its
    /// wait for a place under `max_concurrent_compiles`). Default 60 s.
    pub compile_timeout: Duration,
    /// Compiles that may run at once; further ones wait. A compile whose
    /// caller stopped waiting (past `compile_timeout`) and that has not
    /// started is dropped; one that has started finishes (wasmtime cannot
    /// interrupt Cranelift) within this cap, and is cached. Tier-ups (see
    /// `tiered_compilation`) count against it too, and take at most all
    /// but one of its places. Default: the machine's cores.
    pub max_concurrent_compiles: usize,
    /// Limits used when an invocation does not override them.
    pub default_limits: Limits,
    /// When [`Engine::invoke`] returns relative to the run record's commit.
    /// Default [`RecordAck::Durable`].
    pub record_ack: RecordAck,
    /// How wasmtime allocates each run's instances, linear memories, tables
    /// and async stack. Default [`InstanceAllocation::Pooling`].
    pub instance_allocation: InstanceAllocation,
    /// Tiered compilation: a component that is not in the compile cache
    /// is compiled by Winch, the baseline compiler, and runs at once
    /// (tens of ms instead of hundreds for a 1 MiB component), while
    /// Cranelift compiles it in the background for the cache and for later
    /// runs ([`Tier`]). Both enforce the same limits with the same typed
    /// outcomes; baseline code runs slower, so it spends a run's fuel and
    /// time sooner. Used on x86-64 (elsewhere Cranelift compiles first).
    /// `false` compiles with Cranelift before the first run. Default `true`.
    pub tiered_compilation: bool,
}

/// How wasmtime allocates a run's instances, linear memories, tables and
/// async stack ([`wasmtime::InstanceAllocationStrategy`]). Under either,
/// [`Engine::invoke`] lowers a run's counts to the pool's per-run slots
/// (`POOL_INSTANCES_PER_RUN` and the other `POOL_*` constants) and its
/// memory to [`EngineConfig::max_memory_bytes`], and the store's limiter
/// enforces them and [`Limits`]; the compiled code, its bounds checks and
/// guard regions are the same (the choice is not part of the compile
/// cache's key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstanceAllocation {
    /// wasmtime's pooling allocator, sized when the engine is built for
    /// [`max_concurrent_runs`](EngineConfig::max_concurrent_runs) runs at
    /// once (at the default 64: 64 component instances, 1,024 core
    /// instances, 128 linear memories, 1,024 tables and 64 async stacks,
    /// each stack with its guard page). A run takes free slots and hands
    /// them back, reset, when it ends, so a process that serves many runs
    /// maps and unmaps nothing per run. Memory kept resident between runs:
    /// [`keep_resident_bytes`](EngineConfig::keep_resident_bytes).
    ///
    /// It also refuses, when a component loads, one that would not fit a
    /// slot: more than one linear memory or table per core module, a core
    /// instance or component instance whose runtime state (globals, tables'
    /// and functions' metadata) passes 1 MiB, or an initial table or memory
    /// larger than a slot. That state is host memory outside the run's
    /// memory budget, so this is the choice for untrusted components, and
    /// what every Orbit front end uses.
    #[default]
    Pooling,
    /// Each run's memories, tables and stack are mapped when it starts and
    /// unmapped when it ends (wasmtime's default, as in `wasmtime run`).
    /// Nothing is built up front, which saves a process that runs one
    /// component and exits about 0.4 ms (BENCHMARKS.md, P5). But none of
    /// the load-time checks above is made: a component with a huge runtime
    /// state loads and runs, and that state is not counted in
    /// [`Limits::memory_bytes`]. For trusted components only; Orbit's own
    /// front ends never use it. `keep_resident_bytes` does not apply.
    OnDemand,
}

/// When [`Engine::invoke`] returns relative to the commit of the run's
/// record. Either way every run is recorded, in order, by the run store's
/// group commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordAck {
    /// After the record is durably committed (fsync'd): a run that
    /// `invoke` returned is never lost, and `runs().get` finds it at once.
    /// Costs one commit's latency per call (about 0.2 to 2 ms on disk).
    #[default]
    Durable,
    /// As soon as the record is queued for the next commit. The record is
    /// durable and visible typically within one commit's time;
    /// [`RunStore::flush`](orbit_runs::RunStore::flush) waits for it. A
    /// crash in between loses the runs not yet committed, like PostgreSQL's
    /// `synchronous_commit = off`. For callers that do not need the record
    /// before answering.
    Queued,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_cache_bytes: 2 << 30,
            max_concurrent_runs: 64,
            max_memory_bytes: 1 << 30,
            epoch_tick: Duration::from_millis(5),
            compile_timeout: Duration::from_secs(60),
            max_concurrent_compiles: cores(),
            keep_resident_bytes: 2 << 20,
            default_limits: Limits::default(),
            record_ack: RecordAck::Durable,
            instance_allocation: InstanceAllocation::Pooling,
            tiered_compilation: true,
        }
    }
}

/// The machine's cores, read once per process: each read opens and parses
/// the cgroup's CPU limits (up to 6 system calls), and a short-lived
/// process builds the default configuration more than once.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
}

impl EngineConfig {
    /// The default configuration with compiled components cached in `dir`.
    pub fn with_cache_dir(dir: impl Into<PathBuf>) -> Self {
        Self { cache_dir: Some(dir.into()), ..Self::default() }
    }
}

/// The wasmtime [`Config`](wasmtime::Config) an [`Engine`] built with
/// `config` uses: fuel, epoch interruption, copy-on-write memory
/// initialisation, and the instance allocator
/// [`instance_allocation`](EngineConfig::instance_allocation) names (the
/// pooling allocator sized for
/// [`max_concurrent_runs`](EngineConfig::max_concurrent_runs) runs at once,
/// each with all of its per-run instance, memory, table and stack slots, or
/// wasmtime's on-demand allocator).
///
/// Exposed so that benchmarks can measure bare wasmtime with exactly the
/// engine's settings.
pub fn wasmtime_config(config: &EngineConfig) -> wasmtime::Config {
    let n = config.max_concurrent_runs.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(16))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(16))
        .total_stacks(n)
        .max_core_instances_per_component(POOL_INSTANCES_PER_RUN)
        .max_memories_per_component(POOL_MEMORIES_PER_RUN)
        .max_tables_per_component(POOL_TABLES_PER_RUN)
        .max_memory_size(config.max_memory_bytes)
        // Every table slot holds what any run may be allowed (`execute`
        // lowers a run's limit to this), not only the default limits; the
        // slots are address space, and a reset writes only what a run used.
        .table_elements(POOL_TABLE_ELEMENTS)
        .linear_memory_keep_resident(config.keep_resident_bytes)
        .table_keep_resident(config.keep_resident_bytes);
    // `pagemap_scan` stays off (wasmtime's default): in wasmtime 48 its scan
    // resets only dirty pages that are present, so a dirty page the kernel
    // has swapped out is neither reset nor handed back, and the next run in
    // the slot could read it after swap-in
    // (https://github.com/bytecodealliance/wasmtime/pull/14357). `memset`
    // and `madvise` reset every byte whatever its state; tests/isolation.rs
    // checks that a reused slot shows no earlier run's bytes.
    let strategy = match config.instance_allocation {
        InstanceAllocation::Pooling => InstanceAllocationStrategy::Pooling(pool),
        InstanceAllocation::OnDemand => InstanceAllocationStrategy::OnDemand,
    };
    let mut wt = wasmtime::Config::new();
    wt.consume_fuel(true).epoch_interruption(true).memory_init_cow(true).allocation_strategy(strategy);
    wt
}
