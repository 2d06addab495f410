//! One model call: checks, budget, key lookup, the provider exchange and
//! reading its answer.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orbit_vault::{SecretResolver, SecretUse, SecretValue};
use orbit_workspace::{Principal, WorkspaceId};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::config::{AiConfig, ApiStyle, ProviderConfig};
use crate::error::AiError;
use crate::{ChatRequest, ChatResponse, Embeddings, FinishReason, Role, TokenBudget, Usage};

/// What replaces the provider's key in text returned to the guest (one
/// scrubber for every path: [`orbit_scrub`]).
pub use orbit_scrub::REDACTED;

/// `anthropic-version` sent to Anthropic-style providers.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Added to the system prompt of an Anthropic request with the JSON flag:
/// the Messages API has no JSON response format.
const JSON_INSTRUCTION: &str = "Reply with a single JSON object and nothing else.";

/// Longest model name accepted, in bytes.
const MAX_MODEL_NAME: usize = 256;

/// Facts about one call, for its span: names and counts, never a prompt,
/// a completion or a key.
#[derive(Debug, Default)]
pub(crate) struct CallFacts {
    pub(crate) provider: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) status: Option<u16>,
    pub(crate) latency_ms: Option<u64>,
    pub(crate) usage: Option<Usage>,
    pub(crate) finish_reason: Option<FinishReason>,
    pub(crate) max_tokens: Option<u32>,
}

impl CallFacts {
    /// Span attributes: `provider`, `model`, `max_tokens`, `status`,
    /// `latency_ms` (the provider exchange), `input_tokens`,
    /// `output_tokens`, `finish_reason`.
    pub(crate) fn into_attrs(self) -> Vec<(String, String)> {
        let mut a = Vec::new();
        let mut push = |k: &str, v: String| a.push((k.to_owned(), v));
        if let Some(p) = self.provider {
            push("provider", p);
        }
        if let Some(m) = self.model {
            push("model", m);
        }
        if let Some(m) = self.max_tokens {
            push("max_tokens", m.to_string());
        }
        if let Some(s) = self.status {
            push("status", s.to_string());
        }
        if let Some(l) = self.latency_ms {
            push("latency_ms", l.to_string());
        }
        if let Some(u) = self.usage {
            push("input_tokens", u.input_tokens.to_string());
            push("output_tokens", u.output_tokens.to_string());
        }
        if let Some(f) = self.finish_reason {
            push("finish_reason", f.as_str().to_owned());
        }
        a
    }
}

/// A name as recorded on a span: at most 128 bytes of
/// `[A-Za-z0-9_.:/-]`, anything else dropped and the name marked.
pub(crate) fn recordable(name: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_.:/-".contains(c);
    if name.len() <= 128 && name.chars().all(ok) {
        name.to_owned()
    } else {
        let mut s: String = name.chars().filter(|c| ok(*c)).take(128).collect();
        s.push_str("<invalid>");
        s
    }
}

/// Who a model call is made for: recorded with each use of a provider key.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The run's principal, or the host caller's.
    pub(crate) principal: Principal,
    /// The run's id, when a run calls.
    pub(crate) run_id: Option<String>,
}

impl Caller {
    /// The host itself, outside any run ([`Principal::embedded`]).
    pub(crate) fn host() -> Self {
        Self { principal: Principal::embedded(), run_id: None }
    }
}

/// The shared, engine-lifetime part of the primitive.
pub(crate) struct Inner {
    pub(crate) config: AiConfig,
    /// Built at the first provider request ([`Inner::client`]).
    pub(crate) client: std::sync::OnceLock<reqwest::Client>,
    pub(crate) resolver: Arc<dyn SecretResolver>,
    /// Provider requests in flight, all runs together
    /// ([`AiLimits::max_concurrent_requests`](crate::AiLimits::max_concurrent_requests)).
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
}

/// A provider endpoint with its key, ready to send to.
struct Target<'a> {
    provider: &'a ProviderConfig,
    url: url::Url,
    key: Option<SecretValue>,
}

/// Rough token count of `bytes` bytes of text (4 bytes a token), used when
/// a provider reports no usage so that it still counts against the budget.
fn estimate_tokens(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(4)).unwrap_or(u32::MAX)
}

fn invalid(msg: impl Into<String>) -> AiError {
    AiError::InvalidRequest(msg.into())
}

