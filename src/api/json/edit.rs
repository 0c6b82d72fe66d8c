//! Edits to a JSON document as byte splices: replace a value, remove members or items,
//! add members. Applying a [`Patch`] cuts the original [`Bytes`] into shared slices around
//! the edits, so the untouched parts are neither parsed again nor copied.

use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};

use super::scan::Entry;

/// Edits overlap, so they cannot be applied together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("overlapping JSON edits at byte {at}")]
pub struct PatchError {
    /// Where the second edit starts.
    pub at: usize,
}

/// Splices to apply to one document; ranges index the original bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Patch {
    edits: Vec<(Range<usize>, Bytes)>,
}

impl Patch {
    /// No edits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// Adds every edit of `other`.
    pub fn extend(&mut self, other: Patch) {
        self.edits.extend(other.edits);
    }

    /// Replaces the bytes at `range` with `with` (an insertion when `range` is empty).
    pub fn splice(&mut self, range: Range<usize>, with: impl Into<Bytes>) {
        self.edits.push((range, with.into()));
    }

    /// Replaces the value at `range` with `value` serialized as JSON.
    pub fn replace_value(&mut self, range: Range<usize>, value: &impl serde::Serialize) {
        self.splice(range, to_json(value));
    }

    /// Removes the entries of one object or array whose indexes are in `remove`, with the
    /// commas around them, keeping the rest valid JSON. `entries` are all the container's
    /// entries, in order; `container` its range.
    pub fn remove_entries(
        &mut self,
        container: &Range<usize>,
        entries: &[Entry<'_>],
        remove: &[usize],
    ) {
        let gone = |i: usize| remove.contains(&i);
        if entries.is_empty() || remove.is_empty() {
            return;
        }
        if (0..entries.len()).all(gone) {
            let first = entries[0].start;
            let last = entries[entries.len() - 1].value.end;
            self.splice(first..last, Bytes::new());
            let _ = container;
            return;
        }
        let mut i = 0;
        while i < entries.len() {
            if !gone(i) {
                i += 1;
                continue;
            }
            let run = i;
            while i < entries.len() && gone(i) {
                i += 1;
            }
            if i < entries.len() {
                // A kept entry follows: cut from the run's start to the next entry's start.
                self.splice(entries[run].start..entries[i].start, Bytes::new());
            } else {
                // The run ends the container: cut from the previous kept value's end.
                let from = entries[run - 1].value.end;
                self.splice(from..entries[i - 1].value.end, Bytes::new());
            }
        }
    }

    /// Adds the member `key: value` to the object at `object`, whose current members are
    /// `entries` and of which those in `removed` are being removed by this patch.
    pub fn add_member(
        &mut self,
        object: &Range<usize>,
        entries: &[Entry<'_>],
        removed: &[usize],
        key: &str,
        value: &impl serde::Serialize,
    ) {
        let kept = (0..entries.len()).rev().find(|i| !removed.contains(i));
        let mut text = BytesMut::new();
        let member = [to_json(&key), Bytes::from_static(b":"), to_json(value)];
        // After the last member that stays, else right after the opening brace.
        let at = if let Some(last) = kept {
            text.extend_from_slice(b",");
            entries[last].value.end
        } else {
            object.start + 1
        };
        for part in &member {
            text.extend_from_slice(part);
        }
        self.splice(at..at, text.freeze());
    }

    /// `doc` with every edit applied, as shared slices of `doc` and the new bytes.
    ///
    /// # Errors
    /// [`PatchError`] when two edits overlap.
    pub fn apply(&self, doc: &Bytes) -> Result<Chunks, PatchError> {
        let mut edits: Vec<&(Range<usize>, Bytes)> = self.edits.iter().collect();
        // Insertions before removals that start at the same byte.
        edits.sort_by_key(|(range, _)| (range.start, range.end));
        let mut chunks = Vec::with_capacity(edits.len() * 2 + 1);
        let mut cursor = 0;
        for (range, with) in edits {
            if range.start < cursor || range.end > doc.len() || range.start > range.end {
                return Err(PatchError { at: range.start });
            }
            chunks.push(doc.slice(cursor..range.start));
            chunks.push(with.clone());
            cursor = range.end;
        }
        chunks.push(doc.slice(cursor..));
        chunks.retain(|chunk| !chunk.is_empty());
        Ok(Chunks::new(chunks))
    }
}

fn to_json(value: &impl serde::Serialize) -> Bytes {
    // Cannot fail for the values edits carry: strings, numbers and JSON values.
    serde_json::to_vec(value).unwrap_or_default().into()
}

/// A body made of shared slices, sent without joining them: an HTTP body with an exact
/// length, or joined with [`Chunks::join`] where one buffer is needed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunks {
    parts: Vec<Bytes>,
    len: usize,
}

impl Chunks {
    /// These parts, in order.
    pub fn new(parts: Vec<Bytes>) -> Self {
        let len = parts.iter().map(Bytes::len).sum();
        Self { parts, len }
    }

