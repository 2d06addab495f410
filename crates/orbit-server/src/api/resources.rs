//! Credentials, MCP servers and their tools, jobs and the queue.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use orbit::orbit_tools::{Rule, ServerEntry, ServerSpec, ServerTransport, ValueSource};
use orbit::orbit_workspace::permission::Target;
use orbit::{Action, HostBinding, JobDefaults, NewSecret, Placement, SecretValue};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::team::user;
use super::views::{Body, Params};
use super::{ApiCaller, ApiState, Problem, Problems};
use crate::submit;

/// A credential's metadata: never its value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretView {
    /// Its name.
    pub name: String,
    /// Where it may be sent: `scheme://host:port[/path-prefix]`.
    pub hosts: Vec<String>,
    /// Where it goes in a request: `header NAME`, `query PARAM` or
    /// `basic USER`.
    pub placement: String,
    /// The member who added it ("added by").
    pub owner: Option<String>,
    /// When it was added.
    pub created_at_ms: u64,
    /// When the host last placed it into a request.
    pub last_used_at_ms: Option<u64>,
    /// `true` when its owner is no longer a member: it keeps working until
    /// an admin reassigns it.
    pub orphaned: bool,
}

/// A list of credentials.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretList {
    /// Every credential of the workspace, by name.
    pub secrets: Vec<SecretView>,
}

fn secret_view(meta: &orbit::SecretMeta, orphaned: bool) -> SecretView {
    SecretView {
        name: meta.name.clone(),
        hosts: meta
            .hosts
            .iter()
            .map(|h| format!("{}://{}:{}{}", h.scheme, h.host, h.port, h.path_prefix.as_deref().unwrap_or("")))
            .collect(),
        placement: match &meta.placement {
            Placement::Header { name, .. } => format!("header {name}"),
            Placement::Query { param } => format!("query {param}"),
            Placement::Basic { username } => format!("basic {username}"),
            _ => "other".into(),
        },
        owner: meta.owner.as_ref().map(|o| o.to_string()),
        created_at_ms: meta.created_at_ms,
        last_used_at_ms: meta.last_used_at_ms,
        orphaned,
    }
}

/// `PUT /secrets/{name}`: a credential's value and bindings (write-only).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    /// The value. Never shown again, by any route.
    pub value: String,
    /// Origins it may be sent to, such as `https://api.github.com` (at
    /// least one).
    pub hosts: Vec<String>,
    /// HTTP methods it may be sent with; default any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Send it in this header, rendered from `template`...
    #[serde(default)]
    pub header: Option<String>,
    /// ... where `{}` stands for the value (e.g. `Bearer {}`).
    #[serde(default)]
    pub template: Option<String>,
    /// Or send it as this query parameter.
    #[serde(default)]
    pub query: Option<String>,
    /// Or as HTTP Basic credentials with this user name.
    #[serde(default)]
    pub basic_user: Option<String>,
}

/// `POST /secrets/{name}/reassign`: give an orphaned credential to an
/// active member.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reassign {
    /// The new owner.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub owner: String,
    /// A new value, to rotate it at the same time.
    #[serde(default)]
    pub value: Option<String>,
}

/// The workspace's credentials (metadata only).
#[utoipa::path(get, path = "/workspaces/{slug}/secrets", tag = "secrets",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = SecretList), Problems))]
pub(super) async fn secrets(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
) -> Result<Json<SecretList>, Problem> {
    let ws = caller.workspace(&slug)?;
    let list = state.orbit().credentials(&caller.principal, ws)?;
    Ok(Json(SecretList { secrets: list.iter().map(|c| secret_view(&c.meta, c.orphaned)).collect() }))
}

/// Adds a credential, or changes one's value or bindings (its owner only).
#[utoipa::path(put, path = "/workspaces/{slug}/secrets/{name}", tag = "secrets",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
           ("name" = String, Path, description = "The credential's name", pattern = "^[A-Za-z0-9_.-]{1,128}$")),
    request_body = SecretBody,
    responses((status = 200, body = SecretView), Problems))]
