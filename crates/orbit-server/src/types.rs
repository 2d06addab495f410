//! The MCP tools' inputs and results: each becomes the tool's JSON Schema
//! (`inputSchema`, `outputSchema`) through schemars, so the doc comments
//! here are what a model reads.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One MCP tool offered by an MCP server installed in a workspace (see
/// `orbit tools add`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceTool {
    /// The installed server's name in the workspace.
    pub server: String,
    /// The tool's name on that server.
    pub name: String,
    /// The tool's description, when the server gave one.
    pub description: Option<String>,
    /// The tool's input JSON Schema.
    pub input_schema: serde_json::Value,
}

/// Input of `run_component`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunComponentArgs {
    /// The component (.wasm: an orbit agent or a wasi:cli command) as
    /// standard base64. Give exactly one of this, `digest` and `source`.
    /// It is kept under its sha256 so later runs can pass only the digest.
    #[serde(default)]
    pub component_base64: Option<String>,
    /// The sha256 (64 lowercase hex digits) of a component submitted
    /// before, as returned in `digest`.
    #[serde(default)]
    pub digest: Option<String>,
    /// An agent's source code (at most 1 MiB), built into a component by
    /// the server with the orbit SDK of `language` (see the SDKs'
    /// READMEs): Python (`@orbit.agent def run(input: str) -> str`) or
    /// TypeScript/JavaScript (`export function run(input: string):
    /// string`, importing from "orbit"). Builds take seconds and are
    /// cached by content; the result's `digest` runs it again at once.
    #[serde(default)]
    pub source: Option<String>,
    /// The language of `source`: `python`, `typescript` or `javascript`.
    #[serde(default)]
    pub language: Option<String>,
    /// The input: the agent's `run` argument, or the command's stdin.
    #[serde(default)]
    pub input: String,
    /// The workspace: the token's own (the only one it may act in).
    /// Optional; any other name is answered as a workspace that does not
    /// exist.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Fuel budget, in wasmtime fuel units (about one per wasm instruction).
    /// Default 2,000,000,000.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Wall-clock deadline of the run, in milliseconds (1 to 3,600,000).
    /// Default 10,000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Linear memory limit, in bytes, for all of the run's memories.
    /// Default 64 MiB; capped by the engine.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

/// Why a run did not succeed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct RunErrorInfo {
    /// A guest error code such as `invalid-input`, or a trap name such as
    /// `out-of-fuel`.
    pub code: String,
    /// A fixed text per code; for `failed` runs, the text the guest chose.
    pub message: String,
}

/// Result of `run_component`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct RunResult {
    /// The run's id (a UUID v7), for `get_run`.
    pub run_id: String,
    /// How the run ended: succeeded, failed, exited, out-of-fuel,
    /// deadline-exceeded, memory-limit, stack-overflow, too-large, trapped
    /// or internal.
    pub status: String,
    /// The output (agent result or command stdout), as UTF-8 (lossy).
    pub output: String,
    /// The sha256 of the component, to run it again by digest.
    pub digest: String,
    /// `agent` or `command`.
    pub kind: String,
    /// A command's exit code.
    pub exit_code: Option<i32>,
    /// Fuel consumed, in wasmtime fuel units.
    pub fuel_consumed: u64,
    /// Linear memory the run's instance held at its end (its peak), in bytes.
    pub memory_bytes: u64,
    /// Wall-clock duration, in microseconds.
    pub duration_us: u64,
    /// Why the run did not succeed; absent on success.
    pub error: Option<RunErrorInfo>,
}

