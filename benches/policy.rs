//! Policy hot paths: what the dispatcher pays per failed attempt to decide what follows.
//!
//! Each group measures a baseline in the same run (reading the failure's class and drawing
//! nothing), so results read as ratios: the cost of a decision over the cheapest possible one.

use std::hint::black_box;

use breakwater::engine::policy::{Attempts, BackoffConfig, Jitter, RetryPolicy};
use breakwater::engine::{Class, Failure};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::time::Instant;

fn decisions(c: &mut Criterion) {
    let policy = RetryPolicy::default();
    let failure = Failure::new(Class::Overloaded, "Overloaded").with_status(529);
    let attempts = Attempts {
        total: 1,
        on_target: 1,
        can_fall_back: true,
    };
    let now = Instant::now();
    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(1));
    group.bench_function("baseline: read class", |b| {
        b.iter(|| black_box(&failure).class().is_transient());
    });
    group.bench_function("retry policy decide", |b| {
        let mut backoff = policy.backoff.build(1);
        b.iter(|| policy.decide(black_box(&failure), attempts, &mut backoff, now, None));
    });
    group.finish();
}

fn backoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("backoff");
    group.throughput(Throughput::Elements(1));
    for jitter in [Jitter::None, Jitter::Full, Jitter::Decorrelated] {
        let config = BackoffConfig {
            jitter,
            ..BackoffConfig::default()
        };
        group.bench_function(format!("{jitter:?}"), |b| {
            let mut delays = config.build(1);
            b.iter(|| delays.next());
        });
    }
    group.finish();
}

criterion_group!(benches, decisions, backoff);
criterion_main!(benches);
