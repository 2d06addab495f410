//! Orbit's engine: runs WebAssembly components for a workspace in fresh,
//! fuel-, deadline- and memory-limited wasmtime stores, and records every
//! run durably in an [`orbit_runs::RunStore`].
//!
//! - One [`Engine`] per process: a wasmtime `Engine` and `Linker` with the
//!   pooling allocator and copy-on-write memory init for Cranelift's code,
//!   a second pair for Winch's baseline code (built at the first compile
//!   cache miss), and an epoch ticker for both.
//! - [`Engine::load`] compiles a component once (cached on disk by sha256
//!   and the engine's compatibility hash) and keeps its `InstancePre`. A
//!   cache miss runs Winch's baseline code at once while Cranelift compiles
//!   for the cache in the background ([`Tier`]).
//! - [`Engine::invoke`] runs it in a fresh `Store` under [`Limits`] and
//!   returns an [`Outcome`] once the run record is durable.
//! - Primitives plug in through the [`Primitive`] trait.
//! - Every run acts for a [`Principal`](orbit_workspace::Principal)
//!   ([`Invocation::principal()`]): recorded on the run, inherited by child
//!   runs, and asked by each primitive through [`RunInfo::permit`].
//!   [`Engine::cancel_run`] and [`Engine::cancel_token`] stop runs in
//!   flight; they are recorded as `cancelled`.
//!
//! Guests see errors only as [`GuestError`] with a fixed message per
//! [`ErrorCode`]; internal detail goes on the run record.

// Generated from `wit/`; the documentation lives in the WIT files.
#[allow(missing_docs)]
pub mod bindings;
mod budget;
mod compile;
mod config;
mod engine;
mod error;
mod execute;
mod limits;
mod log;
mod primitive;
mod state;
mod tier;

pub use budget::{Budget, BudgetSpent, Budgets};
pub use compile::digest;
pub use config::{EngineConfig, InstanceAllocation, RecordAck, wasmtime_config};
pub use engine::{Engine, EngineBuilder, Invocation, LoadedComponent, Outcome, RunObserver, RunSlot, WeakEngine};
pub use error::{EngineError, ErrorCode, GuestError, HostError, code_name, safe_message};
pub use limits::Limits;
pub use orbit_runs;
pub use orbit_workspace;
pub use primitive::Primitive;
pub use state::{
    DeadlineExceeded, Extensions, LOG_LINE_OVERHEAD, MAX_SPANS, OutputLimitExceeded, RunCancelled, RunInfo, RunState,
};
pub use tier::Tier;
pub use wasmtime;
