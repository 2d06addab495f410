//! Reads `<secret names>|<method>|<url>[|<mode>]` from stdin, sends the
//! request with `wasi:http/outgoing-handler` (naming the secrets in
//! `x-orbit-secrets`), and prints `status <code>`, each response header as
//! `<name>: <value>`, a blank line and the body; or `error <code>` when the
//! request fails.
//!
//! Modes:
//! - `drop`: send the request, wait 100 ms, drop the pending response
//!   without reading it, print `dropped` and exit;
//! - `parallel=N`: send N such requests at once, wait for all of them, and
//!   print one line per request, in order: `status <code>` or
//!   `error <code>`.

use std::io::{Read, Write};

use wasip2::http::outgoing_handler::{self, FutureIncomingResponse};
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

/// Sends one request; the body is written and finished.
fn start(secrets: &str, method: &str, url: &str) -> Result<FutureIncomingResponse, String> {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };

    let mut entries: Vec<(String, Vec<u8>)> = vec![("x-guest".into(), b"from-wasi-http".to_vec())];
    if !secrets.is_empty() {
        entries.push(("x-orbit-secrets".into(), secrets.as_bytes().to_vec()));
    }
    let headers = Fields::from_list(&entries).unwrap();
    let req = OutgoingRequest::new(headers);
    req.set_method(&match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        other => Method::Other(other.into()),
    })
    .unwrap();
    req.set_scheme(Some(&match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.into()),
    }))
    .unwrap();
    req.set_authority(Some(authority)).unwrap();
    req.set_path_with_query(Some(path)).unwrap();
    let body = req.body().unwrap();
    if method == "POST" {
        let out = body.write().unwrap();
        out.blocking_write_and_flush(b"posted body").unwrap();
        drop(out);
    }

    let future = outgoing_handler::handle(req, None).map_err(|e| format!("error {e:?}"))?;
    OutgoingBody::finish(body, None).unwrap();
    Ok(future)
}

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    let mut parts = input.trim().splitn(4, '|');
    let (secrets, method, url) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let mode = parts.next().unwrap_or("");

    if mode == "drop" {
        let future = start(secrets, method, url);
        wasip2::clocks::monotonic_clock::subscribe_duration(100_000_000).block();
        drop(future);
        println!("dropped");
        return;
    }
    if let Some(n) = mode.strip_prefix("parallel=") {
        let n: usize = n.parse().unwrap();
        let futures: Vec<_> = (0..n).map(|_| start(secrets, method, url)).collect();
        let mut out = String::new();
        for f in futures {
            let line = match f {
                Err(e) => e,
                Ok(future) => {
                    let resp = loop {
                        match future.get() {
                            Some(r) => break r.unwrap(),
                            None => future.subscribe().block(),
                        }
                    };
                    match resp {
                        Ok(r) => format!("status {}", r.status()),
                        Err(e) => format!("error {e:?}"),
                    }
                }
            };
            out.push_str(&line);
            out.push('\n');
        }
        std::io::stdout().write_all(out.as_bytes()).unwrap();
        return;
    }

    let future = match start(secrets, method, url) {
        Ok(f) => f,
        Err(e) => {
            println!("{e}");
            return;
        }
    };
    let resp = loop {
        match future.get() {
            Some(r) => break r.unwrap(),
            None => future.subscribe().block(),
        }
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            println!("error {e:?}");
            return;
        }
    };
    let mut out = format!("status {}\n", resp.status());
    for (name, value) in resp.headers().entries() {
        out.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(&value)));
    }
    out.push('\n');
    let body = resp.consume().unwrap();
    let stream = body.stream().unwrap();
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(_) => break,
        }
    }
    out.push_str(&String::from_utf8_lossy(&bytes));
    std::io::stdout().write_all(out.as_bytes()).unwrap();
}
