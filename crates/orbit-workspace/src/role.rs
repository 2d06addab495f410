//! The four roles a member (or a token) holds in a workspace.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A role in a workspace, from least to most privileged.
///
/// Roles are ordered: `ReadOnly < Member < Admin < Owner`. What each may do
/// is decided by the [`permission`](crate::permission) table, never by
/// comparing roles at the call site; the order is used only for "a token's
/// role is no higher than its member's".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Sees the workspace and its own runs; runs components read-only.
    ReadOnly,
    /// Uses the workspace: runs, jobs, tools, and adds its own servers,
    /// jobs and credentials.
    Member,
    /// Administers the workspace: members (never an owner), others'
    /// resources, tool policy, the audit trail.
    Admin,
    /// Everything an admin may, plus ownership transfer and deletion.
    Owner,
}

/// The text was not one of `read-only`, `member`, `admin`, `owner`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected read-only, member, admin or owner")]
pub struct RoleError(pub String);

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 4] = [Role::ReadOnly, Role::Member, Role::Admin, Role::Owner];

    /// The role's name: `read-only`, `member`, `admin` or `owner`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// This role's column in [`PERMISSIONS`](crate::PERMISSIONS).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = RoleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| RoleError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_is_privilege() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        assert!(Role::ReadOnly < Role::Member && Role::Member < Role::Admin && Role::Admin < Role::Owner);
        assert_eq!("root".parse::<Role>(), Err(RoleError("root".into())));
    }
}
