//! The batch input: JSONL in the Message Batches API's shape, one
//! `{"custom_id": "...", "params": {<a Messages request>}}` per line, validated whole before
//! anything is sent, and read again as it is loaded into the store.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::api::{MessagesRequest, RequestError};

/// The longest `custom_id` the Batches API takes.
pub const MAX_CUSTOM_ID: usize = 64;

/// What is wrong with one input line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not a JSON object of the batch shape.
    Json(String),
    /// No `custom_id`.
    MissingCustomId,
    /// A `custom_id` the Batches API would refuse.
    BadCustomId(String),
    /// The same `custom_id` as an earlier line.
    Duplicate {
        /// The id.
        custom_id: String,
        /// The line it first appeared on.
        first: usize,
    },
    /// No `params`.
    MissingParams,
    /// `params` lacks a required field (`model`, `max_tokens`, `messages`).
    MissingField(&'static str),
    /// `params` is not a Messages request for another reason.
    InvalidParams(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Json(error) => write!(f, "not valid JSON: {error}"),
            Problem::MissingCustomId => f.write_str("missing custom_id"),
            Problem::BadCustomId(why) => write!(f, "invalid custom_id: {why}"),
            Problem::Duplicate { custom_id, first } => {
                write!(
                    f,
                    "duplicate custom_id {custom_id:?} (first on line {first})"
                )
            }
            Problem::MissingParams => f.write_str("missing params"),
            Problem::MissingField(field) => write!(f, "params: missing field `{field}`"),
            Problem::InvalidParams(error) => write!(f, "params: {error}"),
        }
    }
}

/// A bad line: its number (from 1) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The line number, from 1.
    pub line: usize,
    /// The `custom_id`, when it could be read.
    pub custom_id: Option<String>,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// One good line, ready to be stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The line number, from 1.
    pub line: usize,
    /// The caller's id.
    pub custom_id: String,
    /// The request, as JSON text exactly as given.
    pub params: String,
}

/// A line as read: good or bad. Blank lines are skipped.
pub type Line = Result<Item, Invalid>;

/// What a validation pass found.
#[derive(Debug)]
pub struct Validated {
    /// Lines holding an item, good or bad.
    pub items: usize,
    /// The bad ones, in order.
    pub invalid: Vec<Invalid>,
    /// SHA-256 of the file's bytes, in hex: what binds a state file to its input.
    pub fingerprint: String,
}

/// Reads `path` line by line, checking each and remembering every `custom_id` to find
/// duplicates; memory grows with the ids only, never with the requests.
///
/// # Errors
/// The file cannot be opened or read.
pub fn validate(path: &Path) -> io::Result<Validated> {
    let mut hasher = Sha256::new();
    let mut invalid = Vec::new();
    let mut items = 0;
    for line in lines(path, Some(&mut hasher))? {
        items += 1;
        if let Err(bad) = line? {
            invalid.push(bad);
        }
    }
    let fingerprint = hex(&hasher.finalize());
    Ok(Validated {
        items,
        invalid,
        fingerprint,
    })
}

/// `bytes` in lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Every non-blank line of `path`, checked, with duplicates found against earlier lines;
/// `hasher`, when given, is fed every byte read.
///
/// # Errors
/// The file cannot be opened; each item is an `Err` if reading failed there.
pub fn lines<'h>(
    path: &Path,
    hasher: Option<&'h mut Sha256>,
) -> io::Result<impl Iterator<Item = io::Result<Line>> + 'h> {
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut hasher = hasher;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut number = 0;
    let mut buffer = Vec::new();
    Ok(std::iter::from_fn(move || {
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(error) => return Some(Err(error)),
            }
            if let Some(hasher) = hasher.as_deref_mut() {
                hasher.update(&buffer);
            }
            number += 1;
            if buffer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(Ok(check(number, &buffer, &mut seen)));
        }
    }))
}

#[derive(Deserialize)]
struct Shape<'a> {
    #[serde(default, borrow)]
    custom_id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
}

