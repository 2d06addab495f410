//! Components and runs.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use orbit::orbit_workspace::permission::Target;
use orbit::{Action, RunId, RunQuery, RunRecord, RunStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::team::user;
use super::views::{Body, Params};
use super::{ApiCaller, ApiState, Problem, Problems};
use crate::submit::{self, RunRequest, Source};
use crate::{RunDetail, RunList, RunResult, RunSummary};

/// A stored component.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ComponentView {
    /// Its sha256 (64 lowercase hex digits): pass it as `digest` to run it.
    pub digest: String,
    /// Its size.
    pub size_bytes: u64,
    /// `agent` (exports orbit:runtime/agent) or `command` (wasi:cli/run).
    pub kind: String,
}

/// Stores a component (the body is the .wasm bytes, at most 32 MiB); it is
/// compiled once here, so a later run starts at once.
#[utoipa::path(post, path = "/workspaces/{slug}/components", tag = "runs",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The component's bytes (any content type is read as the bytes)"),
    responses((status = 201, body = ComponentView), Problems))]
pub(super) async fn put_component(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
    wasm: Bytes,
) -> Result<(StatusCode, Json<ComponentView>), Problem> {
    let ws = caller.workspace(&slug)?;
    caller.principal.check(Action::RunComponent, &Target::default())?;
    let orbit = state.orbit();
    let max = orbit.engine().config().default_limits.component_bytes;
    let component = orbit.engine().load_async(&wasm, max).await.map_err(|e| submit::engine_failure(&e))?;
    submit::store(state.mcp.components(), ws, component.digest(), &wasm)?;
    Ok((
        StatusCode::CREATED,
        Json(ComponentView {
            digest: component.digest().to_owned(),
            size_bytes: wasm.len() as u64,
            kind: component.kind().to_string(),
        }),
    ))
}

/// `POST /runs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The sha256 of a component stored with `POST /components`. Give
    /// exactly one of `digest` and `source`.
    #[serde(default)]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub digest: Option<String>,
    /// An agent's source, built into a component by the server.
    #[serde(default)]
    pub source: Option<AgentSource>,
    /// The input: the agent's `run` argument, or the command's stdin.
    #[serde(default)]
    pub input: String,
    /// Fuel budget in fuel units (about one per wasm instruction); default
    /// the engine's (2,000,000,000), at most the workspace's cap.
    #[serde(default, deserialize_with = "super::views::whole_number")]
    #[schema(minimum = 1, maximum = 10000000000000_u64)]
    pub fuel: Option<u64>,
    /// Deadline in ms; default 10,000, at most the workspace's cap.
    #[serde(default, deserialize_with = "super::views::whole_number")]
    #[schema(minimum = 1, maximum = 3600000)]
    pub timeout_ms: Option<u64>,
    /// Linear memory limit in bytes; default 64 MiB, at most the cap.
    #[serde(default, deserialize_with = "super::views::whole_number")]
    #[schema(minimum = 1, maximum = 1073741824)]
    pub memory_bytes: Option<u64>,
}

/// An agent's source code, built by the server with the orbit SDK of its
/// language (componentize-py for Python, jco for TypeScript and
/// JavaScript), cached by content. A source that does not build is a 400
/// `invalid-input` whose detail is the toolchain's message with line
/// numbers; a server without the language's toolchain answers 503
/// `unavailable`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSource {
    /// `python`, `typescript` or `javascript`.
    #[schema(example = "typescript")]
    pub language: String,
    /// The agent's module (at most 1 MiB): a Python module with an
    /// `@orbit.agent` function, or a module exporting `run(input: string):
    /// string`.
    #[schema(max_length = 1048576)]
    pub code: String,
}

/// Query of `POST /runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitParam {
    /// `false`: answer 202 with the run id at once, without waiting for
    /// the result. Default `true`.
    pub wait: Option<bool>,
}

