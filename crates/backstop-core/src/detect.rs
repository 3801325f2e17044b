//! Performance-problem detectors: N+1, duplicate, slow and too many queries. They run
//! on the worker over a finished transaction's query spans, never on the request path.
//!
//! (Being written.)

use std::time::{Duration, SystemTime};

use crate::protocol::{PerformanceProblem, SpanId};

/// One database span as the detectors see it.
#[derive(Debug, Clone)]
pub struct QuerySpan<'a> {
    /// The span.
    pub span_id: SpanId,
    /// The span it ran under (the request's root span or a function span).
    pub parent_span_id: Option<SpanId>,
    /// The normalised statement.
    pub normalized: &'a str,
    /// Its group hash ([`crate::sql::NormalizedSql::group`]).
    pub group: u64,
    /// The statement as executed.
    pub statement: &'a str,
    /// Its bound parameters rendered as text, when the driver reports them.
    pub params: Option<&'a str>,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
}

/// Thresholds for the detectors (see [`crate::Options`]).
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// N+1: at least this many repeats of one normalised query. Default 5.
    pub n_plus_one_count: usize,
    /// N+1: ... taking at least this long in total. Default 50 ms.
    pub n_plus_one_duration: Duration,
    /// Duplicates: the same statement at least this many times. Default 2.
    pub duplicate_count: usize,
    /// Slow query: one query taking at least this long. Default 500 ms.
    pub slow_query: Duration,
    /// Too many queries: at least this many in one request. Default 50.
    pub too_many_queries: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            n_plus_one_count: 5,
            n_plus_one_duration: Duration::from_millis(50),
            duplicate_count: 2,
            slow_query: Duration::from_millis(500),
            too_many_queries: 50,
        }
    }
}

/// Runs every detector over the queries of the transaction named `transaction`.
pub fn detect(
    transaction: &str,
    queries: &[QuerySpan<'_>],
    thresholds: &Thresholds,
) -> Vec<PerformanceProblem> {
    let _ = (transaction, queries, thresholds);
    Vec::new()
}
