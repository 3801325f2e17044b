//! Rows: the columns each query selects and how a row becomes a model.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backstop_core::protocol::ProblemKind;
use rusqlite::Row;

use super::models::{
    EventSummary, Issue, IssueId, IssueKind, PerfIssue, PerfOccurrence, RequestSummary,
};

pub(crate) fn time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

pub(crate) fn micros(us: i64) -> Duration {
    Duration::from_micros(us.max(0) as u64)
}

pub(crate) fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

pub(crate) fn parse<T: FromStr>(s: &str) -> rusqlite::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.parse().map_err(conversion)
}

pub(crate) const ISSUE_COLUMNS: &str = "id, fingerprint, title, culprit, level, status, regressed, \
    times_seen, users, first_seen, last_seen, first_release, last_release, \
    first_environment, last_environment, kind";

pub(crate) fn issue_row(r: &Row<'_>) -> rusqlite::Result<Issue> {
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

pub(crate) fn problem_kind(s: &str) -> rusqlite::Result<ProblemKind> {
    // Core's serde names are the stored names (`n_plus_one`).
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(conversion)
}

pub(crate) fn issue_kind(s: &str) -> rusqlite::Result<IssueKind> {
    match s {
        "error" => Ok(IssueKind::Error),
        _ => problem_kind(s).map(IssueKind::Performance),
    }
}

pub(crate) fn perf_issue_row(r: &Row<'_>) -> rusqlite::Result<PerfIssue> {
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

pub(crate) const OCCURRENCE_COLUMNS: &str = "p.issue_id, i.kind, t.event_id, t.trace_id, t.name, \
    t.timestamp, p.description, p.count, p.duration_us, p.parent_span_id, p.span_ids, \
    t.release, t.environment";

pub(crate) const OCCURRENCE_TABLES: &str = "transaction_problems p
    JOIN transactions t ON t.id = p.transaction_id
    JOIN issues i ON i.id = p.issue_id";

pub(crate) fn occurrence_row(r: &Row<'_>) -> rusqlite::Result<PerfOccurrence> {
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

pub(crate) const REQUEST_COLUMNS: &str = "event_id, trace_id, name, op, timestamp, duration_us, status, \
    http_status, is_error, span_count, query_count, release, environment";

pub(crate) fn request_row(r: &Row<'_>) -> rusqlite::Result<RequestSummary> {
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

pub(crate) const EVENT_COLUMNS: &str = "event_id, issue_id, timestamp, level, title, culprit, \
    transaction_name, release, environment, user_key";

pub(crate) fn event_row(r: &Row<'_>) -> rusqlite::Result<EventSummary> {
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
}
