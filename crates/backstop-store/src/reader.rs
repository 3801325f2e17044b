//! The read API: every query the dashboard and alerts need, with typed results.
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

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backstop_core::protocol::{Event, EventId, Level, ProblemKind, SpanId, TraceId, Transaction};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use crate::error::StoreError;
use crate::schema::{self, Mode};
use crate::stats::{StoreCounters, StoreStats};
use crate::store::millis;

/// Reads the store. Cheap to clone. Each call opens its own read-only connection, so
/// readers never block the writer (and see a file that was replaced).
#[derive(Clone)]
pub struct StoreReader {
    inner: Arc<ReaderInner>,
}

struct ReaderInner {
    path: PathBuf,
    busy_timeout: Duration,
    /// For `:memory:`: the writer's own connection, shared.
    memory: Option<Arc<Mutex<Connection>>>,
    counters: Option<StoreCounters>,
}

impl fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreReader")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------
// Result and query types

/// An issue's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssueId(pub i64);

impl fmt::Display for IssueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where an issue stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IssueStatus {
    /// Needs attention (new, or regressed).
    #[default]
    Unresolved,
    /// Fixed; a new event reopens it as regressed.
    Resolved,
    /// Muted; new events are counted but do not reopen it.
    Ignored,
}

impl IssueStatus {
    /// The name stored in the `status` column.
    pub fn as_str(&self) -> &'static str {
        match self {
            IssueStatus::Unresolved => "unresolved",
            IssueStatus::Resolved => "resolved",
            IssueStatus::Ignored => "ignored",
        }
    }
}

impl fmt::Display for IssueStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is none of unresolved, resolved, ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidStatus(String);

impl fmt::Display for InvalidStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown issue status {:?} (expected unresolved, resolved or ignored)",
            self.0
        )
    }
}

impl std::error::Error for InvalidStatus {}

impl FromStr for IssueStatus {
    type Err = InvalidStatus;
    fn from_str(s: &str) -> Result<Self, InvalidStatus> {
        match s {
            "unresolved" => Ok(IssueStatus::Unresolved),
            "resolved" => Ok(IssueStatus::Resolved),
            "ignored" => Ok(IssueStatus::Ignored),
            _ => Err(InvalidStatus(s.to_owned())),
        }
    }
}

/// What an issue groups: error events, or one kind of performance problem found in
/// transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IssueKind {
    /// Error and message events.
    #[default]
    Error,
    /// Performance problems of one kind (N+1, duplicate, slow or too many queries).
    Performance(ProblemKind),
}

impl IssueKind {
    /// The name stored in the `kind` column: `error`, or the problem's name
    /// (`n_plus_one`).
    pub fn as_str(&self) -> &'static str {
        match self {
            IssueKind::Error => "error",
            IssueKind::Performance(kind) => kind.as_str(),
        }
    }

    /// The problem kind, for a performance issue.
    pub fn problem(&self) -> Option<ProblemKind> {
        match self {
            IssueKind::Error => None,
            IssueKind::Performance(kind) => Some(*kind),
        }
    }

    /// Errors or performance.
    pub fn category(&self) -> IssueCategory {
        match self {
            IssueKind::Error => IssueCategory::Error,
            IssueKind::Performance(_) => IssueCategory::Performance,
        }
    }
}

impl fmt::Display for IssueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two families of issues, for lists and alert rules that want only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssueCategory {
    /// Issues grouping error and message events.
    Error,
    /// Issues grouping performance problems.
    Performance,
}

/// How an issue list is ordered (always descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IssueSort {
    /// Most recently seen first.
    #[default]
    LastSeen,
    /// Newest issues first.
    FirstSeen,
    /// Most events first.
    Count,
    /// Most users affected first.
    Users,
}

/// Which issues to list. The default lists the 100 most recently seen, of any status
/// and either category (errors and performance problems).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct IssueQuery {
    status: Option<IssueStatus>,
    category: Option<IssueCategory>,
    release: Option<String>,
    first_release: Option<String>,
    environment: Option<String>,
    text: Option<String>,
    sort: IssueSort,
    limit: usize,
    offset: usize,
}

impl Default for IssueQuery {
    fn default() -> Self {
        IssueQuery {
            status: None,
            category: None,
            release: None,
            first_release: None,
            environment: None,
            text: None,
            sort: IssueSort::LastSeen,
            limit: 100,
            offset: 0,
        }
    }
}

