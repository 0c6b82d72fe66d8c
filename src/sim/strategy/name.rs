//! The strategies' names, as the command line takes them and the reports print them.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The strategies, by the names the command line takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyName {
    /// One attempt, primary model only.
    None,
    /// Up to 4 attempts on 429/529, sleeping 2^i s plus U(0, 1) s; primary only.
    TutorialLoop,
    /// The official SDKs: 2 retries with capped, jittered exponential delays; primary only.
    SdkDefault,
    /// `sdk-default` on each model of the chain in turn, falling back by hand.
    SdkFallback,
    /// A LiteLLM-style router: retries, fallbacks, fixed cooldowns, no half-open probes.
    CooldownRouter,
    /// The real breakwater runtime.
    Breakwater,
}

impl StrategyName {
    /// Every strategy, in the order reports list them.
    pub const ALL: [StrategyName; 6] = [
        StrategyName::None,
        StrategyName::TutorialLoop,
        StrategyName::SdkDefault,
        StrategyName::SdkFallback,
        StrategyName::CooldownRouter,
        StrategyName::Breakwater,
    ];

    /// The name the command line and the reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyName::None => "none",
            StrategyName::TutorialLoop => "tutorial-loop",
            StrategyName::SdkDefault => "sdk-default",
            StrategyName::SdkFallback => "sdk-fallback",
            StrategyName::CooldownRouter => "cooldown-router",
            StrategyName::Breakwater => "breakwater",
        }
    }

    /// One line saying what the strategy does, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            StrategyName::None => "one attempt on the primary, no retry",
            StrategyName::TutorialLoop => {
                "up to 4 attempts on 429/529, sleeping 2^i s + U(0,1) s, primary only"
            }
            StrategyName::SdkDefault => {
                "the official SDKs: 2 retries, min(0.5*2^n, 8) s x U(0.75,1] or retry-after, primary only"
            }
            StrategyName::SdkFallback => "sdk-default on each model of the chain in turn",
            StrategyName::CooldownRouter => {
                "LiteLLM-style: 2 retries per model then fallback; 3 failures in 60 s cool a model down for 60 s, no probing"
            }
            StrategyName::Breakwater => {
                "the breakwater runtime: budgeted retries, breakers, fallback, default config"
            }
        }
    }
}

impl fmt::Display for StrategyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A strategy name that is not one of [`StrategyName::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy {name:?} (valid: {})", valid_names())]
pub struct UnknownStrategy {
    /// The name given.
    pub name: String,
}

fn valid_names() -> String {
    let names: Vec<_> = StrategyName::ALL.iter().map(|s| s.as_str()).collect();
    names.join(", ")
}

impl FromStr for StrategyName {
    type Err = UnknownStrategy;

    fn from_str(name: &str) -> Result<Self, UnknownStrategy> {
        let name = name.trim();
        StrategyName::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| UnknownStrategy { name: name.into() })
    }
}
