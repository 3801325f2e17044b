//! Every page over a seeded store, from the real server: it answers, it is small, and
//! whatever was recorded is shown escaped.

mod common;

use backstop_dashboard::DashboardConfig;
use common::seed::Size;
use common::*;

const PAYLOAD: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

#[test]
fn every_page_answers_and_stays_under_200_kb() {
    let server = start(Size::SMALL, "", DashboardConfig::new().token(TOKEN));
    let cookie = login(server.addr);
    let pages = every_page(server.addr, &cookie);
    assert_eq!(pages.len(), 13);
    for (name, path) in &pages {
        let reply = get(server.addr, &cookie, path);
        assert_eq!(reply.status, 200, "{name} {path}: {}", reply.body);
        assert!(
            reply.body.len() < 200 * 1024,
            "{name}: {} bytes",
            reply.body.len()
        );
        assert!(reply.body.starts_with("<!DOCTYPE html>"), "{name}");
    }
    // What the pages are for: the N+1 and its SQL, the issue's exception chain and
    // in-app frames, the waterfall's marked spans.
    let body = |name: &str| {
        let path = &pages.iter().find(|(n, _)| n == name).unwrap().1;
        get(server.addr, &cookie, path).body
    };
    let perf = body("performance-issue");
    assert!(perf.contains("N+1 query"), "{perf}");
    assert!(perf.contains("SELECT * FROM posts WHERE user_id = ?"));
    let issue = body("issue");
    assert!(issue.contains("Caused by"));
    assert!(issue.contains("class=\"app\""), "in-app frames emphasised");
    assert!(issue.contains("library frames"), "the rest folded");
    assert!(issue.contains("Breadcrumbs"));
    assert!(issue.contains("Raw JSON"));
    assert!(!issue.contains("Bearer"), "filtered headers stay filtered");
    let health = body("health");
    assert!(
        !health.contains("role=\"alert\""),
        "nothing is dropped: {health}"
    );
    assert!(
        health.contains("7 days, 10,000 transactions, 10,000 events per issue"),
        "{health}"
    );
    assert!(health.contains("Last prune"));
    let queries = body("queries");
    assert!(queries.contains("SELECT * FROM posts WHERE user_id = ?"));
    // Each statement's p95 and the rows its runs returned (the seed reports them).
    assert!(
        queries.contains("<th class=\"num wide\">p95</th>"),
        "{queries}"
    );
    assert!(
        queries.contains("<th class=\"num wide\">Rows</th>"),
        "{queries}"
    );
    // The route page lists the route's outgoing calls and caches beside its queries;
    // the request page draws them in the waterfall.
    let route = body("route");
    assert!(
        route.contains("Outgoing calls") && route.contains("Caches"),
        "{route}"
    );
    assert!(
        route.contains("<code>GET https://rates.example/api/rates</code>"),
        "{route}"
    );
    assert!(route.contains("<code>rates</code>"), "{route}");
    let request = body("request");
    assert!(request.contains("<li class=\"call\">"), "{request}");
    assert!(request.contains("<li class=\"cache\">"), "{request}");

    // Unknown ids are a clean 404 page, bad input never a 500.
    for path in [
        "/_backstop/issues/999999",
        "/_backstop/issues/not-a-number",
        "/_backstop/requests/zzz",
        "/_backstop/requests/00000000000000000000000000000000",
        "/_backstop/nowhere",
        "/_backstop/performance/route",
    ] {
        let reply = get(server.addr, &cookie, path);
        assert_eq!(reply.status, 404, "{path}");
        assert!(reply.body.contains("Not found"), "{path}");
    }
    for path in [
        "/_backstop/issues?after=garbage&sort=%00&status=%FF",
        "/_backstop/issues?q=%25_%5C&level=nope&range=9y",
        "/_backstop/releases/compare?a=nope&b=&route=x",
        "/_backstop/queries/statement?sql=nothing",
        "/_backstop/releases/compare?period=day",
        "/_backstop/releases/compare?period=week&route=GET%20/",
    ] {
        assert_eq!(get(server.addr, &cookie, path).status, 200, "{path}");
    }
}

#[test]
fn recorded_text_is_escaped_on_every_page() {
    let server = start(Size::SMALL, PAYLOAD, DashboardConfig::new().token(TOKEN));
    let cookie = login(server.addr);
    for (name, path) in every_page(server.addr, &cookie) {
        let page = get(server.addr, &cookie, &path);
        assert_eq!(page.status, 200, "{name}");
        assert!(
            !page.body.contains("<script"),
            "{name}: a script tag got through"
        );
        assert!(
            !page.body.contains("<img"),
            "{name}: an img tag got through"
        );
        assert!(
            !page.body.contains("onerror=alert(2)>"),
            "{name}: an attribute got through"
        );
        if name != "health" {
            assert!(
                page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                "{name}: the recorded text should be shown, escaped"
            );
        }
    }
    // The route page's calls and caches show their URL and key prefix escaped (the
    // payload's `/` ends the host and a prefix; an id-like path segment becomes `*`).
    let route = every_page(server.addr, &cookie)
        .into_iter()
        .find(|(name, _)| name == "route")
        .unwrap()
        .1;
    let route = get(server.addr, &cookie, &route).body;
    assert!(
        route.contains("<code>GET https://rates&lt;script&gt;alert(1)&lt;/*/api/rates</code>"),
        "{route}"
    );
    assert!(
        route.contains("<code>rates&lt;script&gt;alert(1)&lt;</code>"),
        "{route}"
    );

    // The issue page shows the payload in each field it was recorded in.
    let issues = get(
        server.addr,
        &cookie,
        "/_backstop/issues?status=all&kind=error",
    )
    .body;
    let issue = get(
        server.addr,
        &cookie,
        &first_link(&issues, "/_backstop/issues/"),
    )
    .body;
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;";
    for (field, shown) in [
        ("message", "payment failed for order "),
        ("URL", "http://shop.example/checkout?order="),
        ("tag", "acme"),
        ("user", "@example.com"),
        ("breadcrumb", "GET /api/rates 200"),
        ("SQL", "SELECT * FROM orders WHERE id = ?"),
        ("header", "Mozilla/5.0"),
        ("release", "shop@1.4."),
    ] {
        // The field's text, any digits the seed put after it, then the payload.
        let found = issue.match_indices(shown).any(|(at, _)| {
            issue[at + shown.len()..]
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .starts_with(escaped)
        });
        assert!(found, "{field}: {shown}");
    }
}

#[test]
fn the_health_page_warns_when_records_are_dropped() {
    let config = DashboardConfig::new()
        .token(TOKEN)
        .pipeline_stats(busy_pipeline);
    let server = start(Size::SMALL, "", config);
    let cookie = login(server.addr);
    let health = get(server.addr, &cookie, "/_backstop/health").body;
    assert!(health.contains("role=\"alert\""), "{health}");
    assert!(health.contains("Records are being dropped"));
    assert!(health.contains("Dropped: queue full"));
    assert!(health.contains(">42<"), "the count by reason");
}
