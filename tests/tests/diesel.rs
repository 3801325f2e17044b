//! diesel on a real SQLite file, recorded by `backstop_core::diesel`: query spans, their
//! nesting and status, the N+1 detector, transactions, and silence outside requests.

use std::time::Duration;

use backstop_core::detect::Thresholds;
use backstop_core::test::TestSink;
use backstop_core::{
    BackstopGuard, Options, ProblemKind, RequestScope, Span, SpanStatus, Transaction,
};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Integer;
use diesel::sqlite::{Sqlite, SqliteConnection};
use tracing_subscriber::prelude::*;

diesel::table! {
    /// The users.
    users (id) {
        /// Their id.
        id -> Integer,
        /// Their name.
        name -> Text,
    }
}

diesel::table! {
    /// Two posts per user.
    posts (id) {
        /// Its id.
        id -> Integer,
        /// Whose post.
        user_id -> Integer,
        /// Its title.
        title -> Text,
    }
}

diesel::joinable!(posts -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, posts);

const USERS: usize = 6;

/// A value diesel cannot bind: a statement using it starts and never finishes.
#[derive(Debug, diesel::expression::AsExpression)]
#[diesel(sql_type = Integer)]
struct Unbindable;

impl ToSql<Integer, Sqlite> for Unbindable {
    fn to_sql<'b>(&'b self, _out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        Err("this value cannot be bound".into())
    }
}

/// What diesel's query builder sends for the per-user query, normalised.
const POSTS_BY_USER: &str =
    "SELECT `posts`.`title` FROM `posts` WHERE (`posts`.`user_id` = ?) ORDER BY `posts`.`id`";

/// A seeded SQLite file (`USERS` users with two posts each) and a connection to it with
/// the instrumentation installed.
fn database() -> (tempfile::TempDir, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    conn.batch_execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE posts (id INTEGER PRIMARY KEY,
                             user_id INTEGER NOT NULL REFERENCES users(id),
                             title TEXT NOT NULL);",
    )
    .unwrap();
    for i in 1..=USERS as i32 {
        diesel::insert_into(users::table)
            .values((users::id.eq(i), users::name.eq(format!("user{i}"))))
            .execute(&mut conn)
            .unwrap();
        for j in 0..2 {
            diesel::insert_into(posts::table)
                .values((
                    posts::user_id.eq(i),
                    posts::title.eq(format!("post {i}.{j}")),
                ))
                .execute(&mut conn)
                .unwrap();
        }
    }
    conn.set_instrumentation(backstop_core::diesel::instrumentation("sqlite"));
    (dir, conn)
}

fn start(options: Options) -> (BackstopGuard, TestSink) {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(options.sink(sink.clone()).console(false)).unwrap();
    (backstop, sink)
}

/// Options that report every N+1, however fast: SQLite answers in microseconds.
fn eager() -> Options {
    Options::new()
        .send_default_pii(true)
        .problem_thresholds(Thresholds {
            n_plus_one_duration: Duration::ZERO,
            ..Default::default()
        })
}

/// Runs `f` in a sampled request `GET /feed`, with the tracing layer installed, and
/// returns its transaction.
fn request<R>(f: impl FnOnce() -> R) -> (Transaction, R) {
    let (backstop, sink) = start(eager());
    let subscriber = tracing_subscriber::registry().with(backstop_core::tracing::layer());
    let out = tracing::subscriber::with_default(subscriber, || {
        let scope = RequestScope::builder(&backstop, "GET /feed")
            .op("http.server")
            .sampled(true)
            .start();
        let out = scope.run(f);
        scope.finish_http(200);
        out
    });
    assert!(backstop.flush(Duration::from_secs(10)));
    let mut transactions = sink.transactions();
    assert_eq!(transactions.len(), 1, "one transaction");
    (transactions.remove(0), out)
}

fn root_id(t: &Transaction) -> backstop_core::SpanId {
    t.trace.span_id
}

fn queries(t: &Transaction) -> Vec<&Span> {
    t.spans
        .iter()
        .filter(|s| s.op.as_deref() == Some("db.sql.query"))
        .collect()
}

fn description(span: &Span) -> &str {
    span.description.as_deref().unwrap_or_default()
}

