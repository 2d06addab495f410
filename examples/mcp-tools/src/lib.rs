//! Example agent: calls the MCP tools installed in its workspace.
//!
//! Expects two servers (see the README, "MCP tools"): `everything`
//! (`@modelcontextprotocol/server-everything`) and `time`
//! (`mcp-server-time`). It lists the tools it may call, echoes its input
//! through `everything/echo`, adds two numbers with `everything/get-sum`,
//! asks `time/get_current_time` for the time in UTC, and returns all of it
//! as one JSON object.

use orbit_guest::{Error, Result, log, tools};
use serde_json::{Value, json};

fn run(input: String) -> Result<String> {
    let listed = tools::list()?;
    log::info(&format!("{} tools available", listed.len()));
    let names: Vec<String> = listed.iter().map(|t| format!("{}/{}", t.server, t.name)).collect();

    let message = if input.is_empty() { "hello from orbit".to_owned() } else { input };
    let echo = tools::call("everything", "echo", &json!({ "message": message }))?;
    let sum = tools::call("everything", "get-sum", &json!({ "a": 19, "b": 23 }))?;
    let time = tools::call("time", "get_current_time", &json!({ "timezone": "UTC" }))?;
    if echo.is_error || sum.is_error || time.is_error {
        return Err(Error::internal("a tool reported an error"));
    }
    // mcp-server-time answers with JSON in a text block.
    let time: Value = serde_json::from_str(&time.text()).unwrap_or(Value::String(time.text()));
    Ok(json!({
        "tools": names,
        "echo": echo.text(),
        "sum": sum.text(),
        "time": time,
    })
    .to_string())
}

orbit_guest::export_agent!(run);
