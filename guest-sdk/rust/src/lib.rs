//! Rust SDK for Orbit guests.
//!
//! Orbit runs WebAssembly components built for `wasm32-wasip2`. This crate
//! wraps the `orbit:runtime@0.1.0` WIT package (the `wit/` directory at the
//! root of the Orbit repository) in an idiomatic Rust API:
//!
//! * [`storage`]: blob storage private to the run's workspace;
//! * [`cache`]: a key-value cache with time-to-live;
//! * [`log`]: log lines kept on the run record;
//! * [`fetch`]: outbound HTTP through the host, with secrets injected by
//!   name (the guest never holds their values);
//! * [`tools`]: MCP tools of the workspace's MCP servers, with serde
//!   values;
//! * [`Error`] / [`ErrorCode`]: the error every primitive returns, which an
//!   agent may also return itself;
//! * [`export_agent!`]: exports a `fn(String) -> Result<String, Error>` as the
//!   component's `run` function (the `agent` world).
//!
//! # Writing an agent
//!
//! An agent is a `cdylib` crate (`crate-type = ["cdylib"]`) built with
//! `cargo build --release --target wasm32-wasip2`:
//!
//! ```no_run
//! use orbit_guest::{cache, log, storage, Error};
//! use std::time::Duration;
//!
//! fn run(input: String) -> Result<String, Error> {
//!     if input.is_empty() {
//!         return Err(Error::invalid_input("input must not be empty"));
//!     }
//!     storage::put("notes/latest.txt", input.as_bytes(), "text/plain")?;
//!     let seen = cache::increment("runs", 1)?;
//!     cache::set("last-input", input.as_bytes(), Some(Duration::from_secs(60)))?;
//!     log::info(&format!("run number {seen}"));
//!     Ok(format!("stored {} bytes", input.len()))
//! }
//!
//! orbit_guest::export_agent!(run);
//! ```
//!
//! # Using the primitives from a command
//!
//! A plain `wasi:cli` command (a binary crate with `fn main`) may depend on
//! this crate and call [`storage`], [`cache`] and [`log`] without calling
//! [`export_agent!`]. Its component then imports the Orbit interfaces it uses
//! and exports only `wasi:cli/run`: the `run` export of the `agent` world is
//! only added by [`export_agent!`].
//!
//! # Errors
//!
//! Every primitive returns [`Result<T, Error>`](Result). An [`Error`] carries
//! an [`ErrorCode`] a guest can branch on and a short message chosen by the
//! host; it never contains host details.
//!
//! ```no_run
//! use orbit_guest::{storage, ErrorCode};
//!
//! match storage::get("config.json") {
//!     Ok(bytes) => println!("{} bytes", bytes.len()),
//!     Err(e) if e.code == ErrorCode::NotFound => println!("no config yet"),
//!     Err(e) => println!("storage failed: {e}"),
//! }
//! ```

use std::fmt;

/// Generated bindings for the `orbit:runtime/agent` world.
///
/// Not part of the public API: use the typed modules of this crate instead.
/// The bindings are generated with `pub_export_macro`, so the custom section
/// linked into every user of this crate describes the world *without* its
/// `run` export; only [`export_agent!`] adds the export (and the full world
/// description) to the final component.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "orbit:runtime/agent",
        pub_export_macro: true,
        export_macro_name: "__export_agent_world",
        default_bindings_module: "orbit_guest::__bindings",
        additional_derives: [PartialEq, Eq, Hash],
        with: {
            "orbit:runtime/types@0.1.0/error": crate::Error,
        },
    });
}

pub use __bindings::orbit::runtime::types::ErrorCode;

pub mod tools;

/// A `Result` whose error is the Orbit [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error returned by every Orbit primitive (the WIT `error` record).
///
/// An agent can also return its own errors from its `run` function with the
/// constructors ([`Error::invalid_input`], [`Error::internal`], ...) or
/// [`Error::new`].
///
/// `Display` renders `<code>: <message>`, the code in its WIT (kebab-case)
/// spelling, e.g. `not-found: not found`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Error {
    /// What went wrong, as a stable code.
    pub code: ErrorCode,
    /// A short human-readable description.
    pub message: String,
}

