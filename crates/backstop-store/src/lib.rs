//! Backstop's embedded SQLite store: the default home for events.
//!
//! [`SqliteStore`] is a pipeline [`Sink`](backstop_core::Sink): the worker hands it
//! batches, and it writes each batch in one SQLite transaction (WAL mode, so readers
//! never wait). Events are grouped by fingerprint into issues, with counts, users
//! affected, releases, a status and a regression flag; transactions are kept with their
//! spans. The performance problems the detectors found in a transaction (N+1,
//! duplicate, slow and too many queries) are issues too, grouped by their fingerprint,
//! with each occurrence linked to its transaction. Retention prunes by age and row count
//! in small transactions.
//!
//! Route metrics from every request ([`RouteMinute`](backstop_core::RouteMinute)s)
//! are kept as one row per route and minute, rolled up to hours after a day.
//!
//! [`StoreReader`] answers the dashboard's and alerts' questions with typed results:
//! issues, events, performance issues and their occurrences, routes with percentiles
//! (from every request), the slowest requests, releases.
//!
//! ```
//! use std::time::Duration;
//! use backstop_core::{Client, Level, Options};
//! use backstop_store::{IssueQuery, SqliteStore};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteStore::open(dir.path().join("backstop.db")).unwrap();
//! let reader = store.reader();
//!
//! let backstop = backstop_core::init(Options::new().sink(store).console(false)).unwrap();
//! backstop.capture_event({
//!     let mut event = backstop_core::Event::new(Level::Error);
//!     event.message = Some("payment failed".into());
//!     event
//! });
//! assert!(backstop.flush(Duration::from_secs(5)));
//!
//! let issues = reader.issues(&IssueQuery::new()).unwrap();
//! assert_eq!(issues[0].title, "payment failed");
//! assert_eq!(issues[0].count, 1);
//! ```
//!
//! The schema, how to query it with the `sqlite3` shell, retention and fault handling
//! are described in `docs/store.md`.

pub mod alerts;
mod budget;
mod error;
mod metrics;
pub mod outbox;
pub mod reader;
mod schema;
mod stats;
mod store;

pub use alerts::{
    AlertHistory, AlertRecord, AlertStatus, AlertTest, BatchObserver, IssueOutcome, NewAlert,
};
pub use budget::KeepBudget;
pub use error::StoreError;
pub use metrics::MetricsRetention;
pub use outbox::{Checkpoint, Evicted, NewItem, Outbox, OutboxItem, OutboxLen, OutboxLimits};
pub use reader::{
    Buckets, CacheStats, CallStats, Cursor, EventLinks, EventSummary, Filter, InvalidCursor,
    InvalidStatus, Issue, IssueCategory, IssueDetail, IssueId, IssueKind, IssueQuery, IssueSort,
    IssueStatus, PerfIssue, PerfIssueDetail, PerfIssueQuery, PerfOccurrence, Query, ReleaseStats,
    ReleaseSummary, RequestDetail, RequestQuery, RequestSummary, RouteQuery, RouteSort, RouteStats,
    SeriesPoint, SpanTotal, StatementRun, StatementStats, StoreHealth, StoreReader, StoredEvent,
    TagDistribution,
};
pub use stats::{StoreCounters, StoreStats};
pub use store::{Retention, SqliteStore, StoreBuilder};

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = schema::VERSION;
