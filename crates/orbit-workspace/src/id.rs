//! [`WorkspaceId`] and the other names of the tenancy model.

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

/// Why a workspace name, user handle or agent name was refused.
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

/// The shape shared by workspace ids, user handles and agent names.
fn check_slug(name: &str) -> Result<(), WorkspaceIdError> {
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
    Ok(())
}

impl WorkspaceId {
    /// Validates `name` as a workspace name.
    ///
    /// # Errors
    /// [`WorkspaceIdError`] when the name is empty, too long, or holds a
    /// character outside `[a-z0-9_-]`.
    pub fn new(name: impl Into<String>) -> Result<Self, WorkspaceIdError> {
        let name = name.into();
        check_slug(&name)?;
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
        f.pad(&self.0)
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

macro_rules! slug_name {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Validates `name` as ", $what, ".")]
            ///
            /// # Errors
            /// [`WorkspaceIdError`] when the name is empty, longer than 63
            /// bytes, or holds a character outside `[a-z0-9_-]`.
            pub fn new(name: impl Into<String>) -> Result<Self, WorkspaceIdError> {
                let name = name.into();
                check_slug(&name)?;
                Ok(Self(name))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = WorkspaceIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = WorkspaceIdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(w: $name) -> Self {
                w.0
            }
        }
    };
}

slug_name!(
    /// A user's handle: the same shape as a [`WorkspaceId`] (1 to 63 bytes
    /// of `[a-z0-9_-]`, starting with a letter or digit). A user may belong
    /// to many workspaces.
    UserId,
    "a user handle"
);

slug_name!(
    /// The name of an agent acting for a member through a token of its
    /// own: the same shape as a [`WorkspaceId`].
    AgentName,
    "an agent name"
);

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
            assert_eq!(UserId::new(n), Err(WorkspaceIdError::InvalidCharacter), "{n:?}");
            assert_eq!(AgentName::new(n), Err(WorkspaceIdError::InvalidCharacter), "{n:?}");
        }
    }

    #[test]
    fn user_handles_round_trip_through_json() {
        let u = UserId::new("ada").unwrap();
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"ada\"");
        assert!(serde_json::from_str::<UserId>("\"Ada\"").is_err());
    }
}