fn by_description<'a>(t: &'a Transaction, description: &str) -> &'a Span {
    t.spans
        .iter()
        .find(|s| s.description.as_deref() == Some(description))
        .unwrap_or_else(|| panic!("no span {description:?} in {:#?}", t.spans))
}

/// Statements started on `conn` and not finished yet, as its instrumentation counts.
fn open_statements(conn: &mut SqliteConnection) -> String {
    let instrumentation = conn
        .instrumentation()
        .downcast_ref::<backstop_core::diesel::Instrumentation>()
        .expect("backstop's instrumentation is installed");
    format!("{instrumentation:?}")
}

/// The N+1: every user, then each one's posts.
#[tracing::instrument(skip(conn))]
fn feed(conn: &mut SqliteConnection) -> Vec<(String, Vec<String>)> {
    let all: Vec<(i32, String)> = users::table
        .select((users::id, users::name))
        .order(users::id)
        .load(conn)
        .unwrap();
    all.into_iter()
        .map(|(id, name)| {
            let titles = posts::table
                .filter(posts::user_id.eq(id))
                .select(posts::title)
                .order(posts::id)
                .load(conn)
                .unwrap();
            (name, titles)
        })
        .collect()
}

/// The same feed in one query.
#[tracing::instrument(skip(conn))]
fn feed_joined(conn: &mut SqliteConnection) -> Vec<(String, String)> {
    users::table
        .inner_join(posts::table)
        .select((users::name, posts::title))
        .order((users::id, posts::id))
        .load(conn)
        .unwrap()
}

#[test]
fn an_n_plus_one_is_recorded_and_detected() {
    let (_dir, mut conn) = database();
    let (t, rows) = request(|| feed(&mut conn));
    assert_eq!(rows.len(), USERS);
    assert_eq!(rows[2].1, ["post 3.0", "post 3.1"]);

    let function = by_description(&t, "feed");
    assert_eq!(function.op.as_deref(), Some("function"));
    assert_eq!(function.parent_span_id, Some(root_id(&t)));

    // One span per statement, in order, with diesel's SQL normalised.
    let queries = queries(&t);
    assert_eq!(queries.len(), 1 + USERS, "{queries:#?}");
    assert_eq!(
        description(queries[0]),
        "SELECT `users`.`id`, `users`.`name` FROM `users` ORDER BY `users`.`id`"
    );
    for (i, query) in queries.iter().enumerate() {
        assert_eq!(query.data["db.system"], "sqlite");
        assert_eq!(query.parent_span_id, Some(function.span_id));
        assert_eq!(query.status, Some(SpanStatus::Ok));
        assert!(query.timestamp > query.start_timestamp, "a real duration");
        assert!(query.start_timestamp >= function.start_timestamp);
        assert!(query.timestamp <= function.timestamp);
        if i > 0 {
            assert_eq!(description(query), POSTS_BY_USER);
            // The statement as sent and its parameters (PII is allowed here).
            assert_eq!(query.data["db.params"], format!("[{i}]"));
            assert!(
                !query.data["db.statement"]
                    .as_str()
                    .unwrap()
                    .contains("binds"),
                "{:?}",
                query.data["db.statement"]
            );
            assert!(
                query.start_timestamp >= queries[i - 1].timestamp,
                "in order"
            );
        }
    }

    let n_plus_one: Vec<_> = t
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::NPlusOne)
        .collect();
    assert_eq!(n_plus_one.len(), 1, "{:#?}", t.problems);
    let problem = n_plus_one[0];
    assert_eq!(problem.description, POSTS_BY_USER);
    assert_eq!(problem.count, USERS as u32);
    assert_eq!(problem.parent_span_id, Some(function.span_id));
    let ids: Vec<_> = queries[1..].iter().map(|q| q.span_id).collect();
    assert_eq!(problem.span_ids, ids);
    // Different parameters: not duplicates.
    assert!(
        !t.problems
            .iter()
            .any(|p| p.kind == ProblemKind::DuplicateQueries),
        "{:#?}",
        t.problems
    );
    assert!(open_statements(&mut conn).contains("open: 0"));
}

