//! The tracing layer: function spans, sqlx query events, ORM spans, `db_span`,
//! breadcrumbs and captured events, inside and outside requests.

use std::time::Duration;

use backstop_core::test::TestSink;
use backstop_core::{BackstopGuard, Options, RequestScope, Span, Transaction};
use tracing::{Instrument, Level};
use tracing_subscriber::prelude::*;

fn start(options: Options) -> (BackstopGuard, TestSink) {
    let sink = TestSink::new();
    let guard = backstop_core::test::start(options.sink(sink.clone()).console(false)).unwrap();
    (guard, sink)
}

/// Runs `f` in a sampled request named `GET /users` with the layer installed, and
/// returns the transaction.
fn request(f: impl FnOnce()) -> (Transaction, TestSink) {
    request_with(Options::new(), backstop_core::tracing::Config::new(), f)
}

fn request_with(
    options: Options,
    config: backstop_core::tracing::Config,
    f: impl FnOnce(),
) -> (Transaction, TestSink) {
    let (backstop, sink) = start(options);
    let subscriber = tracing_subscriber::registry().with(config.layer());
    tracing::subscriber::with_default(subscriber, || {
        let scope = RequestScope::builder(&backstop, "GET /users")
            .op("http.server")
            .sampled(true)
            .start();
        scope.run(f);
        scope.finish_http(200);
    });
    assert!(backstop.flush(Duration::from_secs(10)));
    let mut transactions = sink.transactions();
    assert_eq!(transactions.len(), 1, "one transaction");
    (transactions.remove(0), sink)
}

fn root_id(t: &Transaction) -> backstop_core::SpanId {
    t.trace.span_id
}

fn by_description<'a>(t: &'a Transaction, description: &str) -> &'a Span {
    t.spans
        .iter()
        .find(|s| s.description.as_deref() == Some(description))
        .unwrap_or_else(|| panic!("no span {description:?} in {:#?}", t.spans))
}

/// What sqlx 0.9 logs for a statement of four words or fewer: the statement in
/// `summary`, and an empty `db.statement`.
fn sqlx_short(sql: &str, rows: u64, secs: f64) {
    tracing::debug!(
        target: "sqlx::query",
        summary = sql,
        db.statement = "",
        rows_affected = 0u64,
        rows_returned = rows,
        elapsed = ?Duration::from_secs_f64(secs),
        elapsed_secs = secs,
    );
}

/// What sqlx 0.9 logs for a longer statement: four words and an ellipsis in
/// `summary`, and the statement framed by blank lines in `db.statement`.
fn sqlx_long(sql: &str, rows: u64, secs: f64) {
    let summary = sql.split_whitespace().take(4).collect::<Vec<_>>().join(" ") + " …";
    tracing::debug!(
        target: "sqlx::query",
        summary,
        db.statement = format!("\n\n{sql}\n"),
        rows_affected = 0u64,
        rows_returned = rows,
        elapsed = ?Duration::from_secs_f64(secs),
        elapsed_secs = secs,
    );
}

#[tracing::instrument(fields(user.count = 2))]
fn load_feed(page: u32) {
    sqlx_short("SELECT * FROM users", 2, 0.003);
    render("feed");
}

#[tracing::instrument]
fn render(template: &str) {
    sqlx_long(
        "SELECT id, title FROM posts WHERE user_id = ? ORDER BY id",
        7,
        0.002,
    );
}

#[test]
fn function_spans_keep_names_fields_and_nesting() {
    let (t, _) = request(|| load_feed(3));
    let root = root_id(&t);
    let outer = by_description(&t, "load_feed");
    let inner = by_description(&t, "render");
    assert_eq!(outer.op.as_deref(), Some("function"));
    assert_eq!(outer.parent_span_id, Some(root));
    assert_eq!(inner.parent_span_id, Some(outer.span_id));
    assert_eq!(outer.data["page"], 3);
    assert_eq!(outer.data["user.count"], 2);
    assert_eq!(inner.data["template"], "feed");
    assert!(
        outer.data["code.namespace"]
            .as_str()
            .unwrap()
            .starts_with("tracing_layer")
    );
    assert!(outer.data["code.lineno"].as_u64().unwrap() > 0);
    // The inner span lies within the outer one, and both within the transaction.
    assert!(inner.start_timestamp >= outer.start_timestamp);
    assert!(inner.timestamp <= outer.timestamp);
    assert!(outer.start_timestamp >= t.start_timestamp);
    assert!(outer.timestamp <= t.timestamp);
}

