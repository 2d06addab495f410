//! Errors of the job store and the `jobs` primitive.

use orbit_engine::{ErrorCode, HostError};

/// Errors of [`JobStore`](crate::JobStore) and [`Jobs`](crate::Jobs).
/// Each maps to a guest [`ErrorCode`] when it happens in a host call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobsError {
    /// A job name was empty, longer than 64 bytes, or used characters other
    /// than ASCII letters, digits, `-`, `_` and `.` (or did not start with a
    /// letter or digit).
    #[error("invalid job name")]
    InvalidName,
    /// A job id was not a UUID.
    #[error("invalid job id")]
    InvalidId,
    /// No job of this name is registered in the workspace, or no queued job
    /// has this id in the workspace.
    #[error("no such job: {0}")]
    NotFound(String),
    /// A job's input was larger than [`JobLimits::max_input_bytes`](crate::JobLimits::max_input_bytes).
    #[error("input of {size} bytes exceeds the {limit}-byte limit")]
    InputTooLarge {
        /// The input's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The description was longer than 1,024 bytes.
    #[error("description longer than 1024 bytes")]
    DescriptionTooLong,
    /// The workspace already has [`JobLimits::max_queued_per_workspace`](crate::JobLimits::max_queued_per_workspace)
    /// jobs queued or running.
    #[error("workspace job queue is full ({limit} jobs queued or running)")]
    QueueFull {
        /// The quota, in jobs.
        limit: usize,
    },
    /// A child run would be nested deeper than [`JobLimits::max_depth`](crate::JobLimits::max_depth).
    #[error("nesting depth limit of {limit} reached")]
    DepthExceeded {
        /// The limit.
        limit: u32,
    },
    /// The parent run has no fuel or time left to give a child, or no fuel
    /// to hand a job it queues.
    #[error("no budget left to hand to a child run or a queued job")]
    NoBudget,
    /// The component could not be loaded by the engine (not a component, too
    /// large, or it imports something Orbit does not provide).
    #[error("component: {0}")]
    Component(#[from] orbit_engine::EngineError),
    /// The primitive is not part of a built engine yet, or the engine was
    /// dropped.
    #[error("the jobs primitive is not attached to an engine")]
    NoEngine,
    /// [`Jobs::start_workers`](crate::Jobs::start_workers) was called outside
    /// a tokio runtime, or while workers were already running.
    #[error("workers: {0}")]
    Workers(&'static str),
    /// The database failed, or a stored entry could not be decoded.
    #[error("jobs database: {0}")]
    Database(String),
}

impl From<JobsError> for HostError {
    fn from(e: JobsError) -> Self {
        let code = match &e {
            JobsError::InvalidName | JobsError::InvalidId | JobsError::DescriptionTooLong => ErrorCode::InvalidInput,
            JobsError::NotFound(_) => ErrorCode::NotFound,
            JobsError::InputTooLarge { .. } => ErrorCode::TooLarge,
            JobsError::QueueFull { .. } | JobsError::DepthExceeded { .. } | JobsError::NoBudget => {
                ErrorCode::LimitExceeded
            }
            JobsError::Component(_) | JobsError::NoEngine | JobsError::Workers(_) | JobsError::Database(_) => {
                ErrorCode::Internal
            }
        };
        HostError::with_detail(code, e.to_string())
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for JobsError {
            fn from(e: $t) -> Self { JobsError::Database(e.to_string()) }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    serde_json::Error
);
