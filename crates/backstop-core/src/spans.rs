//! Spans as the request thread records them, and how the worker turns them into
//! Sentry's [`Span`]s.
//!
//! On the request path a span is only what was seen: ids, `Instant`s, the statement as
//! executed and a few typed fields. Everything costly (wall-clock times, JSON data, SQL
//! normalisation, the detectors) happens on the worker.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::detect::QuerySpan;
use crate::protocol::{Map, Span, SpanId, SpanStatus, TraceId};
use crate::sql::{Normalizer, group_hex};

/// The longest statement a span keeps, in bytes. Longer ones (bulk inserts, mostly)
/// are cut at a character boundary, and the cut is marked with `…`. Kept under the
/// size the normaliser parses inline (8 KiB), so the worker never needs its big-stack
/// parsing thread for a recorded span.
pub(crate) const MAX_STATEMENT: usize = 8000;

/// The longest text field value a span keeps, in bytes; cut the same way.
pub(crate) const MAX_FIELD: usize = 1024;

/// Copies `text` into `into`, cut to at most `max` bytes (plus the `…` that marks a cut).
pub(crate) fn copy_bounded(into: &mut String, text: &str, max: usize) {
    into.clear();
    if text.len() <= max {
        into.push_str(text);
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    into.push_str(&text[..end]);
    into.push('…');
}

/// `text`, cut to at most `max` bytes (see [`copy_bounded`]).
pub(crate) fn bounded(text: &str, max: usize) -> String {
    let mut out = String::new();
    copy_bounded(&mut out, text, max);
    out
}

/// Emptied span lists, handed back by the worker for the next requests: a request's
/// list is freed on the worker, and for glibc such a cross-thread free of a 1 KiB
/// block is dear on both threads (it consolidates the heap); reused, it costs nothing.
pub(crate) struct SpanPool(crate::pipeline::Pool<Vec<PendingSpan>>);

impl SpanPool {
    /// Lists longer than this are freed rather than kept.
    const MAX_KEPT: usize = 64;

    pub(crate) fn new(lists: usize) -> Self {
        SpanPool(crate::pipeline::Pool::new(lists))
    }

    /// An empty list with room for a few spans.
    pub(crate) fn take(&self) -> Vec<PendingSpan> {
        self.0.take().unwrap_or_else(|| Vec::with_capacity(8))
    }

    /// Keeps an emptied list for a later request (when the pool has room).
    pub(crate) fn give(&self, mut list: Vec<PendingSpan>) {
        list.clear();
        if list.capacity() > 0 && list.capacity() <= Self::MAX_KEPT {
            self.0.give(list);
        }
    }
}

/// A span recorded under a request, not yet assembled.
pub(crate) enum PendingSpan {
    /// A span built by hand ([`crate::RequestScope::add_span`]).
    Done(Box<Span>),
    /// A span recorded by the tracing layer or a database guard.
    Recorded(Recorded),
}

/// What the tracing layer or [`crate::db_span`] saw of one span.
pub(crate) struct Recorded {
    pub(crate) span_id: SpanId,
    /// The span it ran under; `None` is the request's root span.
    pub(crate) parent: Option<SpanId>,
    /// `function`, `db`, `db.sql.query` ...
    pub(crate) op: &'static str,
    /// The function's name; for queries, unused (the statement is the description).
    pub(crate) name: &'static str,
    pub(crate) start: Instant,
    /// How long it took, in nanoseconds (not an end `Instant`: this keeps a recorded
    /// span at 128 bytes, so a request's first eight fit one small allocation).
    pub(crate) took_ns: u64,
    pub(crate) status: Option<SpanStatus>,
    /// Set for database spans.
    pub(crate) query: Option<Box<Query>>,
    /// The span's own fields (for function spans), or extra fields of a query.
    pub(crate) fields: Vec<(&'static str, FieldValue)>,
    /// Where the span was declared (`code.namespace`, `code.filepath`, `code.lineno`).
    pub(crate) code: Option<&'static tracing::Metadata<'static>>,
}

impl Recorded {
    /// A driver's statement (`db.sql.query`), with nothing else of its own.
    pub(crate) fn statement(
        parent: Option<SpanId>,
        start: Instant,
        took_ns: u64,
        status: Option<SpanStatus>,
        query: Query,
    ) -> Self {
        Recorded {
            span_id: SpanId::new(),
            parent,
            op: "db.sql.query",
            name: "",
            start,
            took_ns,
            status,
            query: Some(Box::new(query)),
            fields: Vec::new(),
            code: None,
        }
    }
}

/// A database statement.
#[derive(Debug, Default)]
pub(crate) struct Query {
    /// `db.system`: `postgresql`, `mysql`, `sqlite` ...
    pub(crate) system: Option<Cow<'static, str>>,
    /// The statement as executed.
    pub(crate) statement: String,
    /// The bound parameters rendered as text, when the driver reports them.
    pub(crate) params: Option<String>,
    pub(crate) rows_affected: Option<u64>,
    pub(crate) rows_returned: Option<u64>,
}

/// A field value as recorded: typed, so nothing is formatted on the request path
/// unless it is text already.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValue {
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl FieldValue {
    fn into_json(self) -> Value {
        match self {
            FieldValue::Str(s) => Value::String(s),
            FieldValue::I64(v) => v.into(),
            FieldValue::U64(v) => v.into(),
            FieldValue::F64(v) => serde_json::Number::from_f64(v)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(v.to_string())),
            FieldValue::Bool(v) => v.into(),
        }
    }
}

/// The clock of one request: maps its `Instant`s to wall-clock time.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) start: SystemTime,
    pub(crate) started: Instant,
}

