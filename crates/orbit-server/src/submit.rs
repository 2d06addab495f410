//! Submitting a run: the one path from a front end's request (MCP
//! `run_component`, REST `POST /runs`) to the engine. The caps on what a
//! caller may ask for live here, so both front ends enforce the same ones.

use std::time::Duration;

use base64::Engine as _;
use orbit::orbit_workspace::permission::Target;
use orbit::{Action, EngineError, Invocation, Limits, LoadedComponent, Orbit, Principal, WorkspaceId};

use crate::{ComponentStore, ComponentStoreError};

/// The most a caller may ask of one run, per workspace. A request above a
/// cap is refused (`invalid-input`), never silently lowered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunCaps {
    /// Most fuel units one run may ask for. Default 10,000,000,000,000:
    /// about an hour of guest code at full speed, so the deadline cap, not
    /// fuel, is what ends the longest run a caller may ask for.
    pub max_fuel: u64,
    /// Longest deadline, in ms. Default 3,600,000 (one hour).
    pub max_timeout_ms: u64,
    /// Most linear memory, in bytes. Default 1 GiB.
    pub max_memory_bytes: u64,
    /// Longest a submitted run waits for a free run slot before it is
    /// refused (`unavailable`, HTTP 503), in ms. Default 10,000.
    pub slot_wait_ms: u64,
    /// Most runs one workspace may have executing at once through this
    /// server (so one workspace cannot take every slot of the engine).
    /// Default 16.
    pub max_runs_per_workspace: u32,
}

/// The run slots of each workspace ([`RunCaps::max_runs_per_workspace`]).
#[derive(Debug, Default)]
pub(crate) struct WorkspaceSlots(
    std::sync::Mutex<std::collections::HashMap<WorkspaceId, std::sync::Arc<tokio::sync::Semaphore>>>,
);

impl WorkspaceSlots {
    /// A slot of `ws`, waiting until `until` at most.
    async fn acquire(
        &self,
        ws: &WorkspaceId,
        per_workspace: u32,
        until: tokio::time::Instant,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, EngineError> {
        let semaphore = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(ws.clone())
                .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(per_workspace.max(1) as usize)))
                .clone()
        };
        match tokio::time::timeout_at(until, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(EngineError::Busy),
        }
    }
}

impl Default for RunCaps {
    fn default() -> Self {
        Self {
            max_fuel: 10_000_000_000_000,
            max_timeout_ms: crate::MAX_TIMEOUT_MS,
            max_memory_bytes: 1 << 30,
            slot_wait_ms: 10_000,
            max_runs_per_workspace: 16,
        }
    }
}

/// Where the component of a run comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// Standard base64 of the .wasm bytes.
    Base64(String),
    /// The sha256 of a component submitted before.
    Digest(String),
    /// An agent's source, built here with the server's toolchain
    /// (`orbit-sdk`): `language` is `python`, `typescript` or `javascript`.
    Code {
        /// The language, as the caller named it.
        language: String,
        /// The source text (at most [`MAX_SOURCE_BYTES`]).
        code: String,
    },
}

/// The largest agent source a caller may send to be built, in bytes.
pub(crate) const MAX_SOURCE_BYTES: usize = 1 << 20;

/// One build at a time in this process: a build takes seconds of both
/// cores and up to 800 MB of memory (componentize-py, jco).
static BUILDS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// The file an agent's source is built from, by the language's API name.
fn source_file(language: &str) -> Option<&'static str> {
    match language {
        "python" => Some("agent.py"),
        "typescript" => Some("agent.ts"),
        "javascript" => Some("agent.js"),
        _ => None,
    }
}

