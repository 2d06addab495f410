//! Errors: what operators see ([`EngineError`]) and what guests see
//! ([`HostError`] sanitized to [`GuestError`]).

use crate::bindings::orbit::runtime::types;

pub use types::{Error as GuestError, ErrorCode};

/// The fixed, guest-safe message for each error code.
///
/// Guests only ever see these texts; the detail of a failure is kept on the
/// run record for operators.
pub fn safe_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NotFound => "not found",
        ErrorCode::InvalidInput => "invalid input",
        ErrorCode::TooLarge => "too large",
        ErrorCode::LimitExceeded => "limit exceeded",
        ErrorCode::PermissionDenied => "permission denied",
        ErrorCode::Unavailable => "service unavailable",
        ErrorCode::Internal => "internal error",
    }
}

/// The WIT kebab-case name of an error code, as stored on spans and records.
pub fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NotFound => "not-found",
        ErrorCode::InvalidInput => "invalid-input",
        ErrorCode::TooLarge => "too-large",
        ErrorCode::LimitExceeded => "limit-exceeded",
        ErrorCode::PermissionDenied => "permission-denied",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Internal => "internal",
    }
}

/// A failed host call, as produced by a primitive.
///
/// The guest receives only `code` with its [`safe_message`]; `detail` (which
/// may hold paths, OS errors or addresses) goes on the run record.
#[derive(Debug, Clone)]
pub struct HostError {
    /// The code the guest receives.
    pub code: ErrorCode,
    /// Internal detail for operators; never shown to the guest.
    pub detail: Option<String>,
}

impl HostError {
    /// An error with no internal detail worth recording (for example a
    /// missing key).
    pub fn new(code: ErrorCode) -> Self {
        Self { code, detail: None }
    }

    /// An error whose `detail` is kept on the run record for operators.
    pub fn with_detail(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self { code, detail: Some(detail.into()) }
    }

    /// The sanitized error the guest receives.
    pub fn to_guest(&self) -> GuestError {
        GuestError { code: self.code, message: safe_message(self.code).to_owned() }
    }
}

/// Errors from the engine's operator-facing API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Building the wasmtime engine or linker failed (bad configuration).
    #[error("engine configuration: {0}")]
    Config(String),
    /// The bytes are not a WebAssembly component (for example a core module
    /// or a non-wasm file).
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// The component is larger than the submission limit.
    #[error("component is {size} bytes, over the limit of {limit} bytes")]
    ComponentTooLarge {
        /// Size of the submitted component, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The component exports neither `run` (world `orbit:runtime/agent`)
    /// nor `wasi:cli/run`.
    #[error("component exports neither `run` (orbit:runtime/agent) nor `wasi:cli/run`")]
    NoEntryPoint,
    /// The component imports something Orbit does not provide, or its `run`
    /// export has the wrong type.
    #[error("component cannot be linked: {0}")]
    Link(String),
    /// Reading or writing the compile cache failed.
    #[error("compile cache at {path}: {source}")]
    Cache {
        /// The cache file or directory involved.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Recording the run failed; the run's outcome was not made durable.
    #[error("run store: {0}")]
    RunStore(#[from] orbit_runs::RunStoreError),
    /// Compiling the component took longer than the engine's
    /// `compile_timeout`.
    #[error("compiling the component took longer than {0:?}")]
    CompileTimeout(std::time::Duration),
    /// The component was loaded by another [`Engine`](crate::Engine).
    #[error("the component was loaded by another engine")]
    ForeignComponent,
    /// An invocation with [`no_wait`](crate::Invocation::no_wait) found every
    /// run slot taken.
    #[error("every run slot is taken")]
    Busy,
    /// A primitive could not prepare its per-run state.
    #[error("primitive {primitive} failed to prepare the run: {detail}")]
    Primitive {
        /// The primitive's name.
        primitive: &'static str,
        /// What went wrong.
        detail: String,
    },
}
