//! The read API: every query the dashboard, the CLI and alerts need, with typed
//! results.
//!
//! It is split the way a query runs: [`query`](self) builds the SQL from one shared
//! [`Filter`] and a per-list selection, `rows` turns rows into the typed models, and
//! the models are what callers get back.
//!
//! ```
//! use backstop_store::{IssueQuery, IssueSort, IssueStatus, SqliteStore};
//!
//! let store = SqliteStore::open(":memory:").unwrap();
//! let reader = store.reader();
//! let open = reader
//!     .issues(&IssueQuery::new().status(IssueStatus::Unresolved).sort(IssueSort::Users))
//!     .unwrap();
//! assert!(open.is_empty());
//! ```

mod aggregates;
mod metrics;
mod models;
mod query;
mod rows;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use backstop_core::protocol::EventId;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

pub use aggregates::{
    Buckets, CacheStats, CallStats, EventLinks, ReleaseStats, Series, SeriesPoint, SpanTotal,
    StatementRun, StatementStats, StoreHealth, TagDistribution,
};
pub use models::{
    EventSummary, InvalidStatus, Issue, IssueCategory, IssueDetail, IssueId, IssueKind, IssueSort,
    IssueStatus, PerfIssue, PerfIssueDetail, PerfOccurrence, ReleaseSummary, RequestDetail,
    RequestSummary, RouteSort, RouteStats, StoredEvent,
};
pub use query::{
    Cursor, Filter, InvalidCursor, IssueQuery, IssueSelect, PerfIssueQuery, PerfIssueSelect, Query,
    RequestQuery, RequestSelect, RouteQuery, RouteSelect,
};

use crate::error::StoreError;
use crate::schema::{self, Mode};
use crate::stats::{StoreCounters, StoreStats};
use crate::store::Retention;
use crate::store::millis;
use query::Sql;
use rows::{
    EVENT_COLUMNS, ISSUE_COLUMNS, OCCURRENCE_COLUMNS, OCCURRENCE_TABLES, REQUEST_COLUMNS,
    conversion, event_row, issue_row, occurrence_row, perf_issue_row, request_row, time,
};

/// Reads the store. Cheap to clone. Each call opens its own read-only connection, so
/// readers never block the writer (and see a file that was replaced).
#[derive(Clone)]
pub struct StoreReader {
    inner: Arc<ReaderInner>,
    /// Lent by the alerts watching the store, for the dashboard's test button.
    alert_test: Option<Arc<dyn AlertTest>>,
}

struct ReaderInner {
    path: PathBuf,
    busy_timeout: Duration,
    /// For `:memory:`: the writer's own connection, shared.
    memory: Option<Arc<Mutex<Connection>>>,
    /// The writer's counters and retention, for a reader from the writer itself.
    writer: Option<(StoreCounters, Retention)>,
}

use crate::alerts::{AlertRecord, AlertTest};

