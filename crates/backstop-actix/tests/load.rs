//! The middleware on a real `HttpServer` under load: 1,000 panicking requests among
//! 10,000 normal ones, from concurrent clients over loopback.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::web;
use backstop_actix::Backstop;
use backstop_core::Options;
use backstop_core::test::TestSink;

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ok", web::get().to(|| async { "fine" })).route(
        "/boom",
        web::get().to(|| async {
            actix_web::rt::task::yield_now().await;
            panic!("boom under load");
            #[allow(unreachable_code)]
            ""
        }),
    );
}

/// Every normal request succeeds, every panic gets the 500 page and is recorded once
/// (or counted as dropped), no connection is reset, and the workers keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_under_load_never_take_the_server_down() {
    // This test's process only: keep a thousand panic messages off stderr (Backstop's
    // hook chains to this one).
    std::panic::set_hook(Box::new(|_| {}));
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(
        Options::new()
            .environment("production")
            .queue_capacity(20_000)
            .sink(sink.clone()),
    )
    .unwrap();
    let server = common::serve(Backstop::new(&backstop), routes, 2);
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
        let (ok_url, boom_url) = (server.url("/ok"), server.url("/boom"));
        clients.push(tokio::spawn(async move {
            // 11,000 requests over 32 clients; every 11th is a panic.
            for i in (client_no..11_000).step_by(32) {
                let panics = i % 11 == 0;
                let url = if panics { &boom_url } else { &ok_url };
                let response = http
                    .get(url)
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
