//! Model calls through providers the operator configured for the run's
//! workspace.
//!
//! The host adds the provider's key; the guest never holds it. Input and
//! output tokens count against the run's token budget: once it is spent a
//! call gives [`ErrorCode::LimitExceeded`](crate::ErrorCode::LimitExceeded),
//! and [`ChatRequest::max_tokens`] is capped by what is left.
//!
//! ```no_run
//! use orbit_guest::ai::{self, ChatRequest};
//!
//! # fn demo() -> orbit_guest::Result<()> {
//! let reply = ai::chat(
//!     ChatRequest::new("local", "llama3.1:8b")
//!         .system("Answer in one sentence.")
//!         .user("What is WebAssembly?")
//!         .max_tokens(100),
//! )?;
//! println!("{} ({} tokens out)", reply.text, reply.usage.output_tokens);
//! let vectors = ai::embed("local", "nomic-embed-text", &["a text", "another"])?;
//! assert_eq!(vectors.len(), 2);
//! # Ok(()) }
//! ```

use crate::__bindings::orbit::runtime::ai as wit;
use crate::Result;

pub use wit::{FinishReason, Role, Usage};

/// A chat request, built with the methods below and sent with [`chat`]
/// (or [`ChatRequest::send`]).
#[derive(Debug, Clone)]
pub struct ChatRequest {
    provider: String,
    model: String,
    messages: Vec<(Role, String)>,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    json: bool,
}

impl ChatRequest {
    /// A request to `model` of the workspace's provider `provider`, with no
    /// messages yet.
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

    /// Appends a message from `role`.
    pub fn message(mut self, role: Role, content: impl Into<String>) -> Self {
        self.messages.push((role, content.into()));
        self
    }

    /// Appends a system message (instructions).
    pub fn system(self, content: impl Into<String>) -> Self {
        self.message(Role::System, content)
    }

    /// Appends a user message.
    pub fn user(self, content: impl Into<String>) -> Self {
        self.message(Role::User, content)
    }

    /// Appends an assistant message (an earlier reply).
    pub fn assistant(self, content: impl Into<String>) -> Self {
        self.message(Role::Assistant, content)
    }

    /// Most tokens to generate; the host caps it by its own limit and by
    /// the run's remaining budget. Without it the host's default applies.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// Sampling temperature, 0.0 to 2.0.
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Asks for a single JSON object as the reply.
    pub fn json(mut self) -> Self {
        self.json = true;
        self
    }

    /// Sends the request; the same as [`chat`].
    ///
    /// # Errors
    /// As [`chat`].
    pub fn send(self) -> Result<ChatResponse> {
        chat(self)
    }
}

/// A chat completion.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The reply text.
    pub text: String,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Tokens counted against the run's budget.
    pub usage: Usage,
}

/// Sends a chat request and waits for the whole reply.
///
/// # Errors
/// `not-found` for a provider the workspace does not have;
/// `permission-denied` for a model the provider does not allow or a key the
/// provider refused; `invalid-input` for no messages, a bad temperature or
/// a request the provider rejected; `too-large` past the host's caps;
/// `limit-exceeded` once the run's token budget is spent; `unavailable`
/// when the provider fails or times out.
pub fn chat(req: ChatRequest) -> Result<ChatResponse> {
    let request = wit::ChatRequest {
        provider: req.provider,
        model: req.model,
        messages: req.messages.into_iter().map(|(role, content)| wit::Message { role, content }).collect(),
        options: wit::ChatOptions { max_tokens: req.max_tokens, temperature: req.temperature, json: req.json },
    };
    let resp = wit::chat(&request)?;
    Ok(ChatResponse { text: resp.text, finish_reason: resp.finish_reason, usage: resp.usage })
}

/// Embeds each of `inputs` with `model` of `provider`; one vector per
/// input, in order.
///
/// # Errors
/// As [`chat`]; `invalid-input` too for no inputs or a provider without
/// embeddings (Anthropic), `too-large` for more inputs than the host allows
/// in one call.
pub fn embed<S: AsRef<str>>(provider: &str, model: &str, inputs: &[S]) -> Result<Vec<Vec<f32>>> {
    let inputs: Vec<String> = inputs.iter().map(|s| s.as_ref().to_owned()).collect();
    wit::embed(provider, model, &inputs)
}
