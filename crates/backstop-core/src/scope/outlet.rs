//! What a scope needs of the client it reports to: the settings, the route metrics,
//! the counters it bumps, span lists to fill, and where finished records go.
//!
//! A trait, which the client implements (`crate::client`): the client and the
//! pipeline it starts sit above the scope, so the scope names neither.

use std::any::Any;
use std::sync::Arc;

use crate::http::RequestFacts;
use crate::options::{SamplingContext, Settings};
use crate::protocol::{Event, EventId};
use crate::scope::pending::{PendingTransaction, TraceLink};
use crate::scope::spans::PendingSpan;

/// The running client, as a scope sees it.
pub(crate) trait Outlet: Send + Sync + std::panic::RefUnwindSafe {
    /// The validated options.
    fn settings(&self) -> &Settings;

    /// Every request thread's route metrics, which the worker merges.
    fn metrics(&self) -> &Arc<crate::metrics::Threads>;

    /// Counts a breadcrumb that was dropped (by `before_breadcrumb`, or past
    /// `max_breadcrumbs`).
    fn breadcrumb_dropped(&self);

    /// Counts a callback that panicked.
    fn callback_panicked(&self);

    /// Counts `n` spans that were dropped.
    fn spans_dropped(&self, n: u64);

    /// Whether a traces sampler is set.
    fn has_traces_sampler(&self) -> bool;

    /// Decides sampling from `traces_sample_rate` alone.
    fn sample_by_rate(&self) -> bool;

    /// Decides whether a transaction is kept.
    fn sample_transaction(&self, ctx: &SamplingContext<'_>) -> bool;

    /// An emptied span list, to fill (see `crate::pipeline::reuse`).
    fn span_list(&self) -> Vec<PendingSpan>;

    /// Frees, on this request thread, what the worker is done with.
    fn free_retired(&self);

    /// Sends an event. Returns its id at once.
    fn send_event(
        &self,
        event: Event,
        backtrace: Option<backtrace::Backtrace>,
        trace: Option<TraceLink>,
    ) -> EventId;

    /// Hands over a finished transaction.
    fn send_transaction(&self, transaction: PendingTransaction, facts: Option<RequestFacts<'_>>);

    /// Hands the worker a span that closed after its transaction was sent.
    fn send_late_span(&self, transaction: EventId, span: PendingSpan);

    /// The client itself, for the client module to recover its handle
    /// ([`RequestScope::client`](crate::RequestScope::client)).
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}