/// Builds an agent's source into a component with the server's toolchain,
/// cached by content under `<data dir>/builds` (the same cache as `orbit
/// run agent.py`). The source is written to a directory named by its own
/// digest, so the same source is the same build. What the caller sees of a
/// failed build is the toolchain's message with the build's paths removed.
async fn build(orbit: &Orbit, language: &str, code: &str) -> Result<Vec<u8>, SubmitError> {
    use sha2::Digest as _;
    let file_name = source_file(language).ok_or_else(|| {
        SubmitError::Invalid(format!("unknown language {language:?}: python, typescript or javascript"))
    })?;
    if code.len() > MAX_SOURCE_BYTES {
        return Err(SubmitError::Invalid(format!("the source is over the limit of {MAX_SOURCE_BYTES} bytes")));
    }
    let data = orbit.data_dir().to_owned();
    let digest = hex::encode(sha2::Sha256::digest(format!("{file_name}\0{code}").as_bytes()));
    let code = code.to_owned();
    let _permit = BUILDS.acquire().await.map_err(|_| SubmitError::Internal)?;
    let built = tokio::task::spawn_blocking(move || {
        let src = data.join("builds").join(format!("src-{digest}"));
        let path = src.join(file_name);
        std::fs::create_dir_all(&src).and_then(|()| std::fs::write(&path, &code))?;
        let result = orbit_sdk::Builder::new(data.join("builds"), data.join("sdk")).build(&path, |_| {});
        let wasm = result.as_ref().ok().map(|b| std::fs::read(&b.wasm));
        // The source is not kept: the build cache is keyed by its content
        // and this path (both the same next time), so nothing is lost.
        let _ = std::fs::remove_dir_all(&src);
        Ok::<_, std::io::Error>((result, wasm, src))
    })
    .await;
    let data = orbit.data_dir().display().to_string();
    let (result, wasm, src) = match built {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "writing an agent's source to build it");
            return Err(SubmitError::Internal);
        }
        Err(e) => {
            tracing::error!(error = %e, "an agent build panicked");
            return Err(SubmitError::Internal);
        }
    };
    match (result, wasm) {
        (Ok(_), Some(Ok(wasm))) => Ok(wasm),
        (Err(orbit_sdk::BuildError::Compile { output, .. }), _) => {
            // Toolchain messages may name the build's files or the
            // toolchain's own under the data directory: no host path
            // reaches the caller.
            let output = output
                .replace(&format!("{}/", src.display()), "")
                .replace(&src.display().to_string(), "")
                .replace(&data, "<data dir>");
            Err(SubmitError::Invalid(format!("{file_name} does not build:\n{output}")))
        }
        (
            Err(
                orbit_sdk::BuildError::NoToolchain { language, .. }
                | orbit_sdk::BuildError::WrongVersion { language, .. },
            ),
            _,
        ) => Err(SubmitError::NoToolchain(language)),
        (Err(e), _) => {
            tracing::error!(error = %e, "building an agent's source");
            Err(SubmitError::Internal)
        }
        (Ok(_), wasm) => {
            tracing::error!(error = ?wasm.and_then(Result::err), "reading a build");
            Err(SubmitError::Internal)
        }
    }
}

/// What a caller asked for, before any check.
#[derive(Debug)]
pub(crate) struct RunRequest {
    pub source: Source,
    pub input: String,
    pub fuel: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// Why a run could not be submitted. Every text is safe for the caller.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SubmitError {
    /// The request is malformed or asks for more than the caps.
    #[error("{0}")]
    Invalid(String),
    /// The permission table refused.
    #[error("permission denied: your role ({role}) may not {action}")]
    Denied { role: String, action: String },
    /// No component with that digest.
    #[error("{0}")]
    NotFound(String),
    /// Keeping a component would pass the workspace's byte cap.
    #[error("{0}")]
    QuotaExceeded(String),
    /// Every run slot is busy.
    #[error("every run slot is busy; try again shortly")]
    Busy,
    /// The server has no toolchain for the source's language.
    #[error(
        "this server cannot build {0} agents: its operator has not installed the toolchain (`orbit sdk install {0}`)"
    )]
    NoToolchain(&'static str),
    /// Something on the host failed; the detail went to the log.
    #[error("internal error")]
    Internal,
}

