//! Guests using standard `wasi:http/outgoing-handler` go through the same
//! policy, injection and scrubbing as `fetch`. The guest (tests/http-guest)
//! is built for wasm32-wasip2 by a nested cargo build on first use.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use orbit_engine::Invocation;
use orbit_engine::orbit_runs::{RunRecord, RunStatus, Span};
use orbit_fetch::FetchConfig;
use orbit_vault::Placement;

const SECRET: &str = "wasi-http-secret-0123456789abcdef";

fn guest() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/http-guest");
        let target_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fetch-http-guest");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&dir)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
            .arg(&target_dir);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            // The outer build's settings must not leak into the guest's.
            let outer =
                ["CARGO_TARGET_", "CARGO_BUILD_", "CARGO_ENCODED_", "CARGO_PROFILE_", "CARGO_MANIFEST_", "CARGO_PKG_"]
                    .iter()
                    .any(|p| k.starts_with(p));
            if outer
                || k == "CARGO_PRIMARY_PACKAGE"
                || k == "CARGO_CRATE_NAME"
                || k.starts_with("RUSTFLAGS")
                || k == "RUSTC_WORKSPACE_WRAPPER"
            {
                cmd.env_remove(k.as_ref());
            }
        }
        let out = cmd.output().expect("running cargo for the wasi:http guest");
        assert!(out.status.success(), "building the wasi:http guest failed:\n{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(target_dir.join("wasm32-wasip2/release/orbit-fetch-http-guest.wasm")).unwrap()
    })
}

impl Env {
    async fn run(&self, ws: &str, input: String) -> (RunRecord, String) {
        let out = self.engine.invoke_wasm(guest(), Invocation::new(input).workspace(common::ws(ws))).await.unwrap();
        assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
        let text = out.output_text();
        (out.record, text)
    }
}

