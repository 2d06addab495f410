//! One mediated request: validation, egress and address checks, secret
//! injection, the capped response, and scrubbing.

use std::io::Read;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use orbit_vault::{Placement, SecretMeta, SecretResolver, SecretUse, SecretValue};
use orbit_workspace::{Principal, WorkspaceId};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;
use zeroize::Zeroizing;

use crate::addr::{AddressPolicy, BlockedResolution, ResolveFailed, VettingResolver};
use crate::config::FetchConfig;
use crate::error::{FetchError, SecretDenial};
use crate::{FetchRequest, FetchResponse};
use orbit_scrub::Scrubber;

// Guest headers that are refused: the same list the vault refuses as a
// placement, so a secret never goes where a guest header could not.
use orbit_vault::FORBIDDEN_HEADERS;

/// The codings the host can decode (and so scrub) and asks for.
const ACCEPT_ENCODING: &str = "gzip, deflate";

/// Guest headers refused on a request that uses secrets: a ranged response
/// could hold a fragment of an echoed value, which scrubbing (whole values
/// only) would not find.
const RANGE_HEADERS: &[&str] = &["range", "if-range"];

/// Shortest time a call refused for a secret reason takes, from its start:
/// an unknown secret and one not bound to the request are refused after
/// different amounts of work, and must not be told apart by timing.
pub(crate) const SECRET_DENIAL_MIN: Duration = Duration::from_millis(5);

/// Facts about one call, for its span. Names only: never values.
#[derive(Debug, Default)]
pub(crate) struct CallFacts {
    pub(crate) method: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) status: Option<u16>,
    pub(crate) secrets_requested: Vec<String>,
    pub(crate) secrets_used: Vec<String>,
    pub(crate) secrets_denied: Vec<String>,
}

/// Longest secret name recorded on a span; longer (hence invalid) names are
/// recorded shortened.
const MAX_RECORDED_NAME: usize = 128;

pub(crate) fn recordable_name(name: &str) -> String {
    if name.len() <= MAX_RECORDED_NAME && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        name.to_owned()
    } else {
        let mut s: String =
            name.chars().filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c)).take(MAX_RECORDED_NAME).collect();
        s.push_str("<invalid>");
        s
    }
}

