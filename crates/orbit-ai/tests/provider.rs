//! The primitive's host-side calls against real HTTP servers on loopback:
//! the key from a real vault in the request, canned completions and usage,
//! provider errors, timeouts, the allow-list and the token budget.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use orbit_ai::{
    Ai, AiConfig, AiError, AiLimits, ApiStyle, ChatRequest, FinishReason, ProviderConfig, TokenBudget, Usage,
};
use orbit_engine::ErrorCode;
use orbit_vault::{HostBinding, MasterKey, Placement, SecretValue, Vault};
use orbit_workspace::WorkspaceId;
use serde_json::{Value, json};

const KEY: &str = "sk-test-4f3e2d1c0b9a8877";

/// A request as the server received it.
#[derive(Debug, Clone)]
struct Seen {
    /// When the request arrived.
    at: std::time::Instant,
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// What the server answers: status, JSON body and a delay before the head.
type Answer = (u16, Value, Duration);
type Handler = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

/// A real HTTP/1 server on 127.0.0.1 that records every request and
/// answers with `handler`. Returns its base URL and the record.
async fn server(handler: Handler) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (log, handler) = (log.clone(), handler.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (log, handler) = (log.clone(), handler.clone());
                    async move {
                        let path = req.uri().path().to_owned();
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                            .collect();
                        let bytes = req.into_body().collect().await.unwrap().to_bytes();
                        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let seen = Seen { at: std::time::Instant::now(), path, headers, body };
                        let (status, answer, delay) = handler(&seen);
                        log.lock().unwrap().push(seen);
                        tokio::time::sleep(delay).await;
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

/// An OpenAI-compatible answer: `text` with `usage` (prompt, completion).
fn completion(text: &str, usage: (u32, u32)) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1}
    })
}

fn ok(text: &'static str, usage: (u32, u32)) -> Handler {
    Arc::new(move |_| (200, completion(text, usage), Duration::ZERO))
}

struct Setup {
    ai: Ai,
    ws: WorkspaceId,
    _dir: tempfile::TempDir,
}

/// A vault holding `KEY` as secret `LLM_KEY` of workspace `team`, bound to
/// `bound_to`, and an `Ai` with `providers` and `limits`.
fn setup(bound_to: &str, providers: Vec<ProviderConfig>, limits: AiLimits) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let vault = Arc::new(Vault::open(&dir.path().join("vault.redb"), MasterKey::from_bytes([3; 32])).unwrap());
    let ws = WorkspaceId::new("team").unwrap();
    let placement = Placement::Header { name: "Authorization".into(), template: "Bearer {}".into() };
    let binding = HostBinding::parse(bound_to).unwrap();
    vault
        .set(
            &ws,
            "LLM_KEY",
            SecretValue::new(KEY.into()),
            vec![binding],
            placement,
            &orbit_workspace::UserId::new("test").unwrap(),
        )
        .unwrap();
    let config = AiConfig { providers, limits, ..AiConfig::default() };
    Setup { ai: Ai::new(config, vault).unwrap(), ws, _dir: dir }
}

fn provider(name: &str, base: &str, api: ApiStyle, key: bool, models: &[&str]) -> ProviderConfig {
    ProviderConfig {
        name: name.into(),
        base_url: base.into(),
        api,
        key_secret: key.then(|| "LLM_KEY".to_owned()),
        models: models.iter().map(|m| (*m).to_owned()).collect(),
    }
}

