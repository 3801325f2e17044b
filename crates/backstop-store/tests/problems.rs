//! Performance problems in the store: grouped into issues, linked to their
//! transactions, read back, pruned with their transactions.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backstop_core::protocol::{ProblemKind, SpanId, Transaction};
use backstop_core::{EventId, Level, User};
use backstop_store::{
    IssueCategory, IssueKind, IssueQuery, IssueSort, IssueStatus, PerfIssueQuery, SqliteStore,
};
use common::*;
use rusqlite::Connection;

const QUERY: &str = "SELECT * FROM posts WHERE user_id = ?";

fn temp_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("backstop.db")).unwrap();
    (dir, store)
}

fn rows(store: &SqliteStore, table: &str) -> i64 {
    Connection::open(store.path())
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// A `GET /users`-like transaction with `n` queries under the root, started at `start`.
fn users_at(route: &str, start: SystemTime, n: usize) -> Transaction {
    with_n_plus_one(
        transaction_at(route, start, Duration::from_millis(80), n, 1, 200),
        QUERY,
    )
}

/// Millisecond precision, as the store keeps times.
fn ms(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64)
}

#[test]
fn an_n_plus_one_is_stored_with_its_transaction_and_read_back() {
    let (_dir, mut store) = temp_store();
    let reader = store.reader();
    let start = SystemTime::now() - Duration::from_secs(5);
    let mut t = users_at("GET /users", start, 6);
    t.release = Some("shop@2".into());
    t.environment = Some("production".into());
    t.user = Some(User::with_id("42"));
    t.problems[0].duration_ms = 64.25;
    let problem = t.problems[0].clone();
    assert_eq!(problem.span_ids.len(), 6);
    store.write(&[tx(t.clone())]).unwrap();

    let issues = reader.performance_issues(&PerfIssueQuery::new()).unwrap();
    assert_eq!(issues.len(), 1);
    let perf = &issues[0];
    assert_eq!(perf.kind, ProblemKind::NPlusOne);
    assert_eq!(perf.route, "GET /users");
    assert_eq!(perf.query_group, problem.query_group);
    assert_eq!(
        perf.issue.kind,
        IssueKind::Performance(ProblemKind::NPlusOne)
    );
    assert_eq!(perf.issue.fingerprint, problem.fingerprint);
    assert_eq!(perf.issue.title, QUERY);
    assert_eq!(perf.issue.culprit.as_deref(), Some("GET /users"));
    assert_eq!(perf.issue.level, Level::Warning);
    assert_eq!(perf.issue.status, IssueStatus::Unresolved);
    assert_eq!(perf.issue.count, 1);
    assert_eq!(perf.issue.users, 1);
    assert_eq!(perf.issue.first_seen, ms(start));
    assert_eq!(perf.issue.last_release.as_deref(), Some("shop@2"));
    assert_eq!(perf.issue.last_environment.as_deref(), Some("production"));

    // The transaction's problems, by its event id.
    let found = reader.transaction_problems(t.event_id).unwrap();
    assert_eq!(found.len(), 1);
    let o = &found[0];
    assert_eq!(o.issue_id, perf.issue.id);
    assert_eq!(o.kind, ProblemKind::NPlusOne);
    assert_eq!(o.transaction_event_id, t.event_id);
    assert_eq!(o.route, "GET /users");
    assert_eq!(o.timestamp, ms(start));
    assert_eq!(o.description, QUERY);
    assert_eq!(o.count, 6);
    assert_eq!(o.duration, Duration::from_micros(64_250));
    assert_eq!(o.span_ids, problem.span_ids);
    assert_eq!(o.parent_span_id, problem.parent_span_id);
    assert!(o.parent_span_id.is_some());
    assert_eq!(o.release.as_deref(), Some("shop@2"));
    assert_eq!(o.trace_id, Some(t.trace.trace_id));

    // The issue with its occurrences, each leading to its transaction and spans.
    let detail = reader
        .performance_issue(perf.issue.id, 10)
        .unwrap()
        .unwrap();
    assert_eq!(detail.issue, *perf);
    assert_eq!(detail.occurrences, found);
    let request = reader.request(o.transaction_event_id).unwrap().unwrap();
    assert_eq!(request.transaction.problems, vec![problem.clone()]);
    for id in &o.span_ids {
        assert!(request.transaction.spans.iter().any(|s| s.span_id == *id));
    }

    // One list of issues for errors and performance problems, split by category.
    store.write(&[ev(error_event("e", "boom"))]).unwrap();
    let all = reader.issues(&IssueQuery::new()).unwrap();
    assert_eq!(all.len(), 2);
    let errors = reader
        .issues(&IssueQuery::new().category(IssueCategory::Error))
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, IssueKind::Error);
    let perf_only = IssueQuery::new().category(IssueCategory::Performance);
    assert_eq!(reader.issues(&perf_only).unwrap()[0].id, perf.issue.id);
    assert_eq!(reader.issue_count(&perf_only).unwrap(), 1);
    assert_eq!(
        reader.issues(&IssueQuery::new().text("posts")).unwrap()[0].id,
        perf.issue.id,
        "the query is searchable"
    );
    assert_eq!(
        reader
            .issue_by_fingerprint(&problem.fingerprint)
            .unwrap()
            .unwrap()
            .id,
        perf.issue.id
    );
    // Not an error issue, and not a performance one.
    assert!(
        reader
            .performance_issue(errors[0].id, 10)
            .unwrap()
            .is_none()
    );
    let as_issue = reader.issue(perf.issue.id, 10).unwrap().unwrap();
    assert!(as_issue.latest_events.is_empty());
    assert_eq!(as_issue.releases, ["shop@2"]);
}