impl IssueQuery {
    /// The default query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only issues with this status.
    pub fn status(mut self, status: IssueStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only error issues, or only performance issues.
    pub fn category(mut self, category: IssueCategory) -> Self {
        self.category = Some(category);
        self
    }

    /// Only issues with an event (or a problem) in this release.
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }

    /// Only issues first seen in this release (the release's new issues).
    pub fn first_release(mut self, release: impl Into<String>) -> Self {
        self.first_release = Some(release.into());
        self
    }

    /// Only issues with an event in this environment.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Only issues whose title or culprit contains `text` (ASCII case-insensitive). For a
    /// performance issue these are the query and the route.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        self.text = (!text.is_empty()).then_some(text);
        self
    }

    /// The order.
    pub fn sort(mut self, sort: IssueSort) -> Self {
        self.sort = sort;
        self
    }

    /// At most this many issues (default 100).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Skips this many (for paging).
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }
}

/// One issue: the events, or the performance problems, that share a fingerprint.
///
/// A performance issue has the same status, regression flag, counts and releases as an
/// error issue; its title is the query at fault and its culprit the route. See
/// [`PerfIssue`] for its typed view.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// The id.
    pub id: IssueId,
    /// The group hash ([`Event::group_hash`], or
    /// [`PerformanceProblem::fingerprint`](backstop_core::protocol::PerformanceProblem::fingerprint)).
    pub fingerprint: String,
    /// Errors, or which kind of performance problem.
    pub kind: IssueKind,
    /// `Type: message` of the latest event; for a performance issue, the latest
    /// occurrence's query (`SELECT * FROM posts WHERE user_id = ?`).
    pub title: String,
    /// The top in-app frame, or the transaction; for a performance issue, the route.
    pub culprit: Option<String>,
    /// The latest event's level (`warning` for performance issues).
    pub level: Level,
    /// Unresolved, resolved or ignored.
    pub status: IssueStatus,
    /// Whether it came back after being resolved.
    pub regressed: bool,
    /// Events received (for a performance issue: occurrences, one per transaction it
    /// was found in).
    pub count: u64,
    /// Distinct users affected (user ids, else IP addresses).
    pub users: u64,
    /// The earliest event.
    pub first_seen: SystemTime,
    /// The latest event.
    pub last_seen: SystemTime,
    /// The release of the earliest event.
    pub first_release: Option<String>,
    /// The release of the latest event.
    pub last_release: Option<String>,
    /// The environment of the earliest event.
    pub first_environment: Option<String>,
    /// The environment of the latest event.
    pub last_environment: Option<String>,
}

/// One issue with its latest events.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueDetail {
    /// The issue.
    pub issue: Issue,
    /// The latest events (most recently received first).
    pub latest_events: Vec<EventSummary>,
    /// Every release it was seen in.
    pub releases: Vec<String>,
    /// Every environment it was seen in.
    pub environments: Vec<String>,
}

/// An event as lists show it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSummary {
    /// The event's id.
    pub event_id: EventId,
    /// Its issue.
    pub issue_id: IssueId,
    /// When it happened.
    pub timestamp: SystemTime,
    /// Its level.
    pub level: Level,
    /// Its title.
    pub title: String,
    /// Its culprit.
    pub culprit: Option<String>,
    /// The route or task it happened in.
    pub transaction: Option<String>,
    /// Its release.
    pub release: Option<String>,
    /// Its environment.
    pub environment: Option<String>,
    /// Who it affected: `id:<user id>` or `ip:<address>`.
    pub user: Option<String>,
}

/// One event in full.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its issue.
    pub issue_id: IssueId,
    /// The event as it was received.
    pub event: Event,
}

/// How the route table is ordered (descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteSort {
    /// Most requests first.
    #[default]
    Count,
    /// Slowest p95 first.
    P95,
    /// Highest error rate first.
    ErrorRate,
    /// Most queries per request first.
    Queries,
}

/// Which transactions to summarise, and how. The default covers everything kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct RouteQuery {
    since: Option<SystemTime>,
    environment: Option<String>,
    release: Option<String>,
    sort: RouteSort,
    limit: usize,
}

impl Default for RouteQuery {
    fn default() -> Self {
        RouteQuery {
            since: None,
            environment: None,
            release: None,
            sort: RouteSort::Count,
            limit: 100,
        }
    }
}