pub(super) async fn set_secret(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path((slug, name)): Path<(String, String)>,
    Body(body): Body<SecretBody>,
) -> Result<Json<SecretView>, Problem> {
    let ws = caller.workspace(&slug)?;
    let placement = match (body.header, body.template, body.query, body.basic_user) {
        (Some(name), Some(template), None, None) => Placement::Header { name, template },
        (None, None, Some(param), None) => Placement::Query { param },
        (None, None, None, Some(username)) => Placement::Basic { username },
        _ => {
            return Err(Problem::new(
                "invalid-input",
                "give one placement: header with template, query, or basic_user",
            ));
        }
    };
    let mut hosts = Vec::new();
    for h in &body.hosts {
        let b = HostBinding::parse(h).map_err(|e| Problem::new("invalid-input", format!("host {h:?}: {e}")))?;
        hosts.push(if body.methods.is_empty() { b } else { b.with_methods(&body.methods) });
    }
    let secret = NewSecret { name, value: SecretValue::new(body.value), hosts, placement, owner: None };
    let meta = state.orbit().set_credential(&caller.principal, ws, secret)?;
    Ok(Json(secret_view(&meta, false)))
}

/// Deletes a credential (its owner, or an admin).
#[utoipa::path(delete, path = "/workspaces/{slug}/secrets/{name}", tag = "secrets",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
           ("name" = String, Path, description = "The credential's name", pattern = "^[A-Za-z0-9_.-]{1,128}$")),
    responses((status = 204, description = "Deleted"), Problems))]
pub(super) async fn delete_secret(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path((slug, name)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let ws = caller.workspace(&slug)?;
    state.orbit().delete_credential(&caller.principal, ws, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reassigns an orphaned credential to an active member (admins).
#[utoipa::path(post, path = "/workspaces/{slug}/secrets/{name}/reassign", tag = "secrets",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
           ("name" = String, Path, description = "The credential's name", pattern = "^[A-Za-z0-9_.-]{1,128}$")),
    request_body = Reassign,
    responses((status = 200, body = SecretView), Problems))]
pub(super) async fn reassign_secret(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path((slug, name)): Path<(String, String)>,
    Body(body): Body<Reassign>,
) -> Result<Json<SecretView>, Problem> {
    let ws = caller.workspace(&slug)?;
    let value = body.value.map(SecretValue::new);
    let meta = state.orbit().reassign_credential(&caller.principal, ws, &name, &user(&body.owner)?, value)?;
    Ok(Json(secret_view(&meta, false)))
}

/// An installed MCP server.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServerView {
    /// Its name in the workspace.
    pub name: String,
    /// `http` or `stdio`.
    pub transport: String,
    /// Its URL, or its command's name.
    pub location: String,
    /// Whether runs and the gateway may use it.
    pub enabled: bool,
    /// Who installed it.
    pub owner: Option<String>,
    /// Environment variables (stdio) and headers (http): `secret:NAME`
    /// references are shown as such, never resolved.
    pub env: Vec<String>,
    /// Headers sent to an HTTP server, as `Name: value-or-secret-ref`.
    pub headers: Vec<String>,
    /// When it was installed.
    pub added_at_ms: u64,
    /// Whether the gateway offers its tools under their own names.
    pub unprefixed: bool,
    /// Its tools as last listed; absent before Orbit first connected.
    pub tools: Option<Vec<String>>,
}

fn server_view(s: &ServerEntry) -> ServerView {
    let transport = match &s.spec.transport {
        ServerTransport::Stdio { .. } => "stdio",
        ServerTransport::Http { .. } => "http",
        _ => "other",
    };
    ServerView {
        name: s.name.clone(),
        transport: transport.into(),
        location: s.spec.location(),
        enabled: s.enabled,
        owner: s.spec.owner.as_ref().map(|o| o.to_string()),
        env: s.spec.env.iter().map(|(k, v)| format!("{k}={}", v.display())).collect(),
        headers: s.spec.headers.iter().map(|(k, v)| format!("{k}: {}", v.display())).collect(),
        added_at_ms: s.added_at_ms,
        unprefixed: s.spec.unprefixed,
        tools: s.tools.as_ref().map(|t| t.iter().map(|t| t.name.clone()).collect()),
    }
}

/// A list of servers, with the tool policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServerList {
    /// Every installed server, by name.
    pub servers: Vec<ServerView>,
    /// Allow/deny rules by target (`SERVER` or `SERVER/TOOL`): `allow` or
    /// `deny`.
    #[schema(value_type = Object)]
    pub rules: std::collections::BTreeMap<String, String>,
    /// Targets opened to read-only members.
    pub read_only_allow: Vec<String>,
}

/// `POST /servers`: install an MCP server reached over streamable HTTP.
/// (A server that runs as a command on the host is installed by the
/// operator, with `orbit tools add --command`.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServer {
    /// Its name in the workspace (1 to 64 of `a-z A-Z 0-9 _ -`).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// Its streamable HTTP endpoint.
    pub url: String,
    /// Headers to send it: a value `secret:NAME` is the workspace
    /// credential NAME, injected by the host.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Offer its tools and prompts through the gateway under their own
    /// names instead of `<name>__<tool>` (at most one such server per
    /// workspace; a second is refused).
    #[serde(default)]
    pub unprefixed: bool,
}