#[test]
fn one_fingerprint_in_three_transactions_is_one_issue_with_three_occurrences() {
    let (_dir, mut store) = temp_store();
    let reader = store.reader();
    let t0 = SystemTime::now() - Duration::from_secs(600);
    let ts: Vec<_> = (0..3)
        .map(|i| {
            users_at(
                "GET /users",
                t0 + Duration::from_secs(60 * i),
                5 + i as usize,
            )
        })
        .collect();
    // Two batches: the issue is created in one and found in the next.
    store.write(&[tx(ts[0].clone())]).unwrap();
    let first = reader.performance_issues(&PerfIssueQuery::new()).unwrap();
    assert_eq!(first[0].issue.last_seen, ms(t0));
    store
        .write(&[tx(ts[1].clone()), tx(ts[2].clone())])
        .unwrap();

    let issues = reader.performance_issues(&PerfIssueQuery::new()).unwrap();
    assert_eq!(issues.len(), 1);
    let issue = &issues[0].issue;
    assert_eq!(issue.id, first[0].issue.id);
    assert_eq!(issue.count, 3);
    assert_eq!(issue.first_seen, ms(t0));
    assert_eq!(issue.last_seen, ms(t0 + Duration::from_secs(120)));
    let detail = reader.performance_issue(issue.id, 10).unwrap().unwrap();
    let linked: Vec<EventId> = detail
        .occurrences
        .iter()
        .map(|o| o.transaction_event_id)
        .collect();
    assert_eq!(
        linked,
        [ts[2].event_id, ts[1].event_id, ts[0].event_id],
        "newest first"
    );
    let counts: Vec<u32> = detail.occurrences.iter().map(|o| o.count).collect();
    assert_eq!(counts, [7, 6, 5]);
    assert_eq!(
        reader
            .performance_issue(issue.id, 2)
            .unwrap()
            .unwrap()
            .occurrences
            .len(),
        2
    );

    // A retried batch (the same transactions again) counts nothing twice.
    store.write(&[tx(ts[2].clone())]).unwrap();
    assert_eq!(
        reader.performance_issues(&PerfIssueQuery::new()).unwrap()[0]
            .issue
            .count,
        3
    );
    assert_eq!(rows(&store, "transaction_problems"), 3);
}

