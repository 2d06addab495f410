//! One data directory, many processes.
//!
//! redb lets one process open a database file. So that two agents, a
//! running server and the operator's CLI can share a data directory anyway,
//! one process at a time opens it, and the others act through it:
//!
//! - **The lock.** `<data dir>/orbit.lock` ([`lock`]) is an exclusive
//!   advisory lock; its holder alone opens the databases. It holds the
//!   holder's pid.
//! - **The owner.** A long-lived process (`orbit serve`, `orbit mcp`) that
//!   takes the lock becomes the directory's owner: it also serves the
//!   private Unix socket `<data dir>/orbit.sock` (mode 0600, created under a
//!   0700 directory and renamed into place, replacing a stale one; peers of
//!   another uid are refused). See [`owner`].
//! - **Clients.** Any other `orbit` first connects to the socket
//!   ([`connect`]). A CLI command is sent there, parsed, with its paths
//!   made absolute and its stdin (the value of `orbit secret set`) read on
//!   the client; the owner runs the same handler and streams back stdout,
//!   stderr, spinner state and the exit code ([`client::forward`]). A second
//!   `orbit mcp` asks for an MCP session and copies stdin → socket → stdout
//!   ([`client::mcp_adapter`]); `ORBIT_TOKEN`, when set, travels with it.
//!   `orbit serve` refuses to start under an owner, naming its pid.
//! - **No owner.** A CLI command takes the lock itself for its duration; if
//!   another short-lived command holds it, it waits its turn (saying so on
//!   stderr after a second) for up to [`WAIT`], then fails.
//! - **The protocol** is in [`proto`]: a preamble with a version, then
//!   length-prefixed frames, none over 16 MiB.

pub(crate) mod client;
pub(crate) mod lock;
pub(crate) mod owner;
pub(crate) mod proto;

use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use orbit::{Orbit, OrbitConfig};
use zeroize::Zeroizing;

use crate::{Command, Ctx, TerminalProgress, dispatch, open_orbit};
use lock::DirLock;

/// The socket's name in the data directory.
pub(crate) const SOCKET_FILE: &str = "orbit.sock";
/// How long a process waits for another to release the data directory.
pub(crate) const WAIT: Duration = Duration::from_secs(60);
/// After this long waiting, a process says on stderr that it waits.
const WAIT_NOTICE: Duration = Duration::from_secs(1);
/// How often a waiting process looks again.
const POLL: Duration = Duration::from_millis(100);

/// How this process may act on the data directory.
pub(crate) enum Access {
    /// An owner serves the directory; this connection to it has been
    /// accepted (or, with no hello, merely opened).
    Owner {
        /// The connection, past the handshake.
        stream: UnixStream,
        /// The owner's pid, when known.
        pid: Option<u32>,
    },
    /// This process holds the lock and may open the directory itself.
    Locked(DirLock),
}

