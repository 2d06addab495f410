//! Orbit's guest components, built for host tests and benchmarks.
//!
//! The build script compiles every test fixture (`tests/fixtures/*`) and the
//! example guests (`examples/markdown`, `examples/wordfreq`,
//! `examples/hello-cli`) for `wasm32-wasip2` in release mode, with a nested
//! `cargo build` into `<workspace>/target/guests`, and bakes the path of each
//! component into this crate. Requires `rustup target add wasm32-wasip2`.
//!
//! ```no_run
//! let wasm = orbit_test_guests::bytes("echo");
//! assert_eq!(&wasm[..4], b"\0asm");
//! ```
//!
//! | name | kind | behaviour |
//! |---|---|---|
//! | `echo` | agent | returns its input unchanged |
//! | `spin` | agent | loops forever |
//! | `membomb` | agent | allocates 1 MiB blocks until allocation fails |
//! | `residue` | agent | counts bytes an earlier run left in its memory (bottom of the stack, static data, grown pages), then leaves its own |
//! | `recursion` | agent | unbounded non-tail recursion |
//! | `trap` | agent | panics with a message containing `/etc/secret-host-path 10.0.0.7` |
//! | `bigoutput` | agent | input `N` (decimal) → `N` bytes of `x` |
//! | `flood` | command | writes to stdout forever |
//! | `exit-code` | command | reads an integer `N` from stdin, prints `exiting with N`, exits with `N` |
//! | `ops` | agent | runs a JSON script of storage/cache/log operations |
//! | `badkeys` | agent | tries storage with malformed keys, reports the errors |
//! | `cli-primitives` | command | stores and reads a key and bumps a cache counter |
//! | `markdown` | agent | Markdown → HTML (pulldown-cmark), stored under `html/<hash>.html` |
//! | `wordfreq` | agent | word frequencies as JSON, cached for an hour |
//! | `hello-cli` | command | line/word/byte counts and SHA-256 of stdin |
//! | `bench` | agent | `sha256:N`, `log:N`, `sleep:MS`, `regex:TEXT` for the benches (1.3 MiB) |
//! | `db-client` | agent | runs a JSON script of `db` operations |
//! | `csv-db` | agent | loads a CSV into a `db` table and summarises it with SQL aggregates |
//! | `ai-client` | agent | runs a JSON list of `ai` chat/embed calls, reports each result or error code |
//! | `summarize` | agent | summarizes a long text through `ai`: per chunk, then combined |
//! | `jobs-probe` | agent | drives `jobs` (invoke, enqueue, status), recursion, sleeps and busy work |
//! | `fanout` | agent | word counts fanned out over stored jobs (map/reduce) |
//! | `tools-client` | agent | runs a JSON script of MCP tool list/call operations |
//! | `mcp-tools` | agent | example: lists MCP tools, calls echo, get-sum and get_current_time |

pub mod mcp_servers;

use std::path::PathBuf;

/// Names of the guests that export the `orbit:runtime` `agent` world's
/// `run` function.
pub const AGENTS: &[&str] = &[
    "echo",
    "spin",
    "membomb",
    "residue",
    "recursion",
    "trap",
    "bigoutput",
    "ops",
    "badkeys",
    "markdown",
    "wordfreq",
    "fetch-client",
    "api-client",
    "bench",
    "db-client",
    "csv-db",
    "ai-client",
    "summarize",
    "jobs-probe",
    "fanout",
    "tools-client",
    "mcp-tools",
];

/// Names of the guests that are `wasi:cli` commands (they export
/// `wasi:cli/run`).
pub const COMMANDS: &[&str] = &["flood", "exit-code", "probe", "cli-primitives", "hello-cli"];

/// Every guest name accepted by [`path`] and [`bytes`]: the [`AGENTS`]
/// followed by the [`COMMANDS`].
pub fn names() -> impl Iterator<Item = &'static str> {
    AGENTS.iter().chain(COMMANDS).copied()
}

/// The built component's path, if `name` is one of [`names`].
pub fn try_path(name: &str) -> Option<PathBuf> {
    let path = match name {
        "echo" => env!("ORBIT_GUEST_ECHO"),
        "spin" => env!("ORBIT_GUEST_SPIN"),
        "membomb" => env!("ORBIT_GUEST_MEMBOMB"),
        "residue" => env!("ORBIT_GUEST_RESIDUE"),
        "recursion" => env!("ORBIT_GUEST_RECURSION"),
        "trap" => env!("ORBIT_GUEST_TRAP"),
        "bigoutput" => env!("ORBIT_GUEST_BIGOUTPUT"),
        "flood" => env!("ORBIT_GUEST_FLOOD"),
        "exit-code" => env!("ORBIT_GUEST_EXIT_CODE"),
        "probe" => env!("ORBIT_GUEST_PROBE"),
        "fetch-client" => env!("ORBIT_GUEST_FETCH_CLIENT"),
        "api-client" => env!("ORBIT_GUEST_API_CLIENT"),
        "ops" => env!("ORBIT_GUEST_OPS"),
        "badkeys" => env!("ORBIT_GUEST_BADKEYS"),
        "cli-primitives" => env!("ORBIT_GUEST_CLI_PRIMITIVES"),
        "markdown" => env!("ORBIT_GUEST_MARKDOWN"),
        "wordfreq" => env!("ORBIT_GUEST_WORDFREQ"),
        "hello-cli" => env!("ORBIT_GUEST_HELLO_CLI"),
        "bench" => env!("ORBIT_GUEST_BENCH"),
        "db-client" => env!("ORBIT_GUEST_DB_CLIENT"),
        "csv-db" => env!("ORBIT_GUEST_CSV_DB"),
        "ai-client" => env!("ORBIT_GUEST_AI_CLIENT"),
        "summarize" => env!("ORBIT_GUEST_SUMMARIZE"),
        "jobs-probe" => env!("ORBIT_GUEST_JOBS_PROBE"),
        "fanout" => env!("ORBIT_GUEST_FANOUT"),
        "tools-client" => env!("ORBIT_GUEST_TOOLS_CLIENT"),
        "mcp-tools" => env!("ORBIT_GUEST_MCP_TOOLS"),
        _ => return None,
    };
    Some(PathBuf::from(path))
}

/// The built component's path.
///
/// # Panics
///
/// If `name` is not one of [`names`].
pub fn path(name: &str) -> PathBuf {
    try_path(name).unwrap_or_else(|| panic!("unknown guest {name:?}; known guests: {:?}", names().collect::<Vec<_>>()))
}

/// The built component's bytes.
///
/// # Panics
///
/// If `name` is not one of [`names`] or the file cannot be read.
pub fn bytes(name: &str) -> Vec<u8> {
    let path = path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read guest {name:?} at {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_a_built_component() {
        for name in names() {
            assert!(try_path(name).is_some(), "{name}");
        }
    }

    #[test]
    fn unknown_name_is_none() {
        assert!(try_path("nope").is_none());
    }
}