/// A run started without waiting.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunStarted {
    /// Its id: poll `GET /runs/{id}`.
    pub run_id: String,
}

/// Runs a stored component once under limits. By default waits for the
/// result (200, also when the run itself fails: see `status`); with
/// `?wait=false` answers 202 with the run id at once.
#[utoipa::path(post, path = "/workspaces/{slug}/runs", tag = "runs",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"), WaitParam),
    request_body = StartRun,
    responses((status = 200, body = RunResult), (status = 202, body = RunStarted), Problems))]
pub(super) async fn start_run(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
    Params(q): Params<WaitParam>,
    Body(body): Body<StartRun>,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse;
    let ws = caller.workspace(&slug)?.clone();
    let orbit = state.orbit().clone();
    let source = match (body.digest, body.source) {
        (Some(digest), None) => Source::Digest(digest),
        (None, Some(AgentSource { language, code })) => Source::Code { language, code },
        _ => return Err(Problem::new("invalid-input", "give exactly one of `digest` and `source`")),
    };
    let req = RunRequest {
        source,
        input: body.input,
        fuel: body.fuel,
        timeout_ms: body.timeout_ms,
        memory_bytes: body.memory_bytes,
    };
    let limits = submit::limits_for(&orbit, &caller.principal, &req, state.mcp.caps())?;
    let component = submit::load(&orbit, state.mcp.components(), &ws, &req.source, &limits).await?;
    let id = RunId::new();
    let invocation = submit::invocation(req.input, &ws, &caller.principal, limits).run_id(id);
    let caps = *state.mcp.caps();
    if q.wait == Some(false) {
        // A run answered 202 is one that started (and will be recorded).
        submit::start(orbit.clone(), state.mcp.slots().clone(), component, invocation, caps)
            .await
            .map_err(|e| submit::engine_failure(&e))?;
        return Ok((StatusCode::ACCEPTED, Json(RunStarted { run_id: id.to_string() })).into_response());
    }
    let outcome = submit::invoke(&orbit, state.mcp.slots(), &component, invocation, &caps)
        .await
        .map_err(|e| submit::engine_failure(&e))?;
    Ok(Json(crate::run_result(&outcome)).into_response())
}

/// Filters of `GET /runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunFilter {
    /// Only runs with this status (`succeeded`, `failed`, `trapped`,
    /// `out-of-fuel`, `deadline-exceeded`, `cancelled`, ...).
    #[param(
        pattern = "^(succeeded|failed|exited|out-of-fuel|deadline-exceeded|memory-limit|stack-overflow|too-large|trapped|internal|cancelled)$"
    )]
    pub status: Option<String>,
    /// Only runs this member started.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub user: Option<String>,
    /// Only runs started at or after this time (ms since the Unix epoch).
    #[param(minimum = 0)]
    pub since_ms: Option<i64>,
    /// The previous page's `next_cursor`.
    #[param(pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub cursor: Option<String>,
    /// Page size, 1 to 1000; default 20.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// The workspace's runs, newest first (read-only members: their own).
#[utoipa::path(get, path = "/workspaces/{slug}/runs", tag = "runs",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"), RunFilter),
    responses((status = 200, body = RunList), Problems))]