/// `PATCH /servers/{name}`: enable or disable it, or change the policy on
/// it (or on one of its tools).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerPatch {
    /// Enable (`true`) or disable (`false`) it.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// A tool of it, to set `rule` or `read_only` on that tool instead of
    /// the whole server.
    #[serde(default)]
    pub tool: Option<String>,
    /// `allow`, `deny`, or `clear` to remove the rule.
    #[serde(default)]
    #[schema(pattern = "^(allow|deny|clear)$")]
    pub rule: Option<String>,
    /// Open (`true`) or close (`false`) it to read-only members.
    #[serde(default)]
    pub read_only: Option<bool>,
}

/// The workspace's MCP servers and tool policy.
#[utoipa::path(get, path = "/workspaces/{slug}/servers", tag = "servers",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = ServerList), Problems))]
pub(super) async fn servers(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
) -> Result<Json<ServerList>, Problem> {
    let ws = caller.workspace(&slug)?;
    caller.principal.check(Action::ViewWorkspace, &Target::default())?;
    let reg = state.orbit().tools().registry();
    let servers = reg.list_servers(ws).map_err(tools_problem)?;
    let policy = reg.policy(ws).map_err(tools_problem)?;
    Ok(Json(ServerList {
        servers: servers.iter().map(server_view).collect(),
        rules: policy
            .rules
            .iter()
            .map(|(k, r)| (k.clone(), if *r == Rule::Allow { "allow" } else { "deny" }.to_owned()))
            .collect(),
        read_only_allow: policy.read_only_allow.iter().cloned().collect(),
    }))
}

pub(super) fn tools_problem(e: orbit::orbit_tools::ToolsError) -> Problem {
    Problem::from(orbit::TeamActionError::Tools(e))
}

/// Installs an MCP server reached over streamable HTTP.
#[utoipa::path(post, path = "/workspaces/{slug}/servers", tag = "servers",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    request_body = NewServer,
    responses((status = 201, body = ServerView), Problems))]
pub(super) async fn install_server(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
    Body(body): Body<NewServer>,
) -> Result<(StatusCode, Json<ServerView>), Problem> {
    let ws = caller.workspace(&slug)?;
    let mut spec = ServerSpec::new(ServerTransport::Http { url: body.url });
    spec.headers = body.headers.iter().map(|(k, v)| (k.clone(), ValueSource::parse(v))).collect();
    spec.unprefixed = body.unprefixed;
    let entry = state.orbit().install_server(&caller.principal, ws, &body.name, spec, None)?;
    Ok((StatusCode::CREATED, Json(server_view(&entry))))
}

/// Enables or disables a server, or changes the policy on it or a tool.
#[utoipa::path(patch, path = "/workspaces/{slug}/servers/{name}", tag = "servers",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
           ("name" = String, Path, description = "The server's name", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    request_body = ServerPatch,
    responses((status = 200, body = ServerView), Problems))]
pub(super) async fn update_server(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path((slug, name)): Path<(String, String)>,
    Body(body): Body<ServerPatch>,
) -> Result<Json<ServerView>, Problem> {
    let ws = caller.workspace(&slug)?;
    let orbit = state.orbit();
    let rule = match body.rule.as_deref() {
        None => None,
        Some("allow") => Some(Some(Rule::Allow)),
        Some("deny") => Some(Some(Rule::Deny)),
        Some("clear") => Some(None),
        Some(_) => return Err(Problem::new("invalid-input", "rule must be allow, deny or clear")),
    };
    if orbit.tools().registry().server(ws, &name).map_err(tools_problem)?.is_none() {
        return Err(Problem::new("not-found", format!("server {name} not found")));
    }
    let target = match &body.tool {
        Some(tool) => format!("{name}/{tool}"),
        None => name.clone(),
    };
    if let Some(enabled) = body.enabled {
        orbit.set_server_enabled(&caller.principal, ws, &name, enabled)?;
    }
    if let Some(rule) = rule {
        orbit.set_tool_rule(&caller.principal, ws, &target, rule)?;
    }
    if let Some(open) = body.read_only {
        orbit.set_tool_read_only_allow(&caller.principal, ws, &target, open)?;
    }
    let entry = orbit.tools().registry().server(ws, &name).map_err(tools_problem)?;
    let entry = entry.ok_or_else(|| Problem::new("not-found", format!("server {name} not found")))?;
    Ok(Json(server_view(&entry)))
}

