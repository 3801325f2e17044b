//! What Backstop writes is Sentry's own JSON: the `sentry-types` crate reads it back
//! field for field.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use backstop_core::protocol::{Map, Request};
use backstop_core::{
    Breadcrumb, Level, Options, RequestScope, Span, SpanId, SpanStatus, User, test,
};
use sentry_types::protocol::v7 as sentry;

#[derive(Debug)]
struct Outer(Inner);
#[derive(Debug)]
struct Inner;

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("checkout failed")
    }
}
impl std::fmt::Display for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined")
    }
}
impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
impl std::error::Error for Inner {}

fn request() -> Request {
    let mut headers = BTreeMap::new();
    headers.insert("accept".to_owned(), "text/html".to_owned());
    headers.insert("authorization".to_owned(), "Bearer secret".to_owned());
    Request {
        url: Some("http://shop.test/checkout?step=2".into()),
        method: Some("POST".into()),
        query_string: Some("step=2".into()),
        headers,
        ..Request::default()
    }
}

#[test]
fn error_event_reads_back_as_a_sentry_event() {
    let captured = test::capture_with(
        Options::new().release("shop@1.2.3").environment("staging"),
        || {
            backstop_core::configure_scope(|s| {
                s.set_request(request());
                s.set_transaction("POST /checkout");
            });
            backstop_core::set_user(Some(User::with_id("42").username("ann")));
            backstop_core::set_tag("tenant", "acme");
            backstop_core::set_context("order", serde_json::json!({"id": 7, "total": "19.90"}));
            backstop_core::set_extra("attempt", 2);
            backstop_core::add_breadcrumb(
                Breadcrumb::new("cart", "added item").data("product_id", 9),
            );
            backstop_core::capture_error(&Outer(Inner));
        },
    );
    let ours = &captured.events[0];
    let json = serde_json::to_string(ours).unwrap();
    let theirs: sentry::Event<'_> =
        serde_json::from_str(&json).expect("sentry-types reads our event");

    assert_eq!(theirs.event_id, ours.event_id.as_uuid());
    assert_eq!(theirs.level, sentry::Level::Error);
    assert_eq!(theirs.platform, "native");
    assert_eq!(theirs.release.as_deref(), Some("shop@1.2.3"));
    assert_eq!(theirs.environment.as_deref(), Some("staging"));
    assert_eq!(theirs.transaction.as_deref(), Some("POST /checkout"));
    // Float seconds keep about a microsecond of precision.
    let drift = match theirs.timestamp.duration_since(ours.timestamp) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    assert!(drift < Duration::from_micros(2), "{drift:?}");

    // The chain, root cause first; the mechanism on the outermost.
    let exceptions = &theirs.exception.values;
    assert_eq!(exceptions.len(), 2);
    assert_eq!(exceptions[0].ty, "Inner");
    assert_eq!(exceptions[0].value.as_deref(), Some("card declined"));
    assert_eq!(exceptions[1].ty, "Outer");
    assert_eq!(exceptions[1].module.as_deref(), Some("sentry_compat"));
    let mechanism = exceptions[1].mechanism.as_ref().unwrap();
    assert_eq!(mechanism.ty, "error");
    assert_eq!(mechanism.handled, Some(true));

    let user = theirs.user.as_ref().unwrap();
    assert_eq!(user.id.as_deref(), Some("42"));
    assert_eq!(user.username.as_deref(), Some("ann"));
    assert_eq!(theirs.tags["tenant"], "acme");
    assert_eq!(theirs.extra["attempt"], 2);
    match &theirs.contexts["order"] {
        sentry::Context::Other(map) => assert_eq!(map["id"], 7),
        other => panic!("unexpected context {other:?}"),
    }
    match &theirs.contexts["trace"] {
        sentry::Context::Trace(trace) => {
            assert_eq!(trace.trace_id.to_string().len(), 32);
        }
        other => panic!("unexpected trace context {other:?}"),
    }
    let crumb = &theirs.breadcrumbs.values[0];
    assert_eq!(crumb.category.as_deref(), Some("cart"));
    assert_eq!(crumb.message.as_deref(), Some("added item"));
    assert_eq!(crumb.data["product_id"], 9);

    let req = theirs.request.as_ref().unwrap();
    assert_eq!(req.method.as_deref(), Some("POST"));
    assert_eq!(
        req.url.as_ref().unwrap().as_str(),
        "http://shop.test/checkout?step=2"
    );
    assert_eq!(req.query_string.as_deref(), Some("step=2"));
    assert_eq!(
        req.headers["authorization"], "[Filtered]",
        "scrubbed before it leaves"
    );
    assert_eq!(req.headers["accept"], "text/html");

    assert_eq!(theirs.fingerprint.len(), 1, "resolved to one group hash");
    assert_eq!(theirs.fingerprint[0], ours.fingerprint[0]);
    assert_eq!(theirs.sdk.as_ref().unwrap().name, "backstop.rust");
}

