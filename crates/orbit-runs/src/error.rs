//! The run store's error type.

use std::path::PathBuf;
use std::sync::Arc;

use crate::RunId;

/// Why a [`RunStore`](crate::RunStore) operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunStoreError {
    /// [`RunStore::open`](crate::RunStore::open): the database file's
    /// parent directories could not be created.
    #[error("cannot create directory {path}")]
    CreateDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// [`RunStore::open`](crate::RunStore::open): redb could not open or
    /// create the database file (it is already open, in this or another
    /// process; it is not a redb file; its format needs an upgrade; it could
    /// not be repaired after a crash; or an I/O error).
    #[error("cannot open run store {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: redb::DatabaseError,
    },

    /// [`RunStore::open`](crate::RunStore::open): the write-ahead log
    /// (`<store>.wal`) could not be opened or created, or the records an
    /// earlier process left in it could be put neither into redb nor into
    /// the holding file. The log is left as it was.
    #[error("cannot open or replay the run store's write-ahead log {path}")]
    WriteAheadLog {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// [`RunStore::prune`](crate::RunStore::prune): the write-ahead log
    /// could not be emptied before runs were to be removed, so none was
    /// (removing runs the log still holds would bring them back after a
    /// crash). Also when runs wait in the holding file
    /// ([`RunStore::held`](crate::RunStore::held)), which could bring them
    /// back. The next prune tries again.
    #[error("the run store's write-ahead log {path} could not be emptied; no run was removed")]
    LogNotEmptied {
        /// The log file.
        path: PathBuf,
    },

    /// [`RunStore::open`](crate::RunStore::open): the writer thread could
    /// not be started.
    #[error("cannot start the run store writer thread")]
    SpawnWriter(#[source] std::io::Error),

    /// A read, or the table setup at open, failed inside redb (an I/O error,
    /// a corrupted page, or an earlier I/O failure that left the database
    /// unusable until it is reopened).
    #[error("run store storage error")]
    Storage(#[from] redb::Error),

    /// [`RunStore::record`](crate::RunStore::record): the write transaction
    /// holding this record failed and the batch could not be held on disk
    /// for a later commit either (see
    /// [`RunStore::held`](crate::RunStore::held)), so the run is not
    /// recorded as far as its caller can tell. (When the batch had reached
    /// the write-ahead log first, its records may still appear after a
    /// later checkpoint or open.) Every caller in the batch gets this
    /// error, sharing one cause.
    #[error("run store commit failed; the run was not recorded")]
    Commit(#[source] Arc<redb::Error>),

    /// [`RunStore::compact`](crate::RunStore::compact): another handle to
    /// the store is alive (compaction needs the file to itself).
    #[error("the run store is in use by another handle")]
    InUse,

    /// [`RunStore::compact`](crate::RunStore::compact): redb's compaction
    /// failed; the file is as it was, or partly compacted and consistent.
    #[error("run store compaction failed")]
    Compact(#[source] Arc<redb::CompactionError>),

    /// [`RunStore::record`](crate::RunStore::record): a run with this id is
    /// already stored. Records are write-once; the stored one is unchanged.
    #[error("run {0} is already recorded")]
    AlreadyExists(RunId),

    /// [`RunStore::record`](crate::RunStore::record): the record could not be
    /// serialized to JSON.
    #[error("cannot encode run record")]
    Encode(#[source] serde_json::Error),

    /// [`RunStore::get`](crate::RunStore::get) or
    /// [`RunStore::list`](crate::RunStore::list): a stored record does not
    /// decode, does not match its key, or is missing although indexed.
    #[error("run record {id} is corrupt: {reason}")]
    Corrupt {
        /// The id under which the bad record is stored.
        id: RunId,
        /// What is wrong with it.
        reason: String,
    },

    /// [`RunStore::record`](crate::RunStore::record): the writer thread is
    /// gone (it panicked), so the record's fate is unknown to this caller.
    #[error("run store writer has stopped")]
    Closed,
}
