//! What the adaptation reads of a request body, borrowed from it: the top-level fields the
//! catalogue's rules are about, and where the thinking blocks of earlier turns sit.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::api::json::{self, JsonError};
use crate::catalog::{Effort, ThinkingType};

/// The rule-bearing top-level fields of a request.
#[derive(Deserialize, Default)]
pub(super) struct Shape<'a> {
    #[serde(default)]
    pub(super) max_tokens: Option<u64>,
    #[serde(default, borrow)]
    pub(super) thinking: Option<Thinking<'a>>,
    #[serde(default, borrow)]
    pub(super) temperature: Option<&'a RawValue>,
    #[serde(default)]
    pub(super) top_p: Option<f64>,
    #[serde(default, borrow)]
    pub(super) top_k: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(super) tool_choice: Option<ToolChoice<'a>>,
    #[serde(default, borrow)]
    pub(super) output_config: Option<OutputConfig<'a>>,
    #[serde(default, borrow)]
    pub(super) inference_geo: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(super) tools: Option<Vec<Tool<'a>>>,
}

#[derive(Deserialize)]
pub(super) struct Thinking<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(default)]
    pub(super) budget_tokens: Option<u64>,
    #[serde(default, borrow)]
    pub(super) display: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct ToolChoice<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(default)]
    pub(super) disable_parallel_tool_use: Option<bool>,
}

#[derive(Deserialize)]
pub(super) struct OutputConfig<'a> {
    #[serde(default, borrow)]
    pub(super) effort: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct Tool<'a> {
    #[serde(rename = "type", default, borrow)]
    pub(super) kind: Option<Cow<'a, str>>,
}

impl Shape<'_> {
    /// The thinking type asked for, when it is one the catalogue knows.
    pub(super) fn thinking_type(&self) -> Option<ThinkingType> {
        self.thinking.as_ref().and_then(|t| t.kind.parse().ok())
    }

    /// The effort asked for, when it is one the catalogue knows.
    pub(super) fn effort(&self) -> Option<Effort> {
        self.output_config
            .as_ref()
            .and_then(|config| config.effort.as_deref())
            .and_then(|effort| effort.parse().ok())
    }

    /// Whether `tool_choice` forces a tool (`any` or `tool`).
    pub(super) fn forces_a_tool(&self) -> bool {
        self.tool_choice
            .as_ref()
            .is_some_and(|choice| matches!(&*choice.kind, "any" | "tool"))
    }
}

/// Where the conversation's messages and their blocks sit in the body.
pub(super) struct Turns {
    pub(super) messages: Vec<Turn>,
}

pub(super) struct Turn {
    pub(super) assistant: bool,
    /// The content array's range, when the content is a list of blocks.
    pub(super) content: Option<Range<usize>>,
    /// Each block: its range and its type.
    pub(super) blocks: Vec<(Range<usize>, String)>,
}

impl Turn {
    pub(super) fn is_thinking(kind: &str) -> bool {
        matches!(kind, "thinking" | "redacted_thinking")
    }

    pub(super) fn has(&self, kind: &str) -> bool {
        self.blocks.iter().any(|(_, k)| k == kind)
    }

    pub(super) fn starts_with_thinking(&self) -> bool {
        self.blocks
            .first()
            .is_some_and(|(_, k)| Self::is_thinking(k))
    }
}

/// The messages of `body`, with the type of every block.
pub(super) fn turns(body: &[u8]) -> Result<Turns, JsonError> {
    let object = json::root(body)?;
    let Some(messages) = json::members(body, object)?
        .into_iter()
        .find(|m| m.is("messages"))
    else {
        return Ok(Turns { messages: vec![] });
    };
    let mut turns = Vec::new();
    for message in json::items(body, messages.value)? {
        if body.get(message.value.start) != Some(&b'{') {
            continue;
        }
        let fields = json::members(body, message.value)?;
        let role = fields.iter().find(|f| f.is("role"));
        let assistant = role.is_some_and(|r| &body[r.value.clone()] == b"\"assistant\"");
        let content = fields
            .iter()
            .find(|f| f.is("content"))
            .map(|f| f.value.clone())
            .filter(|range| body.get(range.start) == Some(&b'['));
        let mut blocks = Vec::new();
        if let Some(content) = &content {
            for block in json::items(body, content.clone())? {
                blocks.push((block.value.clone(), block_type(body, block.value)?));
            }
        }
        turns.push(Turn {
            assistant,
            content,
            blocks,
        });
    }
    Ok(Turns { messages: turns })
}

fn block_type(body: &[u8], block: Range<usize>) -> Result<String, JsonError> {
    if body.get(block.start) != Some(&b'{') {
        return Ok(String::new());
    }
    let kind = json::members(body, block)?
        .into_iter()
        .find(|m| m.is("type"))
        .and_then(|m| serde_json::from_slice::<String>(&body[m.value]).ok());
    Ok(kind.unwrap_or_default())
}