fn span_attr(record: &RunRecord, key: &str) -> Option<String> {
    let span = record.spans.iter().find(|s| s.primitive == "fetch")?;
    attr(span, key)
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

#[tokio::test]
async fn standard_client_gets_injection_scrubbing_and_refusals() {
    let bound = serve(echo()).await;
    let other = serve(echo()).await;
    let v = vault();
    let w = ws("acme");
    v.bearer(&w, "api", SECRET, &[&format!("http://127.0.0.1:{}", bound.port())]);
    let env = engine(fetch(config(), &v));

    // Injected, echoed, scrubbed; the secrets header never leaves the host.
    let (record, text) = env.run("acme", format!("api|GET|{}", bound.url("/hello?q=1"))).await;
    assert!(text.starts_with("status 200\n"), "{text}");
    assert!(text.contains("authorization: Bearer [REDACTED]") || text.contains("authorization: [REDACTED]"), "{text}");
    assert!(text.contains("x-guest: from-wasi-http"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    let seen = &bound.requests()[0];
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert_eq!(seen.header("x-orbit-secrets"), None);
    assert_eq!(seen.uri, "/hello?q=1");
    assert_eq!(span_attr(&record, "secrets").as_deref(), Some("api"));
    assert_eq!(span_attr(&record, "secrets_requested").as_deref(), Some("api"));
    assert_eq!(span_attr(&record, "status").as_deref(), Some("200"));
    let span = record.spans.iter().find(|s| s.primitive == "fetch").unwrap();
    assert_eq!((span.operation.as_str(), span.outcome.as_str()), ("wasi-http", "ok"));
    assert!(span.duration_us > 0 && span.bytes_out > 0, "{span:?}");
    assert!(!serde_json::to_string(&record).unwrap().contains(SECRET));

    // A POST body goes through.
    let (_, text) = env.run("acme", format!("|POST|{}", bound.url("/p"))).await;
    assert!(text.contains("posted body"), "{text}");

    // Not bound here / unknown: refused alike, recorded by name, nothing sent.
    for name in ["api", "nope"] {
        let (record, text) = env.run("acme", format!("{name}|GET|{}", other.url("/"))).await;
        assert_eq!(text.trim(), "error ErrorCode::HttpRequestDenied", "{name}");
        assert_eq!(span_attr(&record, "secret_denied").as_deref(), Some(name));
        let span = record.spans.iter().find(|s| s.primitive == "fetch").unwrap();
        assert_eq!(span.outcome, "permission-denied");
    }
    assert!(other.requests().is_empty());

    // Denied addresses, in any spelling.
    let denied = engine(fetch(FetchConfig { allow_ips: vec![], ..config() }, &v));
    for url in ["http://2130706433/", "http://169.254.169.254/latest/", "http://[::ffff:7f00:1]/", "http://localhost/"]
    {
        let (record, text) = denied.run("acme", format!("|GET|{url}")).await;
        assert_eq!(text.trim(), "error ErrorCode::HttpRequestDenied", "{url}");
        let error = span_attr(&record, "error").unwrap_or_default();
        assert!(error.contains("refused"), "{url}: {error}");
    }
}

#[tokio::test]
async fn standard_client_redirect_and_bomb() {
    let other = serve(echo()).await;
    let bound = serve(fixed(302, vec![("location".into(), other.url("/x"))], vec![])).await;
    let v = vault();
    let w = ws("acme");
    let placement = Placement::Header { name: "X-Api-Key".into(), template: "{}".into() };
    v.set(&w, "k", SECRET, &[&format!("http://127.0.0.1:{}", bound.port())], placement);
    let env = engine(fetch(config(), &v));
    let (_, text) = env.run("acme", format!("k|GET|{}", bound.url("/"))).await;
    assert!(text.starts_with("status 302\n"), "{text}");
    assert!(other.requests().is_empty());

    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut enc, &vec![0u8; 16 << 20]).unwrap();
    let bomb = serve(fixed(200, vec![("content-encoding".into(), "gzip".into())], enc.finish().unwrap())).await;
    let (_, text) = env.run("acme", format!("|GET|{}", bomb.url("/"))).await;
    assert!(text.starts_with("error ErrorCode::HttpResponseBodySize"), "{text}");
}

#[tokio::test]
async fn wasi_http_can_be_left_unlinked() {
    let v = vault();
    let env = engine(fetch(FetchConfig { wasi_http: false, ..config() }, &v));
    let err = env.engine.invoke_wasm(guest(), Invocation::new("|GET|http://127.0.0.1/")).await.unwrap_err();
    assert!(err.to_string().contains("wasi:http"), "{err}");
}

#[tokio::test]
async fn an_abandoned_request_is_still_recorded() {
    // A server that never answers: the guest gives up on the response.
    let (addr, _) = silent().await;
    let v = vault();
    let w = ws("acme");
    v.bearer(&w, "api", SECRET, &[&format!("http://{addr}")]);
    let env = engine(fetch(config(), &v));
    let (record, text) = env.run("acme", format!("api|GET|http://{addr}/slow|drop")).await;
    assert_eq!(text.trim(), "dropped");

    let spans: Vec<_> = record.spans.iter().filter(|s| s.primitive == "fetch").collect();
    assert_eq!(spans.len(), 1, "{:?}", record.spans);
    let span = spans[0];
    assert_eq!((span.operation.as_str(), span.outcome.as_str()), ("wasi-http", "cancelled"));
    assert_eq!(attr(span, "secrets_requested").as_deref(), Some("api"));
    assert_eq!(attr(span, "host").as_deref(), Some("127.0.0.1"));
    // Its own timing: the guest held the request for 100 ms.
    assert!(span.duration_us >= 90_000, "{span:?}");
    assert!(span.start_offset_us + span.duration_us <= record.duration_us + 1_000, "{span:?} {}", record.duration_us);
    assert!(!serde_json::to_string(&record).unwrap().contains(SECRET));
}

#[tokio::test]
async fn requests_in_flight_per_run_are_capped() {
    let (addr, conns) = silent().await;
    let v = vault();
    let cfg =
        FetchConfig { max_concurrent_requests_per_run: 2, first_byte_timeout: Duration::from_millis(1000), ..config() };
    let env = engine(fetch(cfg, &v));
    guest();
    let ((record, text), in_flight) = tokio::join!(env.run("acme", format!("|GET|http://{addr}/|parallel=3")), async {
        // Once two requests are out, the third must still be waiting.
        eventually("two requests to connect", || conns.load(Ordering::SeqCst) >= 2).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        conns.load(Ordering::SeqCst)
    });
    assert_eq!(in_flight, 2);
    assert_eq!(text.lines().collect::<Vec<_>>(), vec!["error ErrorCode::ConnectionTimeout"; 3], "{text}");
    assert_eq!(conns.load(Ordering::SeqCst), 3);
    let spans: Vec<_> = record.spans.iter().filter(|s| s.operation == "wasi-http").collect();
    assert_eq!(spans.len(), 3, "{:?}", record.spans);
    // Spans hold the calls' own timing: the last one started with the
    // others but ended about one first-byte timeout later.
    let mut ends: Vec<u64> = spans.iter().map(|s| s.start_offset_us + s.duration_us).collect();
    ends.sort_unstable();
    assert!(ends[2] - ends[0] >= 800_000, "{spans:?}");
}

#[tokio::test]
async fn a_read_only_principal_sends_only_get_and_head_through_wasi_http() {
    use orbit_workspace::{Principal, Role, UserId};
    let server = serve(echo()).await;
    let v = vault();
    let env = engine(fetch(config(), &v));
    let run = |principal: Principal, method: &str| {
        let input = format!("|{method}|{}", server.url(&format!("/{method}")));
        let inv = Invocation::new(input).workspace(ws("acme")).principal(principal);
        env.engine.invoke_wasm(guest(), inv)
    };
    let reader = Principal::user(UserId::new("rita").unwrap(), Role::ReadOnly);
    for method in ["GET", "HEAD"] {
        let out = run(reader.clone(), method).await.unwrap();
        assert!(out.output_text().starts_with("status 200"), "{method}: {}", out.output_text());
    }
    for method in ["POST", "PUT", "DELETE"] {
        let out = run(reader.clone(), method).await.unwrap();
        assert_eq!(out.output_text().trim(), "error ErrorCode::HttpRequestDenied", "{method}");
        let span = out.record.spans.iter().find(|s| s.primitive == "fetch").unwrap();
        assert_eq!((span.operation.as_str(), span.outcome.as_str()), ("wasi-http", "permission-denied"));
    }
    let sent: Vec<String> = server.requests().iter().map(|r| r.uri.clone()).collect();
    assert_eq!(sent, ["/GET", "/HEAD"], "nothing unsafe reached the server");
    let member = Principal::user(UserId::new("max").unwrap(), Role::Member);
    let out = run(member, "POST").await.unwrap();
    assert!(out.output_text().starts_with("status 200"), "{}", out.output_text());
    assert_eq!(server.requests().len(), 3);
}
