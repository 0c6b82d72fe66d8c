//! Which chain a request for a model runs on: the configured chain it heads (the default
//! chain first, then the others by name), else the rest of the first chain that holds it.
//! Resolved once at start for every configured model, with how the chain adapts requests
//! to its fallbacks (`adapt` / `[chain-adapt]`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::AdaptMode;
use crate::config::{Config, DEFAULT_CHAIN, target_of};
use crate::engine::Target;

/// The chain a request for `model` runs on, from `model` on; `None` when no chain holds it
/// (then the runtime may serve it alone).
pub(super) fn chain_for_model(config: &Config, model: &str) -> Option<Vec<Target>> {
    named_chain_for_model(config, model).map(|(_, chain)| chain)
}

/// [`chain_for_model`], with the name of the chain it comes from.
fn named_chain_for_model<'c>(config: &'c Config, model: &str) -> Option<(&'c str, Vec<Target>)> {
    let others = config
        .chains
        .keys()
        .filter(|name| name.as_str() != DEFAULT_CHAIN)
        .filter_map(|name| Some((name.as_str(), config.chain(name)?)));
    let chains: Vec<(&str, Vec<Target>)> = std::iter::once((DEFAULT_CHAIN, config.default_chain()))
        .chain(others)
        .collect();
    let headed = chains
        .iter()
        .find(|(_, chain)| chain.first().is_some_and(|t| t.model() == model));
    if let Some((name, chain)) = headed {
        return Some((name, chain.clone()));
    }
    chains.into_iter().find_map(|(name, chain)| {
        let from = chain.iter().position(|t| t.model() == model)?;
        Some((name, chain[from..].to_vec()))
    })
}

/// The chain of every model that some chain holds, with how it adapts requests.
pub(super) fn resolve(config: &Config) -> HashMap<String, (Arc<[Target]>, AdaptMode)> {
    config
        .chains
        .values()
        .flatten()
        .chain(config.models.keys())
        .filter_map(|entry| {
            let model = target_of(entry).model().to_owned();
            let (name, chain) = named_chain_for_model(config, &model)?;
            Some((model, (Arc::from(chain), config.adapt_for(name))))
        })
        .collect()
}
