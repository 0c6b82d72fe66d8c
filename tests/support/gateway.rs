//! A gateway for an integration test: a runtime for `config` against the upstream at
//! `base_url` (with a test key), served as `breakwater serve` does on 127.0.0.1:0, never
//! drained. Included by the tests that need it with `#[path = "support/gateway.rs"] mod`.

use std::sync::Arc;

use breakwater::client::{Credentials, Secret};
use breakwater::config::Config;
use breakwater::gateway::{Gateway, serve};
use breakwater::runtime::Runtime;

/// The gateway's base URL.
pub(crate) async fn start(config: Config, base_url: &str, key: &str) -> String {
    let runtime = Runtime::builder()
        .config(config)
        .base_url(base_url)
        .credentials(Credentials::ApiKey(Secret::new(key)))
        .start()
        .await
        .expect("runtime starts");
    let gateway = Gateway::new(Arc::new(runtime));
    let settings = gateway.config().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        serve(
            listener,
            gateway.router(),
            &settings,
            std::future::pending(),
        )
        .await
    });
    format!("http://{address}")
}
