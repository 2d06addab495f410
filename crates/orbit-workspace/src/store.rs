//! The team store: workspaces, members, tokens and notifications, behind a
//! narrow trait so a PostgreSQL backend can implement it later.
//!
//! Every administrative method takes the acting [`Principal`], asks the
//! [`permission`](crate::permission) table, and writes its audit event in
//! the same transaction as the change: an acknowledged change is durable
//! with its audit event, a refused one changes nothing and leaves an audit
//! event saying so (when the workspace exists).

use serde::{Deserialize, Serialize};

use crate::audit::AuditLog;
use crate::permission::Denied;
use crate::token::TokenSecret;
use crate::{AgentName, Principal, Role, TokenId, UserId, WorkspaceId};

/// A workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRecord {
    /// Its slug.
    pub id: WorkspaceId,
    /// An optional display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was created, in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Who created it (a principal label such as `local:root`).
    pub created_by: String,
}

/// A member of a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The member's handle.
    pub user: UserId,
    /// The user's display name, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The member's role.
    pub role: Role,
    /// When the member was added, in ms since the Unix epoch.
    pub added_at_ms: u64,
    /// Who added the member (a principal label).
    pub added_by: String,
}

/// The result of adding a member.
#[derive(Debug, Clone, Serialize)]
pub struct MemberAdded {
    /// The new member.
    pub member: MemberRecord,
    /// `true` when this was the second member: the workspace went from
    /// personal to team, and everything in it is now shared.
    pub became_team: bool,
}

/// The result of removing a member.
#[derive(Debug, Clone, Serialize)]
pub struct MemberRemoved {
    /// The removed member.
    pub member: MemberRecord,
    /// The tokens (theirs and their agents') revoked with the removal.
    pub revoked_tokens: Vec<TokenId>,
    /// The items they owned, now orphaned.
    pub orphaned: Vec<OwnedItem>,
}

/// What kind of item a member can own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    /// A vault secret.
    Credential,
    /// An installed MCP server.
    Server,
    /// A registered job.
    Job,
}

/// An item owned by a member: named in notifications when it is orphaned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedItem {
    /// What it is.
    pub kind: ItemKind,
    /// Its name.
    pub name: String,
    /// Where it may be sent or where it runs (a credential's hosts, a
    /// server's URL or command name); never a secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// A token's metadata. The token itself is never stored, only its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token's public id.
    pub id: TokenId,
    /// A name chosen by its creator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The one workspace it acts in.
    pub workspace: WorkspaceId,
    /// The member it acts for.
    pub user: UserId,
    /// The agent it was issued to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentName>,
    /// Its role; the member's current role caps it at each use.
    pub role: Role,
    /// Who issued it (a principal label).
    pub created_by: String,
    /// When it was issued, in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// When it stops working, in ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// When it was last used (updated at most once a minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ms: Option<u64>,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The member it acts for.
    pub user: UserId,
    /// Its role; `None` is the member's role. Never above it.
    pub role: Option<Role>,
    /// The agent it is for, if any.
    pub agent: Option<AgentName>,
    /// A name for it.
    pub name: Option<String>,
    /// Lifetime in ms; `None` never expires.
    pub expires_in_ms: Option<u64>,
}

/// An issued token: its metadata and, once, its text.
#[derive(Debug)]
pub struct IssuedToken {
    /// The metadata, as stored.
    pub record: TokenRecord,
    /// The token text: show it once, then drop it.
    pub secret: TokenSecret,
}

/// A successful authentication.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The token's workspace: the only one it may act in.
    pub workspace: WorkspaceId,
    /// Who acts, with the effective role (the token's, capped by the
    /// member's current role).
    pub principal: Principal,
    /// The token's metadata.
    pub token: TokenRecord,
}

/// A notification for a workspace's admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Time-ordered id.
    pub id: uuid::Uuid,
    /// When, in ms since the Unix epoch.
    pub at_ms: u64,
    /// What kind, e.g. `member-removed`.
    pub kind: String,
    /// A one-line message.
    pub message: String,
    /// The items concerned (for a removed member: what was orphaned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<OwnedItem>,
}

/// Why a presented token was refused. Front ends should answer all of
/// these alike to a client (401); the variant is for the operator's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No token was presented.
    #[error("no token was presented")]
    Missing,
    /// The text is not shaped like an Orbit token.
    #[error("the token is malformed")]
    Malformed,
    /// No such token exists (or its workspace or member is gone).
    #[error("the token is unknown")]
    Unknown,
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The token was revoked.
    #[error("the token was revoked")]
    Revoked,
}