#[tokio::test]
async fn openai_chat_carries_the_bearer_key_and_counts_usage() {
    let (base, seen) = server(ok("Paris.", (12, 3))).await;
    let s = setup(
        &base,
        vec![provider("openai", &format!("{base}/v1/"), ApiStyle::Openai, true, &["m"])],
        AiLimits::default(),
    );
    let mut budget = TokenBudget::new(1000);
    let req = ChatRequest::new("openai", "m")
        .system("Answer in one word.")
        .user("Capital of France?")
        .max_tokens(20)
        .temperature(0.5)
        .json(true);
    let resp = s.ai.chat(&s.ws, req, &mut budget).await.unwrap();
    assert_eq!(resp.text, "Paris.");
    assert_eq!(resp.finish_reason, FinishReason::Stop);
    assert_eq!(resp.usage, Usage { input_tokens: 12, output_tokens: 3 });
    assert_eq!(budget.used, 15);

    let seen = seen.lock().unwrap();
    let r = &seen[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body["model"], "m");
    assert_eq!(r.body["max_tokens"], 20);
    assert_eq!(r.body["temperature"], 0.5);
    assert_eq!(r.body["response_format"], json!({"type": "json_object"}));
    assert_eq!(
        r.body["messages"],
        json!([{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Capital of France?"}])
    );
}

#[tokio::test]
async fn anthropic_style_uses_x_api_key_and_the_messages_endpoint() {
    let handler: Handler = Arc::new(|_| {
        let answer = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Bonjour"}],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 9, "output_tokens": 4}
        });
        (200, answer, Duration::ZERO)
    });
    let (base, seen) = server(handler).await;
    let s =
        setup(&base, vec![provider("claude", &base, ApiStyle::Anthropic, true, &["claude-x"])], AiLimits::default());
    let mut budget = TokenBudget::new(10_000);
    let req = ChatRequest::new("claude", "claude-x").system("Translate to French.").user("Hello");
    let resp = s.ai.chat(&s.ws, req, &mut budget).await.unwrap();
    assert_eq!((resp.text.as_str(), resp.finish_reason), ("Bonjour", FinishReason::Length));
    assert_eq!(budget.used, 13);

    let r = seen.lock().unwrap()[0].clone();
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some(orbit_ai::ANTHROPIC_VERSION));
    assert_eq!(r.header("authorization"), None);
    assert_eq!(r.body["system"], "Translate to French.");
    assert_eq!(r.body["messages"], json!([{"role": "user", "content": "Hello"}]));
    assert_eq!(r.body["max_tokens"], AiLimits::default().max_output_tokens);

    // Anthropic has no embeddings.
    let err = s.ai.embed(&s.ws, "claude", "claude-x", vec!["a".into()], &mut budget).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
}

#[tokio::test]
async fn a_keyless_local_provider_gets_no_credentials() {
    let (base, seen) = server(ok("hi", (1, 1))).await;
    let s = setup(
        "http://example.com",
        vec![provider("local", &format!("{base}/v1"), ApiStyle::Openai, false, &["*"])],
        AiLimits::default(),
    );
    let mut budget = TokenBudget::new(100);
    s.ai.chat(&s.ws, ChatRequest::new("local", "llama3.1:8b").user("hi"), &mut budget).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(seen[0].header("x-api-key"), None);
}

#[tokio::test]
async fn embeddings_come_back_in_input_order() {
    let handler: Handler = Arc::new(|seen| {
        let n = seen.body["input"].as_array().map_or(0, Vec::len);
        // Reversed, as the `index` field allows.
        let data: Vec<Value> =
            (0..n).rev().map(|i| json!({"object": "embedding", "index": i, "embedding": [i as f32, 0.5]})).collect();
        (200, json!({"object": "list", "data": data, "usage": {"prompt_tokens": 7, "total_tokens": 7}}), Duration::ZERO)
    });
    let (base, seen) = server(handler).await;
    let limits = AiLimits { max_embed_inputs: 3, ..AiLimits::default() };
    let s = setup(&base, vec![provider("openai", &format!("{base}/v1"), ApiStyle::Openai, true, &["emb"])], limits);
    let mut budget = TokenBudget::new(100);
    let e = s.ai.embed(&s.ws, "openai", "emb", vec!["a".into(), "b".into(), "c".into()], &mut budget).await.unwrap();
    assert_eq!(e.vectors, vec![vec![0.0, 0.5], vec![1.0, 0.5], vec![2.0, 0.5]]);
    assert_eq!(budget.used, 7);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].path, "/v1/embeddings");
        assert_eq!(seen[0].header("authorization"), Some(format!("Bearer {KEY}").as_str()));
        assert_eq!(seen[0].body["input"], json!(["a", "b", "c"]));
    }
    let four = vec!["a".to_owned(); 4];
    let err = s.ai.embed(&s.ws, "openai", "emb", four, &mut budget).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge);
    let err = s.ai.embed(&s.ws, "openai", "emb", vec![], &mut budget).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert_eq!(seen.lock().unwrap().len(), 1, "refused calls send nothing");
}