impl Error {
    /// An error with the given code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// A [`ErrorCode::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// An [`ErrorCode::InvalidInput`] error.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// A [`ErrorCode::TooLarge`] error.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, message)
    }

    /// A [`ErrorCode::LimitExceeded`] error.
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LimitExceeded, message)
    }

    /// A [`ErrorCode::PermissionDenied`] error.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, message)
    }

    /// An [`ErrorCode::Unavailable`] error.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// An [`ErrorCode::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The error's code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error").field("code", &self.code.as_str()).field("message", &self.message).finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<ErrorCode> for Error {
    /// An error with the code's default message ([`ErrorCode::description`]).
    fn from(code: ErrorCode) -> Self {
        Self::new(code, code.description())
    }
}

impl ErrorCode {
    /// Every code, in WIT declaration order.
    pub const ALL: [ErrorCode; 7] = [
        ErrorCode::NotFound,
        ErrorCode::InvalidInput,
        ErrorCode::TooLarge,
        ErrorCode::LimitExceeded,
        ErrorCode::PermissionDenied,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The code's WIT name, e.g. `"invalid-input"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not-found",
            ErrorCode::InvalidInput => "invalid-input",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::LimitExceeded => "limit-exceeded",
            ErrorCode::PermissionDenied => "permission-denied",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The code for a WIT name such as `"not-found"`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// A short generic description of the code.
    pub fn description(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not found",
            ErrorCode::InvalidInput => "invalid input",
            ErrorCode::TooLarge => "too large",
            ErrorCode::LimitExceeded => "limit exceeded",
            ErrorCode::PermissionDenied => "permission denied",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorCode {
    /// Writes the WIT name, e.g. `invalid-input`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Blob storage, private to the run's workspace.
///
/// Keys are 1 to 512 bytes of UTF-8 made of `/`-separated segments. A key may
/// not be absolute, may not contain `.` or `..` segments, empty segments, NUL,
/// backslashes or control characters; such keys give
/// [`ErrorCode::InvalidInput`].
pub mod storage {
    use crate::__bindings::orbit::runtime::storage as wit;
    use crate::Result;

    pub use wit::{ObjectMeta, ObjectPage};

    /// Store `value` under `key` with the given content type (e.g.
    /// `"text/plain"`), replacing any previous object.
    ///
    /// # Errors
    /// `invalid-input` for a bad key or content type; `too-large` for an
    /// object over the host's object cap; `limit-exceeded` when the
    /// workspace's quota is full; `internal` when the host fails.
    pub fn put(key: &str, value: &[u8], content_type: &str) -> Result<()> {
        wit::put(key, value, content_type)
    }

    /// Read an object's bytes; [`ErrorCode::NotFound`](crate::ErrorCode::NotFound)
    /// when absent.
    ///
    /// # Errors
    /// `not-found`, `invalid-input` for a bad key, or `internal`.
    pub fn get(key: &str) -> Result<Vec<u8>> {
        wit::get(key)
    }

    /// Read an object as UTF-8 text; invalid UTF-8 gives
    /// [`ErrorCode::InvalidInput`](crate::ErrorCode::InvalidInput).
    ///
    /// # Errors
    /// As [`get`], and `invalid-input` for bytes that are not UTF-8.
    pub fn get_string(key: &str) -> Result<String> {
        String::from_utf8(wit::get(key)?).map_err(|_| crate::Error::invalid_input("object is not valid UTF-8"))
    }

    /// Read an object's metadata; [`ErrorCode::NotFound`](crate::ErrorCode::NotFound)
    /// when absent.
    ///
    /// # Errors
    /// `not-found`, `invalid-input` for a bad key, or `internal`.
    pub fn head(key: &str) -> Result<ObjectMeta> {
        wit::head(key)
    }

    /// Delete an object; returns whether it existed.
    ///
    /// # Errors
    /// `invalid-input` for a bad key, or `internal`.
    pub fn delete(key: &str) -> Result<bool> {
        wit::delete(key)
    }

    /// One page of the objects whose key starts with `prefix`, in ascending
    /// key order, starting after `cursor` (the previous page's
    /// [`ObjectPage::next_cursor`]), at most `limit` per page (the host may
    /// cap it further).
    ///
    /// # Errors
    /// `invalid-input` for a malformed cursor or over-long prefix, or
    /// `internal`.
    pub fn list(prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ObjectPage> {
        wit::list(prefix, cursor, limit)
    }

    /// All objects whose key starts with `prefix`, following the cursors
    /// page by page.
    ///
    /// # Errors
    /// As [`list`].
    pub fn list_all(prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = wit::list(prefix, cursor.as_deref(), 1000)?;
            all.extend(page.objects);
            match page.next_cursor {
                // Stop on a cursor that does not advance, so a misbehaving
                // host cannot make this loop forever.
                Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
                _ => return Ok(all),
            }
        }
    }
}

/// Outbound HTTP through the host.
///
/// The host applies the workspace's egress policy (private and internal
/// addresses are refused), injects each named secret where the secret's
/// binding says (a header, a query parameter, or basic auth) only when the
/// request goes to a host, method and path the secret is bound to, never
/// follows redirects, and replaces any secret value in the response with
/// `[REDACTED]`.
///
/// ```no_run
/// use orbit_guest::fetch::Request;
///
/// # fn demo() -> orbit_guest::Result<()> {
/// let resp = Request::get("https://api.example.com/v1/me").secret("API_TOKEN").send()?;
/// if resp.is_success() {
///     let body = resp.text()?;
/// }
/// # Ok(()) }
/// ```
pub mod fetch {
    use crate::__bindings::orbit::runtime::fetch as wit;
    use crate::Result;
    use std::time::Duration;

    /// An outbound request, built with the methods below and sent with
    /// [`Request::send`].
    #[derive(Debug, Clone)]
    pub struct Request {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout: Option<Duration>,
        secrets: Vec<String>,
    }

    impl Request {
        /// A request with any method (RFC 9110 §9), e.g. `"PUT"`.
        pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
            Self {
                method: method.into(),
                url: url.into(),
                headers: Vec::new(),
                body: Vec::new(),
                timeout: None,
                secrets: Vec::new(),
            }
        }

        /// A `GET` request.
        pub fn get(url: impl Into<String>) -> Self {
            Self::new("GET", url)
        }

        /// A `POST` request with a body.
        pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
            Self::new("POST", url).body(body)
        }

        /// Adds a header. `host`, `content-length`, `transfer-encoding` and
        /// headers a secret injects are refused by the host.
        pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.headers.push((name.into(), value.into()));
            self
        }

        /// Sets the body.
        pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
            self.body = body.into();
            self
        }

        /// Sets the time allowed for the whole request (rounded up to whole
        /// milliseconds; the host also caps it).
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.timeout = Some(timeout);
            self
        }

