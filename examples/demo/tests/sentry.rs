//! The demo exporting to Kent, a fake Sentry server: with a DSN set, what the store
//! keeps reaches Kent under the same event ids, and `/users` arrives with its query
//! spans; panics captured while Kent is down arrive once it is up.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use backstop::sentry::kent::{Kent, KentItem};
use backstop::store::{IssueQuery, RequestQuery, StoreReader};
use backstop::{Options, SqliteStore};

const PATIENCE: Duration = Duration::from_secs(120);

/// Serves the demo with `backstop::init`, as its `main` does.
async fn serve(options: Options, dir: &tempfile::TempDir) -> (SocketAddr, backstop::BackstopGuard) {
    let backstop = backstop::init(options).unwrap();
    let addr = common::serve_demo(&backstop, dir).await;
    (addr, backstop)
}

fn options(dsn: String, db: &std::path::Path) -> Options {
    Options::new()
        .dsn(dsn)
        .environment("production")
        .traces_sample_rate(1.0)
        .problem_thresholds(backstop_demo_data::thresholds())
        .sink(SqliteStore::open(db).unwrap())
        .console(false)
}

fn stored_ids(db: &std::path::Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let reader = StoreReader::open(db).unwrap();
    let mut events = BTreeSet::new();
    for issue in reader.issues(&IssueQuery::new().limit(100)).unwrap() {
        for event in reader.issue(issue.id, 100).unwrap().unwrap().latest_events {
            events.insert(event.event_id.to_string());
        }
    }
    let transactions = reader
        .recent_requests(&RequestQuery::new().limit(1000))
        .unwrap()
        .into_iter()
        .map(|r| r.event_id.to_string())
        .collect();
    (events, transactions)
}

fn ids_of(items: &[KentItem], ty: &str) -> BTreeSet<String> {
    items
        .iter()
        .filter(|i| i.item_type() == ty)
        .filter_map(|i| i.event_id().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_stored_events_reach_kent_with_the_same_ids() {
    let kent = tokio::task::spawn_blocking(Kent::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backstop.db");
    let (addr, backstop) = serve(options(kent.dsn(), &db), &dir).await;
    let http = reqwest::Client::new();
    for path in backstop_demo_data::ROUTES {
        http.get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
    }
    assert!(backstop.flush(Duration::from_secs(30)));
    let (events, transactions) = stored_ids(&db);
    assert!(events.len() >= 2, "the panic and the error: {events:?}");
    assert_eq!(
        transactions.len(),
        backstop_demo_data::ROUTES.len() + 1,
        "one per request, and the /api/rates that /checkout called"
    );

    let items = tokio::task::spawn_blocking(move || {
        let items = kent.wait_for(PATIENCE, |items| {
            ids_of(items, "event").is_superset(&events)
                && ids_of(items, "transaction").is_superset(&transactions)
        });
        assert_eq!(
            ids_of(&items, "event"),
            events,
            "every stored event, by its id"
        );
        assert_eq!(
            ids_of(&items, "transaction"),
            transactions,
            "every transaction"
        );
        items
    })
    .await
    .unwrap();
    let users = items
        .iter()
        .find(|i| i.item_type() == "transaction" && i.body["transaction"] == "GET /users")
        .expect("the /users transaction");
    let queries: Vec<&str> = users.body["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["op"] == "db.sql.query")
        .map(|s| s["description"].as_str().unwrap())
        .collect();
    assert_eq!(queries.len(), 21, "one for the users, one per user");
    assert_eq!(
        queries
            .iter()
            .filter(|q| **q == "SELECT title FROM posts WHERE user_id = ? ORDER BY id")
            .count(),
        20,
        "parameterised, so Sentry groups the N+1"
    );
    // The outgoing call reaches Sentry as its http.client span, and the called route's
    // transaction is in its trace, under it.
    let body = |name: &str| {
        &items
            .iter()
            .find(|i| i.item_type() == "transaction" && i.body["transaction"] == name)
            .unwrap_or_else(|| panic!("the {name} transaction"))
            .body
    };
    let checkout = body("GET /checkout");
    let call = checkout["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["op"] == "http.client")
        .expect("the call's span");
    assert_eq!(
        call["description"],
        format!("GET http://{addr}/api/rates").as_str()
    );
    // `/api/rates` is also requested on its own, in a trace of its own: the one
    // `/checkout` called is the one in its trace.
    let trace = &checkout["contexts"]["trace"]["trace_id"];
    let rates = items
        .iter()
        .map(|i| &i.body)
        .find(|b| {
            b["transaction"] == "GET /api/rates" && b["contexts"]["trace"]["trace_id"] == *trace
        })
        .expect("the called GET /api/rates transaction, in the checkout's trace");
    assert_eq!(
        rates["contexts"]["trace"]["parent_span_id"],
        call["span_id"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_captured_while_kent_is_down_arrive_once_it_is_up() {
    let port = Kent::free_port();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backstop.db");
    let (addr, backstop) = serve(options(Kent::dsn_for(port), &db), &dir).await;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let response = http
            .get(format!("http://{addr}/panic"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
    }
    assert!(backstop.flush(Duration::from_secs(30)));
    let (events, _) = stored_ids(&db);
    assert_eq!(events.len(), 3);
    let kent = tokio::task::spawn_blocking(move || Kent::start_on(port))
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let items = kent.wait_for(PATIENCE, |items| {
            ids_of(items, "event").is_superset(&events)
        });
        assert_eq!(ids_of(&items, "event"), events, "{items:?}");
    })
    .await
    .unwrap();
}
