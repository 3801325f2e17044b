//! The layer through `ServiceExt::oneshot`: panics, 5xx, pages, transactions and
//! request context.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Json, Path, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use backstop_core::test::TestSink;
use backstop_core::{BackstopGuard, Event, Options, Transaction, User};
use backstop_tower::{BackstopLayer, BackstopScope, PagePolicy, ResponseErrorExt};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn start_client(options: Options) -> (BackstopGuard, TestSink) {
    let sink = TestSink::new();
    let backstop =
        backstop_core::test::start(options.sink(sink.clone()).install_panic_hook(true)).unwrap();
    (backstop, sink)
}

#[derive(Debug)]
struct StorageError(std::io::Error);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the order could not be saved")
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl IntoResponse for StorageError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, "storage failed")
            .into_response()
            .with_error(self)
    }
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Order {
    quantity: u32,
}

fn app(layer: BackstopLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "home" }))
        .route(
            "/panic",
            get(|| async {
                backstop_core::set_user(Some(User::with_id("42")));
                backstop_core::set_tag("cart", "big");
                backstop_core::add_breadcrumb(backstop_core::Breadcrumb::new("ui", "clicked pay"));
                panic!("payment exploded");
                #[allow(unreachable_code)]
                "never"
            }),
        )
        .route(
            "/error",
            get(|| async { Err::<(), _>(StorageError(std::io::Error::other("disk on fire"))) }),
        )
        .route(
            "/bare500",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route(
            "/unavailable",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "30")],
                )
            }),
        )
        .route("/forbidden", get(|| async { StatusCode::FORBIDDEN }))
        .route(
            "/json-error",
            get(|| async {
                (
                    StatusCode::NOT_FOUND,
                    Json(serde_json::json!({"error": "no such order"})),
                )
            }),
        )
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move { format!("user {id}") }),
        )
        .route(
            "/orders",
            post(|Json(_order): Json<Order>| async { "created" }),
        )
        .route(
            "/search",
            get(
                |Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    format!("{q:?}")
                },
            ),
        )
        .route(
            "/scope",
            get(|BackstopScope(scope): BackstopScope| async move {
                scope.configure(|s| s.set_tag("via", "extractor"));
                backstop_core::capture_message("from the handler", backstop_core::Level::Info);
                "ok"
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .layer(layer)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap()
}

fn flushed(backstop: &BackstopGuard, sink: &TestSink) -> (Vec<Event>, Vec<Transaction>) {
    assert!(backstop.flush(Duration::from_secs(10)));
    (sink.events(), sink.transactions())
}

#[tokio::test]
async fn a_panic_in_the_handler_becomes_a_500_page_and_one_unhandled_event() {
    let (backstop, sink) = start_client(
        Options::new()
            .traces_sample_rate(1.0)
            .environment("production"),
    );
    let app = app(BackstopLayer::new(&backstop));
    let (status, headers, body) = send(&app, get_req("/panic?step=2")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        !body.contains("payment exploded"),
        "production pages never show the panic"
    );
    let (events, transactions) = flushed(&backstop, &sink);
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert!(
        body.contains(&event.event_id.to_string()),
        "the page quotes the event id"
    );
    let exc = &event.exception.values[0];
    assert_eq!(exc.ty, "panic");
    assert_eq!(exc.value.as_deref(), Some("payment exploded"));
    let mechanism = exc.mechanism.as_ref().unwrap();
    assert_eq!(
        (mechanism.ty.as_str(), mechanism.handled),
        ("panic", Some(false))
    );
    assert_eq!(event.user.as_ref().unwrap().id.as_deref(), Some("42"));
    assert_eq!(event.tags["cart"], "big");
    assert_eq!(
        event.breadcrumbs.values[0].message.as_deref(),
        Some("clicked pay")
    );
    assert_eq!(event.transaction.as_deref(), Some("GET /panic"));
    let request = event.request.as_ref().unwrap();
    assert_eq!(request.method.as_deref(), Some("GET"));
    assert_eq!(request.query_string.as_deref(), Some("step=2"));
    assert_eq!(request.env["HTTP_VERSION"], "HTTP/1.1");
    assert_eq!(
        headers["x-request-id"].to_str().unwrap(),
        request.env["REQUEST_ID"]
    );
    assert_eq!(transactions.len(), 1);
    assert_eq!(
        transactions[0].status(),
        Some(backstop_core::SpanStatus::InternalError)
    );
}

#[tokio::test]
async fn a_panic_in_the_services_call_is_caught_too() {
    let (backstop, sink) = start_client(Options::new());
    let service = tower::service_fn(
        |_req: Request<Body>| -> std::future::Ready<Result<Response, Infallible>> {
            panic!("panicked before returning a future")
        },
    );
    let layered = tower::Layer::layer(&BackstopLayer::new(&backstop), service);
    let response = layered
        .oneshot(
            Request::get("/x")
                .header(header::ACCEPT, "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 500);
    let (events, _) = flushed(&backstop, &sink);
    assert_eq!(
        events[0].exception.values[0].value.as_deref(),
        Some("panicked before returning a future")
    );
    assert_eq!(problem["event_id"], events[0].event_id.to_string());
}

#[tokio::test]
async fn the_debug_page_shows_the_panic_only_in_development() {
    let (backstop, _sink) = start_client(Options::new().environment("development"));
    let app = app(BackstopLayer::new(&backstop));
    // A visitor on this machine.
    let mut local = get_req("/panic");
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 50000));
    local
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let (_, _, body) = send(&app, local).await;
    assert!(
        body.contains("payment exploded"),
        "the debug page shows the message"
    );
    // A visitor of unknown address gets the normal page.
    let (status, _, body) = send(&app, get_req("/panic")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("<h1"));
    assert!(!body.contains("payment exploded"));
}

#[tokio::test]
async fn five_hundreds_are_recorded_with_and_without_an_error_object() {
    let (backstop, sink) = start_client(Options::new().environment("production"));
    let app = app(BackstopLayer::new(&backstop));
    let (status, _, body) = send(&app, get_req("/error")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("<h1"), "plain-text 500 becomes the page");
    assert!(!body.contains("disk on fire"));
    let (status, _, _) = send(&app, get_req("/bare500")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, headers, _) = send(&app, get_req("/unavailable")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        headers[header::RETRY_AFTER],
        "30",
        "the status's headers survive the page"
    );
    let (events, _) = flushed(&backstop, &sink);
    assert_eq!(events.len(), 3);
    let chain: Vec<_> = events[0]
        .exception
        .values
        .iter()
        .map(|e| e.ty.as_str())
        .collect();
    assert_eq!(
        chain,
        ["Custom", "StorageError"],
        "the real type and its source chain"
    );
    assert_eq!(
        events[0].exception.values[1].value.as_deref(),
        Some("the order could not be saved")
    );
    assert_eq!(events[1].exception.values[0].ty, "InternalServerError");
    assert_eq!(
        events[1].exception.values[0].value.as_deref(),
        Some("GET /bare500 responded 500 Internal Server Error")
    );
    assert_eq!(events[2].tags["http.status_code"], "503");
}

#[tokio::test]
async fn ignored_statuses_and_4xx_are_not_recorded() {
    let (backstop, sink) = start_client(Options::new().ignore_status(503));
    let app = app(BackstopLayer::new(&backstop));
    send(&app, get_req("/unavailable")).await;
    send(&app, get_req("/forbidden")).await;
    send(&app, get_req("/nope")).await;
    let (events, _) = flushed(&backstop, &sink);
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn axum_defaults_and_rejections_become_pages_with_their_headers_and_text() {
    let (backstop, _sink) = start_client(Options::new());
    let app = app(BackstopLayer::new(&backstop));
    // An unknown path: axum's empty 404.
    let (status, headers, body) = send(&app, get_req("/no/such/page")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(body.contains("/no/such/page"));
    // Wrong method: axum's empty 405 keeps its Allow header.
    let (status, headers, body) = send(
        &app,
        Request::delete("/")
            .header(header::ACCEPT, "text/html")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(headers[header::ALLOW].to_str().unwrap().contains("GET"));
    assert!(body.contains("<h1"));
    // A path rejection (plain text) keeps its text as the detail.
    let (status, _, body) = send(&app, get_req("/users/not-a-number")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Invalid URL"), "{body}");
    // A JSON body rejection: 422 with the serde message.
    let request = Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(r#"{"quantity":"many"}"#))
        .unwrap();
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("quantity"),
        "{problem}"
    );
    // Missing content type: 415.
    let request = Request::post("/orders").body(Body::from("x")).unwrap();
    let (status, headers, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
}

#[tokio::test]
async fn handler_json_errors_and_successes_pass_through_untouched() {
    let (backstop, _sink) = start_client(Options::new());
    let app = app(BackstopLayer::new(&backstop));
    let (status, headers, body) = send(&app, get_req("/json-error")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(body, r#"{"error":"no such order"}"#);
    let (status, _, body) = send(&app, get_req("/users/7")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "user 7"));
    // With the policy set to always, even the JSON error becomes a page.
    let app = self::app(BackstopLayer::new(&backstop).page_policy(PagePolicy::always()));
    let (_, headers, _) = send(&app, get_req("/json-error")).await;
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // And never leaves axum's empty 404 alone.
    let app = self::app(BackstopLayer::new(&backstop).page_policy(PagePolicy::never()));
    let (status, _, body) = send(&app, get_req("/nope")).await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, ""));
}

#[tokio::test]
async fn head_requests_get_headers_only() {
    let (backstop, _sink) = start_client(Options::new());
    let app = app(BackstopLayer::new(&backstop));
    let request = Request::head("/nope")
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(body.is_empty());
}

#[tokio::test]
async fn hostile_paths_and_headers_are_escaped_and_harmless() {
    let (backstop, sink) = start_client(Options::new());
    let app = app(BackstopLayer::new(&backstop));
    let request =
        Request::get("/%3Cscript%3Ealert(1)%3C/script%3E?q=%3Cimg%20src=x%20onerror=alert(1)%3E")
            .header(header::ACCEPT, "text/html")
            .header("x-request-id", "<script>")
            .header("traceparent", "00-zzzz-<script>-01")
            .header(header::USER_AGENT, "<script>alert(1)</script>")
            .body(Body::empty())
            .unwrap();
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!body.contains("<script>"), "{body}");
    assert!(!body.contains("<img"), "{body}");
    assert_ne!(
        headers["x-request-id"], "<script>",
        "an unsafe request id is replaced"
    );
    // A rejection echoes the decoded segment into its text, which becomes the page's
    // detail: the payload reaches the page, and must arrive escaped.
    let request = Request::get("/users/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the decoded payload is on the page, escaped: {body}"
    );
    assert!(!body.contains("<script>alert(1)</script>"), "{body}");
    flushed(&backstop, &sink);
}

#[tokio::test]
async fn transactions_are_named_by_route_sampled_and_continue_traces() {
    let (backstop, sink) = start_client(Options::new().traces_sample_rate(1.0));
    let app = app(BackstopLayer::new(&backstop));
    send(&app, get_req("/users/7")).await;
    send(&app, get_req("/no/such/7")).await;
    let request = Request::get("/")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .unwrap();
    send(&app, request).await;
    let request = Request::get("/")
        .header(
            "sentry-trace",
            "771a43a4192642f0b136d5159a501700-b2b7b5d1c0b8e9a2-0",
        )
        .body(Body::empty())
        .unwrap();
    send(&app, request).await;
    let (_, transactions) = flushed(&backstop, &sink);
    let names: Vec<_> = transactions.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["GET /users/{id}", "GET <unmatched>", "GET /"],
        "the sentry-trace one was not sampled"
    );
    let trace = &transactions[0].trace;
    assert_eq!(trace.op.as_deref(), Some("http.server"));
    assert_eq!(trace.status, Some(backstop_core::SpanStatus::Ok));
    assert_eq!(trace.data["http.response.status_code"], 200);
    assert_eq!(
        transactions[1].status(),
        Some(backstop_core::SpanStatus::NotFound)
    );
    let continued = &transactions[2].trace;
    assert_eq!(
        continued.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        continued.parent_span_id.unwrap().to_string(),
        "00f067aa0ba902b7"
    );
    assert!(
        transactions[0]
            .request
            .as_ref()
            .unwrap()
            .url
            .as_deref()
            .unwrap()
            .ends_with("/users/7")
    );

    // Sampling at 0 records no transaction; a sampler sees the route.
    let (none, none_sink) = start_client(Options::new().traces_sample_rate(0.0));
    let app = self::app(BackstopLayer::new(&none));
    send(&app, get_req("/")).await;
    assert!(flushed(&none, &none_sink).1.is_empty());
    let (by_route, by_route_sink) = start_client(
        Options::new().traces_sampler(|ctx| if ctx.route == Some("/") { 0.0 } else { 1.0 }),
    );
    let app = self::app(BackstopLayer::new(&by_route));
    send(&app, get_req("/")).await;
    send(&app, get_req("/users/1")).await;
    let names: Vec<_> = flushed(&by_route, &by_route_sink)
        .1
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["GET /users/{id}"]);
}

#[tokio::test]
async fn a_cancelled_request_finishes_as_aborted() {
    let (backstop, sink) = start_client(Options::new().traces_sample_rate(1.0));
    let app = app(BackstopLayer::new(&backstop));
    let outcome = tokio::time::timeout(
        Duration::from_millis(50),
        app.clone().oneshot(get_req("/slow")),
    )
    .await;
    assert!(outcome.is_err(), "timed out, and the future was dropped");
    let (_, transactions) = flushed(&backstop, &sink);
    assert_eq!(transactions.len(), 1);
    assert_eq!(
        transactions[0].status(),
        Some(backstop_core::SpanStatus::Aborted)
    );
    assert_eq!(transactions[0].name, "GET /slow");
}

#[tokio::test]
async fn users_from_the_callback_the_extractor_and_set_user() {
    #[derive(Clone)]
    struct Auth(&'static str);
    let (backstop, sink) = start_client(Options::new());
    let layer = BackstopLayer::new(&backstop)
        .user_from(|parts| parts.extensions.get::<Auth>().map(|a| User::with_id(a.0)));
    let app = app(layer).layer(axum::Extension(Auth("ann")));
    let (status, _, _) = send(&app, get_req("/scope")).await;
    assert_eq!(status, StatusCode::OK);
    send(&app, get_req("/bare500")).await;
    let (events, _) = flushed(&backstop, &sink);
    assert_eq!(events.len(), 2);
    for event in &events {
        assert_eq!(event.user.as_ref().unwrap().id.as_deref(), Some("ann"));
    }
    assert_eq!(events[0].tags["via"], "extractor");
    // A panicking callback does not take the request down.
    let layer = BackstopLayer::new(&backstop).user_from(|_| panic!("auth bug"));
    let (status, _, _) = send(&self::app(layer), get_req("/")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let (backstop, _sink) = start_client(Options::new());
    let app = app(BackstopLayer::new(&backstop));
    let request = Request::get("/")
        .header("x-request-id", "req-123")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = send(&app, request).await;
    assert_eq!(headers["x-request-id"], "req-123");
    let (_, headers, _) = send(&app, get_req("/")).await;
    assert_eq!(headers["x-request-id"].len(), 32);
}

#[tokio::test]
async fn works_with_service_builder_around_the_whole_router() {
    let (backstop, sink) = start_client(Options::new().traces_sample_rate(1.0));
    let router: Router = Router::new().route("/", get(|| async { "home" }));
    let service = tower::ServiceBuilder::new()
        .layer(BackstopLayer::new(&backstop))
        .service(router);
    let response = service.oneshot(get_req("/missing")).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("<h1"));
    let (_, transactions) = flushed(&backstop, &sink);
    assert_eq!(transactions.len(), 1);
}

#[tokio::test]
async fn json_bodies_are_captured_scrubbed_and_still_reach_the_handler() {
    let (backstop, sink) = start_client(Options::new());
    let app = Router::new()
        .route(
            "/login",
            post(|body: String| async move {
                assert!(
                    body.ends_with("\"padding\":\"xxxxxxxxxx\"}"),
                    "the handler gets it all: {body}"
                );
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .route(
            "/upload",
            post(|_body: String| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .layer(BackstopLayer::new(&backstop).capture_bodies(64));
    let json = r#"{"user":"ann","password":"hunter2","padding":"xxxxxxxxxx"}"#;
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json))
        .unwrap();
    let (status, _, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let long = format!(r#"{{"note":"{}"}}"#, "y".repeat(200));
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(long))
        .unwrap();
    send(&app, request).await;
    let request = Request::post("/upload")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from("binary"))
        .unwrap();
    send(&app, request).await;
    let (events, _) = flushed(&backstop, &sink);
    let data = events[0].request.as_ref().unwrap().data.as_deref().unwrap();
    let parsed: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(parsed["user"], "ann");
    assert_eq!(parsed["password"], "[Filtered]");
    let cut = events[1].request.as_ref().unwrap().data.as_deref().unwrap();
    assert_eq!(cut.len(), 64, "capped at the limit");
    assert_eq!(
        events[2].request.as_ref().unwrap().data,
        None,
        "only JSON and forms"
    );
}
