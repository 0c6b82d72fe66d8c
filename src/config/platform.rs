//! Targets as `MODEL@PLATFORM`: where a chain entry's model is served. [`Platform`] names the
//! three (the Claude API, Amazon Bedrock, Google Cloud Vertex AI) and [`parse_target`] splits
//! an entry, `anthropic` when it has no `@`.
//!
//! `[platforms.bedrock]` and `[platforms.vertex]` ([`PlatformsConfig`]) say where each platform
//! is reached. Chains route `MODEL@bedrock` to Bedrock's Anthropic-native endpoint and
//! `MODEL@vertex` to Vertex AI's `rawPredict`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a model is served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    /// The Claude API (`api.anthropic.com`), the default.
    #[default]
    Anthropic,
    /// Amazon Bedrock's Anthropic-native Messages endpoint, signed with SigV4 or an API key.
    Bedrock,
    /// Google Cloud Vertex AI's `rawPredict`/`streamRawPredict`.
    Vertex,
}

impl Platform {
    /// Every platform, in the order error messages list them.
    pub const ALL: [Platform; 3] = [Platform::Anthropic, Platform::Bedrock, Platform::Vertex];

    /// The name written after `@`.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Anthropic => "anthropic",
            Platform::Bedrock => "bedrock",
            Platform::Vertex => "vertex",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A platform name that is none of [`Platform::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown platform {0:?} ({list})", list = platform_list())]
pub struct UnknownPlatform(pub String);

impl FromStr for Platform {
    type Err = UnknownPlatform;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Platform::ALL
            .into_iter()
            .find(|platform| platform.name() == name)
            .ok_or_else(|| UnknownPlatform(name.to_owned()))
    }
}

/// A chain entry that is not `MODEL` or `MODEL@PLATFORM`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetSyntaxError {
    /// Nothing before the `@`.
    #[error("no model before \"@\" in {entry:?}")]
    NoModel {
        /// The entry as written.
        entry: String,
    },
    /// The part after the `@` is no platform.
    #[error("unknown platform {platform:?} in {entry:?} ({list})", list = platform_list())]
    UnknownPlatform {
        /// The part after the first `@`.
        platform: String,
        /// The entry as written.
        entry: String,
    },
}

/// Splits a chain entry into its model and platform: `claude-opus-5-5` is the model on
/// [`Platform::Anthropic`], `claude-opus-5-5@bedrock` on Bedrock. The platform is what follows
/// the first `@`, so a second `@` makes it unknown.
pub fn parse_target(entry: &str) -> Result<(&str, Platform), TargetSyntaxError> {
    let Some((model, platform)) = entry.split_once('@') else {
        return Ok((entry, Platform::Anthropic));
    };
    if model.trim().is_empty() {
        return Err(TargetSyntaxError::NoModel {
            entry: entry.to_owned(),
        });
    }
    let platform = platform.parse().map_err(|UnknownPlatform(platform)| {
        TargetSyntaxError::UnknownPlatform {
            platform,
            entry: entry.to_owned(),
        }
    })?;
    Ok((model, platform))
}

/// `[platforms]`: where the platforms other than the Claude API are reached. Credentials never
/// come from this file, only from the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlatformsConfig {
    /// `[platforms.bedrock]`: required by a chain entry or a `[models]` key naming `@bedrock`.
    /// Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bedrock: Option<BedrockConfig>,
    /// `[platforms.vertex]`: required by a chain entry or a `[models]` key naming `@vertex`.
    /// Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vertex: Option<VertexConfig>,
}

impl PlatformsConfig {
    /// Whether no platform is configured (the table is then left out when written).
    pub fn is_empty(&self) -> bool {
        self.bedrock.is_none() && self.vertex.is_none()
    }

    /// The first bad key, as its path under `platforms` and what is wrong with it.
    pub(crate) fn problem(&self) -> Option<(String, String)> {
        if let Some(bedrock) = &self.bedrock {
            let problem = region_problem(&bedrock.region)
                .map(|reason| ("region", reason))
                .or_else(|| endpoint_problem(bedrock.endpoint.as_deref()).map(|r| ("endpoint", r)));
            if let Some((key, reason)) = problem {
                return Some((format!("bedrock.{key}"), reason));
            }
        }
        if let Some(vertex) = &self.vertex {
            let problem = region_problem(&vertex.region)
                .map(|reason| ("region", reason))
                .or_else(|| project_problem(&vertex.project).map(|reason| ("project", reason)))
                .or_else(|| endpoint_problem(vertex.endpoint.as_deref()).map(|r| ("endpoint", r)));
            if let Some((key, reason)) = problem {
                return Some((format!("vertex.{key}"), reason));
            }
        }
        None
    }
}

/// `[platforms.bedrock]`: Amazon Bedrock's Anthropic-native Messages endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BedrockConfig {
    /// The AWS region, such as `us-east-1`: the endpoint's host and the signatures' scope.
    pub region: String,
    /// A base URL replacing `https://bedrock-mantle.{region}.api.aws` (a proxy, a test's
    /// mock); requests go to `{endpoint}/anthropic/v1/messages`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl BedrockConfig {
    /// The base URL requests go to: `endpoint`, else the region's.
    pub fn base_url(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
            None => format!("https://bedrock-mantle.{}.api.aws", self.region),
        }
    }
}

