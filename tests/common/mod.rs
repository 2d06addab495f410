//! Shared set-up for the end-to-end tests: a real Orbit data directory in a
//! tempdir, and the real guest components built by `orbit-test-guests`.
#![allow(dead_code)]

pub mod cases;

use std::time::Duration;

use orbit::{Invocation, Limits, Orbit, Outcome, WorkspaceId};

pub struct Env {
    pub orbit: Orbit,
    pub dir: tempfile::TempDir,
}

pub fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let orbit = Orbit::open(dir.path()).unwrap();
    Env { orbit, dir }
}

pub fn ws(name: &str) -> WorkspaceId {
    WorkspaceId::new(name).unwrap()
}

impl Env {
    pub async fn run(&self, guest: &str, input: &str) -> Outcome {
        self.run_in(guest, "default", input, Limits::default()).await
    }

    pub async fn run_in(&self, guest: &str, workspace: &str, input: &str, limits: Limits) -> Outcome {
        let wasm = orbit_test_guests::bytes(guest);
        let inv = Invocation::new(input).workspace(ws(workspace)).limits(limits);
        self.orbit.engine().invoke_wasm(&wasm, inv).await.unwrap()
    }

    /// Runs the scriptable `ops` fixture and returns its per-op results.
    pub async fn ops(&self, workspace: &str, ops: serde_json::Value) -> (Outcome, Vec<serde_json::Value>) {
        let out = self.run_in("ops", workspace, &ops.to_string(), Limits::default()).await;
        assert!(out.status().is_success(), "ops run failed: {:?}", out.record);
        let results: Vec<serde_json::Value> = serde_json::from_slice(&out.output).unwrap();
        (out, results)
    }
}

pub fn limits() -> Limits {
    Limits::default()
}

pub fn with_timeout(ms: u64) -> Limits {
    let mut l = Limits::default();
    l.timeout = Duration::from_millis(ms);
    l
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
pub fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else if std::fs::read(&p).unwrap().windows(needle.len()).any(|w| w == needle) {
            hits.push(p);
        }
    }
    hits
}

/// One request a [`recording_server`] received.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// The method, as sent.
    pub method: String,
    /// The path of the request target.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// A real HTTP/1 server on 127.0.0.1 that answers 200 `ok` to every
/// request and records each one; returns its base URL (`http://IP:PORT`).
pub async fn recording_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<SeenRequest>>>) {
    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: std::sync::Arc<std::sync::Mutex<Vec<SeenRequest>>> = Default::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    log.lock().unwrap().push(SeenRequest {
                        method: req.method().to_string(),
                        path: req.uri().path().to_owned(),
                        authorization: req
                            .headers()
                            .get("authorization")
                            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
                    });
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    (base, seen)
}
