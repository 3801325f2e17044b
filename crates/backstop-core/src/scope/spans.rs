//! The span records a request's scope holds: what the request thread saw of each span
//! (ids, `Instant`s, the statement as executed, a few typed fields), and the records
//! of outgoing calls and cache operations that spans and breadcrumbs are built from.
//!
//! The recorders (`crate::performance`) make them; the worker turns them into Sentry's
//! spans (`crate::performance::spans::assemble`). They sit here, below both, because
//! the scope keeps them.

use std::borrow::Cow;
use std::time::SystemTime;

use crate::protocol::{Breadcrumb, Level, Span, SpanId, SpanStatus};
use crate::scope::intern::Text;

/// The clock a request's spans are timed with: quanta's, which reads the CPU's
/// time-stamp counter where that is reliable (the OS's monotonic clock elsewhere).
/// A read costs about half of `std::time::Instant::now`'s, and a request reads it at
/// each end, and at each end of each span and query.
pub(crate) type Instant = quanta::Instant;

/// Now, on the spans' clock.
#[inline]
pub(crate) fn now() -> Instant {
    quanta::Instant::now()
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
    pub(crate) start: Instant,
    /// How long it took, in nanoseconds (not an end `Instant`: this keeps a recorded
    /// span at 128 bytes, so a request's first eight fit one small allocation).
    pub(crate) took_ns: u64,
    pub(crate) status: Option<SpanStatus>,
    pub(crate) detail: Detail,
}

/// What kind of span, and what it says.
pub(crate) enum Detail {
    /// A `tracing` span: a `function` span, or a `db` span when its fields describe a
    /// query. Its metadata names it and says where it was declared.
    Traced {
        code: &'static tracing::Metadata<'static>,
        /// The span's own fields.
        fields: Vec<(&'static str, FieldValue)>,
        query: Option<Box<Query>>,
    },
    /// A driver's statement (`db.sql.query`) as sqlx logs it, held inline: with a
    /// shared text, recording it allocates nothing.
    Statement(Statement),
    /// A driver's statement (`db.sql.query`) from [`crate::db_span`], which may carry
    /// parameters.
    Query(Box<Query>),
    /// An outgoing HTTP call (`http.client`), held inline: with a shared text,
    /// recording it allocates nothing.
    Http(HttpCall),
    /// A cache operation (`cache.get`, `cache.put`), held inline likewise.
    Cache(CacheCall),
}

/// What a breadcrumb left by an outgoing call or a cache operation is built from, when
/// something reads it: a copy of its span's record (see `crate::scope::Crumb`).
#[derive(Debug, Clone)]
pub(crate) enum CrumbRecord {
    Http(HttpCall),
    Cache(CacheCall),
}

impl CrumbRecord {
    /// The breadcrumb, timestamped `at`.
    pub(crate) fn breadcrumb(&self, at: SystemTime) -> Breadcrumb {
        let mut crumb = match self {
            CrumbRecord::Http(call) => call.breadcrumb(),
            CrumbRecord::Cache(call) => call.breadcrumb(),
        };
        crumb.timestamp = at;
        crumb
    }
}

/// A statement as sqlx reports it.
#[derive(Debug, Default)]
pub(crate) struct Statement {
    pub(crate) text: Text,
    /// `db.system`: `postgresql`, `mysql`, `sqlite` ...
    pub(crate) system: Option<&'static str>,
    pub(crate) rows_affected: Option<u64>,
    pub(crate) rows_returned: Option<u64>,
}

impl Recorded {
    /// A span with a new id (the tracing layer's spans keep the id they were opened
    /// with).
    pub(crate) fn with_new_id(
        parent: Option<SpanId>,
        start: Instant,
        took_ns: u64,
        status: Option<SpanStatus>,
        detail: Detail,
    ) -> Self {
        Recorded {
            span_id: SpanId::new(),
            parent,
            start,
            took_ns,
            status,
            detail,
        }
    }
}

/// A database statement.
#[derive(Debug, Default)]
pub(crate) struct Query {
    /// `db.system`: `postgresql`, `mysql`, `sqlite` ...
    pub(crate) system: Option<Cow<'static, str>>,
    /// The statement as executed.
    pub(crate) statement: Text,
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
        let (wall, now) = (SystemTime::now(), now());
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

/// What a recorded call says, turned into a span (and, when read, a breadcrumb) on the
/// worker.
#[derive(Debug, Clone)]
pub(crate) struct HttpCall {
    /// `GET https://api.example/rates?from=EUR`: the method, the URL (no credentials,
    /// no fragment) and its query (scrubbed on the worker). Kept once per process, like
    /// statements: a service calls the same few endpoints all day.
    pub(crate) text: Text,
    /// Where the method ends (a space follows).
    pub(crate) method_end: u16,
    /// Where the URL ends (the query, if any, follows a `?`).
    pub(crate) url_end: u16,
    pub(crate) status: Option<u16>,
    pub(crate) response_size: Option<u64>,
    /// Why the call failed before a response came.
    pub(crate) failure: Option<SpanStatus>,
}

impl HttpCall {
    /// The method: `GET`.
    pub(crate) fn method(&self) -> &str {
        &self.text[..usize::from(self.method_end)]
    }

