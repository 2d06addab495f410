//! The audit trail: an append-only record, per workspace, of every MCP tool
//! call, every administrative action and every use of a credential. It
//! never holds a tool's arguments or results, a credential's value or a
//! token.

use serde::{Deserialize, Serialize};

use crate::{AgentName, Principal, Subject, TokenId, UserId, WorkspaceId};

/// Default retention of audit events: 90 days, in ms.
pub const DEFAULT_AUDIT_RETENTION_MS: u64 = 90 * 86_400_000;

/// Most events one [`AuditQuery`] page returns.
pub const MAX_AUDIT_PAGE: usize = 1_000;

/// Who acted, as recorded on an event: a flattened [`Principal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `ada`, `local:root` or `embedded`.
    pub label: String,
    /// The member's handle, when a member acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    /// The token used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenId>,
    /// The agent the token was issued to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentName>,
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        let label = match &p.subject {
            Subject::User { user } => user.to_string(),
            Subject::Local { os_user } => format!("local:{os_user}"),
            Subject::Embedded => "embedded".to_owned(),
        };
        Self { label, user: p.user_id().cloned(), token: p.token, agent: p.agent.clone() }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AuditKind {
    /// An MCP tool call, from a guest's `tools.call` or through a gateway.
    ToolCall {
        /// The installed server's name.
        server: String,
        /// The tool's name.
        tool: String,
        /// Time from the call to its result, in µs.
        latency_us: u64,
        /// `ok`, `tool-error` (the tool reported an error), or the error
        /// code (`permission-denied`, `unavailable`, ...).
        outcome: String,
        /// The run it came from, when it came from a run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
    },
    /// A credential was placed into an outbound request by the host.
    CredentialUse {
        /// The secret's name (never its value).
        secret: String,
        /// The run it came from, when it came from a run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        /// Where it was sent: `scheme://host:port`.
        origin: String,
    },
    /// An administrative action: members, roles, tokens, credentials,
    /// servers, policy, jobs, the workspace itself.
    Admin {
        /// What was done, e.g. `member.add`, `token.revoke`,
        /// `credential.orphaned`.
        action: String,
        /// What it was done to (a user, token id, secret or server name).
        target: String,
        /// A short, secret-free detail (a role, a host list).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// `ok`, or the refusal (`permission-denied`, `not-found`, ...).
        outcome: String,
    },
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Time-ordered id (UUID v7): the cursor of [`AuditQuery`].
    pub id: uuid::Uuid,
    /// When, in ms since the Unix epoch.
    pub at_ms: u64,
    /// The workspace it happened in.
    pub workspace: WorkspaceId,
    /// Who acted.
    pub actor: Actor,
    /// What happened.
    #[serde(flatten)]
    pub kind: AuditKind,
}

impl AuditEvent {
    /// A new event by `actor` in `workspace` at `at_ms`.
    pub fn new(workspace: WorkspaceId, actor: &Principal, at_ms: u64, kind: AuditKind) -> Self {
        Self { id: uuid::Uuid::now_v7(), at_ms, workspace, actor: actor.into(), kind }
    }

    /// An administrative event.
    pub fn admin(
        workspace: WorkspaceId,
        actor: &Principal,
        at_ms: u64,
        action: &str,
        target: impl Into<String>,
        detail: Option<String>,
        outcome: &str,
    ) -> Self {
        Self::new(
            workspace,
            actor,
            at_ms,
            AuditKind::Admin { action: action.to_owned(), target: target.into(), detail, outcome: outcome.to_owned() },
        )
    }

    fn server(&self) -> Option<&str> {
        match &self.kind {
            AuditKind::ToolCall { server, .. } => Some(server),
            _ => None,
        }
    }

    fn tool(&self) -> Option<&str> {
        match &self.kind {
            AuditKind::ToolCall { tool, .. } => Some(tool),
            _ => None,
        }
    }

    /// The event's outcome: `ok`, `tool-error` or an error code. A
    /// credential use is always `ok`.
    pub fn outcome(&self) -> &str {
        match &self.kind {
            AuditKind::ToolCall { outcome, .. } | AuditKind::Admin { outcome, .. } => outcome,
            AuditKind::CredentialUse { .. } => "ok",
        }
    }
}

/// A filtered page of a workspace's audit trail, newest first.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// Only events by this member.
    pub user: Option<UserId>,
    /// Only tool calls to this server.
    pub server: Option<String>,
    /// Only tool calls of this tool.
    pub tool: Option<String>,
    /// Only events with this outcome.
    pub outcome: Option<String>,
    /// Only events at or after this time (ms since the Unix epoch).
    pub since_ms: Option<u64>,
    /// Only events before this time (ms since the Unix epoch).
    pub until_ms: Option<u64>,
    /// Continue after this event id (the previous page's `next_cursor`).
    pub before: Option<uuid::Uuid>,
    /// Page size, capped at [`MAX_AUDIT_PAGE`].
    pub limit: usize,
}

impl AuditQuery {
    /// The newest 100 events of `workspace`, unfiltered.
    pub fn new(workspace: WorkspaceId) -> Self {
        Self {
            workspace,
            user: None,
            server: None,
            tool: None,
            outcome: None,
            since_ms: None,
            until_ms: None,
            before: None,
            limit: 100,
        }
    }

    /// Whether `event` passes the filters (not the cursor).
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.user.as_ref().is_none_or(|u| event.actor.user.as_ref() == Some(u))
            && self.server.as_deref().is_none_or(|s| event.server() == Some(s))
            && self.tool.as_deref().is_none_or(|t| event.tool() == Some(t))
            && self.outcome.as_deref().is_none_or(|o| event.outcome() == o)
            && self.since_ms.is_none_or(|s| event.at_ms >= s)
            && self.until_ms.is_none_or(|u| event.at_ms < u)
    }
}

/// One page of audit events, newest first.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Pass as [`AuditQuery::before`] for the next page; `None` at the end.
    pub next_cursor: Option<uuid::Uuid>,
}

/// Where audit events go: append-only, queryable. Implemented by
/// [`RedbTeamStore`](crate::RedbTeamStore); narrow enough for a PostgreSQL
/// backend.
pub trait AuditLog: Send + Sync + 'static {
    /// Appends `event` durably.
    ///
    /// # Errors
    /// [`TeamError::Storage`](crate::TeamError::Storage) when it cannot be
    /// written.
    fn append(&self, event: AuditEvent) -> Result<(), crate::TeamError>;

    /// A page of events matching `query`, newest first.
    ///
    /// # Errors
    /// [`TeamError::Storage`](crate::TeamError::Storage) when the store
    /// cannot be read.
    fn query(&self, query: &AuditQuery) -> Result<AuditPage, crate::TeamError>;

    /// Deletes events older than `before_ms`; returns how many.
    ///
    /// # Errors
    /// [`TeamError::Storage`](crate::TeamError::Storage).
    fn prune(&self, before_ms: u64) -> Result<u64, crate::TeamError>;
}
