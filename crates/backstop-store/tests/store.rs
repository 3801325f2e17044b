//! The store against real SQLite files: schema, grouping, the read API, retention.

mod common;

use std::time::{Duration, SystemTime};

use backstop_core::{Level, Options, RequestScope};
use backstop_store::{
    Cursor, IssueQuery, IssueSort, IssueStatus, RequestQuery, RouteQuery, RouteSort, SqliteStore,
    StoreError, StoreReader,
};
use common::*;
use rusqlite::Connection;

fn temp_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("backstop.db")).unwrap();
    (dir, store)
}

#[test]
fn a_new_file_is_wal_incremental_and_versioned() {
    let (dir, store) = temp_store();
    drop(store);
    let conn = Connection::open(dir.path().join("backstop.db")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let auto_vacuum: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(auto_vacuum, 2, "incremental");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, backstop_store::SCHEMA_VERSION);
    for table in [
        "issues",
        "events",
        "transactions",
        "spans",
        "releases",
        "transaction_problems",
    ] {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{table}");
    }
}

#[test]
fn reopening_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backstop.db");
    let mut store = SqliteStore::open(&path).unwrap();
    store.write(&[ev(error_event("a", "boom"))]).unwrap();
    drop(store);
    let mut store = SqliteStore::open(&path).unwrap();
    store.write(&[ev(error_event("a", "boom"))]).unwrap();
    let issues = store.reader().issues(&IssueQuery::new()).unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].count, 2);
}

#[test]
fn bad_paths_and_foreign_files_are_typed_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("no/such/dir/backstop.db");
    let err = SqliteStore::open(&missing).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![b'x'; 8192]).unwrap();
    let err = SqliteStore::open(&garbage).unwrap_err();
    assert!(matches!(err, StoreError::NotBackstop { .. }), "{err:?}");
    assert!(err.to_string().contains("garbage.db"), "{err}");

    let foreign = dir.path().join("foreign.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
        .unwrap();
    let err = SqliteStore::open(&foreign).unwrap_err();
    assert!(matches!(err, StoreError::NotBackstop { .. }), "{err:?}");
    assert!(err.to_string().contains("foreign.db"), "{err}");

    let newer = dir.path().join("newer.db");
    drop(SqliteStore::open(&newer).unwrap());
    Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 999")
        .unwrap();
    let err = SqliteStore::open(&newer).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 999, .. }),
        "{err:?}"
    );

    let err = StoreReader::open(dir.path().join("absent.db")).unwrap_err();
    assert!(err.to_string().contains("absent.db"), "{err}");
}

