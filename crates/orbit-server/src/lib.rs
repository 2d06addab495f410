//! Orbit as an MCP server: agents dock to Orbit over the
//! [Model Context Protocol](https://modelcontextprotocol.io/specification/2025-06-18)
//! to submit components and read runs.
//!
//! [`OrbitMcp`] is the server (an rmcp [`ServerHandler`]) over one
//! [`orbit::Orbit`]. [`serve_stdio`] speaks MCP on stdin/stdout (for Claude
//! Code, Cursor, Codex), [`serve_io`] over any byte stream; [`serve_http`] serves the same tools over
//! [streamable HTTP](https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#streamable-http)
//! at `/mcp`, validating `Host` and `Origin` against loopback names
//! ([DNS-rebinding protection](https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#security-warning)).
//!
//! | Tool | Input | Result |
//! |---|---|---|
//! | `run_component` | `component_base64`, `digest` or `source` with `language`, `input`, `fuel`, `timeout_ms`, `memory_bytes` | [`RunResult`]: run id, status, output |
//! | `list_runs` | `status`, `limit`, `cursor` | [`RunList`], newest first (read-only callers: their own runs) |
//! | `get_run` | `run_id` | [`RunDetail`] with spans and logs |
//! | `list_tools` | (none) | [`ToolList`]: the workspace's MCP tools |
//!
//! Every message is authenticated with a token ([`auth`]): the workspace
//! and the role come from the token, never from an argument (a
//! `workspace` argument may still be given, and must name the token's
//! workspace: any other name is answered as a workspace that does not
//! exist). Each tool asks the permission table
//! ([`orbit::orbit_workspace::permission`]); runs carry the caller's
//! principal, so a read-only token's runs are read-only.
//!
//! Every failure is an MCP tool error (`isError: true`) whose text is fixed
//! per cause: no host paths, no internal detail. Submitted components are
//! kept content-addressed under `<data dir>/components/<sha256>.wasm`.
//! A `run_component` call that carries a `progressToken` receives
//! `notifications/progress` every [`PROGRESS_INTERVAL`] while the run
//! executes (progress = elapsed ms, total = the run's deadline in ms).

// `logging/setLevel` and log notifications are in the 2025-06-18 and
// 2025-11-25 protocol versions clients speak today; rmcp marks them
// deprecated for the 2026-07-28 draft (SEP-2577).
#![allow(deprecated)]

pub mod api;
pub mod auth;
mod components;
mod dashboard;
pub mod gateway;
mod http;
pub mod remote;
mod submit;
mod types;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth::{Caller, Credentials};
use orbit::orbit_workspace::permission::Target;
use orbit::{Action, EngineError, Orbit, RunId, RunQuery, RunRecord, RunStatus, WorkspaceId};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{IntoCallToolResult, ToolCallContext, schema_for_output};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode, Implementation, ListToolsResult,
    LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams, ProgressNotificationParam,
    ServerCapabilities, ServerConfig, SetLevelRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_router};
use serde::Serialize;

pub use components::{ComponentCaps, ComponentStore, ComponentStoreError};
pub use http::{HttpConfig, app, serve_http, serve_https};
pub use submit::RunCaps;
pub use types::{
    GetRunArgs, ListRunsArgs, ListToolsArgs, LogInfo, RunComponentArgs, RunDetail, RunErrorInfo, RunList, RunResult,
    RunSummary, SpanInfo, ToolList, WorkspaceTool,
};

/// How often a running `run_component` reports progress, when the client
/// asked for progress.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// The longest `timeout_ms` a caller may ask for: one hour.
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// How long `list_tools` waits for installed servers never listed before
/// to start and list their tools.
pub const LIST_TOOLS_TIMEOUT: Duration = Duration::from_secs(10);

/// The most runs one `list_runs` call returns.
pub const MAX_LIST_LIMIT: usize = 1000;

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The component store under the data directory could not be opened.
    #[error(transparent)]
    Components(#[from] ComponentStoreError),
    /// The transport failed (stdio closed during the handshake, or the
    /// HTTP listener failed).
    #[error("MCP transport: {0}")]
    Transport(String),
}

