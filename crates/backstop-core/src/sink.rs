//! What sinks are and what they receive: the [`Sink`] trait, the [`Record`]s of a
//! batch, and the [`TransactionSummary`] a sink keeps or skips a transaction by.
//!
//! Below the configuration, so [`Options::sink`](crate::Options::sink) names a sink
//! without reaching into the pipeline that drives them.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::RouteMinute;
use crate::protocol::{Event, Transaction};

/// A finished, processed record, as sinks receive it.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// An error or message event.
    Event(Box<Event>),
    /// A sampled request or task, with its spans.
    Transaction(Box<Transaction>),
}

impl Record {
    /// The event, if this is one.
    pub fn as_event(&self) -> Option<&Event> {
        match self {
            Record::Event(e) => Some(e),
            Record::Transaction(_) => None,
        }
    }

    /// The transaction, if this is one.
    pub fn as_transaction(&self) -> Option<&Transaction> {
        match self {
            Record::Transaction(t) => Some(t),
            Record::Event(_) => None,
        }
    }
}

/// An error a sink reports; the pipeline counts the batch as failed and logs it.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// What sinks learn of a sampled transaction before the worker processes it: enough
/// to decide whether to keep it (see [`Sink::wants_transaction`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionSummary<'a> {
    /// The transaction's id.
    pub event_id: crate::protocol::EventId,
    /// Its name (the route).
    pub name: &'a str,
    /// When it ended.
    pub ended: std::time::SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// Whether it failed: a 5xx or a panic (outside HTTP, a status other than `ok` or
    /// `cancelled`).
    pub error: bool,
    /// Whether the detectors might find a performance problem in it: a statement run
    /// twice (the same text), a query over the slow threshold, or more queries than
    /// the too-many threshold. False means they will find none.
    pub may_have_problem: bool,
}

/// Where processed records go: the SQLite store, the Sentry exporter, test capture.
///
/// Sinks run on the worker thread only, one batch at a time, so they need no locking
/// of their own (`&mut self`). A sink that returns an error, or panics, loses that
/// batch for itself alone: the failure is counted in [`Stats`](crate::Stats) and logged, and the
/// worker carries on.
///
/// ```
/// use backstop_core::{Record, Sink, SinkError};
///
/// struct CountingSink(usize);
///
/// impl Sink for CountingSink {
///     fn consume(&mut self, batch: &[Record]) -> Result<(), SinkError> {
///         self.0 += batch.len();
///         Ok(())
///     }
/// }
/// ```
///
/// Every sink is also [`Any`](std::any::Any), so code that assembles the sinks can find
/// a particular one among them ([`Options::find_sink`](crate::Options::find_sink)): the
/// Sentry exporter keeps its outbox in the store's file.
pub trait Sink: std::any::Any + Send + 'static {
    /// A short name for logs (`sqlite`, `sentry`).
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Takes one batch. Called on the worker thread.
    fn consume(&mut self, batch: &[Record]) -> Result<(), SinkError>;

    /// Whether the sink would keep this sampled transaction, asked before the worker
    /// processes it (spans assembled, statements normalised, detectors run). When
    /// every sink answers no, the transaction is not processed at all and counts as
    /// dropped by budget ([`KindStats::dropped_budget`](crate::KindStats::dropped_budget)); when any answers yes, every
    /// sink receives it as usual. Every sink is asked, each time. Yes by default; the
    /// SQLite store answers by its keep budget.
    fn wants_transaction(&mut self, summary: &TransactionSummary<'_>) -> bool {
        let _ = summary;
        true
    }

    /// Takes route metrics: per route and minute, what was counted since the last
    /// hand-over (a minute may come in parts; add them up). Called on the worker
    /// thread for minutes that have ended, every few seconds, and for the current
    /// minute too before each [`flush`](Self::flush). Ignored by default.
    fn consume_metrics(&mut self, minutes: &[RouteMinute]) -> Result<(), SinkError> {
        let _ = minutes;
        Ok(())
    }

    /// Makes everything consumed so far durable or delivered. Called by
    /// [`Client::flush`](crate::Client::flush) and at shutdown.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// What the sink lends the client's other users, taken once at start, before the
    /// sink moves to the worker: [`Client::shared`](crate::Client::shared) finds it by
    /// type. The SQLite store lends its reader, so the adapters can mount the dashboard
    /// over it without core knowing either.
    fn shared(&self) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        None
    }
}
