//! Aggregates for the dashboard: requests over time, event counts per issue over time,
//! tag distributions, SQL statements across requests, per-release figures and the
//! store's own health.
//!
//! Requests over time and the duration histogram come from the route metrics rows
//! (see `metrics`); the statement and release figures from the kept transactions.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use backstop_core::protocol::{EventId, TraceId};
use rusqlite::OptionalExtension;
use rusqlite::types::Value;

use super::StoreReader;
use super::models::{EventSummary, Issue, IssueId, RequestSummary};
use super::query::{self, Filter, Sql};
use super::rows::{
    EVENT_COLUMNS, ISSUE_COLUMNS, REQUEST_COLUMNS, event_row, issue_row, micros, request_row, time,
};
use crate::error::StoreError;
use crate::store::millis;

/// One bucket of a request series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoint {
    /// The bucket's start.
    pub start: SystemTime,
    /// Requests that started in it.
    pub count: u64,
    /// Failed requests among them.
    pub errors: u64,
    /// Their median duration (nearest rank); zero for an empty bucket.
    pub p50: Duration,
    /// Their 95th percentile duration.
    pub p95: Duration,
    /// Their 99th percentile duration.
    pub p99: Duration,
}

/// Requests over time, and over the whole range.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// One point per bucket.
    pub points: Vec<SeriesPoint>,
    /// The whole range as one point.
    pub total: SeriesPoint,
}

/// The bucket boundaries of a series: `buckets` equal slices of `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    /// The start of the first bucket.
    pub since: SystemTime,
    /// The end of the last bucket.
    pub until: SystemTime,
    /// How many buckets.
    pub count: usize,
}

impl Buckets {
    /// `count` buckets (at least one) over `[since, until)`.
    pub fn new(since: SystemTime, until: SystemTime, count: usize) -> Buckets {
        let until = until.max(since + Duration::from_millis(count.max(1) as u64));
        Buckets {
            since,
            until,
            count: count.max(1),
        }
    }

    fn width_ms(&self) -> i64 {
        ((millis(self.until) - millis(self.since)) / self.count as i64).max(1)
    }

    pub(crate) fn index(&self, at_ms: i64) -> Option<usize> {
        let i = (at_ms - millis(self.since)).checked_div(self.width_ms())?;
        (0..self.count as i64).contains(&i).then_some(i as usize)
    }

    /// Each bucket's start.
    pub fn starts(&self) -> impl Iterator<Item = SystemTime> + '_ {
        let width = Duration::from_millis(self.width_ms() as u64);
        (0..self.count).map(move |i| self.since + width * i as u32)
    }
}

/// An issue's neighbouring events, for first / previous / next / latest links.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventLinks {
    /// The issue's earliest kept event.
    pub first: Option<EventId>,
    /// The event received just before.
    pub previous: Option<EventId>,
    /// The event received just after.
    pub next: Option<EventId>,
    /// The latest event.
    pub latest: Option<EventId>,
}

/// One normalised SQL statement across the kept requests.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementStats {
    /// The normalised statement (`SELECT * FROM posts WHERE user_id = ?`).
    pub statement: String,
    /// How many times it ran.
    pub count: u64,
    /// In how many requests.
    pub requests: u64,
    /// Its total time.
    pub total: Duration,
    /// Its mean time.
    pub mean: Duration,
    /// Its 95th percentile time (nearest rank over the kept runs).
    pub p95: Duration,
    /// Its slowest run.
    pub max: Duration,
    /// Rows returned or changed, over the runs whose driver reported them; `None` when
    /// none did.
    pub rows: Option<u64>,
    /// The routes that ran it (up to five).
    pub routes: Vec<String>,
}

/// Spans of one operation and description across requests (a query, a template
/// render, an outgoing call).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanTotal {
    /// The span's operation (`db.sql.query`, `http.client`...).
    pub op: Option<String>,
    /// Its description (for a query, the normalised statement).
    pub description: String,
    /// How many times it ran.
    pub count: u64,
    /// Its total time.
    pub total: Duration,
    /// Its mean time.
    pub mean: Duration,
}

