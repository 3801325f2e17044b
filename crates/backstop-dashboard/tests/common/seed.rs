//! Fills a store with realistic records through the store's own write path: routes
//! with query spans (an N+1 on `/users`), errors with exception chains, stack frames,
//! breadcrumbs, requests, users, tags and contexts, across two releases.
//!
//! Shared by the tests and the benchmark (`#[path]`), so the bench measures the same
//! shapes the browser walks.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, SystemTime};

use backstop_core::fingerprint::hash_parts;
use backstop_core::protocol::{
    Breadcrumb, Exception, Frame, PerformanceProblem, ProblemKind, Request, Span, SpanId,
    SpanStatus, Stacktrace, TraceContext, TraceId, Transaction,
};
use backstop_core::{Event, EventId, Level, Record, RouteMinute, User};
use backstop_store::{AlertStatus, NewAlert, SqliteStore};

/// How much to write.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub transactions: usize,
    pub spans_per_transaction: usize,
    pub events: usize,
    pub issues: usize,
    /// How far back the records reach.
    pub over: Duration,
    /// Routes with a week of route metrics of their own, every minute (rolled up as
    /// the store does), beside those of the transactions.
    pub metric_routes: usize,
}

impl Size {
    /// A store at the retention limits the dashboard is measured on.
    pub const FULL: Size = Size {
        transactions: 10_000,
        spans_per_transaction: 5,
        events: 100_000,
        issues: 1_000,
        over: Duration::from_secs(7 * 86_400),
        metric_routes: 50,
    };

    /// Enough to fill every page.
    pub const SMALL: Size = Size {
        transactions: 400,
        spans_per_transaction: 5,
        events: 600,
        issues: 40,
        over: Duration::from_secs(86_400),
        metric_routes: 0,
    };
}

const ROUTES: [&str; 8] = [
    "GET /",
    "GET /users",
    "GET /users/{id}",
    "GET /users/fixed",
    "POST /checkout",
    "GET /api/rates",
    "GET /slow",
    "GET /orders/{id}",
];

const BROWSERS: [(&str, &str); 4] = [
    ("Chrome", "Windows 10"),
    ("Firefox", "Ubuntu"),
    ("Safari", "Mac OS X"),
    ("Chrome Mobile", "Android"),
];