#[test]
fn routes_and_kinds_are_separate_issues_and_lists_filter_and_sort() {
    let (_dir, mut store) = temp_store();
    let reader = store.reader();
    let now = SystemTime::now();
    let mut batch = Vec::new();
    for i in 0..3 {
        batch.push(tx(users_at(
            "GET /users",
            now - Duration::from_secs(300 - i),
            5,
        )));
    }
    batch.push(tx(users_at(
        "GET /admins",
        now - Duration::from_secs(10),
        5,
    )));
    // A transaction with two problems: a slow query and too many queries.
    let mut t = transaction_at(
        "GET /report",
        now - Duration::from_secs(100),
        Duration::from_secs(2),
        60,
        0,
        200,
    );
    let ids: Vec<SpanId> = t.spans.iter().map(|s| s.span_id).collect();
    let slow = "SELECT sum(total) FROM orders";
    t.problems.push(problem(
        ProblemKind::SlowQuery,
        "GET /report",
        slow,
        &ids[..1],
    ));
    let mut many = problem(ProblemKind::TooManyQueries, "GET /report", QUERY, &ids);
    many.query_group = None;
    t.problems.push(many);
    batch.push(tx(t.clone()));
    store.write(&batch).unwrap();

    let all = reader.performance_issues(&PerfIssueQuery::new()).unwrap();
    let routes: Vec<(&str, ProblemKind)> = all.iter().map(|p| (p.route.as_str(), p.kind)).collect();
    assert_eq!(
        routes,
        [
            ("GET /admins", ProblemKind::NPlusOne),
            ("GET /report", ProblemKind::TooManyQueries),
            ("GET /report", ProblemKind::SlowQuery),
            ("GET /users", ProblemKind::NPlusOne),
        ],
        "most recently seen first; a tie, the newer issue first"
    );
    assert_eq!(
        reader
            .performance_issue_count(&PerfIssueQuery::new())
            .unwrap(),
        4
    );

    let by_count = reader
        .performance_issues(&PerfIssueQuery::new().sort(IssueSort::Count).limit(1))
        .unwrap();
    assert_eq!(by_count[0].route, "GET /users");
    assert_eq!(by_count[0].issue.count, 3);

    let users = reader
        .performance_issues(&PerfIssueQuery::new().route("GET /users"))
        .unwrap();
    assert_eq!(users.len(), 1);
    let n_plus_one = PerfIssueQuery::new().kind(ProblemKind::NPlusOne);
    assert_eq!(reader.performance_issues(&n_plus_one).unwrap().len(), 2);
    assert_eq!(reader.performance_issue_count(&n_plus_one).unwrap(), 2);
    let paged = reader
        .performance_issues(&n_plus_one.clone().offset(1))
        .unwrap();
    assert_eq!(paged[0].route, "GET /users");
    assert!(
        reader
            .performance_issues(&PerfIssueQuery::new().route("GET /nowhere"))
            .unwrap()
            .is_empty()
    );

    // Both problems of the one transaction, in the detectors' order.
    let found = reader.transaction_problems(t.event_id).unwrap();
    let kinds: Vec<ProblemKind> = found.iter().map(|o| o.kind).collect();
    assert_eq!(kinds, [ProblemKind::SlowQuery, ProblemKind::TooManyQueries]);
    assert_eq!(found[0].description, slow);
    assert_eq!(found[1].count, 60);
    assert_eq!(found[1].span_ids.len(), 60);
    assert_eq!(found[1].parent_span_id, None);
    let many = reader
        .performance_issues(&PerfIssueQuery::new().kind(ProblemKind::TooManyQueries))
        .unwrap();
    assert_eq!(many[0].query_group, None);
}

