//! The guard the span recorders share, and how the worker turns recorded spans into
//! Sentry's [`Span`]s.
//!
//! On the request path a span is only what was seen: ids, `Instant`s, the statement as
//! executed and a few typed fields (the records, in `crate::scope::spans`, which the
//! scope holds). Everything costly (wall-clock times, JSON data, SQL normalisation, the
//! detectors) happens on the worker.

use hashbrown::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::performance::detect::{CallSpan, QuerySpan};
use crate::performance::outgoing::{call_group, normalize_url};
use crate::performance::sql::{Normalizer, group_hex};
use crate::protocol::{Map, Span, SpanId, SpanStatus, TraceId};
use crate::scope::RequestScope;
use crate::scope::intern::Text;
use crate::scope::spans::{
    CacheCall, Clock, Detail, FieldValue, HttpCall, Instant, PendingSpan, Query, Recorded,
    Statement,
};

/// The longest statement a span keeps, in bytes. Longer ones (bulk inserts, mostly)
/// are cut at a character boundary, and the cut is marked with `…`. Kept under the
/// size the normaliser parses inline (8 KiB), so the worker never needs its big-stack
/// parsing thread for a recorded span.
pub(crate) const MAX_STATEMENT: usize = 8000;

/// The longest text field value a span keeps, in bytes; cut the same way.
pub(crate) const MAX_FIELD: usize = 1024;

/// A span a guard holds open: the request it reports to, the span it runs under, when
/// it started, and what its kind records.
pub(crate) struct Open<R> {
    pub(crate) scope: Arc<RequestScope>,
    pub(crate) parent: Option<SpanId>,
    pub(crate) start: Instant,
    pub(crate) record: R,
}

/// What one kind of guard ([`crate::DbSpan`], [`crate::outgoing::HttpClientSpan`],
/// [`crate::cache::CacheSpan`]) records, and how its span ends.
pub(crate) trait GuardRecord: Sized {
    /// The public guard's name, for `Debug`.
    const NAME: &'static str;

    /// Records the span that ran `took_ns` (and its breadcrumb, for the kinds that
    /// leave one).
    fn end(open: Open<Self>, took_ns: u64);
}

/// The guard the three kinds share: inert outside a request (or, for queries, outside a
/// sampled one); records its span when dropped. Held inline: a guard lives on the
/// stack or in a request's future, and a box would be one more allocation per span.
pub(crate) struct Guard<R: GuardRecord> {
    open: Option<Open<R>>,
}

impl<R: GuardRecord> Guard<R> {
    pub(crate) fn new(open: Option<Open<R>>) -> Self {
        Guard { open }
    }

    pub(crate) fn is_recording(&self) -> bool {
        self.open.is_some()
    }

    pub(crate) fn open(&self) -> Option<&Open<R>> {
        self.open.as_ref()
    }

    /// Changes what the span records, when it records anything.
    #[inline]
    pub(crate) fn set(&mut self, f: impl FnOnce(&mut R)) {
        if let Some(open) = &mut self.open {
            f(&mut open.record);
        }
    }
}

impl<R: GuardRecord> Drop for Guard<R> {
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            let took_ns = crate::performance::tracing::nanos_since(open.start);
            R::end(open, took_ns);
        }
    }
}

impl<R: GuardRecord> fmt::Debug for Guard<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(R::NAME)
            .field("recording", &self.is_recording())
            .finish_non_exhaustive()
    }
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

/// The assembled spans of one transaction, with what the detectors need to know of
/// its queries.
pub(crate) struct Assembled {
    pub(crate) spans: Vec<Span>,
    /// For each query: its index in `spans`, the statement and params as executed,
    /// and its group.
    pub(crate) queries: Vec<QueryRef>,
    /// For each outgoing call: its index in `spans` and its normalised URL.
    pub(crate) calls: Vec<(usize, String)>,
}

pub(crate) struct QueryRef {
    index: usize,
    query: QuerySource,
    group: u64,
}

/// A query as recorded: inline, or in its own record.
enum QuerySource {
    Inline(Statement),
    /// As recorded on the request thread: freed back there (see
    /// [`crate::pipeline::reuse::Retired`]).
    Boxed(Box<Query>),
}

impl QuerySource {
    fn statement(&self) -> &str {
        match self {
            QuerySource::Inline(statement) => &statement.text,
            QuerySource::Boxed(query) => &query.statement,
        }
    }

    fn params(&self) -> Option<&str> {
        match self {
            QuerySource::Inline(_) => None,
            QuerySource::Boxed(query) => query.params.as_deref(),
        }
    }

    fn system(&self) -> Option<&str> {
        match self {
            QuerySource::Inline(statement) => statement.system,
            QuerySource::Boxed(query) => query.system.as_deref(),
        }
    }

    /// Rows affected and returned.
    fn rows(&self) -> (Option<u64>, Option<u64>) {
        match self {
            QuerySource::Inline(s) => (s.rows_affected, s.rows_returned),
            QuerySource::Boxed(q) => (q.rows_affected, q.rows_returned),
        }
    }
}

impl QueryRef {
    /// The record to free on a request thread, if the query had one.
    pub(crate) fn into_record(self) -> Option<Box<Query>> {
        match self.query {
            QuerySource::Inline(_) => None,
            QuerySource::Boxed(query) => Some(query),
        }
    }
}

