//! The fetch primitive against real HTTP servers on 127.0.0.1, with the
//! real vault.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use orbit_engine::{ErrorCode, HostError};
use orbit_fetch::{EgressPolicy, FetchConfig, FetchError, FetchRequest, REDACTED, SecretDenial};
use orbit_vault::Placement;

const SECRET: &str = "s3cr3t-T0ken/with+chars=and~more";

fn assert_no_secret(text: &str, secret: &str) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let forms = [
        secret.to_owned(),
        b64.encode(secret),
        b64.encode(format!("Bearer {secret}")),
        percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC).to_string(),
    ];
    for f in forms {
        assert!(!text.contains(&f), "found a form of the secret ({f}) in:\n{text}");
    }
    // No long fragment of the secret either.
    assert!(!text.contains(&secret[..12]), "found a fragment of the secret in:\n{text}");
}

fn guest_view(e: FetchError) -> (ErrorCode, String) {
    let g = HostError::from(e).to_guest();
    (g.code, g.message)
}

#[tokio::test]
async fn injected_header_reaches_server_and_echo_is_redacted() {
    let server = serve(echo()).await;
    let v = vault();
    let w = ws("acme");
    v.bearer(&w, "api", SECRET, &[&format!("http://127.0.0.1:{}", server.port())]);
    let f = fetch(config(), &v);

    let mut req = with_secrets(get(&server.url("/echo?x=1")), &["api"]);
    // A guest header of the injected name is replaced, not sent.
    req.headers.push(("Authorization".into(), "guest-chosen".into()));
    req.headers.push(("x-guest".into(), "hello".into()));
    let resp = f.send(&w, req).await.unwrap();
    assert_eq!(resp.status, 200);

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert_eq!(seen[0].headers.iter().filter(|(n, _)| n == "authorization").count(), 1);
    assert_eq!(seen[0].header("x-guest"), Some("hello"));
    assert_eq!(seen[0].header("accept-encoding"), Some("gzip, deflate"));

    let body = String::from_utf8(resp.body.clone()).unwrap();
    assert!(body.contains("authorization: [REDACTED]") || body.contains("authorization: Bearer [REDACTED]"), "{body}");
    for line in ["b64: ", "b64url: ", "b64-credential: ", "pct: ", "json: "] {
        let l = body.lines().find(|l| l.starts_with(line)).unwrap();
        assert!(l.contains(REDACTED), "{l}");
    }
    assert!(body.contains("x-guest: hello"));
    assert_no_secret(&body, SECRET);
    let echoed = resp.headers.iter().find(|(n, _)| n == "x-echo-authorization").unwrap();
    assert!(echoed.1.contains(REDACTED));
    assert_no_secret(&echoed.1, SECRET);
    assert!(!resp.headers.iter().any(|(n, _)| n == "content-length"));

    // The use is recorded in the vault, once the call is over.
    eventually("the use to be recorded", || {
        v.vault.list(&w).unwrap().iter().find(|m| m.name == "api").unwrap().last_used_at_ms.is_some()
    })
    .await;
}

#[tokio::test]
async fn basic_and_query_placements_are_injected_and_scrubbed() {
    let server = serve(echo()).await;
    let v = vault();
    let w = ws("acme");
    let origin = format!("http://127.0.0.1:{}", server.port());
    v.set(&w, "basic", SECRET, &[&origin], Placement::Basic { username: "bot".into() });
    v.set(&w, "q", "query-secret-value-42", &[&origin], Placement::Query { param: "api_key".into() });
    let f = fetch(config(), &v);

    let resp = f.send(&w, with_secrets(get(&server.url("/x")), &["basic"])).await.unwrap();
    let seen = server.requests();
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("bot:{SECRET}"));
    assert_eq!(seen[0].header("authorization"), Some(format!("Basic {cred}").as_str()));
    let body = String::from_utf8(resp.body).unwrap();
    assert!(!body.contains(&cred), "{body}");
    assert!(body.contains(REDACTED));
    assert_no_secret(&body, SECRET);

    // The guest's own `api_key` is replaced by the secret's.
    let resp = f.send(&w, with_secrets(get(&server.url("/q?a=1&api_key=guest")), &["q"])).await.unwrap();
    let seen = server.requests();
    assert_eq!(seen[1].uri, "/q?a=1&api_key=query-secret-value-42");
    let body = String::from_utf8(resp.body).unwrap();
    assert!(body.contains("/q?a=1&api_key=[REDACTED]"), "{body}");
    assert!(!body.contains("query-secret-value-42"));
}

