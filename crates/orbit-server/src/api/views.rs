//! The API's request and response bodies: each is an OpenAPI schema
//! (utoipa), so these doc comments are what a client reads. Times are ms
//! since the Unix epoch; sizes are bytes; durations are µs or ms as named.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use orbit::orbit_workspace::{AuditEvent, AuditKind, MemberRecord, Notification, OwnedItem, TokenRecord};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiCaller, Problem};

/// A JSON body whose rejection is a problem document (400, or 413 over the
/// route's size cap).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        // An object, not another JSON value that serde would also read as
        // a struct (an array of its fields in order).
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v @ serde_json::Value::Object(_))) => v,
            Ok(_) => return Err(Problem::new("invalid-input", "the body must be a JSON object")),
            Err(e) => return Err(json_problem(&e)),
        };
        serde_json::from_value(value)
            .map(Body)
            .map_err(|e| Problem::new("invalid-input", format!("the body is not valid here: {e}")))
    }
}

fn json_problem(e: &JsonRejection) -> Problem {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return Problem::new("payload-too-large", "the body is over this route's size cap");
    }
    match e {
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new("invalid-input", "the body must be JSON (Content-Type: application/json)")
        }
        _ => Problem::new("invalid-input", format!("the body is not valid here: {}", e.body_text())),
    }
}

/// Deserializes an optional count given as a JSON number with no fraction
/// (`5` or `5.0`, as JSON Schema's `integer` allows).
pub(crate) fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => match (n.as_u64(), n.as_f64()) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(f)) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => Ok(Some(f as u64)),
            _ => Err(D::Error::custom(format!("{n} is not a whole number of at least 0"))),
        },
    }
}

/// A time or count that must not be negative, as `u64`.
pub(crate) fn non_negative(v: Option<i64>, name: &str) -> Result<Option<u64>, Problem> {
    v.map(|v| u64::try_from(v).map_err(|_| Problem::new("invalid-input", format!("{name} must be at least 0"))))
        .transpose()
}

/// Query parameters whose rejection is a problem document (400).
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Params(v)),
            Err(e @ QueryRejection::FailedToDeserializeQueryString(_)) => {
                Err(Problem::new("invalid-input", e.body_text()))
            }
            Err(e) => Err(Problem::new("invalid-input", e.body_text())),
        }
    }
}

/// `GET /me`: who the token is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// The member the token acts for.
    pub user: String,
    /// The agent it was issued to, if any.
    pub agent: Option<String>,
    /// The token's workspace: the only one it may act in.
    pub workspace: String,
    /// The effective role: `read-only`, `member`, `admin` or `owner` (the
    /// token's, capped by the member's current role).
    pub role: String,
    /// The token's id.
    pub token_id: String,
    /// When the token expires, if it does.
    pub expires_at_ms: Option<u64>,
}

impl Me {
    pub(crate) fn of(c: &ApiCaller) -> Self {
        Me {
            user: c.token.user.to_string(),
            agent: c.token.agent.as_ref().map(|a| a.to_string()),
            workspace: c.workspace.to_string(),
            role: c.principal.role.to_string(),
            token_id: c.token.id.to_string(),
            expires_at_ms: c.token.expires_at_ms,
        }
    }
}

/// A workspace.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceView {
    /// Its slug.
    pub slug: String,
    /// Its display name.
    pub name: Option<String>,
    /// When it was created.
    pub created_at_ms: u64,
    /// How many members it has.
    pub members: usize,
    /// The caller's role in it.
    pub your_role: String,
}

/// A member.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    /// The member's handle.
    pub user: String,
    /// A display name.
    pub display_name: Option<String>,
    /// `read-only`, `member`, `admin` or `owner`.
    pub role: String,
    /// When the member was added.
    pub added_at_ms: u64,
    /// Who added the member.
    pub added_by: String,
}

impl From<&MemberRecord> for MemberView {
    fn from(m: &MemberRecord) -> Self {
        Self {
            user: m.user.to_string(),
            display_name: m.display_name.clone(),
            role: m.role.to_string(),
            added_at_ms: m.added_at_ms,
            added_by: m.added_by.clone(),
        }
    }
}

