//! What each monitoring stack adds to an actix-web request, in one run:
//!
//! - bare actix-web;
//! - `Backstop`, errors only;
//! - `Backstop`, every request a transaction;
//! - sentry-actix with transactions (`start_transaction(true)`), into a transport that
//!   discards.
//!
//! In-process through `actix_web::test::init_service` and `call_service`, on one actix
//! system; each sample times a loop of requests inside one `block_on`, so the figures
//! are the request's cost, not the executor's.
//!
//! Two routes, as in the tower bench: `/hello`, and `/query`, which emits five
//! sqlx-style query events inside a span. Backstop's stacks run with its tracing layer
//! (the events become query spans); sentry's with sentry-tracing's span and breadcrumb
//! layers.
//!
//! `cargo bench -p backstop-actix --bench actix_overhead`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::rt::SystemRunner;
use actix_web::{App, test, web};
use backstop_actix::Backstop;
use backstop_bench_support::{hello, overhead_client, query};
use backstop_core::Client;
use criterion::{Criterion, criterion_group, criterion_main};
use tracing_subscriber::layer::SubscriberExt;

struct SentryDiscard;

impl sentry::Transport for SentryDiscard {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        black_box(envelope);
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/hello", web::get().to(hello))
        .route("/query", web::get().to(query));
}

/// Times `app` on both routes. For Backstop's stacks (`client`), the worker drains
/// every 20,000 requests outside the timed part, so the figure is the request's cost
/// with the worker keeping up, not the cost of dropping records at a full queue.
fn bench_app<S, B>(
    c: &mut Criterion,
    system: &SystemRunner,
    name: &str,
    app: S,
    client: Option<&Client>,
) where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    for path in ["/hello", "/query"] {
        let id = format!("actix_overhead/{name}/{}", path.trim_start_matches('/'));
        c.bench_function(&id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let chunk = left.min(20_000);
                    total += system.block_on(async {
                        let start = Instant::now();
                        for _ in 0..chunk {
                            let request = test::TestRequest::get()
                                .uri(path)
                                .insert_header(("user-agent", "bench/1.0"))
                                .insert_header(("accept", "*/*"))
                                .to_request();
                            black_box(app.call(request).await.ok());
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
}

fn actix_overhead(c: &mut Criterion) {
    let system = actix_web::rt::System::new();

    let bare = system.block_on(test::init_service(App::new().configure(routes)));
    bench_app(c, &system, "bare", bare, None);

    // Backstop's stacks record the query events through its tracing layer.
    let subscriber = tracing_subscriber::registry().with(backstop_core::tracing::layer());
    let backstop_tracing = tracing::subscriber::set_default(subscriber);

    let errors_only = overhead_client(0.0);
    let app = system.block_on(test::init_service(
        App::new()
            .wrap(Backstop::new(&errors_only))
            .configure(routes),
    ));
    bench_app(c, &system, "backstop_errors", app, Some(&errors_only));

    let transactions = overhead_client(1.0);
    let app = system.block_on(test::init_service(
        App::new()
            .wrap(Backstop::new(&transactions))
            .configure(routes),
    ));
    bench_app(
        c,
        &system,
        "backstop_transactions",
        app,
        Some(&transactions),
    );
    let stats = transactions.stats().transactions;
    assert_eq!(
        stats.dropped(),
        0,
        "the bench must price work, not drops: {stats:?}"
    );
    // Let the worker drain so the next stack runs on a quiet machine.
    transactions.flush(Duration::from_secs(30));
    eprintln!(
        "backstop transactions: {:?}",
        transactions.stats().transactions
    );

    drop(backstop_tracing);

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
    let app = system.block_on(test::init_service(
        App::new()
            .wrap(
                sentry_actix::Sentry::builder()
                    .start_transaction(true)
                    .finish(),
            )
            .configure(routes),
    ));
    bench_app(c, &system, "sentry_actix_transactions", app, None);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = actix_overhead
}
criterion_main!(benches);
