//! Tiered compilation: a component that is not in the compile cache is
//! compiled first by Winch, wasmtime's single-pass baseline compiler, and
//! runs at once; Cranelift compiles it again in the background, writes the
//! artifact to the compile cache, and its code replaces the baseline code
//! for every later run (the "tier-up").
//!
//! Both compilers get the same wasmtime settings ([`wasmtime_config`]):
//! fuel, epoch interruption, the same instance allocator and per-run slots,
//! so a run's limits and how it ends do not depend on the tier
//! (`tests/tiers.rs` runs every limit under both; baseline code is slower,
//! so a run near its deadline or fuel may reach it sooner). Winch's engine
//! differs only in leaving out native unwind info, which no limit, trap or
//! wasm backtrace uses. Winch supports
//! fuel and epochs, and is used on x86-64 only, where wasmtime supports it
//! (tier 1); where it cannot compile a component (a feature it lacks, such
//! as tail calls or GC), the load falls back to Cranelift at once.
//!
//! See wasmtime's [`Strategy::Winch`](wasmtime::Strategy::Winch) and
//! <https://github.com/bytecodealliance/rfcs/blob/main/accepted/wasmtime-baseline-compilation.md>.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use wasmtime::component::Linker;

use crate::config::{EngineConfig, wasmtime_config};
use crate::error::EngineError;
use crate::primitive::Primitive;
use crate::state::RunState;

/// Which of wasmtime's compilers produced a loaded component's machine
/// code ([`LoadedComponent::tier`](crate::LoadedComponent::tier)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Tier {
    /// Winch, the baseline compiler: compiles about ten times faster than
    /// Cranelift, and its code runs slower. Used for the first runs of a
    /// component that is not in the compile cache, until Cranelift's code
    /// replaces it.
    Baseline,
    /// Cranelift, the optimizing compiler: the code the compile cache
    /// holds and later runs use.
    Optimized,
}

/// One compiler's wasmtime engine and the linker built for it (a linker,
/// and every store, belong to one engine).
pub(crate) struct Compiler {
    pub(crate) engine: wasmtime::Engine,
    pub(crate) linker: Linker<RunState>,
}

impl Compiler {
    /// The engine for `tier` with `config`'s settings, and its linker with
    /// WASI p2, `log` and every primitive.
    ///
    /// # Errors
    /// [`EngineError::Config`] when wasmtime refuses the configuration (for
    /// Winch: an architecture it does not support) or two primitives define
    /// the same function.
    pub(crate) fn new(
        config: &EngineConfig,
        tier: Tier,
        primitives: &[Arc<dyn Primitive>],
    ) -> Result<Self, EngineError> {
        let mut wt = wasmtime_config(config);
        if tier == Tier::Baseline {
            wt.strategy(wasmtime::Strategy::Winch);
            // `.eh_frame` serves only native unwinders (profilers, the
            // `backtrace` crate), not wasm backtraces, traps or limits;
            // short-lived baseline code goes without it, which saves
            // emitting and registering it for every function at load.
            // Windows requires it.
            #[cfg(not(windows))]
            wt.native_unwind_info(false);
        }
        let engine = wasmtime::Engine::new(&wt).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let mut linker: Linker<RunState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        crate::log::add_to_linker(&mut linker)?;
        for p in primitives {
            p.add_to_linker(&mut linker)?;
        }
        Ok(Self { engine, linker })
    }
}

/// The digests whose optimizing compile runs in the background, so that a
/// component is tiered up once however often it is loaded meanwhile, and a
/// process can wait for them before it exits.
#[derive(Default)]
pub(crate) struct TierUps {
    running: Mutex<HashSet<String>>,
    finished: Condvar,
}

impl TierUps {
    /// Marks `digest` as tiering up; `false` when it already is.
    pub(crate) fn start(&self, digest: &str) -> bool {
        self.running.lock().unwrap_or_else(PoisonError::into_inner).insert(digest.to_owned())
    }

    /// Marks `digest`'s tier-up as over, however it ended.
    pub(crate) fn finish(&self, digest: &str) {
        self.running.lock().unwrap_or_else(PoisonError::into_inner).remove(digest);
        self.finished.notify_all();
    }

    /// Tier-ups running now.
    pub(crate) fn count(&self) -> usize {
        self.running.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Waits until no tier-up runs, or `timeout` has passed; whether none
    /// runs.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        while !running.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            running = self.finished.wait_timeout(running, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

/// Marks a tier-up as over when dropped, so that a panicking compile does
/// not leave [`TierUps::wait`] waiting for it.
pub(crate) struct TierUpOver<'a>(pub(crate) &'a TierUps, pub(crate) &'a str);

impl Drop for TierUpOver<'_> {
    fn drop(&mut self) {
        self.0.finish(self.1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Engine, EngineConfig};

    /// Winch's engine is built at the first cache miss, after the epoch
    /// ticker started: the ticker must advance it too, or deadlines would
    /// stop baseline code only through the outer wall-clock bound. A loop
    /// that can end only by an epoch interrupt shows it, with no race
    /// against any other bound.
    #[test]
    fn the_epoch_ticker_advances_winchs_engine() {
        let dir = tempfile::tempdir().unwrap();
        let runs = orbit_runs::RunStore::open(&dir.path().join("runs.redb")).unwrap();
        let engine = Engine::builder(EngineConfig::default(), runs).build().unwrap();
        let Some(baseline) = engine.baseline() else {
            return; // no Winch on this architecture: nothing to advance
        };
        let wasm = wat::parse_str(r#"(module (func (export "spin") (loop br 0)))"#).unwrap();
        let module = wasmtime::Module::new(&baseline.engine, wasm).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        let winch = baseline.engine.clone();
        std::thread::spawn(move || {
            let mut store = wasmtime::Store::new(&winch, ());
            store.set_fuel(u64::MAX).unwrap();
            store.set_epoch_deadline(1);
            store.epoch_deadline_trap();
            let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
            let spin = instance.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
            let _ = done.send(spin.call(&mut store, ()).unwrap_err().downcast::<wasmtime::Trap>().ok());
        });
        // Generous: the ticker ticks every 5 ms; only a missing tick waits.
        let trap = finished.recv_timeout(Duration::from_secs(60)).expect("the loop was interrupted");
        assert_eq!(trap, Some(wasmtime::Trap::Interrupt));
    }
}
