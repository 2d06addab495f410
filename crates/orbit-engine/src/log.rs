//! The built-in `log` interface: lines kept on the run record.

use orbit_runs::LogLevel;
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::orbit::runtime::{log, types};
use crate::error::EngineError;
use crate::state::{RunInfo, RunState};

impl log::Host for RunInfo {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        // No span: the line itself is the trace, with its own offset, and a
        // span per line would double what the record holds.
        RunInfo::log(self, level, &message);
        Ok(())
    }
}

impl types::Host for RunInfo {}

pub(crate) fn add_to_linker(linker: &mut Linker<RunState>) -> Result<(), EngineError> {
    let cfg = |e: wasmtime::Error| EngineError::Config(format!("{e:#}"));
    types::add_to_linker::<RunState, HasSelf<RunInfo>>(linker, |s| s.info()).map_err(cfg)?;
    log::add_to_linker::<RunState, HasSelf<RunInfo>>(linker, |s| s.info()).map_err(cfg)?;
    Ok(())
}
