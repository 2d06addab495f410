//! Mediated fetch end to end: a real guest component, the real vault and
//! real HTTP servers on loopback. The guest uses credentials it never sees.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use orbit::{FetchConfig, HostBinding, Limits, Orbit, OrbitConfig, Placement, RunStatus, SecretValue, WorkspaceId};
use serde_json::{Value, json};

/// Every request's headers as the server received them.
type Seen = Arc<Mutex<Vec<String>>>;

/// A real HTTP/1 server on 127.0.0.1 that answers every request with the
/// request's headers as its body (one `name: value` per line). `redirect_to`
/// makes it answer 302 to that URL instead.
async fn echo_server(redirect_to: Option<String>) -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (log, redirect_to) = (log.clone(), redirect_to.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (log, redirect_to) = (log.clone(), redirect_to.clone());
                    async move {
                        let mut text = format!("{} {}\n", req.method(), req.uri());
                        for (name, value) in req.headers() {
                            text.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
                        }
                        log.lock().unwrap().push(text.clone());
                        let resp = match redirect_to {
                            Some(to) => {
                                Response::builder().status(302).header("location", to).body(Full::new(Bytes::new()))
                            }
                            None => Response::builder()
                                .header("content-type", "text/plain")
                                .body(Full::new(Bytes::from(text))),
                        };
                        Ok::<_, Infallible>(resp.unwrap())
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    (base, seen)
}

/// An Orbit whose fetch policy lets guests reach this machine's loopback
/// test servers (denied by default).
fn orbit_allowing_loopback(dir: &std::path::Path) -> Orbit {
    let fetch = FetchConfig { allow_ips: vec!["127.0.0.1/32".parse().unwrap()], ..FetchConfig::default() };
    let mut cfg = OrbitConfig::default();
    cfg.fetch = Some(fetch);
    cfg.master_key = Some(orbit::MasterKey::from_bytes([7; 32]));
    Orbit::open_with(dir, cfg).unwrap()
}

fn bearer(orbit: &Orbit, ws: &str, name: &str, value: &str, base: &str) {
    let binding = HostBinding::parse(base).unwrap();
    let placement = Placement::Header { name: "Authorization".into(), template: "Bearer {}".into() };
    orbit
        .vault()
        .set(
            &WorkspaceId::new(ws).unwrap(),
            name,
            SecretValue::new(value.into()),
            vec![binding],
            placement,
            &orbit::UserId::new("test").unwrap(),
        )
        .unwrap();
}

async fn fetch(orbit: &Orbit, ws: &str, spec: Value) -> orbit::Outcome {
    let wasm = orbit_test_guests::bytes("fetch-client");
    let inv =
        orbit::Invocation::new(spec.to_string()).workspace(WorkspaceId::new(ws).unwrap()).limits(Limits::default());
    orbit.engine().invoke_wasm(&wasm, inv).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_gets_the_secret_and_the_guest_sees_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = orbit_allowing_loopback(dir.path());
    let (base, seen) = echo_server(None).await;
    let secret = "tok-9f8e7d6c5b4a3210";
    bearer(&orbit, "team-a", "API_TOKEN", secret, &base);

    let out = fetch(&orbit, "team-a", json!({"url": format!("{base}/v1/echo"), "secrets": ["API_TOKEN"]})).await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    // The server received the real value where the binding puts it.
    let received = seen.lock().unwrap().join("");
    assert!(received.contains(&format!("authorization: Bearer {secret}")), "{received}");
    // The guest got the echo with the value replaced.
    let body = serde_json::from_slice::<Value>(&out.output).unwrap()["body"].as_str().unwrap().to_owned();
    let auth_line = body.lines().find(|l| l.starts_with("authorization: ")).expect("echoed authorization");
    assert!(auth_line.ends_with("[REDACTED]"), "{body}");
    assert!(!out.output_text().contains(secret));
    // The span names the secret, never its value.
    let span = out.record.spans.iter().find(|s| s.primitive == "fetch").expect("a fetch span");
    assert_eq!(span.outcome, "ok");
    assert!(span.attrs.iter().any(|(k, v)| k.contains("secret") && v.contains("API_TOKEN")), "{:?}", span.attrs);
    assert!(span.attrs.iter().any(|(k, v)| k == "status" && v == "200"), "{:?}", span.attrs);
    // More hostile uses: a query-placed secret the server echoes back in
    // the request line, the same secret asked for on an unbound host, and a
    // run that dies while holding the response.
    let query_secret = "qp-5e4d3c2b1a09";
    let binding = HostBinding::parse(&base).unwrap();
    let placement = Placement::Query { param: "key".into() };
    let ws = WorkspaceId::new("team-a").unwrap();
    orbit
        .vault()
        .set(
            &ws,
            "QUERY_KEY",
            SecretValue::new(query_secret.into()),
            vec![binding],
            placement,
            &orbit::UserId::new("t").unwrap(),
        )
        .unwrap();
    let out = fetch(&orbit, "team-a", json!({"url": format!("{base}/q"), "secrets": ["QUERY_KEY"]})).await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    assert!(seen.lock().unwrap().join("").contains(&format!("key={query_secret}")), "the server got the query value");
    assert!(!out.output_text().contains(query_secret) && out.output_text().contains("[REDACTED]"));
    let (other, _) = echo_server(None).await;
    let out = fetch(&orbit, "team-a", json!({"url": other, "secrets": ["API_TOKEN", "QUERY_KEY"]})).await;
    assert_eq!(out.record.error.as_ref().unwrap().code, "permission-denied");
    let out = fetch(&orbit, "team-a", json!({"url": "http://10.1.2.3/", "secrets": ["API_TOKEN"]})).await;
    assert_eq!(out.status(), RunStatus::Failed);

    // Nothing Orbit wrote holds either value: vault, run store (outputs,
    // logs, spans, host errors), blobs, cache.
    drop(orbit);
    for value in [secret, query_secret] {
        assert_eq!(common::files_containing(dir.path(), value.as_bytes()), Vec::<std::path::PathBuf>::new(), "{value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_foreign_and_unbound_secrets_look_the_same_and_send_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = orbit_allowing_loopback(dir.path());
    let (host_a, seen_a) = echo_server(None).await;
    let (host_b, seen_b) = echo_server(None).await;
    bearer(&orbit, "team-a", "A_TOKEN", "value-of-a-0123456789", &host_a);
    bearer(&orbit, "team-b", "B_TOKEN", "value-of-b-0123456789", &host_b);

    let cases = [
        ("unknown", json!({"url": host_a, "secrets": ["NOPE"]})),
        ("bound to another host", json!({"url": host_b, "secrets": ["A_TOKEN"]})),
        ("another workspace's", json!({"url": host_b, "secrets": ["B_TOKEN"]})),
    ];
    let mut messages = Vec::new();
    for (what, spec) in cases {
        let out = fetch(&orbit, "team-a", spec).await;
        assert_eq!(out.status(), RunStatus::Failed, "{what}: {:?}", out.record);
        let err = out.record.error.as_ref().unwrap();
        assert_eq!(err.code, "permission-denied", "{what}");
        messages.push(err.message.clone());
        // The refused attempt is on the run.
        let span = out.record.spans.iter().find(|s| s.primitive == "fetch").unwrap();
        assert_eq!(span.outcome, "permission-denied", "{what}");
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "one message for every refusal: {messages:?}");
    assert!(seen_a.lock().unwrap().is_empty() && seen_b.lock().unwrap().is_empty(), "no request left the host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_does_not_carry_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = orbit_allowing_loopback(dir.path());
    let (elsewhere, seen_elsewhere) = echo_server(None).await;
    let (bound, seen_bound) = echo_server(Some(format!("{elsewhere}/steal"))).await;
    bearer(&orbit, "default", "TOKEN", "redirect-secret-42", &bound);
    let out = fetch(&orbit, "default", json!({"url": bound, "secrets": ["TOKEN"]})).await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    let resp: Value = serde_json::from_slice(&out.output).unwrap();
    assert_eq!(resp["status"], 302, "the redirect comes back to the guest");
    assert_eq!(seen_bound.lock().unwrap().len(), 1);
    assert!(seen_elsewhere.lock().unwrap().is_empty(), "Orbit did not follow the redirect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_are_denied_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = OrbitConfig::default();
    cfg.master_key = Some(orbit::MasterKey::from_bytes([1; 32]));
    let orbit = Orbit::open_with(dir.path(), cfg).unwrap();
    let (base, seen) = echo_server(None).await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    for url in [
        base.clone(),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ] {
        let out = fetch(&orbit, "default", json!({"url": url})).await;
        assert_eq!(out.status(), RunStatus::Failed, "{url}: {:?}", out.record);
        assert_eq!(out.record.error.as_ref().unwrap().code, "permission-denied", "{url}");
        // The guest-visible message names no address.
        assert!(!out.record.error.as_ref().unwrap().message.contains("127.0.0.1"));
    }
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_and_injected_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let orbit = orbit_allowing_loopback(dir.path());
    let (base, seen) = echo_server(None).await;
    for headers in [
        json!([["x-a", "ok\r\nx-injected: 1"]]),
        json!([["host", "evil.example"]]),
        json!([["transfer-encoding", "chunked"]]),
    ] {
        let out = fetch(&orbit, "default", json!({"url": base, "headers": headers})).await;
        assert_eq!(out.record.error.as_ref().map(|e| e.code.as_str()), Some("invalid-input"), "{headers}");
    }
    assert!(seen.lock().unwrap().is_empty());
}

/// The README flow: the example guest reads the example notes API (the
/// real `examples/api-client/server.py`) with a token it never sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_client_example_reads_a_local_api_with_an_injected_token() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let token = "notes-token-5c1d";
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/api-client/server.py");
    let mut server = std::process::Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .env("NOTES_TOKEN", token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 runs the example server");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.contains("notes API on"), "{line}");

    let dir = tempfile::tempdir().unwrap();
    let orbit = orbit_allowing_loopback(dir.path());
    let base = format!("http://127.0.0.1:{port}");
    bearer(&orbit, "default", "NOTES_TOKEN", token, &base);
    let wasm = orbit_test_guests::bytes("api-client");
    let out = orbit.engine().invoke_wasm(&wasm, orbit::Invocation::new(base.clone())).await.unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    let digest = out.output_text();
    assert!(digest.starts_with("4 notes\n"), "{digest}");
    assert!(digest.contains("perf: 2\n") && digest.contains("infra: 2\n") && digest.contains("security: 1\n"));
    assert!(digest.contains("newest: Scrub secrets from responses"));
    let stored = orbit.blobs().get(&WorkspaceId::default(), "digests/notes.txt").unwrap();
    assert_eq!(stored, digest.as_bytes());
}

/// A guest blocked in a host call (a fetch to a server that never answers)
/// is ended by the run's deadline, inside the host call, with a typed status
/// and a span saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_call_blocked_past_the_deadline_ends_the_run() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        // Accept and hold connections open without ever answering.
        while let Ok((stream, _)) = listener.accept().await {
            keep.lock().unwrap().push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let orbit = orbit_allowing_loopback(dir.path());
    let wasm = orbit_test_guests::bytes("fetch-client");
    let inv = orbit::Invocation::new(json!({"url": base}).to_string()).limits(common::with_timeout(300));
    let out = orbit.engine().invoke_wasm(&wasm, inv).await.unwrap();
    assert_eq!(out.status(), RunStatus::DeadlineExceeded, "{:?}", out.record);
    let span = out.record.spans.iter().find(|s| s.primitive == "fetch").expect("the fetch span");
    assert_eq!(span.outcome, "deadline-exceeded");
    assert_eq!(held.lock().unwrap().len(), 1, "the request did reach the server");
}
