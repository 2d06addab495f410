//! The one permission table: which [`Role`] may take which [`Action`].
//!
//! Every path (the CLI, the MCP server, the primitives, later the HTTP API
//! and the dashboard) asks [`Principal::check`](crate::Principal::check) or
//! [`decide`], which read [`PERMISSIONS`]; nothing else compares roles. The
//! table is data, each row with its reason, so it can be read, printed and
//! tested cell by cell.

use std::fmt;

use serde::Serialize;

use crate::{Role, UserId};

/// Something a principal may ask to do in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Action {
    /// See the workspace's servers, tools, jobs, members and credential
    /// metadata.
    ViewWorkspace,
    /// See runs and the tool calls made in them.
    ViewRuns,
    /// Run a component or invoke a job (a read-only principal's run is
    /// read-only on every primitive).
    RunComponent,
    /// Cancel a run while it executes (one's own, or for admins anyone's).
    CancelRun,
    /// Enqueue a job.
    EnqueueJob,
    /// Call an MCP tool of one of the workspace's servers.
    CallTool,
    /// Write from a run: storage puts and deletes, cache sets, deletes and
    /// increments, SQL statements that modify the database.
    WriteData,
    /// Send a `fetch` (or `wasi:http`) request with a method other than
    /// GET or HEAD.
    FetchUnsafeMethod,
    /// Install or enable an MCP server, register a job, add a credential.
    CreateResource,
    /// Install an MCP server that runs as a command on the host (stdio
    /// transport): it runs with the operator's user and files.
    InstallCommandServer,
    /// Edit or delete a server or job (one's own, or for admins anyone's).
    EditResource,
    /// Delete a credential (one's own, or for admins anyone's).
    DeleteCredential,
    /// Change a credential's value or bindings: only its owner.
    ChangeCredential,
    /// Disable a server.
    DisableServer,
    /// Change the tool policy (allow/deny rules).
    ChangeToolPolicy,
    /// Reassign an orphaned server, job or credential to an active member.
    ReassignResource,
    /// See the audit trail of administrative actions and tool calls.
    ViewAudit,
    /// Add and remove members, change their roles, read notifications.
    ManageMembers,
    /// Issue a token for oneself (or one's agents).
    IssueToken,
    /// List tokens' metadata (one's own, or for admins every token).
    ListTokens,
    /// Revoke a token (one's own, or for admins another member's).
    RevokeToken,
    /// Leave a workspace (remove oneself).
    LeaveWorkspace,
    /// Transfer ownership of the workspace.
    TransferOwnership,
    /// Delete the workspace.
    DeleteWorkspace,
    /// Read a credential's value back: nobody, ever.
    ReadCredentialValue,
}

