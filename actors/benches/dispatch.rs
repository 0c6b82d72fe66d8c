//! What the runtime costs per request: a request through the whole engine (dispatcher, worker,
//! breaker) against an upstream that answers at once, beside a bare call of the same upstream
//! in the same group, so the overhead reads as a ratio.
//!
//! - `dispatch/single`: one request at a time. The median of `engine` minus that of `direct`
//!   is the time the engine adds per request.
//! - `dispatch/concurrent`: 1,000 callers at once, each sending one request; criterion
//!   reports requests per second.
//!
//! Criterion times `direct` and `engine` from the bench's own thread, outside the runtime, so
//! every answer crosses to a sleeping thread. Each group also times the engine from a task on
//! the runtime's workers (`engine, caller on a worker`), as a server's handler would call it.
//!
//! Both groups run on a multi-thread tokio runtime with 2 workers, the engine with its default
//! policies (breaker, retry budget, client-side throttle) and caps high enough for 1,000
//! requests in flight; requests are sent with default options.
//!
//! Criterion's median is a median of sample means. For the true per-request distribution,
//! set `DISPATCH_PERCENTILES=1`: after the groups, the bench times requests one by one and
//! prints p50, p90 and p99 of each path.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use breakwater_actors::{
    Engine, EngineConfig, EventStream, Outcome, Reply, RequestOptions, StreamEvent, Target,
    Upstream,
};
use criterion::{Criterion, Throughput, criterion_group};
use futures::future::{BoxFuture, join_all};
use tokio::runtime::Runtime;
use tokio::time::Instant;

/// Callers at once in `dispatch/concurrent`.
const CALLERS: usize = 1_000;

/// An upstream that answers every request at once, without sleeping or allocating beyond the
/// boxed future the trait asks for.
struct Immediate;

/// A stream event; the bench never streams.
struct Never;

impl StreamEvent for Never {
    fn commits(&self) -> bool {
        true
    }
}

impl Upstream for Immediate {
    type Request = u64;
    type Response = u64;
    type Event = Never;

    fn send<'a>(&'a self, _: &'a Target, request: &'a u64) -> BoxFuture<'a, Outcome<u64>> {
        Box::pin(async move { Ok(Reply::new(*request)) })
    }

    fn stream<'a>(
        &'a self,
        _: &'a Target,
        _: &'a u64,
    ) -> BoxFuture<'a, Outcome<EventStream<Never>>> {
        Box::pin(async {
            Ok(Reply::new(
                Box::pin(futures::stream::empty()) as EventStream<_>
            ))
        })
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the tokio runtime builds")
}

/// Default policies; caps high enough for `CALLERS` in flight with room to spare.
fn config(target: &Target) -> EngineConfig {
    let mut config = EngineConfig::new([target.clone()]);
    for (_, limits) in &mut config.targets {
        limits.concurrency = NonZeroU32::new(2_048).expect("not zero");
        // The adaptive limit (on by default) may grow as far as the cap.
        limits.limit.max = limits.concurrency;
    }
    config.admission.max_outstanding = NonZeroU32::new(8_192).expect("not zero");
    config.admission.max_parked = 4_096;
    config.seed = Some(7);
    config
}

/// Default options: `Normal` priority, the default chain, the default deadline.
fn options() -> RequestOptions {
    RequestOptions::default()
}

/// The two paths a request can take to the same upstream.
struct Paths {
    upstream: Arc<Immediate>,
    target: Target,
    engine: Engine<Immediate>,
}

impl Paths {
    async fn direct(&self, request: u64) -> u64 {
        let reply = self
            .upstream
            .send(&self.target, &request)
            .await
            .expect("the upstream answers");
        reply.value
    }

    async fn engine(&self, request: u64) -> u64 {
        let answer = self
            .engine
            .send(request, options())
            .await
            .expect("the engine answers");
        answer.value
    }

    /// `CALLERS` requests at once, through the engine.
    async fn engine_burst(&self) -> Vec<u64> {
        join_all((0..CALLERS as u64).map(|n| self.engine(n))).await
    }
}

/// A runtime, and an engine running on it.
struct Setup {
    rt: Runtime,
    paths: Arc<Paths>,
}

impl Setup {
    fn new() -> Self {
        let rt = runtime();
        let upstream = Arc::new(Immediate);
        let target = Target::new("instant");
        let engine = rt
            .block_on(Engine::start(upstream.clone(), config(&target)))
            .expect("the engine starts");
        // One request end to end, so that every actor is up before timing starts.
        rt.block_on(engine.send(0, options()))
            .expect("the engine answers");
        let paths = Arc::new(Paths {
            upstream,
            target,
            engine,
        });
        Self { rt, paths }
    }