struct Shared {
    orbit: Orbit,
    components: ComponentStore,
    /// Open sessions, by workspace, told when its offered tools change.
    peers: Mutex<Vec<(WorkspaceId, rmcp::Peer<RoleServer>)>>,
    /// Whether the task relaying the registry's changes runs.
    watching: std::sync::Once,
    /// Each workspace's run slots.
    slots: Arc<submit::WorkspaceSlots>,
}

/// The Orbit MCP server over one [`Orbit`]. Cheap to clone: one clone per
/// MCP session shares the engine, the run store and the component store;
/// the logging level set by `logging/setLevel` is per session.
#[derive(Clone)]
pub struct OrbitMcp {
    shared: Arc<Shared>,
    credentials: Credentials,
    caps: RunCaps,
    log_level: Arc<Mutex<Option<LoggingLevel>>>,
    /// This session's relay for upstream resource updates (made at its
    /// first `resources/subscribe`).
    subscriber: Arc<Mutex<Option<Arc<dyn orbit::orbit_tools::CallRelay>>>>,
    /// This session's resource routes: which upstream server listed each
    /// URI, so a read goes straight to it ([`gateway`]).
    resource_routes: Arc<Mutex<gateway::ResourceRoutes>>,
    /// Orbit's own tools. Shared: the HTTP front end clones the server
    /// into its state for every request, and a router holds every tool's
    /// definition (a profile of the gateway bench showed those clones).
    tool_router: Arc<ToolRouter<Self>>,
}

impl std::fmt::Debug for OrbitMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrbitMcp").field("data_dir", &self.shared.orbit.data_dir()).finish_non_exhaustive()
    }
}

impl OrbitMcp {
    /// A server over `orbit`, keeping submitted components in
    /// `<data dir>/components`.
    ///
    /// # Errors
    /// [`ServeError::Components`] when that directory cannot be created.
    pub fn new(orbit: Orbit) -> Result<Self, ServeError> {
        Self::new_with(orbit, ComponentCaps::default())
    }

    /// As [`OrbitMcp::new`], keeping each workspace's submitted components
    /// within `caps`.
    ///
    /// # Errors
    /// [`ServeError::Components`] when the directory cannot be created.
    pub fn new_with(orbit: Orbit, caps: ComponentCaps) -> Result<Self, ServeError> {
        let components = ComponentStore::open_with(orbit.data_dir().join("components"), caps)?;
        Ok(Self {
            shared: Arc::new(Shared {
                orbit,
                components,
                peers: Mutex::default(),
                watching: std::sync::Once::new(),
                slots: Arc::default(),
            }),
            caps: RunCaps::default(),
            credentials: Credentials::BearerHeader,
            log_level: Arc::new(Mutex::new(None)),
            subscriber: Arc::default(),
            resource_routes: Arc::default(),
            tool_router: Arc::new(Self::tool_router()),
        })
    }

    /// A fresh session over the same Orbit (same components, own log level).
    pub fn session(&self) -> Self {
        Self {
            log_level: Arc::new(Mutex::new(None)),
            subscriber: Arc::default(),
            resource_routes: Arc::default(),
            ..self.clone()
        }
    }

