//! The checks on one catalogue entry: an entry that parses may still contradict itself (a
//! default effort it does not take, thinking always on yet `disabled` accepted). Errors name
//! the key under the model's table (`thinking.always-on`) and why.

use super::spec::ModelSpec;
use super::wire::ThinkingType;

/// A bad key of one entry, relative to its table, and the reason.
pub(super) type Problem = (String, String);

fn problem(key: &str, reason: impl Into<String>) -> Problem {
    (key.to_owned(), reason.into())
}

/// Checks `spec` on its own (names across the catalogue are checked by the catalogue).
pub(super) fn validate(spec: &ModelSpec) -> Result<(), Problem> {
    if spec.max_output_tokens == 0 {
        return Err(problem("max-output-tokens", "must be at least 1"));
    }
    if spec.context_window == 0 {
        return Err(problem("context-window", "must be at least 1"));
    }
    validate_thinking(spec)?;
    validate_effort(spec)?;
    for (key, names) in [
        ("aliases", &spec.aliases),
        ("refused-tools", &spec.refused_tools),
        ("reads-thinking-from", &spec.reads_thinking_from),
    ] {
        if let Some(index) = names.iter().position(|name| name.trim().is_empty()) {
            return Err(problem(&format!("{key}[{index}]"), "must not be empty"));
        }
    }
    for (platform, id) in &spec.platforms {
        if id.trim().is_empty() {
            return Err(problem(
                &format!("platforms.{platform}"),
                "must not be empty",
            ));
        }
    }
    let lifecycle = &spec.lifecycle;
    for (key, date) in [
        ("lifecycle.retires", &lifecycle.retires),
        (
            "lifecycle.retires-not-before",
            &lifecycle.retires_not_before,
        ),
    ] {
        if let Some(date) = date.as_deref().filter(|date| !is_date(date)) {
            return Err(problem(
                key,
                format!("must be a date as YYYY-MM-DD, got {date:?}"),
            ));
        }
    }
    Ok(())
}

fn validate_thinking(spec: &ModelSpec) -> Result<(), Problem> {
    let thinking = &spec.thinking;
    if thinking.accepted.is_empty() {
        return Err(problem("thinking.accepted", "must name at least one type"));
    }
    let disabled = thinking.accepted.contains(&ThinkingType::Disabled);
    if thinking.always_on == disabled {
        let reason = "must be true exactly when \"disabled\" is not in thinking.accepted";
        return Err(problem("thinking.always-on", reason));
    }
    if thinking.always_on && !thinking.default_on {
        return Err(problem(
            "thinking.default-on",
            "must be true when always-on is",
        ));
    }
    for (index, refusal) in thinking.refused_at_effort.iter().enumerate() {
        let key = format!("thinking.refused-at-effort[{index}]");
        if !thinking.accepted.contains(&refusal.thinking) {
            let reason = format!("{} is not in thinking.accepted", refusal.thinking);
            return Err(problem(&format!("{key}.type"), reason));
        }
        if refusal.efforts.is_empty() {
            return Err(problem(
                &format!("{key}.efforts"),
                "must name at least one level",
            ));
        }
        if let Some(effort) = refusal.efforts.iter().find(|e| !spec.effort.supports(**e)) {
            let reason = format!("{effort} is not in effort.levels");
            return Err(problem(&format!("{key}.efforts"), reason));
        }
    }
    let enabled = thinking.accepted.contains(&ThinkingType::Enabled);
    if enabled && thinking.min_budget_tokens == 0 {
        return Err(problem("thinking.min-budget-tokens", "must be at least 1"));
    }
    if enabled && thinking.min_budget_tokens >= spec.max_output_tokens {
        let reason = "must be below max-output-tokens, or no budget fits";
        return Err(problem("thinking.min-budget-tokens", reason));
    }
    Ok(())
}

fn validate_effort(spec: &ModelSpec) -> Result<(), Problem> {
    let effort = &spec.effort;
    if let Some(default) = effort.default.filter(|default| !effort.supports(*default)) {
        let reason = format!("{default} is not in effort.levels");
        return Err(problem("effort.default", reason));
    }
    Ok(())
}

/// `YYYY-MM-DD` with a month in 1..=12 and a day in 1..=31: enough to compare as text.
fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return false;
    };
    let number = |part: &str, len: usize| {
        (part.len() == len && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u32>().ok())
            .flatten()
    };
    number(year, 4).is_some()
        && number(month, 2).is_some_and(|m| (1..=12).contains(&m))
        && number(day, 2).is_some_and(|d| (1..=31).contains(&d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked_for_shape() {
        assert!(is_date("2026-11-30"));
        for bad in [
            "2026-13-01",
            "2026-1-01",
            "26-11-30",
            "2026-11-30T00",
            "2026/11/30",
            "",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }
}
