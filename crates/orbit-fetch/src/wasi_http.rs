//! `wasi:http/outgoing-handler` routed through the same policy and secret
//! injection as `fetch` (see the crate documentation, "Standard clients").

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use orbit_engine::orbit_runs::Span;
use orbit_engine::{HostError, RunInfo, code_name};
use orbit_workspace::permission::{Action, Target};
use orbit_workspace::{Principal, WorkspaceId};
use tokio::sync::Semaphore;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::send::{CallFacts, Caller, Inner, acquire_slot};
use crate::{FetchError, FetchRequest, FetchResponse};

/// The request header in which a `wasi:http` guest names the secrets to
/// inject, comma separated. Removed before the request is sent.
pub const SECRETS_HEADER: &str = "x-orbit-secrets";

/// Outcome of a call the guest abandoned, or that was in flight when the
/// run ended.
const CANCELLED: &str = "cancelled";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a `wasi:http` call ended.
struct CallEnd {
    at: Instant,
    bytes_out: usize,
    /// `ok`, an error code name, or [`CANCELLED`].
    outcome: String,
    /// Operator detail of an error.
    error: Option<String>,
}

/// One `wasi:http` call, shared by the task that runs it and the run that
/// records it.
pub(crate) struct CallSlot {
    started: Instant,
    facts: Mutex<CallFacts>,
    /// Request bytes, once the request is read, and the end, once over.
    state: Mutex<(usize, Option<CallEnd>)>,
}

impl CallSlot {
    /// Ends the call unless it has ended already.
    fn end(&self, end: impl FnOnce() -> CallEnd) {
        let mut state = lock(&self.state);
        if state.1.is_none() {
            state.1 = Some(end());
        }
    }

    /// This call as a span; `None` while it is in flight, unless `cancel`,
    /// which ends it as cancelled now.
    fn to_span(&self, run: &RunInfo, cancel: bool) -> Option<Span> {
        let (bytes_in, end) = {
            let mut state = lock(&self.state);
            if state.1.is_none() && !cancel {
                return None;
            }
            let end = state.1.take().unwrap_or_else(|| cancelled("the run ended before the request finished"));
            (state.0, end)
        };
        let mut attrs = std::mem::take(&mut *lock(&self.facts)).into_attrs();
        if let Some(e) = end.error {
            attrs.push(("error".to_owned(), e));
        }
        Some(Span {
            primitive: "fetch".to_owned(),
            operation: "wasi-http".to_owned(),
            start_offset_us: run.offset_us(self.started),
            duration_us: end.at.saturating_duration_since(self.started).as_micros() as u64,
            outcome: end.outcome,
            bytes_in: bytes_in as u64,
            bytes_out: end.bytes_out as u64,
            attrs,
        })
    }
}

fn cancelled(why: &str) -> CallEnd {
    CallEnd { at: Instant::now(), bytes_out: 0, outcome: CANCELLED.to_owned(), error: Some(why.to_owned()) }
}

/// Owned by the task of a `wasi:http` call: if the task is dropped before
/// the call ends (the guest dropped its `future-incoming-response`, or the
/// run ended), ends the call as cancelled, so that it is still recorded.
struct CancelOnDrop(Arc<CallSlot>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.end(|| cancelled("the guest dropped the request before it finished"));
    }
}

/// The per-run side of `fetch` and `wasi:http`: the shared primitive, the
/// run's workspace and deadline, its request count and request slots, and
/// `wasi:http` calls not yet recorded.
pub(crate) struct RunCore {
    pub(crate) inner: Arc<Inner>,
    pub(crate) workspace: WorkspaceId,
    /// Who the run acts for.
    pub(crate) principal: Principal,
    /// The run's id, recorded with each use of a secret.
    pub(crate) run_id: String,
    pub(crate) deadline: tokio::time::Instant,
    /// The run's named budgets: its requests, through either interface
    /// (refused ones included), are [`REQUEST_BUDGET`](crate::REQUEST_BUDGET).
    pub(crate) budgets: orbit_engine::Budgets,
    /// Requests of this run in flight
    /// ([`FetchConfig::max_concurrent_requests_per_run`](crate::FetchConfig::max_concurrent_requests_per_run)).
    pub(crate) slots: Arc<Semaphore>,
    /// `wasi:http` calls not yet recorded, in the order they started.
    pub(crate) calls: Arc<Mutex<Vec<Arc<CallSlot>>>>,
}