    /// The same server, authenticating its callers with `credentials`
    /// (default [`Credentials::BearerHeader`], for HTTP; stdio sessions use
    /// [`Credentials::token`]).
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Authenticates the caller of one message: the session token, or the
    /// request's bearer header. Checked on every message, so a revoked
    /// token fails the next one.
    ///
    /// # Errors
    /// An MCP error with code [`auth::UNAUTHORIZED`].
    pub fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
        self.caller_in(&ctx.extensions)
    }

    fn caller_in(&self, extensions: &rmcp::model::Extensions) -> Result<Caller, ErrorData> {
        let orbit = &self.shared.orbit;
        match &self.credentials {
            Credentials::Token(token) => auth::authenticate(orbit, Some(token.as_str())),
            Credentials::BearerHeader => {
                let parts = extensions.get::<axum::http::request::Parts>();
                // The HTTP gate authenticated this very request: do not hash
                // and look the token up a second time.
                if let Some(caller) = parts.and_then(|p| p.extensions.get::<Caller>()) {
                    return Ok(caller.clone());
                }
                auth::authenticate(orbit, parts.and_then(|p| auth::bearer(&p.headers)))
            }
        }
    }

    /// The same server, with `caps` on the fuel, deadline and memory a
    /// caller may ask of one run (default [`RunCaps::default`]).
    pub fn with_caps(mut self, caps: RunCaps) -> Self {
        self.caps = caps;
        self
    }

    /// The caps on what one run may ask for.
    pub fn caps(&self) -> &RunCaps {
        &self.caps
    }

    pub(crate) fn slots(&self) -> &Arc<submit::WorkspaceSlots> {
        &self.shared.slots
    }

    /// The Orbit this server serves.
    pub fn orbit(&self) -> &Orbit {
        &self.shared.orbit
    }

    /// The component store.
    pub fn components(&self) -> &ComponentStore {
        &self.shared.components
    }

    async fn log(&self, ctx: &RequestContext<RoleServer>, level: LoggingLevel, data: serde_json::Value) {
        let wanted = *self.log_level.lock().unwrap_or_else(|e| e.into_inner());
        if wanted.is_some_and(|min| level_rank(level) >= level_rank(min)) {
            let mut param = LoggingMessageNotificationParam::new(level, data);
            param.logger = Some("orbit".into());
            let _ = ctx.peer.notify_logging_message(param).await;
        }
    }
}

/// Relays the tool registry's changes to the open sessions of the changed
/// workspace as `notifications/tools/list_changed`, dropping closed ones.
async fn relay_tool_changes(
    shared: std::sync::Weak<Shared>,
    mut changes: tokio::sync::broadcast::Receiver<WorkspaceId>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let changed = match changes.recv().await {
            Ok(ws) => Some(ws),
            // Fell behind: tell everyone.
            Err(RecvError::Lagged(_)) => None,
            Err(RecvError::Closed) => return,
        };
        let Some(shared) = shared.upgrade() else { return };
        let peers: Vec<rmcp::Peer<RoleServer>> = {
            let mut peers = shared.peers.lock().unwrap_or_else(|e| e.into_inner());
            peers.retain(|(_, p)| !p.is_transport_closed());
            peers.iter().filter(|(w, _)| changed.as_ref().is_none_or(|c| c == w)).map(|(_, p)| p.clone()).collect()
        };
        for peer in peers {
            let _ = peer.notify_tool_list_changed().await;
        }
    }
}

fn level_rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// A tool error: an MCP result with `isError: true` and a fixed,
/// caller-safe text.
#[derive(Debug)]
struct ToolFailure(String);

impl ToolFailure {
    fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl IntoCallToolResult for ToolFailure {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::error(vec![ContentBlock::text(self.0)]).into())
    }
}

type ToolResult = Result<CallToolResult, ToolFailure>;

/// The caller of a tool, put in the request's extensions by `call_tool`.
fn caller_of(ctx: &RequestContext<RoleServer>) -> Result<Caller, ToolFailure> {
    ctx.extensions.get::<Caller>().cloned().ok_or_else(|| ToolFailure::new("unauthorized"))
}

/// The workspace a tool acts in: the token's. A `workspace` argument must
/// name it; any other name gets the answer a missing workspace gets.
fn target_workspace(caller: &Caller, arg: Option<&str>) -> Result<WorkspaceId, ToolFailure> {
    match arg {
        Some(name) if name != caller.workspace.as_str() => {
            Err(ToolFailure::new(format!("workspace {name:?} not found")))
        }
        _ => Ok(caller.workspace.clone()),
    }
}

fn refused(e: &orbit::orbit_workspace::Denied) -> ToolFailure {
    ToolFailure::new(format!("permission denied: your role ({}) may not {}", e.role, e.action))
}

fn structured<T: Serialize>(value: &T, is_error: bool) -> ToolResult {
    let value = serde_json::to_value(value).map_err(|_| ToolFailure::new("internal error"))?;
    Ok(if is_error { CallToolResult::structured_error(value) } else { CallToolResult::structured(value) })
}

