//! [`CatalogError`]: why a catalogue (or a set of overrides) was refused, naming the model
//! and the key by their dotted path (`models.claude-x.max-output-tokens`).

/// A catalogue that cannot be read or contradicts itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The text is not TOML, or does not have the catalogue's shape (an unknown key, a
    /// missing one, a wrong type). toml's message gives the line, the column and the line.
    #[error("{}", .0.to_string().trim_end())]
    Toml(#[source] toml::de::Error),
    /// An entry parses but cannot be right.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The key's dotted path, as in `models.claude-x.thinking.always-on`.
        field: String,
        /// What is wrong with its value.
        reason: String,
    },
}

impl CatalogError {
    /// The dotted path of the invalid key, for an [`Invalid`](CatalogError::Invalid) error.
    pub fn field(&self) -> Option<&str> {
        match self {
            CatalogError::Invalid { field, .. } => Some(field),
            CatalogError::Toml(_) => None,
        }
    }

    pub(super) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CatalogError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The error for `key` (relative to its table) of the model `id`.
    pub(super) fn at(id: &str, (key, reason): (String, String)) -> Self {
        CatalogError::invalid(format!("models.{id}.{key}"), reason)
    }
}