impl fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreReader")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl StoreReader {
    pub(crate) fn new(
        path: PathBuf,
        busy_timeout: Duration,
        memory: Option<Arc<Mutex<Connection>>>,
        writer: Option<(StoreCounters, Retention)>,
    ) -> Self {
        StoreReader {
            inner: Arc::new(ReaderInner {
                path,
                busy_timeout,
                memory,
                writer,
            }),
            alert_test: None,
        }
    }

    /// This reader, offering `test` as the way to send a test notification (the
    /// dashboard's Alerts page shows its button only then).
    pub fn with_alert_test(mut self, test: Option<Arc<dyn AlertTest>>) -> StoreReader {
        self.alert_test = test;
        self
    }

    /// The way to send a test notification, when alerts are configured.
    pub fn alert_test(&self) -> Option<&dyn AlertTest> {
        self.alert_test.as_deref()
    }

    /// Up to `limit` alerts from the history, newest first, older than the alert
    /// `before` if given (the last id of the previous page).
    pub fn alert_history(
        &self,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        self.with_conn(|c| crate::alerts::read_history(c, limit, before))
    }

    /// A reader for a database another process (or an earlier run) wrote. Checks that
    /// the file is a Backstop database. For `:memory:`, use
    /// [`SqliteStore::reader`](crate::SqliteStore::reader).
    pub fn open(path: impl AsRef<Path>) -> Result<StoreReader, StoreError> {
        let path = path.as_ref();
        if schema::is_memory(path) {
            return Err(StoreError::NotBackstop {
                path: path.to_owned(),
                reason: "an in-memory store can only be read through SqliteStore::reader".into(),
            });
        }
        let reader = StoreReader::new(path.to_owned(), Duration::from_secs(2), None, None);
        reader.with_conn(|_| Ok(()))?;
        Ok(reader)
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The writer's counters, when this reader came from
    /// [`SqliteStore::reader`](crate::SqliteStore::reader).
    pub fn write_stats(&self) -> Option<StoreStats> {
        self.inner.writer.as_ref().map(|(c, _)| c.snapshot())
    }

    /// The writer's retention policy, when this reader came from
    /// [`SqliteStore::reader`](crate::SqliteStore::reader).
    pub fn retention(&self) -> Option<Retention> {
        self.inner.writer.as_ref().map(|(_, r)| *r)
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let path = &self.inner.path;
        let result = match &self.inner.memory {
            Some(shared) => f(&shared.lock().unwrap_or_else(PoisonError::into_inner)),
            None => {
                let conn = schema::open(path, Mode::Read, self.inner.busy_timeout, None)?;
                f(&conn)
            }
        };
        result.map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })
    }

    /// Issues, errors and performance problems alike, filtered and sorted. Page with
    /// [`Query::after`] and [`Cursor::after_issue`].
    pub fn issues(&self, query: &IssueQuery) -> Result<Vec<Issue>, StoreError> {
        let mut sql = Sql::new(&format!("SELECT {ISSUE_COLUMNS} FROM issues"));
        query::issue_conditions(&mut sql, query);
        query::issue_keyset(&mut sql, query.select.sort, query.filter.after);
        sql.page(&query.filter);
        self.with_conn(|c| {
            c.prepare_cached(sql.text())?
                .query_map(sql.values(), issue_row)?
                .collect()
        })
    }

    /// How many issues match (ignoring sort and paging), for paging.
    pub fn issue_count(&self, query: &IssueQuery) -> Result<u64, StoreError> {
        let mut sql = Sql::new("SELECT count(*) FROM issues");
        query::issue_conditions(&mut sql, query);
        self.count(&sql)
    }

    /// One issue with its latest `events` events (most recently received first). A
    /// performance issue has no events: its occurrences come from
    /// [`performance_issue`](Self::performance_issue).
    pub fn issue(&self, id: IssueId, events: usize) -> Result<Option<IssueDetail>, StoreError> {
        self.with_conn(|c| {
            let Some(issue) = c
                .prepare_cached(&format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE id = ?1"))?
                .query_row([id.0], issue_row)
                .optional()?
            else {
                return Ok(None);
            };
            let latest_events = c
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE issue_id = ?1 ORDER BY id DESC LIMIT ?2"
                ))?
                .query_map(params![id.0, events as i64], event_row)?
                .collect::<Result<_, _>>()?;
            let releases = c
                .prepare_cached("SELECT release FROM issue_releases WHERE issue_id = ?1 ORDER BY release")?
                .query_map([id.0], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let environments = c
                .prepare_cached(
                    "SELECT environment FROM issue_environments WHERE issue_id = ?1 ORDER BY environment",
                )?
                .query_map([id.0], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(Some(IssueDetail {
                issue,
                latest_events,
                releases,
                environments,
            }))
        })
    }

    /// Performance issues, filtered and sorted.
    pub fn performance_issues(&self, query: &PerfIssueQuery) -> Result<Vec<PerfIssue>, StoreError> {
        let mut sql = Sql::new(&format!("SELECT {ISSUE_COLUMNS}, query_group FROM issues"));
        query::perf_conditions(&mut sql, query);
        query::issue_keyset(&mut sql, query.select.sort, query.filter.after);
        sql.page(&query.filter);
        self.with_conn(|c| {
            c.prepare_cached(sql.text())?
                .query_map(sql.values(), perf_issue_row)?
                .collect()
        })
    }

    /// How many performance issues match (ignoring sort and paging), for paging.
    pub fn performance_issue_count(&self, query: &PerfIssueQuery) -> Result<u64, StoreError> {
        let mut sql = Sql::new("SELECT count(*) FROM issues");
        query::perf_conditions(&mut sql, query);
        self.count(&sql)
    }

    /// One performance issue with its latest `occurrences` (most recently received
    /// first), each linking to its transaction. `None` for an unknown id or an error
    /// issue.
    pub fn performance_issue(
        &self,
        id: IssueId,
        occurrences: usize,
    ) -> Result<Option<PerfIssueDetail>, StoreError> {
        self.with_conn(|c| {
            let Some(issue) = c
                .prepare_cached(&format!(
                    "SELECT {ISSUE_COLUMNS}, query_group FROM issues
                     WHERE id = ?1 AND kind <> 'error'"
                ))?
                .query_row([id.0], perf_issue_row)
                .optional()?
            else {
                return Ok(None);
            };
            let occurrences = c
                .prepare_cached(&format!(
                    "SELECT {OCCURRENCE_COLUMNS} FROM {OCCURRENCE_TABLES}
                     WHERE p.issue_id = ?1 ORDER BY p.transaction_id DESC, p.seq LIMIT ?2"
                ))?
                .query_map(params![id.0, occurrences as i64], occurrence_row)?
                .collect::<Result<_, _>>()?;
            Ok(Some(PerfIssueDetail { issue, occurrences }))
        })
    }

    /// The performance problems found in one transaction, in the detectors' order.
    /// Empty for a transaction without problems, or one not (or no longer) kept.
    pub fn transaction_problems(&self, id: EventId) -> Result<Vec<PerfOccurrence>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(&format!(
                "SELECT {OCCURRENCE_COLUMNS} FROM {OCCURRENCE_TABLES}
                 WHERE t.event_id = ?1 ORDER BY p.seq"
            ))?
            .query_map([id.to_string()], occurrence_row)?
            .collect()
        })
    }

    /// The issue an event of this fingerprint ([`Event::group_hash`]), or a performance
    /// problem of this fingerprint, belongs to.
    pub fn issue_by_fingerprint(&self, fingerprint: &str) -> Result<Option<Issue>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(&format!(
                "SELECT {ISSUE_COLUMNS} FROM issues WHERE fingerprint = ?1"
            ))?
            .query_row([fingerprint], issue_row)
            .optional()
        })
    }

    /// One event in full.
    pub fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached("SELECT issue_id, json FROM events WHERE event_id = ?1")?
                .query_row([id.to_string()], |r| {
                    let json: String = r.get(1)?;
                    Ok(StoredEvent {
                        issue_id: IssueId(r.get(0)?),
                        event: serde_json::from_str(&json).map_err(conversion)?,
                    })
                })
                .optional()
        })
    }

    /// Sets an issue's status (the dashboard's resolve and ignore buttons). Resolving
    /// clears the regressed flag. Returns whether the issue exists.
    ///
    /// The reader's writes (this, [`delete_issue`](Self::delete_issue) and
    /// [`clear`](Self::clear)) use their own short-lived connection and wait for the
    /// writer's lock like any other connection.
    pub fn set_issue_status(&self, id: IssueId, status: IssueStatus) -> Result<bool, StoreError> {
        let changed = self.write(|c| {
            c.prepare_cached(
                "UPDATE issues SET status = ?2, status_changed = ?3,
                    regressed = CASE WHEN ?2 = 'unresolved' THEN regressed ELSE 0 END
                 WHERE id = ?1",
            )?
            .execute(params![id.0, status.as_str(), millis(SystemTime::now())])
        })?;
        Ok(changed > 0)
    }

    /// Deletes an issue with its events and its performance occurrences (the
    /// transactions stay). Returns whether the issue existed.
    pub fn delete_issue(&self, id: IssueId) -> Result<bool, StoreError> {
        let changed = self.write(|c| {
            let tx = c.unchecked_transaction()?;
            for table in [
                "transaction_problems",
                "events",
                "issue_users",
                "issue_releases",
                "issue_environments",
            ] {
                tx.execute(&format!("DELETE FROM {table} WHERE issue_id = ?1"), [id.0])?;
            }
            let n = tx.execute("DELETE FROM issues WHERE id = ?1", [id.0])?;
            tx.commit()?;
            Ok(n)
        })?;
        Ok(changed > 0)
    }

    /// Deletes everything recorded: issues, events, transactions and releases. The
    /// schema stays.
    pub fn clear(&self) -> Result<(), StoreError> {
        self.write(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute_batch(
                "DELETE FROM transaction_problems; DELETE FROM spans; DELETE FROM transactions;
                 DELETE FROM events; DELETE FROM issue_users; DELETE FROM issue_releases;
                 DELETE FROM issue_environments; DELETE FROM issues; DELETE FROM releases;
                 DELETE FROM route_metrics;",
            )?;
            tx.commit()
        })
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let path = &self.inner.path;
        match &self.inner.memory {
            Some(shared) => f(&shared.lock().unwrap_or_else(PoisonError::into_inner)),
            None => Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|c| {
                c.busy_timeout(self.inner.busy_timeout)?;
                f(&c)
            }),
        }
        .map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })
    }

    /// The slowest requests, slowest first.
    pub fn slowest_requests(
        &self,
        query: &RequestQuery,
    ) -> Result<Vec<RequestSummary>, StoreError> {
        self.requests(query, "ORDER BY duration_us DESC")
    }

    /// The most recent requests, newest first.
    pub fn recent_requests(&self, query: &RequestQuery) -> Result<Vec<RequestSummary>, StoreError> {
        // By start time, so a route's index gives the newest without a sort.
        self.requests(query, "ORDER BY timestamp DESC, id DESC")
    }

    fn requests(
        &self,
        query: &RequestQuery,
        order: &str,
    ) -> Result<Vec<RequestSummary>, StoreError> {
        let mut sql = Sql::new(&format!("SELECT {REQUEST_COLUMNS} FROM transactions"));
        query::transaction_conditions(&mut sql, &query.filter, query.select.route.as_deref());
        sql.then(order);
        sql.page(&query.filter);
        self.with_conn(|c| {
            c.prepare_cached(sql.text())?
                .query_map(sql.values(), request_row)?
                .collect()
        })
    }

    fn count(&self, sql: &Sql) -> Result<u64, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(sql.text())?
                .query_row(sql.values(), |r| r.get::<_, i64>(0))
        })
        .map(|n| n as u64)
    }

    /// One request with its spans.
    pub fn request(&self, id: EventId) -> Result<Option<RequestDetail>, StoreError> {
        let sql = format!("SELECT {REQUEST_COLUMNS}, json FROM transactions WHERE event_id = ?1");
        self.with_conn(|c| {
            c.prepare_cached(&sql)?
                .query_row([id.to_string()], |r| {
                    let json: String = r.get(13)?;
                    Ok(RequestDetail {
                        summary: request_row(r)?,
                        transaction: serde_json::from_str(&json).map_err(conversion)?,
                    })
                })
                .optional()
        })
    }

    /// How many transactions are kept.
    pub fn transaction_count(&self) -> Result<u64, StoreError> {
        self.with_conn(|c| {
            c.query_row("SELECT count(*) FROM transactions", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|n| n as u64)
    }

    /// How many events are kept.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        self.with_conn(|c| c.query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
    }

    /// Releases, most recently seen first, with their new issues.
    pub fn releases(&self) -> Result<Vec<ReleaseSummary>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(
                "SELECT version, first_seen, last_seen,
                    (SELECT count(*) FROM issues i WHERE i.first_release = r.version),
                    (SELECT count(*) FROM issue_releases ir WHERE ir.release = r.version)
                 FROM releases r ORDER BY last_seen DESC, version",
            )?
            .query_map([], |r| {
                Ok(ReleaseSummary {
                    version: r.get(0)?,
                    first_seen: time(r.get(1)?),
                    last_seen: time(r.get(2)?),
                    new_issues: r.get::<_, i64>(3)? as u64,
                    issues: r.get::<_, i64>(4)? as u64,
                })
            })?
            .collect()
        })
    }
}