pub(crate) fn error_info(rec: &RunRecord) -> Option<RunErrorInfo> {
    // `detail` is for operators only and never leaves the host.
    rec.error.as_ref().map(|e| RunErrorInfo { code: e.code.clone(), message: e.message.clone() })
}

pub(crate) fn summary(rec: &RunRecord) -> RunSummary {
    RunSummary {
        run_id: rec.id.to_string(),
        status: rec.status.to_string(),
        digest: rec.component_digest.clone(),
        kind: rec.kind.to_string(),
        started_at_ms: rec.started_at_ms,
        duration_us: rec.duration_us,
        fuel_consumed: rec.fuel_consumed,
        memory_bytes: rec.memory_bytes,
        error: error_info(rec),
        started_by: rec.principal.as_ref().map(|p| p.label()),
    }
}

fn engine_failure(e: &EngineError) -> ToolFailure {
    submit::engine_failure(e).into()
}

impl From<submit::SubmitError> for ToolFailure {
    fn from(e: submit::SubmitError) -> Self {
        ToolFailure::new(e.to_string())
    }
}

/// A finished run as `run_component` and `POST /runs` return it.
pub(crate) fn run_result(outcome: &orbit::Outcome) -> RunResult {
    let rec = &outcome.record;
    RunResult {
        run_id: rec.id.to_string(),
        status: rec.status.to_string(),
        output: outcome.output_text(),
        digest: rec.component_digest.clone(),
        kind: rec.kind.to_string(),
        exit_code: rec.exit_code,
        fuel_consumed: rec.fuel_consumed,
        memory_bytes: rec.memory_bytes,
        duration_us: rec.duration_us,
        error: error_info(rec),
    }
}

/// Whether `principal` may see a run started by `owner` (`None`: a run of
/// the host, such as a job of the operator's).
pub(crate) fn may_see_run(principal: &orbit::Principal, owner: Option<&orbit::UserId>) -> bool {
    match owner {
        Some(user) => principal.check(Action::ViewRuns, &Target::owned_by(user)).is_ok(),
        None => principal.may(Action::ViewRuns),
    }
}

/// A run's record as `get_run` and `GET /runs/{id}` show it.
pub(crate) fn detail(rec: &RunRecord) -> RunDetail {
    RunDetail {
        summary: summary(rec),
        workspace: rec.workspace.to_string(),
        exit_code: rec.exit_code,
        input_bytes: rec.input_bytes,
        output_bytes: rec.output_bytes,
        output: rec.output.clone(),
        output_truncated: rec.output_truncated,
        logs: rec
            .logs
            .iter()
            .map(|l| LogInfo { offset_us: l.offset_us, level: l.level.to_string(), message: l.message.clone() })
            .collect(),
        logs_truncated: rec.logs_truncated,
        spans: rec
            .spans
            .iter()
            .map(|s| SpanInfo {
                primitive: s.primitive.clone(),
                operation: s.operation.clone(),
                start_offset_us: s.start_offset_us,
                duration_us: s.duration_us,
                outcome: s.outcome.clone(),
                bytes_in: s.bytes_in,
                bytes_out: s.bytes_out,
                attrs: s.attrs.clone(),
            })
            .collect(),
        spans_dropped: rec.spans_dropped,
    }
}

