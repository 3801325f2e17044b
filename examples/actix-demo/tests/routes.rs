//! The demo contract, end to end: the actix demo's app on a real `HttpServer` on
//! loopback, with the real SQLite store.

use std::time::Duration;

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
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("http://{addr}{path}"))
            .header("accept", "text/html")
            .send()
    };

    let home = get("/").await.unwrap();
    assert_eq!(home.status(), 200);
    let body = home.text().await.unwrap();
    for link in [
        "/panic",
        "/error",
        "/forbidden",
        "/bad-request",
        "/users",
        "/users/fixed",
        "/slow",
    ] {
        assert!(body.contains(&format!("href=\"{link}\"")), "{link}");
    }
    for (path, status) in [
        ("/panic", 500),
        ("/error", 500),
        ("/forbidden", 403),
        ("/bad-request", 400),
        ("/no/such/page", 404),
    ] {
        let response = get(path).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = response.text().await.unwrap();
        assert_eq!(page.matches("<h1").count(), 1, "{path}: a branded page");
    }
    let users: serde_json::Value = get("/users").await.unwrap().json().await.unwrap();
    assert!(users.as_array().unwrap().len() >= 20);
    assert_eq!(get("/users/fixed").await.unwrap().status(), 200);
    let started = std::time::Instant::now();
    assert_eq!(get("/slow").await.unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    assert!(backstop.flush(Duration::from_secs(10)));
    let reader = backstop::store::StoreReader::open(&db).unwrap();
    let issues = reader
        .issues(&backstop::store::IssueQuery::default())
        .unwrap();
    let titles: Vec<_> = issues.iter().map(|i| i.title.clone()).collect();
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("panic: index out of bounds")),
        "{titles:?}"
    );
    assert!(
        titles.iter().any(|t| t.starts_with("CheckoutError")),
        "{titles:?}"
    );
    assert_eq!(
        reader.transaction_count().unwrap(),
        9,
        "one transaction per request"
    );
}
