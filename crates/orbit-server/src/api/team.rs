//! The workspace, its members, tokens, notifications and audit trail.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use orbit::orbit_workspace::permission::Target;
use orbit::orbit_workspace::{AgentName, AuditQuery, Role, TokenRequest, UserId, parse_duration_ms};
use orbit::{Action, AuditLog, TeamStore, TokenId};

use super::views::*;
use super::{ApiCaller, ApiState, Problem, Problems};

pub(super) fn role(text: &str) -> Result<Role, Problem> {
    text.parse().map_err(|_| Problem::new("invalid-input", "role must be read-only, member, admin or owner"))
}

pub(super) fn user(text: &str) -> Result<UserId, Problem> {
    UserId::new(text).map_err(|e| Problem::new("invalid-input", format!("user: {e}")))
}

/// The workspace, its member count and the caller's role.
#[utoipa::path(get, path = "/workspaces/{slug}", tag = "workspace",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = WorkspaceView), Problems))]
pub(super) async fn workspace(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
) -> Result<Json<WorkspaceView>, Problem> {
    let ws = caller.workspace(&slug)?;
    caller.principal.check(Action::ViewWorkspace, &Target::default())?;
    let orbit = state.orbit();
    let rec = orbit.require_workspace(ws)?;
    let members = orbit.team().members(ws)?.len();
    Ok(Json(WorkspaceView {
        slug: rec.id.to_string(),
        name: rec.name,
        created_at_ms: rec.created_at_ms,
        members,
        your_role: caller.principal.role.to_string(),
    }))
}

/// The workspace's members.
#[utoipa::path(get, path = "/workspaces/{slug}/members", tag = "members",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = MemberList), Problems))]
pub(super) async fn members(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
) -> Result<Json<MemberList>, Problem> {
    let ws = caller.workspace(&slug)?;
    caller.principal.check(Action::ViewWorkspace, &Target::default())?;
    let list = state.orbit().team().members(ws)?;
    Ok(Json(MemberList { members: list.iter().map(MemberView::from).collect() }))
}

/// Adds a member with a role (admins; only owners add owners).
#[utoipa::path(post, path = "/workspaces/{slug}/members", tag = "members",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    request_body = NewMember,
    responses((status = 201, body = MemberAddedView), Problems))]
pub(super) async fn add_member(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
    Body(body): Body<NewMember>,
) -> Result<(StatusCode, Json<MemberAddedView>), Problem> {
    let ws = caller.workspace(&slug)?;
    let added = state.orbit().team().add_member(
        &caller.principal,
        ws,
        &user(&body.user)?,
        role(&body.role)?,
        body.display_name.as_deref(),
    )?;
    Ok((
        StatusCode::CREATED,
        Json(MemberAddedView { member: MemberView::from(&added.member), became_team: added.became_team }),
    ))
}

/// Changes a member's role.
#[utoipa::path(patch, path = "/workspaces/{slug}/members/{user}", tag = "members",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
           ("user" = String, Path, description = "The member's handle", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    request_body = RoleChange,
    responses((status = 200, body = MemberView), Problems))]
pub(super) async fn set_role(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path((slug, who)): Path<(String, String)>,
    Body(body): Body<RoleChange>,
) -> Result<Json<MemberView>, Problem> {
    let ws = caller.workspace(&slug)?;
    let m = state.orbit().team().set_role(&caller.principal, ws, &user(&who)?, role(&body.role)?)?;
    Ok(Json(MemberView::from(&m)))
}

/// Removes a member (or leaves, for oneself): their tokens are revoked and
/// what they owned is orphaned, both listed in the result.
#[utoipa::path(delete, path = "/workspaces/{slug}/members/{user}", tag = "members",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
           ("user" = String, Path, description = "The member's handle", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = MemberRemovedView), Problems))]
pub(super) async fn remove_member(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path((slug, who)): Path<(String, String)>,
) -> Result<Json<MemberRemovedView>, Problem> {
    let ws = caller.workspace(&slug)?;
    let removed = state.orbit().remove_member(&caller.principal, ws, &user(&who)?)?;
    Ok(Json(MemberRemovedView {
        member: MemberView::from(&removed.member),
        revoked_tokens: removed.revoked_tokens.iter().map(|t| t.to_string()).collect(),
        orphaned: removed.orphaned.iter().map(OwnedItemView::from).collect(),
    }))
}

