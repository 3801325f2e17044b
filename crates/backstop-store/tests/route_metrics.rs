//! Route metrics rows in a real SQLite file: percentiles read back within 2%, parts of
//! a minute adding up, the roll-up to hours and the size bound.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backstop_core::RouteMinute;
use backstop_store::{Buckets, MetricsRetention, RequestQuery, RouteQuery, SqliteStore};
use common::near;

/// The start of the minute `minutes_ago` minutes before now's.
/// The minute `minutes_ago` before the tests started: fixed, so a test that crosses a
/// minute boundary does not write two of its minutes into one.
fn minute_ago(minutes_ago: u64) -> SystemTime {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let now = *START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 60
    });
    UNIX_EPOCH + Duration::from_secs((now - minutes_ago) * 60)
}

fn rows(path: &std::path::Path, span: i64) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM route_metrics WHERE span = ?1",
            [span],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn percentiles_of_100_000_known_durations_read_back_within_two_percent() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("b.db")).unwrap();
    let reader = store.reader();
    let mut rng = fastrand::Rng::with_seed(16);
    let mut exact = Vec::with_capacity(100_000);
    // Over five minutes, each handed over in four parts (as flushes and the worker's
    // visits split them), with a long tail: 1 ms to about 3 s.
    for minute in 0..5 {
        for _ in 0..4 {
            let mut part = RouteMinute::new("GET /search", minute_ago(10 - minute));
            for _ in 0..5_000 {
                let micros = (1000.0 * (rng.f64() * 8.0).exp()) as u64;
                exact.push(micros);
                part.record(Duration::from_micros(micros), micros > 2_000_000, 2);
            }
            store.write_metrics(&[part]).unwrap();
        }
    }
    exact.sort_unstable();
    let route = reader.routes(&RouteQuery::new()).unwrap().remove(0);
    assert_eq!(route.count, 100_000);
    let errors = exact.iter().filter(|&&m| m > 2_000_000).count() as u64;
    assert_eq!(route.errors, errors);
    assert!((route.mean_queries - 2.0).abs() < 1e-9);
    assert!(
        (route.per_minute - 20_000.0).abs() < 1e-6,
        "{}",
        route.per_minute
    );
    let nearest = |p: usize| Duration::from_micros(exact[(p * exact.len()).div_ceil(100) - 1]);
    for (got, p) in [(route.p50, 50), (route.p95, 95), (route.p99, 99)] {
        assert!(near(got, nearest(p)), "p{p}: {got:?} vs {:?}", nearest(p));
    }
    assert_eq!(rows(&dir.path().join("b.db"), 1), 5, "one row per minute");

    // One bucket per minute; the series' total is the whole range.
    let buckets = Buckets::new(minute_ago(10), minute_ago(5), 5);
    let series = reader
        .request_series(&RequestQuery::new(), buckets)
        .unwrap();
    assert!(series.points.iter().all(|p| p.count == 20_000));
    assert_eq!(series.total.count, 100_000);
    assert!(near(series.total.p95, nearest(95)));
    // A route's own range and filter.
    let later = reader
        .routes(&RouteQuery::new().since(minute_ago(7)))
        .unwrap();
    assert_eq!(later[0].count, 40_000, "the last two minutes");
    assert!(
        reader
            .routes(&RouteQuery::new().route("GET /other"))
            .unwrap()
            .is_empty()
    );
    let bins = reader
        .duration_histogram(&RequestQuery::new(), &[Duration::from_millis(100)])
        .unwrap();
    assert_eq!(bins.iter().sum::<u64>(), 100_000);
}

#[test]
fn environments_and_releases_are_kept_apart_and_filtered() {
    let (dir, mut store) = (tempfile::tempdir().unwrap(), None::<SqliteStore>);
    let store = store.insert(SqliteStore::open(dir.path().join("b.db")).unwrap());
    let reader = store.reader();
    let at = minute_ago(3);
    let mut v1 = RouteMinute::new("GET /", at)
        .environment("prod")
        .release("v1");
    let mut v2 = RouteMinute::new("GET /", at)
        .environment("prod")
        .release("v2");
    let mut staging = RouteMinute::new("GET /", at).environment("staging");
    for _ in 0..3 {
        v1.record(Duration::from_millis(5), false, 0);
    }
    v2.record(Duration::from_millis(5), true, 0);
    staging.record(Duration::from_millis(5), false, 0);
    store.write_metrics(&[v1, v2, staging]).unwrap();
    let count = |q: RouteQuery| reader.routes(&q).unwrap().first().map(|r| r.count);
    assert_eq!(count(RouteQuery::new()), Some(5));
    assert_eq!(count(RouteQuery::new().release("v1")), Some(3));
    assert_eq!(count(RouteQuery::new().environment("prod")), Some(4));
    assert_eq!(count(RouteQuery::new().environment("staging")), Some(1));
    reader.clear().unwrap();
    assert_eq!(
        count(RouteQuery::new()),
        None,
        "clear empties route metrics too"
    );
}

