//! What Backstop's overhead benches (`middleware_overhead`, `actix_overhead`) and their
//! `request_loop` examples share, so the four measure the same thing: the client, the
//! `/hello` and `/query` handlers, and the examples' arguments.

use backstop_core::test::DiscardSink;
use backstop_core::{BackstopGuard, Options};

/// The overhead benches' client (and their `request_loop` examples'): every record
/// into a [`DiscardSink`], a queue big enough that nothing is dropped between the
/// benches' drains, no panic hook.
pub fn overhead_client(traces_sample_rate: f64) -> BackstopGuard {
    backstop_core::test::start(
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
