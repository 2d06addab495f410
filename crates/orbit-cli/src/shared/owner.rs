//! The owner side of the socket: bind `<data dir>/orbit.sock`, accept
//! connections, and serve each one: a CLI command through the same
//! handlers a short-lived `orbit` runs, or an MCP session through
//! `orbit_server::serve_io`, the entry point `orbit mcp` uses on stdio.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use orbit::{JobWorkers, Orbit};
use orbit_server::OrbitMcp;
use zeroize::Zeroizing;

use super::SOCKET_FILE;
use super::proto::{self, Accept, CHUNK, Hello, Kind, PROTOCOL_VERSION, ProgressFrame};
use crate::{Command, Ctx, Progress, dispatch};

/// How long a client has to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the owner serves connections with.
pub(crate) struct OwnerCtx {
    /// The open data directory.
    pub(crate) orbit: Orbit,
    /// The MCP server; each MCP connection gets its own session of it.
    pub(crate) mcp: OrbitMcp,
    /// The queue workers the owner runs.
    pub(crate) workers: Arc<JobWorkers>,
}

/// Binds `<dir>/orbit.sock` atomically with mode 0600: bound in a fresh
/// 0700 directory, its mode set, then renamed over the final name (which
/// replaces a stale socket of a dead owner). The caller holds the lock.
pub(crate) fn bind(dir: &Path) -> Result<std::os::unix::net::UnixListener> {
    let tmp_dir = dir.join(format!(".sock.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp_dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp_dir)
        .with_context(|| format!("creating {}", tmp_dir.display()))?;
    let tmp = tmp_dir.join("s");
    let bound = (|| {
        let listener = std::os::unix::net::UnixListener::bind(&tmp)
            .with_context(|| format!("binding {} (a socket path may be at most 107 bytes)", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        let path = dir.join(SOCKET_FILE);
        std::fs::rename(&tmp, &path).with_context(|| format!("placing {}", path.display()))?;
        anyhow::Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&tmp_dir);
    bound
}

/// A serving owner: the accept loop and the connections it has accepted.
pub(crate) struct Owner {
    path: PathBuf,
    accept: tokio::task::JoinHandle<()>,
    active: tokio::sync::watch::Sender<usize>,
}

/// Counts a connection as active while it lives.
struct Active(tokio::sync::watch::Sender<usize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Owner {
    /// Starts accepting on `listener` (from [`bind`]) in `dir`, on the
    /// current tokio runtime.
    pub(crate) fn start(dir: &Path, listener: std::os::unix::net::UnixListener, ctx: OwnerCtx) -> Result<Self> {
        let path = dir.join(SOCKET_FILE);
        // Only peers of the uid that owns the socket may use it (it is
        // 0600; this also keeps root's processes out of a user's directory).
        let uid = std::fs::metadata(&path)?.uid();
        listener.set_nonblocking(true)?;
        let listener = tokio::net::UnixListener::from_std(listener)?;
        let (active, _) = tokio::sync::watch::channel(0usize);
        let counter = active.clone();
        let ctx = Arc::new(ctx);
        let accept = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        eprintln!("orbit: accepting on {SOCKET_FILE}: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if stream.peer_cred().map(|c| c.uid()).ok() != Some(uid) {
                    continue;
                }
                counter.send_modify(|n| *n += 1);
                let active = Active(counter.clone());
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let _active = active;
                    if let Err(e) = serve_connection(stream, ctx).await {
                        eprintln!("orbit: a connection on {SOCKET_FILE} failed: {e:#}");
                    }
                });
            }
        });
        Ok(Self { path, accept, active })
    }

    /// Waits until no accepted connection is left.
    pub(crate) async fn wait_idle(&self) {
        let _ = self.active.subscribe().wait_for(|n| *n == 0).await;
    }

    /// Stops serving: removes the socket (new clients wait for the lock),
    /// stops accepting, and waits for the connections already accepted.
    pub(crate) async fn shutdown(self) {
        let Owner { path, accept, active } = self;
        let _ = std::fs::remove_file(&path);
        accept.abort();
        let _ = accept.await;
        let _ = active.subscribe().wait_for(|n| *n == 0).await;
    }
}

/// Serves one connection: the handshake, then a CLI command or an MCP
/// session.
async fn serve_connection(stream: tokio::net::UnixStream, ctx: Arc<OwnerCtx>) -> Result<()> {
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    let rt = tokio::runtime::Handle::current();
    let blocking_ctx = ctx.clone();
    // The handshake and a CLI command use blocking I/O and the blocking
    // handlers, off the runtime's workers.
    let mcp = tokio::task::spawn_blocking(move || serve_blocking(stream, &blocking_ctx, &rt)).await??;
    if let Some((stream, token)) = mcp {
        stream.set_nonblocking(true)?;
        start_mcp_session(&ctx.mcp, tokio::net::UnixStream::from_std(stream)?, token).await?;
    }
    Ok(())
}

/// Starts an MCP session on a connection from another `orbit mcp`, exactly
/// as `orbit mcp` serves its own stdio: `token` is that process's
/// `ORBIT_TOKEN`, for the server's authentication to check.
async fn start_mcp_session(server: &OrbitMcp, stream: tokio::net::UnixStream, token: Option<String>) -> Result<()> {
    // The session checks the token on every message; none at all is
    // answered as a missing token.
    let credentials = orbit_server::auth::Credentials::token(token.unwrap_or_default());
    let (read, write) = stream.into_split();
    orbit_server::serve_io(server.session().with_credentials(credentials), read, write).await?;
    Ok(())
}

/// The handshake, then a whole CLI session; an MCP session is handed back
/// (with the client's token) to be served on the runtime.
fn serve_blocking(
    mut stream: UnixStream,
    ctx: &OwnerCtx,
    rt: &tokio::runtime::Handle,
) -> Result<Option<(UnixStream, Option<String>)>> {
    proto::write_preamble(&mut stream)?;
    stream.set_read_timeout(Some(HELLO_TIMEOUT))?;
    let version = proto::read_preamble(&mut stream)?;
    if version != PROTOCOL_VERSION {
        // The client reads our preamble and explains.
        return Ok(None);
    }
    let Some((Kind::Hello, payload)) = proto::read_frame(&mut stream)? else { bail!("no hello") };
    stream.set_read_timeout(None)?;
    let payload = Zeroizing::new(payload);
    // Never quote the hello in an error: it may carry a secret.
    let Ok(hello) = serde_json::from_slice::<Hello>(&payload) else { bail!("malformed hello") };
    let accept = serde_json::to_vec(&Accept { pid: std::process::id() })?;
    match hello {
        Hello::Mcp { token } => {
            // Refuse at once a token that cannot work, as an `orbit mcp`
            // that owns the directory does: the client exits non-zero
            // with the reason. The session still checks it on every
            // message (revocation).
            if let Err(e) = orbit_server::auth::authenticate(&ctx.orbit, token.as_deref()) {
                proto::write_frame(&mut stream, Kind::Refuse, e.message.as_bytes())?;
                return Ok(None);
            }
            proto::write_frame(&mut stream, Kind::Accept, &accept)?;
            Ok(Some((stream, token)))
        }
        Hello::Cli { command, stdin } => {
            let command: Command = match serde_json::from_value(command) {
                Ok(c) => c,
                Err(e) => {
                    proto::write_frame(&mut stream, Kind::Refuse, format!("unknown command: {e}").as_bytes())?;
                    return Ok(None);
                }
            };
            proto::write_frame(&mut stream, Kind::Accept, &accept)?;
            run_cli(stream, command, stdin, ctx, rt)?;
            Ok(None)
        }
    }
}

/// Runs one forwarded CLI command with the client's output as its writers.
fn run_cli(
    stream: UnixStream,
    command: Command,
    stdin: Option<String>,
    owner: &OwnerCtx,
    rt: &tokio::runtime::Handle,
) -> Result<()> {
    let sink = Arc::new(Mutex::new(stream));
    let mut out = FrameWriter { kind: Kind::Stdout, sink: sink.clone() };
    let mut err = FrameWriter { kind: Kind::Stderr, sink: sink.clone() };
    let progress = RemoteProgress { sink: sink.clone() };
    let ctx = Ctx { orbit: &owner.orbit, rt, workers: Some(&owner.workers), stdin: stdin.into(), progress: &progress };
    let code = match dispatch(command, &ctx, &mut out, &mut err) {
        Ok(code) => exit_byte(code),
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            2
        }
    };
    let mut stream = sink.lock().unwrap_or_else(|e| e.into_inner());
    proto::write_frame(&mut *stream, Kind::Exit, &[code])?;
    Ok(())
}

/// The number behind an [`ExitCode`] (which has no getter).
fn exit_byte(code: ExitCode) -> u8 {
    (0..=255u8).find(|n| ExitCode::from(*n) == code).unwrap_or(1)
}

/// A writer whose bytes reach the client's stdout or stderr as frames.
struct FrameWriter {
    kind: Kind,
    sink: Arc<Mutex<UnixStream>>,
}

impl Write for FrameWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(CHUNK);
        let mut stream = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        proto::write_frame(&mut *stream, self.kind, &buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Shows the spinner on the client's terminal.
struct RemoteProgress {
    sink: Arc<Mutex<UnixStream>>,
}

impl RemoteProgress {
    fn send(&self, message: Option<String>) {
        if let Ok(frame) = serde_json::to_vec(&ProgressFrame { message }) {
            let mut stream = self.sink.lock().unwrap_or_else(|e| e.into_inner());
            let _ = proto::write_frame(&mut *stream, Kind::Progress, &frame);
        }
    }
}

impl Progress for RemoteProgress {
    fn start(&self, message: &str) {
        self.send(Some(message.to_owned()));
    }

    fn finish(&self) {
        self.send(None);
    }
}