#[test]
fn sqlx_events_become_query_spans_under_the_current_span() {
    let (t, _) = request(|| load_feed(1));
    let outer = by_description(&t, "load_feed");
    let inner = by_description(&t, "render");

    // Short statement: `db.statement` is empty, `summary` is the statement.
    let users = by_description(&t, "SELECT * FROM users");
    assert_eq!(users.op.as_deref(), Some("db.sql.query"));
    assert_eq!(users.parent_span_id, Some(outer.span_id));
    assert_eq!(users.data["db.rows_returned"], 2);
    assert_eq!(users.data["db.rows_affected"], 0);
    assert_eq!(users.data["db.query_group"].as_str().unwrap().len(), 16);
    let took = users.duration();
    assert!(
        took >= Duration::from_micros(2900) && took <= Duration::from_micros(3100),
        "{took:?}"
    );

    // Long statement: the whole statement from `db.statement`, normalised.
    let posts = by_description(
        &t,
        "SELECT id, title FROM posts WHERE user_id = ? ORDER BY id",
    );
    assert_eq!(posts.parent_span_id, Some(inner.span_id));
    assert_eq!(posts.data["db.rows_returned"], 7);
    // Its start is derived from the elapsed time: it ended when the event came.
    assert!(posts.start_timestamp >= inner.start_timestamp - Duration::from_millis(3));
    // Without PII, the statement as executed is not kept.
    assert!(posts.data.get("db.statement").is_none());
}

#[test]
fn query_outside_any_span_hangs_under_the_request() {
    let (t, _) = request(|| sqlx_short("SELECT 1", 1, 0.0001));
    let span = by_description(&t, "SELECT ?");
    assert_eq!(span.parent_span_id, Some(root_id(&t)));
}

#[test]
fn statements_are_kept_when_pii_is_allowed() {
    let (t, _) = request_with(
        Options::new().send_default_pii(true),
        backstop_core::tracing::Config::new().sqlx_system("sqlite"),
        || sqlx_short("SELECT * FROM users WHERE id = 7", 1, 0.001),
    );
    let span = by_description(&t, "SELECT * FROM users WHERE id = ?");
    assert_eq!(
        span.data["db.statement"],
        "SELECT * FROM users WHERE id = 7"
    );
    assert_eq!(span.data["db.system"], "sqlite");
}

