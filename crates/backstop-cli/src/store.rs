//! The one place the CLI meets the store: it turns the commands' filters into the
//! reader's queries, and holds the few reads the reader does not offer yet.
//!
//! Those reads (new events and problems after a cursor, for `tail`) are plain read-only
//! SQL over the documented schema (`docs/store.md`), on a connection opened without
//! `SQLITE_OPEN_CREATE`, so no command ever creates or changes a store file except
//! through `StoreReader::set_issue_status`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backstop_core::{Event, ProblemKind};
use backstop_store::{
    EventSummary, Issue, IssueDetail, IssueId, IssueQuery, IssueSort, IssueStatus, PerfOccurrence,
    RouteQuery, RouteSort, RouteStats, StoreError, StoreReader,
};
use rusqlite::{Connection, OpenFlags, Row, params};

use crate::error::CliError;

/// How many events, or occurrences, an issue's page shows.
const RECENT: usize = 10;

/// A store file, checked to be Backstop's.
pub(crate) struct Store {
    reader: StoreReader,
}

/// Which issues `backstop issues` lists.
pub(crate) struct IssueFilter {
    pub(crate) status: Option<IssueStatus>,
    pub(crate) sort: IssueOrder,
    pub(crate) limit: usize,
}

/// How `backstop issues` orders issues (always descending).
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum IssueOrder {
    /// Most recently seen first.
    LastSeen,
    /// Newest first.
    FirstSeen,
    /// Most events first.
    Events,
    /// Most users affected first.
    Users,
}

/// Which routes `backstop routes` summarises.
pub(crate) struct RouteFilter {
    pub(crate) since: Option<SystemTime>,
    pub(crate) sort: RouteOrder,
    pub(crate) limit: usize,
}

/// How `backstop routes` orders routes (always descending).
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum RouteOrder {
    /// Most requests first.
    Requests,
    /// Slowest p95 first.
    P95,
    /// Highest error rate first.
    Errors,
    /// Most queries per request first.
    Queries,
}

/// One issue with what its page shows.
pub(crate) struct IssueView {
    /// The issue, its latest events (none for a performance issue), releases and
    /// environments.
    pub(crate) detail: IssueDetail,
    /// The latest event in full, for an error issue.
    pub(crate) latest_event: Option<Event>,
    /// The latest occurrences, for a performance issue.
    pub(crate) occurrences: Vec<PerfOccurrence>,
    /// The query's group hash, for a performance issue about one query.
    pub(crate) query_group: Option<String>,
}

/// What an issue's status was before a change.
pub(crate) struct StatusChange {
    /// The issue after the change.
    pub(crate) issue: Issue,
    /// Whether the status was already the one asked for.
    pub(crate) unchanged: bool,
}

impl Store {
    /// Opens the store at `path` for reading. A missing path is an error: reading never
    /// creates a file.
    pub(crate) fn open(path: &Path) -> Result<Store, CliError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CliError::Missing(path.to_owned()));
            }
            Ok(meta) if meta.is_dir() => return Err(CliError::Directory(path.to_owned())),
            // Anything else (permissions, ...) is for SQLite to report with the path.
            _ => {}
        }
        Ok(Store {
            reader: StoreReader::open(path)?,
        })
    }

    /// The reader, for what takes one whole (the dashboard).
    pub(crate) fn into_reader(self) -> StoreReader {
        self.reader
    }

    /// The issues matching `filter`, and how many match in all.
    pub(crate) fn issues(&self, filter: &IssueFilter) -> Result<(Vec<Issue>, u64), CliError> {
        let sort = match filter.sort {
            IssueOrder::LastSeen => IssueSort::LastSeen,
            IssueOrder::FirstSeen => IssueSort::FirstSeen,
            IssueOrder::Events => IssueSort::Count,
            IssueOrder::Users => IssueSort::Users,
        };
        let mut query = IssueQuery::new().sort(sort).limit(filter.limit);
        if let Some(status) = filter.status {
            query = query.status(status);
        }
        Ok((
            self.reader.issues(&query)?,
            self.reader.issue_count(&query)?,
        ))
    }

    /// One issue with its recent events or occurrences.
    pub(crate) fn issue(&self, id: i64) -> Result<IssueView, CliError> {
        let detail = self
            .reader
            .issue(IssueId(id), RECENT)?
            .ok_or(CliError::UnknownIssue(id))?;
        let latest_event = match detail.latest_events.first() {
            Some(summary) => self.reader.event(summary.event_id)?.map(|e| e.event),
            None => None,
        };
        let (occurrences, query_group) = if detail.issue.kind.problem().is_some() {
            match self.reader.performance_issue(IssueId(id), RECENT)? {
                Some(perf) => (perf.occurrences, perf.issue.query_group),
                None => (Vec::new(), None),
            }
        } else {
            (Vec::new(), None)
        };
        Ok(IssueView {
            detail,
            latest_event,
            occurrences,
            query_group,
        })
    }

    /// Sets an issue's status.
    pub(crate) fn set_status(
        &self,
        id: i64,
        status: IssueStatus,
    ) -> Result<StatusChange, CliError> {
        let before = self
            .reader
            .issue(IssueId(id), 0)?
            .ok_or(CliError::UnknownIssue(id))?
            .issue;
        if before.status == status {
            return Ok(StatusChange {
                issue: before,
                unchanged: true,
            });
        }
        if !self.reader.set_issue_status(IssueId(id), status)? {
            return Err(CliError::UnknownIssue(id));
        }
        let issue = self
            .reader
            .issue(IssueId(id), 0)?
            .ok_or(CliError::UnknownIssue(id))?
            .issue;
        Ok(StatusChange {
            issue,
            unchanged: false,
        })
    }

    /// Requests per route. Today from the stored (sampled) transactions.
    pub(crate) fn routes(&self, filter: &RouteFilter) -> Result<Vec<RouteStats>, CliError> {
        let sort = match filter.sort {
            RouteOrder::Requests => RouteSort::Count,
            RouteOrder::P95 => RouteSort::P95,
            RouteOrder::Errors => RouteSort::ErrorRate,
            RouteOrder::Queries => RouteSort::Queries,
        };
        let mut query = RouteQuery::new().sort(sort).limit(filter.limit);
        if let Some(since) = filter.since {
            query = query.since(since);
        }
        Ok(self.reader.routes(&query)?)
    }

    /// A cursor at the end of what is stored now: [`Tail::poll`] returns what comes
    /// after.
    pub(crate) fn tail(&self) -> Result<Tail, CliError> {
        let path = self.reader.path().to_owned();
        let mut tail = Tail {
            file: Anchor::open(&path),
            path,
            after_event: 0,
            after_problem: (0, 0),
        };
        if let Some(conn) = tail.connect()? {
            tail.after_event = max_event(&conn).map_err(|e| tail.sqlite(e))?;
            tail.after_problem = last_problem(&conn).map_err(|e| tail.sqlite(e))?;
        }
        Ok(tail)
    }
}

