//! The wire protocol on `<data dir>/orbit.sock`.
//!
//! ```text
//! preamble := "orbit\0" version:u16be          (each side sends one first)
//! frame    := kind:u8 length:u32be payload[length]
//! ```
//!
//! The client sends its preamble and one `H` frame, the owner its preamble
//! and one `A` frame (or `R` and closes). Then:
//!
//! - a CLI session: the owner sends `O` (stdout bytes), `E` (stderr bytes)
//!   and `P` (spinner) frames as the command runs, and one `X` frame with
//!   the exit code, then closes;
//! - an MCP session: the connection carries MCP's newline-delimited
//!   JSON-RPC, as on stdio, in both directions, until either side closes.
//!
//! | Kind | Payload |
//! |---|---|
//! | `H` hello | JSON [`Hello`] |
//! | `A` accept | JSON [`Accept`] |
//! | `R` refuse | UTF-8 reason |
//! | `O`, `E` | bytes for the client's stdout, stderr |
//! | `P` progress | JSON [`ProgressFrame`] |
//! | `X` exit | one byte: the exit code |
//!
//! No frame is larger than [`MAX_FRAME`]; a peer announcing a larger one is
//! cut off. A preamble with another version is an error naming both.

use std::io::{self, Read, Write};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// The protocol version this `orbit` speaks.
pub(crate) const PROTOCOL_VERSION: u16 = 1;
/// The first bytes of each side's preamble.
const MAGIC: &[u8; 6] = b"orbit\0";
/// The largest frame either side accepts (a command's arguments, or one
/// chunk of output).
pub(crate) const MAX_FRAME: usize = 16 << 20;
/// Output is sent in chunks of at most this many bytes.
pub(crate) const CHUNK: usize = 1 << 20;

/// Frame kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Client → owner, first: [`Hello`].
    Hello,
    /// Owner → client: the session is accepted ([`Accept`]).
    Accept,
    /// Owner → client: the session is refused; UTF-8 reason.
    Refuse,
    /// Owner → client: bytes for stdout.
    Stdout,
    /// Owner → client: bytes for stderr.
    Stderr,
    /// Owner → client: [`ProgressFrame`].
    Progress,
    /// Owner → client, last: the exit code (one byte).
    Exit,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Hello => b'H',
            Kind::Accept => b'A',
            Kind::Refuse => b'R',
            Kind::Stdout => b'O',
            Kind::Stderr => b'E',
            Kind::Progress => b'P',
            Kind::Exit => b'X',
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'H' => Kind::Hello,
            b'A' => Kind::Accept,
            b'R' => Kind::Refuse,
            b'O' => Kind::Stdout,
            b'E' => Kind::Stderr,
            b'P' => Kind::Progress,
            b'X' => Kind::Exit,
            _ => return None,
        })
    }
}

/// What a client asks for. Carries secrets (a secret value, a token): never
/// printed, never logged, hence no `Debug`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "session", rename_all = "snake_case")]
pub(crate) enum Hello {
    /// Run one CLI command as the local operator.
    Cli {
        /// The parsed command (`crate::Command`), paths already absolute.
        command: serde_json::Value,
        /// What the command read from the user's stdin (the value of
        /// `orbit secret set`).
        stdin: Option<String>,
    },
    /// Speak MCP on this connection.
    Mcp {
        /// The `ORBIT_TOKEN` of the client's environment, when set.
        token: Option<String>,
    },
}

/// The owner's answer to a [`Hello`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Accept {
    /// The owner's process id.
    pub(crate) pid: u32,
}

/// Starts (`Some`) or clears (`None`) the client's spinner.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ProgressFrame {
    /// The spinner's message.
    pub(crate) message: Option<String>,
}

/// Writes this side's preamble.
pub(crate) fn write_preamble(w: &mut impl Write) -> io::Result<()> {
    let mut buf = [0u8; 8];
    buf[..6].copy_from_slice(MAGIC);
    buf[6..].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    w.write_all(&buf)
}

/// Reads the peer's preamble and returns its version.
pub(crate) fn read_preamble(r: &mut impl Read) -> Result<u16> {
    let mut buf = [0u8; 8];
    r.read_exact(&mut buf)?;
    if &buf[..6] != MAGIC {
        bail!("the peer does not speak the orbit socket protocol");
    }
    Ok(u16::from_be_bytes([buf[6], buf[7]]))
}

/// Writes one frame.
pub(crate) fn write_frame(w: &mut impl Write, kind: Kind, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| io::Error::other("frame too large"))?;
    let mut header = [0u8; 5];
    header[0] = kind.byte();
    header[1..].copy_from_slice(&len.to_be_bytes());
    w.write_all(&header)?;
    w.write_all(payload)
}

/// Reads one frame; `None` when the peer closed the connection between
/// frames.
pub(crate) fn read_frame(r: &mut impl Read) -> Result<Option<(Kind, Vec<u8>)>> {
    let mut header = [0u8; 5];
    match r.read_exact(&mut header[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut header[1..])?;
    let Some(kind) = Kind::from_byte(header[0]) else { bail!("unknown frame kind {:#04x}", header[0]) };
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_FRAME {
        bail!("frame of {len} bytes, over the {MAX_FRAME}-byte cap");
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((kind, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_frames_are_refused() {
        let mut buf = Vec::new();
        write_preamble(&mut buf).unwrap();
        write_frame(&mut buf, Kind::Stdout, b"hello").unwrap();
        let mut r = &buf[..];
        assert_eq!(read_preamble(&mut r).unwrap(), PROTOCOL_VERSION);
        let (kind, payload) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((kind, &payload[..]), (Kind::Stdout, &b"hello"[..]));
        assert!(read_frame(&mut r).unwrap().is_none());

        let mut big = vec![b'O'];
        big.extend_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
        assert!(read_frame(&mut &big[..]).unwrap_err().to_string().contains("cap"));
    }
}
