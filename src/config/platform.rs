//! Targets as `MODEL@PLATFORM`: where a chain entry's model is served. [`Platform`] names the
//! three (the Claude API, Amazon Bedrock, Google Cloud Vertex AI) and [`parse_target`] splits
//! an entry, `anthropic` when it has no `@`.
//!
//! Only the syntax so far (issue #19): chains are not yet routed by platform.

use std::fmt;
use std::str::FromStr;

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
