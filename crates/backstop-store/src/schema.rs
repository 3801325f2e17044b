//! The versioned schema: opening a connection, checking the file, and migrating it.
//!
//! `PRAGMA user_version` holds the schema version; `PRAGMA application_id` marks the file
//! as Backstop's. A migration is one entry in [`MIGRATIONS`]; adding one is appending a
//! string. A migration only adds (tables, columns with defaults, indexes), so upgrading
//! a large file is instant; an older build refuses a newer file ([`StoreError::TooNew`])
//! and a reader refuses an older one until a writer has upgraded it
//! ([`StoreError::TooOld`]).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::StoreError;

/// Marks a Backstop database: `BSTP` in ASCII.
pub(crate) const APPLICATION_ID: i64 = 0x4253_5450;

/// Migrations, in order. `MIGRATIONS[n]` takes the schema from version `n` to `n + 1`.
/// Each runs in its own transaction together with the `user_version` bump.
pub(crate) const MIGRATIONS: &[&str] = &[
    // Version 1: issues, events, transactions, spans, releases.
    r#"
    CREATE TABLE releases (
        version     TEXT PRIMARY KEY,
        first_seen  INTEGER NOT NULL,
        last_seen   INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE issues (
        id                INTEGER PRIMARY KEY,
        fingerprint       TEXT NOT NULL UNIQUE,
        title             TEXT NOT NULL,
        culprit           TEXT,
        level             TEXT NOT NULL,
        status            TEXT NOT NULL DEFAULT 'unresolved'
                          CHECK (status IN ('unresolved', 'resolved', 'ignored')),
        regressed         INTEGER NOT NULL DEFAULT 0,
        times_seen        INTEGER NOT NULL DEFAULT 0,
        users             INTEGER NOT NULL DEFAULT 0,
        first_seen        INTEGER NOT NULL,
        last_seen         INTEGER NOT NULL,
        first_release     TEXT,
        last_release      TEXT,
        first_environment TEXT,
        last_environment  TEXT,
        status_changed    INTEGER
    );
    CREATE INDEX issues_last_seen ON issues (last_seen);
    CREATE INDEX issues_first_release ON issues (first_release);

    CREATE TABLE issue_users (
        issue_id  INTEGER NOT NULL REFERENCES issues (id),
        user_key  TEXT NOT NULL,
        PRIMARY KEY (issue_id, user_key)
    ) WITHOUT ROWID;

    CREATE TABLE issue_releases (
        issue_id  INTEGER NOT NULL REFERENCES issues (id),
        release   TEXT NOT NULL,
        PRIMARY KEY (issue_id, release)
    ) WITHOUT ROWID;
    CREATE INDEX issue_releases_release ON issue_releases (release);

    CREATE TABLE issue_environments (
        issue_id     INTEGER NOT NULL REFERENCES issues (id),
        environment  TEXT NOT NULL,
        PRIMARY KEY (issue_id, environment)
    ) WITHOUT ROWID;

    CREATE TABLE events (
        id           INTEGER PRIMARY KEY,
        event_id     TEXT NOT NULL UNIQUE,
        issue_id     INTEGER NOT NULL REFERENCES issues (id),
        timestamp    INTEGER NOT NULL,
        level        TEXT NOT NULL,
        title        TEXT NOT NULL,
        culprit      TEXT,
        transaction_name TEXT,
        release      TEXT,
        environment  TEXT,
        user_key     TEXT,
        trace_id     TEXT,
        json         TEXT NOT NULL
    );
    CREATE INDEX events_issue ON events (issue_id, id);
    CREATE INDEX events_timestamp ON events (timestamp);

    CREATE TABLE transactions (
        id           INTEGER PRIMARY KEY,
        event_id     TEXT NOT NULL UNIQUE,
        trace_id     TEXT,
        name         TEXT NOT NULL,
        op           TEXT,
        status       TEXT,
        http_status  INTEGER,
        is_error     INTEGER NOT NULL,
        timestamp    INTEGER NOT NULL,
        duration_us  INTEGER NOT NULL,
        span_count   INTEGER NOT NULL,
        query_count  INTEGER NOT NULL,
        release      TEXT,
        environment  TEXT,
        json         TEXT NOT NULL
    );
    CREATE INDEX transactions_name ON transactions (name, duration_us);
    CREATE INDEX transactions_timestamp ON transactions (timestamp);

    CREATE TABLE spans (
        transaction_id  INTEGER NOT NULL REFERENCES transactions (id),
        seq             INTEGER NOT NULL,
        span_id         TEXT NOT NULL,
        parent_span_id  TEXT,
        op              TEXT,
        description     TEXT,
        status          TEXT,
        start_us        INTEGER NOT NULL,
        duration_us     INTEGER NOT NULL,
        PRIMARY KEY (transaction_id, seq)
    ) WITHOUT ROWID;
    "#,
    // Version 2: performance problems. They are issues like errors (one list, one
    // status, regressions, new issues per release), told apart by `kind`; each
    // occurrence links the issue to the transaction it was found in.
    r#"
    ALTER TABLE issues ADD COLUMN kind TEXT NOT NULL DEFAULT 'error';
    ALTER TABLE issues ADD COLUMN query_group TEXT;

    CREATE TABLE transaction_problems (
        transaction_id  INTEGER NOT NULL REFERENCES transactions (id),
        seq             INTEGER NOT NULL,
        issue_id        INTEGER NOT NULL REFERENCES issues (id),
        description     TEXT NOT NULL,
        count           INTEGER NOT NULL,
        duration_us     INTEGER NOT NULL,
        parent_span_id  TEXT,
        span_ids        TEXT NOT NULL,
        PRIMARY KEY (transaction_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX transaction_problems_issue ON transaction_problems (issue_id, transaction_id);
    "#,
    // Version 3: indexes for the dashboard's reads. A transaction row carries its JSON,
    // so the route table and the request series read covering indexes instead of the
    // rows. Also: an issue's events over time, the
    // errors of one trace, one release's events and requests, one statement's spans.
    r#"
    CREATE INDEX events_issue_time ON events (issue_id, timestamp);
    CREATE INDEX events_trace ON events (trace_id) WHERE trace_id IS NOT NULL;
    CREATE INDEX events_release ON events (release);
    CREATE INDEX transactions_release ON transactions (release, name, duration_us, is_error, query_count);
    CREATE INDEX transactions_cover ON transactions
        (timestamp, name, duration_us, is_error, query_count, environment, release);
    CREATE INDEX transactions_route ON transactions
        (name, timestamp, duration_us, is_error, query_count, environment, release);
    CREATE INDEX spans_description ON spans (description, transaction_id, duration_us);
    CREATE INDEX events_transaction ON events (transaction_name, issue_id);
    CREATE INDEX transactions_trace ON transactions (trace_id) WHERE trace_id IS NOT NULL;
    "#,
    // Version 4: the export outbox. Envelope items waiting for delivery to a
    // Sentry-protocol server, oldest first; `size` is the payload's length, kept so the
    // byte bound needs no scan.
    r#"
    CREATE TABLE outbox (
        id        INTEGER PRIMARY KEY,
        created   INTEGER NOT NULL,
        kind      TEXT NOT NULL,
        event_id  TEXT NOT NULL,
        spans     INTEGER NOT NULL DEFAULT 0,
        size      INTEGER NOT NULL,
        payload   BLOB NOT NULL
    );
    "#,
    // Version 5: the alert history: every alert sent, failed or suppressed by its interval. Stands
    // alone (no foreign keys), so an issue pruned later keeps its alerts' record.
    r#"
    CREATE TABLE alert_history (
        id         INTEGER PRIMARY KEY,
        at         INTEGER NOT NULL,
        rule       TEXT NOT NULL,
        channel    TEXT,
        status     TEXT NOT NULL CHECK (status IN ('sent', 'failed', 'suppressed')),
        issue_id   INTEGER,
        title      TEXT NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        error      TEXT
    );
    CREATE INDEX alert_history_issue ON alert_history (issue_id, rule);
    "#,
    // Version 6: route metrics from every request. One row per route, minute,
    // environment and release (`''` for none); `span` is 1 for a minute's row and 60
    // for an hour's, into which minute rows are rolled up once they are a day old.
    // `minute` is minutes since the Unix epoch (an hour's first minute). `histogram`
    // is backstop_core's DurationHistogram, encoded. Keyed by time first: every read
    // is over a time range.
    r#"
    CREATE TABLE route_metrics (
        minute      INTEGER NOT NULL,
        name        TEXT NOT NULL,
        environment TEXT NOT NULL DEFAULT '',
        release     TEXT NOT NULL DEFAULT '',
        span        INTEGER NOT NULL DEFAULT 1,
        count       INTEGER NOT NULL,
        errors      INTEGER NOT NULL,
        queries     INTEGER NOT NULL,
        histogram   BLOB NOT NULL,
        PRIMARY KEY (minute, name, environment, release, span)
    ) WITHOUT ROWID;
    "#,
    // Version 7: the rows a query span returned or changed (`db.rows_returned`, else
    // `db.rows_affected`), for the queries page. NULL where the driver did not say.
    r#"
    ALTER TABLE spans ADD COLUMN rows INTEGER;
    "#,
    // Version 8: the outbox's bounds are checked after every push from this index
    // alone (it covers `count(*)` and `sum(size)`), not by reading every queued row.
    r#"
    CREATE INDEX outbox_size ON outbox (size);
    "#,
];

/// The schema version this build writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// How a connection is opened.
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    /// The writer: creates and migrates the file.
    Write,
    /// A reader: read-only, never creates anything.
    Read,
}

pub(crate) fn is_memory(path: &Path) -> bool {
    path.as_os_str() == ":memory:"
}

/// Opens a connection, sets it up and (for the writer) migrates the schema.
pub(crate) fn open(
    path: &Path,
    mode: Mode,
    busy_timeout: Duration,
    max_pages: Option<u64>,
) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let flags = match mode {
        Mode::Write => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Mode::Read => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if is_memory(path) {
        Connection::open_in_memory()
    } else {
        Connection::open_with_flags(path, flags)
    }
    .map_err(open_err)?;
    conn.busy_timeout(busy_timeout).map_err(open_err)?;
    // The writer cycles through about twenty statements; the default cache holds 16.
    conn.set_prepared_statement_cache_capacity(64);
    // The first read of the header is where a file that is not SQLite shows itself.
    let (version, app_id): (i64, i64) = conn
        .query_row(
            "SELECT user_version, application_id FROM pragma_user_version, pragma_application_id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|source| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotBackstop {
                path: path.to_owned(),
                reason: "the file is not an SQLite database".into(),
            },
            _ => open_err(source),
        })?;
    check(path, &conn, version, app_id)?;
    if let Mode::Write = mode {
        setup_writer(path, &conn, version, max_pages)?;
    } else if version == 0 {
        return Err(StoreError::NotBackstop {
            path: path.to_owned(),
            reason: "the database is empty (no store has written to it yet)".into(),
        });
    } else if version < VERSION {
        // A reader cannot migrate; the queries would fail on missing tables instead.
        return Err(StoreError::TooOld {
            path: path.to_owned(),
            found: version,
            supported: VERSION,
        });
    }
    Ok(conn)
}

