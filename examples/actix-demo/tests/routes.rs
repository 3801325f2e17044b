//! The demo contract, end to end: the actix demo's app on a real `HttpServer` on
//! loopback, with the real SQLite store, and its users read through sqlx from a real
//! SQLite file.

use std::net::SocketAddr;

use actix_web::{App, HttpServer, web};
use backstop::test::TestSink;
use backstop::{Options, SqliteStore};

/// Serves the actix demo on loopback with `options` plus the tracing layer and a fresh
/// data file; returns its address and client.
async fn serve(options: Options, dir: &tempfile::TempDir) -> (SocketAddr, backstop::BackstopGuard) {
    backstop_parity::install_tracing();
    let backstop = backstop::test::start(options).unwrap();
    let data = web::Data::new(
        backstop_demo_data::open(dir.path().join("data.db"))
            .await
            .unwrap(),
    );
    let middleware = backstop_actix_demo::middleware(&backstop);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(middleware.clone())
                    .app_data(data.clone())
                    .configure(backstop_actix_demo::routes)
            })
            .workers(1)
            .bind(("127.0.0.1", 0))
            .unwrap();
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        });
    });
    (rx.recv().unwrap(), backstop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_demo_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backstop.db");
    let options = Options::new()
        .environment("production")
        .traces_sample_rate(1.0)
        .problem_thresholds(backstop_demo_data::thresholds())
        .sink(SqliteStore::open(&db).unwrap());
    let (addr, backstop) = serve(options, &dir).await;
    backstop_parity::check_demo_contract(addr, &backstop, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_is_an_n_plus_one_and_users_fixed_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let sink = TestSink::new();
    let options = Options::new()
        .traces_sample_rate(1.0)
        .problem_thresholds(backstop_demo_data::thresholds())
        .sink(sink.clone())
        .console(false);
    let (addr, backstop) = serve(options, &dir).await;
    backstop_parity::check_demo_queries(addr, &backstop, &sink).await;
}

/// `/checkout` as on the axum demo: an outgoing span, a downstream trace, cache hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_calls_rates_in_the_same_trace_through_a_cache() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backstop.db");
    let options = Options::new()
        .environment("production")
        .traces_sample_rate(1.0)
        .sink(SqliteStore::open(&db).unwrap());
    let (addr, backstop) = serve(options, &dir).await;
    backstop_parity::check_demo_checkout(addr, &backstop, &db).await;
}
