//! Loading the input into the store in chunks, and the marker an invalid line is stored
//! with under `--skip-invalid` (so its try stores it as errored without sending it).

use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::input;
use crate::store::{BATCH, Item, NewItem, Store, StoreError};

/// Stores every line of `input` not stored yet, in chunks, then marks the input loaded;
/// returns the fingerprint of what it read. An input that cannot be read stops it with
/// nothing marked, and the next run loads again.
pub(super) fn load(store: &mut Store, input: &Path) -> Result<io::Result<String>, StoreError> {
    const CHUNK: usize = 5_000;
    let mut hasher = Sha256::new();
    let mut lines = match input::lines(input, Some(&mut hasher)) {
        Ok(lines) => lines,
        Err(error) => return Ok(Err(error)),
    };
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        for line in lines.by_ref().take(CHUNK) {
            match line {
                Ok(line) => chunk.push(to_new_item(line)),
                Err(error) => return Ok(Err(error)),
            }
        }
        if chunk.is_empty() {
            break;
        }
        store.insert_many(BATCH, chunk)?;
    }
    drop(lines);
    let fingerprint = input::hex(&hasher.finalize());
    store.set_meta(LOADED, "yes")?;
    Ok(Ok(fingerprint))
}

/// The meta key set once the whole input is in the store.
pub(super) const LOADED: &str = "input.loaded";

/// The options of an item stored from an invalid line (`--skip-invalid`): what is wrong.
#[derive(serde::Serialize, serde::Deserialize)]
struct InvalidLine {
    invalid: String,
}

fn to_new_item(line: input::Line) -> NewItem {
    match line {
        Ok(item) => NewItem::new(item.custom_id, item.line as u64, item.params),
        Err(bad) => {
            let marker = InvalidLine {
                invalid: bad.to_string(),
            };
            NewItem::new(bad.custom_id.unwrap_or_default(), bad.line as u64, "null")
                .with_options(serde_json::to_string(&marker).unwrap_or_default())
        }
    }
}

/// What is wrong with the line `item` was stored from, if it was invalid.
pub(super) fn invalid_line(item: &Item) -> Option<String> {
    let options = item.options.as_deref()?;
    serde_json::from_str::<InvalidLine>(options)
        .ok()
        .map(|line| line.invalid)
}
