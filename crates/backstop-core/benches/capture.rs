//! Prices capturing: what request handling pays per `capture_message`, and per request
//! for a scope with a user, 3 tags and 5 breadcrumbs, against the `sentry` crate doing
//! the same work with a transport that discards, in the same run.
//!
//! `cargo bench -p backstop-core --bench capture`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backstop_core::test::DiscardSink;
use backstop_core::{Breadcrumb, Client, Level, Options, RequestScope, User};
use criterion::{Criterion, criterion_group, criterion_main};

struct SentryDiscard;

impl sentry::Transport for SentryDiscard {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        black_box(envelope);
    }
}

fn backstop() -> backstop_core::BackstopGuard {
    backstop_core::test::start(
        Options::new()
            .queue_capacity(1 << 17)
            .sink(DiscardSink)
            .install_panic_hook(false),
    )
    .unwrap()
}

fn sentry_hub() -> Arc<sentry::Hub> {
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some("https://public@sentry.example.com/1".parse().unwrap());
    options.transport = Some(Arc::new(Arc::new(SentryDiscard)));
    options.default_integrations = false;
    let client = sentry::Client::from(options);
    Arc::new(sentry::Hub::new(Some(Arc::new(client)), Default::default()))
}

/// Times `iters` calls of `f`, in chunks that fit the queue, letting the worker drain
/// between chunks outside the timed part: the figure is the caller's cost with nothing
/// dropped.
fn timed_in_chunks(backstop: &Client, iters: u64, mut f: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let chunk = left.min(50_000);
        let start = Instant::now();
        for _ in 0..chunk {
            f();
        }
        total += start.elapsed();
        backstop.flush(Duration::from_secs(30));
        left -= chunk;
    }
    total
}

fn capture_message(c: &mut Criterion) {
    let mut group = c.benchmark_group("capture_message");
    let backstop = backstop();
    let scope = RequestScope::builder(&backstop, "GET /").start();
    group.bench_function("backstop", |b| {
        b.iter_custom(|iters| {
            let _entered = scope.enter();
            timed_in_chunks(&backstop, iters, || {
                black_box(backstop_core::capture_message(
                    "card declined",
                    Level::Warning,
                ));
            })
        })
    });
    let dropped = backstop.stats().events.dropped();
    assert_eq!(dropped, 0, "the bench must price capture, not drops");

    let hub = sentry_hub();
    group.bench_function("sentry", |b| {
        b.iter(|| {
            sentry::Hub::run(hub.clone(), || {
                black_box(sentry::capture_message(
                    "card declined",
                    sentry::Level::Warning,
                ));
            })
        })
    });
    group.finish();
}

fn request_scope(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_scope");
    let backstop = backstop();
    group.bench_function("backstop", |b| {
        b.iter(|| {
            let scope = RequestScope::builder(&backstop, "GET /users/{id}")
                .op("http.server")
                .start();
            scope.run(|| {
                backstop_core::set_user(Some(User::with_id("42")));
                backstop_core::set_tag("tenant", "acme");
                backstop_core::set_tag("plan", "pro");
                backstop_core::set_tag("region", "eu");
                for _ in 0..5 {
                    backstop_core::add_breadcrumb(Breadcrumb::new("ui", "clicked"));
                }
            });
            black_box(scope.finish_http(200));
        })
    });

    let top = sentry_hub();
    group.bench_function("sentry", |b| {
        b.iter(|| {
            let hub = Arc::new(sentry::Hub::new_from_top(&top));
            sentry::Hub::run(hub, || {
                sentry::configure_scope(|s| {
                    s.set_user(Some(sentry::User {
                        id: Some("42".into()),
                        ..Default::default()
                    }));
                    s.set_tag("tenant", "acme");
                    s.set_tag("plan", "pro");
                    s.set_tag("region", "eu");
                });
                for _ in 0..5 {
                    sentry::add_breadcrumb(sentry::Breadcrumb {
                        category: Some("ui".into()),
                        message: Some("clicked".into()),
                        ..Default::default()
                    });
                }
            });
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = capture_message, request_scope
}
criterion_main!(benches);