        /// Asks the host to inject the workspace secret `name`.
        pub fn secret(mut self, name: impl Into<String>) -> Self {
            self.secrets.push(name.into());
            self
        }

        /// Sends the request and waits for the whole response.
        ///
        /// # Errors
        /// `invalid-input` for a malformed URL, method or header;
        /// `permission-denied` for a host the egress policy refuses, or a
        /// secret that does not exist or is not bound to this request (the
        /// two look the same); `too-large` for a response over the host's
        /// caps; `unavailable` when the server cannot be reached or times
        /// out; `limit-exceeded` past the run's request quota.
        pub fn send(self) -> Result<Response> {
            let timeout_ms = self.timeout.map(|t| u32::try_from(t.as_millis().max(1)).unwrap_or(u32::MAX));
            let req = wit::Request {
                method: self.method,
                url: self.url,
                headers: self.headers.into_iter().map(|(name, value)| wit::Header { name, value }).collect(),
                body: self.body,
                timeout_ms,
                secrets: self.secrets,
            };
            let resp = wit::fetch(&req)?;
            Ok(Response {
                status: resp.status,
                headers: resp.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                body: resp.body,
            })
        }
    }

    /// A response. Secret values in it have been replaced by `[REDACTED]`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Response {
        /// The HTTP status code.
        pub status: u16,
        /// Headers in the order received.
        pub headers: Vec<(String, String)>,
        /// The (decompressed) body.
        pub body: Vec<u8>,
    }

    impl Response {
        /// Whether the status is 2xx.
        pub fn is_success(&self) -> bool {
            (200..300).contains(&self.status)
        }

        /// The first header named `name` (case-insensitive).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }

        /// The body as UTF-8 text.
        ///
        /// # Errors
        /// `invalid-input` when the body is not UTF-8.
        pub fn text(&self) -> Result<String> {
            String::from_utf8(self.body.clone()).map_err(|_| crate::Error::invalid_input("body is not valid UTF-8"))
        }
    }
}

/// Key-value cache with time-to-live, private to the run's workspace.
pub mod cache {
    use crate::__bindings::orbit::runtime::cache as wit;
    use crate::Result;
    use std::time::Duration;