impl Action {
    /// The action's kebab-case name, as in audit events and errors.
    pub fn as_str(&self) -> &'static str {
        rule(*self).name
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one role may do for one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grant {
    /// Always.
    Yes,
    /// Never.
    No,
    /// Only on what the principal's own user owns or started
    /// ([`Target::owner`] must be that user).
    OwnOnly,
    /// On anyone but an owner: the target's current role and the role it
    /// is given must both be below [`Role::Owner`].
    NotOwners,
    /// On what the principal's own user owns, or else on a member whose
    /// current role, and the role given, are both below the principal's own
    /// (an admin on members and read-only members; an owner on anyone but
    /// an owner).
    OwnOrBelow,
    /// Only the operator on the host (the local CLI, an embedding program):
    /// never a principal that authenticated with a token, whatever its role.
    OperatorOnly,
    /// Only tools annotated `readOnlyHint: true` ([`Target::tool_read_only`]),
    /// unless the workspace policy opens more to read-only principals
    /// ([`Target::policy_opens_to_read_only`]).
    ReadOnlyTools,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rule {
    /// The action.
    pub action: Action,
    /// Its kebab-case name.
    pub name: &'static str,
    /// What `read-only`, `member`, `admin` and `owner` may do, in that order.
    pub grants: [Grant; 4],
    /// Why the row is what it is.
    pub why: &'static str,
}

use Grant::{No, NotOwners, OperatorOnly, OwnOnly, OwnOrBelow, ReadOnlyTools, Yes};

/// The permission table. Columns: read-only, member, admin, owner.
///
/// Beyond this table, two invariants hold in the
/// [`TeamStore`](crate::TeamStore): a token's role is never above its
/// member's, and the last owner can neither leave, be removed nor be
/// demoted.
#[rustfmt::skip]
pub const PERMISSIONS: &[Rule] = &[
    Rule { action: Action::ViewWorkspace, name: "view-workspace", grants: [Yes, Yes, Yes, Yes],
        why: "everyone in a workspace sees what it offers; credential values are never part of it" },
    Rule { action: Action::ViewRuns, name: "view-runs", grants: [OwnOnly, Yes, Yes, Yes],
        why: "a read-only member sees only the runs it started; members see all, with who started them" },
    Rule { action: Action::RunComponent, name: "run-component", grants: [Yes, Yes, Yes, Yes],
        why: "running code is what a workspace is for; a read-only principal's run cannot write" },
    Rule { action: Action::CancelRun, name: "cancel-run", grants: [OwnOnly, OwnOnly, Yes, Yes],
        why: "everyone stops its own runs; admins stop anyone's, e.g. a runaway agent's" },
    Rule { action: Action::EnqueueJob, name: "enqueue-job", grants: [No, Yes, Yes, Yes],
        why: "a queued job runs later with the workspace's data: a write" },
    Rule { action: Action::CallTool, name: "call-tool", grants: [ReadOnlyTools, Yes, Yes, Yes],
        why: "read-only members call only tools that say they change nothing; the tool policy applies to everyone" },
    Rule { action: Action::WriteData, name: "write-data", grants: [No, Yes, Yes, Yes],
        why: "read-only means read-only on storage, cache and db" },
    Rule { action: Action::FetchUnsafeMethod, name: "fetch-unsafe-method", grants: [No, Yes, Yes, Yes],
        why: "only GET and HEAD are safe methods (RFC 9110 section 9.2.1); others may change the world outside" },
    Rule { action: Action::CreateResource, name: "create-resource", grants: [No, Yes, Yes, Yes],
        why: "members bring their own servers, jobs and credentials; the workspace owns them" },
    Rule { action: Action::InstallCommandServer, name: "install-command-server", grants: [No, No, No, OperatorOnly],
        why: "a stdio server is a command run as the host user, with its files (the master key among them): only the operator installs one" },
    Rule { action: Action::EditResource, name: "edit-resource", grants: [No, OwnOnly, Yes, Yes],
        why: "a member edits what it added; admins edit anything" },
    Rule { action: Action::DeleteCredential, name: "delete-credential", grants: [No, OwnOnly, Yes, Yes],
        why: "a member disconnects its own credentials; admins disconnect anyone's" },
    Rule { action: Action::ChangeCredential, name: "change-credential", grants: [No, OwnOnly, OwnOnly, OwnOnly],
        why: "a credential's value and bindings are its owner's alone; admins reassign an orphaned one instead" },
    Rule { action: Action::DisableServer, name: "disable-server", grants: [No, No, Yes, Yes],
        why: "disabling a server takes it from everyone" },
    Rule { action: Action::ChangeToolPolicy, name: "change-tool-policy", grants: [No, No, Yes, Yes],
        why: "the tool policy binds everyone" },
    Rule { action: Action::ReassignResource, name: "reassign-resource", grants: [No, No, Yes, Yes],
        why: "an orphaned item needs an active owner, chosen by an admin" },
    Rule { action: Action::ViewAudit, name: "view-audit", grants: [No, No, Yes, Yes],
        why: "the audit trail shows everyone's actions" },
    Rule { action: Action::ManageMembers, name: "manage-members", grants: [No, No, NotOwners, Yes],
        why: "admins manage members, but never an owner nor make one" },
    Rule { action: Action::IssueToken, name: "issue-token", grants: [OwnOnly, OwnOnly, OwnOrBelow, OwnOrBelow],
        why: "a token acts as its member, so members issue only their own; admins and owners also issue the token of a member below them, since an invited member has no other way to sign in (never a peer's: acting as a peer would reach what is theirs alone; the token records who issued it and its role is never above the member's); the operator on the host issues any" },
    Rule { action: Action::ListTokens, name: "list-tokens", grants: [OwnOnly, OwnOnly, Yes, Yes],
        why: "a member lists its own tokens; admins list every token's metadata" },
    Rule { action: Action::RevokeToken, name: "revoke-token", grants: [OwnOnly, OwnOnly, NotOwners, Yes],
        why: "everyone revokes its own tokens; admins revoke any member's but an owner's" },
    Rule { action: Action::LeaveWorkspace, name: "leave-workspace", grants: [OwnOnly, OwnOnly, OwnOnly, OwnOnly],
        why: "anyone may leave; the last owner may not (a store invariant)" },
    Rule { action: Action::TransferOwnership, name: "transfer-ownership", grants: [No, No, No, Yes],
        why: "ownership is the owner's to give" },
    Rule { action: Action::DeleteWorkspace, name: "delete-workspace", grants: [No, No, No, Yes],
        why: "deleting a workspace destroys everyone's data" },
    Rule { action: Action::ReadCredentialValue, name: "read-credential-value", grants: [No, No, No, No],
        why: "a credential's value goes only into requests, by the host; nobody reads it back" },
];

/// Whether the table gives `role` `action` in any case (a `Yes` or a
/// conditional grant): what a front end offers that role. Whether it is
/// allowed on a given target is still [`decide`]'s answer, and the API's.
pub fn offered(role: Role, action: Action) -> bool {
    !matches!(rule(action).grants[role.index()], Grant::No | Grant::OperatorOnly)
}

/// Every action, in table order.
pub fn actions() -> impl Iterator<Item = Action> {
    PERMISSIONS.iter().map(|r| r.action)
}

/// The row of `action`.
pub fn rule(action: Action) -> &'static Rule {
    PERMISSIONS.iter().find(|r| r.action == action).expect("every Action has a row: tested")
}

/// What an action is taken on, for the grants that depend on it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    /// The user who owns or started the target (a run, token, server, job
    /// or credential); for member and token actions, the member acted on.
    pub owner: Option<&'a UserId>,
    /// The target member's current role, for member and token actions.
    pub target_role: Option<Role>,
    /// The role being given, for role changes and token issue.
    pub new_role: Option<Role>,
    /// For [`Action::CallTool`]: whether the tool is annotated
    /// `readOnlyHint: true`.
    pub tool_read_only: Option<bool>,
    /// For [`Action::CallTool`]: the workspace policy opens this tool to
    /// read-only principals even without the annotation.
    pub policy_opens_to_read_only: bool,
}

