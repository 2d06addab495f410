//! Real HTTP servers on 127.0.0.1 and a real vault for the fetch tests.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use orbit_fetch::{Fetch, FetchConfig, FetchRequest, SecretResolver};
use orbit_vault::{HostBinding, MasterKey, Placement, SecretMeta, SecretValue, Vault, VaultError};
use orbit_workspace::WorkspaceId;
use tokio::net::TcpListener;

/// One request as a test server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Everything the server saw, as one text, for "never saw the secret"
    /// checks.
    pub fn all_text(&self) -> String {
        let mut s = format!("{} {}\n", self.method, self.uri);
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\n"));
        }
        s.push_str(&String::from_utf8_lossy(&self.body));
        s
    }
}

pub type Handler = Arc<dyn Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync>;

/// A live HTTP/1.1 server on 127.0.0.1 that records every request and
/// counts TCP connections.
pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub connections: Arc<AtomicUsize>,
}

impl Server {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

pub async fn serve(handler: Handler) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let connections: Arc<AtomicUsize> = Arc::default();
    let (seen2, conns2) = (seen.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            conns2.fetch_add(1, Ordering::SeqCst);
            let (seen, handler) = (seen2.clone(), handler.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (seen, handler) = (seen.clone(), handler.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                        let s = Seen {
                            method: parts.method.to_string(),
                            uri: parts.uri.to_string(),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                                .collect(),
                            body,
                        };
                        let resp = handler(&s);
                        seen.lock().unwrap().push(s);
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Server { addr, seen, connections }
}

/// Echoes the request back: the request line, every header, the body, and
/// for an `Authorization` header also its base64 (standard and URL-safe),
/// the base64 of its credential part alone, and its percent-encoding. The
/// raw `Authorization` value is echoed in the `x-echo-authorization`
/// response header as well.
pub fn echo() -> Handler {
    Arc::new(|s: &Seen| {
        let mut text = s.all_text();
        let mut resp = Response::builder().status(200).header("content-type", "text/plain");
        if let Some(auth) = s.header("authorization") {
            let cred = auth.split_once(' ').map_or(auth, |(_, c)| c);
            let b64 = base64::engine::general_purpose::STANDARD;
            let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            text.push_str(&format!("\nb64: {}\n", b64.encode(auth)));
            text.push_str(&format!("b64url: {}\n", b64url.encode(auth)));
            text.push_str(&format!("b64-credential: {}\n", b64.encode(cred)));
            text.push_str(&format!(
                "pct: {}\n",
                percent_encoding::utf8_percent_encode(auth, percent_encoding::NON_ALPHANUMERIC)
            ));
            text.push_str(&format!("json: {}\n", serde_json::json!({ "authorization": auth })));
            resp = resp.header("x-echo-authorization", auth);
        }
        resp.body(Full::new(Bytes::from(text))).unwrap()
    })
}

pub fn fixed(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Handler {
    Arc::new(move |_: &Seen| {
        let mut r = Response::builder().status(status);
        for (n, v) in &headers {
            r = r.header(n.as_str(), v.as_str());
        }
        r.body(Full::new(Bytes::from(body.clone()))).unwrap()
    })
}

/// A TCP listener that accepts connections and never answers.
pub async fn silent() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count: Arc<AtomicUsize> = Arc::default();
    let c2 = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            c2.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (addr, count)
}

pub fn ws(name: &str) -> WorkspaceId {
    WorkspaceId::new(name).unwrap()
}

/// A real vault in a tempdir.
pub struct TestVault {
    pub vault: Arc<Vault>,
    pub dir: tempfile::TempDir,
}

pub fn vault() -> TestVault {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(&dir.path().join("vault.redb"), MasterKey::from_bytes([7u8; 32])).unwrap();
    TestVault { vault: Arc::new(vault), dir }
}

impl TestVault {
    pub fn set(&self, ws: &WorkspaceId, name: &str, value: &str, hosts: &[&str], placement: Placement) {
        let hosts = hosts.iter().map(|h| HostBinding::parse(h).unwrap()).collect();
        self.vault
            .set(
                ws,
                name,
                SecretValue::new(value.to_owned()),
                hosts,
                placement,
                &orbit_workspace::UserId::new("test").unwrap(),
            )
            .unwrap();
    }

    pub fn bearer(&self, ws: &WorkspaceId, name: &str, value: &str, hosts: &[&str]) {
        let placement = Placement::Header { name: "Authorization".into(), template: "Bearer {}".into() };
        self.set(ws, name, value, hosts, placement);
    }
}

/// The test configuration: 127.0.0.1 allowed for the tests' own servers,
/// short timeouts.
pub fn config() -> FetchConfig {
    FetchConfig {
        allow_ips: vec!["127.0.0.1/32".parse().unwrap()],
        connect_timeout: Duration::from_secs(2),
        first_byte_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(5),
        ..FetchConfig::default()
    }
}

pub fn fetch(config: FetchConfig, v: &TestVault) -> Fetch {
    Fetch::new(config, v.vault.clone()).unwrap()
}

/// A resolver over a real vault that counts decryptions and records of
/// use, and can make recording a use slow.
pub struct Probe {
    pub vault: Arc<Vault>,
    pub resolves: AtomicUsize,
    pub marks: AtomicUsize,
    pub mark_delay: Duration,
}

impl Probe {
    pub fn new(v: &TestVault, mark_delay: Duration) -> Arc<Probe> {
        Arc::new(Probe {
            vault: v.vault.clone(),
            resolves: AtomicUsize::new(0),
            marks: AtomicUsize::new(0),
            mark_delay,
        })
    }
}

impl SecretResolver for Probe {
    fn resolve(&self, ws: &WorkspaceId, name: &str) -> Result<Option<(SecretMeta, SecretValue)>, VaultError> {
        self.resolves.fetch_add(1, Ordering::SeqCst);
        self.vault.resolve(ws, name)
    }

    fn meta(&self, ws: &WorkspaceId, name: &str) -> Result<Option<SecretMeta>, VaultError> {
        self.vault.meta(ws, name)
    }

    fn mark_used(&self, ws: &WorkspaceId, name: &str, at_ms: u64) -> Result<(), VaultError> {
        std::thread::sleep(self.mark_delay);
        self.marks.fetch_add(1, Ordering::SeqCst);
        self.vault.mark_used(ws, name, at_ms)
    }
}

/// Waits up to 10 s for `cond`.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn get(url: &str) -> FetchRequest {
    FetchRequest { method: "GET".into(), url: url.into(), ..FetchRequest::default() }
}

pub fn with_secrets(mut r: FetchRequest, secrets: &[&str]) -> FetchRequest {
    r.secrets = secrets.iter().map(|s| s.to_string()).collect();
    r
}

/// A real Orbit engine with the `fetch` primitive linked and its run store
/// in a temporary directory.
pub struct Env {
    pub engine: orbit_engine::Engine,
    _dir: tempfile::TempDir,
}

pub fn engine(fetch: Fetch) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let runs = orbit_engine::orbit_runs::RunStore::open(&dir.path().join("runs.redb")).unwrap();
    let engine =
        orbit_engine::Engine::builder(orbit_engine::EngineConfig::default(), runs).primitive(fetch).build().unwrap();
    Env { engine, _dir: dir }
}
