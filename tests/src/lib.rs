//! The parity suite: every scenario in [`scenarios`] runs against each framework's
//! adapter, with the same expectations on status, content type, page markers and
//! captured records. A difference between frameworks is a bug in an adapter.
//!
//! Each adapter's test serves an app with the routes of [`ROUTES`] on loopback, plugs a
//! [`TestSink`] into its client, and calls [`run_all`].

use std::net::SocketAddr;
use std::time::Duration;

use backstop_core::test::TestSink;
use backstop_core::{Client, Event, Transaction};

/// The routes every adapter's parity app serves.
///
/// | route | behaviour |
/// |---|---|
/// | `GET /ok` | 200, `ok` |
/// | `GET /panic` | sets user `u1`, tag `area=checkout` and a breadcrumb, then panics with `parity panic` |
/// | `GET /error` | 500 carrying an error `ParityError` ("parity failure") whose source is an `io::Error` ("disk full") |
/// | `GET /bare500` | a bare 500 with an empty body |
/// | `GET /forbidden` | a bare 403 with an empty body |
/// | `GET /items?id=` | a query extractor: `id` must be a number, or the framework rejects it with a 400 (a query, not a path: actix answers a path that does not parse with 404 by design, and Backstop keeps the framework's status) |
/// | `GET /context/{n}` | sets user `n`, tag `n=<n>`, a breadcrumb `step <n>`, yields, then answers a bare 500 |
pub const ROUTES: &[&str] = &[
    "/ok",
    "/panic",
    "/error",
    "/bare500",
    "/forbidden",
    "/items",
    "/context/{n}",
];

/// What a scenario sends.
#[derive(Debug, Clone)]
pub struct Send {
    /// The path and query.
    pub path: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, &'static str)>,
}

/// What a scenario expects back.
pub struct Scenario {
    /// A short name, shown on failure.
    pub name: &'static str,
    /// The request.
    pub send: Send,
    /// The status.
    pub status: u16,
    /// How the `Content-Type` starts.
    pub content_type: &'static str,
    /// Text the body must contain.
    pub body_has: Vec<&'static str>,
    /// Text the body must not contain.
    pub body_lacks: Vec<&'static str>,
    /// Checks on the events recorded for this request alone.
    pub events: fn(&[Event]),
}

fn html(path: &'static str) -> Send {
    Send {
        path,
        headers: vec![("accept", "text/html")],
    }
}

fn no_events(events: &[Event]) {
    assert!(events.is_empty(), "no event expected: {events:#?}");
}

/// The scenarios every adapter must pass alike.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "a panic",
            send: html("/panic"),
            status: 500,
            content_type: "text/html",
            body_has: vec!["<h1"],
            body_lacks: vec!["parity panic"],
            events: |events| {
                assert_eq!(events.len(), 1);
                let exc = &events[0].exception.values[0];
                assert_eq!(exc.ty, "panic");
                assert_eq!(exc.value.as_deref(), Some("parity panic"));
                let mechanism = exc.mechanism.as_ref().unwrap();
                assert_eq!(
                    (mechanism.ty.as_str(), mechanism.handled),
                    ("panic", Some(false))
                );
                assert_eq!(events[0].user.as_ref().unwrap().id.as_deref(), Some("u1"));
                assert_eq!(events[0].tags["area"], "checkout");
                assert_eq!(
                    events[0].breadcrumbs.values[0].message.as_deref(),
                    Some("before the panic")
                );
                assert_eq!(events[0].transaction.as_deref(), Some("GET /panic"));
            },
        },
        Scenario {
            name: "a 500 with an error",
            send: html("/error"),
            status: 500,
            content_type: "text/html",
            body_has: vec!["<h1"],
            body_lacks: vec!["disk full"],
            events: |events| {
                assert_eq!(events.len(), 1);
                let types: Vec<_> = events[0]
                    .exception
                    .values
                    .iter()
                    .map(|e| e.ty.as_str())
                    .collect();
                assert_eq!(types.last(), Some(&"ParityError"), "{types:?}");
                assert_eq!(types.len(), 2, "the source chain: {types:?}");
                assert_eq!(
                    events[0].exception.values[0].value.as_deref(),
                    Some("disk full")
                );
                assert_eq!(events[0].tags["http.status_code"], "500");
            },
        },
        Scenario {
            name: "a 500 without an error",
            send: html("/bare500"),
            status: 500,
            content_type: "text/html",
            body_has: vec!["<h1"],
            body_lacks: vec![],
            events: |events| {
                assert_eq!(events.len(), 1);
                let exc = &events[0].exception.values[0];
                assert_eq!(exc.ty, "InternalServerError");
                assert_eq!(
                    exc.value.as_deref(),
                    Some("GET /bare500 responded 500 Internal Server Error")
                );
            },
        },
        Scenario {
            name: "an unknown path",
            send: html("/no/such/page"),
            status: 404,
            content_type: "text/html",
            body_has: vec!["<h1", "/no/such/page"],
            body_lacks: vec![],
            events: no_events,
        },
        Scenario {
            name: "403",
            send: html("/forbidden"),
            status: 403,
            content_type: "text/html",
            body_has: vec!["<h1"],
            body_lacks: vec![],
            events: no_events,
        },
        Scenario {
            name: "an extractor rejection",
            send: html("/items?id=not-a-number"),
            status: 400,
            content_type: "text/html",
            body_has: vec!["<h1"],
            body_lacks: vec![],
            events: no_events,
        },
        Scenario {
            name: "Accept: application/json",
            send: Send {
                path: "/bare500",
                headers: vec![("accept", "application/json")],
            },
            status: 500,
            content_type: "application/problem+json",
            body_has: vec!["\"status\":500"],
            body_lacks: vec!["<h1"],
            events: |events| assert_eq!(events.len(), 1),
        },
        Scenario {
            name: "an XSS payload in the path",
            send: html("/%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
            status: 404,
            content_type: "text/html",
            // The path is echoed (so the check below has something to bite on),
            // in its encoded form, never as markup.
            body_has: vec!["<h1", "%3Cscript%3Ealert(1)"],
            body_lacks: vec!["<script>alert(1)</script>"],
            events: no_events,
        },
    ]
}

