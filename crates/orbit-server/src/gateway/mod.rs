//! The MCP gateway: a workspace's installed MCP servers' tools, offered
//! next to Orbit's own through one endpoint.
//!
//! **Names.** An upstream tool (or prompt) is offered as `<server>__<tool>`
//! (two underscores), or under its own name for the one server of a
//! workspace installed *unprefixed*: server names are 1 to 64 of `a-z A-Z 0-9 _ -`, so the
//! result stays within the MCP tool-name rules (1 to 128 of
//! `A-Z a-z 0-9 _ - .`,
//! <https://modelcontextprotocol.io/specification/2025-11-25/server/tools#tool-names>)
//! whenever the upstream name does. A tool whose gateway name would break
//! those rules, or clash with another's or with one of Orbit's own, is not
//! offered (and the operator's log says so). A call is routed by looking the
//! name up in the same listing, never by splitting it.
//!
//! **Calls** go through [`orbit::Tools::call_as`]: the pooled upstream
//! connection, the workspace credentials injected by reference (never the
//! caller's token), the policy and the permission table checked, and the
//! call audited, on every call.

mod relay;
mod resources;

pub(crate) use resources::ResourceRoutes;

use std::collections::{HashMap, HashSet};

use std::sync::Arc;

use orbit::orbit_tools::{ToolInfo, ToolsError};
use orbit::orbit_workspace::permission::Target;
use orbit::{Action, Orbit, Principal, WorkspaceId};
use rmcp::handler::server::tool::IntoCallToolResult as _;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use crate::ToolFailure;
use crate::auth::Caller;

/// Between a server's name and its tool's in a gateway name.
pub const SEPARATOR: &str = "__";

/// How long listing waits for servers never listed before.
const LIST_TIMEOUT: std::time::Duration = crate::LIST_TOOLS_TIMEOUT;

/// One upstream tool as the gateway offers it.
#[derive(Debug, Clone)]
pub(crate) struct GatewayTool {
    pub info: ToolInfo,
    pub gateway_name: String,
    /// Whether the principal may call it (role and policy).
    pub callable: bool,
}

/// The upstream tools of a workspace, with the servers that could not be
/// listed.
#[derive(Debug, Default)]
pub(crate) struct Listed {
    pub tools: Vec<GatewayTool>,
    pub unavailable: Vec<String>,
}

/// The gateway name of `tool` of `server`, when it keeps to the MCP rules:
/// `<server>__<tool>`, or `tool` itself for an unprefixed server.
pub fn gateway_name(server: &str, tool: &str, unprefixed: bool) -> Option<String> {
    let name = if unprefixed { tool.to_owned() } else { format!("{server}{SEPARATOR}{tool}") };
    let ok = name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    ok.then_some(name)
}

/// Why listing failed: the registry could not be read.
#[derive(Debug)]
pub(crate) struct ListFailed;

impl From<ListFailed> for crate::api::Problem {
    fn from(_: ListFailed) -> Self {
        crate::api::Problem::new("unavailable", "the workspace's MCP tools could not be listed").retry_after(1)
    }
}

/// The enabled servers' tools of `ws`, named for the gateway, each marked
/// with whether `principal` may call it. Servers never listed are started
/// and listed first (up to 10 s).
pub(crate) async fn upstream_tools(
    orbit: &Orbit,
    ws: &WorkspaceId,
    principal: &Principal,
) -> Result<Listed, ListFailed> {
    let until = tokio::time::Instant::now() + LIST_TIMEOUT;
    let (tools, unavailable) = orbit.tools().list(ws, until).await.map_err(|e| {
        tracing::error!(error = %e, "listing a workspace's MCP tools");
        ListFailed
    })?;
    let policy = orbit.tools().registry().policy(ws).map_err(|e| {
        tracing::error!(error = %e, "reading a workspace's tool policy");
        ListFailed
    })?;
    let unprefixed = unprefixed_servers(orbit, ws);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for info in tools {
        let Some(name) = gateway_name(&info.server, &info.name, unprefixed.contains(&info.server)) else {
            tracing::warn!(server = %info.server, tool = %info.name, "tool name cannot be offered through the gateway");
            continue;
        };
        *seen.entry(name.clone()).or_default() += 1;
        let target =
            Target::tool(info.read_only_hint == Some(true), policy.opens_to_read_only(&info.server, &info.name));
        let callable = policy.allows(&info.server, &info.name) && principal.check(Action::CallTool, &target).is_ok();
        out.push(GatewayTool { info, gateway_name: name, callable });
    }
    out.retain(|t| {
        let unique = seen[&t.gateway_name] == 1;
        if !unique {
            tracing::warn!(name = %t.gateway_name, "two tools share a gateway name: neither is offered");
        }
        unique
    });
    Ok(Listed { tools: out, unavailable })
}

/// The server and tool behind gateway name `name` in `ws`, from the
/// registry's last listing of its enabled servers. Tools the policy denies
/// are resolved too, so that the call is refused and audited as such.
pub(crate) fn resolve(orbit: &Orbit, ws: &WorkspaceId, name: &str) -> Option<(String, String)> {
    let doc = orbit.tools().registry().snapshot(ws).ok()?;
    let unprefixed: HashSet<&str> = doc.servers().filter(|s| s.spec.unprefixed).map(|s| s.name.as_str()).collect();
    let tools = doc.servers().filter(|s| s.enabled).flat_map(|s| s.tools.iter().flatten());
    let mut found = tools
        .filter(|t| gateway_name(&t.server, &t.name, unprefixed.contains(t.server.as_str())).as_deref() == Some(name));
    let first = found.next()?;
    // A clash is never routed (nor listed).
    found.next().is_none().then(|| (first.server.clone(), first.name.clone()))
}