#[test]
fn events_group_into_issues_with_users_releases_and_culprit() {
    let (_dir, mut store) = temp_store();
    let t0 = SystemTime::now() - Duration::from_secs(3600);
    let mut first = released(at(error_event("g1", "first"), t0), "shop@1.0", "staging");
    first.culprit = Some("shop::checkout::pay".into());
    let second = with_user(
        released(
            at(error_event("g1", "second"), t0 + Duration::from_secs(60)),
            "shop@1.1",
            "production",
        ),
        Some("42"),
        Some("10.0.0.1"),
    );
    let third = with_user(
        at(error_event("g1", "third"), t0 + Duration::from_secs(30)),
        None,
        Some("10.0.0.2"),
    );
    let same_user = with_user(
        at(error_event("g1", "again"), t0 + Duration::from_secs(10)),
        Some("42"),
        None,
    );
    let mut other = at(error_event("g2", "other"), t0);
    other.transaction = Some("GET /other".into());
    store
        .write(&[ev(first), ev(second), ev(third), ev(same_user), ev(other)])
        .unwrap();

    let reader = store.reader();
    let issues = reader
        .issues(&IssueQuery::new().sort(IssueSort::Count))
        .unwrap();
    assert_eq!(issues.len(), 2);
    let g1 = &issues[0];
    assert_eq!(g1.count, 4);
    assert_eq!(g1.users, 2, "user 42 (twice) and one IP");
    assert_eq!(g1.title, "AppError: second", "title of the latest event");
    assert_eq!(g1.level, Level::Error);
    assert_eq!(g1.status, IssueStatus::Unresolved);
    assert!(!g1.regressed);
    assert_eq!(g1.first_release.as_deref(), Some("shop@1.0"));
    assert_eq!(g1.last_release.as_deref(), Some("shop@1.1"));
    assert_eq!(g1.first_environment.as_deref(), Some("staging"));
    assert_eq!(g1.last_environment.as_deref(), Some("production"));
    let ms = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    assert_eq!(ms(g1.first_seen), ms(t0));
    assert_eq!(ms(g1.last_seen), ms(t0 + Duration::from_secs(60)));
    // The latest event had no culprit of its own and no transaction.
    assert_eq!(
        issues[1].culprit.as_deref(),
        Some("GET /other"),
        "falls back to the transaction"
    );

    let g1_first = reader.issues(&IssueQuery::new().text("FIRST")).unwrap();
    assert!(g1_first.is_empty(), "the title follows the latest event");
    let detail = reader.issue(g1.id, 10).unwrap().unwrap();
    assert_eq!(detail.latest_events.len(), 4);
    assert_eq!(detail.releases, ["shop@1.0", "shop@1.1"]);
    assert_eq!(detail.environments, ["production", "staging"]);
}

#[test]
fn a_resolved_issue_that_recurs_is_reopened_as_regressed() {
    let (_dir, mut store) = temp_store();
    let reader = store.reader();
    store.write(&[ev(error_event("r", "x"))]).unwrap();
    let id = reader.issues(&IssueQuery::new()).unwrap()[0].id;

    assert!(reader.set_issue_status(id, IssueStatus::Resolved).unwrap());
    let issue = &reader.issues(&IssueQuery::new()).unwrap()[0];
    assert_eq!(issue.status, IssueStatus::Resolved);

    store.write(&[ev(error_event("r", "x"))]).unwrap();
    let issue = &reader.issues(&IssueQuery::new()).unwrap()[0];
    assert_eq!(issue.status, IssueStatus::Unresolved);
    assert!(issue.regressed);
    assert_eq!(issue.count, 2);

    // Ignored issues count new events but stay ignored, and resolving clears the flag.
    assert!(reader.set_issue_status(id, IssueStatus::Ignored).unwrap());
    store.write(&[ev(error_event("r", "x"))]).unwrap();
    let issue = &reader.issues(&IssueQuery::new()).unwrap()[0];
    assert_eq!(issue.status, IssueStatus::Ignored);
    assert!(!issue.regressed);
    assert_eq!(issue.count, 3);

    assert!(
        !reader
            .set_issue_status(backstop_store::IssueId(9999), IssueStatus::Resolved)
            .unwrap()
    );
}

