//! The exporter against a receiver that misbehaves on purpose: rate limits for one
//! category, a bare 429, 413, 500s, answers slower than the timeout, and connections
//! cut mid-body. Each test checks what was sent, retried, dropped and reported.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backstop_core::{Client, Event, EventId, Level, Options, RequestScope, Span, SpanId};
use backstop_sentry::{Category, ExportHandle, Reason, SentryExporter};
use support::{Action, Receiver, wait_until};

const PATIENCE: Duration = Duration::from_secs(60);

/// An exporter for `receiver` with short waits, so the tests run in seconds.
fn exporter(receiver: &Receiver) -> backstop_sentry::ExporterBuilder {
    SentryExporter::builder(receiver.dsn().parse().unwrap())
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
        .request_timeout(Duration::from_secs(20))
        .client_report_interval(Duration::from_millis(100))
}

fn start(exporter: SentryExporter) -> (backstop_core::BackstopGuard, ExportHandle) {
    let handle = exporter.handle();
    let backstop = backstop_core::test::start(
        Options::new()
            .sink(exporter)
            .console(false)
            .install_panic_hook(false),
    )
    .unwrap();
    handle.attach(&backstop);
    (backstop, handle)
}

fn event(client: &Client, message: &str) -> EventId {
    let mut event = Event::new(Level::Error);
    event.message = Some(message.into());
    client.capture_event(event)
}

/// A `GET /users` transaction with `queries` query spans.
fn transaction(client: &Client, queries: usize) -> EventId {
    let scope: Arc<RequestScope> = RequestScope::builder(client, "GET /users")
        .sampled(true)
        .start();
    for i in 0..queries {
        let now = SystemTime::now();
        scope.add_span(Span {
            span_id: SpanId::new(),
            trace_id: scope.trace_id(),
            parent_span_id: Some(scope.span_id()),
            op: Some("db.sql.query".into()),
            description: Some(format!("SELECT title FROM posts WHERE user_id = ? -- {i}")),
            status: None,
            start_timestamp: now,
            timestamp: now,
            tags: Default::default(),
            data: Default::default(),
        });
    }
    scope.finish_http(200).expect("sampled")
}

fn ok() -> Action {
    Action::Answer(200, Vec::new())
}

