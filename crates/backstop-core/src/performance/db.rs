//! Query spans for drivers with no tracing of their own (rusqlite, raw clients).
//!
//! ```
//! # let backstop = backstop_core::init(backstop_core::Options::new()).unwrap();
//! let conn = rusqlite::Connection::open_in_memory().unwrap();
//! conn.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)").unwrap();
//!
//! let sql = "INSERT INTO users (name) VALUES (?1)";
//! let mut span = backstop_core::db_span("sqlite", sql);
//! let inserted = conn.execute(sql, ["ann"]).unwrap();
//! span.rows_affected(inserted as u64);
//! drop(span); // the span ends here
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::performance::spans::{Guard, GuardRecord, MAX_STATEMENT, Open};
use crate::protocol::SpanStatus;
use crate::scope::intern::{Text, bounded};
use crate::scope::spans::{Detail, Query, Recorded};

/// Starts a query span for `sql` on the database system `system` (`sqlite`,
/// `postgresql`, `mysql`, ...). The span ends when the guard drops.
///
/// Inside a sampled request it becomes a `db.sql.query` span, nested under the current
/// recorded span; the worker normalises the statement and the detectors count it.
/// Anywhere else the guard is inert and costs a thread-local read: `sql` is only
/// copied when the span is recorded.
pub fn db_span(system: &'static str, sql: &str) -> DbSpan {
    let open = crate::performance::tracing::current()
        .inspect(|(scope, _)| scope.count_query())
        .filter(|(scope, _)| scope.is_sampled())
        .map(|(scope, parent)| Open {
            scope,
            parent,
            start: crate::scope::spans::now(),
            record: OpenQuery {
                status: None,
                query: Query {
                    system: Some(Cow::Borrowed(system)),
                    statement: Text::new(sql, MAX_STATEMENT),
                    ..Query::default()
                },
            },
        });
    DbSpan(Guard::new(open))
}

/// A query span in progress; see [`db_span`].
#[must_use = "the span ends when the guard drops"]
pub struct DbSpan(Guard<OpenQuery>);

/// What a query span records.
pub(crate) struct OpenQuery {
    status: Option<SpanStatus>,
    query: Query,
}

impl GuardRecord for OpenQuery {
    const NAME: &'static str = "DbSpan";

    fn end(open: Open<Self>, took_ns: u64) {
        let Open {
            scope,
            parent,
            start,
            record: OpenQuery { status, query },
        } = open;
        let detail = Detail::Query(Box::new(query));
        scope.record_span(Recorded::with_new_id(
            parent, start, took_ns, status, detail,
        ));
    }
}

impl DbSpan {
    /// Whether the span will be recorded (inside a sampled request).
    pub fn is_recording(&self) -> bool {
        self.0.is_recording()
    }

    /// How many rows the statement changed.
    pub fn rows_affected(&mut self, rows: u64) -> &mut Self {
        self.0.set(|open| open.query.rows_affected = Some(rows));
        self
    }

    /// How many rows the statement returned.
    pub fn rows_returned(&mut self, rows: u64) -> &mut Self {
        self.0.set(|open| open.query.rows_returned = Some(rows));
        self
    }

    /// The bound parameters. They tell exact duplicates from N+1 queries, and are only
    /// kept in the span's data when PII is allowed (`send_default_pii`).
    pub fn params(&mut self, params: &dyn fmt::Debug) -> &mut Self {
        self.0.set(|open| {
            let text = format!("{params:?}");
            open.query.params = Some(bounded(&text, crate::performance::spans::MAX_FIELD));
        });
        self
    }

    /// Marks the query as failed.
    pub fn failed(&mut self) -> &mut Self {
        self.0
            .set(|open| open.status = Some(SpanStatus::InternalError));
        self
    }

    /// Ends the span now (the same as dropping it).
    pub fn finish(self) {}
}

impl fmt::Debug for DbSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
