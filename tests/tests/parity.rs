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
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(
        Options::new()
            .environment("production")
            .traces_sample_rate(traces)
            .sink(sink.clone()),
    )
    .unwrap();
    (backstop, sink)
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
            .layer(BackstopLayer::new(client));
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

    fn routes(config: &mut web::ServiceConfig) {
        config
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
        let middleware = BackstopMiddleware::new(client).error_type::<ParityError>();
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
