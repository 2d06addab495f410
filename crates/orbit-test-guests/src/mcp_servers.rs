//! The real MCP servers the `tools` tests, examples and bench use, installed
//! by `scripts/install-test-deps.sh` into `target/test-deps/` (or
//! `$ORBIT_TEST_DEPS`).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the test dependencies are installed.
pub fn deps_dir() -> PathBuf {
    match std::env::var_os("ORBIT_TEST_DEPS").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-deps"),
    }
}

fn require(path: PathBuf, what: &str) -> PathBuf {
    assert!(path.exists(), "{what} is not installed at {}: run scripts/install-test-deps.sh first", path.display());
    path
}

/// `@modelcontextprotocol/server-everything`'s entry point.
///
/// # Panics
/// When it is not installed (the message names the install script).
pub fn everything_js() -> PathBuf {
    require(
        deps_dir().join("npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        "@modelcontextprotocol/server-everything",
    )
}

/// The command line (program, arguments) of server-everything over stdio.
///
/// # Panics
/// As [`everything_js`].
pub fn everything_stdio() -> (String, Vec<String>) {
    ("node".to_owned(), vec![everything_js().display().to_string(), "stdio".to_owned()])
}

/// The `mcp-server-time` executable of the test virtualenv (stdio).
///
/// # Panics
/// When it is not installed (the message names the install script).
pub fn time_stdio() -> (String, Vec<String>) {
    let exe = require(deps_dir().join("venv/bin/mcp-server-time"), "mcp-server-time");
    (exe.display().to_string(), Vec::new())
}

/// server-everything in streamable-HTTP mode on a free loopback port;
/// killed when dropped.
pub struct EverythingHttp {
    child: Child,
    /// The MCP endpoint, `http://127.0.0.1:<port>/mcp`.
    pub url: String,
}

impl EverythingHttp {
    /// Starts it and waits until it accepts connections.
    ///
    /// # Panics
    /// When it is not installed or does not start listening in 30 s.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        Self::start_on(port)
    }

    /// Starts it on `port` (for example the port of one that was stopped,
    /// to bring "the same" server back) and waits until it accepts
    /// connections.
    ///
    /// # Panics
    /// As [`EverythingHttp::start`].
    pub fn start_on(port: u16) -> Self {
        let js = everything_js();
        let child = Command::new("node")
            .arg(js)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting node (is Node.js installed?)");
        let mut server = Self { child, url: format!("http://127.0.0.1:{port}/mcp") };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("server-everything exited early: {status}");
            }
            assert!(started.elapsed() < Duration::from_secs(30), "server-everything did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for EverythingHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
