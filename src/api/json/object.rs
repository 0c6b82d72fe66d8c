//! Edits to the members of a document's top-level object, gathered and applied in one pass
//! so that removals and additions next to each other stay valid JSON.

use bytes::Bytes;

use super::edit::{Chunks, Patch, PatchError};
use super::scan::{members, root};

/// Members to set (replace, or add when absent) and to remove from the top-level object,
/// and edits inside members that are neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectEdit {
    set: Vec<(String, Bytes)>,
    remove: Vec<String>,
    inner: Patch,
}

impl ObjectEdit {
    /// No edits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty() && self.inner.is_empty()
    }

    /// Sets member `key` to `value` (serialized as JSON), replacing it or adding it.
    pub fn set(&mut self, key: &str, value: &impl serde::Serialize) {
        // Cannot fail for the values set here: strings, numbers, JSON values.
        let json = serde_json::to_vec(value).unwrap_or_default();
        self.set_raw(key, json.into());
    }

    /// Sets member `key` to the JSON text `value`.
    pub fn set_raw(&mut self, key: &str, value: Bytes) {
        self.remove.retain(|k| k != key);
        self.set.retain(|(k, _)| k != key);
        self.set.push((key.to_owned(), value));
    }

    /// Removes member `key`, if present.
    pub fn remove(&mut self, key: &str) {
        self.set.retain(|(k, _)| k != key);
        if !self.remove.iter().any(|k| k == key) {
            self.remove.push(key.to_owned());
        }
    }

    /// Edits inside members this edit neither sets nor removes.
    pub fn inner(&mut self) -> &mut Patch {
        &mut self.inner
    }

    /// Whether this edit sets or removes `key`.
    pub fn touches(&self, key: &str) -> bool {
        self.remove.iter().any(|k| k == key) || self.set.iter().any(|(k, _)| k == key)
    }

    /// `doc` with the edits applied (the same buffer when there are none).
    ///
    /// # Errors
    /// [`PatchError`] when `doc` is not an object or inner edits overlap a member that is
    /// set or removed.
    pub fn apply(&self, doc: &Bytes) -> Result<Chunks, PatchError> {
        if self.is_empty() {
            return Ok(Chunks::from(doc.clone()));
        }
        let object = root(doc).map_err(|e| PatchError { at: e.at })?;
        let entries = members(doc, object.clone()).map_err(|e| PatchError { at: e.at })?;
        let mut patch = self.inner.clone();
        let mut removed = Vec::new();
        let mut added: Vec<&(String, Bytes)> = self.set.iter().collect();
        for (i, entry) in entries.iter().enumerate() {
            let key = entry.key.as_deref().unwrap_or_default();
            if self.remove.iter().any(|k| k == key) {
                removed.push(i);
            } else if let Some(at) = added.iter().position(|(k, _)| k == key) {
                let (_, value) = added.remove(at);
                patch.splice(entry.value.clone(), value.clone());
            }
        }
        patch.remove_entries(&object, &entries, &removed);
        for (key, value) in added {
            let value: serde_json::Value =
                serde_json::from_slice(value).map_err(|_| PatchError { at: object.start })?;
            patch.add_member(&object, &entries, &removed, key, &value);
        }
        patch.apply(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(doc: &str, edit: &ObjectEdit) -> String {
        let joined = edit
            .apply(&Bytes::copy_from_slice(doc.as_bytes()))
            .unwrap()
            .join();
        let text = String::from_utf8(joined.to_vec()).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).expect("valid JSON");
        text
    }

    #[test]
    fn neighbours_removed_and_added_together_stay_valid() {
        let mut edit = ObjectEdit::new();
        edit.remove("temperature");
        edit.remove("stream");
        edit.set("model", &"b");
        edit.set("thinking", &serde_json::json!({"type": "adaptive"}));
        let doc = r#"{"model": "a", "max_tokens": 1e1, "temperature": 0.5, "stream": true}"#;
        assert_eq!(
            applied(doc, &edit),
            r#"{"model": "b", "max_tokens": 1e1,"thinking":{"type":"adaptive"}}"#
        );
    }

    #[test]
    fn an_empty_edit_is_the_same_buffer() {
        let doc = Bytes::from_static(b"{\"a\":1}");
        assert_eq!(
            ObjectEdit::new().apply(&doc).unwrap().join().as_ptr(),
            doc.as_ptr()
        );
    }
}