impl Inner {
    /// The shared HTTP client (no proxy, no redirects, connection pooling),
    /// built at the first call.
    ///
    /// # Errors
    /// [`AiError::Internal`] when the client cannot be built (for example
    /// when the TLS backend fails to initialise).
    fn client(&self) -> Result<&reqwest::Client, AiError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let built = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.config.limits.connect_timeout)
            .referer(false)
            .build()
            .map_err(|e| AiError::Internal(format!("building the HTTP client: {e}")))?;
        // Two first requests at once may both build one; the first kept wins.
        Ok(self.client.get_or_init(|| built))
    }

    fn provider(&self, ws: &WorkspaceId, name: &str, model: &str) -> Result<&ProviderConfig, AiError> {
        let p = self
            .config
            .providers_for(ws.as_str())
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| AiError::UnknownProvider(recordable(name)))?;
        if model.is_empty() || model.len() > MAX_MODEL_NAME {
            return Err(invalid(format!("model name must be 1 to {MAX_MODEL_NAME} bytes")));
        }
        if !p.allows(model) {
            return Err(AiError::ModelNotAllowed { provider: p.name.clone(), model: recordable(model) });
        }
        Ok(p)
    }

    /// What is left of `budget` once the prompt (estimated from its
    /// `prompt_bytes`) is paid for. A prompt the budget cannot pay for is
    /// never sent, so no single call can spend far past the budget.
    fn check_budget(budget: &TokenBudget, prompt_bytes: usize) -> Result<u64, AiError> {
        let remaining = budget.remaining();
        if remaining == 0 {
            return Err(AiError::BudgetExhausted { used: budget.used, cap: budget.cap });
        }
        let estimate = u64::from(estimate_tokens(prompt_bytes));
        if estimate >= remaining {
            return Err(AiError::PromptOverBudget { estimate, remaining });
        }
        Ok(remaining - estimate)
    }

    /// Sends `body` to `target`. When the provider answered but the answer
    /// could not be read (over the response cap), or no answer came in
    /// time, the prompt's estimated tokens are spent all the same: the
    /// provider may have billed the work. An error status (4xx, 5xx) is not
    /// charged.
    async fn exchange_billed(
        &self,
        target: &Target<'_>,
        body: Vec<u8>,
        facts: &mut CallFacts,
        budget: &mut TokenBudget,
        prompt_bytes: usize,
    ) -> Result<serde_json::Value, AiError> {
        let answer = self.exchange(target, body, facts).await;
        if matches!(answer, Err(AiError::Timeout { .. } | AiError::TooLarge(_))) {
            budget.spend(Usage { input_tokens: estimate_tokens(prompt_bytes), output_tokens: 0 });
        }
        answer
    }

    /// The endpoint URL of `p` for `path` (relative to the base URL).
    fn endpoint(p: &ProviderConfig, path: &str) -> Result<url::Url, AiError> {
        let base = p.base_url.trim_end_matches('/');
        url::Url::parse(&format!("{base}/{path}"))
            .map_err(|e| AiError::Config(format!("provider {:?}: base_url: {e}", p.name)))
    }

    /// Looks up the provider's key in the workspace's vault and checks that
    /// it is bound to `POST` on the endpoint.
    async fn key(
        &self,
        ws: &WorkspaceId,
        caller: &Caller,
        p: &ProviderConfig,
        url: &url::Url,
    ) -> Result<Option<SecretValue>, AiError> {
        let Some(secret) = p.key_secret.clone() else { return Ok(None) };
        let (resolver, ws2, name) = (self.resolver.clone(), ws.clone(), secret.clone());
        let found = tokio::task::spawn_blocking(move || resolver.resolve(&ws2, &name))
            .await
            .map_err(|e| AiError::Internal(format!("key lookup task: {e}")))?
            .map_err(|e| AiError::Internal(format!("vault: {e}")))?;
        let unavailable = |reason| AiError::KeyUnavailable { provider: p.name.clone(), secret: secret.clone(), reason };
        let Some((meta, value)) = found else { return Err(unavailable("no such secret in the workspace")) };
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
            Some(h) => h.to_string(),
            None => return Err(unavailable("the provider URL has no host")),
        };
        let port = url.port_or_known_default().unwrap_or(0);
        if !meta.hosts.iter().any(|b| b.matches(url.scheme(), &host, port, "POST", url.path())) {
            return Err(unavailable("not bound to the provider's endpoint"));
        }
        let origin = orbit_vault::origin_of(url.scheme(), &host, port);
        self.mark_used(ws, &secret, caller, origin);
        Ok(Some(value))
    }

    /// Records the key's use through [`SecretResolver::record_use`] (the
    /// vault's last-use time and, with a resolver that keeps one, the audit
    /// trail), off the call's path on the blocking pool: it may land after
    /// the run's record.
    fn mark_used(&self, ws: &WorkspaceId, name: &str, caller: &Caller, origin: String) {
        let (resolver, ws, name) = (self.resolver.clone(), ws.clone(), name.to_owned());
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let secret_use =
            SecretUse { at_ms, origin, run_id: caller.run_id.clone(), principal: caller.principal.clone() };
        drop(tokio::task::spawn_blocking(move || {
            if let Err(e) = resolver.record_use(&ws, &name, &secret_use) {
                tracing::warn!(workspace = ws.as_str(), secret = %name, error = %e, "recording a key's use failed");
            }
        }));
    }

    /// Sends `body` to the target with the key where the API style puts it,
    /// and reads the whole JSON answer under the size cap and timeout.
    async fn exchange(&self, t: &Target<'_>, body: Vec<u8>, facts: &mut CallFacts) -> Result<Value, AiError> {
        let limits = &self.config.limits;
        let provider = t.provider.name.clone();
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(reqwest::header::ACCEPT, HeaderValue::from_static("application/json"));
        let bad_key = || AiError::KeyUnavailable {
            provider: provider.clone(),
            secret: t.provider.key_secret.clone().unwrap_or_default(),
            reason: "the value cannot go in a header",
        };
        match t.provider.api {
            ApiStyle::Openai => {
                if let Some(key) = &t.key {
                    let rendered = Zeroizing::new(format!("Bearer {}", key.expose()));
                    let mut v = HeaderValue::from_str(&rendered).map_err(|_| bad_key())?;
                    v.set_sensitive(true);
                    headers.insert(reqwest::header::AUTHORIZATION, v);
                }
            }
            ApiStyle::Anthropic => {
                headers.insert("anthropic-version", HeaderValue::from_static(ANTHROPIC_VERSION));
                if let Some(key) = &t.key {
                    let mut v = HeaderValue::from_str(key.expose()).map_err(|_| bad_key())?;
                    v.set_sensitive(true);
                    headers.insert("x-api-key", v);
                }
            }
        }
        let started = Instant::now();
        let request = self.client()?.post(t.url.clone()).headers(headers).body(body);
        let timeout = limits.request_timeout;
        let result = tokio::time::timeout(timeout, async {
            // Held to the end of the response; waiting for it counts in the
            // request's time.
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| AiError::Internal("the provider request slots are closed".to_owned()))?;
            let mut resp = request.send().await.map_err(|e| classify(&provider, timeout, e))?;
            let status = resp.status().as_u16();
            let cap = limits.max_response_bytes;
            if resp.content_length().is_some_and(|n| n > cap as u64) {
                return Ok((status, Err(AiError::TooLarge(format!("provider response over {cap} bytes")))));
            }
            let mut buf = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&provider, timeout, e))? {
                if buf.len() + chunk.len() > cap {
                    return Ok((status, Err(AiError::TooLarge(format!("provider response over {cap} bytes")))));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok((status, Ok(buf)))
        })
        .await;
        facts.latency_ms = Some(started.elapsed().as_millis() as u64);
        let (status, body) = match result {
            Err(_) => return Err(AiError::Timeout { provider, timeout_ms: timeout.as_millis() as u64 }),
            Ok(r) => r?,
        };
        facts.status = Some(status);
        let success = (200..300).contains(&status);
        // An error answer is classified by its status even when its body
        // was over the cap.
        let body = match body {
            Ok(b) => b,
            Err(e) if success => return Err(e),
            Err(_) => Vec::new(),
        };
        if !success {
            // Only a short error-type token from the body is kept: provider
            // error texts can quote the key or the prompt.
            // A token that holds any form of the key is dropped too.
            let kind = error_kind(&body)
                .filter(|k| scrubber(t.key.as_ref()).is_ok_and(|s| !s.finds(k.as_bytes())))
                .map(|k| format!(": {k}"))
                .unwrap_or_default();
            return Err(match status {
                401 | 403 => AiError::Unauthorized { provider, status, kind },
                400 | 404 | 413 | 422 => AiError::Rejected { provider, status, kind },
                _ => AiError::Upstream { provider, detail: format!("status {status}{kind}") },
            });
        }
        serde_json::from_slice(&body)
            .map_err(|e| AiError::Upstream { provider, detail: format!("response is not JSON: {e}") })
    }

    /// A chat completion for workspace `ws`, counted against `budget`.
    pub(crate) async fn chat(
        &self,
        ws: &WorkspaceId,
        caller: &Caller,
        req: ChatRequest,
        budget: &mut TokenBudget,
        facts: &mut CallFacts,
    ) -> Result<ChatResponse, AiError> {
        let limits = &self.config.limits;
        facts.provider = Some(recordable(&req.provider));
        facts.model = Some(recordable(&req.model));
        let p = self.provider(ws, &req.provider, &req.model)?;
        if req.messages.is_empty() {
            return Err(invalid("no messages"));
        }
        if req.messages.len() > limits.max_messages {
            return Err(AiError::TooLarge(format!(
                "{} messages, over the limit of {}",
                req.messages.len(),
                limits.max_messages
            )));
        }
        if let Some(t) = req.temperature
            && !(t.is_finite() && (0.0..=2.0).contains(&t))
        {
            return Err(invalid("temperature must be between 0.0 and 2.0"));
        }
        if req.max_tokens == Some(0) {
            return Err(invalid("max_tokens must be at least 1"));
        }
        let prompt_bytes: usize = req.messages.iter().map(|m| m.content.len()).sum();
        let remaining = Self::check_budget(budget, prompt_bytes)?;
        let wanted = req.max_tokens.unwrap_or(limits.max_output_tokens).min(limits.max_output_tokens);
        let max_tokens = u32::try_from(u64::from(wanted).min(remaining)).unwrap_or(wanted);
        facts.max_tokens = Some(max_tokens);

        let (path, body) = match p.api {
            ApiStyle::Openai => ("chat/completions", openai_chat_body(&req, max_tokens)),
            ApiStyle::Anthropic => ("v1/messages", anthropic_body(&req, max_tokens)),
        };
        let body = serde_json::to_vec(&body).map_err(|e| AiError::Internal(format!("encoding the request: {e}")))?;
        if body.len() > limits.max_request_bytes {
            return Err(AiError::TooLarge(format!(
                "request of {} bytes, over the limit of {}",
                body.len(),
                limits.max_request_bytes
            )));
        }
        let url = Self::endpoint(p, path)?;
        let key = self.key(ws, caller, p, &url).await?;
        // No scrubber, no request: its answer could not be scrubbed.
        let scrubber = scrubber(key.as_ref())?;
        let target = Target { provider: p, url, key };
        let answer = self.exchange_billed(&target, body, facts, budget, prompt_bytes).await?;
        let bad = |what: &str| AiError::Upstream { provider: p.name.clone(), detail: format!("response: {what}") };
        let parsed = match p.api {
            ApiStyle::Openai => parse_openai_chat(&answer).ok_or_else(|| bad("no choices[0].message")),
            ApiStyle::Anthropic => parse_anthropic(&answer).ok_or_else(|| bad("no content")),
        };
        let (text, finish, usage) = parsed.inspect_err(|_| {
            budget.spend(Usage { input_tokens: estimate_tokens(prompt_bytes), output_tokens: 0 });
        })?;
        let usage = usage.unwrap_or(Usage {
            input_tokens: estimate_tokens(prompt_bytes),
            output_tokens: estimate_tokens(text.len()),
        });
        budget.spend(usage);
        facts.usage = Some(usage);
        facts.finish_reason = Some(finish);
        let text = scrubber.text(&text);
        Ok(ChatResponse { text, finish_reason: finish, usage })
    }

    /// Embeddings of `inputs` for workspace `ws`, counted against `budget`.
    pub(crate) async fn embed(
        &self,
        ws: &WorkspaceId,
        caller: &Caller,
        provider: &str,
        model: &str,
        inputs: Vec<String>,
        budget: &mut TokenBudget,
        facts: &mut CallFacts,
    ) -> Result<Embeddings, AiError> {
        let limits = &self.config.limits;
        facts.provider = Some(recordable(provider));
        facts.model = Some(recordable(model));
        let p = self.provider(ws, provider, model)?;
        if p.api == ApiStyle::Anthropic {
            return Err(invalid(format!("provider {:?} (anthropic) has no embeddings", p.name)));
        }
        if inputs.is_empty() {
            return Err(invalid("no inputs"));
        }
        if inputs.len() > limits.max_embed_inputs {
            return Err(AiError::TooLarge(format!(
                "{} inputs, over the limit of {}",
                inputs.len(),
                limits.max_embed_inputs
            )));
        }
        let input_bytes: usize = inputs.iter().map(String::len).sum();
        Self::check_budget(budget, input_bytes)?;
        let count = inputs.len();
        let body = serde_json::to_vec(&json!({"model": model, "input": inputs, "encoding_format": "float"}))
            .map_err(|e| AiError::Internal(format!("encoding the request: {e}")))?;
        if body.len() > limits.max_request_bytes {
            return Err(AiError::TooLarge(format!(
                "request of {} bytes, over the limit of {}",
                body.len(),
                limits.max_request_bytes
            )));
        }
        let url = Self::endpoint(p, "embeddings")?;
        let key = self.key(ws, caller, p, &url).await?;
        let target = Target { provider: p, url, key };
        let answer = self.exchange_billed(&target, body, facts, budget, input_bytes).await?;
        let vectors = parse_embeddings(&answer, count)
            .ok_or_else(|| AiError::Upstream {
                provider: p.name.clone(),
                detail: format!("response: not {count} embeddings"),
            })
            .inspect_err(|_| budget.spend(Usage { input_tokens: estimate_tokens(input_bytes), output_tokens: 0 }))?;
        let input_tokens = answer["usage"]["prompt_tokens"]
            .as_u64()
            .map_or_else(|| estimate_tokens(input_bytes), |n| u32::try_from(n).unwrap_or(u32::MAX));
        let usage = Usage { input_tokens, output_tokens: 0 };
        budget.spend(usage);
        facts.usage = Some(usage);
        Ok(Embeddings { vectors, usage })
    }
}

