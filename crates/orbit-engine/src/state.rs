//! Per-run store data: WASI context, limits, spans, logs and the per-run
//! state of every primitive.

use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use orbit_runs::{LogLevel, LogLine, RunId, Span};
use orbit_workspace::permission::{Action, Target};
use orbit_workspace::{Principal, WorkspaceId};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::error::{GuestError, HostError, code_name};

/// The trap raised when a run passes its deadline while blocked in a host
/// call (wasm code itself is stopped by epoch interruption).
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded in a host call")]
pub struct DeadlineExceeded;

/// The trap raised when a run is cancelled
/// ([`Engine::cancel_run`](crate::Engine::cancel_run),
/// [`Engine::cancel_token`](crate::Engine::cancel_token)); the run ends as
/// `cancelled`.
#[derive(Debug, thiserror::Error)]
#[error("the run was cancelled")]
pub struct RunCancelled;

/// A run's cancellation signal: set once, observed by the epoch callback
/// (wasm code) and by every host call (which it interrupts).
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Cancel {
    /// Asks the run to stop. Returns `false` if it had been asked before.
    pub(crate) fn cancel(&self) -> bool {
        let first = !self.flag.swap(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        first
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Completes once the run is cancelled.
    pub(crate) async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a cancel in between
            // is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// The data of one run's wasmtime `Store`.
///
/// Primitives reach their own per-run state through [`RunState::parts`]
/// and record spans and internal error detail through [`RunInfo`].
pub struct RunState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: RunLimiter,
    /// Epoch ticks left before the deadline, counted down by the epoch
    /// callback.
    pub(crate) epoch_ticks_left: u64,
    info: RunInfo,
    extensions: Extensions,
}

impl RunState {
    pub(crate) fn new(wasi: WasiCtx, limiter: RunLimiter, info: RunInfo, extensions: Extensions) -> Self {
        Self { wasi, table: ResourceTable::new(), limiter, epoch_ticks_left: u64::MAX, info, extensions }
    }

    /// The run's shared information: ids, deadline, spans and logs.
    pub fn info(&mut self) -> &mut RunInfo {
        &mut self.info
    }

    /// The run information together with the per-run state of the primitive
    /// that owns type `T`, borrowed at once so a host call can record spans
    /// while it uses its own state.
    ///
    /// # Panics
    /// When no state of type `T` was inserted for this run. The engine calls
    /// every registered primitive's [`Primitive::prepare`](crate::Primitive::prepare)
    /// before instantiation, and a primitive may leave its state out only
    /// when the component imports none of its interfaces
    /// ([`RunInfo::imports`]), so this only fires on a primitive whose
    /// `add_to_linker` reads a type its `prepare` does not insert, or
    /// serves an interface its `prepare` does not check for.
    pub fn parts<T: Any + Send>(&mut self) -> (&mut RunInfo, &mut T) {
        let ext = self
            .extensions
            .get_mut::<T>()
            .expect("primitive state missing: prepare() must insert what add_to_linker reads");
        (&mut self.info, ext)
    }

    /// As [`RunState::parts`], plus the run's resource table, which WASI
    /// and any primitive that hands out WASI resources (streams, pollables)
    /// must share.
    ///
    /// # Panics
    /// As [`RunState::parts`].
    pub fn parts_with_table<T: Any + Send>(&mut self) -> (&mut ResourceTable, &mut RunInfo, &mut T) {
        let ext = self
            .extensions
            .get_mut::<T>()
            .expect("primitive state missing: prepare() must insert what add_to_linker reads");
        (&mut self.table, &mut self.info, ext)
    }

    pub(crate) fn into_parts(self) -> (RunInfo, RunLimiter, Extensions) {
        (self.info, self.limiter, self.extensions)
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A small type map holding each primitive's per-run state.
#[derive(Default)]
pub struct Extensions {
    entries: Vec<(TypeId, Box<dyn Any + Send>)>,
}

impl Extensions {
    /// Inserts `value`, replacing any earlier value of the same type.
    pub fn insert<T: Any + Send>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        self.entries.retain(|(t, _)| *t != id);
        self.entries.push((id, Box::new(value)));
    }

    /// The value of type `T`, if one was inserted.
    pub fn get_mut<T: Any + Send>(&mut self) -> Option<&mut T> {
        let id = TypeId::of::<T>();
        // A handful of primitives: a linear scan beats hashing.
        self.entries.iter_mut().find(|(t, _)| *t == id).and_then(|(_, v)| v.downcast_mut::<T>())
    }
}

/// What a primitive may know about and record on the current run.
pub struct RunInfo {
    run_id: RunId,
    workspace: WorkspaceId,
    principal: Principal,
    pub(crate) cancel: Arc<Cancel>,
    /// A host call was interrupted by cancellation.
    pub(crate) cancel_hit: bool,
    started: Instant,
    deadline: tokio::time::Instant,
    pub(crate) spans: Vec<Span>,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) log_bytes_used: usize,
    /// Log bytes the guest produced, including those dropped over the cap.
    pub(crate) log_bytes_total: usize,
    pub(crate) log_limit: usize,
    pub(crate) logs_truncated: bool,
    pub(crate) host_errors: Vec<String>,
    pub(crate) spans_dropped: u64,
    pub(crate) deadline_hit: bool,
    pub(crate) parent: Option<RunId>,
    pub(crate) depth: u32,
    pub(crate) limits: crate::Limits,
    pub(crate) budgets: crate::Budgets,
    /// The interfaces the run's component imports, without versions.
    imports: Arc<[String]>,
}

/// Spans kept per run; later host calls are counted in `spans_dropped`.
pub const MAX_SPANS: usize = 10_000;
/// Internal error details kept per run.
const MAX_HOST_ERRORS: usize = 100;
/// Bytes of one internal error detail kept (longer ones are cut).
const MAX_HOST_ERROR_BYTES: usize = 1024;
/// Attributes kept per span, and bytes of one attribute's value.
const MAX_SPAN_ATTRS: usize = 16;
const MAX_ATTR_BYTES: usize = 256;
/// What one log line costs of the run's log budget
/// ([`Limits::log_bytes`](crate::Limits::log_bytes)) beyond its text, in
/// bytes: about what its entry on the run record takes (offset, level,
/// framing). So a flood of empty lines spends the budget like text does,
/// and a run's lines number at most `log_bytes / 32`.
pub const LOG_LINE_OVERHEAD: usize = 32;

/// `text` cut to at most `max` bytes, on a character boundary.
fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl RunInfo {
    pub(crate) fn new(
        run_id: RunId,
        workspace: WorkspaceId,
        principal: Principal,
        started: Instant,
        deadline: tokio::time::Instant,
        log_limit: usize,
        imports: Arc<[String]>,
    ) -> Self {
        Self {
            run_id,
            workspace,
            principal,
            cancel: Arc::default(),
            cancel_hit: false,
            started,
            deadline,
            spans: Vec::new(),
            logs: Vec::new(),
            log_bytes_used: 0,
            log_bytes_total: 0,
            log_limit,
            logs_truncated: false,
            host_errors: Vec::new(),
            spans_dropped: 0,
            deadline_hit: false,
            parent: None,
            depth: 0,
            limits: crate::Limits::default(),
            budgets: crate::Budgets::default(),
            imports,
        }
    }

    /// Whether the run's component imports `interface`, named without a
    /// version (`orbit:runtime/storage`, `wasi:http/types`). A guest can
    /// call only what its component imports, so a primitive none of whose
    /// interfaces is imported may skip creating its per-run state in
    /// [`Primitive::prepare`](crate::Primitive::prepare) (opening its
    /// budgets all the same: a run's budgets are shared with the runs it
    /// starts, whatever they import).
    pub fn imports(&self, interface: &str) -> bool {
        self.imports.iter().any(|i| i == interface)
    }

    /// Whether the run's component imports any interface of `package`
    /// (`wasi:http`), named without a version.
    pub fn imports_from(&self, package: &str) -> bool {
        self.imports.iter().any(|i| i.strip_prefix(package).is_some_and(|rest| rest.starts_with('/')))
    }

    /// The run's id.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The workspace the run belongs to. Primitives must scope every read
    /// and write to it.
    pub fn workspace(&self) -> &WorkspaceId {
        &self.workspace
    }

    /// Who the run acts for ([`Invocation::principal`](crate::Invocation::principal())).
    /// Child runs inherit it. Primitives decide what the run may do by
    /// asking it (see [`RunInfo::permit`]), never by comparing roles.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Asks the permission table whether the run's principal may take
    /// `action` on `target`, as a host-call error: `Err` is
    /// `permission-denied`, with the refusal as operator detail. Return it
    /// from inside the [`RunInfo::host_call`] of the refused operation so
    /// the refusal is recorded as a span with outcome `permission-denied`.
    ///
    /// # Errors
    /// [`HostError`] with [`ErrorCode::PermissionDenied`](crate::ErrorCode::PermissionDenied)
    /// when the principal may not.
    pub fn permit(&self, action: Action, target: &Target<'_>) -> Result<(), HostError> {
        self.principal.check(action, target).map_err(|denied| {
            HostError::with_detail(crate::ErrorCode::PermissionDenied, format!("{}: {denied}", self.principal))
        })
    }

    /// Whether the run has been cancelled (it stops at its next host call
    /// or epoch tick).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The run that started this one as a child, if any
    /// ([`Invocation::parent`](crate::Invocation::parent)).
    pub fn parent(&self) -> Option<RunId> {
        self.parent
    }

    /// How deeply the run is nested: 0 for a top-level run
    /// ([`Invocation::depth`](crate::Invocation::depth)).
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// The limits this run executes under (the invocation's, or the
    /// engine's defaults, capped by the engine). A child run must not get
    /// more than these.
    pub fn limits(&self) -> &crate::Limits {
        &self.limits
    }

    /// The named budgets of primitives this run spends: open yours in
    /// [`Primitive::prepare`](crate::Primitive::prepare) and spend from it
    /// in host calls. Shared with child runs ([`Budgets`](crate::Budgets)).
    pub fn budgets(&self) -> &crate::Budgets {
        &self.budgets
    }

    /// The instant at which the run's wall-clock deadline passes.
    pub fn deadline(&self) -> tokio::time::Instant {
        self.deadline
    }

    /// Appends a log line to the run, within the run's log-size limit.
    /// Lines past the limit are dropped and the record marked truncated.
    pub fn log(&mut self, level: LogLevel, message: &str) {
        self.log_bytes_total = self.log_bytes_total.saturating_add(message.len());
        // Each line costs its entry's overhead, then its text.
        let remaining = self.log_limit.saturating_sub(self.log_bytes_used);
        let Some(room) = remaining.checked_sub(LOG_LINE_OVERHEAD) else {
            self.logs_truncated = true;
            return;
        };
        let kept = clip(message, room);
        if kept.len() < message.len() {
            self.logs_truncated = true;
        }
        self.log_bytes_used += LOG_LINE_OVERHEAD + kept.len();
        self.logs.push(LogLine {
            offset_us: self.started.elapsed().as_micros() as u64,
            level,
            message: kept.to_owned(),
        });
    }

    /// Runs one host call of `primitive`/`operation` as a span: bounded by the
    /// run's deadline, timed, and with its outcome code and byte counts
    /// recorded. An error's internal detail goes on the run record and the
    /// guest receives only the sanitized [`GuestError`].
    ///
    /// `bytes_in` is the size of the guest's arguments in bytes;
    /// `bytes_out` measures the result in bytes.
    ///
    /// # Errors
    /// The outer `Err` is a trap: [`DeadlineExceeded`] when the deadline
    /// passes while the call is pending (the run then ends as
    /// `deadline-exceeded`), or [`RunCancelled`] when the run is cancelled
    /// before or while the call is pending (the run ends as `cancelled`).
    pub async fn host_call<T, F>(
        &mut self,
        primitive: &'static str,
        operation: &'static str,
        bytes_in: usize,
        bytes_out: impl FnOnce(&T) -> usize,
        call: F,
    ) -> wasmtime::Result<Result<T, GuestError>>
    where
        F: Future<Output = Result<T, HostError>>,
    {
        let start = Instant::now();
        let cancel = self.cancel.clone();
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            r = tokio::time::timeout_at(self.deadline, call) => Some(r),
        };
        let mut span = Span {
            primitive: primitive.to_owned(),
            operation: operation.to_owned(),
            start_offset_us: start.duration_since(self.started).as_micros() as u64,
            duration_us: start.elapsed().as_micros() as u64,
            outcome: String::new(),
            bytes_in: bytes_in as u64,
            bytes_out: 0,
            attrs: Vec::new(),
        };
        let ret = match result {
            None => {
                span.outcome = "cancelled".to_owned();
                self.push_span(span);
                self.cancel_hit = true;
                return Err(wasmtime::Error::new(RunCancelled));
            }
            Some(Err(_elapsed)) => {
                span.outcome = "deadline-exceeded".to_owned();
                self.push_span(span);
                self.deadline_hit = true;
                return Err(wasmtime::Error::new(DeadlineExceeded));
            }
            Some(Ok(Ok(value))) => {
                span.outcome = "ok".to_owned();
                span.bytes_out = bytes_out(&value) as u64;
                Ok(value)
            }
            Some(Ok(Err(err))) => {
                span.outcome = code_name(err.code).to_owned();
                if let Some(detail) = &err.detail
                    && self.host_errors.len() < MAX_HOST_ERRORS
                {
                    self.host_errors.push(format!("{primitive}.{operation}: {}", clip(detail, MAX_HOST_ERROR_BYTES)));
                }
                Err(err.to_guest())
            }
        };
        self.push_span(span);
        Ok(ret)
    }

    /// Records a span for work that did not run inside [`RunInfo::host_call`]
    /// (for example a request a guest started and abandoned), with its own
    /// timing. Spans past the per-run cap are counted, not kept. Never put
    /// payloads or secret values in a span.
    pub fn record_span(&mut self, span: Span) {
        self.push_span(span);
    }

    /// Microseconds from the run's start to `at`, for
    /// [`Span::start_offset_us`].
    pub fn offset_us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_micros() as u64
    }

    /// Adds key/value facts to the span of the host call that just ended
    /// (for example method, host and status). Never pass payloads or secret
    /// values: spans are stored on the run record. A span keeps at most 16
    /// attributes, and each value at most 256 bytes.
    pub fn annotate_last_span(&mut self, attrs: impl IntoIterator<Item = (String, String)>) {
        if self.spans_dropped == 0
            && let Some(span) = self.spans.last_mut()
        {
            for (k, v) in attrs {
                if span.attrs.len() >= MAX_SPAN_ATTRS {
                    break;
                }
                span.attrs.push((clip(&k, MAX_ATTR_BYTES).to_owned(), clip(&v, MAX_ATTR_BYTES).to_owned()));
            }
        }
    }

    fn push_span(&mut self, mut span: Span) {
        if self.spans.len() < MAX_SPANS {
            span.attrs.truncate(MAX_SPAN_ATTRS);
            for (k, v) in &mut span.attrs {
                for text in [k, v] {
                    let keep = clip(text, MAX_ATTR_BYTES).len();
                    text.truncate(keep);
                }
            }
            self.spans.push(span);
        } else {
            self.spans_dropped += 1;
        }
    }
}

