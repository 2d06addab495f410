//! The workspace: Orbit's tenancy boundary.
//!
//! Every run, blob, cache key and (later) secret, MCP server, member and
//! token belongs to exactly one workspace, named by a [`WorkspaceId`]. No
//! workspace can see another's data; each primitive keys its data by the
//! run's `WorkspaceId`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The name of a workspace.
///
/// 1 to 63 bytes of lowercase ASCII letters, digits, `-` and `_`, starting
/// with a letter or digit. The shape is safe to use as a directory name and
/// as a key prefix, so no workspace name can alias another's data.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkspaceId(String);

/// The name of the workspace used when none is given.
pub const DEFAULT_WORKSPACE: &str = "default";

/// Maximum length of a workspace name, in bytes.
pub const MAX_WORKSPACE_LEN: usize = 63;

/// Why a workspace name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkspaceIdError {
    /// The name was empty.
    #[error("workspace name is empty")]
    Empty,
    /// The name was longer than [`MAX_WORKSPACE_LEN`] bytes.
    #[error("workspace name is longer than {MAX_WORKSPACE_LEN} bytes")]
    TooLong,
    /// The name held a character outside `[a-z0-9_-]`, or began with `-`/`_`.
    #[error("workspace name may hold only a-z, 0-9, '-' and '_', and must start with a letter or digit")]
    InvalidCharacter,
}

impl WorkspaceId {
    /// Validates `name` as a workspace name.
    ///
    /// # Errors
    /// [`WorkspaceIdError`] when the name is empty, too long, or holds a
    /// character outside `[a-z0-9_-]`.
    pub fn new(name: impl Into<String>) -> Result<Self, WorkspaceIdError> {
        let name = name.into();
        if name.is_empty() {
            return Err(WorkspaceIdError::Empty);
        }
        if name.len() > MAX_WORKSPACE_LEN {
            return Err(WorkspaceIdError::TooLong);
        }
        let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_';
        let first = name.as_bytes()[0];
        if !name.bytes().all(ok_char) || first == b'-' || first == b'_' {
            return Err(WorkspaceIdError::InvalidCharacter);
        }
        Ok(Self(name))
    }

    /// The workspace name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for WorkspaceId {
    /// The [`DEFAULT_WORKSPACE`].
    fn default() -> Self {
        Self(DEFAULT_WORKSPACE.to_owned())
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkspaceId({})", self.0)
    }
}

impl FromStr for WorkspaceId {
    type Err = WorkspaceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for WorkspaceId {
    type Error = WorkspaceIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<WorkspaceId> for String {
    fn from(w: WorkspaceId) -> Self {
        w.0
    }
}

impl AsRef<str> for WorkspaceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for n in ["default", "team-a", "a", "x_1", "0abc"] {
            assert_eq!(WorkspaceId::new(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn refuses_names_that_could_alias_paths_or_keys() {
        assert_eq!(WorkspaceId::new(""), Err(WorkspaceIdError::Empty));
        assert_eq!(WorkspaceId::new("a".repeat(64)), Err(WorkspaceIdError::TooLong));
        for n in ["..", "a/b", "A", "-a", "_a", "a b", "a\0", "é", "a.b"] {
            assert_eq!(WorkspaceId::new(n), Err(WorkspaceIdError::InvalidCharacter), "{n:?}");
        }
    }
}
