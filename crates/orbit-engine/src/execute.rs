//! One run, start to record: the store with its limits, the run itself,
//! and the record of how it ended (`Engine::execute`).

use std::time::{Duration, Instant, SystemTime};

use orbit_runs::{ComponentKind, LogLevel, RunError, RunRecord, RunStatus};
use wasmtime::{Store, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;

use crate::config::{POOL_INSTANCES_PER_RUN, POOL_MEMORIES_PER_RUN, POOL_TABLE_ELEMENTS, POOL_TABLES_PER_RUN};
use crate::engine::{
    Engine, InFlight, InFlightGuard, Invocation, LoadedComponent, MAX_GUEST_ERROR_MESSAGE, MAX_HOST_RESOURCES, Pre,
};
use crate::error::{code_name, safe_message};
use crate::state::{
    CappedPipe, DeadlineExceeded, Extensions, OutputLimitExceeded, RunCancelled, RunInfo, RunLimiter, RunState,
};

impl Engine {
    /// Runs `component` once for `inv` in a fresh store and builds its
    /// record; the caller commits the record.
    pub(crate) async fn execute(&self, component: &LoadedComponent, inv: Invocation) -> (RunRecord, Vec<u8>) {
        let cfg = &self.inner.config;
        let mut limits = inv.limits.clone().unwrap_or_else(|| cfg.default_limits.clone());
        // Per-run counts above the pool's per-run slots could never be met
        // there; the same caps hold under the on-demand allocator, so a
        // run's limits do not depend on the allocator.
        limits.instances = limits.instances.min(POOL_INSTANCES_PER_RUN as usize);
        limits.memories = limits.memories.min(POOL_MEMORIES_PER_RUN as usize);
        limits.tables = limits.tables.min(POOL_TABLES_PER_RUN as usize);
        limits.table_elements = limits.table_elements.min(POOL_TABLE_ELEMENTS);
        limits.memory_bytes = limits.memory_bytes.min(cfg.max_memory_bytes);
        let run_id = inv.run_id.unwrap_or_default();
        let started = Instant::now();
        let started_at_ms =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        // A huge timeout means "no deadline" in practice; never overflow.
        let mut timeout = limits.timeout.min(Duration::from_secs(365 * 24 * 3600));
        if let Some(cap) = inv.deadline {
            timeout = timeout.min(cap.into_std().saturating_duration_since(started));
        }
        let deadline = tokio::time::Instant::from_std(started + timeout);

        let stdout = CappedPipe::new(limits.output_bytes, true);
        let stderr = CappedPipe::new(limits.log_bytes, false);
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        // No preopens, no environment, no sockets; clocks and random stay.
        wasi.args(&["component"])
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .max_random_size(limits.hostcall_bytes.min(1 << 20) as u64);
        if component.kind == ComponentKind::Command {
            wasi.stdin(MemoryInputPipe::new(inv.input.clone().into_bytes()));
            wasi.args(&inv.args);
        }
        let mut info = RunInfo::new(
            run_id,
            inv.workspace.clone(),
            inv.principal.clone(),
            started,
            deadline,
            limits.log_bytes,
            component.imports.clone(),
        );
        (info.parent, info.depth) = (inv.parent, inv.depth);
        info.budgets = inv.budgets.clone().unwrap_or_default();
        info.limits = limits.clone();
        let cancel = info.cancel.clone();
        {
            let mut map = self.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(
                run_id,
                InFlight {
                    workspace: inv.workspace.clone(),
                    principal: inv.principal.clone(),
                    parent: inv.parent,
                    cancel: cancel.clone(),
                },
            );
            let revoked = self.inner.cancelled_tokens.lock().unwrap_or_else(|e| e.into_inner());
            if inv.principal.token.is_some_and(|t| revoked.contains(&t)) {
                // Its token was cancelled while this run waited to start.
                cancel.cancel();
            }
        }
        let _in_flight = InFlightGuard { inner: &self.inner, run_id };
        let input_bytes = inv.input.len() as u64;

        let mut extensions = Extensions::default();
        let mut result = Ok(());
        for p in &self.inner.primitives {
            if let Err(e) = p.prepare(&info, &mut extensions) {
                result = Err(e.to_string());
                break;
            }
        }
        let mut fuel_consumed = 0;
        let mut memory_bytes = 0;
        let mut memory_refused = false;
        let result = match result {
            Err(detail) => Err(RunEnd::Host(detail)),
            Ok(()) => {
                let limiter = RunLimiter {
                    limits: StoreLimitsBuilder::new()
                        .table_elements(limits.table_elements)
                        .instances(limits.instances)
                        .tables(limits.tables)
                        .memories(limits.memories)
                        .trap_on_grow_failure(false)
                        .build(),
                    memory_budget: limits.memory_bytes,
                    memory_used: 0,
                    memory_refused: false,
                };
                let mut state = RunState::new(wasi.build(), limiter, info, extensions);
                state.table.set_max_capacity(MAX_HOST_RESOURCES);
                let mut store = Store::new(component.wasmtime_engine(), state);
                store.limiter(|s| &mut s.limiter);
                let tick = cfg.epoch_tick.as_nanos().max(1);
                // One callback per epoch tick: it stops a cancelled run, and
                // counts the ticks down to the deadline.
                store.data_mut().epoch_ticks_left = (timeout.as_nanos() / tick) as u64 + 1;
                store.set_epoch_deadline(1);
                store.epoch_deadline_callback(|mut ctx| {
                    let state = ctx.data_mut();
                    if state.info().is_cancelled() {
                        return Err(wasmtime::Error::new(RunCancelled));
                    }
                    state.epoch_ticks_left = state.epoch_ticks_left.saturating_sub(1);
                    if state.epoch_ticks_left == 0 {
                        return Ok(UpdateDeadline::Interrupt);
                    }
                    Ok(UpdateDeadline::Continue(1))
                });
                store.set_hostcall_fuel(limits.hostcall_bytes);
                let result = match store
                    .set_fuel(limits.fuel)
                    // Yield to tokio now and then so long guests share the runtime.
                    .and_then(|()| store.fuel_async_yield_interval(Some(100_000)))
                {
                    Err(e) => Err(RunEnd::Host(format!("store setup: {e:#}"))),
                    // Cancelled before it began (its token was revoked while
                    // it waited): no guest code runs at all.
                    Ok(()) if cancel.is_cancelled() => Err(RunEnd::Trap(wasmtime::Error::new(RunCancelled))),
                    Ok(()) => {
                        // Epochs stop wasm code and host calls carry their own
                        // timeouts; this outer bound catches anything else.
                        let outer = deadline + cfg.epoch_tick * 2;
                        let run = tokio::time::timeout_at(outer, run_component(&mut store, component, inv.input));
                        tokio::pin!(run);
                        let ended = tokio::select! {
                            biased;
                            r = &mut run => r,
                            () = cancel.cancelled() => {
                                // A cancelled run stops by itself at its host
                                // call or next epoch tick, keeping its spans;
                                // one blocked where neither reaches (a WASI
                                // poll) is stopped here.
                                match tokio::time::timeout(cfg.epoch_tick * 4, &mut run).await {
                                    Ok(r) => r,
                                    Err(_) => Ok(Err(RunEnd::Trap(wasmtime::Error::new(RunCancelled)))),
                                }
                            }
                        };
                        match ended {
                            Ok(r) => r,
                            Err(_) => Err(RunEnd::Trap(wasmtime::Error::new(DeadlineExceeded))),
                        }
                    }
                };
                fuel_consumed = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(limits.fuel));
                let (run_info, limiter, mut extensions) = store.into_data().into_parts();
                info = run_info;
                memory_refused = limiter.memory_refused;
                memory_bytes = limiter.memory_used as u64;
                for p in &self.inner.primitives {
                    p.finish(&mut info, &mut extensions);
                }
                result
            }
        };
        let (mut stdout_bytes, _) = stdout.take();
        let (stderr_bytes, _) = stderr.take();
        if !stderr_bytes.is_empty() {
            info.log(LogLevel::Stderr, &String::from_utf8_lossy(&stderr_bytes));
        }

        let mut exit_code = None;
        let mut output = Vec::new();
        let mut output_bytes = 0;
        let (status, error) = match result {
            Ok(Finished::Agent(Ok(text))) => {
                output_bytes = text.len();
                if text.len() > limits.output_bytes {
                    let detail = format!("run returned {} bytes; limit {}", text.len(), limits.output_bytes);
                    (RunStatus::TooLarge, Some(run_error("too-large", detail)))
                } else {
                    output = text.into_bytes();
                    (RunStatus::Succeeded, None)
                }
            }
            Ok(Finished::Agent(Err(guest_err))) => {
                // The guest chose this text; keep it, but bounded.
                let mut message = guest_err.message;
                if message.len() > MAX_GUEST_ERROR_MESSAGE {
                    let mut end = MAX_GUEST_ERROR_MESSAGE;
                    while !message.is_char_boundary(end) {
                        end -= 1;
                    }
                    message.truncate(end);
                }
                let code = code_name(guest_err.code).to_owned();
                (RunStatus::Failed, Some(RunError { code, message, detail: None }))
            }
            Ok(Finished::Command(code)) => {
                output = std::mem::take(&mut stdout_bytes);
                output_bytes = output.len();
                exit_code = Some(code);
                if code == 0 {
                    (RunStatus::Succeeded, None)
                } else {
                    (RunStatus::Exited, Some(run_error("exited", format!("exit code {code}"))))
                }
            }
            Err(RunEnd::Trap(err)) => {
                // A host call that timed out may surface as another error
                // (for example a poisoned store), so its flag wins.
                let (status, code) = if info.cancel_hit {
                    (RunStatus::Cancelled, "cancelled")
                } else if info.deadline_hit {
                    (RunStatus::DeadlineExceeded, "deadline-exceeded")
                } else {
                    classify(&err, memory_refused)
                };
                if component.kind == ComponentKind::Command && status != RunStatus::TooLarge {
                    // Keep what a command printed before it was stopped.
                    output = std::mem::take(&mut stdout_bytes);
                    output_bytes = output.len();
                }
                (status, Some(run_error(code, format!("{err:#}"))))
            }
            Err(RunEnd::Host(detail)) => (RunStatus::Internal, Some(run_error("internal", detail))),
        };

        let duration_us = started.elapsed().as_micros() as u64;
        let (recorded_output, output_truncated) = if limits.record_output {
            let cap = limits.output_bytes.min(output.len());
            (Some(String::from_utf8_lossy(&output[..cap]).into_owned()), cap < output_bytes)
        } else {
            (None, false)
        };
        let record = RunRecord {
            id: run_id,
            workspace: inv.workspace,
            component_digest: component.digest.to_string(),
            kind: component.kind,
            started_at_ms,
            duration_us,
            status,
            exit_code,
            error,
            fuel_consumed,
            memory_bytes,
            input_bytes,
            output_bytes: output_bytes as u64,
            log_bytes: info.log_bytes_total as u64,
            output: recorded_output,
            output_truncated,
            logs: if limits.record_output { info.logs } else { Vec::new() },
            logs_truncated: info.logs_truncated,
            spans: info.spans,
            spans_dropped: info.spans_dropped,
            host_errors: info.host_errors,
            parent: inv.parent,
            principal: Some(inv.principal),
        };
        (record, output)
    }
}