#[tokio::test]
async fn provider_errors_map_to_codes_and_never_carry_the_body() {
    // The provider echoes the key in its error text, as some do.
    let handler: Handler = Arc::new(|seen| {
        let status = match seen.body["messages"][0]["content"].as_str().unwrap_or("") {
            "401" => 401,
            "400" => 400,
            "429" => 429,
            _ => 503,
        };
        let body = json!({"error": {"type": "some_error", "message": format!("Incorrect API key provided: {KEY}")}});
        (status, body, Duration::ZERO)
    });
    let (base, _) = server(handler).await;
    let s = setup(&base, vec![provider("p", &base, ApiStyle::Openai, true, &["m"])], AiLimits::default());
    let mut budget = TokenBudget::new(1000);
    for (input, code) in [
        ("401", ErrorCode::PermissionDenied),
        ("400", ErrorCode::InvalidInput),
        ("429", ErrorCode::Unavailable),
        ("503", ErrorCode::Unavailable),
    ] {
        let err = s.ai.chat(&s.ws, ChatRequest::new("p", "m").user(input), &mut budget).await.unwrap_err();
        assert_eq!(err.code(), code, "{input}: {err}");
        let detail = err.to_string();
        assert!(!detail.contains(KEY) && !detail.contains("Incorrect"), "{detail}");
        assert!(detail.contains(input) && detail.contains("some_error"), "{detail}");
    }
    assert_eq!(budget.used, 0);
}

#[tokio::test]
async fn a_slow_provider_times_out_as_unavailable() {
    let handler: Handler = Arc::new(|_| (200, completion("late", (1, 1)), Duration::from_secs(5)));
    let (base, seen) = server(handler).await;
    let limits = AiLimits { request_timeout: Duration::from_millis(200), ..AiLimits::default() };
    let s = setup(&base, vec![provider("p", &base, ApiStyle::Openai, true, &["m"])], limits);
    let mut budget = TokenBudget::new(1000);
    let err = s.ai.chat(&s.ws, ChatRequest::new("p", "m").user("hi"), &mut budget).await.unwrap_err();
    assert!(matches!(err, AiError::Timeout { timeout_ms: 200, .. }), "{err}");
    assert_eq!(err.code(), ErrorCode::Unavailable);
    assert_eq!(seen.lock().unwrap().len(), 1, "the request was sent");
}

#[tokio::test]
async fn unknown_providers_disallowed_models_and_unbound_keys_send_nothing() {
    let (base, seen) = server(ok("x", (1, 1))).await;
    let (other, _) = server(ok("x", (1, 1))).await;
    let s = setup(
        &base,
        vec![
            provider("p", &base, ApiStyle::Openai, true, &["allowed"]),
            // The key is bound to `base`, not to this server.
            provider("elsewhere", &other, ApiStyle::Openai, true, &["*"]),
        ],
        AiLimits::default(),
    );
    let mut budget = TokenBudget::new(1000);
    let cases = [
        (ChatRequest::new("nope", "allowed").user("x"), ErrorCode::NotFound),
        (ChatRequest::new("p", "gpt-4o").user("x"), ErrorCode::PermissionDenied),
        (ChatRequest::new("p", "").user("x"), ErrorCode::InvalidInput),
        (ChatRequest::new("p", "allowed"), ErrorCode::InvalidInput),
        (ChatRequest::new("p", "allowed").user("x").temperature(7.0), ErrorCode::InvalidInput),
        (ChatRequest::new("elsewhere", "m").user("x"), ErrorCode::PermissionDenied),
    ];
    for (req, code) in cases {
        let err = s.ai.chat(&s.ws, req.clone(), &mut budget).await.unwrap_err();
        assert_eq!(err.code(), code, "{req:?}: {err}");
        assert!(!err.to_string().contains(KEY));
    }
    assert!(seen.lock().unwrap().is_empty());
    // Another workspace has no such key: the same provider is refused.
    let other_ws = WorkspaceId::new("other").unwrap();
    let err = s.ai.chat(&other_ws, ChatRequest::new("p", "allowed").user("x"), &mut budget).await.unwrap_err();
    assert!(matches!(err, AiError::KeyUnavailable { .. }), "{err}");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_token_budget_caps_max_tokens_and_then_refuses() {
    let (base, seen) = server(ok("some words", (30, 15))).await;
    let s = setup(&base, vec![provider("p", &base, ApiStyle::Openai, true, &["m"])], AiLimits::default());
    let mut budget = TokenBudget::new(50);
    s.ai.chat(&s.ws, ChatRequest::new("p", "m").user("one").max_tokens(1000), &mut budget).await.unwrap();
    assert_eq!(budget.used, 45);
    // 5 tokens left, less the prompt's estimated 1: the request asks for
    // at most 4.
    s.ai.chat(&s.ws, ChatRequest::new("p", "m").user("two").max_tokens(1000), &mut budget).await.unwrap();
    assert_eq!(budget.used, 90);
    let err = s.ai.chat(&s.ws, ChatRequest::new("p", "m").user("three"), &mut budget).await.unwrap_err();
    assert!(matches!(err, AiError::BudgetExhausted { used: 90, cap: 50 }), "{err}");
    assert_eq!(err.code(), ErrorCode::LimitExceeded);
    let err = s.ai.embed(&s.ws, "p", "m", vec!["x".into()], &mut budget).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::LimitExceeded);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body["max_tokens"], 49);
    assert_eq!(seen[1].body["max_tokens"], 4);
}

