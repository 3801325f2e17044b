//! Query spans for [diesel](https://diesel.rs) connections (feature `diesel`).
//!
//! diesel reports every statement it runs to the connection's
//! [`Instrumentation`](::diesel::connection::Instrumentation); [`Instrumentation`] turns
//! each one into a `db.sql.query` span of the current request through [`db_span`]:
//! nested under the current recorded span, normalised and counted by the detectors on
//! the worker. The bound parameters go to [`DbSpan::params`], so exact duplicates are
//! told from N+1 queries (they are kept in the span's data only when PII is allowed). A
//! statement diesel reports as failed marks its span failed.
//!
//! Each statement is rendered at its start and again at its finish, to pair the two up
//! (statements may finish out of order when a connection pipelines them). One that
//! starts and never finishes (diesel does that only when binding its parameters fails)
//! is dropped unrecorded when the connection next runs a statement for another request
//! or none; no more than 16 wait at a time.
//!
//! Install it on every connection you open, or once for all of them:
//!
//! ```
//! use diesel::connection::{Connection, set_default_instrumentation};
//!
//! // On one connection (pooled connections too, in the pool's customizer):
//! fn install(conn: &mut impl Connection) {
//!     conn.set_instrumentation(backstop_core::diesel::instrumentation("postgresql"));
//! }
//!
//! // For every connection established from now on:
//! set_default_instrumentation(|| {
//!     Some(Box::new(backstop_core::diesel::instrumentation("sqlite")))
//! })
//! .unwrap();
//! ```
//!
//! Outside a sampled request nothing is recorded, and a statement costs a thread-local
//! read: its text is only rendered when a span will be kept.

use std::fmt;
use std::sync::Arc;

use ::diesel::connection::InstrumentationEvent;

use crate::scope::RequestScope;
use crate::{DbSpan, db_span};

/// Statements diesel started and has not finished yet, kept per connection. A few are
/// enough: a connection runs one statement at a time (a load keeps its statement open
/// while its rows are read), or a few pipelined ones.
const MAX_OPEN: usize = 16;

/// What separates the statement from its parameters in diesel's rendering of a query.
const BINDS: &str = " -- binds: ";

/// A diesel [`Instrumentation`](::diesel::connection::Instrumentation) recording each
/// statement as a query span for the database system `system` (`sqlite`, `postgresql`,
/// `mysql`). The same as [`Instrumentation::new`].
pub fn instrumentation(system: &'static str) -> Instrumentation {
    Instrumentation::new(system)
}

/// Records the statements a diesel connection runs as query spans; see the
/// [module docs](self).
pub struct Instrumentation {
    system: &'static str,
    /// Started statements, the latest last.
    open: Vec<Open>,
    /// Where a finishing statement is rendered to find its start, kept to reuse.
    rendered: String,
}

/// A statement diesel started inside a sampled request.
struct Open {
    /// The request it runs in: a connection outlives requests, and a statement left
    /// open by one must not linger into the next.
    scope: Arc<RequestScope>,
    /// diesel's rendering of the statement (SQL and parameters), to match its finish.
    rendered: String,
    span: DbSpan,
}

impl Instrumentation {
    /// Records statements on the database system `system` (`sqlite`, `postgresql`,
    /// `mysql`), which names the SQL dialect used to normalise them.
    pub fn new(system: &'static str) -> Self {
        Instrumentation {
            system,
            open: Vec::new(),
            rendered: String::new(),
        }
    }

    /// The database system the spans name.
    pub fn system(&self) -> &'static str {
        self.system
    }

    fn start(&mut self, query: &dyn ::diesel::connection::DebugQuery) {
        let current = crate::performance::tracing::current()
            .map(|(scope, _)| scope)
            .filter(|scope| {
                // A sampled request's query counts in `db_span`, below.
                if !scope.is_sampled() {
                    scope.count_query();
                }
                scope.is_sampled()
            });
        self.close_other_requests(current.as_ref());
        let Some(scope) = current else { return };
        // Not `to_string`, which panics when diesel fails to render a query.
        let mut rendered = String::new();
        if fmt::write(&mut rendered, format_args!("{query}")).is_err() {
            return;
        }
        let (statement, params) = split(&rendered);
        let mut span = db_span(self.system, statement);
        if let Some(params) = params {
            span.params(&Verbatim(params));
        }
        if self.open.len() >= MAX_OPEN {
            abandon(self.open.remove(0));
        }
        self.open.push(Open {
            scope,
            rendered,
            span,
        });
    }

    fn finish(&mut self, query: &dyn ::diesel::connection::DebugQuery, failed: bool) {
        // Outside requests nothing is open: a finish costs this check.
        if self.open.is_empty() {
            return;
        }
        self.rendered.clear();
        if fmt::write(&mut self.rendered, format_args!("{query}")).is_err() {
            return;
        }
        // A finish with no matching start (the statement started outside the request)
        // is not ours to record. Identical statements in flight together (pipelined)
        // finish in the order they started.
        let Some(at) = self.open.iter().position(|o| o.rendered == self.rendered) else {
            return;
        };
        let mut open = self.open.remove(at);
        if failed {
            open.span.failed();
        }
        // The span ends here.
    }

    /// Ends the statements left open by another request than `current` (or by any, when
    /// outside a request), so a pooled connection holds no finished request.
    fn close_other_requests(&mut self, current: Option<&Arc<RequestScope>>) {
        if self.open.is_empty() {
            return;
        }
        let mut kept = Vec::with_capacity(self.open.len());
        for open in self.open.drain(..) {
            if current.is_some_and(|scope| Arc::ptr_eq(scope, &open.scope)) {
                kept.push(open);
            } else {
                abandon(open);
            }
        }
        self.open = kept;
    }
}

impl ::diesel::connection::Instrumentation for Instrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { query, .. } => self.start(query),
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                self.finish(query, error.is_some());
            }
            _ => {}
        }
    }
}

impl fmt::Debug for Instrumentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumentation")
            .field("system", &self.system)
            .field("open", &self.open.len())
            .finish_non_exhaustive()
    }
}

/// Ends a statement that will never report its finish, as failed (recorded only if its
/// request still runs).
fn abandon(mut open: Open) {
    open.span.failed();
}

/// Splits diesel's rendering of a query (`SQL -- binds: [..]`) into the statement and
/// its parameters. Statements given as text (`batch_execute`) have no parameters. The
/// first separator wins: the SQL is the program's, the parameters may be anyone's.
fn split(rendered: &str) -> (&str, Option<&str>) {
    match rendered.split_once(BINDS) {
        Some((statement, params)) => (statement, Some(params)),
        None => (rendered, None),
    }
}

/// Text that is already rendered, kept as it is by [`DbSpan::params`].
struct Verbatim<'a>(&'a str);

impl fmt::Debug for Verbatim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_statement_and_binds() {
        assert_eq!(
            split("SELECT * FROM posts WHERE user_id = ? -- binds: [3]"),
            ("SELECT * FROM posts WHERE user_id = ?", Some("[3]"))
        );
        assert_eq!(split("BEGIN"), ("BEGIN", None));
        assert_eq!(
            split("SELECT ? -- binds: [\"x -- binds: y\"]"),
            ("SELECT ?", Some("[\"x -- binds: y\"]"))
        );
    }
}