/// A list of members.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberList {
    /// Every member.
    pub members: Vec<MemberView>,
}

/// `POST /members`: invite a member.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// The handle (1 to 63 of `a-z 0-9 _ -`, starting with a letter or digit).
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub user: String,
    /// `read-only`, `member`, `admin` or `owner`.
    #[schema(pattern = "^(read-only|member|admin|owner)$")]
    pub role: String,
    /// A display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// The result of adding a member.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberAddedView {
    /// The new member.
    pub member: MemberView,
    /// `true` when the workspace just became a team workspace (its second
    /// member): everything in it is now shared.
    pub became_team: bool,
}

/// `PATCH /members/{user}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// The new role.
    #[schema(pattern = "^(read-only|member|admin|owner)$")]
    pub role: String,
}

/// An item a removed member owned, now orphaned.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OwnedItemView {
    /// `credential`, `server` or `job`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Where it may be sent or runs (never a secret).
    pub hosts: Vec<String>,
}

impl From<&OwnedItem> for OwnedItemView {
    fn from(i: &OwnedItem) -> Self {
        let kind = serde_json::to_value(i.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        Self { kind, name: i.name.clone(), hosts: i.hosts.clone() }
    }
}

/// The result of removing a member.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberRemovedView {
    /// The removed member.
    pub member: MemberView,
    /// The ids of the tokens revoked with the removal.
    pub revoked_tokens: Vec<String>,
    /// What the member owned, now orphaned.
    pub orphaned: Vec<OwnedItemView>,
}

/// A token's metadata (never the token).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: Option<String>,
    /// The member it acts for.
    pub user: String,
    /// The agent it was issued to.
    pub agent: Option<String>,
    /// Its role.
    pub role: String,
    /// Who issued it.
    pub created_by: String,
    /// When it was issued.
    pub created_at_ms: u64,
    /// When it expires.
    pub expires_at_ms: Option<u64>,
    /// When it was last used (to the minute).
    pub last_used_ms: Option<u64>,
    /// When it was revoked.
    pub revoked_at_ms: Option<u64>,
}

impl From<&TokenRecord> for TokenView {
    fn from(t: &TokenRecord) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name.clone(),
            user: t.user.to_string(),
            agent: t.agent.as_ref().map(|a| a.to_string()),
            role: t.role.to_string(),
            created_by: t.created_by.clone(),
            created_at_ms: t.created_at_ms,
            expires_at_ms: t.expires_at_ms,
            last_used_ms: t.last_used_ms,
            revoked_at_ms: t.revoked_at_ms,
        }
    }
}

/// A list of tokens.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// The tokens the caller may see: its own, or every one for admins.
    pub tokens: Vec<TokenView>,
}

/// `POST /tokens`: issue a token for oneself, or (admins) for another
/// member.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// The member it is for; default the caller. Issuing one for another
    /// member takes the permission to manage that member's tokens.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub user: Option<String>,
    /// Its role; default the caller's member role, never above it.
    #[serde(default)]
    #[schema(pattern = "^(read-only|member|admin|owner)$")]
    pub role: Option<String>,
    /// The agent it is for (1 to 63 of `a-z 0-9 _ -`, starting with a
    /// letter or digit).
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub agent: Option<String>,
    /// A name for it.
    #[serde(default)]
    pub name: Option<String>,
    /// Lifetime, such as `14d`, `12h` or `30m` (`s`, `m`, `h`, `d`, `w`);
    /// default never expires.
    #[serde(default)]
    #[schema(pattern = "^[1-9][0-9]{0,5}[smhdw]$")]
    pub expires_in: Option<String>,
}

/// A new token: the only time its text is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedTokenView {
    /// The token text (`orb_…`): store it now, it is never shown again.
    pub token: String,
    /// Its metadata.
    pub record: TokenView,
}

/// A notification for admins.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    /// Its id.
    pub id: String,
    /// When.
    pub at_ms: u64,
    /// What kind, such as `member-removed`.
    pub kind: String,
    /// One line.
    pub message: String,
    /// The items concerned.
    pub items: Vec<OwnedItemView>,
}