/// Sends one request; returns status, content type and body.
pub async fn send(http: &reqwest::Client, addr: SocketAddr, send: &Send) -> (u16, String, String) {
    let mut request = http.get(format!("http://{addr}{}", send.path));
    for (name, value) in &send.headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.text().await.unwrap_or_default(),
    )
}

/// Runs every scenario against a server at `addr` whose client is `client`, capturing
/// into `sink`.
pub async fn run_all(framework: &str, addr: SocketAddr, client: &Client, sink: &TestSink) {
    let http = reqwest::Client::new();
    for scenario in scenarios() {
        sink.clear();
        let (status, content_type, body) = send(&http, addr, &scenario.send).await;
        let what = format!("{framework}: {}", scenario.name);
        assert_eq!(status, scenario.status, "{what}: status");
        assert!(
            content_type.starts_with(scenario.content_type),
            "{what}: content type {content_type}"
        );
        for marker in &scenario.body_has {
            assert!(
                body.contains(marker),
                "{what}: body lacks {marker:?}: {body}"
            );
        }
        for marker in &scenario.body_lacks {
            assert!(!body.contains(marker), "{what}: body has {marker:?}");
        }
        assert!(client.flush(Duration::from_secs(10)), "{what}: flush");
        let events = sink.events();
        let check = std::panic::AssertUnwindSafe(|| (scenario.events)(&events));
        if let Err(panic) = std::panic::catch_unwind(check) {
            panic!(
                "{what}: events: {}",
                backstop_core::adapter::payload_message(&*panic)
            );
        }
    }
    isolation(framework, addr, client, sink).await;
}