#[tool_router]
impl OrbitMcp {
    /// Runs a WebAssembly component once under limits and records the run.
    #[tool(
        description = "Run a WebAssembly component (an orbit agent or a wasi:cli command) once in a fresh sandbox \
                       under fuel, deadline and memory limits, and record the run. Pass the component as base64 \
                       (`component_base64`), once submitted by its sha256 `digest`, or an agent's `source` code \
                       with its `language` (python, typescript or javascript), which the server builds. Returns \
                       the run id, status and output. A run that does not succeed is a tool error carrying the \
                       same fields.",
        output_schema = schema_for_output::<RunResult>()
    )]
    async fn run_component(
        &self,
        Parameters(args): Parameters<RunComponentArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        let orbit = &self.shared.orbit;
        let caller = caller_of(&ctx)?;
        let ws = target_workspace(&caller, args.workspace.as_deref())?;
        let source = match (args.component_base64, args.digest, args.source, args.language) {
            (Some(b64), None, None, None) => submit::Source::Base64(b64),
            (None, Some(digest), None, None) => submit::Source::Digest(digest),
            (None, None, Some(code), Some(language)) => submit::Source::Code { language, code },
            (None, None, Some(_), None) => {
                return Err(ToolFailure::new("`source` needs `language`: python, typescript or javascript"));
            }
            _ => {
                return Err(ToolFailure::new(
                    "give exactly one of `component_base64`, `digest` and `source` (with `language`)",
                ));
            }
        };
        let req = submit::RunRequest {
            source,
            input: args.input,
            fuel: args.fuel,
            timeout_ms: args.timeout_ms,
            memory_bytes: args.memory_bytes,
        };
        let limits = submit::limits_for(orbit, &caller.principal, &req, &self.caps)?;
        let component = submit::load(orbit, &self.shared.components, &ws, &req.source, &limits).await?;
        let total_ms = limits.timeout.as_millis() as f64;
        let invocation = submit::invocation(req.input, &ws, &caller.principal, limits);
        let run = submit::invoke(orbit, &self.shared.slots, &component, invocation, &self.caps);
        let outcome = match ctx.meta.get_progress_token() {
            None => run.await,
            Some(token) => {
                tokio::pin!(run);
                let started = Instant::now();
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_INTERVAL, PROGRESS_INTERVAL);
                loop {
                    tokio::select! {
                        outcome = &mut run => break outcome,
                        _ = ticks.tick() => {
                            let elapsed = started.elapsed();
                            let param = ProgressNotificationParam::new(token.clone(), elapsed.as_millis() as f64)
                                .with_total(total_ms)
                                .with_message(format!("running, {:.1} s elapsed", elapsed.as_secs_f64()));
                            let _ = ctx.peer.notify_progress(param).await;
                        }
                    }
                }
            }
        }
        .map_err(|e| engine_failure(&e))?;
        let result = run_result(&outcome);
        let ok = outcome.record.status.is_success();
        let level = if ok { LoggingLevel::Info } else { LoggingLevel::Warning };
        self.log(
            &ctx,
            level,
            serde_json::json!({"run_id": result.run_id, "workspace": ws.to_string(), "status": result.status}),
        )
        .await;
        structured(&result, !ok)
    }

    /// Lists a workspace's runs, newest first.
    #[tool(
        description = "List a workspace's recorded runs, newest first, optionally only those with one status. \
                       Pages with `limit` and `cursor` (the previous page's `next_cursor`).",
        output_schema = schema_for_output::<RunList>(),
        annotations(read_only_hint = true)
    )]
    async fn list_runs(
        &self,
        Parameters(args): Parameters<ListRunsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        let caller = caller_of(&ctx)?;
        let ws = target_workspace(&caller, args.workspace.as_deref())?;
        // Read-only callers see only their own runs (the table's "own only").
        let member = if caller.principal.may(Action::ViewRuns) { None } else { caller.principal.user_id().cloned() };
        let status = args
            .status
            .map(|s| s.parse::<RunStatus>().map_err(|_| ToolFailure::new(format!("unknown status {s:?}"))))
            .transpose()?;
        let before = args
            .cursor
            .map(|c| c.parse::<RunId>().map_err(|_| ToolFailure::new("cursor is not a run id")))
            .transpose()?;
        let limit = args.limit.unwrap_or(20);
        if limit == 0 || limit > MAX_LIST_LIMIT {
            return Err(ToolFailure::new(format!("limit must be 1 to {MAX_LIST_LIMIT}")));
        }
        let mut query = RunQuery::new(ws);
        (query.status, query.limit, query.before, query.member) = (status, limit, before, member);
        let page = self.shared.orbit.runs().list(&query).map_err(|e| {
            tracing::error!(error = %e, "list_runs");
            ToolFailure::new("internal error")
        })?;
        let list = RunList {
            runs: page.runs.iter().map(summary).collect(),
            next_cursor: page.next_cursor.map(|c| c.to_string()),
        };
        structured(&list, false)
    }

    /// One run with its spans and logs.
    #[tool(
        description = "Get one recorded run of a workspace: status, sizes, the recorded output and logs, and one span \
                       per host call the guest made (primitive, operation, timing, outcome, bytes).",
        output_schema = schema_for_output::<RunDetail>(),
        annotations(read_only_hint = true)
    )]
    async fn get_run(&self, Parameters(args): Parameters<GetRunArgs>, ctx: RequestContext<RoleServer>) -> ToolResult {
        let caller = caller_of(&ctx)?;
        let ws = target_workspace(&caller, args.workspace.as_deref())?;
        let id = args.run_id.parse::<RunId>().map_err(|_| ToolFailure::new("run_id is not a run id"))?;
        let rec = self.shared.orbit.runs().get(id).map_err(|e| {
            tracing::error!(error = %e, "get_run");
            ToolFailure::new("internal error")
        })?;
        // Another workspace's run is reported exactly like a missing one.
        // So is a run the caller's role may not see.
        let Some(rec) = rec.filter(|r| r.workspace == ws && may_see_run(&caller.principal, r.member())) else {
            return Err(ToolFailure::new(format!("no run {id} in workspace {ws}")));
        };
        structured(&detail(&rec), false)
    }

    /// The workspace's MCP tools, from the per-workspace server registry.
    #[tool(
        description = "List the MCP tools installed in a workspace (the tools of its enabled MCP servers), which \
                       guest code can call through the `tools` primitive.",
        output_schema = schema_for_output::<ToolList>(),
        annotations(read_only_hint = true)
    )]
    async fn list_tools(
        &self,
        Parameters(args): Parameters<ListToolsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        let caller = caller_of(&ctx)?;
        let ws = target_workspace(&caller, args.workspace.as_deref())?;
        caller.principal.check(Action::ViewWorkspace, &Target::default()).map_err(|e| refused(&e))?;
        let until = tokio::time::Instant::now() + LIST_TOOLS_TIMEOUT;
        let (tools, unavailable) = self.shared.orbit.tools().list(&ws, until).await.map_err(|e| {
            tracing::error!(error = %e, "list_tools");
            ToolFailure::new("the workspace's MCP tools could not be listed")
        })?;
        let tools = tools
            .into_iter()
            .map(|t| WorkspaceTool {
                server: t.server,
                name: t.name,
                description: (!t.description.is_empty()).then_some(t.description),
                input_schema: t.input_schema,
            })
            .collect();
        structured(&ToolList { tools, unavailable }, false)
    }
}

