//! The `--json` shapes. They are the CLI's contract with scripts, documented field by
//! field in `docs/cli.md`: fields are added, never renamed or removed.
//!
//! Times are RFC 3339 in UTC with milliseconds; durations are milliseconds (`*_ms`)
//! with microsecond precision; a value the store does not have is `null`.

use backstop_core::Event;
use backstop_store::{EventSummary, Issue, IssueCategory, PerfOccurrence, RouteStats};
use serde::Serialize;

use crate::output::{millis, rfc3339};
use crate::store::{IssueView, Stored};

/// `backstop issues --json`.
#[derive(Serialize)]
pub(crate) struct IssueList<'a> {
    pub(crate) issues: Vec<IssueJson<'a>>,
    /// How many issues match, beyond `--limit`.
    pub(crate) total: u64,
}

#[derive(Serialize)]
pub(crate) struct IssueJson<'a> {
    id: i64,
    kind: &'static str,
    category: &'static str,
    title: &'a str,
    culprit: Option<&'a str>,
    level: &'static str,
    status: &'static str,
    regressed: bool,
    count: u64,
    users: u64,
    first_seen: String,
    last_seen: String,
    first_release: Option<&'a str>,
    last_release: Option<&'a str>,
    first_environment: Option<&'a str>,
    last_environment: Option<&'a str>,
    fingerprint: &'a str,
}

impl<'a> From<&'a Issue> for IssueJson<'a> {
    fn from(i: &'a Issue) -> Self {
        IssueJson {
            id: i.id.0,
            kind: i.kind.as_str(),
            category: match i.kind.category() {
                IssueCategory::Error => "error",
                IssueCategory::Performance => "performance",
            },
            title: &i.title,
            culprit: i.culprit.as_deref(),
            level: i.level.as_str(),
            status: i.status.as_str(),
            regressed: i.regressed,
            count: i.count,
            users: i.users,
            first_seen: rfc3339(i.first_seen),
            last_seen: rfc3339(i.last_seen),
            first_release: i.first_release.as_deref(),
            last_release: i.last_release.as_deref(),
            first_environment: i.first_environment.as_deref(),
            last_environment: i.last_environment.as_deref(),
            fingerprint: &i.fingerprint,
        }
    }
}

/// `backstop issue ID --json`.
#[derive(Serialize)]
pub(crate) struct IssueDetailJson<'a> {
    issue: IssueJson<'a>,
    releases: &'a [String],
    environments: &'a [String],
    /// The latest events, newest first (error issues).
    events: Vec<EventJson<'a>>,
    /// The latest event in full, in Sentry's event JSON (error issues).
    latest_event: Option<&'a Event>,
    /// The query's group hash (performance issues about one query).
    query_group: Option<&'a str>,
    /// The latest occurrences, newest first (performance issues).
    occurrences: Vec<OccurrenceJson<'a>>,
}

impl<'a> From<&'a IssueView> for IssueDetailJson<'a> {
    fn from(v: &'a IssueView) -> Self {
        IssueDetailJson {
            issue: (&v.detail.issue).into(),
            releases: &v.detail.releases,
            environments: &v.detail.environments,
            events: v.detail.latest_events.iter().map(Into::into).collect(),
            latest_event: v.latest_event.as_ref(),
            query_group: v.query_group.as_deref(),
            occurrences: v.occurrences.iter().map(Into::into).collect(),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct EventJson<'a> {
    event_id: String,
    issue_id: i64,
    timestamp: String,
    level: &'static str,
    title: &'a str,
    culprit: Option<&'a str>,
    transaction: Option<&'a str>,
    release: Option<&'a str>,
    environment: Option<&'a str>,
    user: Option<&'a str>,
}

impl<'a> From<&'a EventSummary> for EventJson<'a> {
    fn from(e: &'a EventSummary) -> Self {
        EventJson {
            event_id: e.event_id.to_string(),
            issue_id: e.issue_id.0,
            timestamp: rfc3339(e.timestamp),
            level: e.level.as_str(),
            title: &e.title,
            culprit: e.culprit.as_deref(),
            transaction: e.transaction.as_deref(),
            release: e.release.as_deref(),
            environment: e.environment.as_deref(),
            user: e.user.as_deref(),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct OccurrenceJson<'a> {
    issue_id: i64,
    kind: &'static str,
    transaction_event_id: String,
    trace_id: Option<String>,
    route: &'a str,
    timestamp: String,
    description: &'a str,
    count: u32,
    duration_ms: f64,
    parent_span_id: Option<String>,
    span_ids: Vec<String>,
    release: Option<&'a str>,
    environment: Option<&'a str>,
}

impl<'a> From<&'a PerfOccurrence> for OccurrenceJson<'a> {
    fn from(o: &'a PerfOccurrence) -> Self {
        OccurrenceJson {
            issue_id: o.issue_id.0,
            kind: o.kind.as_str(),
            transaction_event_id: o.transaction_event_id.to_string(),
            trace_id: o.trace_id.map(|t| t.to_string()),
            route: &o.route,
            timestamp: rfc3339(o.timestamp),
            description: &o.description,
            count: o.count,
            duration_ms: millis(o.duration),
            parent_span_id: o.parent_span_id.map(|s| s.to_string()),
            span_ids: o.span_ids.iter().map(ToString::to_string).collect(),
            release: o.release.as_deref(),
            environment: o.environment.as_deref(),
        }
    }
}

/// `backstop routes --json`.
#[derive(Serialize)]
pub(crate) struct RouteList<'a> {
    pub(crate) since: Option<String>,
    pub(crate) routes: Vec<RouteJson<'a>>,
}

#[derive(Serialize)]
pub(crate) struct RouteJson<'a> {
    route: &'a str,
    count: u64,
    errors: u64,
    error_rate: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    mean_queries: f64,
}

impl<'a> From<&'a RouteStats> for RouteJson<'a> {
    fn from(r: &'a RouteStats) -> Self {
        RouteJson {
            route: &r.name,
            count: r.count,
            errors: r.errors,
            error_rate: r.error_rate,
            p50_ms: millis(r.p50),
            p95_ms: millis(r.p95),
            p99_ms: millis(r.p99),
            mean_queries: r.mean_queries,
        }
    }
}

/// One line of `backstop tail --json`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum TailJson<'a> {
    Event(EventJson<'a>),
    Problem(OccurrenceJson<'a>),
}

impl<'a> From<&'a Stored> for TailJson<'a> {
    fn from(s: &'a Stored) -> Self {
        match s {
            Stored::Event(e) => TailJson::Event(e.into()),
            Stored::Problem(p) => TailJson::Problem(p.into()),
        }
    }
}
