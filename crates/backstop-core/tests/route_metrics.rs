//! Route metrics count every request, sampled or not, on whichever thread it finished.

use std::time::Duration;

use backstop_core::test::TestSink;
use backstop_core::{Options, RequestScope, SpanStatus};

const FLUSH: Duration = Duration::from_secs(30);

fn start(rate: f64) -> (backstop_core::BackstopGuard, TestSink) {
    let sink = TestSink::new();
    let guard = backstop_core::test::start(
        Options::new()
            .traces_sample_rate(rate)
            .sink(sink.clone())
            .console(false)
            .install_panic_hook(false)
            .environment("metrics-test")
            .release("m@1"),
    )
    .unwrap();
    (guard, sink)
}

#[test]
fn every_request_counts_at_one_percent_sampling_with_its_errors_and_queries() {
    let (backstop, sink) = start(0.01);
    for i in 0..2000u32 {
        let scope = RequestScope::http_builder(&backstop, "GET", Some("/items/{id}"))
            .op("http.server")
            .start();
        scope.run(|| {
            for _ in 0..3 {
                drop(backstop_core::db_span("sqlite", "SELECT 1"));
            }
        });
        scope.finish_http(if i % 100 == 0 { 503 } else { 200 });
    }
    // A non-HTTP task that failed counts as an error too; a cancelled one does not.
    RequestScope::builder(&backstop, "job")
        .start()
        .finish(SpanStatus::InternalError);
    RequestScope::builder(&backstop, "job")
        .start()
        .finish(SpanStatus::Cancelled);
    assert!(backstop.flush(FLUSH));

    let items = sink.route_totals("GET /items/{id}").expect("counted");
    assert_eq!(items.count, 2000, "every request, sampled or not");
    assert_eq!(items.errors, 20);
    assert_eq!(items.queries, 6000);
    assert_eq!(items.durations.count(), 2000);
    assert_eq!(items.environment, "metrics-test");
    assert_eq!(items.release.as_deref(), Some("m@1"));
    let sampled = sink.transactions().len();
    assert!(sampled < 200, "about 1% sampled, got {sampled}");
    let job = sink.route_totals("job").unwrap();
    assert_eq!((job.count, job.errors), (2, 1));
}

#[test]
fn the_count_is_the_same_at_any_sampling_rate() {
    let mut counts = Vec::new();
    for rate in [0.0, 0.01, 1.0] {
        let (backstop, sink) = start(rate);
        for _ in 0..500 {
            RequestScope::http_builder(&backstop, "GET", Some("/"))
                .start()
                .finish_http(200);
        }
        assert!(backstop.flush(FLUSH));
        counts.push(sink.route_totals("GET /").map(|m| m.count));
    }
    assert_eq!(counts, [Some(500); 3]);
}

#[test]
fn requests_on_many_threads_merge_exactly() {
    let (backstop, sink) = start(0.0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let client = backstop.client().clone();
            s.spawn(move || {
                for i in 0..1000 {
                    let route = if (t + i) % 2 == 0 { "/a" } else { "/b" };
                    RequestScope::http_builder(&client, "POST", Some(route))
                        .start()
                        .finish_http(if i % 10 == 0 { 500 } else { 201 });
                }
            });
        }
    });
    // A thread counting after a flush reaches the next one.
    assert!(backstop.flush(FLUSH));
    let first = sink.route_totals("POST /a").unwrap().count;
    std::thread::spawn({
        let client = backstop.client().clone();
        move || {
            RequestScope::http_builder(&client, "POST", Some("/a"))
                .start()
                .finish_http(200);
        }
    })
    .join()
    .unwrap();
    assert!(backstop.flush(FLUSH));
    let a = sink.route_totals("POST /a").unwrap();
    let b = sink.route_totals("POST /b").unwrap();
    assert_eq!(first, 4000);
    assert_eq!((a.count, b.count), (4001, 4000));
    assert_eq!(a.errors + b.errors, 800);
}

#[test]
fn durations_are_measured_from_start_to_finish() {
    let (backstop, sink) = start(0.0);
    for _ in 0..3 {
        let scope = RequestScope::http_builder(&backstop, "GET", Some("/slow")).start();
        std::thread::sleep(Duration::from_millis(40));
        scope.finish_http(200);
    }
    assert!(backstop.flush(FLUSH));
    let slow = sink.route_totals("GET /slow").unwrap();
    let p50 = slow.durations.percentile(50.0);
    assert!(p50 >= Duration::from_micros(39_200), "{p50:?}");
    assert!(p50 < Duration::from_secs(20), "{p50:?}");
}

/// A sink that wants no transaction (as a store whose budget is full), counting what
/// it is offered and what reaches it.
#[derive(Clone, Default)]
struct Declining {
    offered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    received: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl backstop_core::Sink for Declining {
    fn wants_transaction(&mut self, summary: &backstop_core::TransactionSummary<'_>) -> bool {
        assert_eq!(summary.name, "GET /d");
        self.offered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        false
    }

    fn consume(&mut self, batch: &[backstop_core::Record]) -> Result<(), backstop_core::SinkError> {
        self.received
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn transactions_no_sink_wants_are_not_processed_and_count_as_over_budget() {
    use std::sync::atomic::Ordering::Relaxed;
    let declining = Declining::default();
    let backstop = backstop_core::test::start(
        Options::new()
            .traces_sample_rate(1.0)
            .sink(declining.clone())
            .console(false)
            .install_panic_hook(false),
    )
    .unwrap();
    for _ in 0..50 {
        RequestScope::http_builder(&backstop, "GET", Some("/d"))
            .start()
            .finish_http(200);
    }
    assert!(backstop.flush(FLUSH));
    assert_eq!(declining.offered.load(Relaxed), 50);
    assert_eq!(declining.received.load(Relaxed), 0);
    let stats = backstop.stats().transactions;
    assert_eq!((stats.dropped_budget, stats.sent), (50, 0));

    // Beside a sink that takes everything (an exporter), every sink receives each.
    let declining = Declining::default();
    let (sink, guard) = {
        let sink = TestSink::new();
        let guard = backstop_core::test::start(
            Options::new()
                .traces_sample_rate(1.0)
                .sink(declining.clone())
                .sink(sink.clone())
                .console(false)
                .install_panic_hook(false),
        )
        .unwrap();
        (sink, guard)
    };
    for _ in 0..50 {
        RequestScope::http_builder(&guard, "GET", Some("/d"))
            .start()
            .finish_http(200);
    }
    assert!(guard.flush(FLUSH));
    assert_eq!(sink.transactions().len(), 50);
    assert_eq!(declining.received.load(Relaxed), 50);
    assert_eq!(guard.stats().transactions.dropped_budget, 0);
}
