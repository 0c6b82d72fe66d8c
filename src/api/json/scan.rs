//! Finds where values sit in a JSON document: the members of an object, the items of an
//! array, as byte ranges into the document.

use std::borrow::Cow;
use std::ops::Range;

/// A document (or part of one) that is not the JSON the caller expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed JSON at byte {at}: {why}")]
pub struct JsonError {
    /// Where the scan stopped.
    pub at: usize,
    /// What it found there.
    pub why: &'static str,
}

fn fail<T>(at: usize, why: &'static str) -> Result<T, JsonError> {
    Err(JsonError { at, why })
}

/// A member of an object or an item of an array, located in its document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The member's key (unescaped); `None` for an array item.
    pub key: Option<Cow<'a, str>>,
    /// Where the entry starts: its key's opening quote, or the item's first byte.
    pub start: usize,
    /// Where its value sits.
    pub value: Range<usize>,
}

impl Entry<'_> {
    /// Whether this member's key is `key`.
    pub fn is(&self, key: &str) -> bool {
        self.key.as_deref() == Some(key)
    }
}

/// The range of the document's one top-level value, without surrounding whitespace.
///
/// # Errors
/// [`JsonError`] when there is no value, or something follows it.
pub fn root(doc: &[u8]) -> Result<Range<usize>, JsonError> {
    let start = skip_ws(doc, 0);
    let end = skip_value(doc, start)?;
    let rest = skip_ws(doc, end);
    if rest != doc.len() {
        return fail(rest, "trailing characters");
    }
    Ok(start..end)
}

/// The members of the object at `object` (the range of `{...}` in `doc`), in document order.
///
/// # Errors
/// [`JsonError`] when `object` is not an object.
pub fn members(doc: &[u8], object: Range<usize>) -> Result<Vec<Entry<'_>>, JsonError> {
    entries(doc, object, b'{', b'}')
}

/// The items of the array at `array` (the range of `[...]` in `doc`), in order.
///
/// # Errors
/// [`JsonError`] when `array` is not an array.
pub fn items(doc: &[u8], array: Range<usize>) -> Result<Vec<Entry<'_>>, JsonError> {
    entries(doc, array, b'[', b']')
}

fn entries(
    doc: &[u8],
    range: Range<usize>,
    open: u8,
    close: u8,
) -> Result<Vec<Entry<'_>>, JsonError> {
    if doc.get(range.start) != Some(&open)
        || range.end == 0
        || doc.get(range.end - 1) != Some(&close)
    {
        return fail(range.start, "not the expected container");
    }
    let keyed = open == b'{';
    let mut found = Vec::new();
    let mut at = skip_ws(doc, range.start + 1);
    if doc.get(at) == Some(&close) {
        return Ok(found);
    }
    loop {
        let start = at;
        let key = if keyed {
            let end = skip_string(doc, at)?;
            let key = unescape(doc, start..end)?;
            at = skip_ws(doc, end);
            if doc.get(at) != Some(&b':') {
                return fail(at, "expected ':'");
            }
            at = skip_ws(doc, at + 1);
            Some(key)
        } else {
            None
        };
        let value_end = skip_value(doc, at)?;
        found.push(Entry {
            key,
            start,
            value: at..value_end,
        });
        at = skip_ws(doc, value_end);
        match doc.get(at) {
            Some(b',') => at = skip_ws(doc, at + 1),
            Some(&byte) if byte == close => return Ok(found),
            _ => return fail(at, "expected ',' or the container's end"),
        }
    }
}

/// A string's contents, unescaped only when it holds escapes.
fn unescape(doc: &[u8], string: Range<usize>) -> Result<Cow<'_, str>, JsonError> {
    let raw = &doc[string.clone()];
    let inner = &raw[1..raw.len() - 1];
    if !inner.contains(&b'\\') {
        return std::str::from_utf8(inner)
            .map(Cow::Borrowed)
            .or_else(|_| fail(string.start, "invalid UTF-8"));
    }
    serde_json::from_slice::<String>(raw)
        .map(Cow::Owned)
        .or_else(|_| fail(string.start, "invalid string"))
}

