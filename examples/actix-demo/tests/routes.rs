//! The demo contract, end to end: the actix demo's app on a real `HttpServer` on
//! loopback, with the real SQLite store.

use actix_web::{App, HttpServer};
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
    let middleware = backstop_actix_demo::middleware(&backstop);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(middleware.clone())
                    .configure(backstop_actix_demo::routes)
            })
            .workers(1)
            .bind(("127.0.0.1", 0))
            .unwrap();
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    backstop_parity::check_demo_contract(addr, &backstop, &db).await;
}
