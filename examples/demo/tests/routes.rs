//! The demo contract, end to end: the demo's router on a real server on loopback,
//! with the real SQLite store.

use std::net::SocketAddr;

use backstop::{Options, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_demo_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backstop.db");
    let backstop = backstop::Client::start(
        Options::new()
            .environment("production")
            .traces_sample_rate(1.0)
            .sink(SqliteStore::open(&db).unwrap()),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = backstop_demo::app(&backstop);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    backstop_parity::check_demo_contract(addr, &backstop, &db).await;
}
