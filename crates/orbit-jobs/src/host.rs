//! The guest-facing functions of `orbit:runtime/jobs`.
//!
//! They are defined with `func_wrap_async` rather than the generated `Host`
//! trait because `invoke` must read and lower the parent's fuel, which only
//! the store (`StoreContextMut`) gives access to.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use orbit_engine::bindings::orbit::runtime::jobs as wit;
use orbit_engine::wasmtime::StoreContextMut;
use orbit_engine::wasmtime::component::Linker;
use orbit_engine::{
    Budgets, EngineError, ErrorCode, GuestError, HostError, Invocation, Limits, RunState, safe_message,
};
use orbit_runs::{RunId, RunRecord, RunStatus};
use orbit_workspace::permission::{Action, Target};
use orbit_workspace::{Principal, WorkspaceId};

use crate::store::{JobBudget, JobId, JobState, check_name};
use crate::{Inner, JobsError};

type HostResult<T> = orbit_engine::wasmtime::Result<(Result<T, GuestError>,)>;

pub(crate) fn add_to_linker(linker: &mut Linker<RunState>, inner: Arc<Inner>) -> orbit_engine::wasmtime::Result<()> {
    let mut inst = linker.instance("orbit:runtime/jobs@0.1.0")?;

    let i = inner.clone();
    inst.func_wrap_async("invoke", move |store: StoreContextMut<'_, RunState>, (name, input): (String, String)| {
        Box::new(invoke(i.clone(), store, name, input))
    })?;

    let i = inner.clone();
    inst.func_wrap_async("enqueue", move |store: StoreContextMut<'_, RunState>, (name, input): (String, String)| {
        Box::new(enqueue(i.clone(), store, name, input))
    })?;

    let i = inner;
    inst.func_wrap_async("status", move |mut store: StoreContextMut<'_, RunState>, (id,): (String,)| {
        let inner = i.clone();
        Box::new(async move {
            let info = store.data_mut().info();
            let ws = info.workspace().clone();
            let principal = info.principal().clone();
            let n = id.len();
            let call = blocking(move || status(&inner, &ws, &principal, &id));
            let result = info.host_call("jobs", "status", n, status_size, call).await?;
            Ok((result,))
        })
    })?;
    Ok(())
}

/// The least share of its fuel a queued job is handed: `1 / MIN_SHARE`.
const MIN_SHARE: u64 = 16;

/// `enqueue`: queues the job with a slice of the parent's budget, taken
/// from the parent at once: the job's fuel (its registered fuel, or
/// [`JobLimits::queued_fuel`](crate::JobLimits::queued_fuel)), but never
/// more than half of what the parent has left, and the same share of what
/// is left of each named budget as that fuel is of the fuel left. So the
/// parent always keeps half of everything, and a job may queue itself (each
/// generation gets less). When half of what is left is under a sixteenth
/// of the job's fuel, the enqueue is refused (`limit-exceeded`) and nothing
/// is taken.
async fn enqueue(
    inner: Arc<Inner>,
    mut store: StoreContextMut<'_, RunState>,
    name: String,
    input: String,
) -> HostResult<String> {
    let remaining = store.get_fuel()?;
    let info = store.data_mut().info();
    let (ws, parent, depth) = (info.workspace().clone(), info.run_id(), info.depth() + 1);
    let principal = info.principal().clone();
    let budgets = info.budgets().clone();
    // The one check of `jobs`: a queued job writes later.
    let permitted = info.permit(Action::EnqueueJob, &Target::default());
    let n = name.len() + input.len();
    let valid_name = check_name(&name).is_ok().then(|| name.clone());
    let call = async move {
        permitted?;
        blocking(move || {
            check_name(&name)?;
            let spec = inner.store.get(&ws, &name)?.ok_or_else(|| JobsError::NotFound(name.clone()))?;
            let full = spec.defaults.fuel.unwrap_or(inner.limits.queued_fuel);
            let fuel = full.min(remaining / 2);
            // A job handed a sliver of its fuel would only run out of it.
            if fuel == 0 || fuel < full / MIN_SHARE {
                return Err(JobsError::NoBudget);
            }
            let slices = budgets.share(fuel, remaining);
            let budget = JobBudget::new(fuel, slices.clone());
            let id = inner.enqueue(&ws, &name, input, Some((parent, budget)), depth, principal)?;
            // Queued: now the slice is the job's.
            budgets.take(&slices);
            Ok((id.to_string(), fuel))
        })
        .await
    };
    let result = info.host_call("jobs", "enqueue", n, |(id, _): &(String, u64)| id.len(), call).await?;
    let mut attrs = Vec::new();
    if let Some(name) = valid_name {
        attrs.push(("job".to_owned(), name));
    }
    let result = match result {
        Ok((id, fuel)) => {
            store.set_fuel(remaining - fuel)?;
            attrs.push(("job_fuel".to_owned(), fuel.to_string()));
            Ok(id)
        }
        Err(e) => Err(e),
    };
    store.data_mut().info().annotate_last_span(attrs);
    Ok((result,))
}

