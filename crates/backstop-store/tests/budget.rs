//! The keep budget with a real store behind the real pipeline: the store's writes are
//! bounded per route and minute, whatever the traffic, and route metrics still count
//! every request.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backstop_core::detect::Thresholds;
use backstop_core::{Options, RequestScope};
use backstop_store::{KeepBudget, RequestQuery, RouteQuery, SqliteStore};
use common::*;

/// Ten seconds into the minute before this one: a test's transactions (each up to a
/// few seconds long) all fall in one minute of the budget, wherever the clock is.
fn inside_a_minute() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs((minute_now() - 1) * 60 + 10)
}

fn minute_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
}

#[test]
fn twenty_thousand_requests_in_a_minute_keep_at_most_135_and_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let store = SqliteStore::open(&path).unwrap();
    let reader = store.reader();
    let counters = store.counters();
    let backstop = backstop_core::test::start(
        Options::new()
            .sink(store)
            .console(false)
            .install_panic_hook(false)
            .traces_sample_rate(1.0)
            .queue_capacity(100_000)
            .problem_thresholds(Thresholds {
                n_plus_one_duration: Duration::ZERO,
                ..Thresholds::default()
            }),
    )
    .unwrap();
    let first_minute = minute_now();
    for i in 0..20_000u32 {
        let scope = RequestScope::http_builder(&backstop, "GET", Some("/feed"))
            .op("http.server")
            .start();
        scope.run(|| {
            // Every 50th request runs an N+1: one performance problem, many times.
            if i % 50 == 7 {
                for _ in 0..6 {
                    drop(backstop_core::db_span(
                        "sqlite",
                        "SELECT * FROM posts WHERE user_id = ?",
                    ));
                }
            } else {
                drop(backstop_core::db_span("sqlite", "SELECT * FROM feed"));
            }
        });
        scope.finish_http(if i % 200 == 3 { 500 } else { 200 });
        // Keep the queue from overflowing on a loaded machine.
        if i % 1000 == 999 {
            assert!(backstop.flush(Duration::from_secs(60)));
        }
    }
    assert!(backstop.flush(Duration::from_secs(60)));
    let minutes = minute_now() - first_minute + 1;

    let kept = reader.transaction_count().unwrap();
    assert!(
        kept <= 135 * minutes,
        "{kept} kept over {minutes} minute(s)"
    );
    let errors = reader
        .recent_requests(&RequestQuery::new().limit(1000))
        .unwrap()
        .into_iter()
        .filter(|r| r.is_error)
        .count();
    assert_eq!(errors, 100, "every error kept");
    // Route metrics count every request all the same.
    let route = reader.routes(&RouteQuery::new()).unwrap().remove(0);
    assert_eq!((route.count, route.errors), (20_000, 100));

    let stats = backstop.stats();
    let over = counters.snapshot().transactions_over_budget;
    assert_eq!(stats.transactions.dropped_queue_full, 0);
    assert!(stats.transactions.dropped_budget > 19_000, "{stats:?}");
    // Most were declined before the worker processed them: only the errors, the
    // N+1 requests (the detectors might find a problem) and the budget's picks were.
    assert!(
        stats.transactions.dropped_budget >= 19_000 && stats.transactions.dropped_budget <= over,
        "{stats:?}, {over} over budget"
    );
    assert_eq!(
        kept + over,
        20_000,
        "each transaction is kept or counted over budget"
    );
}

#[test]
fn the_slowest_stay_and_those_pushed_out_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::builder(dir.path().join("b.db"))
        .keep_budget(KeepBudget {
            errors: 0,
            per_problem: 0,
            slowest: 3,
            reservoir: 0,
        })
        .open()
        .unwrap();
    let reader = store.reader();
    let now = inside_a_minute();
    // Rising durations, one per batch: each newcomer pushes the fastest out.
    for ms in 1..=10u64 {
        store
            .write(&[tx(transaction_at(
                "GET /x",
                now,
                Duration::from_millis(ms),
                0,
                0,
                200,
            ))])
            .unwrap();
    }
    let kept: Vec<_> = reader
        .slowest_requests(&RequestQuery::new())
        .unwrap()
        .into_iter()
        .map(|r| r.duration)
        .collect();
    assert_eq!(
        kept,
        [8, 9, 10]
            .map(Duration::from_millis)
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
    );
    assert_eq!(store.stats().transactions_over_budget, 7);
}

#[test]
fn without_a_budget_every_transaction_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::builder(dir.path().join("b.db"))
        .no_keep_budget()
        .open()
        .unwrap();
    let now = inside_a_minute();
    let batch: Vec<_> = (0..300)
        .map(|_| {
            tx(transaction_at(
                "GET /",
                now,
                Duration::from_millis(3),
                0,
                0,
                200,
            ))
        })
        .collect();
    store.write(&batch).unwrap();
    assert_eq!(store.reader().transaction_count().unwrap(), 300);
    assert_eq!(store.stats().transactions_over_budget, 0);
}

#[test]
fn the_reservoir_is_a_uniform_sample_of_the_minute() {
    // 2,000 transactions numbered by duration, 40 times over: each is sampled with the
    // same chance, so the kept ones' mean duration sits near the middle.
    let mut means = Vec::new();
    for _ in 0..40 {
        let mut store = SqliteStore::builder(":memory:")
            .keep_budget(KeepBudget {
                errors: 0,
                per_problem: 0,
                slowest: 0,
                reservoir: 20,
            })
            .open()
            .unwrap();
        let now = inside_a_minute();
        for chunk in (1..=2000u64).collect::<Vec<_>>().chunks(100) {
            let batch: Vec<_> = chunk
                .iter()
                .map(|&ms| {
                    tx(transaction_at(
                        "GET /",
                        now,
                        Duration::from_millis(ms),
                        0,
                        0,
                        200,
                    ))
                })
                .collect();
            store.write(&batch).unwrap();
        }
        let kept = store
            .reader()
            .recent_requests(&RequestQuery::new())
            .unwrap();
        assert_eq!(kept.len(), 20);
        let mean = kept
            .iter()
            .map(|r| r.duration.as_millis() as f64)
            .sum::<f64>()
            / 20.0;
        means.push(mean);
    }
    let mean = means.iter().sum::<f64>() / means.len() as f64;
    // The mean of 800 uniform picks from 1..=2000: 1000 ± about 3 standard errors (60).
    assert!((mean - 1000.5).abs() < 70.0, "{mean}");
}
