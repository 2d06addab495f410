//! Model calls end to end: real guest components, the real vault and a
//! model server on loopback speaking the OpenAI-compatible and Anthropic
//! APIs. The guest uses a key it never sees.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use orbit::{
    AiConfig, AiLimits, ApiStyle, HostBinding, Limits, Orbit, OrbitConfig, Placement, ProviderConfig, RunStatus,
    SecretValue, WorkspaceId,
};
use serde_json::{Value, json};

const KEY: &str = "sk-e2e-7a6b5c4d3e2f1a0b";

/// Every request as the server received it: path, the credential header
/// it carried (`authorization` or `x-api-key`) and the JSON body.
type Seen = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

/// The last user message of an OpenAI or Anthropic chat body.
fn last_user(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A model server on 127.0.0.1. It answers a chat with `S(<first three
/// words of the last user message>)` and usage (10 per call in, 5 out);
/// the prompts `fail`, `slow`, `leak` and `unauthorized` make it answer 500, wait
/// 2 s, quote the key it received, or answer 401. Embeddings are
/// `[length, 1.0]` per input.
async fn model_server() -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let header = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
                        let credential = header("authorization").or_else(|| header("x-api-key"));
                        let body: Value =
                            serde_json::from_slice(&req.into_body().collect().await.unwrap().to_bytes()).unwrap();
                        log.lock().unwrap().push((path.clone(), credential.clone(), body.clone()));
                        let prompt = last_user(&body);
                        let (status, answer) = match (path.as_str(), prompt.as_str()) {
                            ("/v1/embeddings", _) => {
                                let data: Vec<Value> = body["input"]
                                    .as_array()
                                    .unwrap()
                                    .iter()
                                    .enumerate()
                                    .map(|(i, s)| json!({"index": i, "embedding": [s.as_str().unwrap().len(), 1.0]}))
                                    .collect();
                                (200, json!({"data": data, "usage": {"prompt_tokens": 4, "total_tokens": 4}}))
                            }
                            (_, "fail") => (500, json!({"error": {"type": "server_error", "message": "boom"}})),
                            (_, "unauthorized") => (
                                401,
                                json!({"error": {"type": "invalid_api_key", "message": format!("bad key {credential:?}")}}),
                            ),
                            (_, "slow") => {
                                tokio::time::sleep(Duration::from_secs(2)).await;
                                (200, json!({}))
                            }
                            (p, _) => {
                                let text = if prompt == "leak" {
                                    format!("you sent {}", credential.unwrap_or_default())
                                } else {
                                    let words: Vec<&str> = prompt.split_whitespace().take(3).collect();
                                    format!("S({})", words.join(" "))
                                };
                                if p == "/v1/messages" {
                                    (
                                        200,
                                        json!({"content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                                                 "usage": {"input_tokens": 10, "output_tokens": 5}}),
                                    )
                                } else {
                                    (
                                        200,
                                        json!({"choices": [{"message": {"role": "assistant", "content": text},
                                                              "finish_reason": "stop"}],
                                                 "usage": {"prompt_tokens": 10, "completion_tokens": 5}}),
                                    )
                                }
                            }
                        };
                        let resp = Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(answer.to_string())))
                            .unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    (base, seen)
}

fn provider(name: &str, base: &str, api: ApiStyle, key: Option<&str>, models: &[&str]) -> ProviderConfig {
    ProviderConfig {
        name: name.into(),
        base_url: base.into(),
        api,
        key_secret: key.map(str::to_owned),
        models: models.iter().map(|m| (*m).to_owned()).collect(),
    }
}