#[tokio::test]
async fn usage_the_provider_leaves_out_is_estimated_and_the_key_is_scrubbed() {
    let handler: Handler = Arc::new(|_| {
        let answer =
            json!({"choices": [{"message": {"content": format!("your key is {KEY}")}, "finish_reason": "stop"}]});
        (200, answer, Duration::ZERO)
    });
    let (base, _) = server(handler).await;
    let s = setup(&base, vec![provider("p", &base, ApiStyle::Openai, true, &["m"])], AiLimits::default());
    let mut budget = TokenBudget::new(1000);
    let resp = s.ai.chat(&s.ws, ChatRequest::new("p", "m").user("12345678"), &mut budget).await.unwrap();
    assert_eq!(resp.text, "your key is [REDACTED]");
    // 8 prompt bytes and the 36-byte reply, at 4 bytes a token.
    assert_eq!(resp.usage, Usage { input_tokens: 2, output_tokens: 9 });
    assert_eq!(budget.used, 11);
}

#[tokio::test]
async fn oversized_requests_and_responses_are_too_large() {
    let big = "x".repeat(4096);
    let handler: Handler = Arc::new(move |_| (200, completion(&big, (1, 1)), Duration::ZERO));
    let (base, seen) = server(handler).await;
    let limits = AiLimits { max_request_bytes: 2048, max_response_bytes: 1024, ..AiLimits::default() };
    let s = setup(&base, vec![provider("p", &base, ApiStyle::Openai, true, &["m"])], limits);
    let mut budget = TokenBudget::new(1000);
    let err = s.ai.chat(&s.ws, ChatRequest::new("p", "m").user("y".repeat(3000)), &mut budget).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge);
    assert!(seen.lock().unwrap().is_empty());
    let err = s.ai.chat(&s.ws, ChatRequest::new("p", "m").user("short"), &mut budget).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge);
    // The provider did the work of an answer too large to read: the
    // prompt's estimate (5 bytes, 2 tokens) is charged; the refused
    // oversized request, never sent, is not.
    assert_eq!(budget.used, 2);
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable() {
    // A port nothing listens on: bind, note it, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let base = format!("http://{addr}");
    let s = setup(&base, vec![provider("p", &base, ApiStyle::Openai, true, &["m"])], AiLimits::default());
    let mut budget = TokenBudget::new(1000);
    let err = s.ai.chat(&s.ws, ChatRequest::new("p", "m").user("x"), &mut budget).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_requests_wait_for_a_free_slot() {
    let handler: Handler = Arc::new(|_| (200, completion("ok", (1, 1)), Duration::from_millis(300)));
    let (base, seen) = server(handler).await;
    let limits = AiLimits { max_concurrent_requests: 1, ..AiLimits::default() };
    let s = setup(&base, vec![provider("p", &base, ApiStyle::Openai, true, &["m"])], limits);
    let call = |ai: Ai, ws: WorkspaceId| async move {
        let mut budget = TokenBudget::new(100);
        ai.chat(&ws, ChatRequest::new("p", "m").user("x"), &mut budget).await
    };
    let (a, b) = tokio::join!(call(s.ai.clone(), s.ws.clone()), call(s.ai.clone(), s.ws.clone()));
    assert!(a.is_ok() && b.is_ok());
    let seen = seen.lock().unwrap();
    // The second request was sent only once the first was answered.
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_millis(300));
}