/// Something `tail` shows: an event, or a performance problem found in a transaction.
pub(crate) enum Stored {
    /// An error or message event.
    Event(EventSummary),
    /// One problem in one transaction.
    Problem(PerfOccurrence),
}

impl Stored {
    /// When it happened (the event's time, the transaction's start).
    pub(crate) fn timestamp(&self) -> SystemTime {
        match self {
            Stored::Event(e) => e.timestamp,
            Stored::Problem(p) => p.timestamp,
        }
    }
}

/// Follows the events and problems rows as the writer adds them.
pub(crate) struct Tail {
    path: PathBuf,
    /// The last `events.id` seen.
    after_event: i64,
    /// The last `(transaction_id, seq)` of `transaction_problems` seen.
    after_problem: (i64, i64),
    /// The file the cursors are about, held open.
    file: Option<Anchor>,
}

impl Tail {
    /// At most this many rows of each kind per poll.
    pub(crate) const BATCH: usize = 500;

    /// Events and problems stored since the last poll, oldest first.
    ///
    /// A file that is missing or not yet set up (the store recreates a removed file on
    /// its next write) reads as nothing new. A file that was replaced, and a table whose
    /// newest rows are older than the cursor (it was emptied), are read from the start.
    pub(crate) fn poll(&mut self) -> Result<Vec<Stored>, CliError> {
        match file_identity(&self.path) {
            // Removed: the store creates it again on its next write.
            None => return Ok(Vec::new()),
            Some(now) if self.file.as_ref().map(|a| a.identity) != Some(now) => {
                // Another file at the path: its rows are all new, whatever their ids.
                if self.file.is_some() {
                    self.after_event = 0;
                    self.after_problem = (0, 0);
                }
                self.file = Anchor::open(&self.path);
            }
            Some(_) => {}
        }
        let Some(mut conn) = self.connect()? else {
            return Ok(Vec::new());
        };
        let path = self.path.clone();
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        // One read transaction: the cursors and the rows agree.
        let tx = conn.transaction().map_err(sqlite)?;
        if max_event(&tx).map_err(sqlite)? < self.after_event {
            self.after_event = 0;
        }
        if last_problem(&tx).map_err(sqlite)? < self.after_problem {
            self.after_problem = (0, 0);
        }
        let mut out = Vec::new();
        let mut events = tx
            .prepare(
                "SELECT id, event_id, issue_id, timestamp, level, title, culprit,
                    transaction_name, release, environment, user_key
                 FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(sqlite)?;
        let rows = events
            .query_map(params![self.after_event, Self::BATCH as i64], |r| {
                Ok((r.get::<_, i64>(0)?, event_row(r)?))
            })
            .map_err(sqlite)?;
        for row in rows {
            let (id, event) = row.map_err(sqlite)?;
            self.after_event = id;
            out.push(Stored::Event(event));
        }
        let mut problems = tx
            .prepare(
                "SELECT p.transaction_id, p.seq, p.issue_id, i.kind, t.event_id, t.trace_id,
                    t.name, t.timestamp, p.description, p.count, p.duration_us,
                    p.parent_span_id, p.span_ids, t.release, t.environment
                 FROM transaction_problems p
                 JOIN transactions t ON t.id = p.transaction_id
                 JOIN issues i ON i.id = p.issue_id
                 WHERE (p.transaction_id, p.seq) > (?1, ?2)
                 ORDER BY p.transaction_id, p.seq LIMIT ?3",
            )
            .map_err(sqlite)?;
        let rows = problems
            .query_map(
                params![
                    self.after_problem.0,
                    self.after_problem.1,
                    Self::BATCH as i64
                ],
                |r| Ok(((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?), problem_row(r)?)),
            )
            .map_err(sqlite)?;
        for row in rows {
            let (at, problem) = row.map_err(sqlite)?;
            self.after_problem = at;
            out.push(Stored::Problem(problem));
        }
        out.sort_by_key(Stored::timestamp);
        Ok(out)
    }

    /// A fresh read-only connection each time, so a replaced file is followed. `None`
    /// while there is no file or no schema yet.
    fn connect(&self) -> Result<Option<Connection>, CliError> {
        if !self.path.exists() {
            return Ok(None);
        }
        let opened = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| {
            c.busy_timeout(Duration::from_secs(2))?;
            let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            Ok((c, version))
        });
        // The file was checked when `tail` started. A file that cannot be opened or
        // read now is one the writer is creating again (its header or its WAL not yet
        // written): nothing new until it can.
        let Ok((conn, version)) = opened else {
            return Ok(None);
        };
        // A file the writer is still creating migrates one version at a time: read it
        // once it has every table this build reads, not while its tables are half made.
        Ok((version >= backstop_store::SCHEMA_VERSION).then_some(conn))
    }