/// Connects to an enabled server and lists its tools again (those who may
/// enable a server: members and up). Audited.
#[utoipa::path(post, path = "/workspaces/{slug}/servers/{name}/refresh", tag = "servers",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
           ("name" = String, Path, description = "The server's name", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, body = ServerView), Problems))]
pub(super) async fn refresh_server(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path((slug, name)): Path<(String, String)>,
) -> Result<Json<ServerView>, Problem> {
    let ws = caller.workspace(&slug)?;
    state.orbit().refresh_server(&caller.principal, ws, &name).await?;
    let entry = state.orbit().tools().registry().server(ws, &name).map_err(tools_problem)?;
    let entry = entry.ok_or_else(|| Problem::new("not-found", format!("server {name} not found")))?;
    Ok(Json(server_view(&entry)))
}

/// Removes a server (its owner, or an admin).
#[utoipa::path(delete, path = "/workspaces/{slug}/servers/{name}", tag = "servers",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
           ("name" = String, Path, description = "The server's name", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 204, description = "Removed"), Problems))]
pub(super) async fn remove_server(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path((slug, name)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let ws = caller.workspace(&slug)?;
    state.orbit().remove_server(&caller.principal, ws, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// One tool of an enabled server.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ToolView {
    /// The server's name.
    pub server: String,
    /// The tool's name on that server.
    pub name: String,
    /// Its name through the workspace's MCP gateway.
    pub gateway_name: String,
    /// Its description.
    pub description: String,
    /// The JSON Schema of its arguments.
    #[schema(value_type = Object)]
    pub input_schema: serde_json::Value,
    /// The server's `readOnlyHint`.
    pub read_only_hint: Option<bool>,
    /// Its title and annotations as the server listed them (MCP `Tool`
    /// `title` and `annotations`: `readOnlyHint`, `destructiveHint`,
    /// `idempotentHint`, `openWorldHint`, ...), untrusted text; absent when
    /// it gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub annotations: Option<serde_json::Value>,
    /// Whether the caller may call it (role and policy).
    pub callable: bool,
}

/// A list of tools.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ToolListView {
    /// The enabled servers' tools.
    pub tools: Vec<ToolView>,
    /// Servers that could not be reached to list their tools.
    pub unavailable: Vec<String>,
}

/// A tool definition's `annotations`, with its `title` among them.
fn tool_annotations(definition: Option<&serde_json::Value>) -> Option<serde_json::Value> {
    let d = definition?;
    let mut out = d.get("annotations").and_then(|a| a.as_object()).cloned().unwrap_or_default();
    if let Some(title) = d.get("title") {
        out.insert("title".into(), title.clone());
    }
    (!out.is_empty()).then_some(serde_json::Value::Object(out))
}

/// The tools of the workspace's enabled servers (servers never listed are
/// started and listed, for up to 10 s).
#[utoipa::path(get, path = "/workspaces/{slug}/tools", tag = "servers",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = ToolListView), Problems))]
pub(super) async fn tools(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
) -> Result<Json<ToolListView>, Problem> {
    let ws = caller.workspace(&slug)?;
    caller.principal.check(Action::ViewWorkspace, &Target::default())?;
    let listed = crate::gateway::upstream_tools(state.orbit(), ws, &caller.principal).await?;
    Ok(Json(ToolListView {
        tools: listed
            .tools
            .into_iter()
            .map(|t| ToolView {
                gateway_name: t.gateway_name,
                callable: t.callable,
                server: t.info.server,
                name: t.info.name,
                description: t.info.description,
                input_schema: t.info.input_schema,
                read_only_hint: t.info.read_only_hint,
                annotations: tool_annotations(t.info.definition.as_ref()),
            })
            .collect(),
        unavailable: listed.unavailable,
    }))
}

/// A registered job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// Its name.
    pub name: String,
    /// Its component's sha256.
    pub digest: String,
    /// The component's size.
    pub size_bytes: u64,
    /// What it does.
    pub description: Option<String>,
    /// Fuel per run (default: the engine's).
    pub fuel: Option<u64>,
    /// Deadline per run, in ms (default: the engine's).
    pub timeout_ms: Option<u64>,
    /// Who registered it.
    pub owner: Option<String>,
    /// When it was registered.
    pub created_at_ms: u64,
}

fn job_view(s: &orbit::JobSpec) -> JobView {
    JobView {
        name: s.name.clone(),
        digest: s.digest.clone(),
        size_bytes: s.size_bytes,
        description: s.defaults.description.clone(),
        fuel: s.defaults.fuel,
        timeout_ms: s.defaults.timeout_ms,
        owner: s.defaults.owner.as_ref().map(|o| o.to_string()),
        created_at_ms: s.created_at_ms,
    }
}