/// Writes `size` worth of records. `text` is put in every recorded field a page
/// shows (message, route, URL, tag, user, breadcrumb, SQL, header, release): pass a
/// script payload to test escaping, or `""` for plain data.
pub fn seed(store: &mut SqliteStore, size: Size, text: &str) {
    let now = SystemTime::now();
    let releases = [format!("shop@1.4.1{text}"), format!("shop@1.4.2{text}")];
    let mut batch: Vec<Record> = Vec::with_capacity(512);
    let flush = |batch: &mut Vec<Record>, store: &mut SqliteStore| {
        store.write(batch).expect("seed write");
        // What the pipeline counts of every request, which route figures read.
        store
            .write_metrics(&backstop_core::test::route_minutes_of(batch))
            .expect("seed route metrics");
        batch.clear();
    };
    let mut rng = fastrand::Rng::with_seed(7);
    // Failed requests' traces, so some errors link to their request and back.
    let mut failed_traces: Vec<TraceId> = Vec::new();

    for i in 0..size.transactions {
        let route = format!("{}{text}", ROUTES[i % ROUTES.len()]);
        let age = size
            .over
            .mul_f64((size.transactions - i) as f64 / size.transactions as f64);
        let start = now - age;
        let slow = route.starts_with("GET /slow");
        let base_ms = if slow { 300 } else { 8 + (i % 7) as u64 * 6 };
        let duration = Duration::from_millis(base_ms + rng.u64(0..40));
        let status = if i % 23 == 0 { 500 } else { 200 };
        let mut t = transaction(
            &route,
            start,
            duration,
            size.spans_per_transaction,
            status,
            text,
        );
        t.release = Some(releases[(i * 2 / size.transactions.max(1)).min(1)].clone());
        t.environment = Some("production".into());
        if status == 500 {
            failed_traces.push(t.trace.trace_id);
        }
        if route.starts_with("GET /users") && !route.starts_with("GET /users/fixed") {
            t = with_n_plus_one(t, &format!("SELECT * FROM posts WHERE user_id = ?{text}"));
        }
        batch.push(Record::Transaction(Box::new(t)));
        if batch.len() >= 500 {
            flush(&mut batch, store);
        }
    }
    flush(&mut batch, store);

    for i in 0..size.events {
        let group = i % size.issues.max(1);
        let age = size
            .over
            .mul_f64((size.events - i) as f64 / size.events as f64);
        let mut event = error_event(group, text);
        event.timestamp = now - age;
        event.release = Some(releases[(i * 2 / size.events.max(1)).min(1)].clone());
        event.environment = Some(if i % 5 == 0 { "staging" } else { "production" }.into());
        let (browser, os) = BROWSERS[i % BROWSERS.len()];
        event.contexts.insert(
            "browser".into(),
            serde_json::json!({"type": "browser", "name": format!("{browser}{text}")}),
        );
        event
            .contexts
            .insert("os".into(), serde_json::json!({"type": "os", "name": os}));
        if i % 3 == 0 && !failed_traces.is_empty() {
            let trace = failed_traces[(i / 3) % failed_traces.len()];
            event.contexts.insert(
                "trace".into(),
                serde_json::json!({"trace_id": trace.to_string(), "span_id": SpanId::new().to_string()}),
            );
        }
        event.user = Some(User {
            id: Some(format!("user-{}{text}", i % 97)),
            email: Some(format!("user{}@example.com{text}", i % 97)),
            ..User::default()
        });
        batch.push(Record::Event(Box::new(event)));
        if batch.len() >= 500 {
            flush(&mut batch, store);
        }
    }
    flush(&mut batch, store);
    seed_alerts(store, now, text);
    seed_route_metrics(store, now, size.metric_routes);
}

/// A week of every minute of `routes` routes, each minute a dozen requests, then the
/// store's own roll-up of those over a day old into hours: the route metrics of a
/// store at its limits.
fn seed_route_metrics(store: &mut SqliteStore, now: SystemTime, routes: usize) {
    if routes == 0 {
        return;
    }
    let minutes = 7 * 24 * 60;
    let mut rng = fastrand::Rng::with_seed(11);
    let mut batch = Vec::with_capacity(routes * 60);
    for minute in (0..minutes).rev() {
        let at = now - Duration::from_secs(60 * minute);
        for route in 0..routes {
            let mut m = RouteMinute::new(format!("GET /api/v1/resource-{route}/{{id}}"), at);
            for _ in 0..12 {
                let took = Duration::from_micros(2_000 + rng.u64(0..40_000));
                m.record(took, rng.u8(0..100) == 0, rng.u64(1..6));
            }
            batch.push(m);
        }
        if batch.len() >= routes * 60 {
            store.write_metrics(&batch).expect("seed route metrics");
            batch.clear();
        }
    }
    store.write_metrics(&batch).expect("seed route metrics");
    store.prune_now().expect("roll up the seeded route metrics");
}

/// A history of alerts: sent, suppressed by the interval, and failed with the
/// receiver's error, each with `text` in what it says.
fn seed_alerts(store: &SqliteStore, now: SystemTime, text: &str) {
    let history = store.alert_history();
    let first_issue = store.reader().issues(&Default::default()).expect("issues");
    let issue = first_issue.first().map(|i| i.id);
    for (i, status) in [
        AlertStatus::Sent,
        AlertStatus::Suppressed,
        AlertStatus::Failed,
    ]
    .into_iter()
    .cycle()
    .take(12)
    .enumerate()
    {
        history
            .record(&NewAlert {
                at: now - Duration::from_secs(600 * (12 - i as u64)),
                rule: "new-issue".into(),
                channel: (status != AlertStatus::Suppressed).then(|| "webhook".into()),
                status,
                issue,
                title: format!("New issue: payment failed for order {i}{text}"),
                attempts: if status == AlertStatus::Failed { 4 } else { 1 },
                error: (status == AlertStatus::Failed)
                    .then(|| format!("the receiver answered 500: busy{text}")),
            })
            .expect("seed alert");
    }
}