/// `invoke`: runs the job as a child run on the parent's remaining budget,
/// then takes the fuel the child used from the parent.
async fn invoke(
    inner: Arc<Inner>,
    mut store: StoreContextMut<'_, RunState>,
    name: String,
    input: String,
) -> HostResult<String> {
    let remaining = store.get_fuel()?;
    let consumed = Arc::new(AtomicU64::new(0));
    let child_run = Arc::new(Mutex::new(None::<RunId>));
    let info = store.data_mut().info();
    let request = Child {
        workspace: info.workspace().clone(),
        principal: info.principal().clone(),
        parent: info.run_id(),
        depth: info.depth() + 1,
        deadline: info.deadline(),
        fuel: remaining,
        limits: info.limits().clone(),
        budgets: info.budgets().clone(),
    };
    let n = name.len() + input.len();
    let valid_name = check_name(&name).is_ok().then(|| name.clone());
    let call = run_child(inner, request, name, input, consumed.clone(), child_run.clone());
    let result = info.host_call("jobs", "invoke", n, String::len, call).await?;
    let used = consumed.load(Ordering::Relaxed);
    if used > 0 {
        store.set_fuel(remaining.saturating_sub(used))?;
    }
    let mut attrs = Vec::new();
    if let Some(name) = valid_name {
        attrs.push(("job".to_owned(), name));
    }
    if let Some(id) = *child_run.lock().unwrap_or_else(|e| e.into_inner()) {
        attrs.push(("child_run".to_owned(), id.to_string()));
        attrs.push(("child_fuel".to_owned(), used.to_string()));
    }
    store.data_mut().info().annotate_last_span(attrs);
    Ok((result,))
}

/// What a child run may have of its parent's run.
struct Child {
    workspace: WorkspaceId,
    /// The parent's principal: a child acts for whoever its parent acts for.
    principal: Principal,
    parent: RunId,
    depth: u32,
    deadline: tokio::time::Instant,
    fuel: u64,
    /// The parent's limits: a child never gets more of any of them.
    limits: Limits,
    /// The parent's named budgets, shared: what the child spends of them
    /// the parent no longer has.
    budgets: Budgets,
}

async fn run_child(
    inner: Arc<Inner>,
    child: Child,
    name: String,
    input: String,
    consumed: Arc<AtomicU64>,
    child_run: Arc<Mutex<Option<RunId>>>,
) -> Result<String, HostError> {
    check_name(&name)?;
    inner.check_input(&input)?;
    if child.depth > inner.limits.max_depth {
        return Err(JobsError::DepthExceeded { limit: inner.limits.max_depth }.into());
    }
    let engine = inner.engine()?;
    let spec = {
        let (inner, ws, name) = (inner.clone(), child.workspace.clone(), name.clone());
        blocking(move || inner.store.get(&ws, &name)).await?
    };
    let spec = spec.ok_or(JobsError::NotFound(name))?;
    let component = inner.load(&engine, &spec).await?;
    // The job's own defaults, each capped by the parent's limit.
    let parent = &child.limits;
    let mut limits = engine.config().default_limits.clone();
    limits.fuel = spec.defaults.fuel.unwrap_or(limits.fuel).min(child.fuel);
    if let Some(ms) = spec.defaults.timeout_ms {
        limits.timeout = std::time::Duration::from_millis(ms);
    }
    limits.timeout = limits.timeout.min(parent.timeout);
    limits.memory_bytes = limits.memory_bytes.min(parent.memory_bytes);
    limits.hostcall_bytes = limits.hostcall_bytes.min(parent.hostcall_bytes);
    limits.output_bytes = limits.output_bytes.min(parent.output_bytes);
    limits.log_bytes = limits.log_bytes.min(parent.log_bytes);
    limits.table_elements = limits.table_elements.min(parent.table_elements);
    limits.instances = limits.instances.min(parent.instances);
    limits.tables = limits.tables.min(parent.tables);
    limits.memories = limits.memories.min(parent.memories);
    limits.component_bytes = limits.component_bytes.min(parent.component_bytes);
    limits.record_output &= parent.record_output;
    if limits.fuel == 0 || child.deadline <= tokio::time::Instant::now() {
        return Err(JobsError::NoBudget.into());
    }
    let run_id = RunId::new();
    *child_run.lock().unwrap_or_else(|e| e.into_inner()) = Some(run_id);
    let invocation = Invocation::new(input)
        .workspace(child.workspace)
        .principal(child.principal)
        .limits(limits)
        .child_of(child.parent, child.depth)
        .deadline(child.deadline)
        .budgets(child.budgets)
        .run_id(run_id)
        .no_wait();
    // A task of its own, so the child ends and is recorded even if the
    // parent is stopped (for example at its deadline) while waiting.
    let given = invocation.limits.as_ref().map_or(0, |l| l.fuel);
    let task = tokio::spawn(async move { engine.invoke(&component, invocation).await });
    // A child that may have run but left no outcome (its task failed, or
    // its record could not be stored) is charged all the fuel it was given.
    let charge_all = || consumed.store(given, Ordering::Relaxed);
    let outcome = task
        .await
        .map_err(|e| {
            charge_all();
            HostError::with_detail(ErrorCode::Internal, format!("child task: {e}"))
        })?
        .map_err(|e| match e {
            // Every slot is taken (possibly by parents waiting on children):
            // the child never started.
            EngineError::Busy => HostError::with_detail(ErrorCode::Unavailable, "child run: no free run slot"),
            e => {
                charge_all();
                HostError::with_detail(ErrorCode::Internal, format!("child run: {e}"))
            }
        })?;
    consumed.store(outcome.fuel_consumed(), Ordering::Relaxed);
    if outcome.status().is_success() {
        Ok(outcome.output_text())
    } else {
        let code = child_error_code(&outcome.record);
        Err(HostError::with_detail(code, format!("child run {} ended {}", run_id, outcome.status())))
    }
}