#[test]
fn the_joined_query_is_no_n_plus_one() {
    let (_dir, mut conn) = database();
    let (t, rows) = request(|| feed_joined(&mut conn));
    assert_eq!(rows.len(), USERS * 2);
    let queries = queries(&t);
    assert_eq!(queries.len(), 1);
    assert_eq!(
        description(queries[0]),
        "SELECT `users`.`name`, `posts`.`title` FROM (`users` INNER JOIN `posts` ON \
         (`posts`.`user_id` = `users`.`id`)) ORDER BY `users`.`id`, `posts`.`id`"
    );
    assert!(t.problems.is_empty(), "{:#?}", t.problems);
}

#[test]
fn outside_a_request_nothing_is_recorded_and_queries_work() {
    let (_dir, mut conn) = database();
    let (backstop, sink) = start(eager().traces_sample_rate(1.0));
    let subscriber = tracing_subscriber::registry().with(backstop_core::tracing::layer());
    let rows = tracing::subscriber::with_default(subscriber, || feed(&mut conn));
    assert_eq!(rows.len(), USERS);
    assert_eq!(rows[5].1, ["post 6.0", "post 6.1"]);
    assert!(backstop.flush(Duration::from_secs(10)));
    assert!(sink.records().is_empty());
    assert!(open_statements(&mut conn).contains("open: 0"));

    // An unsampled request records no spans either.
    let scope = RequestScope::builder(&backstop, "GET /feed")
        .sampled(false)
        .start();
    assert_eq!(scope.run(|| feed(&mut conn)).len(), USERS);
    scope.finish_http(200);
    assert!(backstop.flush(Duration::from_secs(10)));
    assert!(sink.transactions().is_empty());
    assert!(open_statements(&mut conn).contains("open: 0"));
}

#[test]
fn failing_statements_mark_their_spans_failed() {
    let (_dir, mut conn) = database();
    let (t, ()) = request(|| {
        // Fails to prepare.
        let err = diesel::sql_query("SELEC * FROM users").execute(&mut conn);
        assert!(err.is_err());
        // Prepares, then fails as it runs.
        let err = diesel::insert_into(users::table)
            .values((users::id.eq(1), users::name.eq("again")))
            .execute(&mut conn);
        assert!(err.is_err());
        // And the connection goes on.
        let count: i64 = users::table.count().get_result(&mut conn).unwrap();
        assert_eq!(count, USERS as i64);
    });
    let queries = queries(&t);
    assert_eq!(queries.len(), 3, "{queries:#?}");
    assert_eq!(description(queries[0]), "SELEC * FROM users");
    assert_eq!(queries[0].status, Some(SpanStatus::InternalError));
    assert_eq!(
        description(queries[1]),
        "INSERT INTO `users` (`id`, `name`) VALUES (?, ?)"
    );
    assert_eq!(queries[1].status, Some(SpanStatus::InternalError));
    assert_eq!(queries[2].status, Some(SpanStatus::Ok));
    assert!(open_statements(&mut conn).contains("open: 0"));
}

#[test]
fn transactions_and_savepoints_keep_the_stack_straight() {
    let (_dir, mut conn) = database();
    let (t, ()) = request(|| {
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::insert_into(users::table)
                .values((users::id.eq(100), users::name.eq("new")))
                .execute(conn)?;
            // A nested transaction is a savepoint, rolled back here.
            let inner = conn.transaction::<(), _, _>(|conn| {
                diesel::delete(posts::table).execute(conn)?;
                Err(diesel::result::Error::RollbackTransaction)
            });
            assert!(inner.is_err());
            let count: i64 = posts::table.count().get_result(conn)?;
            assert_eq!(count, 2 * USERS as i64);
            Ok(())
        })
        .unwrap();
    });
    let root = root_id(&t);
    let statements: Vec<_> = queries(&t).into_iter().map(description).collect();
    assert_eq!(
        statements,
        [
            "BEGIN",
            "INSERT INTO `users` (`id`, `name`) VALUES (?, ?)",
            "SAVEPOINT diesel_savepoint_1",
            "DELETE FROM `posts`",
            "ROLLBACK TO SAVEPOINT diesel_savepoint_1",
            "SELECT COUNT(*) FROM `posts`",
            "COMMIT",
        ]
    );
    for query in queries(&t) {
        // Statements don't nest in each other: each ran under the request.
        assert_eq!(query.parent_span_id, Some(root));
        assert_eq!(query.status, Some(SpanStatus::Ok));
        assert!(query.timestamp > query.start_timestamp);
    }
    assert!(open_statements(&mut conn).contains("open: 0"));
}

