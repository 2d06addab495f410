//! The run record and the types it is made of.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use orbit_workspace::{Principal, UserId, WorkspaceId};
use serde::{Deserialize, Serialize};

/// The identifier of one run: a UUID version 7.
///
/// Version 7 UUIDs begin with a Unix timestamp in milliseconds, so ids sort
/// by creation time; the store relies on this to list runs newest first.
/// [`Display`](fmt::Display) and [`FromStr`] use the hyphenated form
/// (`0190163d-8694-739b-aea5-966c26f8ad91`); serde uses the same string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub uuid::Uuid);

impl RunId {
    /// A fresh id stamped with the current time (`Uuid::now_v7`).
    ///
    /// Ids made in the same process are strictly increasing.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// The id as a 128-bit integer, the form used as the store's key.
    pub fn as_u128(&self) -> u128 {
        self.0.as_u128()
    }

    /// The id whose 128-bit integer form is `value`.
    pub fn from_u128(value: u128) -> Self {
        Self(uuid::Uuid::from_u128(value))
    }
}

impl Default for RunId {
    /// Same as [`RunId::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for RunId {
    type Err = uuid::Error;

    /// Parses a UUID (hyphenated, simple, braced or URN form).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

/// A name that [`FromStr`] did not recognise, for [`RunStatus`],
/// [`ComponentKind`] and [`LogLevel`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?}")]
pub struct ParseNameError {
    /// What was being parsed: `"run status"`, `"component kind"` or `"log level"`.
    pub what: &'static str,
    /// The string that was refused.
    pub name: String,
}

/// Implements `as_str`, `Display` and `FromStr` over a fixed name table.
macro_rules! named_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The kebab-case name, as used by serde, `Display` and `FromStr`.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = ParseNameError;

            /// Parses the kebab-case name.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Self::$variant),)+
                    _ => Err(ParseNameError { what: $what, name: s.to_owned() }),
                }
            }
        }
    };
}

/// What kind of component ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    /// A component exporting the Orbit agent interface.
    Agent,
    /// A WASI command (`wasi:cli/run`).
    Command,
}

named_enum!(ComponentKind, "component kind", {
    Agent => "agent",
    Command => "command",
});

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RunStatus {
    /// The guest returned a result (agent) or exited with code 0 (command).
    Succeeded,
    /// The guest returned an error value.
    Failed,
    /// A command exited with a non-zero exit code.
    Exited,
    /// The run used up its fuel budget.
    OutOfFuel,
    /// The run went past its wall-clock deadline.
    DeadlineExceeded,
    /// The guest tried to grow its memory past the limit.
    MemoryLimit,
    /// The guest overflowed its wasm stack.
    StackOverflow,
    /// Input, output or another payload was larger than allowed.
    TooLarge,
    /// The guest trapped for any other reason.
    Trapped,
    /// The host failed; not the guest's fault.
    Internal,
    /// The run was cancelled from outside (by run id, or because the token
    /// it runs with was revoked) and stopped at its next host call or epoch
    /// tick.
    Cancelled,
}

named_enum!(RunStatus, "run status", {
    Succeeded => "succeeded",
    Failed => "failed",
    Exited => "exited",
    OutOfFuel => "out-of-fuel",
    DeadlineExceeded => "deadline-exceeded",
    MemoryLimit => "memory-limit",
    StackOverflow => "stack-overflow",
    TooLarge => "too-large",
    Trapped => "trapped",
    Internal => "internal",
    Cancelled => "cancelled",
});

impl RunStatus {
    /// Every status, in declaration order.
    pub const ALL: &'static [RunStatus] = &[
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Exited,
        RunStatus::OutOfFuel,
        RunStatus::DeadlineExceeded,
        RunStatus::MemoryLimit,
        RunStatus::StackOverflow,
        RunStatus::TooLarge,
        RunStatus::Trapped,
        RunStatus::Internal,
        RunStatus::Cancelled,
    ];

    /// `true` only for [`RunStatus::Succeeded`].
    pub fn is_success(&self) -> bool {
        matches!(self, RunStatus::Succeeded)
    }
}

/// Why a run did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// A guest error code such as `"invalid-input"`, or a trap name such as
    /// `"out-of-fuel"`.
    pub code: String,
    /// The caller-facing message: a fixed text per code for limits, traps
    /// and host failures. For `failed` runs it is the text the guest chose
    /// (capped at 1 KiB), so treat it as untrusted when displaying it.
    pub message: String,
    /// Internal detail for operators only; never shown to API callers.
    pub detail: Option<String>,
}

/// The level of one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogLevel {
    /// Finest-grained guest logging.
    Trace,
    /// Debug logging.
    Debug,
    /// Informational logging.
    Info,
    /// Warnings.
    Warn,
    /// Errors.
    Error,
    /// A line the guest wrote to its standard error stream.
    Stderr,
}