fn classify(provider: &str, timeout: Duration, e: reqwest::Error) -> AiError {
    let e = e.without_url();
    if e.is_timeout() {
        return AiError::Timeout { provider: provider.to_owned(), timeout_ms: timeout.as_millis() as u64 };
    }
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    AiError::Upstream { provider: provider.to_owned(), detail }
}

/// `error.type` (or `error.code`) of a provider's error body, when it is a
/// short identifier such as `invalid_request_error`.
fn error_kind(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = &v["error"];
    [&e["type"], &e["code"]].into_iter().filter_map(Value::as_str).find_map(|k| {
        (!k.is_empty() && k.len() <= 64 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .then(|| k.to_owned())
    })
}

/// The scrubber for a provider's key: every form of it (raw, base64,
/// percent-encoded, JSON-escaped) in a reply becomes [`REDACTED`].
///
/// # Errors
/// [`AiError::Internal`] when it cannot be built.
fn scrubber(key: Option<&SecretValue>) -> Result<orbit_scrub::Scrubber, AiError> {
    orbit_scrub::Scrubber::new(key.map(|k| k.expose()), []).map_err(|e| AiError::Internal(e.to_string()))
}

fn role(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn openai_chat_body(req: &ChatRequest, max_tokens: u32) -> Value {
    let messages: Vec<Value> =
        req.messages.iter().map(|m| json!({"role": role(m.role), "content": m.content})).collect();
    let mut body = json!({"model": req.model, "messages": messages, "max_tokens": max_tokens, "stream": false});
    if let Some(t) = req.temperature {
        body["temperature"] = json!(t);
    }
    if req.json {
        body["response_format"] = json!({"type": "json_object"});
    }
    body
}

fn anthropic_body(req: &ChatRequest, max_tokens: u32) -> Value {
    let mut system: Vec<&str> =
        req.messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).collect();
    if req.json {
        system.push(JSON_INSTRUCTION);
    }
    let messages: Vec<Value> = req
        .messages
        .iter()
        .filter(|m| m.role != Role::System)
        .map(|m| json!({"role": role(m.role), "content": m.content}))
        .collect();
    let mut body = json!({"model": req.model, "messages": messages, "max_tokens": max_tokens});
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if let Some(t) = req.temperature {
        body["temperature"] = json!(t);
    }
    body
}

fn tokens(v: &Value) -> Option<u32> {
    v.as_u64().map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// Usage from the `input` and `output` token counts of object `u`, when
/// both are there.
fn usage(u: &Value, input: &str, output: &str) -> Option<Usage> {
    Some(Usage { input_tokens: tokens(&u[input])?, output_tokens: tokens(&u[output])? })
}

fn parse_openai_chat(v: &Value) -> Option<(String, FinishReason, Option<Usage>)> {
    let choice = v["choices"].get(0)?;
    let message = choice.get("message")?;
    let text = message["content"].as_str().unwrap_or_default().to_owned();
    let finish = match choice["finish_reason"].as_str() {
        Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("content_filter") => FinishReason::ContentFilter,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        _ => FinishReason::Other,
    };
    Some((text, finish, usage(&v["usage"], "prompt_tokens", "completion_tokens")))
}

fn parse_anthropic(v: &Value) -> Option<(String, FinishReason, Option<Usage>)> {
    let blocks = v["content"].as_array()?;
    let text: String = blocks.iter().filter(|b| b["type"] == "text").filter_map(|b| b["text"].as_str()).collect();
    let finish = match v["stop_reason"].as_str() {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens") => FinishReason::Length,
        Some("refusal") => FinishReason::ContentFilter,
        Some("tool_use") => FinishReason::ToolCalls,
        _ => FinishReason::Other,
    };
    Some((text, finish, usage(&v["usage"], "input_tokens", "output_tokens")))
}

fn parse_embeddings(v: &Value, count: usize) -> Option<Vec<Vec<f32>>> {
    let data = v["data"].as_array()?;
    if data.len() != count {
        return None;
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; count];
    for (i, item) in data.iter().enumerate() {
        let index = item.get("index").and_then(Value::as_u64).map_or(i, |n| n as usize);
        let vector: Vec<f32> =
            item["embedding"].as_array()?.iter().map(|x| x.as_f64().map(|f| f as f32)).collect::<Option<_>>()?;
        *out.get_mut(index)? = Some(vector);
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    #[test]
    fn parses_both_styles() {
        let v = json!({"choices":[{"message":{"content":"hi"},"finish_reason":"length"}],
                       "usage":{"prompt_tokens":3,"completion_tokens":1}});
        let (t, f, u) = parse_openai_chat(&v).unwrap();
        assert_eq!((t.as_str(), f, u.unwrap().input_tokens), ("hi", FinishReason::Length, 3));
        let v = json!({"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"stop_reason":"end_turn",
                       "usage":{"input_tokens":5,"output_tokens":2}});
        let (t, f, u) = parse_anthropic(&v).unwrap();
        assert_eq!((t.as_str(), f, u.unwrap().output_tokens), ("ab", FinishReason::Stop, 2));
        let v = json!({"data":[{"index":1,"embedding":[2.0]},{"index":0,"embedding":[1.0,0.5]}]});
        assert_eq!(parse_embeddings(&v, 2).unwrap(), vec![vec![1.0, 0.5], vec![2.0]]);
        assert!(parse_embeddings(&v, 3).is_none());
    }

    #[test]
    fn anthropic_body_lifts_system_messages() {
        let req = ChatRequest::new("p", "m").system("be brief").user("hello").json(true);
        let b = anthropic_body(&req, 10);
        assert_eq!(b["system"], format!("be brief\n\n{JSON_INSTRUCTION}"));
        assert_eq!(b["messages"], json!([{"role":"user","content":"hello"}]));
        assert_eq!(b["max_tokens"], 10);
        let o = openai_chat_body(&req, 10);
        assert_eq!(o["response_format"]["type"], "json_object");
        assert_eq!(o["messages"][0], json!({"role":"system","content":"be brief"}));
        let _ = Message { role: Role::User, content: String::new() };
    }

    #[test]
    fn error_kinds_are_short_tokens_only() {
        assert_eq!(
            error_kind(br#"{"error":{"type":"invalid_request_error","message":"key sk-123"}}"#).unwrap(),
            "invalid_request_error"
        );
        assert!(error_kind(br#"{"error":{"type":"Incorrect key sk-123 provided"}}"#).is_none());
        assert!(error_kind(b"not json").is_none());
    }

    #[test]
    fn the_key_is_scrubbed_and_names_are_recordable() {
        let k = SecretValue::new("sk-live-0123456789".into());
        let s = scrubber(Some(&k)).unwrap();
        assert_eq!(s.text("a sk-live-0123456789 b"), "a [REDACTED] b");
        assert_eq!(s.text("echo c2stbGl2ZS0wMTIzNDU2Nzg5"), "echo [REDACTED]");
        assert_eq!(scrubber(None).unwrap().text("a sk-live-0123456789 b"), "a sk-live-0123456789 b");
        assert_eq!(recordable("llama3.1:8b"), "llama3.1:8b");
        assert_eq!(recordable("a b\n"), "ab<invalid>");
    }
}
