//! sea-orm 2 on a real SQLite file, recorded by the tracing layer: its `tracing-spans`
//! become `db` spans, sqlx's query events under them are the same queries, and the N+1
//! detector counts each statement once.

use std::sync::Once;
use std::time::Duration;

use backstop_core::detect::Thresholds;
use backstop_core::test::TestSink;
use backstop_core::{
    BackstopGuard, Options, ProblemKind, RequestScope, Span, SpanStatus, Transaction,
};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};
use tracing_subscriber::prelude::*;

const USERS: usize = 6;

const POSTS_BY_USER: &str = "SELECT title FROM posts WHERE user_id = ? ORDER BY id";

/// The layer as an app installs it: globally. sqlx runs SQLite statements on a worker
/// thread of its own and logs them there, where only the global subscriber hears.
fn install_layer() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::registry()
            .with(backstop_core::tracing::layer())
            .init();
    });
}

/// A seeded SQLite file: `USERS` users with two posts each. One pooled connection, so no
/// connection is opened (and set up with statements of its own) during a request.
async fn database() -> (tempfile::TempDir, DatabaseConnection) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let mut options = ConnectOptions::new(url);
    options.max_connections(1).min_connections(1);
    let db = Database::connect(options).await.unwrap();
    let mut seed = String::from(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL,
                             title TEXT NOT NULL);",
    );
    for i in 1..=USERS {
        seed.push_str(&format!(
            "INSERT INTO users (id, name) VALUES ({i}, 'user{i}');
             INSERT INTO posts (user_id, title)
                 VALUES ({i}, 'post {i}.0'), ({i}, 'post {i}.1');"
        ));
    }
    db.execute_unprepared(&seed).await.unwrap();
    (dir, db)
}

/// Waits until sqlx's worker thread has let go of the request's spans.
///
/// The worker enters the caller's span for each command and drops it only after it has
/// replied, so the last sea-orm span (and the spans around it) can close just after the
/// request finished. Backstop's worker holds each transaction a moment for such late
/// spans; a test that flushes at once must first let them close. A statement outside
/// the request, answered by the same worker (the pool has one connection), comes after
/// that drop.
async fn settle(db: &DatabaseConnection) {
    db.execute_unprepared("SELECT 1").await.unwrap();
}

fn start() -> (BackstopGuard, TestSink) {
    let sink = TestSink::new();
    let options = Options::new()
        .problem_thresholds(Thresholds {
            n_plus_one_duration: Duration::ZERO,
            ..Default::default()
        })
        .sink(sink.clone())
        .console(false);
    (backstop_core::test::start(options).unwrap(), sink)
}

fn root_id(t: &Transaction) -> backstop_core::SpanId {
    t.trace.span_id
}

fn spans<'a>(t: &'a Transaction, op: &str) -> Vec<&'a Span> {
    t.spans
        .iter()
        .filter(|s| s.op.as_deref() == Some(op))
        .collect()
}

fn description(span: &Span) -> &str {
    span.description.as_deref().unwrap_or_default()
}

/// The N+1: every user, then each one's posts.
#[tracing::instrument(skip(db))]
async fn feed(db: &DatabaseConnection) -> Vec<(String, Vec<String>)> {
    let users = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT id, name FROM users ORDER BY id",
        ))
        .await
        .unwrap();
    let mut feed = Vec::new();
    for user in users {
        let id: i32 = user.try_get("", "id").unwrap();
        let posts = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT title FROM posts WHERE user_id = ? ORDER BY id",
                [id.into()],
            ))
            .await
            .unwrap();
        let titles = posts
            .iter()
            .map(|p| p.try_get("", "title").unwrap())
            .collect();
        feed.push((user.try_get("", "name").unwrap(), titles));
    }
    feed
}

/// Runs [`feed`] in a sampled request `GET /feed` and returns its transaction.
async fn recorded_feed() -> Transaction {
    install_layer();
    let (_dir, db) = database().await;
    let (backstop, sink) = start();
    let scope = RequestScope::builder(&backstop, "GET /feed")
        .op("http.server")
        .sampled(true)
        .start();
    let rows = scope.clone().bind(feed(&db)).await;
    scope.finish_http(200);
    settle(&db).await;
    assert_eq!(rows.len(), USERS);
    assert_eq!(rows[2].1, ["post 3.0", "post 3.1"]);
    assert!(backstop.flush(Duration::from_secs(10)));
    let mut transactions = sink.transactions();
    assert_eq!(transactions.len(), 1, "one transaction");
    transactions.remove(0)
}