/// Outgoing HTTP calls to one URL pattern (method and normalised URL) across the kept
/// requests.
#[derive(Debug, Clone, PartialEq)]
pub struct CallStats {
    /// `GET https://api.example/users/*` (see [`backstop_core::outgoing::normalize_url`]).
    pub url: String,
    /// How many calls.
    pub count: u64,
    /// How many of them failed (an error, or a 5xx).
    pub failed: u64,
    /// Their 95th percentile duration (nearest rank).
    pub p95: Duration,
    /// Their total time.
    pub total: Duration,
}

/// `cache.get` hits and misses for one key prefix across the kept requests.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheStats {
    /// The key prefix (`rates` for `rates:EUR`).
    pub prefix: String,
    /// Reads that found the key.
    pub hits: u64,
    /// Reads that did not.
    pub misses: u64,
}

impl CacheStats {
    /// Hits over reads, from 0 to 1.
    pub fn hit_rate(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

/// One request that ran a statement, with how often and how long.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementRun {
    /// The request.
    pub request: RequestSummary,
    /// How many times it ran the statement.
    pub count: u64,
    /// The time it spent in it.
    pub total: Duration,
}

/// What one release did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseStats {
    /// The version.
    pub version: String,
    /// Its earliest event or transaction.
    pub first_seen: SystemTime,
    /// Its latest.
    pub last_seen: SystemTime,
    /// Issues first seen in it.
    pub new_issues: u64,
    /// Issues that regressed in it (resolved before, seen again in it last).
    pub regressions: u64,
    /// Error events in it.
    pub errors: u64,
    /// Requests kept for it.
    pub requests: u64,
    /// Its requests' p95 (nearest rank).
    pub p95: Duration,
}

/// The store's file and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    /// The file's size in bytes (pages × page size).
    pub file_bytes: u64,
    /// Bytes in free pages, given back by incremental vacuum.
    pub free_bytes: u64,
    /// Issues kept.
    pub issues: u64,
    /// Events kept.
    pub events: u64,
    /// Transactions kept.
    pub transactions: u64,
    /// Spans kept.
    pub spans: u64,
    /// The oldest kept event.
    pub oldest_event: Option<SystemTime>,
    /// The oldest kept transaction.
    pub oldest_transaction: Option<SystemTime>,
    /// The schema version.
    pub schema_version: i64,
}

/// How many values of one tag an issue's recent events carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagDistribution {
    /// The tag (`browser`, `release`...).
    pub key: String,
    /// Values with their counts, most frequent first (up to five).
    pub values: Vec<(String, u64)>,
    /// Events that carried the tag.
    pub total: u64,
}

/// The tags a tag distribution reads, with where each lives in an event: a column of
/// the events table, or a path in its JSON.
const TAG_SOURCES: &[(&str, &str)] = &[
    ("browser", "json_extract(json, '$.contexts.browser.name')"),
    ("os", "json_extract(json, '$.contexts.os.name')"),
    ("release", "release"),
    ("environment", "environment"),
    ("route", "transaction_name"),
    (
        "status",
        "json_extract(json, '$.tags.\"http.status_code\"')",
    ),
    ("user", "user_key"),
];

/// The p-th percentile of sorted values by nearest rank.
pub(crate) fn nearest_rank(sorted: &[i64], p: u64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let k = (p as usize * sorted.len()).div_ceil(100).max(1);
    sorted[k - 1]
}