#[test]
fn orm_spans_with_db_system_become_db_spans() {
    // What sea-orm 2 emits with its `tracing-spans` feature.
    let (t, _) = request(|| {
        let span = tracing::info_span!(
            "sea_orm.query_all",
            otel.kind = "client",
            db.system = "sqlite",
            db.operation = "SELECT",
            db.statement = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        span.record(
            "db.statement",
            "SELECT \"cake\".\"id\" FROM \"cake\" WHERE \"id\" = $1",
        );
        span.in_scope(|| std::thread::sleep(Duration::from_millis(2)));
        span.record("otel.status_code", "ERROR");
    });
    let span = by_description(&t, "SELECT \"cake\".\"id\" FROM \"cake\" WHERE \"id\" = ?");
    assert_eq!(span.op.as_deref(), Some("db"));
    assert_eq!(span.data["db.system"], "sqlite");
    assert_eq!(span.data["db.operation"], "SELECT");
    assert_eq!(span.status, Some(backstop_core::SpanStatus::InternalError));
    assert!(span.duration() >= Duration::from_millis(2));
}

#[test]
fn a_statement_recorded_as_debug_still_makes_a_db_span() {
    struct Sql(&'static str);
    impl std::fmt::Debug for Sql {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    let (t, _) = request(|| {
        let span = tracing::info_span!(
            "orm.load",
            db.system = "sqlite",
            db.statement = ?Sql("SELECT id FROM cake WHERE id = 4"),
        );
        span.in_scope(|| {});
    });
    let span = by_description(&t, "SELECT id FROM cake WHERE id = ?");
    assert_eq!(span.op.as_deref(), Some("db"));
    assert!(
        !span.data.contains_key("db.statement"),
        "not kept as a plain field"
    );
}

#[test]
fn db_span_guard_records_rusqlite_queries() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO users (name) VALUES ('ann'), ('bob'), ('cy');",
    )
    .unwrap();
    let (t, _) = request(|| {
        let _outer = tracing::info_span!("list_users").entered();
        let sql = "SELECT id, name FROM users WHERE name <> ?1";
        let mut span = backstop_core::db_span("sqlite", sql);
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt
            .query_map(["bob"], |r| r.get::<_, String>(1))
            .unwrap()
            .count();
        span.rows_returned(rows as u64).params(&["bob"]);
        assert!(span.is_recording());
    });
    let outer = by_description(&t, "list_users");
    let span = by_description(&t, "SELECT id, name FROM users WHERE name <> ?");
    assert_eq!(span.op.as_deref(), Some("db.sql.query"));
    assert_eq!(span.parent_span_id, Some(outer.span_id));
    assert_eq!(span.data["db.rows_returned"], 2);
    assert_eq!(span.data["db.system"], "sqlite");
}

#[test]
fn db_span_outside_a_request_is_inert() {
    let span = backstop_core::db_span("sqlite", "SELECT 1");
    assert!(!span.is_recording());
}

#[test]
fn events_become_breadcrumbs_and_errors_are_captured_with_context() {
    let (backstop, sink) = start(Options::new());
    let subscriber = tracing_subscriber::registry().with(backstop_core::tracing::layer());
    tracing::subscriber::with_default(subscriber, || {
        let scope = RequestScope::builder(&backstop, "POST /checkout")
            .sampled(false)
            .start();
        scope.run(|| {
            backstop_core::set_tag("tenant", "acme");
            tracing::debug!("too chatty to keep");
            tracing::info!(cart = 3, "cart loaded");
            tracing::warn!(retries = 2u64, "payment slow");
            let err = "x".parse::<u32>().unwrap_err();
            tracing::error!(
                error = &err as &dyn std::error::Error,
                order = "o-1",
                "payment failed"
            );
        });
        scope.finish_http(500);
    });
    assert!(backstop.flush(Duration::from_secs(10)));
    let events = sink.events();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.level, backstop_core::Level::Error);
    assert_eq!(event.message.as_deref(), Some("payment failed"));
    assert_eq!(event.exception.values[0].ty, "ParseIntError");
    assert_eq!(event.logger.as_deref(), Some("tracing_layer"));
    assert_eq!(event.tags["tenant"], "acme");
    assert_eq!(event.transaction.as_deref(), Some("POST /checkout"));
    assert_eq!(event.contexts["tracing"]["order"], "o-1");
    let crumbs: Vec<_> = event
        .breadcrumbs
        .values
        .iter()
        .map(|b| (b.level, b.message.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        crumbs,
        [
            (backstop_core::Level::Info, "cart loaded".to_owned()),
            (backstop_core::Level::Warning, "payment slow".to_owned()),
        ]
    );
    assert_eq!(event.breadcrumbs.values[0].data["cart"], 3);
    assert_eq!(
        event.breadcrumbs.values[0].category.as_deref(),
        Some("tracing_layer")
    );
}

#[test]
fn levels_are_configurable() {
    let (backstop, sink) = start(Options::new());
    let config = backstop_core::tracing::Config::new()
        .breadcrumbs(Level::DEBUG)
        .events(Level::WARN);
    let subscriber = tracing_subscriber::registry().with(config.layer());
    tracing::subscriber::with_default(subscriber, || {
        let scope = RequestScope::builder(&backstop, "job")
            .sampled(false)
            .start();
        scope.run(|| {
            tracing::debug!("step one");
            tracing::trace!("never");
            tracing::warn!("disk almost full");
        });
    });
    assert!(backstop.flush(Duration::from_secs(10)));
    let events = sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].level, backstop_core::Level::Warning);
    assert_eq!(events[0].breadcrumbs.values.len(), 1);
    assert_eq!(
        events[0].breadcrumbs.values[0].message.as_deref(),
        Some("step one")
    );
}