#[test]
fn envelopes_carry_the_protocol_headers_and_parse_with_sentry_types() {
    let receiver = Receiver::start(|_| ok());
    let (backstop, export) = start(exporter(&receiver).build().unwrap());
    let event_id = event(&backstop, "payment failed");
    let tx_id = transaction(&backstop, 3);
    let received = receiver.wait_for(PATIENCE, |r| r.len() >= 2);
    assert_eq!(received.len(), 2, "{received:?}");
    for envelope in &received {
        assert_eq!(
            envelope.path, "/prefix/api/42/envelope/",
            "the DSN's path prefix is kept"
        );
        let auth = envelope.header("x-sentry-auth").unwrap();
        assert_eq!(
            auth,
            format!(
                "Sentry sentry_version=7, sentry_client=backstop/{}, sentry_key=public",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(envelope.envelope_header["sdk"]["name"], "backstop");
        assert!(envelope.envelope_header["sent_at"].is_string());
        assert_eq!(
            envelope.envelope_header["event_id"].as_str(),
            envelope.event_id().as_deref()
        );
    }
    let event = received
        .iter()
        .find_map(|r| r.item("event"))
        .expect("an event item");
    assert_eq!(event["event_id"], event_id.to_string());
    assert_eq!(event["message"], "payment failed");
    let tx = received
        .iter()
        .find_map(|r| r.item("transaction"))
        .expect("a transaction item");
    assert_eq!(tx["event_id"], tx_id.to_string());
    let spans = tx["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3);
    assert!(spans.iter().all(|s| s["op"] == "db.sql.query"));
    assert!(
        spans[0]["description"]
            .as_str()
            .unwrap()
            .starts_with("SELECT title FROM posts WHERE user_id = ?"),
        "parameterised SQL is kept"
    );
    assert!(export.wait_delivered(PATIENCE));
    let stats = export.stats();
    assert_eq!((stats.events_sent, stats.transactions_sent), (1, 1));
    assert_eq!(stats.queued, 0);
    assert!(stats.dropped.is_empty(), "{stats:?}");
}

#[test]
fn a_rate_limit_for_one_category_holds_back_only_that_category_and_is_reported() {
    // The first answer limits transactions for a minute; everything else is accepted.
    let receiver = Receiver::start(|n| match n {
        0 => Action::Answer(
            200,
            vec![("X-Sentry-Rate-Limits", "60:transaction:key".into())],
        ),
        _ => ok(),
    });
    let (backstop, export) = start(exporter(&receiver).build().unwrap());
    let first = transaction(&backstop, 2);
    receiver.wait_for(PATIENCE, |r| !r.is_empty());
    for i in 0..3 {
        transaction(&backstop, 4);
        event(&backstop, &format!("still sent {i}"));
    }
    let received = receiver.wait_for(PATIENCE, |r| {
        support::reported(r, "ratelimit_backoff", "transaction") == 3
            && r.iter().filter(|e| e.item("event").is_some()).count() == 3
    });
    let transactions: Vec<_> = received
        .iter()
        .filter(|r| r.item("transaction").is_some())
        .collect();
    assert_eq!(transactions.len(), 1, "only the first transaction was sent");
    assert_eq!(transactions[0].event_id(), Some(first.to_string()));
    assert_eq!(
        received
            .iter()
            .filter(|r| r.item("event").is_some())
            .count(),
        3
    );
    assert_eq!(
        support::reported(&received, "ratelimit_backoff", "transaction"),
        3
    );
    // Each transaction's four spans and its root span.
    assert_eq!(
        support::reported(&received, "ratelimit_backoff", "span"),
        15
    );
    let stats = export.stats();
    assert_eq!(
        stats.dropped(Reason::RatelimitBackoff, Category::Transaction),
        3
    );
    assert_eq!(stats.dropped(Reason::RatelimitBackoff, Category::Error), 0);
    assert_eq!(stats.retries, 0, "nothing was retried");
}

#[test]
fn a_rate_limit_answered_mid_batch_holds_back_the_rest_of_that_batch() {
    // The first envelope is answered late, while five transactions queue behind it; the
    // first of those is answered with a limit on transactions.
    let receiver = Receiver::start(|n| match n {
        0 => Action::Late(Duration::from_millis(500)),
        1 => Action::Answer(
            200,
            vec![("X-Sentry-Rate-Limits", "60:transaction:key".into())],
        ),
        _ => ok(),
    });
    let (backstop, export) = start(exporter(&receiver).connections(1).build().unwrap());
    event(&backstop, "answered late");
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..5 {
        transaction(&backstop, 1);
    }
    wait_for_rate_limited_transactions(&export, 4);
    let transactions = receiver
        .received()
        .iter()
        .filter(|r| r.item("transaction").is_some())
        .count();
    assert_eq!(transactions, 1, "only the one answered with the limit");
    assert_eq!(export.stats().queued, 0);
}

#[test]
fn a_bare_429_stops_everything_for_a_minute_and_is_not_retried() {
    let receiver = Receiver::start(|n| match n {
        0 => Action::Answer(429, Vec::new()),
        _ => ok(),
    });
    let (backstop, export) = start(exporter(&receiver).build().unwrap());
    event(&backstop, "refused");
    receiver.wait_for(PATIENCE, |r| !r.is_empty());
    event(&backstop, "held back");
    transaction(&backstop, 1);
    wait_for_rate_limited_transactions(&export, 1);
    let stats = export.stats();
    assert_eq!(stats.rejected_rate_limited, 1);
    assert_eq!(stats.dropped(Reason::RatelimitBackoff, Category::Error), 1);
    assert_eq!(stats.dropped(Reason::RatelimitBackoff, Category::Span), 2);
    assert_eq!(stats.retries, 0);
    assert_eq!(stats.queued, 0);
    // Nothing more goes out during the minute, client reports included.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.requests(), 1, "{:?}", receiver.received());
}

#[test]
fn a_413_is_dropped_reported_as_a_send_error_and_never_retried() {
    let receiver = Receiver::start(|n| match n {
        0 => Action::Answer(413, Vec::new()),
        _ => ok(),
    });
    let (backstop, export) = start(exporter(&receiver).build().unwrap());
    let too_big = transaction(&backstop, 2);
    receiver.wait_for(PATIENCE, |r| !r.is_empty());
    event(&backstop, "after");
    let received = receiver.wait_for(PATIENCE, |r| {
        support::reported(r, "send_error", "transaction") == 1
    });
    assert_eq!(support::reported(&received, "send_error", "transaction"), 1);
    assert_eq!(support::reported(&received, "send_error", "span"), 3);
    let sent_ids: Vec<_> = received.iter().filter_map(|r| r.event_id()).collect();
    assert_eq!(
        sent_ids
            .iter()
            .filter(|id| **id == too_big.to_string())
            .count(),
        1,
        "sent once, not retried"
    );
    assert_eq!(export.stats().retries, 0);
}

#[test]
fn server_errors_are_retried_with_backoff_until_delivered() {
    let receiver = Receiver::start(|n| {
        if n < 3 {
            Action::Answer(500, Vec::new())
        } else {
            ok()
        }
    });
    let (backstop, export) = start(exporter(&receiver).build().unwrap());
    let id = event(&backstop, "eventually");
    let received = receiver.wait_for(PATIENCE, |r| r.iter().any(|e| e.status == 200));
    let attempts: Vec<_> = received
        .iter()
        .filter(|r| r.event_id() == Some(id.to_string()))
        .map(|r| r.status)
        .collect();
    assert_eq!(attempts, [500, 500, 500, 200]);
    assert!(export.wait_delivered(PATIENCE));
    let stats = export.stats();
    assert_eq!((stats.retries, stats.events_sent), (3, 1));
    assert!(stats.dropped.is_empty(), "{stats:?}");
}

#[test]
fn a_server_slower_than_the_timeout_is_retried() {
    let receiver = Receiver::start(|n| {
        if n == 0 {
            Action::Late(Duration::from_secs(5))
        } else {
            ok()
        }
    });
    let exporter = exporter(&receiver)
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let (backstop, export) = start(exporter);
    let id = event(&backstop, "slow");
    let received = receiver.wait_for(PATIENCE, |r| {
        r.iter()
            .filter(|e| e.event_id() == Some(id.to_string()))
            .count()
            >= 2
    });
    assert!(
        received
            .iter()
            .filter(|e| e.event_id() == Some(id.to_string()))
            .count()
            >= 2
    );
    assert!(export.wait_delivered(PATIENCE));
    let stats = export.stats();
    assert!(stats.retries >= 1, "{stats:?}");
    assert_eq!(stats.events_sent, 1);
}

#[test]
fn a_connection_cut_mid_body_is_retried() {
    let receiver = Receiver::start(|n| if n < 2 { Action::Cut } else { ok() });
    let (backstop, export) = start(exporter(&receiver).build().unwrap());
    let id = event(&backstop, "cut");
    let received = receiver.wait_for(PATIENCE, |r| !r.is_empty());
    assert_eq!(received[0].event_id(), Some(id.to_string()));
    assert_eq!(receiver.requests(), 3, "two cut, one delivered");
    assert!(export.wait_delivered(PATIENCE));
    let stats = export.stats();
    assert_eq!((stats.retries, stats.events_sent), (2, 1));
}

#[test]
fn a_bad_dsn_is_an_init_error_naming_the_setting() {
    for (dsn, says) in [
        ("ftp://key@sentry.example.com/1", "scheme"),
        ("https://sentry.example.com/1", "key"),
        ("https://key@sentry.example.com/", "project id"),
        ("https://key@sentry.example.com/abc", "project id"),
    ] {
        let err = backstop_sentry::install(Options::new().dsn(dsn)).unwrap_err();
        assert_eq!(err.setting(), Some("dsn"), "{dsn}");
        assert!(err.to_string().contains(says), "{dsn}: {err}");
        assert!(
            !err.to_string().contains("key@"),
            "the key is not repeated: {err}"
        );
    }
    let (options, handle) = backstop_sentry::install(Options::new()).unwrap();
    assert!(handle.is_none(), "no DSN, no exporter");
    drop(options);
}

#[test]
fn an_event_over_a_mebibyte_arrives_trimmed_with_what_was_removed_in_meta() {
    let receiver = Receiver::start(|_| ok());
    let (backstop, export) = start(exporter(&receiver).build().unwrap());
    let mut big = Event::new(Level::Error);
    big.message = Some("too many crumbs".into());
    for i in 0..90 {
        big.breadcrumbs.values.push(backstop_core::Breadcrumb::new(
            "log",
            format!("{i} {}", "x".repeat(15_000)),
        ));
    }
    let id = backstop.capture_event(big);
    let received = receiver.wait_for(PATIENCE, |r| !r.is_empty());
    let event = received[0].item("event").unwrap();
    assert_eq!(event["event_id"], id.to_string());
    assert_eq!(event["message"], "too many crumbs");
    assert!(event.get("breadcrumbs").is_none());
    assert_eq!(event["_meta"]["breadcrumbs"][""]["len"], 90);
    assert!(
        received[0].items[0].0["length"].as_u64().unwrap()
            <= backstop_sentry::MAX_ITEM_BYTES as u64
    );
    assert!(export.wait_delivered(PATIENCE));
}

#[test]
fn the_pipelines_own_drops_are_reported_too() {
    let receiver = Receiver::start(|_| ok());
    let exporter = exporter(&receiver).build().unwrap();
    let export = exporter.handle();
    let backstop = backstop_core::test::start(
        Options::new()
            .sink(exporter)
            .before_send(|event| (event.message.as_deref() != Some("secret")).then_some(event))
            .max_spans(2)
            .console(false)
            .install_panic_hook(false),
    )
    .unwrap();
    export.attach(&backstop);
    event(&backstop, "secret");
    event(&backstop, "kept");
    transaction(&backstop, 5);
    let received = receiver.wait_for(PATIENCE, |r| {
        support::reported(r, "before_send", "error") == 1
            && support::reported(r, "buffer_overflow", "span") == 3
    });
    assert_eq!(support::reported(&received, "before_send", "error"), 1);
    assert_eq!(support::reported(&received, "buffer_overflow", "span"), 3);
    let kept = received
        .iter()
        .filter_map(|r| r.item("event"))
        .collect::<Vec<_>>();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["message"], "kept");
    let spans = received.iter().find_map(|r| r.item("transaction")).unwrap()["spans"].clone();
    assert_eq!(spans.as_array().unwrap().len(), 2);
}

#[test]
fn over_many_connections_each_item_arrives_once_and_a_500_mid_batch_leaves_the_rest_queued() {
    // The 40th request fails while other lanes are sending: the batch stops, what was
    // answered 200 is done, the rest waits for the retry.
    let receiver = Receiver::start(|n| {
        if n == 40 {
            Action::Answer(500, Vec::new())
        } else {
            ok()
        }
    });
    let (backstop, export) = start(exporter(&receiver).connections(8).build().unwrap());
    let ids: std::collections::BTreeSet<String> = (0..300)
        .map(|i| event(&backstop, &format!("event {i}")).to_string())
        .collect();
    let delivered = |r: &[support::Received]| {
        r.iter()
            .filter(|e| e.status == 200)
            .filter_map(support::Received::event_id)
            .collect::<Vec<_>>()
    };
    let received = receiver.wait_for(PATIENCE, |r| delivered(r).len() >= ids.len());
    assert!(export.wait_delivered(PATIENCE));
    let mut once = delivered(&received);
    once.sort();
    let before = once.len();
    once.dedup();
    assert_eq!(before, once.len(), "none delivered twice");
    assert_eq!(
        once.into_iter().collect::<std::collections::BTreeSet<_>>(),
        ids
    );
    let stats = export.stats();
    assert_eq!((stats.retries, stats.events_sent), (1, 300), "{stats:?}");
}

/// Waits until at least `count` transactions were dropped under a rate limit.
fn wait_for_rate_limited_transactions(export: &ExportHandle, count: u64) {
    let limited = || {
        export
            .stats()
            .dropped(Reason::RatelimitBackoff, Category::Transaction)
    };
    assert!(
        wait_until(PATIENCE, || limited() >= count),
        "{:?}",
        export.stats()
    );
}