    /// Runs `round` `iters` times inside one task on the runtime's workers, as a server's
    /// handler would, and times it there.
    fn on_worker<F, Fut>(
        &self,
        iters: u64,
        round: F,
    ) -> impl Future<Output = Duration> + use<F, Fut>
    where
        F: Fn(Arc<Paths>) -> Fut + Send + 'static,
        Fut: Future + Send,
        Fut::Output: Send,
    {
        let paths = self.paths.clone();
        let task = self.rt.spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(round(paths.clone()).await);
            }
            start.elapsed()
        });
        async move { task.await.expect("the timed task ends") }
    }

    fn shutdown(self) {
        let left = self
            .rt
            .block_on(self.paths.engine.shutdown(Duration::from_secs(5)));
        assert_eq!(left, 0, "every request was answered");
    }
}

/// The variant that calls the engine from a task on the runtime, where its actors run.
const ON_WORKER: &str = "engine, caller on a worker";

fn single(c: &mut Criterion) {
    let setup = Setup::new();
    let paths = &*setup.paths;
    let mut group = c.benchmark_group("dispatch/single");
    group.throughput(Throughput::Elements(1));
    group.bench_function("direct", |b| {
        b.to_async(&setup.rt)
            .iter(|| async { black_box(paths.direct(black_box(1)).await) });
    });
    group.bench_function("engine", |b| {
        b.to_async(&setup.rt)
            .iter(|| async { black_box(paths.engine(black_box(1)).await) });
    });
    group.bench_function(ON_WORKER, |b| {
        b.to_async(&setup.rt).iter_custom(|iters| {
            setup.on_worker(iters, |paths| async move { paths.engine(1).await })
        });
    });
    group.finish();
    setup.shutdown();
}

fn concurrent(c: &mut Criterion) {
    let setup = Setup::new();
    let paths = &*setup.paths;
    let mut group = c.benchmark_group("dispatch/concurrent");
    group.throughput(Throughput::Elements(CALLERS as u64));
    group.bench_function("direct", |b| {
        b.to_async(&setup.rt).iter(|| async {
            black_box(join_all((0..CALLERS as u64).map(|n| paths.direct(n))).await)
        });
    });
    group.bench_function("engine", |b| {
        b.to_async(&setup.rt)
            .iter(|| async { black_box(paths.engine_burst().await) });
    });
    group.bench_function(ON_WORKER, |b| {
        b.to_async(&setup.rt).iter_custom(|iters| {
            setup.on_worker(iters, |paths| async move { paths.engine_burst().await })
        });
    });
    group.finish();
    setup.shutdown();
}

/// Times `count` requests one by one on each path and prints their percentiles.
fn percentiles(count: u64) {
    fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        let (p50, p90, p99) = (at(0.5), at(0.9), at(0.99));
        println!(
            "dispatch/percentiles/{name:<27} p50 {p50:>10.2?}  p90 {p90:>10.2?}  p99 {p99:>10.2?}"
        );
        p50
    }
    async fn time(paths: Arc<Paths>, count: u64, engine: bool) -> Vec<Duration> {
        let mut samples = Vec::with_capacity(count as usize);
        for n in 0..count {
            let start = Instant::now();
            if engine {
                black_box(paths.engine(n).await);
            } else {
                black_box(paths.direct(n).await);
            }
            samples.push(start.elapsed());
        }
        samples
    }
    let setup = Setup::new();
    let outside = |engine| setup.rt.block_on(time(setup.paths.clone(), count, engine));
    let on_worker = |engine| {
        let task = setup.rt.spawn(time(setup.paths.clone(), count, engine));
        setup.rt.block_on(task).expect("the timed task ends")
    };
    // Warm up both paths, then measure.
    let _ = (outside(false), outside(true), on_worker(true));
    let direct = report("direct", outside(false));
    let engine = report("engine", outside(true));
    let worker = report(ON_WORKER, on_worker(true));
    println!(
        "dispatch/percentiles/added at p50: {:.2?}, caller on a worker: {:.2?}",
        engine.saturating_sub(direct),
        worker.saturating_sub(direct),
    );
    setup.shutdown();
}

criterion_group!(benches, single, concurrent);

fn main() {
    benches();
    if std::env::var_os("DISPATCH_PERCENTILES").is_some() {
        percentiles(100_000);
    }
    Criterion::default().configure_from_args().final_summary();
}
