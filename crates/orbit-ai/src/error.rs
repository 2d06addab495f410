//! Errors of the ai primitive.

use orbit_engine::{ErrorCode, HostError};

/// A failed model call. Each variant maps to one WIT error code
/// ([`AiError::code`]); the `Display` text is operator detail kept on the
/// run record. It never holds a key, a prompt, a completion or a provider's
/// response body; guests see only the code's fixed message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AiError {
    /// The configuration is invalid (a bad provider name or base URL).
    /// Raised by [`Ai::new`](crate::Ai::new); code `internal` if ever seen
    /// by a guest.
    #[error("ai configuration: {0}")]
    Config(String),
    /// The workspace has no provider of that name. Code `not-found`.
    #[error("no provider {0:?} in the workspace")]
    UnknownProvider(String),
    /// The provider does not allow the model. Code `permission-denied`.
    #[error("model {model:?} is not allowed by provider {provider:?}")]
    ModelNotAllowed {
        /// The provider.
        provider: String,
        /// The model asked for.
        model: String,
    },
    /// The provider's key secret is missing from the workspace's vault, or
    /// not bound to the provider's endpoint. Code `permission-denied`.
    #[error("key secret {secret:?} of provider {provider:?}: {reason}")]
    KeyUnavailable {
        /// The provider.
        provider: String,
        /// The secret's name.
        secret: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// The request is malformed: no messages, a bad temperature, an empty
    /// model name, embeddings asked of an Anthropic provider. Code
    /// `invalid-input`.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The request is over a size cap (request bytes, messages, embed
    /// inputs), or the provider's response is over the response cap. Code
    /// `too-large`.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The run's token budget is spent. Code `limit-exceeded`.
    #[error("token budget of {cap} per run spent ({used} used)")]
    BudgetExhausted {
        /// Tokens used so far by the run.
        used: u64,
        /// The cap ([`AiLimits::max_tokens_per_run`](crate::AiLimits::max_tokens_per_run)).
        cap: u64,
    },
    /// The prompt alone, estimated at 4 bytes a token, needs more tokens
    /// than the run has left, so it is not sent. Code `limit-exceeded`.
    #[error("prompt of about {estimate} tokens, over the {remaining} left of the run's token budget")]
    PromptOverBudget {
        /// The prompt's estimated tokens.
        estimate: u64,
        /// Tokens the run had left.
        remaining: u64,
    },
    /// The provider refused the request as malformed (HTTP 400, 404, 413,
    /// 422). Code `invalid-input`.
    #[error("provider {provider:?} rejected the request with status {status}{kind}")]
    Rejected {
        /// The provider.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// The provider's error type, when it gave a short token (`: <type>`).
        kind: String,
    },
    /// The provider refused the key (HTTP 401, 403). Code
    /// `permission-denied`.
    #[error("provider {provider:?} refused the key with status {status}{kind}")]
    Unauthorized {
        /// The provider.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// The provider's error type, when it gave a short token.
        kind: String,
    },
    /// The provider failed (5xx, 429, another status), could not be
    /// reached, or answered with something that is not the expected JSON.
    /// Code `unavailable`.
    #[error("provider {provider:?}: {detail}")]
    Upstream {
        /// The provider.
        provider: String,
        /// What went wrong (status or transport error; never a body).
        detail: String,
    },
    /// The provider did not answer within
    /// [`AiLimits::request_timeout`](crate::AiLimits::request_timeout).
    /// Code `unavailable`.
    #[error("provider {provider:?} timed out after {timeout_ms} ms")]
    Timeout {
        /// The provider.
        provider: String,
        /// The timeout, in milliseconds.
        timeout_ms: u64,
    },
    /// The vault failed, or another internal failure. Code `internal`.
    #[error("internal: {0}")]
    Internal(String),
}

impl AiError {
    /// The WIT error code the guest receives for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownProvider(_) => ErrorCode::NotFound,
            Self::ModelNotAllowed { .. } | Self::KeyUnavailable { .. } | Self::Unauthorized { .. } => {
                ErrorCode::PermissionDenied
            }
            Self::InvalidRequest(_) | Self::Rejected { .. } => ErrorCode::InvalidInput,
            Self::TooLarge(_) => ErrorCode::TooLarge,
            Self::BudgetExhausted { .. } | Self::PromptOverBudget { .. } => ErrorCode::LimitExceeded,
            Self::Upstream { .. } | Self::Timeout { .. } => ErrorCode::Unavailable,
            Self::Config(_) | Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<AiError> for HostError {
    fn from(e: AiError) -> Self {
        HostError::with_detail(e.code(), e.to_string())
    }
}