#[test]
fn panic_event_frames_read_back() {
    let captured = test::capture(|| {
        let scope = RequestScope::current().unwrap();
        let payload = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
        scope.capture_panic(&*payload);
    });
    let ours = &captured.events[0];
    let json = serde_json::to_string(ours).unwrap();
    let theirs: sentry::Event<'_> = serde_json::from_str(&json).unwrap();
    assert_eq!(theirs.level, sentry::Level::Fatal);
    let exc = &theirs.exception.values[0];
    assert_eq!(exc.ty, "panic");
    assert_eq!(exc.value.as_deref(), Some("boom"));
    assert_eq!(exc.mechanism.as_ref().unwrap().handled, Some(false));
    let frames = &exc.stacktrace.as_ref().expect("a stack trace").frames;
    let ours_frames = &ours.exception.values[0].stacktrace.as_ref().unwrap().frames;
    assert_eq!(frames.len(), ours_frames.len());
    for (theirs, ours) in frames.iter().zip(ours_frames) {
        assert_eq!(theirs.function, ours.function);
        assert_eq!(theirs.module, ours.module);
        assert_eq!(theirs.filename, ours.filename);
        assert_eq!(theirs.lineno, ours.lineno);
        assert_eq!(theirs.in_app, ours.in_app);
    }
    assert!(frames.iter().any(|f| f.in_app == Some(true)));
}

#[test]
fn transaction_with_spans_reads_back() {
    let captured = test::capture(|| {});
    assert!(
        captured.transactions.is_empty(),
        "the test scope itself is not sampled"
    );

    let sink = test::TestSink::new();
    let backstop = backstop_core::test::start(
        Options::new()
            .traces_sample_rate(1.0)
            .release("shop@2")
            .sink(sink.clone()),
    )
    .unwrap();
    let scope = RequestScope::builder(&backstop, "GET /users/{id}")
        .op("http.server")
        .request(request())
        .start();
    scope.configure(|s| s.set_user(Some(User::with_id("7"))));
    let now = SystemTime::now();
    for i in 0..3u64 {
        let mut data = Map::new();
        data.insert("db.system".into(), "sqlite".into());
        data.insert("db.rows_returned".into(), i.into());
        scope.add_span(Span {
            span_id: SpanId::new(),
            trace_id: scope.trace_id(),
            parent_span_id: Some(scope.span_id()),
            op: Some("db.sql.query".into()),
            description: Some("SELECT * FROM users WHERE id = ?".into()),
            status: Some(SpanStatus::Ok),
            start_timestamp: now + Duration::from_millis(i),
            timestamp: now + Duration::from_millis(i + 1),
            tags: BTreeMap::new(),
            data,
        });
    }
    let id = scope.finish_http(404).expect("sampled");
    assert!(backstop.flush(Duration::from_secs(5)));
    let ours = sink.transactions().pop().unwrap();
    assert_eq!(ours.event_id, id);
    // Hand-built query spans are grouped and checked too: three identical statements
    // are duplicates, and Backstop's own `problems` field doesn't upset Sentry's types.
    assert_eq!(ours.problems.len(), 1);
    assert_eq!(
        ours.problems[0].kind,
        backstop_core::ProblemKind::DuplicateQueries
    );

    let json = serde_json::to_string(&ours).unwrap();
    let theirs: sentry::Transaction<'_> =
        serde_json::from_str(&json).expect("sentry-types reads it");
    assert_eq!(theirs.event_id, ours.event_id.as_uuid());
    assert_eq!(theirs.name.as_deref(), Some("GET /users/{id}"));
    assert_eq!(theirs.release.as_deref(), Some("shop@2"));
    assert_eq!(theirs.user.as_ref().unwrap().id.as_deref(), Some("7"));
    assert!(theirs.timestamp.unwrap() >= theirs.start_timestamp);
    match &theirs.contexts["trace"] {
        sentry::Context::Trace(trace) => {
            assert_eq!(trace.trace_id.to_string(), scope.trace_id().to_string());
            assert_eq!(trace.span_id.to_string(), scope.span_id().to_string());
            assert_eq!(trace.op.as_deref(), Some("http.server"));
            assert_eq!(trace.status, Some(sentry::SpanStatus::NotFound));
            assert_eq!(trace.data["http.response.status_code"], 404);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(theirs.spans.len(), 3);
    for (theirs, ours) in theirs.spans.iter().zip(&ours.spans) {
        assert_eq!(theirs.span_id.to_string(), ours.span_id.to_string());
        assert_eq!(theirs.trace_id.to_string(), ours.trace_id.to_string());
        assert_eq!(
            theirs.parent_span_id.map(|s| s.to_string()),
            ours.parent_span_id.map(|s| s.to_string())
        );
        assert_eq!(theirs.op, ours.op);
        assert_eq!(theirs.description, ours.description);
        assert_eq!(theirs.status, Some(sentry::SpanStatus::Ok));
        assert_eq!(theirs.data["db.system"], "sqlite");
        // Microsecond precision survives the round trip.
        let d = theirs
            .timestamp
            .unwrap()
            .duration_since(theirs.start_timestamp)
            .unwrap();
        assert!((d.as_secs_f64() - 0.001).abs() < 0.0001, "{d:?}");
    }
    // Our own types read our JSON back too (the store relies on it).
    let again: backstop_core::Transaction = serde_json::from_str(&json).unwrap();
    assert_eq!(again.spans.len(), 3);
    assert_eq!(again.problems, ours.problems);
    assert_eq!(again.status(), Some(SpanStatus::NotFound));
    let level: Level = "warning".parse().unwrap();
    assert_eq!(level, Level::Warning);
}

#[test]
fn a_request_source_is_built_on_the_worker_for_events_and_transactions() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let built = Arc::new(AtomicUsize::new(0));
    let sink = test::TestSink::new();
    let backstop =
        backstop_core::test::start(Options::new().traces_sample_rate(1.0).sink(sink.clone()))
            .unwrap();
    let counter = built.clone();
    let scope = RequestScope::builder(&backstop, "GET /")
        .request_source(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = request();
            request.headers.insert(
                "user-agent".into(),
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1".into(),
            );
            request
        }))
        .start();
    assert_eq!(built.load(Ordering::SeqCst), 0, "nothing is built up front");
    scope.capture_message("m", Level::Error);
    scope.finish_http(200);
    assert!(backstop.flush(Duration::from_secs(5)));
    assert_eq!(built.load(Ordering::SeqCst), 2, "once per record");
    let event = sink.events().pop().unwrap();
    let transaction = sink.transactions().pop().unwrap();
    assert_eq!(
        event.request.as_ref().unwrap().method.as_deref(),
        Some("POST")
    );
    assert_eq!(event.contexts["browser"]["name"], "Safari");
    assert_eq!(event.contexts["os"]["name"], "iPhone");
    assert_eq!(event.contexts["device"]["family"], "smartphone");
    assert_eq!(
        transaction.request.as_ref().unwrap().headers["authorization"],
        "[Filtered]"
    );
    assert_eq!(transaction.contexts["browser"]["name"], "Safari");
}

