//! The web dashboard at `/`: a workspace's servers, credentials, members,
//! tokens, runs, audit trail and jobs, in a browser.
//!
//! - Server-rendered HTML (askama templates, escaped by default: server
//!   names, tool descriptions and run logs are untrusted text) and plain
//!   forms, posted and redirected (POST/redirect/GET). No script is needed;
//!   one small script file adds the token's copy button.
//! - A client of the REST API ([`client`]): no private back door, the same
//!   permission table, audit trail and errors.
//! - Sessions ([`session`]): an `HttpOnly`, `SameSite=Strict` cookie, the
//!   token checked on every request, CSRF tokens on every form.
//! - Every response carries a strict Content-Security-Policy (no inline
//!   script or style, `frame-ancestors 'none'`), `X-Frame-Options: DENY`,
//!   `nosniff`, `Referrer-Policy: same-origin` and `no-store`.

mod actions;
mod chart;
mod client;
mod pages;
mod session;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use client::ApiClient;
use session::Sessions;

/// What the dashboard's handlers share.
#[derive(Clone)]
pub(crate) struct Dash {
    api: ApiClient,
    sessions: Arc<Sessions>,
}

/// The dashboard's routes, over `api` (the API router, paths relative to
/// `/api/v1`). `secure`: served over TLS (cookies get `Secure`).
pub(crate) fn router(api: axum::Router, secure: bool) -> axum::Router {
    let dash = Dash { api: ApiClient::new(api), sessions: Arc::new(Sessions::new(secure)) };
    axum::Router::new()
        .route("/", get(pages::home))
        .route("/signin", get(pages::signin).post(actions::signin))
        .route("/signout", post(actions::signout))
        .route("/assets/dashboard.css", get(css))
        .route("/assets/dashboard.js", get(js))
        .route("/w/{slug}", get(pages::overview))
        .route("/w/{slug}/servers", get(pages::servers))
        .route("/w/{slug}/servers/install", post(actions::install_server))
        .route("/w/{slug}/servers/{name}/{op}", post(actions::server_op))
        .route("/w/{slug}/policy", post(actions::policy))
        .route("/w/{slug}/secrets", get(pages::secrets))
        .route("/w/{slug}/secrets/set", post(actions::set_secret))
        .route("/w/{slug}/secrets/{name}/{op}", post(actions::secret_op))
        .route("/w/{slug}/members", get(pages::members))
        .route("/w/{slug}/members/invite", post(actions::invite))
        .route("/w/{slug}/members/{user}/role", post(actions::set_role))
        .route("/w/{slug}/members/{user}/remove", get(pages::confirm_remove).post(actions::remove_member))
        .route("/w/{slug}/tokens", get(pages::tokens))
        .route("/w/{slug}/tokens/issue", post(actions::issue_token))
        .route("/w/{slug}/tokens/{id}/revoke", post(actions::revoke_token))
        .route("/w/{slug}/runs", get(pages::runs))
        .route("/w/{slug}/runs/{id}", get(pages::run))
        .route("/w/{slug}/audit", get(pages::audit))
        .route("/w/{slug}/jobs", get(pages::jobs))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(dash)
}

/// The Content-Security-Policy of every dashboard response: only this
/// origin's own script, style and images; no inline script or style, no
/// framing, forms posted only here.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                              connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: under it Chromium sends `Origin: null` with a
    // form post, which the Origin check must refuse.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages hold workspace data (and once, a new token).
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

async fn css() -> Response {
    asset(include_str!("../../assets/dashboard.css"), "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(include_str!("../../assets/dashboard.js"), "text/javascript; charset=utf-8")
}