/// The code a parent (or `status`) sees for a child run that did not
/// succeed: the code the child returned, `limit-exceeded` for a run stopped
/// by a limit, `too-large` for oversized output, `unavailable` for a
/// cancelled run, `internal` otherwise.
pub(crate) fn child_error_code(rec: &RunRecord) -> ErrorCode {
    match rec.status {
        RunStatus::Failed => rec.error.as_ref().and_then(|e| code_from_name(&e.code)).unwrap_or(ErrorCode::Internal),
        RunStatus::OutOfFuel | RunStatus::DeadlineExceeded | RunStatus::MemoryLimit | RunStatus::StackOverflow => {
            ErrorCode::LimitExceeded
        }
        RunStatus::TooLarge => ErrorCode::TooLarge,
        RunStatus::Cancelled => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    }
}

/// The code for a WIT error-code name.
pub(crate) fn code_from_name(name: &str) -> Option<ErrorCode> {
    [
        ErrorCode::NotFound,
        ErrorCode::InvalidInput,
        ErrorCode::TooLarge,
        ErrorCode::LimitExceeded,
        ErrorCode::PermissionDenied,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ]
    .into_iter()
    .find(|c| orbit_engine::code_name(*c) == name)
}

fn status(inner: &Inner, ws: &WorkspaceId, principal: &Principal, id: &str) -> Result<wit::JobStatus, JobsError> {
    let id: JobId = id.parse()?;
    // A job's output is a run's output: the table's `view-runs` decides
    // (a read-only principal sees only the jobs it enqueued); another's
    // job is answered like a missing one.
    let visible = |j: &crate::QueuedJob| match j.principal.user_id() {
        Some(user) => principal.check(Action::ViewRuns, &Target::owned_by(user)).is_ok(),
        None => principal.may(Action::ViewRuns),
    };
    let job = inner
        .store
        .job(id)?
        .filter(|j| &j.workspace == ws && visible(j))
        .ok_or_else(|| JobsError::NotFound(id.to_string()))?;
    let run_id = job.run_id.map(|r| r.to_string());
    Ok(match job.state {
        JobState::Queued => wit::JobStatus::Queued,
        JobState::Running => wit::JobStatus::Running(run_id.unwrap_or_default()),
        JobState::Succeeded => wit::JobStatus::Succeeded(wit::JobOutput {
            run_id: run_id.unwrap_or_default(),
            output: job.output.unwrap_or_default(),
        }),
        JobState::Failed => {
            let code = job.error.as_ref().and_then(|e| code_from_name(&e.code)).unwrap_or(ErrorCode::Internal);
            wit::JobStatus::Failed(wit::JobFailure {
                run_id,
                error: GuestError { code, message: safe_message(code).to_owned() },
            })
        }
    })
}

fn status_size(s: &wit::JobStatus) -> usize {
    match s {
        wit::JobStatus::Succeeded(o) => o.output.len(),
        _ => 0,
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JobsError> + Send + 'static,
) -> Result<T, HostError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(HostError::from),
        Err(e) => Err(HostError::with_detail(ErrorCode::Internal, format!("jobs task failed: {e}"))),
    }
}
