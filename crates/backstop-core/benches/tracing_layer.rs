//! What one query costs the request thread, through Backstop's tracing layer and
//! through sentry-tracing, in one run.
//!
//! Every iteration is one sampled request (a transaction) with a span `load_users`
//! in which `n` queries run, for `n` = 0 and 10; the cost of one query is the
//! difference divided by 10. The query is what sqlx 0.9 logs per statement: an event
//! on target `sqlx::query` with `summary`, `db.statement`, the row counts and the
//! elapsed time.
//!
//! - `backstop`: the event becomes a `db.sql.query` span (normalised on the worker).
//! - `sentry_span`: sentry-tracing has no query spans; a team hand-writes one per query
//!   (`info_span!` with `sentry.op = "db.sql.query"`), which its `SpanLayer` turns into
//!   a Sentry span. This is the like-for-like figure.
//! - `sentry_breadcrumb`: what sentry-tracing does with sqlx's own event: its
//!   `BreadcrumbLayer` makes it a breadcrumb (no span, no timing).
//! - `backstop_outside`: the same ten queries and span with no request around them,
//!   which Backstop's layer must ignore cheaply.
//! - `backstop_call`: ten outgoing HTTP calls instead of the queries, each what the
//!   reqwest middleware and the tower layer do on the request thread: start the
//!   `http.client` span, put the trace headers on the request, record the status and
//!   size, end it (span and breadcrumb). The cost of one call is the difference with
//!   `backstop/0` divided by 10; the goal is a query's cost.
//! - `backstop_call_span`: the same calls without the trace headers (a host outside
//!   the propagation targets): the span and its breadcrumb alone.
//!
//! Backstop's figures are the request thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`):
//! on two cores the worker, assembling the previous transactions' spans, would
//! otherwise be counted against the thread it takes the core from. sentry-tracing
//! does its work on the calling thread, and is timed by the wall clock.
//!
//! `cargo bench -p backstop-core --bench tracing_layer`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use backstop_core::test::DiscardSink;
use backstop_core::{Client, Options, RequestScope};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tracing_subscriber::layer::SubscriberExt;

const STATEMENT: &str = "SELECT title, body FROM posts WHERE user_id = ? ORDER BY id";

struct SentryDiscard;

impl sentry::Transport for SentryDiscard {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        black_box(envelope);
    }
}

/// What sqlx 0.9 logs for one statement longer than four words.
fn sqlx_event() {
    tracing::debug!(
        target: "sqlx::query",
        summary = "SELECT title, body FROM …",
        db.statement = "\n\nSELECT title, body FROM posts WHERE user_id = ? ORDER BY id\n",
        rows_affected = 0u64,
        rows_returned = 3u64,
        elapsed = ?Duration::from_micros(210),
        elapsed_secs = 0.000_21,
    );
}

/// What a client middleware does on the request thread for one outgoing call, on a
/// request whose headers exist already (the map is the caller's, reused).
fn outgoing_call(headers: &mut http::HeaderMap) {
    headers.clear();
    let mut call =
        backstop_core::outgoing::start(&http::Method::GET, "http://127.0.0.1:3000/api/rates?day=1");
    call.inject(headers);
    call.status(200).response_size(64);
    black_box(&headers);
}

/// The same call to a host outside the propagation targets: its span and breadcrumb
/// alone, without the two trace headers.
fn outgoing_call_span(headers: &mut http::HeaderMap) {
    headers.clear();
    let mut call =
        backstop_core::outgoing::start(&http::Method::GET, "http://127.0.0.1:3000/api/rates?day=1");
    call.status(200).response_size(64);
    black_box(&headers);
}

/// The span a sentry-tracing user writes by hand to get a query span.
fn sentry_query_span() {
    let span = tracing::info_span!(
        "db.sql.query",
        sentry.op = "db.sql.query",
        sentry.name = STATEMENT,
        db.system = "sqlite",
        rows_returned = 3u64,
    );
    let _entered = span.enter();
}

/// This thread's CPU time: what the request thread spends, without the time the
/// worker (or anything else on a 2-core machine) takes the core from it.
fn thread_cpu_time() -> Duration {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .expect("CLOCK_THREAD_CPUTIME_ID");
    Duration::from(now)
}

