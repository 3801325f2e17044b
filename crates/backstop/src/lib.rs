#![doc = include_str!("../../../README.md")]

// Starting Backstop, and the running client.
pub use backstop_core::{
    BackstopGuard, Client, DEFAULT_MAX_BREADCRUMBS, DEFAULT_MAX_SPANS, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_SHUTDOWN_TIMEOUT, Dsn, InitError, InvalidDsn, Options, SamplingContext,
};
// The current request's context, and capturing from handler code.
pub use backstop_core::{
    Bound, BuildRequest, MovedGuard, RequestScope, RequestSource, Scope, ScopeBuilder, ScopeGuard,
    add_breadcrumb, bind, capture_error, capture_event, capture_message, configure_scope,
    error_event, set_context, set_extra, set_tag, set_user,
};
// What is recorded, in Sentry's shape.
pub use backstop_core::{
    Breadcrumb, Event, EventId, Level, PanicDetails, PerformanceProblem, ProblemKind, Request,
    Span, SpanId, SpanStatus, TraceId, TraceParent, Transaction, User, protocol,
};
// The HTTP options both adapters take.
pub use backstop_core::{HttpOptions, IpNet, PagePolicy, PageRule};
// Performance monitoring.
pub use backstop_core::{DbSpan, cache, db_span, detect, fingerprint, outgoing, sql, tracing};
// Where records go.
pub use backstop_core::{
    ConsoleSink, FILTERED, KindStats, Record, SECRET_HEADERS, SECRET_KEYS, Sink, SinkError, Stats,
    TransactionSummary,
};
// Route metrics from every request.
pub use backstop_core::{DurationHistogram, RouteMinute};

#[cfg(feature = "diesel")]
pub use backstop_core::diesel;
#[cfg(feature = "reqwest")]
pub use backstop_core::reqwest;
#[cfg(feature = "test")]
pub use backstop_core::test;

#[cfg(feature = "pages")]
pub use backstop_pages as pages;

#[cfg(feature = "tower")]
pub use backstop_tower as tower;
#[cfg(feature = "tower")]
pub use backstop_tower::{BackstopLayer, OutgoingLayer, ResponseErrorExt};

#[cfg(feature = "sqlite")]
pub use backstop_store as store;
#[cfg(feature = "sqlite")]
pub use backstop_store::{KeepBudget, MetricsRetention, SqliteStore};

#[cfg(feature = "dashboard")]
pub use backstop_dashboard as dashboard;

#[cfg(feature = "actix")]
pub use backstop_actix as actix;

#[cfg(feature = "alerts")]
pub use backstop_alerts as alerts;

#[cfg(feature = "sentry")]
pub use backstop_sentry as sentry;

/// Starts Backstop, as [`backstop_core::init`] does; with the `sentry` feature, a
/// configured DSN (`BACKSTOP_DSN`, else `SENTRY_DSN`) also adds the Sentry exporter,
/// whose outbox is the store's file when a `SqliteStore` is among the sinks (see
/// `backstop_sentry::install` and `docs/sentry.md`).
pub fn init(options: Options) -> Result<BackstopGuard, InitError> {
    #[cfg(feature = "sentry")]
    let (options, export) = backstop_sentry::install(options)?;
    let backstop = backstop_core::init(options)?;
    #[cfg(feature = "sentry")]
    if let Some(export) = export {
        export.attach(&backstop);
    }
    Ok(backstop)
}

// The guides compile: each code block in them is a doctest of this crate (docs/sentry.md
// is backstop-sentry's own crate documentation, and a doctest there).
#[cfg(doctest)]
#[doc = include_str!("../../../docs/axum.md")]
mod guide_axum {}
#[cfg(doctest)]
#[doc = include_str!("../../../docs/actix.md")]
mod guide_actix {}
#[cfg(doctest)]
#[doc = include_str!("../../../docs/configuration.md")]
mod guide_configuration {}
#[cfg(doctest)]
#[doc = include_str!("../../../docs/error-pages.md")]
mod guide_error_pages {}
#[cfg(doctest)]
#[doc = include_str!("../../../docs/performance-monitoring.md")]
mod guide_performance_monitoring {}
#[cfg(doctest)]
#[doc = include_str!("../../../docs/performance.md")]
mod guide_performance {}
#[cfg(doctest)]
#[doc = include_str!("../../../docs/store.md")]
mod guide_store {}
#[cfg(doctest)]
#[doc = include_str!("../../../docs/alerts.md")]
mod guide_alerts {}
#[cfg(doctest)]
#[doc = include_str!("../../../docs/dashboard.md")]
mod guide_dashboard {}
#[cfg(doctest)]
#[doc = include_str!("../../../docs/cli.md")]
mod guide_cli {}
