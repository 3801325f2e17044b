//! What each monitoring stack adds to an axum request, in one run:
//!
//! - bare axum;
//! - `BackstopLayer`, errors only;
//! - `BackstopLayer`, every request a transaction;
//! - tower-http `CatchPanicLayer` + `TraceLayer`;
//! - sentry-tower (`NewSentryLayer` + `SentryHttpLayer` with transactions) with the
//!   sentry-tracing layer, into a transport that discards.
//!
//! Two routes: `/hello`, and `/query`, which emits five sqlx-style query events inside
//! a span. Backstop's stacks run with its tracing layer (the events become query spans);
//! sentry's with sentry-tracing's span and breadcrumb layers.
//!
//! `cargo bench -p backstop-tower --bench middleware_overhead`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use backstop_bench_support::{hello, overhead_client, query};
use backstop_core::Client;
use backstop_tower::BackstopLayer;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

struct SentryDiscard;

impl sentry::Transport for SentryDiscard {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        black_box(envelope);
    }
}

fn routes() -> Router {
    Router::new()
        .route("/hello", get(hello))
        .route("/query", get(query))
}

/// Times `app` on both routes. For Backstop's stacks (`client`), the worker drains
/// every 20,000 requests outside the timed part, so the figure is the request's cost
/// with the worker keeping up, not the cost of dropping records at a full queue (at
/// several hundred thousand requests a second, the worker falls behind).
fn bench_stack(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    app: Router,
    client: Option<&Client>,
) {
    // As `axum::serve` does: handlers become services once, not on every request.
    let app: Router = app.with_state(());
    let mut group = c.benchmark_group(format!("middleware_overhead/{name}"));
    for path in ["/hello", "/query"] {
        group.bench_function(path.trim_start_matches('/'), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let chunk = left.min(20_000);
                    let app = app.clone();
                    total += rt.block_on(async move {
                        let start = Instant::now();
                        for _ in 0..chunk {
                            let request = Request::get(path)
                                .header("user-agent", "bench/1.0")
                                .header("accept", "*/*")
                                .body(Body::empty())
                                .unwrap();
                            black_box(app.clone().oneshot(request).await.unwrap());
                        }
                        start.elapsed()
                    });
                    if let Some(client) = client {
                        client.flush(Duration::from_secs(60));
                    }
                    left -= chunk;
                }
                total
            })
        });
    }
    group.finish();
}

fn middleware_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    bench_stack(c, &rt, "bare", routes(), None);

    // Backstop's stacks record the query events through its tracing layer.
    let subscriber = tracing_subscriber::registry().with(backstop_core::tracing::layer());
    let backstop_tracing = tracing::subscriber::set_default(subscriber);

    let errors_only = overhead_client(0.0);
    bench_stack(
        c,
        &rt,
        "backstop_errors",
        routes().layer(BackstopLayer::new(&errors_only)),
        Some(&errors_only),
    );

    let transactions = overhead_client(1.0);
    bench_stack(
        c,
        &rt,
        "backstop_transactions",
        routes().layer(BackstopLayer::new(&transactions)),
        Some(&transactions),
    );
    let stats = transactions.stats().transactions;
    assert_eq!(
        stats.dropped(),
        0,
        "the bench must price work, not drops: {stats:?}"
    );
    // Let the worker drain so the next stacks run on a quiet machine.
    transactions.flush(Duration::from_secs(30));
    eprintln!(
        "backstop transactions: {:?}",
        transactions.stats().transactions
    );

    drop(backstop_tracing);

    bench_stack(
        c,
        &rt,
        "tower_http_catch_panic_trace",
        routes()
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .layer(tower_http::catch_panic::CatchPanicLayer::new()),
        None,
    );

    let mut options = sentry::ClientOptions::default();
    options.dsn = Some("https://public@sentry.example.com/1".parse().unwrap());
    options.transport = Some(Arc::new(Arc::new(SentryDiscard)));
    let mut options = options.traces_sample_rate(1.0);
    options.default_integrations = false;
    let _sentry = sentry::init(options);
    // The equivalent of sentry-tracing's default layer: spans become Sentry spans,
    // events become breadcrumbs.
    let subscriber = tracing_subscriber::registry()
        .with(sentry_tracing::SpanLayer::new())
        .with(sentry_tracing::BreadcrumbLayer::new());
    let _dispatch = tracing::subscriber::set_default(subscriber);
    bench_stack(
        c,
        &rt,
        "sentry_tower",
        routes()
            .layer(sentry_tower::SentryHttpLayer::new().enable_transaction())
            .layer(sentry_tower::NewSentryLayer::<Request<Body>>::new_from_top()),
        None,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = middleware_overhead
}
criterion_main!(benches);