impl RunCore {
    /// Who the run's requests are sent for.
    pub(crate) fn caller(&self) -> Caller {
        Caller { principal: self.principal.clone(), run_id: Some(self.run_id.clone()) }
    }

    /// Counts one call; `Err` once the run is over its limit.
    pub(crate) fn count_request(&mut self) -> Result<(), FetchError> {
        self.budgets
            .spend(crate::REQUEST_BUDGET, 1)
            .map_err(|e| FetchError::TooManyRequests { limit: u32::try_from(e.limit).unwrap_or(u32::MAX) })
    }

    /// The one permission check of `fetch` and `wasi:http`: GET and HEAD
    /// are safe methods (RFC 9110, 9.2.1); any other needs
    /// [`Action::FetchUnsafeMethod`]. Methods are case-sensitive, so `get`
    /// is not GET.
    pub(crate) fn check_method(&self, method: &str) -> Result<(), FetchError> {
        if method == "GET" || method == "HEAD" {
            return Ok(());
        }
        self.principal
            .check(Action::FetchUnsafeMethod, &Target::default())
            .map_err(|denied| FetchError::MethodDenied { method: method.to_owned(), reason: denied.to_string() })
    }

    /// Records `wasi:http` calls on `run` as spans with their own timing:
    /// those that ended, and with `run_ended` all the others too, as
    /// cancelled.
    pub(crate) fn flush(&self, run: &mut RunInfo, run_ended: bool) {
        let mut calls = lock(&self.calls);
        calls.retain(|call| match call.to_span(run, run_ended) {
            Some(span) => {
                run.record_span(span);
                false
            }
            None => true,
        });
    }

    /// Waits for one of the run's request slots, until `until`.
    pub(crate) async fn acquire(
        slots: &Arc<Semaphore>,
        until: tokio::time::Instant,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, FetchError> {
        acquire_slot(slots, until, "per-run").await
    }
}

/// Maps a refusal or failure to the `wasi:http` error the guest receives.
fn to_http_error(e: &FetchError) -> HttpError {
    match e {
        FetchError::HostNotAllowed { .. }
        | FetchError::AddressDenied { .. }
        | FetchError::SecretDenied { .. }
        | FetchError::MethodDenied { .. } => HttpError::HttpRequestDenied,
        FetchError::InvalidRequest(_) => HttpError::HttpRequestDenied,
        FetchError::RequestTooLarge { what: "body", .. } => HttpError::HttpRequestBodySize(None),
        FetchError::RequestTooLarge { what: "url", .. } => HttpError::HttpRequestUriTooLong,
        FetchError::RequestTooLarge { .. } => HttpError::HttpRequestHeaderSectionSize(None),
        FetchError::TooManyRequests { .. } => HttpError::ConnectionLimitReached,
        FetchError::ResponseTooLarge(_) => HttpError::HttpResponseBodySize(None),
        FetchError::Timeout(_) => HttpError::ConnectionTimeout,
        FetchError::Upstream(_) => HttpError::DestinationUnavailable,
        _ => HttpError::InternalError(None),
    }
}

/// Turns a `wasi:http` request into a [`FetchRequest`]: the body read whole
/// under `max_body`, the `Host` and `Content-Length` headers dropped (the
/// client sets them from the URL and body), the secrets header parsed and
/// dropped.
async fn to_fetch_request(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    max_body: usize,
) -> Result<FetchRequest, FetchError> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, max_body).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(FetchError::RequestTooLarge { what: "body", size: max_body + 1, limit: max_body });
        }
        Err(e) => return Err(FetchError::InvalidRequest(format!("reading the request body: {e}"))),
    };
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let value = value.to_str().map_err(|_| FetchError::InvalidRequest(format!("bad value for header {name}")))?;
        if name != SECRETS_HEADER && name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            headers.push((name.as_str().to_owned(), value.to_owned()));
        }
    }
    let secrets = requested_secrets(&parts.headers)?;
    // The guest's timeouts can only shorten the host's total timeout.
    let timeout = options.and_then(|o| {
        [o.connect_timeout, o.first_byte_timeout, o.between_bytes_timeout]
            .into_iter()
            .flatten()
            .reduce(|a, b| a.saturating_add(b))
    });
    Ok(FetchRequest {
        method: parts.method.as_str().to_owned(),
        url: parts.uri.to_string(),
        headers,
        body,
        timeout,
        secrets,
    })
}