    /// Scheme, host, port and path: `https://api.example/rates`.
    pub(crate) fn url(&self) -> &str {
        &self.text[usize::from(self.method_end) + 1..usize::from(self.url_end)]
    }

    /// The query as sent, if any.
    pub(crate) fn query(&self) -> Option<&str> {
        self.text.get(usize::from(self.url_end) + 1..)
    }

    /// The span's description: `GET https://api.example/rates`.
    pub(crate) fn description(&self) -> &str {
        &self.text[..usize::from(self.url_end)]
    }

    /// The span's status: the failure's, else the response's; a call that ended with
    /// neither was abandoned (a timeout around it, a dropped future).
    pub(crate) fn span_status(&self) -> SpanStatus {
        match (self.failure, self.status) {
            (Some(failure), _) => failure,
            (None, Some(code)) => SpanStatus::from_http(code),
            (None, None) => SpanStatus::Cancelled,
        }
    }
}

impl HttpCall {
    /// The `http` breadcrumb: method, URL and status (or why there is none).
    pub(crate) fn breadcrumb(&self) -> Breadcrumb {
        let mut crumb = Breadcrumb {
            ty: "http".into(),
            category: Some("http".into()),
            level: match (self.failure, self.status) {
                (Some(_), _) | (None, None) | (None, Some(500..)) => Level::Error,
                (None, Some(400..)) => Level::Warning,
                _ => Level::Info,
            },
            ..Breadcrumb::default()
        };
        crumb.data.insert("method".into(), self.method().into());
        crumb.data.insert("url".into(), self.url().into());
        if let Some(query) = self.query() {
            crumb.data.insert("http.query".into(), query.into());
        }
        if let Some(status) = self.status {
            crumb.data.insert("status_code".into(), status.into());
        }
        if self.failure.is_some() || self.status.is_none() {
            crumb
                .data
                .insert("reason".into(), self.span_status().as_str().into());
        }
        crumb
    }
}

/// A cache operation's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheOp {
    Get,
    Put,
}

impl CacheOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CacheOp::Get => "cache.get",
            CacheOp::Put => "cache.put",
        }
    }
}

/// What one cache operation says, turned into a span (and, when read, a breadcrumb) on
/// the worker.
#[derive(Debug, Clone)]
pub(crate) struct CacheCall {
    pub(crate) op: CacheOp,
    /// The key, cut to [`MAX_KEY`](crate::cache::MAX_KEY) bytes; kept once per process, like statements.
    pub(crate) key: Text,
    pub(crate) hit: Option<bool>,
    pub(crate) item_size: Option<u64>,
}

impl CacheCall {
    /// The breadcrumb a cache operation leaves: `cache.get rates:EUR`, key and hit.
    pub(crate) fn breadcrumb(&self) -> Breadcrumb {
        let mut crumb = Breadcrumb {
            category: Some(self.op.as_str().into()),
            ..Breadcrumb::default()
        };
        crumb
            .data
            .insert("cache.key".into(), self.key.as_str().into());
        if let Some(hit) = self.hit {
            crumb.data.insert("cache.hit".into(), hit.into());
        }
        crumb
    }
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