/// Store limiter: one memory budget for all of the run's linear memories
/// (wasmtime's `StoreLimits` caps each memory separately), and a flag that
/// lets a later trap be reported as `memory-limit`.
pub(crate) struct RunLimiter {
    /// Counts of instances, tables and memories, and table elements.
    pub(crate) limits: StoreLimits,
    /// Bytes all linear memories of the run may hold together.
    pub(crate) memory_budget: usize,
    /// Bytes currently held by the run's linear memories.
    pub(crate) memory_used: usize,
    pub(crate) memory_refused: bool,
}

impl ResourceLimiter for RunLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current);
        let within_budget = self.memory_used.saturating_add(grow) <= self.memory_budget;
        let within_max = maximum.is_none_or(|m| desired <= m);
        if within_budget && within_max {
            self.memory_used += grow;
            Ok(true)
        } else {
            self.memory_refused = true;
            Ok(false)
        }
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_refused = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// Raised (as a trap) when a command writes more to stdout than the run's
/// output limit.
#[derive(Debug, thiserror::Error)]
#[error("output limit exceeded")]
pub struct OutputLimitExceeded;

/// A capped in-memory stdout/stderr. Over the cap, stdout traps with
/// [`OutputLimitExceeded`]; stderr drops the excess and marks truncation.
#[derive(Clone)]
pub(crate) struct CappedPipe {
    inner: Arc<Mutex<PipeBuf>>,
    cap: usize,
    trap_on_overflow: bool,
}

