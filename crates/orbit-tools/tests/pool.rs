//! The pool and host-side API of `orbit-tools` against a real MCP server
//! (`@modelcontextprotocol/server-everything` over stdio, installed by
//! `scripts/install-test-deps.sh`), without a guest.

// Sampling is deprecated by SEP-2577 for protocol 2026-07-28; the relay
// still answers it for the 2025 protocol versions servers speak today.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Duration;

use orbit_tools::{ServerSpec, ServerTransport, ToolRegistry, Tools, ToolsError, ToolsLimits};
use orbit_vault::{MasterKey, Vault};
use orbit_workspace::WorkspaceId;
use tokio::time::Instant;

fn tools(dir: &std::path::Path, limits: ToolsLimits) -> Tools {
    let vault = Arc::new(Vault::open(&dir.join("vault.redb"), MasterKey::from_bytes([7; 32])).unwrap());
    Tools::new(Arc::new(ToolRegistry::open(dir).unwrap()), vault, limits)
}

fn everything() -> ServerSpec {
    let (command, args) = orbit_test_guests::mcp_servers::everything_stdio();
    ServerSpec::new(ServerTransport::Stdio { command, args })
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_lists_tools_and_calls_share_one_bounded_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut limits = ToolsLimits::default();
    limits.max_concurrent_calls_per_server = 1;
    let t = tools(dir.path(), limits);
    let ws = WorkspaceId::new("w").unwrap();
    t.registry().add_server(&ws, "everything", everything()).unwrap();
    assert!(t.registry().list_tools(&ws).unwrap().is_empty(), "no tools before the first connection");

    let listed = t.refresh(&ws, "everything").await.unwrap();
    let echo = listed.iter().find(|x| x.name == "echo").unwrap();
    assert_eq!(echo.input_schema["type"], "object");
    assert_eq!(echo.input_schema["properties"]["message"]["type"], "string");
    assert_eq!(t.registry().list_tools(&ws).unwrap(), listed);

    // One permit: a second call waits while a slow one holds it, and gives
    // `unavailable` when its own time runs out first.
    let slow_args = r#"{"duration": 3, "steps": 3}"#;
    let t2 = t.clone();
    let ws2 = ws.clone();
    let slow = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(30);
        t2.call(&ws2, "everything", "trigger-long-running-operation", slow_args, until).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quick =
        t.call(&ws, "everything", "echo", r#"{"message": "q"}"#, Instant::now() + Duration::from_millis(300)).await;
    assert!(matches!(quick, Err(ToolsError::Unavailable { .. })), "{quick:?}");
    let done = slow.await.unwrap().unwrap();
    assert!(!done.is_error);
    assert!(done.content[0]["text"].as_str().unwrap().contains("completed"), "{:?}", done.content);
    // Then it gets the permit.
    let r = t.call(&ws, "everything", "echo", r#"{"message": "q"}"#, Instant::now() + Duration::from_secs(30)).await;
    assert_eq!(r.unwrap().content[0]["text"], "Echo: q");

    // Errors before anything is forwarded.
    let until = Instant::now() + Duration::from_secs(5);
    let bad = t.call(&ws, "everything", "echo", "42", until).await;
    assert!(matches!(bad, Err(ToolsError::InvalidArguments(_))), "{bad:?}");
    let missing = t.call(&ws, "nope", "echo", "{}", until).await;
    assert!(matches!(missing, Err(ToolsError::NoSuchServer(_))), "{missing:?}");
    t.disconnect(&ws, "everything");
    assert!(!t.is_connected(&ws, "everything"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_cannot_start_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut limits = ToolsLimits::default();
    limits.restart_backoff_initial = Duration::from_secs(60);
    let t = tools(dir.path(), limits);
    let ws = WorkspaceId::new("w").unwrap();
    let spec = ServerSpec::new(ServerTransport::Stdio { command: "/nonexistent/mcp-server".into(), args: vec![] });
    t.registry().add_server(&ws, "ghost", spec).unwrap();
    let until = || Instant::now() + Duration::from_secs(5);
    for _ in 0..2 {
        let r = t.call(&ws, "ghost", "x", "{}", until()).await;
        match r {
            Err(ToolsError::Unavailable { detail, .. }) => assert!(detail.contains("starting"), "{detail}"),
            other => panic!("{other:?}"),
        }
    }
    // Two failures in a row: the next start waits 60 s, past this call's
    // budget, so it is refused at once without trying.
    let r = t.call(&ws, "ghost", "x", "{}", until()).await;
    match r {
        Err(ToolsError::Unavailable { detail, .. }) => assert!(detail.contains("backoff"), "{detail}"),
        other => panic!("{other:?}"),
    }
}

/// Records the progress relayed to it, in order.
#[derive(Default)]
struct Progress(std::sync::Mutex<Vec<f64>>);

impl orbit_tools::CallRelay for Progress {
    fn progress(&self, progress: f64, _: Option<f64>, _: Option<String>) {
        self.0.lock().unwrap().push(progress);
    }
    fn log(&self, _: rmcp::model::LoggingMessageNotificationParam) {}
    fn resource_updated(&self, _: rmcp::model::ResourceUpdatedNotificationParam) {}
    fn create_message(
        &self,
        _: rmcp::model::CreateMessageRequestParams,
    ) -> orbit_tools::Relayed<rmcp::model::CreateMessageResult> {
        Box::pin(async { Err(rmcp::ErrorData::internal_error("not offered", None)) })
    }
    fn elicit(&self, _: rmcp::model::ElicitRequestParams) -> orbit_tools::Relayed<rmcp::model::ElicitResult> {
        Box::pin(async { Err(rmcp::ErrorData::internal_error("not offered", None)) })
    }
}

/// A server that sends its last progress just before its result: every
/// notification has reached the relay, in the order sent, by the time the
/// call returns (rmcp runs notification handlers on tasks of their own,
/// which could run after the response was delivered, when the call's relay
/// is gone).
#[tokio::test(flavor = "multi_thread")]
async fn progress_sent_before_the_result_is_relayed_before_the_call_returns() {
    let dir = tempfile::tempdir().unwrap();
    let t = tools(dir.path(), ToolsLimits::default());
    let ws = WorkspaceId::new("w").unwrap();
    t.registry().add_server(&ws, "everything", everything()).unwrap();
    let steps = 40;
    let args = format!(r#"{{"duration": 0, "steps": {steps}}}"#);
    for round in 0..20 {
        let relay = Arc::new(Progress::default());
        let until = Instant::now() + Duration::from_secs(30);
        let principal = orbit_workspace::Principal::embedded();
        let done = t
            .call_relayed(&ws, &principal, "everything", "trigger-long-running-operation", &args, until, relay.clone())
            .await
            .unwrap();
        assert!(!done.is_error, "{:?}", done.content);
        let seen = relay.0.lock().unwrap().clone();
        let expected: Vec<f64> = (1..=steps).map(f64::from).collect();
        assert_eq!(seen, expected, "round {round}: progress relayed by the time the call returned");
    }
}