impl RouteQuery {
    /// The default query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only transactions that started at or after `since`.
    pub fn since(mut self, since: SystemTime) -> Self {
        self.since = Some(since);
        self
    }

    /// Only this environment.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Only this release.
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }

    /// The order.
    pub fn sort(mut self, sort: RouteSort) -> Self {
        self.sort = sort;
        self
    }

    /// At most this many routes (default 100).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

/// Transactions of one route (transaction name), summarised. Percentiles use the
/// nearest-rank method: p95 is the smallest duration with at least 95% of requests at
/// or below it.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteStats {
    /// The route (`GET /users/{id}`).
    pub name: String,
    /// Requests.
    pub count: u64,
    /// Failed requests (5xx, or a non-ok status outside HTTP).
    pub errors: u64,
    /// `errors / count`.
    pub error_rate: f64,
    /// Median duration.
    pub p50: Duration,
    /// 95th percentile duration.
    pub p95: Duration,
    /// 99th percentile duration.
    pub p99: Duration,
    /// Mean database queries (spans whose op starts with `db`) per request.
    pub mean_queries: f64,
}

/// Which requests to list. The default lists the 50 slowest of all.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct RequestQuery {
    route: Option<String>,
    since: Option<SystemTime>,
    environment: Option<String>,
    limit: usize,
}

impl Default for RequestQuery {
    fn default() -> Self {
        RequestQuery {
            route: None,
            since: None,
            environment: None,
            limit: 50,
        }
    }
}

impl RequestQuery {
    /// The default query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only this route.
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Only requests that started at or after `since`.
    pub fn since(mut self, since: SystemTime) -> Self {
        self.since = Some(since);
        self
    }

    /// Only this environment.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// At most this many (default 50).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

/// One request (transaction) as lists show it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSummary {
    /// The transaction's id.
    pub event_id: EventId,
    /// Its trace.
    pub trace_id: Option<TraceId>,
    /// The route.
    pub name: String,
    /// `http.server`, `task`...
    pub op: Option<String>,
    /// When it started.
    pub timestamp: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// How it ended (`ok`, `internal_error`...).
    pub status: Option<String>,
    /// The HTTP status code, for HTTP requests.
    pub http_status: Option<u16>,
    /// Whether it counts as failed.
    pub is_error: bool,
    /// Child spans.
    pub span_count: u64,
    /// Database queries (spans whose op starts with `db`).
    pub query_count: u64,
    /// Its release.
    pub release: Option<String>,
    /// Its environment.
    pub environment: Option<String>,
}

/// One request with its spans.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestDetail {
    /// The summary.
    pub summary: RequestSummary,
    /// The transaction as it was received, spans included (in the order they finished).
    pub transaction: Transaction,
}

/// One release.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseSummary {
    /// The version (`shop@1.4.2`).
    pub version: String,
    /// The earliest event or transaction.
    pub first_seen: SystemTime,
    /// The latest event or transaction.
    pub last_seen: SystemTime,
    /// Issues first seen in this release.
    pub new_issues: u64,
    /// Issues with at least one event in this release.
    pub issues: u64,
}

/// Which performance issues to list. The default lists the 100 most recently seen, of
/// any kind, route and status.
///
/// ```
/// use backstop_core::protocol::ProblemKind;
/// use backstop_store::{IssueSort, PerfIssueQuery};
///
/// let query = PerfIssueQuery::new()
///     .kind(ProblemKind::NPlusOne)
///     .route("GET /users")
///     .sort(IssueSort::Count)
///     .limit(20);
/// # let _ = query;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct PerfIssueQuery {
    kind: Option<ProblemKind>,
    route: Option<String>,
    status: Option<IssueStatus>,
    release: Option<String>,
    environment: Option<String>,
    sort: IssueSort,
    limit: usize,
    offset: usize,
}

impl Default for PerfIssueQuery {
    fn default() -> Self {
        PerfIssueQuery {
            kind: None,
            route: None,
            status: None,
            release: None,
            environment: None,
            sort: IssueSort::LastSeen,
            limit: 100,
            offset: 0,
        }
    }
}