/// Finds out how to act on `dir`: through its owner (sending `hello`, a
/// serialized [`proto::Hello`], when given), or by taking its lock. Waits
/// while another process holds the lock without serving the socket (a
/// short-lived command, or an owner starting or stopping), for up to
/// [`WAIT`].
pub(crate) fn connect(dir: &Path, hello: Option<&[u8]>) -> Result<Access> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    let socket = dir.join(SOCKET_FILE);
    let started = Instant::now();
    let mut told = false;
    loop {
        if let Ok(mut stream) = UnixStream::connect(&socket) {
            let Some(hello) = hello else { return Ok(Access::Owner { stream, pid: lock::holder_pid(dir) }) };
            // `None`: the owner is shutting down; wait for the lock.
            if let Some(pid) = client::handshake(&mut stream, hello, dir)? {
                return Ok(Access::Owner { stream, pid: Some(pid) });
            }
        }
        if let Some(lock) = DirLock::try_acquire(dir)? {
            return Ok(Access::Locked(lock));
        }
        let waited = started.elapsed();
        if !told && waited >= WAIT_NOTICE {
            eprintln!("orbit: waiting for another orbit process to release {}…", dir.display());
            told = true;
        }
        if waited >= WAIT {
            let who = lock::holder_pid(dir).map(|p| format!(" (pid {p})")).unwrap_or_default();
            bail!(
                "another orbit process{who} has held {} for over {} s; try again once it has finished",
                dir.display(),
                WAIT.as_secs()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Opens the data directory once this process holds its lock, with the
/// settings `config` makes. The previous holder may be a process still
/// closing its files as it exits (its lock goes with its first file), so
/// "already open" is retried for a moment.
pub(crate) fn open_retrying(dir: &Path, config: fn() -> OrbitConfig) -> Result<Orbit, orbit::OpenError> {
    let started = Instant::now();
    loop {
        match Orbit::open_with(dir, config()) {
            Err(e) if started.elapsed() < Duration::from_secs(5) && already_open(&e) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Settings for a short-lived `orbit` that runs a command itself (no owner
/// serves the directory): the defaults, but no linear memory or table kept
/// resident when a run ends.
///
/// Keeping them resident (`EngineConfig::keep_resident_bytes`) pays off
/// when the next run reuses the slot, which a process that exits after one
/// command rarely does; meanwhile the reset at the end of the run writes
/// zeros or the memory image over every kept page, faulting in the pages
/// the run never touched. Handing them back to the kernel instead leaves
/// the same zeroes and image for any later run in the slot. Measured in
/// BENCHMARKS.md (P5): 1,186 → 924 page faults per `orbit run`.
///
/// The pool stays (`InstanceAllocation::Pooling`), though building it
/// costs a short-lived process about 0.4 ms: it also refuses, when a
/// component loads, what wasmtime's on-demand allocator would let through
/// (more than one memory or table per core module, a core instance whose
/// runtime state passes 1 MiB), and a short-lived `orbit` runs agents'
/// components too.
pub(crate) fn short_lived() -> OrbitConfig {
    let mut config = OrbitConfig::default();
    config.engine.keep_resident_bytes = 0;
    config
}

/// Tokio worker threads for a short-lived `orbit` running `command`: the
/// default (one per core) for `orbit jobs work`, which runs queued jobs on
/// them; one otherwise. A command runs on this thread (`block_on`) and the
/// worker takes what it spawns (MCP sessions, and the jobs an `orbit run`
/// of a component importing `jobs` queues, which then share that worker);
/// each further worker is a thread to start and stop in a process that
/// lives a few ms (BENCHMARKS.md, P5).
fn worker_threads(command: &Command) -> Option<usize> {
    match command {
        Command::Jobs(crate::jobs::JobsCommand::Work) => None,
        _ => Some(1),
    }
}

/// Whether redb refused a file another process still has open.
fn already_open(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.to_string().contains("already open") {
            return true;
        }
        cur = e.source();
    }
    false
}

/// How long a short-lived `orbit` waits, after answering, for the
/// optimizing compiles of components it ran on baseline code.
const TIER_UP_WAIT: Duration = Duration::from_secs(120);

/// Runs a CLI command: through the data directory's owner when one serves
/// it, else here under the directory's lock.
pub(crate) fn run_command(dir: &Path, command: Command, stdin: Option<String>) -> Result<ExitCode> {
    // The owner gets a copy with absolute paths; run here, the command
    // keeps the paths as given (they show in its messages).
    let mut remote: Command = serde_json::from_value(serde_json::to_value(&command)?)?;
    remote.absolutize(&std::env::current_dir().context("current directory")?);
    let hello = proto::Hello::Cli { command: serde_json::to_value(&remote)?, stdin };
    let bytes = Zeroizing::new(serde_json::to_vec(&hello)?);
    let proto::Hello::Cli { stdin, .. } = hello else { unreachable!() };
    match connect(dir, Some(&bytes[..]))? {
        Access::Owner { stream, pid } => client::forward(stream, pid),
        Access::Locked(lock) => {
            let mut out = std::io::stdout();
            let mut err = std::io::stderr();
            let orbit = open_orbit(dir, &mut err, short_lived)?;
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = worker_threads(&command) {
                rt.worker_threads(n);
            }
            let rt = rt.enable_all().build()?;
            let progress = TerminalProgress::default();
            let ctx = Ctx { orbit: &orbit, rt: rt.handle(), workers: None, stdin: stdin.into(), progress: &progress };
            let result = dispatch(command, &ctx, &mut out, &mut err);
            // A component run on baseline code is being compiled by
            // Cranelift for the compile cache: the answer is out, and the
            // next `orbit run` of it loads the optimized artifact.
            if orbit.engine().tier_ups_in_flight() > 0 {
                let _ = std::io::Write::flush(&mut out);
                orbit.engine().wait_for_tier_ups(TIER_UP_WAIT);
            }
            drop(ctx);
            // Close every file before the lock goes, so the next holder can
            // open them at once.
            rt.shutdown_timeout(Duration::from_secs(5));
            drop(orbit);
            drop(lock);
            result
        }
    }
}