named_enum!(LogLevel, "log level", {
    Trace => "trace",
    Debug => "debug",
    Info => "info",
    Warn => "warn",
    Error => "error",
    Stderr => "stderr",
});

/// One log line written by the guest during a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the line was written, in microseconds since the run started.
    pub offset_us: u64,
    /// The line's level.
    pub level: LogLevel,
    /// The text of the line.
    pub message: String,
}

/// One call the guest made to a host primitive during a run.
///
/// Spans record sizes and outcomes, never payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// The primitive called, such as `"storage"` or `"cache"`.
    pub primitive: String,
    /// The operation called, such as `"get"` or `"put"`.
    pub operation: String,
    /// When the call started, in microseconds since the run started.
    pub start_offset_us: u64,
    /// How long the call took, in microseconds.
    pub duration_us: u64,
    /// `"ok"`, or the error code the call returned.
    pub outcome: String,
    /// Bytes the guest passed into the call.
    pub bytes_in: u64,
    /// Bytes the call returned to the guest.
    pub bytes_out: u64,
    /// Extra facts about the call, as key/value pairs (for `fetch`: method,
    /// host, status, names of the secrets used). Never header values,
    /// bodies or secret values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attrs: Vec<(String, String)>,
}

/// Everything recorded about one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id; also its key in the store.
    pub id: RunId,
    /// The workspace the run belongs to.
    pub workspace: WorkspaceId,
    /// The SHA-256 of the component's wasm bytes, as 64 lowercase hex digits.
    pub component_digest: String,
    /// What kind of component ran.
    pub kind: ComponentKind,
    /// When the run started, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// How long the run took, in microseconds.
    pub duration_us: u64,
    /// How the run ended.
    pub status: RunStatus,
    /// A command's exit code; `None` for agents and for commands that trapped.
    pub exit_code: Option<i32>,
    /// Why the run did not succeed; `None` on success.
    pub error: Option<RunError>,
    /// Fuel (wasm instruction budget units) the run consumed.
    pub fuel_consumed: u64,
    /// Linear memory the run's instance held at its end, in bytes: every
    /// memory of every core instance, as the memory limit granted it (a
    /// memory never shrinks, so this is also its peak). Records written
    /// before this field existed read as 0.
    #[serde(default)]
    pub memory_bytes: u64,
    /// Size of the run's input, in bytes.
    pub input_bytes: u64,
    /// Size of the run's full output, in bytes (before any capping).
    pub output_bytes: u64,
    /// Total size of the guest's log output, in bytes (before any capping).
    pub log_bytes: u64,
    /// A capped copy of the output; `None` when recording of output is off.
    pub output: Option<String>,
    /// `true` when [`output`](Self::output) holds less than the full output.
    pub output_truncated: bool,
    /// The guest's log lines, possibly capped.
    pub logs: Vec<LogLine>,
    /// `true` when [`logs`](Self::logs) holds fewer lines than were written.
    pub logs_truncated: bool,
    /// Calls the guest made to host primitives, in start order.
    pub spans: Vec<Span>,
    /// Host calls made after the per-run span cap was reached, counted but
    /// not recorded.
    #[serde(default)]
    pub spans_dropped: u64,
    /// Internal detail of host-call failures (`primitive.operation: detail`),
    /// for operators only: it may hold host paths or OS errors, and is never
    /// shown to the guest, which saw only a fixed message.
    #[serde(default)]
    pub host_errors: Vec<String>,
    /// The run that started this one as a child (the `jobs` primitive's
    /// `invoke` or `enqueue`); `None` for a top-level run. Records written
    /// before this field existed read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<RunId>,
    /// Who the run acted for: the member (or the local operator, or an
    /// embedding program), the token it authenticated with and the agent it
    /// ran as, with the role it held. Records written before principals
    /// travelled with runs read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
}

impl RunRecord {
    /// The handle of the member the run acted for, when it acted for a
    /// workspace member (not the local operator or an embedding program).
    pub fn member(&self) -> Option<&UserId> {
        self.principal.as_ref().and_then(Principal::user_id)
    }
}

/// The most runs one [`RunStore::list`](crate::RunStore::list) call returns.
pub const MAX_LIST_LIMIT: usize = 1000;

/// The page size used by [`RunQuery::new`].
pub const DEFAULT_LIST_LIMIT: usize = 50;

/// What [`RunStore::list`](crate::RunStore::list) should return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunQuery {
    /// The only workspace whose runs are listed.
    pub workspace: WorkspaceId,
    /// When set, only runs with this status are listed.
    pub status: Option<RunStatus>,
    /// The most runs to return (a count); values above [`MAX_LIST_LIMIT`]
    /// are reduced to it, and 0 returns an empty page.
    pub limit: usize,
    /// A cursor: when set, only runs older than this id are listed. Pass the
    /// previous page's [`RunPage::next_cursor`].
    pub before: Option<RunId>,
    /// When set, only runs whose principal is this member (through any of
    /// its tokens or agents) are listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<UserId>,
}