impl Clock {
    /// The clock of a request that started at `started`, read against the wall clock
    /// now.
    pub(crate) fn of(started: Instant) -> Self {
        let (wall, now) = (SystemTime::now(), Instant::now());
        Clock {
            start: wall - now.saturating_duration_since(started),
            started,
        }
    }

    pub(crate) fn at(&self, instant: Instant) -> SystemTime {
        match instant.checked_duration_since(self.started) {
            Some(after) => self.start + after,
            None => self.start - self.started.duration_since(instant),
        }
    }
}

/// The assembled spans of one transaction, with what the detectors need to know of
/// its queries.
pub(crate) struct Assembled {
    pub(crate) spans: Vec<Span>,
    /// For each query: its index in `spans`, the statement and params as executed,
    /// and its group.
    pub(crate) queries: Vec<QueryRef>,
}

pub(crate) struct QueryRef {
    index: usize,
    /// As recorded on the request thread: freed back there (see
    /// [`crate::pipeline::Retired`]).
    query: Box<Query>,
    group: u64,
}

impl QueryRef {
    pub(crate) fn into_query(self) -> Box<Query> {
        self.query
    }
}

impl Assembled {
    /// The queries as the detectors take them.
    pub(crate) fn query_spans(&self) -> Vec<QuerySpan<'_>> {
        // A `db` span (an ORM's) with a `db.sql.query` child (its driver's) is the same
        // query seen twice: only the driver's counts, as a child of the ORM span's
        // parent, so repeats through the ORM are siblings as they would be without it.
        let parents: HashMap<SpanId, Option<SpanId>> = self
            .queries
            .iter()
            .map(|q| &self.spans[q.index])
            .map(|span| (span.span_id, span.parent_span_id))
            .collect();
        let wrappers: HashMap<SpanId, Option<SpanId>> = self
            .queries
            .iter()
            .map(|q| &self.spans[q.index])
            .filter(|span| span.op.as_deref() == Some("db.sql.query"))
            .filter_map(|span| span.parent_span_id)
            .filter_map(|parent| {
                parents
                    .get(&parent)
                    .map(|grandparent| (parent, *grandparent))
            })
            .collect();
        self.queries
            .iter()
            .map(|q| (q, &self.spans[q.index]))
            .filter(|(_, span)| !wrappers.contains_key(&span.span_id))
            .map(|(q, span)| QuerySpan {
                span_id: span.span_id,
                parent_span_id: span
                    .parent_span_id
                    .map(|parent| wrappers.get(&parent).copied().unwrap_or(Some(parent)))
                    .unwrap_or(None),
                normalized: span.description.as_deref().unwrap_or_default(),
                group: q.group,
                statement: &q.query.statement,
                params: q.query.params.as_deref(),
                start: span.start_timestamp,
                end: span.timestamp,
            })
            .collect()
    }
}

