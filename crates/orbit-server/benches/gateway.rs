//! Latency of one MCP tool call through a workspace's gateway
//! (`/ws/{slug}/mcp` of `orbit serve`: bearer authentication, rate limit,
//! role and policy checks, the pooled upstream connection, the audit
//! write) against the same call made directly to the same upstream over
//! streamable HTTP, measured in one run. The upstream is server-everything
//! in streamable-HTTP mode on loopback; the call is its `echo`.
//!
//! After the criterion group it prints the medians (p50) of 300 calls of
//! each, alternating, and their ratio (`gateway / direct`). Both clients
//! are rmcp's default, which opens a TCP connection per message, as MCP
//! clients built on it do. A second ratio is printed for clients that keep
//! their connections, one direct and one through the gateway.
//! Needs `scripts/install-test-deps.sh`. Run with `cargo bench --bench
//! gateway`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use orbit::orbit_tools::{ServerSpec, ServerTransport};
use orbit::orbit_workspace::TokenRequest;
use orbit::{MasterKey, Orbit, OrbitConfig, Principal, TeamStore, UserId, WorkspaceId};
use orbit_test_guests::mcp_servers::EverythingHttp;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

async fn connect(url: &str, token: Option<&str>) -> Client {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(t) = token {
        config = config.auth_header(t);
    }
    ().serve(StreamableHttpClientTransport::from_config(config)).await.expect("MCP initialize")
}

/// A client of `url` whose HTTP client keeps finished connections.
async fn connect_pooled(url: &str, token: Option<&str>) -> Client {
    let http = rmcp_reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(2)).build().unwrap();
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(t) = token {
        config = config.auth_header(t);
    }
    ().serve(StreamableHttpClientTransport::with_client(http, config)).await.expect("MCP initialize")
}

async fn echo(client: &Client, name: &'static str) {
    let mut params = CallToolRequestParams::new(name);
    params.arguments = serde_json::json!({"message": "bench"}).as_object().cloned();
    let r = client.call_tool(params).await.expect("tools/call");
    assert_ne!(r.is_error, Some(true), "{r:?}");
}

fn gateway(c: &mut Criterion) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let upstream = EverythingHttp::start();

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = OrbitConfig::default();
    cfg.master_key = Some(MasterKey::from_bytes([9; 32]));
    let orbit = Orbit::open_with(dir.path(), cfg).unwrap();
    let ws = WorkspaceId::new("bench").unwrap();
    let op = Principal::local_operator();
    let ada = UserId::new("ada").unwrap();
    orbit.team().create_workspace(&op, &ws, &ada, None).unwrap();
    let spec = ServerSpec::new(ServerTransport::Http { url: upstream.url.clone() });
    orbit.install_server(&op, &ws, "remote", spec, None).unwrap();
    let req = TokenRequest { user: ada, role: None, agent: None, name: None, expires_in_ms: None };
    let token = orbit.team().issue_token(&op, &ws, req).unwrap().secret.expose().to_owned();

    let server = orbit_server::OrbitMcp::new(orbit.clone()).unwrap();
    let mut config = orbit_server::HttpConfig::default();
    // The per-token rate limit (50/s by default) would throttle the loop;
    // the limiter's check is still made on every call.
    let many = std::num::NonZeroU32::new(1_000_000).unwrap();
    config.rate_limit = orbit_server::api::RateLimit::new(many, many);
    let stop = config.cancellation.clone();
    let (direct, pooled, through, through_pooled) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ws/bench/mcp", listener.local_addr().unwrap());
        tokio::spawn(orbit_server::serve_http(server, listener, config));
        let direct = connect(&upstream.url, None).await;
        let pooled = connect_pooled(&upstream.url, None).await;
        let through = connect(&url, Some(&token)).await;
        let through_pooled = connect_pooled(&url, Some(&token)).await;
        // Warm all: the gateway's first call starts its pooled upstream connection.
        echo(&direct, "echo").await;
        echo(&pooled, "echo").await;
        echo(&through, "remote__echo").await;
        echo(&through_pooled, "remote__echo").await;
        (direct, pooled, through, through_pooled)
    });

    let mut g = c.benchmark_group("gateway");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("direct", |b| b.to_async(&rt).iter(|| echo(&direct, "echo")));
    g.bench_function("through-gateway", |b| b.to_async(&rt).iter(|| echo(&through, "remote__echo")));
    g.bench_function("direct-keep-alive", |b| b.to_async(&rt).iter(|| echo(&pooled, "echo")));
    g.bench_function("through-gateway-keep-alive", |b| b.to_async(&rt).iter(|| echo(&through_pooled, "remote__echo")));
    g.finish();

    let (mut d, mut p, mut t, mut tp) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..300 {
            let s = Instant::now();
            echo(&direct, "echo").await;
            d.push(s.elapsed());
            let s = Instant::now();
            echo(&pooled, "echo").await;
            p.push(s.elapsed());
            let s = Instant::now();
            echo(&through, "remote__echo").await;
            t.push(s.elapsed());
            let s = Instant::now();
            echo(&through_pooled, "remote__echo").await;
            tp.push(s.elapsed());
        }
    });
    let pct = |v: &mut Vec<Duration>, q: usize| {
        v.sort();
        v[(v.len() * q / 100).min(v.len() - 1)]
    };
    let (d50, p50_, t50, tp50) = (pct(&mut d, 50), pct(&mut p, 50), pct(&mut t, 50), pct(&mut tp, 50));
    println!(
        "gateway: p50 direct {d50:?}, through the gateway {t50:?}, ratio {:.2}x",
        t50.as_secs_f64() / d50.as_secs_f64()
    );
    println!(
        "gateway: clients that keep their connections: p50 direct {p50_:?}, through the gateway {tp50:?}, ratio {:.2}x",
        tp50.as_secs_f64() / p50_.as_secs_f64()
    );
    // The tails, which the medians above hide.
    for (name, v) in
        [("direct", &mut d), ("through", &mut t), ("direct keep-alive", &mut p), ("through keep-alive", &mut tp)]
    {
        println!("gateway: {name}: p90 {:?}, p99 {:?}, max {:?}", pct(v, 90), pct(v, 99), pct(v, 100));
    }
    stop.cancel();
    rt.block_on(async {
        let _ = direct.cancel().await;
        let _ = pooled.cancel().await;
        let _ = through_pooled.cancel().await;
        let _ = through.cancel().await;
    });
}

criterion_group!(benches, gateway);
criterion_main!(benches);
