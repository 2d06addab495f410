//! Latency of one MCP tool call (server-everything's `echo` over stdio),
//! measured in one run:
//!
//! - `tools/pooled`: `Tools::call` on the pooled, already started
//!   connection;
//! - `tools/fresh-connection`: the connection closed before every call, so
//!   each call starts the server process and runs the MCP handshake again.
//!
//! After the criterion groups it prints the ratio of the two means from a
//! separate timed loop (`fresh / pooled`). Needs
//! `scripts/install-test-deps.sh`. Run with `cargo bench --bench tools`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use orbit::orbit_tools::{ServerSpec, ServerTransport};
use orbit::{MasterKey, Orbit, OrbitConfig, WorkspaceId};
use orbit_test_guests::mcp_servers;

const ARGS: &str = r#"{"message":"bench"}"#;

async fn echo(orbit: &Orbit, ws: &WorkspaceId) {
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    let r = orbit.tools().call(ws, "everything", "echo", ARGS, until).await.unwrap();
    assert_eq!(r.content[0]["text"], "Echo: bench");
}

fn tools(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = OrbitConfig::default();
    cfg.master_key = Some(MasterKey::from_bytes([9; 32]));
    let orbit = Orbit::open_with(dir.path(), cfg).unwrap();
    let ws = WorkspaceId::default();
    let (command, args) = mcp_servers::everything_stdio();
    let spec = ServerSpec::new(ServerTransport::Stdio { command, args });
    orbit.tools().registry().add_server(&ws, "everything", spec).unwrap();
    rt.block_on(echo(&orbit, &ws));

    let mut g = c.benchmark_group("tools");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("pooled", |b| b.to_async(&rt).iter(|| echo(&orbit, &ws)));
    g.sample_size(10);
    g.bench_function("fresh-connection", |b| {
        b.to_async(&rt).iter(|| async {
            orbit.tools().disconnect(&ws, "everything");
            echo(&orbit, &ws).await;
        })
    });
    g.finish();

    let mean = |n: u32, fresh: bool| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                if fresh {
                    orbit.tools().disconnect(&ws, "everything");
                }
                echo(&orbit, &ws).await;
            }
            start.elapsed() / n
        })
    };
    let pooled = mean(50, false);
    let fresh = mean(5, true);
    println!(
        "tools: pooled call {pooled:?}, fresh connection per call {fresh:?}, ratio {:.1}x",
        fresh.as_secs_f64() / pooled.as_secs_f64()
    );
    orbit.tools().disconnect(&ws, "everything");
}

criterion_group!(benches, tools);
criterion_main!(benches);
