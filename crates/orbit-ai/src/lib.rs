//! The `ai` orbit primitive (WIT `orbit:runtime/ai`): chat completions and
//! embeddings from model providers the operator configured, with the
//! provider's key injected by the host and a per-run token budget.
//!
//! # Providers
//! An [`AiConfig`] lists each workspace's providers ([`ProviderConfig`]):
//! a name guests use, a base URL, an [`ApiStyle`], the name of the secret
//! in the workspace's vault that holds the key (none for a local server
//! without one), and the models guests may ask for. The facade reads it
//! from `<data dir>/ai.json`.
//!
//! Provider URLs are operator configuration, often loopback (a local
//! `llama-server` or Ollama): they do not go through the guest-facing
//! egress and address policy of `fetch`. A guest can only pick a provider
//! by name among those configured for its workspace.
//!
//! # A call
//! 1. The provider is looked up by name in the run's workspace (unknown:
//!    `not-found`), and the model checked against its allow-list
//!    (`permission-denied`).
//! 2. The request is checked (at least one message, temperature 0 to 2,
//!    caps on messages, embed inputs and request bytes) and the run's
//!    [`TokenBudget`]: none left, or less than the prompt's estimate (4
//!    bytes a token), gives `limit-exceeded`; a chat's `max_tokens` is the
//!    guest's value (or [`AiLimits::max_output_tokens`]) capped by that
//!    limit and by the tokens left after the prompt's estimate.
//! 3. The key secret is decrypted from the vault; it must be bound to
//!    `POST` on the endpoint's origin and path (else `permission-denied`).
//!    It goes in `Authorization: Bearer` (OpenAI style) or `x-api-key`
//!    (Anthropic style), marked sensitive; its use is recorded in the vault.
//! 4. The request is sent (no redirects, no proxy) and the answer read
//!    under [`AiLimits::request_timeout`] and
//!    [`AiLimits::max_response_bytes`]. A status of 401 or 403 gives
//!    `permission-denied`; 400, 404, 413 or 422 `invalid-input`; anything
//!    else that is not 2xx, a timeout or a transport error `unavailable`.
//!    A provider's error body never reaches the guest, and only its short
//!    error-type token (such as `invalid_request_error`) reaches the run
//!    record: provider error texts can quote the key or the prompt.
//! 5. The reported usage (or, when the provider reports none, an estimate
//!    of one token per 4 bytes of prompt and reply) is added to the budget,
//!    and the key, should the reply contain it, is replaced by
//!    [`REDACTED`].
//!
//! Each call is one span (primitive `ai`, operation `chat` or `embed`)
//! with attributes `provider`, `model`, `max_tokens`, `status`,
//! `latency_ms` (the provider exchange), `input_tokens`, `output_tokens`
//! and `finish_reason`; the span's own duration and outcome cover the
//! whole call. Spans never hold a prompt, a completion or a key.
//!
//! Hosts can call [`Ai::chat`] and [`Ai::embed`] directly, without a guest.

mod call;
mod config;
mod error;
mod host;

use std::sync::Arc;

use orbit_workspace::WorkspaceId;

pub use call::{ANTHROPIC_VERSION, REDACTED};
pub use config::{AiConfig, AiLimits, ApiStyle, ProviderConfig};
pub use error::AiError;
pub use host::AiView;
pub use orbit_vault::SecretResolver;

use crate::call::{CallFacts, Caller, Inner};

/// Who wrote a message (WIT `ai.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The user's turn.
    User,
    /// The model's earlier turn.
    Assistant,
}

/// One message of a conversation (WIT `ai.message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

/// A chat request (WIT `ai.chat-request`), built with the methods below.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// A provider name configured for the workspace.
    pub provider: String,
    /// A model the provider allows.
    pub model: String,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// Most tokens to generate; `None`: [`AiLimits::max_output_tokens`].
    /// Capped by that limit and by the run's remaining budget.
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0.0 to 2.0; `None`: the provider's default.
    pub temperature: Option<f32>,
    /// Ask for a single JSON object (OpenAI style:
    /// `response_format: {"type": "json_object"}`; Anthropic style: an
    /// instruction added to the system prompt).
    pub json: bool,
}

impl ChatRequest {
    /// An empty request to `model` of `provider`.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
            messages: Vec::new(),
            max_tokens: None,
            temperature: None,
            json: false,
        }
    }

    /// Appends a message.
    pub fn message(mut self, role: Role, content: impl Into<String>) -> Self {
        self.messages.push(Message { role, content: content.into() });
        self
    }

    /// Appends a system message.
    pub fn system(self, content: impl Into<String>) -> Self {
        self.message(Role::System, content)
    }

    /// Appends a user message.
    pub fn user(self, content: impl Into<String>) -> Self {
        self.message(Role::User, content)
    }

    /// Appends an assistant message.
    pub fn assistant(self, content: impl Into<String>) -> Self {
        self.message(Role::Assistant, content)
    }

    /// Sets the most tokens to generate.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// Sets the temperature.
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Asks for a JSON object as the reply.
    pub fn json(mut self, on: bool) -> Self {
        self.json = on;
        self
    }
}

