//! One server of the throughput bench: `throughput-server FRAMEWORK MODE ADDR DB`.
//!
//! - FRAMEWORK: `axum` or `actix`;
//! - MODE: `bare` (a tracing registry, no monitoring), `errors` (Backstop, errors only),
//!   `sampled10` (Backstop, 10% of requests as transactions), `sampled100` (every
//!   request), all three into the SQLite store at DB, or `sentry` (sentry-tower or
//!   sentry-actix with sentry-tracing, every request, into a transport that discards);
//! - routes: `/hello`, and `/query`, five sqlx-style query events inside a span.
//!
//! It serves until it is killed (SIGTERM or SIGINT), then flushes. `bench/throughput.sh`
//! starts one per mode and loads it with wrk.

use std::net::SocketAddr;
use std::sync::Arc;

use backstop::{Options, SqliteStore};
use backstop_bench_support::{hello, query};
use tracing_subscriber::prelude::*;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Bare,
    Backstop(f64),
    Sentry,
}

struct SentryDiscard;

impl sentry::Transport for SentryDiscard {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        std::hint::black_box(envelope);
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: throughput-server axum|actix bare|errors|sampled10|sampled100|sentry ADDR DB"
    );
    std::process::exit(2)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [framework, mode, addr, db] = args.as_slice() else {
        usage()
    };
    let mode = match mode.as_str() {
        "bare" => Mode::Bare,
        "errors" => Mode::Backstop(0.0),
        "sampled10" => Mode::Backstop(0.1),
        "sampled100" => Mode::Backstop(1.0),
        "sentry" => Mode::Sentry,
        _ => usage(),
    };
    let addr: SocketAddr = addr.parse()?;

    // Every mode has a tracing registry: any service that logs has one.
    let mut backstop = None;
    let mut _sentry = None;
    match mode {
        Mode::Bare => tracing_subscriber::registry().init(),
        Mode::Backstop(rate) => {
            tracing_subscriber::registry()
                .with(backstop::tracing::layer())
                .init();
            backstop = Some(backstop::init(
                Options::new()
                    .traces_sample_rate(rate)
                    .sink(SqliteStore::open(db)?)
                    .console(false),
            )?);
        }
        Mode::Sentry => {
            let mut options = sentry::ClientOptions::default();
            options.dsn = Some("https://public@sentry.example.com/1".parse()?);
            options.transport = Some(Arc::new(Arc::new(SentryDiscard)));
            let mut options = options.traces_sample_rate(1.0);
            options.default_integrations = false;
            _sentry = Some(sentry::init(options));
            // As the in-process benches: spans become Sentry spans, events breadcrumbs.
            tracing_subscriber::registry()
                .with(sentry_tracing::SpanLayer::new())
                .with(sentry_tracing::BreadcrumbLayer::new())
                .init();
        }
    }

    match framework.as_str() {
        "axum" => serve_axum(addr, mode, backstop.as_ref())?,
        "actix" => serve_actix(addr, mode, backstop.as_ref())?,
        _ => usage(),
    }
    if let Some(backstop) = backstop {
        let stats = backstop.stats();
        eprintln!("backstop: {stats:?}");
    }
    Ok(())
}

fn serve_axum(
    addr: SocketAddr,
    mode: Mode,
    backstop: Option<&backstop::BackstopGuard>,
) -> Result<(), Box<dyn std::error::Error>> {
    use axum::Router;
    use axum::routing::get;

    let mut app = Router::new()
        .route("/hello", get(hello))
        .route("/query", get(query));
    if let Some(backstop) = backstop {
        app = app.layer(backstop::BackstopLayer::new(backstop));
    } else if mode == Mode::Sentry {
        app = app
            .layer(sentry_tower::SentryHttpLayer::new().enable_transaction())
            .layer(sentry_tower::NewSentryLayer::<axum::extract::Request>::new_from_top());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown())
                .await
        })?;
    Ok(())
}

fn serve_actix(
    addr: SocketAddr,
    mode: Mode,
    backstop: Option<&backstop::BackstopGuard>,
) -> Result<(), Box<dyn std::error::Error>> {
    use actix_web::{App, HttpServer, web};

    fn routes(config: &mut web::ServiceConfig) {
        config
            .route("/hello", web::get().to(hello))
            .route("/query", web::get().to(query));
    }

    let middleware = backstop.map(|client| backstop::actix::Backstop::new(client));
    actix_web::rt::System::new().block_on(async move {
        let server = match (middleware, mode) {
            (Some(middleware), _) => {
                HttpServer::new(move || App::new().wrap(middleware.clone()).configure(routes))
                    .bind(addr)?
                    .run()
            }
            (None, Mode::Sentry) => HttpServer::new(|| {
                App::new()
                    .wrap(
                        sentry_actix::Sentry::builder()
                            .start_transaction(true)
                            .finish(),
                    )
                    .configure(routes)
            })
            .bind(addr)?
            .run(),
            (None, _) => HttpServer::new(|| App::new().configure(routes))
                .bind(addr)?
                .run(),
        };
        server.await
    })?;
    Ok(())
}

async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
}
