//! The outgoing-call layer around a real hyper client (hyper-util's legacy client),
//! calling real servers on loopback from inside requests served by the Backstop layer.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use backstop_core::test::TestSink;
use backstop_core::{Options, SpanStatus, Transaction};
use backstop_tower::{BackstopLayer, BoxError, OutgoingLayer};
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use tower::timeout::Timeout;
use tower::{Layer, Service, ServiceExt};

type Body = Empty<bytes::Bytes>;

/// Calls `url` with a hyper client under a tower timeout, wrapped in the layer: the
/// status and body, or the error.
async fn fetch(url: &str, timeout: Duration) -> Result<(u16, String), BoxError> {
    let hyper = HyperClient::builder(TokioExecutor::new()).build_http::<Body>();
    let mut client = OutgoingLayer::new().layer(Timeout::new(hyper, timeout));
    let request = http::Request::get(url).body(Body::new())?;
    let response = client.ready().await?.call(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[derive(serde::Deserialize)]
struct Target {
    url: String,
    timeout_ms: Option<u64>,
    /// Abandon the call after this long, from outside the layer.
    abandon_ms: Option<u64>,
}

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

/// The called service, with Backstop on the same client: `/rates`, `/fail` (500),
/// `/sleep` (5 s), `/headers` (echoes the trace headers it got).
async fn downstream(layer: BackstopLayer) -> SocketAddr {
    let app = Router::new()
        .route("/rates", get(|| async { "1.08" }))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route(
            "/sleep",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/headers",
            get(|headers: http::HeaderMap| async move {
                let get = |name| {
                    headers
                        .get(name)
                        .map_or("-", |v| v.to_str().unwrap_or("?"))
                        .to_owned()
                };
                format!("{} {}", get("traceparent"), get("sentry-trace"))
            }),
        )
        .layer(layer);
    serve(app).await
}

/// The calling service: `/call?url=` calls `url` with the layered hyper client and
/// answers what it got (502 on an error).
async fn upstream(layer: BackstopLayer) -> SocketAddr {
    let app = Router::new()
        .route(
            "/call",
            get(|Query(target): Query<Target>| async move {
                let timeout = Duration::from_millis(target.timeout_ms.unwrap_or(10_000));
                let abandon = Duration::from_millis(target.abandon_ms.unwrap_or(20_000));
                match tokio::time::timeout(abandon, fetch(&target.url, timeout)).await {
                    Ok(Ok((status, body))) => (StatusCode::from_u16(status).unwrap(), body),
                    Ok(Err(error)) => (StatusCode::BAD_GATEWAY, error.to_string()),
                    Err(_) => (StatusCode::GATEWAY_TIMEOUT, "abandoned".to_owned()),
                }
            }),
        )
        .layer(layer);
    serve(app).await
}

fn start(options: Options) -> (backstop_core::BackstopGuard, TestSink) {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(
        options
            .environment("production")
            .traces_sample_rate(1.0)
            .sink(sink.clone()),
    )
    .unwrap();
    (backstop, sink)
}

async fn call_through(upstream: SocketAddr, url: &str, timeout_ms: u64) -> (u16, String) {
    call_with(
        upstream,
        &[("url", url), ("timeout_ms", &timeout_ms.to_string())],
    )
    .await
}

async fn call_with(upstream: SocketAddr, query: &[(&str, &str)]) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("http://{upstream}/call"))
        .query(query)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn named(sink: &TestSink, name: &str) -> Vec<Transaction> {
    sink.transactions()
        .into_iter()
        .filter(|t| t.name == name)
        .collect()
}

fn the_call(transaction: &Transaction) -> backstop_core::Span {
    let calls: Vec<_> = transaction
        .spans
        .iter()
        .filter(|s| s.op.as_deref() == Some("http.client"))
        .collect();
    assert_eq!(calls.len(), 1, "{:#?}", transaction.spans);
    calls[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hyper_call_is_a_span_and_continues_the_trace_downstream() {
    let (backstop, sink) = start(Options::new());
    let down = downstream(BackstopLayer::new(&backstop)).await;
    let up = upstream(BackstopLayer::new(&backstop)).await;

    let url = format!("http://{down}/rates?api_key=k3y&currency=EUR");
    assert_eq!(call_through(up, &url, 10_000).await, (200, "1.08".into()));
    assert!(backstop.flush(Duration::from_secs(10)));
    let caller = &named(&sink, "GET /call")[0];
    let span = the_call(caller);
    assert_eq!(
        span.description.as_deref(),
        Some(format!("GET http://{down}/rates").as_str())
    );
    assert_eq!(span.data["http.query"], "api_key=[Filtered]&currency=EUR");
    assert_eq!(span.data["http.response.status_code"], 200);
    assert_eq!(span.data["http.response_content_length"], 4);
    assert_eq!(span.status, Some(SpanStatus::Ok));
    assert!(span.duration() > Duration::ZERO);
    let called = &named(&sink, "GET /rates")[0];
    assert_eq!(called.trace.trace_id, caller.trace.trace_id);
    assert_eq!(called.trace.parent_span_id, Some(span.span_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_hyper_calls_mark_their_spans() {
    let (backstop, sink) = start(Options::new());
    let down = downstream(BackstopLayer::new(&backstop)).await;
    let up = upstream(BackstopLayer::new(&backstop)).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    for (url, timeout_ms, status, span_status) in [
        (
            format!("http://{down}/fail"),
            10_000,
            500,
            SpanStatus::InternalError,
        ),
        (
            format!("http://{closed}/"),
            10_000,
            502,
            SpanStatus::Unavailable,
        ),
        (
            format!("http://{down}/sleep"),
            300,
            502,
            SpanStatus::DeadlineExceeded,
        ),
    ] {
        sink.clear();
        assert_eq!(call_through(up, &url, timeout_ms).await.0, status, "{url}");
        assert!(backstop.flush(Duration::from_secs(10)));
        let span = the_call(&named(&sink, "GET /call")[0]);
        assert_eq!(span.status, Some(span_status), "{url}");
    }

    // A call abandoned from outside the layer (a timeout around it) is cancelled.
    sink.clear();
    let url = format!("http://{down}/sleep");
    let (status, _) = call_with(up, &[("url", &url), ("abandon_ms", "300")]).await;
    assert_eq!(status, 504);
    assert!(backstop.flush(Duration::from_secs(10)));
    let span = the_call(&named(&sink, "GET /call")[0]);
    assert_eq!(span.status, Some(SpanStatus::Cancelled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_headers_go_only_to_the_propagation_targets() {
    // Only to "localhost": a call to 127.0.0.1 carries no trace.
    let (backstop, sink) = start(Options::new().trace_propagation_targets([r"^http://localhost:"]));
    let down = downstream(BackstopLayer::new(&backstop)).await;
    let up = upstream(BackstopLayer::new(&backstop)).await;
    let url = format!("http://{down}/headers");
    assert_eq!(call_through(up, &url, 10_000).await, (200, "- -".into()));
    let url = format!("http://localhost:{}/headers", down.port());
    let (status, echoed) = call_through(up, &url, 10_000).await;
    assert_eq!(status, 200);
    assert!(backstop.flush(Duration::from_secs(10)));
    let calls = named(&sink, "GET /call");
    let traced = calls.iter().find(|t| {
        t.spans.iter().any(|s| {
            s.description
                .as_deref()
                .is_some_and(|d| d.contains("localhost"))
        })
    });
    let traced = traced.expect("the call to localhost");
    let span = the_call(traced);
    assert_eq!(
        echoed,
        format!(
            "00-{trace}-{span}-01 {trace}-{span}-1",
            trace = traced.trace.trace_id,
            span = span.span_id
        )
    );
    // The untraced call is still a span of its request.
    assert_eq!(calls.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_outside_a_request_pass_through_untouched() {
    let (backstop, sink) = start(Options::new());
    let down = downstream(BackstopLayer::new(&backstop)).await;
    let (status, echoed) = fetch(&format!("http://{down}/headers"), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((status, echoed.as_str()), (200, "- -"));
    assert!(backstop.flush(Duration::from_secs(10)));
    let all = sink.transactions();
    assert_eq!(all.len(), 1, "only the called service's request");
    assert_eq!(all[0].trace.parent_span_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_request_propagates_its_decision_and_keeps_its_breadcrumb() {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(
        Options::new()
            .environment("production")
            .traces_sample_rate(0.0)
            .sink(sink.clone()),
    )
    .unwrap();
    let down = downstream(BackstopLayer::new(&backstop)).await;
    let up = upstream(BackstopLayer::new(&backstop)).await;
    let (status, echoed) = call_through(up, &format!("http://{down}/headers"), 10_000).await;
    assert_eq!(status, 200);
    let (traceparent, sentry_trace) = echoed.split_once(' ').unwrap();
    assert!(
        traceparent.starts_with("00-") && traceparent.ends_with("-00"),
        "{echoed}"
    );
    assert!(sentry_trace.ends_with("-0"), "{echoed}");
    // The 5xx of an unsampled request still has the call in its breadcrumbs.
    assert_eq!(
        call_through(up, &format!("http://{down}/fail"), 10_000)
            .await
            .0,
        500
    );
    assert!(backstop.flush(Duration::from_secs(10)));
    assert!(sink.transactions().is_empty());
    let events: Vec<_> = sink
        .events()
        .into_iter()
        .filter(|e| e.transaction.as_deref() == Some("GET /call"))
        .collect();
    assert_eq!(events.len(), 1);
    let crumb = events[0]
        .breadcrumbs
        .values
        .iter()
        .find(|b| b.ty == "http")
        .expect("the call's breadcrumb");
    assert_eq!(crumb.data["url"], format!("http://{down}/fail"));
    assert_eq!(crumb.data["status_code"], 500);
}