/// The secret names in the request's [`SECRETS_HEADER`] fields.
fn requested_secrets(headers: &http::HeaderMap) -> Result<Vec<String>, FetchError> {
    let mut secrets = Vec::new();
    for value in headers.get_all(SECRETS_HEADER) {
        let value =
            value.to_str().map_err(|_| FetchError::InvalidRequest(format!("bad value for header {SECRETS_HEADER}")))?;
        secrets.extend(value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
    }
    Ok(secrets)
}

fn to_http_response(resp: FetchResponse) -> Result<http::Response<WasiBody>, FetchError> {
    let mut builder = http::Response::builder().status(resp.status);
    for (name, value) in &resp.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = Full::new(Bytes::from(resp.body)).map_err(|never| match never {}).boxed_unsync();
    builder.body(body).map_err(|e| FetchError::Upstream(format!("response not representable: {e}")))
}

impl WasiHttpHooks for RunCore {
    /// The host sets `Host` from the URL itself, so that the header sent is
    /// always that of the checked URL.
    fn set_host_header(&mut self) -> bool {
        false
    }

    /// Guests must give the scheme.
    fn default_scheme(&mut self) -> Option<http::uri::Scheme> {
        None
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>),
                    HttpError,
                >,
            > + Send,
    > {
        let counted = self.count_request();
        let permitted = self.check_method(request.method().as_str());
        let inner = self.inner.clone();
        let ws = self.workspace.clone();
        let caller = self.caller();
        let deadline = self.deadline;
        let run_slots = self.slots.clone();

        // Registered now, so that the call is recorded even if its task is
        // dropped before it first runs.
        let mut facts = CallFacts {
            method: Some(request.method().as_str().to_owned()),
            host: request.uri().host().map(|h| h.trim_end_matches('.').to_ascii_lowercase()),
            ..CallFacts::default()
        };
        if let Ok(names) = requested_secrets(request.headers()) {
            facts.secrets_requested = CallFacts::requested(&names, inner.config.max_secrets_per_request);
        }
        let slot =
            Arc::new(CallSlot { started: Instant::now(), facts: Mutex::new(facts), state: Mutex::new((0, None)) });
        lock(&self.calls).push(slot.clone());
        let guard = CancelOnDrop(slot.clone());

        Box::new(async move {
            let _guard = guard;
            let outcome: Result<FetchResponse, FetchError> = async {
                counted?;
                permitted?;
                let total = inner.config.total_timeout;
                let until = deadline.min(tokio::time::Instant::from_std(slot.started) + total);
                // Held to the end of the response; taken before the body is
                // read, so that it also bounds the bodies a run buffers.
                let _run_slot = RunCore::acquire(&run_slots, until).await?;
                let collect = to_fetch_request(request, options, inner.config.max_request_body_bytes);
                let req = match tokio::time::timeout(total, collect).await {
                    Ok(r) => r?,
                    Err(_) => return Err(FetchError::Timeout("request body not complete in time".to_owned())),
                };
                let bytes_in =
                    req.url.len() + req.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>() + req.body.len();
                lock(&slot.state).0 = bytes_in;
                match tokio::time::timeout_at(deadline, inner.send(&ws, &caller, req, &slot.facts)).await {
                    Ok(r) => r,
                    Err(_) => Err(FetchError::Timeout("the run's deadline passed".to_owned())),
                }
            }
            .await;
            let outcome = outcome.and_then(|resp| {
                let n = resp.body.len() + resp.headers.iter().map(|(a, b)| a.len() + b.len()).sum::<usize>();
                to_http_response(resp).map(|r| (r, n))
            });
            let ret = match outcome {
                Ok((resp, n)) => {
                    slot.end(|| CallEnd { at: Instant::now(), bytes_out: n, outcome: "ok".to_owned(), error: None });
                    Ok(resp)
                }
                Err(e) => {
                    let guest = to_http_error(&e);
                    let err = HostError::from(e);
                    slot.end(|| CallEnd {
                        at: Instant::now(),
                        bytes_out: 0,
                        outcome: code_name(err.code).to_owned(),
                        error: err.detail,
                    });
                    Err(guest)
                }
            };
            let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(async { Ok(()) });
            ret.map(|r| (r, io))
        })
    }
}