/// `[platforms.vertex]`: Google Cloud Vertex AI's `rawPredict` / `streamRawPredict`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VertexConfig {
    /// The Google Cloud project id.
    pub project: String,
    /// The region, such as `us-east5`, `global`, or the multi-regions `us` and `eu`.
    pub region: String,
    /// A base URL replacing the region's host (a proxy, a test's mock); requests go to
    /// `{endpoint}/v1/projects/{project}/locations/{region}/publishers/anthropic/models/...`.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl VertexConfig {
    /// The base URL requests go to: `endpoint`, else the region's host
    /// (`aiplatform.googleapis.com` for `global`, `aiplatform.{us,eu}.rep.googleapis.com` for
    /// the multi-regions, `{region}-aiplatform.googleapis.com` otherwise).
    pub fn base_url(&self) -> String {
        match (&self.endpoint, self.region.as_str()) {
            (Some(endpoint), _) => endpoint.trim_end_matches('/').to_owned(),
            (None, "global") => "https://aiplatform.googleapis.com".to_owned(),
            (None, multi @ ("us" | "eu")) => {
                format!("https://aiplatform.{multi}.rep.googleapis.com")
            }
            (None, region) => format!("https://{region}-aiplatform.googleapis.com"),
        }
    }
}

fn region_problem(region: &str) -> Option<String> {
    let valid = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (!valid).then(|| format!("{region:?} is not a region (such as \"us-east-1\")"))
}

fn project_problem(project: &str) -> Option<String> {
    // Google's project ids: lowercase letters, digits and hyphens (domain-scoped ones also
    // hold `.` and `:`); nothing that could end a URL path segment.
    let valid = !project.is_empty()
        && project.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':')
        });
    (!valid)
        .then(|| format!("{project:?} is not a Google Cloud project id (such as \"my-project\")"))
}

fn endpoint_problem(endpoint: Option<&str>) -> Option<String> {
    let endpoint = endpoint?;
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return Some("must be an http:// or https:// URL".to_owned());
    };
    if !matches!(scheme, "http" | "https") {
        return Some("must be an http:// or https:// URL".to_owned());
    }
    if rest.is_empty() || rest.starts_with('/') {
        return Some("must name a host".to_owned());
    }
    if rest.contains(['?', '#']) {
        return Some("takes no query or fragment".to_owned());
    }
    None
}

fn platform_list() -> String {
    Platform::ALL.map(Platform::name).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_into_model_and_platform() {
        assert_eq!(
            parse_target("claude-opus-5-5"),
            Ok(("claude-opus-5-5", Platform::Anthropic))
        );
        for platform in Platform::ALL {
            let entry = format!("claude-x@{platform}");
            assert_eq!(parse_target(&entry), Ok(("claude-x", platform)));
            assert_eq!(platform.name().parse(), Ok(platform));
        }
    }

    #[test]
    fn endpoints_must_be_http_and_regions_host_names() {
        let bedrock = |region: &str, endpoint: Option<&str>| PlatformsConfig {
            bedrock: Some(BedrockConfig {
                region: region.into(),
                endpoint: endpoint.map(Into::into),
            }),
            vertex: None,
        };
        assert_eq!(bedrock("us-east-1", None).problem(), None);
        assert_eq!(
            bedrock("us-east-1", Some("http://127.0.0.1:1/")).problem(),
            None
        );
        let key = |p: PlatformsConfig| p.problem().map(|(key, _)| key);
        assert_eq!(
            key(bedrock("us east", None)).as_deref(),
            Some("bedrock.region")
        );
        for endpoint in ["ftp://x", "x.example", "https://", "https://x/?a"] {
            let found = key(bedrock("us-east-1", Some(endpoint)));
            assert_eq!(found.as_deref(), Some("bedrock.endpoint"), "{endpoint}");
        }
        let base = BedrockConfig {
            region: "eu-west-3".into(),
            endpoint: None,
        };
        assert_eq!(base.base_url(), "https://bedrock-mantle.eu-west-3.api.aws");
        let vertex = |region: &str, project: &str| VertexConfig {
            project: project.into(),
            region: region.into(),
            endpoint: None,
        };
        let hosts = [
            ("global", "https://aiplatform.googleapis.com"),
            ("us", "https://aiplatform.us.rep.googleapis.com"),
            ("eu", "https://aiplatform.eu.rep.googleapis.com"),
            ("us-east5", "https://us-east5-aiplatform.googleapis.com"),
        ];
        for (region, host) in hosts {
            assert_eq!(vertex(region, "p").base_url(), host);
        }
        let platforms = |v: VertexConfig| PlatformsConfig {
            bedrock: None,
            vertex: Some(v),
        };
        assert_eq!(platforms(vertex("global", "my-project")).problem(), None);
        for project in ["", "a/b", "My Project"] {
            let found = key(platforms(vertex("global", project)));
            assert_eq!(found.as_deref(), Some("vertex.project"), "{project}");
        }
    }

    #[test]
    fn a_bad_entry_is_named_with_the_platforms() {
        assert_eq!(
            parse_target("claude-x@bedrok").unwrap_err().to_string(),
            r#"unknown platform "bedrok" in "claude-x@bedrok" (anthropic, bedrock, vertex)"#
        );
        assert_eq!(
            parse_target("claude-x@").unwrap_err().to_string(),
            r#"unknown platform "" in "claude-x@" (anthropic, bedrock, vertex)"#
        );
        assert_eq!(
            parse_target("a@b@bedrock").unwrap_err().to_string(),
            r#"unknown platform "b@bedrock" in "a@b@bedrock" (anthropic, bedrock, vertex)"#
        );
        assert_eq!(
            parse_target("@vertex").unwrap_err().to_string(),
            r#"no model before "@" in "@vertex""#
        );
        assert_eq!(
            "Bedrock".parse::<Platform>().unwrap_err().to_string(),
            r#"unknown platform "Bedrock" (anthropic, bedrock, vertex)"#
        );
    }
}