/// A list of jobs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// Every registered job.
    pub jobs: Vec<JobView>,
}

/// `POST /jobs`: register a job from a component submitted before.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    /// Its name (1 to 64 of `A-Z a-z 0-9 . _ -`, starting with a letter or
    /// digit).
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub name: String,
    /// The sha256 of a component submitted with `POST /components`.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub digest: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// Fuel per run.
    #[serde(default, deserialize_with = "super::views::whole_number")]
    #[schema(minimum = 1)]
    pub fuel: Option<u64>,
    /// Deadline per run, in ms.
    #[serde(default, deserialize_with = "super::views::whole_number")]
    #[schema(minimum = 1, maximum = 3600000)]
    pub timeout_ms: Option<u64>,
}

/// The workspace's registered jobs.
#[utoipa::path(get, path = "/workspaces/{slug}/jobs", tag = "jobs",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = JobList), Problems))]
pub(super) async fn jobs(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
) -> Result<Json<JobList>, Problem> {
    let ws = caller.workspace(&slug)?;
    caller.principal.check(Action::ViewWorkspace, &Target::default())?;
    let list = state.orbit().jobs().store().list(ws).map_err(|e| Problem::from(orbit::TeamActionError::Jobs(e)))?;
    Ok(Json(JobList { jobs: list.iter().map(job_view).collect() }))
}

/// Registers (or replaces) a job.
#[utoipa::path(post, path = "/workspaces/{slug}/jobs", tag = "jobs",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    request_body = NewJob,
    responses((status = 201, body = JobView), Problems))]
pub(super) async fn register_job(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
    Body(body): Body<NewJob>,
) -> Result<(StatusCode, Json<JobView>), Problem> {
    let ws = caller.workspace(&slug)?;
    let wasm = state.mcp.components().get(ws, &body.digest).map_err(|e| Problem::from(submit::component_failure(e)))?;
    let mut defaults = JobDefaults::default();
    (defaults.description, defaults.fuel, defaults.timeout_ms) = (body.description, body.fuel, body.timeout_ms);
    let spec = state.orbit().register_job(&caller.principal, ws, &body.name, &wasm, defaults, None)?;
    Ok((StatusCode::CREATED, Json(job_view(&spec))))
}

/// Removes a job (its owner, or an admin).
#[utoipa::path(delete, path = "/workspaces/{slug}/jobs/{name}", tag = "jobs",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
           ("name" = String, Path, description = "The job's name", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 204, description = "Removed"), Problems))]
pub(super) async fn remove_job(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path((slug, name)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let ws = caller.workspace(&slug)?;
    state.orbit().remove_job(&caller.principal, ws, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A queued job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueuedJobView {
    /// Its id.
    pub id: String,
    /// The job's name.
    pub name: String,
    /// `queued`, `running`, `succeeded`, `failed` or `dead`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The run of its last attempt.
    pub run_id: Option<String>,
    /// Who enqueued it.
    pub enqueued_by: String,
}

/// Query of `GET /queue`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueFilter {
    /// At most this many, 1 to 1000; default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// A list of queued jobs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    /// Oldest first.
    pub jobs: Vec<QueuedJobView>,
}

/// The workspace's job queue, oldest first.
#[utoipa::path(get, path = "/workspaces/{slug}/queue", tag = "jobs",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"), QueueFilter),
    responses((status = 200, body = QueueView), Problems))]
pub(super) async fn queue(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
    Params(f): Params<QueueFilter>,
) -> Result<Json<QueueView>, Problem> {
    let ws = caller.workspace(&slug)?;
    caller.principal.check(Action::ViewRuns, &Target::default())?;
    let limit = f.limit.unwrap_or(50);
    if limit == 0 || limit > 1000 {
        return Err(Problem::new("invalid-input", "limit must be 1 to 1000"));
    }
    let list =
        state.orbit().jobs().store().jobs(ws, limit).map_err(|e| Problem::from(orbit::TeamActionError::Jobs(e)))?;
    Ok(Json(QueueView {
        jobs: list
            .iter()
            .map(|j| QueuedJobView {
                id: j.id.to_string(),
                name: j.name.clone(),
                state: j.state.as_str().to_owned(),
                attempts: j.attempts,
                run_id: j.run_id.map(|r| r.to_string()),
                enqueued_by: j.principal.label(),
            })
            .collect(),
    }))
}
