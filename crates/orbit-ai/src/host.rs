//! The engine integration: `orbit:runtime/ai` host functions.

use orbit_engine::bindings::orbit::runtime::ai as wit;
use orbit_engine::wasmtime::component::{HasData, Linker};
use orbit_engine::{Budgets, EngineError, Extensions, GuestError, HostError, Primitive, RunInfo, RunState};

use crate::call::{CallFacts, Caller};
use crate::{Ai, ChatRequest, FinishReason, Message, Role, TOKEN_BUDGET, TokenBudget, Usage};

/// Per-run state: the run's named budgets, which hold its token budget
/// ([`TOKEN_BUDGET`]), shared with the runs it starts.
pub(crate) struct RunAi {
    budgets: Budgets,
    ai: Ai,
}

impl RunAi {
    /// The run's token budget as it stands, for one call.
    fn token_budget(&self) -> TokenBudget {
        let b = self.budgets.get(TOKEN_BUDGET).unwrap_or(orbit_engine::Budget { limit: 0, used: 0 });
        TokenBudget { cap: b.limit, used: b.used }
    }

    /// Spends what one call used of `before` (now `after`).
    fn settle(&self, before: &TokenBudget, after: &TokenBudget) {
        self.budgets.spend_up_to(TOKEN_BUDGET, after.used.saturating_sub(before.used));
    }
}

/// What the `ai` host functions operate on during a call: the run's
/// information and the primitive's per-run state.
pub struct AiView<'a> {
    run: &'a mut RunInfo,
    state: &'a mut RunAi,
}

struct AiData;
impl HasData for AiData {
    type Data<'a> = AiView<'a>;
}

impl Primitive for Ai {
    fn name(&self) -> &'static str {
        "ai"
    }

    fn add_to_linker(&self, linker: &mut Linker<RunState>) -> Result<(), EngineError> {
        wit::add_to_linker::<RunState, AiData>(linker, |s| {
            let (run, state) = s.parts::<RunAi>();
            AiView { run, state }
        })
        .map_err(|e| EngineError::Config(format!("{e:#}")))
    }

    /// Opens the run's token budget ([`TOKEN_BUDGET`]) at
    /// [`AiLimits::max_tokens_per_run`](crate::AiLimits::max_tokens_per_run),
    /// or at what is left of it when the run shares its parent's budgets.
    fn prepare(&self, run: &RunInfo, extensions: &mut Extensions) -> Result<(), EngineError> {
        run.budgets().open(TOKEN_BUDGET, self.inner.config.limits.max_tokens_per_run);
        // Nothing can read the state of an interface the component does not
        // import; the budget is opened all the same, for the runs it starts.
        if !run.imports("orbit:runtime/ai") {
            return Ok(());
        }
        extensions.insert(RunAi { budgets: run.budgets().clone(), ai: self.clone() });
        Ok(())
    }
}

fn from_wit(req: wit::ChatRequest) -> ChatRequest {
    ChatRequest {
        provider: req.provider,
        model: req.model,
        messages: req
            .messages
            .into_iter()
            .map(|m| Message {
                role: match m.role {
                    wit::Role::System => Role::System,
                    wit::Role::User => Role::User,
                    wit::Role::Assistant => Role::Assistant,
                },
                content: m.content,
            })
            .collect(),
        max_tokens: req.options.max_tokens,
        temperature: req.options.temperature,
        json: req.options.json,
    }
}

fn usage_to_wit(u: Usage) -> wit::Usage {
    wit::Usage { input_tokens: u.input_tokens, output_tokens: u.output_tokens }
}

fn finish_to_wit(f: FinishReason) -> wit::FinishReason {
    match f {
        FinishReason::Stop => wit::FinishReason::Stop,
        FinishReason::Length => wit::FinishReason::Length,
        FinishReason::ContentFilter => wit::FinishReason::ContentFilter,
        FinishReason::ToolCalls => wit::FinishReason::ToolCalls,
        FinishReason::Other => wit::FinishReason::Other,
    }
}

impl wit::Host for AiView<'_> {
    async fn chat(
        &mut self,
        request: wit::ChatRequest,
    ) -> orbit_engine::wasmtime::Result<Result<wit::ChatResponse, GuestError>> {
        let bytes_in = request.provider.len()
            + request.model.len()
            + request.messages.iter().map(|m| m.content.len()).sum::<usize>();
        let ws = self.run.workspace().clone();
        let caller = Caller { principal: self.run.principal().clone(), run_id: Some(self.run.run_id().to_string()) };
        let mut facts = CallFacts::default();
        let before = self.state.token_budget();
        let mut budget = before;
        let ai = &self.state.ai;
        let call = async {
            let resp = ai
                .inner
                .chat(&ws, &caller, from_wit(request), &mut budget, &mut facts)
                .await
                .map_err(HostError::from)?;
            Ok(wit::ChatResponse {
                text: resp.text,
                finish_reason: finish_to_wit(resp.finish_reason),
                usage: usage_to_wit(resp.usage),
            })
        };
        let result = self.run.host_call("ai", "chat", bytes_in, |r: &wit::ChatResponse| r.text.len(), call).await;
        self.state.settle(&before, &budget);
        self.run.annotate_last_span(facts.into_attrs());
        result
    }

    async fn embed(
        &mut self,
        provider: String,
        model: String,
        inputs: Vec<String>,
    ) -> orbit_engine::wasmtime::Result<Result<Vec<Vec<f32>>, GuestError>> {
        let bytes_in = provider.len() + model.len() + inputs.iter().map(String::len).sum::<usize>();
        let ws = self.run.workspace().clone();
        let caller = Caller { principal: self.run.principal().clone(), run_id: Some(self.run.run_id().to_string()) };
        let mut facts = CallFacts::default();
        let before = self.state.token_budget();
        let mut budget = before;
        let ai = &self.state.ai;
        let call = async {
            let e = ai
                .inner
                .embed(&ws, &caller, &provider, &model, inputs, &mut budget, &mut facts)
                .await
                .map_err(HostError::from)?;
            Ok(e.vectors)
        };
        let out = |v: &Vec<Vec<f32>>| v.iter().map(|x| x.len() * 4).sum();
        let result = self.run.host_call("ai", "embed", bytes_in, out, call).await;
        self.state.settle(&before, &budget);
        self.run.annotate_last_span(facts.into_attrs());
        result
    }
}