fn check(line: usize, bytes: &[u8], seen: &mut HashMap<String, usize>) -> Line {
    let bad = |custom_id: Option<String>, problem| {
        Err(Invalid {
            line,
            custom_id,
            problem,
        })
    };
    let shape: Shape<'_> = match serde_json::from_slice(bytes) {
        Ok(shape) => shape,
        Err(error) => return bad(None, Problem::Json(error.to_string())),
    };
    let Some(raw_id) = shape.custom_id else {
        return bad(None, Problem::MissingCustomId);
    };
    let Ok(custom_id) = serde_json::from_str::<String>(raw_id.get()) else {
        let why = format!("must be a string, not {}", raw_id.get());
        return bad(None, Problem::BadCustomId(why));
    };
    if let Some(&first) = seen.get(&custom_id) {
        let problem = Problem::Duplicate {
            custom_id: custom_id.clone(),
            first,
        };
        return bad(Some(custom_id), problem);
    }
    seen.insert(custom_id.clone(), line);
    if let Some(why) = custom_id_problem(&custom_id) {
        return bad(Some(custom_id), Problem::BadCustomId(why));
    }
    let Some(params) = shape.params else {
        return bad(Some(custom_id), Problem::MissingParams);
    };
    match MessagesRequest::from_json(params.get().as_bytes()) {
        Ok(_) => Ok(Item {
            line,
            custom_id,
            params: params.get().to_owned(),
        }),
        Err(RequestError::MissingField(field)) => {
            bad(Some(custom_id), Problem::MissingField(field))
        }
        Err(RequestError::Invalid(error)) => bad(Some(custom_id), Problem::InvalidParams(error)),
    }
}

/// Why the Batches API would refuse `id` (1 to 64 of `a-z A-Z 0-9 _ -`), if it would.
fn custom_id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("is empty".into());
    }
    // Characters, as the message says: a non-ASCII id is several bytes a character.
    let length = id.chars().count();
    if length > MAX_CUSTOM_ID {
        return Some(format!("is {length} characters; at most {MAX_CUSTOM_ID}"));
    }
    let bad = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))?;
    Some(format!(
        "{id:?} holds {bad:?}; only letters, digits, '_' and '-' are allowed"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, text).unwrap();
        validate(&path)
            .unwrap()
            .invalid
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const GOOD: &str =
        r#"{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;

    #[test]
    fn each_kind_of_bad_line_is_named_with_its_number() {
        let text = [
            format!(r#"{{"custom_id":"a","params":{GOOD}}}"#),
            "{not json".to_owned(),
            format!(r#"{{"params":{GOOD}}}"#),
            format!(r#"{{"custom_id":"a","params":{GOOD}}}"#),
            r#"{"custom_id":"b","params":{"max_tokens":8,"messages":[]}}"#.to_owned(),
            r#"{"custom_id":"c","params":{"model":"m","messages":[]}}"#.to_owned(),
            r#"{"custom_id":"d","params":{"model":"m","max_tokens":8}}"#.to_owned(),
            r#"{"custom_id":"e"}"#.to_owned(),
            format!(r#"{{"custom_id":"has space","params":{GOOD}}}"#),
            format!(r#"{{"custom_id":7,"params":{GOOD}}}"#),
            String::new(),
            format!(r#"{{"custom_id":"ok-2","params":{GOOD}}}"#),
        ]
        .join("\n");
        assert_eq!(
            problems(&text),
            [
                "line 2: not valid JSON: key must be a string at line 1 column 2",
                "line 3: missing custom_id",
                "line 4: duplicate custom_id \"a\" (first on line 1)",
                "line 5: params: missing field `model`",
                "line 6: params: missing field `max_tokens`",
                "line 7: params: missing field `messages`",
                "line 8: missing params",
                "line 9: invalid custom_id: \"has space\" holds ' '; only letters, digits, '_' and '-' are allowed",
                "line 10: invalid custom_id: must be a string, not 7",
            ]
        );
    }

    #[test]
    fn a_repeated_invalid_id_is_a_duplicate_too() {
        let text = [
            format!(r#"{{"custom_id":"has space","params":{GOOD}}}"#),
            format!(r#"{{"custom_id":"has space","params":{GOOD}}}"#),
        ]
        .join("\n");
        let found = problems(&text);
        assert!(
            found[0].starts_with("line 1: invalid custom_id"),
            "{found:?}"
        );
        assert_eq!(
            found[1],
            "line 2: duplicate custom_id \"has space\" (first on line 1)"
        );
    }

    #[test]
    fn a_custom_id_length_is_counted_in_characters() {
        let accented = "é".repeat(40);
        let problem = custom_id_problem(&accented).expect("é is refused");
        assert!(problem.contains("'é'"), "{problem}");
        let long = "é".repeat(65);
        assert_eq!(
            custom_id_problem(&long).as_deref(),
            Some("is 65 characters; at most 64")
        );
    }

    #[test]
    fn the_fingerprint_follows_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let line = format!("{{\"custom_id\":\"a\",\"params\":{GOOD}}}\n");
        std::fs::write(&path, &line).unwrap();
        let first = validate(&path).unwrap();
        assert_eq!(first.items, 1);
        assert!(first.invalid.is_empty());
        assert_eq!(validate(&path).unwrap().fingerprint, first.fingerprint);
        std::fs::write(&path, line.replace("hi", "ho")).unwrap();
        assert_ne!(validate(&path).unwrap().fingerprint, first.fingerprint);
    }
}