    fn sqlite(&self, source: rusqlite::Error) -> CliError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
        .into()
    }
}

/// What tells one file from another at the same path.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

/// The followed file, held open so that its inode cannot be reused by a new file at
/// the same path while the cursors are about it (a removed file's inode number is
/// often the next one given out). It is a plain handle, closed only between polls,
/// when no SQLite connection of this process has the file open, so SQLite's POSIX
/// locks are never dropped by its closing.
struct Anchor {
    _file: File,
    identity: FileIdentity,
}

impl Anchor {
    fn open(path: &Path) -> Option<Anchor> {
        let file = File::open(path).ok()?;
        let identity = identity(&file.metadata().ok()?);
        Some(Anchor {
            _file: file,
            identity,
        })
    }
}

fn file_identity(path: &Path) -> Option<FileIdentity> {
    std::fs::metadata(path).ok().map(|m| identity(&m))
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> FileIdentity {
    use std::os::unix::fs::MetadataExt;
    FileIdentity {
        device: meta.dev(),
        inode: meta.ino(),
    }
}

/// Elsewhere a replaced file is noticed only when its tables are behind the cursors.
#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> FileIdentity {
    FileIdentity {
        device: 0,
        inode: 0,
    }
}

fn max_event(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))
}

fn last_problem(c: &Connection) -> rusqlite::Result<(i64, i64)> {
    c.query_row(
        "SELECT coalesce(max(transaction_id), 0), coalesce(max(seq), 0)
         FROM transaction_problems
         WHERE transaction_id = (SELECT max(transaction_id) FROM transaction_problems)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Columns 1..=10 of the tail's events query.
fn event_row(r: &Row<'_>) -> rusqlite::Result<EventSummary> {
    Ok(EventSummary {
        event_id: parse(&r.get::<_, String>(1)?)?,
        issue_id: IssueId(r.get(2)?),
        timestamp: time(r.get(3)?),
        level: parse(&r.get::<_, String>(4)?)?,
        title: r.get(5)?,
        culprit: r.get(6)?,
        transaction: r.get(7)?,
        release: r.get(8)?,
        environment: r.get(9)?,
        user: r.get(10)?,
    })
}

/// Columns 2..=14 of the tail's problems query.
fn problem_row(r: &Row<'_>) -> rusqlite::Result<PerfOccurrence> {
    let trace_id: Option<String> = r.get(5)?;
    let parent: Option<String> = r.get(11)?;
    let span_ids: String = r.get(12)?;
    Ok(PerfOccurrence {
        issue_id: IssueId(r.get(2)?),
        kind: problem_kind(&r.get::<_, String>(3)?)?,
        transaction_event_id: parse(&r.get::<_, String>(4)?)?,
        trace_id: trace_id.and_then(|t| t.parse().ok()),
        route: r.get(6)?,
        timestamp: time(r.get(7)?),
        description: r.get(8)?,
        count: r.get(9)?,
        duration: Duration::from_micros(r.get::<_, i64>(10)?.max(0) as u64),
        parent_span_id: parent.map(|p| parse(&p)).transpose()?,
        span_ids: serde_json::from_str(&span_ids).map_err(conversion)?,
        release: r.get(13)?,
        environment: r.get(14)?,
    })
}

fn time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

fn problem_kind(s: &str) -> rusqlite::Result<ProblemKind> {
    // Core's serde names are the stored names (`n_plus_one`).
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(conversion)
}

fn parse<T: std::str::FromStr>(s: &str) -> rusqlite::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.parse().map_err(conversion)
}

fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}