#[test]
fn issue_lists_filter_sort_and_page() {
    let (_dir, mut store) = temp_store();
    let reader = store.reader();
    let t0 = SystemTime::now() - Duration::from_secs(600);
    let mut batch = Vec::new();
    // "busy": 5 events, 1 user; "wide": 2 events, 2 users; "late": 1 event, seen last.
    for i in 0..5 {
        batch.push(ev(with_user(
            released(
                at(
                    error_event("busy", "busy 100%"),
                    t0 + Duration::from_secs(i),
                ),
                "v1",
                "production",
            ),
            Some("u1"),
            None,
        )));
    }
    batch.push(ev(with_user(
        released(at(error_event("wide", "wide_thing"), t0), "v1", "staging"),
        Some("a"),
        None,
    )));
    batch.push(ev(with_user(
        released(at(error_event("wide", "wide_thing"), t0), "v2", "staging"),
        Some("b"),
        None,
    )));
    batch.push(ev(released(
        at(
            error_event("late", "late one"),
            t0 + Duration::from_secs(100),
        ),
        "v2",
        "production",
    )));
    store.write(&batch).unwrap();

    let titles = |q: IssueQuery| -> Vec<String> {
        reader
            .issues(&q)
            .unwrap()
            .into_iter()
            .map(|i| i.title)
            .collect()
    };
    assert_eq!(
        titles(IssueQuery::new()),
        [
            "AppError: late one",
            "AppError: busy 100%",
            "AppError: wide_thing"
        ]
    );
    assert_eq!(
        titles(IssueQuery::new().sort(IssueSort::Count))[0],
        "AppError: busy 100%"
    );
    assert_eq!(
        titles(IssueQuery::new().sort(IssueSort::Users))[0],
        "AppError: wide_thing"
    );
    assert_eq!(
        titles(IssueQuery::new().release("v2")),
        ["AppError: late one", "AppError: wide_thing"]
    );
    assert_eq!(
        titles(IssueQuery::new().first_release("v2")),
        ["AppError: late one"]
    );
    assert_eq!(
        titles(IssueQuery::new().environment("staging")),
        ["AppError: wide_thing"]
    );
    // LIKE wildcards in the search text are literal.
    assert_eq!(
        titles(IssueQuery::new().text("100%")),
        ["AppError: busy 100%"]
    );
    assert_eq!(
        titles(IssueQuery::new().text("e_t")),
        ["AppError: wide_thing"]
    );
    assert!(titles(IssueQuery::new().text("%")).len() == 1);
    assert_eq!(
        titles(IssueQuery::new().limit(1).offset(1)),
        ["AppError: busy 100%"]
    );
    assert_eq!(
        reader
            .issue_count(&IssueQuery::new().release("v1"))
            .unwrap(),
        2
    );
    // Keyset paging walks every sort to the end, each issue once, in the same order
    // as one big page.
    for sort in [
        IssueSort::LastSeen,
        IssueSort::FirstSeen,
        IssueSort::Count,
        IssueSort::Users,
    ] {
        let whole = titles(IssueQuery::new().sort(sort));
        let mut walked = Vec::new();
        let mut query = IssueQuery::new().sort(sort).limit(1);
        loop {
            let page = reader.issues(&query).unwrap();
            let Some(last) = page.last() else { break };
            query = query.after(Cursor::after_issue(last, sort));
            walked.extend(page.into_iter().map(|i| i.title));
        }
        assert_eq!(walked, whole, "{sort:?}");
    }
    // The time range: seen at or after `since`, first seen before `until`.
    assert_eq!(
        titles(IssueQuery::new().since(t0 + Duration::from_secs(50))),
        ["AppError: late one"]
    );
    assert_eq!(
        titles(IssueQuery::new().until(t0 + Duration::from_secs(50))).len(),
        2
    );

    let id = reader.issues(&IssueQuery::new()).unwrap()[0].id;
    reader.set_issue_status(id, IssueStatus::Resolved).unwrap();
    assert_eq!(
        titles(IssueQuery::new().status(IssueStatus::Resolved)),
        ["AppError: late one"]
    );
    assert_eq!(
        titles(IssueQuery::new().status(IssueStatus::Unresolved)).len(),
        2
    );

    let releases = reader.releases().unwrap();
    let v1 = releases.iter().find(|r| r.version == "v1").unwrap();
    let v2 = releases.iter().find(|r| r.version == "v2").unwrap();
    assert_eq!((v1.new_issues, v1.issues), (2, 2));
    assert_eq!((v2.new_issues, v2.issues), (1, 2));
    assert_eq!(releases[0].version, "v2", "most recently seen first");
}

