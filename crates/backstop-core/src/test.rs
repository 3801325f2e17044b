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
//! options and read it after [`Backstop::flush`](crate::Client::flush).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::client::Client;
use crate::options::Options;
use crate::pipeline::{Record, Sink, SinkError};
use crate::protocol::{Event, Transaction};
use crate::scope::RequestScope;

/// A sink that keeps every record in memory. Clones share the same records.
#[derive(Debug, Clone, Default)]
pub struct TestSink {
    records: Arc<Mutex<Vec<Record>>>,
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

    /// Forgets everything received so far.
    pub fn clear(&self) {
        self.records
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
}

/// The overhead benches' client (and their `request_loop` examples'): every record
/// into a [`DiscardSink`], a queue big enough that nothing is dropped between the
/// benches' drains, no panic hook.
pub fn overhead_client(traces_sample_rate: f64) -> crate::Backstop {
    Client::start(
        Options::new()
            .traces_sample_rate(traces_sample_rate)
            .queue_capacity(1 << 16)
            .install_panic_hook(false)
            .sink(DiscardSink),
    )
    .expect("the overhead client starts")
}

/// The overhead benches' `/hello` handler (axum's and actix's alike).
pub async fn hello() -> &'static str {
    "hello"
}

/// The overhead benches' `/query` handler: [`sqlx_style_queries`].
pub async fn query() -> &'static str {
    sqlx_style_queries();
    "queried"
}

/// The arguments of the `request_loop` examples: the stack (`bare`, `errors` or
/// `transactions`), the route (`/hello` or `/query`) and how many requests to run.
#[derive(Debug, Clone)]
pub struct LoopArgs {
    /// `bare`, `errors` or `transactions`.
    pub stack: String,
    /// `/hello` or `/query`.
    pub path: String,
    /// How many requests to time.
    pub n: u32,
    /// The traces sample rate the stack runs at.
    pub rate: f64,
}

impl LoopArgs {
    /// From the command line; panics with the usage on a bad one.
    pub fn from_env() -> Self {
        let mut args = std::env::args().skip(1);
        let stack = args.next().unwrap_or_else(|| "transactions".into());
        let path = args.next().unwrap_or_else(|| "/hello".into());
        let n = args.next().map_or(10_000, |n| n.parse().expect("a count"));
        let rate = match stack.as_str() {
            "bare" | "transactions" => 1.0,
            "errors" => 0.0,
            other => panic!("unknown stack {other}: bare, errors or transactions"),
        };
        LoopArgs {
            stack,
            path,
            n,
            rate,
        }
    }
}

/// What the overhead benches' query route does, in one place: five sqlx-style query
/// events (`target: "sqlx::query"`, the fields sqlx logs) inside a `load_user` span.
/// Under Backstop's tracing layer they become five query spans of one statement.
pub fn sqlx_style_queries() {
    let span = tracing::info_span!("load_user");
    let _entered = span.enter();
    for i in 0..5u32 {
        let elapsed = 0.000_2 + f64::from(i) * 0.000_01;
        tracing::debug!(
            target: "sqlx::query",
            summary = "SELECT id, name FROM users WHERE id = ?",
            db.statement = "SELECT id, name FROM users WHERE id = ?",
            rows_affected = 0u64,
            rows_returned = 1u64,
            elapsed_secs = elapsed,
        );
    }
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
    let (client, sink, _guard) = start(options);
    let scope = RequestScope::builder(&client, "test")
        .sampled(false)
        .start();
    scope.run(f);
    finish(&client, &sink)
}

/// Like [`capture`], for async code: the future runs with the scope bound.
pub async fn capture_async<F: Future<Output = ()>>(future: F) -> Captured {
    let (client, sink, _guard) = start(Options::new().traces_sample_rate(1.0));
    let scope = RequestScope::builder(&client, "test")
        .sampled(false)
        .start();
    scope.bind(future).await;
    finish(&client, &sink)
}

fn start(options: Options) -> (Client, TestSink, crate::Backstop) {
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