    /// Read a value; `None` when absent or expired.
    ///
    /// # Errors
    /// `invalid-input` for an empty, over-long (1 KiB by default) or
    /// control-character key, or `internal`.
    pub fn get(key: &str) -> Result<Option<Vec<u8>>> {
        wit::get(key)
    }

    /// Store a value for `ttl` (rounded up to whole milliseconds), or until
    /// it is deleted when `ttl` is `None`.
    ///
    /// # Errors
    /// `invalid-input` for a bad key; `too-large` for a value over the
    /// host's cap (1 MiB by default); `limit-exceeded` when the workspace's
    /// cache is full; `internal`.
    pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        wit::set(key, value, ttl.map(ttl_ms))
    }

    /// Delete a value; returns whether a live value existed.
    ///
    /// # Errors
    /// `invalid-input` for a bad key, or `internal`.
    pub fn delete(key: &str) -> Result<bool> {
        wit::delete(key)
    }

    /// Atomically add `delta` to the integer stored under `key` (absent or
    /// expired counts as 0) and return the new value. A value that is not a
    /// decimal integer gives
    /// [`ErrorCode::InvalidInput`](crate::ErrorCode::InvalidInput); overflow
    /// gives [`ErrorCode::LimitExceeded`](crate::ErrorCode::LimitExceeded). An
    /// existing TTL is kept.
    ///
    /// # Errors
    /// As described above, plus `invalid-input` for a bad key and
    /// `internal`.
    pub fn increment(key: &str, delta: i64) -> Result<i64> {
        wit::increment(key, delta)
    }

    /// Milliseconds in `ttl`, rounded up, saturating at `u64::MAX`.
    fn ttl_ms(ttl: Duration) -> u64 {
        let ms = ttl.as_nanos().div_ceil(1_000_000);
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn ttl_rounds_up() {
            assert_eq!(ttl_ms(Duration::ZERO), 0);
            assert_eq!(ttl_ms(Duration::from_nanos(1)), 1);
            assert_eq!(ttl_ms(Duration::from_millis(1500)), 1500);
            assert_eq!(ttl_ms(Duration::MAX), u64::MAX);
        }
    }
}

/// Log lines kept on the run record. Lines beyond the run's log-size limit
/// are dropped and the record notes the truncation.
pub mod log {
    use crate::__bindings::orbit::runtime::log as wit;

    pub use wit::Level;

    /// Append a line at `level`.
    pub fn log(level: Level, message: &str) {
        wit::log(level, message)
    }

    /// Append a `trace` line.
    pub fn trace(message: &str) {
        wit::log(Level::Trace, message)
    }

    /// Append a `debug` line.
    pub fn debug(message: &str) {
        wit::log(Level::Debug, message)
    }

    /// Append an `info` line.
    pub fn info(message: &str) {
        wit::log(Level::Info, message)
    }

    /// Append a `warn` line.
    pub fn warn(message: &str) {
        wit::log(Level::Warn, message)
    }

    /// Append an `error` line.
    pub fn error(message: &str) {
        wit::log(Level::Error, message)
    }
}

/// Export a function as the agent's `run` (the `agent` world's export).
///
/// The function must have the signature
/// `fn(String) -> Result<String, orbit_guest::Error>`. Use it once, in a
/// `cdylib` crate:
///
/// ```no_run
/// fn run(input: String) -> Result<String, orbit_guest::Error> {
///     Ok(input.to_uppercase())
/// }
///
/// orbit_guest::export_agent!(run);
/// ```
///
/// A closure without captures works too:
///
/// ```no_run
/// orbit_guest::export_agent!(|input: String| Ok(input.chars().rev().collect()));
/// ```
///
/// The component then exports
/// `run: func(input: string) -> result<string, error>` as declared by the
/// `orbit:runtime/agent` world, and describes that world to
/// `wit-component`. Crates that do not use this macro (for example `wasi:cli`
/// commands with a `fn main`) export no `run` function.
#[macro_export]
macro_rules! export_agent {
    ($run:expr $(,)?) => {
        #[allow(unsafe_code)]
        const _: () = {
            struct __OrbitAgent;

            impl $crate::__bindings::Guest for __OrbitAgent {
                fn run(input: ::std::string::String) -> ::std::result::Result<::std::string::String, $crate::Error> {
                    const RUN: fn(
                        ::std::string::String,
                    ) -> ::std::result::Result<::std::string::String, $crate::Error> = $run;
                    RUN(input)
                }
            }

            $crate::__bindings::__export_agent_world!(
                __OrbitAgent with_types_in $crate::__bindings
            );
        };
    };
}
