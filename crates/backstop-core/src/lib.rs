//! Backstop's capture engine.
//!
//! Everything the adapters, the store and the exporter build on:
//!
//! - [`protocol`]: events, transactions and spans in Sentry's own JSON shape;
//! - [`Options`] and [`init`], which checks them and starts the worker;
//! - [`RequestScope`]: per-request context that handler code reaches with the free
//!   functions below ([`set_user`], [`add_breadcrumb`], [`capture_error`], ...);
//! - the panic hook, grouping ([`fingerprint`]), PII scrubbing and sampling;
//! - performance monitoring: the [`tracing`] layer, [`db_span`], [`outgoing`] HTTP
//!   calls with trace propagation, [`cache`] spans, [`sql`] normalisation and the
//!   [`detect`]ors;
//! - route metrics from every request ([`RouteMinute`]);
//! - the pipeline: a bounded queue, a worker thread, and [`Sink`]s;
//! - a [`ConsoleSink`], and test support (`backstop_core::test`, feature `test`).
//!
//! ```
//! use backstop_core::{Level, Options, User};
//!
//! let backstop = backstop_core::init(Options::new().environment("docs")).unwrap();
//!
//! // In a request, the adapter has bound a scope; these calls find it.
//! let captured = backstop_core::test::capture(|| {
//!     backstop_core::set_user(Some(User::with_id("42")));
//!     let err = "x".parse::<u32>().unwrap_err();
//!     backstop_core::capture_error(&err);
//! });
//! assert_eq!(captured.events[0].exception.values[0].ty, "ParseIntError");
//! # drop(backstop);
//! ```
//!
//! Outside any request scope, captures go to the client of the latest [`init`] with no
//! request context, and `set_*`/`add_breadcrumb` do nothing.

// The modules follow a record's path: its shape (`protocol`), route metrics, what a
// sink receives (`sink`), the configuration, what a capture carries, the HTTP facts,
// the request's scope, performance spans, the pipeline to the sinks (with, in
// `pipeline::reuse`, the memory that goes round between request threads and the
// worker), the client, and the request lifecycle the adapters share (`exchange`).
// Imports point down that list; `scripts/core-layers.py` prints the ones that don't.
// The modules are private: what users name is re-exported below, at the root or in a
// small namespace module.
mod capture;
mod client;
mod exchange;
mod http;
mod metrics;
mod options;
mod performance;
mod pipeline;
pub mod protocol;
mod scope;
mod sink;
#[cfg(feature = "test")]
pub mod test;

pub use capture::{fingerprint, trace::TraceParent};
#[cfg(feature = "diesel")]
pub use performance::diesel;
#[cfg(feature = "reqwest")]
pub use performance::reqwest;
#[cfg(feature = "tower")]
pub use performance::tower;
pub use performance::{cache, detect, outgoing, sql, tracing};

pub use capture::error::error_event;
pub use capture::panic::PanicDetails;
pub use client::{BackstopGuard, Client, init};
pub use http::{BuildRequest, RequestSource};
pub use http::{HttpOptions, IpNet, PagePolicy, PageRule};
pub use metrics::{DurationHistogram, InvalidHistogram, OTHER_ROUTES, RouteMinute};
pub use options::secrets::{FILTERED, SECRET_HEADERS, SECRET_KEYS};
pub use options::{
    DEFAULT_MAX_BREADCRUMBS, DEFAULT_MAX_SPANS, DEFAULT_QUEUE_CAPACITY, DEFAULT_SHUTDOWN_TIMEOUT,
    Dsn, InitError, InvalidDsn, Options, SamplingContext,
};
pub use performance::db::{DbSpan, db_span};
pub use pipeline::console::ConsoleSink;
pub use pipeline::log_every::LogEvery;
pub use pipeline::{KindStats, Stats};
pub use protocol::{
    Breadcrumb, Event, EventId, Level, PerformanceProblem, ProblemKind, Request, Span, SpanId,
    SpanStatus, TraceId, Transaction, User,
};
pub use scope::{Bound, MovedGuard, RequestScope, Scope, ScopeBuilder, ScopeGuard, bind};
pub use sink::{Record, Sink, SinkError, TransactionSummary};

/// What the two adapters (backstop-tower, backstop-actix) share of the request
/// lifecycle: the request's facts, request ids, page decisions, status events. Not
/// public API: it changes with the adapters, without notice.
#[doc(hidden)]
pub mod adapter {
    pub use crate::capture::panic::payload_message;
    pub use crate::exchange::*;
    pub use crate::http::*;
}

use scope::with_current;

/// Sets (or clears) the user of the current request.
pub fn set_user(user: Option<User>) {
    with_current(|s| s.configure(|scope| scope.set_user(user)));
}

/// Sets a tag on the current request.
pub fn set_tag(key: impl Into<String>, value: impl Into<String>) {
    with_current(|s| s.configure(|scope| scope.set_tag(key, value)));
}

/// Sets a named context (a JSON object) on the current request.
pub fn set_context(name: impl Into<String>, context: impl Into<serde_json::Value>) {
    with_current(|s| s.configure(|scope| scope.set_context(name, context)));
}

/// Sets one piece of extra data on the current request.
pub fn set_extra(key: impl Into<String>, value: impl Into<serde_json::Value>) {
    with_current(|s| s.configure(|scope| scope.set_extra(key, value)));
}

/// Adds a breadcrumb to the current request.
pub fn add_breadcrumb(breadcrumb: Breadcrumb) {
    with_current(|s| s.configure(|scope| scope.add_breadcrumb(breadcrumb)));
}

/// Runs `f` with the current request's scope. Returns `None` outside a request.
pub fn configure_scope<R>(f: impl FnOnce(&mut Scope) -> R) -> Option<R> {
    with_current(|s| s.configure(f))
}

/// Captures a message. Returns its event id at once (a nil id when no client runs).
pub fn capture_message(message: impl Into<String>, level: Level) -> EventId {
    let message = message.into();
    match RequestScope::current() {
        Some(scope) => scope.capture_message(message, level),
        None => capture_event(capture::error::message_event(message, level)),
    }
}

/// Captures an error with its whole `source()` chain, as chained exceptions (the root
/// cause first). Returns its event id at once.
pub fn capture_error<E: std::error::Error + ?Sized>(error: &E) -> EventId {
    match RequestScope::current() {
        Some(scope) => scope.capture_error(error),
        None => capture_event(error_event(error)),
    }
}

/// Captures a fully built event, with the current request's context.
pub fn capture_event(event: Event) -> EventId {
    if let Some(scope) = RequestScope::current() {
        return scope.capture_event(event);
    }
    let id = event.event_id;
    match Client::global() {
        Some(client) => client.capture_event(event),
        None => id,
    }
}