/// 200 concurrent requests, each setting its own user, tag and breadcrumb: every event
/// carries its own request's context and nobody else's.
async fn isolation(framework: &str, addr: SocketAddr, client: &Client, sink: &TestSink) {
    sink.clear();
    let http = reqwest::Client::new();
    let mut requests = Vec::new();
    for n in 0..200u32 {
        let http = http.clone();
        requests.push(tokio::spawn(async move {
            http.get(format!("http://{addr}/context/{n}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), 500);
    }
    assert!(client.flush(Duration::from_secs(10)));
    let events = sink.events();
    assert_eq!(events.len(), 200, "{framework}: one event per request");
    for event in &events {
        let n = event.tags.get("n").expect("the request's tag");
        assert_eq!(
            event.user.as_ref().unwrap().id.as_deref(),
            Some(n.as_str()),
            "{framework}"
        );
        let crumbs: Vec<_> = event
            .breadcrumbs
            .values
            .iter()
            .filter_map(|b| b.message.clone())
            .collect();
        assert_eq!(crumbs, [format!("step {n}")], "{framework}");
        assert_eq!(
            event.transaction.as_deref(),
            Some("GET /context/{n}"),
            "{framework}"
        );
    }
}

/// A trace continued from `traceparent` keeps its trace id and parent, and honours the
/// caller's sampling decision.
pub async fn tracing_and_sampling(
    framework: &str,
    addr: SocketAddr,
    client: &Client,
    sink: &TestSink,
    sampled_at_one: bool,
) -> Vec<Transaction> {
    sink.clear();
    let http = reqwest::Client::new();
    http.get(format!("http://{addr}/ok"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    http.get(format!("http://{addr}/ok"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        )
        .send()
        .await
        .unwrap();
    http.get(format!("http://{addr}/ok")).send().await.unwrap();
    assert!(client.flush(Duration::from_secs(10)));
    let transactions = sink.transactions();
    let expected = if sampled_at_one { 2 } else { 1 };
    assert_eq!(
        transactions.len(),
        expected,
        "{framework}: caller-sampled + own rate"
    );
    let continued = &transactions[0].trace;
    assert_eq!(
        continued.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "{framework}"
    );
    assert_eq!(
        continued.parent_span_id.unwrap().to_string(),
        "00f067aa0ba902b7",
        "{framework}"
    );
    assert_eq!(transactions[0].name, "GET /ok", "{framework}");
    transactions
}

/// The demo contract (DESIGN.md), end to end, against a demo served at `addr` whose
/// client is `client` (with `backstop_demo_data::thresholds()`) and whose SQLite store
/// is at `db`: the home page links every route, each error route answers its status
/// with a branded page, the data routes answer, `/slow` takes its 300 ms, and the store holds the
/// issues, one transaction per request, and the N+1 of `/users` as a performance issue
/// linked to its transaction. Both demos' tests call it.
pub async fn check_demo_contract(addr: SocketAddr, client: &Client, db: &std::path::Path) {
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("http://{addr}{path}"))
            .header("accept", "text/html")
            .send()
    };

    let home = get("/").await.unwrap();
    assert_eq!(home.status(), 200);
    let body = home.text().await.unwrap();
    for link in [
        "/panic",
        "/error",
        "/forbidden",
        "/bad-request",
        "/users",
        "/users/fixed",
        "/slow",
        "/checkout",
        "/api/rates",
    ] {
        assert!(body.contains(&format!("href=\"{link}\"")), "{link}");
    }
    for (path, status) in [
        ("/panic", 500),
        ("/error", 500),
        ("/forbidden", 403),
        ("/bad-request", 400),
        ("/no/such/page", 404),
    ] {
        let response = get(path).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = response.text().await.unwrap();
        assert_eq!(page.matches("<h1").count(), 1, "{path}: a branded page");
    }
    let users: serde_json::Value = get("/users").await.unwrap().json().await.unwrap();
    assert!(users.as_array().unwrap().len() >= 20);
    assert_eq!(get("/users/fixed").await.unwrap().status(), 200);
    let started = std::time::Instant::now();
    assert_eq!(get("/slow").await.unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    assert!(client.flush(Duration::from_secs(10)));
    let reader = backstop_store::StoreReader::open(db).unwrap();
    let issues = reader
        .issues(&backstop_store::IssueQuery::default())
        .unwrap();
    let titles: Vec<_> = issues.iter().map(|i| i.title.clone()).collect();
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("panic: index out of bounds")),
        "{titles:?}"
    );
    assert!(
        titles.iter().any(|t| t.starts_with("CheckoutError")),
        "{titles:?}"
    );
    assert_eq!(
        reader.transaction_count().unwrap(),
        9,
        "one transaction per request"
    );

    let problems = reader
        .performance_issues(&backstop_store::PerfIssueQuery::default())
        .unwrap();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let n_plus_one = &problems[0];
    assert_eq!(n_plus_one.kind, backstop_core::ProblemKind::NPlusOne);
    assert_eq!(n_plus_one.route, "GET /users");
    assert_eq!(
        n_plus_one.issue.title,
        "SELECT title FROM posts WHERE user_id = ? ORDER BY id"
    );
    let detail = reader
        .performance_issue(n_plus_one.issue.id, 10)
        .unwrap()
        .unwrap();
    assert_eq!(detail.occurrences.len(), 1);
    let occurrence = &detail.occurrences[0];
    assert_eq!(occurrence.count, 20);
    assert_eq!(occurrence.span_ids.len(), 20);
    assert_eq!(
        reader
            .transaction_problems(occurrence.transaction_event_id)
            .unwrap(),
        detail.occurrences
    );
}

/// The demos' `/checkout`, end to end, against a demo served at `addr` whose client is
/// `client` and whose SQLite store is at `db`: three checkouts store a `GET /checkout`
/// transaction with an `http.client` span naming `/api/rates`, a `GET /api/rates`
/// transaction in the same trace whose parent is that span, and cache spans with a
/// miss, then hits (also counted in the transactions' `cache` context).
pub async fn check_demo_checkout(addr: SocketAddr, client: &Client, db: &std::path::Path) {
    let http = reqwest::Client::new();
    let mut cached = Vec::new();
    for _ in 0..3 {
        let response = http
            .get(format!("http://{addr}/checkout"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        cached.push(body["cached"].as_bool().unwrap());
    }
    assert_eq!(cached, [false, true, true], "a miss, then hits");
    assert!(client.flush(Duration::from_secs(10)));

    let reader = backstop_store::StoreReader::open(db).unwrap();
    let requests = reader
        .recent_requests(&backstop_store::RequestQuery::default())
        .unwrap();
    let detail = |name: &str| -> Vec<Transaction> {
        requests
            .iter()
            .filter(|r| r.name == name)
            .map(|r| reader.request(r.event_id).unwrap().unwrap().transaction)
            .collect()
    };
    let checkouts = detail("GET /checkout");
    let rates = detail("GET /api/rates");
    assert_eq!(checkouts.len(), 3, "{requests:#?}");
    assert_eq!(rates.len(), 1, "only the miss calls /api/rates");
    let rates = &rates[0];

    let calling: Vec<_> = checkouts
        .iter()
        .filter(|t| {
            t.spans
                .iter()
                .any(|s| s.op.as_deref() == Some("http.client"))
        })
        .collect();
    assert_eq!(calling.len(), 1);
    let checkout = calling[0];
    let call = checkout
        .spans
        .iter()
        .find(|s| s.op.as_deref() == Some("http.client"))
        .unwrap();
    assert_eq!(
        call.description.as_deref(),
        Some(format!("GET http://{addr}/api/rates").as_str())
    );
    assert_eq!(call.data["http.response.status_code"], 200);
    assert_eq!(rates.trace.trace_id, checkout.trace.trace_id, "one trace");
    assert_eq!(rates.trace.parent_span_id, Some(call.span_id));
    assert!(call.duration() >= Duration::from_millis(45), "{call:?}");

    let cache_ops: Vec<(String, Option<bool>)> = checkouts
        .iter()
        .flat_map(|t| &t.spans)
        .filter(|s| s.op.as_deref().is_some_and(|op| op.starts_with("cache.")))
        .map(|s| {
            (
                s.op.clone().unwrap(),
                s.data.get("cache.hit").and_then(|h| h.as_bool()),
            )
        })
        .collect();
    let hits = cache_ops
        .iter()
        .filter(|(op, hit)| op == "cache.get" && *hit == Some(true))
        .count();
    let misses = cache_ops
        .iter()
        .filter(|(op, hit)| op == "cache.get" && *hit == Some(false))
        .count();
    let puts = cache_ops.iter().filter(|(op, _)| op == "cache.put").count();
    assert_eq!((hits, misses, puts), (2, 1, 1), "{cache_ops:?}");
    let rates_of = |t: &Transaction| t.contexts["cache"]["prefixes"][0].clone();
    assert_eq!(
        rates_of(checkout),
        serde_json::json!({"prefix": "rates", "hits": 0, "misses": 1, "hit_rate": 0.0})
    );
}

/// Installs the tracing layer as this process's global subscriber (once; later calls do
/// nothing), so query spans are recorded on every runtime thread.
pub fn install_tracing() {
    use tracing_subscriber::prelude::*;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(
            backstop_core::tracing::Config::new()
                .sqlx_system("sqlite")
                .layer(),
        );
        // Another test of this binary may have set one: then that one stays.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// The demos' query routes, end to end, against a demo served at `addr` with
/// [`install_tracing`] done, `backstop_demo_data::thresholds()` set, and `sink` plugged
/// into `client`:
///
/// - `/users` records one transaction with a function span, one query span for the
///   users and one per user for their posts, all with real durations and row counts,
///   nested under the function span; and flags exactly one N+1, naming the posts query;
/// - `/users/fixed` records the one join, and no problem.
pub async fn check_demo_queries(addr: SocketAddr, client: &Client, sink: &TestSink) {
    use backstop_core::ProblemKind;
    const POSTS_QUERY: &str = "SELECT title FROM posts WHERE user_id = ? ORDER BY id";

    let http = reqwest::Client::new();
    for path in ["/users", "/users/fixed"] {
        let users: serde_json::Value = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let users = users.as_array().unwrap();
        assert_eq!(users.len(), 20, "{path}");
        assert!(
            users
                .iter()
                .all(|u| u["posts"].as_array().unwrap().len() == 3)
        );
    }
    assert!(client.flush(Duration::from_secs(10)));
    let transactions = sink.transactions();
    let find = |name: &str| {
        transactions
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no transaction {name}"))
    };

    let t = find("GET /users");
    let root = t.trace.span_id;
    let function = t
        .spans
        .iter()
        .find(|s| s.op.as_deref() == Some("function"))
        .expect("the instrumented function's span");
    assert_eq!(function.description.as_deref(), Some("users_n_plus_one"));
    assert_eq!(function.parent_span_id, Some(root));
    let queries: Vec<_> = t
        .spans
        .iter()
        .filter(|s| s.op.as_deref() == Some("db.sql.query"))
        .collect();
    let described: Vec<_> = queries.iter().map(|q| q.description.clone()).collect();
    assert_eq!(
        queries.len(),
        21,
        "one users query, then one per user: {described:#?}"
    );
    for q in &queries {
        assert_eq!(q.parent_span_id, Some(function.span_id));
        assert!(q.timestamp > q.start_timestamp, "a real duration");
        assert!(q.start_timestamp >= function.start_timestamp);
        assert!(q.timestamp <= function.timestamp);
        assert_eq!(q.data["db.system"], "sqlite");
    }
    assert_eq!(
        queries[0].description.as_deref(),
        Some("SELECT id, name FROM users ORDER BY id")
    );
    assert_eq!(queries[0].data["db.rows_returned"], 20);
    assert!(queries[1..].iter().all(|q| {
        q.description.as_deref() == Some(POSTS_QUERY) && q.data["db.rows_returned"] == 3
    }));
    assert_eq!(t.problems.len(), 1, "{:#?}", t.problems);
    let problem = &t.problems[0];
    assert_eq!(problem.kind, ProblemKind::NPlusOne);
    assert_eq!(problem.description, POSTS_QUERY);
    assert_eq!(problem.count, 20);
    assert_eq!(problem.parent_span_id, Some(function.span_id));
    let ids: Vec<_> = queries[1..].iter().map(|q| q.span_id).collect();
    assert_eq!(problem.span_ids, ids);
    assert!(
        problem
            .summary()
            .starts_with(&format!("20 queries like `{POSTS_QUERY}` took"))
    );

    let fixed = find("GET /users/fixed");
    let joins: Vec<_> = fixed
        .spans
        .iter()
        .filter(|s| s.op.as_deref() == Some("db.sql.query"))
        .collect();
    assert_eq!(joins.len(), 1);
    assert_eq!(joins[0].data["db.rows_returned"], 60);
    assert!(fixed.problems.is_empty(), "{:#?}", fixed.problems);
}

/// Extra request headers, as (name, value).
type Headers = &'static [(&'static str, &'static str)];

/// Behind a trusted proxy (the app trusts `127.0.0.1` with `trust_proxy_ip`, and the
/// suite connects from it): the URL's scheme is `https` when the proxy says so
/// (`X-Forwarded-Proto`, or `Forwarded: proto=` of the client's hop) and `http`
/// otherwise, and the client is the one the proxy names. An invalid incoming request
/// id is replaced by a generated one, which the event carries too; a valid one is
/// echoed.
pub async fn proxies_and_request_ids(
    framework: &str,
    addr: SocketAddr,
    client: &Client,
    sink: &TestSink,
) {
    let http = reqwest::Client::new();
    // The forwarding headers sent, then the scheme and client recorded.
    let cases: [(Headers, &str, &str); 4] = [
        (&[], "http", "127.0.0.1"),
        (
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
            "https",
            "203.0.113.9",
        ),
        (
            &[("forwarded", "for=203.0.113.7;proto=https")],
            "https",
            "203.0.113.7",
        ),
        (
            &[("forwarded", "for=\"[2001:db8::5]:4711\";proto=http")],
            "http",
            "2001:db8::5",
        ),
    ];
    for (headers, scheme, client_ip) in cases {
        sink.clear();
        let mut request = http.get(format!("http://{addr}/bare500"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        assert_eq!(request.send().await.unwrap().status(), 500);
        assert!(client.flush(Duration::from_secs(10)));
        let events = sink.events();
        assert_eq!(events.len(), 1, "{framework}: {headers:?}");
        let request = events[0].request.as_ref().expect("the request context");
        let url = request.url.as_deref().unwrap_or_default();
        assert!(
            url.starts_with(&format!("{scheme}://")) && url.ends_with("/bare500"),
            "{framework}: {headers:?} gave {url}"
        );
        assert_eq!(
            request.env["REMOTE_ADDR"], client_ip,
            "{framework}: {headers:?}"
        );
    }

    for invalid in ["<script>", "has space", &"x".repeat(200)] {
        sink.clear();
        let response = http
            .get(format!("http://{addr}/bare500"))
            .header("x-request-id", invalid)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), 500, "{framework}: {invalid}");
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            id.len(),
            32,
            "{framework}: a generated id replaces {invalid:?}"
        );
        assert!(
            id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{framework}: {id}"
        );
        assert!(client.flush(Duration::from_secs(10)));
        let events = sink.events();
        assert_eq!(events.len(), 1, "{framework}");
        let env = &events[0].request.as_ref().unwrap().env;
        assert_eq!(
            env["REQUEST_ID"], id,
            "{framework}: the event carries the same id"
        );
    }
    let response = http
        .get(format!("http://{addr}/ok"))
        .header("x-request-id", "edge-42:abc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-request-id"],
        "edge-42:abc",
        "{framework}"
    );
    assert_eq!(
        response.text().await.unwrap(),
        "ok",
        "{framework}: still serving"
    );
}

/// The request id header an app at `addr` was configured with: [`CUSTOM_ID_HEADER`]. A
/// caller's id in it is echoed there; without one, a generated id is; `x-request-id`
/// is then neither read nor set.
pub async fn custom_request_id_header(framework: &str, addr: SocketAddr) {
    let http = reqwest::Client::new();
    let response = http
        .get(format!("http://{addr}/ok"))
        .header(CUSTOM_ID_HEADER, "edge-7:xyz")
        .header("x-request-id", "not-this-one")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{framework}");
    assert_eq!(
        response.headers()[CUSTOM_ID_HEADER],
        "edge-7:xyz",
        "{framework}"
    );
    assert!(
        !response.headers().contains_key("x-request-id"),
        "{framework}"
    );

    let response = http.get(format!("http://{addr}/ok")).send().await.unwrap();
    let id = response.headers()[CUSTOM_ID_HEADER].to_str().unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{framework}: a generated id, got {id:?}"
    );
    assert!(
        !response.headers().contains_key("x-request-id"),
        "{framework}"
    );
}

/// The request id header [`custom_request_id_header`] expects.
pub const CUSTOM_ID_HEADER: &str = "x-correlation-id";

/// The debug page in development, served at `addr` by an app that trusts `127.0.0.1`
/// as a proxy: a visitor on this machine sees the panic's details; a remote visitor
/// (the trusted proxy naming a client elsewhere) gets the normal page. With
/// `for_everyone` (the team opted in), the remote visitor sees them too.
pub async fn debug_page_locality(framework: &str, addr: SocketAddr, for_everyone: bool) {
    let http = reqwest::Client::new();
    let page = |forwarded_for: Option<&'static str>| {
        let mut request = http
            .get(format!("http://{addr}/panic"))
            .header("accept", "text/html");
        if let Some(client) = forwarded_for {
            request = request.header("x-forwarded-for", client);
        }
        async move {
            let response = request.send().await.expect("the server answers");
            assert_eq!(response.status(), 500, "{framework}");
            response.text().await.unwrap()
        }
    };
    let local = page(None).await;
    assert!(
        local.contains("parity panic"),
        "{framework}: a local visitor sees the details"
    );
    let local_behind_proxy = page(Some("127.0.0.1")).await;
    assert!(local_behind_proxy.contains("parity panic"), "{framework}");
    let remote = page(Some("203.0.113.9")).await;
    assert!(remote.contains("<h1"), "{framework}: a page");
    assert_eq!(
        remote.contains("parity panic"),
        for_everyone,
        "{framework}: a remote visitor sees the details only when the team opted in"
    );
}

/// The servers [`dashboard_mount`] reads: one app, its adapter built four ways over
/// one client whose sinks include a SQLite store.
#[derive(Debug, Clone, Copy)]
pub struct DashboardServers {
    /// The default mount, in production with no token: off.
    pub closed: SocketAddr,
    /// Mounted at `/_backstop` with [`DASHBOARD_TOKEN`].
    pub open: SocketAddr,
    /// Mounted at `/ops/backstop` with [`DASHBOARD_TOKEN`].
    pub moved: SocketAddr,
    /// [`DASHBOARD_TOKEN`] configured, then `no_dashboard()`.
    pub off: SocketAddr,
}

/// The token the parity suite's dashboards open with.
pub const DASHBOARD_TOKEN: &str = "parity-dashboard-token-0123456789";

/// The dashboard as both adapters mount it: closed with no token in production, the
/// token sets the cookie and redirects, pages answer with the cookie, the mount can be
/// moved and turned off, and none of its requests is recorded.
pub async fn dashboard_mount(
    framework: &str,
    servers: DashboardServers,
    client: &Client,
    sink: &TestSink,
) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |addr: SocketAddr, path: String, cookie: Option<String>| {
        let mut request = http.get(format!("http://{addr}{path}"));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        async move { request.send().await.expect("the server answers") }
    };
    let token = DASHBOARD_TOKEN;

    // Production with no token: the app answers (its 404), not the dashboard.
    let closed = get(servers.closed, format!("/_backstop/?token={token}"), None).await;
    assert_eq!(closed.status(), 404, "{framework}: closed");
    assert!(
        closed.headers().get("content-security-policy").is_none(),
        "{framework}"
    );

    // Open: nothing without the token, a cookie and a redirect with it, pages with it.
    let stranger = get(servers.open, "/_backstop/".into(), None).await;
    assert_eq!(stranger.status(), 404, "{framework}: no token");
    let wrong = get(servers.open, "/_backstop/?token=wrong".into(), None).await;
    assert_eq!(wrong.status(), 404, "{framework}: a wrong token");
    let login = get(
        servers.open,
        format!("/_backstop/issues?token={token}"),
        None,
    )
    .await;
    assert_eq!(login.status(), 303, "{framework}: the token");
    assert_eq!(
        login.headers()["location"],
        "/_backstop/issues/",
        "{framework}"
    );
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly"), "{framework}: {cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{framework}: {cookie}");
    assert!(!cookie.contains("Secure"), "{framework}: plain http");
    let session = cookie.split(';').next().unwrap().to_owned();
    for path in ["/_backstop/", "/_backstop/issues", "/_backstop/performance"] {
        let page = get(servers.open, path.into(), Some(session.clone())).await;
        assert_eq!(page.status(), 200, "{framework}: {path}");
        assert!(
            page.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{framework}"
        );
    }
    // The app is still the app.
    assert_eq!(get(servers.open, "/ok".into(), None).await.status(), 200);

    // Moved: the new path answers, the old one is the app's.
    let moved = get(servers.moved, format!("/ops/backstop/?token={token}"), None).await;
    assert_eq!(moved.status(), 303, "{framework}: moved");
    assert_eq!(moved.headers()["location"], "/ops/backstop/", "{framework}");
    let old = get(servers.moved, format!("/_backstop/?token={token}"), None).await;
    assert_eq!(old.status(), 404, "{framework}: the old path");

    // Off.
    let off = get(servers.off, format!("/_backstop/?token={token}"), None).await;
    assert_eq!(off.status(), 404, "{framework}: off");
    assert!(off.headers().get("set-cookie").is_none(), "{framework}");

    // Only the app's requests were recorded.
    assert!(
        client.flush(Duration::from_secs(30)),
        "{framework}: flushed"
    );
    let names: Vec<String> = sink.transactions().into_iter().map(|t| t.name).collect();
    assert!(
        names.iter().any(|n| n == "GET /ok"),
        "{framework}: {names:?}"
    );
    for name in &names {
        assert!(!name.contains("backstop/"), "{framework}: recorded {name}");
    }
    assert!(
        sink.events().is_empty(),
        "{framework}: the dashboard's 404s are not events"
    );
}

/// What [`route_metrics_count_all_traffic`] found in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficCounts {
    /// `GET /ok`'s requests in the route table.
    pub ok: u64,
    /// `GET /bare500`'s requests, and its errors.
    pub failed: (u64, u64),
    /// Transactions the store kept.
    pub kept: u64,
}

/// Route metrics count every request, whatever the sampling: 2,000 requests to
/// `/ok`, from eight concurrent clients, and 20 to `/bare500` show in full in the
/// store's routes and on the dashboard's route page (mounted with
/// [`DASHBOARD_TOKEN`]).
pub async fn route_metrics_count_all_traffic(
    framework: &str,
    addr: SocketAddr,
    client: &Client,
    db: &std::path::Path,
) -> TrafficCounts {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut senders = Vec::new();
    for sender in 0..8 {
        let http = http.clone();
        senders.push(tokio::spawn(async move {
            for i in (sender..2_020).step_by(8) {
                let path = if i < 2_000 { "/ok" } else { "/bare500" };
                let response = http
                    .get(format!("http://{addr}{path}"))
                    .send()
                    .await
                    .expect("the server answers");
                let _ = response.bytes().await;
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    assert!(
        client.flush(Duration::from_secs(30)),
        "{framework}: flushed"
    );
    let reader = backstop_store::StoreReader::open(db).unwrap();
    let routes = reader.routes(&backstop_store::RouteQuery::new()).unwrap();
    let route = |name: &str| routes.iter().find(|r| r.name == name);
    let ok = route("GET /ok").map_or(0, |r| r.count);
    let failed = route("GET /bare500").map_or((0, 0), |r| (r.count, r.errors));

    // The dashboard's route page shows the full count.
    let login = http
        .get(format!("http://{addr}/_backstop/?token={DASHBOARD_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303, "{framework}: the token");
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = http
        .get(format!(
            "http://{addr}/_backstop/performance/route?name=GET%20%2Fok"
        ))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "{framework}: the route page");
    let body = page.text().await.unwrap();
    assert!(
        body.contains("<dd>2,000</dd>"),
        "{framework}: every request on the route page"
    );
    TrafficCounts {
        ok,
        failed,
        kept: reader.transaction_count().unwrap(),
    }
}

// ---------------------------------------------------------------------------------------
// Outgoing calls and caches

/// The routes every adapter's parity app serves for outgoing calls and caches, each a
/// thin wrapper around the helper named:
///
/// | route | behaviour |
/// |---|---|
/// | `GET /call?url=&times=&timeout_ms=` | [`call`]: calls `url` `times` times (default 1) with reqwest through Backstop's middleware; answers the last status, or 502 with the error attached |
/// | `GET /spawned?url=` | [`spawned_call`]: the same call from a task spawned with `backstop_core::bind` |
/// | `GET /cache` | [`cache_round`]: `cache.get` `rates:EUR` (miss), `cache.put`, `cache.get` (hit), `cache.get` `session:abc123` (miss) |
///
/// The downstream end is the axum parity app, with these routes too:
///
/// | route | behaviour |
/// |---|---|
/// | `GET /rates` | 200, JSON |
/// | `GET /fail` | a bare 500 |
/// | `GET /sleep?ms=` | 200 after `ms` milliseconds |
/// | `GET /headers` | the `traceparent` and `sentry-trace` it received, as JSON |
pub const OUTGOING_ROUTES: &[&str] = &["/call", "/spawned", "/cache"];

/// What `/call` and `/spawned` take.
#[derive(Debug, serde::Deserialize)]
pub struct CallQuery {
    /// The URL to call.
    pub url: String,
    /// How many times.
    pub times: Option<u32>,
    /// A per-call timeout, in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// A call that got no response.
#[derive(Debug)]
pub struct CallFailed(pub reqwest_middleware::Error);

impl std::fmt::Display for CallFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the downstream call failed")
    }
}

impl std::error::Error for CallFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A reqwest client through Backstop's middleware.
pub fn traced_client() -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(backstop_core::reqwest::Tracing::new())
        .build()
}

/// `/call`: the status of the last call, or why it failed.
pub async fn call(query: CallQuery) -> Result<u16, CallFailed> {
    let http = traced_client();
    let mut status = 0;
    for _ in 0..query.times.unwrap_or(1) {
        let mut request = http.get(&query.url);
        if let Some(ms) = query.timeout_ms {
            request = request.timeout(Duration::from_millis(ms));
        }
        let response = request.send().await.map_err(CallFailed)?;
        status = response.status().as_u16();
        let _ = response.bytes().await;
    }
    Ok(status)
}

/// `/spawned`: [`call`] from a task spawned with `backstop_core::bind`.
pub async fn spawned_call(query: CallQuery) -> Result<u16, CallFailed> {
    tokio::spawn(backstop_core::bind(call(query)))
        .await
        .expect("the task ran")
}

/// `/cache`: two prefixes, three gets (one hit) and a put.
pub fn cache_round() {
    let mut cache = std::collections::HashMap::new();
    for key in ["rates:EUR", "rates:EUR", "session:abc123"] {
        let mut get = backstop_core::cache::get(key);
        let found: Option<&String> = cache.get(key);
        get.hit(found.is_some());
        drop(get);
        if found.is_none() && key.starts_with("rates") {
            let mut put = backstop_core::cache::put(key);
            put.item_size(4);
            cache.insert(key, "1.08".to_owned());
        }
    }
}

fn http_spans(transaction: &Transaction) -> Vec<&backstop_core::Span> {
    transaction
        .spans
        .iter()
        .filter(|s| s.op.as_deref() == Some("http.client"))
        .collect()
}

/// Outgoing calls through an adapter's app at `upstream`, to the axum parity app at
/// `downstream`, both reporting to `client` (sampling every request, with a slow-call
/// threshold of 100 ms) and captured into `sink`:
///
/// - a call is an `http.client` span of the request: method and URL described, the
///   query's secrets scrubbed, the status; the called service's transaction is in the
///   same trace, its parent that span;
/// - a 5xx, a refused connection and a timeout mark the span failed
///   (`internal_error`, `unavailable`, `deadline_exceeded`), and the error event of
///   the request carries the call's breadcrumb;
/// - five calls in a row to one URL are an N+1 of API calls; a call over the
///   threshold is a slow call;
/// - a task spawned with `bind` keeps the request; a call outside any request records
///   nothing and sends no trace header;
/// - cache operations are spans, and their hits and misses are counted per prefix.
pub async fn outgoing_calls(
    framework: &str,
    upstream: SocketAddr,
    downstream: SocketAddr,
    client: &Client,
    sink: &TestSink,
) {
    use backstop_core::{ProblemKind, SpanStatus};
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let response = http
                .get(format!("http://{upstream}{path}"))
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    let call = |url: String, extra: &str| {
        let url: String = form_urlencoded(&url);
        format!("/call?url={url}{extra}")
    };
    let settle = || {
        assert!(client.flush(Duration::from_secs(10)), "{framework}: flush");
    };
    let named = |name: &str| -> Vec<Transaction> {
        sink.transactions()
            .into_iter()
            .filter(|t| t.name == name)
            .collect()
    };

    // Propagation and the query.
    sink.clear();
    let url = format!("http://{downstream}/rates?token=s3cret&from=EUR");
    assert_eq!(get(call(url, "")).await, 200, "{framework}");
    settle();
    let upstream_tx = named("GET /call");
    assert_eq!(upstream_tx.len(), 1, "{framework}");
    let spans = http_spans(&upstream_tx[0]);
    assert_eq!(spans.len(), 1, "{framework}");
    let span = spans[0];
    assert_eq!(
        span.description.as_deref(),
        Some(format!("GET http://{downstream}/rates").as_str()),
        "{framework}"
    );
    assert_eq!(
        span.data["http.query"], "token=[Filtered]&from=EUR",
        "{framework}"
    );
    assert_eq!(span.data["http.response.status_code"], 200, "{framework}");
    assert_eq!(span.status, Some(SpanStatus::Ok), "{framework}");
    assert_eq!(span.parent_span_id, Some(upstream_tx[0].trace.span_id));
    let downstream_tx = named("GET /rates");
    assert_eq!(downstream_tx.len(), 1, "{framework}");
    assert_eq!(
        downstream_tx[0].trace.trace_id, upstream_tx[0].trace.trace_id,
        "{framework}: one trace"
    );
    assert_eq!(
        downstream_tx[0].trace.parent_span_id,
        Some(span.span_id),
        "{framework}: the call's span is the downstream parent"
    );

    // Failures: a 5xx, a refused connection, a timeout.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    for (url, extra, status, span_status) in [
        (
            format!("http://{downstream}/fail"),
            "",
            500,
            SpanStatus::InternalError,
        ),
        (
            format!("http://{closed}/nothing"),
            "",
            502,
            SpanStatus::Unavailable,
        ),
        (
            format!("http://{downstream}/sleep?ms=5000"),
            "&timeout_ms=300",
            502,
            SpanStatus::DeadlineExceeded,
        ),
    ] {
        sink.clear();
        assert_eq!(
            get(call(url.clone(), extra)).await,
            status,
            "{framework}: {url}"
        );
        settle();
        let tx = named("GET /call");
        let spans = http_spans(&tx[0]);
        assert_eq!(spans[0].status, Some(span_status), "{framework}: {url}");
        let events: Vec<Event> = sink
            .events()
            .into_iter()
            .filter(|e| e.transaction.as_deref() == Some("GET /call"))
            .collect();
        assert_eq!(events.len(), 1, "{framework}: {url}: one error event");
        let crumb = events[0]
            .breadcrumbs
            .values
            .iter()
            .find(|b| b.ty == "http")
            .expect("the call's breadcrumb");
        let bare = url.split('?').next().unwrap();
        assert_eq!(crumb.data["url"], bare, "{framework}");
        assert_eq!(crumb.data["method"], "GET", "{framework}");
        if status == 500 {
            assert_eq!(crumb.data["status_code"], 500, "{framework}");
        }
    }

    // The detectors: five calls in a row, and one slow call.
    sink.clear();
    let url = format!("http://{downstream}/rates");
    assert_eq!(get(call(url, "&times=5")).await, 200, "{framework}");
    let url = format!("http://{downstream}/sleep?ms=150");
    assert_eq!(get(call(url, "")).await, 200, "{framework}");
    settle();
    let kinds: Vec<Vec<ProblemKind>> = named("GET /call")
        .iter()
        .map(|t| t.problems.iter().map(|p| p.kind).collect())
        .collect();
    assert_eq!(
        kinds,
        [
            vec![ProblemKind::NPlusOneApiCalls],
            vec![ProblemKind::SlowHttpCall]
        ],
        "{framework}"
    );
    let n_plus_one = &named("GET /call")[0].problems[0];
    assert_eq!(n_plus_one.count, 5);
    assert_eq!(
        n_plus_one.description,
        format!("GET http://{downstream}/rates"),
        "{framework}"
    );

    // A bound task keeps the request.
    sink.clear();
    let url = form_urlencoded(&format!("http://{downstream}/rates"));
    assert_eq!(get(format!("/spawned?url={url}")).await, 200, "{framework}");
    settle();
    let tx = named("GET /spawned");
    assert_eq!(http_spans(&tx[0]).len(), 1, "{framework}: the spawned call");
    assert_eq!(
        named("GET /rates")[0].trace.trace_id,
        tx[0].trace.trace_id,
        "{framework}"
    );

    // Outside any request: nothing recorded, no header sent.
    sink.clear();
    let echoed: serde_json::Value = traced_client()
        .get(format!("http://{downstream}/headers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        echoed,
        serde_json::json!({"traceparent": null, "sentry-trace": null}),
        "{framework}"
    );
    settle();
    let all = sink.transactions();
    assert_eq!(all.len(), 1, "{framework}: only the downstream request");
    assert_eq!(all[0].trace.parent_span_id, None, "{framework}");

    // Cache spans, counted per prefix.
    sink.clear();
    assert_eq!(get("/cache".to_owned()).await, 200, "{framework}");
    settle();
    let tx = &named("GET /cache")[0];
    let ops: Vec<(&str, &str, Option<bool>)> = tx
        .spans
        .iter()
        .map(|s| {
            (
                s.op.as_deref().unwrap(),
                s.description.as_deref().unwrap(),
                s.data.get("cache.hit").and_then(|h| h.as_bool()),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("cache.get", "rates:EUR", Some(false)),
            ("cache.put", "rates:EUR", None),
            ("cache.get", "rates:EUR", Some(true)),
            ("cache.get", "session:[Filtered]", Some(false)),
        ],
        "{framework}"
    );
    assert_eq!(
        tx.contexts["cache"]["prefixes"],
        serde_json::json!([
            {"prefix": "rates", "hits": 1, "misses": 1, "hit_rate": 0.5},
            {"prefix": "session", "hits": 0, "misses": 1, "hit_rate": 0.0},
        ]),
        "{framework}"
    );
}

/// Percent-encodes a query value.
fn form_urlencoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------
// A demo binary, and its dashboard

/// A demo binary (`env!("CARGO_BIN_EXE_...")`) serving on a free loopback port with its
/// own store, killed when dropped (also when a test fails).
pub struct DemoProcess {
    /// Where it serves.
    pub addr: SocketAddr,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the demo binary `bin` with `env` set, and waits (up to a minute) until it
/// answers.
pub fn start_demo(bin: &str, env: &[(&str, &str)]) -> DemoProcess {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let child = std::process::Command::new(bin)
        .env("BACKSTOP_DEMO_ADDR", addr.to_string())
        .env("BACKSTOP_DB", dir.path().join("backstop.db"))
        .env("BACKSTOP_DEMO_DATA", dir.path().join("data.db"))
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let demo = DemoProcess {
        addr,
        child,
        _dir: dir,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "{bin} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    demo
}

/// The dashboard's bar on a demo started with `BACKSTOP_DASHBOARD_TOKEN` = `token`: closed
/// without the token (or with a wrong one), open with it through an `HttpOnly`,
/// `SameSite=Strict` cookie; the `/error` issue, the `/users` N+1 and its SQL on the
/// pages; and a panicking URL with a script payload shown escaped.
pub async fn check_demo_dashboard(framework: &str, addr: SocketAddr, token: &str) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{addr}/_backstop");
    for path in ["/", "/issues", "/?token=wrong"] {
        let reply = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(reply.status(), 404, "{framework}: {path} without the token");
    }
    let login = http
        .get(format!("{base}/?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303, "{framework}: the token redirects");
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = |path: String| {
        let request = http.get(format!("{base}{path}")).header("cookie", &session);
        async move {
            let reply = request.send().await.unwrap();
            assert_eq!(reply.status(), 200, "{path}");
            reply.text().await.unwrap()
        }
    };

    let payload = "<script>alert(1)</script>";
    for path in [
        "/error".to_owned(),
        "/users".to_owned(),
        format!("/panic?{payload}"),
    ] {
        let _ = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
    }
    // The store writes on its own thread: wait for all three issues.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let issues = loop {
        let issues = page("/issues?status=all".into()).await;
        if issues.matches("href=\"/_backstop/issues/").count() >= 3 {
            break issues;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{framework}: {issues}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let links: Vec<String> = issues
        .match_indices("href=\"/_backstop/issues/")
        .map(|(at, _)| {
            let rest = &issues[at + "href=\"/_backstop".len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect();
    let mut pages = Vec::new();
    for link in &links {
        pages.push(page(link.clone()).await);
    }
    assert!(
        pages.iter().any(|p| p.contains("/error")),
        "{framework}: the /error issue"
    );
    let n_plus_one = pages
        .iter()
        .find(|p| p.contains("N+1 query"))
        .unwrap_or_else(|| panic!("{framework}: the /users N+1"));
    assert!(n_plus_one.contains("FROM posts"), "{framework}: its SQL");
    let panicked = pages
        .iter()
        .find(|p| p.contains("/panic"))
        .unwrap_or_else(|| panic!("{framework}: the panic"));
    assert!(
        panicked.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            || panicked.contains("%3Cscript%3Ealert(1)%3C/script%3E"),
        "{framework}: the payload is shown"
    );
    for p in &pages {
        assert!(
            !p.contains(payload),
            "{framework}: a script tag got through"
        );
    }
}
