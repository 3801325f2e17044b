//! `store_ingest`: how many transactions (5 spans each) and error events per second the
//! SQLite store writes, in the pipeline's batches of 512, with default retention on.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use backstop_core::protocol::{
    Exception, Span, SpanId, SpanStatus, TraceContext, TraceId, Transaction,
};
use backstop_core::{Event, EventId, Level, Record, User};
use backstop_store::SqliteStore;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 512;

fn transaction(i: usize) -> Transaction {
    let trace_id = TraceId::new();
    let root = SpanId::new();
    let start = SystemTime::now();
    let spans = (0..5)
        .map(|s| {
            let begin = start + Duration::from_micros(200 * s as u64);
            Span {
                span_id: SpanId::new(),
                trace_id,
                parent_span_id: Some(root),
                op: Some(if s < 4 { "db.sql.query" } else { "function" }.into()),
                description: Some(if s < 4 {
                    "SELECT id, name, email FROM users WHERE id = ?".into()
                } else {
                    "render".into()
                }),
                status: Some(SpanStatus::Ok),
                start_timestamp: begin,
                timestamp: begin + Duration::from_micros(150),
                tags: BTreeMap::new(),
                data: Default::default(),
            }
        })
        .collect();
    let mut data = serde_json::Map::new();
    data.insert("http.response.status_code".into(), 200.into());
    Transaction {
        event_id: EventId::new(),
        ty: "transaction".into(),
        name: format!("GET /route/{}", i % 20),
        start_timestamp: start,
        timestamp: start + Duration::from_millis(3),
        platform: "native".into(),
        trace: TraceContext {
            trace_id,
            span_id: root,
            parent_span_id: None,
            op: Some("http.server".into()),
            status: Some(SpanStatus::Ok),
            data,
        },
        contexts: BTreeMap::new(),
        spans,
        release: Some("bench@1.0.0".into()),
        environment: Some("production".into()),
        server_name: Some("bench-host".into()),
        user: None,
        request: None,
        tags: BTreeMap::new(),
        extra: Default::default(),
        sdk: None,
        problems: Vec::new(),
    }
}

fn event(i: usize) -> Event {
    let mut event = Event::new(Level::Error);
    event.exception.values.push(Exception {
        ty: "DatabaseError".into(),
        value: Some(format!("connection reset (kind {})", i % 20)),
        ..Exception::default()
    });
    event.fingerprint = vec![format!("group-{}", i % 20)];
    event.transaction = Some(format!("GET /route/{}", i % 20));
    event.release = Some("bench@1.0.0".into());
    event.environment = Some("production".into());
    event.user = Some(User::with_id(format!("user-{}", i % 500)));
    event.tags.insert("region".into(), "eu".into());
    event
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("store_ingest");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(10));

    let mut store = SqliteStore::open(dir.path().join("tx.db")).unwrap();
    group.bench_function("transactions_5_spans", |b| {
        b.iter_batched(
            || {
                (0..BATCH)
                    .map(|i| Record::Transaction(Box::new(transaction(i))))
                    .collect::<Vec<_>>()
            },
            |batch| store.write(&batch).unwrap(),
            BatchSize::LargeInput,
        )
    });
    drop(store);

    let mut store = SqliteStore::open(dir.path().join("events.db")).unwrap();
    group.bench_function("error_events", |b| {
        b.iter_batched(
            || {
                (0..BATCH)
                    .map(|i| Record::Event(Box::new(event(i))))
                    .collect::<Vec<_>>()
            },
            |batch| store.write(&batch).unwrap(),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
