//! `breakwater send`: one request through the runtime (retries, breaker, fallback along
//! `--chain`), with the reply's text on stdout and a one-line classified error on stderr.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use breakwater::api::{Delta, MessageStreamEvent, MessagesRequest};
use breakwater::engine::{Error, Event, RequestOptions};
use breakwater::runtime::Runtime;
use futures::StreamExt;

use crate::exit;
use crate::setup::{Connection, Started};

/// Send one Messages request and print the reply's text.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The prompt, sent as one user message; `-` reads it from stdin.
    prompt: String,
    /// The model to ask (the head of the chain).
    #[arg(long, default_value = "claude-sonnet-5-5")]
    model: String,
    /// Models to fall back to, in order, after --model (comma-separated).
    #[arg(long, value_delimiter = ',')]
    fallback: Vec<String>,
    /// The most tokens the reply may have.
    #[arg(long, default_value_t = 1024)]
    max_tokens: u32,
    /// Stream the reply, printing text as it arrives.
    #[arg(long)]
    stream: bool,
    /// Give up when no reply has arrived after this long, retries included.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    deadline: Duration,
    #[command(flatten)]
    connection: Connection,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let prompt = match read_prompt(&args.prompt) {
        Ok(prompt) => prompt,
        Err(message) => return exit::usage(&message),
    };
    let chain: Vec<String> = std::iter::once(args.model.clone())
        .chain(args.fallback.iter().cloned())
        .collect();
    let started = match args.connection.start(&chain).await {
        Ok(started) => started,
        Err(message) => return exit::usage(&message),
    };
    let Started { runtime, .. } = &started;
    let retries = report_retries(runtime);
    let request = MessagesRequest::new(args.model.clone(), args.max_tokens).with_user(prompt);
    let options = RequestOptions::default().with_timeout(args.deadline);
    let outcome = if args.stream {
        streamed(runtime, request, options).await
    } else {
        whole(runtime, request, options).await
    };
    retries.abort();
    runtime.shutdown(Duration::from_secs(1)).await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => exit::failed(&error),
    }
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

/// Tells the user, on stderr, about each retry and fallback while they wait.
fn report_retries(runtime: &Runtime) -> tokio::task::JoinHandle<()> {
    let mut events = runtime.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                Event::Retried {
                    target,
                    class,
                    delay,
                } => {
                    eprintln!("retrying {target} in {}ms after {class}", delay.as_millis());
                }
                Event::FellBack { from, to, class } => {
                    let why = class.map_or("its circuit is open".to_owned(), |c| c.to_string());
                    eprintln!("falling back from {from} to {to}: {why}");
                }
                _ => {}
            }
        }
    })
}

async fn whole(
    runtime: &Runtime,
    request: MessagesRequest,
    options: RequestOptions,
) -> Result<(), Error> {
    let answer = runtime.send_with(request, options).await?;
    // A closed stdout (a pipe into `head`) is not worth failing the request for.
    let _ = writeln!(std::io::stdout(), "{}", answer.value.text());
    Ok(())
}

async fn streamed(
    runtime: &Runtime,
    request: MessagesRequest,
    options: RequestOptions,
) -> Result<(), Error> {
    let answer = runtime.stream_with(request, options).await?;
    let mut stdout = std::io::stdout().lock();
    for event in &answer.value.head {
        print_delta(&mut stdout, event);
    }
    drop(stdout);
    let mut tail = answer.value.tail;
    while let Some(event) = tail.next().await {
        // Text has reached the user: a failure now can no longer be retried invisibly.
        let event = event.map_err(|failure| Error::Exhausted {
            attempts: Vec::new(),
            retry_after: None,
            last: Some(failure),
        })?;
        print_delta(&mut std::io::stdout().lock(), &event);
    }
    let _ = writeln!(std::io::stdout());
    Ok(())
}

fn print_delta(out: &mut impl Write, event: &MessageStreamEvent) {
    if let MessageStreamEvent::ContentBlockDelta {
        delta: Delta::Text { text, .. },
        ..
    } = event
    {
        // A closed stdout (a pipe into `head`) is not worth failing the request for.
        let _ = write!(out, "{text}").and_then(|()| out.flush());
    }
}
