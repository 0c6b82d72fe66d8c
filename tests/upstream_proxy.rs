//! A proxy named by the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, with
//! `NO_PROXY`), as reqwest and curl read them, carries the Claude API's attempts: the Messages
//! pool (hyper's client, which knows no proxies) steps aside for reqwest whenever a proxy
//! applies to the API's URL. Run through `breakwater send` as a child process, whose
//! environment the test sets; the "proxy" is a mock, which answers a request in absolute form
//! (`POST http://host/v1/messages`) as any other.

#[path = "support/platforms.rs"]
#[expect(
    dead_code,
    reason = "the shared support's `ms` is for the platform tests"
)]
mod platforms;

use breakwater::mock::MockServer;

const MODEL: &str = "m";
/// The API's host: it does not resolve, so only a proxy can reach it.
const API: &str = "http://api.breakwater-test.invalid";
const PROXY_VARIABLES: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
];

async fn send(env: Vec<(&'static str, String)>) -> (bool, String) {
    platforms::Send {
        config: format!("[models.{MODEL}]\n[chains]\ndefault = [\"{MODEL}\"]\n"),
        anthropic: API.to_owned(),
        target: MODEL.to_owned(),
        remove: PROXY_VARIABLES,
        env,
        files: Vec::new(),
    }
    .run()
    .await
}

async fn proxy() -> MockServer {
    platforms::mock(&format!("[models.{MODEL}]\nservice-time = \"1ms\"\n")).await
}

#[tokio::test]
async fn attempts_go_through_the_proxy_the_environment_names() {
    let proxy = proxy().await;
    let (ok, output) = send(vec![("HTTP_PROXY", proxy.base_url())]).await;
    assert!(ok, "{output}");
    assert_eq!(platforms::by_status(&proxy, MODEL, "200"), 1, "{output}");
}

#[tokio::test]
async fn no_proxy_naming_the_api_s_host_sends_it_straight_there() {
    let proxy = proxy().await;
    let (ok, output) = send(vec![
        ("ALL_PROXY", proxy.base_url()),
        ("NO_PROXY", "api.breakwater-test.invalid".to_owned()),
    ])
    .await;
    // Straight to a host that does not resolve: the request fails, and the proxy saw nothing.
    assert!(!ok, "{output}");
    let seen: u64 = proxy.stats().models.values().map(|m| m.requests).sum();
    assert_eq!(seen, 0, "{output}");
}
