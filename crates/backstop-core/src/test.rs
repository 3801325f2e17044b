//! Test support: capture what Backstop records, in memory, and assert on it.
//!
//! ```
//! use backstop_core::{Level, test};
//!
//! let captured = test::capture(|| {
//!     backstop_core::set_tag("feature", "checkout");
//!     backstop_core::capture_message("card declined", Level::Warning);
//! });
//! assert_eq!(captured.events.len(), 1);
//! assert_eq!(captured.events[0].tags["feature"], "checkout");
//! ```
//!
//! For a whole service (a router with the Backstop layer), plug a [`TestSink`] into the
//! options and read it after [`Client::flush`](crate::Client::flush). Start each test's
//! client with [`start`]: unlike [`init`](crate::init), it doesn't register the client
//! for captures made outside a request, so tests running in parallel stay apart.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::client::{BackstopGuard, Client};
use crate::metrics::RouteMinute;
use crate::options::{InitError, Options};
use crate::protocol::{Event, Transaction};
use crate::scope::RequestScope;
use crate::sink::{Record, Sink, SinkError};

/// A sink that keeps every record in memory. Clones share the same records.
#[derive(Debug, Clone, Default)]
pub struct TestSink {
    records: Arc<Mutex<Vec<Record>>>,
    minutes: Arc<Mutex<Vec<RouteMinute>>>,
}

impl TestSink {
    /// An empty sink.
    pub fn new() -> Self {
        TestSink::default()
    }

    /// Everything received so far.
    pub fn records(&self) -> Vec<Record> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The events received so far.
    pub fn events(&self) -> Vec<Event> {
        self.take_kind(|r| r.as_event().cloned())
    }

    /// The transactions received so far.
    pub fn transactions(&self) -> Vec<Transaction> {
        self.take_kind(|r| r.as_transaction().cloned())
    }

    /// The route metrics received so far, in the parts they came in (see
    /// [`Sink::consume_metrics`]).
    pub fn route_minutes(&self) -> Vec<RouteMinute> {
        self.minutes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One route's metrics received so far, every part and minute added up: `None`
    /// when none came. Flush the client first to include the current minute.
    pub fn route_totals(&self, route: &str) -> Option<RouteMinute> {
        let minutes = self.minutes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut parts = minutes.iter().filter(|m| m.route == route);
        let mut total = parts.next()?.clone();
        for part in parts {
            total.count += part.count;
            total.errors += part.errors;
            total.queries += part.queries;
            total.durations.merge(&part.durations);
        }
        Some(total)
    }

    /// Forgets everything received so far.
    pub fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.minutes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn take_kind<T>(&self, f: impl Fn(&Record) -> Option<T>) -> Vec<T> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(f)
            .collect()
    }
}

/// A sink that takes every record and keeps none: for measuring what capturing costs
/// without a store or a network behind it (the overhead benches use it).
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardSink;

impl Sink for DiscardSink {
    fn name(&self) -> &str {
        "discard"
    }

    fn consume(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        std::hint::black_box(batch);
        Ok(())
    }
}

impl Sink for TestSink {
    fn name(&self) -> &str {
        "test"
    }

    fn consume(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(batch);
        Ok(())
    }

    fn consume_metrics(&mut self, minutes: &[RouteMinute]) -> Result<(), SinkError> {
        self.minutes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(minutes);
        Ok(())
    }
}

/// The route metrics the pipeline would have counted for the transactions among
/// `records`, each request once, in the minute it started: for tests and benches that
/// fill a store with records directly and read routes back.
pub fn route_minutes_of(records: &[Record]) -> Vec<RouteMinute> {
    let mut minutes: Vec<RouteMinute> = Vec::new();
    for t in records.iter().filter_map(Record::as_transaction) {
        let http_status = t
            .trace
            .data
            .get("http.response.status_code")
            .and_then(serde_json::Value::as_u64)
            .and_then(|s| u16::try_from(s).ok());
        let status = t.trace.status.unwrap_or(crate::SpanStatus::Ok);
        let error = crate::metrics::is_error(status, http_status);
        let queries = t
            .spans
            .iter()
            .filter(|s| s.op.as_deref().is_some_and(|op| op.starts_with("db")))
            .count() as u64;
        let mut minute = RouteMinute::new(t.name.clone(), t.start_timestamp);
        if let Some(environment) = &t.environment {
            minute.environment.clone_from(environment);
        }
        minute.release.clone_from(&t.release);
        let duration = t
            .timestamp
            .duration_since(t.start_timestamp)
            .unwrap_or_default();
        let found = minutes.iter_mut().find(|m| {
            (&m.route, m.minute, &m.environment, &m.release)
                == (
                    &minute.route,
                    minute.minute,
                    &minute.environment,
                    &minute.release,
                )
        });
        match found {
            Some(m) => m.record(duration, error, queries),
            None => {
                minute.record(duration, error, queries);
                minutes.push(minute);
            }
        }
    }
    minutes
}

/// What [`capture`] recorded.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// Error and message events, in capture order.
    pub events: Vec<Event>,
    /// Transactions, in finish order.
    pub transactions: Vec<Transaction>,
}

const FLUSH: Duration = Duration::from_secs(10);

/// Runs `f` in a fresh scope of a private client (every transaction sampled) and
/// returns what it captured. Independent of any global client, so tests can run in
/// parallel.
pub fn capture(f: impl FnOnce()) -> Captured {
    capture_with(Options::new().traces_sample_rate(1.0), f)
}

/// Like [`capture`], with options of the test's choosing (sinks are added to).
pub fn capture_with(options: Options, f: impl FnOnce()) -> Captured {
    let (client, sink, _guard) = start_capturing(options);
    let scope = RequestScope::builder(&client, "test")
        .sampled(false)
        .start();
    scope.run(f);
    finish(&client, &sink)
}

/// Like [`capture`], for async code: the future runs with the scope bound.
pub async fn capture_async<F: Future<Output = ()>>(future: F) -> Captured {
    let (client, sink, _guard) = start_capturing(Options::new().traces_sample_rate(1.0));
    let scope = RequestScope::builder(&client, "test")
        .sampled(false)
        .start();
    scope.bind(future).await;
    finish(&client, &sink)
}

/// Starts a client that is not registered for captures made outside a request (what
/// [`init`](crate::init) does besides): each test keeps its own, and captures reach
/// it only through a scope it opened or through the client itself.
pub fn start(options: Options) -> Result<BackstopGuard, InitError> {
    Client::start(options)
}

fn start_capturing(options: Options) -> (Client, TestSink, BackstopGuard) {
    let sink = TestSink::new();
    let guard =
        Client::start(options.sink(sink.clone()).console(false)).expect("test options are valid");
    (guard.client().clone(), sink, guard)
}

fn finish(client: &Client, sink: &TestSink) -> Captured {
    client.flush(FLUSH);
    Captured {
        events: sink.events(),
        transactions: sink.transactions(),
    }
}