fn skip_ws(doc: &[u8], mut at: usize) -> usize {
    while matches!(doc.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The end of the string starting at `at` (just past its closing quote).
fn skip_string(doc: &[u8], at: usize) -> Result<usize, JsonError> {
    if doc.get(at) != Some(&b'"') {
        return fail(at, "expected a string");
    }
    let mut i = at + 1;
    while let Some(&byte) = doc.get(i) {
        match byte {
            b'"' => return Ok(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    fail(at, "unterminated string")
}

/// The end of the value starting at `at`.
fn skip_value(doc: &[u8], at: usize) -> Result<usize, JsonError> {
    match doc.get(at) {
        Some(b'"') => skip_string(doc, at),
        Some(b'{' | b'[') => skip_container(doc, at),
        Some(_) => {
            let mut i = at;
            while let Some(byte) = doc.get(i) {
                if matches!(
                    byte,
                    b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' | b':'
                ) {
                    break;
                }
                i += 1;
            }
            if i == at {
                return fail(at, "expected a value");
            }
            Ok(i)
        }
        None => fail(at, "expected a value, found the end"),
    }
}

/// The end of the object or array starting at `at`, strings skipped whole.
fn skip_container(doc: &[u8], at: usize) -> Result<usize, JsonError> {
    let mut depth = 0usize;
    let mut i = at;
    while let Some(&byte) = doc.get(i) {
        match byte {
            b'"' => {
                i = skip_string(doc, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    fail(at, "unterminated container")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(doc: &[u8], range: Range<usize>) -> &str {
        std::str::from_utf8(&doc[range]).unwrap()
    }

    #[test]
    fn members_are_found_in_document_order_with_exact_value_bytes() {
        let doc = br#" { "b" : 1e2 , "a":{"x":[1,"]}"]}, "big": 123456789012345678901234,
            "s\u0074r": "q\"uote" } "#;
        let object = root(doc).unwrap();
        let found = members(doc, object).unwrap();
        let keys: Vec<_> = found.iter().map(|e| e.key.as_deref().unwrap()).collect();
        assert_eq!(keys, ["b", "a", "big", "str"]);
        let values: Vec<_> = found.iter().map(|e| text(doc, e.value.clone())).collect();
        assert_eq!(
            values,
            [
                "1e2",
                r#"{"x":[1,"]}"]}"#,
                "123456789012345678901234",
                r#""q\"uote""#
            ]
        );
        assert_eq!(text(doc, found[1].start..found[1].start + 3), r#""a""#);
    }

    #[test]
    fn items_and_empty_containers() {
        let doc = br#"[ {} , [] ,"x", null ]"#;
        let found = items(doc, root(doc).unwrap()).unwrap();
        let values: Vec<_> = found.iter().map(|e| text(doc, e.value.clone())).collect();
        assert_eq!(values, ["{}", "[]", r#""x""#, "null"]);
        assert!(
            found
                .iter()
                .all(|e| e.key.is_none() && e.start == e.value.start)
        );
        assert_eq!(members(b"{ }", 0..3).unwrap(), vec![]);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for doc in [
            &b""[..],
            b"{",
            b"{\"a\"",
            b"{\"a\":}",
            b"[1,",
            b"\"abc",
            b"{} x",
            b"{\"a\" 1}",
        ] {
            let scanned = root(doc).and_then(|r| {
                if doc.first() == Some(&b'{') {
                    members(doc, r).map(|_| ())
                } else {
                    Ok(())
                }
            });
            assert!(scanned.is_err(), "{:?}", String::from_utf8_lossy(doc));
        }
        assert!(members(b"[1]", 0..3).is_err());
    }
}
