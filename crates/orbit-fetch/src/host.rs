//! The engine integration: `orbit:runtime/fetch` host functions and, when
//! enabled, `wasi:http/outgoing-handler` and `wasi:http/types`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orbit_engine::bindings::orbit::runtime::fetch;
use orbit_engine::wasmtime::component::{HasData, Linker};
use orbit_engine::{EngineError, Extensions, GuestError, HostError, Primitive, RunInfo, RunState};
use wasmtime_wasi_http::p2::bindings::http as wasi_http;
use wasmtime_wasi_http::{WasiHttp, WasiHttpCtx, WasiHttpCtxView};

use tokio::sync::Semaphore;

use crate::config::permits;
use crate::send::CallFacts;
use crate::wasi_http::RunCore;
use crate::{Fetch, FetchRequest, FetchResponse};

/// Per-run state: the request count, request slots and policy context
/// shared by both interfaces, and the `wasi:http` context.
pub(crate) struct RunFetch {
    core: RunCore,
    http: WasiHttpCtx,
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

fn link_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Config(format!("{e:#}"))
}

/// The `wasi:http` view of a run: the run's resource table (shared with
/// WASI), the primitive's hooks and context. Records `wasi:http` calls that
/// finished since the last call on the run first.
fn http_view(s: &mut RunState) -> WasiHttpCtxView<'_> {
    let (table, run, state) = s.parts_with_table::<RunFetch>();
    state.core.flush(run, false);
    WasiHttpCtxView { hooks: &mut state.core, table, ctx: &mut state.http }
}

impl Primitive for Fetch {
    fn name(&self) -> &'static str {
        "fetch"
    }

    /// Links `orbit:runtime/fetch`, and with
    /// [`FetchConfig::wasi_http`](crate::FetchConfig::wasi_http) also
    /// `wasi:http/outgoing-handler` and `wasi:http/types` (0.2).
    fn add_to_linker(&self, linker: &mut Linker<RunState>) -> Result<(), EngineError> {
        fetch::add_to_linker::<RunState, FetchData>(linker, |s| {
            let (run, state) = s.parts::<RunFetch>();
            FetchView { run, state }
        })
        .map_err(link_err)?;
        if self.inner.config.wasi_http {
            wasi_http::outgoing_handler::add_to_linker::<RunState, WasiHttp>(linker, http_view).map_err(link_err)?;
            let options = wasmtime_wasi_http::p2::bindings::LinkOptions::default();
            wasi_http::types::add_to_linker::<RunState, WasiHttp>(linker, &options.into(), http_view)
                .map_err(link_err)?;
        }
        Ok(())
    }

    /// Opens the run's request budget ([`REQUEST_BUDGET`](crate::REQUEST_BUDGET))
    /// at [`FetchConfig::max_requests_per_run`](crate::FetchConfig::max_requests_per_run)
    /// (or at what is left of it when the run shares its parent's budgets)
    /// and, when the component imports `orbit:runtime/fetch` or any
    /// `wasi:http` interface, inserts the run's state: its workspace,
    /// deadline and request slots, and a fresh `wasi:http` context.
    fn prepare(&self, run: &RunInfo, extensions: &mut Extensions) -> Result<(), EngineError> {
        run.budgets().open(crate::REQUEST_BUDGET, u64::from(self.inner.config.max_requests_per_run));
        // Nothing can read the state of interfaces the component does not
        // import (`wasi:http`'s read it too); the budget is opened all the
        // same, for the runs it starts.
        if !run.imports("orbit:runtime/fetch") && !run.imports_from("wasi:http") {
            return Ok(());
        }
        let per_run = permits(self.inner.config.max_concurrent_requests_per_run);
        extensions.insert(RunFetch {
            core: RunCore {
                inner: self.inner.clone(),
                workspace: run.workspace().clone(),
                principal: run.principal().clone(),
                run_id: run.run_id().to_string(),
                deadline: run.deadline(),
                budgets: run.budgets().clone(),
                slots: Arc::new(Semaphore::new(per_run)),
                calls: Arc::default(),
            },
            http: WasiHttpCtx::new(),
        });
        Ok(())
    }

    /// Records every `wasi:http` call not recorded yet, with its own start
    /// and duration; those still in flight (their tasks are being dropped
    /// with the run) as `cancelled`.
    fn finish(&self, run: &mut RunInfo, extensions: &mut Extensions) {
        if let Some(state) = extensions.get_mut::<RunFetch>() {
            state.core.flush(run, true);
        }
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
        self.state.core.flush(self.run, false);
        let counted = self.state.core.count_request();
        let permitted = self.state.core.check_method(&req.method);
        let inner = self.state.core.inner.clone();
        let run_slots = self.state.core.slots.clone();
        let ws = self.run.workspace().clone();
        let caller = self.state.core.caller();
        let bytes_in = request_bytes(&req);
        let facts = Mutex::new(CallFacts::default());
        let call = async {
            counted.map_err(HostError::from)?;
            permitted.map_err(HostError::from)?;
            let req = from_wit(req);
            let total = req.timeout.map_or(inner.config.total_timeout, |t| t.min(inner.config.total_timeout));
            // Held to the end of the response.
            let _run_slot = RunCore::acquire(&run_slots, tokio::time::Instant::now() + total).await?;
            inner.send(&ws, &caller, req, &facts).await.map(to_wit).map_err(HostError::from)
        };
        let result = self.run.host_call("fetch", "fetch", bytes_in, response_bytes, call).await;
        let facts = facts.into_inner().unwrap_or_else(|e| e.into_inner());
        self.run.annotate_last_span(facts.into_attrs());
        result
    }
}
