//! Example Orbit command: an ordinary Rust program (it does not use the
//! Orbit SDK) compiled to a `wasi:cli` component.
//!
//! Reads all of stdin and prints a short report: lines, words, bytes and the
//! SHA-256 of the input, and its arguments when it has any. Exits with code 3 and a message on stderr if stdin
//! is empty.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};

fn main() {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("hello-cli: cannot read stdin: {e}");
        exit(1);
    }
    if input.is_empty() {
        eprintln!("hello-cli: stdin is empty; pipe some text in");
        exit(3);
    }
    // Count lines like `wc -l`, plus a last line without a newline.
    let newlines = input.iter().filter(|&&b| b == b'\n').count();
    let lines = newlines + usize::from(!input.ends_with(b"\n"));
    let words = input.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).count();
    println!("lines: {lines}");
    println!("words: {words}");
    println!("bytes: {}", input.len());
    println!("sha256: {}", hex::encode(Sha256::digest(&input)));
    // Arguments after its name (`orbit run hello-cli.wasm -- a b`).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        println!("args: {}", args.join(" "));
    }
}

/// Flush stdout and stderr, then exit with `code`.
///
/// On `wasm32-wasip2`, Rust's std can only report success or failure
/// (`wasi:cli/exit.exit`, which a host sees as 0 or 1), so any other code
/// goes through `wasi:cli/exit.exit-with-code` (WASI 0.2.12).
fn exit(code: u8) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    #[cfg(target_os = "wasi")]
    {
        wasi_exit::wasi::cli::exit::exit_with_code(code);
        unreachable!("exit-with-code returned");
    }
    #[cfg(not(target_os = "wasi"))]
    std::process::exit(code.into())
}

/// Binding for `wasi:cli/exit.exit-with-code`, which std does not use.
#[cfg(target_os = "wasi")]
#[allow(unsafe_code, missing_docs, clippy::all)]
mod wasi_exit {
    wit_bindgen::generate!({
        inline: r#"
            package orbit:hello-cli;

            world exit-with-code {
                import wasi:cli/exit@0.2.12;
            }
        "#,
        path: "wit",
        world: "orbit:hello-cli/exit-with-code",
        generate_all,
    });
}