#[test]
fn statements_that_never_finish_are_given_up() {
    let (_dir, mut conn) = database();
    let unfinished = |conn: &mut SqliteConnection| {
        users::table
            .filter(users::id.eq(Unbindable))
            .select(users::name)
            .load::<String>(conn)
    };
    let (t, ()) = request(|| {
        assert!(unfinished(&mut conn).is_err());
        let names: Vec<String> = users::table.select(users::name).load(&mut conn).unwrap();
        assert_eq!(names.len(), USERS);
        // The unfinished statement waits, in case it finishes later.
        assert!(open_statements(&mut conn).contains("open: 1"));
        // No more than 16 wait: the oldest are ended, failed.
        for _ in 0..20 {
            assert!(unfinished(&mut conn).is_err());
        }
        assert!(open_statements(&mut conn).contains("open: 16"));
    });
    let queries = queries(&t);
    assert_eq!(queries.len(), 1 + 5, "{queries:#?}");
    assert_eq!(queries[0].status, Some(SpanStatus::Ok));
    assert_eq!(
        description(queries[0]),
        "SELECT `users`.`name` FROM `users`"
    );
    for query in &queries[1..] {
        assert_eq!(query.status, Some(SpanStatus::InternalError));
        assert_eq!(
            description(query),
            "SELECT `users`.`name` FROM `users` WHERE (`users`.`id` = ?)"
        );
    }
    // The next statement outside the request lets go of the rest.
    let count: i64 = users::table.count().get_result(&mut conn).unwrap();
    assert_eq!(count, USERS as i64);
    assert!(open_statements(&mut conn).contains("open: 0"));
}

#[test]
fn a_load_crossing_the_request_boundary() {
    let (_dir, mut conn) = database();
    // Started outside: diesel reports the finish when the iterator drops, in the request.
    let mut rows = users::table
        .select(users::name)
        .order(users::id)
        .load_iter::<String, diesel::connection::DefaultLoadingMode>(&mut conn)
        .unwrap();
    let first = rows.next().unwrap().unwrap();
    assert_eq!(first, "user1");
    let (t, ()) = request(move || drop(rows));
    assert!(queries(&t).is_empty(), "{:#?}", t.spans);

    // Started inside, finished just after the request ended: the span still joins its
    // transaction (the worker waits a moment for such stragglers). Finished long after:
    // it is counted as dropped. Either way the connection holds nothing of the request
    // afterwards.
    let (backstop, sink) = start(eager());
    for (name, wait) in [("GET /stream", 0), ("GET /slow-stream", 300)] {
        let scope = RequestScope::builder(&backstop, name).sampled(true).start();
        let mut rows = scope.run(|| {
            users::table
                .select(users::name)
                .load_iter::<String, diesel::connection::DefaultLoadingMode>(&mut conn)
                .unwrap()
        });
        scope.finish_http(200);
        assert_eq!(rows.next().unwrap().unwrap(), "user1");
        std::thread::sleep(Duration::from_millis(wait));
        drop(rows);
    }
    assert!(backstop.flush(Duration::from_secs(10)));
    let transactions = sink.transactions();
    assert_eq!(transactions.len(), 2);
    let by_name = |name: &str| transactions.iter().find(|t| t.name == name).unwrap();
    assert_eq!(queries(by_name("GET /stream")).len(), 1);
    assert!(queries(by_name("GET /slow-stream")).is_empty());
    assert_eq!(backstop.stats().spans_dropped, 1);
    assert!(open_statements(&mut conn).contains("open: 0"));
}

#[test]
fn the_default_instrumentation_covers_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.db");
    diesel::connection::set_default_instrumentation(|| {
        Some(Box::new(backstop_core::diesel::instrumentation("sqlite")))
    })
    .unwrap();
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    diesel::connection::set_default_instrumentation(|| None).unwrap();
    let (t, ()) = request(|| {
        conn.batch_execute("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
    });
    let query = by_description(&t, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (?)");
    assert_eq!(query.op.as_deref(), Some("db.sql.query"));
    assert_eq!(query.data["db.system"], "sqlite");
}