#[test]
fn outside_a_request_nothing_is_recorded() {
    let (backstop, sink) = start(Options::new().traces_sample_rate(1.0));
    let subscriber = tracing_subscriber::registry().with(backstop_core::tracing::layer());
    tracing::subscriber::with_default(subscriber, || {
        load_feed(1);
        tracing::error!("no request here");
        tracing::info!("nor here");
    });
    assert!(backstop.flush(Duration::from_secs(10)));
    assert!(sink.records().is_empty());
    assert_eq!(backstop.stats().events.captured, 0);
}

#[test]
fn unsampled_requests_record_no_spans_but_keep_breadcrumbs() {
    let (backstop, sink) = start(Options::new());
    let subscriber = tracing_subscriber::registry().with(backstop_core::tracing::layer());
    tracing::subscriber::with_default(subscriber, || {
        let scope = RequestScope::builder(&backstop, "GET /")
            .sampled(false)
            .start();
        scope.run(|| {
            load_feed(1);
            tracing::info!("before");
            backstop_core::capture_message("boom", backstop_core::Level::Error);
        });
        scope.finish_http(200);
    });
    assert!(backstop.flush(Duration::from_secs(10)));
    assert!(sink.transactions().is_empty());
    let events = sink.events();
    assert_eq!(events[0].breadcrumbs.values.len(), 1);
}

#[test]
fn span_overflow_is_counted_and_marked() {
    let (t, _) = request_with(
        Options::new().max_spans(10),
        backstop_core::tracing::Config::new(),
        || {
            for i in 0..25 {
                sqlx_short(&format!("SELECT {i}"), 1, 0.0001);
            }
        },
    );
    assert_eq!(t.spans.len(), 10);
    assert_eq!(t.extra["spans_dropped"], 15);
}

#[test]
fn instrumented_work_on_another_thread_reports_to_its_request() {
    let (t, sink) = request(|| {
        let span = tracing::info_span!("background", job = "thumbnails");
        // No scope is bound on the other thread: the span carries the request. (The
        // subscriber is this thread's default here, so the other thread sets it too;
        // an app's global subscriber needs no such step.)
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        std::thread::scope(|s| {
            s.spawn(|| {
                let _default = tracing::dispatcher::set_default(&dispatch);
                let _entered = span.enter();
                sqlx_short("SELECT * FROM images", 4, 0.001);
                tracing::info!("thumbnails done");
            });
        });
        drop(span);
    });
    let background = by_description(&t, "background");
    let query = by_description(&t, "SELECT * FROM images");
    assert_eq!(query.parent_span_id, Some(background.span_id));
    assert!(sink.events().is_empty());
}

#[test]
fn instrumented_futures_keep_their_nesting() {
    let (t, _) = request(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(
            async {
                tokio::task::yield_now().await;
                sqlx_short("SELECT * FROM users", 3, 0.001);
            }
            .instrument(tracing::info_span!("handler")),
        );
    });
    let handler = by_description(&t, "handler");
    let query = by_description(&t, "SELECT * FROM users");
    assert_eq!(query.parent_span_id, Some(handler.span_id));
}

#[test]
fn backstops_own_logs_are_ignored() {
    let (backstop, sink) = start(Options::new());
    let subscriber = tracing_subscriber::registry().with(backstop_core::tracing::layer());
    tracing::subscriber::with_default(subscriber, || {
        let scope = RequestScope::builder(&backstop, "GET /")
            .sampled(false)
            .start();
        scope.run(|| {
            tracing::error!(target: "backstop", "sink failed");
            tracing::error!(target: "backstop_store::store", "disk full");
        });
    });
    assert!(backstop.flush(Duration::from_secs(10)));
    assert!(sink.events().is_empty());
}

