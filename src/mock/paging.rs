//! Paging and timestamps as the API's list endpoints give them: [`Page`] of a list by
//! `limit`, `after_id` and `before_id` ([`PageQuery`]), and RFC 3339 times ([`rfc3339`]),
//! shared by the mock's models, Message Batches and Files routes.

use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// An instant `since_epoch` after the Unix epoch, as RFC 3339 (`2026-12-01T04:31:13Z`).
pub(crate) fn rfc3339(since_epoch: Duration) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + since_epoch).to_string()
}

/// A list call's paging: at most `limit` items after `after_id` or before `before_id`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    limit: Option<usize>,
    after_id: Option<String>,
    before_id: Option<String>,
}

/// A page of a list, in the API's shape.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    data: Vec<T>,
    has_more: bool,
    first_id: Option<String>,
    last_id: Option<String>,
}

impl<T> Page<T> {
    /// The page of `items` (in list order) that `query` asks for.
    pub(crate) fn of(items: Vec<T>, query: &PageQuery, id: impl Fn(&T) -> &str) -> Self {
        let limit = query.limit.unwrap_or(20).clamp(1, 1000);
        let position = |wanted: &str| items.iter().position(|item| id(item) == wanted);
        let (start, end, has_more) = if let Some(before) = query.before_id.as_deref() {
            let end = position(before).unwrap_or(0);
            let start = end.saturating_sub(limit);
            (start, end, start > 0)
        } else {
            let start = query
                .after_id
                .as_deref()
                .map_or(0, |after| position(after).map_or(items.len(), |at| at + 1));
            let end = (start + limit).min(items.len());
            (start, end, end < items.len())
        };
        let data: Vec<T> = items.into_iter().skip(start).take(end - start).collect();
        Self {
            first_id: data.first().map(|item| id(item).to_owned()),
            last_id: data.last().map(|item| id(item).to_owned()),
            data,
            has_more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_go_forward_and_back() {
        let items: Vec<String> = (1..=5).map(|n| format!("id{n}")).collect();
        let query = |limit, after: Option<&str>, before: Option<&str>| PageQuery {
            limit: Some(limit),
            after_id: after.map(str::to_owned),
            before_id: before.map(str::to_owned),
        };
        let page = Page::of(items.clone(), &query(2, None, None), String::as_str);
        assert_eq!((page.data.len(), page.has_more), (2, true));
        assert_eq!(page.last_id.as_deref(), Some("id2"));
        let page = Page::of(items.clone(), &query(2, Some("id4"), None), String::as_str);
        assert_eq!((page.data, page.has_more), (vec!["id5".to_owned()], false));
        let page = Page::of(items, &query(2, None, Some("id4")), String::as_str);
        assert_eq!(
            (page.data, page.has_more),
            (vec!["id2".to_owned(), "id3".to_owned()], true)
        );
    }
}