#[test]
fn a_transaction_without_problems_writes_no_problem_rows() {
    let (_dir, mut store) = temp_store();
    let reader = store.reader();
    let t = transaction("GET /users", Duration::from_millis(20), 8, 1);
    store.write(&[tx(t.clone())]).unwrap();
    assert_eq!(rows(&store, "transactions"), 1);
    assert_eq!(rows(&store, "transaction_problems"), 0);
    assert_eq!(rows(&store, "issues"), 0);
    assert_eq!(rows(&store, "issue_users"), 0);
    assert!(reader.transaction_problems(t.event_id).unwrap().is_empty());
    assert!(
        reader
            .transaction_problems(EventId::new())
            .unwrap()
            .is_empty()
    );
    assert!(
        reader
            .performance_issues(&PerfIssueQuery::new())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_resolved_performance_issue_that_recurs_is_reopened_as_regressed() {
    let (_dir, mut store) = temp_store();
    let reader = store.reader();
    let now = SystemTime::now();
    store
        .write(&[tx(users_at("GET /users", now - Duration::from_secs(60), 5))])
        .unwrap();
    let id = reader.performance_issues(&PerfIssueQuery::new()).unwrap()[0]
        .issue
        .id;
    assert!(reader.set_issue_status(id, IssueStatus::Resolved).unwrap());
    let resolved = PerfIssueQuery::new().status(IssueStatus::Resolved);
    assert_eq!(reader.performance_issues(&resolved).unwrap().len(), 1);

    store.write(&[tx(users_at("GET /users", now, 5))]).unwrap();
    let issue = reader
        .performance_issues(&PerfIssueQuery::new())
        .unwrap()
        .remove(0)
        .issue;
    assert_eq!(issue.status, IssueStatus::Unresolved);
    assert!(issue.regressed);
    assert_eq!(issue.count, 2);

    // Ignored stays ignored, and keeps counting.
    reader.set_issue_status(id, IssueStatus::Ignored).unwrap();
    store.write(&[tx(users_at("GET /users", now, 5))]).unwrap();
    let issue = reader
        .performance_issues(&PerfIssueQuery::new())
        .unwrap()
        .remove(0)
        .issue;
    assert_eq!(issue.status, IssueStatus::Ignored);
    assert_eq!(issue.count, 3);
}

#[test]
fn a_performance_fingerprint_equal_to_an_error_fingerprint_stays_a_separate_issue() {
    let (_dir, mut store) = temp_store();
    let reader = store.reader();
    let error = error_event("clash", "boom");
    let mut t = users_at("GET /users", SystemTime::now(), 5);
    t.problems[0].fingerprint = error.group_hash();
    store.write(&[ev(error.clone()), tx(t.clone())]).unwrap();
    store
        .write(&[
            ev(error_event("clash", "again")),
            tx(users_at("GET /x", SystemTime::now(), 5)),
        ])
        .unwrap();

    let errors = reader
        .issues(&IssueQuery::new().category(IssueCategory::Error))
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].count, 2);
    assert_eq!(errors[0].fingerprint, error.group_hash());
    let found = reader.transaction_problems(t.event_id).unwrap();
    let perf = reader
        .performance_issue(found[0].issue_id, 10)
        .unwrap()
        .unwrap();
    assert_ne!(perf.issue.issue.id, errors[0].id);
    assert_eq!(
        perf.issue.issue.fingerprint,
        format!("n_plus_one:{}", error.group_hash())
    );
}