impl ServerHandler for OrbitMcp {
    fn get_info(&self) -> ServerConfig {
        let mut info = Implementation::new("orbit", env!("CARGO_PKG_VERSION"));
        info.title = Some("Orbit".into());
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_completions()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_logging()
                .build(),
        )
        .with_server_info(info)
        .with_instructions(
            "Orbit runs WebAssembly components in a sandbox and records every run. Submit a component with \
                 run_component (base64 once, then by digest), inspect runs with list_runs and get_run, and see the \
                 workspace's MCP tools with list_tools.",
        )
    }

    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        // The session hears of changes to its workspace's tools from now on.
        let Ok(caller) = self.caller_in(&context.extensions) else { return };
        let shared = &self.shared;
        shared.watching.call_once(|| {
            let changes = shared.orbit.tools().registry().subscribe();
            tokio::spawn(relay_tool_changes(Arc::downgrade(shared), changes));
        });
        let mut peers = shared.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.retain(|(_, p)| !p.is_transport_closed());
        peers.push((caller.workspace, context.peer));
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // Every message is authenticated; nothing runs without a valid token.
        let caller = self.caller(&context)?;
        context.extensions.insert(caller.clone());
        let name = request.name.clone();
        if !self.tool_router.has_route(&name) {
            return self.call_upstream(request, &caller, &context).await;
        }
        match self.tool_router.call(ToolCallContext::new(self, request, context)).await {
            Ok(response) => Ok(response),
            // Arguments that do not match the schema: a tool error the model can read and correct.
            Err(e) if e.code == ErrorCode::INVALID_PARAMS => {
                ToolFailure::new(format!("invalid arguments for {name}: {}", e.message)).into_call_tool_result()
            }
            Err(e) => {
                tracing::error!(error = %e.message, tool = %name, "tool call failed");
                ToolFailure::new("internal error").into_call_tool_result()
            }
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self.caller(&context)?;
        let mut tools = self.tool_router.list_all();
        // The workspace's upstream tools this caller may call, after Orbit's own.
        match gateway::upstream_tools(self.orbit(), &caller.workspace, &caller.principal).await {
            Ok(listed) => tools.extend(
                listed
                    .tools
                    .into_iter()
                    .filter(|t| t.callable && !self.tool_router.has_route(&t.gateway_name))
                    .map(gateway::upstream_tool),
            ),
            Err(gateway::ListFailed) => {}
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        // Upstream tools are looked up per call (they change while a session is open).
        self.tool_router.get(name).cloned()
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.caller(&context)?;
        *self.log_level.lock().unwrap_or_else(|e| e.into_inner()) = Some(request.level);
        Ok(())
    }

    // Prompts, resources and completions are the workspace's upstream
    // servers' (Orbit offers none of its own): see `gateway::resources`.

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListPromptsResult, ErrorData> {
        let caller = self.caller(&context)?;
        Ok(rmcp::model::ListPromptsResult::with_all_items(self.gateway_prompts(&caller).await))
    }

    async fn get_prompt(
        &self,
        request: rmcp::model::GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetPromptResponse, ErrorData> {
        let caller = self.caller(&context)?;
        Ok(self.gateway_get_prompt(&caller, request).await?.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, ErrorData> {
        let caller = self.caller(&context)?;
        Ok(rmcp::model::ListResourcesResult::with_all_items(self.gateway_resources(&caller).await))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourceTemplatesResult, ErrorData> {
        let caller = self.caller(&context)?;
        Ok(rmcp::model::ListResourceTemplatesResult::with_all_items(self.gateway_resource_templates(&caller).await))
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, ErrorData> {
        let caller = self.caller(&context)?;
        Ok(self.gateway_read_resource(&caller, request).await?.into())
    }

    async fn subscribe(
        &self,
        request: rmcp::model::SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let caller = self.caller(&context)?;
        self.gateway_subscription(&caller, &request.uri, true, &context).await
    }

    async fn unsubscribe(
        &self,
        request: rmcp::model::UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let caller = self.caller(&context)?;
        self.gateway_subscription(&caller, &request.uri, false, &context).await
    }

    async fn complete(
        &self,
        request: rmcp::model::CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CompleteResult, ErrorData> {
        let caller = self.caller(&context)?;
        self.gateway_complete(&caller, request).await
    }
}

/// Serves `server` over stdin/stdout until the client closes the stream.
/// Nothing but MCP messages is written to stdout.
///
/// # Errors
/// [`ServeError::Transport`] when the handshake fails.
pub async fn serve_stdio(server: OrbitMcp) -> Result<(), ServeError> {
    serve_io(server, tokio::io::stdin(), tokio::io::stdout()).await
}

/// Serves one MCP session of `server` over any byte stream, newline-delimited
/// JSON-RPC as on stdio (`read` carries the client's messages, `write` the
/// server's), until the client closes its side. [`serve_stdio`] is this over
/// stdin/stdout; `orbit` also uses it for sessions that reach the data
/// directory's owner through its Unix socket.
///
/// # Errors
/// [`ServeError::Transport`] when the handshake fails.
pub async fn serve_io<R, W>(server: OrbitMcp, read: R, write: W) -> Result<(), ServeError>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    use rmcp::ServiceExt;
    let running = server.serve((read, write)).await.map_err(|e| ServeError::Transport(e.to_string()))?;
    running.waiting().await.map_err(|e| ServeError::Transport(e.to_string()))?;
    Ok(())
}
