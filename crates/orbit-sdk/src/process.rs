//! Running a toolchain as a child process with its output captured.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{BuildError, io};

/// What a toolchain run printed, and whether it succeeded.
pub(crate) struct Finished {
    pub(crate) success: bool,
    /// stdout then stderr.
    pub(crate) output: String,
}

/// Runs `cmd` (whose program is `tool`) with stdin closed, reading stdout
/// and stderr at once (one on its own thread, so a full pipe never blocks
/// the child). A toolchain written in Rust gets no backtrace of its own in
/// a message meant for the agent's author.
pub(crate) fn run(cmd: &mut Command, tool: &Path) -> Result<Finished, BuildError> {
    let mut child = cmd
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(tool))?;
    let reader = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = e.read_to_string(&mut s);
            s
        })
    });
    let mut output = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut output);
    }
    if let Some(r) = reader {
        output.push_str(&r.join().unwrap_or_default());
    }
    let status = child.wait().map_err(io(tool))?;
    Ok(Finished { success: status.success(), output })
}