impl SubmitError {
    /// The stable code: `invalid-input`, `permission-denied`, `not-found`,
    /// `quota-exceeded`, `unavailable` or `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            SubmitError::Invalid(_) => "invalid-input",
            SubmitError::Denied { .. } => "permission-denied",
            SubmitError::NotFound(_) => "not-found",
            SubmitError::QuotaExceeded(_) => "quota-exceeded",
            SubmitError::Busy | SubmitError::NoToolchain(_) => "unavailable",
            SubmitError::Internal => "internal",
        }
    }
}

/// The caller-safe text for an engine failure; the detail goes to the log.
pub(crate) fn engine_failure(e: &EngineError) -> SubmitError {
    match e {
        EngineError::ComponentTooLarge { size, limit } => {
            SubmitError::Invalid(format!("component is {size} bytes, over the limit of {limit} bytes"))
        }
        EngineError::NotAComponent(_) => SubmitError::Invalid("not a WebAssembly component".into()),
        EngineError::NoEntryPoint => {
            SubmitError::Invalid("component exports neither `run` (orbit:runtime/agent) nor `wasi:cli/run`".into())
        }
        EngineError::Link(_) => {
            SubmitError::Invalid("component cannot be linked: it imports something Orbit does not provide".into())
        }
        EngineError::CompileTimeout(t) => {
            SubmitError::Invalid(format!("compiling the component took longer than {t:?}"))
        }
        EngineError::Busy => SubmitError::Busy,
        other => {
            tracing::error!(error = %other, "submitting a run");
            SubmitError::Internal
        }
    }
}

/// Checks `principal` may run a component, and turns the request's
/// optional limits into the run's [`Limits`] (the engine's defaults for
/// what is not given), refusing what is above `caps`.
pub(crate) fn limits_for(
    orbit: &Orbit,
    principal: &Principal,
    req: &RunRequest,
    caps: &RunCaps,
) -> Result<Limits, SubmitError> {
    principal
        .check(Action::RunComponent, &Target::default())
        .map_err(|e| SubmitError::Denied { role: e.role.to_string(), action: e.action.to_string() })?;
    let mut limits = orbit.engine().config().default_limits.clone();
    if let Some(fuel) = req.fuel {
        if fuel == 0 || fuel > caps.max_fuel {
            return Err(SubmitError::Invalid(format!("fuel must be 1 to {}", caps.max_fuel)));
        }
        limits.fuel = fuel;
    }
    if let Some(ms) = req.timeout_ms {
        if ms == 0 || ms > caps.max_timeout_ms {
            return Err(SubmitError::Invalid(format!("timeout_ms must be 1 to {}", caps.max_timeout_ms)));
        }
        limits.timeout = Duration::from_millis(ms);
    }
    if let Some(bytes) = req.memory_bytes {
        if bytes == 0 || bytes > caps.max_memory_bytes {
            return Err(SubmitError::Invalid(format!("memory_bytes must be 1 to {}", caps.max_memory_bytes)));
        }
        limits.memory_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
    }
    Ok(limits)
}

/// Decodes, compiles (or finds in the cache) and keeps the component of
/// `req`: a component given as base64 is stored under its digest, so later
/// runs may name it by digest.
pub(crate) async fn load(
    orbit: &Orbit,
    components: &ComponentStore,
    ws: &WorkspaceId,
    source: &Source,
    limits: &Limits,
) -> Result<LoadedComponent, SubmitError> {
    let wasm = match source {
        Source::Base64(b64) => {
            // Refuse before decoding what could not be run anyway.
            if b64.len() / 4 * 3 > limits.component_bytes + 3 {
                return Err(SubmitError::Invalid(format!(
                    "component is over the limit of {} bytes",
                    limits.component_bytes
                )));
            }
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| SubmitError::Invalid("component_base64 is not valid standard base64".into()))?
        }
        Source::Digest(digest) => components.get(ws, digest).map_err(component_failure)?,
        Source::Code { language, code } => build(orbit, language, code).await?,
    };
    let component = orbit.engine().load_async(&wasm, limits.component_bytes).await.map_err(|e| engine_failure(&e))?;
    if matches!(source, Source::Base64(_) | Source::Code { .. }) {
        store(components, ws, component.digest(), &wasm)?;
    }
    Ok(component)
}

