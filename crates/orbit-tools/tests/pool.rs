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

/// A TCP proxy on loopback in front of `upstream` that counts the
/// connections carrying POSTs (tool calls and other messages; not the
/// standalone SSE stream) and can close them all, as a server does when
/// its keep-alive timeout ends an idle one.
struct CountingProxy {
    url: String,
    /// One per POST connection: notified, it closes the connection.
    posts: Arc<std::sync::Mutex<Vec<Arc<tokio::sync::Notify>>>>,
}

impl CountingProxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let posts: Arc<std::sync::Mutex<Vec<Arc<tokio::sync::Notify>>>> = Arc::default();
        let seen = posts.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = [0u8; 4];
                    loop {
                        match client.peek(&mut head).await {
                            Ok(4) => break,
                            Ok(0) | Err(_) => return,
                            Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                        }
                    }
                    let close = Arc::new(tokio::sync::Notify::new());
                    if &head == b"POST" {
                        seen.lock().unwrap().push(close.clone());
                    }
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        // Dropping both streams closes the connection.
                        _ = close.notified() => {}
                    }
                });
            }
        });
        Self { url, posts }
    }

    fn post_connections(&self) -> usize {
        self.posts.lock().unwrap().len()
    }

    fn close_post_connections(&self) {
        for c in self.posts.lock().unwrap().iter() {
            c.notify_one();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_calls_reuse_one_connection_and_survive_the_server_closing_it() {
    let server = tokio::task::spawn_blocking(orbit_test_guests::mcp_servers::EverythingHttp::start).await.unwrap();
    let upstream = url::Url::parse(&server.url).unwrap().socket_addrs(|| None).unwrap()[0];
    let proxy = CountingProxy::start(upstream).await;
    let dir = tempfile::tempdir().unwrap();
    let t = tools(dir.path(), ToolsLimits::default());
    let ws = WorkspaceId::new("w").unwrap();
    t.registry().add_server(&ws, "remote", ServerSpec::new(ServerTransport::Http { url: proxy.url.clone() })).unwrap();
    let echo = async |text: &str| {
        let args = format!(r#"{{"message": "{text}"}}"#);
        let r = t.call(&ws, "remote", "echo", &args, Instant::now() + Duration::from_secs(30)).await.unwrap();
        assert_eq!(r.content[0]["text"], format!("Echo: {text}"));
    };
    echo("first").await;
    let opened = proxy.post_connections();
    for n in 0..10 {
        echo(&format!("call {n}")).await;
    }
    // rmcp's own client opens a connection per message (10 here). A call
    // may start before the last one's connection is back in the pool (rmcp
    // reads a response stream to its end after handing the result over).
    let more = proxy.post_connections() - opened;
    assert!(more < 5, "{more} new connections for 10 calls");

    // Every idle connection closed by the server (as its keep-alive timeout
    // does): the next call still succeeds, on a new connection, in the same
    // MCP session.
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.close_post_connections();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = proxy.post_connections();
    echo("after the close").await;
    assert!(proxy.post_connections() > before, "a new connection after the old ones closed");
    assert!(t.is_connected(&ws, "remote"), "the MCP session goes on");
}
