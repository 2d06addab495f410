//! The workspace: Orbit's tenancy boundary.
//!
//! Every run, blob, cache key, secret, MCP server, member, token and audit
//! event belongs to exactly one workspace, named by a [`WorkspaceId`]. No
//! workspace can see another's data; each primitive keys its data by the
//! run's `WorkspaceId`.
//!
//! This crate holds the tenancy model:
//! - names: [`WorkspaceId`], [`UserId`], [`AgentName`];
//! - [`Role`]s and the one [`permission`] table that decides every action;
//! - the [`Principal`] that acts (a member's token, an agent's token, or
//!   the local operator) and travels with every run;
//! - tokens ([`token`]), the [`TeamStore`] of workspaces, members, tokens
//!   and notifications, and the append-only [`audit`] trail, with
//!   [`RedbTeamStore`] as the embedded default.

pub mod audit;
mod audit_log;
mod clock;
pub mod frame;
mod id;
pub mod in_place;
mod lazy_db;
pub mod permission;
mod principal;
mod read_mostly;
mod redb_store;
mod role;
mod store;
pub mod token;

pub use audit::{Actor, AuditEvent, AuditKind, AuditLog, AuditPage, AuditQuery};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock, parse_duration_ms};
pub use id::{AgentName, DEFAULT_WORKSPACE, MAX_WORKSPACE_LEN, UserId, WorkspaceId, WorkspaceIdError};
pub use lazy_db::{ALREADY_OPEN_WAIT, LazyDatabase};
pub use permission::{Action, Denied, Grant, PERMISSIONS, Rule, Target};
pub use principal::{Principal, Subject, TokenId};
pub use read_mostly::{DatabaseLock, Opened, ReadMostlyDatabase, ReadTxn};
pub use redb_store::RedbTeamStore;
pub use role::{Role, RoleError};
pub use store::{
    AuthFailure, Authenticated, IssuedToken, ItemKind, MemberAdded, MemberRecord, MemberRemoved, Notification,
    OwnedItem, TeamError, TeamStore, TokenRecord, TokenRequest, WorkspaceRecord,
};
pub use token::{TokenHash, TokenSecret};
