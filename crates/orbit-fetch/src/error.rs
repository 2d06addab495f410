//! Errors of the fetch primitive.

use orbit_engine::{ErrorCode, HostError};

/// Why a named secret was refused. The guest never learns which: both give
/// the same `permission-denied` error with the same message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretDenial {
    /// The workspace has no secret of that name (or the name is malformed).
    Unknown,
    /// The secret exists but none of its host bindings matches the request's
    /// scheme, host, port, method and path.
    NotBound,
}

/// A failed mediated request. Each variant maps to one WIT error code
/// ([`FetchError::code`]); the `Display` text is operator detail (it never
/// holds a secret value, a header value or a body) and guests see only the
/// code's fixed message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The request is malformed: bad method, URL, scheme, header name or
    /// value, a forbidden header, credentials in the URL, or two secrets
    /// placed in the same header. Code `invalid-input`.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The request, a header of it or its body is larger than allowed.
    /// Code `too-large`.
    #[error("request {what} is {size} bytes, over the limit of {limit}")]
    RequestTooLarge {
        /// What was too large: `body`, `url` or `header`.
        what: &'static str,
        /// Its size, in bytes (or a count for `headers`).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The workspace's egress policy does not list the host. Code
    /// `permission-denied`.
    #[error("host {host} is not allowed by the workspace's egress policy")]
    HostNotAllowed {
        /// The URL's host.
        host: String,
    },
    /// The URL's host is, or resolved to, an address the address policy
    /// refuses. Code `permission-denied`.
    #[error("address {addr} of {host} is refused: {reason}")]
    AddressDenied {
        /// The URL's host.
        host: String,
        /// The refused address.
        addr: std::net::IpAddr,
        /// The range it falls in.
        reason: &'static str,
    },
    /// A named secret is unknown in the workspace or not bound to this
    /// request. Code `permission-denied`, with the same guest message in
    /// both cases.
    #[error("secret {name:?} refused: {}", match reason {
        SecretDenial::Unknown => "no such secret in the workspace",
        SecretDenial::NotBound => "not bound to this scheme, host, port, method and path",
    })]
    SecretDenied {
        /// The secret's name as the guest gave it.
        name: String,
        /// Why (operators only).
        reason: SecretDenial,
    },
    /// The run's principal may not send this method: only GET and HEAD are
    /// open to a principal without
    /// [`Action::FetchUnsafeMethod`](orbit_workspace::Action::FetchUnsafeMethod)
    /// (a read-only member). Code `permission-denied`.
    #[error("method {method} refused: {reason}")]
    MethodDenied {
        /// The request's method.
        method: String,
        /// Why, from the permission table (operators only).
        reason: String,
    },
    /// The run has made `max_requests_per_run` requests already (counting
    /// those of the runs sharing its budget), or all of a queued job's
    /// slice. Code `limit-exceeded`.
    #[error("request limit of {limit} per run reached")]
    TooManyRequests {
        /// The limit.
        limit: u32,
    },
    /// The response broke a cap: header count, header size, body size
    /// (after decompression). Code `too-large`.
    #[error("response too large: {0}")]
    ResponseTooLarge(String),
    /// Resolving, connecting or waiting for the response took too long.
    /// Code `unavailable`.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The upstream could not be reached or answered with something that is
    /// not valid HTTP (including a content coding the host cannot decode,
    /// and so could not scrub). Code `unavailable`.
    #[error("upstream: {0}")]
    Upstream(String),
    /// The vault failed. Code `internal`.
    #[error("vault: {0}")]
    Vault(String),
    /// The primitive could not be set up (for example the HTTP client could
    /// not be built), or another internal failure. Code `internal`.
    #[error("internal: {0}")]
    Internal(String),
}

impl FetchError {
    /// The WIT error code the guest receives for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRequest(_) => ErrorCode::InvalidInput,
            Self::RequestTooLarge { .. } | Self::ResponseTooLarge(_) => ErrorCode::TooLarge,
            Self::HostNotAllowed { .. }
            | Self::AddressDenied { .. }
            | Self::SecretDenied { .. }
            | Self::MethodDenied { .. } => ErrorCode::PermissionDenied,
            Self::TooManyRequests { .. } => ErrorCode::LimitExceeded,
            Self::Timeout(_) | Self::Upstream(_) => ErrorCode::Unavailable,
            Self::Vault(_) | Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<FetchError> for HostError {
    fn from(e: FetchError) -> Self {
        HostError::with_detail(e.code(), e.to_string())
    }
}