impl From<&Notification> for NotificationView {
    fn from(n: &Notification) -> Self {
        Self {
            id: n.id.to_string(),
            at_ms: n.at_ms,
            kind: n.kind.clone(),
            message: n.message.clone(),
            items: n.items.iter().map(OwnedItemView::from).collect(),
        }
    }
}

/// A list of notifications.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationList {
    /// Newest first.
    pub notifications: Vec<NotificationView>,
}

/// Filters of `GET /audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only this member's events.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub user: Option<String>,
    /// Only tool calls to this server.
    pub server: Option<String>,
    /// Only calls of this tool.
    pub tool: Option<String>,
    /// Only this outcome (`ok`, `tool-error`, `permission-denied`, ...).
    pub outcome: Option<String>,
    /// Only events at or after this time (ms since the Unix epoch).
    #[param(minimum = 0)]
    pub since_ms: Option<i64>,
    /// Only events before this time.
    #[param(minimum = 0)]
    pub until_ms: Option<i64>,
    /// The previous page's `next_cursor`.
    #[param(pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub cursor: Option<String>,
    /// Page size, 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// One audit event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEventView {
    /// Its id (time-ordered).
    pub id: String,
    /// When.
    pub at_ms: u64,
    /// Who acted: a member handle, `local:<os user>` or `embedded`.
    pub actor: String,
    /// The member, when a member acted.
    pub user: Option<String>,
    /// The token used.
    pub token_id: Option<String>,
    /// The agent.
    pub agent: Option<String>,
    /// `tool-call`, `credential-use` or `admin`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Tool calls: the server.
    pub server: Option<String>,
    /// Tool calls: the tool.
    pub tool: Option<String>,
    /// Tool calls: latency in µs.
    pub latency_us: Option<u64>,
    /// Credential uses: the secret's name (never its value).
    pub secret: Option<String>,
    /// Credential uses: `scheme://host:port`.
    pub origin: Option<String>,
    /// Admin actions: what was done (`member.add`, `token.revoke`, ...).
    pub action: Option<String>,
    /// Admin actions: to what.
    pub target: Option<String>,
    /// Admin actions: a short, secret-free detail.
    pub detail: Option<String>,
    /// The run it came from.
    pub run_id: Option<String>,
    /// `ok`, `tool-error` or an error code.
    pub outcome: String,
}

impl From<&AuditEvent> for AuditEventView {
    fn from(e: &AuditEvent) -> Self {
        let mut v = AuditEventView {
            id: e.id.to_string(),
            at_ms: e.at_ms,
            actor: e.actor.label.clone(),
            user: e.actor.user.as_ref().map(|u| u.to_string()),
            token_id: e.actor.token.map(|t| t.to_string()),
            agent: e.actor.agent.as_ref().map(|a| a.to_string()),
            kind: String::new(),
            server: None,
            tool: None,
            latency_us: None,
            secret: None,
            origin: None,
            action: None,
            target: None,
            detail: None,
            run_id: None,
            outcome: e.outcome().to_owned(),
        };
        match &e.kind {
            AuditKind::ToolCall { server, tool, latency_us, run_id, .. } => {
                v.kind = "tool-call".into();
                (v.server, v.tool, v.latency_us, v.run_id) =
                    (Some(server.clone()), Some(tool.clone()), Some(*latency_us), run_id.clone());
            }
            AuditKind::CredentialUse { secret, run_id, origin } => {
                v.kind = "credential-use".into();
                (v.secret, v.origin, v.run_id) = (Some(secret.clone()), Some(origin.clone()), run_id.clone());
            }
            AuditKind::Admin { action, target, detail, .. } => {
                v.kind = "admin".into();
                (v.action, v.target, v.detail) = (Some(action.clone()), Some(target.clone()), detail.clone());
            }
            _ => v.kind = "other".into(),
        }
        v
    }
}

/// A page of audit events.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPageView {
    /// Newest first.
    pub events: Vec<AuditEventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}
