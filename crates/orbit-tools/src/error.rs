//! Errors of the `tools` primitive and its registry.

use std::path::Path;

use orbit_engine::{ErrorCode, HostError};

/// Errors of the registry, the connection pool and tool calls. Each maps to
/// a guest [`ErrorCode`]; the guest sees only the code's fixed message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolsError {
    /// A server name was not 1 to 64 of `a-z A-Z 0-9 _ -`, or a policy
    /// target was not `SERVER` or `SERVER/TOOL`.
    #[error("invalid name {0:?}")]
    InvalidName(String),
    /// A server spec was malformed (empty command, a URL that is not
    /// `http(s)://`, a bad header or variable name).
    #[error("invalid server: {0}")]
    InvalidSpec(String),
    /// `add` named a server that is already installed in the workspace.
    #[error("server {0} is already installed")]
    AlreadyExists(String),
    /// The server is not installed in the workspace, or is disabled.
    #[error("no server {0}")]
    NoSuchServer(String),
    /// The server has no tool of that name.
    #[error("server {server} has no tool {tool}")]
    NoSuchTool {
        /// The server.
        server: String,
        /// The tool asked for.
        tool: String,
    },
    /// The workspace policy denies the tool.
    #[error("policy denies {server}/{tool}")]
    Denied {
        /// The server.
        server: String,
        /// The tool.
        tool: String,
    },
    /// The caller's principal may not call the tool: a read-only principal
    /// calls only tools annotated `readOnlyHint: true`, or opened to it by
    /// the policy ([`ToolPolicy::read_only_allow`](crate::ToolPolicy::read_only_allow)).
    #[error("{server}/{tool} refused: {reason}")]
    NotPermitted {
        /// The server.
        server: String,
        /// The tool.
        tool: String,
        /// Why, from the permission table (operators only).
        reason: String,
    },
    /// The arguments were not a JSON object.
    #[error("arguments are not a JSON object: {0}")]
    InvalidArguments(String),
    /// The arguments were larger than `ToolsLimits::max_argument_bytes`.
    #[error("arguments of {size} bytes exceed the {limit}-byte limit")]
    ArgumentsTooLarge {
        /// Their size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The result was larger than `ToolsLimits::max_result_bytes`.
    #[error("result of {size} bytes exceeds the {limit}-byte limit")]
    ResultTooLarge {
        /// Its size in bytes (as JSON text).
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The run (with the runs that share its budget) made more calls than
    /// `ToolsLimits::max_calls_per_run`, or than the slice of calls a
    /// queued job was given.
    #[error("more than {0} tool calls in one run")]
    TooManyCalls(u32),
    /// A secret the server's environment or headers name is missing from
    /// the workspace's vault, or could not be decrypted.
    #[error("secret {0} for the server is unavailable")]
    Secret(String),
    /// The server could not be started or reached, closed the connection,
    /// answered with a protocol error, or did not answer in time.
    #[error("server {server} unavailable: {detail}")]
    Unavailable {
        /// The server.
        server: String,
        /// What happened, for operators.
        detail: String,
    },
    /// The server answered a `tools/call` with a JSON-RPC error (for
    /// example invalid params).
    #[error("server {server} refused the call: {detail}")]
    Refused {
        /// The server.
        server: String,
        /// The JSON-RPC error code: the server's own, or -32601 (method not
        /// found) for a capability the server does not declare.
        code: i32,
        /// The JSON-RPC error, for operators.
        detail: String,
    },
    /// A registry file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A registry file did not parse.
    #[error("tools registry: {0}")]
    Corrupt(String),
}

impl ToolsError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.display().to_string(), source }
    }

    /// The guest error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidName(_) | Self::InvalidSpec(_) | Self::InvalidArguments(_) | Self::Refused { .. } => {
                ErrorCode::InvalidInput
            }
            Self::AlreadyExists(_) => ErrorCode::InvalidInput,
            Self::NoSuchServer(_) | Self::NoSuchTool { .. } => ErrorCode::NotFound,
            Self::Denied { .. } | Self::NotPermitted { .. } => ErrorCode::PermissionDenied,
            Self::ArgumentsTooLarge { .. } | Self::ResultTooLarge { .. } => ErrorCode::TooLarge,
            Self::TooManyCalls(_) => ErrorCode::LimitExceeded,
            Self::Secret(_) | Self::Unavailable { .. } => ErrorCode::Unavailable,
            Self::Io { .. } | Self::Corrupt(_) => ErrorCode::Internal,
        }
    }
}

impl From<ToolsError> for HostError {
    fn from(e: ToolsError) -> Self {
        HostError::with_detail(e.code(), e.to_string())
    }
}