/// Keeps `wasm` under `digest` for `ws`.
pub(crate) fn store(
    components: &ComponentStore,
    ws: &WorkspaceId,
    digest: &str,
    wasm: &[u8],
) -> Result<(), SubmitError> {
    components.put(ws, digest, wasm).map_err(component_failure)
}

/// The caller's view of a component store failure; I/O detail goes only to
/// the operator's log.
pub(crate) fn component_failure(e: ComponentStoreError) -> SubmitError {
    match e {
        ComponentStoreError::BadDigest => SubmitError::Invalid(e.to_string()),
        ComponentStoreError::NotFound => SubmitError::NotFound(e.to_string()),
        ComponentStoreError::QuotaExceeded { .. } => SubmitError::QuotaExceeded(e.to_string()),
        other => {
            tracing::error!(error = %other, "reading a submitted component");
            SubmitError::Internal
        }
    }
}

/// The invocation of a run of `ws` by `principal` under `limits`.
pub(crate) fn invocation(input: String, ws: &WorkspaceId, principal: &Principal, limits: Limits) -> Invocation {
    Invocation::new(input).workspace(ws.clone()).principal(principal.clone()).limits(limits)
}

/// Runs `component`, waiting at most `caps.slot_wait_ms` for a slot of
/// its workspace and a free run slot of the engine: nothing queues without
/// bound. A run that found no slot was never started, so trying again is
/// safe.
pub(crate) async fn invoke(
    orbit: &Orbit,
    slots: &WorkspaceSlots,
    component: &LoadedComponent,
    invocation: Invocation,
    caps: &RunCaps,
) -> Result<orbit::Outcome, EngineError> {
    let until = tokio::time::Instant::now() + Duration::from_millis(caps.slot_wait_ms);
    let _ours = slots.acquire(&invocation.workspace, caps.max_runs_per_workspace, until).await?;
    // The engine waits for a run slot until then, woken as one frees.
    orbit.engine().invoke(component, invocation.slot_deadline(until)).await
}

/// Starts `component` in the background, waiting at most
/// `caps.slot_wait_ms` for a free run slot, and returns once it runs (the
/// engine then records it however it ends) or could not start.
pub(crate) async fn start(
    orbit: Orbit,
    slots: std::sync::Arc<WorkspaceSlots>,
    component: LoadedComponent,
    invocation: Invocation,
    caps: RunCaps,
) -> Result<(), EngineError> {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let until = tokio::time::Instant::now() + Duration::from_millis(caps.slot_wait_ms);
        let _ours = match slots.acquire(&invocation.workspace, caps.max_runs_per_workspace, until).await {
            Ok(permit) => permit,
            Err(e) => {
                let _ = started_tx.send(Err(e));
                return;
            }
        };
        // The engine wakes this as a run slot frees; the caller hears once
        // the run holds one.
        let invocation = invocation.slot_deadline(until);
        let slot = match orbit.engine().reserve(&invocation).await {
            Ok(slot) => slot,
            Err(e) => {
                let _ = started_tx.send(Err(e));
                return;
            }
        };
        let run = orbit.engine().invoke_in(slot, &component, invocation);
        tokio::pin!(run);
        // The first poll registers the run (so it can be cancelled at once)
        // and goes as far as its first wait; only then does the caller hear.
        let first = tokio::select! {
            biased;
            outcome = &mut run => Some(outcome),
            () = std::future::ready(()) => None,
        };
        let outcome = match first {
            Some(Err(e)) => {
                let _ = started_tx.send(Err(e));
                return;
            }
            Some(done) => {
                let _ = started_tx.send(Ok(()));
                done
            }
            None => {
                let _ = started_tx.send(Ok(()));
                run.await
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "a run started without waiting failed");
        }
    });
    started_rx.await.unwrap_or(Err(EngineError::Busy))
}
