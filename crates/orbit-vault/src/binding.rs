//! What a secret is bound to and where it goes in a request. These types
//! are the contract between the vault (which stores them) and the `fetch`
//! primitive (which enforces them).

use serde::{Deserialize, Serialize};

/// One origin a secret may be sent to: scheme + host + port, optionally
/// narrowed to some methods and a path prefix.
///
/// Origins follow RFC 6454: `https://api.example.com` is scheme `https`,
/// host `api.example.com`, port 443. Hosts are compared case-insensitively
/// (stored lowercase); IP literals are stored in their canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostBinding {
    /// `http` or `https`.
    pub scheme: String,
    /// Lowercase host name or canonical IP literal (IPv6 without brackets).
    pub host: String,
    /// Port; the scheme's default when the URL gave none.
    pub port: u16,
    /// Allowed methods, uppercase (e.g. `["GET", "POST"]`); empty means any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Allowed path prefix (e.g. `/v1/`); `None` means any path. Matched on
    /// the URL's path as sent, segment-aware: `/v1` admits `/v1` and `/v1/x`
    /// but not `/v10`.
    #[serde(default)]
    pub path_prefix: Option<String>,
}

/// Where the host puts a secret's value in a request. The guest cannot
/// choose or change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Placement {
    /// A header whose value is `template` with `{}` replaced by the secret,
    /// e.g. name `Authorization`, template `Bearer {}`.
    Header {
        /// Header name (RFC 9110 field name).
        name: String,
        /// Value template holding exactly one `{}`.
        template: String,
    },
    /// A query parameter `param=<secret>` appended to the URL (percent-encoded).
    Query {
        /// Parameter name.
        param: String,
    },
    /// HTTP Basic authentication (RFC 7617): `Authorization: Basic
    /// base64(username:secret)`.
    Basic {
        /// The user name sent with the secret as password.
        username: String,
    },
}

/// Everything about a secret except its value. Listing returns only this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretMeta {
    /// The secret's name within its workspace: 1 to 128 bytes of
    /// `[A-Za-z0-9_.-]`.
    pub name: String,
    /// Origins the secret may be sent to; never empty.
    pub hosts: Vec<HostBinding>,
    /// Where the value goes in a request.
    pub placement: Placement,
    /// Who stored it (a member or token name; `cli` from the CLI).
    pub created_by: String,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When a run last used it, in milliseconds since the Unix epoch.
    pub last_used_at_ms: Option<u64>,
}
