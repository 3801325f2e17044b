//! The parity table, against each adapter.

use std::net::SocketAddr;

use backstop_core::test::TestSink;
use backstop_core::{BackstopGuard, Breadcrumb, Client, Options, User};

#[derive(Debug)]
struct ParityError(std::io::Error);

impl std::fmt::Display for ParityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("parity failure")
    }
}

impl std::error::Error for ParityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[derive(serde::Deserialize)]
struct Item {
    id: u32,
}

fn client(traces: f64) -> (BackstopGuard, TestSink) {
    client_in("production", traces)
}

fn client_in(environment: &str, traces: f64) -> (BackstopGuard, TestSink) {
    start(
        Options::new()
            .environment(environment)
            .traces_sample_rate(traces),
    )
}

fn start(options: Options) -> (BackstopGuard, TestSink) {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(options.sink(sink.clone())).unwrap();
    (backstop, sink)
}

/// A production client that keeps the client's address (`send_default_pii`).
fn client_with_addresses() -> (BackstopGuard, TestSink) {
    start(
        Options::new()
            .environment("production")
            .send_default_pii(true),
    )
}

/// A production client (no dashboard token) that samples every request and writes to
/// a SQLite store, with the store's directory.
fn client_with_store() -> (BackstopGuard, TestSink, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = backstop_store::SqliteStore::open(dir.path().join("backstop.db")).unwrap();
    let (backstop, sink) = start(
        Options::new()
            .environment("production")
            .traces_sample_rate(1.0)
            .sink(store),
    );
    (backstop, sink, dir)
}

/// A production client at `rate` writing to a SQLite store, with the store's file.
fn client_with_store_at(rate: f64) -> (BackstopGuard, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backstop.db");
    let store = backstop_store::SqliteStore::open(&db).unwrap();
    let (backstop, _sink) = start(
        Options::new()
            .environment("production")
            .traces_sample_rate(rate)
            .sink(store),
    );
    (backstop, dir, db)
}

fn dashboard_config() -> backstop_dashboard::DashboardConfig {
    backstop_dashboard::DashboardConfig::new().token(backstop_parity::DASHBOARD_TOKEN)
}

/// The loopback address the suite connects from, trusted as a proxy.
fn loopback() -> std::net::IpAddr {
    std::net::Ipv4Addr::LOCALHOST.into()
}

mod axum_app {
    use super::*;
    use axum::Router;
    use axum::extract::{Path, Query};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use backstop_tower::{BackstopLayer, ResponseErrorExt};
    use http::StatusCode;

    pub(super) async fn serve(client: &Client) -> SocketAddr {
        serve_with(BackstopLayer::new(client)).await
    }

    #[derive(serde::Deserialize)]
    struct Sleep {
        ms: u64,
    }

    async fn outgoing(
        call: impl Future<Output = Result<u16, backstop_parity::CallFailed>>,
    ) -> axum::response::Response {
        match call.await {
            Ok(status) => StatusCode::from_u16(status).unwrap().into_response(),
            Err(failed) => StatusCode::BAD_GATEWAY.into_response().with_error(failed),
        }
    }