impl PerfIssueQuery {
    /// The default query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only problems of this kind.
    pub fn kind(mut self, kind: ProblemKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Only problems on this route (transaction name, `GET /users/{id}`).
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Only issues with this status.
    pub fn status(mut self, status: IssueStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only issues found in this release.
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }

    /// Only issues found in this environment.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// The order: last seen, first seen, count (occurrences) or users.
    pub fn sort(mut self, sort: IssueSort) -> Self {
        self.sort = sort;
        self
    }

    /// At most this many (default 100).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Skips this many (for paging).
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }
}

/// A performance issue: the occurrences of one performance problem (one kind, route
/// and query) across transactions.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfIssue {
    /// The issue row: status, regression flag, count (transactions it was found in),
    /// users, first and last seen, releases. Its title is the query, its culprit the
    /// route.
    pub issue: Issue,
    /// What was found (the same as `issue.kind`, unwrapped).
    pub kind: ProblemKind,
    /// The route (transaction name) it was found in.
    pub route: String,
    /// The query's group hash, when one query is at fault.
    pub query_group: Option<String>,
}

/// A performance issue with its most recent occurrences.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfIssueDetail {
    /// The issue.
    pub issue: PerfIssue,
    /// The latest occurrences (most recently received first). Occurrences go with
    /// their transactions under retention, so there may be fewer than `issue.count`.
    pub occurrences: Vec<PerfOccurrence>,
}

/// One performance problem in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfOccurrence {
    /// Its issue.
    pub issue_id: IssueId,
    /// What was found.
    pub kind: ProblemKind,
    /// The transaction it was found in (open it with [`StoreReader::request`]).
    pub transaction_event_id: EventId,
    /// The transaction's trace.
    pub trace_id: Option<TraceId>,
    /// The route (transaction name).
    pub route: String,
    /// When the transaction started.
    pub timestamp: SystemTime,
    /// The query at fault in this transaction (for too many queries, the most
    /// frequent one).
    pub description: String,
    /// How many queries are involved.
    pub count: u32,
    /// Their total time.
    pub duration: Duration,
    /// The span the offending queries ran under.
    pub parent_span_id: Option<SpanId>,
    /// The offending spans, in the order they started.
    pub span_ids: Vec<SpanId>,
    /// The transaction's release.
    pub release: Option<String>,
    /// The transaction's environment.
    pub environment: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Queries

fn time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(us.max(0) as u64)
}

fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn parse<T: FromStr>(s: &str) -> rusqlite::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.parse().map_err(conversion)
}

const ISSUE_FILTER: &str = "(?1 IS NULL OR status = ?1)
    AND (?2 IS NULL OR EXISTS (SELECT 1 FROM issue_releases r
                               WHERE r.issue_id = issues.id AND r.release = ?2))
    AND (?3 IS NULL OR first_release = ?3)
    AND (?4 IS NULL OR EXISTS (SELECT 1 FROM issue_environments e
                               WHERE e.issue_id = issues.id AND e.environment = ?4))
    AND (?5 IS NULL OR title LIKE ?5 ESCAPE '\\' OR culprit LIKE ?5 ESCAPE '\\')
    AND (?6 IS NULL OR (kind = 'error') = (?6 = 'error'))";

const ISSUE_COLUMNS: &str = "id, fingerprint, title, culprit, level, status, regressed, \
    times_seen, users, first_seen, last_seen, first_release, last_release, \
    first_environment, last_environment, kind";

fn issue_row(r: &Row<'_>) -> rusqlite::Result<Issue> {
    Ok(Issue {
        id: IssueId(r.get(0)?),
        fingerprint: r.get(1)?,
        title: r.get(2)?,
        culprit: r.get(3)?,
        level: parse(&r.get::<_, String>(4)?)?,
        status: parse(&r.get::<_, String>(5)?)?,
        regressed: r.get(6)?,
        count: r.get::<_, i64>(7)? as u64,
        users: r.get::<_, i64>(8)? as u64,
        first_seen: time(r.get(9)?),
        last_seen: time(r.get(10)?),
        first_release: r.get(11)?,
        last_release: r.get(12)?,
        first_environment: r.get(13)?,
        last_environment: r.get(14)?,
        kind: issue_kind(&r.get::<_, String>(15)?)?,
    })
}

fn problem_kind(s: &str) -> rusqlite::Result<ProblemKind> {
    // Core's serde names are the stored names (`n_plus_one`).
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(conversion)
}