#[tokio::test]
async fn secret_bound_elsewhere_and_unknown_secret_look_the_same() {
    let a = serve(echo()).await;
    let b = serve(echo()).await;
    let v = vault();
    let w = ws("acme");
    v.bearer(&w, "api", SECRET, &[&format!("http://127.0.0.1:{}", a.port())]);
    let f = fetch(config(), &v);

    // Every refusal takes at least the same minimum time, so that timing
    // does not tell an unknown secret from one bound elsewhere.
    let timed = async |ws: &orbit_workspace::WorkspaceId, req: FetchRequest| {
        let started = Instant::now();
        let err = f.send(ws, req).await.unwrap_err();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(5), "{err:?} after {took:?}");
        err
    };
    let not_bound = timed(&w, with_secrets(get(&b.url("/")), &["api"])).await;
    assert!(matches!(&not_bound, FetchError::SecretDenied { reason: SecretDenial::NotBound, .. }), "{not_bound:?}");
    let unknown = timed(&w, with_secrets(get(&b.url("/")), &["nope"])).await;
    assert!(matches!(&unknown, FetchError::SecretDenied { reason: SecretDenial::Unknown, .. }), "{unknown:?}");
    let malformed = timed(&w, with_secrets(get(&b.url("/")), &["no such/secret\n"])).await;
    // Another workspace's secret is unknown here.
    let other = timed(&ws("other"), with_secrets(get(&a.url("/")), &["api"])).await;
    assert!(matches!(&other, FetchError::SecretDenied { reason: SecretDenial::Unknown, .. }), "{other:?}");

    let views: Vec<_> = [not_bound, unknown, malformed, other].into_iter().map(guest_view).collect();
    for view in &views {
        assert_eq!(view, &(ErrorCode::PermissionDenied, "permission denied".to_owned()));
    }
    assert!(a.requests().is_empty() && b.requests().is_empty());
    assert_eq!(a.connection_count() + b.connection_count(), 0);
}

