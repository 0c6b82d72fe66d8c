//! [`Violation`]: why the mock refuses a request, naming the [`Rule`] it broke (so tests can
//! say which one) and the message of the 400 it answers.

/// The rules, one per kind of refusal (so tests can say which one a request broke).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    /// `max_tokens` above the model's output ceiling.
    MaxTokens,
    /// A `thinking.type` the model refuses (at this effort).
    ThinkingType,
    /// `budget_tokens` of `enabled` thinking missing, too small, or not below `max_tokens`.
    BudgetTokens,
    /// An `output_config.effort` the model does not take.
    Effort,
    /// `temperature`, `top_p` or `top_k` where the sampling rule refuses it.
    Sampling,
    /// `temperature` and `top_p` together on a model that takes only one.
    TemperatureXorTopP,
    /// `tool_choice` `any` or `tool` where refused, or with `enabled` thinking.
    ForcedToolChoice,
    /// A final assistant message (prefill) where refused.
    Prefill,
    /// `inference_geo` on a model that refuses it.
    InferenceGeo,
    /// A tool whose `type` the model refuses.
    RefusedTool,
    /// A thinking block with an empty, unknown or foreign signature.
    Signature,
    /// With `enabled` thinking, a final assistant tool-use turn not opening with thinking.
    ThinkingToolTurn,
}

/// Why a request is refused: the rule, and the message for the error body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) rule: Rule,
    pub(crate) message: String,
}

impl Violation {
    pub(crate) fn new(rule: Rule, message: impl Into<String>) -> Self {
        Self {
            rule,
            message: message.into(),
        }
    }
}