/// Times `iters` iterations in this thread's CPU time, letting the worker drain every
/// 20,000 outside the timed part, so the figure is the request thread's cost with
/// nothing dropped, and without the worker's own work (it runs on the other core, or
/// between the timed slices).
fn timed(backstop: &Client, iters: u64, mut f: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let chunk = left.min(20_000);
        let start = thread_cpu_time();
        for _ in 0..chunk {
            f();
        }
        total += thread_cpu_time() - start;
        backstop.flush(Duration::from_secs(60));
        left -= chunk;
    }
    total
}

fn tracing_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracing_layer");

    // Backstop.
    let backstop = backstop_core::test::start(
        Options::new()
            .traces_sample_rate(1.0)
            .queue_capacity(1 << 16)
            .install_panic_hook(false)
            .sink(DiscardSink),
    )
    .unwrap();
    {
        let subscriber = tracing_subscriber::registry().with(backstop_core::tracing::layer());
        let _default = tracing::subscriber::set_default(subscriber);
        for n in [0, 10] {
            group.bench_with_input(BenchmarkId::new("backstop", n), &n, |b, &n| {
                b.iter_custom(|iters| {
                    timed(&backstop, iters, || {
                        let scope = RequestScope::builder(&backstop, "GET /users")
                            .op("http.server")
                            .sampled(true)
                            .start();
                        scope.run(|| {
                            let _span = tracing::info_span!("load_users").entered();
                            for _ in 0..n {
                                sqlx_event();
                            }
                        });
                        black_box(scope.finish_http(200));
                    })
                })
            });
        }
        for (name, call) in [
            ("backstop_call", outgoing_call as fn(&mut http::HeaderMap)),
            ("backstop_call_span", outgoing_call_span),
        ] {
            group.bench_function(BenchmarkId::new(name, 10), |b| {
                let mut headers = http::HeaderMap::with_capacity(8);
                b.iter_custom(|iters| {
                    timed(&backstop, iters, || {
                        let scope = RequestScope::builder(&backstop, "GET /checkout")
                            .op("http.server")
                            .sampled(true)
                            .start();
                        scope.run(|| {
                            let _span = tracing::info_span!("load_users").entered();
                            for _ in 0..10 {
                                call(&mut headers);
                            }
                        });
                        black_box(scope.finish_http(200));
                    })
                })
            });
        }
        group.bench_function(BenchmarkId::new("backstop_outside", 10), |b| {
            b.iter(|| {
                let _span = tracing::info_span!("load_users").entered();
                for _ in 0..10 {
                    sqlx_event();
                }
            })
        });
    }
    let stats = backstop.stats();
    assert_eq!(
        stats.transactions.dropped(),
        0,
        "the bench must price work, not drops"
    );
    assert_eq!(stats.spans_dropped, 0);

    // sentry-tracing.
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some("https://public@sentry.example.com/1".parse().unwrap());
    options.transport = Some(Arc::new(Arc::new(SentryDiscard)));
    options.default_integrations = false;
    let options = options.traces_sample_rate(1.0);
    let _sentry = sentry::init(options);
    let subscriber = tracing_subscriber::registry()
        .with(sentry_tracing::SpanLayer::new())
        .with(sentry_tracing::BreadcrumbLayer::new());
    let _default = tracing::subscriber::set_default(subscriber);
    for (name, query) in [
        ("sentry_span", sentry_query_span as fn()),
        ("sentry_breadcrumb", sqlx_event as fn()),
    ] {
        for n in [0, 10] {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter(|| {
                    let hub = Arc::new(sentry::Hub::new_from_top(sentry::Hub::main()));
                    sentry::Hub::run(hub, || {
                        let transaction = sentry::start_transaction(
                            sentry::TransactionContext::new("GET /users", "http.server"),
                        );
                        sentry::configure_scope(|s| s.set_span(Some(transaction.clone().into())));
                        {
                            let _span = tracing::info_span!("load_users").entered();
                            for _ in 0..n {
                                query();
                            }
                        }
                        transaction.finish();
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = tracing_layer
}
criterion_main!(benches);