fn issue_kind(s: &str) -> rusqlite::Result<IssueKind> {
    match s {
        "error" => Ok(IssueKind::Error),
        _ => problem_kind(s).map(IssueKind::Performance),
    }
}

/// The performance issues; `?1` kind, `?2` route, `?3` status, `?4` release,
/// `?5` environment.
const PERF_FILTER: &str = "kind <> 'error'
    AND (?1 IS NULL OR kind = ?1)
    AND (?2 IS NULL OR culprit = ?2)
    AND (?3 IS NULL OR status = ?3)
    AND (?4 IS NULL OR EXISTS (SELECT 1 FROM issue_releases r
                               WHERE r.issue_id = issues.id AND r.release = ?4))
    AND (?5 IS NULL OR EXISTS (SELECT 1 FROM issue_environments e
                               WHERE e.issue_id = issues.id AND e.environment = ?5))";

fn perf_issue_row(r: &Row<'_>) -> rusqlite::Result<PerfIssue> {
    let issue = issue_row(r)?;
    let Some(kind) = issue.kind.problem() else {
        return Err(conversion(NotPerformance));
    };
    Ok(PerfIssue {
        kind,
        route: issue.culprit.clone().unwrap_or_default(),
        query_group: r.get(16)?,
        issue,
    })
}

/// A performance query met an error issue (only if the filter above is wrong).
#[derive(Debug)]
struct NotPerformance;

impl fmt::Display for NotPerformance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an error issue where a performance issue was expected")
    }
}

impl std::error::Error for NotPerformance {}

const OCCURRENCE_COLUMNS: &str = "p.issue_id, i.kind, t.event_id, t.trace_id, t.name, \
    t.timestamp, p.description, p.count, p.duration_us, p.parent_span_id, p.span_ids, \
    t.release, t.environment";

const OCCURRENCE_TABLES: &str = "transaction_problems p
    JOIN transactions t ON t.id = p.transaction_id
    JOIN issues i ON i.id = p.issue_id";

fn occurrence_row(r: &Row<'_>) -> rusqlite::Result<PerfOccurrence> {
    let trace_id: Option<String> = r.get(3)?;
    let parent: Option<String> = r.get(9)?;
    let span_ids: String = r.get(10)?;
    Ok(PerfOccurrence {
        issue_id: IssueId(r.get(0)?),
        kind: problem_kind(&r.get::<_, String>(1)?)?,
        transaction_event_id: parse(&r.get::<_, String>(2)?)?,
        trace_id: trace_id.and_then(|t| t.parse().ok()),
        route: r.get(4)?,
        timestamp: time(r.get(5)?),
        description: r.get(6)?,
        count: r.get(7)?,
        duration: micros(r.get(8)?),
        parent_span_id: parent.map(|p| parse(&p)).transpose()?,
        span_ids: serde_json::from_str(&span_ids).map_err(conversion)?,
        release: r.get(11)?,
        environment: r.get(12)?,
    })
}

const REQUEST_COLUMNS: &str = "event_id, trace_id, name, op, timestamp, duration_us, status, \
    http_status, is_error, span_count, query_count, release, environment";

fn request_row(r: &Row<'_>) -> rusqlite::Result<RequestSummary> {
    let trace_id: Option<String> = r.get(1)?;
    Ok(RequestSummary {
        event_id: parse(&r.get::<_, String>(0)?)?,
        trace_id: trace_id.and_then(|t| t.parse().ok()),
        name: r.get(2)?,
        op: r.get(3)?,
        timestamp: time(r.get(4)?),
        duration: micros(r.get(5)?),
        status: r.get(6)?,
        http_status: r
            .get::<_, Option<i64>>(7)?
            .and_then(|c| u16::try_from(c).ok()),
        is_error: r.get(8)?,
        span_count: r.get::<_, i64>(9)? as u64,
        query_count: r.get::<_, i64>(10)? as u64,
        release: r.get(11)?,
        environment: r.get(12)?,
    })
}

fn category_name(category: IssueCategory) -> &'static str {
    match category {
        IssueCategory::Error => "error",
        IssueCategory::Performance => "performance",
    }
}

fn issue_order(sort: IssueSort) -> &'static str {
    match sort {
        IssueSort::LastSeen => "last_seen DESC, id DESC",
        IssueSort::FirstSeen => "first_seen DESC, id DESC",
        IssueSort::Count => "times_seen DESC, last_seen DESC",
        IssueSort::Users => "users DESC, last_seen DESC",
    }
}