#[test]
fn one_event_in_full_and_duplicates_are_ignored() {
    let (_dir, mut store) = temp_store();
    let reader = store.reader();
    let mut event = with_user(error_event("e", "full"), Some("7"), None);
    event.tags.insert("feature".into(), "checkout".into());
    event
        .breadcrumbs
        .values
        .push(backstop_core::Breadcrumb::new("cart", "added"));
    store
        .write(&[ev(event.clone()), ev(event.clone())])
        .unwrap();
    store.write(&[ev(event.clone())]).unwrap();

    let stored = reader.event(event.event_id).unwrap().unwrap();
    assert_eq!(stored.event, json_roundtrip(&event));
    let issue = reader.issue(stored.issue_id, 50).unwrap().unwrap();
    assert_eq!(issue.issue.count, 1, "a repeated event id is counted once");
    assert_eq!(issue.latest_events[0].event_id, event.event_id);
    assert_eq!(issue.latest_events[0].user.as_deref(), Some("id:7"));
    assert!(
        reader
            .event(backstop_core::EventId::new())
            .unwrap()
            .is_none()
    );
    assert_eq!(reader.event_count().unwrap(), 1);
}

#[test]
fn routes_have_nearest_rank_percentiles_error_rates_and_query_counts() {
    let dir = tempfile::tempdir().unwrap();
    // Every transaction kept: the request lists below count them.
    let mut store = SqliteStore::builder(dir.path().join("backstop.db"))
        .no_keep_budget()
        .open()
        .unwrap();
    let reader = store.reader();
    let now = SystemTime::now() - Duration::from_secs(60);
    let mut batch = Vec::new();
    // Durations 1..=100 ms in shuffled order; every 10th is a 500; i % 4 queries.
    let mut order: Vec<u32> = (1..=100).collect();
    fastrand_shuffle(&mut order);
    for i in order {
        let status = if i % 10 == 0 { 500 } else { 200 };
        batch.push(tx(transaction_at(
            "GET /users",
            now,
            Duration::from_millis(i.into()),
            (i % 4) as usize,
            1,
            status,
        )));
    }
    for i in 1..=3u64 {
        batch.push(tx(transaction_at(
            "GET /slow",
            now,
            Duration::from_millis(1000 * i),
            0,
            0,
            404,
        )));
    }
    write_with_metrics(&mut store, &batch);

    let routes = reader.routes(&RouteQuery::new()).unwrap();
    assert_eq!(routes.len(), 2);
    let users = &routes[0];
    assert_eq!(users.name, "GET /users");
    assert_eq!(users.count, 100);
    assert_eq!(users.errors, 10);
    assert!((users.error_rate - 0.1).abs() < 1e-9);
    assert!(
        near(users.p50, Duration::from_millis(50)),
        "{:?}",
        users.p50
    );
    assert!(
        near(users.p95, Duration::from_millis(95)),
        "{:?}",
        users.p95
    );
    assert!(
        near(users.p99, Duration::from_millis(99)),
        "{:?}",
        users.p99
    );
    // i % 4 over 1..=100: 25 each of 0,1,2,3 -> mean 1.5.
    assert!(
        (users.mean_queries - 1.5).abs() < 1e-9,
        "{}",
        users.mean_queries
    );

    let slow = &routes[1];
    assert_eq!(slow.errors, 0, "4xx is not a server error");
    assert!(
        near(slow.p50, Duration::from_secs(2)),
        "ceil(0.5 * 3) = 2nd"
    );
    assert!(near(slow.p95, Duration::from_secs(3)));
    assert_eq!(
        reader
            .routes(&RouteQuery::new().sort(RouteSort::P95))
            .unwrap()[0]
            .name,
        "GET /slow"
    );
    assert!(
        reader
            .routes(&RouteQuery::new().since(SystemTime::now() + Duration::from_secs(60)))
            .unwrap()
            .is_empty()
    );

    let slowest = reader
        .slowest_requests(&RequestQuery::new().limit(4))
        .unwrap();
    let durations: Vec<_> = slowest.iter().map(|r| r.duration).collect();
    assert_eq!(
        durations,
        [3000, 2000, 1000, 100].map(Duration::from_millis)
    );
    let users_slowest = reader
        .slowest_requests(&RequestQuery::new().route("GET /users").limit(1))
        .unwrap();
    assert_eq!(users_slowest[0].duration, Duration::from_millis(100));
    assert_eq!(users_slowest[0].http_status, Some(500));
    assert!(users_slowest[0].is_error);
    assert_eq!(
        reader.recent_requests(&RequestQuery::new()).unwrap().len(),
        50
    );
}

