//! The pool and host-side API of `orbit-tools` against a real MCP server
//! (`@modelcontextprotocol/server-everything` over stdio, installed by
//! `scripts/install-test-deps.sh`), without a guest.

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
