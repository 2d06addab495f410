//! Who acts: a member through a token, an agent through a token issued on
//! a member's behalf, or the local operator.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::permission::{self, Action, Denied, Target};
use crate::{AgentName, Role, UserId};

/// A token's public id (a UUID v7): safe to show, log and audit; it cannot
/// be used to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenId(pub uuid::Uuid);

impl TokenId {
    /// A new, time-ordered token id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl Default for TokenId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for TokenId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.parse()?))
    }
}

/// Who a [`Principal`] is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Subject {
    /// A workspace member (acting itself, or through an agent's token).
    User {
        /// The member's handle.
        user: UserId,
    },
    /// The operator on the host, through the local CLI: whoever can read
    /// the data directory and the master key already holds everything, so
    /// it acts with the owner's permissions, recorded as `local:<os-user>`.
    Local {
        /// The operating-system user name.
        os_user: String,
    },
    /// A program embedding the engine with a tenancy of its own
    /// (`orbit_engine::Invocation` without a principal).
    Embedded,
}

/// The principal of an action or a run: who, through which token, for
/// which agent, with which role. It travels with every run, so every
/// primitive checks it in one place and child runs inherit it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// Who.
    pub subject: Subject,
    /// The token it authenticated with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenId>,
    /// The agent the token was issued to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentName>,
    /// The role it acts with (a token's role, never above its member's).
    pub role: Role,
}

impl Principal {
    /// The local operator (`local:<os-user>`), acting as an owner. The OS
    /// user is `$USER` (or `$LOGNAME`), else the name of this process's uid
    /// in `/etc/passwd`, else `uid-<n>`, else `unknown`.
    pub fn local_operator() -> Self {
        let ok = |u: &String| !u.is_empty() && u.len() <= 64 && !u.contains(char::is_control);
        let os_user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(ok)
            .or_else(|| os_user_of_process().filter(ok))
            .unwrap_or_else(|| "unknown".to_owned());
        Self { subject: Subject::Local { os_user }, token: None, agent: None, role: Role::Owner }
    }

    /// A program embedding the engine, which decides tenancy itself: acts
    /// with the owner's permissions.
    pub fn embedded() -> Self {
        Self { subject: Subject::Embedded, token: None, agent: None, role: Role::Owner }
    }

    /// A member acting with `role` and no token (for tests and host-side
    /// callers that authenticated the user themselves).
    pub fn user(user: UserId, role: Role) -> Self {
        Self { subject: Subject::User { user }, token: None, agent: None, role }
    }

    /// The member's handle, when the principal is a workspace user.
    pub fn user_id(&self) -> Option<&UserId> {
        match &self.subject {
            Subject::User { user } => Some(user),
            _ => None,
        }
    }

    /// Whether the table grants `action` to this principal's role without
    /// condition on a target ([`Grant::Yes`](crate::Grant::Yes)).
    pub fn may(&self, action: Action) -> bool {
        permission::rule(action).grants[self.role.index()] == crate::Grant::Yes
    }

    /// Asks the permission table whether this principal may take `action`
    /// on `target`. The local operator and an embedding program pass the
    /// "only one's own" conditions (they hold the data directory), never a
    /// `No`.
    ///
    /// # Errors
    /// [`Denied`] when it may not.
    pub fn check(&self, action: Action, target: &Target<'_>) -> Result<(), Denied> {
        match self.subject {
            // The operator holds the data directory and the master key: a
            // condition on ownership protects nothing from it. A `No` cell
            // (reading a credential's value) still holds.
            Subject::Local { .. } | Subject::Embedded => {
                if permission::rule(action).grants[self.role.index()] == crate::Grant::OperatorOnly {
                    return Ok(());
                }
                permission::decide(self.role, target.owner, action, target)
            }
            Subject::User { ref user } => permission::decide(self.role, Some(user), action, target),
        }
    }

    /// A short label: `ada`, `ada/agent-x`, `local:root` or `embedded`.
    pub fn label(&self) -> String {
        self.to_string()
    }
}

/// The user name of this process's uid, from `/etc/passwd` (no libc call:
/// the uid is the owner of `/proc/self`).
#[cfg(unix)]
fn os_user_of_process() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    });
    Some(name.unwrap_or_else(|| format!("uid-{uid}")))
}

#[cfg(not(unix))]
fn os_user_of_process() -> Option<String> {
    None
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Subject::User { user } => write!(f, "{user}")?,
            Subject::Local { os_user } => write!(f, "local:{os_user}")?,
            Subject::Embedded => f.write_str("embedded")?,
        }
        if let Some(agent) = &self.agent {
            write!(f, "/{agent}")?;
        }
        Ok(())
    }
}