#[test]
fn an_n_plus_one_through_the_layer_is_flagged() {
    let (t, _) = request(|| {
        // The queries take real time, one after the other, as they would on a database.
        let _span = tracing::info_span!("list_users").entered();
        std::thread::sleep(Duration::from_millis(4));
        sqlx_short("SELECT * FROM users", 6, 0.004);
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(12));
            sqlx_long("SELECT * FROM posts WHERE user_id = ?", 2, 0.012);
        }
    });
    let problem = t
        .problems
        .iter()
        .find(|p| p.kind == backstop_core::ProblemKind::NPlusOne)
        .unwrap_or_else(|| panic!("no N+1 in {:#?}", t.problems));
    assert_eq!(problem.description, "SELECT * FROM posts WHERE user_id = ?");
    assert_eq!(problem.count, 6);
    assert!(
        (problem.duration_ms - 72.0).abs() < 1.0,
        "{}",
        problem.duration_ms
    );
    assert_eq!(
        problem.parent_span_id,
        Some(by_description(&t, "list_users").span_id)
    );
    assert_eq!(problem.span_ids.len(), 6);

    // The console (the default sink) says so, one line per problem.
    let line = backstop_core::ConsoleSink::new()
        .line(&backstop_core::Record::Transaction(Box::new(t.clone())))
        .unwrap();
    assert!(
        line.starts_with(
            "backstop: [problem] N+1 query in GET /users: 6 queries like \
             `SELECT * FROM posts WHERE user_id = ?` took "
        ),
        "{line}"
    );
}

#[test]
fn huge_statements_and_fields_are_cut_not_copied_whole() {
    let huge = format!(
        "INSERT INTO t (a) VALUES {}",
        vec!["(1)"; 300_000].join(", ")
    );
    let (t, _) = request(|| {
        let _span = tracing::info_span!("import", payload = huge.as_str()).entered();
        sqlx_long(&huge, 0, 0.001);
        let _guard = backstop_core::db_span("sqlite", &huge);
    });
    let import = by_description(&t, "import");
    let payload = import.data["payload"].as_str().unwrap();
    assert!(payload.len() <= 1024 + 3 && payload.ends_with('…'));
    let queries: Vec<_> = t
        .spans
        .iter()
        .filter(|s| s.op.as_deref() == Some("db.sql.query"))
        .collect();
    assert_eq!(queries.len(), 2);
    for q in queries {
        let description = q.description.as_deref().unwrap();
        assert!(description.len() < 9 * 1024, "{}", description.len());
        assert!(description.starts_with("INSERT INTO t (a) VALUES"));
    }
}

#[test]
fn hostile_sqlx_fields_do_not_break_the_layer() {
    let (t, _) = request(|| {
        // Not a number where one is expected, negative and NaN durations, no statement.
        tracing::debug!(target: "sqlx::query", summary = "SELECT 1", elapsed_secs = f64::NAN);
        tracing::debug!(target: "sqlx::query", summary = "SELECT 2", elapsed_secs = -3.0);
        tracing::debug!(target: "sqlx::query", summary = "SELECT 3", rows_returned = -1i64);
        tracing::debug!(target: "sqlx::query", elapsed_secs = 0.1);
        tracing::debug!(target: "sqlx::query", summary = "SELECT 4", elapsed_secs = 1e300);
    });
    let queries: Vec<_> = t
        .spans
        .iter()
        .filter(|s| s.op.as_deref() == Some("db.sql.query"))
        .collect();
    assert_eq!(queries.len(), 4, "the event with no statement is skipped");
    assert!(queries.iter().all(|q| q.timestamp >= q.start_timestamp));
}

#[test]
fn a_span_closing_just_after_the_request_still_joins_it() {
    // A driver's thread may hold the request's span a moment after replying (sqlx's
    // SQLite worker does): the span closes after `finish`, and must not be lost.
    let (backstop, sink) = start(Options::new());
    let subscriber = tracing_subscriber::registry().with(backstop_core::tracing::layer());
    tracing::subscriber::with_default(subscriber, || {
        let scope = RequestScope::builder(&backstop, "GET /users")
            .sampled(true)
            .start();
        let held = scope.run(|| {
            let span = tracing::info_span!("users_n_plus_one");
            span.in_scope(|| sqlx_short("SELECT * FROM users", 2, 0.001));
            span.clone()
        });
        scope.finish_http(200);
        std::thread::sleep(Duration::from_millis(3));
        drop(held);

        // One that closes long after is counted, not kept.
        let scope = RequestScope::builder(&backstop, "GET /late")
            .sampled(true)
            .start();
        let held = scope.run(|| tracing::info_span!("straggler"));
        scope.finish_http(200);
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
    });
    assert!(backstop.flush(Duration::from_secs(10)));
    let transactions = sink.transactions();
    let t = transactions
        .iter()
        .find(|t| t.name == "GET /users")
        .unwrap();
    let function = by_description(t, "users_n_plus_one");
    let query = by_description(t, "SELECT * FROM users");
    assert_eq!(query.parent_span_id, Some(function.span_id));
    assert!(function.timestamp > query.timestamp);
    let late = transactions.iter().find(|t| t.name == "GET /late").unwrap();
    assert!(late.spans.is_empty());
    assert_eq!(backstop.stats().spans_dropped, 1);
}

