//! The `tools` orbit primitive (WIT `orbit:runtime/tools`): guest code calls
//! the MCP tools of the MCP servers installed in its workspace.
//!
//! - **Registry** ([`ToolRegistry`]): per workspace, the installed servers
//!   (stdio command or streamable-HTTP URL, environment and headers whose
//!   values may be vault secrets by reference), each server's tool list as
//!   last listed, and the workspace's allow/deny [`ToolPolicy`].
//! - **Pool**: one live MCP client connection (rmcp) per installed server,
//!   shared by all runs of the workspace, started on first use, with the
//!   tool list refreshed on every connect and on
//!   `notifications/tools/list_changed`. A crashed server is restarted on
//!   the next call: at once after the first crash, then with exponential
//!   backoff ([`ToolsLimits::restart_backoff_initial`] doubling up to
//!   [`ToolsLimits::restart_backoff_max`]) while it keeps failing. Calls per
//!   server are bounded ([`ToolsLimits::max_concurrent_calls_per_server`]);
//!   idle connections are closed after [`ToolsLimits::idle_timeout`]. A stdio
//!   server runs in its own process group and is killed when its connection
//!   is dropped; it gets only [`INHERITED_ENV`] from Orbit's environment plus
//!   its configured variables.
//! - **Calls**: the arguments must be a JSON object of at most
//!   [`ToolsLimits::max_argument_bytes`]; the server and tool must be
//!   installed, enabled and allowed by policy; the call runs under
//!   [`ToolsLimits::call_timeout`] and ends before the run's deadline, so a
//!   server that hangs or dies gives the guest `unavailable`, never a hung
//!   run. The result's content array (JSON) is capped at
//!   [`ToolsLimits::max_result_bytes`], and any secret value the server was
//!   given is replaced by [`REDACTED`] in it.
//!
//! Each guest call is a span (primitive `tools`, operation `call` or
//! `list`) with attributes `server`, `tool`, and for calls that reached the
//! server `is_error`; the span's duration, outcome and byte counts give
//! latency, outcome and bytes. Arguments and results are never stored.
//!
//! **Audit.** With an audit sink ([`Tools::with_audit`]; the `orbit` facade
//! passes its team store), every call, from a guest or through
//! [`Tools::call_as`], refused ones included, appends an
//! [`AuditKind::ToolCall`] event: who (user, token, agent of the
//! principal), server, tool, latency in µs, outcome (`ok`, `tool-error`
//! when the tool reported `isError`, the error code such as
//! `permission-denied`, `limit-exceeded`, `unavailable`, or `cancelled`
//! when the run was cancelled during the call) and the run id for a guest's
//! call; never arguments or results. The append is a durable write on the
//! blocking pool, awaited before the call returns, so a guest's call is in
//! the audit trail before its run's record is written. A call abandoned by
//! a cancelled run is appended in the background instead. A failed append
//! is logged and does not change the call's result.
//!
//! **Credentials.** The secrets of a server's environment or headers are
//! placed once per connection, not per call: when a connection is made,
//! each is recorded through [`SecretResolver::record_use`] by the principal
//! and run whose call (or listing) opened it, with origin `stdio://SERVER`
//! or the endpoint's `scheme://host:port`; [`Tools::refresh`] and
//! [`Tools::list`] record the host ([`Principal::embedded`], no run).
//!
//! MCP: <https://modelcontextprotocol.io/specification/2025-06-18>.

mod error;
mod http_client;
mod pool;
mod registry;
mod relay;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use orbit_engine::bindings::orbit::runtime::tools as wit;
use orbit_engine::wasmtime::component::{HasData, Linker};
use orbit_engine::{EngineError, Extensions, GuestError, HostError, Primitive, RunInfo, RunState};
pub use orbit_vault::SecretResolver;
use orbit_workspace::permission::{Action, Target};
use orbit_workspace::{AuditEvent, AuditKind, AuditLog, Principal, WorkspaceId};
use rmcp::model::CallToolRequestParams;
use tokio::time::Instant;