impl CallFacts {
    /// The names of `requested` as recorded on a span: distinct, made
    /// recordable, at most `max` of them.
    pub(crate) fn requested(requested: &[String], max: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in requested {
            let name = recordable_name(name);
            if out.len() >= max {
                break;
            }
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    /// Span attributes: `method`, `host`, `status`, `secrets_requested`
    /// (names the request asked for, comma separated, at most
    /// `max_secrets_per_request` of them), `secrets` (names injected) and one
    /// `secret_denied` per refused name.
    pub(crate) fn into_attrs(self) -> Vec<(String, String)> {
        let mut attrs = Vec::new();
        if let Some(m) = self.method {
            attrs.push(("method".to_owned(), m));
        }
        if let Some(h) = self.host {
            attrs.push(("host".to_owned(), h));
        }
        if let Some(s) = self.status {
            attrs.push(("status".to_owned(), s.to_string()));
        }
        if !self.secrets_requested.is_empty() {
            attrs.push(("secrets_requested".to_owned(), self.secrets_requested.join(",")));
        }
        if !self.secrets_used.is_empty() {
            attrs.push(("secrets".to_owned(), self.secrets_used.join(",")));
        }
        for n in self.secrets_denied {
            attrs.push(("secret_denied".to_owned(), n));
        }
        attrs
    }
}

fn set<T>(facts: &Mutex<CallFacts>, f: impl FnOnce(&mut CallFacts) -> T) -> T {
    f(&mut facts.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The shared, engine-lifetime part of the primitive.
pub(crate) struct Inner {
    pub(crate) config: FetchConfig,
    pub(crate) policy: Arc<AddressPolicy>,
    /// The host's own servers' listen addresses: never a destination.
    pub(crate) own: Arc<crate::addr::OwnAddresses>,
    /// Built at the first request ([`Inner::client`]).
    pub(crate) client: std::sync::OnceLock<reqwest::Client>,
    pub(crate) resolver: Arc<dyn SecretResolver>,
    /// Requests in flight, all runs together
    /// ([`FetchConfig::max_concurrent_requests`]).
    pub(crate) slots: Arc<Semaphore>,
}

/// Waits for a permit of `slots` until `until`.
///
/// # Errors
/// [`FetchError::Timeout`] when none is free in time.
pub(crate) async fn acquire_slot(
    slots: &Arc<Semaphore>,
    until: tokio::time::Instant,
    what: &str,
) -> Result<OwnedSemaphorePermit, FetchError> {
    match tokio::time::timeout_at(until, slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_closed)) => Err(FetchError::Internal(format!("the {what} request slots are closed"))),
        Err(_) => Err(FetchError::Timeout(format!("no free {what} request slot in time"))),
    }
}

/// Who a request is sent for: recorded with each use of a secret.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The run's principal, or the host caller's.
    pub(crate) principal: Principal,
    /// The run's id, when a run sends.
    pub(crate) run_id: Option<String>,
}

impl Caller {
    /// The host itself, outside any run ([`Principal::embedded`]).
    pub(crate) fn host() -> Self {
        Self { principal: Principal::embedded(), run_id: None }
    }
}

/// Records the use of the injected secrets when dropped, that is once the
/// request is over (answered, failed or abandoned), through
/// [`SecretResolver::record_use`]: the vault's last-use time and, with a
/// resolver that keeps one, the audit trail (secret name, origin, run id,
/// principal; never a value). Each record is a write transaction, kept off
/// the request's path on the blocking pool, so it may land after the run's
/// record. A failure is logged (workspace, name and error; never a value).
struct MarkUsed {
    resolver: Arc<dyn SecretResolver>,
    ws: WorkspaceId,
    names: Vec<String>,
    secret_use: SecretUse,
}

impl Drop for MarkUsed {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.names);
        if names.is_empty() {
            return;
        }
        let (resolver, ws, secret_use) = (self.resolver.clone(), self.ws.clone(), self.secret_use.clone());
        let record = move || {
            for name in names {
                if let Err(e) = resolver.record_use(&ws, &name, &secret_use) {
                    tracing::warn!(workspace = ws.as_str(), secret = %name, error = %e, "recording a secret's use failed");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(record)),
            Err(_) => record(),
        }
    }
}

/// Where a request goes, as matched against a secret's bindings.
struct Target {
    scheme: String,
    host: String,
    port: u16,
    method: String,
    path: String,
}

impl Target {
    fn binds(&self, meta: &SecretMeta) -> bool {
        meta.hosts.iter().any(|b| b.matches(&self.scheme, &self.host, self.port, &self.method, &self.path))
    }
}

/// What looking up a request's secrets found.
enum Lookup {
    /// Every secret, bound to the request, decrypted.
    Found(Vec<(SecretMeta, SecretValue)>),
    /// The first name refused, and why.
    Denied(String, SecretDenial),
    /// The vault failed.
    Failed(orbit_vault::VaultError),
}

/// A request that passed validation and the egress checks.
struct Checked {
    method: reqwest::Method,
    url: Url,
    scheme: String,
    /// Host as matched against bindings: lowercase name without a
    /// trailing dot, or a canonical IP literal without brackets.
    host: String,
    port: u16,
    headers: HeaderMap,
    body: Vec<u8>,
    timeout: Duration,
    secrets: Vec<String>,
}

fn invalid(msg: impl Into<String>) -> FetchError {
    FetchError::InvalidRequest(msg.into())
}

/// Whether a guest header value is acceptable: visible ASCII, space and
/// horizontal tab only (RFC 9110 §5.5 field-vchar without obs-text), and no
/// leading or trailing whitespace.
fn valid_header_value(v: &str) -> bool {
    v.bytes().all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
        && !v.starts_with([' ', '\t'])
        && !v.ends_with([' ', '\t'])
}