fn function_span(t: &Transaction) -> &Span {
    t.spans
        .iter()
        .find(|s| s.op.as_deref() == Some("function") && description(s) == "feed")
        .unwrap_or_else(|| panic!("no function span in {:#?}", t.spans))
}

#[tokio::test]
async fn orm_spans_are_recorded_with_the_driver_queries_under_them() {
    let t = recorded_feed().await;
    let function = function_span(&t);
    assert_eq!(function.parent_span_id, Some(root_id(&t)));

    // sea-orm's spans: one per statement, normalised, under the function.
    let orm = spans(&t, "db");
    assert_eq!(orm.len(), 1 + USERS, "{:#?}", t.spans);
    assert_eq!(
        description(orm[0]),
        "SELECT id, name FROM users ORDER BY id"
    );
    for span in &orm {
        assert_eq!(span.data["db.system"], "sqlite");
        assert_eq!(span.parent_span_id, Some(function.span_id));
        assert_eq!(span.status, Some(SpanStatus::Ok));
        assert!(span.timestamp > span.start_timestamp);
    }
    for span in &orm[1..] {
        assert_eq!(description(span), POSTS_BY_USER);
        assert_eq!(span.data["db.operation"], "SELECT");
    }

    // sqlx's event for each, logged on its worker thread, under sea-orm's span.
    let driver = spans(&t, "db.sql.query");
    assert_eq!(driver.len(), orm.len(), "{:#?}", t.spans);
    for span in &orm {
        let children: Vec<_> = driver
            .iter()
            .filter(|d| d.parent_span_id == Some(span.span_id))
            .collect();
        assert_eq!(children.len(), 1, "one sqlx query under {span:#?}");
        assert_eq!(description(children[0]), description(span));
        assert!(children[0].start_timestamp >= span.start_timestamp);
        assert!(children[0].timestamp <= span.timestamp);
    }
}

#[tokio::test]
async fn an_n_plus_one_through_sea_orm_is_counted_once() {
    let t = recorded_feed().await;
    let function = function_span(&t);
    // Each statement counts once: USERS repeats, not twice as many.
    let n_plus_one: Vec<_> = t
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::NPlusOne)
        .collect();
    assert_eq!(n_plus_one.len(), 1, "{:#?}", t.problems);
    assert_eq!(n_plus_one[0].description, POSTS_BY_USER);
    assert_eq!(n_plus_one[0].count, USERS as u32);
    assert_eq!(n_plus_one[0].parent_span_id, Some(function.span_id));
    // Different parameters: not duplicates.
    assert!(
        !t.problems
            .iter()
            .any(|p| p.kind == ProblemKind::DuplicateQueries),
        "{:#?}",
        t.problems
    );
}

#[tokio::test]
async fn a_failing_statement_marks_its_span_failed() {
    install_layer();
    let (_dir, db) = database().await;
    let (backstop, sink) = start();
    let scope = RequestScope::builder(&backstop, "GET /broken")
        .sampled(true)
        .start();
    let result = scope
        .clone()
        .bind(async {
            db.query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT * FROM no_such_table",
            ))
            .await
        })
        .await;
    scope.finish_http(500);
    settle(&db).await;
    assert!(result.is_err());
    assert!(backstop.flush(Duration::from_secs(10)));
    let t = sink.transactions().remove(0);
    let orm = spans(&t, "db");
    assert_eq!(orm.len(), 1, "{:#?}", t.spans);
    assert_eq!(description(orm[0]), "SELECT * FROM no_such_table");
    assert_eq!(orm[0].status, Some(SpanStatus::InternalError));
    assert_eq!(orm[0].parent_span_id, Some(root_id(&t)));
}

#[tokio::test]
async fn outside_a_request_nothing_is_recorded() {
    install_layer();
    let (_dir, db) = database().await;
    let (backstop, sink) = start();
    assert_eq!(feed(&db).await.len(), USERS);
    assert!(backstop.flush(Duration::from_secs(10)));
    assert!(sink.records().is_empty());
}