pub use error::ToolsError;
pub use registry::{
    MAX_SERVER_NAME_BYTES, RegistrySnapshot, Rule, ServerEntry, ServerSpec, ServerTransport, ToolInfo, ToolPolicy,
    ToolRegistry, ValueSource, check_server_name,
};
pub use relay::{CallRelay, Relayed};
pub use upstream::{UpstreamAnswer, UpstreamRequest};

/// What replaces a secret value found in a tool result or a server's error
/// text (one scrubber for every path: [`orbit_scrub`]).
pub use orbit_scrub::REDACTED;

/// The variables a stdio server inherits from Orbit's environment (the
/// same list the MCP TypeScript SDK's `getDefaultEnvironment` passes on
/// Unix); everything else it gets is configured with `--env`.
pub const INHERITED_ENV: &[&str] = &["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"];

/// Caps and timeouts of the `tools` primitive.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ToolsLimits {
    /// Largest arguments JSON of one call, in bytes. Default 256 KiB.
    pub max_argument_bytes: usize,
    /// Largest result content (JSON text), in bytes. Default 1 MiB.
    pub max_result_bytes: usize,
    /// Longest one call may take, including starting the server; always
    /// also bounded by the run's deadline. Default 30 s.
    pub call_timeout: Duration,
    /// Longest starting and initializing a server may take. Default 30 s.
    pub connect_timeout: Duration,
    /// Calls in flight at once per server, over all runs. Default 8.
    pub max_concurrent_calls_per_server: usize,
    /// A connection unused this long is closed. Default 5 min.
    pub idle_timeout: Duration,
    /// Wait before restarting a server that failed twice in a row; doubled
    /// at each further failure. Default 250 ms.
    pub restart_backoff_initial: Duration,
    /// Longest restart wait. Default 30 s.
    pub restart_backoff_max: Duration,
    /// Tool calls per run. Default 256. A run and the child runs it
    /// starts spend one budget of calls ([`CALL_BUDGET`]).
    pub max_calls_per_run: u32,
    /// Time kept free before the run's deadline: a call still pending then
    /// gives `unavailable` instead of ending the run. Default 100 ms.
    pub deadline_margin: Duration,
}

impl Default for ToolsLimits {
    fn default() -> Self {
        Self {
            max_argument_bytes: 256 << 10,
            max_result_bytes: 1 << 20,
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            max_concurrent_calls_per_server: 8,
            idle_timeout: Duration::from_secs(300),
            restart_backoff_initial: Duration::from_millis(250),
            restart_backoff_max: Duration::from_secs(30),
            max_calls_per_run: 256,
            deadline_margin: Duration::from_millis(100),
        }
    }
}

/// The result of a tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// The MCP content array (`CallToolResult.content`), secret values
    /// replaced by [`REDACTED`].
    pub content: serde_json::Value,
    /// The MCP `structuredContent`, when the tool gave one, secret values
    /// replaced by [`REDACTED`].
    pub structured_content: Option<serde_json::Value>,
    /// The size of both as JSON text, in bytes.
    pub content_bytes: usize,
    /// The tool reported an error (`isError`).
    pub is_error: bool,
}

/// Who a call or connection is made for: recorded in the audit trail.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The run's principal, or the host caller's.
    pub(crate) principal: Principal,
    /// The run's id, when a run calls.
    pub(crate) run_id: Option<String>,
}

impl Caller {
    /// A host-side caller acting for `principal`, outside any run.
    fn host(principal: Principal) -> Self {
        Self { principal, run_id: None }
    }
}

/// The `tools` primitive, and the host-side API to the workspace's MCP
/// servers. Cheap to clone; clones share the registry and the pool.
#[derive(Clone)]
pub struct Tools {
    registry: Arc<ToolRegistry>,
    pool: Arc<pool::Pool>,
    audit: Option<Arc<dyn AuditLog>>,
}

