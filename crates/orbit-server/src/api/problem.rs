//! Errors of the REST API as `application/problem+json`
//! ([RFC 9457](https://www.rfc-editor.org/rfc/rfc9457)): one stable `type`
//! per cause, a fixed `title`, and a `detail` written for the caller that
//! never holds a host path, an internal address, a secret or a token.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orbit::{TeamActionError, TeamError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::submit::SubmitError;

/// The `type` URIs are `urn:orbit:problem:<code>`, one per code below.
pub const TYPE_PREFIX: &str = "urn:orbit:problem:";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// `urn:orbit:problem:<code>`: `unauthenticated`, `permission-denied`,
    /// `not-found`, `invalid-input`, `conflict`, `payload-too-large`,
    /// `quota-exceeded` (413: a workspace's stored components would pass
    /// its byte cap), `rate-limited`, `unavailable` or `internal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short, fixed summary of the code.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for the caller.
    pub detail: String,
    /// Seconds to wait before retrying (`rate-limited`, `unavailable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

impl Problem {
    /// A problem of `code` (one of those of [`Problem::kind`]) with `detail`.
    pub fn new(code: &str, detail: impl Into<String>) -> Self {
        let (status, title) = match code {
            "unauthenticated" => (StatusCode::UNAUTHORIZED, "Authentication required"),
            "permission-denied" => (StatusCode::FORBIDDEN, "Permission denied"),
            "not-found" => (StatusCode::NOT_FOUND, "Not found"),
            "conflict" => (StatusCode::CONFLICT, "Conflict"),
            "invalid-input" => (StatusCode::BAD_REQUEST, "Invalid input"),
            "payload-too-large" => (StatusCode::PAYLOAD_TOO_LARGE, "Payload too large"),
            "quota-exceeded" => (StatusCode::PAYLOAD_TOO_LARGE, "Quota exceeded"),
            "rate-limited" => (StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
            "unavailable" => (StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
        };
        let code = if status == StatusCode::INTERNAL_SERVER_ERROR { "internal" } else { code };
        Self {
            kind: format!("{TYPE_PREFIX}{code}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            retry_after_s: None,
        }
    }

    /// The generic 500: the detail went to the operator's log.
    pub fn internal() -> Self {
        Self::new("internal", "internal error")
    }

    /// The 404 of a missing workspace, also given for another workspace's
    /// path (a token never learns which workspaces exist).
    pub fn no_workspace(slug: &str) -> Self {
        Self::new("not-found", format!("workspace {slug:?} not found"))
    }

    /// The code of this problem (the `type` without its prefix).
    pub fn code(&self) -> &str {
        self.kind.strip_prefix(TYPE_PREFIX).unwrap_or("internal")
    }

    /// With a `Retry-After` of `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

impl From<TeamError> for Problem {
    fn from(e: TeamError) -> Self {
        match &e {
            TeamError::Storage(_) => {
                tracing::error!(error = %e, "team store");
                Problem::internal()
            }
            // One answer for every refused token.
            TeamError::Unauthenticated(_) => Problem::new("unauthenticated", "a valid bearer token is required"),
            _ => Problem::new(e.code(), e.to_string()),
        }
    }
}

impl From<TeamActionError> for Problem {
    fn from(e: TeamActionError) -> Self {
        use orbit::orbit_jobs::JobsError;
        use orbit::orbit_tools::ToolsError;
        match e {
            TeamActionError::Team(e) => e.into(),
            TeamActionError::Tools(ToolsError::NoSuchServer(name)) => {
                Problem::new("not-found", format!("server {name} not found"))
            }
            TeamActionError::Jobs(JobsError::NotFound(name)) => {
                Problem::new("not-found", format!("job {name} not found"))
            }
            TeamActionError::Jobs(JobsError::Component(e)) => crate::submit::engine_failure(&e).into(),
            // Only these name the caller's own input; the rest are the host's.
            e @ TeamActionError::Tools(
                ToolsError::InvalidName(_) | ToolsError::InvalidSpec(_) | ToolsError::AlreadyExists(_),
            )
            | e @ TeamActionError::Jobs(
                JobsError::InvalidName | JobsError::DescriptionTooLong | JobsError::InputTooLarge { .. },
            ) => Problem::new("invalid-input", e.to_string()),
            e @ (TeamActionError::Tools(_) | TeamActionError::Jobs(_)) => {
                tracing::error!(error = %e, "team action");
                Problem::internal()
            }
            e if e.code() == "internal" => {
                tracing::error!(error = %e, "team action");
                Problem::internal()
            }
            e => Problem::new(e.code(), e.to_string()),
        }
    }
}

impl From<SubmitError> for Problem {
    fn from(e: SubmitError) -> Self {
        let p = Problem::new(e.code(), e.to_string());
        if matches!(e, SubmitError::Busy) { p.retry_after(1) } else { p }
    }
}

impl From<orbit::orbit_workspace::Denied> for Problem {
    fn from(e: orbit::orbit_workspace::Denied) -> Self {
        Problem::new("permission-denied", format!("your role ({}) may not {}", e.role, e.action))
    }
}

/// The error responses every route may give, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Problems {
    /// Bad input: a malformed body, parameter or name.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No bearer token, or an unknown, malformed, expired or revoked one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token is valid but its role may not do this.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such workspace (or another workspace than the token's), or no
    /// such item.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The item exists already, or the change conflicts with its state.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// The body is over the route's size cap.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The token's request rate is spent; see `Retry-After`.
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// A failure on the host; the detail is in the operator's log.
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(Problem),
    /// Every run slot stayed busy; see `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}
