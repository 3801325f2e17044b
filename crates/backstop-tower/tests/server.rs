//! The layer on a real axum server over loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use backstop_core::Options;
use backstop_core::test::TestSink;
use backstop_tower::BackstopLayer;

async fn serve(app: Router) -> SocketAddr {
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

/// 1,000 panicking requests among 10,000 normal ones, from concurrent clients: every
/// normal request succeeds, every panic gets the 500 page and is recorded once (or
/// counted as dropped), and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_under_load_never_take_the_server_down() {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(
        Options::new()
            .environment("production")
            .queue_capacity(20_000)
            .sink(sink.clone()),
    )
    .unwrap();
    let app = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/boom",
            get(|| async {
                tokio::task::yield_now().await;
                panic!("boom under load");
                #[allow(unreachable_code)]
                ""
            }),
        )
        .layer(BackstopLayer::new(&backstop));
    let addr = serve(app).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let ok = Arc::new(AtomicUsize::new(0));
    let pages = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client_no in 0..32usize {
        let http = http.clone();
        let (ok, pages) = (ok.clone(), pages.clone());
        clients.push(tokio::spawn(async move {
            // 11,000 requests over 32 clients; every 11th is a panic.
            for i in (client_no..11_000).step_by(32) {
                let panics = i % 11 == 0;
                let path = if panics { "/boom" } else { "/ok" };
                let response = http
                    .get(format!("http://{addr}{path}"))
                    .header("accept", "text/html")
                    .send()
                    .await
                    .expect("no reset connection");
                let status = response.status().as_u16();
                let body = response.text().await.expect("a complete body");
                if panics {
                    assert_eq!(status, 500);
                    assert!(body.contains("<h1"), "the 500 page");
                    pages.fetch_add(1, Ordering::Relaxed);
                } else {
                    assert_eq!((status, body.as_str()), (200, "fine"));
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(ok.load(Ordering::Relaxed), 10_000);
    assert_eq!(pages.load(Ordering::Relaxed), 1_000);
    assert!(backstop.flush(Duration::from_secs(30)));
    let stats = backstop.stats();
    let events = sink.events();
    assert_eq!(
        events.len() as u64 + stats.events.dropped(),
        1_000,
        "one event per panic, or a counted drop: {stats:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e.exception.values[0].value.as_deref() == Some("boom under load"))
    );
}

#[tokio::test]
async fn the_client_address_comes_from_the_connection_and_trusted_proxies_only() {
    let sink = TestSink::new();
    let backstop =
        backstop_core::test::start(Options::new().send_default_pii(true).sink(sink.clone()))
            .unwrap();
    let app = Router::new()
        .route(
            "/fail",
            get(|| async { http::StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .layer(BackstopLayer::new(&backstop).trust_proxy_ip("127.0.0.1".parse().unwrap()));
    let addr = serve(app).await;
    let untrusted_app = Router::new()
        .route(
            "/fail",
            get(|| async { http::StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .layer(BackstopLayer::new(&backstop));
    let untrusted = serve(untrusted_app).await;
    let http = reqwest::Client::new();
    for target in [addr, untrusted] {
        http.get(format!("http://{target}/fail"))
            .header("x-forwarded-for", "203.0.113.7")
            .send()
            .await
            .unwrap();
    }
    assert!(backstop.flush(Duration::from_secs(10)));
    let events = sink.events();
    let remote: Vec<_> = events
        .iter()
        .map(|e| e.request.as_ref().unwrap().env["REMOTE_ADDR"].clone())
        .collect();
    assert_eq!(
        remote,
        ["203.0.113.7", "127.0.0.1"],
        "the proxy's claim is believed only when trusted"
    );
}

/// A client that hangs up mid-request: the server drops the request's future, and the
/// transaction ends as aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_ends_the_transaction_as_aborted() {
    let sink = TestSink::new();
    let backstop =
        backstop_core::test::start(Options::new().traces_sample_rate(1.0).sink(sink.clone()))
            .unwrap();
    let app = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        )
        .layer(BackstopLayer::new(&backstop));
    let addr = serve(app).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(
        http.get(format!("http://{addr}/slow"))
            .send()
            .await
            .is_err(),
        "the client gave up"
    );
    // The server notices the closed connection and drops the future.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        assert!(backstop.flush(Duration::from_secs(5)));
        if let Some(transaction) = sink.transactions().pop() {
            assert_eq!(transaction.name, "GET /slow");
            assert_eq!(
                transaction.status(),
                Some(backstop_core::SpanStatus::Aborted)
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the transaction never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Body capture over a real connection: the handler receives the whole body, and the
/// event keeps its first bytes, scrubbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_bodies_over_the_wire() {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(Options::new().sink(sink.clone())).unwrap();
    let app = Router::new()
        .route(
            "/orders",
            axum::routing::post(|body: String| async move {
                assert_eq!(body.len(), 5_033, "the handler gets the whole body");
                http::StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .layer(BackstopLayer::new(&backstop).capture_bodies(1024));
    let addr = serve(app).await;
    let body = format!(
        r#"{{"card_token":"tok_live_123","note":"{}"}}"#,
        "n".repeat(5_000)
    );
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/orders"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert!(backstop.flush(Duration::from_secs(10)));
    let data = sink.events()[0]
        .request
        .as_ref()
        .unwrap()
        .data
        .clone()
        .unwrap();
    assert!(data.len() <= 1024 + 32, "{}", data.len());
    assert!(
        !data.contains("tok_live_123"),
        "scrubbed even though the JSON was cut"
    );
    assert!(data.contains("card_token"));
}