#[derive(Default)]
struct PipeBuf {
    data: Vec<u8>,
    overflowed: bool,
}

impl CappedPipe {
    pub(crate) fn new(cap: usize, trap_on_overflow: bool) -> Self {
        Self { inner: Arc::default(), cap, trap_on_overflow }
    }

    /// The captured bytes and whether any were dropped.
    pub(crate) fn take(&self) -> (Vec<u8>, bool) {
        let mut buf = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (std::mem::take(&mut buf.data), buf.overflowed)
    }

    fn push(&self, bytes: &[u8]) -> Result<usize, OutputLimitExceeded> {
        let mut buf = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(buf.data.len());
        if bytes.len() > room {
            buf.overflowed = true;
            if self.trap_on_overflow {
                return Err(OutputLimitExceeded);
            }
        }
        let n = bytes.len().min(room);
        buf.data.extend_from_slice(&bytes[..n]);
        Ok(bytes.len())
    }
}

impl wasmtime_wasi::cli::IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl wasmtime_wasi::p2::OutputStream for CappedPipe {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        self.push(&bytes).map(|_| ()).map_err(|e| wasmtime_wasi::p2::StreamError::Trap(wasmtime::Error::new(e)))
    }
    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        // Always writable: overflow is handled in `write`, so a full pipe
        // never leaves the guest waiting forever.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(self.push(buf).map_err(std::io::Error::other))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_match_whole_interfaces_and_packages() {
        let imports: Arc<[String]> =
            ["orbit:runtime/storage", "wasi:http/types", "wasi:cli/stdout"].map(String::from).into();
        let info = RunInfo::new(
            RunId::new(),
            WorkspaceId::new("w").unwrap(),
            Principal::local_operator(),
            Instant::now(),
            tokio::time::Instant::now(),
            1024,
            imports,
        );
        assert!(info.imports("orbit:runtime/storage"));
        assert!(!info.imports("orbit:runtime/stor"), "a prefix of a name is not the name");
        assert!(!info.imports("orbit:runtime/cache"));
        assert!(info.imports_from("wasi:http"));
        assert!(!info.imports_from("wasi:htt"), "a prefix of a package is not the package");
        assert!(!info.imports_from("orbit:runtime/storage"), "an interface is not a package");
    }
}
