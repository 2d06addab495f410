//! The extension point for orbit primitives.

use wasmtime::component::Linker;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::state::{Extensions, RunInfo, RunState};

/// An orbit primitive: a WIT interface implemented by the host.
///
/// A primitive crate implements this trait once and is composed into an
/// engine with [`EngineBuilder::primitive`](crate::EngineBuilder::primitive);
/// adding a primitive touches no other primitive.
///
/// The usual shape (see `orbit-storage` and `orbit-cache`):
/// - a shared, engine-lifetime value implementing `Primitive`;
/// - a per-run state inserted by [`prepare`](Primitive::prepare);
/// - the generated `Host` trait implemented on a view that borrows
///   [`RunInfo`] and the per-run state, obtained with [`RunState::parts`];
/// - each host call wrapped in [`RunInfo::host_call`], which applies the
///   deadline, records the span and sanitizes errors.
pub trait Primitive: Send + Sync + 'static {
    /// A short name, such as `"storage"`, used in spans and errors.
    fn name(&self) -> &'static str;

    /// Adds this primitive's host functions to a linker of the engine:
    /// once when the engine is built (Cranelift's linker), and once more
    /// for the baseline compiler's linker at the first compile-cache miss
    /// ([`Tier`](crate::Tier)). Keep it free of side effects beyond the
    /// linker.
    ///
    /// # Errors
    /// [`EngineError::Config`] when the functions clash with ones already
    /// defined.
    fn add_to_linker(&self, linker: &mut Linker<RunState>) -> Result<(), EngineError>;

    /// Creates this primitive's per-run state for `run` and inserts it into
    /// `extensions`. Called for every run before the component is
    /// instantiated. Keep it cheap: it is on the invocation hot path. When
    /// the component imports none of the primitive's interfaces
    /// ([`RunInfo::imports`]), the state may be left out (nothing can read
    /// it), but budgets must still be opened: a run's budgets are shared
    /// with, and sliced for, the runs it starts.
    ///
    /// # Errors
    /// [`EngineError::Primitive`] when the state cannot be created. The run
    /// is then recorded as `internal` with this error as operator detail, and
    /// the component is not instantiated.
    fn prepare(&self, run: &RunInfo, extensions: &mut Extensions) -> Result<(), EngineError>;

    /// Called once the run has ended (however it ended) and before its
    /// record is written: the place to record spans for work that finished
    /// outside a host call, such as requests the guest abandoned. The default
    /// does nothing.
    fn finish(&self, run: &mut RunInfo, extensions: &mut Extensions) {
        let _ = (run, extensions);
    }

    /// Called once with the built engine, at the end of
    /// [`EngineBuilder::build`](crate::EngineBuilder::build), for primitives
    /// that start runs of their own (`jobs`). Keep only
    /// [`Engine::downgrade`]: the engine owns its primitives, so a strong
    /// handle would keep it alive forever. The default does nothing.
    fn attach(&self, engine: &Engine) {
        let _ = engine;
    }
}