/// An Orbit whose workspace `team` has providers `openai` (key
/// `LLM_KEY`), `claude` (Anthropic style, same key) on the model server.
fn orbit_with_providers(dir: &std::path::Path, base: &str, limits: AiLimits) -> Orbit {
    let mut cfg = OrbitConfig::default();
    cfg.master_key = Some(orbit::MasterKey::from_bytes([9; 32]));
    let mut ai = AiConfig { limits, ..AiConfig::default() };
    ai.workspaces.insert(
        "team".into(),
        vec![
            provider("openai", &format!("{base}/v1"), ApiStyle::Openai, Some("LLM_KEY"), &["gpt-test", "emb"]),
            provider("claude", base, ApiStyle::Anthropic, Some("LLM_KEY"), &["claude-test"]),
        ],
    );
    cfg.ai = Some(ai);
    let orbit = Orbit::open_with(dir, cfg).unwrap();
    let placement = Placement::Header { name: "Authorization".into(), template: "Bearer {}".into() };
    let binding = HostBinding::parse(base).unwrap().with_methods(["POST"]);
    orbit
        .vault()
        .set(
            &WorkspaceId::new("team").unwrap(),
            "LLM_KEY",
            SecretValue::new(KEY.into()),
            vec![binding],
            placement,
            &orbit::UserId::new("t").unwrap(),
        )
        .unwrap();
    orbit
}

async fn run(orbit: &Orbit, guest: &str, ws: &str, input: &str) -> orbit::Outcome {
    let wasm = orbit_test_guests::bytes(guest);
    let inv = orbit::Invocation::new(input).workspace(WorkspaceId::new(ws).unwrap()).limits(Limits::default());
    orbit.engine().invoke_wasm(&wasm, inv).await.unwrap()
}

