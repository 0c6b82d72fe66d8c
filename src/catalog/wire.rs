//! The request values the catalogue talks about, by their names on the wire: a thinking
//! type (`thinking.type`) and an effort level (`output_config.effort`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A `thinking.type` a request may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThinkingType {
    /// `"enabled"`: manual (extended) thinking with a `budget_tokens`.
    Enabled,
    /// `"adaptive"`: the model decides how much to think.
    Adaptive,
    /// `"disabled"`: no thinking.
    Disabled,
    /// `"between_tools"`: thinking only between tool calls.
    BetweenTools,
}

impl ThinkingType {
    /// Every type, in declaration order.
    pub const ALL: [ThinkingType; 4] = [
        ThinkingType::Enabled,
        ThinkingType::Adaptive,
        ThinkingType::Disabled,
        ThinkingType::BetweenTools,
    ];

    /// The wire name: `"enabled"`, `"adaptive"`, `"disabled"` or `"between_tools"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ThinkingType::Enabled => "enabled",
            ThinkingType::Adaptive => "adaptive",
            ThinkingType::Disabled => "disabled",
            ThinkingType::BetweenTools => "between_tools",
        }
    }
}

impl fmt::Display for ThinkingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ThinkingType {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|ty| ty.as_str() == name)
            .ok_or_else(|| UnknownName::new("thinking type", name, &Self::ALL.map(Self::as_str)))
    }
}

/// An `output_config.effort` level. Ordered by strength: `Low < Medium < High < Xhigh < Max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    /// `"low"`.
    Low,
    /// `"medium"`.
    Medium,
    /// `"high"`.
    High,
    /// `"xhigh"`.
    Xhigh,
    /// `"max"`.
    Max,
}

impl Effort {
    /// Every level, weakest first.
    pub const ALL: [Effort; 5] = [
        Effort::Low,
        Effort::Medium,
        Effort::High,
        Effort::Xhigh,
        Effort::Max,
    ];

    /// The wire name: `"low"`, `"medium"`, `"high"`, `"xhigh"` or `"max"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::Xhigh => "xhigh",
            Effort::Max => "max",
        }
    }
}

impl fmt::Display for Effort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Effort {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|effort| effort.as_str() == name)
            .ok_or_else(|| UnknownName::new("effort", name, &Self::ALL.map(Self::as_str)))
    }
}

/// A name that is no known [`ThinkingType`] or [`Effort`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{name}` (expected one of: {expected})")]
pub struct UnknownName {
    /// What was being named: `thinking type` or `effort`.
    pub kind: &'static str,
    /// The name given.
    pub name: String,
    /// The names accepted, comma-separated.
    pub expected: String,
}

impl UnknownName {
    fn new(kind: &'static str, name: &str, expected: &[&str]) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            expected: expected.join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for ty in ThinkingType::ALL {
            assert_eq!(Ok(ty), ty.as_str().parse());
            let json = serde_json::to_string(&ty).unwrap();
            assert_eq!(format!("\"{ty}\""), json);
        }
        for effort in Effort::ALL {
            assert_eq!(Ok(effort), effort.as_str().parse());
        }
        assert_eq!(
            "\"between_tools\"",
            serde_json::to_string(&ThinkingType::BetweenTools).unwrap()
        );
    }

    #[test]
    fn effort_is_ordered_by_strength() {
        assert!(Effort::Low < Effort::Medium);
        assert!(Effort::High < Effort::Xhigh);
        assert!(Effort::Xhigh < Effort::Max);
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let error = "extreme".parse::<Effort>().unwrap_err();
        assert_eq!(
            "unknown effort `extreme` (expected one of: low, medium, high, xhigh, max)",
            error.to_string()
        );
        assert!("between-tools".parse::<ThinkingType>().is_err());
    }
}