impl std::fmt::Debug for Tools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tools").field("registry", &self.registry).finish_non_exhaustive()
    }
}

impl Tools {
    /// The primitive over `registry`, resolving secret references with
    /// `resolver`.
    pub fn new(registry: Arc<ToolRegistry>, resolver: Arc<dyn SecretResolver>, limits: ToolsLimits) -> Self {
        let pool = Arc::new(pool::Pool::new(registry.clone(), resolver, limits));
        Self { registry, pool, audit: None }
    }

    /// The same primitive, appending an [`AuditKind::ToolCall`] event to
    /// `audit` for every tool call (see the crate docs). Set it before the
    /// primitive is composed into an engine: clones made earlier keep no
    /// sink.
    pub fn with_audit(mut self, audit: Arc<dyn AuditLog>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<ToolRegistry> {
        &self.registry
    }

    /// The limits.
    pub fn limits(&self) -> &ToolsLimits {
        self.pool.limits()
    }

    /// Connects to server `name` of `ws` (reusing a pooled connection) and
    /// returns its tools, refreshed in the registry.
    ///
    /// # Errors
    /// [`ToolsError::NoSuchServer`] (not installed or disabled),
    /// [`ToolsError::Unavailable`], [`ToolsError::Secret`].
    pub async fn refresh(&self, ws: &WorkspaceId, name: &str) -> Result<Vec<ToolInfo>, ToolsError> {
        let entry = self.enabled_server(ws, name).await?;
        let until = Instant::now() + self.limits().connect_timeout;
        let lease = self.pool.lease(ws, &entry, until, &Caller::host(Principal::embedded())).await?;
        let tools = tokio::time::timeout_at(until, lease.conn.service.list_all_tools())
            .await
            .map_err(|_| ToolsError::Unavailable { server: name.to_owned(), detail: "tools/list timed out".into() })?;
        let closed = matches!(tools, Err(rmcp::ServiceError::TransportClosed));
        self.pool.finish(&lease, closed).await;
        let scrubber = &lease.conn.scrubber;
        let tools = tools.map_err(|e| service_error(name, e, scrubber))?;
        // Descriptions reach gateway callers and agents.
        let tools = scrubber
            .typed(tools)
            .map_err(|e| ToolsError::Unavailable { server: name.to_owned(), detail: format!("tools/list: {e}") })?;
        let tools = pool::tool_infos(name, tools);
        let (reg, ws2, n, id) = (self.registry.clone(), ws.clone(), name.to_owned(), entry.install_id);
        let stored = tools.clone();
        blocking(move || reg.set_tools(&ws2, &n, id, stored)).await?;
        Ok(tools)
    }

    /// The tools a run of `ws` may call (see [`ToolRegistry::list_tools`]).
    /// Enabled servers whose tools were never listed are connected to
    /// first, before `until`; one that cannot be reached contributes no
    /// tools and is named in the second value.
    ///
    /// # Errors
    /// [`ToolsError::Io`] or [`ToolsError::Corrupt`] from the registry.
    pub async fn list(&self, ws: &WorkspaceId, until: Instant) -> Result<(Vec<ToolInfo>, Vec<String>), ToolsError> {
        self.list_for(ws, &Caller::host(Principal::embedded()), until).await
    }

    async fn list_for(
        &self,
        ws: &WorkspaceId,
        caller: &Caller,
        until: Instant,
    ) -> Result<(Vec<ToolInfo>, Vec<String>), ToolsError> {
        let (reg, w) = (self.registry.clone(), ws.clone());
        let servers = blocking(move || reg.list_servers(&w)).await?;
        // Started side by side, so one hanging server does not use up the
        // others' time.
        let mut starts = tokio::task::JoinSet::new();
        for s in servers.into_iter().filter(|s| s.enabled && s.tools.is_none()) {
            let (pool, ws, caller) = (self.pool.clone(), ws.clone(), caller.clone());
            starts.spawn(async move {
                match pool.lease(&ws, &s, until, &caller).await {
                    Ok(lease) => {
                        pool.finish(&lease, false).await;
                        None
                    }
                    Err(e) => {
                        tracing::debug!(server = %s.name, error = %e, "listing tools");
                        Some(s.name)
                    }
                }
            });
        }
        let mut unreachable = Vec::new();
        while let Some(done) = starts.join_next().await {
            if let Ok(Some(name)) = done {
                unreachable.push(name);
            }
        }
        unreachable.sort();
        let (reg, w) = (self.registry.clone(), ws.clone());
        Ok((blocking(move || reg.list_tools(&w)).await?, unreachable))
    }

    async fn enabled_server(&self, ws: &WorkspaceId, name: &str) -> Result<ServerEntry, ToolsError> {
        let (reg, w, n) = (self.registry.clone(), ws.clone(), name.to_owned());
        match blocking(move || reg.server(&w, &n)).await? {
            Some(e) if e.enabled => Ok(e),
            _ => {
                self.pool.forget(ws, name);
                Err(ToolsError::NoSuchServer(name.to_owned()))
            }
        }
    }

    /// Calls `tool` of `server` in `ws` with `arguments` (JSON text of an
    /// object), finishing before `until`, for the host itself
    /// ([`Principal::embedded`]); see [`Tools::call_as`].
    ///
    /// # Errors
    /// [`ToolsError::InvalidArguments`], [`ToolsError::ArgumentsTooLarge`],
    /// [`ToolsError::NoSuchServer`], [`ToolsError::NoSuchTool`],
    /// [`ToolsError::Denied`], [`ToolsError::Unavailable`] (could not start
    /// or reach the server, it died, or `until` passed),
    /// [`ToolsError::Refused`] (a JSON-RPC error from the server),
    /// [`ToolsError::ResultTooLarge`], [`ToolsError::Secret`].
    pub async fn call(
        &self,
        ws: &WorkspaceId,
        server: &str,
        tool: &str,
        arguments: &str,
        until: Instant,
    ) -> Result<ToolResult, ToolsError> {
        self.call_as(ws, &Principal::embedded(), server, tool, arguments, until).await
    }

    /// As [`Tools::call`], for `principal`: once the tool is known, the
    /// permission table decides ([`Action::CallTool`], with the tool's
    /// `readOnlyHint` and whether the policy opens it to read-only
    /// principals). This is the one permission check of `tools`.
    ///
    /// With an audit sink ([`Tools::with_audit`]), the call is appended to
    /// the audit trail as `principal`'s, with no run id, before this
    /// returns, whatever its outcome.
    ///
    /// # Errors
    /// As [`Tools::call`], and [`ToolsError::NotPermitted`] when the
    /// principal may not call the tool.
    pub async fn call_as(
        &self,
        ws: &WorkspaceId,
        principal: &Principal,
        server: &str,
        tool: &str,
        arguments: &str,
        until: Instant,
    ) -> Result<ToolResult, ToolsError> {
        let caller = Caller::host(principal.clone());
        let mut audit = self.audit_guard(ws, &caller, server, tool);
        let result = self.call_checked(ws, &caller, server, tool, arguments, until, None).await;
        audit.finish(&result, true).await;
        result
    }

    /// As [`Tools::call_as`], relaying what the server sends about the call
    /// to `relay` (the MCP gateway's caller): progress (with a progress
    /// token rmcp puts on every request it sends upstream), log
    /// messages, and sampling and elicitation requests, the last three only
    /// while this is the only call in flight on the pooled connection (see
    /// [`CallRelay`]). Secret values are scrubbed from what is relayed.
    ///
    /// # Errors
    /// As [`Tools::call_as`].
    #[allow(clippy::too_many_arguments)]
    pub async fn call_relayed(
        &self,
        ws: &WorkspaceId,
        principal: &Principal,
        server: &str,
        tool: &str,
        arguments: &str,
        until: Instant,
        relay: Arc<dyn CallRelay>,
    ) -> Result<ToolResult, ToolsError> {
        let caller = Caller::host(principal.clone());
        let mut audit = self.audit_guard(ws, &caller, server, tool);
        let result = self.call_checked(ws, &caller, server, tool, arguments, until, Some(relay)).await;
        audit.finish(&result, true).await;
        result
    }

    /// An audit record for one call, started now; `None` without a sink.
    fn audit_guard(&self, ws: &WorkspaceId, caller: &Caller, server: &str, tool: &str) -> CallAudit {
        CallAudit {
            pending: self.audit.as_ref().map(|sink| PendingAudit {
                sink: sink.clone(),
                ws: ws.clone(),
                caller: caller.clone(),
                server: attr(server),
                tool: attr(tool),
                started: std::time::Instant::now(),
            }),
        }
    }

    /// The call itself, checks included, without the audit.
    #[allow(clippy::too_many_arguments)]
    async fn call_checked(
        &self,
        ws: &WorkspaceId,
        caller: &Caller,
        server: &str,
        tool: &str,
        arguments: &str,
        until: Instant,
        relay: Option<Arc<dyn CallRelay>>,
    ) -> Result<ToolResult, ToolsError> {
        let principal = &caller.principal;
        let limits = self.limits();
        if arguments.len() > limits.max_argument_bytes {
            return Err(ToolsError::ArgumentsTooLarge { size: arguments.len(), limit: limits.max_argument_bytes });
        }
        let args = match serde_json::from_str::<serde_json::Value>(arguments) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(other) => return Err(ToolsError::InvalidArguments(format!("a JSON {}", json_kind(&other)))),
            Err(e) => return Err(ToolsError::InvalidArguments(e.to_string())),
        };
        // One read of the registry before the lease and one after it, each
        // shared, not copied; only a changed file is read on a blocking
        // thread (a `stat` is not worth the hand-off).
        let snapshot = async |reg: &Arc<ToolRegistry>, w: &WorkspaceId| match reg.snapshot_if_cached(w)? {
            Some(s) => Ok(s),
            None => {
                let (reg, w) = (reg.clone(), w.clone());
                blocking(move || reg.snapshot(&w)).await
            }
        };
        let doc = snapshot(&self.registry, ws).await?;
        let Some(entry) = doc.server(server).filter(|e| e.enabled) else {
            self.pool.forget(ws, server);
            return Err(ToolsError::NoSuchServer(server.to_owned()));
        };
        let policy = doc.policy();
        if !policy.allows(server, tool) {
            return Err(ToolsError::Denied { server: server.to_owned(), tool: tool.to_owned() });
        }
        let lease = self.pool.lease(ws, entry, until, caller).await?;
        // The lease refreshed the list when it connected; a list read before
        // any connection is refreshed now.
        let listed = snapshot(&self.registry, ws).await?;
        let known = listed.server(server).and_then(|e| e.tools.as_ref());
        let Some(info) = known.and_then(|tools| tools.iter().find(|t| t.name == tool)) else {
            self.pool.finish(&lease, false).await;
            return Err(ToolsError::NoSuchTool { server: server.to_owned(), tool: tool.to_owned() });
        };
        let target = Target::tool(info.read_only_hint == Some(true), policy.opens_to_read_only(server, tool));
        if let Err(denied) = principal.check(Action::CallTool, &target) {
            self.pool.finish(&lease, false).await;
            return Err(ToolsError::NotPermitted {
                server: server.to_owned(),
                tool: tool.to_owned(),
                reason: denied.to_string(),
            });
        }
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = Some(args);
        // Every call is registered, relayed or not: what the server sends
        // with no call named in it is relayed only when one call is in flight.
        let in_flight = lease.conn.in_flight.begin(relay);
        // Dropping the call (on timeout, or the gateway caller cancelling)
        // sends `notifications/cancelled`.
        let started = std::time::Instant::now();
        let call = pool::call_tool(&lease.conn, params, &in_flight);
        let result = tokio::time::timeout_at(until, call).await;
        // A connection that failed below MCP, or a server that let a call run
        // its whole timeout (hung, or gone behind a transport that cannot
        // tell), is replaced: the next call reconnects. A call cut short by
        // its run's deadline says nothing about the server.
        let closed = match &result {
            Ok(Err(rmcp::ServiceError::McpError(_))) | Ok(Ok(_)) => false,
            Ok(Err(_)) => true,
            Err(_) => started.elapsed() >= limits.call_timeout,
        };
        self.pool.finish(&lease, closed).await;
        let result = match result {
            Err(_) => {
                return Err(ToolsError::Unavailable { server: server.to_owned(), detail: "call timed out".into() });
            }
            Ok(Err(e)) => return Err(service_error(server, e, &lease.conn.scrubber)),
            Ok(Ok(r)) => r,
        };
        let mut content = serde_json::to_value(&result.content)
            .map_err(|e| ToolsError::Unavailable { server: server.to_owned(), detail: format!("content: {e}") })?;
        lease.conn.scrubber.json(&mut content);
        let mut structured_content = result.structured_content;
        if let Some(s) = structured_content.as_mut() {
            lease.conn.scrubber.json(s);
        }
        let content_bytes = serde_json::to_string(&content).map(|s| s.len()).unwrap_or(usize::MAX)
            + structured_content.as_ref().and_then(|s| serde_json::to_string(s).ok()).map_or(0, |s| s.len());
        if content_bytes > limits.max_result_bytes {
            return Err(ToolsError::ResultTooLarge { size: content_bytes, limit: limits.max_result_bytes });
        }
        Ok(ToolResult { content, structured_content, content_bytes, is_error: result.is_error.unwrap_or(false) })
    }

