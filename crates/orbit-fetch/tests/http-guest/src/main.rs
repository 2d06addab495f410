//! Reads `<secret names>|<method>|<url>` from stdin, sends the request with
//! `wasi:http/outgoing-handler` (naming the secrets in `x-orbit-secrets`),
//! and prints `status <code>`, each response header as `<name>: <value>`,
//! a blank line and the body; or `error <code>` when the request fails.

use std::io::{Read, Write};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    let mut parts = input.trim().splitn(3, '|');
    let (secrets, method, url) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
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

    let future = match outgoing_handler::handle(req, None) {
        Ok(f) => f,
        Err(e) => {
            println!("error {e:?}");
            return;
        }
    };
    OutgoingBody::finish(body, None).unwrap();
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
