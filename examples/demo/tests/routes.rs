//! The demo contract, end to end: the demo's router on a real server on loopback,
//! with the real SQLite store, and its users read through sqlx from a real SQLite file.

mod common;

use std::net::SocketAddr;

use backstop::test::TestSink;
use backstop::{Options, SqliteStore};

/// Serves the demo on loopback with `options` plus the tracing layer and a fresh data
/// file; returns its address and client.
async fn serve(options: Options, dir: &tempfile::TempDir) -> (SocketAddr, backstop::BackstopGuard) {
    let backstop = backstop::test::start(options).unwrap();
    let addr = common::serve_demo(&backstop, dir).await;
    (addr, backstop)
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

/// The Bar of outgoing calls: three `GET /checkout` requests against the real demo and
/// the real store.
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
