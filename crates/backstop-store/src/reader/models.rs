//! What the reader returns: issues, events, routes, requests, releases and
//! performance problems, as typed values.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use backstop_core::protocol::{Event, EventId, Level, ProblemKind, SpanId, TraceId, Transaction};

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

/// The requests of one route (transaction name), every one of them, sampled or not,
/// summarised from the route metrics rows. Percentiles are by nearest rank (p95 is the
/// smallest duration with at least 95% of requests at or below it), read from a
/// histogram: within 2% of the exact value.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteStats {
    /// The route (`GET /users/{id}`).
    pub name: String,
    /// Requests.
    pub count: u64,
    /// Requests per minute: over the range asked for, else over the minutes the
    /// route's rows cover.
    pub per_minute: f64,
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
    /// Mean database queries per request.
    pub mean_queries: f64,
    /// The Apdex score (0 to 1), when the query asked for it with
    /// [`RouteQuery::apdex`](super::RouteQuery::apdex).
    pub apdex: Option<f64>,
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
