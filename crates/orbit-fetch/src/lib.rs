//! The `fetch` orbit primitive (WIT `orbit:runtime/fetch`): outbound HTTP
//! mediated by the host, with secrets injected by reference.
//!
//! A guest names the secrets a request needs; the host looks them up in the
//! run's workspace through a [`SecretResolver`], checks that the request
//! goes to a scheme, host, port, method and path each secret is bound to,
//! and puts the value where the secret's placement says. The guest never
//! holds a value: any form of it in the response (raw, base64,
//! percent-encoded, JSON-escaped) is replaced by [`REDACTED`].
//!
//! Scrubbing finds whole-value forms only: the value entire, in one of
//! those encodings (a base64 form also inside longer base64 text). A
//! fragment of a value, or a value split, transformed or encoded some other
//! way by the upstream, is not found. That is why a request that uses
//! secrets may not carry `Range` or `If-Range`: a ranged response could
//! hand back an echoed value piece by piece.
//!
//! Every request goes through, in order:
//! 1. validation: method token (RFC 9110 §9; `CONNECT` and `TRACE` refused),
//!    absolute `http`/`https` URL without credentials, guest header names
//!    and values (no CR, LF or other control characters; `Host`,
//!    `Content-Length`, `Transfer-Encoding` and the hop-by-hop headers of
//!    RFC 9110 §7.6.1 refused), size caps; with any secret named, `Range`
//!    and `If-Range` refused too;
//! 2. the workspace's [`EgressPolicy`];
//! 3. the address policy ([`denied_reason`], minus
//!    [`FetchConfig::allow_ips`]) on the parsed `url::Host` — so spellings
//!    like `http://2130706433/` or `http://0x7f.1/` are caught as the
//!    loopback address they are — and, for host names, on every address the
//!    name resolves to, once: the client connects only to those checked
//!    addresses, so DNS rebinding gets no second lookup;
//! 4. a request slot: at most [`FetchConfig::max_concurrent_requests`]
//!    requests are in flight at once in all, and at most
//!    [`FetchConfig::max_concurrent_requests_per_run`] per run (taken before
//!    this point); a request waits for a free slot within its timeouts;
//! 5. secret lookup and binding check: every named secret's bindings are
//!    checked on its metadata ([`SecretResolver::meta`], no decryption)
//!    first, and the secrets are decrypted only when all are bound (the
//!    bindings are checked again on the metadata decryption authenticates);
//!    an unknown secret and one not bound to the request give the same
//!    `permission-denied` with the same guest message, no sooner than 5 ms
//!    after the call started (so that the two cannot be told apart by
//!    timing), and the attempt is recorded on the run's span;
//! 6. injection (a guest header of the same name is replaced) and the
//!    scrubber for the injected values (a request whose scrubber cannot be
//!    built fails with `internal` and is not sent), then the exchange under
//!    connect, first-byte and total timeouts; redirects are never followed
//!    (a 3xx goes back as is, so a secret never follows one);
//! 7. the response, read under caps on header count, header size and body
//!    size (gzip and deflate are decoded under the same cap, so a
//!    compression bomb gives `too-large`), then scrubbed, and the body cap
//!    checked again, since a replacement can be longer than what it
//!    replaces.
//!
//! Once the call is over, the use of each injected secret is recorded in
//! the vault (its last-use time) in the background, off the request's
//! path; a failure to record it is logged with `tracing`, by secret name.
//!
//! The primitive records one span per call (primitive `fetch`, operation
//! `fetch`) with attributes `method`, `host`, `status`, `secrets_requested`
//! (names asked for), `secrets` (names injected) and `secret_denied` (a
//! refused name). Spans never hold header values, bodies or secret values.
//!
//! Hosts can call [`Fetch::send`] directly, without a guest.
//!
//! # Standard clients (`wasi:http`)
//! With [`FetchConfig::wasi_http`] (the default) the primitive also links
//! `wasi:http/outgoing-handler` and `wasi:http/types` (0.2) from
//! wasmtime-wasi-http, built without its `default-send-request` feature:
//! its only way out is the `WasiHttpHooks::send_request` hook implemented
//! here, which runs every request through the same path as `fetch`. The
//! request body is read whole (under the request body cap) before sending;
//! the response reaches the guest whole, decoded and scrubbed.
//!
//! A standard client asks for secrets by naming them in the request header
//! [`SECRETS_HEADER`] (`x-orbit-secrets: name1, name2`). The host removes
//! that header (it is never sent upstream) and injects each secret as its
//! binding says. Policy refusals (egress, address, an unknown or unbound
//! secret, a malformed request) all give the guest `HTTP-request-denied`;
//! the per-run request limit `connection-limit-reached`; caps the matching
//! size error; timeouts `connection-timeout`; an unreachable upstream
//! `destination-unavailable`; anything else `internal-error` without
//! detail.
//!
//! Each call is a span with operation `wasi-http`, the same attributes as a
//! `fetch` span and its own start and duration. Its operator error detail,
//! if any, is the `error` attribute (it never holds a secret value, a
//! header value or a body). A call that finished is recorded when the guest
//! next calls `fetch` or into `wasi:http`, or when the run ends, whichever
//! comes first. A call the guest abandoned (by dropping its
//! `future-incoming-response`) or that was still in flight when the run
//! ended is recorded too, with outcome `cancelled` and the names of the
//! secrets it asked for.

