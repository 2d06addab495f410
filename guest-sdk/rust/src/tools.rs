//! MCP tools of the MCP servers installed in the run's workspace
//! (`orbit tools add`), called through the host.
//!
//! ```no_run
//! use orbit_guest::tools;
//! use serde_json::json;
//!
//! # fn main() -> orbit_guest::Result<()> {
//! for t in tools::list()? {
//!     println!("{}/{}: {}", t.server, t.name, t.description);
//! }
//! let sum = tools::call("everything", "get-sum", &json!({"a": 1, "b": 2}))?;
//! assert!(!sum.is_error);
//! println!("{}", sum.text());
//! # Ok(())
//! # }
//! ```
//!
//! Errors: `not-found` (no such enabled server or tool), `permission-denied`
//! (the workspace's policy), `invalid-input` (arguments not a JSON object, or
//! refused by the server), `too-large` (arguments or result over the host's
//! caps), `limit-exceeded` (calls per run), `unavailable` (the server could
//! not be reached, died, or did not answer in time).

use crate::__bindings::orbit::runtime::tools as wit;
use crate::{Error, Result};

/// A tool a run may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    /// The server's name in the workspace.
    pub server: String,
    /// The tool's name on that server.
    pub name: String,
    /// What it does; empty when the server says nothing.
    pub description: String,
    /// The JSON Schema of its arguments.
    pub input_schema: serde_json::Value,
}

/// The result of a tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// The MCP content array: blocks such as
    /// `{"type": "text", "text": "..."}` or `{"type": "image", ...}`.
    pub content: serde_json::Value,
    /// The tool reported an error; `content` says what.
    pub is_error: bool,
}

impl ToolResult {
    /// The text of the result's `text` blocks, joined by newlines.
    pub fn text(&self) -> String {
        self.content
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter(|b| b["type"] == "text")
                    .filter_map(|b| b["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}

/// The tools of the workspace's enabled servers that its policy allows.
///
/// # Errors
/// `internal` when the host's registry cannot be read.
pub fn list() -> Result<Vec<ToolInfo>> {
    Ok(wit::list()?
        .into_iter()
        .map(|t| ToolInfo {
            server: t.server,
            name: t.name,
            description: t.description,
            input_schema: serde_json::from_str(&t.input_schema).unwrap_or(serde_json::Value::Null),
        })
        .collect())
}

/// Calls `tool` of `server` with `arguments`, which must serialize to a
/// JSON object.
///
/// # Errors
/// `invalid-input` when `arguments` does not serialize to JSON; otherwise
/// as [`call_json`].
pub fn call(server: &str, tool: &str, arguments: &impl serde::Serialize) -> Result<ToolResult> {
    let json = serde_json::to_string(arguments).map_err(|e| Error::invalid_input(e.to_string()))?;
    call_json(server, tool, &json)
}

/// Calls `tool` of `server` with `arguments_json`, JSON text of an object,
/// passed on as is (the host checks it).
///
/// # Errors
/// See the [module docs](self).
pub fn call_json(server: &str, tool: &str, arguments_json: &str) -> Result<ToolResult> {
    let r = wit::call(server, tool, arguments_json)?;
    let content = serde_json::from_str(&r.content).map_err(|e| Error::internal(e.to_string()))?;
    Ok(ToolResult { content, is_error: r.is_error })
}
