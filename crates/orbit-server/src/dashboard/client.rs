//! The dashboard is a client of the REST API: every page is built from API
//! responses and every form is an API request, sent in process through the
//! API's own router with the session's token as `Authorization: Bearer`.
//! So the same authentication, permission table, rate limit, audit and
//! problem documents apply, and there is no back door.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;

use crate::api::Problem;

/// The largest API response the dashboard reads, in bytes.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Why an API request of the dashboard failed.
#[derive(Debug)]
pub(crate) enum ApiFailure {
    /// 401: the token is unknown, expired or revoked; the browser is
    /// signed out of that workspace.
    SignedOut,
    /// Any other refusal, with the API's caller-safe problem.
    Refused(Problem),
}

impl ApiFailure {
    /// The caller-safe text of the failure.
    pub(crate) fn text(&self) -> String {
        match self {
            ApiFailure::SignedOut => "signed out: the token is no longer valid".into(),
            ApiFailure::Refused(p) => format!("{}: {}", p.title, p.detail),
        }
    }
}

/// The API's router, called in process.
#[derive(Clone)]
pub(crate) struct ApiClient {
    router: axum::Router,
}

impl ApiClient {
    /// A client of `router` (paths relative to `/api/v1`).
    pub(crate) fn new(router: axum::Router) -> Self {
        Self { router }
    }

    /// `GET path` as `token`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, token: &str, path: &str) -> Result<T, ApiFailure> {
        self.send(token, Method::GET, path, None).await
    }

    /// `method path` with JSON `body` as `token`; an empty answer (204)
    /// reads as JSON `null`.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ApiFailure> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::ACCEPT, "application/json");
        let body = match body {
            Some(b) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let request = request.body(body).map_err(|_| refused(Problem::new("invalid-input", "malformed request")))?;
        let response = match self.router.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_RESPONSE_BYTES).await.map_err(|e| {
            tracing::error!(error = %e, "reading an API response for the dashboard");
            refused(Problem::internal())
        })?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(ApiFailure::SignedOut);
        }
        if !status.is_success() {
            let problem = serde_json::from_slice::<Problem>(&bytes).unwrap_or_else(|_| Problem::internal());
            return Err(refused(problem));
        }
        let parsed = if bytes.is_empty() {
            serde_json::from_value(serde_json::Value::Null)
        } else {
            serde_json::from_slice(&bytes)
        };
        parsed.map_err(|e| {
            tracing::error!(error = %e, "an API response the dashboard could not read");
            refused(Problem::internal())
        })
    }
}

fn refused(p: Problem) -> ApiFailure {
    ApiFailure::Refused(p)
}

/// What a path segment keeps as is: RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `segment` percent-encoded for a URL path.
pub(crate) fn seg(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

/// `pairs` (the empty values left out) as a query string, with its `?`.
pub(crate) fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}
