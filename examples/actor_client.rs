//! A ractor actor that talks to breakwater through the dispatcher's message protocol instead
//! of the `Runtime` handle: it submits a request with an `RpcReplyPort` and gets back exactly
//! one answer or typed error, by the request's deadline.
//!
//! Runs against a built-in mock, so it needs no key: `cargo run --example actor_client`.

use std::sync::Arc;
use std::time::Duration;

use breakwater::api::{MessagesRequest, WireRequest};
use breakwater::client::{Credentials, Secret};
use breakwater::engine::{DispatcherMsg, RequestOptions};
use breakwater::mock::{MockServer, Scenario};
use breakwater::runtime::{Dispatcher, DynUpstream, Runtime};
use ractor::{Actor, ActorProcessingErr, ActorRef, call};

/// Asks the dispatcher one question per `Ask` message and prints the answer.
struct Asker;

enum AskerMsg {
    Ask(String),
}

impl Actor for Asker {
    type Msg = AskerMsg;
    type State = Dispatcher;
    type Arguments = Dispatcher;

    async fn pre_start(
        &self,
        _: ActorRef<AskerMsg>,
        dispatcher: Dispatcher,
    ) -> Result<Dispatcher, ActorProcessingErr> {
        Ok(dispatcher)
    }

    async fn handle(
        &self,
        _: ActorRef<AskerMsg>,
        message: AskerMsg,
        dispatcher: &mut Dispatcher,
    ) -> Result<(), ActorProcessingErr> {
        let AskerMsg::Ask(prompt) = message;
        let request = MessagesRequest::new("claude-sonnet-5-5", 64).with_user(prompt);
        let request = Arc::new(WireRequest::from(request));
        let options = RequestOptions::default().with_timeout(Duration::from_secs(10));
        // `call!` waits for the reply port; the engine answers by the deadline, so this
        // returns in time. An API failure is an `Err` value here, never an actor failure.
        let reply = call!(dispatcher, |reply| DispatcherMsg::<DynUpstream>::Submit {
            request,
            options,
            reply
        })?;
        match reply {
            Ok(answer) => println!(
                "{} answered after {} attempt(s): {}",
                answer.target,
                answer.attempts.len(),
                answer.value.message()?.text()
            ),
            Err(error) => println!("no answer: {error}"),
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scenario = Scenario::builtin("healthy").ok_or("the healthy scenario is built in")?;
    let mock = MockServer::start(scenario, ([127, 0, 0, 1], 0).into()).await?;
    let runtime = Runtime::builder()
        .chain(["claude-sonnet-5-5", "claude-haiku-5-5"])
        .base_url(mock.base_url())
        .credentials(Credentials::ApiKey(Secret::new("mock")))
        .start()
        .await?;
    let dispatcher = runtime.dispatcher().ok_or("the dispatcher is running")?;
    let (asker, handle) = Actor::spawn(None, Asker, dispatcher).await?;
    asker.cast(AskerMsg::Ask("Hello from an actor".into()))?;
    asker.drain_and_wait(None).await?;
    handle.await?;
    runtime.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