mod addr;
mod config;
mod error;
mod host;
mod send;
mod wasi_http;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orbit_workspace::WorkspaceId;

pub use addr::denied_reason;

/// The name of the `fetch` primitive's per-run budget in the engine's
/// [`Budgets`](orbit_engine::Budgets): requests through `fetch` and
/// `wasi:http` (refused ones included), opened at
/// [`FetchConfig::max_requests_per_run`] and shared with the runs a run
/// starts (`jobs`).
pub const REQUEST_BUDGET: &str = "fetch.requests";
pub use config::{EgressPolicy, FetchConfig};
pub use error::{FetchError, SecretDenial};
pub use host::FetchView;
pub use orbit_scrub::REDACTED;
pub use orbit_vault::SecretResolver;
pub use wasi_http::SECRETS_HEADER;

use crate::addr::AddressPolicy;
use crate::send::{CallFacts, Caller, Inner};

/// A request, as the guest gives it (WIT `fetch.request`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchRequest {
    /// Method, such as `GET` (RFC 9110 §9); case-sensitive.
    pub method: String,
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// Header names and values, in order; repeated names are sent as
    /// repeated fields.
    pub headers: Vec<(String, String)>,
    /// The body, possibly empty.
    pub body: Vec<u8>,
    /// Time allowed for the whole request; capped by
    /// [`FetchConfig::total_timeout`]. `None`: that cap.
    pub timeout: Option<Duration>,
    /// Names of workspace secrets to inject. Repeated names count once.
    pub secrets: Vec<String>,
}

/// A response, scrubbed of secret values (WIT `fetch.response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// Status code (RFC 9110 §15).
    pub status: u16,
    /// Header names (lowercase) and values in the order received. Values
    /// that are not UTF-8 are converted lossily. `Content-Length` and
    /// `Transfer-Encoding` are dropped, and so is `Content-Encoding` when
    /// the host decoded the body: they describe the wire message, not the
    /// decoded, scrubbed body given here.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from gzip or deflate if it was encoded.
    pub body: Vec<u8>,
}

/// The `fetch` primitive: links `orbit:runtime/fetch`, and sends mediated
/// requests for hosts through [`Fetch::send`].
///
/// Cheap to clone: clones share one HTTP client (HTTP/1.1, TLS by rustls
/// with the webpki roots, no proxy, no redirects, connection pooling).
#[derive(Clone)]
pub struct Fetch {
    inner: Arc<Inner>,
}

impl Fetch {
    /// Builds the primitive. Its HTTP client is built at the first request:
    /// building one loads the TLS roots
    /// (about 80 µs), which a process that sends nothing, such as most
    /// `orbit run`s, never needs.
    ///
    /// # Errors
    /// None today; the `Result` is kept for settings checked here later. A
    /// client that cannot be built (for example when the TLS backend fails
    /// to initialise) fails each request with [`FetchError::Internal`].
    pub fn new(config: FetchConfig, resolver: Arc<dyn SecretResolver>) -> Result<Fetch, FetchError> {
        let policy = Arc::new(AddressPolicy::new(config.allow_ips.clone()));
        let slots = Arc::new(tokio::sync::Semaphore::new(config::permits(config.max_concurrent_requests)));
        let own = Arc::default();
        let client = std::sync::OnceLock::new();
        Ok(Fetch { inner: Arc::new(Inner { config, policy, own, client, resolver, slots }) })
    }

    /// Marks `addr` as a listen address of this host's own server (such as
    /// `orbit serve`): no request reaches it, by IP or by any name that
    /// resolves to it, even when [`FetchConfig::allow_ips`] covers it. A
    /// server bound to `0.0.0.0` or `::` is guarded on every loopback and
    /// non-public address of its port.
    pub fn protect(&self, addr: std::net::SocketAddr) {
        self.inner.own.add(addr);
    }

    /// The configuration in force.
    pub fn config(&self) -> &FetchConfig {
        &self.inner.config
    }

    /// Sends `req` on behalf of workspace `ws`, with the whole policy a
    /// guest's request gets (validation, egress and address checks, secret
    /// injection and scrubbing, caps and timeouts), and waits for the whole
    /// response. No per-run request count or per-run concurrency cap applies
    /// here; [`FetchConfig::max_concurrent_requests`] does.
    ///
    /// # Errors
    /// A [`FetchError`]; [`FetchError::code`] gives the WIT error code a
    /// guest would receive.
    pub async fn send(&self, ws: &WorkspaceId, req: FetchRequest) -> Result<FetchResponse, FetchError> {
        self.inner.send(ws, &Caller::host(), req, &Mutex::new(CallFacts::default())).await
    }
}