fn error_event(group: usize, text: &str) -> Event {
    let mut event = Event::new(if group.is_multiple_of(9) {
        Level::Fatal
    } else {
        Level::Error
    });
    let route = format!("{}{text}", ROUTES[group % ROUTES.len()]);
    event.fingerprint = vec![format!("group-{group}")];
    event.transaction = Some(route.clone());
    event.message = Some(format!("payment failed for order {group}{text}"));
    let frames = vec![
        frame("std::rt::lang_start", "library/std/src/rt.rs", 160, false),
        frame(
            "tokio::runtime::task::core::Core<T,S>::poll",
            "tokio-1.45.0/src/runtime/task/core.rs",
            331,
            false,
        ),
        frame(
            "<axum::handler::HandlerService<H,T,S> as tower_service::Service>::call",
            "axum-0.8.4/src/handler/service.rs",
            52,
            false,
        ),
        frame(
            "shop::orders::handlers::checkout::{{closure}}",
            "src/orders/handlers.rs",
            88,
            true,
        ),
        frame(
            &format!("shop::orders::repository::load_order{text}"),
            "src/orders/repository.rs",
            41,
            true,
        ),
    ];
    event.exception.values = vec![
        Exception {
            ty: "std::io::Error".into(),
            value: Some("Connection refused (os error 111)".into()),
            ..Exception::default()
        },
        Exception {
            ty: format!("OrderError{}", group % 50),
            value: Some(format!(
                "could not load order {group}: database unavailable{text}"
            )),
            stacktrace: Some(Stacktrace { frames }),
            ..Exception::default()
        },
    ];
    event.breadcrumbs.values = vec![
        crumb("http", &format!("GET /api/rates 200{text}")),
        crumb("query", &format!("SELECT * FROM orders WHERE id = ?{text}")),
        crumb("log", "retrying the database connection"),
    ];
    let mut request = Request {
        method: Some("POST".into()),
        url: Some(format!("http://shop.example/checkout?order={group}{text}")),
        ..Request::default()
    };
    request
        .headers
        .insert("user-agent".into(), format!("Mozilla/5.0{text}"));
    request
        .headers
        .insert("x-request-id".into(), format!("req-{group}{text}"));
    request
        .headers
        .insert("authorization".into(), "[Filtered]".into());
    event.request = Some(request);
    event.tags.insert("http.status_code".into(), "500".into());
    event.tags.insert("tenant".into(), format!("acme{text}"));
    event
}

fn frame(function: &str, file: &str, line: u64, in_app: bool) -> Frame {
    Frame {
        function: Some(function.into()),
        filename: Some(file.into()),
        lineno: Some(line),
        in_app: Some(in_app),
        ..Frame::default()
    }
}

fn crumb(category: &str, message: &str) -> Breadcrumb {
    Breadcrumb {
        category: Some(category.into()),
        message: Some(message.into()),
        ..Breadcrumb::default()
    }
}

