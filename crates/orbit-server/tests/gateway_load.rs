//! Load through the gateway, alone in its process so that its memory
//! figure is its own: 200 concurrent MCP sessions, 10 tool calls each, to
//! server-everything.

mod common;

use std::sync::Arc;

use common::inproc::*;
use orbit::orbit_workspace::Role;
use serde_json::json;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// 200 concurrent MCP sessions, 10 tool calls each, through the gateway to
/// server-everything: no errors; a second round of the same load does not
/// grow the process by more than a bounded amount (sessions are released).
#[tokio::test(flavor = "multi_thread")]
async fn gateway_load_200_sessions() {
    const SESSIONS: usize = 200;
    const CALLS: usize = 10;
    let t = Arc::new(team(generous()).await);
    install_everything(&t);
    let url = format!("{}/ws/acme/mcp", t.base);
    let tokens: Vec<String> = (0..SESSIONS).map(|_| issue(&t.orbit, "acme", "bob")).collect();
    let round = |round: usize| {
        let tokens = tokens.clone();
        let url = url.clone();
        async move {
            let mut tasks = Vec::new();
            for (i, token) in tokens.into_iter().enumerate() {
                let url = url.clone();
                tasks.push(tokio::spawn(async move {
                    let client = mcp_client(&url, &token).await;
                    let mut errors = 0;
                    for c in 0..CALLS {
                        let message = format!("r{round}-s{i}-c{c}");
                        let r = call_tool(&client, "everything__echo", json!({"message": message})).await;
                        if r.is_error == Some(true) || !text_of(&r).contains(&message) {
                            errors += 1;
                        }
                    }
                    let _ = client.cancel().await;
                    errors
                }));
            }
            let mut errors = 0;
            for task in tasks {
                errors += task.await.unwrap();
            }
            errors
        }
    };
    assert_eq!(round(1).await, 0, "round 1: every call succeeds");
    let after_first = rss_bytes();
    assert_eq!(round(2).await, 0, "round 2: every call succeeds");
    let growth = rss_bytes().saturating_sub(after_first);
    assert!(growth < 128 << 20, "a second round of 200 sessions grew RSS by {} MiB", growth >> 20);
    let (_, audit) =
        t.send("GET", "/api/v1/workspaces/acme/audit?tool=echo&limit=1000", Some(t.token(Role::Owner)), None).await;
    assert_eq!(audit["events"].as_array().unwrap().len(), 1000, "every call is audited (one page of 1000)");
}