/// Errors of the team store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TeamError {
    /// The workspace does not exist (or is not the caller's: one answer
    /// for both).
    #[error("workspace {0} not found")]
    WorkspaceNotFound(WorkspaceId),
    /// `create_workspace` of a slug that exists.
    #[error("workspace {0} already exists")]
    WorkspaceExists(WorkspaceId),
    /// The user is not a member of the workspace.
    #[error("{0} is not a member of this workspace")]
    NotAMember(UserId),
    /// `add_member` of a user who is already a member.
    #[error("{0} is already a member of this workspace")]
    AlreadyMember(UserId),
    /// No token with this id in this workspace.
    #[error("token {0} not found")]
    TokenNotFound(TokenId),
    /// The permission table refused the action.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The change would leave the workspace without an owner.
    #[error("the last owner cannot leave, be removed or be demoted; make another member owner first")]
    LastOwner,
    /// A token was asked with a role above its member's.
    #[error("a token's role ({requested}) cannot be above its member's role ({member})")]
    RoleAboveMember {
        /// The role asked for.
        requested: Role,
        /// The member's role.
        member: Role,
    },
    /// A presented token was refused.
    #[error("authentication failed: {0}")]
    Unauthenticated(AuthFailure),
    /// An argument was malformed (a name too long, an expiry out of range).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The store could not be read or written.
    #[error("team store: {0}")]
    Storage(String),
}

impl TeamError {
    /// The stable code of the error, as in audit events and guest errors:
    /// `not-found`, `permission-denied`, `invalid-input`,
    /// `unauthenticated`, `conflict` or `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            TeamError::WorkspaceNotFound(_) | TeamError::NotAMember(_) | TeamError::TokenNotFound(_) => "not-found",
            TeamError::Denied(_) | TeamError::LastOwner | TeamError::RoleAboveMember { .. } => "permission-denied",
            TeamError::WorkspaceExists(_) | TeamError::AlreadyMember(_) => "conflict",
            TeamError::Unauthenticated(_) => "unauthenticated",
            TeamError::InvalidInput(_) => "invalid-input",
            TeamError::Storage(_) => "internal",
        }
    }
}

/// Workspaces, members, tokens and notifications. Every method that
/// changes something takes the acting principal, checks the permission
/// table, and records an audit event with the change.
pub trait TeamStore: AuditLog {
    /// Creates workspace `ws` with `owner` as its only member (an operator
    /// action: the CLI, or an embedding program).
    ///
    /// # Errors
    /// [`TeamError::WorkspaceExists`]; [`TeamError::Storage`].
    fn create_workspace(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        owner: &UserId,
        name: Option<&str>,
    ) -> Result<WorkspaceRecord, TeamError>;

    /// The workspace, if it exists.
    ///
    /// # Errors
    /// [`TeamError::Storage`].
    fn workspace(&self, ws: &WorkspaceId) -> Result<Option<WorkspaceRecord>, TeamError>;

    /// Every workspace (an operator listing).
    ///
    /// # Errors
    /// [`TeamError::Storage`].
    fn workspaces(&self) -> Result<Vec<WorkspaceRecord>, TeamError>;

    /// The workspaces `user` belongs to, with the role there.
    ///
    /// # Errors
    /// [`TeamError::Storage`].
    fn workspaces_of(&self, user: &UserId) -> Result<Vec<(WorkspaceRecord, Role)>, TeamError>;

    /// Deletes the workspace's team records: members, tokens (so every
    /// token stops working at once) and notifications. Its audit trail is
    /// kept until retention prunes it.
    ///
    /// # Errors
    /// [`TeamError::WorkspaceNotFound`]; [`TeamError::Denied`] unless the
    /// table grants [`Action::DeleteWorkspace`](crate::Action::DeleteWorkspace).
    fn delete_workspace(&self, actor: &Principal, ws: &WorkspaceId) -> Result<(), TeamError>;

    /// The workspace's members, by handle.
    ///
    /// # Errors
    /// [`TeamError::WorkspaceNotFound`]; [`TeamError::Storage`].
    fn members(&self, ws: &WorkspaceId) -> Result<Vec<MemberRecord>, TeamError>;

    /// One member, if `user` is one.
    ///
    /// # Errors
    /// [`TeamError::WorkspaceNotFound`]; [`TeamError::Storage`].
    fn member(&self, ws: &WorkspaceId, user: &UserId) -> Result<Option<MemberRecord>, TeamError>;

