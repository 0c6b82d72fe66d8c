//! Deferred requests over real HTTP against the mock: durable tickets that survive a runtime
//! restart, and `send_or_defer` when every model of the chain is open.

use std::path::Path;
use std::time::Duration;

use breakwater::api::MessagesRequest;
use breakwater::client::{Credentials, Secret};
use breakwater::config::Config;
use breakwater::engine::RequestOptions;
use breakwater::engine::policy::StateKind;
use breakwater::mock::{MockServer, Scenario};
use breakwater::runtime::{DeferError, Runtime, RuntimeError, Sent, Ticket, TicketStatus};
use breakwater::store::StoreError;

async fn mock(toml: &str) -> MockServer {
    let scenario = Scenario::from_toml(toml).expect("test scenario is valid");
    MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts")
}

/// A runtime for the chain a, b against `server`, keeping deferred requests in `store`.
async fn runtime(server: &MockServer, store: &Path) -> Runtime {
    let config = Config::for_chain(&["a".to_owned(), "b".to_owned()]);
    // The previous runtime on this file may still be letting go of it.
    for _ in 0..100 {
        let started = Runtime::builder()
            .config(config.clone())
            .base_url(server.base_url())
            .credentials(Credentials::ApiKey(Secret::new("test-key")))
            .store(store)
            .start()
            .await;
        match started {
            Ok(runtime) => return runtime,
            Err(RuntimeError::Store(StoreError::InUse { .. })) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("runtime starts: {error}"),
        }
    }
    panic!("the store stayed in use")
}

fn request(n: usize) -> MessagesRequest {
    MessagesRequest::new("a", 16).with_user(format!("deferred number {n}"))
}

/// Waits until `ticket` is final; its status.
async fn settled(runtime: &Runtime, ticket: &Ticket) -> TicketStatus {
    for _ in 0..500 {
        match runtime
            .ticket(ticket)
            .await
            .unwrap()
            .expect("the ticket exists")
        {
            TicketStatus::Pending { .. } | TicketStatus::InFlight { .. } => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            done => return done,
        }
    }
    panic!("{ticket} was not served")
}

/// Isolates a and b, and waits until their breakers say so.
async fn isolate_all(runtime: &Runtime) {
    runtime.isolate("a");
    runtime.isolate("b");
    for _ in 0..100 {
        let breakers = runtime.breakers();
        let isolated = breakers
            .iter()
            .filter(|(_, status)| status.state == StateKind::Isolated)
            .count();
        if isolated == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the breakers did not open");
}

fn requests(server: &MockServer) -> u64 {
    server.stats().models.values().map(|m| m.requests).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_tickets_survive_a_runtime_restart_and_are_served_once() {
    let server =
        mock("[models.a]\nservice-time = \"1ms\"\n[models.b]\nservice-time = \"1ms\"\n").await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("deferred.sqlite");

    let first = runtime(&server, &store).await;
    // No capacity: every model is open, so the pump leaves deferred work alone.
    isolate_all(&first).await;
    let mut tickets = Vec::new();
    for n in 0..3 {
        tickets.push(
            first
                .defer(request(n), RequestOptions::default())
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for ticket in &tickets {
        assert_eq!(
            first.ticket(ticket).await.unwrap(),
            Some(TicketStatus::Pending {
                attempts: 0,
                last_error: None
            })
        );
    }
    first.shutdown(Duration::from_millis(100)).await;
    drop(first);
    assert_eq!(requests(&server), 0, "nothing was sent before the restart");

    let second = runtime(&server, &store).await;
    for (n, ticket) in tickets.iter().enumerate() {
        let TicketStatus::Succeeded(message) = settled(&second, ticket).await else {
            panic!("{ticket} failed");
        };
        assert!(
            message.text().ends_with(&format!("deferred number {n}")),
            "{}",
            message.text()
        );
    }
    assert_eq!(requests(&server), 3, "each deferred request was sent once");
    assert_eq!(
        second.ticket(&Ticket::new("tkt_unknown")).await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_or_defer_defers_when_every_model_is_open_and_answers_when_one_closes() {
    let server =
        mock("[models.a]\nservice-time = \"1ms\"\n[models.b]\nservice-time = \"1ms\"\n").await;
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&server, &dir.path().join("deferred.sqlite")).await;
    let answered = runtime
        .send_or_defer(request(0), RequestOptions::default())
        .await
        .unwrap();
    assert!(matches!(answered, Sent::Answered(_)), "{answered:?}");

    isolate_all(&runtime).await;
    let options = RequestOptions::default().with_timeout(Duration::from_millis(200));
    let Sent::Deferred(ticket) = runtime.send_or_defer(request(1), options).await.unwrap() else {
        panic!("with every model open, the request is deferred");
    };
    assert!(matches!(
        runtime.ticket(&ticket).await.unwrap(),
        Some(TicketStatus::Pending { .. })
    ));
    runtime.reset("b");
    let TicketStatus::Succeeded(message) = settled(&runtime, &ticket).await else {
        panic!("{ticket} failed");
    };
    assert_eq!(message.model, "b");
}

#[tokio::test]
async fn without_a_store_defer_says_how_to_get_one() {
    let server = mock("[models.a]\n[models.b]\n").await;
    let runtime = Runtime::builder()
        .config(Config::for_chain(&["a".to_owned(), "b".to_owned()]))
        .base_url(server.base_url())
        .credentials(Credentials::ApiKey(Secret::new("test-key")))
        .start()
        .await
        .unwrap();
    let error = runtime
        .defer(request(0), RequestOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, DeferError::NoStore));
    assert!(
        error.to_string().contains("RuntimeBuilder::store"),
        "{error}"
    );
}
