//! The middleware in-process, through `actix_web::test`: panics, 5xx, pages,
//! transactions and request context. The same scenarios as backstop-tower's
//! `tests/layer.rs`, with the same expectations.

use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, ResponseError, test, web};
use backstop_actix::{Backstop, BackstopScope, PagePolicy};
use backstop_core::test::TestSink;
use backstop_core::{Event, Options, SpanStatus, Transaction, User};

fn start(options: Options) -> (backstop_core::BackstopGuard, TestSink) {
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

impl ResponseError for StorageError {}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Order {
    quantity: u32,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Search {
    page: u32,
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(|| async { "home" }))
        .route(
            "/panic",
            web::get().to(|| async {
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
            web::get().to(|| async {
                Err::<HttpResponse, _>(StorageError(std::io::Error::other("disk on fire")))
            }),
        )
        .route(
            "/bare500",
            web::get().to(|| async { HttpResponse::InternalServerError().finish() }),
        )
        .route(
            "/unavailable",
            web::get().to(|| async {
                HttpResponse::ServiceUnavailable()
                    .insert_header((header::RETRY_AFTER, "30"))
                    .finish()
            }),
        )
        .route(
            "/forbidden",
            web::get().to(|| async { HttpResponse::Forbidden().finish() }),
        )
        .route(
            "/json-error",
            web::get().to(|| async {
                HttpResponse::NotFound().json(serde_json::json!({"error": "no such order"}))
            }),
        )
        .route(
            "/users/{id}",
            web::get().to(|id: web::Path<u32>| async move { format!("user {id}") }),
        )
        .route(
            "/orders",
            web::post().to(|_order: web::Json<Order>| async { "created" }),
        )
        .route(
            "/search",
            web::get().to(|q: web::Query<Search>| async move { format!("page {}", q.page) }),
        )
        .route(
            "/echo",
            web::post().to(|body: web::Bytes| async move { body }),
        )
        .route(
            "/scope",
            web::get().to(|BackstopScope(scope): BackstopScope| async move {
                scope.configure(|s| s.set_tag("via", "extractor"));
                backstop_core::capture_message("from the handler", backstop_core::Level::Info);
                "ok"
            }),
        )
        .route(
            "/slow",
            web::get().to(|| async {
                actix_web::rt::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .service(web::resource("/only-get").route(web::get().to(|| async { "got" })))
        .app_data(web::JsonConfig::default().limit(64));
}

async fn send(
    service: &impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    request: test::TestRequest,
) -> (StatusCode, http::HeaderMap, String) {
    let response = test::call_service(service, request.to_request()).await;
    let status = response.status();
    // In `http` 1 types, as the parity suite compares them.
    let mut headers = http::HeaderMap::new();
    for (name, value) in response.headers() {
        headers.append(
            http::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    let body = test::read_body(response).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(uri: &str) -> test::TestRequest {
    test::TestRequest::get()
        .uri(uri)
        .insert_header((header::ACCEPT, "text/html"))
}

fn flushed(
    backstop: &backstop_core::BackstopGuard,
    sink: &TestSink,
) -> (Vec<Event>, Vec<Transaction>) {
    assert!(backstop.flush(Duration::from_secs(10)));
    (sink.events(), sink.transactions())
}

fn content_type(headers: &http::HeaderMap) -> &str {
    headers[http::header::CONTENT_TYPE].to_str().unwrap()
}

#[actix_web::test]
async fn a_panic_in_the_handler_becomes_a_500_page_and_one_unhandled_event() {
    let (backstop, sink) = start(
        Options::new()
            .traces_sample_rate(1.0)
            .environment("production"),
    );
    let app = test::init_service(App::new().wrap(Backstop::new(&backstop)).configure(routes)).await;
    let (status, headers, body) = send(&app, get("/panic?step=2")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(content_type(&headers).starts_with("text/html"));
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
    assert_eq!(transactions[0].status(), Some(SpanStatus::InternalError));
    // The app keeps serving.
    let (status, _, body) = send(&app, get("/")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "home"));
}

#[actix_web::test]
async fn a_panic_in_the_services_call_is_caught_too() {
    let (backstop, sink) = start(Options::new());
    let app = test::init_service(
        App::new()
            // An inner middleware (registered first, so inside Backstop) whose `call`
            // panics before returning a future.
            .wrap_fn(|req, srv| {
                if req.path() == "/explode" {
                    panic!("panicked before returning a future");
                }
                srv.call(req)
            })
            .wrap(Backstop::new(&backstop))
            .configure(routes),
    )
    .await;
    let request = test::TestRequest::get()
        .uri("/explode")
        .insert_header((header::ACCEPT, "application/json"));
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(content_type(&headers).starts_with("application/problem+json"));
    assert!(headers.contains_key("x-request-id"));
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 500);
    let (events, _) = flushed(&backstop, &sink);
    assert_eq!(
        events[0].exception.values[0].value.as_deref(),
        Some("panicked before returning a future")
    );
    assert_eq!(problem["event_id"], events[0].event_id.to_string());
}

#[actix_web::test]
async fn the_debug_page_shows_the_panic_and_the_error_chain_only_in_development() {
    let (backstop, _sink) = start(Options::new().environment("development"));
    let app = test::init_service(
        App::new()
            .wrap(Backstop::new(&backstop).error_type::<StorageError>())
            .configure(routes),
    )
    .await;
    // A visitor on this machine.
    let local = |uri| get(uri).peer_addr(([127, 0, 0, 1], 50000).into());
    let (_, _, body) = send(&app, local("/panic")).await;
    assert!(
        body.contains("payment exploded"),
        "the debug page shows the message"
    );
    let (_, _, body) = send(&app, local("/error")).await;
    assert!(body.contains("disk on fire"), "and the error's chain");
    // A visitor of unknown address gets the normal page.
    let (status, _, body) = send(&app, get("/panic")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("<h1"));
    assert!(!body.contains("payment exploded"));
}

#[actix_web::test]
async fn five_hundreds_are_recorded_with_and_without_an_error_object() {
    let (backstop, sink) = start(Options::new().environment("production"));
    let app = test::init_service(
        App::new()
            .wrap(Backstop::new(&backstop).error_type::<StorageError>())
            .configure(routes),
    )
    .await;
    let (status, _, body) = send(&app, get("/error")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("<h1"), "plain-text 500 becomes the page");
    assert!(!body.contains("disk on fire"));
    let (status, _, _) = send(&app, get("/bare500")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, headers, _) = send(&app, get("/unavailable")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        headers[http::header::RETRY_AFTER],
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
    assert_eq!(
        events[0].exception.values[1].module.as_deref(),
        Some("middleware"),
        "the real type, with its module"
    );
    assert_eq!(events[1].exception.values[0].ty, "InternalServerError");
    assert_eq!(
        events[1].exception.values[0].value.as_deref(),
        Some("GET /bare500 responded 500 Internal Server Error")
    );
    assert_eq!(events[2].tags["http.status_code"], "503");
}

#[actix_web::test]
async fn an_unnamed_error_type_is_recorded_by_its_debug_name_and_message() {
    let (backstop, sink) = start(Options::new());
    let app = test::init_service(App::new().wrap(Backstop::new(&backstop)).configure(routes)).await;
    send(&app, get("/error")).await;
    let (events, _) = flushed(&backstop, &sink);
    let values = &events[0].exception.values;
    assert_eq!(values.len(), 1, "no chain without the type");
    assert_eq!(values[0].ty, "StorageError");
    assert_eq!(
        values[0].value.as_deref(),
        Some("the order could not be saved")
    );
    let mechanism = values[0].mechanism.as_ref().unwrap();
    assert_eq!(
        (mechanism.ty.as_str(), mechanism.handled),
        ("http", Some(false))
    );
}

#[actix_web::test]
async fn ignored_statuses_and_4xx_are_not_recorded() {
    let (backstop, sink) = start(Options::new().ignore_status(503));
    let app = test::init_service(App::new().wrap(Backstop::new(&backstop)).configure(routes)).await;
    send(&app, get("/unavailable")).await;
    send(&app, get("/forbidden")).await;
    send(&app, get("/nope")).await;
    let (events, _) = flushed(&backstop, &sink);
    assert!(events.is_empty(), "{events:?}");
}

#[actix_web::test]
async fn actix_defaults_and_extractor_errors_become_pages_with_their_headers_and_text() {
    let (backstop, _sink) = start(Options::new());
    let app = test::init_service(App::new().wrap(Backstop::new(&backstop)).configure(routes)).await;
    // An unknown path: actix's empty 404.
    let (status, headers, body) = send(&app, get("/no/such/page")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(content_type(&headers).starts_with("text/html"));
    assert_eq!(headers[http::header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[http::header::CACHE_CONTROL], "no-store");
    assert!(body.contains("/no/such/page"));
    // Wrong method: actix's empty 405 keeps its Allow header.
    let (status, headers, body) = send(
        &app,
        test::TestRequest::delete()
            .uri("/only-get")
            .insert_header((header::ACCEPT, "text/html")),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        headers[http::header::ALLOW]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    assert!(body.contains("<h1"));
    // A path error (actix answers 404) keeps its text as the detail.
    let (status, _, body) = send(&app, get("/users/not-a-number")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("can not parse"), "{body}");
    // A query error.
    let (status, _, body) = send(&app, get("/search?page=many")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Query deserialize error"), "{body}");
    // A JSON body error, for an API client: problem+json with the serde message.
    let request = test::TestRequest::post()
        .uri("/orders")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::ACCEPT, "application/json"))
        .set_payload(r#"{"quantity":"many"}"#);
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(content_type(&headers).starts_with("application/problem+json"));
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("Json deserialize error"),
        "{problem}"
    );
    // Payload too large: 413.
    let request = test::TestRequest::post()
        .uri("/orders")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::ACCEPT, "text/html"))
        .set_payload(format!(r#"{{"quantity":1,"pad":"{}"}}"#, "x".repeat(200)));
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(content_type(&headers).starts_with("text/html"));
    assert!(body.contains("<h1"));
    // No content type (actix answers 400), no `Accept`: the plain-text page.
    let request = test::TestRequest::post().uri("/orders").set_payload("x");
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(content_type(&headers).starts_with("text/plain"));
    assert!(body.contains("Content type error"), "{body}");
}

#[actix_web::test]
async fn handler_json_errors_and_successes_pass_through_untouched() {
    let (backstop, _sink) = start(Options::new());
    let app = test::init_service(App::new().wrap(Backstop::new(&backstop)).configure(routes)).await;
    let (status, headers, body) = send(&app, get("/json-error")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[http::header::CONTENT_TYPE], "application/json");
    assert_eq!(body, r#"{"error":"no such order"}"#);
    let (status, _, body) = send(&app, get("/users/7")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "user 7"));
    // With the policy set to always, even the JSON error becomes a page.
    let app = test::init_service(
        App::new()
            .wrap(Backstop::new(&backstop).page_policy(PagePolicy::always()))
            .configure(routes),
    )
    .await;
    let (_, headers, _) = send(&app, get("/json-error")).await;
    assert!(content_type(&headers).starts_with("text/html"));
    // And never leaves actix's empty 404 alone.
    let app = test::init_service(
        App::new()
            .wrap(Backstop::new(&backstop).page_policy(PagePolicy::never()))
            .configure(routes),
    )
    .await;
    let (status, _, body) = send(&app, get("/nope")).await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, ""));
}

#[actix_web::test]
async fn head_requests_get_headers_only() {
    let (backstop, _sink) = start(Options::new());
    let app = test::init_service(App::new().wrap(Backstop::new(&backstop)).configure(routes)).await;
    let request = test::TestRequest::default()
        .method(actix_web::http::Method::HEAD)
        .uri("/nope")
        .insert_header((header::ACCEPT, "text/html"));
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(content_type(&headers).starts_with("text/html"));
    assert!(body.is_empty());
}

#[actix_web::test]
async fn hostile_paths_and_headers_are_escaped_and_harmless() {
    let (backstop, sink) = start(Options::new());
    let app = test::init_service(App::new().wrap(Backstop::new(&backstop)).configure(routes)).await;
    let request = test::TestRequest::get()
        .uri("/%3Cscript%3Ealert(1)%3C/script%3E?q=%3Cimg%20src=x%20onerror=alert(1)%3E")
        .insert_header((header::ACCEPT, "text/html"))
        .insert_header(("x-request-id", "<script>"))
        .insert_header(("traceparent", "00-zzzz-<script>-01"))
        .insert_header((header::USER_AGENT, "<script>alert(1)</script>"));
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!body.contains("<script>"), "{body}");
    assert!(!body.contains("<img"), "{body}");
    assert_ne!(
        headers["x-request-id"], "<script>",
        "an unsafe request id is replaced"
    );
    flushed(&backstop, &sink);
}

#[actix_web::test]
async fn transactions_are_named_by_route_sampled_and_continue_traces() {
    let (backstop, sink) = start(Options::new().traces_sample_rate(1.0));
    let app = test::init_service(App::new().wrap(Backstop::new(&backstop)).configure(routes)).await;
    send(&app, get("/users/7")).await;
    send(&app, get("/no/such/7")).await;
    send(
        &app,
        test::TestRequest::get().uri("/").insert_header((
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )),
    )
    .await;
    send(
        &app,
        test::TestRequest::get().uri("/").insert_header((
            "sentry-trace",
            "771a43a4192642f0b136d5159a501700-b2b7b5d1c0b8e9a2-0",
        )),
    )
    .await;
    let (_, transactions) = flushed(&backstop, &sink);
    let names: Vec<_> = transactions.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["GET /users/{id}", "GET <unmatched>", "GET /"],
        "the sentry-trace one was not sampled"
    );
    let trace = &transactions[0].trace;
    assert_eq!(trace.op.as_deref(), Some("http.server"));
    assert_eq!(trace.status, Some(SpanStatus::Ok));
    assert_eq!(trace.data["http.response.status_code"], 200);
    assert_eq!(transactions[1].status(), Some(SpanStatus::NotFound));
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

    // Sampling at 0 records no transaction; a sampler sees the route and headers.
    let (none, none_sink) = start(Options::new().traces_sample_rate(0.0));
    let app = test::init_service(App::new().wrap(Backstop::new(&none)).configure(routes)).await;
    send(&app, get("/")).await;
    assert!(flushed(&none, &none_sink).1.is_empty());
    let (by_route, by_route_sink) = start(Options::new().traces_sampler(|ctx| {
        let skip = ctx.route == Some("/")
            || ctx
                .headers
                .is_some_and(|h| h.get("x-skip").is_some_and(|v| v == "yes"));
        if skip { 0.0 } else { 1.0 }
    }));
    let app = test::init_service(App::new().wrap(Backstop::new(&by_route)).configure(routes)).await;
    send(&app, get("/")).await;
    send(&app, get("/users/1")).await;
    send(&app, get("/users/2").insert_header(("x-skip", "yes"))).await;
    let names: Vec<_> = flushed(&by_route, &by_route_sink)
        .1
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["GET /users/{id}"]);
}

#[actix_web::test]
async fn static_and_dynamic_routes_keep_their_names_request_after_request() {
    // Static routes' paths are remembered after the first request; dynamic ones and
    // unmatched paths are looked up each time. Every name must stay right.
    let (backstop, sink) = start(Options::new().traces_sample_rate(1.0));
    let app = test::init_service(
        App::new()
            .wrap(Backstop::new(&backstop))
            .service(web::scope("/api").route("/ping", web::get().to(|| async { "pong" })))
            .configure(routes),
    )
    .await;
    for path in [
        "/",
        "/api/ping",
        "/users/7",
        "/",
        "/users/8",
        "/api/ping",
        "/nope",
        "/nope",
        "/",
    ] {
        send(&app, get(path)).await;
    }
    let (_, transactions) = flushed(&backstop, &sink);
    let names: Vec<_> = transactions.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "GET /",
            "GET /api/ping",
            "GET /users/{id}",
            "GET /",
            "GET /users/{id}",
            "GET /api/ping",
            "GET <unmatched>",
            "GET <unmatched>",
            "GET /",
        ]
    );
}

#[actix_web::test]
async fn a_cancelled_request_finishes_as_aborted() {
    let (backstop, sink) = start(Options::new().traces_sample_rate(1.0));
    let app = test::init_service(App::new().wrap(Backstop::new(&backstop)).configure(routes)).await;
    let outcome = actix_web::rt::time::timeout(
        Duration::from_millis(50),
        app.call(get("/slow").to_request()),
    )
    .await;
    assert!(outcome.is_err(), "timed out, and the future was dropped");
    let (_, transactions) = flushed(&backstop, &sink);
    assert_eq!(transactions.len(), 1);
    assert_eq!(transactions[0].status(), Some(SpanStatus::Aborted));
    assert_eq!(transactions[0].name, "GET /slow");
}

#[actix_web::test]
async fn users_from_the_callback_the_extractor_and_set_user() {
    #[derive(Clone)]
    struct Auth(&'static str);
    let (backstop, sink) = start(Options::new());
    let middleware = Backstop::new(&backstop)
        .user_from(|req: &HttpRequest| req.extensions().get::<Auth>().map(|a| User::with_id(a.0)));
    let app = test::init_service(
        App::new()
            .wrap(middleware)
            // Registered later, so outside: runs before Backstop sees the request.
            .wrap_fn(|req, srv| {
                req.extensions_mut().insert(Auth("ann"));
                srv.call(req)
            })
            .configure(routes),
    )
    .await;
    let (status, _, _) = send(&app, get("/scope")).await;
    assert_eq!(status, StatusCode::OK);
    send(&app, get("/bare500")).await;
    let (events, _) = flushed(&backstop, &sink);
    assert_eq!(events.len(), 2);
    for event in &events {
        assert_eq!(event.user.as_ref().unwrap().id.as_deref(), Some("ann"));
    }
    assert_eq!(events[0].tags["via"], "extractor");
    // A panicking callback does not take the request down.
    let middleware = Backstop::new(&backstop).user_from(|_| panic!("auth bug"));
    let app = test::init_service(App::new().wrap(middleware).configure(routes)).await;
    let (status, _, _) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn the_extractor_without_the_middleware_says_so() {
    let app = test::init_service(App::new().configure(routes)).await;
    let (status, _, body) = send(&app, get("/scope")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("Backstop middleware"), "{body}");
}

#[actix_web::test]
async fn request_ids_are_echoed_or_generated() {
    let (backstop, _sink) = start(Options::new());
    let app = test::init_service(App::new().wrap(Backstop::new(&backstop)).configure(routes)).await;
    let (_, headers, _) = send(&app, get("/").insert_header(("x-request-id", "req-123"))).await;
    assert_eq!(headers["x-request-id"], "req-123");
    let (_, headers, _) = send(&app, get("/")).await;
    assert_eq!(headers["x-request-id"].len(), 32);
    let (_, headers, _) = send(&app, get("/nope")).await;
    assert_eq!(headers["x-request-id"].len(), 32, "on pages too");
}

#[actix_web::test]
async fn the_client_ip_comes_from_the_peer_and_trusted_proxies_only() {
    // Addresses are personal data: kept only with `send_default_pii`.
    let (backstop, sink) = start(
        Options::new()
            .traces_sample_rate(1.0)
            .send_default_pii(true),
    );
    let proxy: std::net::IpAddr = "10.0.0.2".parse().unwrap();
    let app = test::init_service(
        App::new()
            .wrap(Backstop::new(&backstop).trust_proxy(proxy))
            .configure(routes),
    )
    .await;
    let forwarded = |peer: &str| {
        get("/")
            .peer_addr(peer.parse().unwrap())
            .insert_header(("x-forwarded-for", "203.0.113.5"))
    };
    send(&app, forwarded("10.0.0.2:5000")).await;
    send(&app, forwarded("198.51.100.9:5000")).await;
    let (_, transactions) = flushed(&backstop, &sink);
    let ips: Vec<_> = transactions
        .iter()
        .map(|t| t.request.as_ref().unwrap().env["REMOTE_ADDR"].as_str())
        .collect();
    assert_eq!(ips, ["203.0.113.5", "198.51.100.9"]);
}

#[actix_web::test]
async fn bodies_are_captured_scrubbed_and_still_reach_the_handler() {
    let (backstop, sink) = start(Options::new().traces_sample_rate(1.0));
    let app = test::init_service(
        App::new()
            .wrap(Backstop::new(&backstop).capture_bodies(64))
            .configure(routes),
    )
    .await;
    let json = r#"{"user":"ann","password":"hunter2"}"#;
    let request = test::TestRequest::post()
        .uri("/echo")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(json);
    let (status, _, body) = send(&app, request).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, json));
    // Over the limit: the handler gets it all, the record its first 64 bytes, with
    // the secret cut off at the limit filtered all the same.
    let big = format!(r#"{{"pad":"{}","password":"hunter2"}}"#, "x".repeat(40));
    let request = test::TestRequest::post()
        .uri("/echo")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(big.clone());
    let (_, _, body) = send(&app, request).await;
    assert_eq!(body, big);
    // Not JSON or a form: not captured.
    let request = test::TestRequest::post()
        .uri("/echo")
        .insert_header((header::CONTENT_TYPE, "text/plain"))
        .set_payload("plain words");
    send(&app, request).await;
    let (_, transactions) = flushed(&backstop, &sink);
    let data: Vec<_> = transactions
        .iter()
        .map(|t| t.request.as_ref().unwrap().data.as_deref())
        .collect();
    let captured: serde_json::Value = serde_json::from_str(data[0].unwrap()).unwrap();
    assert_eq!(captured["user"], "ann");
    assert_eq!(captured["password"], backstop_core::FILTERED);
    let cut = data[1].unwrap();
    assert!(cut.starts_with(r#"{"pad":"xxxx"#), "{cut}");
    assert!(
        cut.contains(backstop_core::FILTERED) && !cut.contains("hu"),
        "{cut}"
    );
    assert_eq!(data[2], None);
}

#[actix_web::test]
async fn an_error_from_an_inner_middleware_is_recorded_and_paged() {
    let (backstop, sink) = start(Options::new());
    let app = test::init_service(
        App::new()
            .wrap_fn(|req, srv| {
                let fut = srv.call(req);
                async move {
                    let _ = fut.await;
                    Err::<ServiceResponse, _>(actix_web::error::ErrorBadGateway("upstream down"))
                }
            })
            .wrap(Backstop::new(&backstop))
            .configure(routes),
    )
    .await;
    // The failing middleware is inside Backstop (registered first). A 5xx page's
    // detail is a debug detail: the visitor is on this machine.
    let local = get("/").peer_addr(([127, 0, 0, 1], 50000).into());
    let (status, headers, body) = send(&app, local).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(content_type(&headers).starts_with("text/html"));
    assert!(body.contains("upstream down"), "the text is the detail");
    assert!(headers.contains_key("x-request-id"));
    let (events, _) = flushed(&backstop, &sink);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tags["http.status_code"], "502");
    // Outside Backstop, its error is not Backstop's to see.
    let app = test::init_service(
        App::new()
            .wrap(Backstop::new(&backstop))
            .wrap_fn(|req, srv| {
                let fut = srv.call(req);
                async move {
                    let _ = fut.await;
                    Err::<ServiceResponse, _>(actix_web::error::ErrorBadGateway("upstream down"))
                }
            })
            .configure(routes),
    )
    .await;
    let response = app.call(get("/").to_request()).await;
    assert!(response.is_err());
}