/// Turns the recorded spans into Sentry's, normalising every statement. With
/// `keep_statements` (PII allowed), the statement as executed and its parameters are
/// kept in the span's data as well.
pub(crate) fn assemble(
    pending: &mut Vec<PendingSpan>,
    clock: Clock,
    trace_id: TraceId,
    root: SpanId,
    normalizer: &mut Normalizer,
    keep_statements: bool,
) -> Assembled {
    let mut spans = Vec::with_capacity(pending.len());
    let mut queries = Vec::new();
    for span in pending.drain(..) {
        let recorded = match span {
            PendingSpan::Done(span) => {
                let mut span = *span;
                // A hand-built query span counts like a recorded one.
                let is_query = span
                    .op
                    .as_deref()
                    .is_some_and(|op| op == "db" || op.starts_with("db."));
                if let (true, Some(statement)) = (is_query, span.description.take()) {
                    let system = span.data.get("db.system").and_then(|v| v.as_str());
                    let normal = normalizer.normalize(&statement, system);
                    span.description = Some(normal.text.clone());
                    let group = normal.group;
                    span.data
                        .insert("db.query_group".into(), group_hex(group).into());
                    queries.push(QueryRef {
                        index: spans.len(),
                        query: Box::new(Query {
                            statement,
                            ..Query::default()
                        }),
                        group,
                    });
                }
                spans.push(span);
                continue;
            }
            PendingSpan::Recorded(recorded) => recorded,
        };
        let Recorded {
            span_id,
            parent,
            op,
            name,
            start,
            took_ns,
            status,
            query,
            fields,
            code,
        } = recorded;
        let mut data = Map::new();
        if let Some(meta) = code {
            data.insert("code.namespace".into(), meta.target().into());
            if let Some(file) = meta.file() {
                data.insert("code.filepath".into(), file.into());
            }
            if let Some(line) = meta.line() {
                data.insert("code.lineno".into(), line.into());
            }
        }
        for (key, value) in fields {
            data.insert(key.into(), value.into_json());
        }
        let description = match query {
            None => Some(name.to_owned()),
            Some(query) => {
                let system = query.system.as_deref();
                let normal = normalizer.normalize(&query.statement, system);
                let description = normal.text.clone();
                let group = normal.group;
                if let Some(system) = &query.system {
                    data.insert("db.system".into(), system.as_ref().into());
                }
                data.insert("db.query_group".into(), group_hex(group).into());
                if let Some(n) = query.rows_affected {
                    data.insert("db.rows_affected".into(), n.into());
                }
                if let Some(n) = query.rows_returned {
                    data.insert("db.rows_returned".into(), n.into());
                }
                if keep_statements {
                    data.insert("db.statement".into(), query.statement.as_str().into());
                    if let Some(params) = &query.params {
                        data.insert("db.params".into(), params.as_str().into());
                    }
                }
                queries.push(QueryRef {
                    index: spans.len(),
                    query,
                    group,
                });
                Some(description)
            }
        };
        spans.push(Span {
            span_id,
            trace_id,
            parent_span_id: Some(parent.unwrap_or(root)),
            op: Some(op.to_owned()),
            description,
            status: Some(status.unwrap_or(SpanStatus::Ok)),
            start_timestamp: clock.at(start),
            timestamp: clock.at(start) + Duration::from_nanos(took_ns),
            tags: Default::default(),
            data,
        });
    }
    Assembled { spans, queries }
}

#[cfg(test)]
mod tests {
    /// A request's first eight spans fit one allocation small enough for the
    /// allocator's per-thread cache (glibc: up to 1,032 bytes); bigger ones go through
    /// its slow path, and their frees on the worker thread make it consolidate.
    #[test]
    fn eight_spans_fit_a_small_allocation() {
        assert!(std::mem::size_of::<super::PendingSpan>() * 8 <= 1024);
    }
}
