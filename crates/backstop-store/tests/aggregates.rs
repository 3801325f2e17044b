//! The dashboard's aggregate reads against a real SQLite file.

mod common;

use std::time::{Duration, SystemTime};

use backstop_store::{Buckets, IssueQuery, RequestQuery, SqliteStore};
use common::*;

#[test]
fn series_histograms_statements_and_releases_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("backstop.db")).unwrap();
    let reader = store.reader();
    let now = SystemTime::now();
    let t0 = now - Duration::from_secs(3600);

    // Two buckets of 30 minutes: 3 requests in the first (one failed), 1 in the second.
    let mut batch = Vec::new();
    for (minute, ms, status, release) in [
        (1, 10, 200, "v1"),
        (2, 20, 500, "v1"),
        (3, 300, 200, "v1"),
        (40, 40, 200, "v2"),
    ] {
        let mut t = transaction_at(
            "GET /users",
            t0 + Duration::from_secs(minute * 60),
            Duration::from_millis(ms),
            2,
            1,
            status,
        );
        t.release = Some(release.into());
        // The driver said how many rows each query returned.
        for span in t
            .spans
            .iter_mut()
            .filter(|s| s.op.as_deref().is_some_and(|op| op.starts_with("db")))
        {
            span.data.insert("db.rows_returned".into(), 5.into());
        }
        batch.push(tx(t));
    }
    let mut e1 = released(
        at(error_event("g", "boom"), t0 + Duration::from_secs(60)),
        "v1",
        "prod",
    );
    e1.transaction = Some("GET /users".into());
    let e2 = released(
        at(error_event("g", "boom"), t0 + Duration::from_secs(2400)),
        "v2",
        "prod",
    );
    let e3 = released(
        at(error_event("g", "boom"), t0 + Duration::from_secs(2460)),
        "v2",
        "prod",
    );
    let (id1, id2, id3) = (e1.event_id, e2.event_id, e3.event_id);
    batch.extend([ev(e1), ev(e2), ev(e3)]);
    write_with_metrics(&mut store, &batch);

    let buckets = Buckets::new(t0, t0 + Duration::from_secs(3600), 2);
    let all = reader
        .request_series(&RequestQuery::new(), buckets)
        .unwrap();
    assert_eq!((all.total.count, all.total.errors), (4, 1));
    assert!(near(all.total.p50, Duration::from_millis(20)));
    assert!(near(all.total.p99, Duration::from_millis(300)));
    let series = all.points;
    assert_eq!(series.len(), 2);
    assert_eq!((series[0].count, series[0].errors), (3, 1));
    assert!(near(series[0].p50, Duration::from_millis(20)));
    assert!(near(series[0].p95, Duration::from_millis(300)));
    assert!(near(series[0].p99, Duration::from_millis(300)));
    assert_eq!((series[1].count, series[1].errors), (1, 0));
    let only = reader
        .request_series(&RequestQuery::new().route("GET /nowhere"), buckets)
        .unwrap();
    assert!(only.points.iter().all(|p| p.count == 0));

    let bins = reader
        .duration_histogram(
            &RequestQuery::new(),
            &[Duration::from_millis(15), Duration::from_millis(100)],
        )
        .unwrap();
    assert_eq!(bins, [1, 2, 1]);

    let issue = reader.issues(&IssueQuery::new()).unwrap()[0].id;
    let per_issue = reader.issue_series(&[issue], buckets).unwrap();
    assert_eq!(per_issue[&issue], [1, 2]);

    let links = reader.event_links(issue, id2).unwrap();
    assert_eq!(links.first, Some(id1));
    assert_eq!(links.previous, Some(id1));
    assert_eq!(links.next, Some(id3));
    assert_eq!(links.latest, Some(id3));

    let tags = reader.tag_distributions(issue, 100).unwrap();
    let release = tags.iter().find(|t| t.key == "release").unwrap();
    assert_eq!(release.values[0], ("v2".to_owned(), 2));
    assert_eq!(release.total, 3);
    assert_eq!(reader.route_issues("GET /users", 10).unwrap()[0].id, issue);

    // Each transaction ran two distinct statements once.
    let statements = reader
        .statements(RequestQuery::new().filter(), None)
        .unwrap();
    assert_eq!(statements.len(), 2);
    assert!(statements.iter().all(|s| s.count == 4 && s.requests == 4));
    assert!(
        statements.iter().all(|s| s.rows == Some(20)),
        "{statements:?}"
    );
    assert!(statements.iter().all(|s| s.mean <= s.p95 && s.p95 <= s.max));
    assert_eq!(statements[0].routes, ["GET /users"]);
    // Every span kind, queries and renders alike.
    let spans = reader
        .span_totals(RequestQuery::new().filter(), Some("GET /users"))
        .unwrap();
    assert_eq!(spans.len(), 3);
    assert!(
        spans
            .iter()
            .any(|s| s.op.as_deref() == Some("function") && s.count == 4)
    );
    let runs = reader.statement_runs(&statements[0].statement, 10).unwrap();
    assert_eq!(runs.len(), 4);
    assert_eq!(
        runs[0].request.duration,
        Duration::from_millis(300),
        "the most time in it first"
    );

    // The route table, and one route of it.
    let routes = reader
        .routes(&backstop_store::RouteQuery::new().apdex(Duration::from_millis(50)))
        .unwrap();
    assert_eq!(routes.len(), 1);
    let users = &routes[0];
    assert_eq!((users.count, users.errors), (4, 1));
    assert!(near(users.p50, Duration::from_millis(20)));
    assert!(near(users.p95, Duration::from_millis(300)));
    // Three of four within T, the 300 ms one over 4T: (3 + 3) / 2 / 4.
    assert_eq!(users.apdex, Some(0.75));
    assert_eq!(
        reader
            .routes(&backstop_store::RouteQuery::new().route("GET /nowhere"))
            .unwrap(),
        []
    );

    let releases = reader.release_stats(10).unwrap();
    let v1 = releases.iter().find(|r| r.version == "v1").unwrap();
    assert_eq!((v1.requests, v1.errors, v1.new_issues), (3, 1, 1));
    assert_eq!(v1.p95, Duration::from_millis(300));

    let health = reader.health().unwrap();
    assert_eq!(
        (health.issues, health.events, health.transactions),
        (1, 3, 4)
    );
    assert_eq!(health.spans, 12);
    assert!(health.file_bytes > 0);

    // The health page's retention and last prune come from the writer.
    assert_eq!(reader.retention(), Some(store.retention()));
    store.prune_now().unwrap();
    let pruned = reader.write_stats().unwrap().last_prune.unwrap();
    assert!(pruned >= now);

    assert!(reader.delete_issue(issue).unwrap());
    assert!(!reader.delete_issue(issue).unwrap());
    assert_eq!(reader.event_count().unwrap(), 0);
    assert_eq!(reader.transaction_count().unwrap(), 4, "requests stay");
    reader.clear().unwrap();
    assert_eq!(reader.transaction_count().unwrap(), 0);
    assert!(reader.releases().unwrap().is_empty());
}

