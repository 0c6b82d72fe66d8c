//! Reading the environment: a variable counts only when set to something other than blanks,
//! so `ANTHROPIC_API_KEY=` in a shell profile does not mask the next source.

/// The variable `name`, unless it is unset or blank.
pub(crate) fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}