    /// Whether a pooled connection to `server` of `ws` is open.
    pub fn is_connected(&self, ws: &WorkspaceId, server: &str) -> bool {
        self.pool.is_connected(ws, server)
    }

    /// Closes the pooled connection to `server` of `ws`, if any (a stdio
    /// server is shut down). The next call starts a new one.
    pub fn disconnect(&self, ws: &WorkspaceId, server: &str) {
        self.pool.forget(ws, server);
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// The audit event of one tool call, appended by [`CallAudit::finish`], or
/// (outcome `cancelled`) in the background when the call is dropped before
/// it ends, as when its run is cancelled.
struct CallAudit {
    pending: Option<PendingAudit>,
}

struct PendingAudit {
    sink: Arc<dyn AuditLog>,
    ws: WorkspaceId,
    caller: Caller,
    server: String,
    tool: String,
    started: std::time::Instant,
}

impl PendingAudit {
    /// The event, with the latency up to now.
    fn event(&self, outcome: &str) -> AuditEvent {
        let latency_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        AuditEvent::new(
            self.ws.clone(),
            &self.caller.principal,
            at_ms,
            AuditKind::ToolCall {
                server: self.server.clone(),
                tool: self.tool.clone(),
                latency_us,
                outcome: outcome.to_owned(),
                run_id: self.caller.run_id.clone(),
            },
        )
    }

    /// Appends `event` (on the calling thread: run it on the blocking pool).
    fn append(sink: &dyn AuditLog, event: AuditEvent) {
        if let Err(e) = sink.append(event.clone()) {
            tracing::warn!(
                workspace = event.workspace.as_str(),
                outcome = event.outcome(),
                error = %e,
                "appending a tool call to the audit trail failed"
            );
        }
    }
}

/// The audit outcome of a call's result: `ok`, `tool-error`, or the
/// error's code.
fn audit_outcome(result: &Result<ToolResult, ToolsError>) -> &'static str {
    match result {
        Ok(r) if r.is_error => "tool-error",
        Ok(_) => "ok",
        Err(e) => orbit_engine::code_name(e.code()),
    }
}

impl CallAudit {
    /// Appends the event of `result`, durably, and waits for it: on the
    /// blocking pool, or with `in_place` on this thread where tokio allows
    /// it ([`orbit_workspace::in_place`]), which saves the two hand-offs to
    /// the blocking pool and back (about 60 µs of an MCP gateway call).
    /// Host calls only: a guest's host call runs on its store's fiber, kept
    /// off that path.
    async fn finish(&mut self, result: &Result<ToolResult, ToolsError>, in_place: bool) {
        let Some(p) = self.pending.take() else { return };
        let event = p.event(audit_outcome(result));
        let sink = p.sink.clone();
        let event = if in_place {
            match orbit_workspace::in_place::in_place(event, |event| PendingAudit::append(&*sink, event)) {
                Ok(()) => return,
                Err(untaken) => untaken,
            }
        } else {
            event
        };
        if let Err(e) = tokio::task::spawn_blocking(move || PendingAudit::append(&*sink, event)).await {
            tracing::warn!(error = %e, "appending a tool call to the audit trail: task failed");
        }
    }
}

impl Drop for CallAudit {
    fn drop(&mut self) {
        let Some(p) = self.pending.take() else { return };
        let event = p.event("cancelled");
        let sink = p.sink;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(move || PendingAudit::append(&*sink, event))),
            Err(_) => PendingAudit::append(&*sink, event),
        }
    }
}