impl Inner {
    /// The shared HTTP client (HTTP/1.1, no proxy, no redirects, connection
    /// pooling), built at the first call. It connects only to addresses the
    /// policy's resolver vetted ([`VettingResolver`]).
    ///
    /// # Errors
    /// [`FetchError::Internal`] when the client cannot be built (for
    /// example when the TLS backend fails to initialise).
    pub(crate) fn client(&self) -> Result<&reqwest::Client, FetchError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let dns = VettingResolver { policy: self.policy.clone(), timeout: self.config.connect_timeout };
        let built = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect on the guest's behalf to addresses this
            // primitive never checked.
            .no_proxy()
            .dns_resolver(Arc::new(dns))
            .connect_timeout(self.config.connect_timeout)
            .referer(false)
            .https_only(false)
            .build()
            .map_err(|e| FetchError::Internal(format!("building the HTTP client: {e}")))?;
        // Two first requests at once may both build one; the first kept wins.
        Ok(self.client.get_or_init(|| built))
    }
    /// Refuses a request to this host's own server (`orbit serve`), by IP
    /// or by any name that resolves to it, whatever `allow_ips` says.
    async fn check_not_own(&self, req: &Checked) -> Result<(), FetchError> {
        if !self.own.guards(req.port) {
            return Ok(());
        }
        let addrs: Vec<IpAddr> = match req.url.host() {
            Some(url::Host::Ipv4(a)) => vec![IpAddr::V4(a)],
            Some(url::Host::Ipv6(a)) => vec![IpAddr::V6(a)],
            _ => {
                let lookup = tokio::net::lookup_host((req.host.as_str(), req.port));
                match tokio::time::timeout(self.config.connect_timeout, lookup).await {
                    Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                    // The request's own resolution reports the failure.
                    _ => Vec::new(),
                }
            }
        };
        match addrs.into_iter().find(|a| self.own.hits(*a, req.port)) {
            Some(addr) => {
                Err(FetchError::AddressDenied { host: req.host.clone(), addr, reason: "this Orbit server itself" })
            }
            None => Ok(()),
        }
    }

    /// Validates `req` and applies the workspace's egress policy and the
    /// address policy to its URL's host.
    fn check(&self, ws: &WorkspaceId, req: FetchRequest, facts: &Mutex<CallFacts>) -> Result<Checked, FetchError> {
        let cfg = &self.config;
        let requested = CallFacts::requested(&req.secrets, cfg.max_secrets_per_request);
        set(facts, |f| f.secrets_requested = requested);
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| invalid("bad method"))?;
        set(facts, |f| f.method = Some(method.as_str().to_owned()));
        if method == reqwest::Method::CONNECT || method == reqwest::Method::TRACE {
            return Err(invalid(format!("method {method} is not allowed")));
        }
        if req.url.len() > cfg.max_url_bytes {
            return Err(FetchError::RequestTooLarge { what: "url", size: req.url.len(), limit: cfg.max_url_bytes });
        }
        let mut url = Url::parse(&req.url).map_err(|e| invalid(format!("bad URL: {e}")))?;
        let scheme = url.scheme().to_owned();
        if scheme != "http" && scheme != "https" {
            return Err(invalid(format!("scheme {scheme:?} is not http or https")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("credentials in the URL are not allowed"));
        }
        url.set_fragment(None);
        let (host, ip) = match url.host() {
            Some(url::Host::Domain(d)) => (d.trim_end_matches('.').to_ascii_lowercase(), None),
            Some(url::Host::Ipv4(a)) => (a.to_string(), Some(IpAddr::V4(a))),
            Some(url::Host::Ipv6(a)) => (a.to_string(), Some(IpAddr::V6(a))),
            None => return Err(invalid("URL has no host")),
        };
        if host.is_empty() {
            return Err(invalid("URL has an empty host"));
        }
        set(facts, |f| f.host = Some(host.clone()));
        let port = url.port_or_known_default().ok_or_else(|| invalid("URL has no port"))?;
        if !cfg.egress_for(ws.as_str()).allows(&host) {
            return Err(FetchError::HostNotAllowed { host });
        }
        // hyper-util never asks the resolver about IP literals: check them
        // here, on the parsed host that is also what gets sent.
        if let Some(ip) = ip {
            self.policy.check(ip).map_err(|reason| FetchError::AddressDenied {
                host: host.clone(),
                addr: ip,
                reason,
            })?;
        }

        if req.headers.len() > cfg.max_request_headers {
            return Err(FetchError::RequestTooLarge {
                what: "header count",
                size: req.headers.len(),
                limit: cfg.max_request_headers,
            });
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &req.headers {
            let size = name.len() + value.len();
            if size > cfg.max_header_bytes {
                return Err(FetchError::RequestTooLarge { what: "header", size, limit: cfg.max_header_bytes });
            }
            let hname = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("bad header name"))?;
            if FORBIDDEN_HEADERS.contains(&hname.as_str()) {
                return Err(invalid(format!("header {hname} may not be set")));
            }
            if !valid_header_value(value) {
                return Err(invalid(format!("bad value for header {hname}")));
            }
            let hvalue = HeaderValue::from_str(value).map_err(|_| invalid(format!("bad value for header {hname}")))?;
            headers.append(hname, hvalue);
        }
        // Only codings the host can decode, so that it can always scrub.
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(ACCEPT_ENCODING));

        if req.body.len() > cfg.max_request_body_bytes {
            return Err(FetchError::RequestTooLarge {
                what: "body",
                size: req.body.len(),
                limit: cfg.max_request_body_bytes,
            });
        }
        let mut secrets: Vec<String> = Vec::new();
        for s in req.secrets {
            if !secrets.contains(&s) {
                secrets.push(s);
            }
        }
        if secrets.len() > cfg.max_secrets_per_request {
            return Err(invalid(format!(
                "{} secrets named, over the limit of {}",
                secrets.len(),
                cfg.max_secrets_per_request
            )));
        }
        if !secrets.is_empty()
            && let Some(h) = RANGE_HEADERS.iter().find(|h| headers.contains_key(**h))
        {
            return Err(invalid(format!("header {h} may not be set on a request that uses secrets")));
        }
        let timeout = req.timeout.map_or(cfg.total_timeout, |t| t.min(cfg.total_timeout));
        Ok(Checked { method, url, scheme, host, port, headers, body: req.body, timeout, secrets })
    }

    /// Looks the named secrets up and checks their bindings. Stops at the
    /// first refusal, which it records on `facts`.
    ///
    /// Bindings are checked first on each secret's metadata, which costs no
    /// decryption; only when every named secret is bound are they
    /// decrypted, and the bindings checked again on the metadata that
    /// decryption authenticates.
    async fn resolve_secrets(
        &self,
        ws: &WorkspaceId,
        req: &Checked,
        facts: &Mutex<CallFacts>,
    ) -> Result<Vec<(SecretMeta, SecretValue)>, FetchError> {
        if req.secrets.is_empty() {
            return Ok(Vec::new());
        }
        let resolver = self.resolver.clone();
        let (ws2, names) = (ws.clone(), req.secrets.clone());
        let target = Target {
            scheme: req.scheme.clone(),
            host: req.host.clone(),
            port: req.port,
            method: req.method.as_str().to_owned(),
            path: req.url.path().to_owned(),
        };
        let looked_up = tokio::task::spawn_blocking(move || {
            for name in &names {
                let denial = match resolver.meta(&ws2, name) {
                    Err(orbit_vault::VaultError::InvalidSecretName(_)) | Ok(None) => SecretDenial::Unknown,
                    Err(e) => return Lookup::Failed(e),
                    Ok(Some(meta)) if target.binds(&meta) => continue,
                    Ok(Some(_)) => SecretDenial::NotBound,
                };
                return Lookup::Denied(name.clone(), denial);
            }
            let mut out = Vec::with_capacity(names.len());
            for name in &names {
                let denial = match resolver.resolve(&ws2, name) {
                    Err(orbit_vault::VaultError::InvalidSecretName(_)) | Ok(None) => SecretDenial::Unknown,
                    Err(e) => return Lookup::Failed(e),
                    Ok(Some((meta, value))) if target.binds(&meta) => {
                        out.push((meta, value));
                        continue;
                    }
                    Ok(Some(_)) => SecretDenial::NotBound,
                };
                return Lookup::Denied(name.clone(), denial);
            }
            Lookup::Found(out)
        })
        .await
        .map_err(|e| FetchError::Internal(format!("secret lookup task failed: {e}")))?;
        match looked_up {
            Lookup::Found(out) => Ok(out),
            Lookup::Failed(e) => Err(FetchError::Vault(e.to_string())),
            Lookup::Denied(name, reason) => {
                let recorded = recordable_name(&name);
                set(facts, |f| f.secrets_denied.push(recorded.clone()));
                Err(FetchError::SecretDenied { name: recorded, reason })
            }
        }
    }

    /// Sends `req` for workspace `ws`, recording span facts on `facts`.
    ///
    /// A refusal for a secret reason comes no sooner than
    /// [`SECRET_DENIAL_MIN`] after the call.
    pub(crate) async fn send(
        &self,
        ws: &WorkspaceId,
        caller: &Caller,
        req: FetchRequest,
        facts: &Mutex<CallFacts>,
    ) -> Result<FetchResponse, FetchError> {
        let started = tokio::time::Instant::now();
        let result = self.send_from(started, ws, caller, req, facts).await;
        if let Err(FetchError::SecretDenied { .. }) = &result {
            tokio::time::sleep_until(started + SECRET_DENIAL_MIN).await;
        }
        result
    }

    async fn send_from(
        &self,
        started: tokio::time::Instant,
        ws: &WorkspaceId,
        caller: &Caller,
        req: FetchRequest,
        facts: &Mutex<CallFacts>,
    ) -> Result<FetchResponse, FetchError> {
        let mut req = self.check(ws, req, facts)?;
        self.check_not_own(&req).await?;
        let deadline = started + req.timeout;
        // Held to the end of the response.
        let _slot = acquire_slot(&self.slots, deadline, "shared").await?;
        let secrets = self.resolve_secrets(ws, &req, facts).await?;

        // Inject each secret where its placement says; collect what to
        // scrub from the response.
        let mut values: Vec<Zeroizing<String>> = Vec::new();
        let mut derived: Vec<Zeroizing<String>> = Vec::new();
        let mut injected: Vec<HeaderName> = Vec::new();
        for (meta, value) in &secrets {
            let v = value.expose();
            values.push(Zeroizing::new(v.to_owned()));
            let unplaceable =
                || FetchError::Internal(format!("secret {:?} cannot be placed in the request", meta.name));
            match &meta.placement {
                Placement::Header { name, template } => {
                    let hname = HeaderName::from_bytes(name.as_bytes()).map_err(|_| unplaceable())?;
                    let rendered = Zeroizing::new(template.replacen("{}", v, 1));
                    let mut hv = HeaderValue::from_str(&rendered).map_err(|_| unplaceable())?;
                    hv.set_sensitive(true);
                    place_header(&mut req.headers, &mut injected, hname, hv)?;
                    derived.push(rendered);
                }
                Placement::Basic { username } => {
                    // RFC 7617 §2: base64 of user-id ":" password.
                    let pair = Zeroizing::new(format!("{username}:{v}"));
                    let cred = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()));
                    let rendered = Zeroizing::new(format!("Basic {}", cred.as_str()));
                    let mut hv = HeaderValue::from_str(&rendered).map_err(|_| unplaceable())?;
                    hv.set_sensitive(true);
                    place_header(&mut req.headers, &mut injected, header::AUTHORIZATION, hv)?;
                    derived.push(cred);
                }
                Placement::Query { param } => {
                    let kept: Option<Vec<(String, String)>> =
                        req.url.query_pairs().any(|(k, _)| k == param.as_str()).then(|| {
                            req.url
                                .query_pairs()
                                .filter(|(k, _)| k != param.as_str())
                                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                                .collect()
                        });
                    if let Some(kept) = kept {
                        req.url.set_query(None);
                        let mut q = req.url.query_pairs_mut();
                        for (k, val) in &kept {
                            q.append_pair(k, val);
                        }
                    }
                    req.url.query_pairs_mut().append_pair(param, v);
                }
                _ => return Err(unplaceable()),
            }
        }
        // No scrubber, no request: its response could not be scrubbed.
        let scrubber = scrubber(values.iter().map(|v| v.as_str()), derived.iter().map(|v| v.as_str()));
        drop(derived);
        drop(values);
        let scrubber = scrubber?;
        let names: Vec<String> = secrets.iter().map(|(m, _)| m.name.clone()).collect();
        drop(secrets);
        if !names.is_empty() {
            set(facts, |f| f.secrets_used = names.clone());
        }
        // Recorded in the vault once this call is over, whatever its end.
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let _mark_used = MarkUsed {
            resolver: self.resolver.clone(),
            ws: ws.clone(),
            names,
            secret_use: SecretUse {
                at_ms,
                origin: orbit_vault::origin_of(&req.scheme, &req.host, req.port),
                run_id: caller.run_id.clone(),
                principal: caller.principal.clone(),
            },
        };

        let result = self.exchange(req, deadline, &scrubber, facts).await;
        // Error detail may quote upstream text; it never leaves unscrubbed.
        result.map_err(|e| scrub_error(e, &scrubber))
    }

    /// Sends the prepared request and reads the response under the caps.
    async fn exchange(
        &self,
        req: Checked,
        deadline: tokio::time::Instant,
        scrubber: &Scrubber,
        facts: &Mutex<CallFacts>,
    ) -> Result<FetchResponse, FetchError> {
        let cfg = &self.config;
        let head_deadline = deadline.min(tokio::time::Instant::now() + cfg.first_byte_timeout);
        let request = self.client()?.request(req.method, req.url).headers(req.headers).body(req.body);
        let mut resp = match tokio::time::timeout_at(head_deadline, request.send()).await {
            Err(_) => return Err(FetchError::Timeout("no response head in time".to_owned())),
            Ok(Err(e)) => return Err(classify(e)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        set(facts, |f| f.status = Some(status));

        let headers = resp.headers();
        if headers.len() > cfg.max_response_headers {
            return Err(FetchError::ResponseTooLarge(format!(
                "{} header fields, over the limit of {}",
                headers.len(),
                cfg.max_response_headers
            )));
        }
        for (name, value) in headers {
            let size = name.as_str().len() + value.len();
            if size > cfg.max_header_bytes {
                return Err(FetchError::ResponseTooLarge(format!(
                    "header {name} is {size} bytes, over the limit of {}",
                    cfg.max_header_bytes
                )));
            }
        }
        let coding = content_coding(headers)?;

        let cap = cfg.max_response_body_bytes;
        let mut raw: Vec<u8> = Vec::new();
        loop {
            let chunk = match tokio::time::timeout_at(deadline, resp.chunk()).await {
                Err(_) => return Err(FetchError::Timeout("response body not complete in time".to_owned())),
                Ok(Err(e)) => return Err(classify(e)),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            if raw.len() + chunk.len() > cap {
                return Err(FetchError::ResponseTooLarge(format!("body over the limit of {cap} bytes")));
            }
            raw.extend_from_slice(&chunk);
        }
        let body = decode(coding, raw, cap)?;

        let mut out_headers = Vec::with_capacity(resp.headers().len());
        for (name, value) in resp.headers() {
            // The body handed over is whole, decoded and scrubbed: framing
            // and coding headers no longer describe it.
            if name == header::CONTENT_LENGTH
                || name == header::TRANSFER_ENCODING
                || (name == header::CONTENT_ENCODING && coding != Coding::Identity)
            {
                continue;
            }
            let n = scrubber.text(name.as_str());
            let v = String::from_utf8_lossy(&scrubber.bytes(value.as_bytes())).into_owned();
            out_headers.push((n, v));
        }
        // Each replacement may be longer than what it replaces.
        let body = scrubber.bytes(&body);
        if body.len() > cap {
            return Err(FetchError::ResponseTooLarge(format!("body over the limit of {cap} bytes once scrubbed")));
        }
        Ok(FetchResponse { status, headers: out_headers, body })
    }
}

/// Puts an injected header in place of any guest header of that name;
/// two secrets may not claim the same header.
fn place_header(
    headers: &mut HeaderMap,
    injected: &mut Vec<HeaderName>,
    name: HeaderName,
    value: HeaderValue,
) -> Result<(), FetchError> {
    if injected.contains(&name) {
        return Err(invalid(format!("two secrets are placed in header {name}")));
    }
    headers.insert(name.clone(), value);
    injected.push(name);
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
    Deflate,
}

/// The response's content coding (RFC 9110 §8.4). Codings the host cannot
/// decode are refused: an encoded body could not be scrubbed.
fn content_coding(headers: &HeaderMap) -> Result<Coding, FetchError> {
    let mut codings = Vec::new();
    for v in headers.get_all(header::CONTENT_ENCODING) {
        let v = v.to_str().map_err(|_| FetchError::Upstream("unreadable content-encoding".to_owned()))?;
        for c in v.split(',').map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty() && c != "identity") {
            codings.push(c);
        }
    }
    match codings.as_slice() {
        [] => Ok(Coding::Identity),
        [c] if c == "gzip" || c == "x-gzip" => Ok(Coding::Gzip),
        [c] if c == "deflate" => Ok(Coding::Deflate),
        _ => Err(FetchError::Upstream(format!("unsupported content-encoding {}", codings.join(", ")))),
    }
}

/// Decodes `raw`, never producing more than `cap` bytes (a compression
/// bomb stops at the cap).
fn decode(coding: Coding, raw: Vec<u8>, cap: usize) -> Result<Vec<u8>, FetchError> {
    let reader: Box<dyn Read + '_> = match coding {
        Coding::Identity => return Ok(raw),
        Coding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw.as_slice())),
        // "deflate" is zlib (RFC 9110 §8.4.1.2); some servers send raw
        // deflate, recognised by the absence of a zlib header.
        Coding::Deflate if is_zlib_header(&raw) => Box::new(flate2::read::ZlibDecoder::new(raw.as_slice())),
        Coding::Deflate => Box::new(flate2::read::DeflateDecoder::new(raw.as_slice())),
    };
    let mut out = Vec::new();
    reader
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| FetchError::Upstream(format!("bad {coding:?} body: {e}")))?;
    if out.len() > cap {
        return Err(FetchError::ResponseTooLarge(format!("decoded body over the limit of {cap} bytes")));
    }
    Ok(out)
}