/// Outgoing calls and cache reads recorded by core's real pipeline, read back per
/// route: calls grouped by method and normalised URL, cache reads by key prefix.
#[test]
fn calls_and_caches_per_route() {
    use backstop_core::{Options, RequestScope, SpanStatus};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backstop.db");
    let backstop = backstop_core::test::start(
        Options::new()
            .traces_sample_rate(1.0)
            .console(false)
            .sink(SqliteStore::open(&path).unwrap()),
    )
    .unwrap();
    let request = |name: &str, f: &dyn Fn()| {
        let scope = RequestScope::builder(&backstop, name).sampled(true).start();
        scope.run(f);
        scope.finish_http(200);
    };
    for user in 1..=3 {
        request("GET /checkout", &|| {
            let mut get = backstop_core::cache::get("rates:EUR");
            get.hit(user > 1);
            drop(get);
            let mut call =
                backstop_core::outgoing::start(&http::Method::GET, "https://rates.example/eur?x=1");
            call.status(if user == 3 { 503 } else { 200 });
            drop(call);
            let url = format!("https://api.example/users/{user}");
            let mut call = backstop_core::outgoing::start(&http::Method::GET, &url);
            call.failed(SpanStatus::Unavailable);
            drop(call);
        });
    }
    request("GET /other", &|| {
        let mut call =
            backstop_core::outgoing::start(&http::Method::POST, "https://other.example/");
        call.status(204);
        drop(call);
        let mut get = backstop_core::cache::get("user/7");
        get.hit(true);
    });
    assert!(backstop.flush(Duration::from_secs(10)));

    let reader = backstop_store::StoreReader::open(&path).unwrap();
    let filter = RequestQuery::new();
    let calls = reader
        .calls(filter.filter(), Some("GET /checkout"))
        .unwrap();
    let summary: Vec<_> = calls
        .iter()
        .map(|c| (c.url.as_str(), c.count, c.failed))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET https://api.example/users/*", 3, 3),
            ("GET https://rates.example/eur", 3, 1),
        ]
    );
    assert!(calls.iter().all(|c| c.p95 <= c.total));
    let caches = reader
        .caches(filter.filter(), Some("GET /checkout"))
        .unwrap();
    assert_eq!(caches.len(), 1);
    assert_eq!(
        (caches[0].prefix.as_str(), caches[0].hits, caches[0].misses),
        ("rates", 2, 1)
    );
    assert!((caches[0].hit_rate() - 2.0 / 3.0).abs() < 1e-9);
    // Every route, and nothing for a route without any.
    assert_eq!(reader.calls(filter.filter(), None).unwrap().len(), 3);
    assert_eq!(reader.caches(filter.filter(), None).unwrap().len(), 2);
    assert!(
        reader
            .calls(filter.filter(), Some("GET /none"))
            .unwrap()
            .is_empty()
    );
    assert!(
        reader
            .caches(filter.filter(), Some("GET /none"))
            .unwrap()
            .is_empty()
    );
}
