//! One server of the throughput bench: `throughput-server FRAMEWORK MODE ADDR DB`.
//!
//! - FRAMEWORK: `axum` or `actix`;
//! - MODE: `bare` (a tracing registry, no monitoring), `errors` (Backstop, errors only),
//!   `sampled10` (Backstop, 10% of requests as transactions), `sampled100` (every
//!   request), all three into the SQLite store at DB; `export` (every request into the
//!   store and exported over HTTP to a Sentry-protocol endpoint); `sentry` (sentry-tower
//!   or sentry-actix with sentry-tracing, every request, into a transport that
//!   discards); `sentry-http` (the same, sent over HTTP by sentry's own ureq transport);
//! - the two HTTP-exporting modes send to an endpoint this process serves on another
//!   loopback port, which reads each envelope and answers 200, so both pay for a real
//!   HTTP round trip and neither waits on a slow receiver;
//! - routes: `/hello`, and `/query`, five sqlx-style query events inside a span.
//!
//! It serves until it is killed (SIGTERM or SIGINT), then flushes. `bench/throughput.sh`
//! starts one per mode and loads it with wrk.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use backstop::{Options, SqliteStore};
use backstop_bench_support::{hello, query};
use tracing_subscriber::prelude::*;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Bare,
    Backstop(f64),
    /// Every request, into the store and exported to the local envelope endpoint.
    Export,
    Sentry,
    /// sentry-tower / sentry-actix with sentry's HTTP transport to the local endpoint.
    SentryHttp,
}

struct SentryDiscard;

impl sentry::Transport for SentryDiscard {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        std::hint::black_box(envelope);
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: throughput-server axum|actix bare|errors|sampled10|sampled100|export|sentry|sentry-http ADDR DB"
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
        "export" => Mode::Export,
        "sentry" => Mode::Sentry,
        "sentry-http" => Mode::SentryHttp,
        _ => usage(),
    };
    let addr: SocketAddr = addr.parse()?;

    // Every mode has a tracing registry: any service that logs has one.
    let mut backstop = None;
    let mut _sentry = None;
    match mode {
        Mode::Bare => tracing_subscriber::registry().init(),
        Mode::Backstop(_) | Mode::Export => {
            tracing_subscriber::registry()
                .with(backstop::tracing::layer())
                .init();
            let mut options = Options::new()
                .traces_sample_rate(match mode {
                    Mode::Backstop(rate) => rate,
                    _ => 1.0,
                })
                .sink(SqliteStore::open(db)?)
                .console(false);
            if mode == Mode::Export {
                options = options.dsn(envelope_endpoint()?);
            }
            backstop = Some(backstop::init(options)?);
        }
        Mode::Sentry | Mode::SentryHttp => {
            let mut options = sentry::ClientOptions::default();
            if mode == Mode::Sentry {
                options.dsn = Some("https://public@sentry.example.com/1".parse()?);
                options.transport = Some(Arc::new(Arc::new(SentryDiscard)));
            } else {
                options.dsn = Some(envelope_endpoint()?.parse()?);
                options.transport = Some(Arc::new(sentry::transports::DefaultTransportFactory));
            }
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
    drop(_sentry);
    if matches!(mode, Mode::Export | Mode::SentryHttp) {
        eprintln!("endpoint: {} envelopes", ENVELOPES.load(Ordering::Relaxed));
    }
    if let Some(backstop) = backstop {
        let stats = backstop.stats();
        eprintln!("backstop: {stats:?}");
        if let Some(export) = backstop::sentry::installed() {
            eprintln!("export: {:?}", export.stats());
        }
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
    } else if matches!(mode, Mode::Sentry | Mode::SentryHttp) {
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
            (None, Mode::Sentry | Mode::SentryHttp) => HttpServer::new(|| {
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

/// Envelopes the local endpoint received, printed at exit as a check that the
/// exporting modes really sent.
static ENVELOPES: AtomicU64 = AtomicU64::new(0);

/// Serves a Sentry-protocol envelope endpoint on a loopback port of its own, on one
/// thread: it reads each envelope whole and answers 200. Returns its DSN.
fn envelope_endpoint() -> Result<String, Box<dyn std::error::Error>> {
    use axum::Router;
    use axum::body::Bytes;
    use axum::routing::post;

    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    std::thread::Builder::new()
        .name("envelope-endpoint".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the envelope endpoint");
            runtime.block_on(async move {
                let app = Router::new().route(
                    "/api/{project}/envelope/",
                    post(|body: Bytes| async move {
                        std::hint::black_box(body);
                        ENVELOPES.fetch_add(1, Ordering::Relaxed);
                        "{}"
                    }),
                );
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("the endpoint's listener");
                axum::serve(listener, app)
                    .await
                    .expect("the endpoint serves");
            });
        })?;
    Ok(format!("http://public@127.0.0.1:{port}/1"))
}

async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
}
