//! What a platform other than the Claude API lacks, whatever the model: a request asking for
//! it cannot be answered there in any form, so the target is passed over
//! ([`platform_refusal`]) and the request moves on down its chain, never sent to be refused
//! with a 400. Nothing is dropped silently: a server tool or an output schema changes the
//! answer, so the request goes where it can be honoured.
//!
//! - Amazon Bedrock: no server tools (web search, web fetch, code execution, tool search, the
//!   MCP connector's `mcp_servers`), no `computer_toolset_20260801`, no structured outputs
//!   (`output_config.format`, the beta `output_format`), no `fallbacks`.
//! - Google Vertex AI: no `fallbacks`, no MCP connector.
//!
//! Client tools (`bash_*`, `text_editor_*`, `computer_*`, `memory_*`) run on the caller's side
//! and go everywhere.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// Tool type prefixes of the tools the Claude API runs itself.
const SERVER_TOOLS: [&str; 5] = [
    "web_search_",
    "web_fetch_",
    "code_execution_",
    "tool_search_tool_",
    "mcp_toolset",
];

/// Client tool types Bedrock lacks (the docs name `computer_toolset_20260801`).
const NOT_ON_BEDROCK: [&str; 1] = ["computer_toolset_20260801"];

/// The platforms this module knows, by their upstream names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformKind {
    /// Amazon Bedrock's Anthropic-native endpoint.
    Bedrock,
    /// Google Vertex AI.
    Vertex,
}

impl PlatformKind {
    fn name(self) -> &'static str {
        match self {
            PlatformKind::Bedrock => "Bedrock",
            PlatformKind::Vertex => "Vertex AI",
        }
    }
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(default, borrow)]
    tools: Option<Vec<ToolType<'a>>>,
    #[serde(default, borrow)]
    mcp_servers: Option<&'a RawValue>,
    #[serde(default, borrow)]
    output_format: Option<&'a RawValue>,
    #[serde(default, borrow)]
    output_config: Option<OutputFormat<'a>>,
    #[serde(default, borrow)]
    fallbacks: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ToolType<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OutputFormat<'a> {
    #[serde(default, borrow)]
    format: Option<&'a RawValue>,
}

/// Why `platform` cannot take the request `body` in any form, or `None` when it can (or the
/// body cannot be read: the platform then answers for itself).
pub fn platform_refusal(platform: PlatformKind, body: &[u8]) -> Option<String> {
    let fields: Fields<'_> = serde_json::from_slice(body).ok()?;
    let lacks = |what: &str| Some(format!("{} has no {what}", platform.name()));
    if fields.fallbacks.is_some() {
        return lacks("fallbacks (a Claude API field)");
    }
    if fields.mcp_servers.is_some() {
        return lacks("MCP connector (mcp_servers)");
    }
    if platform == PlatformKind::Vertex {
        return None;
    }
    let server_tool = fields
        .tools
        .iter()
        .flatten()
        .filter_map(|tool| tool.kind.as_deref())
        .find(|kind| SERVER_TOOLS.iter().any(|prefix| kind.starts_with(prefix)));
    if let Some(kind) = server_tool {
        return lacks(&format!("server tools (tool type {kind})"));
    }
    let missing_tool = fields
        .tools
        .iter()
        .flatten()
        .filter_map(|tool| tool.kind.as_deref())
        .find(|kind| NOT_ON_BEDROCK.contains(kind));
    if let Some(kind) = missing_tool {
        return lacks(&format!("tool type {kind}"));
    }
    let structured = fields.output_format.is_some()
        || fields
            .output_config
            .is_some_and(|config| config.format.is_some());
    if structured {
        return lacks("structured outputs (an output format)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::PlatformKind::{Bedrock, Vertex};
    use super::*;

    const PLAIN: &str = r#"{"model":"m","max_tokens":1,"messages":[]}"#;

    #[test]
    fn bedrock_refuses_server_tools_and_output_formats_but_not_client_tools() {
        let with = |extra: &str| format!(r#"{{"model":"m","max_tokens":1,{extra}"messages":[]}}"#);
        let cases = [
            (
                r#""tools":[{"type":"web_search_20250305","name":"web_search"}],"#,
                Some("web_search_20250305"),
            ),
            (
                r#""tools":[{"type":"code_execution_20250825","name":"c"}],"#,
                Some("code_execution"),
            ),
            (
                r#""tools":[{"name":"get_weather","input_schema":{}},{"type":"bash_20250124","name":"bash"}],"#,
                None,
            ),
            (
                r#""tools":[{"type":"text_editor_20250728","name":"e"},{"type":"computer_20250124","name":"c"}],"#,
                None,
            ),
            (
                r#""output_config":{"format":{"type":"json_schema","schema":{}}},"#,
                Some("structured outputs"),
            ),
            (r#""output_config":{"effort":"low"},"#, None),
            (
                r#""output_format":{"type":"json_schema","schema":{}},"#,
                Some("structured outputs"),
            ),
            (
                r#""mcp_servers":[{"type":"url","url":"https://x","name":"x"}],"#,
                Some("MCP"),
            ),
            (r#""fallbacks":["claude-haiku-4-5"],"#, Some("fallbacks")),
            (
                r#""tools":[{"type":"computer_toolset_20260801","name":"c"}],"#,
                Some("computer_toolset"),
            ),
        ];
        for (extra, refused) in cases {
            let found = platform_refusal(Bedrock, with(extra).as_bytes());
            match refused {
                Some(what) => {
                    let found = found.unwrap_or_else(|| panic!("{extra} is refused"));
                    assert!(
                        found.starts_with("Bedrock has no") && found.contains(what),
                        "{found}"
                    );
                }
                None => assert_eq!(found, None, "{extra}"),
            }
        }
        assert_eq!(platform_refusal(Bedrock, PLAIN.as_bytes()), None);
    }

    #[test]
    fn vertex_refuses_only_claude_api_fields() {
        let tools = r#"{"tools":[{"type":"web_search_20250305","name":"w"}],"output_config":{"format":{}}}"#;
        assert_eq!(platform_refusal(Vertex, tools.as_bytes()), None);
        let fallbacks = r#"{"fallbacks":["x"]}"#;
        let found = platform_refusal(Vertex, fallbacks.as_bytes()).expect("refused");
        assert!(found.starts_with("Vertex AI has no fallbacks"), "{found}");
        assert_eq!(platform_refusal(Vertex, b"not json"), None);
    }
}
