//! Operator configuration of the ai primitive: providers per workspace and
//! the limits.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::AiError;

/// How a provider is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ApiStyle {
    /// OpenAI-compatible: `POST {base_url}/chat/completions` and
    /// `POST {base_url}/embeddings`, key as `Authorization: Bearer <key>`
    /// (<https://platform.openai.com/docs/api-reference/chat>). Covers
    /// OpenAI, vLLM, llama.cpp's `llama-server` and Ollama (base URL ending
    /// in `/v1`). The output cap is sent as `max_tokens`, which these
    /// servers and OpenAI's chat models accept (OpenAI's reasoning models
    /// want `max_completion_tokens` instead). In JSON: `"openai"`.
    Openai,
    /// Anthropic Messages: `POST {base_url}/v1/messages` with the key in
    /// `x-api-key` and `anthropic-version: 2023-06-01`
    /// (<https://docs.anthropic.com/en/api/messages>). No embeddings. In
    /// JSON: `"anthropic"`.
    Anthropic,
}

/// One model provider a workspace may call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The name guests use, e.g. `"local"`: 1 to 64 bytes of
    /// `[A-Za-z0-9_.-]`, unique within a workspace.
    pub name: String,
    /// Base URL, `http` or `https`, without query or fragment, e.g.
    /// `http://127.0.0.1:8080/v1` or `https://api.anthropic.com`. A trailing
    /// `/` is ignored.
    pub base_url: String,
    /// The API the provider speaks.
    pub api: ApiStyle,
    /// Name of the secret in the workspace's vault that holds the key;
    /// `None` for a provider without a key (a local server). The secret
    /// must be bound to the provider's origin (its `HostBinding` must match
    /// `POST` to the endpoint URL); its placement is ignored: the API style
    /// says where the key goes.
    #[serde(default)]
    pub key_secret: Option<String>,
    /// Models guests may ask for, compared exactly; `"*"` allows any.
    /// Empty allows none.
    pub models: Vec<String>,
}

impl ProviderConfig {
    /// Whether `model` is in the allow-list.
    pub fn allows(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == "*" || m == model)
    }
}

/// Limits of the ai primitive. Every field has a documented default; with
/// serde, missing fields take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiLimits {
    /// Tokens (input plus output, as the provider reports them) one run may
    /// use in all, shared with the runs it starts (`jobs`). A call once
    /// they are spent gives `limit-exceeded`, and so does a prompt whose
    /// estimate (4 bytes a token) is not below what is left; a chat's
    /// `max_tokens` is capped by what is left after that estimate. A call
    /// whose answer timed out, was over the response cap or could not be
    /// read is charged the estimate. Usage past the
    /// cap (a provider counting more than the estimate) is charged up to
    /// the cap. Default 100 000.
    pub max_tokens_per_run: u64,
    /// `max_tokens` of a chat whose guest gave none, and the most a guest
    /// may ask for. Default 4096.
    pub max_output_tokens: u32,
    /// Time for one provider request, from sending to the last byte of the
    /// response; the run's deadline bounds it too. Default 120 s. In serde:
    /// `request_timeout_ms`.
    #[serde(rename = "request_timeout_ms", with = "duration_ms")]
    pub request_timeout: Duration,
    /// Time to connect to a provider. Default 5 s. In serde:
    /// `connect_timeout_ms`.
    #[serde(rename = "connect_timeout_ms", with = "duration_ms")]
    pub connect_timeout: Duration,
    /// Largest request body sent to a provider (the JSON the host builds
    /// from the guest's request), in bytes. Default 1 MiB.
    pub max_request_bytes: usize,
    /// Largest response body read from a provider, in bytes. Default 16 MiB
    /// (embeddings of many inputs are large).
    pub max_response_bytes: usize,
    /// Most inputs in one `embed` call. Default 256.
    pub max_embed_inputs: usize,
    /// Most messages in one `chat` call. Default 1000.
    pub max_messages: usize,
    /// Most provider requests in flight at once, all runs together (so
    /// many runs cannot pile onto one local model server). A call past it
    /// waits for a free slot within its request timeout and the run's
    /// deadline. Default 16; 0 is taken as 1.
    pub max_concurrent_requests: usize,
}

impl Default for AiLimits {
    fn default() -> Self {
        Self {
            max_tokens_per_run: 100_000,
            max_output_tokens: 4096,
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            max_request_bytes: 1 << 20,
            max_response_bytes: 16 << 20,
            max_embed_inputs: 256,
            max_messages: 1000,
            max_concurrent_requests: 16,
        }
    }
}

