//! The REST API under `/api/v1`: JSON over HTTP, every request
//! authenticated with `Authorization: Bearer <token>` ([`ApiCaller`]) and
//! every action decided by the permission table, through the same
//! [`orbit::Orbit`] calls the CLI and the MCP server make.
//!
//! - Errors are `application/problem+json` ([`Problem`], RFC 9457).
//! - A token acts only in its own workspace: any other
//!   `/workspaces/{slug}` is the same 404 as a workspace that does not
//!   exist.
//! - Lists that grow (runs, audit) are cursor pages: pass the previous
//!   page's `next_cursor` as `cursor`.
//! - The OpenAPI 3.1 document is generated from the handlers (utoipa) and
//!   served at `/api/v1/openapi.json`.

mod caller;
mod problem;
mod resources;
mod runs;
mod team;
mod views;

use std::sync::Arc;

use axum::Json;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) use caller::authenticate;
pub use caller::{ApiCaller, RateLimit};
pub use problem::{Problem, Problems, TYPE_PREFIX};
pub use resources::*;
pub use views::*;

use crate::OrbitMcp;

/// What every handler shares: the MCP server's state (the Orbit, the
/// component store, the run caps) and the per-token rate limiter.
#[derive(Clone)]
pub struct ApiState {
    mcp: OrbitMcp,
    limiter: Arc<caller::TokenLimiter>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

impl ApiState {
    /// The state over `mcp`'s Orbit, with `rate` per token.
    pub fn new(mcp: OrbitMcp, rate: RateLimit) -> Self {
        Self { mcp, limiter: caller::TokenLimiter::new(rate) }
    }

    pub(crate) fn orbit(&self) -> &orbit::Orbit {
        self.mcp.orbit()
    }

    /// Spends one request of `token`'s rate: `Err(seconds to wait)` when
    /// none is left.
    pub(crate) fn check_rate(&self, token: uuid::Uuid) -> Result<(), u64> {
        self.limiter.check(token)
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Orbit API",
        description = "Run WebAssembly components and administer a workspace: members, tokens, credentials, MCP \
                       servers, runs, jobs and the audit trail. Every request needs `Authorization: Bearer <token>`; \
                       errors are RFC 9457 problem documents."
    ),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    components(schemas(Problem))
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("orb_ token")
                    .description(Some("An Orbit token: `orbit token issue --workspace SLUG --user USER`"))
                    .build(),
            ),
        );
    }
}

/// The API's routes (paths relative to `/api/v1`) and its OpenAPI document.
/// JSON bodies are capped at `max_body_bytes`, a component upload at
/// `max_component_bytes` (413 above).
pub fn router(
    state: ApiState,
    max_body_bytes: usize,
    max_component_bytes: usize,
) -> (axum::Router, utoipa::openapi::OpenApi) {
    use axum::extract::DefaultBodyLimit;
    let uploads =
        OpenApiRouter::new().routes(routes!(runs::put_component)).layer(DefaultBodyLimit::max(max_component_bytes));
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(me))
        .routes(routes!(team::workspace))
        .routes(routes!(team::members, team::add_member))
        .routes(routes!(team::set_role, team::remove_member))
        .routes(routes!(team::tokens, team::issue_token))
        .routes(routes!(team::revoke_token))
        .routes(routes!(team::notifications))
        .routes(routes!(team::audit))
        .routes(routes!(resources::secrets))
        .routes(routes!(resources::set_secret, resources::delete_secret))
        .routes(routes!(resources::reassign_secret))
        .routes(routes!(resources::servers, resources::install_server))
        .routes(routes!(resources::update_server, resources::remove_server))
        .routes(routes!(resources::refresh_server))
        .routes(routes!(resources::tools))
        .routes(routes!(resources::jobs, resources::register_job))
        .routes(routes!(resources::remove_job))
        .routes(routes!(resources::queue))
        .routes(routes!(runs::runs, runs::start_run))
        .routes(routes!(runs::run))
        .routes(routes!(runs::cancel_run))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .merge(uploads)
        .with_state(state)
        .split_for_parts();
    doc.servers = Some(vec![utoipa::openapi::Server::new("/api/v1")]);
    (router, doc)
}

/// The caller: user, agent, workspace, role, token id and expiry.
#[utoipa::path(get, path = "/me", tag = "me", responses((status = 200, body = Me), Problems))]
async fn me(caller: ApiCaller) -> Json<Me> {
    Json(Me::of(&caller))
}