/// Why generation stopped (WIT `ai.finish-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model finished (OpenAI `stop`; Anthropic `end_turn`,
    /// `stop_sequence`).
    Stop,
    /// `max_tokens` reached (OpenAI `length`; Anthropic `max_tokens`).
    Length,
    /// Filtered or refused (OpenAI `content_filter`; Anthropic `refusal`).
    ContentFilter,
    /// A tool call (OpenAI `tool_calls`; Anthropic `tool_use`).
    ToolCalls,
    /// Anything else.
    Other,
}

impl FinishReason {
    /// The WIT name, e.g. `content-filter`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ContentFilter => "content-filter",
            Self::ToolCalls => "tool-calls",
            Self::Other => "other",
        }
    }
}

/// Tokens one call counted against the budget (WIT `ai.usage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Generated tokens (0 for embeddings).
    pub output_tokens: u32,
}

/// A chat completion (WIT `ai.chat-response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatResponse {
    /// The reply, with the provider's key replaced by [`REDACTED`].
    pub text: String,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Tokens counted for the call.
    pub usage: Usage,
}

/// Embedding vectors, one per input in order, and the tokens counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens counted (input only).
    pub usage: Usage,
}

/// The name of the `ai` primitive's per-run budget in the engine's
/// [`Budgets`](orbit_engine::Budgets): tokens (input plus output), opened
/// at [`AiLimits::max_tokens_per_run`] and shared with the runs a run
/// starts (`jobs`).
pub const TOKEN_BUDGET: &str = "ai.tokens";

/// Tokens a caller may still use, for [`Ai::chat`] and [`Ai::embed`]. A
/// guest's calls are counted against its run's [`TOKEN_BUDGET`] (capped at
/// [`AiLimits::max_tokens_per_run`]), which each call reads into one of
/// these and settles afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBudget {
    /// The cap, in tokens.
    pub cap: u64,
    /// Tokens used so far (input plus output).
    pub used: u64,
}

impl TokenBudget {
    /// A fresh budget of `cap` tokens.
    pub fn new(cap: u64) -> Self {
        Self { cap, used: 0 }
    }

    /// Tokens left (0 once spent or overspent).
    pub fn remaining(&self) -> u64 {
        self.cap.saturating_sub(self.used)
    }

    fn spend(&mut self, u: Usage) {
        self.used = self.used.saturating_add(u64::from(u.input_tokens)).saturating_add(u64::from(u.output_tokens));
    }
}

/// The `ai` primitive: links `orbit:runtime/ai`, and makes model calls
/// for hosts through [`Ai::chat`] and [`Ai::embed`].
///
/// Cheap to clone: clones share one HTTP client (TLS by rustls with the
/// webpki roots, no proxy, no redirects, connection pooling).
#[derive(Clone)]
pub struct Ai {
    inner: Arc<Inner>,
}

impl Ai {
    /// Checks `config` and builds the primitive. Keys are looked up through
    /// `resolver` (the vault) at each call. The HTTP client is built at the
    /// first provider request: building one loads the TLS roots (about
    /// 80 µs), which a process that calls no model never needs.
    ///
    /// # Errors
    /// [`AiError::Config`] for an invalid provider ([`AiConfig::validate`]).
    /// A client that cannot be built fails each request with
    /// [`AiError::Internal`].
    pub fn new(config: AiConfig, resolver: Arc<dyn SecretResolver>) -> Result<Ai, AiError> {
        config.validate()?;
        let client = std::sync::OnceLock::new();
        let permits = config.limits.max_concurrent_requests.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        let slots = Arc::new(tokio::sync::Semaphore::new(permits));
        Ok(Ai { inner: Arc::new(Inner { config, client, resolver, slots }) })
    }

    /// The configuration in force.
    pub fn config(&self) -> &AiConfig {
        &self.inner.config
    }

    /// A chat completion on behalf of workspace `ws`, with every check a
    /// guest's call gets, counted against `budget`.
    ///
    /// # Errors
    /// An [`AiError`]; [`AiError::code`] gives the WIT error code a guest
    /// would receive.
    pub async fn chat(
        &self,
        ws: &WorkspaceId,
        req: ChatRequest,
        budget: &mut TokenBudget,
    ) -> Result<ChatResponse, AiError> {
        self.inner.chat(ws, &Caller::host(), req, budget, &mut CallFacts::default()).await
    }

    /// Embeddings of `inputs` from `model` of `provider` on behalf of
    /// workspace `ws`, counted against `budget`.
    ///
    /// # Errors
    /// As [`Ai::chat`]; [`AiError::InvalidRequest`] for an Anthropic-style
    /// provider or no inputs.
    pub async fn embed(
        &self,
        ws: &WorkspaceId,
        provider: &str,
        model: &str,
        inputs: Vec<String>,
        budget: &mut TokenBudget,
    ) -> Result<Embeddings, AiError> {
        self.inner.embed(ws, &Caller::host(), provider, model, inputs, budget, &mut CallFacts::default()).await
    }
}
