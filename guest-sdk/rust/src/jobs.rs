//! Stored jobs: components registered by name in the run's workspace
//! (`orbit jobs add NAME component.wasm`), run as child runs.
//!
//! ```no_run
//! use orbit_guest::jobs::{self, Status};
//! use std::time::Duration;
//!
//! # fn demo() -> orbit_guest::Result<()> {
//! // At once, as a child run on this run's remaining fuel and time.
//! let summary = jobs::invoke("summarize", "some text")?;
//!
//! // In the background; the queue survives a restart of the host.
//! let id = jobs::enqueue("resize", "image-42")?;
//! match jobs::status(&id)? {
//!     Status::Succeeded { output, .. } => println!("done: {output}"),
//!     Status::Failed { error, .. } => println!("failed: {error}"),
//!     Status::Queued | Status::Running { .. } => println!("not yet"),
//! }
//! let output = jobs::wait(&id, Duration::from_millis(10))?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use crate::__bindings::orbit::runtime::jobs as wit;
use crate::{Error, Result};

/// The id of a queued job (a UUID in hyphenated form).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobId(pub String);

impl JobId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a queued job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Waiting for a worker.
    Queued,
    /// Running now.
    Running {
        /// The id of the current attempt's run.
        run_id: String,
    },
    /// Finished successfully.
    Succeeded {
        /// The id of the run that produced the output.
        run_id: String,
        /// What the job returned.
        output: String,
    },
    /// Finished without success.
    Failed {
        /// The id of its last run; `None` when it could not be started.
        run_id: Option<String>,
        /// Why: the job's own error code, `limit-exceeded` when it ran out of
        /// fuel, time or memory, `internal` when it trapped.
        error: Error,
    },
}

impl Status {
    /// Whether the job has finished (succeeded or failed).
    pub fn is_finished(&self) -> bool {
        matches!(self, Status::Succeeded { .. } | Status::Failed { .. })
    }
}

/// Runs the job `name` now, as a child of this run, and returns its output.
/// The child gets at most this run's remaining fuel (and the job's own
/// default), never runs past this run's deadline, and the fuel it uses is
/// taken from this run's.
///
/// # Errors
/// `not-found` for an unknown job; `limit-exceeded` past the host's nesting
/// depth limit, with no fuel or time left, or when the child ran out of
/// fuel, time or memory; `too-large` for an input over the host's cap; the
/// child's own error when it returned one; `internal` when it trapped.
pub fn invoke(name: &str, input: &str) -> Result<String> {
    wit::invoke(name, input)
}

/// Queues the job `name` with `input` for a background run.
///
/// # Errors
/// `not-found` for an unknown job; `limit-exceeded` when the workspace's
/// queue is full or past the nesting depth limit; `too-large` for an input
/// over the host's cap.
pub fn enqueue(name: &str, input: &str) -> Result<JobId> {
    wit::enqueue(name, input).map(JobId)
}

/// Where the job `id` (queued in this workspace) is.
///
/// # Errors
/// `not-found` for an unknown id; `invalid-input` for a malformed one.
pub fn status(id: &JobId) -> Result<Status> {
    Ok(match wit::status(&id.0)? {
        wit::JobStatus::Queued => Status::Queued,
        wit::JobStatus::Running(run_id) => Status::Running { run_id },
        wit::JobStatus::Succeeded(o) => Status::Succeeded { run_id: o.run_id, output: o.output },
        wit::JobStatus::Failed(f) => Status::Failed { run_id: f.run_id, error: f.error },
    })
}

/// Polls [`status`] every `poll` until the job finishes, and returns its
/// output. The run's own deadline bounds the wait.
///
/// # Errors
/// As [`status`], and the job's error when it failed.
pub fn wait(id: &JobId, poll: Duration) -> Result<String> {
    loop {
        match status(id)? {
            Status::Succeeded { output, .. } => return Ok(output),
            Status::Failed { error, .. } => return Err(error),
            Status::Queued | Status::Running { .. } => std::thread::sleep(poll),
        }
    }
}