/// Input of `list_runs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRunsArgs {
    /// The workspace: the token's own (the only one it may act in).
    /// Optional; any other name is answered as a workspace that does not
    /// exist.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Only runs with this status (succeeded, failed, exited, out-of-fuel,
    /// deadline-exceeded, memory-limit, stack-overflow, too-large, trapped,
    /// internal).
    #[serde(default)]
    pub status: Option<String>,
    /// The most runs to return, 1 to 1000. Default 20.
    #[serde(default)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page, to list older runs.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// One run in a [`RunList`].
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: String,
    /// How the run ended.
    pub status: String,
    /// The component's sha256.
    pub digest: String,
    /// `agent` or `command`.
    pub kind: String,
    /// Start time, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Wall-clock duration, in microseconds.
    pub duration_us: u64,
    /// Fuel consumed, in wasmtime fuel units.
    pub fuel_consumed: u64,
    /// Linear memory the run's instance held at its end (its peak), in bytes.
    pub memory_bytes: u64,
    /// Why the run did not succeed; absent on success.
    pub error: Option<RunErrorInfo>,
    /// Who started it: a member's handle (`ada`), with the agent when a
    /// token was issued to one (`ada/claude`); `local:<os-user>` for the
    /// operator's CLI. Absent for runs recorded before principals existed.
    pub started_by: Option<String>,
}

/// Result of `list_runs`: one page, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct RunList {
    /// The runs on this page.
    pub runs: Vec<RunSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Input of `get_run`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetRunArgs {
    /// The run's id, as returned by `run_component` or `list_runs`.
    pub run_id: String,
    /// The workspace: the token's own (the only one it may act in).
    /// Optional; any other name is answered as a workspace that does not
    /// exist.
    #[serde(default)]
    pub workspace: Option<String>,
}

/// One host call the guest made, in a [`RunDetail`].
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct SpanInfo {
    /// The primitive, such as `storage` or `fetch`.
    pub primitive: String,
    /// The operation, such as `get`.
    pub operation: String,
    /// Start, in microseconds since the run started.
    pub start_offset_us: u64,
    /// Duration, in microseconds.
    pub duration_us: u64,
    /// `ok` or the error code the call returned.
    pub outcome: String,
    /// Bytes passed in by the guest.
    pub bytes_in: u64,
    /// Bytes returned to the guest.
    pub bytes_out: u64,
    /// Extra facts (for `fetch`: method, host, status, secret names).
    #[schema(value_type = Vec<Vec<String>>)]
    pub attrs: Vec<(String, String)>,
}

/// One log line, in a [`RunDetail`].
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct LogInfo {
    /// When, in microseconds since the run started.
    pub offset_us: u64,
    /// trace, debug, info, warn, error or stderr.
    pub level: String,
    /// The text.
    pub message: String,
}

/// Result of `get_run`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct RunDetail {
    /// The run's summary.
    #[serde(flatten)]
    pub summary: RunSummary,
    /// The workspace.
    pub workspace: String,
    /// A command's exit code.
    pub exit_code: Option<i32>,
    /// Input size, in bytes.
    pub input_bytes: u64,
    /// Full output size, in bytes.
    pub output_bytes: u64,
    /// The recorded copy of the output (capped); absent when not recorded.
    pub output: Option<String>,
    /// Whether `output` holds less than the full output.
    pub output_truncated: bool,
    /// The guest's log lines (capped).
    pub logs: Vec<LogInfo>,
    /// Whether lines were dropped from `logs`.
    pub logs_truncated: bool,
    /// One span per host call, in start order.
    pub spans: Vec<SpanInfo>,
    /// Host calls past the span cap, counted but not recorded.
    pub spans_dropped: u64,
}

/// Input of `list_tools`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListToolsArgs {
    /// The workspace: the token's own (the only one it may act in).
    /// Optional; any other name is answered as a workspace that does not
    /// exist.
    #[serde(default)]
    pub workspace: Option<String>,
}

/// Result of `list_tools`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ToolList {
    /// The tools of the workspace's enabled MCP servers that its policy
    /// allows, by server then tool name.
    pub tools: Vec<WorkspaceTool>,
    /// Enabled servers that could not be reached to list their tools.
    pub unavailable: Vec<String>,
}
