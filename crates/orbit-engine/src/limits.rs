//! Per-run limits and their defaults.

use std::time::Duration;

/// Limits applied to one run. Every field has a documented default
/// ([`Limits::default`]) and may be overridden per invocation.
///
/// Memory, table and instance limits are also capped by the engine-wide
/// pool sizes in [`EngineConfig`](crate::EngineConfig); a per-run value
/// above the engine's cap is lowered to the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Fuel, in wasmtime fuel units (roughly one per wasm instruction).
    /// Default 2,000,000,000. Exhaustion ends the run as `out-of-fuel`.
    pub fuel: u64,
    /// Wall-clock deadline for the whole run, including time blocked in host
    /// calls. Default 10 s. Exceeding it ends the run as `deadline-exceeded`.
    pub timeout: Duration,
    /// Maximum size of each linear memory, in bytes. Default 64 MiB. A guest
    /// whose allocation fails at this cap ends as `memory-limit`.
    pub memory_bytes: usize,
    /// Maximum elements in each table. Default 20,000; at most 100,000 (a
    /// pooled table slot's size), to which a larger value is lowered. A
    /// `table.grow` past it fails: the guest sees -1.
    pub table_elements: usize,
    /// Maximum core instances in the run's store. Default 50.
    pub instances: usize,
    /// Maximum tables in the run's store. Default 50.
    pub tables: usize,
    /// Maximum linear memories in the run's store. Default 4.
    pub memories: usize,
    /// Maximum bytes a guest may pass to the host in one host call
    /// (wasmtime "hostcall fuel"). Default 16 MiB.
    pub hostcall_bytes: usize,
    /// Maximum output in bytes: the `run` result string, or a command's
    /// stdout. Default 1 MiB. Exceeding it ends the run as `too-large`.
    pub output_bytes: usize,
    /// Maximum log bytes kept on the run record (log lines and stderr).
    /// Default 64 KiB. Each line costs its text plus
    /// [`LOG_LINE_OVERHEAD`](crate::LOG_LINE_OVERHEAD) (32) bytes, so a
    /// run keeps at most `log_bytes / 32` lines however short. Further lines
    /// are dropped and the record is marked truncated; the run goes on.
    pub log_bytes: usize,
    /// Maximum size of a submitted component, in bytes. Default 32 MiB.
    /// A larger component is refused as `too-large` before it is compiled.
    pub component_bytes: usize,
    /// Keep a copy of the output (capped at `output_bytes`) and the log on
    /// the run record. Default `true`.
    pub record_output: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 2_000_000_000,
            timeout: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            instances: 50,
            tables: 50,
            memories: 4,
            hostcall_bytes: 16 << 20,
            output_bytes: 1 << 20,
            log_bytes: 64 << 10,
            component_bytes: 32 << 20,
            record_output: true,
        }
    }
}