/// A team's own cache wrapper, instrumented with the cache fields.
#[tracing::instrument(skip(cache), fields(cache.key = %key, cache.hit, cache.item_size))]
fn cached_get(cache: &std::collections::HashMap<&str, String>, key: &str) -> Option<String> {
    let found = cache.get(key).cloned();
    let span = tracing::Span::current();
    span.record("cache.hit", found.is_some());
    if let Some(value) = &found {
        span.record("cache.item_size", value.len() as u64);
    }
    found
}

#[tracing::instrument(skip(cache, value), fields(cache.key = %key, cache.op = "put"))]
fn cached_put(
    cache: &mut std::collections::HashMap<&'static str, String>,
    key: &'static str,
    value: &str,
) {
    cache.insert(key, value.to_owned());
}

#[test]
fn spans_with_cache_fields_are_cache_spans_with_breadcrumbs() {
    let (t, _) = request(|| {
        let mut cache = std::collections::HashMap::new();
        assert_eq!(cached_get(&cache, "user:7"), None);
        cached_put(&mut cache, "user:7", "ann");
        assert_eq!(cached_get(&cache, "user:7").as_deref(), Some("ann"));
        // The breadcrumbs are in the scope for any error that follows.
        let crumbs = backstop_core::configure_scope(|s| {
            s.breadcrumbs()
                .map(|b| {
                    (
                        b.category.clone().unwrap(),
                        b.data.get("cache.hit").cloned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .unwrap();
        assert_eq!(
            crumbs,
            [
                ("cache.get".to_owned(), Some(false.into())),
                ("cache.put".to_owned(), None),
                ("cache.get".to_owned(), Some(true.into())),
            ]
        );
    });
    let ops: Vec<_> = t
        .spans
        .iter()
        .map(|s| {
            (
                s.op.as_deref().unwrap(),
                s.description.as_deref().unwrap(),
                s.data.get("cache.hit").and_then(|v| v.as_bool()),
                s.data.get("cache.item_size").and_then(|v| v.as_u64()),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("cache.get", "user:7", Some(false), None),
            ("cache.put", "user:7", None, None),
            ("cache.get", "user:7", Some(true), Some(3)),
        ]
    );
    assert_eq!(
        t.contexts["cache"]["prefixes"],
        serde_json::json!([{"prefix": "user", "hits": 1, "misses": 1, "hit_rate": 0.5}])
    );
}

#[test]
fn cache_spans_of_an_unsampled_request_leave_breadcrumbs_only() {
    let (backstop, sink) = start(Options::new());
    let subscriber = tracing_subscriber::registry().with(backstop_core::tracing::layer());
    tracing::subscriber::with_default(subscriber, || {
        let scope = RequestScope::builder(&backstop, "GET /users")
            .sampled(false)
            .start();
        scope.run(|| {
            cached_get(&Default::default(), "user:8");
            let _ = backstop_core::cache::get("session:abc");
            backstop_core::capture_message("after the cache", backstop_core::Level::Error);
        });
        scope.finish_http(200);
    });
    assert!(backstop.flush(Duration::from_secs(10)));
    assert!(sink.transactions().is_empty());
    let events = sink.events();
    let keys: Vec<_> = events[0]
        .breadcrumbs
        .values
        .iter()
        .map(|b| b.data["cache.key"].clone())
        .collect();
    assert_eq!(keys, ["user:8", "session:[Filtered]"]);
}

/// A one-request HTTP server on loopback answering `status`; returns its address and
/// the request head it got.
fn one_shot_server(status: u16) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        while reader.read_line(&mut head).unwrap() > 2 {}
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
        )
        .unwrap();
        head
    });
    (addr, server)
}

/// Calls `url` by hand through [`backstop_core::outgoing`], as a client of its own kind
/// would: the trace headers go out with the request, the status comes back into the
/// span. Returns the status.
fn call_by_hand(addr: &str, path_and_query: &str) -> u16 {
    use std::io::{Read, Write};
    let url = format!("http://{addr}{path_and_query}");
    let mut call = backstop_core::outgoing::start(&http::Method::GET, &url);
    let mut headers = http::HeaderMap::new();
    call.inject(&mut headers);
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut request = format!("GET {path_and_query} HTTP/1.1\r\nhost: {addr}\r\n");
    for (name, value) in &headers {
        request.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status: u16 = response[9..12].parse().unwrap();
    call.status(status).response_size(2);
    status
}

#[test]
fn call_and_cache_breadcrumbs_reach_an_error_event_in_order() {
    let (addr, server) = one_shot_server(503);
    let (_, sink) = request(|| {
        backstop_core::add_breadcrumb(backstop_core::Breadcrumb::new("ui", "before"));
        assert_eq!(call_by_hand(&addr, "/rates?from=EUR"), 503);
        backstop_core::cache::get("rates:EUR").hit(false);
        backstop_core::add_breadcrumb(backstop_core::Breadcrumb::new("ui", "after"));
        backstop_core::capture_message("rates unavailable", backstop_core::Level::Error);
    });
    let head = server.join().unwrap();
    assert!(head.contains("traceparent: 00-"), "{head}");
    let events = sink.events();
    assert_eq!(events.len(), 1);
    let crumbs = &events[0].breadcrumbs.values;
    let categories: Vec<_> = crumbs.iter().map(|b| b.category.as_deref()).collect();
    assert_eq!(
        categories,
        [Some("ui"), Some("http"), Some("cache.get"), Some("ui")]
    );
    let call = &crumbs[1];
    assert_eq!(call.ty, "http");
    assert_eq!(call.level, backstop_core::Level::Error, "a 5xx");
    assert_eq!(call.data["method"], "GET");
    assert_eq!(call.data["url"], format!("http://{addr}/rates"));
    assert_eq!(call.data["http.query"], "from=EUR");
    assert_eq!(call.data["status_code"], 503);
    assert_eq!(crumbs[2].data["cache.key"], "rates:EUR");
    assert_eq!(crumbs[2].data["cache.hit"], false);
    // Each made when its operation ended: between the breadcrumbs around it.
    assert!(crumbs[0].timestamp <= crumbs[3].timestamp);
}

#[test]
fn before_breadcrumb_sees_call_and_cache_breadcrumbs_as_they_happen() {
    let (addr, server) = one_shot_server(200);
    let options = Options::new().before_breadcrumb(|mut crumb| {
        if crumb.category.as_deref() == Some("cache.get") {
            return None;
        }
        crumb.message = Some("seen".into());
        Some(crumb)
    });
    let (backstop, sink) = start(options);
    let scope = RequestScope::builder(&backstop, "GET /checkout")
        .sampled(false)
        .start();
    scope.run(|| {
        call_by_hand(&addr, "/rates");
        backstop_core::cache::get("rates:EUR").hit(true);
        let crumbs = backstop_core::configure_scope(|s| {
            s.breadcrumbs()
                .map(|b| (b.ty.clone(), b.message.clone()))
                .collect::<Vec<_>>()
        })
        .unwrap();
        assert_eq!(crumbs, [("http".to_owned(), Some("seen".to_owned()))]);
        backstop_core::capture_message("boom", backstop_core::Level::Error);
    });
    scope.finish_http(500);
    server.join().unwrap();
    assert!(backstop.flush(Duration::from_secs(10)));
    assert_eq!(backstop.stats().breadcrumbs_dropped, 1, "the cache one");
    let events = sink.events();
    assert_eq!(events[0].breadcrumbs.values.len(), 1);
    assert_eq!(events[0].breadcrumbs.values[0].data["status_code"], 200);
}
