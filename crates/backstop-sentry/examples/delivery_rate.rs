//! How fast the sender delivers to a local receiver: `cargo run --release -p
//! backstop-sentry --example delivery_rate [-- COUNT [CONNECTIONS]]` (defaults 5,000 and
//! 4). Queues COUNT events, then COUNT transactions (10 query spans each), straight into
//! the exporter (the pipeline is not measured here), with the store's outbox or in
//! memory, and reports items per second from the first item queued to the last answer,
//! then the process's peak resident memory. The queue's bound is raised to COUNT, so
//! that nothing is dropped while the sender catches up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use backstop_core::{Event, Level, Record, Sink, Span, SpanId, TraceId, Transaction};
use backstop_sentry::SentryExporter;
use backstop_store::OutboxLimits;

/// A minimal keep-alive receiver: reads each request, answers 200, counts.
fn receiver() -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    spawn_named("receiver", move || {
        for stream in listener.incoming().flatten() {
            let counted = counted.clone();
            spawn_named("receiver", move || serve(stream, &counted));
        }
    });
    (port, count)
}

/// Named threads, so that a profile tells the receiver's share from the sender's.
fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("a thread");
}

fn serve(stream: TcpStream, count: &AtomicU64) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    let mut body = Vec::new();
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                len = value.trim().parse().unwrap_or(0);
            }
        }
        body.resize(len, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        count.fetch_add(1, Ordering::Relaxed);
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
            .is_err()
        {
            return;
        }
    }
}

fn event(i: usize) -> Record {
    let mut event = Event::new(Level::Error);
    event.message = Some(format!("payment {i} failed: card declined by the issuer"));
    event.transaction = Some("POST /checkout".into());
    event.release = Some("shop@1.4.2".into());
    event.environment = Some("production".into());
    Record::Event(Box::new(event))
}

fn transaction(template: &Transaction) -> Record {
    let mut t = template.clone();
    t.event_id = backstop_core::EventId::new();
    Record::Transaction(Box::new(t))
}

fn template() -> Transaction {
    let json = serde_json::json!({
        "type": "transaction",
        "event_id": backstop_core::EventId::new().to_string(),
        "transaction": "GET /users",
        "start_timestamp": 1_700_000_000.0,
        "timestamp": 1_700_000_000.05,
        "contexts": { "trace": {
            "trace_id": TraceId::new().to_string(),
            "span_id": SpanId::new().to_string(),
            "op": "http.server",
            "status": "ok",
        }},
    });
    let mut t: Transaction = serde_json::from_value(json).expect("a transaction");
    let now = SystemTime::now();
    t.spans = (0..10)
        .map(|_| Span {
            span_id: SpanId::new(),
            trace_id: t.trace.trace_id,
            parent_span_id: Some(t.trace.span_id),
            op: Some("db.sql.query".into()),
            description: Some("SELECT title FROM posts WHERE user_id = ? ORDER BY id".into()),
            status: None,
            start_timestamp: now,
            timestamp: now,
            tags: Default::default(),
            data: Default::default(),
        })
        .collect();
    t
}

fn run(label: &str, connections: usize, outbox: Option<&std::path::Path>, records: Vec<Record>) {
    let (port, count) = receiver();
    let dsn = format!("http://public@127.0.0.1:{port}/1").parse().unwrap();
    let n = records.len() as u64;
    // Room for all of them: the default bounds would drop some of a big COUNT.
    let limits = OutboxLimits {
        max_items: n.max(1),
        ..OutboxLimits::default()
    };
    let mut builder = SentryExporter::builder(dsn)
        .connections(connections)
        .limits(limits);
    if let Some(path) = outbox {
        builder = builder.outbox(path);
    }
    let mut exporter = builder.build().unwrap();
    let handle = exporter.handle();
    let queued = Instant::now();
    for chunk in records.chunks(512) {
        exporter.consume(chunk).unwrap();
    }
    let queue_time = queued.elapsed();
    let start = Instant::now();
    while count.load(Ordering::Relaxed) < n {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "stalled at {count:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = queued.elapsed();
    println!(
        "{label:<28} {n:>7} in {:>6.2} s: {:>8.0}/s delivered (queueing took {:.2} s of it)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        queue_time.as_secs_f64()
    );
    let _ = handle.stats();
}

/// The process's peak resident memory, from `/proc` (Linux only).
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line["VmHWM:".len()..].trim().to_owned())
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000);
    let c: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let template = template();
    run("events, in memory", c, None, (0..n).map(event).collect());
    run(
        "transactions, in memory",
        c,
        None,
        (0..n).map(|_| transaction(&template)).collect(),
    );
    run(
        "events, SQLite outbox",
        c,
        Some(&dir.path().join("events.db")),
        (0..n).map(event).collect(),
    );
    run(
        "transactions, SQLite outbox",
        c,
        Some(&dir.path().join("transactions.db")),
        (0..n).map(|_| transaction(&template)).collect(),
    );
    if let Some(rss) = peak_rss() {
        println!("peak resident memory: {rss}");
    }
}
