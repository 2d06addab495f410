//! Orbit's durable, traced run store.
//!
//! Every run leaves a [`RunRecord`]: which component ran, for which
//! workspace, how it ended, what it cost, a capped copy of its output and
//! logs, and a [`Span`] for each host primitive it called. [`RunStore`]
//! keeps these records in one [redb](https://docs.rs/redb) file.
//!
//! - **Durable.** [`RunStore::record`] returns only after the record is on
//!   disk: appended to the store's write-ahead log (`<store>.wal`) and
//!   synced with one `fdatasync`, so an acknowledged run survives a crash
//!   or power loss. The log's frames are salted and checksummed, so a torn
//!   append is dropped on recovery and never read as a record. redb itself
//!   is made durable by periodic checkpoints (two-phase commit), and an
//!   open after a crash imports the log first.
//! - **Fast.** A single writer thread groups concurrent records into one
//!   batch ([`GroupCommit`]), so many runs share one `fdatasync`, and the
//!   batch's redb commit costs no `fsync` at all.
//! - **Tenant-scoped.** [`RunStore::list`] reads one workspace's index only;
//!   a workspace never sees another's runs.

mod error;
mod frame;
mod inbox;
mod logged;
mod retention;
mod spill;
mod store;
mod types;
mod wal;
mod writer;

pub use error::RunStoreError;
pub use retention::{DEFAULT_MAX_AGE_MS, DEFAULT_MAX_RUNS, PRUNE_CHUNK, PruneReport, Retention, RetentionPolicy};
pub use store::{ExpectedRecord, RunStore};
pub use types::{
    ComponentKind, DEFAULT_LIST_LIMIT, GroupCommit, LogLevel, LogLine, MAX_LIST_LIMIT, ParseNameError, RunError, RunId,
    RunPage, RunQuery, RunRecord, RunStatus, Span,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip_through_display_fromstr_and_serde() {
        for &status in RunStatus::ALL {
            let name = status.to_string();
            assert_eq!(name, status.as_str());
            assert_eq!(name.parse::<RunStatus>(), Ok(status));
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{name}\""));
            assert_eq!(status.is_success(), status == RunStatus::Succeeded);
        }
        assert_eq!(RunStatus::OutOfFuel.as_str(), "out-of-fuel");
        assert_eq!(RunStatus::DeadlineExceeded.as_str(), "deadline-exceeded");
        assert!("OutOfFuel".parse::<RunStatus>().is_err());
    }

    #[test]
    fn kinds_and_levels_use_kebab_case() {
        assert_eq!(ComponentKind::Agent.to_string(), "agent");
        assert_eq!(ComponentKind::Command.to_string(), "command");
        assert_eq!(serde_json::to_string(&ComponentKind::Command).unwrap(), "\"command\"");
        assert_eq!("agent".parse::<ComponentKind>(), Ok(ComponentKind::Agent));
        assert_eq!(serde_json::to_string(&LogLevel::Stderr).unwrap(), "\"stderr\"");
        assert_eq!("warn".parse::<LogLevel>(), Ok(LogLevel::Warn));
    }

    #[test]
    fn run_ids_are_time_ordered_and_display_hyphenated() {
        let a = RunId::new();
        let b = RunId::new();
        assert!(a < b);
        assert!(a.as_u128() < b.as_u128());
        assert_eq!(a.0.get_version_num(), 7);
        let text = a.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<RunId>().unwrap(), a);
        assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{text}\""));
        assert_eq!(RunId::from_u128(a.as_u128()), a);
    }

    #[test]
    fn group_commit_defaults() {
        let gc = GroupCommit::default();
        assert_eq!(gc.max_batch, 512);
        assert_eq!(gc.max_delay, std::time::Duration::ZERO);
        assert_eq!(gc.max_linger, std::time::Duration::ZERO);
        assert!(gc.background_flush);
    }

    #[test]
    fn run_store_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<RunStore>();
    }
}