/// A run error whose caller-facing message is the fixed text for its code,
/// with the internal detail kept for operators.
fn run_error(code: &str, detail: String) -> RunError {
    let message = match code {
        "out-of-fuel" => "the run used all of its fuel",
        "deadline-exceeded" => "the run passed its deadline",
        "memory-limit" => "the run hit its memory limit",
        "stack-overflow" => "the run overflowed its stack",
        "too-large" => "the output exceeded its size limit",
        "hostcall-too-large" => "a host call carried more bytes than allowed",
        "exited" => "the command exited with a non-zero status",
        "cancelled" => "the run was cancelled",
        "internal" => safe_message(crate::ErrorCode::Internal),
        _ => "the run trapped",
    };
    let code = if code == "hostcall-too-large" { "too-large" } else { code };
    RunError { code: code.to_owned(), message: message.to_owned(), detail: Some(detail) }
}

enum Finished {
    Agent(Result<String, crate::GuestError>),
    Command(i32),
}

enum RunEnd {
    /// The guest trapped or was stopped by a limit.
    Trap(wasmtime::Error),
    /// The host failed before or while setting up the run.
    Host(String),
}

async fn run_component(
    store: &mut Store<RunState>,
    component: &LoadedComponent,
    input: String,
) -> Result<Finished, RunEnd> {
    match &component.pre {
        Pre::Agent(pre) => {
            let agent = pre.instantiate_async(&mut *store).await.map_err(RunEnd::Trap)?;
            let r = agent.call_run(&mut *store, &input).await.map_err(RunEnd::Trap)?;
            Ok(Finished::Agent(r))
        }
        Pre::Command(pre) => {
            let command = pre.instantiate_async(&mut *store).await.map_err(RunEnd::Trap)?;
            match command.wasi_cli_run().call_run(&mut *store).await {
                Ok(Ok(())) => Ok(Finished::Command(0)),
                Ok(Err(())) => Ok(Finished::Command(1)),
                Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                    Some(exit) => Ok(Finished::Command(exit.0)),
                    None => Err(RunEnd::Trap(e)),
                },
            }
        }
    }
}

