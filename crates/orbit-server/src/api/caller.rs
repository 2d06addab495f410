//! Who calls the API: the bearer token of the request, checked on every
//! request (so a revocation stops the next one), and the token's request
//! rate.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use orbit::orbit_workspace::{Authenticated, TokenRecord};
use orbit::{Principal, TeamError, TeamStore, WorkspaceId};

use super::{ApiState, Problem};

/// Requests per second each token may make, with a burst allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Sustained requests per second per token. Default 50.
    pub per_second: NonZeroU32,
    /// Requests a token may make at once after being idle. Default 100.
    pub burst: NonZeroU32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { per_second: NonZeroU32::new(50).expect("50 > 0"), burst: NonZeroU32::new(100).expect("100 > 0") }
    }
}

impl RateLimit {
    /// `per_second` sustained, `burst` at once.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self { per_second, burst }
    }
}

/// One GCRA bucket per token (governor).
pub(crate) struct TokenLimiter(DefaultKeyedRateLimiter<uuid::Uuid>);

impl TokenLimiter {
    pub(crate) fn new(limit: RateLimit) -> Arc<Self> {
        Arc::new(Self(DefaultKeyedRateLimiter::keyed(Quota::per_second(limit.per_second).allow_burst(limit.burst))))
    }

    /// `Ok`, or the whole seconds to wait (at least 1).
    pub(crate) fn check(&self, token: uuid::Uuid) -> Result<(), u64> {
        self.0.check_key(&token).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })?;
        // Forget idle tokens' buckets now and then so the map stays small.
        if self.0.len() > 10_000 {
            self.0.retain_recent();
        }
        Ok(())
    }
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    /// The token's workspace: the only one it may act in.
    pub workspace: WorkspaceId,
    /// Who acts, with the effective role.
    pub principal: Principal,
    /// The token's metadata.
    pub token: TokenRecord,
}

impl ApiCaller {
    /// The workspace of path `slug`, when it is the token's. Any other slug,
    /// existing or not, gets the same 404.
    ///
    /// # Errors
    /// [`Problem`] `not-found`.
    pub fn workspace(&self, slug: &str) -> Result<&WorkspaceId, Problem> {
        if slug == self.workspace.as_str() { Ok(&self.workspace) } else { Err(Problem::no_workspace(slug)) }
    }
}

/// Authenticates `headers`' bearer token.
pub(crate) fn authenticate(state: &ApiState, headers: &axum::http::HeaderMap) -> Result<Authenticated, Problem> {
    let Some(token) = crate::auth::bearer(headers) else {
        return Err(Problem::new(
            "unauthenticated",
            "no token: send Authorization: Bearer <token> (issue one with `orbit token issue`)",
        ));
    };
    state.orbit().team().authenticate(token).map_err(|e| {
        if let TeamError::Unauthenticated(why) = &e {
            tracing::debug!(reason = %why, "API token refused");
        }
        Problem::from(e)
    })
}

impl FromRequestParts<ApiState> for ApiCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let a = authenticate(state, &parts.headers)?;
        if let Err(wait) = state.limiter.check(a.token.id.0) {
            return Err(Problem::new("rate-limited", "this token's request rate is spent").retry_after(wait));
        }
        Ok(ApiCaller { workspace: a.workspace, principal: a.principal, token: a.token })
    }
}
