//! Added latency of a mediated fetch, measured in one run against the same
//! loopback HTTP server:
//!
//! - `fetch/plain-reqwest`: a reqwest client GET (the baseline);
//! - `fetch/orbit-send`: `Fetch::send` with a vault secret injected as a
//!   bearer header: policy check, vault decrypt, injection, response
//!   scrubbing;
//! - `fetch/orbit-guest`: a guest component calling `fetch` through a full
//!   Orbit run (instantiate, host call, run record on tmpfs).
//!
//! Run with `cargo bench --bench fetch`.

use std::convert::Infallible;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use orbit::orbit_fetch::FetchRequest;
use orbit::{FetchConfig, HostBinding, MasterKey, Orbit, OrbitConfig, Placement, SecretValue, WorkspaceId};

/// What the loopback server answers to every request.
const BODY: &[u8] = b"{\"ok\":true,\"items\":[1,2,3]}";

async fn server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"{\"ok\":true,\"items\":[1,2,3]}",
                    ))))
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(io, service).await;
            });
        }
    });
    base
}

fn fetch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let base = rt.block_on(server());
    let url = format!("{base}/v1/items");

    let mut g = c.benchmark_group("fetch");
    g.measurement_time(Duration::from_secs(5));

    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    g.bench_function("plain-reqwest", |b| {
        b.to_async(&rt).iter(|| async {
            let resp = plain.get(&url).bearer_auth("bench-token-value").send().await.unwrap();
            assert_eq!(resp.bytes().await.unwrap(), BODY);
        })
    });

    let dir = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let fetch_cfg = FetchConfig { allow_ips: vec!["127.0.0.1/32".parse().unwrap()], ..FetchConfig::default() };
    let mut cfg = OrbitConfig::default();
    cfg.fetch = Some(fetch_cfg.clone());
    cfg.master_key = Some(MasterKey::from_bytes([9; 32]));
    let orbit = Orbit::open_with(dir.path(), cfg).unwrap();
    let ws = WorkspaceId::default();
    let placement = Placement::Header { name: "Authorization".into(), template: "Bearer {}".into() };
    let binding = HostBinding::parse(&base).unwrap();
    orbit
        .vault()
        .set(
            &ws,
            "TOKEN",
            SecretValue::new("bench-token-value".into()),
            vec![binding],
            placement,
            &orbit::UserId::new("bench").unwrap(),
        )
        .unwrap();

    // The same vault the engine uses, behind the host-level API.
    let host_fetch = orbit::Fetch::new(fetch_cfg, orbit.secret_resolver()).unwrap();
    g.bench_function("orbit-send", |b| {
        b.to_async(&rt).iter(|| async {
            let req = FetchRequest {
                method: "GET".into(),
                url: url.clone(),
                headers: Vec::new(),
                body: Vec::new(),
                timeout: None,
                secrets: vec!["TOKEN".into()],
            };
            let resp = host_fetch.send(&WorkspaceId::default(), req).await.unwrap();
            assert_eq!(resp.body, BODY);
        })
    });

    let wasm = orbit_test_guests::bytes("fetch-client");
    let component = orbit.engine().load(&wasm).unwrap();
    let input = serde_json::json!({"url": url, "secrets": ["TOKEN"]}).to_string();
    g.bench_function("orbit-guest", |b| {
        b.to_async(&rt).iter(|| async {
            let out = orbit.engine().invoke(&component, orbit::Invocation::new(input.clone())).await.unwrap();
            assert!(out.status().is_success(), "{:?}", out.record.error);
        })
    });
    g.finish();
}

criterion_group!(benches, fetch);
criterion_main!(benches);
