//! Route metrics in the store: one row per route and minute, merged as parts arrive,
//! rolled up to hour rows once a day old, and kept for 30 days.
//!
//! A minute's row takes about 150 bytes (its histogram is a few dozen buckets). 50
//! routes make 72,000 minute rows a day; rolled up to hours after a day, 30 days of
//! them stay near 25 MB. When the file passes [`MetricsRetention::max_bytes`] all the
//! same (many more routes), minute rows are rolled up after an hour instead.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backstop_core::{DurationHistogram, RouteMinute};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// How long route metrics are kept, and at what resolution.
///
/// ```
/// use std::time::Duration;
/// use backstop_store::{MetricsRetention, SqliteStore};
///
/// let store = SqliteStore::builder(":memory:")
///     .metrics_retention(MetricsRetention {
///         minutes_for: Duration::from_secs(6 * 3600),
///         ..MetricsRetention::default()
///     })
///     .open()
///     .unwrap();
/// # drop(store);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsRetention {
    /// Minute rows older than this are rolled up into hour rows (default 1 day).
    pub minutes_for: Duration,
    /// Rows older than this are deleted (default 30 days).
    pub max_age: Duration,
    /// Past this file size, minute rows are rolled up once an hour old (default 50 MB).
    pub max_bytes: u64,
}

impl Default for MetricsRetention {
    fn default() -> Self {
        MetricsRetention {
            minutes_for: Duration::from_secs(86_400),
            max_age: Duration::from_secs(30 * 86_400),
            max_bytes: 50 * 1024 * 1024,
        }
    }
}

/// Roll-up and age pruning of route metrics run at most this often: not with every
/// batch, whose cost would then not shrink with the traffic.
pub(crate) const ROLL_UP_EVERY: Duration = Duration::from_secs(60);

/// One row's figures.
#[derive(Default)]
struct Figures {
    count: i64,
    errors: i64,
    queries: i64,
    histogram: DurationHistogram,
}

impl Figures {
    fn add(&mut self, count: i64, errors: i64, queries: i64, histogram: &DurationHistogram) {
        self.count += count;
        self.errors += errors;
        self.queries += queries;
        self.histogram.merge(histogram);
    }
}

/// The key of a row: minute (an hour's first minute for `span` 60), route,
/// environment, release (`""` for none), span.
type Key = (i64, String, String, String, i64);

/// Adds `minutes` to their rows, in one transaction.
pub(crate) fn write(conn: &mut Connection, minutes: &[RouteMinute]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for m in minutes {
        let key = (
            m.minute_index(),
            m.route.clone(),
            m.environment.clone(),
            m.release.clone().unwrap_or_default(),
            1,
        );
        let mut figures = Figures::default();
        figures.add(
            clamp(m.count),
            clamp(m.errors),
            clamp(m.queries),
            &m.durations,
        );
        merge_row(&tx, &key, figures)?;
    }
    tx.commit()
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Adds `figures` to the row `key`, creating it if needed.
fn merge_row(tx: &Connection, key: &Key, mut figures: Figures) -> rusqlite::Result<()> {
    let existing: Option<(i64, i64, i64, Vec<u8>)> = tx
        .prepare_cached(
            "SELECT count, errors, queries, histogram FROM route_metrics
             WHERE minute = ?1 AND name = ?2 AND environment = ?3 AND release = ?4 AND span = ?5",
        )?
        .query_row(params![key.0, key.1, key.2, key.3, key.4], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    if let Some((count, errors, queries, bytes)) = existing {
        // A row this store did not write whole is replaced, not merged into.
        let histogram = DurationHistogram::from_bytes(&bytes).unwrap_or_default();
        figures.add(count, errors, queries, &histogram);
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO route_metrics
            (minute, name, environment, release, span, count, errors, queries, histogram)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        key.0,
        key.1,
        key.2,
        key.3,
        key.4,
        figures.count,
        figures.errors,
        figures.queries,
        figures.histogram.to_bytes(),
    ])?;
    Ok(())
}

/// Rolls minute rows past `retention.minutes_for` (or an hour, over `max_bytes`) up
/// into hour rows, an hour at a time, and deletes rows past `max_age`; stops at
/// `deadline`, to carry on next time. Returns how many rows it rolled up.
pub(crate) fn roll_up(
    conn: &mut Connection,
    retention: &MetricsRetention,
    now: SystemTime,
    deadline: Option<Instant>,
) -> rusqlite::Result<u64> {
    let now = (now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 60) as i64;
    let file_bytes: i64 = conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get(0),
    )?;
    let keep = if file_bytes as u64 > retention.max_bytes {
        60
    } else {
        (retention.minutes_for.as_secs() / 60) as i64
    };
    let cutoff = now - keep.max(60);
    let mut rolled = 0u64;
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(rolled);
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let first: Option<i64> = tx.query_row(
            "SELECT min(minute) FROM route_metrics WHERE span = 1 AND minute < ?1",
            [cutoff],
            |r| r.get(0),
        )?;
        let Some(first) = first else { break };
        let hour = first - first.rem_euclid(60);
        let end = (hour + 60).min(cutoff);
        let mut hours: HashMap<Key, Figures> = HashMap::new();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT name, environment, release, count, errors, queries, histogram
                 FROM route_metrics WHERE span = 1 AND minute >= ?1 AND minute < ?2",
            )?;
            let mut rows = stmt.query(params![hour, end])?;
            while let Some(r) = rows.next()? {
                let key = (hour, r.get(0)?, r.get(1)?, r.get(2)?, 60);
                let bytes = r.get_ref(6)?.as_blob().unwrap_or_default();
                let histogram = DurationHistogram::from_bytes(bytes).unwrap_or_default();
                hours
                    .entry(key)
                    .or_default()
                    .add(r.get(3)?, r.get(4)?, r.get(5)?, &histogram);
                rolled += 1;
            }
        }
        for (key, figures) in hours {
            merge_row(&tx, &key, figures)?;
        }
        tx.execute(
            "DELETE FROM route_metrics WHERE span = 1 AND minute >= ?1 AND minute < ?2",
            params![hour, end],
        )?;
        tx.commit()?;
    }
    let oldest = now - (retention.max_age.as_secs() / 60) as i64;
    conn.execute("DELETE FROM route_metrics WHERE minute < ?1", [oldest])?;
    Ok(rolled)
}
