//! The dashboard's pages (GET): each resolves the session and its token for
//! the workspace, asks the API, and renders a template.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use orbit::orbit_workspace::permission::{self, Action, Target};
use orbit::orbit_workspace::{Role, UserId, parse_duration_ms};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::Dash;
use super::chart::{self, Bar, Series};
use super::client::{ApiFailure, query, seg};
use super::session::{Flash, SESSION_COOKIE, SIGNIN_COOKIE, SessionView, cookie_value, random_hex};
use crate::api::{
    AuditEventView, AuditPageView, JobList, Me, MemberList, NotificationList, QueueView, SecretList, ServerList,
    TokenList, TokenView, ToolListView, WorkspaceView,
};
use crate::types::{RunDetail, RunList, RunSummary};

/// What the page may offer the caller's role, by the permission table.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Can {
    pub audit: bool,
    pub manage_members: bool,
    pub create: bool,
    pub disable_server: bool,
    pub policy: bool,
    pub delete_secret: bool,
    /// Delete anyone's credential, not only one's own.
    pub delete_any_secret: bool,
    /// Remove anyone's server, not only one's own.
    pub edit_any: bool,
    pub reassign: bool,
    pub issue_for_others: bool,
    pub all_runs: bool,
}

impl Can {
    fn of(role: Role, me: &UserId) -> Self {
        // Someone else's (no owner is `me`), a member below admin.
        let others = Target { target_role: Some(Role::ReadOnly), ..Target::default() };
        let on_other = |a: Action| permission::decide(role, Some(me), a, &others).is_ok();
        Self {
            audit: permission::offered(role, Action::ViewAudit),
            manage_members: permission::offered(role, Action::ManageMembers),
            create: permission::offered(role, Action::CreateResource),
            disable_server: permission::offered(role, Action::DisableServer),
            policy: permission::offered(role, Action::ChangeToolPolicy),
            delete_secret: permission::offered(role, Action::DeleteCredential),
            delete_any_secret: on_other(Action::DeleteCredential),
            edit_any: on_other(Action::EditResource),
            reassign: permission::offered(role, Action::ReassignResource),
            issue_for_others: on_other(Action::IssueToken),
            all_runs: on_other(Action::ViewRuns),
        }
    }
}

/// The frame around every page: the session's workspaces, the caller, the
/// section, the pending message and the form's CSRF token.
#[derive(Debug, Clone, Default)]
pub(crate) struct Frame {
    /// The current workspace; empty outside one (sign-in).
    pub slug: String,
    pub workspaces: Vec<String>,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub section: &'static str,
    pub user: String,
    pub role: String,
    pub agent: Option<String>,
    pub can: Can,
}

/// A signed-in request in one workspace.
pub(crate) struct Ctx {
    pub dash: Dash,
    pub sid: String,
    pub slug: String,
    pub token: Zeroizing<String>,
    pub me: Me,
    pub session: SessionView,
    pub can: Can,
}

/// Where a request whose token stopped working goes.
pub(crate) fn ended(dash: &Dash, sid: &str, slug: &str) -> Response {
    dash.sessions.drop_token(sid, slug);
    Redirect::to("/signin?ended=1").into_response()
}

impl Ctx {
    /// The session and `slug`'s token, checked by the API (`/me`).
    pub(crate) async fn resolve(dash: &Dash, headers: &HeaderMap, slug: &str) -> Result<Self, Response> {
        let sid = cookie_value(headers, SESSION_COOKIE).unwrap_or_default();
        let Some(session) = dash.sessions.view(&sid) else {
            return Err(Redirect::to("/signin").into_response());
        };
        let Some(token) = dash.sessions.token(&sid, slug) else {
            return Err(error_page(
                StatusCode::NOT_FOUND,
                "No such workspace in this session: sign in to it with one of its tokens (Add workspace).",
            ));
        };
        let me: Me = match dash.api.get(&token, "/me").await {
            Ok(me) => me,
            Err(ApiFailure::SignedOut) => return Err(ended(dash, &sid, slug)),
            Err(e) => return Err(error_page(StatusCode::BAD_GATEWAY, &e.text())),
        };
        let role: Role = me.role.parse().unwrap_or(Role::ReadOnly);
        let user = UserId::new(&me.user).map_err(|_| error_page(StatusCode::BAD_GATEWAY, "unreadable caller"))?;
        let can = Can::of(role, &user);
        Ok(Self { dash: dash.clone(), sid, slug: slug.to_owned(), token, me, session, can })
    }

