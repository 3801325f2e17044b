//! Route figures from the route metrics rows, which count every request, sampled or
//! not: the route table, requests over time and the duration histogram.
//!
//! A row covers a minute, or an hour once rolled up; a time range takes the rows that
//! start in it, so a range that starts inside a rolled-up hour leaves that hour out.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backstop_core::DurationHistogram;

use super::StoreReader;
use super::aggregates::{Buckets, Series, SeriesPoint};
use super::models::{RouteSort, RouteStats};
use super::query::{Filter, RequestQuery, RouteQuery, Sql};
use crate::error::StoreError;

/// A route's (or a bucket's) rows added up.
#[derive(Default)]
struct Totals {
    count: u64,
    errors: u64,
    queries: u64,
    histogram: DurationHistogram,
    /// The first minute covered, and the minute after the last.
    from: Option<i64>,
    to: i64,
}

impl Totals {
    fn add(&mut self, row: &Row) {
        self.count += row.count;
        self.errors += row.errors;
        self.queries += row.queries;
        self.histogram.merge(&row.histogram);
        self.from = Some(self.from.map_or(row.minute, |f| f.min(row.minute)));
        self.to = self.to.max(row.minute + row.span);
    }

    fn point(&self, start: SystemTime) -> SeriesPoint {
        SeriesPoint {
            start,
            count: self.count,
            errors: self.errors,
            p50: self.histogram.percentile(50.0),
            p95: self.histogram.percentile(95.0),
            p99: self.histogram.percentile(99.0),
        }
    }
}

struct Row {
    name: String,
    minute: i64,
    span: i64,
    count: u64,
    errors: u64,
    queries: u64,
    histogram: DurationHistogram,
}

/// The first whole minute at or after `t`: a range takes the rows that start in it.
fn minutes_ceil(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() + u64::from(d.subsec_nanos() > 0)).div_ceil(60) as i64,
        Err(e) => -((e.duration().as_secs() / 60) as i64),
    }
}

fn minute_start(minute: i64) -> SystemTime {
    if minute >= 0 {
        UNIX_EPOCH + Duration::from_secs(minute as u64 * 60)
    } else {
        UNIX_EPOCH - Duration::from_secs(minute.unsigned_abs() * 60)
    }
}