impl Assembled {
    /// The outgoing calls as the detectors take them.
    pub(crate) fn call_spans(&self) -> Vec<CallSpan<'_>> {
        self.calls
            .iter()
            .map(|(index, normalized)| {
                let span = &self.spans[*index];
                CallSpan {
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    normalized,
                    group: call_group(normalized),
                    start: span.start_timestamp,
                    end: span.timestamp,
                }
            })
            .collect()
    }

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
                statement: q.query.statement(),
                params: q.query.params(),
                start: span.start_timestamp,
                end: span.timestamp,
            })
            .collect()
    }
}

/// Normalises the queries of one transaction and keeps what the detectors need.
struct QueryAssembler<'a> {
    normalizer: &'a mut Normalizer,
    keep_statements: bool,
    queries: Vec<QueryRef>,
}

impl QueryAssembler<'_> {
    /// The query's description (its normalised statement); its data go into `data`.
    fn query(&mut self, query: QuerySource, index: usize, data: &mut Map) -> String {
        let system = query.system();
        let normal = self.normalizer.normalize(query.statement(), system);
        let description = normal.text.clone();
        let group = normal.group;
        if let Some(system) = system {
            data.insert("db.system".into(), system.into());
        }
        let (rows_affected, rows_returned) = query.rows();
        data.insert("db.query_group".into(), group_hex(group).into());
        if let Some(n) = rows_affected {
            data.insert("db.rows_affected".into(), n.into());
        }
        if let Some(n) = rows_returned {
            data.insert("db.rows_returned".into(), n.into());
        }
        if self.keep_statements {
            data.insert("db.statement".into(), query.statement().into());
            if let Some(params) = query.params() {
                data.insert("db.params".into(), params.into());
            }
        }
        self.queries.push(QueryRef {
            index,
            query,
            group,
        });
        description
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
    let mut calls = Vec::new();
    let mut assembler = QueryAssembler {
        normalizer,
        keep_statements,
        queries: Vec::new(),
    };
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
                    let normal = assembler.normalizer.normalize(&statement, system);
                    span.description = Some(normal.text.clone());
                    let group = normal.group;
                    span.data
                        .insert("db.query_group".into(), group_hex(group).into());
                    assembler.queries.push(QueryRef {
                        index: spans.len(),
                        query: QuerySource::Inline(Statement {
                            text: Text::Owned(statement),
                            ..Statement::default()
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
            start,
            took_ns,
            status,
            detail,
        } = recorded;
        let mut data = Map::new();
        let (op, description) = match detail {
            Detail::Traced {
                code,
                fields,
                query,
            } => {
                data.insert("code.namespace".into(), code.target().into());
                if let Some(file) = code.file() {
                    data.insert("code.filepath".into(), file.into());
                }
                if let Some(line) = code.line() {
                    data.insert("code.lineno".into(), line.into());
                }
                for (key, value) in fields {
                    data.insert(key.into(), value.into_json());
                }
                match query {
                    None => ("function", code.name().to_owned()),
                    Some(query) => {
                        let source = QuerySource::Boxed(query);
                        ("db", assembler.query(source, spans.len(), &mut data))
                    }
                }
            }
            Detail::Statement(statement) => {
                let source = QuerySource::Inline(statement);
                (
                    "db.sql.query",
                    assembler.query(source, spans.len(), &mut data),
                )
            }
            Detail::Query(query) => {
                let source = QuerySource::Boxed(query);
                (
                    "db.sql.query",
                    assembler.query(source, spans.len(), &mut data),
                )
            }
            Detail::Http(call) => {
                let description = http_data(&call, &mut data);
                calls.push((spans.len(), normalize_url(&description)));
                ("http.client", description)
            }
            Detail::Cache(call) => {
                let CacheCall {
                    op,
                    ref key,
                    hit,
                    item_size,
                } = call;
                data.insert("cache.key".into(), key.as_str().into());
                if let Some(hit) = hit {
                    data.insert("cache.hit".into(), hit.into());
                }
                if let Some(size) = item_size {
                    data.insert("cache.item_size".into(), size.into());
                }
                (op.as_str(), key.as_str().to_owned())
            }
        };
        spans.push(Span {
            span_id,
            trace_id,
            parent_span_id: Some(parent.unwrap_or(root)),
            op: Some(op.to_owned()),
            description: Some(description),
            status: Some(status.unwrap_or(SpanStatus::Ok)),
            start_timestamp: clock.at(start),
            timestamp: clock.at(start) + Duration::from_nanos(took_ns),
            tags: Default::default(),
            data,
        });
    }
    let queries = assembler.queries;
    Assembled {
        spans,
        queries,
        calls,
    }
}

/// An outgoing call's data, in OpenTelemetry's names; returns its description
/// (`GET https://api.example/rates`).
fn http_data(call: &HttpCall, data: &mut Map) -> String {
    data.insert("http.request.method".into(), call.method().into());
    data.insert("url".into(), call.url().into());
    if let Some(query) = call.query() {
        data.insert("http.query".into(), query.into());
    }
    if let Some(status) = call.status {
        data.insert("http.response.status_code".into(), status.into());
    }
    if let Some(size) = call.response_size {
        data.insert("http.response_content_length".into(), size.into());
    }
    call.description().to_owned()
}
