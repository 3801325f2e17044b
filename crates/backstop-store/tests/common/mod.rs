//! Builders for records, shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, SystemTime};

use backstop_core::fingerprint::hash_parts;
use backstop_core::protocol::{
    Exception, PerformanceProblem, ProblemKind, Span, SpanId, SpanStatus, TraceContext, TraceId,
    Transaction,
};
use backstop_core::{Event, EventId, Level, Record, User};

pub fn error_event(group: &str, message: &str) -> Event {
    let mut event = Event::new(Level::Error);
    event.exception.values.push(Exception {
        ty: "AppError".into(),
        value: Some(message.into()),
        ..Exception::default()
    });
    event.fingerprint = vec![group.into()];
    event
}

pub fn with_user(mut event: Event, id: Option<&str>, ip: Option<&str>) -> Event {
    event.user = Some(User {
        id: id.map(Into::into),
        ip_address: ip.map(Into::into),
        ..User::default()
    });
    event
}

pub fn at(mut event: Event, time: SystemTime) -> Event {
    event.timestamp = time;
    event
}

pub fn released(mut event: Event, release: &str, environment: &str) -> Event {
    event.release = Some(release.into());
    event.environment = Some(environment.into());
    event
}

pub fn transaction(
    name: &str,
    duration: Duration,
    db_spans: usize,
    other_spans: usize,
) -> Transaction {
    transaction_at(
        name,
        SystemTime::now() - duration,
        duration,
        db_spans,
        other_spans,
        200,
    )
}

pub fn transaction_at(
    name: &str,
    start: SystemTime,
    duration: Duration,
    db_spans: usize,
    other_spans: usize,
    http_status: u16,
) -> Transaction {
    let trace_id = TraceId::new();
    let root = SpanId::new();
    let mut spans = Vec::new();
    let n = db_spans + other_spans;
    for i in 0..n {
        let s = start + duration * i as u32 / (n as u32 + 1);
        spans.push(Span {
            span_id: SpanId::new(),
            trace_id,
            parent_span_id: Some(root),
            op: Some(
                if i < db_spans {
                    "db.sql.query"
                } else {
                    "function"
                }
                .into(),
            ),
            description: Some(if i < db_spans {
                format!("SELECT * FROM users WHERE id = ? -- {i}")
            } else {
                format!("render {i}")
            }),
            status: Some(SpanStatus::Ok),
            start_timestamp: s,
            timestamp: s + duration / (n as u32 + 2),
            tags: Default::default(),
            data: Default::default(),
        });
    }
    let mut data = serde_json::Map::new();
    data.insert("http.response.status_code".into(), http_status.into());
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
        contexts: Default::default(),
        spans,
        release: None,
        environment: None,
        server_name: None,
        user: None,
        request: None,
        tags: Default::default(),
        extra: Default::default(),
        sdk: None,
        problems: Vec::new(),
    }
}

pub fn ev(event: Event) -> Record {
    Record::Event(Box::new(event))
}

pub fn tx(t: Transaction) -> Record {
    Record::Transaction(Box::new(t))
}

/// A problem of `kind` on `route` over `spans`, fingerprinted as core documents it (the
/// kind, the route and the query group).
pub fn problem(
    kind: ProblemKind,
    route: &str,
    description: &str,
    spans: &[SpanId],
) -> PerformanceProblem {
    let group = hash_parts([description])[..16].to_owned();
    PerformanceProblem {
        kind,
        fingerprint: hash_parts([kind.as_str(), route, &group]),
        description: description.into(),
        query_group: Some(group),
        parent_span_id: None,
        span_ids: spans.to_vec(),
        count: spans.len() as u32,
        duration_ms: 0.0,
    }
}

/// The transaction, with an N+1 found over all its database spans.
pub fn with_n_plus_one(mut t: Transaction, description: &str) -> Transaction {
    let db: Vec<&Span> = t
        .spans
        .iter()
        .filter(|s| s.op.as_deref() == Some("db.sql.query"))
        .collect();
    let ids: Vec<SpanId> = db.iter().map(|s| s.span_id).collect();
    let mut p = problem(ProblemKind::NPlusOne, &t.name, description, &ids);
    p.parent_span_id = db.first().and_then(|s| s.parent_span_id);
    p.duration_ms = db.iter().map(|s| s.duration().as_secs_f64() * 1000.0).sum();
    t.problems.push(p);
    t
}

/// Writes `batch` and the route metrics its transactions make, as the pipeline would.
pub fn write_with_metrics(store: &mut backstop_store::SqliteStore, batch: &[Record]) {
    store.write(batch).unwrap();
    store
        .write_metrics(&backstop_core::test::route_minutes_of(batch))
        .unwrap();
}

/// Whether `got` is within 2% of `want` (what percentiles from route metrics promise).
pub fn near(got: Duration, want: Duration) -> bool {
    (got.as_secs_f64() - want.as_secs_f64()).abs() <= want.as_secs_f64() * 0.02
}
