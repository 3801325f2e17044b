//! The middleware on a real `HttpServer` over loopback, with a real HTTP client.

mod common;

use std::time::Duration;

use actix_web::{HttpResponse, web};
use backstop_actix::Backstop;
use backstop_core::test::TestSink;
use backstop_core::{Options, SpanStatus};

fn start(options: Options) -> (backstop_core::BackstopGuard, TestSink) {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(options.sink(sink.clone())).unwrap();
    (backstop, sink)
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(|| async { "home" }))
        .route(
            "/panic",
            web::get().to(|| async {
                backstop_core::set_tag("where", "server");
                panic!("panicked on a real server");
                #[allow(unreachable_code)]
                ""
            }),
        )
        .route(
            "/fail",
            web::get().to(|| async { HttpResponse::InternalServerError().finish() }),
        )
        .route(
            "/echo",
            web::post().to(|body: web::Bytes| async move { body }),
        )
        .route(
            "/slow",
            web::get().to(|| async {
                actix_web::rt::time::sleep(Duration::from_secs(1)).await;
                "late"
            }),
        )
        .service(web::resource("/only-get").route(web::get().to(|| async { "got" })));
}

#[tokio::test]
async fn a_panic_answers_the_page_on_the_same_connection_and_the_worker_keeps_serving() {
    let (backstop, sink) = start(Options::new().environment("production"));
    // One worker: the panic and the next requests go through the same one.
    let server = common::serve(Backstop::new(&backstop), routes, 1);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    for _ in 0..3 {
        let response = http
            .get(server.url("/panic"))
            .header("accept", "application/json")
            .send()
            .await
            .expect("no reset connection");
        assert_eq!(response.status(), 500);
        assert!(response.headers().contains_key("x-request-id"));
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["status"], 500);
        let response = http.get(server.url("/")).send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), "home");
    }
    assert!(backstop.flush(Duration::from_secs(10)));
    let events = sink.events();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].tags["where"], "server");
    assert_eq!(events[0].transaction.as_deref(), Some("GET /panic"));
}

#[tokio::test]
async fn actix_defaults_become_pages_over_the_wire() {
    let (backstop, _sink) = start(Options::new().environment("production"));
    let server = common::serve(Backstop::new(&backstop), routes, 1);
    let http = reqwest::Client::new();
    let response = http
        .get(server.url("/no/such/page"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body = response.text().await.unwrap();
    assert!(body.contains("<h1>Page not found</h1>"), "{body}");
    let response = http
        .delete(server.url("/only-get"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(
        response.headers()["allow"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    let response = http
        .head(server.url("/no/such/page"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_client_address_comes_from_the_connection_and_trusted_proxies_only() {
    let (backstop, sink) = start(Options::new().send_default_pii(true));
    let trusted = common::serve(
        Backstop::new(&backstop).trust_proxy("127.0.0.1".parse::<std::net::IpAddr>().unwrap()),
        routes,
        1,
    );
    let untrusted = common::serve(Backstop::new(&backstop), routes, 1);
    let http = reqwest::Client::new();
    for server in [&trusted, &untrusted] {
        http.get(server.url("/fail"))
            .header("x-forwarded-for", "203.0.113.7")
            .send()
            .await
            .unwrap();
    }
    assert!(backstop.flush(Duration::from_secs(10)));
    let remote: Vec<_> = sink
        .events()
        .iter()
        .map(|e| e.request.as_ref().unwrap().env["REMOTE_ADDR"].clone())
        .collect();
    assert_eq!(
        remote,
        ["203.0.113.7", "127.0.0.1"],
        "the proxy's claim is believed only when trusted"
    );
}

#[tokio::test]
async fn a_streamed_body_reaches_the_handler_intact_and_is_captured() {
    let (backstop, sink) = start(Options::new().traces_sample_rate(1.0));
    let server = common::serve(Backstop::new(&backstop).capture_bodies(1024), routes, 1);
    let chunks: Vec<Result<&'static str, std::io::Error>> =
        vec![Ok(r#"{"user":"ann","#), Ok(r#""token":"s3cret"}"#)];
    let response = reqwest::Client::new()
        .post(server.url("/echo"))
        .header("content-type", "application/json")
        .header("x-request-id", "echo-1")
        .body(reqwest::Body::wrap_stream(tokio_stream(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "echo-1");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"user":"ann","token":"s3cret"}"#
    );
    assert!(backstop.flush(Duration::from_secs(10)));
    let transactions = sink.transactions();
    let request = transactions[0].request.as_ref().unwrap();
    let data: serde_json::Value = serde_json::from_str(request.data.as_deref().unwrap()).unwrap();
    assert_eq!(data["user"], "ann");
    assert_eq!(data["token"], backstop_core::FILTERED);
    assert_eq!(request.env["REQUEST_ID"], "echo-1");
}

/// A stream of chunks, without pulling in a stream crate.
fn tokio_stream<T: Send + 'static>(
    items: Vec<T>,
) -> impl futures_core::Stream<Item = T> + Send + 'static {
    struct Iter<T>(std::vec::IntoIter<T>);
    impl<T> futures_core::Stream for Iter<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    impl<T> Unpin for Iter<T> {}
    Iter(items.into_iter())
}

/// actix-web 4 (HTTP/1) lets a handler run to its end after the client hangs up, so
/// the transaction is finished by the response, not by a drop; a dropped request
/// future (an outer timeout, a shutdown) finishes as `aborted`, which the in-process
/// tests cover. Either way exactly one transaction is recorded and nothing is left.
#[tokio::test]
async fn a_client_that_goes_away_leaves_one_finished_transaction() {
    let (backstop, sink) = start(Options::new().traces_sample_rate(1.0));
    let server = common::serve(Backstop::new(&backstop), routes, 1);
    let outcome = reqwest::Client::new()
        .get(server.url("/slow"))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(outcome.is_err(), "the client gave up");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let transactions = loop {
        backstop.flush(Duration::from_secs(1));
        let transactions = sink.transactions();
        if !transactions.is_empty() || std::time::Instant::now() > deadline {
            break transactions;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(transactions.len(), 1);
    assert_eq!(transactions[0].name, "GET /slow");
    assert_eq!(transactions[0].status(), Some(SpanStatus::Ok));
}