#[test]
fn call_and_cache_spans_and_the_cache_context_read_back() {
    let sink = test::TestSink::new();
    let backstop =
        backstop_core::test::start(Options::new().traces_sample_rate(1.0).sink(sink.clone()))
            .unwrap();
    let scope = RequestScope::builder(&backstop, "GET /checkout")
        .op("http.server")
        .start();
    scope.run(|| {
        let mut get = backstop_core::cache::get("rates:EUR");
        get.hit(false);
        drop(get);
        let mut call = backstop_core::outgoing::start(
            &http::Method::GET,
            "https://rates.example/eur?token=abc&day=1",
        );
        call.status(503).response_size(12);
        drop(call);
    });
    scope.finish_http(502);
    assert!(backstop.flush(Duration::from_secs(5)));
    let ours = sink.transactions().pop().unwrap();
    let json = serde_json::to_string(&ours).unwrap();
    let theirs: sentry::Transaction<'_> =
        serde_json::from_str(&json).expect("sentry-types reads it");
    let call = theirs
        .spans
        .iter()
        .find(|s| s.op.as_deref() == Some("http.client"))
        .unwrap();
    assert_eq!(
        call.description.as_deref(),
        Some("GET https://rates.example/eur")
    );
    assert_eq!(call.status, Some(sentry::SpanStatus::Unavailable));
    assert_eq!(call.data["http.query"], "token=[Filtered]&day=1");
    assert_eq!(call.data["http.response.status_code"], 503);
    assert_eq!(call.data["http.response_content_length"], 12);
    let get = theirs
        .spans
        .iter()
        .find(|s| s.op.as_deref() == Some("cache.get"))
        .unwrap();
    assert_eq!(get.data["cache.hit"], false);
    assert!(matches!(
        theirs.contexts["cache"],
        sentry::Context::Other(_)
    ));
    let again: backstop_core::Transaction = serde_json::from_str(&json).unwrap();
    assert_eq!(again.contexts["cache"], ours.contexts["cache"]);
}
