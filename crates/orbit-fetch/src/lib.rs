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
//! Every request goes through, in order:
//! 1. validation: method token (RFC 9110 §9; `CONNECT` and `TRACE` refused),
//!    absolute `http`/`https` URL without credentials, guest header names
//!    and values (no CR, LF or other control characters; `Host`,
//!    `Content-Length`, `Transfer-Encoding` and the hop-by-hop headers of
//!    RFC 9110 §7.6.1 refused), size caps;
//! 2. the workspace's [`EgressPolicy`];
//! 3. the address policy ([`denied_reason`], minus
//!    [`FetchConfig::allow_ips`]) on the parsed `url::Host` — so spellings
//!    like `http://2130706433/` or `http://0x7f.1/` are caught as the
//!    loopback address they are — and, for host names, on every address the
//!    name resolves to, once: the client connects only to those checked
//!    addresses, so DNS rebinding gets no second lookup;
//! 4. secret lookup and binding check; an unknown secret and one not bound
//!    to the request give the same `permission-denied` with the same guest
//!    message, and the attempt is recorded on the run's span;
//! 5. injection (a guest header of the same name is replaced), then the
//!    exchange under connect, first-byte and total timeouts; redirects are
//!    never followed (a 3xx goes back as is, so a secret never follows one);
//! 6. the response, read under caps on header count, header size and body
//!    size (gzip and deflate are decoded under the same cap, so a
//!    compression bomb gives `too-large`), then scrubbed.
//!
//! The primitive records one span per call (primitive `fetch`, operation
//! `fetch`) with attributes `method`, `host`, `status`, `secrets` (names
//! used) and `secret_denied` (a refused name). Spans never hold header
//! values, bodies or secret values.
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
//! detail. Each call is a span with operation `wasi-http`, recorded when
//! the guest next calls into `wasi:http` after the call finished (so its
//! span timing is that of the recording; the real duration is the
//! `duration_us` attribute).

mod addr;
mod config;
mod error;
mod host;
mod scrub;
mod send;
mod wasi_http;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orbit_workspace::WorkspaceId;

pub use addr::denied_reason;
pub use config::{EgressPolicy, FetchConfig};
pub use error::{FetchError, SecretDenial};
pub use host::FetchView;
pub use orbit_vault::SecretResolver;
pub use scrub::REDACTED;
pub use wasi_http::SECRETS_HEADER;

use crate::addr::{AddressPolicy, VettingResolver};
use crate::send::{CallFacts, Inner};

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
    /// Builds the primitive and its HTTP client.
    ///
    /// # Errors
    /// [`FetchError::Internal`] when the HTTP client cannot be built (for
    /// example when the TLS backend fails to initialise).
    pub fn new(config: FetchConfig, resolver: Arc<dyn SecretResolver>) -> Result<Fetch, FetchError> {
        let policy = Arc::new(AddressPolicy::new(config.allow_ips.clone()));
        let dns = VettingResolver { policy: policy.clone(), timeout: config.connect_timeout };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect on the guest's behalf to addresses this
            // primitive never checked.
            .no_proxy()
            .dns_resolver(Arc::new(dns))
            .connect_timeout(config.connect_timeout)
            .referer(false)
            .https_only(false)
            .build()
            .map_err(|e| FetchError::Internal(format!("building the HTTP client: {e}")))?;
        Ok(Fetch { inner: Arc::new(Inner { config, policy, client, resolver }) })
    }

    /// The configuration in force.
    pub fn config(&self) -> &FetchConfig {
        &self.inner.config
    }

    /// Sends `req` on behalf of workspace `ws`, with the whole policy a
    /// guest's request gets (validation, egress and address checks, secret
    /// injection and scrubbing, caps and timeouts), and waits for the whole
    /// response. No per-run request count applies here.
    ///
    /// # Errors
    /// A [`FetchError`]; [`FetchError::code`] gives the WIT error code a
    /// guest would receive.
    pub async fn send(&self, ws: &WorkspaceId, req: FetchRequest) -> Result<FetchResponse, FetchError> {
        self.inner.send(ws, req, &Mutex::new(CallFacts::default())).await
    }
}
