//! The client side of the socket: the handshake, forwarding a CLI command,
//! and the MCP adapter of a second `orbit mcp`.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::proto::{self, Accept, Kind, PROTOCOL_VERSION, ProgressFrame};
use crate::{Progress, TerminalProgress};

/// How long the owner has to answer a hello.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends the preamble and `hello`, and reads the owner's answer: its pid
/// once accepted, `None` when the owner closed the connection first (it is
/// shutting down; the caller waits for the lock instead).
pub(crate) fn handshake(stream: &mut UnixStream, hello: &[u8], dir: &Path) -> Result<Option<u32>> {
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let sent = proto::write_preamble(stream).and_then(|()| proto::write_frame(stream, Kind::Hello, hello));
    let version = match proto::read_preamble(stream) {
        Ok(v) => v,
        // Gone before answering: shutting down.
        Err(_) if sent.is_err() => return Ok(None),
        Err(e) if is_eof(&e) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("talking to the owner of {}", dir.display())),
    };
    if version != PROTOCOL_VERSION {
        let who = super::lock::holder_pid(dir).map(|p| format!(" (pid {p})")).unwrap_or_default();
        bail!(
            "the orbit process that owns {}{who} speaks socket protocol {version}, this orbit speaks \
             {PROTOCOL_VERSION}: use the same orbit version, or restart the owner",
            dir.display()
        );
    }
    let answer = match proto::read_frame(stream) {
        Ok(Some(frame)) => frame,
        Ok(None) => return Ok(None),
        Err(e) if is_eof(&e) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("talking to the owner of {}", dir.display())),
    };
    stream.set_read_timeout(None)?;
    match answer {
        (Kind::Accept, payload) => Ok(Some(serde_json::from_slice::<Accept>(&payload)?.pid)),
        (Kind::Refuse, reason) => bail!("the owner of {} refused: {}", dir.display(), String::from_utf8_lossy(&reason)),
        (kind, _) => bail!("unexpected {kind:?} frame from the owner of {}", dir.display()),
    }
}

fn is_eof(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        )
    })
}

/// Relays an accepted CLI session: the owner's stdout and stderr frames to
/// this process's, its spinner to this terminal, its exit code as ours.
pub(crate) fn forward(mut stream: UnixStream, pid: Option<u32>) -> Result<ExitCode> {
    let progress = TerminalProgress::default();
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    loop {
        let Some((kind, payload)) = proto::read_frame(&mut stream)? else {
            progress.finish();
            let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            bail!("the orbit process that owns the data directory{who} ended before the command finished");
        };
        match kind {
            Kind::Stdout => {
                stdout.write_all(&payload)?;
                stdout.flush()?;
            }
            Kind::Stderr => {
                stderr.write_all(&payload)?;
                stderr.flush()?;
            }
            Kind::Progress => match serde_json::from_slice::<ProgressFrame>(&payload)?.message {
                Some(message) => progress.start(&message),
                None => progress.finish(),
            },
            Kind::Exit => {
                progress.finish();
                return Ok(ExitCode::from(payload.first().copied().unwrap_or(2)));
            }
            other => bail!("unexpected {other:?} frame from the owner"),
        }
    }
}

/// A second `orbit mcp`: copies stdin to the owner's MCP session and the
/// session to stdout, until the owner closes it (after stdin ends, or when
/// it stops).
pub(crate) fn mcp_adapter(stream: UnixStream) -> Result<ExitCode> {
    let mut up = stream.try_clone()?;
    // Not joined: once the session is over, the process ends even while
    // this thread still waits on stdin.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut up);
        let _ = up.shutdown(Shutdown::Write);
    });
    let mut down = stream;
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match down.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e).context("reading from the owner's MCP session"),
        };
        stdout.write_all(&buf[..n])?;
        stdout.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
