//! `breakwater send`: one request, retried in place under the default retry policy, with the
//! reply's text on stdout and a one-line classified error on stderr.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use breakwater::api::{Delta, MessageStreamEvent, MessagesRequest};
use breakwater::client::{ClaudeClient, ClientConfig, Credentials, Secret};
use breakwater::engine::policy::{Attempts, Decision, RetryPolicy};
use breakwater::engine::{Class, Failure, Target, Upstream, await_commit};
use breakwater::mock::{MockServer, Scenario};
use futures::StreamExt;
use tokio::time::Instant;

use crate::exit;

/// Send one Messages request and print the reply's text.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The prompt, sent as one user message; `-` reads it from stdin.
    prompt: String,
    /// The model to ask.
    #[arg(long, default_value = "claude-sonnet-4-5")]
    model: String,
    /// The most tokens the reply may have.
    #[arg(long, default_value_t = 1024)]
    max_tokens: u32,
    /// The API's base URL. Default: $ANTHROPIC_BASE_URL, else the public API.
    #[arg(long)]
    base_url: Option<String>,
    /// Stream the reply, printing text as it arrives.
    #[arg(long)]
    stream: bool,
    /// Give up when no reply has arrived after this long, retries included.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    deadline: Duration,
    /// Serve the request from a built-in mock started in-process (no key or network needed).
    #[arg(long, conflicts_with = "base_url")]
    mock: bool,
    /// The mock's scenario, with --mock: a built-in name or a TOML file.
    #[arg(long, default_value = "healthy", requires = "mock")]
    scenario: String,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let (client, _mock) = match connect(&args).await {
        Ok(connected) => connected,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let prompt = match read_prompt(&args.prompt) {
        Ok(prompt) => prompt,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let request = MessagesRequest::new(args.model.clone(), args.max_tokens).with_user(prompt);
    let target = Target::new(args.model.as_str());
    match with_retries(&client, &target, &request, &args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            let code = if failure.class() == Class::Invalid {
                exit::PERMANENT
            } else {
                exit::UNAVAILABLE
            };
            ExitCode::from(code)
        }
    }
}

async fn connect(args: &Args) -> Result<(ClaudeClient, Option<MockServer>), String> {
    let mut config = ClientConfig::from_env();
    let mut mock = None;
    if args.mock {
        let scenario = Scenario::load(&args.scenario).map_err(|error| error.to_string())?;
        let server = MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
            .await
            .map_err(|error| format!("cannot start the mock: {error}"))?;
        config.base_url = server.base_url();
        config
            .credentials
            .get_or_insert(Credentials::ApiKey(Secret::new("mock")));
        mock = Some(server);
    } else if let Some(base_url) = &args.base_url {
        config.base_url.clone_from(base_url);
    }
    let client = ClaudeClient::new(&config).map_err(|error| error.to_string())?;
    Ok((client, mock))
}

fn read_prompt(prompt: &str) -> Result<String, String> {
    if prompt != "-" {
        return Ok(prompt.to_owned());
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|error| format!("cannot read the prompt from stdin: {error}"))?;
    Ok(text)
}

async fn with_retries(
    client: &ClaudeClient,
    target: &Target,
    request: &MessagesRequest,
    args: &Args,
) -> Result<(), Failure> {
    let policy = RetryPolicy::default();
    let mut backoff = policy.backoff.build(rand::random());
    let deadline = Instant::now() + args.deadline;
    let mut total = 0;
    loop {
        total += 1;
        let attempt = if args.stream {
            streamed(client, target, request).await
        } else {
            whole(client, target, request).await
        };
        let failure = match attempt {
            Ok(()) => return Ok(()),
            Err(Attempt::Final(failure)) => return Err(failure),
            Err(Attempt::Retryable(failure)) => failure,
        };
        let attempts = Attempts {
            total,
            on_target: total,
            can_fall_back: false,
        };
        match policy.decide(
            &failure,
            attempts,
            &mut backoff,
            Instant::now(),
            Some(deadline),
        ) {
            Decision::RetryAfter(delay) => {
                eprintln!(
                    "attempt {total} failed, retrying in {}ms: {failure}",
                    delay.as_millis()
                );
                tokio::time::sleep(delay).await;
            }
            Decision::FallBack | Decision::GiveUp(_) => return Err(failure),
        }
    }
}

enum Attempt {
    Retryable(Failure),
    Final(Failure),
}

async fn whole(
    client: &ClaudeClient,
    target: &Target,
    request: &MessagesRequest,
) -> Result<(), Attempt> {
    let reply = client
        .send(target, request)
        .await
        .map_err(Attempt::Retryable)?;
    println!("{}", reply.value.text());
    Ok(())
}

async fn streamed(
    client: &ClaudeClient,
    target: &Target,
    request: &MessagesRequest,
) -> Result<(), Attempt> {
    let opened = client
        .stream(target, request)
        .await
        .map_err(Attempt::Retryable)?;
    let committed = await_commit(opened.value, Duration::from_secs(60))
        .await
        .map_err(Attempt::Retryable)?;
    let mut stdout = std::io::stdout().lock();
    for event in &committed.head {
        print_delta(&mut stdout, event);
    }
    drop(stdout);
    let mut tail = committed.tail;
    while let Some(event) = tail.next().await {
        // Text has reached the caller: a failure now can no longer be retried invisibly.
        let event = event.map_err(Attempt::Final)?;
        print_delta(&mut std::io::stdout().lock(), &event);
    }
    println!();
    Ok(())
}

fn print_delta(out: &mut impl Write, event: &MessageStreamEvent) {
    if let MessageStreamEvent::ContentBlockDelta {
        delta: Delta::Text { text },
        ..
    } = event
    {
        // A closed stdout (a pipe into `head`) is not worth failing the request for.
        let _ = write!(out, "{text}").and_then(|()| out.flush());
    }
}