#[tokio::test]
async fn binding_narrowing_by_method_and_path() {
    let server = serve(echo()).await;
    let v = vault();
    let w = ws("acme");
    let binding = orbit_vault::HostBinding::parse(&format!("http://127.0.0.1:{}/v1", server.port()))
        .unwrap()
        .with_methods(["GET"]);
    let placement = Placement::Header { name: "X-Api-Key".into(), template: "{}".into() };
    v.vault
        .set(
            &w,
            "k",
            orbit_vault::SecretValue::new(SECRET.into()),
            vec![binding],
            placement,
            &orbit_workspace::UserId::new("test").unwrap(),
        )
        .unwrap();
    let f = fetch(config(), &v);
    f.send(&w, with_secrets(get(&server.url("/v1/items")), &["k"])).await.unwrap();
    let post = FetchRequest { method: "POST".into(), ..with_secrets(get(&server.url("/v1/items")), &["k"]) };
    assert!(matches!(f.send(&w, post).await, Err(FetchError::SecretDenied { .. })));
    for path in ["/v10", "/v2/items", "/v1/../admin"] {
        let r = f.send(&w, with_secrets(get(&server.url(path)), &["k"])).await;
        assert!(matches!(r, Err(FetchError::SecretDenied { .. })), "{path}: {r:?}");
    }
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn redirect_is_returned_not_followed() {
    let other = serve(echo()).await;
    let bound = serve(fixed(302, vec![("location".into(), other.url("/stolen"))], b"moved".to_vec())).await;
    let v = vault();
    let w = ws("acme");
    let placement = Placement::Header { name: "X-Api-Key".into(), template: "{}".into() };
    v.set(&w, "k", SECRET, &[&format!("http://127.0.0.1:{}", bound.port())], placement);
    let f = fetch(config(), &v);
    let resp = f.send(&w, with_secrets(get(&bound.url("/start")), &["k"])).await.unwrap();
    assert_eq!(resp.status, 302);
    assert_eq!(resp.headers.iter().find(|(n, _)| n == "location").unwrap().1, other.url("/stolen"));
    assert_eq!(resp.body, b"moved");
    assert_eq!(bound.requests()[0].header("x-api-key"), Some(SECRET));
    assert!(other.requests().is_empty());
    assert_eq!(other.connection_count(), 0);
}

#[tokio::test]
async fn every_denied_address_spelling_is_refused_without_connecting() {
    // A live loopback server: the loopback spellings name its port, so a
    // connection would be seen.
    let server = serve(echo()).await;
    let p = server.port();
    let v = vault();
    let f = fetch(FetchConfig { allow_ips: vec![], ..config() }, &v);
    let w = ws("acme");
    let urls = [
        format!("http://127.0.0.1:{p}/"),
        format!("http://2130706433:{p}/"),
        format!("http://0x7f.1:{p}/"),
        format!("http://127.1:{p}/"),
        format!("http://0177.0.0.1:{p}/"),
        format!("http://[::1]:{p}/"),
        format!("http://[::ffff:7f00:1]:{p}/"),
        format!("http://[::ffff:127.0.0.1]:{p}/"),
        format!("http://[::127.0.0.1]:{p}/"),
        format!("http://[64:ff9b::7f00:1]:{p}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::ffff:a9fe:a9fe]/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://172.16.0.1/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "http://[fc00::1]/".to_owned(),
        "http://[fe80::1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        format!("http://0:{p}/"),
        "http://[::]/".to_owned(),
        "http://224.0.0.1/".to_owned(),
        "http://255.255.255.255/".to_owned(),
        "http://192.0.2.1/".to_owned(),
        "http://198.18.0.1/".to_owned(),
        "http://[2001:db8::1]/".to_owned(),
        "http://[ff02::1]/".to_owned(),
        "https://127.0.0.1/".to_owned(),
    ];
    for url in &urls {
        let err = f.send(&w, get(url)).await.unwrap_err();
        assert!(matches!(err, FetchError::AddressDenied { .. }), "{url}: {err:?}");
        assert_eq!(err.code(), ErrorCode::PermissionDenied);
    }
    // A name that resolves to loopback is refused after resolution.
    let err = f.send(&w, get(&format!("http://localhost:{p}/"))).await.unwrap_err();
    assert!(matches!(err, FetchError::AddressDenied { .. }), "localhost: {err:?}");
    assert_eq!(server.connection_count(), 0);

    // Only http and https.
    for url in ["ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1:70/", "data:text/plain,hi"] {
        let err = f.send(&w, get(url)).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{url}: {err:?}");
    }
}

#[tokio::test]
async fn allowed_loopback_works_only_as_allowed() {
    let server = serve(echo()).await;
    let v = vault();
    let f = fetch(config(), &v);
    let w = ws("acme");
    // 127.0.0.1/32 is allowed; other loopback addresses and mapped forms are not.
    assert_eq!(f.send(&w, get(&server.url("/"))).await.unwrap().status, 200);
    assert_eq!(f.send(&w, get(&format!("http://2130706433:{}/", server.port()))).await.unwrap().status, 200);
    for url in [format!("http://127.0.0.2:{}/", server.port()), format!("http://[::ffff:127.0.0.1]:{}/", server.port())]
    {
        assert!(matches!(f.send(&w, get(&url)).await, Err(FetchError::AddressDenied { .. })), "{url}");
    }
}

#[tokio::test]
async fn workspace_egress_policy() {
    let server = serve(echo()).await;
    let v = vault();
    let mut cfg = config();
    cfg.workspaces.insert("locked".into(), EgressPolicy { allow_hosts: Some(vec!["api.example.com".into()]) });
    cfg.workspaces.insert("open".into(), EgressPolicy { allow_hosts: Some(vec!["127.0.0.1".into()]) });
    let f = fetch(cfg, &v);
    let err = f.send(&ws("locked"), get(&server.url("/"))).await.unwrap_err();
    assert!(matches!(err, FetchError::HostNotAllowed { .. }), "{err:?}");
    assert_eq!(err.code(), ErrorCode::PermissionDenied);
    assert_eq!(f.send(&ws("open"), get(&server.url("/"))).await.unwrap().status, 200);
    assert_eq!(f.send(&ws("default"), get(&server.url("/"))).await.unwrap().status, 200);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn bad_headers_are_invalid_input() {
    let server = serve(echo()).await;
    let v = vault();
    let f = fetch(config(), &v);
    let w = ws("acme");
    let bad: &[(&str, &str)] = &[
        ("x-a", "v\r\nx-injected: 1"),
        ("x-a", "v\nx"),
        ("x-a", "v\rx"),
        ("x-a", "nul\0"),
        ("x-a\r\nx-injected", "v"),
        ("x a", "v"),
        ("", "v"),
        ("Host", "evil.example"),
        ("content-length", "0"),
        ("Transfer-Encoding", "chunked"),
        ("connection", "close"),
        ("upgrade", "websocket"),
    ];
    for (n, val) in bad {
        let mut req = get(&server.url("/"));
        req.headers.push(((*n).into(), (*val).into()));
        let err = f.send(&w, req).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{n:?}: {val:?}: {err:?}");
    }
    for method in ["", "GE T", "CONNECT", "TRACE", "G\r\nET"] {
        let req = FetchRequest { method: method.into(), ..get(&server.url("/")) };
        assert_eq!(f.send(&w, req).await.unwrap_err().code(), ErrorCode::InvalidInput, "{method:?}");
    }
    let creds = get(&format!("http://user:pw@127.0.0.1:{}/", server.port()));
    assert_eq!(f.send(&w, creds).await.unwrap_err().code(), ErrorCode::InvalidInput);
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn request_caps() {
    let server = serve(echo()).await;
    let v = vault();
    let cfg = FetchConfig { max_request_body_bytes: 10, ..config() };
    let f = fetch(cfg, &v);
    let w = ws("acme");
    let req = FetchRequest { method: "POST".into(), body: vec![b'x'; 11], ..get(&server.url("/")) };
    assert_eq!(f.send(&w, req).await.unwrap_err().code(), ErrorCode::TooLarge);
    let mut req = get(&server.url("/"));
    req.headers.push(("x-big".into(), "v".repeat(9000)));
    assert_eq!(f.send(&w, req).await.unwrap_err().code(), ErrorCode::TooLarge);
    let req = FetchRequest { method: "POST".into(), body: b"0123456789".to_vec(), ..get(&server.url("/")) };
    assert_eq!(f.send(&w, req).await.unwrap().status, 200);
    assert_eq!(server.requests()[0].body, b"0123456789");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn gzip_is_decoded_under_the_cap_and_a_bomb_is_too_large() {
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 128 << 10, "bomb is {} bytes", bomb.len());
    let gz = vec![("content-encoding".to_owned(), "gzip".to_owned())];
    let bomber = serve(fixed(200, gz.clone(), bomb)).await;
    let v = vault();
    let f = fetch(config(), &v);
    let w = ws("acme");
    let err = f.send(&w, get(&bomber.url("/"))).await.unwrap_err();
    assert!(matches!(err, FetchError::ResponseTooLarge(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::TooLarge);

    // A normal gzip body is decoded, and scrubbed after decoding.
    let server = serve(fixed(200, gz, gzip(format!("token={SECRET}").as_bytes()))).await;
    let origin = format!("http://127.0.0.1:{}", server.port());
    v.bearer(&w, "api", SECRET, &[&origin]);
    let resp = f.send(&w, with_secrets(get(&server.url("/")), &["api"])).await.unwrap();
    assert_eq!(resp.body, b"token=[REDACTED]");
    assert!(!resp.headers.iter().any(|(n, _)| n == "content-encoding"));

    // An undecodable coding could hide the secret: refused.
    let br = serve(fixed(200, vec![("content-encoding".into(), "br".into())], b"xx".to_vec())).await;
    assert_eq!(f.send(&w, get(&br.url("/"))).await.unwrap_err().code(), ErrorCode::Unavailable);

    // A plain body over the cap.
    let big = serve(fixed(200, vec![], vec![b'a'; 2000])).await;
    let small = fetch(FetchConfig { max_response_body_bytes: 1000, ..config() }, &v);
    assert_eq!(small.send(&w, get(&big.url("/"))).await.unwrap_err().code(), ErrorCode::TooLarge);
}

#[tokio::test]
async fn response_header_caps() {
    let many: Vec<(String, String)> = (0..150).map(|i| (format!("x-h{i}"), "v".to_owned())).collect();
    let server = serve(fixed(200, many, b"ok".to_vec())).await;
    let v = vault();
    let w = ws("acme");
    let f = fetch(config(), &v);
    let err = f.send(&w, get(&server.url("/"))).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge, "{err:?}");

    let twenty: Vec<(String, String)> = (0..20).map(|i| (format!("x-h{i}"), "v".to_owned())).collect();
    let server = serve(fixed(200, twenty, b"ok".to_vec())).await;
    let f10 = fetch(FetchConfig { max_response_headers: 10, ..config() }, &v);
    assert!(matches!(f10.send(&w, get(&server.url("/"))).await, Err(FetchError::ResponseTooLarge(_))));
    assert_eq!(f.send(&w, get(&server.url("/"))).await.unwrap().status, 200);

    let huge = serve(fixed(200, vec![("x-big".into(), "v".repeat(10_000))], b"ok".to_vec())).await;
    assert!(matches!(f.send(&w, get(&huge.url("/"))).await, Err(FetchError::ResponseTooLarge(_))));
}

#[tokio::test]
async fn silent_server_times_out_as_unavailable() {
    let (addr, conns) = silent().await;
    let v = vault();
    let w = ws("acme");
    let cfg = FetchConfig { first_byte_timeout: Duration::from_secs(1), ..config() };
    let f = fetch(cfg, &v);
    let url = format!("http://{addr}/");
    let started = Instant::now();
    let err = f.send(&w, get(&url)).await.unwrap_err();
    assert!(matches!(err, FetchError::Timeout(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::Unavailable);
    // The first-byte timeout, not something earlier, ended it.
    assert!(started.elapsed() >= Duration::from_millis(950), "{:?}", started.elapsed());
    assert!(conns.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    // The guest's own timeout is shorter still.
    let req = FetchRequest { timeout: Some(Duration::from_millis(50)), ..get(&url) };
    assert_eq!(f.send(&w, req).await.unwrap_err().code(), ErrorCode::Unavailable);

    // Nothing listening: a connect failure, also unavailable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let err = f.send(&w, get(&format!("http://{closed}/"))).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err:?}");
}

#[tokio::test]
async fn errors_never_carry_the_secret() {
    // A query-placed secret on a URL whose server never answers: the
    // error detail (which may quote the URL) must not hold the value.
    let (addr, _) = silent().await;
    let v = vault();
    let w = ws("acme");
    v.set(&w, "q", SECRET, &[&format!("http://{addr}")], Placement::Query { param: "key".into() });
    let f = fetch(FetchConfig { first_byte_timeout: Duration::from_millis(100), ..config() }, &v);
    let err = f.send(&w, with_secrets(get(&format!("http://{addr}/p")), &["q"])).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert_no_secret(&text, SECRET);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    v.set(&w, "q2", SECRET, &[&format!("http://{closed}")], Placement::Query { param: "key".into() });
    let err = f.send(&w, with_secrets(get(&format!("http://{closed}/p")), &["q2"])).await.unwrap_err();
    assert_no_secret(&format!("{err} {err:?}"), SECRET);
}

#[tokio::test]
async fn bindings_are_checked_before_anything_is_decrypted() {
    let a = serve(echo()).await;
    let b = serve(echo()).await;
    let v = vault();
    let w = ws("acme");
    v.bearer(&w, "api", SECRET, &[&format!("http://127.0.0.1:{}", a.port())]);
    let placement = Placement::Header { name: "X-Other".into(), template: "{}".into() };
    v.set(&w, "elsewhere", "other-secret-value-000", &[&format!("http://127.0.0.1:{}", b.port())], placement);
    let probe = Probe::new(&v, Duration::ZERO);
    let f = orbit_fetch::Fetch::new(config(), probe.clone()).unwrap();

    let err = f.send(&w, with_secrets(get(&b.url("/")), &["api"])).await.unwrap_err();
    assert!(matches!(err, FetchError::SecretDenied { reason: SecretDenial::NotBound, .. }), "{err:?}");
    // One bound, one not: neither is decrypted.
    let err = f.send(&w, with_secrets(get(&a.url("/")), &["api", "elsewhere"])).await.unwrap_err();
    assert!(matches!(err, FetchError::SecretDenied { reason: SecretDenial::NotBound, .. }), "{err:?}");
    assert_eq!(probe.resolves.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(a.requests().is_empty() && b.requests().is_empty());

    f.send(&w, with_secrets(get(&a.url("/")), &["api"])).await.unwrap();
    assert_eq!(probe.resolves.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn recording_a_use_is_off_the_request_path() {
    let server = serve(echo()).await;
    let v = vault();
    let w = ws("acme");
    v.bearer(&w, "api", SECRET, &[&format!("http://127.0.0.1:{}", server.port())]);
    let probe = Probe::new(&v, Duration::from_millis(1500));
    let f = orbit_fetch::Fetch::new(config(), probe.clone()).unwrap();
    let resp = f.send(&w, with_secrets(get(&server.url("/")), &["api"])).await.unwrap();
    assert_eq!(resp.status, 200);
    // The response came back while the (slow) use record was still pending.
    assert_eq!(probe.marks.load(std::sync::atomic::Ordering::SeqCst), 0);
    eventually("the use to be recorded", || probe.marks.load(std::sync::atomic::Ordering::SeqCst) == 1).await;
    assert!(v.vault.list(&w).unwrap()[0].last_used_at_ms.is_some());
}

#[tokio::test]
async fn body_cap_applies_after_scrubbing() {
    // Each 8-byte value becomes the 10 bytes of `[REDACTED]`.
    let value = "abcd1234";
    let server = serve(fixed(200, vec![], value.repeat(10).into_bytes())).await;
    let v = vault();
    let w = ws("acme");
    v.bearer(&w, "short", value, &[&format!("http://127.0.0.1:{}", server.port())]);
    let req = || with_secrets(get(&server.url("/")), &["short"]);

    let f = fetch(FetchConfig { max_response_body_bytes: 90, ..config() }, &v);
    let err = f.send(&w, req()).await.unwrap_err();
    assert!(matches!(err, FetchError::ResponseTooLarge(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::TooLarge);

    let f = fetch(FetchConfig { max_response_body_bytes: 100, ..config() }, &v);
    assert_eq!(f.send(&w, req()).await.unwrap().body, REDACTED.repeat(10).into_bytes());
}

#[tokio::test]
async fn range_headers_are_refused_when_secrets_are_used() {
    let server = serve(echo()).await;
    let v = vault();
    let w = ws("acme");
    v.bearer(&w, "api", SECRET, &[&format!("http://127.0.0.1:{}", server.port())]);
    let f = fetch(config(), &v);
    for (name, value) in [("Range", "bytes=10-20"), ("if-range", "\"etag\""), ("RANGE", "bytes=0-")] {
        let mut req = with_secrets(get(&server.url("/")), &["api"]);
        req.headers.push((name.into(), value.into()));
        let err = f.send(&w, req).await.unwrap_err();
        assert!(matches!(err, FetchError::InvalidRequest(_)), "{name}: {err:?}");
        assert_eq!(err.code(), ErrorCode::InvalidInput);
    }
    assert!(server.requests().is_empty());

    // Without secrets there is nothing to leak: allowed.
    let mut req = get(&server.url("/"));
    req.headers.push(("Range".into(), "bytes=0-3".into()));
    assert_eq!(f.send(&w, req).await.unwrap().status, 200);
    assert_eq!(server.requests()[0].header("range"), Some("bytes=0-3"));
}

#[tokio::test]
async fn requests_in_flight_are_capped() {
    let (addr, conns) = silent().await;
    let v = vault();
    let w = ws("acme");
    let cfg = FetchConfig { max_concurrent_requests: 1, first_byte_timeout: Duration::from_millis(1000), ..config() };
    let f = fetch(cfg, &v);
    let url = format!("http://{addr}/");
    let (a, b, in_flight) = tokio::join!(f.send(&w, get(&url)), f.send(&w, get(&url)), async {
        eventually("a request to connect", || conns.load(std::sync::atomic::Ordering::SeqCst) >= 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        conns.load(std::sync::atomic::Ordering::SeqCst)
    });
    // The second request waited for the first to end, then went out.
    assert_eq!(in_flight, 1);
    assert!(matches!(a, Err(FetchError::Timeout(_))), "{a:?}");
    assert!(matches!(b, Err(FetchError::Timeout(_))), "{b:?}");
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 2);
}