#[test]
fn day_old_minutes_roll_up_into_hours_and_month_old_rows_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let mut store = SqliteStore::open(&path).unwrap();
    let reader = store.reader();
    let mut minutes = Vec::new();
    // Two hours of minutes two days ago, an hour of minutes 31 days ago, and the last
    // ten minutes.
    for ago in (2 * 1440..2 * 1440 + 120)
        .chain(31 * 1440..31 * 1440 + 60)
        .chain(1..11)
    {
        let mut m = RouteMinute::new("GET /", minute_ago(ago as u64));
        m.record(Duration::from_millis(ago as u64 % 50 + 1), ago % 7 == 0, 1);
        m.record(Duration::from_millis(10), false, 1);
        minutes.push(m);
    }
    let day_before = reader
        .routes(
            &RouteQuery::new()
                .since(minute_ago(3 * 1440))
                .until(minute_ago(1440)),
        )
        .unwrap();
    assert!(day_before.is_empty());
    store.write_metrics(&minutes).unwrap();
    let range = RouteQuery::new()
        .since(minute_ago(3 * 1440))
        .until(minute_ago(1440));
    let before = reader.routes(&range).unwrap().remove(0);
    assert_eq!(before.count, 240);

    // The first write rolled up already (at most once a minute); a prune runs it to
    // completion either way.
    store.prune_now().unwrap();
    assert_eq!(
        rows(&path, 1),
        10,
        "only the last day's minutes stay minutes"
    );
    let hours = rows(&path, 60);
    assert!(
        (2..=3).contains(&hours),
        "two hours (three if not aligned): {hours}"
    );
    let after = reader.routes(&range).unwrap().remove(0);
    assert_eq!(
        (after.count, after.errors, after.p50, after.p99),
        (before.count, before.errors, before.p50, before.p99),
        "rolling up loses nothing"
    );
    assert!(
        reader
            .routes(&RouteQuery::new().until(minute_ago(30 * 1440)))
            .unwrap()
            .is_empty(),
        "past 30 days, deleted"
    );
}

#[test]
fn fifty_routes_for_thirty_days_stay_under_fifty_megabytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let mut store = SqliteStore::builder(&path)
        .metrics_retention(MetricsRetention::default())
        .open()
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(30);
    let route = |r: usize| format!("GET /api/v1/resource{r}/{{id}}");
    let minute_of = |rng: &mut fastrand::Rng, name: String, at: SystemTime, n: usize| {
        let mut m = RouteMinute::new(name, at);
        for _ in 0..n {
            let micros = (2000.0 * (rng.f64() * 5.0).exp()) as u64;
            m.record(Duration::from_micros(micros), rng.u8(..) == 0, 3);
        }
        m
    };
    // 29 days of hours (written as a minute inside each, rolled up below; the oldest
    // stays clear of the 30-day edge), then the last day's minutes, 50 routes each.
    for hour in 24..30 * 24 - 1 {
        let at = minute_ago(hour * 60 + 30);
        let part: Vec<_> = (0..50)
            .map(|r| minute_of(&mut rng, route(r), at, 300))
            .collect();
        store.write_metrics(&part).unwrap();
    }
    store.prune_now().unwrap();
    for minute in 1..1440 {
        let part: Vec<_> = (0..50)
            .map(|r| minute_of(&mut rng, route(r), minute_ago(minute), 30))
            .collect();
        store.write_metrics(&part).unwrap();
    }
    store.compact().unwrap();
    let bytes = std::fs::metadata(&path).unwrap().len();
    assert!(bytes < 50 * 1024 * 1024, "{bytes} bytes");
    assert_eq!(rows(&path, 60), 50 * (30 * 24 - 25));
    assert_eq!(rows(&path, 1), 50 * 1439);
    eprintln!("50 routes, 30 days: {:.1} MB", bytes as f64 / 1048576.0);
}
