//! The engine integration: `orbit:runtime/fetch` host functions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orbit_engine::bindings::orbit::runtime::fetch;
use orbit_engine::wasmtime::component::{HasData, Linker};
use orbit_engine::{EngineError, Extensions, GuestError, HostError, Primitive, RunInfo, RunState};

use crate::send::{CallFacts, Inner};
use crate::{Fetch, FetchError, FetchRequest, FetchResponse};

/// Per-run state: the shared primitive and the run's request count.
pub(crate) struct RunFetch {
    pub(crate) inner: Arc<Inner>,
    /// `fetch` calls so far in this run, refused ones included.
    pub(crate) requests: u32,
}

/// What the `fetch` host functions operate on during a call: the run's
/// information and the primitive's per-run state.
pub struct FetchView<'a> {
    run: &'a mut RunInfo,
    state: &'a mut RunFetch,
}

struct FetchData;
impl HasData for FetchData {
    type Data<'a> = FetchView<'a>;
}

impl Primitive for Fetch {
    fn name(&self) -> &'static str {
        "fetch"
    }

    /// Links `orbit:runtime/fetch.fetch`.
    fn add_to_linker(&self, linker: &mut Linker<RunState>) -> Result<(), EngineError> {
        fetch::add_to_linker::<RunState, FetchData>(linker, |s| {
            let (run, state) = s.parts::<RunFetch>();
            FetchView { run, state }
        })
        .map_err(|e| EngineError::Config(format!("{e:#}")))
    }

    /// Inserts a fresh request count for the run.
    fn prepare(&self, _run: &RunInfo, extensions: &mut Extensions) -> Result<(), EngineError> {
        extensions.insert(RunFetch { inner: self.inner.clone(), requests: 0 });
        Ok(())
    }
}

fn from_wit(req: fetch::Request) -> FetchRequest {
    FetchRequest {
        method: req.method,
        url: req.url,
        headers: req.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        body: req.body,
        timeout: req.timeout_ms.map(|ms| Duration::from_millis(u64::from(ms))),
        secrets: req.secrets,
    }
}

fn to_wit(resp: FetchResponse) -> fetch::Response {
    fetch::Response {
        status: resp.status,
        headers: resp.headers.into_iter().map(|(name, value)| fetch::Header { name, value }).collect(),
        body: resp.body,
    }
}

fn request_bytes(req: &fetch::Request) -> usize {
    req.method.len()
        + req.url.len()
        + req.headers.iter().map(|h| h.name.len() + h.value.len()).sum::<usize>()
        + req.body.len()
        + req.secrets.iter().map(String::len).sum::<usize>()
}

fn response_bytes(resp: &fetch::Response) -> usize {
    resp.headers.iter().map(|h| h.name.len() + h.value.len()).sum::<usize>() + resp.body.len()
}

impl fetch::Host for FetchView<'_> {
    async fn fetch(
        &mut self,
        req: fetch::Request,
    ) -> orbit_engine::wasmtime::Result<Result<fetch::Response, GuestError>> {
        let inner = self.state.inner.clone();
        let ws = self.run.workspace().clone();
        self.state.requests = self.state.requests.saturating_add(1);
        let limit = inner.config.max_requests_per_run;
        let over_limit = self.state.requests > limit;
        let bytes_in = request_bytes(&req);
        let facts = Mutex::new(CallFacts::default());
        let call = async {
            if over_limit {
                return Err(HostError::from(FetchError::TooManyRequests { limit }));
            }
            inner.send(&ws, from_wit(req), &facts).await.map(to_wit).map_err(HostError::from)
        };
        let result = self.run.host_call("fetch", "fetch", bytes_in, response_bytes, call).await;
        let facts = facts.into_inner().unwrap_or_else(|e| e.into_inner());
        self.run.annotate_last_span(facts.into_attrs());
        result
    }
}