/// A JSON-RPC error from the server is its refusal; anything else is the
/// connection failing.
pub(crate) fn service_error(server: &str, e: rmcp::ServiceError, scrubber: &orbit_scrub::Scrubber) -> ToolsError {
    // A server's error text may quote what it was given.
    match e {
        rmcp::ServiceError::McpError(e) => ToolsError::Refused {
            server: server.to_owned(),
            code: e.code.0,
            detail: scrubber.text(&format!("{} {}", e.code.0, e.message)),
        },
        other => ToolsError::Unavailable { server: server.to_owned(), detail: scrubber.text(&other.to_string()) },
    }
}

/// reqwest 0.13 is built without a default TLS crypto provider here (to
/// reuse the workspace's `ring`); install it once for HTTPS servers.
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ToolsError> + Send + 'static,
) -> Result<T, ToolsError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(ToolsError::Corrupt(format!("registry task failed: {e}"))),
    }
}

/// The name of the `tools` primitive's per-run budget in the engine's
/// [`Budgets`](orbit_engine::Budgets): tool calls, opened at
/// [`ToolsLimits::max_calls_per_run`] and shared with the runs a run starts
/// (`jobs`).
pub const CALL_BUDGET: &str = "tools.calls";

struct RunTools {
    tools: Tools,
    workspace: WorkspaceId,
    principal: Principal,
    /// The run's named budgets: its calls are [`CALL_BUDGET`].
    budgets: orbit_engine::Budgets,
}

