//! Clients that disconnect from the gateway before their answer cancel their requests: no
//! attempt is left running at the upstream (the mock's in-flight count drops back to zero
//! long before its service time), and their admission slots are free, so that a following
//! request is served, not shed. Real loopback HTTP, in real time.

#[path = "support/gateway.rs"]
mod gateway;

use std::num::NonZeroU32;
use std::time::Duration;

use breakwater::config::Config;
use breakwater::mock::{MockServer, Scenario};
use serde_json::json;
use tokio::time::Instant;

/// Every answer of model m takes 1.5 s.
const SLOW: &str = "[models.m]\nservice-time = \"1500ms\"\nslots = 100\n";

/// How many clients give up; as many as the gateway admits.
const LEAVING: usize = 8;

async fn post(base: &str, stream: bool, timeout: Option<Duration>) -> reqwest::Result<u16> {
    let body = json!({
        "model": "m", "max_tokens": 64, "stream": stream,
        "messages": [{"role": "user", "content": "hello"}],
    });
    let mut request = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .json(&body);
    if let Some(timeout) = timeout {
        request = request.timeout(timeout);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    response.bytes().await?;
    Ok(status)
}

fn in_flight(mock: &MockServer) -> u32 {
    mock.stats().models.get("m").map_or(0, |m| m.in_flight)
}

#[tokio::test]
async fn clients_that_disconnect_leave_no_attempt_running_and_no_slot_held() {
    let scenario = Scenario::from_toml(SLOW).expect("test scenario is valid");
    let mock = MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts");
    let mut config = Config::for_chain(&["m".to_owned()]);
    config.admission.max_outstanding = NonZeroU32::new(10).unwrap();
    config.admission.normal_share = 0.8;
    let base = gateway::start(config, &mock.base_url(), "test-key").await;

    let leaving = (0..LEAVING).map(|i| post(&base, i % 2 == 1, Some(Duration::from_millis(200))));
    for left in futures::future::join_all(leaving).await {
        assert!(left.unwrap_err().is_timeout(), "the client gave up");
    }
    // The mock would hold each request 1.5 s; the cancelled ones go well before that.
    let since = Instant::now();
    while in_flight(&mock) > 0 {
        assert!(
            since.elapsed() < Duration::from_millis(700),
            "{} attempts still running at the mock",
            in_flight(&mock)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = post(&base, false, None).await.expect("answered");
    assert_eq!(status, 200, "the next request is served, not shed");
    assert_eq!(
        mock.stats().models["m"].requests,
        LEAVING as u64 + 1,
        "nothing was retried"
    );
}
