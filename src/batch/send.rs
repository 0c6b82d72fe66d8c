//! One try of one claimed item: an invalid line is stored as errored unsent; otherwise the
//! request goes through the [`Runtime`] on its model's chain (a model in no chain is served
//! alone), and the store's shared rule (`decide_item`) gives the verdict.

use super::load::invalid_line;
use super::options::BatchOptions;
use crate::api::WireRequest;
use crate::engine::{Priority, RequestOptions, Target};
use crate::runtime::Runtime;
use crate::store::{Item, ItemResult, ItemUpdate, Verdict, decide_item};

/// Sends one claimed item; the verdict on what is to be stored of it.
pub(super) async fn send_item(runtime: &Runtime, options: &BatchOptions, item: Item) -> Verdict {
    let key = item.key.clone();
    let fail = |kind: &str, message: &str| {
        Verdict::Store(ItemUpdate::Fail {
            key: key.clone(),
            error: ItemResult::errored_json(kind, message),
        })
    };
    if let Some(problem) = invalid_line(&item) {
        return fail("invalid_request_error", &problem);
    }
    let payload = bytes::Bytes::copy_from_slice(item.payload.as_bytes());
    let request = match WireRequest::from_json(payload) {
        Ok(request) => request,
        Err(error) => return fail("invalid_request_error", &error.to_string()),
    };
    let chain = match runtime.chain_for_model(request.model()) {
        Some(chain) => chain,
        None => match runtime.serve_alone(request.model()).await {
            Ok(()) => vec![Target::new(request.model())],
            Err(error) => return Verdict::Store(options.requeue().release(&item, &error)),
        },
    };
    let request_options = RequestOptions::default()
        .with_chain(chain)
        .with_priority(Priority::Normal)
        .with_timeout(options.deadline);
    let sent = runtime.send_wire(request, request_options).await;
    decide_item(&item, sent, &options.requeue())
}