/// Runs the `ai-client` fixture on `calls` and returns its per-call results.
async fn calls(orbit: &Orbit, ws: &str, calls: Value) -> (orbit::Outcome, Vec<Value>) {
    let out = run(orbit, "ai-client", ws, &calls.to_string()).await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    let results = serde_json::from_slice(&out.output).unwrap();
    (out, results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_chats_and_embeds_with_a_key_it_never_sees() {
    let dir = tempfile::tempdir().unwrap();
    let (base, seen) = model_server().await;
    let orbit = orbit_with_providers(dir.path(), &base, AiLimits::default());
    let prompt = "Tell me about the secret project Bluebird";
    let (out, results) = calls(
        &orbit,
        "team",
        json!([
            {"op": "chat", "provider": "openai", "model": "gpt-test", "system": "Be brief.", "user": prompt,
             "max_tokens": 64, "temperature": 0.2},
            {"op": "chat", "provider": "claude", "model": "claude-test", "user": "Bonjour le monde entier"},
            {"op": "embed", "provider": "openai", "model": "emb", "inputs": ["abc", "de"]},
            {"op": "chat", "provider": "openai", "model": "gpt-test", "user": "leak"},
        ]),
    )
    .await;
    assert_eq!(
        results[0],
        json!({"text": "S(Tell me about)", "finish": "stop", "input_tokens": 10, "output_tokens": 5})
    );
    assert_eq!(results[1]["text"], "S(Bonjour le monde)");
    assert_eq!(results[2], json!({"vectors": [[3.0, 1.0], [2.0, 1.0]]}));
    // The server quoted the key back: the guest gets it redacted.
    assert_eq!(results[3]["text"], "you sent Bearer [REDACTED]");

    // The server got the key, where each API style puts it.
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(paths, ["/v1/chat/completions", "/v1/messages", "/v1/embeddings", "/v1/chat/completions"]);
    assert_eq!(seen[0].1.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(seen[1].1.as_deref(), Some(KEY));
    assert_eq!(seen[0].2["max_tokens"], 64);
    assert_eq!(seen[0].2["messages"][0], json!({"role": "system", "content": "Be brief."}));

    // One span per call, with usage and names, never a prompt or a reply.
    let spans: Vec<_> = out.record.spans.iter().filter(|s| s.primitive == "ai").collect();
    assert_eq!(spans.iter().map(|s| s.operation.as_str()).collect::<Vec<_>>(), ["chat", "chat", "embed", "chat"]);
    let attr = |i: usize, k: &str| spans[i].attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(spans[0].outcome, "ok");
    assert_eq!(attr(0, "provider").as_deref(), Some("openai"));
    assert_eq!(attr(0, "model").as_deref(), Some("gpt-test"));
    assert_eq!(attr(0, "input_tokens").as_deref(), Some("10"));
    assert_eq!(attr(0, "output_tokens").as_deref(), Some("5"));
    assert_eq!(attr(0, "status").as_deref(), Some("200"));
    assert!(attr(0, "latency_ms").is_some());
    assert_eq!(attr(2, "input_tokens").as_deref(), Some("4"));
    let record = serde_json::to_string(&out.record.spans).unwrap();
    for text in ["Bluebird", "S(Tell", "Be brief", KEY] {
        assert!(!record.contains(text), "{text} in {record}");
    }

    // Nothing Orbit wrote holds the key: vault, run store, blobs, cache.
    drop(orbit);
    assert_eq!(common::files_containing(dir.path(), KEY.as_bytes()), Vec::<std::path::PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_provider_failures_reach_the_guest_as_codes_only() {
    let dir = tempfile::tempdir().unwrap();
    let (base, seen) = model_server().await;
    let limits = AiLimits { request_timeout: Duration::from_millis(300), ..AiLimits::default() };
    let orbit = orbit_with_providers(dir.path(), &base, limits);
    let chat = |provider: &str, model: &str, user: &str| json!({"op": "chat", "provider": provider, "model": model, "user": user});
    let (out, results) = calls(
        &orbit,
        "team",
        json!([
            chat("nope", "gpt-test", "hi"),
            chat("openai", "gpt-5-large", "hi"),
            chat("openai", "gpt-test", "fail"),
            chat("openai", "gpt-test", "slow"),
            chat("openai", "gpt-test", "unauthorized"),
            {"op": "embed", "provider": "claude", "model": "claude-test", "inputs": ["x"]},
        ]),
    )
    .await;
    let codes: Vec<&str> = results.iter().map(|r| r["error"].as_str().unwrap_or("ok")).collect();
    assert_eq!(
        codes,
        ["not-found", "permission-denied", "unavailable", "unavailable", "permission-denied", "invalid-input"]
    );
    // Fixed messages only: nothing from the provider's error bodies.
    assert_eq!(results[2]["message"], "service unavailable");
    assert!(!out.output_text().contains("boom") && !out.output_text().contains(KEY));
    // The unknown provider and the disallowed model never reached the server.
    assert_eq!(seen.lock().unwrap().len(), 3);
    // Operators see why, on the record; never the key or a provider's text.
    let errors = out.record.host_errors.join("\n");
    assert!(errors.contains("status 500: server_error"), "{errors}");
    assert!(errors.contains("timed out after 300 ms"), "{errors}");
    assert!(errors.contains("gpt-5-large"), "{errors}");
    assert!(!errors.contains(KEY) && !errors.contains("bad key"), "{errors}");
    let outcomes: Vec<&str> =
        out.record.spans.iter().filter(|s| s.primitive == "ai").map(|s| s.outcome.as_str()).collect();
    assert_eq!(outcomes, codes);

    // Another workspace has neither the providers nor the key.
    let (_, results) = calls(&orbit, "other", json!([chat("openai", "gpt-test", "hi")])).await;
    assert_eq!(results[0]["error"], "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_budget_is_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let (base, seen) = model_server().await;
    // Each chat uses 15 tokens: two fit in 25, the third is refused.
    let limits = AiLimits { max_tokens_per_run: 25, ..AiLimits::default() };
    let orbit = orbit_with_providers(dir.path(), &base, limits);
    let chat =
        json!({"op": "chat", "provider": "openai", "model": "gpt-test", "user": "hello there", "max_tokens": 100});
    let (out, results) = calls(&orbit, "team", json!([chat, chat, chat])).await;
    let codes: Vec<&str> = results.iter().map(|r| r["error"].as_str().unwrap_or("ok")).collect();
    assert_eq!(codes, ["ok", "ok", "limit-exceeded"]);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        // The prompt's estimate (11 bytes, 3 tokens) is kept for its input.
        assert_eq!(seen[0].2["max_tokens"], 22);
        assert_eq!(seen[1].2["max_tokens"], 7, "capped by the 10 tokens left, less the prompt's 3");
    }
    assert!(out.record.host_errors.iter().any(|e| e.contains("token budget of 25")), "{:?}", out.record.host_errors);
    // A new run has a new budget.
    let (_, results) = calls(&orbit, "team", json!([chat])).await;
    assert_eq!(results[0]["text"], "S(hello there)");
    // A prompt the budget cannot pay for (about 50 tokens) is never sent,
    // so one call cannot run far past the budget.
    let big = json!({"op": "chat", "provider": "openai", "model": "gpt-test", "user": "x".repeat(200)});
    let before = seen.lock().unwrap().len();
    let (out, results) = calls(&orbit, "team", json!([big, chat])).await;
    assert_eq!(results[0]["error"], "limit-exceeded");
    assert_eq!(results[1]["text"], "S(hello there)", "the refused prompt spent nothing");
    assert_eq!(seen.lock().unwrap().len(), before + 1);
    assert!(
        out.record.host_errors.iter().any(|e| e.contains("prompt of about 50 tokens")),
        "{:?}",
        out.record.host_errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summarize_example_summarizes_through_a_local_server_from_ai_json() {
    let dir = tempfile::tempdir().unwrap();
    let (base, seen) = model_server().await;
    // Configured as an operator would: ai.json in the data dir, a key-less
    // local provider allowing any model.
    let config =
        json!({"providers": [{"name": "local", "base_url": format!("{base}/v1"), "api": "openai", "models": ["*"]}]});
    std::fs::write(dir.path().join("ai.json"), config.to_string()).unwrap();
    let mut cfg = OrbitConfig::default();
    cfg.master_key = Some(orbit::MasterKey::from_bytes([9; 32]));
    let orbit = Orbit::open_with(dir.path(), cfg).unwrap();

    let paragraphs = [
        "Alpha centauri is the closest star system to the Sun.",
        "Beta particles are electrons emitted in radioactive decay.",
        "Gamma rays carry the most energy in the spectrum.",
    ];
    let text = paragraphs.join("\n\n");
    let input = json!({"text": text, "model": "llama3.1:8b", "chunk_chars": 70});
    let out = run(&orbit, "summarize", "docs", &input.to_string()).await;
    assert_eq!(out.status(), RunStatus::Succeeded, "{:?}", out.record);
    let result: Value = serde_json::from_slice(&out.output).unwrap();
    assert_eq!(result["chunks"], 3);
    assert_eq!(
        result["partial_summaries"],
        json!(["S(Alpha centauri is)", "S(Beta particles are)", "S(Gamma rays carry)"])
    );
    // The reduce step saw the numbered partial summaries.
    assert_eq!(result["summary"], "S(Part 1: S(Alpha)");
    assert_eq!((result["input_tokens"].as_u64(), result["output_tokens"].as_u64()), (Some(40), Some(20)));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter()
            .all(|(p, cred, body)| p == "/v1/chat/completions" && cred.is_none() && body["model"] == "llama3.1:8b")
    );
    assert!(last_user(&seen[3].2).contains("Part 3: S(Gamma rays carry)"));
    assert_eq!(out.record.spans.iter().filter(|s| s.primitive == "ai").count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_deadline_bounds_a_slow_provider() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = model_server().await;
    // The provider's own timeout (120 s) is far off: the run's 500 ms deadline ends it.
    let orbit = orbit_with_providers(dir.path(), &base, AiLimits::default());
    let wasm = orbit_test_guests::bytes("ai-client");
    let mut limits = Limits::default();
    limits.timeout = Duration::from_millis(500);
    let input = json!([{"op": "chat", "provider": "openai", "model": "gpt-test", "user": "slow"}]).to_string();
    let inv = orbit::Invocation::new(input).workspace(WorkspaceId::new("team").unwrap()).limits(limits);
    let out = orbit.engine().invoke_wasm(&wasm, inv).await.unwrap();
    assert_eq!(out.status(), RunStatus::DeadlineExceeded, "{:?}", out.record);
    let span = out.record.spans.iter().find(|s| s.primitive == "ai").expect("an ai span");
    assert_eq!(span.outcome, "deadline-exceeded");
}