impl StoreReader {
    /// Events per bucket for each of `issues`.
    pub fn issue_series(
        &self,
        issues: &[IssueId],
        buckets: Buckets,
    ) -> Result<HashMap<IssueId, Vec<u64>>, StoreError> {
        let mut out: HashMap<IssueId, Vec<u64>> = issues
            .iter()
            .map(|&id| (id, vec![0; buckets.count]))
            .collect();
        if issues.is_empty() {
            return Ok(out);
        }
        let ids = vec!["?"; issues.len()].join(", ");
        let sql = format!(
            "SELECT issue_id, (timestamp - ?) / ? AS bucket, count(*) FROM events
             WHERE issue_id IN ({ids}) AND timestamp >= ? AND timestamp < ?
             GROUP BY issue_id, bucket"
        );
        let mut values: Vec<Value> = vec![millis(buckets.since).into(), buckets.width_ms().into()];
        values.extend(issues.iter().map(|id| Value::Integer(id.0)));
        values.push(millis(buckets.since).into());
        values.push(millis(buckets.until).into());
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
            while let Some(r) = rows.next()? {
                let (id, bucket, n): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
                if let Some(series) = out.get_mut(&IssueId(id))
                    && let Some(slot) = usize::try_from(bucket).ok().and_then(|b| series.get_mut(b))
                {
                    *slot += n as u64;
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// How the issue's latest `sample` events spread over browser, OS, release,
    /// environment, route, status and user.
    pub fn tag_distributions(
        &self,
        issue: IssueId,
        sample: usize,
    ) -> Result<Vec<TagDistribution>, StoreError> {
        let columns: Vec<&str> = TAG_SOURCES.iter().map(|(_, expr)| *expr).collect();
        let sql = format!(
            "SELECT {} FROM events WHERE issue_id = ? ORDER BY id DESC LIMIT ?",
            columns.join(", ")
        );
        let mut counts: Vec<HashMap<String, u64>> = vec![HashMap::new(); TAG_SOURCES.len()];
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params![issue.0, sample as i64])?;
            while let Some(r) = rows.next()? {
                for (i, slot) in counts.iter_mut().enumerate() {
                    let value: Option<String> = match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => None,
                        rusqlite::types::ValueRef::Integer(n) => Some(n.to_string()),
                        rusqlite::types::ValueRef::Real(n) => Some(n.to_string()),
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                            Some(String::from_utf8_lossy(t).into_owned())
                        }
                    };
                    if let Some(v) = value {
                        *slot.entry(v).or_default() += 1;
                    }
                }
            }
            Ok(())
        })?;
        Ok(TAG_SOURCES
            .iter()
            .zip(counts)
            .filter(|(_, c)| !c.is_empty())
            .map(|((key, _), c)| {
                let total = c.values().sum();
                let mut values: Vec<(String, u64)> = c.into_iter().collect();
                values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                values.truncate(5);
                TagDistribution {
                    key: (*key).to_owned(),
                    values,
                    total,
                }
            })
            .collect())
    }

    /// The first, previous, next and latest events of `event`'s issue.
    pub fn event_links(&self, issue: IssueId, event: EventId) -> Result<EventLinks, StoreError> {
        self.with_conn(|c| {
            let pick = |sql: &str, row: Option<i64>| -> rusqlite::Result<Option<EventId>> {
                let id: Option<String> = match row {
                    Some(row) => c
                        .prepare_cached(sql)?
                        .query_row(rusqlite::params![issue.0, row], |r| r.get(0))
                        .optional()?,
                    None => c
                        .prepare_cached(sql)?
                        .query_row([issue.0], |r| r.get(0))
                        .optional()?,
                };
                Ok(id.and_then(|s| s.parse().ok()))
            };
            let row: Option<i64> = c
                .prepare_cached("SELECT id FROM events WHERE event_id = ?")?
                .query_row([event.to_string()], |r| r.get(0))
                .optional()?;
            Ok(EventLinks {
                first: pick(
                    "SELECT event_id FROM events WHERE issue_id = ? ORDER BY id LIMIT 1",
                    None,
                )?,
                latest: pick(
                    "SELECT event_id FROM events WHERE issue_id = ? ORDER BY id DESC LIMIT 1",
                    None,
                )?,
                previous: match row {
                    Some(_) => pick(
                        "SELECT event_id FROM events WHERE issue_id = ? AND id < ?
                         ORDER BY id DESC LIMIT 1",
                        row,
                    )?,
                    None => None,
                },
                next: match row {
                    Some(_) => pick(
                        "SELECT event_id FROM events WHERE issue_id = ? AND id > ?
                         ORDER BY id LIMIT 1",
                        row,
                    )?,
                    None => None,
                },
            })
        })
    }

    /// The error events recorded in one trace, newest first (at most 20).
    pub fn trace_events(&self, trace: TraceId) -> Result<Vec<EventSummary>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE trace_id = ? ORDER BY id DESC LIMIT 20"
            ))?
            .query_map([trace.to_string()], event_row)?
            .collect()
        })
    }

    /// The transaction of a trace (its root, the earliest kept), if kept.
    pub fn trace_request(&self, trace: TraceId) -> Result<Option<EventId>, StoreError> {
        self.with_conn(|c| {
            let id: Option<String> = c
                .prepare_cached(
                    "SELECT event_id FROM transactions WHERE trace_id = ? ORDER BY id LIMIT 1",
                )?
                .query_row([trace.to_string()], |r| r.get(0))
                .optional()?;
            Ok(id.and_then(|s| s.parse().ok()))
        })
    }

    /// Normalised SQL statements across the kept requests in `filter`'s range,
    /// environment and release (and `route`), the most total time first.
    ///
    /// The spans are read once and grouped here: one pass, no sort of the whole table.
    pub fn statements(
        &self,
        filter: &Filter,
        route: Option<&str>,
    ) -> Result<Vec<StatementStats>, StoreError> {
        #[derive(Default)]
        struct Group {
            count: u64,
            total: i64,
            durations: Vec<i64>,
            rows: Option<u64>,
            requests: HashSet<i64>,
            routes: Vec<String>,
        }
        // The requests in range first (from a covering index), then one pass over the
        // query spans: no lookup into the transaction rows, which carry their JSON.
        let mut sql = Sql::new("SELECT id, name FROM transactions");
        query::transaction_conditions(&mut sql, filter, route);
        let mut groups: HashMap<String, Group> = HashMap::new();
        self.with_conn(|c| {
            let mut names: Vec<String> = Vec::new();
            let mut requests: HashMap<i64, usize> = HashMap::new();
            let mut stmt = c.prepare_cached(sql.text())?;
            let mut rows = stmt.query(sql.values())?;
            while let Some(r) = rows.next()? {
                let name = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
                let at = match names.iter().position(|n| n == name) {
                    Some(at) => at,
                    None => {
                        names.push(name.to_owned());
                        names.len() - 1
                    }
                };
                requests.insert(r.get(0)?, at);
            }
            if requests.is_empty() {
                return Ok(());
            }
            let mut stmt = c.prepare_cached(
                "SELECT description, transaction_id, duration_us, rows FROM spans
                 WHERE op LIKE 'db%' AND description IS NOT NULL",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let Some(&route) = requests.get(&r.get::<_, i64>(1)?) else {
                    continue;
                };
                let statement = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
                if !groups.contains_key(statement) {
                    groups.insert(statement.to_owned(), Group::default());
                }
                let group = groups.get_mut(statement).expect("inserted above");
                let duration: i64 = r.get(2)?;
                group.count += 1;
                group.total += duration;
                group.durations.push(duration);
                if let Some(rows) = r.get::<_, Option<i64>>(3)? {
                    *group.rows.get_or_insert(0) += rows.max(0) as u64;
                }
                group.requests.insert(r.get(1)?);
                let name = &names[route];
                if group.routes.len() < 5 && !group.routes.contains(name) {
                    group.routes.push(name.clone());
                }
            }
            Ok(())
        })?;
        let mut out: Vec<StatementStats> = groups
            .into_iter()
            .map(|(statement, mut g)| {
                g.durations.sort_unstable();
                StatementStats {
                    statement,
                    count: g.count,
                    requests: g.requests.len() as u64,
                    total: micros(g.total),
                    mean: micros(g.total / g.count.max(1) as i64),
                    p95: micros(nearest_rank(&g.durations, 95)),
                    max: micros(g.durations.last().copied().unwrap_or(0)),
                    rows: g.rows,
                    routes: g.routes,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            b.total
                .cmp(&a.total)
                .then_with(|| a.statement.cmp(&b.statement))
        });
        Ok(out
            .into_iter()
            .skip(filter.offset)
            .take(filter.limit)
            .collect())
    }

    /// The issues seen on a route: errors whose event happened in it, and
    /// performance problems found in it, the most recently seen first.
    pub fn route_issues(&self, route: &str, limit: usize) -> Result<Vec<Issue>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(&format!(
                "SELECT {ISSUE_COLUMNS} FROM issues
                 WHERE id IN (SELECT issue_id FROM events WHERE transaction_name = ?1)
                    OR (kind <> 'error' AND culprit = ?1)
                 ORDER BY last_seen DESC, id DESC LIMIT ?2"
            ))?
            .query_map(rusqlite::params![route, limit as i64], issue_row)?
            .collect()
        })
    }

    /// Spans of every kind grouped by operation and description, over the kept
    /// requests in `filter`'s range, environment and release (and `route`), the most
    /// total time first.
    pub fn span_totals(
        &self,
        filter: &Filter,
        route: Option<&str>,
    ) -> Result<Vec<SpanTotal>, StoreError> {
        let mut sql = Sql::new(
            "SELECT s.op, s.description, count(*), sum(s.duration_us)
             FROM spans s JOIN transactions t ON t.id = s.transaction_id",
        );
        sql.and("s.description IS NOT NULL", []);
        sql.and_some("t.name = ?", route.map(str::to_owned));
        sql.range("t.timestamp", filter);
        sql.and_some("t.environment = ?", filter.environment.clone());
        sql.and_some("t.release = ?", filter.release.clone());
        sql.then("GROUP BY s.op, s.description ORDER BY sum(s.duration_us) DESC");
        sql.page(filter);
        self.with_conn(|c| {
            c.prepare_cached(sql.text())?
                .query_map(sql.values(), |r| {
                    let count = r.get::<_, i64>(2)?.max(1);
                    let total: i64 = r.get(3)?;
                    Ok(SpanTotal {
                        op: r.get(0)?,
                        description: r.get(1)?,
                        count: count as u64,
                        total: micros(total),
                        mean: micros(total / count),
                    })
                })?
                .collect()
        })
    }

    /// Outgoing calls over the kept requests in `filter`'s range, environment and
    /// release (and `route`), grouped by method and normalised URL, the most calls
    /// first.
    pub fn calls(
        &self,
        filter: &Filter,
        route: Option<&str>,
    ) -> Result<Vec<CallStats>, StoreError> {
        #[derive(Default)]
        struct Group {
            durations: Vec<i64>,
            failed: u64,
        }
        let mut sql = Sql::new(
            "SELECT s.description, s.duration_us, s.status
             FROM spans s JOIN transactions t ON t.id = s.transaction_id",
        );
        sql.and("s.op = 'http.client' AND s.description IS NOT NULL", []);
        sql.and_some("t.name = ?", route.map(str::to_owned));
        sql.range("t.timestamp", filter);
        sql.and_some("t.environment = ?", filter.environment.clone());
        sql.and_some("t.release = ?", filter.release.clone());
        let mut groups: HashMap<String, Group> = HashMap::new();
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(sql.text())?;
            let mut rows = stmt.query(sql.values())?;
            while let Some(r) = rows.next()? {
                let description = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
                let group = groups
                    .entry(backstop_core::outgoing::normalize_url(description))
                    .or_default();
                group.durations.push(r.get(1)?);
                let status: Option<String> = r.get(2)?;
                if status.is_some_and(|s| s != "ok") {
                    group.failed += 1;
                }
            }
            Ok(())
        })?;
        let mut out: Vec<CallStats> = groups
            .into_iter()
            .map(|(url, mut g)| {
                g.durations.sort_unstable();
                CallStats {
                    url,
                    count: g.durations.len() as u64,
                    failed: g.failed,
                    p95: micros(nearest_rank(&g.durations, 95)),
                    total: micros(g.durations.iter().sum()),
                }
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.url.cmp(&b.url)));
        Ok(out
            .into_iter()
            .skip(filter.offset)
            .take(filter.limit)
            .collect())
    }

    /// Cache reads over the kept requests in `filter`'s range, environment and release
    /// (and `route`), by key prefix, the most reads first. They come from each
    /// transaction's `cache` context, which the worker computed.
    pub fn caches(
        &self,
        filter: &Filter,
        route: Option<&str>,
    ) -> Result<Vec<CacheStats>, StoreError> {
        let mut sql = Sql::new(
            "SELECT p.value ->> '$.prefix', sum(p.value ->> '$.hits'), sum(p.value ->> '$.misses')
             FROM transactions t, json_each(t.json, '$.contexts.cache.prefixes') p",
        );
        query::transaction_conditions(&mut sql, filter, route);
        sql.then("GROUP BY 1");
        let mut out: Vec<CacheStats> = self.with_conn(|c| {
            c.prepare_cached(sql.text())?
                .query_map(sql.values(), |r| {
                    Ok(CacheStats {
                        prefix: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        hits: r.get::<_, Option<i64>>(1)?.unwrap_or(0).max(0) as u64,
                        misses: r.get::<_, Option<i64>>(2)?.unwrap_or(0).max(0) as u64,
                    })
                })?
                .collect::<Result<_, _>>()
        })?;
        out.sort_by(|a, b| {
            (b.hits + b.misses)
                .cmp(&(a.hits + a.misses))
                .then_with(|| a.prefix.cmp(&b.prefix))
        });
        Ok(out
            .into_iter()
            .skip(filter.offset)
            .take(filter.limit)
            .collect())
    }

    /// The requests that ran `statement`, the most time in it first.
    pub fn statement_runs(
        &self,
        statement: &str,
        limit: usize,
    ) -> Result<Vec<StatementRun>, StoreError> {
        self.with_conn(|c| {
            // The index on (description, transaction_id, duration_us) answers this
            // without touching the spans themselves.
            let top: Vec<(i64, i64, i64)> = c
                .prepare_cached(
                    "SELECT transaction_id, count(*), sum(duration_us) FROM spans
                     WHERE description = ? GROUP BY transaction_id
                     ORDER BY sum(duration_us) DESC, transaction_id DESC LIMIT ?",
                )?
                .query_map(rusqlite::params![statement, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut request = c.prepare_cached(&format!(
                "SELECT {REQUEST_COLUMNS} FROM transactions WHERE id = ?"
            ))?;
            let mut runs = Vec::with_capacity(top.len());
            for (id, count, total) in top {
                if let Some(summary) = request.query_row([id], request_row).optional()? {
                    runs.push(StatementRun {
                        request: summary,
                        count: count as u64,
                        total: micros(total),
                    });
                }
            }
            Ok(runs)
        })
    }

    /// Each release's first seen, new issues, regressions, errors, requests and p95,
    /// the most recently seen first (at most `limit`).
    pub fn release_stats(&self, limit: usize) -> Result<Vec<ReleaseStats>, StoreError> {
        self.with_conn(|c| {
            let mut releases: Vec<ReleaseStats> = c
                .prepare_cached(
                    "SELECT version, first_seen, last_seen,
                        (SELECT count(*) FROM issues i WHERE i.first_release = r.version),
                        (SELECT count(*) FROM issues i
                         WHERE i.last_release = r.version AND i.regressed = 1)
                     FROM releases r ORDER BY last_seen DESC, version LIMIT ?",
                )?
                .query_map([limit as i64], |r| {
                    Ok(ReleaseStats {
                        version: r.get(0)?,
                        first_seen: time(r.get(1)?),
                        last_seen: time(r.get(2)?),
                        new_issues: r.get::<_, i64>(3)? as u64,
                        regressions: r.get::<_, i64>(4)? as u64,
                        errors: 0,
                        requests: 0,
                        p95: Duration::ZERO,
                    })
                })?
                .collect::<Result<_, _>>()?;
            for release in &mut releases {
                release.errors = c
                    .prepare_cached("SELECT count(*) FROM events WHERE release = ?")?
                    .query_row([&release.version], |r| r.get::<_, i64>(0))?
                    as u64;
                let mut durations: Vec<i64> = c
                    .prepare_cached("SELECT duration_us FROM transactions WHERE release = ?")?
                    .query_map([&release.version], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                durations.sort_unstable();
                release.requests = durations.len() as u64;
                release.p95 = micros(nearest_rank(&durations, 95));
            }
            Ok(releases)
        })
    }

    /// The file's size and what it holds.
    pub fn health(&self) -> Result<StoreHealth, StoreError> {
        self.with_conn(|c| {
            let count = |table: &str| -> rusqlite::Result<u64> {
                c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n as u64)
            };
            let (pages, free, page_size): (i64, i64, i64) = c.query_row(
                "SELECT * FROM pragma_page_count, pragma_freelist_count, pragma_page_size",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let oldest = |sql: &str| -> rusqlite::Result<Option<SystemTime>> {
                c.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
                    .map(|t| t.map(time))
            };
            Ok(StoreHealth {
                file_bytes: (pages * page_size) as u64,
                free_bytes: (free * page_size) as u64,
                issues: count("issues")?,
                events: count("events")?,
                transactions: count("transactions")?,
                spans: count("spans")?,
                oldest_event: oldest("SELECT min(timestamp) FROM events")?,
                oldest_transaction: oldest("SELECT min(timestamp) FROM transactions")?,
                schema_version: c.query_row("PRAGMA user_version", [], |r| r.get(0))?,
            })
        })
    }
}
