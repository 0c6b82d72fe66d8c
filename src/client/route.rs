//! Where one target's attempts go ([`Route`]): the Claude API, Amazon Bedrock or Google
//! Vertex AI, by the target's upstream (`MODEL@bedrock`, `MODEL@vertex`), and the model's id
//! there, from the catalogue's `platforms` table.

use super::ClaudeClient;
use super::bedrock::{BEDROCK_UPSTREAM, BedrockRoute};
use super::vertex::{VERTEX_UPSTREAM, VertexRoute};
use crate::api::adapt::PlatformKind;
use crate::engine::{Class, Failure, Target};

/// The platform a target's attempts go to.
#[derive(Clone, Copy, Debug)]
pub(super) enum Route<'a> {
    /// The Claude API, at the client's base URL.
    Claude,
    Bedrock(&'a BedrockRoute),
    Vertex(&'a VertexRoute),
}

impl Route<'_> {
    /// The platform, for its rules (`adapt::platform_refusal`); `None` for the Claude API.
    pub(super) fn platform(self) -> Option<PlatformKind> {
        match self {
            Route::Claude => None,
            Route::Bedrock(_) => Some(PlatformKind::Bedrock),
            Route::Vertex(_) => Some(PlatformKind::Vertex),
        }
    }

    /// The catalogue's `platforms` key for the model's id here; `None` for the Claude API.
    fn catalog_key(self) -> Option<&'static str> {
        match self {
            Route::Claude => None,
            Route::Bedrock(_) => Some("bedrock"),
            Route::Vertex(_) => Some("vertex"),
        }
    }
}

impl ClaudeClient {
    /// The route for `target`: an unknown upstream, or a platform this client was not given,
    /// is [`Class::Invalid`].
    pub(super) fn route_for(&self, target: &Target) -> Result<Route<'_>, Failure> {
        let missing = |platform: &str| {
            Failure::new(
                Class::Invalid,
                format!("{target}: {platform} is not configured on this client"),
            )
        };
        match target.upstream() {
            None => Ok(Route::Claude),
            Some(BEDROCK_UPSTREAM) => self
                .bedrock
                .as_deref()
                .map(Route::Bedrock)
                .ok_or_else(|| missing("Bedrock")),
            Some(VERTEX_UPSTREAM) => self
                .vertex
                .as_deref()
                .map(Route::Vertex)
                .ok_or_else(|| missing("Vertex AI")),
            Some(other) => Err(Failure::new(
                Class::Invalid,
                format!("{target}: no upstream called {other:?}"),
            )),
        }
    }

    /// The target's model as `route` names it: the catalogue's id for that platform
    /// (`anthropic.claude-opus-5-5` on Bedrock, `claude-haiku-4-5@20251001` on Vertex AI),
    /// else the model as the chain names it (a model the catalogue does not know, or one
    /// written with its platform id).
    pub(super) fn model_on<'a>(&'a self, target: &'a Target, route: Route<'_>) -> &'a str {
        route
            .catalog_key()
            .and_then(|key| self.catalog.get(target.model())?.platforms.get(key))
            .map_or(target.model(), String::as_str)
    }
}