    pub(super) async fn serve_with(layer: BackstopLayer) -> SocketAddr {
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/panic",
                get(|| async {
                    backstop_core::set_user(Some(User::with_id("u1")));
                    backstop_core::set_tag("area", "checkout");
                    backstop_core::add_breadcrumb(Breadcrumb::new("ui", "before the panic"));
                    panic!("parity panic");
                    #[allow(unreachable_code)]
                    ""
                }),
            )
            .route(
                "/error",
                get(|| async {
                    StatusCode::INTERNAL_SERVER_ERROR
                        .into_response()
                        .with_error(ParityError(std::io::Error::other("disk full")))
                }),
            )
            .route(
                "/bare500",
                get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .route("/forbidden", get(|| async { StatusCode::FORBIDDEN }))
            .route(
                "/items",
                get(|Query(item): Query<super::Item>| async move { item.id.to_string() }),
            )
            .route(
                "/context/{n}",
                get(|Path(n): Path<u32>| async move {
                    backstop_core::set_user(Some(User::with_id(n.to_string())));
                    backstop_core::set_tag("n", n.to_string());
                    backstop_core::add_breadcrumb(Breadcrumb::new("step", format!("step {n}")));
                    tokio::task::yield_now().await;
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }),
            )
            .route("/call", get(|Query(q)| outgoing(backstop_parity::call(q))))
            .route(
                "/spawned",
                get(|Query(q)| outgoing(backstop_parity::spawned_call(q))),
            )
            .route("/cache", get(|| async { backstop_parity::cache_round() }))
            .route("/rates", get(|| async { axum::Json([1.08, 0.85]) }))
            .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
            .route(
                "/sleep",
                get(|Query(q): Query<Sleep>| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(q.ms)).await;
                    "slept"
                }),
            )
            .route(
                "/headers",
                get(|headers: http::HeaderMap| async move {
                    let header =
                        |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
                    axum::Json(serde_json::json!({
                        "traceparent": header("traceparent"),
                        "sentry-trace": header("sentry-trace"),
                    }))
                }),
            )
            .layer(layer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        addr
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum() {
    let (backstop, sink) = client(0.0);
    let addr = axum_app::serve(&backstop).await;
    backstop_parity::run_all("axum", addr, &backstop, &sink).await;
    backstop_parity::tracing_and_sampling("axum", addr, &backstop, &sink, false).await;

    let (backstop, sink) = client(1.0);
    let addr = axum_app::serve(&backstop).await;
    let transactions =
        backstop_parity::tracing_and_sampling("axum", addr, &backstop, &sink, true).await;
    assert_eq!(transactions[1].name, "GET /ok");
}

/// HTTP options with the request id in [`backstop_parity::CUSTOM_ID_HEADER`].
fn custom_id_options() -> backstop_core::HttpOptions {
    let name = http::HeaderName::from_static(backstop_parity::CUSTOM_ID_HEADER);
    backstop_core::HttpOptions::new().request_id_header(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_behind_a_proxy() {
    use backstop_tower::BackstopLayer;
    let (backstop, sink) = client_with_addresses();
    let addr = axum_app::serve_with(BackstopLayer::new(&backstop).trust_proxy_ip(loopback())).await;
    backstop_parity::proxies_and_request_ids("axum", addr, &backstop, &sink).await;
    let layer = BackstopLayer::new(&backstop).http(custom_id_options());
    let addr = axum_app::serve_with(layer).await;
    backstop_parity::custom_request_id_header("axum", addr).await;

    let (backstop, _sink) = client_in("development", 0.0);
    let layer = BackstopLayer::new(&backstop).trust_proxy_ip(loopback());
    let addr = axum_app::serve_with(layer.clone()).await;
    backstop_parity::debug_page_locality("axum", addr, false).await;
    let addr = axum_app::serve_with(layer.debug_for_everyone(true)).await;
    backstop_parity::debug_page_locality("axum", addr, true).await;
}

mod actix_app {
    use super::*;
    use actix_web::{App, HttpResponse, HttpServer, ResponseError, web};
    use backstop_actix::Backstop as BackstopMiddleware;

    impl ResponseError for ParityError {}

    async fn panic() -> HttpResponse {
        backstop_core::set_user(Some(User::with_id("u1")));
        backstop_core::set_tag("area", "checkout");
        backstop_core::add_breadcrumb(Breadcrumb::new("ui", "before the panic"));
        panic!("parity panic");
    }

    async fn context(n: web::Path<u32>) -> HttpResponse {
        let n = n.into_inner();
        backstop_core::set_user(Some(User::with_id(n.to_string())));
        backstop_core::set_tag("n", n.to_string());
        backstop_core::add_breadcrumb(Breadcrumb::new("step", format!("step {n}")));
        tokio::task::yield_now().await;
        HttpResponse::InternalServerError().finish()
    }

    /// A failed call as actix answers it: 502.
    #[derive(Debug)]
    pub(super) struct Failed(backstop_parity::CallFailed);

    impl std::fmt::Display for Failed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }

    impl std::error::Error for Failed {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.0.source()
        }
    }

    impl ResponseError for Failed {
        fn status_code(&self) -> actix_web::http::StatusCode {
            actix_web::http::StatusCode::BAD_GATEWAY
        }
    }

    async fn outgoing(
        call: impl Future<Output = Result<u16, backstop_parity::CallFailed>>,
    ) -> Result<HttpResponse, Failed> {
        let status = call.await.map_err(Failed)?;
        Ok(HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish())
    }

    fn routes(config: &mut web::ServiceConfig) {
        config
            .route(
                "/call",
                web::get().to(|q: web::Query<backstop_parity::CallQuery>| {
                    outgoing(backstop_parity::call(q.into_inner()))
                }),
            )
            .route(
                "/spawned",
                web::get().to(|q: web::Query<backstop_parity::CallQuery>| {
                    outgoing(backstop_parity::spawned_call(q.into_inner()))
                }),
            )
            .route(
                "/cache",
                web::get().to(|| async {
                    backstop_parity::cache_round();
                    HttpResponse::Ok().finish()
                }),
            )
            .route("/ok", web::get().to(|| async { "ok" }))
            .route("/panic", web::get().to(panic))
            .route(
                "/error",
                web::get().to(|| async {
                    Err::<HttpResponse, _>(ParityError(std::io::Error::other("disk full")))
                }),
            )
            .route(
                "/bare500",
                web::get().to(|| async { HttpResponse::InternalServerError().finish() }),
            )
            .route(
                "/forbidden",
                web::get().to(|| async { HttpResponse::Forbidden().finish() }),
            )
            .route(
                "/items",
                web::get().to(|item: web::Query<super::Item>| async move { item.id.to_string() }),
            )
            .route("/context/{n}", web::get().to(context));
    }

    pub(super) fn serve(client: &Client) -> SocketAddr {
        serve_with(BackstopMiddleware::new(client))
    }

    pub(super) fn serve_with(middleware: BackstopMiddleware) -> SocketAddr {
        let middleware = middleware
            .error_type::<ParityError>()
            .error_type::<Failed>();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server =
                    HttpServer::new(move || App::new().wrap(middleware.clone()).configure(routes))
                        .workers(2)
                        .bind(("127.0.0.1", 0))
                        .expect("bind loopback");
                tx.send(server.addrs()[0]).expect("the test waits");
                server.run().await.expect("the server ran");
            });
        });
        rx.recv().expect("the server started")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix() {
    let (backstop, sink) = client(0.0);
    let addr = actix_app::serve(&backstop);
    backstop_parity::run_all("actix", addr, &backstop, &sink).await;
    backstop_parity::tracing_and_sampling("actix", addr, &backstop, &sink, false).await;

    let (backstop, sink) = client(1.0);
    let addr = actix_app::serve(&backstop);
    let transactions =
        backstop_parity::tracing_and_sampling("actix", addr, &backstop, &sink, true).await;
    assert_eq!(transactions[1].name, "GET /ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_behind_a_proxy() {
    use backstop_actix::Backstop as BackstopMiddleware;
    let (backstop, sink) = client_with_addresses();
    let addr = actix_app::serve_with(BackstopMiddleware::new(&backstop).trust_proxy_ip(loopback()));
    backstop_parity::proxies_and_request_ids("actix", addr, &backstop, &sink).await;
    let middleware = BackstopMiddleware::new(&backstop).http(custom_id_options());
    let addr = actix_app::serve_with(middleware);
    backstop_parity::custom_request_id_header("actix", addr).await;

    let (backstop, _sink) = client_in("development", 0.0);
    let middleware = BackstopMiddleware::new(&backstop).trust_proxy_ip(loopback());
    let addr = actix_app::serve_with(middleware.clone());
    backstop_parity::debug_page_locality("actix", addr, false).await;
    let addr = actix_app::serve_with(middleware.debug_for_everyone(true));
    backstop_parity::debug_page_locality("actix", addr, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_dashboard() {
    use backstop_tower::BackstopLayer;
    let (backstop, sink, _dir) = client_with_store();
    let layer = || BackstopLayer::new(&backstop);
    let servers = backstop_parity::DashboardServers {
        closed: axum_app::serve_with(layer()).await,
        open: axum_app::serve_with(layer().dashboard(dashboard_config())).await,
        moved: axum_app::serve_with(
            layer().dashboard(dashboard_config().mount_path("/ops/backstop/")),
        )
        .await,
        off: axum_app::serve_with(layer().dashboard(dashboard_config()).no_dashboard()).await,
    };
    backstop_parity::dashboard_mount("axum", servers, &backstop, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_dashboard() {
    use backstop_actix::Backstop as BackstopMiddleware;
    let (backstop, sink, _dir) = client_with_store();
    let middleware = || BackstopMiddleware::new(&backstop);
    let servers = backstop_parity::DashboardServers {
        closed: actix_app::serve_with(middleware()),
        open: actix_app::serve_with(middleware().dashboard(dashboard_config())),
        moved: actix_app::serve_with(
            middleware().dashboard(dashboard_config().mount_path("/ops/backstop/")),
        ),
        off: actix_app::serve_with(middleware().dashboard(dashboard_config()).no_dashboard()),
    };
    backstop_parity::dashboard_mount("actix", servers, &backstop, &sink).await;
}

/// The same counts at 1% sampling as at 100%: every request, in the store's routes
/// and on the dashboard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_route_metrics() {
    use backstop_tower::BackstopLayer;
    let mut counts = Vec::new();
    for rate in [0.01, 1.0] {
        let (backstop, _dir, db) = client_with_store_at(rate);
        let addr =
            axum_app::serve_with(BackstopLayer::new(&backstop).dashboard(dashboard_config())).await;
        counts.push(
            backstop_parity::route_metrics_count_all_traffic("axum", addr, &backstop, &db).await,
        );
    }
    route_metrics_match(&counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_route_metrics() {
    use backstop_actix::Backstop as BackstopMiddleware;
    let mut counts = Vec::new();
    for rate in [0.01, 1.0] {
        let (backstop, _dir, db) = client_with_store_at(rate);
        let addr =
            actix_app::serve_with(BackstopMiddleware::new(&backstop).dashboard(dashboard_config()));
        counts.push(
            backstop_parity::route_metrics_count_all_traffic("actix", addr, &backstop, &db).await,
        );
    }
    route_metrics_match(&counts);
}

fn route_metrics_match(counts: &[backstop_parity::TrafficCounts]) {
    let [one_percent, all] = counts else {
        panic!("two runs")
    };
    assert_eq!((one_percent.ok, one_percent.failed), (2000, (20, 20)));
    assert_eq!((all.ok, all.failed), (one_percent.ok, one_percent.failed));
    assert!(
        one_percent.kept < 100,
        "about 1% kept: {}",
        one_percent.kept
    );
    // At 100%, the store's keep budget bounds what is kept: per route and minute (two
    // routes, over at most two minutes), not the 2,020 requests.
    assert!(all.kept <= 2 * 2 * 135, "{} kept", all.kept);
}

/// A client for the outgoing-call scenarios: every request sampled, calls over 100 ms
/// slow.
fn outgoing_client() -> (BackstopGuard, TestSink) {
    start(
        Options::new()
            .environment("production")
            .traces_sample_rate(1.0)
            .problem_thresholds(backstop_core::detect::Thresholds {
                slow_call: std::time::Duration::from_millis(100),
                ..Default::default()
            }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_outgoing_calls() {
    let (backstop, sink) = outgoing_client();
    let downstream = axum_app::serve(&backstop).await;
    let upstream = axum_app::serve(&backstop).await;
    backstop_parity::outgoing_calls("axum", upstream, downstream, &backstop, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_outgoing_calls() {
    let (backstop, sink) = outgoing_client();
    let downstream = axum_app::serve(&backstop).await;
    let upstream = actix_app::serve(&backstop);
    backstop_parity::outgoing_calls("actix", upstream, downstream, &backstop, &sink).await;
}