/// Maps a trap to the run's typed status and the code for its error.
fn classify(err: &wasmtime::Error, memory_refused: bool) -> (RunStatus, &'static str) {
    let mut trap_code = None;
    for cause in err.chain() {
        if let Some(trap) = cause.downcast_ref::<Trap>() {
            match trap {
                Trap::OutOfFuel => return (RunStatus::OutOfFuel, "out-of-fuel"),
                Trap::Interrupt => return (RunStatus::DeadlineExceeded, "deadline-exceeded"),
                Trap::StackOverflow => return (RunStatus::StackOverflow, "stack-overflow"),
                other => trap_code = Some(*other),
            }
        }
        if cause.is::<RunCancelled>() {
            return (RunStatus::Cancelled, "cancelled");
        }
        if cause.is::<DeadlineExceeded>() {
            return (RunStatus::DeadlineExceeded, "deadline-exceeded");
        }
        if cause.is::<OutputLimitExceeded>() {
            return (RunStatus::TooLarge, "too-large");
        }
    }
    // wasmtime's hostcall-fuel error type is private; match its text.
    if format!("{err:#}").contains("fuel allocated for hostcalls") {
        return (RunStatus::TooLarge, "hostcall-too-large");
    }
    // A refused grow shows up as the guest aborting (`unreachable`, Rust's
    // allocation-failure path) or as instantiation failing (no trap code).
    if memory_refused && matches!(trap_code, None | Some(Trap::UnreachableCodeReached)) {
        return (RunStatus::MemoryLimit, "memory-limit");
    }
    (RunStatus::Trapped, "trapped")
}