pub(super) async fn runs(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
    Params(f): Params<RunFilter>,
) -> Result<Json<RunList>, Problem> {
    let ws = caller.workspace(&slug)?;
    let own = caller.principal.user_id().cloned();
    let member = match f.user.as_deref().map(user).transpose()? {
        Some(u) => {
            caller.principal.check(Action::ViewRuns, &Target::owned_by(&u))?;
            Some(u)
        }
        // Read-only callers see only their own runs (the table's "own only").
        None if caller.principal.may(Action::ViewRuns) => None,
        None => own,
    };
    let status = f
        .status
        .map(|s| s.parse::<RunStatus>().map_err(|_| Problem::new("invalid-input", format!("unknown status {s:?}"))))
        .transpose()?;
    let before = f
        .cursor
        .map(|c| c.parse::<RunId>().map_err(|_| Problem::new("invalid-input", "cursor is not a run id")))
        .transpose()?;
    let limit = f.limit.unwrap_or(20);
    if limit == 0 || limit > crate::MAX_LIST_LIMIT {
        return Err(Problem::new("invalid-input", format!("limit must be 1 to {}", crate::MAX_LIST_LIMIT)));
    }
    let mut query = RunQuery::new(ws.clone());
    (query.status, query.limit, query.before, query.member) = (status, limit, before, member);
    let page = state.orbit().runs().list(&query).map_err(|e| {
        tracing::error!(error = %e, "listing runs");
        Problem::internal()
    })?;
    // Newest first: the first run older than `since_ms` ends the listing.
    let since = super::views::non_negative(f.since_ms, "since_ms")?.unwrap_or(0);
    let kept: Vec<RunSummary> = page.runs.iter().take_while(|r| r.started_at_ms >= since).map(crate::summary).collect();
    let cut = kept.len() < page.runs.len();
    Ok(Json(RunList { runs: kept, next_cursor: if cut { None } else { page.next_cursor.map(|c| c.to_string()) } }))
}

/// The run, when the caller may see it; otherwise the 404 of a missing one.
fn visible_run(state: &ApiState, caller: &ApiCaller, slug: &str, id: &str) -> Result<RunRecord, Problem> {
    let ws = caller.workspace(slug)?;
    let missing = || Problem::new("not-found", format!("no run {id} in workspace {ws}"));
    let id: RunId = id.parse().map_err(|_| missing())?;
    let rec = state.orbit().runs().get(id).map_err(|e| {
        tracing::error!(error = %e, "reading a run");
        Problem::internal()
    })?;
    rec.filter(|r| &r.workspace == ws && crate::may_see_run(&caller.principal, r.member())).ok_or_else(missing)
}

/// One run with its spans and logs.
#[utoipa::path(get, path = "/workspaces/{slug}/runs/{id}", tag = "runs",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
           ("id" = String, Path, description = "The run's id", pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses((status = 200, body = RunDetail), Problems))]
pub(super) async fn run(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<RunDetail>, Problem> {
    let rec = visible_run(&state, &caller, &slug, &id)?;
    Ok(Json(crate::detail(&rec)))
}

/// Whether a cancel reached a running run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Cancelled {
    /// `true` when the run was executing and is now told to stop (it is
    /// recorded as `cancelled`); `false` when it had already finished.
    pub cancelled: bool,
}

/// Cancels a run while it executes (one's own, or for admins anyone's).
#[utoipa::path(post, path = "/workspaces/{slug}/runs/{id}/cancel", tag = "runs",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
           ("id" = String, Path, description = "The run's id", pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses((status = 200, body = Cancelled), Problems))]
pub(super) async fn cancel_run(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<Cancelled>, Problem> {
    let ws = caller.workspace(&slug)?;
    let missing = || Problem::new("not-found", format!("no run {id} in workspace {ws}"));
    let run_id: RunId = id.parse().map_err(|_| missing())?;
    let orbit = state.orbit();
    // A run still executing has no record yet: the engine knows its owner.
    let executing = orbit.engine().executing(run_id);
    let owner = match &executing {
        Some((run_ws, p)) => {
            if run_ws != ws || !crate::may_see_run(&caller.principal, p.user_id()) {
                return Err(missing());
            }
            p.user_id().cloned()
        }
        None => visible_run(&state, &caller, &slug, &id)?.member().cloned(),
    };
    let target = owner.as_ref().map(Target::owned_by).unwrap_or_default();
    caller.principal.check(Action::CancelRun, &target)?;
    Ok(Json(Cancelled { cancelled: executing.is_some() && orbit.engine().cancel_run(run_id) }))
}