impl RunQuery {
    /// The first page of `workspace`'s runs, any status,
    /// [`DEFAULT_LIST_LIMIT`] runs per page.
    pub fn new(workspace: WorkspaceId) -> Self {
        Self { workspace, status: None, limit: DEFAULT_LIST_LIMIT, before: None, member: None }
    }
}

/// One page of runs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPage {
    /// The runs on this page, newest first.
    pub runs: Vec<RunRecord>,
    /// The id of the last run on this page when at least one more run
    /// matches the query; `None` on the last page. Pass it as
    /// [`RunQuery::before`] to get the next page.
    pub next_cursor: Option<RunId>,
}

/// How the store's writer thread batches records into commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// The most records in one write transaction (a count; 0 is treated
    /// as 1). Default 512.
    pub max_batch: usize,
    /// How long the writer waits, after the first record of a batch
    /// arrives, for more records to join it. Default zero: a batch holds
    /// what is queued when the previous commit ends, so records that arrive
    /// during one fsync share the next, and a lone caller never waits for
    /// company. A positive delay trades every record's latency for fewer
    /// commits.
    pub max_delay: Duration,
    /// How long a batch may wait, from its first record, for the records of
    /// runs that are still executing (announced with
    /// [`RunStore::expect_record`](crate::RunStore::expect_record)). Default
    /// zero: a batch is written as soon as the writer has it, and records
    /// that arrive during its `fdatasync` share the next. A positive wait
    /// fills each commit with runs about to finish, for fewer `fdatasync`
    /// calls, at the cost of each record's latency; a lone caller never
    /// waits (with no run executing the batch commits at once). While
    /// callers run back to back some run is nearly always executing, so the
    /// writer would wait the whole time on every batch with the disk idle:
    /// 1 ms cost 19–22% of the runs per second at 16 callers and 21–24% at
    /// 64 (BENCHMARKS.md, session 23).
    pub max_linger: Duration,
    /// Whether each batch is made durable by one append to the write-ahead
    /// log (`<store>.wal`, one `fdatasync`), with redb updated from it
    /// afterwards by non-durable commits off the caller's path, instead of
    /// a durable two-phase redb commit (two `fsync`s and about 100 µs of
    /// CPU). Either way a record is on disk when acknowledged. Default
    /// `true`; `false` is for measuring the difference.
    pub write_ahead_log: bool,
    /// The log's size, in bytes, past which the writer makes redb durable
    /// and empties the log (a checkpoint). It bounds what an open after a
    /// crash imports. An emptied log's file keeps its length, up to twice
    /// this (a longer one is cut back), so that later appends overwrite
    /// blocks it has, which makes their `fdatasync` cheaper. Default 8 MiB.
    pub checkpoint_bytes: u64,
    /// The longest a record stays in the log before a checkpoint falls due
    /// (a background flush, when one runs first, adds its own duration), also when
    /// the store is idle, once this process has recorded a run or opened
    /// redb for writing. Records a store reopened read-only reads back from
    /// earlier processes wait for this process's own first record (or a
    /// checkpoint by size); between processes the log stays under 64 KiB,
    /// since a read-only store past it checkpoints as it closes. Default
    /// 1 s.
    pub checkpoint_interval: Duration,
    /// Whether a lone caller commits its own record on its own thread when
    /// no other record is announced or queued and the writer is idle, instead
    /// of handing it to the writer thread and waiting to be woken (two
    /// cross-thread wake-ups, each an inter-processor interrupt on a VM).
    /// The commit is the same: a batch of one, logged and synced before
    /// the call returns. Concurrent callers still share batches through the
    /// writer thread. Default `true`; `false` is for measuring the
    /// difference.
    pub lone_caller_commits: bool,
    /// Whether a checkpoint that falls due while redb is open for writing
    /// first makes redb durable on a thread of its own (one durable
    /// two-phase commit of everything applied so far), while batches keep
    /// being logged and acknowledged, and only then takes the writer's
    /// lock for the checkpoint proper, which has little left to write.
    /// Otherwise every batch waits for the whole checkpoint (tens of
    /// milliseconds once a second under load, 69 ms measured once and
    /// about 100 ms on another machine: redb writes out all the pages its
    /// non-durable commits dirtied). Records wait in memory meanwhile, unapplied, and
    /// stay in the log until the checkpoint proper has emptied it, so the
    /// guarantees do not change. Default `true`; `false` is for measuring
    /// the difference.
    pub background_flush: bool,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            max_batch: 512,
            max_delay: Duration::ZERO,
            max_linger: Duration::ZERO,
            write_ahead_log: true,
            checkpoint_bytes: 8 << 20,
            checkpoint_interval: Duration::from_secs(1),
            lone_caller_commits: true,
            background_flush: true,
        }
    }
}