/// Configuration of the [`Ai`](crate::Ai) primitive, as kept in
/// `<data dir>/ai.json`.
///
/// ```json
/// {
///   "providers": [
///     {"name": "local", "base_url": "http://127.0.0.1:8080/v1", "api": "openai", "models": ["*"]}
///   ],
///   "workspaces": {
///     "team-a": [
///       {"name": "claude", "base_url": "https://api.anthropic.com", "api": "anthropic",
///        "key_secret": "ANTHROPIC_KEY", "models": ["claude-sonnet-4-5"]}
///     ]
///   },
///   "limits": {"max_tokens_per_run": 50000}
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiConfig {
    /// Providers of every workspace without an entry in `workspaces`.
    /// Default: none (every call gives `not-found`).
    pub providers: Vec<ProviderConfig>,
    /// Per-workspace providers, keyed by workspace id; each list replaces
    /// `providers` for its workspace. Default: none.
    pub workspaces: HashMap<String, Vec<ProviderConfig>>,
    /// Limits. Default: [`AiLimits::default`].
    pub limits: AiLimits,
}

/// Longest provider name, in bytes.
const MAX_PROVIDER_NAME: usize = 64;

impl AiConfig {
    /// The providers in force for workspace `ws`.
    pub fn providers_for(&self, ws: &str) -> &[ProviderConfig] {
        self.workspaces.get(ws).unwrap_or(&self.providers)
    }

    /// Checks every provider: a valid, unique name per list, an `http` or
    /// `https` base URL without credentials, query or fragment, and a
    /// well-formed secret name.
    ///
    /// # Errors
    /// [`AiError::Config`] naming the first bad provider.
    pub fn validate(&self) -> Result<(), AiError> {
        let lists = std::iter::once(("*", &self.providers)).chain(self.workspaces.iter().map(|(k, v)| (k.as_str(), v)));
        for (ws, list) in lists {
            for (i, p) in list.iter().enumerate() {
                let bad = |why: String| AiError::Config(format!("provider {:?} of workspace {ws}: {why}", p.name));
                if !valid_name(&p.name, MAX_PROVIDER_NAME) {
                    return Err(bad("name must be 1 to 64 bytes of [A-Za-z0-9_.-]".into()));
                }
                if list[..i].iter().any(|q| q.name == p.name) {
                    return Err(bad("name used twice".into()));
                }
                let url = url::Url::parse(&p.base_url).map_err(|e| bad(format!("base_url: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(bad("base_url must be an http or https URL with a host".into()));
                }
                if !url.username().is_empty()
                    || url.password().is_some()
                    || url.query().is_some()
                    || url.fragment().is_some()
                {
                    return Err(bad("base_url may not hold credentials, a query or a fragment".into()));
                }
                if let Some(s) = &p.key_secret
                    && !valid_name(s, 128)
                {
                    return Err(bad("key_secret must be 1 to 128 bytes of [A-Za-z0-9_.-]".into()));
                }
            }
        }
        Ok(())
    }
}

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str, url: &str) -> ProviderConfig {
        ProviderConfig {
            name: name.into(),
            base_url: url.into(),
            api: ApiStyle::Openai,
            key_secret: None,
            models: vec!["m".into()],
        }
    }

    #[test]
    fn serde_defaults_and_names() {
        let c: AiConfig = serde_json::from_str(
            r#"{"providers":[{"name":"local","base_url":"http://127.0.0.1:8080/v1","api":"openai","models":["*"]}],
                "workspaces":{"w":[{"name":"c","base_url":"https://api.anthropic.com","api":"anthropic",
                  "key_secret":"K","models":["x"]}]},
                "limits":{"max_tokens_per_run":10,"request_timeout_ms":250}}"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.limits.max_tokens_per_run, 10);
        assert_eq!(c.limits.request_timeout, Duration::from_millis(250));
        assert_eq!(c.limits.max_embed_inputs, 256);
        assert_eq!(c.providers_for("other")[0].name, "local");
        assert_eq!(c.providers_for("w")[0].api, ApiStyle::Anthropic);
        assert!(c.providers_for("other")[0].allows("anything"));
        assert!(!c.providers_for("w")[0].allows("y"));
        let back: AiConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn bad_providers_are_refused() {
        for p in [
            provider("", "http://a/"),
            provider("a b", "http://a/"),
            provider("a", "ftp://a/"),
            provider("a", "http://user:pw@a/"),
            provider("a", "http://a/?k=v"),
            provider("a", "not a url"),
        ] {
            let c = AiConfig { providers: vec![p.clone()], ..AiConfig::default() };
            assert!(matches!(c.validate(), Err(AiError::Config(_))), "{p:?}");
        }
        let twice =
            AiConfig { providers: vec![provider("a", "http://a/"), provider("a", "http://b/")], ..Default::default() };
        assert!(twice.validate().is_err());
    }
}