fn transaction(
    name: &str,
    start: SystemTime,
    duration: Duration,
    spans: usize,
    http_status: u16,
    text: &str,
) -> Transaction {
    let trace_id = TraceId::new();
    let root = SpanId::new();
    let mut list = Vec::new();
    for i in 0..spans {
        let s = start + duration * i as u32 / (spans as u32 + 1);
        let query = i + 1 < spans;
        list.push(Span {
            span_id: SpanId::new(),
            trace_id,
            parent_span_id: Some(root),
            op: Some(if query { "db.sql.query" } else { "function" }.into()),
            description: Some(if query {
                if name.starts_with("GET /users") {
                    format!("SELECT * FROM posts WHERE user_id = ?{text}")
                } else {
                    format!(
                        "SELECT id, total FROM orders WHERE customer_id = ? AND state = ?{text}"
                    )
                }
            } else {
                format!("render template{text}")
            }),
            status: Some(SpanStatus::Ok),
            start_timestamp: s,
            timestamp: s + duration / (spans as u32 + 2),
            tags: Default::default(),
            data: if query {
                [("db.rows_returned".to_owned(), (i as u64 + 1).into())]
                    .into_iter()
                    .collect()
            } else {
                Default::default()
            },
        });
    }
    // An outgoing call and a cache read, which the worker would count into the
    // transaction's `cache` context.
    let hit = !duration.as_millis().is_multiple_of(3);
    for (op, description) in [
        (
            "http.client",
            format!("GET https://rates{text}.example/api/rates"),
        ),
        ("cache.get", format!("rates{text}:EUR")),
    ] {
        let mut data = serde_json::Map::new();
        if op == "cache.get" {
            data.insert("cache.hit".into(), hit.into());
        }
        list.push(Span {
            span_id: SpanId::new(),
            trace_id,
            parent_span_id: Some(root),
            op: Some(op.into()),
            description: Some(description),
            status: Some(SpanStatus::Ok),
            start_timestamp: start,
            timestamp: start + duration / 4,
            tags: Default::default(),
            data,
        });
    }
    let mut contexts = std::collections::BTreeMap::new();
    contexts.insert(
        "cache".to_owned(),
        serde_json::json!({"prefixes": [{
            "prefix": backstop_core::cache::key_prefix(&format!("rates{text}:EUR")),
            "hits": u64::from(hit),
            "misses": u64::from(!hit),
            "hit_rate": if hit { 1.0 } else { 0.0 },
        }]}),
    );
    let mut data = serde_json::Map::new();
    data.insert("http.response.status_code".into(), http_status.into());
    let mut request = Request {
        method: Some("GET".into()),
        url: Some(format!(
            "http://shop.example{}",
            name.split_once(' ').map_or("/", |(_, p)| p)
        )),
        ..Request::default()
    };
    request
        .headers
        .insert("accept".into(), format!("text/html{text}"));
    Transaction {
        event_id: EventId::new(),
        ty: "transaction".into(),
        name: name.into(),
        start_timestamp: start,
        timestamp: start + duration,
        platform: "native".into(),
        trace: TraceContext {
            trace_id,
            span_id: root,
            parent_span_id: None,
            op: Some("http.server".into()),
            status: Some(SpanStatus::from_http(http_status)),
            data,
        },
        contexts,
        spans: list,
        release: None,
        environment: None,
        server_name: None,
        user: None,
        request: Some(request),
        tags: Default::default(),
        extra: Default::default(),
        sdk: None,
        problems: Vec::new(),
    }
}

fn with_n_plus_one(mut t: Transaction, description: &str) -> Transaction {
    let db: Vec<&Span> = t
        .spans
        .iter()
        .filter(|s| s.op.as_deref() == Some("db.sql.query"))
        .collect();
    let ids: Vec<SpanId> = db.iter().map(|s| s.span_id).collect();
    let group = hash_parts([description])[..16].to_owned();
    let kind = ProblemKind::NPlusOne;
    t.problems.push(PerformanceProblem {
        kind,
        fingerprint: hash_parts([kind.as_str(), &t.name, &group]),
        description: description.into(),
        query_group: Some(group),
        parent_span_id: db.first().and_then(|s| s.parent_span_id),
        span_ids: ids,
        count: db.len() as u32,
        duration_ms: db.iter().map(|s| s.duration().as_secs_f64() * 1000.0).sum(),
    });
    t
}
