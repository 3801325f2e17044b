//! Replaying a store's events and transactions to a Sentry-protocol server: what
//! `backstop export` runs, for a team moving from the local store to Sentry.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use backstop_core::Dsn;
use rusqlite::{Connection, OpenFlags};

use crate::envelope::{self, Item, Kind};
use crate::ratelimit::RateLimits;
use crate::sender::{Transport, backoff};

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Events the server accepted.
    pub events_sent: u64,
    /// Transactions the server accepted.
    pub transactions_sent: u64,
    /// Records the server refused (a 4xx), or that could not be read.
    pub failed: u64,
    /// Records not sent because the server rate-limited their category.
    pub rate_limited: u64,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The DSN is malformed.
    #[error("invalid `--dsn`: {0}")]
    Dsn(#[from] backstop_core::InvalidDsn),
    /// The store could not be read.
    #[error("cannot read the Backstop store at {path}: {source}")]
    Store {
        /// The database path.
        path: std::path::PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The server could not be reached, even after retries.
    #[error("cannot reach {url} after {attempts} attempts: {reason} ({sent} records sent before)")]
    Unreachable {
        /// Where envelopes go.
        url: String,
        /// How many attempts were made for the last record.
        attempts: u32,
        /// The last failure.
        reason: String,
        /// How many records were delivered before.
        sent: u64,
    },
}

/// Attempts per record before a replay gives up on the server.
const ATTEMPTS: u32 = 5;

/// Sends every event and transaction stored at `store` (those of the last `since`, if
/// given) to the server of `dsn`, oldest first, one envelope each, honouring rate
/// limits and retrying failures. Sentry drops event ids it has already seen, so
/// running it twice sends nothing twice.
pub fn replay(
    store: &Path,
    dsn: &str,
    since: Option<Duration>,
) -> Result<ReplayReport, ReplayError> {
    let dsn: Dsn = dsn.trim().parse()?;
    let store_err = |source| ReplayError::Store {
        path: store.to_owned(),
        source,
    };
    let conn =
        Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(store_err)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(store_err)?;
    let from = since
        .and_then(|s| SystemTime::now().checked_sub(s))
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(i64::MIN, |d| d.as_millis() as i64);
    let transport = Transport::new(&dsn, Duration::from_secs(30), 1);
    let mut report = ReplayReport::default();
    let mut limits = RateLimits::default();
    for (kind, table) in [(Kind::Event, "events"), (Kind::Transaction, "transactions")] {
        // Rows are read in pages by id, so a long replay holds no read transaction open.
        let mut after = i64::MIN;
        loop {
            let mut select = conn
                .prepare_cached(&format!(
                    "SELECT id, event_id, json FROM {table}
                     WHERE timestamp >= ?1 AND id > ?2 ORDER BY id LIMIT 256"
                ))
                .map_err(store_err)?;
            let rows: Vec<(i64, String, String)> = select
                .query_map([from, after], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(store_err)?
                .collect::<Result<_, _>>()
                .map_err(store_err)?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            for (_, event_id, json) in rows {
                let Ok(item) = Item::from_payload(kind, event_id, json.into_bytes()) else {
                    report.failed += 1;
                    continue;
                };
                send_one(&transport, &dsn, &item, &mut limits, &mut report)?;
            }
        }
    }
    Ok(report)
}

fn send_one(
    transport: &Transport,
    dsn: &Dsn,
    item: &Item,
    limits: &mut RateLimits,
    report: &mut ReplayReport,
) -> Result<(), ReplayError> {
    let mut attempt = 0;
    loop {
        if let Some(until) = limits.limited(item.kind.category(), Instant::now()) {
            // A replay has time: wait out short limits, skip the category's records
            // under long ones.
            let wait = until.saturating_duration_since(Instant::now());
            if wait > Duration::from_secs(60) {
                report.rate_limited += 1;
                return Ok(());
            }
            std::thread::sleep(wait);
        }
        attempt += 1;
        let body = envelope::write(
            Some((item.kind, &item.event_id, &item.payload)),
            None,
            SystemTime::now(),
        );
        let reason = match transport.send(&body) {
            Ok(answer) => {
                limits.update(
                    answer.status,
                    answer.rate_limits.as_deref(),
                    answer.retry_after.as_deref(),
                    Instant::now(),
                );
                match answer.status {
                    200..=299 => {
                        match item.kind {
                            Kind::Event => report.events_sent += 1,
                            Kind::Transaction => report.transactions_sent += 1,
                        }
                        return Ok(());
                    }
                    // Sent again once the limit allows.
                    429 => continue,
                    500..=599 => format!("HTTP {}", answer.status),
                    _ => {
                        report.failed += 1;
                        return Ok(());
                    }
                }
            }
            Err(error) => error.to_string(),
        };
        if attempt >= ATTEMPTS {
            return Err(ReplayError::Unreachable {
                url: dsn.envelope_url(),
                attempts: attempt,
                reason,
                sent: report.events_sent + report.transactions_sent,
            });
        }
        std::thread::sleep(backoff(
            attempt,
            Duration::from_millis(500),
            Duration::from_secs(10),
        ));
    }
}