    /// Adds `user` with `role`. The second member turns a personal
    /// workspace into a team workspace ([`MemberAdded::became_team`]).
    ///
    /// # Errors
    /// [`TeamError::WorkspaceNotFound`]; [`TeamError::AlreadyMember`];
    /// [`TeamError::Denied`] (admins never add an owner).
    fn add_member(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        user: &UserId,
        role: Role,
        display_name: Option<&str>,
    ) -> Result<MemberAdded, TeamError>;

    /// Changes `user`'s role. Giving or taking the owner role is a
    /// transfer of ownership (owners only).
    ///
    /// # Errors
    /// [`TeamError::NotAMember`]; [`TeamError::Denied`];
    /// [`TeamError::LastOwner`] when demoting the last owner.
    fn set_role(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        user: &UserId,
        role: Role,
    ) -> Result<MemberRecord, TeamError>;

    /// Removes `user` (or lets a member leave): revokes all their tokens
    /// and their agents' tokens in the same transaction, and records
    /// `orphaned` (the items they owned, listed by the caller from the
    /// stores that hold them) in a notification for the admins.
    ///
    /// # Errors
    /// [`TeamError::NotAMember`]; [`TeamError::Denied`];
    /// [`TeamError::LastOwner`].
    fn remove_member(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        user: &UserId,
        orphaned: Vec<OwnedItem>,
    ) -> Result<MemberRemoved, TeamError>;

    /// Issues a token; its text is in the result, once.
    ///
    /// # Errors
    /// [`TeamError::NotAMember`]; [`TeamError::Denied`];
    /// [`TeamError::RoleAboveMember`]; [`TeamError::InvalidInput`] for a
    /// name over 200 bytes or an expiry past year 9999.
    fn issue_token(&self, actor: &Principal, ws: &WorkspaceId, req: TokenRequest) -> Result<IssuedToken, TeamError>;

    /// The tokens `actor` may list: its own, or (admins) all, newest first.
    ///
    /// # Errors
    /// [`TeamError::WorkspaceNotFound`]; [`TeamError::Storage`].
    fn tokens(&self, actor: &Principal, ws: &WorkspaceId) -> Result<Vec<TokenRecord>, TeamError>;

    /// Revokes a token. Once this returns, [`authenticate`](Self::authenticate)
    /// refuses it. Revoking a revoked token changes nothing.
    ///
    /// # Errors
    /// [`TeamError::TokenNotFound`] (also for another workspace's token);
    /// [`TeamError::Denied`].
    fn revoke_token(&self, actor: &Principal, ws: &WorkspaceId, id: TokenId) -> Result<TokenRecord, TeamError>;

    /// Checks a presented token: its shape, that it exists (by hash,
    /// compared in constant time), is neither revoked nor expired, and
    /// that its member still belongs to its workspace.
    ///
    /// # Errors
    /// [`TeamError::Unauthenticated`] with the [`AuthFailure`];
    /// [`TeamError::Storage`].
    fn authenticate(&self, token: &str) -> Result<Authenticated, TeamError>;

    /// Whether token `id` of `ws` still acts: it exists in `ws`, is
    /// neither revoked nor expired (at the store's clock), and its member
    /// still belongs to `ws`. A read, no audit event. Asked before work a
    /// token started earlier goes on without it, such as a queued job.
    ///
    /// `Ok(false)` for every way of not being active, including an unknown
    /// token and an unknown workspace.
    ///
    /// # Errors
    /// [`TeamError::Storage`] when the store cannot be read.
    fn token_active(&self, ws: &WorkspaceId, id: TokenId) -> Result<bool, TeamError>;

    /// The workspace's notifications, newest first (admins).
    ///
    /// # Errors
    /// [`TeamError::WorkspaceNotFound`]; [`TeamError::Denied`].
    fn notifications(&self, actor: &Principal, ws: &WorkspaceId) -> Result<Vec<Notification>, TeamError>;

    /// Records an administrative action that changed another store (a
    /// credential, server or job) as an audit event by `actor`.
    ///
    /// # Errors
    /// [`TeamError::Storage`].
    fn record_admin(
        &self,
        actor: &Principal,
        ws: &WorkspaceId,
        action: &str,
        target: &str,
        detail: Option<String>,
        outcome: &str,
    ) -> Result<(), TeamError>;
}