/// What `tools` host functions operate on during a call.
pub struct ToolsView<'a> {
    run: &'a mut RunInfo,
    state: &'a mut RunTools,
}

struct ToolsData;
impl HasData for ToolsData {
    type Data<'a> = ToolsView<'a>;
}

impl Primitive for Tools {
    fn name(&self) -> &'static str {
        "tools"
    }

    fn add_to_linker(&self, linker: &mut Linker<RunState>) -> Result<(), EngineError> {
        wit::add_to_linker::<RunState, ToolsData>(linker, |s| {
            let (run, state) = s.parts::<RunTools>();
            ToolsView { run, state }
        })
        .map_err(|e| EngineError::Config(format!("{e:#}")))
    }

    /// Opens the run's call budget ([`CALL_BUDGET`]) at
    /// [`ToolsLimits::max_calls_per_run`], or at what is left of it when
    /// the run shares its parent's budgets.
    fn prepare(&self, run: &RunInfo, extensions: &mut Extensions) -> Result<(), EngineError> {
        run.budgets().open(CALL_BUDGET, u64::from(self.limits().max_calls_per_run));
        // Nothing can read the state of an interface the component does not
        // import; the budget is opened all the same, for the runs it starts.
        if !run.imports("orbit:runtime/tools") {
            return Ok(());
        }
        extensions.insert(RunTools {
            tools: self.clone(),
            workspace: run.workspace().clone(),
            principal: run.principal().clone(),
            budgets: run.budgets().clone(),
        });
        Ok(())
    }
}