fn check(path: &Path, conn: &Connection, version: i64, app_id: i64) -> Result<(), StoreError> {
    let not_ours = |reason: String| StoreError::NotBackstop {
        path: path.to_owned(),
        reason,
    };
    if version == 0 {
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        if tables > 0 {
            return Err(not_ours(format!(
                "it has {tables} table(s) but no Backstop schema version"
            )));
        }
        return Ok(());
    }
    if app_id != APPLICATION_ID {
        return Err(not_ours(format!(
            "its application_id is {app_id:#x}, not Backstop's {APPLICATION_ID:#x}"
        )));
    }
    if version > VERSION {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found: version,
            supported: VERSION,
        });
    }
    Ok(())
}

fn setup_writer(
    path: &Path,
    conn: &Connection,
    version: i64,
    max_pages: Option<u64>,
) -> Result<(), StoreError> {
    let err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    if version == 0 {
        // Only settable before the first table exists: freed pages can then be given
        // back to the file system after pruning.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(err)?;
    }
    if !is_memory(path) {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(target: "backstop", path = %path.display(), "SQLite refused WAL mode (got {mode}); readers may wait for the writer");
        }
    }
    // In WAL mode NORMAL keeps every commit across a process crash; only a power loss
    // can take the last few.
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = NORMAL;
         PRAGMA journal_size_limit = 33554432;
         PRAGMA wal_autocheckpoint = 4000;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16000;",
    )
    .map_err(err)?;
    if let Some(pages) = max_pages {
        conn.pragma_update(None, "max_page_count", pages as i64)
            .map_err(err)?;
    }
    migrate(path, conn, version)
}

fn migrate(path: &Path, conn: &Connection, from: i64) -> Result<(), StoreError> {
    let err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let to = i as i64 + 1;
        // IMMEDIATE: two processes opening a new file at once serialize here, and the
        // loser re-checks the version instead of running the migration twice.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        let result = (|| {
            let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if current >= to {
                return Ok(());
            }
            conn.execute_batch(sql)?;
            conn.pragma_update(None, "application_id", APPLICATION_ID)?;
            conn.pragma_update(None, "user_version", to)?;
            Ok(())
        })();
        match result {
            Ok(()) => conn.execute_batch("COMMIT").map_err(err)?,
            Err(source) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(err(source));
            }
        }
        tracing::debug!(target: "backstop", path = %path.display(), version = to, "migrated the store");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    /// Statements only, without comments or layout.
    fn statements(sql: &str) -> Vec<String> {
        sql.lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join(" ")
            .split(';')
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty())
            .collect()
    }

    #[test]
    fn a_released_migration_is_never_edited() {
        // Files in the wild were created by it; the migration tests build version-1
        // files from this frozen copy.
        assert_eq!(
            statements(MIGRATIONS[0]),
            statements(include_str!("../tests/fixtures/schema_v1.sql"))
        );
    }
}