fn is_zlib_header(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// Maps an HTTP client error to a [`FetchError`], looking through its
/// source chain for the resolver's verdicts and hyper's parse limits.
fn classify(e: reqwest::Error) -> FetchError {
    let e = e.without_url();
    let mut chain = String::new();
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = src {
        if let Some(b) = err.downcast_ref::<BlockedResolution>() {
            return FetchError::AddressDenied { host: b.host.clone(), addr: b.addr, reason: b.reason };
        }
        if let Some(r) = err.downcast_ref::<ResolveFailed>() {
            return FetchError::Upstream(r.to_string());
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && h.is_parse_too_large()
        {
            return FetchError::ResponseTooLarge("response head over the HTTP parser's limits".to_owned());
        }
        if !chain.is_empty() {
            chain.push_str(": ");
        }
        chain.push_str(&err.to_string());
        src = err.source();
    }
    if e.is_timeout() { FetchError::Timeout(chain) } else { FetchError::Upstream(chain) }
}

#[cfg(test)]
thread_local! {
    /// Makes [`scrubber`] fail on this thread, as a matcher that cannot be
    /// built would.
    static FAIL_BUILD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The scrubber for a request's secret `values` and the header and query
/// texts `derived` from them (see [`Scrubber::new`]).
///
/// # Errors
/// [`FetchError::Internal`] when it cannot be built: the caller must then
/// not send the request, whose response it could not scrub.
fn scrubber<'a>(
    values: impl IntoIterator<Item = &'a str>,
    derived: impl IntoIterator<Item = &'a str>,
) -> Result<Scrubber, FetchError> {
    #[cfg(test)]
    if FAIL_BUILD.get() {
        return Err(FetchError::Internal("building the secret scrubber: injected failure".to_owned()));
    }
    Scrubber::new(values, derived).map_err(|e| FetchError::Internal(e.to_string()))
}

/// `e` with any secret form removed from its detail text.
fn scrub_error(e: FetchError, s: &Scrubber) -> FetchError {
    match e {
        FetchError::Upstream(d) => FetchError::Upstream(s.text(&d)),
        FetchError::Timeout(d) => FetchError::Timeout(s.text(&d)),
        FetchError::ResponseTooLarge(d) => FetchError::ResponseTooLarge(s.text(&d)),
        FetchError::InvalidRequest(d) => FetchError::InvalidRequest(s.text(&d)),
        FetchError::Internal(d) => FetchError::Internal(s.text(&d)),
        FetchError::Vault(d) => FetchError::Vault(s.text(&d)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn decode_caps_bombs() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 1 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 4096);
        assert!(matches!(decode(Coding::Gzip, bomb.clone(), 1000), Err(FetchError::ResponseTooLarge(_))));
        assert_eq!(decode(Coding::Gzip, bomb, 1 << 20).unwrap().len(), 1 << 20);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"hello").unwrap();
        assert_eq!(decode(Coding::Deflate, z.finish().unwrap(), 10).unwrap(), b"hello");
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(b"hello").unwrap();
        assert_eq!(decode(Coding::Deflate, d.finish().unwrap(), 10).unwrap(), b"hello");
    }

    #[test]
    fn codings() {
        let mut h = HeaderMap::new();
        assert_eq!(content_coding(&h).unwrap(), Coding::Identity);
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("GZIP"));
        assert_eq!(content_coding(&h).unwrap(), Coding::Gzip);
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert!(content_coding(&h).is_err());
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip, gzip"));
        assert!(content_coding(&h).is_err());
    }

    #[test]
    fn header_values() {
        assert!(valid_header_value("Bearer abc"));
        for bad in ["a\r\nb", "a\nb", "a\0", "\u{7f}", " lead", "trail ", "ünï"] {
            assert!(!valid_header_value(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_scrubber_that_cannot_be_built_stops_the_request_before_it_is_sent() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use orbit_vault::{HostBinding, MasterKey, Vault};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((_stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::open(&dir.path().join("vault.redb"), MasterKey::from_bytes([7; 32])).unwrap());
        let ws = WorkspaceId::new("acme").unwrap();
        let placement = Placement::Header { name: "Authorization".into(), template: "Bearer {}".into() };
        let binding = HostBinding::parse(&format!("http://{addr}")).unwrap();
        vault
            .set(
                &ws,
                "api",
                SecretValue::new("a-secret-value-0123".into()),
                vec![binding],
                placement,
                &orbit_workspace::UserId::new("t").unwrap(),
            )
            .unwrap();
        let config = FetchConfig { allow_ips: vec!["127.0.0.1/32".parse().unwrap()], ..FetchConfig::default() };
        let fetch = crate::Fetch::new(config, vault).unwrap();
        let req = FetchRequest {
            method: "GET".into(),
            url: format!("http://{addr}/"),
            secrets: vec!["api".into()],
            ..FetchRequest::default()
        };

        FAIL_BUILD.set(true);
        let result = fetch.send(&ws, req).await;
        FAIL_BUILD.set(false);
        assert!(matches!(result, Err(FetchError::Internal(_))), "{result:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn names_on_spans_are_bounded() {
        assert_eq!(recordable_name("api_key-1.x"), "api_key-1.x");
        assert_eq!(recordable_name("a b\n"), "ab<invalid>");
        assert!(recordable_name(&"x".repeat(1000)).len() <= MAX_RECORDED_NAME + 9);
    }
}
