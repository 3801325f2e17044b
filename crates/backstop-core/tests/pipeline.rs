//! The pipeline: bounded, non-blocking, counted, and robust to callbacks and sinks that
//! misbehave.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backstop_core::{Level, Options, Record, RequestScope, Sink, SinkError, test::TestSink};

struct SleepingSink(Duration);

impl Sink for SleepingSink {
    fn consume(&mut self, _batch: &[Record]) -> Result<(), SinkError> {
        std::thread::sleep(self.0);
        Ok(())
    }
}

#[test]
fn a_million_captures_against_a_slow_sink_never_block_and_count_every_drop() {
    let backstop = backstop_core::test::start(
        Options::new()
            .queue_capacity(1000)
            .shutdown_timeout(Duration::from_millis(100))
            .sink(SleepingSink(Duration::from_millis(50))),
    )
    .unwrap();
    let scope = RequestScope::builder(&backstop, "load").start();
    let started = Instant::now();
    scope.run(|| {
        for i in 0..1_000_000u32 {
            backstop_core::capture_message(if i % 2 == 0 { "even" } else { "odd" }, Level::Info);
        }
    });
    let elapsed = started.elapsed();
    let stats = backstop.stats();
    eprintln!("1,000,000 captures against a sleeping sink took {elapsed:?}: {stats:?}");
    assert_eq!(stats.events.captured, 1_000_000);
    assert!(stats.events.dropped_queue_full > 500_000, "{stats:?}");
    // Every capture is accounted for: sent, dropped, or still queued/in the sink.
    let in_flight = stats.events.captured - stats.events.sent - stats.events.dropped();
    assert!(in_flight <= 1000 + 512, "{stats:?}");
    // Shutdown is bounded by its timeout even though the sink is slow.
    let t = Instant::now();
    drop(backstop);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

struct StuckSink;

impl Sink for StuckSink {
    fn consume(&mut self, _batch: &[Record]) -> Result<(), SinkError> {
        std::thread::sleep(Duration::from_secs(3));
        Ok(())
    }
}

#[test]
fn flush_and_shutdown_never_wait_past_their_timeout() {
    let backstop = backstop_core::test::start(Options::new().sink(StuckSink)).unwrap();
    backstop_core::RequestScope::builder(&backstop, "x")
        .start()
        .capture_message("hello", Level::Info);
    let t = Instant::now();
    assert!(!backstop.flush(Duration::from_millis(200)));
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    assert!(!backstop.shutdown(Duration::from_millis(200)));
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn stats_count_captured_sent_and_each_kind_of_drop() {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(
        Options::new()
            .traces_sample_rate(1.0)
            .ignore_error("ParseIntError")
            .before_send(|event| (event.message.as_deref() != Some("drop me")).then_some(event))
            .sink(sink.clone()),
    )
    .unwrap();
    let scope = RequestScope::builder(&backstop, "GET /").start();
    scope.capture_message("keep", Level::Info);
    scope.capture_message("drop me", Level::Info);
    scope.capture_error(&"x".parse::<u8>().unwrap_err());
    scope.finish_http(200);
    assert!(backstop.flush(Duration::from_secs(5)));
    let stats = backstop.stats();
    assert_eq!(stats.events.captured, 3);
    assert_eq!(stats.events.sent, 1);
    assert_eq!(stats.events.dropped_before_send, 1);
    assert_eq!(stats.events.dropped_ignored, 1);
    assert_eq!(stats.transactions.captured, 1);
    assert_eq!(stats.transactions.sent, 1);
    assert_eq!(sink.events().len(), 1);
    assert_eq!(sink.transactions().len(), 1);

    // After shutdown, captures are counted as such.
    let client = backstop.client().clone();
    drop(backstop);
    client.capture_event(backstop_core::Event::new(Level::Error));
    assert_eq!(client.stats().events.dropped_shutdown, 1);
}

#[test]
fn sample_rate_drops_and_counts_events() {
    let sink = TestSink::new();
    let backstop =
        backstop_core::test::start(Options::new().sample_rate(0.0).sink(sink.clone())).unwrap();
    for _ in 0..10 {
        backstop.capture_event(backstop_core::Event::new(Level::Error));
    }
    assert!(backstop.flush(Duration::from_secs(5)));
    assert_eq!(backstop.stats().events.dropped_sampled, 10);
    assert!(sink.events().is_empty());
}

struct PanickingSink(Arc<AtomicUsize>);

impl Sink for PanickingSink {
    fn consume(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        if batch
            .iter()
            .any(|r| r.as_event().and_then(|e| e.message.as_deref()) == Some("poison"))
        {
            panic!("sink bug");
        }
        self.0.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

struct FailingSink;

impl Sink for FailingSink {
    fn name(&self) -> &str {
        "failing"
    }
    fn consume(&mut self, _batch: &[Record]) -> Result<(), SinkError> {
        Err("disk full".into())
    }
}

#[test]
fn a_panicking_before_send_or_sink_does_not_kill_the_worker() {
    let seen = Arc::new(AtomicUsize::new(0));
    let backstop = backstop_core::test::start(
        Options::new()
            .before_send(|event| {
                if event.message.as_deref() == Some("explode") {
                    panic!("before_send bug");
                }
                Some(event)
            })
            .sink(PanickingSink(seen.clone())),
    )
    .unwrap();
    let scope = RequestScope::builder(&backstop, "x").start();
    scope.capture_message("explode", Level::Error);
    assert!(backstop.flush(Duration::from_secs(5)));
    scope.capture_message("poison", Level::Error);
    assert!(backstop.flush(Duration::from_secs(5)));
    scope.capture_message("fine", Level::Error);
    assert!(
        backstop.flush(Duration::from_secs(5)),
        "the worker is still alive"
    );
    let stats = backstop.stats();
    assert_eq!(stats.events.dropped_panicked, 1, "{stats:?}");
    assert_eq!(stats.events.dropped_sink_failed, 1, "{stats:?}");
    assert_eq!(stats.events.sent, 1, "{stats:?}");
    assert_eq!(stats.callback_panics, 1);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[test]
fn a_failing_sink_loses_its_batches_only_and_they_are_counted() {
    let sink = TestSink::new();
    let backstop =
        backstop_core::test::start(Options::new().sink(FailingSink).sink(sink.clone())).unwrap();
    for _ in 0..5 {
        backstop.capture_event(backstop_core::Event::new(Level::Error));
    }
    assert!(backstop.flush(Duration::from_secs(5)));
    assert_eq!(backstop.stats().events.dropped_sink_failed, 5);
    assert_eq!(
        sink.events().len(),
        5,
        "the healthy sink still got everything"
    );
}

#[test]
fn panicking_callbacks_on_the_request_path_are_contained() {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(
        Options::new()
            .traces_sampler(|_| panic!("sampler bug"))
            .before_breadcrumb(|_| panic!("breadcrumb bug"))
            .sink(sink.clone()),
    )
    .unwrap();
    let scope = RequestScope::builder(&backstop, "GET /").start();
    assert!(!scope.is_sampled(), "a panicking sampler keeps nothing");
    scope.run(|| {
        backstop_core::add_breadcrumb(backstop_core::Breadcrumb::new("a", "b"));
        backstop_core::capture_message("still works", Level::Info);
    });
    assert!(backstop.flush(Duration::from_secs(5)));
    let stats = backstop.stats();
    assert_eq!(stats.callback_panics, 2);
    assert_eq!(stats.breadcrumbs_dropped, 1);
    assert_eq!(sink.events().len(), 1);
    assert!(sink.events()[0].breadcrumbs.is_empty());
}

#[test]
fn breadcrumbs_are_bounded_and_transactions_cap_their_spans() {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(
        Options::new()
            .max_breadcrumbs(3)
            .max_spans(2)
            .traces_sample_rate(1.0)
            .sink(sink.clone()),
    )
    .unwrap();
    let scope = RequestScope::builder(&backstop, "GET /").start();
    scope.run(|| {
        for i in 0..5 {
            backstop_core::add_breadcrumb(backstop_core::Breadcrumb::new("step", format!("{i}")));
        }
        backstop_core::capture_message("done", Level::Info);
    });
    let now = std::time::SystemTime::now();
    for _ in 0..5 {
        scope.add_span(backstop_core::Span {
            span_id: backstop_core::SpanId::new(),
            trace_id: scope.trace_id(),
            parent_span_id: Some(scope.span_id()),
            op: Some("db.sql.query".into()),
            description: None,
            status: None,
            start_timestamp: now,
            timestamp: now,
            tags: Default::default(),
            data: Default::default(),
        });
    }
    scope.finish_http(200);
    assert!(backstop.flush(Duration::from_secs(5)));
    let event = &sink.events()[0];
    let kept: Vec<_> = event
        .breadcrumbs
        .values
        .iter()
        .map(|b| b.message.clone().unwrap())
        .collect();
    assert_eq!(kept, ["2", "3", "4"], "the oldest go first");
    let transaction = &sink.transactions()[0];
    assert_eq!(transaction.spans.len(), 2);
    assert_eq!(transaction.extra["spans_dropped"], 3);
    let stats = backstop.stats();
    assert_eq!(stats.breadcrumbs_dropped, 2);
    assert_eq!(stats.spans_dropped, 3);
}

#[test]
fn a_discarding_sink_takes_every_record_as_sent() {
    let backstop = backstop_core::test::start(
        Options::new()
            .install_panic_hook(false)
            .sink(backstop_core::test::DiscardSink),
    )
    .unwrap();
    RequestScope::builder(&backstop, "GET /")
        .start()
        .capture_message("gone", Level::Info);
    assert!(backstop.flush(Duration::from_secs(10)));
    let stats = backstop.stats().events;
    assert_eq!((stats.captured, stats.sent, stats.dropped()), (1, 1, 0));
}