type HostResult<T> = orbit_engine::wasmtime::Result<Result<T, GuestError>>;

/// Guest-given names as span attributes: at most 128 bytes, no control
/// characters.
fn attr(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).collect();
    if out.len() > 128 {
        let mut end = 128;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

impl ToolsView<'_> {
    /// The end of a call's time budget: the call timeout, and the margin
    /// before the run's deadline.
    fn until(&self) -> Instant {
        let limits = self.state.tools.limits();
        let by_deadline = self.run.deadline().checked_sub(limits.deadline_margin).unwrap_or_else(Instant::now);
        (Instant::now() + limits.call_timeout).min(by_deadline)
    }
}

impl wit::Host for ToolsView<'_> {
    async fn list(&mut self) -> HostResult<Vec<wit::ToolInfo>> {
        let until = self.until();
        let (tools, ws) = (self.state.tools.clone(), self.state.workspace.clone());
        let caller = Caller { principal: self.state.principal.clone(), run_id: Some(self.run.run_id().to_string()) };
        let size = |v: &Vec<wit::ToolInfo>| {
            v.iter().map(|t| t.server.len() + t.name.len() + t.description.len() + t.input_schema.len()).sum()
        };
        let mut skipped = Vec::new();
        let call = async {
            let (list, unreachable) = tools.list_for(&ws, &caller, until).await.map_err(HostError::from)?;
            skipped = unreachable;
            Ok(list
                .into_iter()
                .map(|t| wit::ToolInfo {
                    server: t.server,
                    name: t.name,
                    description: t.description,
                    input_schema: t.input_schema.to_string(),
                })
                .collect::<Vec<_>>())
        };
        let out = self.run.host_call("tools", "list", 0, size, call).await?;
        let mut attrs = Vec::new();
        if let Ok(list) = &out {
            attrs.push(("tools".to_owned(), list.len().to_string()));
        }
        if !skipped.is_empty() {
            attrs.push(("unavailable".to_owned(), skipped.join(",")));
        }
        self.run.annotate_last_span(attrs);
        Ok(out)
    }

    async fn call(&mut self, server: String, tool: String, arguments_json: String) -> HostResult<wit::ToolResult> {
        let until = self.until();
        let n = server.len() + tool.len() + arguments_json.len();
        let (tools, ws) = (self.state.tools.clone(), self.state.workspace.clone());
        let caller = Caller { principal: self.state.principal.clone(), run_id: Some(self.run.run_id().to_string()) };
        let spent = self.state.budgets.spend(CALL_BUDGET, 1);
        let over = spent.is_err();
        let max = spent.err().map_or(0, |e| u32::try_from(e.limit).unwrap_or(u32::MAX));
        let mut is_error = None;
        let call = async {
            let mut audit = tools.audit_guard(&ws, &caller, &server, &tool);
            let r = if over {
                Err(ToolsError::TooManyCalls(max))
            } else {
                tools.call_checked(&ws, &caller, &server, &tool, &arguments_json, until, None).await
            };
            audit.finish(&r, false).await;
            let r = r.map_err(HostError::from)?;
            is_error = Some(r.is_error);
            let content = serde_json::to_string(&r.content).unwrap_or_else(|_| "[]".to_owned());
            Ok(wit::ToolResult { content, is_error: r.is_error })
        };
        let out = self.run.host_call("tools", "call", n, |r: &wit::ToolResult| r.content.len(), call).await?;
        let mut attrs = vec![("server".to_owned(), attr(&server)), ("tool".to_owned(), attr(&tool))];
        if let Some(e) = is_error {
            attrs.push(("is_error".to_owned(), e.to_string()));
        }
        self.run.annotate_last_span(attrs);
        Ok(out)
    }
}
