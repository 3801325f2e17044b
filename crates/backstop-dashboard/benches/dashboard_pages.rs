//! Server time of every dashboard page on a store at its retention limits: 10,000
//! transactions with 5 spans each, 100,000 events across 1,000 issues, and 7 days of
//! minute metrics for 50 routes (rolled up to hours past a day, as the store does).
//!
//! `cargo bench -p backstop-dashboard` (add `-- --quick` for a short run). Seeding the
//! store takes a while; it happens once per run.

#[path = "../tests/common/seed.rs"]
mod seed;

use std::time::Instant;

use backstop_dashboard::{Dashboard, DashboardConfig};
use backstop_store::SqliteStore;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};

const TOKEN: &str = "bench-token-0123456789";

fn request(path: &str, cookie: &str) -> http::Request<Bytes> {
    http::Request::get(path)
        .header("cookie", cookie)
        .body(Bytes::new())
        .unwrap()
}

/// The first `href` starting with `prefix`.
fn first_link(page: &str, prefix: &str) -> String {
    let needle = format!("href=\"{prefix}");
    let at = page
        .find(&needle)
        .unwrap_or_else(|| panic!("no link to {prefix}"));
    let rest = &page[at + "href=\"".len()..];
    rest[..rest.find('"').unwrap()].replace("&amp;", "&")
}

fn pages(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("backstop.db")).unwrap();
    let started = Instant::now();
    seed::seed(&mut store, seed::Size::FULL, "");
    eprintln!("seeded the full store in {:.1?}", started.elapsed());
    let dashboard = Dashboard::new(store.reader(), DashboardConfig::new().token(TOKEN));

    let login = dashboard.handle(
        http::Request::get(format!("/_backstop/?token={TOKEN}"))
            .body(Bytes::new())
            .unwrap(),
    );
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body = |path: &str| {
        let response = dashboard.handle(request(path, &cookie));
        assert_eq!(response.status(), 200, "{path}");
        String::from_utf8(response.into_body().to_vec()).unwrap()
    };

    let errors = body("/_backstop/issues?status=all&kind=error");
    let perf = body("/_backstop/issues?status=all&kind=performance");
    let routes = body("/_backstop/performance?range=7d");
    // A route with kept requests (the busiest ones have route metrics only).
    assert!(routes.contains("/_backstop/performance/route?"));
    let route = "/_backstop/performance/route?name=GET%20%2Fusers&range=7d".to_owned();
    let route_page = body(&route);
    let queries = body("/_backstop/queries?range=7d");
    let releases = body("/_backstop/releases");
    let second_page = first_link(&errors, "/_backstop/issues?").to_owned();
    let paths = [
        ("overview", "/_backstop/?range=7d".to_owned()),
        ("issues", "/_backstop/issues?status=all".to_owned()),
        ("issues-next-page", second_page),
        ("issue", first_link(&errors, "/_backstop/issues/")),
        ("performance-issue", first_link(&perf, "/_backstop/issues/")),
        ("performance", "/_backstop/performance?range=7d".to_owned()),
        ("route", route),
        ("request", first_link(&route_page, "/_backstop/requests/")),
        ("queries", "/_backstop/queries?range=7d".to_owned()),
        (
            "statement",
            first_link(&queries, "/_backstop/queries/statement?"),
        ),
        ("releases", "/_backstop/releases".to_owned()),
        (
            "compare",
            first_link(&releases, "/_backstop/releases/compare?"),
        ),
        ("alerts", "/_backstop/alerts".to_owned()),
        ("health", "/_backstop/health".to_owned()),
    ];

    // The goal is on the 95th percentile of server time: measured here, per page,
    // over 40 requests after a warm-up, and printed as the table in
    // docs/performance.md.
    eprintln!("| page | median | p95 | HTML |\n|---|---|---|---|");
    for (name, path) in &paths {
        let size = body(path).len();
        let mut times: Vec<std::time::Duration> = (0..40)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(dashboard.handle(request(path, &cookie)));
                started.elapsed()
            })
            .collect();
        times.sort_unstable();
        eprintln!(
            "| {name} | {:.1} ms | {:.1} ms | {} KB |",
            times[19].as_secs_f64() * 1e3,
            times[37].as_secs_f64() * 1e3,
            size.div_ceil(1024)
        );
    }

    let mut group = c.benchmark_group("dashboard_page");
    group.sample_size(20);
    for (name, path) in &paths {
        let size = body(path).len();
        eprintln!("{name}: {path} ({size} bytes)");
        assert!(size < 200 * 1024, "{name} is {size} bytes");
        group.bench_function(*name, |b| {
            b.iter(|| dashboard.handle(request(path, &cookie)));
        });
    }
    group.finish();
}

criterion_group!(benches, pages);
criterion_main!(benches);