/// Tokens: the caller's own, or every token for admins.
#[utoipa::path(get, path = "/workspaces/{slug}/tokens", tag = "tokens",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = TokenList), Problems))]
pub(super) async fn tokens(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
) -> Result<Json<TokenList>, Problem> {
    let ws = caller.workspace(&slug)?;
    let list = state.orbit().team().tokens(&caller.principal, ws)?;
    Ok(Json(TokenList { tokens: list.iter().map(TokenView::from).collect() }))
}

/// Issues a token for the caller's own member, or for `user` (the text is
/// in the response, once).
#[utoipa::path(post, path = "/workspaces/{slug}/tokens", tag = "tokens",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    request_body = NewToken,
    responses((status = 201, body = IssuedTokenView), Problems))]
pub(super) async fn issue_token(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
    Body(body): Body<NewToken>,
) -> Result<(StatusCode, Json<IssuedTokenView>), Problem> {
    let ws = caller.workspace(&slug)?;
    let req = TokenRequest {
        user: match body.user.as_deref() {
            Some(u) => user(u)?,
            None => caller.token.user.clone(),
        },
        role: body.role.as_deref().map(role).transpose()?,
        agent: body
            .agent
            .as_deref()
            .map(AgentName::new)
            .transpose()
            .map_err(|e| Problem::new("invalid-input", format!("agent: {e}")))?,
        name: body.name,
        expires_in_ms: body
            .expires_in
            .as_deref()
            .map(parse_duration_ms)
            .transpose()
            .map_err(|e| Problem::new("invalid-input", format!("expires_in: {e}")))?,
    };
    let issued = state.orbit().team().issue_token(&caller.principal, ws, req)?;
    let view = IssuedTokenView { token: issued.secret.expose().to_owned(), record: TokenView::from(&issued.record) };
    Ok((StatusCode::CREATED, Json(view)))
}

/// Revokes a token (one's own, or for admins any member's). Its open
/// sessions fail their next message and its running runs are cancelled.
#[utoipa::path(delete, path = "/workspaces/{slug}/tokens/{id}", tag = "tokens",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
           ("id" = String, Path, description = "The token's id", pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses((status = 200, body = TokenView), Problems))]
pub(super) async fn revoke_token(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<TokenView>, Problem> {
    let ws = caller.workspace(&slug)?;
    let id: TokenId = id.parse().map_err(|_| Problem::new("not-found", format!("token {id} not found")))?;
    let rec = state.orbit().revoke_token(&caller.principal, ws, id)?;
    Ok(Json(TokenView::from(&rec)))
}

/// Notifications for admins (removed members, orphaned items).
#[utoipa::path(get, path = "/workspaces/{slug}/notifications", tag = "audit",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = NotificationList), Problems))]
pub(super) async fn notifications(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
) -> Result<Json<NotificationList>, Problem> {
    let ws = caller.workspace(&slug)?;
    let list = state.orbit().team().notifications(&caller.principal, ws)?;
    Ok(Json(NotificationList { notifications: list.iter().map(NotificationView::from).collect() }))
}

/// A page of the audit trail, newest first (admins).
#[utoipa::path(get, path = "/workspaces/{slug}/audit", tag = "audit",
    params(("slug" = String, Path, description = "The workspace's slug", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"), AuditFilter),
    responses((status = 200, body = AuditPageView), Problems))]
pub(super) async fn audit(
    caller: ApiCaller,
    State(state): State<ApiState>,
    Path(slug): Path<String>,
    Params(f): Params<AuditFilter>,
) -> Result<Json<AuditPageView>, Problem> {
    let ws = caller.workspace(&slug)?;
    caller.principal.check(Action::ViewAudit, &Target::default())?;
    let limit = f.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(Problem::new("invalid-input", "limit must be 1 to 1000"));
    }
    let q = AuditQuery {
        user: f.user.as_deref().map(user).transpose()?,
        server: f.server,
        tool: f.tool,
        outcome: f.outcome,
        since_ms: non_negative(f.since_ms, "since_ms")?,
        until_ms: non_negative(f.until_ms, "until_ms")?,
        before: f
            .cursor
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| Problem::new("invalid-input", "cursor is not an audit event id"))?,
        limit,
        ..AuditQuery::new(ws.clone())
    };
    let page = state.orbit().team().query(&q)?;
    Ok(Json(AuditPageView {
        events: page.events.iter().map(AuditEventView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}