    /// `GET /workspaces/{slug}{rest}` of the API.
    pub(crate) async fn get<T: serde::de::DeserializeOwned>(&self, rest: &str) -> Result<T, Response> {
        let path = format!("/workspaces/{}{rest}", seg(&self.slug));
        self.dash.api.get(&self.token, &path).await.map_err(|e| self.failed(e))
    }

    /// The response to a failed API request of a page.
    pub(crate) fn failed(&self, e: ApiFailure) -> Response {
        match e {
            ApiFailure::SignedOut => ended(&self.dash, &self.sid, &self.slug),
            ApiFailure::Refused(p) => {
                let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_GATEWAY);
                error_page(status, &format!("{}: {}", p.title, p.detail))
            }
        }
    }

    /// The page frame for `section`, taking the pending message.
    pub(crate) fn frame(&self, section: &'static str) -> Frame {
        Frame {
            slug: self.slug.clone(),
            workspaces: self.session.workspaces.clone(),
            csrf: self.session.csrf.clone(),
            flash: self.dash.sessions.take_flash(&self.sid),
            section,
            user: self.me.user.clone(),
            role: self.me.role.clone(),
            agent: self.me.agent.clone(),
            can: self.can,
        }
    }
}

/// Renders `t` as an HTML page.
pub(crate) fn render<T: Template>(t: &T) -> Result<Response, Response> {
    match t.render() {
        Ok(html) => Ok(Html(html).into_response()),
        Err(e) => {
            tracing::error!(error = %e, "rendering a dashboard page");
            Err(error_page(StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered"))
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    f: Frame,
    status: u16,
    message: String,
}

/// A page saying what went wrong (caller-safe text only).
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let page = ErrorPage { f: Frame::default(), status: status.as_u16(), message: message.to_owned() };
    let html = page.render().unwrap_or_else(|_| "error".into());
    (status, Html(html)).into_response()
}

/// A time, ms since the Unix epoch, as an HTTP date (UTC).
pub(crate) fn when(ms: &u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(*ms))
}

/// An optional time.
pub(crate) fn when_opt(ms: &Option<u64>) -> String {
    ms.as_ref().map_or_else(|| "never".into(), when)
}

/// A duration in µs, readable.
pub(crate) fn dur(us: &u64) -> String {
    match *us {
        us if us < 1_000 => format!("{us} µs"),
        us if us < 1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        us => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// A size in bytes, readable.
pub(crate) fn size(bytes: &u64) -> String {
    match *bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1 << 20 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `/`: the first workspace of the session, or sign-in.
pub(crate) async fn home(State(dash): State<Dash>, headers: HeaderMap) -> Response {
    let sid = cookie_value(&headers, SESSION_COOKIE).unwrap_or_default();
    match dash.sessions.view(&sid).and_then(|s| s.workspaces.into_iter().next()) {
        Some(slug) => Redirect::to(&format!("/w/{}", seg(&slug))).into_response(),
        None => Redirect::to("/signin").into_response(),
    }
}

#[derive(Template)]
#[template(path = "signin.html")]
pub(crate) struct SignIn {
    pub f: Frame,
    pub error: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct SignInQuery {
    ended: Option<String>,
}

/// `GET /signin`: paste a token (again, to add a workspace to the session).
pub(crate) async fn signin(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Query(q): Query<SignInQuery>,
) -> Result<Response, Response> {
    let sid = cookie_value(&headers, SESSION_COOKIE).unwrap_or_default();
    let error = q.ended.map(|_| "You were signed out: the token is no longer valid (revoked or expired).".to_owned());
    signin_page(&dash, &sid, error, StatusCode::OK)
}

/// The sign-in page, with a fresh double-submit CSRF cookie.
pub(crate) fn signin_page(
    dash: &Dash,
    sid: &str,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, Response> {
    let session = dash.sessions.view(sid);
    let csrf = random_hex(32);
    let f = Frame {
        workspaces: session.map(|s| s.workspaces).unwrap_or_default(),
        csrf: csrf.clone(),
        section: "signin",
        ..Frame::default()
    };
    let mut response = render(&SignIn { f, error })?;
    *response.status_mut() = status;
    response.headers_mut().insert(axum::http::header::SET_COOKIE, dash.sessions.cookie(SIGNIN_COOKIE, Some(&csrf)));
    Ok(response)
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    f: Frame,
    ws: WorkspaceView,
    servers: usize,
    tools: usize,
    runs_today: Vec<(String, usize)>,
    calls_today: Vec<(String, usize)>,
    orphaned: usize,
    notifications: Option<usize>,
}

fn counts(items: impl Iterator<Item = String>) -> Vec<(String, usize)> {
    let mut m = std::collections::BTreeMap::<String, usize>::new();
    for i in items {
        *m.entry(i).or_default() += 1;
    }
    m.into_iter().collect()
}

/// `/w/{slug}`: the workspace at a glance.
pub(crate) async fn overview(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Response, Response> {
    let c = Ctx::resolve(&dash, &headers, &slug).await?;
    let ws: WorkspaceView = c.get("").await?;
    let servers: ServerList = c.get("/servers").await?;
    // As the Tools table counts them: the enabled servers' tools the policy
    // allows.
    let tools = c.get::<ToolListView>("/tools").await?.tools.len();
    let day_start = now_ms() / 86_400_000 * 86_400_000;
    let since = day_start.to_string();
    let runs: RunList =
        c.get(&format!("/runs{}", query(&[("since_ms", Some(&since)), ("limit", Some("1000"))]))).await?;
    let runs_today = counts(runs.runs.into_iter().map(|r| r.status));
    let calls_today = if c.can.audit {
        let page: AuditPageView =
            c.get(&format!("/audit{}", query(&[("since_ms", Some(&since)), ("limit", Some("1000"))]))).await?;
        counts(page.events.into_iter().filter(|e| e.kind == "tool-call").map(|e| e.outcome))
    } else {
        Vec::new()
    };
    let secrets: SecretList = c.get("/secrets").await?;
    let orphaned = secrets.secrets.iter().filter(|s| s.orphaned).count();
    let notifications = if c.can.audit {
        let n: NotificationList = c.get("/notifications").await?;
        Some(n.notifications.len())
    } else {
        None
    };
    let f = c.frame("overview");
    render(&Overview { f, ws, servers: servers.servers.len(), tools, runs_today, calls_today, orphaned, notifications })
}

/// A tool's annotations as `key: value` texts, in the server's order
/// (`readOnlyHint` first when it is absent from them).
pub(crate) fn annotations(t: &crate::api::ToolView) -> Vec<String> {
    let mut out: Vec<String> = t
        .annotations
        .as_ref()
        .and_then(|a| a.as_object())
        .map(|a| {
            a.iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}: {s}"),
                    other => format!("{k}: {other}"),
                })
                .collect()
        })
        .unwrap_or_default();
    if out.is_empty()
        && let Some(hint) = t.read_only_hint
    {
        out.push(format!("readOnlyHint: {hint}"));
    }
    out
}

#[derive(Template)]
#[template(path = "servers.html")]
struct Servers {
    f: Frame,
    list: ServerList,
    tools: ToolListView,
}

/// `/w/{slug}/servers`: installed servers, their tools and the policy.
pub(crate) async fn servers(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Response, Response> {
    let c = Ctx::resolve(&dash, &headers, &slug).await?;
    // Tools first: listing them lists servers never listed before.
    let tools: ToolListView = c.get("/tools").await?;
    let list: ServerList = c.get("/servers").await?;
    render(&Servers { f: c.frame("servers"), list, tools })
}

#[derive(Template)]
#[template(path = "secrets.html")]
struct Secrets {
    f: Frame,
    list: SecretList,
}

/// `/w/{slug}/secrets`: the credentials' metadata (never a value).
pub(crate) async fn secrets(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Response, Response> {
    let c = Ctx::resolve(&dash, &headers, &slug).await?;
    let list: SecretList = c.get("/secrets").await?;
    render(&Secrets { f: c.frame("secrets"), list })
}

#[derive(Template)]
#[template(path = "members.html")]
struct Members {
    f: Frame,
    list: MemberList,
}

/// `/w/{slug}/members`.
pub(crate) async fn members(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Response, Response> {
    let c = Ctx::resolve(&dash, &headers, &slug).await?;
    let list: MemberList = c.get("/members").await?;
    render(&Members { f: c.frame("members"), list })
}

#[derive(Template)]
#[template(path = "confirm_remove.html")]
struct ConfirmRemove {
    f: Frame,
    user: String,
    tokens: Vec<TokenView>,
    secrets: Vec<String>,
    servers: Vec<String>,
}

/// `/w/{slug}/members/{user}/remove`: what removing them revokes and
/// orphans, before it is done.
pub(crate) async fn confirm_remove(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path((slug, user)): Path<(String, String)>,
) -> Result<Response, Response> {
    if UserId::new(&user).is_err() {
        return Err(error_page(StatusCode::NOT_FOUND, "no such member"));
    }
    let c = Ctx::resolve(&dash, &headers, &slug).await?;
    let tokens: TokenList = c.get("/tokens").await?;
    let secrets: SecretList = c.get("/secrets").await?;
    let servers: ServerList = c.get("/servers").await?;
    let owned = |o: &Option<String>| o.as_deref() == Some(user.as_str());
    render(&ConfirmRemove {
        f: c.frame("members"),
        tokens: tokens.tokens.into_iter().filter(|t| t.user == user && t.revoked_at_ms.is_none()).collect(),
        secrets: secrets.secrets.into_iter().filter(|s| owned(&s.owner)).map(|s| s.name).collect(),
        servers: servers.servers.into_iter().filter(|s| owned(&s.owner)).map(|s| s.name).collect(),
        user,
    })
}

#[derive(Template)]
#[template(path = "tokens.html")]
pub(crate) struct Tokens {
    pub f: Frame,
    pub list: TokenList,
    /// A token just issued: shown this once.
    pub issued: Option<Zeroizing<String>>,
    pub issued_for: String,
}

/// `/w/{slug}/tokens`.
pub(crate) async fn tokens(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Response, Response> {
    let c = Ctx::resolve(&dash, &headers, &slug).await?;
    let list: TokenList = c.get("/tokens").await?;
    render(&Tokens { f: c.frame("tokens"), list, issued: None, issued_for: String::new() })
}

/// Filters of the runs page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunsFilter {
    status: Option<String>,
    member: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "runs.html")]
struct Runs {
    f: Frame,
    runs: Vec<RunSummary>,
    /// Every run status, for the filter.
    statuses: Vec<&'static str>,
    status: String,
    member: String,
    since: String,
    older: Option<String>,
}

/// `since` as ms since the epoch: a duration back from now (`24h`) or
/// nothing.
fn since_ms(since: Option<&str>) -> Result<Option<String>, String> {
    match since.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse_duration_ms(s)
            .map(|d| Some(now_ms().saturating_sub(d).to_string()))
            .map_err(|e| format!("Since: {e} (write a duration back from now, such as 30m, 24h or 7d)")),
    }
}

/// `/w/{slug}/runs`: runs, newest first, filtered.
pub(crate) async fn runs(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Query(q): Query<RunsFilter>,
) -> Result<Response, Response> {
    let c = Ctx::resolve(&dash, &headers, &slug).await?;
    let since = since_ms(q.since.as_deref()).map_err(|e| error_page(StatusCode::BAD_REQUEST, &e))?;
    let qs = query(&[
        ("status", q.status.as_deref()),
        ("user", q.member.as_deref()),
        ("since_ms", since.as_deref()),
        ("cursor", q.cursor.as_deref()),
        ("limit", Some("50")),
    ]);
    let list: RunList = c.get(&format!("/runs{qs}")).await?;
    let older = list.next_cursor.map(|cur| {
        query(&[
            ("status", q.status.as_deref()),
            ("member", q.member.as_deref()),
            ("since", q.since.as_deref()),
            ("cursor", Some(&cur)),
        ])
    });
    render(&Runs {
        f: c.frame("runs"),
        runs: list.runs,
        statuses: orbit::orbit_runs::RunStatus::ALL.iter().map(|s| s.as_str()).collect(),
        status: q.status.unwrap_or_default(),
        member: q.member.unwrap_or_default(),
        since: q.since.unwrap_or_default(),
        older,
    })
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    f: Frame,
    run: RunDetail,
    bars: Vec<Bar>,
    height: f64,
}

/// `/w/{slug}/runs/{id}`: a run, its logs and its span waterfall.
pub(crate) async fn run(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    let c = Ctx::resolve(&dash, &headers, &slug).await?;
    let run: RunDetail = c.get(&format!("/runs/{}", seg(&id))).await?;
    let (bars, height) = chart::waterfall(&run.spans, run.summary.duration_us);
    render(&RunPage { f: c.frame("runs"), run, bars, height })
}

/// Filters of the audit page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditFilter {
    member: Option<String>,
    server: Option<String>,
    tool: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct Audit {
    f: Frame,
    events: Vec<AuditEventView>,
    series: Vec<Series>,
    top_us: u64,
    member: String,
    server: String,
    tool: String,
    outcome: String,
    since: String,
    older: Option<String>,
}

/// `/w/{slug}/audit`: the trail, filtered, with tool-call latency and
/// error rate over the window the latest 1,000 matching events span.
pub(crate) async fn audit(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Query(q): Query<AuditFilter>,
) -> Result<Response, Response> {
    let c = Ctx::resolve(&dash, &headers, &slug).await?;
    let since = since_ms(q.since.as_deref()).map_err(|e| error_page(StatusCode::BAD_REQUEST, &e))?;
    let filters = [
        ("user", q.member.as_deref()),
        ("server", q.server.as_deref()),
        ("tool", q.tool.as_deref()),
        ("outcome", q.outcome.as_deref()),
        ("since_ms", since.as_deref()),
    ];
    let mut page_q = filters.to_vec();
    page_q.extend([("cursor", q.cursor.as_deref()), ("limit", Some("50"))]);
    let page: AuditPageView = c.get(&format!("/audit{}", query(&page_q))).await?;
    let mut chart_q = filters.to_vec();
    chart_q.push(("limit", Some("1000")));
    let window: AuditPageView = c.get(&format!("/audit{}", query(&chart_q))).await?;
    let (series, top_us) = chart::latency(&window.events);
    let older = page.next_cursor.map(|cur| {
        query(&[
            ("member", q.member.as_deref()),
            ("server", q.server.as_deref()),
            ("tool", q.tool.as_deref()),
            ("outcome", q.outcome.as_deref()),
            ("since", q.since.as_deref()),
            ("cursor", Some(&cur)),
        ])
    });
    render(&Audit {
        f: c.frame("audit"),
        events: page.events,
        series,
        top_us,
        member: q.member.unwrap_or_default(),
        server: q.server.unwrap_or_default(),
        tool: q.tool.unwrap_or_default(),
        outcome: q.outcome.unwrap_or_default(),
        since: q.since.unwrap_or_default(),
        older,
    })
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct Jobs {
    f: Frame,
    jobs: JobList,
    /// For roles that see every run (the queue is everyone's).
    queue: Option<QueueView>,
}

/// `/w/{slug}/jobs`: registered jobs and the queue.
pub(crate) async fn jobs(
    State(dash): State<Dash>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Response, Response> {
    let c = Ctx::resolve(&dash, &headers, &slug).await?;
    let jobs: JobList = c.get("/jobs").await?;
    let queue = if c.can.all_runs { Some(c.get::<QueueView>("/queue?limit=100").await?) } else { None };
    render(&Jobs { f: c.frame("jobs"), jobs, queue })
}