/// What the store keeps is the record's Sentry JSON: timestamps at JSON precision.
fn json_roundtrip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
}

fn fastrand_shuffle(v: &mut [u32]) {
    // A fixed permutation is enough: insertion order must not matter.
    v.reverse();
    v.rotate_left(37);
}

#[test]
fn one_request_with_its_spans() {
    let (_dir, mut store) = temp_store();
    let reader = store.reader();
    let t = transaction("GET /users/{id}", Duration::from_millis(12), 3, 2);
    store.write(&[tx(t.clone())]).unwrap();
    let detail = reader.request(t.event_id).unwrap().unwrap();
    assert_eq!(detail.transaction, json_roundtrip(&t));
    assert_eq!(detail.summary.span_count, 5);
    assert_eq!(detail.summary.query_count, 3);
    assert_eq!(detail.summary.name, "GET /users/{id}");
    assert_eq!(detail.summary.op.as_deref(), Some("http.server"));
    assert_eq!(detail.summary.duration, Duration::from_millis(12));
    assert!(
        reader
            .request(backstop_core::EventId::new())
            .unwrap()
            .is_none()
    );

    // The spans table holds them too, for the sqlite3 shell and the query views.
    let conn = Connection::open(reader.path()).unwrap();
    let ops: Vec<String> = conn
        .prepare("SELECT op FROM spans ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        ops,
        [
            "db.sql.query",
            "db.sql.query",
            "db.sql.query",
            "function",
            "function"
        ]
    );
}

#[test]
fn events_per_issue_keep_the_first_and_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::builder(dir.path().join("b.db"))
        .max_events_per_issue(5)
        .open()
        .unwrap();
    let reader = store.reader();
    let first = error_event("cap", "m");
    store.write(&[ev(first.clone())]).unwrap();
    let mut latest = Vec::new();
    for _ in 0..3 {
        let batch: Vec<_> = (0..4).map(|_| error_event("cap", "m")).collect();
        latest = batch.clone();
        store
            .write(&batch.into_iter().map(ev).collect::<Vec<_>>())
            .unwrap();
    }
    let issue = reader.issues(&IssueQuery::new()).unwrap().remove(0);
    assert_eq!(issue.count, 13, "the count keeps every event");
    let detail = reader.issue(issue.id, 100).unwrap().unwrap();
    let kept: Vec<_> = detail.latest_events.iter().map(|e| e.event_id).collect();
    let mut expected: Vec<_> = latest.iter().rev().map(|e| e.event_id).collect();
    expected.push(first.event_id);
    assert_eq!(kept, expected);
}