impl StoreReader {
    /// Every route metrics row in `filter`'s range, environment and release (and of
    /// `route`, if given).
    fn metric_rows(
        &self,
        filter: &Filter,
        route: Option<&str>,
        mut each: impl FnMut(Row),
    ) -> Result<(), StoreError> {
        let mut sql = Sql::new(
            "SELECT name, minute, span, count, errors, queries, histogram FROM route_metrics",
        );
        sql.and_some("minute >= ?", filter.since.map(minutes_ceil));
        sql.and_some("minute < ?", filter.until.map(minutes_ceil));
        sql.and_some("name = ?", route.map(str::to_owned));
        sql.and_some("environment = ?", filter.environment.clone());
        sql.and_some("release = ?", filter.release.clone());
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(sql.text())?;
            let mut rows = stmt.query(sql.values())?;
            while let Some(r) = rows.next()? {
                let bytes = r.get_ref(6)?.as_blob().unwrap_or_default();
                each(Row {
                    name: r.get(0)?,
                    minute: r.get(1)?,
                    span: r.get::<_, i64>(2)?.max(1),
                    count: r.get::<_, i64>(3)?.max(0) as u64,
                    errors: r.get::<_, i64>(4)?.max(0) as u64,
                    queries: r.get::<_, i64>(5)?.max(0) as u64,
                    histogram: DurationHistogram::from_bytes(bytes).unwrap_or_default(),
                });
            }
            Ok(())
        })
    }

    /// Requests grouped by route, from every request (sampled or not): count,
    /// requests per minute, error rate, p50/p95/p99 duration (within 2%), mean query
    /// count and (when asked) Apdex.
    pub fn routes(&self, query: &RouteQuery) -> Result<Vec<RouteStats>, StoreError> {
        let mut by_route: HashMap<String, Totals> = HashMap::new();
        self.metric_rows(
            &query.filter,
            query.select.route.as_deref(),
            |row| match by_route.get_mut(&row.name) {
                Some(totals) => totals.add(&row),
                None => {
                    let mut totals = Totals::default();
                    totals.add(&row);
                    by_route.insert(row.name, totals);
                }
            },
        )?;
        // Requests per minute over the range asked, else over the minutes the route's
        // rows cover.
        let range = match (query.filter.since, query.filter.until) {
            (Some(since), Some(until)) => Some(until.duration_since(since).unwrap_or_default()),
            (Some(since), None) => {
                Some(SystemTime::now().duration_since(since).unwrap_or_default())
            }
            _ => None,
        }
        .map(|d| (d.as_secs_f64() / 60.0).max(1.0));
        let mut routes: Vec<RouteStats> = by_route
            .into_iter()
            .filter(|(_, t)| t.count > 0)
            .map(|(name, t)| {
                let count = t.count;
                let minutes =
                    range.unwrap_or_else(|| (t.to - t.from.unwrap_or(t.to)).max(1) as f64);
                RouteStats {
                    name,
                    count,
                    per_minute: count as f64 / minutes,
                    errors: t.errors,
                    error_rate: t.errors as f64 / count as f64,
                    p50: t.histogram.percentile(50.0),
                    p95: t.histogram.percentile(95.0),
                    p99: t.histogram.percentile(99.0),
                    mean_queries: t.queries as f64 / count as f64,
                    apdex: query.select.apdex.map(|limit| {
                        let satisfied = t.histogram.count_at_most(limit);
                        let tolerating = t.histogram.count_at_most(limit * 4);
                        (satisfied + tolerating) as f64 * 0.5 / count as f64
                    }),
                }
            })
            .collect();
        let by = |a: &RouteStats, b: &RouteStats| match query.select.sort {
            RouteSort::Count => b.count.cmp(&a.count),
            RouteSort::P95 => b.p95.cmp(&a.p95),
            RouteSort::ErrorRate => b
                .error_rate
                .total_cmp(&a.error_rate)
                .then(b.count.cmp(&a.count)),
            RouteSort::Queries => b.mean_queries.total_cmp(&a.mean_queries),
        };
        routes.sort_by(|a, b| by(a, b).then_with(|| a.name.cmp(&b.name)));
        Ok(routes
            .into_iter()
            .skip(query.filter.offset)
            .take(query.filter.limit)
            .collect())
    }

    /// Requests per bucket, from every request: count, errors and p50/p95/p99, and
    /// the same over the whole range, for the query's route, environment and release
    /// (its own time range is replaced by the buckets'). A row counts in the bucket its
    /// minute (or hour) starts in.
    pub fn request_series(
        &self,
        query: &RequestQuery,
        buckets: Buckets,
    ) -> Result<Series, StoreError> {
        let mut filter = query.filter.clone();
        filter.since = Some(buckets.since);
        filter.until = Some(buckets.until);
        let mut per_bucket: Vec<Totals> = (0..buckets.count).map(|_| Totals::default()).collect();
        let mut all = Totals::default();
        self.metric_rows(&filter, query.select.route.as_deref(), |row| {
            let at = crate::store::millis(minute_start(row.minute));
            if let Some(i) = buckets.index(at) {
                per_bucket[i].add(&row);
                all.add(&row);
            }
        })?;
        let points = buckets
            .starts()
            .zip(&per_bucket)
            .map(|(start, totals)| totals.point(start))
            .collect();
        Ok(Series {
            points,
            total: all.point(buckets.since),
        })
    }

    /// The durations of the query's requests (every request) counted into histogram
    /// bins whose upper bounds are `bounds` (the last bin takes everything above).
    pub fn duration_histogram(
        &self,
        query: &RequestQuery,
        bounds: &[Duration],
    ) -> Result<Vec<u64>, StoreError> {
        let mut histogram = DurationHistogram::new();
        self.metric_rows(&query.filter, query.select.route.as_deref(), |row| {
            histogram.merge(&row.histogram);
        })?;
        let mut bins = vec![0u64; bounds.len() + 1];
        for (low, n) in histogram.buckets() {
            bins[bounds.partition_point(|&b| b < low)] += n;
        }
        Ok(bins)
    }
}