#[test]
fn retention_removes_occurrences_with_their_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::builder(dir.path().join("b.db"))
        .max_transactions(2)
        .max_age(Duration::from_secs(3600))
        .open()
        .unwrap();
    let reader = store.reader();
    let now = SystemTime::now();
    let ts: Vec<_> = (0..4)
        .map(|i| users_at("GET /users", now - Duration::from_secs(60 - i), 5))
        .collect();
    store
        .write(&ts.iter().cloned().map(tx).collect::<Vec<_>>())
        .unwrap();

    // Trimmed to the two newest transactions in the same commit; the issue keeps its
    // history, its occurrences only what is kept.
    assert_eq!(reader.transaction_count().unwrap(), 2);
    assert_eq!(rows(&store, "transaction_problems"), 2);
    let issue = reader
        .performance_issues(&PerfIssueQuery::new())
        .unwrap()
        .remove(0);
    assert_eq!(issue.issue.count, 4, "counts are history, not rows");
    let kept: Vec<EventId> = reader
        .performance_issue(issue.issue.id, 10)
        .unwrap()
        .unwrap()
        .occurrences
        .iter()
        .map(|o| o.transaction_event_id)
        .collect();
    assert_eq!(kept, [ts[3].event_id, ts[2].event_id]);
    assert!(
        reader
            .transaction_problems(ts[0].event_id)
            .unwrap()
            .is_empty()
    );

    // By age: an old transaction's occurrence goes with it, and a performance issue not
    // seen within max_age goes too, with its users, releases and environments.
    let old = now - Duration::from_secs(7200);
    let mut stale = users_at("GET /old", old, 5);
    stale.release = Some("v0".into());
    stale.user = Some(User::with_id("7"));
    let mut store = SqliteStore::builder(dir.path().join("age.db"))
        .max_age(Duration::from_secs(3600))
        .open()
        .unwrap();
    let reader = store.reader();
    store
        .write(&[tx(stale), tx(users_at("GET /new", now, 5))])
        .unwrap();
    let left = reader.performance_issues(&PerfIssueQuery::new()).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].route, "GET /new");
    assert_eq!(rows(&store, "transaction_problems"), 1);
    assert_eq!(rows(&store, "issue_users"), 0);
    assert_eq!(rows(&store, "issue_releases"), 0);
    assert_eq!(store.stats().issues_pruned, 1);
    let conn = Connection::open(store.path()).unwrap();
    let fk: Option<String> = conn
        .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
        .ok();
    assert_eq!(fk, None, "no occurrence points at a deleted row");
}

#[test]
fn an_issue_pruned_before_its_transactions_takes_its_occurrences() {
    // max_age prunes transactions first; were that loop cut short, the issue loop must
    // still not leave occurrences pointing at a deleted issue (foreign keys are on).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let mut store = SqliteStore::builder(&path)
        .retention(backstop_store::Retention {
            max_age: None,
            max_transactions: None,
            max_events_per_issue: None,
        })
        .open()
        .unwrap();
    let old = SystemTime::now() - Duration::from_secs(7200);
    store.write(&[tx(users_at("GET /old", old, 5))]).unwrap();
    drop(store);
    // The transaction looks recent, the issue old: only the issue loop deletes.
    Connection::open(&path)
        .unwrap()
        .execute_batch("UPDATE transactions SET timestamp = timestamp + 7200000")
        .unwrap();
    let mut store = SqliteStore::builder(&path)
        .max_age(Duration::from_secs(3600))
        .open()
        .unwrap();
    store.prune_now().unwrap();
    assert_eq!(rows(&store, "issues"), 0);
    assert_eq!(rows(&store, "transaction_problems"), 0);
    assert_eq!(rows(&store, "transactions"), 1);
}

#[test]
fn a_hostile_description_round_trips() {
    let (_dir, mut store) = temp_store();
    let reader = store.reader();
    let hostile = format!(
        "SELECT '\"; DROP TABLE issues; --' FROM \"ünïcødé 表\" WHERE x = '\u{202e}\u{0}🦀' {}",
        "x".repeat(1 << 20)
    );
    let mut t = transaction("GET /h\"ost'ile/🦀", Duration::from_millis(30), 5, 0);
    let ids: Vec<SpanId> = t.spans.iter().map(|s| s.span_id).collect();
    let mut p = problem(ProblemKind::DuplicateQueries, &t.name, &hostile, &ids);
    p.duration_ms = f64::NAN;
    t.problems.push(p);
    store.write(&[tx(t.clone())]).unwrap();

    let found = reader.transaction_problems(t.event_id).unwrap();
    assert_eq!(found[0].description, hostile);
    assert_eq!(found[0].route, t.name);
    assert_eq!(found[0].duration, Duration::ZERO, "NaN is stored as zero");
    let issue = reader
        .performance_issues(&PerfIssueQuery::new().route(t.name.clone()))
        .unwrap()
        .remove(0);
    assert_eq!(issue.issue.title, hostile);
    assert_eq!(
        reader
            .issues(&IssueQuery::new().text("ünïcødé 表"))
            .unwrap()[0]
            .id,
        issue.issue.id
    );
    assert_eq!(rows(&store, "issues"), 1, "nothing was dropped");
}
