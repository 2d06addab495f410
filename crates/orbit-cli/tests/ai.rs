//! `orbit ai provider add|list|rm` edits `ai.json`, and `orbit run` uses
//! the providers it holds.

mod common;

use std::process::{Command, Output};

fn orbit(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orbit"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("ORBIT_HOME")
        .env_remove("ORBIT_MASTER_KEY")
        .output()
        .expect("orbit runs")
}

/// A one-request model server on 127.0.0.1 (std only): reads one HTTP
/// request and answers it with a canned OpenAI-style completion. Returns
/// the base URL and a handle giving the request's head and body.
fn one_shot_model_server() -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let answer = r#"{"choices":[{"message":{"content":"hello from the model"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":4}}"#;
        let mut stream = reader.into_inner();
        write!(stream, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}", answer.len()).unwrap();
        format!("{head}\n{}", String::from_utf8_lossy(&body))
    });
    (base, handle)
}

#[test]
fn orbit_run_uses_a_provider_added_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default", "team", "team-a"]);
    let d = dir.path();
    let (base, server) = one_shot_model_server();
    ok(orbit(d, &["ai", "provider", "add", "local", "--base-url", &base, "--model", "*"]));
    let input = r#"[{"op":"chat","provider":"local","model":"tiny","user":"say hello"}]"#;
    let component = orbit_test_guests::path("ai-client");
    let out = ok(orbit(d, &["run", component.to_str().unwrap(), "--input", input]));
    let results: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(results[0]["text"], "hello from the model");
    assert_eq!(results[0]["output_tokens"], 4);
    let request = server.join().unwrap();
    assert!(request.starts_with("POST /v1/chat/completions"), "{request}");
    assert!(request.contains(r#""model":"tiny""#) && request.contains("say hello"), "{request}");
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn providers_are_added_listed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    common::workspaces(dir.path(), &["default", "team", "team-a"]);
    let d = dir.path();
    ok(orbit(d, &["ai", "provider", "add", "local", "--base-url", "http://127.0.0.1:8080/v1", "--model", "*"]));
    ok(orbit(
        d,
        &[
            "ai",
            "provider",
            "add",
            "claude",
            "--base-url",
            "https://api.anthropic.com",
            "--api",
            "anthropic",
            "--key-secret",
            "ANTHROPIC_KEY",
            "--model",
            "claude-a",
            "--model",
            "claude-b",
            "--workspace",
            "team-a",
        ],
    ));
    // Adding a name again replaces it.
    ok(orbit(d, &["ai", "provider", "add", "local", "--base-url", "http://127.0.0.1:11434/v1", "--model", "llama3.2"]));

    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("ai.json")).unwrap()).unwrap();
    assert_eq!(file["providers"].as_array().unwrap().len(), 1);
    assert_eq!(file["providers"][0]["base_url"], "http://127.0.0.1:11434/v1");
    assert_eq!(file["providers"][0]["models"], serde_json::json!(["llama3.2"]));
    assert_eq!(file["workspaces"]["team-a"][0]["api"], "anthropic");
    assert_eq!(file["workspaces"]["team-a"][0]["key_secret"], "ANTHROPIC_KEY");

    let listed = ok(orbit(d, &["ai", "provider", "list"]));
    assert!(listed.contains("local") && listed.contains("workspace team-a") && listed.contains("claude-a,claude-b"));
    let json: serde_json::Value = serde_json::from_str(&ok(orbit(d, &["ai", "provider", "list", "--json"]))).unwrap();
    assert_eq!(json["providers"][0]["name"], "local");

    // A bad provider is refused and leaves the file as it was.
    let out = orbit(d, &["ai", "provider", "add", "bad", "--base-url", "ftp://x", "--model", "m"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("base_url"));
    let out = orbit(d, &["ai", "provider", "rm", "nope"]);
    assert!(!out.status.success());

    ok(orbit(d, &["ai", "provider", "rm", "claude", "--workspace", "team-a"]));
    ok(orbit(d, &["ai", "provider", "rm", "local"]));
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("ai.json")).unwrap()).unwrap();
    assert_eq!(file["providers"], serde_json::json!([]));
    assert_eq!(file["workspaces"]["team-a"], serde_json::json!([]));
}
