//! Upgrading files written by earlier schema versions. Each version's schema is frozen
//! in `tests/fixtures/schema_v<N>.sql`; a test builds a file at that version, with
//! rows as that version wrote them, and opens it with the current store.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use backstop_core::protocol::ProblemKind;
use backstop_store::{
    IssueKind, IssueQuery, PerfIssueQuery, SCHEMA_VERSION, SqliteStore, StoreError, StoreReader,
};
use common::*;
use rusqlite::{Connection, params};

const APPLICATION_ID: i64 = 0x4253_5450;

fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A version-1 file holding one error issue with one event, and one transaction with
/// its spans, as version 1 wrote them.
fn version_1_file(path: &Path) -> (backstop_core::Event, backstop_core::protocol::Transaction) {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch("BEGIN").unwrap();
    conn.execute_batch(include_str!("fixtures/schema_v1.sql"))
        .unwrap();
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();

    let event = error_event("old", "from version 1");
    let ts = millis(event.timestamp);
    conn.execute(
        "INSERT INTO issues (id, fingerprint, title, level, times_seen, first_seen, last_seen)
         VALUES (1, ?1, ?2, 'error', 1, ?3, ?3)",
        params![event.group_hash(), event.title(), ts],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO events (event_id, issue_id, timestamp, level, title, json)
         VALUES (?1, 1, ?2, 'error', ?3, ?4)",
        params![
            event.event_id.to_string(),
            ts,
            event.title(),
            serde_json::to_string(&event).unwrap()
        ],
    )
    .unwrap();
    let t = transaction("GET /users", Duration::from_millis(40), 3, 0);
    let start = millis(t.start_timestamp);
    conn.execute(
        "INSERT INTO transactions (id, event_id, name, op, status, http_status, is_error,
            timestamp, duration_us, span_count, query_count, json)
         VALUES (1, ?1, ?2, 'http.server', 'ok', 200, 0, ?3, 40000, 3, 3, ?4)",
        params![
            t.event_id.to_string(),
            t.name,
            start,
            serde_json::to_string(&t).unwrap()
        ],
    )
    .unwrap();
    for (seq, span) in t.spans.iter().enumerate() {
        conn.execute(
            "INSERT INTO spans (transaction_id, seq, span_id, op, description, start_us,
                duration_us)
             VALUES (1, ?1, ?2, ?3, ?4, 0, 100)",
            params![
                seq as i64,
                span.span_id.to_string(),
                span.op,
                span.description
            ],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    (event, t)
}

#[test]
fn a_version_1_file_is_upgraded_in_place_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let (event, old) = version_1_file(&path);

    // A reader cannot upgrade, and says so instead of failing on a missing table.
    let err = StoreReader::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::TooOld { found: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("v1.db"), "{err}");

    let mut store = SqliteStore::open(&path).unwrap();
    let reader = store.reader();
    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 3);

    // The old rows read as before: the issue is an error issue.
    let issues = reader.issues(&IssueQuery::new()).unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].kind, IssueKind::Error);
    assert_eq!(issues[0].title, "AppError: from version 1");
    assert_eq!(
        reader.request(old.event_id).unwrap().unwrap().summary.name,
        "GET /users"
    );
    assert!(
        reader
            .transaction_problems(old.event_id)
            .unwrap()
            .is_empty()
    );

    // New writes land beside them: the old issue counts on, problems are stored.
    let t = with_n_plus_one(
        transaction("GET /users", Duration::from_millis(60), 6, 0),
        "SELECT * FROM posts WHERE user_id = ?",
    );
    store
        .write(&[ev(error_event("old", "again")), tx(t.clone())])
        .unwrap();
    let error = reader
        .issue_by_fingerprint(&event.group_hash())
        .unwrap()
        .unwrap();
    assert_eq!(error.count, 2);
    let perf = reader.performance_issues(&PerfIssueQuery::new()).unwrap();
    assert_eq!(perf.len(), 1);
    assert_eq!(perf[0].kind, ProblemKind::NPlusOne);
    assert_eq!(reader.transaction_problems(t.event_id).unwrap()[0].count, 6);

    // Retention on the upgraded file deletes through the new table too.
    drop(store);
    let mut store = SqliteStore::builder(&path)
        .max_transactions(1)
        .open()
        .unwrap();
    store.prune_now().unwrap();
    assert_eq!(reader.transaction_count().unwrap(), 1);

    let conn = Connection::open(&path).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let dangling: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(dangling, 0);
    // Readers open it now.
    assert_eq!(StoreReader::open(&path).unwrap().event_count().unwrap(), 2);
}

#[test]
fn two_stores_opening_a_version_1_file_at_once_migrate_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    version_1_file(&path);
    let opened: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || SqliteStore::open(path).map(drop))
        })
        .collect();
    for handle in opened {
        handle.join().unwrap().unwrap();
    }
    let reader = StoreReader::open(&path).unwrap();
    assert_eq!(reader.issues(&IssueQuery::new()).unwrap().len(), 1);
}
