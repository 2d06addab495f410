//! Shared set-up for the benches: bare wasmtime with Orbit's exact
//! `Config`, and ratios read back from criterion's own estimates.

#![allow(dead_code)] // each bench uses a different part

use std::path::PathBuf;

use orbit::orbit_engine::bindings::AgentPre;
use orbit::orbit_engine::bindings::orbit::runtime::{log, types};
use orbit::orbit_engine::wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use orbit::orbit_engine::wasmtime::{self, Store};
use orbit::orbit_engine::{EngineConfig, wasmtime_config};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The host state of a bare wasmtime run: WASI and nothing else.
pub struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl Bare {
    pub fn new() -> Self {
        Self { wasi: WasiCtx::builder().build(), table: ResourceTable::new() }
    }
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The no-op baseline of a host call: the same generated `log` binding
/// as Orbit's, doing nothing.
impl log::Host for Bare {
    async fn log(&mut self, _level: log::Level, _message: String) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl types::Host for Bare {}

/// Which limits bare wasmtime runs with.
#[derive(Clone, Copy, PartialEq)]
pub enum BareLimits {
    /// Orbit's own `Config`: fuel and epoch interruption on.
    Same,
    /// The same `Config` with fuel and epoch interruption off.
    Unlimited,
}

/// Bare wasmtime for `wasm`: Orbit's `wasmtime::Config` (pooling, CoW,
/// fuel, epochs) unless `Unlimited`, WASI p2, a no-op `log`, and every
/// other import a trap.
pub fn bare(wasm: &[u8], limits: BareLimits) -> (wasmtime::Engine, AgentPre<Bare>) {
    bare_with(wasm, limits, &EngineConfig::default())
}

/// As [`bare`], with the wasmtime settings an engine built with `config`
/// uses.
pub fn bare_with(wasm: &[u8], limits: BareLimits, config: &EngineConfig) -> (wasmtime::Engine, AgentPre<Bare>) {
    let mut cfg = wasmtime_config(config);
    if limits == BareLimits::Unlimited {
        cfg.consume_fuel(false).epoch_interruption(false);
    }
    let engine = wasmtime::Engine::new(&cfg).unwrap();
    let component = Component::new(&engine, wasm).unwrap();
    let mut linker = Linker::<Bare>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    types::add_to_linker::<Bare, HasSelf<Bare>>(&mut linker, |s| s).unwrap();
    log::add_to_linker::<Bare, HasSelf<Bare>>(&mut linker, |s| s).unwrap();
    linker.define_unknown_imports_as_traps(&component).unwrap();
    let pre = AgentPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    (engine, pre)
}

/// One bare run: fresh store, instantiate, call `run`, drop the store.
pub async fn bare_run(engine: &wasmtime::Engine, pre: &AgentPre<Bare>, limits: BareLimits, input: &str) -> String {
    let mut store = Store::new(engine, Bare::new());
    if limits == BareLimits::Same {
        store.set_fuel(u64::MAX / 2).unwrap();
        store.set_epoch_deadline(u64::MAX / 2);
    }
    let agent = pre.instantiate_async(&mut store).await.unwrap();
    agent.call_run(&mut store, input).await.unwrap().unwrap()
}

/// `true` under `cargo bench` (criterion gets `--bench`); `false` under
/// `cargo test --benches`, the quick mode that runs each bench once.
pub fn full_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Where criterion writes its estimates.
fn criterion_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("criterion")
}

static STARTED: std::sync::LazyLock<std::time::SystemTime> = std::sync::LazyLock::new(std::time::SystemTime::now);

/// Notes when this bench process started measuring; call it first in each
/// bench, so that estimates left by an earlier run are never reported.
pub fn start() {
    std::sync::LazyLock::force(&STARTED);
}

/// Criterion's median estimate for `group/id` from this process's run, in
/// ns (per iteration), or `None` in quick mode or when it was not run.
pub fn median_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_dir().join(group).join(id).join("new").join("estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < *STARTED {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Prints `group/what ÷ group/base` (criterion medians from this run), and
/// appends the line to `target/criterion/orbit-ratios.txt`, which
/// BENCHMARKS.md is written from.
pub fn report_ratio(group: &str, what: &str, base: &str, target: &str) {
    if !full_mode() {
        return;
    }
    let (Some(a), Some(b)) = (median_ns(group, what), median_ns(group, base)) else {
        eprintln!("ratio {group}/{what} vs {base}: no estimates");
        return;
    };
    let line = format!(
        "{group}/{what} = {} vs {group}/{base} = {}: ratio {:.2}x (target {target})",
        human(a),
        human(b),
        a / b
    );
    record(&line);
}

/// Prints `line` and appends it to `target/criterion/orbit-ratios.txt`.
pub fn record(line: &str) {
    use std::io::Write;
    println!("{line}");
    let dir = criterion_dir();
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("orbit-ratios.txt")) {
        let _ = writeln!(f, "{line}");
    }
}

/// A duration in ns as µs or ms with three significant digits.
pub fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}