    /// The total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The parts.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// One buffer: the single part itself when there is one, else a copy of all of them.
    pub fn join(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            parts => {
                let mut joined = BytesMut::with_capacity(self.len);
                for part in parts {
                    joined.extend_from_slice(part);
                }
                joined.freeze()
            }
        }
    }
}

impl From<Bytes> for Chunks {
    fn from(bytes: Bytes) -> Self {
        Self::new(vec![bytes])
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.parts.is_empty() {
            return Poll::Ready(None);
        }
        let part = self.parts.remove(0);
        self.len -= part.len();
        Poll::Ready(Some(Ok(http_body::Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::super::scan::{members, root};
    use super::*;

    fn edited(doc: &str, edit: impl Fn(&mut Patch, &[u8])) -> String {
        let bytes = Bytes::copy_from_slice(doc.as_bytes());
        let mut patch = Patch::new();
        edit(&mut patch, &bytes);
        let joined = patch.apply(&bytes).unwrap().join();
        let text = String::from_utf8(joined.to_vec()).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).expect("valid JSON");
        text
    }

    fn remove(doc: &str, which: &[usize]) -> String {
        edited(doc, |patch, bytes| {
            let object = root(bytes).unwrap();
            let entries = members(bytes, object.clone()).unwrap();
            patch.remove_entries(&object, &entries, which);
        })
    }

    #[test]
    fn removing_members_keeps_the_rest_byte_for_byte() {
        let doc = r#"{"a": 1e2, "b": [1], "c": 12345678901234567890123, "d": {}}"#;
        assert_eq!(
            remove(doc, &[0]),
            r#"{"b": [1], "c": 12345678901234567890123, "d": {}}"#
        );
        assert_eq!(remove(doc, &[1, 2]), r#"{"a": 1e2, "d": {}}"#);
        assert_eq!(remove(doc, &[2, 3]), r#"{"a": 1e2, "b": [1]}"#);
        assert_eq!(
            remove(doc, &[0, 3]),
            r#"{"b": [1], "c": 12345678901234567890123}"#
        );
        assert_eq!(remove(doc, &[0, 1, 2, 3]), "{}");
    }

    #[test]
    fn adding_a_member_after_the_last_kept_one() {
        let add = |doc: &str, removed: &[usize]| {
            edited(doc, |patch, bytes| {
                let object = root(bytes).unwrap();
                let entries = members(bytes, object.clone()).unwrap();
                patch.remove_entries(&object, &entries, removed);
                patch.add_member(
                    &object,
                    &entries,
                    removed,
                    "k",
                    &serde_json::json!({"x": 1}),
                );
            })
        };
        assert_eq!(
            add(r#"{"a": 1, "b": 2}"#, &[]),
            r#"{"a": 1, "b": 2,"k":{"x":1}}"#
        );
        assert_eq!(add(r#"{"a": 1, "b": 2}"#, &[1]), r#"{"a": 1,"k":{"x":1}}"#);
        assert_eq!(add(r#"{"a": 1, "b": 2}"#, &[0, 1]), r#"{"k":{"x":1}}"#);
        assert_eq!(add("{ }", &[]), r#"{"k":{"x":1} }"#);
    }

    #[test]
    fn unpatched_documents_are_the_same_buffer() {
        let doc = Bytes::from_static(br#"{"a":1}"#);
        let chunks = Patch::new().apply(&doc).unwrap();
        assert_eq!(chunks.parts().len(), 1);
        assert_eq!(chunks.join().as_ptr(), doc.as_ptr());
    }

    #[test]
    fn overlapping_edits_are_refused() {
        let doc = Bytes::from_static(br#"{"a":1}"#);
        let mut patch = Patch::new();
        patch.splice(1..5, "x");
        patch.splice(3..6, "y");
        assert_eq!(patch.apply(&doc), Err(PatchError { at: 3 }));
    }
}