impl<'a> Target<'a> {
    /// A target owned (or started) by `user`.
    pub fn owned_by(user: &'a UserId) -> Self {
        Self { owner: Some(user), ..Self::default() }
    }

    /// A member target: `user`, currently `role`.
    pub fn member(user: &'a UserId, role: Role) -> Self {
        Self { owner: Some(user), target_role: Some(role), ..Self::default() }
    }

    /// The same target, being given `role`.
    pub fn giving(mut self, role: Role) -> Self {
        self.new_role = Some(role);
        self
    }

    /// A tool, annotated `readOnlyHint: true` or not, and opened to
    /// read-only principals by policy or not.
    pub fn tool(read_only_hint: bool, policy_opens_to_read_only: bool) -> Self {
        Self { tool_read_only: Some(read_only_hint), policy_opens_to_read_only, ..Self::default() }
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permission denied: role {role} may not {action}{}", if let Some(r) = .reason { format!(" ({r})") } else { String::new() })]
pub struct Denied {
    /// The refused action.
    pub action: Action,
    /// The role that asked.
    pub role: Role,
    /// Which condition failed, when the grant was conditional.
    pub reason: Option<&'static str>,
}

/// Decides whether `role`, acting as `me` (`None` for a principal that is
/// no workspace user, such as the local operator), may take `action` on
/// `target`.
///
/// # Errors
/// [`Denied`] when the table says no, or a conditional grant's condition
/// does not hold on `target`.
pub fn decide(role: Role, me: Option<&UserId>, action: Action, target: &Target<'_>) -> Result<(), Denied> {
    let grant = rule(action).grants[role.index()];
    let deny = |reason: Option<&'static str>| Err(Denied { action, role, reason });
    match grant {
        Yes => Ok(()),
        No => deny(None),
        OwnOnly => match (me, target.owner) {
            (Some(me), Some(owner)) if me == owner => Ok(()),
            _ => deny(Some("only on one's own")),
        },
        OwnOrBelow if me.is_some() && me == target.owner => Ok(()),
        OwnOrBelow => {
            let below = |r: Option<Role>| r.is_some_and(|r| r.index() < role.index());
            if below(target.target_role) && (target.new_role.is_none() || below(target.new_role)) {
                Ok(())
            } else {
                deny(Some("only on one's own, or on a member below one's role"))
            }
        }
        NotOwners => {
            if target.target_role == Some(Role::Owner) || target.new_role == Some(Role::Owner) {
                deny(Some("never an owner"))
            } else {
                Ok(())
            }
        }
        // `Principal::check` lets the operator through; a user never is.
        OperatorOnly => deny(Some("only the operator on the host")),
        ReadOnlyTools => {
            if target.tool_read_only == Some(true) || target.policy_opens_to_read_only {
                Ok(())
            } else {
                deny(Some("only tools annotated readOnlyHint"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_exactly_one_row_and_a_unique_name() {
        let mut names = std::collections::HashSet::new();
        for r in PERMISSIONS {
            assert!(names.insert(r.name), "duplicate name {}", r.name);
            assert_eq!(PERMISSIONS.iter().filter(|x| x.action == r.action).count(), 1);
            assert_eq!(serde_json::to_value(r.action).unwrap(), r.name);
            assert!(!r.why.is_empty());
        }
    }
}
