//! `wasi:http/outgoing-handler` routed through the same policy and secret
//! injection as `fetch` (see the crate documentation, "Standard clients").

use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use orbit_engine::{HostError, RunInfo};
use orbit_workspace::WorkspaceId;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::send::{CallFacts, Inner};
use crate::{FetchError, FetchRequest, FetchResponse};

/// The request header in which a `wasi:http` guest names the secrets to
/// inject, comma separated. Removed before the request is sent.
pub const SECRETS_HEADER: &str = "x-orbit-secrets";

/// A `wasi:http` call that finished in a spawned task, waiting to be
/// recorded on the run.
pub(crate) struct Completed {
    started: Instant,
    bytes_in: usize,
    bytes_out: usize,
    result: Result<(), HostError>,
    attrs: Vec<(String, String)>,
}

/// The per-run side of `fetch` and `wasi:http`: the shared primitive, the
/// run's workspace and deadline, its request count, and `wasi:http` calls
/// finished but not yet recorded.
pub(crate) struct RunCore {
    pub(crate) inner: Arc<Inner>,
    pub(crate) workspace: WorkspaceId,
    pub(crate) deadline: tokio::time::Instant,
    /// Calls so far in this run, through either interface, refused ones
    /// included.
    pub(crate) requests: u32,
    pub(crate) completed: Arc<Mutex<Vec<Completed>>>,
}

impl RunCore {
    /// Counts one call; `Err` once the run is over its limit.
    pub(crate) fn count_request(&mut self) -> Result<(), FetchError> {
        self.requests = self.requests.saturating_add(1);
        let limit = self.inner.config.max_requests_per_run;
        if self.requests > limit { Err(FetchError::TooManyRequests { limit }) } else { Ok(()) }
    }

    /// Records finished `wasi:http` calls as spans on `run`.
    ///
    /// The engine records spans only through [`RunInfo::host_call`], so each
    /// call is recorded through one with an already-finished future: the
    /// span's start and duration are those of the recording, and the real
    /// duration is in the `duration_us` attribute.
    pub(crate) fn flush(&self, run: &mut RunInfo) {
        let done = std::mem::take(&mut *self.completed.lock().unwrap_or_else(|e| e.into_inner()));
        for c in done {
            let Completed { started, bytes_in, bytes_out, result, mut attrs } = c;
            {
                let call = run.host_call("fetch", "wasi-http", bytes_in, |_| bytes_out, std::future::ready(result));
                let mut call = std::pin::pin!(call);
                // The future is ready: one poll finishes it.
                let _ = call.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            }
            attrs.push(("duration_us".to_owned(), started.elapsed().as_micros().to_string()));
            run.annotate_last_span(attrs);
        }
    }
}

/// Maps a refusal or failure to the `wasi:http` error the guest receives.
fn to_http_error(e: &FetchError) -> HttpError {
    match e {
        FetchError::HostNotAllowed { .. } | FetchError::AddressDenied { .. } | FetchError::SecretDenied { .. } => {
            HttpError::HttpRequestDenied
        }
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
    let mut secrets = Vec::new();
    for (name, value) in &parts.headers {
        let value = value.to_str().map_err(|_| FetchError::InvalidRequest(format!("bad value for header {name}")))?;
        if name.as_str() == SECRETS_HEADER {
            secrets.extend(value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
        } else if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            headers.push((name.as_str().to_owned(), value.to_owned()));
        }
    }
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
        let inner = self.inner.clone();
        let ws = self.workspace.clone();
        let deadline = self.deadline;
        let completed = self.completed.clone();
        Box::new(async move {
            let started = Instant::now();
            let facts = Mutex::new(CallFacts::default());
            let mut bytes_in = 0;
            let outcome: Result<FetchResponse, FetchError> = async {
                counted?;
                let total = inner.config.total_timeout;
                let collect = to_fetch_request(request, options, inner.config.max_request_body_bytes);
                let req = match tokio::time::timeout(total, collect).await {
                    Ok(r) => r?,
                    Err(_) => return Err(FetchError::Timeout("request body not complete in time".to_owned())),
                };
                bytes_in =
                    req.url.len() + req.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>() + req.body.len();
                match tokio::time::timeout_at(deadline, inner.send(&ws, req, &facts)).await {
                    Ok(r) => r,
                    Err(_) => Err(FetchError::Timeout("the run's deadline passed".to_owned())),
                }
            }
            .await;
            let outcome = outcome.and_then(|resp| {
                let n = resp.body.len() + resp.headers.iter().map(|(a, b)| a.len() + b.len()).sum::<usize>();
                to_http_response(resp).map(|r| (r, n))
            });
            let (result, bytes_out, ret) = match outcome {
                Ok((resp, n)) => (Ok(()), n, Ok(resp)),
                Err(e) => {
                    let guest = to_http_error(&e);
                    (Err(HostError::from(e)), 0, Err(guest))
                }
            };
            let attrs = facts.into_inner().unwrap_or_else(|e| e.into_inner()).into_attrs();
            completed.lock().unwrap_or_else(|e| e.into_inner()).push(Completed {
                started,
                bytes_in,
                bytes_out,
                result,
                attrs,
            });
            let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(async { Ok(()) });
            ret.map(|r| (r, io))
        })
    }
}