/// The caller-safe text of a failed upstream call.
pub(crate) fn failure_text(e: &ToolsError) -> String {
    match e {
        ToolsError::NoSuchServer(_) | ToolsError::NoSuchTool { .. } => "unknown tool".into(),
        ToolsError::Denied { server, tool } => {
            format!("permission denied: the workspace policy denies {server}/{tool}")
        }
        ToolsError::NotPermitted { reason, .. } => format!("permission denied: {reason}"),
        ToolsError::InvalidArguments(why) => format!("invalid arguments: {why}"),
        ToolsError::ArgumentsTooLarge { .. } | ToolsError::ResultTooLarge { .. } => e.to_string(),
        ToolsError::Refused { server, .. } => format!("the MCP server {server} refused the call"),
        ToolsError::Unavailable { server, .. } => {
            format!("the MCP server {server} is unavailable; a later call reconnects")
        }
        ToolsError::Secret(_) => "a credential this server needs could not be provided".into(),
        other => {
            tracing::error!(error = %other, "gateway tool call");
            "internal error".into()
        }
    }
}

/// The names of `ws`'s servers installed unprefixed (at most one).
pub(crate) fn unprefixed_servers(orbit: &Orbit, ws: &WorkspaceId) -> HashSet<String> {
    let servers = orbit.tools().registry().list_servers(ws).unwrap_or_default();
    servers.into_iter().filter(|s| s.spec.unprefixed).map(|s| s.name).collect()
}

/// An upstream tool as the gateway lists it: the tool exactly as its
/// server listed it (title, annotations, output schema, `_meta`), under its
/// gateway name.
pub(crate) fn upstream_tool(t: GatewayTool) -> rmcp::model::Tool {
    let listed = t.info.definition.clone().and_then(|d| serde_json::from_value::<rmcp::model::Tool>(d).ok());
    if let Some(mut tool) = listed {
        tool.name = t.gateway_name.into();
        return tool;
    }
    // Lists stored before whole definitions were kept.
    let schema = match t.info.input_schema {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::from_iter([("type".to_owned(), serde_json::Value::from("object"))]),
    };
    let mut tool = rmcp::model::Tool::new(t.gateway_name, t.info.description, std::sync::Arc::new(schema));
    tool.title = Some(format!("{} ({})", t.info.name, t.info.server));
    if let Some(hint) = t.info.read_only_hint {
        tool.annotations = Some(rmcp::model::ToolAnnotations::new().read_only(hint));
    }
    tool
}

impl crate::OrbitMcp {
    /// This session's relay for one call, under the caller's progress token.
    fn call_relay(&self, context: &RequestContext<RoleServer>) -> Arc<relay::SessionRelay> {
        relay::SessionRelay::new(context.peer.clone(), context.meta.get_progress_token(), self.log_level.clone())
    }

    /// `tools/call` of a tool that is not Orbit's own: an upstream tool by
    /// its gateway name. Every failure is a tool error; the session goes on.
    /// What the server sends about the call (progress, logs, sampling and
    /// elicitation requests) is relayed to this session ([`relay`]).
    pub(crate) async fn call_upstream(
        &self,
        request: CallToolRequestParams,
        caller: &Caller,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let orbit = self.orbit();
        let name = request.name.to_string();
        let mut target = resolve(orbit, &caller.workspace, &name);
        if target.is_none() {
            // A server never listed yet (no client listed tools first): list, then look again.
            let _ = upstream_tools(orbit, &caller.workspace, &caller.principal).await;
            target = resolve(orbit, &caller.workspace, &name);
        }
        let Some((server, tool)) = target else {
            return ToolFailure::new(format!("unknown tool {name:?}")).into_call_tool_result();
        };
        let args = serde_json::Value::Object(request.arguments.unwrap_or_default()).to_string();
        let until = tokio::time::Instant::now() + orbit.tools().limits().call_timeout;
        let relay = self.call_relay(context);
        let call = orbit.tools().call_relayed(
            &caller.workspace,
            &caller.principal,
            &server,
            &tool,
            &args,
            until,
            relay.clone(),
        );
        // The client cancelling its request drops this future, which cancels
        // the upstream call (rmcp sends `notifications/cancelled`).
        let result = tokio::select! {
            r = call => r,
            _ = context.ct.cancelled() => Err(ToolsError::Unavailable { server: server.clone(), detail: "cancelled".into() }),
        };
        relay.drain().await;
        if context.ct.is_cancelled() {
            return ToolFailure::new("cancelled").into_call_tool_result();
        }
        match result {
            Ok(r) => {
                let content: Vec<ContentBlock> = match serde_json::from_value(r.content) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, server = %server, "upstream content");
                        return ToolFailure::new("the MCP server returned content Orbit cannot relay")
                            .into_call_tool_result();
                    }
                };
                let mut result =
                    if r.is_error { CallToolResult::error(content) } else { CallToolResult::success(content) };
                result.structured_content = r.structured_content;
                Ok(result.into())
            }
            Err(e) => ToolFailure::new(failure_text(&e)).into_call_tool_result(),
        }
    }
}