#[test]
fn max_age_prunes_old_rows_and_forgotten_issues() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::builder(dir.path().join("b.db"))
        .max_age(Duration::from_secs(3600))
        .open()
        .unwrap();
    let reader = store.reader();
    let old = SystemTime::now() - Duration::from_secs(7200);
    let recent = SystemTime::now() - Duration::from_secs(60);
    store
        .write(&[
            ev(released(at(error_event("old", "o"), old), "v0", "p")),
            ev(at(error_event("both", "b"), old)),
            ev(at(error_event("both", "b"), recent)),
            tx(transaction_at(
                "GET /old",
                old,
                Duration::from_millis(5),
                2,
                0,
                200,
            )),
            tx(transaction_at(
                "GET /new",
                recent,
                Duration::from_millis(5),
                2,
                0,
                200,
            )),
        ])
        .unwrap();
    // Pruning ran after the batch.
    let issues = reader.issues(&IssueQuery::new()).unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].fingerprint, error_event("both", "").group_hash());
    assert_eq!(issues[0].count, 2, "counts are history, not rows");
    assert_eq!(reader.event_count().unwrap(), 1);
    let kept = reader.recent_requests(&RequestQuery::new()).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].name, "GET /new");
    assert!(reader.releases().unwrap().is_empty());
    let stats = store.stats();
    assert_eq!(
        (
            stats.events_pruned,
            stats.transactions_pruned,
            stats.issues_pruned
        ),
        (2, 1, 1)
    );
    let conn = Connection::open(reader.path()).unwrap();
    let spans: i64 = conn
        .query_row("SELECT count(*) FROM spans", [], |r| r.get(0))
        .unwrap();
    assert_eq!(spans, 2, "the old transaction's spans went with it");
}

#[test]
fn readers_never_block_the_writer() {
    let (dir, mut store) = temp_store();
    store
        .write(&[tx(transaction("GET /", Duration::from_millis(1), 1, 0))])
        .unwrap();
    // A reader in the middle of a long read transaction.
    let reader = Connection::open(dir.path().join("backstop.db")).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let n: i64 = reader
        .query_row("SELECT count(*) FROM transactions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    let started = std::time::Instant::now();
    store
        .write(&[tx(transaction("GET /", Duration::from_millis(1), 1, 0))])
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(store.reader().transaction_count().unwrap(), 2);
    // The open read transaction still sees its snapshot.
    let n: i64 = reader
        .query_row("SELECT count(*) FROM transactions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn in_memory_store_answers_its_reader() {
    let mut store = SqliteStore::open(":memory:").unwrap();
    let reader = store.reader();
    store.write(&[ev(error_event("m", "in memory"))]).unwrap();
    assert_eq!(
        reader.issues(&IssueQuery::new()).unwrap()[0].title,
        "AppError: in memory"
    );
    assert!(StoreReader::open(":memory:").is_err());
}

#[test]
fn through_the_pipeline_with_a_real_client() {
    let (_dir, store) = temp_store();
    let reader = store.reader();
    let backstop = backstop_core::test::start(
        Options::new()
            .sink(store)
            .console(false)
            .install_panic_hook(false)
            .release("demo@1")
            .environment("test")
            .traces_sample_rate(1.0),
    )
    .unwrap();
    let scope = RequestScope::builder(&backstop, "GET /checkout")
        .op("http.server")
        .sampled(true)
        .start();
    scope.configure(|s| s.set_user(Some(backstop_core::User::with_id("9"))));
    let err = "x".parse::<u32>().unwrap_err();
    let event_id = scope.capture_error(&err);
    let tx_id = scope.finish_http(500).unwrap();
    assert!(backstop.flush(Duration::from_secs(10)));

    let issues = reader.issues(&IssueQuery::new()).unwrap();
    assert_eq!(issues.len(), 1);
    assert!(
        issues[0].title.starts_with("ParseIntError"),
        "{}",
        issues[0].title
    );
    assert_eq!(issues[0].users, 1);
    assert_eq!(issues[0].last_release.as_deref(), Some("demo@1"));
    let stored = reader.event(event_id).unwrap().unwrap();
    assert_eq!(issues[0].fingerprint, stored.event.group_hash());
    let request = reader.request(tx_id).unwrap().unwrap();
    assert_eq!(request.summary.http_status, Some(500));
    assert!(request.summary.is_error);
    assert_eq!(reader.releases().unwrap()[0].version, "demo@1");
    let stats = backstop.stats();
    assert_eq!(stats.events.sent, 1);
    assert_eq!(stats.transactions.sent, 1);
    assert_eq!(reader.write_stats().unwrap().batches_failed, 0);
}
