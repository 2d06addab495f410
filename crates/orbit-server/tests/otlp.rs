//! Runs exported as OpenTelemetry traces, received by a real OTLP/HTTP
//! receiver started in the test (an HTTP server on loopback decoding the
//! protobuf `ExportTraceServiceRequest` bodies with `opentelemetry-proto`):
//! through an in-process server (`OrbitConfig::otlp_endpoint`) and through
//! `orbit serve --otlp-endpoint`, whose last batch is sent on shutdown.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use common::inproc::{generous, team_with};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode as SpanStatus};
use orbit::orbit_workspace::Role;
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every body POSTed to `/v1/traces`, as received.
#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<Bytes>>>,
}

impl Receiver {
    /// Starts on a free loopback port; returns the collector's base URL.
    async fn start(&self) -> String {
        let bodies = self.bodies.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let bodies = bodies.clone();
                async move {
                    assert_eq!(headers["content-type"], "application/x-protobuf", "OTLP/HTTP protobuf");
                    bodies.lock().unwrap().push(body);
                    // An empty ExportTraceServiceResponse: everything accepted.
                    ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    /// Every span received so far, with its resource's `service.name`.
    fn spans(&self) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        for body in self.bodies.lock().unwrap().iter() {
            let request = ExportTraceServiceRequest::decode(body.clone()).expect("a valid OTLP protobuf body");
            for rs in request.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                    .and_then(|a| a.value.as_ref()?.value.clone())
                    .map(|v| match v {
                        AnyValue::StringValue(s) => s,
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                for ss in rs.scope_spans {
                    out.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
                }
            }
        }
        out
    }

    /// Every received byte, for "the payload never leaves" checks.
    fn raw(&self) -> Vec<u8> {
        self.bodies.lock().unwrap().iter().flat_map(|b| b.to_vec()).collect()
    }

    /// Waits (up to 30 s) for the root span of run `run_id` and its
    /// `children` child spans.
    async fn trace_of(&self, run_id: &str, children: usize) -> (String, Span, Vec<Span>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans();
            if let Some((service, root)) =
                spans.iter().find(|(_, s)| s.name == "orbit.run" && attr(s, "orbit.run.id").as_deref() == Some(run_id))
            {
                let kids: Vec<Span> = spans
                    .iter()
                    .map(|(_, s)| s)
                    .filter(|s| s.trace_id == root.trace_id && s.span_id != root.span_id)
                    .cloned()
                    .collect();
                if kids.len() >= children {
                    return (service.clone(), root.clone(), kids);
                }
            }
            assert!(Instant::now() < deadline, "no trace with {children} child spans for run {run_id} within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|a| a.key == key)?.value.as_ref()?.value.clone()?;
    Some(match value {
        AnyValue::StringValue(s) => s,
        AnyValue::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

/// A script for the `ops` guest whose input and log line carry `sentinel`.
fn script(sentinel: &str) -> String {
    json!([
        {"op": "put", "key": "k", "value": sentinel},
        {"op": "incr", "key": "n"},
        {"op": "log", "level": "info", "message": sentinel},
        {"op": "get", "key": "k"},
        {"op": "get", "key": "missing"},
    ])
    .to_string()
}

fn sentinel() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("otlp-sentinel-{nanos:x}")
}

/// The trace must say what the run record says: one child per recorded
/// host call, same names, order, offsets and outcomes, under the root.
fn assert_trace_matches(root: &Span, children: &[Span], record: &Value) {
    let spans = record["spans"].as_array().expect("the run's spans");
    assert_eq!(children.len(), spans.len(), "one child span per host call");
    let mut children = children.to_vec();
    children.sort_by_key(|s| s.start_time_unix_nano);
    let started_ns = record["started_at_ms"].as_u64().unwrap() * 1_000_000;
    assert_eq!(root.start_time_unix_nano, started_ns, "the root starts when the run started");
    assert_eq!(
        root.end_time_unix_nano - root.start_time_unix_nano,
        record["duration_us"].as_u64().unwrap() * 1000,
        "the root lasts as long as the run"
    );
    assert!(root.parent_span_id.is_empty(), "the run is the trace's root");
    for (child, span) in children.iter().zip(spans) {
        let name = format!("{}.{}", span["primitive"].as_str().unwrap(), span["operation"].as_str().unwrap());
        assert_eq!(child.name, name);
        assert_eq!(child.trace_id, root.trace_id);
        assert_eq!(child.parent_span_id, root.span_id, "{name} is a child of the run");
        assert_eq!(child.start_time_unix_nano, started_ns + span["start_offset_us"].as_u64().unwrap() * 1000);
        assert_eq!(child.end_time_unix_nano - child.start_time_unix_nano, span["duration_us"].as_u64().unwrap() * 1000);
        let outcome = span["outcome"].as_str().unwrap();
        assert_eq!(attr(child, "orbit.outcome").as_deref(), Some(outcome));
        let code = child.status.as_ref().map_or(0, |s| s.code);
        assert_eq!(code == SpanStatus::Error as i32, outcome != "ok", "{name}: error status iff the call failed");
        assert_eq!(attr(child, "orbit.bytes_in"), Some(span["bytes_in"].to_string()));
        assert_eq!(attr(child, "orbit.bytes_out"), Some(span["bytes_out"].to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_is_exported_as_a_trace_without_its_payloads() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let mut config = orbit::OrbitConfig::default();
    config.otlp_endpoint = Some(endpoint);
    let t = team_with(generous(), config).await;
    let bob = t.token(Role::Member).to_owned();
    let digest = t.upload(&bob, "ops").await;

    let secret = sentinel();
    let (status, body) = t
        .send(
            "POST",
            "/api/v1/workspaces/acme/runs",
            Some(&bob),
            Some(json!({"digest": digest, "input": script(&secret)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["run_id"].as_str().expect("a run id").to_owned();
    let (status, record) = t.send("GET", &format!("/api/v1/workspaces/acme/runs/{id}"), Some(&bob), None).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    let calls = record["spans"].as_array().unwrap().len();
    assert!(calls >= 4, "the script makes host calls: {record}");

    let (service, root, children) = receiver.trace_of(&id, calls).await;
    assert_eq!(service, "orbit");
    assert_trace_matches(&root, &children, &record);
    assert_eq!(attr(&root, "orbit.workspace").as_deref(), Some("acme"));
    assert_eq!(attr(&root, "orbit.run.status").as_deref(), Some("succeeded"));
    assert_eq!(attr(&root, "orbit.component.digest"), Some(digest.clone()));
    assert_eq!(attr(&root, "orbit.principal.subject").as_deref(), Some("bob"));
    assert_eq!(attr(&root, "orbit.principal.role").as_deref(), Some("member"));
    assert_eq!(attr(&root, "orbit.run.fuel_consumed"), Some(record["fuel_consumed"].to_string()));
    assert_eq!(attr(&root, "orbit.run.input_bytes"), Some(script(&secret).len().to_string()));
    assert_ne!(root.status.as_ref().map_or(0, |s| s.code), SpanStatus::Error as i32);
    assert!(children.iter().any(|c| c.name == "storage.put"), "the storage write is a span");

    // A run that fails: the root span has an error status with the code.
    let trap = t.upload(&bob, "trap").await;
    let (_, body) = t
        .send("POST", "/api/v1/workspaces/acme/runs", Some(&bob), Some(json!({"digest": trap, "input": secret})))
        .await;
    let failed_id = body["run_id"].as_str().expect("a failed run still has an id").to_owned();
    let (_, failed, _) = receiver.trace_of(&failed_id, 0).await;
    let status = failed.status.as_ref().expect("a status");
    assert_eq!(status.code, SpanStatus::Error as i32);
    assert_eq!(attr(&failed, "orbit.run.status"), body["status"].as_str().map(str::to_owned));
    assert_eq!(attr(&failed, "orbit.run.error.code"), body["error"]["code"].as_str().map(str::to_owned));

    // Never a payload or a credential: the sentinel was the input, a stored
    // value, a log line and an output; the token was on every request.
    let raw = receiver.raw();
    for needle in [secret.as_str(), bob.as_str()] {
        assert!(!raw.windows(needle.len()).any(|w| w == needle.as_bytes()), "a payload or token reached the collector");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orbit_serve_otlp_endpoint_sends_the_last_runs_on_shutdown() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let dir = tempfile::tempdir().unwrap();
    let bob = common::team_with_member_token(dir.path(), "team-a");
    let server = common::HttpServer::start_with(dir.path(), &["--otlp-endpoint", &endpoint]).await;
    let base = format!("http://127.0.0.1:{}", server.port);
    let http = reqwest::Client::new();
    let uploaded: Value = http
        .post(format!("{base}/api/v1/workspaces/team-a/components"))
        .bearer_auth(&bob.token)
        .header("content-type", "application/wasm")
        .body(orbit_test_guests::bytes("ops"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run: Value = http
        .post(format!("{base}/api/v1/workspaces/team-a/runs"))
        .bearer_auth(&bob.token)
        .json(&json!({"digest": uploaded["digest"], "input": script("x")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = run["run_id"].as_str().expect("a run id").to_owned();

    // Interrupt at once: the batch of this run has not been sent yet (it
    // goes about once a second), so it must go out on the way down.
    let pid = server.child.id().expect("a pid").to_string();
    let status = std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(status.success());
    let mut child = server.child;
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("exits").unwrap();
    assert!(exit.success(), "orbit serve exits cleanly on SIGINT: {exit:?}");
    let (_, root, _) = receiver.trace_of(&id, 1).await;
    assert_eq!(attr(&root, "orbit.workspace").as_deref(), Some("team-a"));
    assert_eq!(attr(&root, "orbit.principal.agent").as_deref(), Some("tests"));
    assert_eq!(attr(&root, "orbit.principal.token_id"), Some(bob.id.clone()));
}