/// `%text%` for LIKE, with the wildcards in `text` escaped.
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl StoreReader {
    pub(crate) fn new(
        path: PathBuf,
        busy_timeout: Duration,
        memory: Option<Arc<Mutex<Connection>>>,
        counters: Option<StoreCounters>,
    ) -> Self {
        StoreReader {
            inner: Arc::new(ReaderInner {
                path,
                busy_timeout,
                memory,
                counters,
            }),
        }
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
        self.inner.counters.as_ref().map(StoreCounters::snapshot)
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

    /// Issues, errors and performance problems alike, filtered and sorted.
    pub fn issues(&self, query: &IssueQuery) -> Result<Vec<Issue>, StoreError> {
        let order = issue_order(query.sort);
        let sql = format!(
            "SELECT {ISSUE_COLUMNS} FROM issues WHERE {ISSUE_FILTER}
             ORDER BY {order}
             LIMIT ?7 OFFSET ?8"
        );
        let text = query.text.as_deref().map(like_pattern);
        self.with_conn(|c| {
            c.prepare_cached(&sql)?
                .query_map(
                    params![
                        query.status.map(|s| s.as_str()),
                        query.release,
                        query.first_release,
                        query.environment,
                        text,
                        query.category.map(category_name),
                        query.limit as i64,
                        query.offset as i64,
                    ],
                    issue_row,
                )?
                .collect()
        })
    }

    /// How many issues match (ignoring sort, limit and offset), for paging.
    pub fn issue_count(&self, query: &IssueQuery) -> Result<u64, StoreError> {
        let sql = format!("SELECT count(*) FROM issues WHERE {ISSUE_FILTER}");
        let text = query.text.as_deref().map(like_pattern);
        self.with_conn(|c| {
            c.prepare_cached(&sql)?.query_row(
                params![
                    query.status.map(|s| s.as_str()),
                    query.release,
                    query.first_release,
                    query.environment,
                    text,
                    query.category.map(category_name),
                ],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n as u64)
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
                .prepare_cached(
                    "SELECT event_id, issue_id, timestamp, level, title, culprit,
                        transaction_name, release, environment, user_key
                     FROM events WHERE issue_id = ?1 ORDER BY id DESC LIMIT ?2",
                )?
                .query_map(params![id.0, events as i64], |r| {
                    Ok(EventSummary {
                        event_id: parse(&r.get::<_, String>(0)?)?,
                        issue_id: IssueId(r.get(1)?),
                        timestamp: time(r.get(2)?),
                        level: parse(&r.get::<_, String>(3)?)?,
                        title: r.get(4)?,
                        culprit: r.get(5)?,
                        transaction: r.get(6)?,
                        release: r.get(7)?,
                        environment: r.get(8)?,
                        user: r.get(9)?,
                    })
                })?
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
        let order = issue_order(query.sort);
        let sql = format!(
            "SELECT {ISSUE_COLUMNS}, query_group FROM issues WHERE {PERF_FILTER}
             ORDER BY {order}
             LIMIT ?6 OFFSET ?7"
        );
        self.with_conn(|c| {
            c.prepare_cached(&sql)?
                .query_map(
                    params![
                        query.kind.map(ProblemKind::as_str),
                        query.route,
                        query.status.map(|s| s.as_str()),
                        query.release,
                        query.environment,
                        query.limit as i64,
                        query.offset as i64,
                    ],
                    perf_issue_row,
                )?
                .collect()
        })
    }

    /// How many performance issues match (ignoring sort, limit and offset), for paging.
    pub fn performance_issue_count(&self, query: &PerfIssueQuery) -> Result<u64, StoreError> {
        let sql = format!("SELECT count(*) FROM issues WHERE {PERF_FILTER}");
        self.with_conn(|c| {
            c.prepare_cached(&sql)?.query_row(
                params![
                    query.kind.map(ProblemKind::as_str),
                    query.route,
                    query.status.map(|s| s.as_str()),
                    query.release,
                    query.environment,
                ],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n as u64)
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
    /// This is the one write a reader makes; it uses its own short-lived connection and
    /// waits for the writer's lock like any other connection.
    pub fn set_issue_status(&self, id: IssueId, status: IssueStatus) -> Result<bool, StoreError> {
        let update = |c: &Connection| {
            c.prepare_cached(
                "UPDATE issues SET status = ?2, status_changed = ?3,
                    regressed = CASE WHEN ?2 = 'unresolved' THEN regressed ELSE 0 END
                 WHERE id = ?1",
            )?
            .execute(params![id.0, status.as_str(), millis(SystemTime::now())])
        };
        let path = &self.inner.path;
        let changed = match &self.inner.memory {
            Some(shared) => update(&shared.lock().unwrap_or_else(PoisonError::into_inner)),
            None => Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|c| {
                c.busy_timeout(self.inner.busy_timeout)?;
                update(&c)
            }),
        }
        .map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        Ok(changed > 0)
    }

    /// Transactions grouped by route: count, error rate, p50/p95/p99 duration and mean
    /// query count.
    pub fn routes(&self, query: &RouteQuery) -> Result<Vec<RouteStats>, StoreError> {
        let order = match query.sort {
            RouteSort::Count => "n DESC, name",
            RouteSort::P95 => "p95 DESC, name",
            RouteSort::ErrorRate => "CAST(errors AS REAL) / n DESC, n DESC, name",
            RouteSort::Queries => "queries DESC, name",
        };
        // Nearest rank: the k-th smallest with k = ceil(p * n), in integer arithmetic.
        let sql = format!(
            "WITH t AS (
                SELECT name, duration_us, is_error, query_count,
                       row_number() OVER (PARTITION BY name ORDER BY duration_us) AS rn,
                       count(*) OVER (PARTITION BY name) AS total
                FROM transactions
                WHERE (?1 IS NULL OR timestamp >= ?1)
                  AND (?2 IS NULL OR environment = ?2)
                  AND (?3 IS NULL OR release = ?3)
             )
             SELECT name, count(*) AS n, sum(is_error) AS errors, avg(query_count) AS queries,
                    max(CASE WHEN rn = (50 * total + 99) / 100 THEN duration_us END) AS p50,
                    max(CASE WHEN rn = (95 * total + 99) / 100 THEN duration_us END) AS p95,
                    max(CASE WHEN rn = (99 * total + 99) / 100 THEN duration_us END) AS p99
             FROM t GROUP BY name ORDER BY {order} LIMIT ?4"
        );
        self.with_conn(|c| {
            c.prepare_cached(&sql)?
                .query_map(
                    params![
                        query.since.map(millis),
                        query.environment,
                        query.release,
                        query.limit as i64
                    ],
                    |r| {
                        let count = r.get::<_, i64>(1)? as u64;
                        let errors = r.get::<_, i64>(2)? as u64;
                        Ok(RouteStats {
                            name: r.get(0)?,
                            count,
                            errors,
                            error_rate: if count == 0 {
                                0.0
                            } else {
                                errors as f64 / count as f64
                            },
                            mean_queries: r.get(3)?,
                            p50: micros(r.get(4)?),
                            p95: micros(r.get(5)?),
                            p99: micros(r.get(6)?),
                        })
                    },
                )?
                .collect()
        })
    }

    /// The slowest requests, slowest first.
    pub fn slowest_requests(
        &self,
        query: &RequestQuery,
    ) -> Result<Vec<RequestSummary>, StoreError> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM transactions
             WHERE (?1 IS NULL OR name = ?1)
               AND (?2 IS NULL OR timestamp >= ?2)
               AND (?3 IS NULL OR environment = ?3)
             ORDER BY duration_us DESC LIMIT ?4"
        );
        self.with_conn(|c| {
            c.prepare_cached(&sql)?
                .query_map(
                    params![
                        query.route,
                        query.since.map(millis),
                        query.environment,
                        query.limit as i64
                    ],
                    request_row,
                )?
                .collect()
        })
    }

    /// The most recent requests, newest first.
    pub fn recent_requests(&self, query: &RequestQuery) -> Result<Vec<RequestSummary>, StoreError> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM transactions
             WHERE (?1 IS NULL OR name = ?1)
               AND (?2 IS NULL OR timestamp >= ?2)
               AND (?3 IS NULL OR environment = ?3)
             ORDER BY id DESC LIMIT ?4"
        );
        self.with_conn(|c| {
            c.prepare_cached(&sql)?
                .query_map(
                    params![
                        query.route,
                        query.since.map(millis),
                        query.environment,
                        query.limit as i64
                    ],
                    request_row,
                )?
                .collect()
        })
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
